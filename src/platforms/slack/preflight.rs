//! Slack preflight (`check --live`): what proves what.
//!
//! `auth.test` (any scope) proves the token; `conversations.info`
//! (`channels:read` for public channels, `groups:read` for private ones) shows
//! the channel exists and whether the bot is a member; `conversations.history`
//! (`limit=1`; `channels:history` / `groups:history` and membership) shows
//! whether a card whose answer was lost can be looked up before it is sent
//! again; only `--send-test` (`chat:write`, plus `chat:write.public` if the
//! bot is not a member) proves that cards arrive.

use super::{Channel, Client, TOKEN_ENV};
use crate::platforms::{Failure, MessageRef, Preflight, Target, present};

/// One line per finding: `ok:`, `warning:`, `error:`, `note:`.
pub async fn run(client: Option<&Client>, ask: &Preflight<'_>) -> Vec<String> {
    let (destinations, send_test) = (ask.destinations, ask.send_test);
    let mut lines = Vec::new();
    let mut channels: Vec<(&str, &Channel)> = Vec::new();
    for (name, target) in destinations {
        if let Target::Slack(ch) = target
            && !channels.iter().any(|(_, c)| *c == ch)
        {
            channels.push((name, ch));
        }
    }
    let Some(client) = client else {
        lines.push(if channels.is_empty() {
            format!("note: no Slack destination and no {TOKEN_ENV}: nothing to check on Slack")
        } else {
            format!(
                "error: {TOKEN_ENV} is not set: Slack destinations cannot be checked (or delivered)"
            )
        });
        return lines;
    };
    match client.auth_test().await {
        Ok(info) => lines.push(format!(
            "ok: slack: auth.test accepts {TOKEN_ENV} (workspace {:?}, bot user {:?}); this proves the token, not any channel",
            info.team.unwrap_or_default(),
            info.user.unwrap_or_default()
        )),
        Err(f) => {
            lines.push(format!("error: slack: auth.test: {}", describe(&f)));
            return lines;
        }
    }
    if channels.is_empty() {
        lines.push("note: slack: no destination sends to Slack".into());
    }
    for (name, channel) in channels {
        let at = format!("slack: {name} ({})", channel.as_str());
        let line = channel_line(client, channel, &at).await;
        let found = !line.starts_with("error:");
        lines.push(line);
        if found {
            lines.push(history_line(client, channel, &at).await);
        }
        if send_test {
            let card = present::test_card(name, &Target::Slack(channel.clone()));
            match client.deliver(&card, channel).await {
                Ok(MessageRef::Slack { ts, .. }) => lines.push(format!(
                    "ok: {at}: test card posted (ts {ts}): cards can be delivered here"
                )),
                Ok(other) => lines.push(format!("ok: {at}: test card posted ({other:?})")),
                Err(e) => lines.push(format!("error: {at}: test card not posted: {e}")),
            }
        }
    }
    lines
}

/// What `conversations.info` says about one channel.
async fn channel_line(client: &Client, channel: &Channel, at: &str) -> String {
    match client.channel_info(channel).await {
        Ok(info) => {
            let label = info
                .name
                .map(|n| format!("#{n}"))
                .unwrap_or_else(|| info.id.clone());
            if info.is_archived == Some(true) {
                format!(
                    "error: {at}: {label} is archived: unarchive it or send this destination elsewhere"
                )
            } else if info.is_member == Some(true) {
                format!(
                    "ok: {at}: {label} exists and the bot is a member (posting needs chat:write)"
                )
            } else if info.is_private == Some(true) {
                format!(
                    "error: {at}: the bot is not a member of private channel {label}: invite it (/invite @your-bot)"
                )
            } else {
                format!(
                    "warning: {at}: the bot is not a member of {label}: posting needs chat:write.public, or invite the bot (/invite @your-bot)"
                )
            }
        }
        Err(Failure::Config { code, .. }) if code == "missing_scope" => format!(
            "note: {at}: cannot look the channel up: the token lacks channels:read (public channels) / groups:read (private channels); only --send-test proves delivery"
        ),
        Err(f) => format!("error: {at}: conversations.info: {}", describe(&f)),
    }
}

/// Whether lost answers can be looked up in the channel's history.
async fn history_line(client: &Client, channel: &Channel, at: &str) -> String {
    const WITHOUT: &str = "a card whose answer is lost (a timeout after Slack got it) is sent again and may show twice (counted maybe_duplicate)";
    match client.history_probe(channel).await {
        Ok(()) => format!(
            "ok: {at}: conversations.history can be read: a card whose answer is lost is looked up before it is sent again"
        ),
        Err(Failure::Config { code, .. }) if code == "missing_scope" => format!(
            "warning: {at}: the token lacks channels:history (public channels) / groups:history (private channels): {WITHOUT}; add the scope and reinstall the app"
        ),
        Err(Failure::Config { code, .. }) if code == "not_in_channel" => format!(
            "warning: {at}: the bot is not a member, so it cannot read the channel's history: {WITHOUT}; invite the bot (/invite @your-bot)"
        ),
        Err(f) => format!(
            "warning: {at}: conversations.history: {}; until it works, {WITHOUT}",
            describe(&f)
        ),
    }
}

/// Slack's own words for a refused request.
fn describe(f: &Failure) -> String {
    match f {
        Failure::Rejected { code, .. } => format!("Slack refused the request ({code})"),
        other => other.describe("Slack"),
    }
}
