//! `[delivery]`: backlog per target, probing of broken targets and the time
//! one platform call may take.

use std::time::Duration;

use serde::Deserialize;

use super::loader::Loader;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDelivery {
    backlog: Option<usize>,
    probe_interval_secs: Option<u64>,
    timeout_secs: Option<u64>,
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
}

impl DeliverySettings {
    pub(super) fn build(raw: RawDelivery, l: &mut Loader) -> Self {
        let probe_interval_secs =
            l.whole_number("MODBRIDGE_PROBE_INTERVAL_SECS", raw.probe_interval_secs, 60);
        let timeout_secs = l.whole_number("MODBRIDGE_DELIVERY_TIMEOUT_SECS", raw.timeout_secs, 10);
        Self {
            backlog: raw.backlog.unwrap_or(64).max(1),
            probe_interval: Duration::from_secs(probe_interval_secs.max(1)),
            timeout: Duration::from_secs(timeout_secs.max(1)),
        }
    }
}
