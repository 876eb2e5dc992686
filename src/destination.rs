//! Where cards go: named destinations from `modbridge.toml` and inline
//! `slack:C0123ABCD` / `discord:112233445566778899` specs from rules files.
//!
//! A [`Destination`] can only hold a well-formed channel: the checks happen in
//! [`Destinations::resolve`] and the config loader, nowhere else.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;

/// A Slack channel ID (`C…`, `G…` or `D…`, upper-case letters and digits).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct SlackChannel(String);

impl SlackChannel {
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

/// A Discord channel ID (a snowflake: 17 to 20 digits).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct DiscordChannel(u64);

impl DiscordChannel {
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

/// The platform channel a card is posted to.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Target {
    Slack(SlackChannel),
    Discord(DiscordChannel),
    /// A Discord incoming webhook whose URL (it holds a token) is read from this
    /// environment variable.
    DiscordWebhook {
        env: String,
    },
}

impl Target {
    pub fn platform(&self) -> &'static str {
        match self {
            Target::Slack(_) => "slack",
            Target::Discord(_) | Target::DiscordWebhook { .. } => "discord",
        }
    }
}

impl Target {
    /// The inverse of `Display` (`slack:C…`, `discord:…`, `discord-webhook:$VAR`),
    /// for records written by this program (parked cards).
    pub fn parse(raw: &str) -> Result<Self, String> {
        if let Some(c) = raw.strip_prefix("slack:") {
            Ok(Target::Slack(SlackChannel::parse(c)?))
        } else if let Some(c) = raw.strip_prefix("discord:") {
            Ok(Target::Discord(DiscordChannel::parse(c)?))
        } else if let Some(env) = raw.strip_prefix("discord-webhook:$") {
            Ok(Target::DiscordWebhook {
                env: env.to_owned(),
            })
        } else {
            Err(format!("{raw:?} is not a destination target"))
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Slack(c) => write!(f, "slack:{}", c.0),
            Target::Discord(c) => write!(f, "discord:{}", c.0),
            Target::DiscordWebhook { env } => write!(f, "discord-webhook:${env}"),
        }
    }
}

/// A destination as written in `modbridge.toml` (`[destinations.NAME]`).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDestination {
    pub slack: Option<String>,
    pub discord: Option<String>,
    pub discord_webhook_env: Option<String>,
    #[serde(default)]
    pub show_email: bool,
    #[serde(default)]
    pub show_phone: bool,
    /// Slack: `here`, `channel` or a user group ID `S0123`; Discord: a role ID.
    pub mention: Option<String>,
}

/// A destination ready to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The name rules use: the `[destinations.NAME]` key, or the inline spec.
    pub name: String,
    pub target: Target,
    pub show_email: bool,
    pub show_phone: bool,
    pub mention: Option<String>,
}

impl Destination {
    pub fn from_raw(name: &str, raw: RawDestination) -> Result<Self, String> {
        let target = match (raw.slack, raw.discord, raw.discord_webhook_env) {
            (Some(s), None, None) => Target::Slack(SlackChannel::parse(&s)?),
            (None, Some(d), None) => Target::Discord(DiscordChannel::parse(&d)?),
            (None, None, Some(env)) if !env.trim().is_empty() => Target::DiscordWebhook { env },
            (None, None, None) => {
                return Err(
                    "needs one of `slack = \"C0123ABCD\"`, `discord = \"112233445566778899\"` or `discord_webhook_env = \"VAR\"`"
                        .into(),
                );
            }
            _ => return Err("set only one of `slack`, `discord`, `discord_webhook_env`".into()),
        };
        if let Some(m) = &raw.mention {
            check_mention(&target, m)?;
        }
        Ok(Self {
            name: name.to_owned(),
            target,
            show_email: raw.show_email,
            show_phone: raw.show_phone,
            mention: raw.mention,
        })
    }
}

