//! Intake: the HTTP surface. Turns a raw request into a verified
//! [`Post`](crate::post::Post), hands it to the ingest service
//! ([`crate::ingest`]: claim, process, record) and answers Cativa from the
//! outcome.
//!
//! Order of checks, cheapest and least revealing first: body size → signature
//! (on raw bytes) → execution ID → payload → tenant binding → ingest (dedupe
//! claim → pipeline). Only a verified request learns anything about its
//! payload.

pub mod capture;
pub mod payload;
pub mod routes;
pub mod signature;

pub use routes::{AppState, admin_routes, public_routes};
