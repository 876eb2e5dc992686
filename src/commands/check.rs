//! `modbridge check`: validate the configuration and every rules file,
//! printing every problem (not just the first) as `file:line:col: message`.
//! With `--live`, also ask Slack what it thinks of the token and channels
//! (and with `--send-test`, post a test card to each).

use std::path::Path;
use std::process::ExitCode;

use chrono::Utc;

use crate::card::{AuthorView, Card, ReasonView, Severity};
use crate::config::{ProcessEnv, Settings};
use crate::destination::{Destination, SlackChannel, Target};
use crate::rules::RuleSet;
use crate::sinks::slack::{Failure, SlackSink};

pub fn main(config: Option<&Path>, live: bool, send_test: bool) -> ExitCode {
    // Secrets are an operator's concern, not an admin's: check as for a dry run.
    let settings = match Settings::load(config, true, &ProcessEnv) {
        Ok(s) => s,
        Err(e) => {
            for line in e.0 {
                println!("error: {line}");
            }
            return ExitCode::FAILURE;
        }
    };
    match RuleSet::load_dir(&settings.rules_dir, &settings.destinations) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                println!("warning: {w}");
            }
            let used: std::collections::BTreeSet<String> = loaded
                .rules
                .destinations()
                .into_iter()
                .map(|d| d.name.clone())
                .collect();
            for d in settings.destinations.iter() {
                let alert = settings.alerts_to.as_deref() == Some(d.name.as_str());
                if !used.contains(&d.name) && !alert {
                    println!(
                        "warning: destination {:?} is declared but no rules file sends to it",
                        d.name
                    );
                }
            }
            println!(
                "ok: {} rules file(s) in {}",
                loaded.rules.files(),
                settings.rules_dir.display()
            );
            if !live {
                return ExitCode::SUCCESS;
            }
            let mut destinations: Vec<std::sync::Arc<Destination>> =
                settings.destinations.iter().cloned().collect();
            destinations.extend(loaded.rules.destinations());
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => {
                    println!("error: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let lines = runtime.block_on(live_check(&settings, &destinations, send_test));
            let mut ok = true;
            for line in lines {
                ok &= !line.starts_with("error:");
                println!("{line}");
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(errors) => {
            for d in &errors.0 {
                println!("error: {d}");
            }
            println!("{} error(s)", errors.0.len());
            ExitCode::FAILURE
        }
    }
}

/// Asks Slack about the token and every Slack destination; returns the report,
/// one line each (`ok:`, `warning:`, `error:`, `note:`).
///
/// What proves what: `auth.test` (any scope) proves the token; `conversations.info`
/// (`channels:read` for public channels, `groups:read` for private ones) shows
/// the channel exists and whether the bot is a member; only `--send-test`
/// (`chat:write`, plus `chat:write.public` if the bot is not a member) proves
/// that cards arrive.
pub async fn live_check(
    settings: &Settings,
    destinations: &[std::sync::Arc<Destination>],
    send_test: bool,
) -> Vec<String> {
    let mut lines = discord_live_check(settings, destinations).await;
    let mut channels: Vec<(String, SlackChannel)> = Vec::new();
    for d in destinations {
        match &d.target {
            Target::Slack(ch) => {
                if !channels.iter().any(|(_, c)| c == ch) {
                    channels.push((d.name.clone(), ch.clone()));
                }
            }
            // Checked by `discord_live_check`.
            Target::Discord(_) | Target::DiscordWebhook { .. } => {}
        }
    }
    let Some(token) = &settings.slack_bot_token else {
        if channels.is_empty() {
            lines.push(
                "note: no Slack destination and no SLACK_BOT_TOKEN: nothing to check on Slack"
                    .into(),
            );
        } else {
            lines.push("error: SLACK_BOT_TOKEN is not set: Slack destinations cannot be checked (or delivered)".into());
        }
        return lines;
    };
    let sink = match SlackSink::new(token.expose(), &settings.slack_api_url) {
        Ok(s) => s,
        Err(e) => {
            lines.push(format!("error: slack: {e}"));
            return lines;
        }
    };
    match sink.auth_test().await {
        Ok(info) => lines.push(format!(
            "ok: slack: auth.test accepts SLACK_BOT_TOKEN (workspace {:?}, bot user {:?}); this proves the token, not any channel",
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
    for (name, channel) in &channels {
        let at = format!("slack: {name} ({})", channel.as_str());
        match sink.channel_info(channel).await {
            Ok(info) => {
                let label = info.name.map(|n| format!("#{n}")).unwrap_or_else(|| info.id.clone());
                if info.is_archived == Some(true) {
                    lines.push(format!("error: {at}: {label} is archived: unarchive it or send this destination elsewhere"));
                } else if info.is_member == Some(true) {
                    lines.push(format!("ok: {at}: {label} exists and the bot is a member (posting needs chat:write)"));
                } else if info.is_private == Some(true) {
                    lines.push(format!("error: {at}: the bot is not a member of private channel {label}: invite it (/invite @your-bot)"));
                } else {
                    lines.push(format!("warning: {at}: the bot is not a member of {label}: posting needs chat:write.public, or invite the bot (/invite @your-bot)"));
                }
            }
            Err(Failure::Config { code, .. }) if code == "missing_scope" => lines.push(format!(
                "note: {at}: cannot look the channel up: the token lacks channels:read (public channels) / groups:read (private channels); only --send-test proves delivery"
            )),
            Err(f) => lines.push(format!("error: {at}: conversations.info: {}", describe(&f))),
        }
        if send_test {
            match sink.deliver(&test_card(name, channel), channel).await {
                Ok(posted) => lines.push(format!(
                    "ok: {at}: test card posted (ts {}): cards can be delivered here",
                    posted.ts
                )),
                Err(e) => lines.push(format!("error: {at}: test card not posted: {e}")),
            }
        }
    }
    lines
}

/// Discord: `GET /users/@me` proves `DISCORD_BOT_TOKEN`, `GET /channels/{id}`
/// that the bot can see each channel (posting there needs Send Messages and
/// Embed Links too, which only a real message proves). Webhook URLs are only
/// parsed: executing one would post a message.
async fn discord_live_check(
    settings: &Settings,
    destinations: &[std::sync::Arc<Destination>],
) -> Vec<String> {
    use crate::sinks::discord::{self, DiscordSink};
    let describe = |f: &discord::Failure| match f {
        discord::Failure::Config { code, fix } => format!("{code}: {fix}"),
        discord::Failure::RateLimited => "rate limited by Discord; try again in a minute".into(),
        discord::Failure::Transient(d) => format!("{d}; try again"),
        discord::Failure::Rejected(d) => d.clone(),
    };
    let mut lines = Vec::new();
    let mut channels = Vec::new();
    for d in destinations {
        match &d.target {
            Target::Discord(ch) if !channels.iter().any(|(_, c)| c == ch) => {
                channels.push((d.name.clone(), *ch));
            }
            Target::DiscordWebhook { env } => match settings.discord_webhooks.get(env) {
                None => lines.push(format!(
                    "error: discord: {}: ${env} is not set (it holds the webhook URL)",
                    d.name
                )),
                Some(url) => match discord::WebhookUrl::parse(url.expose()) {
                    Ok(hook) => lines.push(format!(
                        "ok: discord: {}: ${env} holds a webhook URL ({}); not called, as executing a webhook posts a message",
                        d.name,
                        hook.redacted()
                    )),
                    Err(e) => lines.push(format!("error: discord: {}: ${env} {e}", d.name)),
                },
            },
            _ => {}
        }
    }
    if channels.is_empty() {
        return lines;
    }
    let Some(token) = &settings.discord_bot_token else {
        lines.push("error: DISCORD_BOT_TOKEN is not set: Discord channel destinations cannot be checked (or delivered)".into());
        return lines;
    };
    let no_hooks = std::collections::BTreeMap::new();
    let sink = match DiscordSink::new(Some(token.expose()), &settings.discord_api_url, &no_hooks) {
        Ok(s) => s,
        Err(e) => {
            lines.push(format!("error: discord: {e}"));
            return lines;
        }
    };
    match sink.whoami().await {
        Ok(name) => lines.push(format!(
            "ok: discord: GET /users/@me accepts DISCORD_BOT_TOKEN (bot {name:?}); this proves the token, not any channel"
        )),
        Err(f) => {
            lines.push(format!("error: discord: GET /users/@me: {}", describe(&f)));
            return lines;
        }
    }
    for (name, channel) in &channels {
        match sink.channel_visible(channel.get()).await {
            Ok(()) => lines.push(format!(
                "ok: discord: {name} ({}): the bot can see the channel (Send Messages and Embed Links are proven only by a real card)",
                channel.get()
            )),
            Err(f) => lines.push(format!(
                "error: discord: {name} ({}): {}",
                channel.get(),
                describe(&f)
            )),
        }
    }
    lines
}

fn describe(f: &Failure) -> String {
    match f {
        Failure::Config { code, fix } => format!("{code}: {fix}"),
        Failure::RateLimited(_) => "rate limited by Slack; try again in a minute".into(),
        Failure::Transient(d) => format!("{d}; try again"),
        Failure::Rejected(code) => format!("Slack refused the request ({code})"),
    }
}

/// A card that says plainly it is a test (no mention: a test must not ping).
fn test_card(name: &str, channel: &SlackChannel) -> Card {
    let now = Utc::now();
    Card {
        destination: name.to_owned(),
        target: format!("slack:{}", channel.as_str()),
        severity: Severity::Flagged,
        headline: "TEST card from modbridge · not a real post".into(),
        place: "modbridge check --live --send-test".into(),
        author: AuthorView {
            name: "modbridge".into(),
            username: None,
            user_id: "-".into(),
            joined_at: None,
            badges: 0,
            email: None,
            phone: None,
        },
        content: Some(format!(
            "This is a test card sent by `modbridge check --live --send-test` to destination {name}. Nothing needs moderating: if you can read this, modbridge can post cards here."
        )),
        highlights: Vec::new(),
        image_url: None,
        reasons: vec![ReasonView {
            rules: "modbridge check".into(),
            name: "test card".into(),
            terms: Vec::new(),
        }],
        customer_id: "-".into(),
        post_id: format!("test-{}", now.timestamp()),
        group_id: None,
        posted_at: now,
        post_url: None,
        mention: None,
    }
}
