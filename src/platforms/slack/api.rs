//! Slack's Web API through slack-morphism: posting and updating cards
//! (`chat.postMessage`, `chat.update`), `auth.test` and `conversations.info`
//! for preflight, per-channel pacing, and Slack's error codes classified.

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
use crate::platforms::pacer::Pacer;
use crate::platforms::{Failure, MessageRef, PlatformError, Problems};

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
        SlackClientError::ProtocolError(_) => {
            Failure::Transient("Slack's answer could not be read".into())
        }
        other => Failure::Transient(format!("cannot reach Slack: {other}")),
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
    problems: Problems,
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
                problems: Problems::default(),
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
        let ch = channel.as_str();
        let now = Utc::now();
        let request = render(card, ch, now, ImageMode::Block);
        let has_image = request
            .content
            .blocks
            .as_ref()
            .is_some_and(|b| b.iter().any(|b| matches!(b, SlackBlock::Image(_))));
        // One deadline for the whole delivery, the image fallback included.
        let deadline = tokio::time::Instant::now() + self.call_timeout;
        let result = match self.call(ch, "chat.postMessage", &request, deadline).await {
            Err(Failure::Rejected { code, .. }) if code == "invalid_blocks" && has_image => {
                warn!(
                    channel = ch,
                    "Slack could not use the post's image; sending the card again with the image as a link"
                );
                metrics::counter!("modbridge_slack_image_fallbacks_total").increment(1);
                let request = render(card, ch, now, ImageMode::Link);
                self.call(ch, "chat.postMessage", &request, deadline).await
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

    /// `chat.update`: the message at `ts` in `channel` shows `card` instead.
    pub async fn update(&self, channel: &str, ts: &str, card: &Card) -> Result<(), PlatformError> {
        let request = render(card, channel, Utc::now(), ImageMode::Block);
        let body = serde_json::json!({
            "channel": channel,
            "ts": ts,
            "text": request.content.text,
            "blocks": request.content.blocks,
        });
        let deadline = tokio::time::Instant::now() + self.call_timeout;
        let result = self.call(channel, "chat.update", &body, deadline).await;
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
    async fn call<B: serde::Serialize + Send + Sync>(
        &self,
        channel: &str,
        method: &str,
        body: &B,
        deadline: tokio::time::Instant,
    ) -> Result<MessageAnswer, Failure> {
        let mut waited = false;
        let now = tokio::time::Instant::now();
        let pacing_until = now + deadline.saturating_duration_since(now) / 2;
        loop {
            if let Err(wait) = self
                .inner
                .pacer
                .wait_within(&channel.to_owned(), Some(pacing_until))
                .await
            {
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
                    self.inner.pacer.hold(&channel.to_owned(), wait);
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

#[cfg(test)]
mod tests {
    use super::*;

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
