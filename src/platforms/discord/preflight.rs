//! Discord preflight (`check --live`): `GET /users/@me` proves
//! `DISCORD_BOT_TOKEN`, `GET /channels/{id}` that the bot can see each
//! channel; posting there needs Send Messages and Embed Links too, which only
//! a real message proves (`--send-test`). Webhook URLs are only parsed unless
//! `--send-test` asks for a test card: executing a webhook posts a message.

use super::{Channel, Client, TOKEN_ENV};
use crate::platforms::{Preflight, Target, present};

/// One line per finding: `ok:`, `warning:`, `error:`, `note:`.
pub async fn run(client: Option<&Client>, ask: &Preflight<'_>) -> Vec<String> {
    let (destinations, send_test) = (ask.destinations, ask.send_test);
    let mut lines = Vec::new();
    let mut channels: Vec<(&str, Channel)> = Vec::new();
    let mut hooks: Vec<(&str, &Target)> = Vec::new();
    for (name, target) in destinations {
        match target {
            Target::Discord(ch) if !channels.iter().any(|(_, c)| c == ch) => {
                channels.push((name, *ch));
            }
            Target::DiscordWebhook { env } => {
                lines.push(webhook_line(client, name, env));
                hooks.push((name, target));
            }
            _ => {}
        }
    }
    if send_test && let Some(client) = client {
        for (name, target) in &hooks {
            lines.push(send_test_line(client, name, target, &format!("discord: {name}")).await);
        }
    }
    if channels.is_empty() {
        return lines;
    }
    let Some(client) = client.filter(|c| c.has_bot()) else {
        lines.push(format!("error: {TOKEN_ENV} is not set: Discord channel destinations cannot be checked (or delivered)"));
        return lines;
    };
    match client.whoami().await {
        Ok(name) => lines.push(format!(
            "ok: discord: GET /users/@me accepts {TOKEN_ENV} (bot {name:?}); this proves the token, not any channel"
        )),
        Err(f) => {
            lines.push(format!("error: discord: GET /users/@me: {}", f.describe("Discord")));
            return lines;
        }
    }
    for (name, channel) in channels {
        let at = format!("discord: {name} ({})", channel.get());
        match client.channel_visible(channel.get()).await {
            Ok(()) => lines.push(format!(
                "ok: {at}: the bot can see the channel (Send Messages and Embed Links are proven only by a real card)"
            )),
            Err(f) => lines.push(format!("error: {at}: {}", f.describe("Discord"))),
        }
        if send_test {
            lines.push(send_test_line(client, name, &Target::Discord(channel), &at).await);
        }
    }
    lines
}

/// Whether the webhook's variable holds a usable URL (never shown: it holds a token).
fn webhook_line(client: Option<&Client>, name: &str, env: &str) -> String {
    match client.and_then(|c| c.webhook_redacted(env)) {
        Some(redacted) => format!(
            "ok: discord: {name}: ${env} holds a webhook URL ({redacted}); not called without --send-test, as executing a webhook posts a message"
        ),
        None => format!("error: discord: {name}: ${env} is not set (it holds the webhook URL)"),
    }
}

async fn send_test_line(client: &Client, name: &str, target: &Target, at: &str) -> String {
    let card = present::test_card(name, target);
    match client.deliver(&card, target).await {
        Ok(message) => {
            format!("ok: {at}: test card posted ({message:?}): cards can be delivered here")
        }
        Err(e) => format!("error: {at}: test card not posted: {e}"),
    }
}
