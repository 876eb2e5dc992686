//! Where cards go: named destinations from `modbridge.toml` and inline
//! `slack:C0123ABCD` / `discord:112233445566778899` specs from rules files.
//!
//! A [`Destination`] can only hold a well-formed channel: the checks happen in
//! [`Destinations::resolve`] and the config loader ([`Destination::from_raw`]),
//! nowhere else; its fields are private. What a platform's keys, inline
//! specs and mentions look like is the platform's business
//! (`platforms::Target`): this module only names and options destinations.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use crate::platforms::Target;
/// The platforms' channel types, under the names rules and tests use.
pub use crate::platforms::discord::Channel as DiscordChannel;
pub use crate::platforms::slack::Channel as SlackChannel;

/// How a destination's cards show the post's image (`images = "…"`): some
/// channels (self-harm, gore) must not show it unasked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Images {
    /// Embedded in the card (the default).
    #[default]
    Show,
    /// Hidden until a moderator asks: a Discord spoiler, a Slack button.
    Spoiler,
    /// Never embedded: a link only.
    Link,
}

impl Images {
    pub fn is_show(&self) -> bool {
        *self == Images::Show
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
    /// `show` (default), `spoiler` or `link`.
    #[serde(default)]
    pub images: Images,
}

/// A destination ready to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The name rules use: the `[destinations.NAME]` key, or the inline spec.
    name: String,
    target: Target,
    show_email: bool,
    show_phone: bool,
    /// Checked against the target platform's mention syntax.
    mention: Option<String>,
    images: Images,
}

impl Destination {
    /// A `[destinations.NAME]` table, checked (the config loader's way in).
    pub fn from_raw(name: &str, raw: RawDestination) -> Result<Self, String> {
        let keys: BTreeMap<String, String> = [
            ("slack", raw.slack),
            ("discord", raw.discord),
            ("discord_webhook_env", raw.discord_webhook_env),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_owned(), v?)))
        .collect();
        let target = Target::from_keys(&keys)?;
        if let Some(m) = &raw.mention {
            target.check_mention(m)?;
        }
        Ok(Self {
            name: name.to_owned(),
            target,
            show_email: raw.show_email,
            show_phone: raw.show_phone,
            mention: raw.mention,
            images: raw.images,
        })
    }

    /// The name rules use: the `[destinations.NAME]` key, or the inline spec.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Whether cards here show the author's email address.
    pub fn show_email(&self) -> bool {
        self.show_email
    }

    /// Whether cards here show the author's phone number.
    pub fn show_phone(&self) -> bool {
        self.show_phone
    }

    /// The configured mention (already checked against the platform's syntax).
    pub fn mention(&self) -> Option<&str> {
        self.mention.as_deref()
    }

    /// How cards here show the post's image.
    pub fn images(&self) -> Images {
        self.images
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
        let target = match Target::inline(spec) {
            Some(parsed) => parsed?,
            None => {
                let known = self.named.keys().map(String::as_str).collect::<Vec<_>>();
                let examples = Target::INLINE_EXAMPLES;
                return Err(if known.is_empty() {
                    format!(
                        "unknown destination {spec:?}: declare it as [destinations.{spec}] in modbridge.toml, or write {examples}"
                    )
                } else {
                    format!(
                        "unknown destination {spec:?}: declared ones are {}; or write {examples}",
                        known.join(", ")
                    )
                });
            }
        };
        Ok(Arc::new(Destination {
            name: spec.to_owned(),
            target,
            show_email: false,
            show_phone: false,
            mention: None,
            images: Images::Show,
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
            d.resolve("slack:C0123ABCD").unwrap().target().platform(),
            "slack"
        );
        assert_eq!(
            d.resolve("discord:112233445566778899").unwrap().target(),
            &Target::Discord(DiscordChannel::parse("112233445566778899").unwrap())
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
