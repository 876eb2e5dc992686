//! Intake: the HTTP surface. Turns a raw request into a verified, first-seen
//! [`Post`](crate::post::Post) and answers Cativa from what the pipeline did.
//!
//! Order of checks, cheapest and least revealing first: body size → signature
//! (on raw bytes) → execution ID → payload → tenant binding → dedupe claim →
//! pipeline. Only a verified request learns anything about its payload.

pub mod inflight;
pub mod payload;
pub mod routes;
pub mod signature;

pub use routes::{AppState, admin_routes, public_routes};
