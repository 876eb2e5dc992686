//! The platform boundary: everything modbridge does with a chat platform goes
//! through here, and everything platform-specific lives in that platform's
//! folder ([`slack`], [`discord`]) and nowhere else: its crate, endpoints,
//! scopes, limits, escaping, mention syntax, environment variables and error
//! codes.
//!
//! The boundary is a closed enum, not a trait object: [`Target`] has one
//! variant per delivery path and every operation below is one `match` that
//! delegates into the platform's folder. A third platform adds variants and
//! the compiler lists every arm it must fill in: [`Target`]'s parsing, text
//! form and credentials, [`render`], [`render_grouped`], [`Platforms::post`],
//! [`Platforms::update`], [`Platforms::post_grouped`], [`Platforms::update_grouped`],
//! [`Platforms::from_env`], [`Platforms::preflight`], [`Interactions`].
//!
//! Shared machinery: [`present`] builds the card's text pieces once (each
//! platform only marks them up), `pacer` paces channels, `text` cuts escaped
//! text on grapheme boundaries, [`Failure`] is the classified outcome of one
//! platform call and [`Problems`] remembers configuration problems for
//! `/readyz`.
//!
//! Besides the platforms, [`Sinks`] can print cards ([`DryRun`]) or keep them
//! in memory ([`Recorder`]).

pub mod discord;
mod dry_run;
mod interaction;
mod pacer;
pub mod present;
mod recorder;
pub mod slack;
mod target;
mod text;

pub use dry_run::DryRun;
pub use interaction::{
    Inbound, Interaction, InteractionError, InteractionReply, Interactions, ModeratorAction,
    Verified, answer as interaction_answer, is_case_id,
};
pub use recorder::Recorder;
pub use target::Target;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::card::Card;
use crate::config::Env;

