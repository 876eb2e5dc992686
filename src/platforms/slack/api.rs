//! Slack's Web API through slack-morphism: posting and updating cards
//! (`chat.postMessage`, `chat.update`, each marked with message metadata),
//! finding a card after a lost answer (`conversations.history`),
//! `auth.test` and `conversations.info` for preflight, per-channel pacing,
//! and Slack's error codes classified.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde::Deserialize;
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;
use tracing::{info, warn};

use super::render::{ImageMode, render};
use super::{API_URL_ENV, Channel, DEFAULT_API_URL, PLATFORM, TOKEN_ENV};
use crate::card::Card;
use crate::config::Env;
use crate::digest::Grouped;
use crate::platforms::pacer::{Pacer, Priority};
use crate::platforms::{CardTag, Failure, Lookup, MessageRef, PlatformError, Problems, Window};

/// The metadata `event_type` of every card modbridge posts; its
/// `event_payload` is `{"k": <CardTag>}`. Metadata is readable by every app
/// and member of the workspace: nothing else goes in it. (Spelled in two
/// pieces: `tests/metrics_docs.rs` takes every whole `modbridge_…` literal
/// under `src/` for a metric family.)
pub const CARD_EVENT: &str = concat!("modbridge", "_card");

/// A lookup reads at most this many `conversations.history` pages of
/// [`HISTORY_PAGE`] messages (1,000 messages in its window); a window with
/// more is unknown.
pub const HISTORY_PAGES: usize = 5;
const HISTORY_PAGE: &str = "200";

/// The lookup window is widened by this on each side: the store's clock and
/// Slack's may differ, and Slack may store a message a little after the call
/// was abandoned.
const CLOCK_MARGIN: Duration = Duration::from_secs(60);

/// One `conversations.history` page, read with modbridge's own types: another
/// app's metadata may hold non-string values (slack-morphism's types only
/// take strings).
#[derive(Debug, Deserialize)]
struct HistoryPage {
    #[serde(default)]
    messages: Vec<HistoryMessage>,
    #[serde(default)]
    has_more: bool,
    response_metadata: Option<HistoryCursor>,
}

#[derive(Debug, Deserialize)]
struct HistoryMessage {
    ts: Option<String>,
    /// The bot that posted it (absent for people's messages).
    bot_id: Option<String>,
    metadata: Option<HistoryMetadata>,
}

#[derive(Debug, Deserialize)]
struct HistoryMetadata {
    event_type: Option<String>,
    #[serde(default)]
    event_payload: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct HistoryCursor {
    next_cursor: Option<String>,
}

impl HistoryMessage {
    /// Whether this is the card tagged `tag`, posted by modbridge's own bot
    /// (`own_bot`, from `auth.test`): another app in the workspace can post
    /// any metadata, and a tag it copied must not pass for the card.
    fn is_card(&self, tag: &CardTag, own_bot: &str) -> bool {
        self.bot_id.as_deref() == Some(own_bot)
            && self.metadata.as_ref().is_some_and(|m| {
                m.event_type.as_deref() == Some(CARD_EVENT)
                    && m.event_payload.get("k").and_then(|k| k.as_str()) == Some(tag.as_str())
            })
    }
}

/// The metadata that marks a card.
fn card_metadata(tag: &CardTag) -> SlackMessageMetadata {
    SlackMessageMetadata::new(CARD_EVENT.into()).with_event_payload(
        [("k".to_owned(), tag.as_str().to_owned())]
            .into_iter()
            .collect(),
    )
}

/// A time as a Slack `ts` bound (`oldest`, `latest`): seconds with microseconds.
fn slack_ts(at: chrono::DateTime<Utc>) -> String {
    format!("{}.{:06}", at.timestamp(), at.timestamp_subsec_micros())
}

#[derive(Debug, Deserialize)]
struct MessageAnswer {
    channel: Option<String>,
    ts: Option<String>,
}

/// What `auth.test` says about the token.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthInfo {
    pub team: Option<String>,
    pub user: Option<String>,
    pub user_id: Option<String>,
    pub bot_id: Option<String>,
    pub url: Option<String>,
}

