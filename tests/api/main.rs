//! API tests: the real router over real HTTP, with real Redis where it
//! matters. One test binary (see helpers.rs for `spawn_app`).

mod dedupe_redis;
mod fake_slack;
mod discord;
mod fake_discord;
mod delivery;
mod helpers;
mod intake;
mod slack;