/// Why a card was not delivered, and what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// Worth retrying later (5xx, timeout, 429, connection).
    #[error("{platform} is unavailable: {detail}")]
    Transient {
        platform: &'static str,
        detail: String,
        /// How long the platform asked us to wait (HTTP 429 `Retry-After`).
        retry_after: Option<Duration>,
    },
    /// No usable answer after the request may have reached the platform:
    /// none within the call's deadline (`delivery.timeout_secs`), or (Slack)
    /// the connection broke after the request was written, or a 2xx that
    /// cannot be read. The platform may or may not have the card. Worth
    /// retrying, but the retry may duplicate it unless it looks first.
    #[error("{platform} did not answer in time: {detail}")]
    TimedOut {
        platform: &'static str,
        detail: String,
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

impl PlatformError {
    /// How long the platform asked us to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            PlatformError::Transient { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// One platform call's failure, classified by the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// HTTP 429 (or Slack's `ratelimited`): wait this long, when the platform said.
    RateLimited(Option<Duration>),
    /// 5xx, connection, timeouts, unknown codes: worth retrying.
    Transient(String),
    /// No usable answer within the call's deadline (or the connection broke
    /// after the request was written): the request may have arrived.
    TimedOut(String),
    /// Fix the token, scopes, permissions or channel: retrying as-is will not help.
    Config { code: String, fix: String },
    /// The platform refused this message as malformed (a modbridge bug).
    /// `code` is for metrics, `detail` for people.
    Rejected { code: String, detail: String },
}

impl Failure {
    pub fn into_error(self, platform: &'static str) -> PlatformError {
        match self {
            Failure::RateLimited(after) => PlatformError::Transient {
                platform,
                detail: match after {
                    Some(a) => format!("rate limited: retry after {} s", a.as_secs()),
                    None => "rate limited (HTTP 429)".into(),
                },
                retry_after: after,
            },
            Failure::Transient(detail) => PlatformError::Transient {
                platform,
                detail,
                retry_after: None,
            },
            Failure::TimedOut(detail) => PlatformError::TimedOut { platform, detail },
            Failure::Config { code, fix } => PlatformError::Config {
                platform,
                detail: format!("{code}: {fix}"),
            },
            Failure::Rejected { detail, .. } => PlatformError::Rejected {
                platform,
                detail: format!("{detail}; this is a modbridge bug, please report it"),
            },
        }
    }

    /// One line for an operator (`check --live`).
    pub fn describe(&self, platform: &str) -> String {
        match self {
            Failure::Config { code, fix } => format!("{code}: {fix}"),
            Failure::RateLimited(_) => {
                format!("rate limited by {platform}; try again in a minute")
            }
            Failure::Transient(d) | Failure::TimedOut(d) => format!("{d}; try again"),
            Failure::Rejected { detail, .. } => detail.clone(),
        }
    }

    /// The `code` label of `modbridge_<platform>_errors_total`.
    fn metric_code(&self) -> String {
        match self {
            Failure::RateLimited(_) => "ratelimited".to_owned(),
            Failure::Transient(_) => "transient".to_owned(),
            Failure::TimedOut(_) => "timeout".to_owned(),
            Failure::Config { code, .. } | Failure::Rejected { code, .. } => code.clone(),
        }
    }
}

/// Configuration problems seen on the last attempt per place (channel,
/// webhook), cleared by the next success: what `/readyz` reports.
#[derive(Debug, Default)]
pub struct Problems(Mutex<BTreeMap<String, String>>);

impl Problems {
    /// Records how a call to `place` ended, counts a failure in
    /// `modbridge_<platform>_errors_total{code}` and logs what to fix, then
    /// turns the outcome into the boundary's error.
    pub fn settle<T>(
        &self,
        platform: &'static str,
        place: &str,
        result: Result<T, Failure>,
    ) -> Result<T, PlatformError> {
        let failure = match result {
            Ok(value) => {
                if let Ok(mut p) = self.0.lock() {
                    p.remove(place);
                }
                return Ok(value);
            }
            Err(failure) => failure,
        };
        let counter = match platform {
            slack::PLATFORM => "modbridge_slack_errors_total",
            _ => "modbridge_discord_errors_total",
        };
        metrics::counter!(counter, "code" => failure.metric_code()).increment(1);
        match &failure {
            Failure::Config { code, fix } => {
                tracing::warn!(destination = %place, code = %code, "{platform} destination misconfigured: {fix}");
                if let Ok(mut p) = self.0.lock() {
                    p.insert(place.to_owned(), format!("{code}: {fix}"));
                }
            }
            Failure::Rejected { detail, .. } => tracing::warn!(destination = %place, "{detail}"),
            _ => {}
        }
        Err(failure.into_error(platform))
    }

    /// `place: code: fix`, one per place.
    pub fn list(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|p| p.iter().map(|(at, why)| format!("{at}: {why}")).collect())
            .unwrap_or_default()
    }
}

/// Where a posted card is, so that it can be edited later. Never holds a
/// webhook URL or token: a webhook message is found through the environment
/// variable that holds the URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "platform", rename_all = "snake_case")]
pub enum MessageRef {
    Slack { channel: String, ts: String },
    Discord { channel: u64, message_id: u64 },
    DiscordWebhook { env: String, message_id: u64 },
}

/// A card's mark on the platform, so that it can be found after a lost
/// answer: the first 32 hex digits (128 bits) of the SHA-256 of its record
/// key. Platforms show it to anyone who can read the channel (Slack message
/// metadata is readable across the workspace), so it carries no ID: the key
/// (customer, post, channel) cannot be read back from it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CardTag(String);

