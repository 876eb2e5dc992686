//! Sinks: where cards leave modbridge. Each platform's quirks (escaping,
//! limits, error codes) live in its own file here and nowhere else.
//!
//! Today: the dry-run sink (one JSON line per card on standard output: the
//! Slack `chat.postMessage` body for Slack destinations, the neutral card
//! otherwise), the in-memory recorder, and Slack ([`slack`]). Discord plugs in
//! behind [`Sinks`] next.

pub mod discord;
mod pacer;
mod recorder;
pub mod slack;
mod text;

pub use recorder::Recorder;

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
            Target::Discord(_) | Target::DiscordWebhook { .. } => {
                Ok(discord::payload(card, target, chrono::Utc::now()))
            }
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

/// The real platforms, built once at start from the settings.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// `None` when `SLACK_BOT_TOKEN` is not set.
    pub slack: Option<SlackSink>,
    /// `None` when neither `DISCORD_BOT_TOKEN` nor a webhook URL is set.
    pub discord: Option<discord::DiscordSink>,
}

impl Live {
    pub fn from_settings(settings: &Settings) -> Result<Self, String> {
        let slack = match &settings.slack_bot_token {
            Some(token) => Some(
                SlackSink::new(token.expose(), &settings.slack_api_url)?
                    .with_call_timeout(settings.delivery.timeout),
            ),
            None => None,
        };
        let webhooks: std::collections::BTreeMap<String, String> = settings
            .discord_webhooks
            .iter()
            .map(|(var, url)| (var.clone(), url.expose().to_owned()))
            .collect();
        let discord = if settings.discord_bot_token.is_some() || !webhooks.is_empty() {
            Some(discord::DiscordSink::with_call_timeout(
                settings.discord_bot_token.as_ref().map(|t| t.expose()),
                &settings.discord_api_url,
                &webhooks,
                settings.delivery.timeout,
            )?)
        } else {
            None
        };
        Ok(Self { slack, discord })
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
            Sinks::Recorder(r) => r.deliver(card, target).await,
            Sinks::Live(live) => match (target, &live.slack) {
                (Target::Slack(channel), Some(slack)) => {
                    slack.deliver(card, channel).await.map(|_| ())
                }
                (Target::Slack(_), None) => Err(SinkError::Config {
                    platform: "slack",
                    detail: "SLACK_BOT_TOKEN is not set".into(),
                }),
                (_, _) => match &live.discord {
                    Some(d) => d.deliver(card, target).await.map(|_| ()),
                    None => Err(SinkError::Config {
                        platform: "discord",
                        detail: "neither DISCORD_BOT_TOKEN nor the webhook's URL variable is set"
                            .into(),
                    }),
                },
            },
        }
    }

    /// Configuration problems the sinks have seen (for `/readyz`).
    pub fn problems(&self) -> Vec<String> {
        match self {
            Sinks::Live(live) => live
                .slack
                .iter()
                .flat_map(|s| s.problems())
                .chain(live.discord.iter().flat_map(|d| d.problems()))
                .collect(),
            _ => Vec::new(),
        }
    }
}
