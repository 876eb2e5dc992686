//! Intake: the HTTP surface. Turns a raw request into a verified
//! [`Post`](crate::post::Post), hands it to the ingest service
//! ([`crate::ingest`]: claim, process, record) and answers Cativa from the
//! outcome.
//!
//! Order of checks, cheapest and least revealing first: room (`max_in_flight`)
//! → declared body size → signature header (present, well-formed, fresh)
//! → body (size, `body_timeout_secs`) → signature (on raw bytes, one HMAC per
//! candidate secret) → execution ID → payload → tenant binding → ingest
//! (dedupe claim → pipeline). Only a verified request learns anything about
//! its payload. `limits` keeps slow, idle and numerous clients in bounds.

pub mod capture;
pub mod limits;
pub mod payload;
pub mod routes;
pub mod signature;

pub use routes::{AppState, admin_routes, public_routes};
