//! Moderator actions (buttons on cards): the secrets that authenticate a
//! click, from the environment only. `SLACK_SIGNING_SECRET` (the Slack app's
//! signing secret, Basic Information) and `DISCORD_PUBLIC_KEY` (the Discord
//! application's public key, General Information: 64 hex characters). A
//! platform without its secret has no interactions endpoint (404) and its
//! cards carry no buttons.
//!
//! `[triage] slack_users = ["U…"]` and `discord_roles = ["…"]` restrict who
//! may act (unset: anyone who can see the card). `case_ttl_days`
//! (`MODBRIDGE_CASE_TTL_DAYS`, default 14) is how long a case is kept after
//! its last change.

use std::time::Duration;

use serde::Deserialize;

use super::loader::Loader;
use crate::secret::Secret;

/// The Slack app's signing secret variable.
pub const SLACK_SIGNING_SECRET_ENV: &str = "SLACK_SIGNING_SECRET";
/// The Discord application's public key variable.
pub const DISCORD_PUBLIC_KEY_ENV: &str = "DISCORD_PUBLIC_KEY";
/// Overrides `[triage] escalate_after_minutes`.
pub const ESCALATE_AFTER_ENV: &str = "MODBRIDGE_ESCALATE_AFTER_MINUTES";
/// How often each replica looks for cases due a reminder.
pub const DEFAULT_ESCALATE_POLL: Duration = Duration::from_secs(5);

/// A Discord application's Ed25519 public key: 32 bytes, given as 64 hex
/// characters. Checked at start so that a bad copy fails loudly instead of
/// answering 401 to every click.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscordPublicKey([u8; 32]);

impl DiscordPublicKey {
    pub fn parse(hex_key: &str) -> Result<Self, &'static str> {
        let mut key = [0u8; 32];
        hex::decode_to_slice(hex_key.trim(), &mut key).map_err(|_| {
            "expected the application's public key: 64 hex characters (Developer Portal > General Information > Public Key)"
        })?;
        Ok(Self(key))
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// `[triage]` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTriage {
    slack_users: Option<Vec<String>>,
    discord_roles: Option<Vec<String>>,
    escalate_after_minutes: Option<u64>,
    case_ttl_days: Option<u64>,
}

/// What authenticates moderators' clicks, per platform (`None`: that
/// platform's interactions are off), who may act, how long cases are kept,
/// and when an unclaimed case is escalated.
#[derive(Debug, Clone)]
pub struct TriageSettings {
    pub slack_signing_secret: Option<Secret>,
    pub discord_public_key: Option<DiscordPublicKey>,
    /// Slack user IDs allowed to act (empty: anyone who sees the card).
    pub slack_users: Vec<String>,
    /// Discord role IDs whose members may act (empty: anyone).
    pub discord_roles: Vec<String>,
    /// A case still open this long after its first copy was posted gets one
    /// reminder (`escalate_after_minutes`; `None`: never). Tests set seconds.
    pub escalate_after: Option<Duration>,
    /// How often each replica looks for cases due a reminder
    /// ([`DEFAULT_ESCALATE_POLL`]; tests set less).
    pub escalate_poll: Duration,
    /// How long a case (its state, its copies, its card) is kept after its
    /// last change (`case_ttl_days`, default 14): a click after that is
    /// told the case has expired.
    pub case_ttl: std::time::Duration,
}

impl Default for TriageSettings {
    fn default() -> Self {
        Self {
            slack_signing_secret: None,
            discord_public_key: None,
            slack_users: Vec::new(),
            discord_roles: Vec::new(),
            escalate_after: None,
            escalate_poll: DEFAULT_ESCALATE_POLL,
            case_ttl: std::time::Duration::from_secs(14 * 86_400),
        }
    }
}

