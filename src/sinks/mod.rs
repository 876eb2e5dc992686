//! Sinks: where cards leave modbridge. Each platform's quirks (escaping,
//! limits, error codes) live in its own file here and nowhere else.
//!
//! Today: the dry-run sink (one JSON line per card on standard output: the
//! Slack `chat.postMessage` body for Slack destinations, the neutral card
//! otherwise), the in-memory recorder, and Slack ([`slack`]). Discord plugs in
//! behind [`Sinks`] next.

pub mod slack;

use std::io::Write;
use std::time::Duration;

use crate::card::Card;
use crate::config::Settings;
use crate::destination::Target;
use slack::SlackSink;

/// Why a card was not delivered, and what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Worth retrying later (5xx, timeout, 429, connection).
    #[error("{platform} is unavailable: {detail}")]
    Transient {
        platform: &'static str,
        detail: String,
        /// How long the platform asked us to wait (HTTP 429 `Retry-After`).
        retry_after: Option<Duration>,
    },
    /// Retrying as-is will not help until someone fixes the configuration.
    #[error("{platform} destination is misconfigured: {detail}")]
    Config {
        platform: &'static str,
        detail: String,
    },
    /// The platform refused this card as malformed: sending it again as-is
    /// will fail again (a modbridge bug, not an outage or a setting).
    #[error("{platform} refused the card: {detail}")]
    Rejected {
        platform: &'static str,
        detail: String,
    },
}

impl SinkError {
    /// How long the platform asked us to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SinkError::Transient { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Prints each card as one JSON object per line on standard output: for a
/// Slack destination the exact `chat.postMessage` body that would be sent.
#[derive(Debug, Clone, Default)]
pub struct DryRun;

impl DryRun {
    pub fn deliver(&self, card: &Card, target: &Target) -> Result<(), SinkError> {
        let json = match target {
            Target::Slack(channel) => {
                Ok(slack::payload(card, channel.as_str(), chrono::Utc::now()))
            }
            _ => serde_json::to_value(card),
        };
        let line =
            json.and_then(|j| serde_json::to_string(&j))
                .map_err(|e| SinkError::Transient {
                    platform: "stdout",
                    detail: e.to_string(),
                    retry_after: None,
                })?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| SinkError::Transient {
                platform: "stdout",
                detail: e.to_string(),
                retry_after: None,
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
                retry_after: None,
            });
        }
        if let Ok(mut cards) = self.cards.lock() {
            cards.push(card.clone());
        }
        Ok(())
    }
}

/// The real platforms, built once at start from the settings.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// `None` when `SLACK_BOT_TOKEN` is not set.
    pub slack: Option<SlackSink>,
}

impl Live {
    pub fn from_settings(settings: &Settings) -> Result<Self, String> {
        let slack = match &settings.slack_bot_token {
            Some(token) => Some(SlackSink::new(token.expose(), &settings.slack_api_url)?),
            None => None,
        };
        Ok(Self { slack })
    }
}

/// Every sink the running service can deliver to.
#[derive(Debug, Clone)]
pub enum Sinks {
    /// `--dry-run`: every card goes to standard output.
    DryRun(DryRun),
    /// Cards kept in memory.
    Recorder(Recorder),
    /// Real platforms: Slack when its token is set. Discord is not built yet:
    /// its deliveries fail as configuration errors (and `serve` refuses to
    /// start without `--dry-run` when rules send to Discord).
    Live(Live),
}

impl Sinks {
    /// The sinks `serve` uses: standard output for a dry run, else the platforms.
    pub fn for_settings(settings: &Settings) -> Result<Self, String> {
        if settings.dry_run {
            Ok(Sinks::DryRun(DryRun))
        } else {
            Live::from_settings(settings).map(Sinks::Live)
        }
    }

    pub async fn deliver(&self, card: &Card, target: &Target) -> Result<(), SinkError> {
        match self {
            Sinks::DryRun(d) => d.deliver(card, target),
            Sinks::Recorder(r) => r.deliver(card),
            Sinks::Live(live) => match (target, &live.slack) {
                (Target::Slack(channel), Some(slack)) => {
                    slack.deliver(card, channel).await.map(|_| ())
                }
                (Target::Slack(_), None) => Err(SinkError::Config {
                    platform: "slack",
                    detail: "SLACK_BOT_TOKEN is not set".into(),
                }),
                _ => Err(SinkError::Config {
                    platform: target.platform(),
                    detail: format!(
                        "delivery to {} is not built into this version of modbridge yet; run with --dry-run",
                        target.platform()
                    ),
                }),
            },
        }
    }

    /// Configuration problems the sinks have seen (for `/readyz`).
    pub fn problems(&self) -> Vec<String> {
        match self {
            Sinks::Live(Live { slack: Some(s) }) => s.problems(),
            _ => Vec::new(),
        }
    }
}