impl CardTag {
    /// The tag of the card whose record key is `key`.
    pub fn of(key: &str) -> Self {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(key.as_bytes());
        Self(hex::encode(&digest[..16]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A tag as kept in a record (`as_str`), when it is one.
    pub fn from_stored(s: &str) -> Option<Self> {
        (s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| Self(s.to_owned()))
    }
}

/// When the earlier, unconfirmed attempts at a card ran (by the dedupe
/// store's clock): a lookup searches from the first one's start to the last
/// one's end, with a margin for clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Window {
    /// From `since` to `until`, in ms since the Unix epoch (the dedupe
    /// store's clock); `None` when out of range.
    pub fn between_ms(since: u64, until: u64) -> Option<Window> {
        let at = |ms: u64| DateTime::from_timestamp_millis(i64::try_from(ms).ok()?);
        Some(Window {
            from: at(since)?,
            to: at(until)?,
        })
    }
}

/// What a platform says about a card an earlier attempt may have posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// It is there: record it sent, do not send it again.
    Found(MessageRef),
    /// Every message of the window was read and it is not among them: send.
    Absent,
    /// The lookup failed (429, an error, an answer that cannot be read, a
    /// window longer than the bound): nothing is known; do not send now.
    Unknown {
        detail: String,
        retry_after: Option<Duration>,
    },
    /// This target cannot be looked up (no history scope, the bot not in the
    /// channel, a platform without lookups): send again, a possible duplicate.
    Unavailable(String),
}

/// A reminder posted under a copy of a case nobody claimed (issue #13's
/// escalation): Slack replies in the card's thread, a Discord bot replies to
/// its message, and a Discord incoming webhook (which cannot reply) posts a
/// new message with the post's link. Only the configured mention pings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reminder {
    /// How long the case has been open.
    pub after: Duration,
    /// The destination's configured mention (checked again by each platform:
    /// anything not in its syntax pings nobody).
    pub mention: Option<String>,
    /// The post's link (only webhook messages carry it: a reply sits under
    /// the card, which has it).
    pub link: Option<String>,
}

/// What `explain` and `--dry-run` print for `card` sent to `target`: the exact
/// request body (`chat.postMessage`, a Discord message or webhook execution).
pub fn render(card: &Card, target: &Target, now: DateTime<Utc>) -> serde_json::Value {
    match target {
        Target::Slack(channel) => slack::payload(card, channel.as_str(), now),
        Target::Discord(_) | Target::DiscordWebhook { .. } => discord::payload(card, target, now),
    }
}

/// What `--dry-run` prints for a grouped message (a wave's digest, a
/// campaign card): the exact body its platform would receive
/// (`chat.postMessage`, a Discord message or webhook execution).
pub fn render_grouped(grouped: &crate::digest::Grouped, now: DateTime<Utc>) -> serde_json::Value {
    match grouped.target() {
        Target::Slack(channel) => slack::grouped(grouped, channel.as_str(), now),
        Target::Discord(_) | Target::DiscordWebhook { .. } => {
            discord::grouped_payload(grouped, None)
        }
    }
}

/// What `explain` calls the body it prints for `target`.
pub fn body_name(target: &Target) -> &'static str {
    match target {
        Target::Slack(_) => "Slack chat.postMessage body",
        Target::Discord(_) => "Discord create-message body",
        Target::DiscordWebhook { .. } => "Discord webhook execution body",
    }
}

/// What `check --live` asks of each platform.
#[derive(Debug, Clone, Copy)]
pub struct Preflight<'a> {
    /// Every destination (name, target); each platform checks its own.
    pub destinations: &'a [(String, Target)],
    /// Post a test card to each destination.
    pub send_test: bool,
}

/// The real platforms, built once at start from the environment. A platform
/// without its credentials is absent: posting to it is a configuration error.
#[derive(Debug, Clone, Default)]
pub struct Platforms {
    slack: Option<slack::Client>,
    discord: Option<discord::Client>,
}

