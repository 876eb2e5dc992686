//! Where a card goes, as a value: [`Target`], one variant per delivery path,
//! with its text form (part of Redis keys and parked-card JSON), its parsing
//! from `[destinations.NAME]` keys and inline specs, its mention syntax and
//! the credential it needs. A leaf: it imports nothing of modbridge but the
//! platforms' channel-ID types, so cards can hold a `Target` while the
//! platforms render cards, without a cycle.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{discord, slack};

/// The platform channel a card is posted to. Its text form (`slack:C…`,
/// `discord:…`, `discord-webhook:$VAR`) is part of Redis keys and parked-card
/// JSON: it never changes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Target {
    Slack(slack::Channel),
    Discord(discord::Channel),
    /// A Discord incoming webhook whose URL (it holds a token) is read from this
    /// environment variable.
    DiscordWebhook {
        env: String,
    },
}

impl Target {
    /// Whether sending a card again is harmless when an earlier attempt may
    /// have reached the platform: Discord bot messages carry a nonce derived
    /// from the post and channel (`enforce_nonce`), so Discord answers a
    /// resend within its nonce window with the message it already created.
    /// Webhooks and Slack have no such key.
    pub fn resend_is_deduplicated(&self) -> bool {
        matches!(self, Target::Discord(_))
    }

    pub fn platform(&self) -> &'static str {
        match self {
            Target::Slack(_) => slack::PLATFORM,
            Target::Discord(_) | Target::DiscordWebhook { .. } => discord::PLATFORM,
        }
    }

    /// The inverse of `Display` (`slack:C…`, `discord:…`, `discord-webhook:$VAR`),
    /// for records written by this program (parked cards).
    pub fn parse(raw: &str) -> Result<Self, String> {
        match Self::inline(raw) {
            Some(parsed) => parsed,
            None => match raw.strip_prefix("discord-webhook:$") {
                Some(env) => Ok(Target::DiscordWebhook {
                    env: env.to_owned(),
                }),
                None => Err(format!("{raw:?} is not a destination target")),
            },
        }
    }

    /// An inline spec from a rules file (`slack:C0123ABCD`,
    /// `discord:112233445566778899`): `None` when `spec` names no platform.
    pub fn inline(spec: &str) -> Option<Result<Self, String>> {
        if let Some(ch) = spec.strip_prefix("slack:") {
            Some(slack::Channel::parse(ch).map(Target::Slack))
        } else {
            spec.strip_prefix("discord:")
                .map(|ch| discord::Channel::parse(ch).map(Target::Discord))
        }
    }

    /// What inline specs look like, for error messages.
    pub const INLINE_EXAMPLES: &'static str =
        "\"slack:C0123ABCD\" / \"discord:112233445566778899\"";

    /// The keys of a `[destinations.NAME]` table that name a platform target.
    pub const KEYS: [&'static str; 3] = ["slack", "discord", "discord_webhook_env"];

    /// The target a `[destinations.NAME]` table's platform keys name (every
    /// key of the table that is not a shared option such as `show_email`).
    pub fn from_keys(keys: &BTreeMap<String, String>) -> Result<Self, String> {
        if let Some(unknown) = keys.keys().find(|k| !Self::KEYS.contains(&k.as_str())) {
            return Err(format!(
                "unknown key `{unknown}`: a destination takes one of `slack`, `discord`, `discord_webhook_env`, and `show_email`, `show_phone`, `mention`"
            ));
        }
        let key = |k: &str| keys.get(k);
        match (key("slack"), key("discord"), key("discord_webhook_env")) {
            (Some(s), None, None) => slack::Channel::parse(s).map(Target::Slack),
            (None, Some(d), None) => discord::Channel::parse(d).map(Target::Discord),
            (None, None, Some(env)) if !env.trim().is_empty() => Ok(Target::DiscordWebhook {
                env: env.clone(),
            }),
            (None, None, None) => Err(
                "needs one of `slack = \"C0123ABCD\"`, `discord = \"112233445566778899\"` or `discord_webhook_env = \"VAR\"`"
                    .into(),
            ),
            _ => Err("set only one of `slack`, `discord`, `discord_webhook_env`".into()),
        }
    }

    /// Checks a destination's configured `mention` against this platform's syntax.
    pub fn check_mention(&self, mention: &str) -> Result<(), String> {
        let ok = match self {
            Target::Slack(_) => slack::is_mention(mention),
            Target::Discord(_) | Target::DiscordWebhook { .. } => discord::is_mention(mention),
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "mention {mention:?} is not valid here: Slack takes \"here\", \"channel\" or a user group ID like S0123ABCD; Discord takes a role ID (digits)"
            ))
        }
    }

    /// The environment variable without which nothing can be posted here.
    pub fn credential_env(&self) -> String {
        match self {
            Target::Slack(_) => slack::TOKEN_ENV.to_owned(),
            Target::Discord(_) => discord::TOKEN_ENV.to_owned(),
            Target::DiscordWebhook { env } => env.clone(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Slack(c) => write!(f, "slack:{}", c.as_str()),
            Target::Discord(c) => write!(f, "discord:{}", c.get()),
            Target::DiscordWebhook { env } => write!(f, "discord-webhook:${env}"),
        }
    }
}

/// Serialised as its text form, like every record written so far.
impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Target::parse(&raw).map_err(serde::de::Error::custom)
    }
}
