//! Discord's HTTP API through serenity: posting and editing cards as the bot
//! or through incoming webhooks, `GET /users/@me` and `GET /channels/{id}`
//! for preflight, pacing, and Discord's errors classified.
//!
//! Rate limits: against the real API (`https://discord.com`) serenity's own
//! rate limiter runs (per-route buckets, waits out 429s). serenity ignores a
//! proxy base while its limiter is on, so with any other `DISCORD_API_URL` the
//! limiter is off and modbridge paces each channel itself; a 429 is then
//! retryable.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serenity::builder::{Builder, CreateMessage, EditMessage, EditWebhookMessage, ExecuteWebhook};
use serenity::http::{Http, HttpBuilder, HttpError};
use serenity::model::id::{ChannelId, MessageId, WebhookId};
use tracing::{info, warn};

use super::render::{
    edit_message, edit_webhook_message, grouped_edit, grouped_message, grouped_webhook,
    grouped_webhook_edit, message, reminder_message, reminder_webhook, webhook_execution,
};
use super::{API_URL_ENV, DEFAULT_API_URL, PLATFORM, TOKEN_ENV};
use crate::card::Card;
use crate::config::Env;
use crate::digest::Grouped;
use crate::platforms::pacer::{Pacer, Priority};
use crate::platforms::{CardTag, Failure, MessageRef, PlatformError, Problems, Target};

/// An incoming webhook: its ID and its secret token.
#[derive(Clone)]
pub struct WebhookUrl {
    id: u64,
    token: String,
}

impl WebhookUrl {
    /// `https://discord.com/api/webhooks/ID/TOKEN` (any host, optional
    /// `/v10`). The error never repeats the URL.
    pub fn parse(raw: &str) -> Result<Self, String> {
        const HOW: &str = "is not a Discord webhook URL (like https://discord.com/api/webhooks/123…/abc…: channel settings > Integrations > Webhooks > Copy Webhook URL)";
        let url = url::Url::parse(raw.trim()).map_err(|_| HOW.to_owned())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(HOW.into());
        }
        let mut segments = url
            .path_segments()
            .ok_or(HOW)?
            .skip_while(|s| *s != "webhooks");
        segments.next();
        let id = segments
            .next()
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|&id| id > 0);
        let token = segments.next().filter(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
        match (id, token) {
            (Some(id), Some(token)) => Ok(Self {
                id,
                token: token.to_owned(),
            }),
            _ => Err(HOW.into()),
        }
    }

    /// The form that may appear in logs: `webhooks/<id>/***`.
    pub fn redacted(&self) -> String {
        format!("webhooks/{}/***", self.id)
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Where a card was going, for messages about it (never the webhook URL).
#[derive(Debug, Clone)]
pub enum Endpoint {
    Channel(u64),
    /// The environment variable holding the webhook URL, and its redacted form.
    Webhook {
        env: String,
        redacted: String,
    },
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Channel(id) => write!(f, "discord:{id}"),
            Endpoint::Webhook { env, redacted } => write!(f, "discord webhook ${env} ({redacted})"),
        }
    }
}

