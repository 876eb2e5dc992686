//! The dry run: each card printed as one JSON line on standard output,
//! exactly the body the platform would receive ([`super::render`]).

use std::io::Write;

use super::{MessageRef, PlatformError, Reminder, Target};
use crate::card::Card;

/// Prints each card as one JSON object per line on standard output.
#[derive(Debug, Clone, Default)]
pub struct DryRun;

impl DryRun {
    pub fn deliver(&self, card: &Card, target: &Target) -> Result<(), PlatformError> {
        let failed = |e: &dyn std::fmt::Display| PlatformError::Transient {
            platform: "stdout",
            detail: e.to_string(),
            retry_after: None,
        };
        let line = serde_json::to_string(&super::render(card, target, chrono::Utc::now()))
            .map_err(|e| failed(&e))?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| failed(&e))
    }

    /// Prints a grouped message (a digest, a campaign card) as one JSON
    /// line: exactly the body its platform would receive
    /// ([`super::render_grouped`]).
    pub fn grouped(&self, grouped: &crate::digest::Grouped) -> Result<(), PlatformError> {
        let line = super::render_grouped(grouped, chrono::Utc::now());
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| PlatformError::Transient {
                platform: "stdout",
                detail: e.to_string(),
                retry_after: None,
            })
    }

    /// Prints a reminder as one JSON line: the message it answers and its text.
    pub fn reply(&self, message: &MessageRef, reminder: &Reminder) -> Result<(), PlatformError> {
        let line = serde_json::json!({
            "reply_to": message,
            "text": super::present::still_open(reminder.after),
            "mention": reminder.mention,
            "link": reminder.link,
        });
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| PlatformError::Transient {
                platform: "stdout",
                detail: e.to_string(),
                retry_after: None,
            })
    }
}