impl Platforms {
    /// Reads each platform's variables (`SLACK_BOT_TOKEN`, `SLACK_API_URL`,
    /// `DISCORD_BOT_TOKEN`, `DISCORD_API_URL`, and the webhook URL variable of
    /// every Discord webhook target in `targets`) and builds the clients, each
    /// HTTP call bounded by `timeout`. Returns every problem found.
    pub fn from_env<'a>(
        env: &dyn Env,
        targets: impl IntoIterator<Item = &'a Target>,
        timeout: Duration,
    ) -> Result<Self, Vec<String>> {
        let targets: Vec<&Target> = targets.into_iter().collect();
        let mut errors = Vec::new();
        let slack = slack::Client::from_env(env, timeout).unwrap_or_else(|e| {
            errors.push(e);
            None
        });
        let hooks = targets.iter().filter_map(|t| match t {
            Target::DiscordWebhook { env } => Some(env.as_str()),
            _ => None,
        });
        let discord = discord::Client::from_env(env, hooks, timeout).unwrap_or_else(|e| {
            errors.extend(e);
            None
        });
        if errors.is_empty() {
            Ok(Self { slack, discord })
        } else {
            Err(errors)
        }
    }

    /// Platforms built by the caller (tests point them at fakes).
    pub fn new(slack: Option<slack::Client>, discord: Option<discord::Client>) -> Self {
        Self { slack, discord }
    }

    /// Renders and posts `card`; returns where it is, `None` when the
    /// platform accepted it with an answer that cannot be read (a delivery).
    pub async fn post(
        &self,
        card: &Card,
        target: &Target,
    ) -> Result<Option<MessageRef>, PlatformError> {
        self.post_tagged(card, target, None).await
    }

    /// [`Platforms::post`], marking the message with `tag` where the
    /// platform can find it again (Slack message metadata).
    pub async fn post_tagged(
        &self,
        card: &Card,
        target: &Target,
        tag: Option<&CardTag>,
    ) -> Result<Option<MessageRef>, PlatformError> {
        match target {
            Target::Slack(channel) => self
                .slack()?
                .deliver_tagged(card, channel, tag)
                .await
                .map(Some),
            Target::Discord(_) | Target::DiscordWebhook { .. } => {
                self.discord()?.post(card, target).await
            }
        }
    }

    /// Looks for the message tagged `tag` that an earlier attempt in
    /// `window` may have posted (Slack: `conversations.history`). Discord
    /// has no lookup: bot messages are resent with their nonce.
    pub async fn look_up(&self, target: &Target, tag: &CardTag, window: Window) -> Lookup {
        match target {
            Target::Slack(channel) => match self.slack() {
                Ok(slack) => slack.look_up(channel, tag, window).await,
                Err(e) => Lookup::Unavailable(e.to_string()),
            },
            Target::Discord(_) | Target::DiscordWebhook { .. } => {
                Lookup::Unavailable("Discord messages cannot be looked up".into())
            }
        }
    }

    /// Replaces a posted message with `card` (`chat.update`, a message edit,
    /// a webhook message edit).
    pub async fn update(&self, message: &MessageRef, card: &Card) -> Result<(), PlatformError> {
        self.update_tagged(message, card, None).await
    }

    /// [`Platforms::update`], keeping the message's `tag` (Slack replaces
    /// the metadata on `chat.update`).
    pub async fn update_tagged(
        &self,
        message: &MessageRef,
        card: &Card,
        tag: Option<&CardTag>,
    ) -> Result<(), PlatformError> {
        match message {
            MessageRef::Slack { channel, ts } => {
                self.slack()?.update_tagged(channel, ts, card, tag).await
            }
            MessageRef::Discord { .. } | MessageRef::DiscordWebhook { .. } => {
                self.discord()?.update(message, card).await
            }
        }
    }

    /// Posts a grouped message (a wave's digest, a campaign card) to its
    /// target, marked with `tag` where the platform can find it again (Slack
    /// message metadata, a Discord bot message's nonce). Returns where it
    /// is, `None` when the platform accepted it with an answer that cannot
    /// be read.
    pub async fn post_grouped(
        &self,
        grouped: &crate::digest::Grouped,
        tag: Option<&CardTag>,
    ) -> Result<Option<MessageRef>, PlatformError> {
        match grouped.target() {
            Target::Slack(channel) => self
                .slack()?
                .post_grouped(grouped, channel, tag)
                .await
                .map(Some),
            Target::Discord(_) | Target::DiscordWebhook { .. } => {
                self.discord()?.post_grouped(grouped, tag).await
            }
        }
    }

    /// Replaces a posted grouped message with `grouped`, keeping its `tag`
    /// (Slack replaces the metadata on `chat.update`). Paced behind new
    /// cards and cards' edits waiting for the same channel.
    pub async fn update_grouped(
        &self,
        message: &MessageRef,
        grouped: &crate::digest::Grouped,
        tag: Option<&CardTag>,
    ) -> Result<(), PlatformError> {
        match message {
            MessageRef::Slack { channel, ts } => {
                self.slack()?
                    .update_grouped(channel, ts, grouped, tag)
                    .await
            }
            MessageRef::Discord { .. } | MessageRef::DiscordWebhook { .. } => {
                self.discord()?.update_grouped(message, grouped).await
            }
        }
    }

    /// Posts `reminder` under the message (a Slack thread reply, a Discord
    /// reply; a new message for a Discord incoming webhook). Returns where
    /// it is when the platform said.
    pub async fn reply(
        &self,
        message: &MessageRef,
        reminder: &Reminder,
    ) -> Result<Option<MessageRef>, PlatformError> {
        match message {
            MessageRef::Slack { channel, ts } => {
                self.slack()?.reply(channel, ts, reminder).await.map(Some)
            }
            MessageRef::Discord { .. } | MessageRef::DiscordWebhook { .. } => {
                self.discord()?.reply(message, reminder).await
            }
        }
    }

    /// `check --live`: what each platform says about its credentials and
    /// every target in `destinations` (name, target); with `send_test`, a test
    /// card posted to each. One line each: `ok:`, `warning:`, `error:`, `note:`.
    pub async fn preflight(
        &self,
        destinations: &[(String, Target)],
        send_test: bool,
    ) -> Vec<String> {
        let ask = Preflight {
            destinations,
            send_test,
        };
        let mut lines = discord::preflight::run(self.discord.as_ref(), &ask).await;
        lines.extend(slack::preflight::run(self.slack.as_ref(), &ask).await);
        lines
    }

    /// Configuration problems the platforms have seen (for `/readyz`).
    pub fn problems(&self) -> Vec<String> {
        self.slack
            .iter()
            .flat_map(|s| s.problems())
            .chain(self.discord.iter().flat_map(|d| d.problems()))
            .collect()
    }

    fn slack(&self) -> Result<&slack::Client, PlatformError> {
        self.slack.as_ref().ok_or_else(|| PlatformError::Config {
            platform: slack::PLATFORM,
            detail: format!("{} is not set", slack::TOKEN_ENV),
        })
    }

    fn discord(&self) -> Result<&discord::Client, PlatformError> {
        self.discord.as_ref().ok_or_else(|| PlatformError::Config {
            platform: discord::PLATFORM,
            detail: format!(
                "neither {} nor the webhook's URL variable is set",
                discord::TOKEN_ENV
            ),
        })
    }
}

