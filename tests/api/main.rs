//! API tests: the real router over real HTTP, with real Redis where it
//! matters. One test binary (see helpers.rs for `spawn_app`).

mod dedupe_redis;
mod helpers;
mod intake;
