//! modbridge: Cativa `post_created` webhooks in, moderation cards out.
//!
//! See ARCHITECTURE.md for the map. Data flows one way:
//! intake → dedupe → rules → card → sinks.

pub mod destination;
pub mod post;
pub mod dedupe;
pub mod intake;