/// Every place the running service can deliver to.
#[derive(Debug, Clone)]
pub enum Sinks {
    /// `--dry-run`: every card goes to standard output.
    DryRun(DryRun),
    /// Cards kept in memory.
    Recorder(Recorder),
    /// The real platforms (Slack, Discord), each present when its credentials are set.
    Platforms(Platforms),
}

impl Sinks {
    /// The sinks `serve` uses: standard output for a dry run, else the
    /// platforms, built from `env`.
    pub fn for_settings(settings: &crate::config::Settings, env: &dyn Env) -> Result<Self, String> {
        if settings.dry_run {
            return Ok(Sinks::DryRun(DryRun));
        }
        let targets: Vec<Target> = settings
            .destinations
            .iter()
            .map(|d| d.target().clone())
            .collect();
        let env = crate::config::Layered {
            env,
            defaults: &settings.env_defaults,
        };
        Platforms::from_env(&env, &targets, settings.delivery.timeout)
            .map(Sinks::Platforms)
            .map_err(|e| e.join("\n"))
    }

    /// Delivers `card`; returns where it is when the platform said (never
    /// for the dry run and the recorder).
    pub async fn deliver(
        &self,
        card: &Card,
        target: &Target,
    ) -> Result<Option<MessageRef>, PlatformError> {
        self.deliver_tagged(card, target, None).await
    }

