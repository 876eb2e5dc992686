//! Sinks: where cards leave modbridge. Each platform's quirks (escaping,
//! limits, error codes) live in its own file here and nowhere else.
//!
//! Today: the dry-run sink (cards as JSON lines on standard output). Slack and
//! Discord sinks plug in behind [`Sinks`].

use std::io::Write;

use crate::card::Card;
use crate::destination::Target;

/// Why a card was not delivered, and what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Worth retrying later (5xx, timeout, 429, connection).
    #[error("{platform} is unavailable: {detail}")]
    Transient {
        platform: &'static str,
        detail: String,
    },
    /// Retrying as-is will not help until someone fixes the configuration.
    #[error("{platform} destination is misconfigured: {detail}")]
    Config {
        platform: &'static str,
        detail: String,
    },
}

/// Prints each card as one JSON object per line on standard output.
#[derive(Debug, Clone, Default)]
pub struct DryRun;

impl DryRun {
    pub fn deliver(&self, card: &Card) -> Result<(), SinkError> {
        let line = serde_json::to_string(card).map_err(|e| SinkError::Transient {
            platform: "stdout",
            detail: e.to_string(),
        })?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| SinkError::Transient {
                platform: "stdout",
                detail: e.to_string(),
            })
    }
}

/// Keeps cards in memory: for tests and for embedding modbridge as a library.
/// Can be told to fail the next deliveries, to exercise retries.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    cards: std::sync::Arc<std::sync::Mutex<Vec<Card>>>,
    fail_next: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Recorder {
    pub fn cards(&self) -> Vec<Card> {
        self.cards.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The next `n` deliveries fail as transient errors.
    pub fn fail_next(&self, n: usize) {
        self.fail_next.store(n, std::sync::atomic::Ordering::SeqCst);
    }

    fn deliver(&self, card: &Card) -> Result<(), SinkError> {
        use std::sync::atomic::Ordering;
        let failed = self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failed {
            return Err(SinkError::Transient {
                platform: "recorder",
                detail: "told to fail".into(),
            });
        }
        if let Ok(mut cards) = self.cards.lock() {
            cards.push(card.clone());
        }
        Ok(())
    }
}

/// Every sink the running service can deliver to.
#[derive(Debug, Clone)]
pub enum Sinks {
    /// `--dry-run`: every card goes to standard output.
    DryRun(DryRun),
    /// Cards kept in memory.
    Recorder(Recorder),
    /// Real platforms. None is built yet: deliveries fail as configuration
    /// errors (and `serve` refuses to start without `--dry-run` when rules use
    /// a destination).
    Live,
}

impl Sinks {
    pub async fn deliver(&self, card: &Card, target: &Target) -> Result<(), SinkError> {
        match self {
            Sinks::DryRun(d) => d.deliver(card),
            Sinks::Recorder(r) => r.deliver(card),
            Sinks::Live => Err(SinkError::Config {
                platform: target.platform(),
                detail: format!(
                    "delivery to {} is not built into this version of modbridge yet; run with --dry-run",
                    target.platform()
                ),
            }),
        }
    }
}