/// What `conversations.info` says about a channel.
#[derive(Debug, Clone, Deserialize)]
pub struct ChannelInfo {
    pub id: String,
    pub name: Option<String>,
    pub is_member: Option<bool>,
    pub is_archived: Option<bool>,
    pub is_private: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct ChannelAnswer {
    channel: ChannelInfo,
}

/// What to do about a Slack error code, for the channel it happened in.
pub fn classify_code(code: &str, channel: &str) -> Failure {
    let config = |fix: String| Failure::Config {
        code: code.to_owned(),
        fix,
    };
    match code {
        "ratelimited" | "rate_limited" => Failure::RateLimited(None),
        "channel_not_found" => config(format!(
            "channel {channel} does not exist or the bot cannot see it: check the channel ID; for a private channel, invite the bot (/invite @your-bot)"
        )),
        "not_in_channel" => config(format!(
            "the bot is not a member of {channel}: invite the bot to the channel (/invite @your-bot) or add the chat:write.public scope and reinstall the app"
        )),
        "is_archived" => config(format!(
            "channel {channel} is archived: unarchive it or send this destination elsewhere"
        )),
        "invalid_auth" | "not_authed" | "account_inactive" | "token_revoked" => config(
            "SLACK_BOT_TOKEN is not accepted: install the Slack app again and set SLACK_BOT_TOKEN to its xoxb- bot token".into(),
        ),
        "missing_scope" => config(
            "the token lacks a scope: add chat:write (and chat:write.public for channels the bot has not joined), then reinstall the app".into(),
        ),
        "message_not_found" | "cant_update_message" | "edit_window_closed" => config(format!(
            "the message in {channel} cannot be updated (deleted, not the bot's, or too old): nothing to do unless it happens for every card"
        )),
        "restricted_action" => config(format!(
            "the workspace does not let the bot post in {channel}: ask a Slack admin to allow the app to post there"
        )),
        "invalid_blocks" | "invalid_blocks_format" | "msg_too_long" | "msg_blocks_too_long"
        | "no_text" | "invalid_arguments" | "too_many_attachments" => {
            Failure::Rejected {
                code: code.to_owned(),
                detail: format!("Slack refused the card ({code})"),
            }
        }
        other => Failure::Transient(format!("Slack answered {other}")),
    }
}

fn classify(err: SlackClientError, channel: &str) -> Failure {
    match err {
        SlackClientError::ApiError(e) => classify_code(&e.code, channel),
        SlackClientError::RateLimitError(e) => Failure::RateLimited(e.retry_after),
        SlackClientError::HttpError(e) => {
            let status = e.status_code;
            if status.is_server_error() || status.as_u16() == 408 {
                Failure::Transient(format!("Slack answered HTTP {status}"))
            } else {
                Failure::Config {
                    code: format!("http_{}", status.as_u16()),
                    fix: format!(
                        "the Slack API answered HTTP {status}: check SLACK_API_URL (default https://slack.com/api)"
                    ),
                }
            }
        }
        // A 2xx that cannot be read: Slack may have done it.
        SlackClientError::ProtocolError(_) => {
            Failure::TimedOut("Slack's answer could not be read (the message may exist)".into())
        }
        SlackClientError::HttpProtocolError(e) if !never_sent(&e) => Failure::TimedOut(
            "the connection to Slack broke after the request was sent (the message may exist)"
                .into(),
        ),
        other => Failure::Transient(format!("cannot reach Slack: {other}")),
    }
}

/// Whether a transport error happened before the request could be written:
/// no connection (refused, DNS, TLS), or a request that could not be built.
/// Anything else (reset, an incomplete answer) may follow a written request.
fn never_sent(e: &slack_morphism::errors::SlackClientHttpProtocolError) -> bool {
    let Some(cause) = e.cause.as_deref() else {
        return true;
    };
    match cause.downcast_ref::<hyper_util::client::legacy::Error>() {
        Some(e) => e.is_connect(),
        None => true,
    }
}

/// A 429 asking to wait at most this long is waited out inline (within the
/// webhook's deadline); a longer one goes back to the caller.
const MAX_INLINE_WAIT: Duration = Duration::from_secs(2);

/// Posts and updates cards in Slack with one bot token.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// The longest one delivery or update may take, pacing waits included.
    call_timeout: Duration,
}

