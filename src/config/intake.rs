//! `[intake]`: how much of a webhook request modbridge reads, how old a
//! signature may be, how long a request may wait for its work, and the limits
//! that keep slow or idle clients from holding the service (timeouts,
//! connection and in-flight caps).

use std::time::Duration;

use serde::Deserialize;

use super::loader::Loader;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIntake {
    max_body_bytes: Option<usize>,
    signature_tolerance_secs: Option<u64>,
    deadline_secs: Option<u64>,
    header_timeout_secs: Option<u64>,
    body_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    max_connections: Option<u64>,
    max_in_flight: Option<u64>,
    max_processing_secs: Option<u64>,
}

/// Limits applied to each incoming webhook request.
#[derive(Debug, Clone, Copy)]
pub struct IntakeSettings {
    /// Larger bodies are refused with 413.
    pub max_body_bytes: usize,
    /// How far a signature's timestamp may be from now.
    pub signature_tolerance_secs: u64,
    /// How long a request waits for its work before the sender is told to retry.
    pub deadline: Duration,
    /// From a new connection's start (or a kept-alive request's first byte)
    /// to the end of the request's headers; past it the connection is closed.
    pub header_timeout: Duration,
    /// How long reading one request's body may take; past it: 408.
    pub body_timeout: Duration,
    /// A kept-alive connection with no traffic between requests for this long
    /// is closed.
    pub idle_timeout: Duration,
    /// Open connections on the public listener; more wait in the kernel's
    /// backlog until one closes.
    pub max_connections: usize,
    /// Webhook requests handled at once; more are answered 503 + `Retry-After`.
    pub max_in_flight: usize,
    /// The longest one execution's work may run (past the request's
    /// deadline, in the background); then it stops and releases its lease.
    pub max_processing: Duration,
}

impl IntakeSettings {
    pub(super) fn build(raw: RawIntake, l: &mut Loader) -> Self {
        let max_body_bytes = l.whole_number(
            "MODBRIDGE_MAX_BODY_BYTES",
            raw.max_body_bytes.map(|n| n as u64),
            1024 * 1024,
        ) as usize;
        let signature_tolerance_secs = l.whole_number(
            "MODBRIDGE_SIGNATURE_TOLERANCE_SECS",
            raw.signature_tolerance_secs,
            300,
        );
        let deadline_secs = l.whole_number("MODBRIDGE_DEADLINE_SECS", raw.deadline_secs, 5);
        if deadline_secs == 0 {
            l.problem("intake.deadline_secs must be at least 1");
        }
        let mut at_least_one = |var: &str, key: &str, file: Option<u64>, default: u64| {
            let n = l.whole_number(var, file, default);
            if n == 0 {
                l.problem(format!("intake.{key} ({var}) must be at least 1"));
                return default;
            }
            n
        };
        let header_timeout = at_least_one(
            "MODBRIDGE_HEADER_TIMEOUT_SECS",
            "header_timeout_secs",
            raw.header_timeout_secs,
            10,
        );
        let body_timeout = at_least_one(
            "MODBRIDGE_BODY_TIMEOUT_SECS",
            "body_timeout_secs",
            raw.body_timeout_secs,
            10,
        );
        let idle_timeout = at_least_one(
            "MODBRIDGE_IDLE_TIMEOUT_SECS",
            "idle_timeout_secs",
            raw.idle_timeout_secs,
            60,
        );
        let max_connections = at_least_one(
            "MODBRIDGE_MAX_CONNECTIONS",
            "max_connections",
            raw.max_connections,
            DEFAULT_MAX_CONNECTIONS,
        );
        let max_in_flight = at_least_one(
            "MODBRIDGE_MAX_IN_FLIGHT",
            "max_in_flight",
            raw.max_in_flight,
            DEFAULT_MAX_IN_FLIGHT,
        );
        let max_processing = at_least_one(
            "MODBRIDGE_MAX_PROCESSING_SECS",
            "max_processing_secs",
            raw.max_processing_secs,
            60,
        );
        Self {
            max_processing: Duration::from_secs(max_processing),
            max_body_bytes,
            signature_tolerance_secs,
            deadline: Duration::from_secs(deadline_secs),
            header_timeout: Duration::from_secs(header_timeout),
            body_timeout: Duration::from_secs(body_timeout),
            idle_timeout: Duration::from_secs(idle_timeout),
            max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
            max_in_flight: usize::try_from(max_in_flight).unwrap_or(usize::MAX),
        }
    }
}

/// `intake.max_connections` unless set: far above a burst of retries, well
/// under what a raised open-files limit allows.
pub const DEFAULT_MAX_CONNECTIONS: u64 = 8192;
/// `intake.max_in_flight` unless set.
pub const DEFAULT_MAX_IN_FLIGHT: u64 = 512;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use crate::config::Settings;

    const SECRET: &str = "whsec_3f9a1c7e5b2d4086af1e9c3b7d5a2e4f60718293a4b5c6d7e8f9012345678abc";

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        let mut env: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.insert("CATIVA_WEBHOOK_SECRET".into(), SECRET.into());
        Settings::load(None, false, &env).map_err(|e| e.to_string())
    }

    #[test]
    fn max_processing_defaults_to_a_minute_and_is_at_least_one_second() {
        let s = load(&[]).unwrap();
        assert_eq!(s.intake.max_processing, Duration::from_secs(60));
        let s = load(&[("MODBRIDGE_MAX_PROCESSING_SECS", "5")]).unwrap();
        assert_eq!(s.intake.max_processing, Duration::from_secs(5));
        let err = load(&[("MODBRIDGE_MAX_PROCESSING_SECS", "0")]).unwrap_err();
        assert_eq!(
            err,
            "intake.max_processing_secs (MODBRIDGE_MAX_PROCESSING_SECS) must be at least 1"
        );
    }
}
