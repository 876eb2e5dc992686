//! `[capture]`: where `serve` appends every verified post body (off unless
//! `file` is set), and the size at which it stops.

use std::path::PathBuf;

use serde::Deserialize;

use super::loader::Loader;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCapture {
    file: Option<PathBuf>,
    max_mb: Option<u64>,
}

/// Set only when `[capture] file` is: the corpus `modbridge backtest` reads.
/// It holds personal data (emails, phone numbers, post content).
#[derive(Debug, Clone)]
pub struct CaptureSettings {
    pub file: PathBuf,
    /// Appending stops once the file holds this many bytes.
    pub max_bytes: u64,
}

impl CaptureSettings {
    pub(super) fn build(raw: RawCapture, l: &mut Loader) -> Option<Self> {
        let file = l
            .var("MODBRIDGE_CAPTURE_FILE")
            .map(PathBuf::from)
            .or(raw.file)?;
        let max_mb = l.whole_number("MODBRIDGE_CAPTURE_MAX_MB", raw.max_mb, 1024);
        if max_mb == 0 {
            let key = l.key("capture.max_mb");
            l.problem(format!(
                "{key} must be at least 1 (remove [capture] file to switch capture off)"
            ));
        }
        Some(Self {
            file,
            max_bytes: max_mb.saturating_mul(1024 * 1024),
        })
    }
}