struct Inner {
    client: SlackHyperClient,
    token: SlackApiToken,
    api_url: String,
    /// About one message a second per channel, bursts of three.
    pacer: Pacer<String>,
    /// `chat.update` is Tier 3 for the whole workspace (about 50 a minute),
    /// not paced per channel like `chat.postMessage`: at most 45 in any
    /// minute, at once if they come at once (a burst of clicks).
    updates: Pacer<()>,
    problems: Problems,
    /// No `conversations.history` call before this (Slack's `Retry-After`
    /// after a 429: the limit is per method and workspace, so every lookup
    /// waits, instead of each spending a call on another 429).
    history_hold: std::sync::Mutex<Option<tokio::time::Instant>>,
    /// The token's bot ID (`auth.test`), asked once: a lookup takes only
    /// this bot's messages for cards.
    own_bot: tokio::sync::OnceCell<String>,
}

/// The token never reaches `Debug` output.
impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("slack::Client")
            .field("api_url", &self.inner.api_url)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// `SLACK_BOT_TOKEN` and `SLACK_API_URL` from `env`: `None` without a token.
    pub fn from_env(env: &dyn Env, timeout: Duration) -> Result<Option<Self>, String> {
        let api_url = env
            .var(API_URL_ENV)
            .unwrap_or_else(|| DEFAULT_API_URL.to_owned());
        let api_url = api_url.trim().trim_end_matches('/');
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            return Err(format!(
                "{API_URL_ENV} / slack_api_url: {api_url:?} must start with https:// (like {DEFAULT_API_URL})"
            ));
        }
        match env.var(TOKEN_ENV) {
            Some(token) => Ok(Some(
                Self::new(token.trim(), api_url)?.with_call_timeout(timeout),
            )),
            None => Ok(None),
        }
    }

    /// `api_url` like `https://slack.com/api` (plain `http://` works for local fakes).
    pub fn new(token: &str, api_url: &str) -> Result<Self, String> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| {
                format!("cannot load the system's CA certificates for Slack (install ca-certificates): {e}")
            })?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let api_url = api_url.trim_end_matches('/').to_owned();
        let connector = SlackClientHyperConnector::from(https).with_slack_api_url(&api_url);
        Ok(Self {
            inner: Arc::new(Inner {
                client: SlackClient::new(connector),
                token: SlackApiToken::new(SlackApiTokenValue::new(token.to_owned())),
                api_url,
                pacer: Pacer::new(3.0, 1.0),
                updates: Pacer::windowed(45, Duration::from_secs(60)),
                problems: Problems::default(),
                history_hold: std::sync::Mutex::new(None),
                own_bot: tokio::sync::OnceCell::new(),
            }),
            call_timeout: Duration::from_secs(10),
        })
    }

    /// Bounds every delivery and update (pacing waits included); past it the
    /// call counts as timed out (retryable; the message may exist).
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    pub fn api_url(&self) -> &str {
        &self.inner.api_url
    }

    /// Configuration problems seen on the last attempt per channel.
    pub fn problems(&self) -> Vec<String> {
        self.inner.problems.list()
    }

    /// Renders and posts `card`; when Slack cannot use the image, posts it once
    /// more with the image as a link.
    pub async fn deliver(
        &self,
        card: &Card,
        channel: &Channel,
    ) -> Result<MessageRef, PlatformError> {
        self.deliver_tagged(card, channel, None).await
    }

    /// [`Client::deliver`], the message carrying `tag` in its metadata
    /// (event type [`CARD_EVENT`]) so that [`Client::look_up`] finds it.
    pub async fn deliver_tagged(
        &self,
        card: &Card,
        channel: &Channel,
        tag: Option<&CardTag>,
    ) -> Result<MessageRef, PlatformError> {
        let ch = channel.as_str();
        let now = Utc::now();
        let tagged = |mut request: SlackApiChatPostMessageRequest| {
            request.content.metadata = tag.map(card_metadata);
            request
        };
        let request = tagged(render(card, ch, now, ImageMode::Block));
        let has_image = request
            .content
            .blocks
            .as_ref()
            .is_some_and(|b| b.iter().any(|b| matches!(b, SlackBlock::Image(_))));
        // One deadline for the whole delivery, the image fallback included.
        let deadline = tokio::time::Instant::now() + self.call_timeout;
        let result = match self
            .call(ch, "chat.postMessage", &request, deadline, Priority::Post)
            .await
        {
            Err(Failure::Rejected { code, .. }) if code == "invalid_blocks" && has_image => {
                warn!(
                    channel = ch,
                    "Slack could not use the post's image; sending the card again with the image as a link"
                );
                metrics::counter!("modbridge_slack_image_fallbacks_total").increment(1);
                let request = tagged(render(card, ch, now, ImageMode::Link));
                self.call(ch, "chat.postMessage", &request, deadline, Priority::Post)
                    .await
            }
            other => other,
        };
        let posted = self
            .inner
            .problems
            .settle(PLATFORM, &format!("slack:{ch}"), result)?;
        info!(channel = ch, ts = %posted.ts.as_deref().unwrap_or_default(), "posted to Slack");
        Ok(MessageRef::Slack {
            channel: posted.channel.unwrap_or_else(|| ch.to_owned()),
            ts: posted.ts.unwrap_or_default(),
        })
    }

    /// A reminder in the thread of the message at `ts` in `channel`
    /// (`chat.postMessage` with `thread_ts`).
    pub async fn reply(
        &self,
        channel: &str,
        ts: &str,
        reminder: &crate::platforms::Reminder,
    ) -> Result<MessageRef, PlatformError> {
        let body = super::render::reminder(channel, ts, reminder);
        let deadline = tokio::time::Instant::now() + self.call_timeout;
        let result = self
            .call(channel, "chat.postMessage", &body, deadline, Priority::Post)
            .await;
        let posted = self
            .inner
            .problems
            .settle(PLATFORM, &format!("slack:{channel}"), result)?;
        info!(channel, thread_ts = ts, "replied in a Slack thread");
        Ok(MessageRef::Slack {
            channel: posted.channel.unwrap_or_else(|| channel.to_owned()),
            ts: posted.ts.unwrap_or_default(),
        })
    }

    /// `chat.update`: the message at `ts` in `channel` shows `card` instead.
    pub async fn update(&self, channel: &str, ts: &str, card: &Card) -> Result<(), PlatformError> {
        self.update_tagged(channel, ts, card, None).await
    }

    /// [`Client::update`], writing `tag` into the message's metadata again
    /// (`chat.update` replaces it).
    pub async fn update_tagged(
        &self,
        channel: &str,
        ts: &str,
        card: &Card,
        tag: Option<&CardTag>,
    ) -> Result<(), PlatformError> {
        let request = render(card, channel, Utc::now(), ImageMode::Block);
        let content = serde_json::json!({
            "text": request.content.text,
            "blocks": request.content.blocks,
        });
        self.update_content(channel, ts, content, tag, Priority::Edit)
            .await
    }

    /// Posts a grouped message (a wave's digest, a campaign card) in
    /// `channel`, tagged like a card (metadata event type [`CARD_EVENT`]).
    pub async fn post_grouped(
        &self,
        grouped: &Grouped,
        channel: &Channel,
        tag: Option<&CardTag>,
    ) -> Result<MessageRef, PlatformError> {
        let ch = channel.as_str();
        let mut body = super::render::grouped(grouped, ch, Utc::now());
        if let Some(tag) = tag {
            body["metadata"] =
                serde_json::to_value(card_metadata(tag)).unwrap_or(serde_json::Value::Null);
        }
        let deadline = tokio::time::Instant::now() + self.call_timeout;
        let result = self
            .call(ch, "chat.postMessage", &body, deadline, Priority::Post)
            .await;
        let posted = self
            .inner
            .problems
            .settle(PLATFORM, &format!("slack:{ch}"), result)?;
        info!(channel = ch, ts = %posted.ts.as_deref().unwrap_or_default(), "posted a grouped message to Slack");
        Ok(MessageRef::Slack {
            channel: posted.channel.unwrap_or_else(|| ch.to_owned()),
            ts: posted.ts.unwrap_or_default(),
        })
    }

    /// `chat.update` of a grouped message: it shows `grouped` now. Paced
    /// behind new cards and cards' edits waiting for the channel.
    pub async fn update_grouped(
        &self,
        channel: &str,
        ts: &str,
        grouped: &Grouped,
        tag: Option<&CardTag>,
    ) -> Result<(), PlatformError> {
        let body = super::render::grouped(grouped, channel, Utc::now());
        let content = serde_json::json!({ "text": body["text"], "blocks": body["blocks"] });
        self.update_content(channel, ts, content, tag, Priority::Background)
            .await
    }

    /// `chat.update` with `content` (its `text` and `blocks`), writing
    /// `tag` into the metadata again.
    async fn update_content(
        &self,
        channel: &str,
        ts: &str,
        content: serde_json::Value,
        tag: Option<&CardTag>,
        priority: Priority,
    ) -> Result<(), PlatformError> {
        let mut body = serde_json::json!({
            "channel": channel,
            "ts": ts,
            "text": content["text"],
            "blocks": content["blocks"],
        });
        if let Some(tag) = tag {
            body["metadata"] =
                serde_json::to_value(card_metadata(tag)).unwrap_or(serde_json::Value::Null);
        }
        let deadline = tokio::time::Instant::now() + self.call_timeout;
        let result = self
            .call(channel, "chat.update", &body, deadline, priority)
            .await;
        self.inner
            .problems
            .settle(PLATFORM, &format!("slack:{channel}"), result)?;
        info!(channel, ts, "updated a Slack message");
        Ok(())
    }

    /// One Web API write to `channel`, paced; a short 429 is waited out once.
    /// Everything (pacing, the calls, the wait after a 429) ends by
    /// `deadline`: pacing may use the first half of the time left (a wait
    /// that would go past it is not started: nothing sent, rate limited), so
    /// that a call always has at least half of it; a call still running at
    /// the deadline is abandoned (timed out: the message may exist).
    /// `priority`: a card's edit (a moderator's click) goes before new
    /// cards, a grouped message's edit after both.
    async fn call<B: serde::Serialize + Send + Sync>(
        &self,
        channel: &str,
        method: &str,
        body: &B,
        deadline: tokio::time::Instant,
        priority: Priority,
    ) -> Result<MessageAnswer, Failure> {
        let mut waited = false;
        let now = tokio::time::Instant::now();
        let pacing_until = now + deadline.saturating_duration_since(now) / 2;
        let update = method == "chat.update";
        loop {
            let paced = if update {
                self.inner
                    .updates
                    .wait_within(&(), Some(pacing_until), priority)
                    .await
            } else {
                self.inner
                    .pacer
                    .wait_within(&channel.to_owned(), Some(pacing_until), priority)
                    .await
            };
            if let Err(wait) = paced {
                return Err(Failure::RateLimited(Some(wait)));
            }
            let session = self.inner.client.open_session(&self.inner.token);
            let call = session
                .http_session_api
                .http_post::<_, MessageAnswer>(method, body, None);
            let answer = match tokio::time::timeout_at(deadline, call).await {
                Ok(answer) => answer.map_err(|e| classify(e, channel)),
                // The message may exist: the honest duplicate risk of an API
                // without idempotency keys.
                Err(_) => Err(Failure::TimedOut(format!(
                    "no answer from Slack within {} s",
                    self.call_timeout.as_secs_f32()
                ))),
            };
            match answer {
                Err(Failure::RateLimited(after)) => {
                    let wait = after.unwrap_or(Duration::from_secs(1));
                    if update {
                        self.inner.updates.hold(&(), wait);
                    } else {
                        self.inner.pacer.hold(&channel.to_owned(), wait);
                    }
                    if waited || wait > MAX_INLINE_WAIT {
                        return Err(Failure::RateLimited(after));
                    }
                    warn!(
                        channel,
                        wait_secs = wait.as_secs_f64(),
                        "Slack asked to slow down; waiting"
                    );
                    waited = true;
                }
                other => return other,
            }
        }
    }

    /// Looks for the card tagged `tag` in `channel`'s history within
    /// `window` (widened by a minute each side): `conversations.history`
    /// with `include_all_metadata`, newest first, at most [`HISTORY_PAGES`]
    /// pages, all within one call timeout. Needs `channels:history` (public)
    /// or `groups:history` (private) and the bot in the channel; without
    /// them the lookup is unavailable. Counted in
    /// `modbridge_slack_lookups_total{result}`.
    pub async fn look_up(&self, channel: &Channel, tag: &CardTag, window: Window) -> Lookup {
        let lookup = self.history_lookup(channel, tag, window).await;
        let result = match &lookup {
            Lookup::Found(_) => "found",
            Lookup::Absent => "absent",
            Lookup::Unknown { .. } => "unknown",
            Lookup::Unavailable(_) => "unavailable",
        };
        metrics::counter!("modbridge_slack_lookups_total", "result" => result).increment(1);
        lookup
    }

    async fn history_lookup(&self, channel: &Channel, tag: &CardTag, window: Window) -> Lookup {
        let ch = channel.as_str();
        let margin = chrono::Duration::from_std(CLOCK_MARGIN).unwrap_or_default();
        let oldest = slack_ts(window.from - margin);
        let latest = slack_ts(window.to + margin);
        let deadline = tokio::time::Instant::now() + self.call_timeout;
        let held = self
            .inner
            .history_hold
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|until| until.saturating_duration_since(tokio::time::Instant::now()))
            .filter(|left| !left.is_zero());
        if let Some(left) = held {
            return Lookup::Unknown {
                detail: "conversations.history is rate limited (Slack Tier 3, about 50 a minute): waiting as Slack asked".into(),
                retry_after: Some(left),
            };
        }
        let own_bot = match self.own_bot(deadline).await {
            Ok(bot) => bot,
            Err(lookup) => return lookup,
        };
        let mut cursor: Option<String> = None;
        for _ in 0..HISTORY_PAGES {
            let mut params = vec![
                ("channel", Some(ch)),
                ("oldest", Some(oldest.as_str())),
                ("latest", Some(latest.as_str())),
                ("inclusive", Some("true")),
                ("limit", Some(HISTORY_PAGE)),
                ("include_all_metadata", Some("true")),
            ];
            if let Some(c) = cursor.as_deref() {
                params.push(("cursor", Some(c)));
            }
            let session = self.inner.client.open_session(&self.inner.token);
            let call = session.http_session_api.http_get::<HistoryPage, _, _>(
                "conversations.history",
                &params,
                None,
            );
            let page = match tokio::time::timeout_at(deadline, call).await {
                Ok(Ok(page)) => page,
                Ok(Err(e)) => {
                    let failure = classify(e, ch);
                    if let Failure::RateLimited(after) = &failure {
                        let wait = after.unwrap_or(Duration::from_secs(1));
                        *self
                            .inner
                            .history_hold
                            .lock()
                            .unwrap_or_else(|p| p.into_inner()) =
                            Some(tokio::time::Instant::now() + wait);
                    }
                    return history_failure(failure, ch);
                }
                Err(_) => {
                    return Lookup::Unknown {
                        detail: format!(
                            "conversations.history did not answer within {} s",
                            self.call_timeout.as_secs_f32()
                        ),
                        retry_after: None,
                    };
                }
            };
            if let Some(ts) = page
                .messages
                .iter()
                .find(|m| m.is_card(tag, own_bot))
                .and_then(|m| m.ts.clone())
            {
                return Lookup::Found(MessageRef::Slack {
                    channel: ch.to_owned(),
                    ts,
                });
            }
            match page.response_metadata.and_then(|r| r.next_cursor) {
                Some(next) if page.has_more && !next.is_empty() => cursor = Some(next),
                _ => return Lookup::Absent,
            }
        }
        Lookup::Unknown {
            detail: format!(
                "more than {} messages in {ch} around the earlier attempt: not all read",
                HISTORY_PAGES * 200
            ),
            retry_after: None,
        }
    }

    /// The token's bot ID, from `auth.test` the first time (within
    /// `deadline`), then remembered. Without it modbridge cannot tell its own
    /// cards from another app's messages: a failed `auth.test` leaves the
    /// card unknown, a token without a bot ID makes lookups unavailable.
    async fn own_bot(&self, deadline: tokio::time::Instant) -> Result<&str, Lookup> {
        let ask = async {
            match tokio::time::timeout_at(deadline, self.auth_test()).await {
                Ok(Ok(AuthInfo {
                    bot_id: Some(bot), ..
                })) if !bot.is_empty() => Ok(bot),
                Ok(Ok(_)) => Err(Lookup::Unavailable(format!(
                    "auth.test names no bot for {} (not a bot token?): modbridge cannot tell its own messages from others'",
                    super::TOKEN_ENV
                ))),
                Ok(Err(failure)) => Err(Lookup::Unknown {
                    detail: format!(
                        "auth.test failed before the lookup: {}",
                        failure.describe("Slack")
                    ),
                    retry_after: None,
                }),
                Err(_) => Err(Lookup::Unknown {
                    detail: "auth.test did not answer before the lookup's deadline".into(),
                    retry_after: None,
                }),
            }
        };
        self.inner
            .own_bot
            .get_or_try_init(|| ask)
            .await
            .map(String::as_str)
    }

    /// `conversations.history` with `limit=1`: whether lookups after a lost
    /// answer work in `channel` (what `check --live` reports).
    pub async fn history_probe(&self, channel: &Channel) -> Result<(), Failure> {
        let session = self.inner.client.open_session(&self.inner.token);
        let params = vec![("channel", Some(channel.as_str())), ("limit", Some("1"))];
        session
            .http_session_api
            .http_get::<HistoryPage, _, _>("conversations.history", &params, None)
            .await
            .map(|_| ())
            .map_err(|e| classify(e, channel.as_str()))
    }

    /// `auth.test`: proves the token works (any scope).
    pub async fn auth_test(&self) -> Result<AuthInfo, Failure> {
        let session = self.inner.client.open_session(&self.inner.token);
        let none: Vec<(&str, Option<&str>)> = Vec::new();
        session
            .http_session_api
            .http_get("auth.test", &none, None)
            .await
            .map_err(|e| classify(e, "-"))
    }

    /// `conversations.info`: needs `channels:read` (public) or `groups:read` (private).
    pub async fn channel_info(&self, channel: &Channel) -> Result<ChannelInfo, Failure> {
        let session = self.inner.client.open_session(&self.inner.token);
        let params = vec![("channel", Some(channel.as_str()))];
        session
            .http_session_api
            .http_get::<ChannelAnswer, _, _>("conversations.info", &params, None)
            .await
            .map(|a| a.channel)
            .map_err(|e| classify(e, channel.as_str()))
    }
}

