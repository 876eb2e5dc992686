//! Where moderators' button clicks come in. A request is verified on its raw
//! bytes by the platform it arrived from ([`Interactions::verify`]: Slack's
//! `v0` HMAC, Discord's Ed25519; forged or stale → [`InteractionError::Unauthentic`],
//! nothing parsed), and only then parsed into a typed [`Inbound`]
//! ([`Verified::parse`]). Each platform builds its own answer from an
//! [`InteractionReply`] ([`answer`]). A platform whose secret is not set
//! answers [`InteractionError::NotConfigured`] (404).

use super::{MessageRef, discord, slack};
use crate::config::{
    DISCORD_PUBLIC_KEY_ENV, DiscordPublicKey, SLACK_SIGNING_SECRET_ENV, TriageSettings,
};
use crate::secret::Secret;

/// How far a request's timestamp may be from now (either way), in seconds.
pub const FRESHNESS_SECS: i64 = 5 * 60;

/// What a moderator asked for, with a button on a card (kept in a case's
/// record as its `as_str` word).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModeratorAction {
    Claim,
    Unclaim,
    Resolve,
    FalsePositive,
    Reopen,
}

impl ModeratorAction {
    pub const ALL: [ModeratorAction; 5] = [
        ModeratorAction::Claim,
        ModeratorAction::Unclaim,
        ModeratorAction::Resolve,
        ModeratorAction::FalsePositive,
        ModeratorAction::Reopen,
    ];

    /// The word a button carries (and audit lines print).
    pub fn as_str(self) -> &'static str {
        match self {
            ModeratorAction::Claim => "claim",
            ModeratorAction::Unclaim => "unclaim",
            ModeratorAction::Resolve => "resolve",
            ModeratorAction::FalsePositive => "false_positive",
            ModeratorAction::Reopen => "reopen",
        }
    }

    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == word)
    }
}

/// Whether `v` can be a case ID: 1 to 64 lowercase hex digits (case IDs are
/// digests; a button never carries anything else).
pub fn is_case_id(v: &str) -> bool {
    (1..=64).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A verified click: an opaque case ID (button values carry nothing else),
/// the action, and who clicked (the platform's user ID and handle: untrusted
/// text, escaped like post text wherever it is shown).
#[derive(Clone, PartialEq, Eq)]
pub struct Interaction {
    pub platform: &'static str,
    pub case_id: String,
    pub action: ModeratorAction,
    pub moderator_id: String,
    pub moderator_name: String,
    /// The clicking member's role IDs (Discord guild clicks; empty on Slack).
    pub roles: Vec<String>,
    /// The copy that was clicked, when the platform says where it is.
    pub message: Option<MessageRef>,
    /// Slack's `response_url` (ephemeral answers, replace_original): valid
    /// for 30 minutes, a capability: never logged.
    pub response_url: Option<String>,
}

/// IDs only: a moderator's name is personal data.
impl std::fmt::Debug for Interaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interaction")
            .field("platform", &self.platform)
            .field("case_id", &self.case_id)
            .field("action", &self.action)
            .field("moderator_id", &self.moderator_id)
            .finish_non_exhaustive()
    }
}

/// A verified request, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// Discord checking the endpoint: answer PONG.
    Ping,
    /// A click on one of modbridge's buttons.
    Click(Interaction),
    /// Anything else (Slack's "Open post" link button, other interaction
    /// types): acknowledge and do nothing.
    Ignored,
}

