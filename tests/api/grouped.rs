//! Grouped messages (issue #14): a wave's digest and a campaign card posted
//! and then edited through `Sinks::post_grouped` / `update_grouped` against
//! the fake Slack and the fake Discord (bot and incoming webhook), and every
//! platform limit held for any entries.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use modbridge::card::{Card, Level};
use modbridge::destination::{DiscordChannel, SlackChannel, Target};
use modbridge::digest::{Campaign, Digest, Entry, Grouped};
use modbridge::platforms::{CardTag, MessageRef, Platforms, Sinks, discord, slack};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::discord::{char_boundary_ranges, random_text};
use crate::fake_discord::{BOT_TOKEN, CHANNEL, FakeDiscord, WEBHOOK_ID, check_body};
use crate::fake_slack::{FakeSlack, check_message};

const TOKEN: &str = "xoxb-1111-2222-fake";
const SLACK_CHANNEL: &str = "C0123ABCD";

fn entry(i: usize) -> Entry {
    let text = format!("post {i}: this has a forbidden phrase in it");
    let mut c = Card::example("slack:C0123ABCD", Some(&text));
    let at = text.find("forbidden phrase").unwrap_or(0);
    c.highlights.push(at..at + "forbidden phrase".len());
    c.post_id = format!("P{i}");
    c.post_url = Some(format!("https://community.example.com/posts/P{i}"));
    Entry::of(&c)
}

fn digest(target: Target, entries: usize) -> Grouped {
    Grouped::Digest(Digest {
        destination: "mods".into(),
        target,
        wave_started: Utc.with_ymd_and_hms(2026, 5, 8, 14, 0, 0).unwrap(),
        part: 1,
        entries: (0..entries).map(entry).collect(),
        full: false,
    })
}

fn tag() -> CardTag {
    CardTag::of("grouped\u{1f}mods\u{1f}1")
}

#[tokio::test]
async fn a_slack_digest_is_posted_tagged_then_edited_in_place() {
    let fake = FakeSlack::start(TOKEN).await;
    let client = slack::Client::new(TOKEN, &fake.base).unwrap();
    let sinks = Sinks::Platforms(Platforms::new(Some(client), None));
    let target = Target::Slack(SlackChannel::parse(SLACK_CHANNEL).unwrap());
    let posted = sinks
        .post_grouped(&digest(target.clone(), 2), Some(&tag()))
        .await
        .unwrap()
        .expect("Slack says where the message is");
    let MessageRef::Slack { channel, ts } = &posted else {
        panic!("{posted:?}")
    };
    let shown = fake.message(channel, ts).unwrap();
    assert_eq!(shown["text"], "🌊 Wave digest · 2 posts");
    assert_eq!(shown["metadata"]["event_payload"]["k"], tag().as_str());
    sinks
        .update_grouped(&posted, &digest(target, 3), Some(&tag()))
        .await
        .unwrap();
    let shown = fake.message(channel, ts).unwrap();
    assert_eq!(shown["text"], "🌊 Wave digest · 3 posts");
    assert_eq!(
        shown["blocks"][0]["text"]["text"],
        "🌊 Wave digest · 3 posts"
    );
    assert_eq!(
        shown["metadata"]["event_payload"]["k"],
        tag().as_str(),
        "the edit keeps the tag"
    );
    assert_eq!(
        fake.timestamps(SLACK_CHANNEL).len(),
        1,
        "edited, not posted again"
    );
    let calls: Vec<String> = fake
        .received()
        .iter()
        .map(|r| format!("{} {}", r.method, r.answer))
        .collect();
    assert_eq!(calls, ["chat.postMessage ok", "chat.update ok"]);
}

fn discord_sinks(fake: &FakeDiscord) -> Sinks {
    let hooks = BTreeMap::from([("MODS_HOOK".to_owned(), FakeDiscord::webhook_url())]);
    let client = discord::Client::new(Some(BOT_TOKEN), &fake.base, &hooks).unwrap();
    Sinks::Platforms(Platforms::new(None, Some(client)))
}