/// A failed history page: a missing scope or membership (or any other
/// configuration problem, which the post itself then reports) makes the
/// lookup unavailable; a 429 or anything else leaves the card unknown.
fn history_failure(failure: Failure, channel: &str) -> Lookup {
    match failure {
        Failure::Config { code, .. } if code == "missing_scope" => Lookup::Unavailable(
            "the token lacks channels:history (public channels) / groups:history (private channels): add the scope and reinstall the app".into(),
        ),
        Failure::Config { code, .. } if code == "not_in_channel" => Lookup::Unavailable(format!(
            "the bot is not a member of {channel}, so it cannot read its history: invite it (/invite @your-bot)"
        )),
        Failure::Config { code, fix } => Lookup::Unavailable(format!("{code}: {fix}")),
        Failure::RateLimited(after) => Lookup::Unknown {
            detail: "conversations.history is rate limited (Slack Tier 3, about 50 a minute)"
                .into(),
            retry_after: after,
        },
        other => Lookup::Unknown {
            detail: format!("conversations.history: {}", other.describe("Slack")),
            retry_after: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_pages_with_foreign_metadata_are_read_and_only_own_cards_count() {
        let tag = CardTag::of("cust\u{1f}P1\u{1f}slack:C0123ABCD");
        let page: HistoryPage = serde_json::from_value(serde_json::json!({
            "ok": true,
            "messages": [
                {"ts": "3.0", "metadata": {"event_type": "other_app", "event_payload": {"n": 5, "deep": {"x": [1]}}}},
                {"ts": "2.5", "bot_id": "B0OTHER", "metadata": {"event_type": CARD_EVENT, "event_payload": {"k": tag.as_str()}}},
                {"ts": "2.2", "metadata": {"event_type": CARD_EVENT, "event_payload": {"k": tag.as_str()}}},
                {"ts": "2.0", "bot_id": "B0OWN", "metadata": {"event_type": CARD_EVENT, "event_payload": {"k": "0000"}}},
                {"ts": "1.0", "bot_id": "B0OWN", "metadata": {"event_type": CARD_EVENT, "event_payload": {"k": tag.as_str()}}},
                {"ts": "0.5"}
            ],
            "has_more": false
        }))
        .unwrap();
        // Another app's (2.5) or a person's (2.2) message carrying the tag is
        // not the card: only this bot's.
        let found: Vec<_> = page
            .messages
            .iter()
            .filter(|m| m.is_card(&tag, "B0OWN"))
            .collect();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].ts.as_deref(), Some("1.0"));
        assert_eq!(tag.as_str().len(), 32);
        assert!(!tag.as_str().contains("P1"));
    }

    #[test]
    fn error_codes_are_classified() {
        assert!(matches!(
            classify_code("channel_not_found", "C1"),
            Failure::Config { .. }
        ));
        match classify_code("not_in_channel", "C1") {
            Failure::Config { fix, .. } => {
                assert!(fix.contains("invite the bot") && fix.contains("chat:write.public"))
            }
            other => panic!("{other:?}"),
        }
        for code in [
            "is_archived",
            "invalid_auth",
            "not_authed",
            "account_inactive",
            "token_revoked",
            "missing_scope",
            "restricted_action",
        ] {
            assert!(
                matches!(classify_code(code, "C1"), Failure::Config { .. }),
                "{code}"
            );
        }
        assert_eq!(
            classify_code("ratelimited", "C1"),
            Failure::RateLimited(None)
        );
        assert_eq!(
            classify_code("rate_limited", "C1"),
            Failure::RateLimited(None)
        );
        assert!(matches!(
            classify_code("invalid_blocks", "C1"),
            Failure::Rejected { .. }
        ));
        assert!(matches!(
            classify_code("internal_error", "C1"),
            Failure::Transient(_)
        ));
    }

    #[test]
    fn debug_hides_the_token() {
        let sink = Client::new("xoxb-secret-token", "http://127.0.0.1:9/api").unwrap();
        assert!(!format!("{sink:?}").contains("xoxb"));
    }
}