    /// [`Sinks::deliver`], the message marked with `tag` where the platform
    /// can find it again ([`Sinks::look_up`]).
    pub async fn deliver_tagged(
        &self,
        card: &Card,
        target: &Target,
        tag: Option<&CardTag>,
    ) -> Result<Option<MessageRef>, PlatformError> {
        match self {
            Sinks::DryRun(d) => d.deliver(card, target).map(|()| None),
            Sinks::Recorder(r) => r.deliver(card, target).await.map(|()| None),
            Sinks::Platforms(p) => p.post_tagged(card, target, tag).await,
        }
    }

    /// Replaces a posted message with `card`, keeping its `tag`
    /// ([`Platforms::update_tagged`]); the dry run and the recorder keep no
    /// messages, so there is nothing to edit.
    pub async fn update(
        &self,
        message: &MessageRef,
        card: &Card,
        tag: Option<&CardTag>,
    ) -> Result<(), PlatformError> {
        match self {
            Sinks::Platforms(p) => p.update_tagged(message, card, tag).await,
            Sinks::DryRun(_) | Sinks::Recorder(_) => Ok(()),
        }
    }

    /// Looks for a card an earlier, unconfirmed attempt may have posted
    /// ([`Platforms::look_up`]); the dry run and the recorder cannot.
    pub async fn look_up(&self, target: &Target, tag: &CardTag, window: Window) -> Lookup {
        match self {
            Sinks::Platforms(p) => p.look_up(target, tag, window).await,
            Sinks::DryRun(_) | Sinks::Recorder(_) => {
                Lookup::Unavailable("this sink keeps no messages to look up".into())
            }
        }
    }

    /// Posts `reminder` under a posted copy ([`Platforms::reply`]); the dry
    /// run prints it, the recorder keeps it.
    pub async fn reply(
        &self,
        message: &MessageRef,
        reminder: &Reminder,
    ) -> Result<Option<MessageRef>, PlatformError> {
        match self {
            Sinks::DryRun(d) => d.reply(message, reminder).map(|()| None),
            Sinks::Recorder(r) => r.reply(message, reminder).await.map(|()| None),
            Sinks::Platforms(p) => p.reply(message, reminder).await,
        }
    }

    /// Posts a grouped message (a wave's digest, a campaign card), marked
    /// with `tag` where the platform can find it again. The dry run prints
    /// it and keeps no message (`None`: it is not edited later).
    pub async fn post_grouped(
        &self,
        grouped: &crate::digest::Grouped,
        tag: Option<&CardTag>,
    ) -> Result<Option<MessageRef>, PlatformError> {
        match self {
            Sinks::DryRun(d) => d.grouped(grouped).map(|()| None),
            Sinks::Recorder(r) => r.post_grouped(grouped, grouped.target()).await.map(Some),
            Sinks::Platforms(p) => p.post_grouped(grouped, tag).await,
        }
    }

    /// Replaces a posted grouped message with `grouped` (the dry run prints
    /// it again).
    pub async fn update_grouped(
        &self,
        message: &MessageRef,
        grouped: &crate::digest::Grouped,
        tag: Option<&CardTag>,
    ) -> Result<(), PlatformError> {
        match self {
            Sinks::DryRun(d) => d.grouped(grouped),
            Sinks::Recorder(r) => r.update_grouped(message, grouped).await,
            Sinks::Platforms(p) => p.update_grouped(message, grouped, tag).await,
        }
    }

