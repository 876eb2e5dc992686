//! Where moderators' button clicks come in (the moderator-actions issue fills
//! this in): a request is verified on its raw bytes and parsed into a typed
//! [`Interaction`], and each platform builds its own answer from an
//! [`InteractionReply`]. Nothing is verified or accepted today: every platform
//! answers [`InteractionError::NotConfigured`].

use super::{discord, slack};

/// What a moderator asked for, with a button on a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeratorAction {
    Claim,
    Unclaim,
    Resolve,
    FalsePositive,
    Reopen,
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

/// What modbridge answers a click with; each platform turns it into its own
/// response (Slack: an ephemeral message or `replace_original`; Discord: an
/// interaction response of type 4, 6 or 7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InteractionReply {
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
}

/// Verifies a click request on its raw bytes and parses it. `platform` is
/// the path segment it arrived on (`/slack/interactions`, `/discord/interactions`).
pub fn verify_interaction(
    platform: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Interaction, InteractionError> {
    let _ = (headers, body);
    match platform {
        slack::PLATFORM => Err(InteractionError::NotConfigured {
            platform: slack::PLATFORM,
            what: "buttons on cards are not built yet (SLACK_SIGNING_SECRET would verify them)"
                .into(),
        }),
        _ => Err(InteractionError::NotConfigured {
            platform: discord::PLATFORM,
            what: "buttons on cards are not built yet (DISCORD_PUBLIC_KEY would verify them)"
                .into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_platform_says_interactions_are_not_configured() {
        for p in ["slack", "discord"] {
            let err = verify_interaction(p, &[], b"{}").unwrap_err();
            assert!(
                matches!(err, InteractionError::NotConfigured { .. }),
                "{err:?}"
            );
            assert!(err.to_string().contains("not configured"), "{err}");
        }
    }
}
