#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::print_stdout,
        clippy::print_stderr
    )
)]
//! modbridge: Cativa `post_created` webhooks in, moderation cards out.
//!
//! See ARCHITECTURE.md for the map. A request goes intake (HTTP, signature,
//! payload) → ingest (claim, deadline, lease) → pipeline (rules → cards) →
//! delivery (sent records, circuits, parking) → platforms, and the answer comes
//! back the same way as typed outcomes. Ingest and delivery both keep their
//! records in dedupe; the prober in delivery replays parked cards on its own
//! schedule, and `app` wires everything from `config`.

pub mod app;
pub mod campaign;
pub mod card;
pub mod cli;
pub mod commands;
pub mod config;
pub mod dedupe;
pub mod delivery;
pub mod destination;
pub mod digest;
pub mod ingest;
pub mod intake;
pub mod pipeline;
pub mod platforms;
pub mod post;
pub mod rules;
pub mod secret;
pub mod telemetry;
pub mod triage;
pub mod waves;
