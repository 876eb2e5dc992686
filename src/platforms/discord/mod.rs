//! Discord: cards as embeds posted with serenity, as the bot or through
//! incoming webhooks.
//!
//! Architecture invariant: only this folder imports serenity or knows
//! Discord's endpoints, permissions, limits, error codes and mention syntax.
//! - `render.rs`: a card, a digest or a campaign → a message / webhook
//!   execution / edit (markup and limits only; the text pieces come from
//!   `platforms::present`);
//! - `api.rs`: the [`Client`] (post, edit, pacing, error classification);
//! - `preflight.rs`: `check --live` and `--send-test`.

mod api;
pub mod interaction;
pub mod preflight;
mod render;

pub use api::{Client, Endpoint, WebhookUrl, classify_status};
pub use render::{
    Rendered, escape, grouped_edit, grouped_message, grouped_nonce, grouped_payload,
    grouped_webhook, grouped_webhook_edit, limits, message, nonce, payload, render,
    webhook_execution, width,
};

/// The platform's name in errors, logs and metrics.
pub const PLATFORM: &str = "discord";
/// The bot token.
pub const TOKEN_ENV: &str = "DISCORD_BOT_TOKEN";
/// The API base, for tests and API-compatible gateways.
pub const API_URL_ENV: &str = "DISCORD_API_URL";
/// The real Discord API; any other `DISCORD_API_URL` is a proxy or a fake.
pub const DEFAULT_API_URL: &str = "https://discord.com";

/// A Discord channel ID (a snowflake: 17 to 20 digits).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Channel(u64);

impl Channel {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let digits = raw.len() >= 17 && raw.len() <= 20 && raw.bytes().all(|b| b.is_ascii_digit());
        match raw.parse::<u64>() {
            Ok(id) if digits && id > 0 => Ok(Self(id)),
            _ => Err(format!(
                "{raw:?} is not a Discord channel ID (17 to 20 digits: enable Developer Mode, right-click the channel, Copy Channel ID)"
            )),
        }
    }
    pub fn get(self) -> u64 {
        self.0
    }
}

/// A destination's `mention`: a role ID (digits).
pub fn is_mention(mention: &str) -> bool {
    !mention.is_empty() && mention.bytes().all(|b| b.is_ascii_digit())
}