    /// Configuration problems the platforms have seen (for `/readyz`).
    pub fn problems(&self) -> Vec<String> {
        match self {
            Sinks::Platforms(p) => p.problems(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn slack_api_url_defaults_and_overrides() {
        assert!(
            slack::Client::from_env(&env(&[]), TIMEOUT)
                .unwrap()
                .is_none()
        );
        let token = ("SLACK_BOT_TOKEN", "xoxb-1");
        let c = slack::Client::from_env(&env(&[token]), TIMEOUT)
            .unwrap()
            .unwrap();
        assert_eq!(c.api_url(), "https://slack.com/api");
        assert!(!format!("{c:?}").contains("xoxb"));
        let c = slack::Client::from_env(
            &env(&[token, ("SLACK_API_URL", "http://127.0.0.1:9/api/")]),
            TIMEOUT,
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.api_url(), "http://127.0.0.1:9/api");
        let c = slack::Client::from_env(
            &env(&[token, ("SLACK_API_URL", "https://slack-gov.com/api")]),
            TIMEOUT,
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.api_url(), "https://slack-gov.com/api");
        let bad = env(&[("SLACK_API_URL", "slack.com")]);
        assert!(slack::Client::from_env(&bad, TIMEOUT).is_err());
        assert!(Platforms::from_env(&bad, [], TIMEOUT).is_err());
    }

    #[test]
    fn discord_api_url_token_and_webhooks() {
        assert!(
            discord::Client::from_env(&env(&[]), ["MODS_HOOK"], TIMEOUT)
                .unwrap()
                .is_none()
        );
        let url = "https://discord.com/api/webhooks/1/secret-part";
        let e = env(&[
            ("DISCORD_BOT_TOKEN", "bot-tok"),
            ("MODS_HOOK", url),
            ("DISCORD_API_URL", "http://127.0.0.1:9/"),
        ]);
        let c = discord::Client::from_env(&e, ["MODS_HOOK"], TIMEOUT)
            .unwrap()
            .unwrap();
        assert_eq!(c.api_url(), "http://127.0.0.1:9");
        assert!(c.has_bot());
        assert_eq!(
            c.webhook_redacted("MODS_HOOK").as_deref(),
            Some("webhooks/1/***")
        );
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("bot-tok") && !debug.contains("secret-part"),
            "{debug}"
        );
        let gw = env(&[
            ("DISCORD_BOT_TOKEN", "t"),
            ("DISCORD_API_URL", "https://gw.example"),
        ]);
        let c = discord::Client::from_env(&gw, [], TIMEOUT)
            .unwrap()
            .unwrap();
        assert_eq!(c.api_url(), "https://gw.example");
        let bad = env(&[("DISCORD_API_URL", "discord.com")]);
        assert!(discord::Client::from_env(&bad, [], TIMEOUT).is_err());
        assert!(Platforms::from_env(&bad, [], TIMEOUT).is_err());
    }

    #[test]
    fn targets_keep_their_text_form_in_json_and_keys() {
        for raw in [
            "slack:C0123ABCD",
            "discord:112233445566778899",
            "discord-webhook:$MODS_HOOK",
        ] {
            let t = Target::parse(raw).unwrap();
            assert_eq!(t.to_string(), raw);
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{raw}\""));
            assert_eq!(serde_json::from_str::<Target>(&json).unwrap(), t);
        }
        assert!(serde_json::from_str::<Target>("\"email:x\"").is_err());
    }

    /// The waves' writer runs on spawned tasks: posting and editing a
    /// grouped message must stay `Send` on every platform's path.
    #[test]
    fn grouped_calls_are_send() {
        fn send<T: Send>(_: &T) {}
        let grouped = crate::digest::Grouped::Digest(crate::digest::Digest {
            destination: "mods".into(),
            target: Target::parse("slack:C0123ABCD").unwrap(),
            wave_started: Utc::now(),
            part: 1,
            entries: Vec::new(),
            full: false,
        });
        let sinks = Sinks::Platforms(Platforms::default());
        let message = MessageRef::Slack {
            channel: "C0123ABCD".into(),
            ts: "1.2".into(),
        };
        let tag = CardTag::of("k");
        send(&sinks.post_grouped(&grouped, Some(&tag)));
        send(&sinks.update_grouped(&message, &grouped, Some(&tag)));
    }

    #[test]
    fn message_refs_name_the_webhook_variable_never_its_url() {
        let m = MessageRef::DiscordWebhook {
            env: "MODS_HOOK".into(),
            message_id: 42,
        };
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"platform": "discord_webhook", "env": "MODS_HOOK", "message_id": 42})
        );
        assert_eq!(serde_json::from_value::<MessageRef>(json).unwrap(), m);
    }
}
