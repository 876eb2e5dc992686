//! `[dedupe]`: how long an event is claimed and remembered, and where.

use std::time::Duration;

use serde::Deserialize;

use super::loader::Loader;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDedupe {
    lease_secs: Option<u64>,
    done_ttl_days: Option<u64>,
    memory_capacity: Option<usize>,
    key_prefix: Option<String>,
}

#[derive(Debug, Clone)]
pub struct DedupeSettings {
    pub lease: Duration,
    pub done_ttl: Duration,
    pub memory_capacity: usize,
    pub key_prefix: String,
}

impl DedupeSettings {
    /// `deadline`: the intake deadline; the lease outlives it by 5 s unless set.
    pub(super) fn build(raw: RawDedupe, deadline: Duration, l: &mut Loader) -> Self {
        let lease_secs = raw.lease_secs.unwrap_or(deadline.as_secs() + 5).max(1);
        let done_ttl_days = l
            .whole_number("MODBRIDGE_DEDUPE_TTL_DAYS", raw.done_ttl_days, 7)
            .max(1);
        Self {
            lease: Duration::from_secs(lease_secs),
            done_ttl: Duration::from_secs(done_ttl_days * 86_400),
            memory_capacity: raw.memory_capacity.unwrap_or(100_000),
            key_prefix: raw.key_prefix.unwrap_or_else(|| "modbridge:".into()),
        }
    }
}