/// What modbridge answers a click with; each platform turns it into its own
/// response (Slack: an ephemeral message or `replace_original`; Discord: an
/// interaction response of type 1, 4, 6 or 7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InteractionReply {
    /// Discord's PING.
    Pong,
    /// Acknowledge; the card is updated separately.
    Acknowledge,
    /// Tell only the clicking moderator (for example "already claimed by @ana").
    Ephemeral(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InteractionError {
    /// The platform's interactions are not set up: answer 404.
    #[error("{platform} interactions are not configured: {what}")]
    NotConfigured {
        platform: &'static str,
        what: String,
    },
    /// Forged, stale or replayed: answer 401 before parsing anything.
    #[error("the {platform} interaction request is not authentic")]
    Unauthentic { platform: &'static str },
    /// Authentic but not what the platform sends: answer 400.
    #[error("the {platform} interaction cannot be read: {detail}")]
    Malformed {
        platform: &'static str,
        detail: String,
    },
}

/// The secrets that authenticate clicks, per platform, built once at start.
#[derive(Debug, Clone, Default)]
pub struct Interactions {
    slack: Option<Secret>,
    discord: Option<DiscordPublicKey>,
    slack_users: Vec<String>,
    discord_roles: Vec<String>,
    /// Slack's `response_url` calls.
    http: reqwest::Client,
}

/// A request whose signature checked out: its replay key (the same request
/// sent twice has the same one) and the raw body, not yet parsed.
#[derive(Debug)]
pub struct Verified<'a> {
    platform: &'static str,
    replay_key: String,
    body: &'a [u8],
}

impl Interactions {
    pub fn new(settings: &TriageSettings) -> Self {
        Self {
            slack: settings.slack_signing_secret.clone(),
            discord: settings.discord_public_key,
            slack_users: settings.slack_users.clone(),
            discord_roles: settings.discord_roles.clone(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
        }
    }

    /// Says `text` to the clicking moderator alone where the platform wants
    /// that done apart from the HTTP answer (Slack: the click's
    /// `response_url`); Discord's ephemeral answer is the HTTP answer itself.
    pub async fn tell_privately(&self, click: &Interaction, text: &str) -> Result<(), String> {
        match (click.platform, &click.response_url) {
            (slack::PLATFORM, Some(url)) => {
                slack::interaction::respond_ephemeral(&self.http, url, text).await
            }
            _ => Ok(()),
        }
    }

    /// Whether the clicking moderator may act (`[triage] slack_users`,
    /// `discord_roles`; unset: anyone who can see the card).
    pub fn allows(&self, click: &Interaction) -> bool {
        match click.platform {
            slack::PLATFORM => {
                self.slack_users.is_empty() || self.slack_users.contains(&click.moderator_id)
            }
            _ => {
                self.discord_roles.is_empty()
                    || click.roles.iter().any(|r| self.discord_roles.contains(r))
            }
        }
    }

    /// Whether cards for `platform` may carry buttons (its secret is set).
    pub fn enabled(&self, platform: &str) -> bool {
        match platform {
            slack::PLATFORM => self.slack.is_some(),
            discord::PLATFORM => self.discord.is_some(),
            _ => false,
        }
    }

    /// Verifies a click request on its raw bytes (`headers` with lowercase
    /// names; `now` in Unix seconds). `platform` is the path segment it
    /// arrived on (`/slack/interactions`, `/discord/interactions`).
    pub fn verify<'a>(
        &self,
        platform: &str,
        headers: &[(String, String)],
        body: &'a [u8],
        now: i64,
    ) -> Result<Verified<'a>, InteractionError> {
        let (platform, replay_key) = match platform {
            slack::PLATFORM => {
                let secret = self.slack.as_ref().ok_or(InteractionError::NotConfigured {
                    platform: slack::PLATFORM,
                    what: format!("{SLACK_SIGNING_SECRET_ENV} is not set"),
                })?;
                (
                    slack::PLATFORM,
                    slack::interaction::verify(secret, headers, body, now)?,
                )
            }
            _ => {
                let key = self
                    .discord
                    .as_ref()
                    .ok_or(InteractionError::NotConfigured {
                        platform: discord::PLATFORM,
                        what: format!("{DISCORD_PUBLIC_KEY_ENV} is not set"),
                    })?;
                (
                    discord::PLATFORM,
                    discord::interaction::verify(key, headers, body, now)?,
                )
            }
        };
        Ok(Verified {
            platform,
            replay_key,
            body,
        })
    }
}

impl Verified<'_> {
    pub fn platform(&self) -> &'static str {
        self.platform
    }

    /// Names the request for the replay guard (`DedupeStore::first_sighting`).
    pub fn replay_key(&self) -> &str {
        &self.replay_key
    }

    pub fn parse(&self) -> Result<Inbound, InteractionError> {
        match self.platform {
            slack::PLATFORM => slack::interaction::parse(self.body),
            _ => discord::interaction::parse(self.body),
        }
    }
}

/// The HTTP status and JSON body (if any) answering a request from `platform`.
pub fn answer(platform: &str, reply: &InteractionReply) -> (u16, Option<serde_json::Value>) {
    match platform {
        slack::PLATFORM => slack::interaction::answer(reply),
        _ => discord::interaction::answer(reply),
    }
}

/// A header's value by lowercase name.
pub(crate) fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The signed timestamp and signature headers of a request, the timestamp
/// within [`FRESHNESS_SECS`] of `now` either way (one freshness rule for
/// every platform): `(timestamp as sent, signature)`, or unauthentic.
pub(crate) fn signed_headers<'h>(
    platform: &'static str,
    headers: &'h [(String, String)],
    timestamp: &str,
    signature: &str,
    now: i64,
) -> Result<(&'h str, &'h str), InteractionError> {
    let unauthentic = || InteractionError::Unauthentic { platform };
    let (Some(ts), Some(sig)) = (header(headers, timestamp), header(headers, signature)) else {
        return Err(unauthentic());
    };
    let t: i64 = ts.trim().parse().map_err(|_| unauthentic())?;
    if (now - t).abs() > FRESHNESS_SECS {
        return Err(unauthentic());
    }
    Ok((ts, sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_platform_without_its_secret_is_not_configured_and_says_which_variable() {
        let off = Interactions::default();
        for (p, var) in [
            ("slack", SLACK_SIGNING_SECRET_ENV),
            ("discord", DISCORD_PUBLIC_KEY_ENV),
        ] {
            assert!(!off.enabled(p));
            let err = off.verify(p, &[], b"{}", 0).unwrap_err();
            assert!(
                matches!(err, InteractionError::NotConfigured { .. }),
                "{err:?}"
            );
            assert!(err.to_string().contains(var), "{err}");
        }
    }

    #[test]
    fn actions_round_trip_and_case_ids_are_hex_only() {
        for a in ModeratorAction::ALL {
            assert_eq!(ModeratorAction::parse(a.as_str()), Some(a));
        }
        assert_eq!(ModeratorAction::parse("delete"), None);
        assert!(is_case_id("0123456789abcdef"));
        for bad in ["", "ABC", "12 3", "<@U1>", &"a".repeat(65)] {
            assert!(!is_case_id(bad), "{bad}");
        }
    }
}
