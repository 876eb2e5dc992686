//! `[delivery]`: backlog per target, probing of broken targets, the time
//! one platform call may take and how long parked cards and dead letters
//! are kept.

use std::time::Duration;

use serde::Deserialize;

use super::loader::Loader;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDelivery {
    backlog: Option<usize>,
    probe_interval_secs: Option<u64>,
    timeout_secs: Option<u64>,
    parked_ttl_days: Option<u64>,
}

/// `[delivery]`: plain values; delivery builds its runtime policy from them.
#[derive(Debug, Clone, Copy)]
pub struct DeliverySettings {
    /// Cards in flight at once per target; more are refused with 503.
    pub backlog: usize,
    /// How often a broken target is probed.
    pub probe_interval: Duration,
    /// The longest one platform HTTP call may take.
    pub timeout: Duration,
    /// How long parked cards and dead letters are kept (`parked_ttl_days`,
    /// default 7); a parked card still undelivered then is lost.
    pub parked_ttl: Duration,
}

impl DeliverySettings {
    pub(super) fn build(raw: RawDelivery, l: &mut Loader) -> Self {
        let probe_interval_secs =
            l.whole_number("MODBRIDGE_PROBE_INTERVAL_SECS", raw.probe_interval_secs, 60);
        let timeout_secs = l.whole_number("MODBRIDGE_DELIVERY_TIMEOUT_SECS", raw.timeout_secs, 10);
        let parked_ttl_days = l.whole_number("MODBRIDGE_PARKED_TTL_DAYS", raw.parked_ttl_days, 7);
        if parked_ttl_days == 0 {
            l.problem(
                "delivery.parked_ttl_days must be at least 1 (days parked cards and dead letters are kept)"
                    .to_owned(),
            );
        }
        Self {
            backlog: raw.backlog.unwrap_or(64).max(1),
            probe_interval: Duration::from_secs(probe_interval_secs.max(1)),
            timeout: Duration::from_secs(timeout_secs.max(1)),
            parked_ttl: Duration::from_secs(parked_ttl_days.max(1).saturating_mul(86_400)),
        }
    }
}