/// What to do about an unsuccessful answer: HTTP status and Discord's JSON
/// error code (`-1` when the body was not Discord's error JSON).
pub fn classify_status(status: u16, code: isize, place: &Endpoint) -> Failure {
    let config = |fix: String| Failure::Config {
        code: if code > 0 {
            format!("http_{status}/{code}")
        } else {
            format!("http_{status}")
        },
        fix,
    };
    let permissions = |channel: &str| {
        format!(
            "the bot cannot post in {channel}: give the bot View Channel, Send Messages, Embed Links in that channel (Edit Channel > Permissions)"
        )
    };
    match (place, status, code) {
        (_, 429, _) => Failure::RateLimited(None),
        (_, 408, _) => Failure::Transient("Discord timed out (HTTP 408)".into()),
        (_, s, _) if s >= 500 => Failure::Transient(format!("Discord answered HTTP {s}")),
        (Endpoint::Channel(_), 401, _) => config(
            "DISCORD_BOT_TOKEN is not accepted: reset the token (Developer Portal > your app > Bot > Reset Token) and set DISCORD_BOT_TOKEN to it".into(),
        ),
        (Endpoint::Channel(id), 403, 50001) => config(permissions(&format!("channel {id} (Missing Access)"))),
        (Endpoint::Channel(id), 403, 50013) => config(permissions(&format!("channel {id} (Missing Permissions)"))),
        (Endpoint::Channel(id), 403, _) => config(permissions(&format!("channel {id}"))),
        (_, 404, 10008) => config(
            "the message was deleted (Unknown Message): it cannot be edited any more".into(),
        ),
        (Endpoint::Channel(id), 404, _) => config(format!(
            "channel {id} does not exist or the bot is not in its server (Unknown Channel): check the channel ID and invite the bot to the server"
        )),
        (Endpoint::Webhook { env, .. }, 401 | 403 | 404, _) => config(format!(
            "the webhook in ${env} was deleted or its URL is wrong (Unknown Webhook): create a webhook (channel settings > Integrations > Webhooks) and set ${env} to its URL"
        )),
        (_, 400, _) => Failure::Rejected {
            code: "rejected".into(),
            detail: format!("Discord refused the card (HTTP 400, code {code})"),
        },
        (_, s, _) => config(format!(
            "the Discord API answered HTTP {s}: check DISCORD_API_URL (default {DEFAULT_API_URL})"
        )),
    }
}

fn classify(err: serenity::Error, place: &Endpoint) -> Failure {
    use serenity::Error;
    match err {
        Error::Http(HttpError::UnsuccessfulRequest(resp)) => {
            classify_status(resp.status_code.as_u16(), resp.error.code, place)
        }
        // reqwest's message names the URL, which holds a webhook's token: drop it.
        Error::Http(HttpError::Request(e)) => {
            let e = e.without_url();
            if e.is_timeout() {
                Failure::TimedOut("Discord did not answer in time".into())
            } else {
                Failure::Transient(format!("cannot reach Discord: {e}"))
            }
        }
        Error::Http(HttpError::RateLimitI64F64 | HttpError::RateLimitUtf8) => {
            Failure::Transient("Discord's rate-limit headers could not be read".into())
        }
        Error::Http(HttpError::Url(_) | HttpError::InvalidScheme | HttpError::InvalidPort) => {
            Failure::Config {
                code: "bad_url".into(),
                fix: format!("DISCORD_API_URL is not a usable URL (default {DEFAULT_API_URL})"),
            }
        }
        Error::Model(e) => Failure::Rejected {
            code: "rejected".into(),
            detail: format!("serenity refused the card: {e}"),
        },
        Error::Json(_) => Failure::Transient("Discord's answer could not be read".into()),
        _ => Failure::Transient("Discord request failed".into()),
    }
}

/// A 2xx whose body cannot be read is a delivery with no reference: serenity
/// reports `Json` only when it decodes a successful answer (failures are read
/// leniently into `UnsuccessfulRequest`), so sending again would duplicate it.
fn unreadable_is_delivered<T>(
    result: Result<T, serenity::Error>,
) -> Result<Option<T>, serenity::Error> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(serenity::Error::Json(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// How long a channel rests after a 429 (serenity does not pass `Retry-After`
/// on when its limiter is off).
const HOLD_AFTER_429: Duration = Duration::from_secs(1);

/// Posts and edits cards in Discord: as the bot (when `DISCORD_BOT_TOKEN` is
/// set) and through the incoming webhooks named in the configuration.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// The longest one post or edit may take, pacing and serenity's rate
    /// limiter waits included.
    deadline: Duration,
}

struct Inner {
    /// With the bot token.
    bot: Option<Http>,
    /// Without a token: webhook executions carry theirs in the URL.
    hooks: Http,
    api_url: String,
    /// Webhook URLs by the environment variable that held them.
    webhooks: BTreeMap<String, WebhookUrl>,
    /// About five messages per five seconds per channel or webhook; only
    /// when serenity's own rate limiter is off (a non-default API URL).
    /// New messages per channel or webhook: at most 5 in any 5 s, so
    /// Discord's fixed windows for the create route are never passed.
    pacer: Option<Pacer<u64>>,
    /// Edits per channel or webhook (their own route and bucket): bursts of
    /// 5, then 1/s, so that a burst of clicks is served in order.
    edits: Option<Pacer<u64>>,
    problems: Problems,
}

/// Neither the token nor a webhook URL reaches `Debug` output.
impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("discord::Client")
            .field("api_url", &self.inner.api_url)
            .field("bot", &self.inner.bot.is_some())
            .field("webhooks", &self.inner.webhooks)
            .finish_non_exhaustive()
    }
}