impl TriageSettings {
    pub(super) fn build(raw: RawTriage, l: &mut Loader) -> Self {
        let slack_users = raw.slack_users.unwrap_or_default();
        for u in &slack_users {
            let ok = (u.starts_with('U') || u.starts_with('W'))
                && (3..=20).contains(&u.len())
                && u.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
            if !ok {
                let key = l.key("triage.slack_users");
                l.problem(format!(
                    "{key}: {u:?} is not a Slack user ID (U0123ABCD: profile > ⋮ > Copy member ID)"
                ));
            }
        }
        let discord_roles = raw.discord_roles.unwrap_or_default();
        for r in &discord_roles {
            if !((17..=20).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_digit())) {
                let key = l.key("triage.discord_roles");
                l.problem(format!(
                    "{key}: {r:?} is not a Discord role ID (17–20 digits: Server Settings > Roles > … > Copy Role ID)"
                ));
            }
        }
        let slack_signing_secret =
            l.var(SLACK_SIGNING_SECRET_ENV)
                .and_then(|v| match Secret::new(v) {
                    Ok(s) => Some(s),
                    Err(why) => {
                        l.problem(format!("{SLACK_SIGNING_SECRET_ENV}: {why}"));
                        None
                    }
                });
        let discord_public_key =
            l.var(DISCORD_PUBLIC_KEY_ENV)
                .and_then(|v| match DiscordPublicKey::parse(&v) {
                    Ok(k) => Some(k),
                    Err(why) => {
                        l.problem(format!("{DISCORD_PUBLIC_KEY_ENV}: {why}"));
                        None
                    }
                });
        let escalate_after = match l.var(ESCALATE_AFTER_ENV) {
            Some(_) => Some(l.whole_number(ESCALATE_AFTER_ENV, None, 0)),
            None => raw.escalate_after_minutes,
        };
        if escalate_after == Some(0) {
            let key = l.key("triage.escalate_after_minutes");
            l.problem(format!(
                "{key} (or {ESCALATE_AFTER_ENV}) must be at least 1 (minutes a case may stay open before its reminder); leave it unset for no reminders"
            ));
        }
        let case_ttl_days = l.whole_number("MODBRIDGE_CASE_TTL_DAYS", raw.case_ttl_days, 14);
        if case_ttl_days == 0 {
            l.problem(
                "triage.case_ttl_days must be at least 1 (days a moderator case is kept after its last change)"
                    .to_owned(),
            );
        }
        Self {
            slack_signing_secret,
            discord_public_key,
            slack_users,
            discord_roles,
            escalate_after: escalate_after
                .filter(|&m| m > 0)
                .map(|m| Duration::from_secs(m.saturating_mul(60))),
            escalate_poll: DEFAULT_ESCALATE_POLL,
            case_ttl: std::time::Duration::from_secs(case_ttl_days.max(1).saturating_mul(86_400)),
        }
    }

    /// One line per platform for `check`: on, or which variable is missing.
    pub fn report(&self) -> Vec<String> {
        let mut lines = Vec::new();
        lines.push(match self.slack_signing_secret {
            Some(_) => "ok: Slack moderator buttons are on (SLACK_SIGNING_SECRET is set); Slack's interactivity Request URL is https://<host>/slack/interactions".to_owned(),
            None => format!("note: Slack moderator buttons are off: {SLACK_SIGNING_SECRET_ENV} is not set"),
        });
        lines.push(match self.discord_public_key {
            Some(_) => "ok: Discord moderator buttons are on (DISCORD_PUBLIC_KEY is set); Discord's Interactions Endpoint URL is https://<host>/discord/interactions".to_owned(),
            None => format!("note: Discord moderator buttons are off: {DISCORD_PUBLIC_KEY_ENV} is not set"),
        });
        if let Some(after) = self.escalate_after {
            lines.push(format!(
                "ok: cases still open {} min after their first card get one reminder on every copy (triage.escalate_after_minutes)",
                after.as_secs() / 60
            ));
        }
        lines
    }
}
