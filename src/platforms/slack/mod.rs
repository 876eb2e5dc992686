//! Slack: cards as Block Kit messages posted with slack-morphism.
//!
//! Architecture invariant: only this folder imports slack-morphism or knows
//! Slack's endpoints, scopes, limits, error codes and mention syntax.
//! - `render.rs`: a card, a digest or a campaign → a `chat.postMessage` body
//!   (markup and limits only; the text pieces come from `platforms::present`);
//! - `api.rs`: the [`Client`] (post, update, pacing, error classification);
//! - `preflight.rs`: `check --live` and `--send-test`.

mod api;
pub mod interaction;
pub mod preflight;
mod render;

pub use api::{AuthInfo, ChannelInfo, Client, classify_code};
pub use render::{ImageMode, escape, grouped, limits, payload, render, width};

/// The platform's name in errors, logs and metrics.
pub const PLATFORM: &str = "slack";
/// The bot token (`xoxb-…`).
pub const TOKEN_ENV: &str = "SLACK_BOT_TOKEN";
/// The Web API base, for tests, proxies and Slack's government cloud.
pub const API_URL_ENV: &str = "SLACK_API_URL";
/// The Slack Web API base used unless `SLACK_API_URL` says otherwise.
pub const DEFAULT_API_URL: &str = "https://slack.com/api";

/// A Slack channel ID (`C…`, `G…` or `D…`, upper-case letters and digits).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Channel(String);

impl Channel {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = raw.len() >= 7
            && raw.len() <= 24
            && matches!(raw.as_bytes()[0], b'C' | b'G' | b'D')
            && raw
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "{raw:?} is not a Slack channel ID (like C0123ABCD: open the channel details in Slack, the ID is at the bottom)"
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A destination's `mention`: `here`, `channel` or a user group ID (`S…`).
pub fn is_mention(mention: &str) -> bool {
    mention_markup(mention).is_some()
}

/// The destination's configured mention as Slack markup, written by modbridge only.
fn mention_markup(mention: &str) -> Option<String> {
    match mention {
        "here" => Some("<!here>".into()),
        "channel" => Some("<!channel>".into()),
        m if m.len() > 1
            && m.starts_with('S')
            && m.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) =>
        {
            Some(format!("<!subteam^{m}>"))
        }
        _ => None,
    }
}
