//! modbridge: Cativa `post_created` webhooks in, moderation cards out.
//!
//! See ARCHITECTURE.md for the map. Data flows one way:
//! intake → dedupe → rules → card → delivery → platforms.

pub mod card;
pub mod cli;
pub mod commands;
pub mod config;
pub mod dedupe;
pub mod delivery;
pub mod destination;
pub mod intake;
pub mod pipeline;
pub mod platforms;
pub mod post;
pub mod rules;
pub mod secret;
pub mod telemetry;