fn title(message: &Value) -> &str {
    message["embeds"][0]["title"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_discord_bot_digest_is_posted_with_a_nonce_then_edited_in_place() {
    let fake = FakeDiscord::start().await;
    let sinks = discord_sinks(&fake);
    let target = Target::Discord(DiscordChannel::parse(&CHANNEL.to_string()).unwrap());
    let first = digest(target.clone(), 2);
    let posted = sinks
        .post_grouped(&first, Some(&tag()))
        .await
        .unwrap()
        .unwrap();
    // A resend after a lost answer: the same nonce finds the same message.
    let again = sinks
        .post_grouped(&first, Some(&tag()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(posted, again);
    assert_eq!(fake.messages(CHANNEL).len(), 1);
    let sent = &fake.received()[0].body;
    assert_eq!(sent["nonce"], discord::grouped_nonce(&tag()));
    assert_eq!(sent["allowed_mentions"]["parse"], json!([]));
    sinks
        .update_grouped(&posted, &digest(target, 3), Some(&tag()))
        .await
        .unwrap();
    let messages = fake.messages(CHANNEL);
    assert_eq!(messages.len(), 1);
    assert_eq!(title(&messages[0]), "🌊 Wave digest · 3 posts");
    assert_eq!(
        messages[0]["embeds"][0]["fields"].as_array().unwrap().len(),
        3
    );
    assert!(fake.invalid().is_empty(), "{:?}", fake.invalid());
}

#[tokio::test]
async fn a_discord_webhook_campaign_is_posted_then_edited_in_place() {
    let fake = FakeDiscord::start().await;
    let sinks = discord_sinks(&fake);
    let campaign = |posts: u32, authors: usize| {
        Grouped::Campaign(Campaign {
            destination: "mods".into(),
            target: Target::DiscordWebhook {
                env: "MODS_HOOK".into(),
            },
            first: entry(0),
            posts,
            authors: (0..authors).map(|i| format!("Author {i}")).collect(),
            first_seen: Utc.with_ymd_and_hms(2026, 5, 8, 14, 0, 0).unwrap(),
            last_seen: Utc.with_ymd_and_hms(2026, 5, 8, 14, 5, 0).unwrap(),
            earlier: vec![entry(1)],
        })
    };
    let posted = sinks
        .post_grouped(&campaign(3, 3), Some(&tag()))
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(&posted, MessageRef::DiscordWebhook { env, .. } if env == "MODS_HOOK"));
    assert!(fake.received()[0].query.contains("wait=true"));
    sinks
        .update_grouped(&posted, &campaign(12, 11), Some(&tag()))
        .await
        .unwrap();
    let messages = fake.messages(WEBHOOK_ID);
    assert_eq!(messages.len(), 1);
    assert_eq!(title(&messages[0]), "📣 Campaign · 12 posts by 11 authors");
    let authors = &messages[0]["embeds"][0]["fields"][1]["value"];
    assert!(
        authors.as_str().unwrap().ends_with("Author 9 +1 more"),
        "{authors}"
    );
    assert!(fake.invalid().is_empty(), "{:?}", fake.invalid());
}

fn random_entry(rng: &mut StdRng, i: usize) -> Entry {
    let excerpt = rng.random_bool(0.9).then(|| random_text(rng, 200));
    let highlights = excerpt
        .as_deref()
        .map(|t| char_boundary_ranges(rng, t))
        .unwrap_or_default();
    Entry {
        post_id: random_text(rng, 50),
        author: random_text(rng, 500),
        username: rng.random_bool(0.8).then(|| random_text(rng, 500)),
        author_id: format!("U{i}"),
        excerpt,
        highlights,
        reason: random_text(rng, 1_000),
        level: [Level::Low, Level::Normal, Level::High, Level::Urgent][rng.random_range(0..4)],
        place: random_text(rng, 500),
        post_url: rng.random_bool(0.8).then(|| {
            let len = [10, 100, 3_000][rng.random_range(0..3)];
            format!(
                "https://community.example.com/posts/{}",
                random_text(rng, len)
            )
        }),
        posted_at: Utc
            .timestamp_opt(rng.random_range(0..2_000_000_000), 0)
            .unwrap(),
    }
}

fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Value::Object(m) => m.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// Discord's limits as each is specified (characters), beyond the schema.
fn discord_limits(v: &Value, case: &str) -> usize {
    use discord::limits;
    let len = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
    assert!(
        v.get("content").is_none_or(Value::is_null),
        "{case}: no content, no ping"
    );
    assert_eq!(v["allowed_mentions"]["parse"], json!([]), "{case}");
    let e = &v["embeds"][0];
    assert!(len(&e["title"]) <= limits::TITLE, "{case}");
    assert!(len(&e["description"]) <= limits::DESCRIPTION, "{case}");
    let fields = e["fields"].as_array().cloned().unwrap_or_default();
    assert!(fields.len() <= limits::FIELDS, "{case}");
    let mut total = len(&e["title"]) + len(&e["description"]) + len(&e["footer"]["text"]);
    for f in &fields {
        assert!(len(&f["name"]) <= limits::FIELD_NAME, "{case}");
        assert!(len(&f["value"]) <= limits::FIELD_VALUE, "{case}");
        total += len(&f["name"]) + len(&f["value"]);
    }
    assert!(total <= limits::EMBEDS_TOTAL, "{case}: {total}");
    fields.len()
}

/// Slack's: ≤ 50 blocks, each section text ≤ 3,000, no `<` anywhere (no
/// link or mention syntax: links are buttons).
fn slack_limits(v: &Value, case: &str) -> usize {
    assert_eq!(check_message(v), Ok(()), "{case}");
    let blocks = v["blocks"].as_array().unwrap();
    assert!(blocks.len() <= slack::limits::BLOCKS, "{case}");
    for b in blocks {
        if let Some(t) = b["text"]["text"].as_str() {
            assert!(slack::width(t) <= slack::limits::TEXT, "{case}");
        }
    }
    let mut all = Vec::new();
    strings(&v["blocks"], &mut all);
    strings(&v["text"], &mut all);
    for s in all.iter().filter(|s| !s.starts_with("http")) {
        assert!(!s.contains('<'), "{case}: live markup in {s:?}");
    }
    blocks.iter().filter(|b| b["type"] == "section").count()
}

#[test]
fn any_entries_stay_within_every_limit_and_25_always_fit() {
    let mut rng = StdRng::seed_from_u64(0x6_A7E5);
    let slack_target = Target::Slack(SlackChannel::parse(SLACK_CHANNEL).unwrap());
    let bot = Target::Discord(DiscordChannel::parse(&CHANNEL.to_string()).unwrap());
    let hook = Target::DiscordWebhook { env: "HOOK".into() };
    let now = Utc::now();
    for n in 1..=25 {
        let entries: Vec<Entry> = (0..n).map(|i| random_entry(&mut rng, i)).collect();
        let d = Digest {
            destination: random_text(&mut rng, 100),
            target: slack_target.clone(),
            wave_started: now,
            part: rng.random_range(1..1_000),
            entries: entries.clone(),
            full: rng.random_bool(0.5),
        };
        let c = Campaign {
            destination: random_text(&mut rng, 100),
            target: slack_target.clone(),
            first: random_entry(&mut rng, 99),
            posts: rng.random_range(1..100_000),
            authors: (0..rng.random_range(0..60))
                .map(|_| random_text(&mut rng, 300))
                .collect(),
            first_seen: now,
            last_seen: now,
            earlier: entries.iter().cycle().take(n * 2).cloned().collect(),
        };
        for target in [&slack_target, &bot, &hook] {
            let mut d = d.clone();
            d.target = target.clone();
            let mut c = c.clone();
            c.target = target.clone();
            for (g, what) in [
                (Grouped::Digest(d), "digest"),
                (Grouped::Campaign(c), "campaign"),
            ] {
                let case = format!("{n} entries, {what} to {target}");
                let body = modbridge::platforms::render_grouped(&g, now);
                let shown = match target {
                    Target::Slack(_) => slack_limits(&body, &case),
                    _ => {
                        let kind = if matches!(target, Target::Discord(_)) {
                            "message"
                        } else {
                            "webhook"
                        };
                        let problems = check_body(kind, &body);
                        assert!(problems.is_empty(), "{case}: {problems:?}");
                        discord_limits(&body, &case)
                    }
                };
                if what == "digest" {
                    assert_eq!(shown, n, "{case}: every entry of a digest of 25 shows");
                }
            }
            // The edits' bodies pass too.
            if let Target::Discord(_) = target {
                let g = Grouped::Digest(Digest {
                    target: target.clone(),
                    ..d_clone(&entries, now)
                });
                let edit = serde_json::to_value(discord::grouped_edit(&g)).unwrap();
                assert!(check_body("edit", &edit).is_empty(), "{n}");
                let edit = serde_json::to_value(discord::grouped_webhook_edit(&g)).unwrap();
                assert!(check_body("webhook_edit", &edit).is_empty(), "{n}");
            }
        }
    }
}

fn d_clone(entries: &[Entry], now: chrono::DateTime<Utc>) -> Digest {
    Digest {
        destination: "mods".into(),
        target: Target::DiscordWebhook { env: "HOOK".into() },
        wave_started: now,
        part: 1,
        entries: entries.to_vec(),
        full: true,
    }
}

#[test]
fn more_entries_than_fit_show_the_newest_and_say_how_many_are_not() {
    let slack_target = Target::Slack(SlackChannel::parse(SLACK_CHANNEL).unwrap());
    let bot = Target::Discord(DiscordChannel::parse(&CHANNEL.to_string()).unwrap());
    for target in [slack_target, bot] {
        let g = digest(target.clone(), 60);
        let body = modbridge::platforms::render_grouped(&g, Utc::now());
        let mut all = Vec::new();
        strings(&body, &mut all);
        let note = all
            .iter()
            .find(|s| s.contains("earlier entries not shown"))
            .unwrap_or_else(|| panic!("{target}: no note in {body}"));
        let shown = match target {
            Target::Slack(_) => slack_limits(&body, "60"),
            _ => discord_limits(&body, "60"),
        };
        assert!(
            note.contains(&format!("+{} earlier entries", 60 - shown)),
            "{note}"
        );
        // The newest is the last shown.
        assert!(body.to_string().contains("posts/P59"), "{target}");
        assert!(!body.to_string().contains("posts/P0\""), "{target}");
    }
}