/// How long one request to Discord may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

impl Client {
    /// `DISCORD_BOT_TOKEN`, `DISCORD_API_URL` and the webhook URL in each of
    /// `webhook_vars` from `env`: `None` without a token or any webhook URL.
    /// Returns every problem found.
    pub fn from_env<'a>(
        env: &dyn Env,
        webhook_vars: impl IntoIterator<Item = &'a str>,
        timeout: Duration,
    ) -> Result<Option<Self>, Vec<String>> {
        let api_url = env
            .var(API_URL_ENV)
            .unwrap_or_else(|| DEFAULT_API_URL.to_owned());
        let api_url = api_url.trim().trim_end_matches('/');
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            return Err(vec![format!(
                "{API_URL_ENV} / discord_api_url: {api_url:?} must start with https:// (like {DEFAULT_API_URL})"
            )]);
        }
        let webhooks: BTreeMap<String, String> = webhook_vars
            .into_iter()
            .filter_map(|var| {
                env.var(var)
                    .map(|url| (var.to_owned(), url.trim().to_owned()))
            })
            .collect();
        let token = env.var(TOKEN_ENV);
        if token.is_none() && webhooks.is_empty() {
            return Ok(None);
        }
        Self::with_call_timeout(token.as_deref(), api_url, &webhooks, timeout)
            .map(Some)
            .map_err(|e| vec![e])
    }

    /// `api_url` like `https://discord.com` (plain `http://` works for local
    /// fakes); `webhooks` maps environment variable names to the webhook URLs
    /// they hold.
    pub fn new(
        bot_token: Option<&str>,
        api_url: &str,
        webhooks: &BTreeMap<String, String>,
    ) -> Result<Self, String> {
        Self::with_call_timeout(bot_token, api_url, webhooks, REQUEST_TIMEOUT)
    }

    /// [`Client::new`] with every post and edit (pacing and rate-limit waits
    /// included) bounded by `timeout`.
    pub fn with_call_timeout(
        bot_token: Option<&str>,
        api_url: &str,
        webhooks: &BTreeMap<String, String>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client for Discord: {e}"))?;
        Ok(Self::with_client(bot_token, api_url, webhooks, client)?.with_deadline(timeout))
    }

    /// Bounds every post and edit, pacing and serenity's rate-limiter waits
    /// included: past `deadline` the call is abandoned as timed out.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// [`Client::new`] with the HTTP client given (tests point
    /// `discord.com` at a local fake that way, keeping serenity's limiter on).
    pub fn with_client(
        bot_token: Option<&str>,
        api_url: &str,
        webhooks: &BTreeMap<String, String>,
        client: reqwest::Client,
    ) -> Result<Self, String> {
        let api_url = api_url.trim().trim_end_matches('/').to_owned();
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            return Err(format!(
                "{API_URL_ENV} must start with https:// (default {DEFAULT_API_URL})"
            ));
        }
        let real = api_url == DEFAULT_API_URL;
        let build = |token: &str| {
            let b = HttpBuilder::new(token).client(client.clone());
            // serenity only honours a proxy base with its rate limiter off.
            if real {
                b
            } else {
                b.proxy(api_url.clone()).ratelimiter_disabled(true)
            }
            .build()
        };
        let mut parsed = BTreeMap::new();
        for (env, url) in webhooks {
            let hook = WebhookUrl::parse(url).map_err(|e| format!("{env} {e}"))?;
            parsed.insert(env.clone(), hook);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                bot: bot_token.map(|t| build(t.trim())),
                hooks: build(""),
                webhooks: parsed,
                // Five per five seconds per route and channel, as Discord's
                // fixed windows (a sliding window never passes them).
                // A quarter second more than Discord's 5 s: a window is
                // counted from when Discord saw its first request, which
                // the network may have delayed more than the next one.
                pacer: (!real).then(|| Pacer::windowed(5, Duration::from_millis(5_250))),
                edits: (!real).then(|| Pacer::new(5.0, 1.0)),
                api_url,
                problems: Problems::default(),
            }),
            deadline: REQUEST_TIMEOUT,
        })
    }

    pub fn api_url(&self) -> &str {
        &self.inner.api_url
    }

    /// Whether serenity's own rate limiter is on (the real API).
    pub fn serenity_ratelimiter(&self) -> bool {
        self.inner.pacer.is_none()
    }

    /// Configuration problems seen on the last attempt per destination.
    pub fn problems(&self) -> Vec<String> {
        self.inner.problems.list()
    }

    /// Whether `DISCORD_BOT_TOKEN` was given.
    pub fn has_bot(&self) -> bool {
        self.inner.bot.is_some()
    }

    /// The webhook URL from `env`, redacted (`webhooks/<id>/***`), when set.
    pub fn webhook_redacted(&self, env: &str) -> Option<String> {
        self.inner.webhooks.get(env).map(WebhookUrl::redacted)
    }

    /// The webhook behind `env`, and where it is for messages about it.
    fn webhook(&self, env: &str) -> (Endpoint, Result<&WebhookUrl, Failure>) {
        match self.inner.webhooks.get(env) {
            Some(hook) => (
                Endpoint::Webhook {
                    env: env.to_owned(),
                    redacted: hook.redacted(),
                },
                Ok(hook),
            ),
            None => (
                Endpoint::Webhook {
                    env: env.to_owned(),
                    redacted: "webhooks/?/***".into(),
                },
                Err(Failure::Config {
                    code: "no_webhook_url".into(),
                    fix: format!("${env} is not set: set it to the webhook's URL"),
                }),
            ),
        }
    }

    fn bot(&self) -> Result<&Http, Failure> {
        self.inner.bot.as_ref().ok_or_else(|| Failure::Config {
            code: "no_token".into(),
            fix: format!("{TOKEN_ENV} is not set: create a bot (Developer Portal > New Application > Bot), invite it, and set {TOKEN_ENV}"),
        })
    }

    /// Renders and posts `card` to a Discord target.
    /// Posts `card` and returns where it is (`check --live --send-test`, and
    /// tests): a delivery whose answer could not be read is an error here.
    pub async fn deliver(&self, card: &Card, target: &Target) -> Result<MessageRef, PlatformError> {
        self.post(card, target)
            .await?
            .ok_or_else(|| PlatformError::Transient {
                platform: PLATFORM,
                detail: "Discord accepted the card but its answer could not be read".into(),
                retry_after: None,
            })
    }

    /// Posts `card`; returns where it is, or `None` when Discord accepted it
    /// (2xx) with an answer that cannot be read: a delivery all the same,
    /// never to be sent again.
    pub async fn post(
        &self,
        card: &Card,
        target: &Target,
    ) -> Result<Option<MessageRef>, PlatformError> {
        self.post_with(
            target,
            |channel| message(card, channel, Utc::now()),
            || webhook_execution(card, Utc::now()),
        )
        .await
    }

    /// Posts a grouped message (a wave's digest, a campaign card) to its
    /// target; a bot message carries a nonce from `tag`, so that a resend
    /// after a lost answer returns the message already created.
    pub async fn post_grouped(
        &self,
        grouped: &Grouped,
        tag: Option<&CardTag>,
    ) -> Result<Option<MessageRef>, PlatformError> {
        self.post_with(
            grouped.target(),
            |_| grouped_message(grouped, tag),
            || grouped_webhook(grouped),
        )
        .await
    }

    /// Posts what `bot` (given the channel) or `hook` builds to `target`,
    /// each built again for a retry.
    async fn post_with(
        &self,
        target: &Target,
        bot: impl Fn(u64) -> CreateMessage,
        hook: impl Fn() -> ExecuteWebhook,
    ) -> Result<Option<MessageRef>, PlatformError> {
        let (place, result) = match target {
            Target::Discord(channel) => {
                let place = Endpoint::Channel(channel.get());
                let r = self.post_bot(&bot, channel.get(), &place).await;
                (place, r)
            }
            Target::DiscordWebhook { env } => {
                let (place, webhook) = self.webhook(env);
                let r = match webhook {
                    Ok(webhook) => self.post_webhook(&hook, webhook, &place).await,
                    Err(f) => Err(f),
                };
                (place, r)
            }
            Target::Slack(_) => {
                return Err(PlatformError::Config {
                    platform: PLATFORM,
                    detail: "not a Discord destination".into(),
                });
            }
        };
        let message = self
            .inner
            .problems
            .settle(PLATFORM, &place.to_string(), result)?;
        match &message {
            Some(m) => info!(destination = %place, message = ?m, "posted to Discord"),
            // Platform and status only: the body may hold anything.
            None => {
                warn!(destination = %place, "Discord answered 2xx with a body that cannot be read: counted as delivered, message reference unknown")
            }
        }
        Ok(message)
    }

    /// Edits a posted message (as the bot, or through its webhook) to show `card`.
    pub async fn update(&self, message: &MessageRef, card: &Card) -> Result<(), PlatformError> {
        self.update_with(
            message,
            Priority::Edit,
            || edit_message(card, Utc::now()),
            || edit_webhook_message(card, Utc::now()),
        )
        .await
    }

    /// Edits a posted grouped message to show `grouped`, paced behind new
    /// cards and cards' edits waiting for the same channel or webhook.
    pub async fn update_grouped(
        &self,
        message: &MessageRef,
        grouped: &Grouped,
    ) -> Result<(), PlatformError> {
        self.update_with(
            message,
            Priority::Background,
            || grouped_edit(grouped),
            || grouped_webhook_edit(grouped),
        )
        .await
    }

    /// Edits `message` with what `bot` or `hook` builds (built again for a
    /// retry), paced with `priority`.
    async fn update_with(
        &self,
        message: &MessageRef,
        priority: Priority,
        bot: impl Fn() -> EditMessage,
        hook: impl Fn() -> EditWebhookMessage,
    ) -> Result<(), PlatformError> {
        let (place, result) = match message {
            MessageRef::Discord {
                channel,
                message_id,
            } => {
                let place = Endpoint::Channel(*channel);
                let r = self
                    .edit_bot(&bot, *channel, *message_id, &place, priority)
                    .await;
                (place, r)
            }
            MessageRef::DiscordWebhook { env, message_id } => {
                let (place, webhook) = self.webhook(env);
                let r = match webhook {
                    Ok(webhook) => {
                        self.edit_webhook(&hook, webhook, *message_id, &place, priority)
                            .await
                    }
                    Err(f) => Err(f),
                };
                (place, r)
            }
            MessageRef::Slack { .. } => {
                return Err(PlatformError::Config {
                    platform: PLATFORM,
                    detail: "not a Discord message".into(),
                });
            }
        };
        self.inner
            .problems
            .settle(PLATFORM, &place.to_string(), result)?;
        info!(destination = %place, "edited a Discord message");
        Ok(())
    }

    /// Posts `reminder` under a posted card: a reply as the bot (with
    /// `message_reference`), or a new message through the card's webhook.
    pub async fn reply(
        &self,
        message: &MessageRef,
        reminder: &crate::platforms::Reminder,
    ) -> Result<Option<MessageRef>, PlatformError> {
        let (place, result) = match message {
            MessageRef::Discord {
                channel,
                message_id,
            } => {
                let place = Endpoint::Channel(*channel);
                let r = match self.bot() {
                    Ok(http) => {
                        let id = ChannelId::new(*channel);
                        self.paced(*channel, &place, true, Priority::Post, || {
                            let send = id.send_message(
                                http,
                                reminder_message(reminder, *channel, *message_id),
                            );
                            async move { unreadable_is_delivered(send.await) }
                        })
                        .await
                        .map(|m| {
                            m.map(|m| MessageRef::Discord {
                                channel: *channel,
                                message_id: m.id.get(),
                            })
                        })
                    }
                    Err(f) => Err(f),
                };
                (place, r)
            }
            MessageRef::DiscordWebhook { env, .. } => {
                let (place, hook) = self.webhook(env);
                let r = match hook {
                    Ok(hook) => self
                        .paced(hook.id, &place, false, Priority::Post, || {
                            let execute = reminder_webhook(reminder).execute(
                                &self.inner.hooks,
                                (WebhookId::new(hook.id), hook.token.as_str(), true),
                            );
                            async move { unreadable_is_delivered(execute.await) }
                        })
                        .await
                        .map(|m| {
                            m.flatten().map(|m| MessageRef::DiscordWebhook {
                                env: env.clone(),
                                message_id: m.id.get(),
                            })
                        }),
                    Err(f) => Err(f),
                };
                (place, r)
            }
            MessageRef::Slack { .. } => {
                return Err(PlatformError::Config {
                    platform: PLATFORM,
                    detail: "not a Discord message".into(),
                });
            }
        };
        let posted = self
            .inner
            .problems
            .settle(PLATFORM, &place.to_string(), result)?;
        info!(destination = %place, "posted a reminder to Discord");
        Ok(posted)
    }

    async fn post_bot(
        &self,
        build: &impl Fn(u64) -> CreateMessage,
        channel: u64,
        place: &Endpoint,
    ) -> Result<Option<MessageRef>, Failure> {
        let http = self.bot()?;
        let id = ChannelId::new(channel);
        // The same nonce each time: a resend after a lost answer returns the
        // message Discord already created.
        let m = self
            .paced(channel, place, true, Priority::Post, || {
                let send = id.send_message(http, build(channel));
                async move { unreadable_is_delivered(send.await) }
            })
            .await?;
        Ok(m.map(|m| MessageRef::Discord {
            channel,
            message_id: m.id.get(),
        }))
    }

    async fn edit_bot(
        &self,
        build: &impl Fn() -> EditMessage,
        channel: u64,
        message_id: u64,
        place: &Endpoint,
        priority: Priority,
    ) -> Result<(), Failure> {
        let http = self.bot()?;
        let id = ChannelId::new(channel);
        self.paced(channel, place, true, priority, || {
            id.edit_message(http, MessageId::new(message_id), build())
        })
        .await
        .map(|_| ())
    }

    /// Executes the webhook with `wait=true`, so Discord answers with the
    /// message (its ID is what later edits need).
    async fn post_webhook(
        &self,
        build: &impl Fn() -> ExecuteWebhook,
        hook: &WebhookUrl,
        place: &Endpoint,
    ) -> Result<Option<MessageRef>, Failure> {
        let Endpoint::Webhook { env, .. } = place else {
            return Err(Failure::Transient(
                "a webhook post needs a webhook place".into(),
            ));
        };
        let m = self
            .paced(hook.id, place, false, Priority::Post, || {
                let execute = build().execute(
                    &self.inner.hooks,
                    (WebhookId::new(hook.id), hook.token.as_str(), true),
                );
                async move { unreadable_is_delivered(execute.await) }
            })
            .await?;
        // `None`: a 204 or an unreadable 2xx, accepted all the same.
        Ok(m.flatten().map(|m| MessageRef::DiscordWebhook {
            env: env.clone(),
            message_id: m.id.get(),
        }))
    }

    async fn edit_webhook(
        &self,
        build: &impl Fn() -> EditWebhookMessage,
        hook: &WebhookUrl,
        message_id: u64,
        place: &Endpoint,
        priority: Priority,
    ) -> Result<(), Failure> {
        self.paced(hook.id, place, false, priority, || {
            build().execute(
                &self.inner.hooks,
                (
                    WebhookId::new(hook.id),
                    hook.token.as_str(),
                    MessageId::new(message_id),
                ),
            )
        })
        .await
        .map(|_| ())
    }

    /// One call to `key` (a channel or a webhook), paced when serenity's
    /// limiter is off; a 429 holds the key and, for bot calls (`retry`), is
    /// retried once. All of it ends by the client's deadline: pacing may use
    /// its first half (a wait that would go past it is not started: nothing
    /// sent), so that the call always has at least half; a call still
    /// running at the deadline (serenity's limiter sleeping through a
    /// `Retry-After` included) is abandoned as timed out (it may have arrived).
    async fn paced<T, F, Fut>(
        &self,
        key: u64,
        place: &Endpoint,
        retry: bool,
        priority: Priority,
        call: F,
    ) -> Result<T, Failure>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, serenity::Error>>,
    {
        let mut retried = false;
        let started = tokio::time::Instant::now();
        let deadline = started + self.deadline;
        let pacing_until = started + self.deadline / 2;
        let pacer = match priority {
            Priority::Post => &self.inner.pacer,
            Priority::Edit | Priority::Background => &self.inner.edits,
        };
        loop {
            if let Some(p) = pacer
                && let Err(wait) = p.wait_within(&key, Some(pacing_until), priority).await
            {
                return Err(Failure::RateLimited(Some(wait)));
            }
            let answer = match tokio::time::timeout_at(deadline, call()).await {
                Ok(answer) => answer.map_err(|e| classify(e, place)),
                Err(_) => Err(Failure::TimedOut(format!(
                    "no answer from Discord within {} s",
                    self.deadline.as_secs_f32()
                ))),
            };
            match answer {
                Err(Failure::RateLimited(after)) => {
                    if let Some(p) = pacer {
                        p.hold(&key, HOLD_AFTER_429);
                    }
                    if retried || !retry {
                        return Err(Failure::RateLimited(after));
                    }
                    warn!(destination = %place, "Discord asked to slow down; waiting");
                    retried = true;
                }
                other => return other,
            }
        }
    }

    /// `GET /users/@me`: proves the bot token works. Returns the bot's name.
    pub async fn whoami(&self) -> Result<String, Failure> {
        self.bot()?
            .get_current_user()
            .await
            .map(|u| u.name.clone())
            .map_err(|e| classify(e, &Endpoint::Channel(0)))
    }

    /// `GET /channels/{id}`: the bot can see the channel.
    pub async fn channel_visible(&self, channel: u64) -> Result<(), Failure> {
        self.bot()?
            .get_channel(ChannelId::new(channel))
            .await
            .map(|_| ())
            .map_err(|e| classify(e, &Endpoint::Channel(channel)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_with_what_to_fix() {
        let ch = Endpoint::Channel(42);
        match classify_status(403, 50001, &ch) {
            Failure::Config { fix, code } => {
                assert_eq!(code, "http_403/50001");
                assert!(
                    fix.contains("View Channel, Send Messages, Embed Links"),
                    "{fix}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify_status(403, 50013, &ch),
            Failure::Config { .. }
        ));
        assert!(matches!(
            classify_status(404, 10003, &ch),
            Failure::Config { .. }
        ));
        match classify_status(401, 0, &ch) {
            Failure::Config { fix, .. } => assert!(fix.contains("DISCORD_BOT_TOKEN")),
            other => panic!("{other:?}"),
        }
        let hook = Endpoint::Webhook {
            env: "HOOK".into(),
            redacted: "webhooks/1/***".into(),
        };
        match classify_status(404, 10015, &hook) {
            Failure::Config { fix, .. } => assert!(fix.contains("$HOOK")),
            other => panic!("{other:?}"),
        }
        assert_eq!(classify_status(429, -1, &ch), Failure::RateLimited(None));
        assert!(matches!(
            classify_status(500, -1, &ch),
            Failure::Transient(_)
        ));
        assert!(matches!(
            classify_status(502, -1, &hook),
            Failure::Transient(_)
        ));
        assert!(matches!(
            classify_status(400, 50035, &ch),
            Failure::Rejected { .. }
        ));
    }

    #[test]
    fn webhook_urls_parse_and_never_show_their_token() {
        let url = "https://discord.com/api/webhooks/123456789012345678/abcDEF-_123";
        let hook = WebhookUrl::parse(url).unwrap();
        assert_eq!(hook.redacted(), "webhooks/123456789012345678/***");
        assert_eq!(format!("{hook:?}"), "webhooks/123456789012345678/***");
        assert!(WebhookUrl::parse("https://discord.com/api/v10/webhooks/1/t").is_ok());
        for bad in [
            "",
            "discord.com/api/webhooks/1/t",
            "https://x/api/webhooks/abc/t",
            "https://x/api/webhooks/1/t%2F..",
            "ftp://x/webhooks/1/t",
        ] {
            let err = WebhookUrl::parse(bad).err().unwrap();
            assert!(!err.contains("t%2F"), "{err}");
        }
        let hooks = BTreeMap::from([("HOOK".to_owned(), url.to_owned())]);
        let sink = Client::new(Some("bot-secret-token"), "http://127.0.0.1:9", &hooks).unwrap();
        let debug = format!("{sink:?}");
        assert!(
            !debug.contains("abcDEF") && !debug.contains("bot-secret"),
            "{debug}"
        );
        assert!(!sink.serenity_ratelimiter());
        let real = Client::new(Some("t"), "https://discord.com/", &hooks).unwrap();
        assert!(real.serenity_ratelimiter());
    }
}
