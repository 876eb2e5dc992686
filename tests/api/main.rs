//! API tests: the real router over real HTTP, with real Redis where it
//! matters. One test binary (see helpers.rs for `spawn_app`).

mod bounded;
mod chaos;
mod chaos_proxy;
mod circuits;
mod dead_letters;
mod dedupe_redis;
mod delivery;
mod discord;
mod escalate;
mod fake_discord;
mod fake_slack;
mod grouped;
mod helpers;
mod intake;
mod limits;
mod metrics;
mod nocard;
mod redis_format;
mod redis_ops;
mod replicas;
mod slack;
mod stats;
mod triage;
mod wave_load;
mod waves;
