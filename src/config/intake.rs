//! `[intake]`: how much of a webhook request modbridge reads, how old a
//! signature may be, and how long a request may wait for its work.

use std::time::Duration;

use serde::Deserialize;

use super::loader::Loader;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIntake {
    max_body_bytes: Option<usize>,
    signature_tolerance_secs: Option<u64>,
    deadline_secs: Option<u64>,
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
        Self {
            max_body_bytes,
            signature_tolerance_secs,
            deadline: Duration::from_secs(deadline_secs),
        }
    }
}
