//! modbridge: Cativa `post_created` webhooks in, moderation cards out.
//!
//! See ARCHITECTURE.md for the map. Data flows one way:
//! intake → dedupe → rules → card → sinks.

pub mod card;
pub mod cli;
pub mod commands;
pub mod config;
pub mod dedupe;
pub mod delivery;
pub mod destination;
pub mod intake;
pub mod pipeline;
pub mod post;
pub mod rules;
pub mod sinks;
pub mod telemetry;