fn check_mention(target: &Target, mention: &str) -> Result<(), String> {
    let ok = match target {
        Target::Slack(_) => {
            matches!(mention, "here" | "channel")
                || (mention.starts_with('S')
                    && mention.len() > 1
                    && mention
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()))
        }
        Target::Discord(_) | Target::DiscordWebhook { .. } => {
            !mention.is_empty() && mention.bytes().all(|b| b.is_ascii_digit())
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "mention {mention:?} is not valid here: Slack takes \"here\", \"channel\" or a user group ID like S0123ABCD; Discord takes a role ID (digits)"
        ))
    }
}

/// Every destination the configuration declares.
#[derive(Debug, Clone, Default)]
pub struct Destinations {
    named: BTreeMap<String, Arc<Destination>>,
}

impl Destinations {
    pub fn new(named: impl IntoIterator<Item = Destination>) -> Self {
        Self {
            named: named
                .into_iter()
                .map(|d| (d.name.clone(), Arc::new(d)))
                .collect(),
        }
    }

    /// Resolves a rules file's `to` entry: a declared name, or an inline
    /// `slack:CHANNEL` / `discord:CHANNEL` spec (default options).
    pub fn resolve(&self, spec: &str) -> Result<Arc<Destination>, String> {
        if let Some(d) = self.named.get(spec) {
            return Ok(d.clone());
        }
        let target = if let Some(ch) = spec.strip_prefix("slack:") {
            Target::Slack(SlackChannel::parse(ch)?)
        } else if let Some(ch) = spec.strip_prefix("discord:") {
            Target::Discord(DiscordChannel::parse(ch)?)
        } else {
            let known = self.named.keys().map(String::as_str).collect::<Vec<_>>();
            return Err(if known.is_empty() {
                format!(
                    "unknown destination {spec:?}: declare it as [destinations.{spec}] in modbridge.toml, or write \"slack:C0123ABCD\" / \"discord:112233445566778899\""
                )
            } else {
                format!(
                    "unknown destination {spec:?}: declared ones are {}; or write \"slack:C0123ABCD\" / \"discord:112233445566778899\"",
                    known.join(", ")
                )
            });
        };
        Ok(Arc::new(Destination {
            name: spec.to_owned(),
            target,
            show_email: false,
            show_phone: false,
            mention: None,
        }))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Destination>> {
        self.named.values()
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Destination>> {
        self.named.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_specs_resolve_and_bad_ones_explain() {
        let d = Destinations::default();
        assert_eq!(
            d.resolve("slack:C0123ABCD").unwrap().target.platform(),
            "slack"
        );
        assert_eq!(
            d.resolve("discord:112233445566778899").unwrap().target,
            Target::Discord(DiscordChannel(112233445566778899))
        );
        assert!(
            d.resolve("slack:general")
                .unwrap_err()
                .contains("not a Slack channel ID")
        );
        assert!(
            d.resolve("discord:12")
                .unwrap_err()
                .contains("not a Discord channel ID")
        );
        assert!(
            d.resolve("urgent")
                .unwrap_err()
                .contains("[destinations.urgent]")
        );
    }

    #[test]
    fn targets_round_trip_through_display() {
        for t in [
            Target::Slack(SlackChannel::parse("C0123ABCD").unwrap()),
            Target::Discord(DiscordChannel::parse("112233445566778899").unwrap()),
            Target::DiscordWebhook {
                env: "MODS_HOOK".into(),
            },
        ] {
            assert_eq!(Target::parse(&t.to_string()), Ok(t));
        }
        assert!(Target::parse("email:x").is_err());
    }

    #[test]
    fn raw_destination_needs_exactly_one_target() {
        let both = RawDestination {
            slack: Some("C0123ABCD".into()),
            discord: Some("112233445566778899".into()),
            ..Default::default()
        };
        assert!(
            Destination::from_raw("x", both)
                .unwrap_err()
                .contains("only one")
        );
        assert!(Destination::from_raw("x", RawDestination::default()).is_err());
        let bad_mention = RawDestination {
            slack: Some("C0123ABCD".into()),
            mention: Some("<!everyone>".into()),
            ..Default::default()
        };
        assert!(Destination::from_raw("x", bad_mention).is_err());
    }
}
