//! The spam-wave load test (issue #14's figure): the real binary, Redis with
//! persistence, a fake Slack that takes one message a second per channel
//! (bursts of 3) and `chat.update` 50 a minute, a fake Discord with its
//! 5-per-5-s channel windows and 50/s global limit. 600 matching posts in
//! 60 s to one Slack and one Discord channel: a third are one campaign text
//! from 50 accounts, 10 are urgent; Redis restarts at 20 s and modbridge is
//! killed (SIGKILL) and restarted at 40 s.
//!
//! Figures: every webhook ends 2xx, p99 of answers outside the kill; every
//! post shown exactly once per channel (a card, a digest entry, or counted
//! on the campaign card), from the fakes' final messages and the Redis
//! records; the urgent posts arrive as their own cards within 5 s; messages
//! per channel. Run: `cargo test --test api wave_load -- --ignored
//! --nocapture` (about 2 minutes).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use modbridge::dedupe::{CardRecord, DedupeStore, SentKey};
use serde_json::{Value, json};

use crate::chaos::Modbridge;
use crate::fake_discord::{BOT_TOKEN, FakeDiscord};
use crate::fake_slack::FakeSlack;
use crate::helpers::*;

const SLACK_TOKEN: &str = "xoxb-wave-token-0000";
const SLACK_CHANNEL: &str = "CWAVE0001";
const DISCORD_CHANNEL: u64 = 100000000000000077;
const CUSTOMER: &str = "01HQ0ABCDEF1234567890XYZ";
const POSTS: usize = 600;
const URGENT: [usize; 10] = [25, 85, 145, 205, 265, 325, 385, 445, 505, 565];

fn rules() -> String {
    format!(
        r#"name = "Raid"
groups = ["*"]
to = ["slack:{SLACK_CHANNEL}", "discord:{DISCORD_CHANNEL}"]

[[match]]
name = "spam"
keywords = ["cheap followers", "free phone"]

[[match]]
name = "threat"
keywords = ["meet me outside"]
severity = "urgent"
"#
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Campaign,
    Urgent,
    Spam,
}

fn kind(i: usize) -> Kind {
    if URGENT.contains(&i) {
        Kind::Urgent
    } else if i.is_multiple_of(3) {
        Kind::Campaign
    } else {
        Kind::Spam
    }
}

fn post_id(i: usize) -> String {
    format!("WAVE{i:05}X")
}

fn body(i: usize) -> String {
    let id = post_id(i);
    let (author, content) = match kind(i) {
        Kind::Campaign => (
            format!("camp{:02}", i % 50),
            format!(
                "Get a free phone today, just send your address to the giveaway team now https://giveaway.example/{id}"
            ),
        ),
        Kind::Urgent => (
            format!("angry{i}"),
            format!("{id} you will see, meet me outside the school"),
        ),
        Kind::Spam => (format!("spam{i}"), varied(i)),
    };
    json!({
        "CustomerId": CUSTOMER,
        "PostId": id,
        "GroupId": null,
        "User": {"Id": author, "DisplayName": format!("User {author}"), "Username": author,
                 "CreatedAt": "2026-04-12T14:32:01Z", "Badges": []},
        "Content": content,
        "ImageUrl": null,
        "CreatedAt": "2026-05-08T14:32:01Z"
    })
    .to_string()
}

/// A spam post unlike any other: twelve words drawn from a vocabulary of
/// 120 by the post's number, around the matched phrase.
fn varied(i: usize) -> String {
    const WORDS: &str = "apple river candle orbit velvet harbor meadow pencil thunder lantern \
        copper saddle puzzle garden mirror falcon ticket marble violin blanket \
        rocket tunnel pepper anchor cactus window hammer jungle kettle ladder \
        magnet nickel oyster parrot quartz ribbon salmon tomato umbrella vessel \
        walnut yogurt zipper bottle camera donkey engine forest guitar island \
        jacket kitten lemon mango needle onion pillow rabbit spider turtle \
        bucket circus dragon feather glacier helmet igloo jigsaw koala lizard \
        monkey napkin octopus pirate quiver robot scarf tiger unicorn vulture \
        wizard yacht zebra banjo cobalt dolphin eclipse fossil gravel horizon \
        ivory jasmine kayak lagoon meteor nectar opal pebble quilt raven \
        saffron tundra ultra vortex willow xenon yodel zenith breeze canyon \
        dune ember fjord geyser haze inlet jetty knoll ledge mesa";
    let words: Vec<&str> = WORDS.split_whitespace().collect();
    let mut state = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut pick = || {
        state ^= state >> 33;
        state = state.wrapping_mul(0xff51_afd7_ed55_8ccd);
        state ^= state >> 29;
        words[(state % words.len() as u64) as usize]
    };
    let before: Vec<&str> = (0..6).map(|_| pick()).collect();
    let after: Vec<&str> = (0..6).map(|_| pick()).collect();
    format!(
        "{} {} cheap followers {}",
        post_id(i),
        before.join(" "),
        after.join(" ")
    )
}

/// Every `WAVE#####X` in a JSON value's strings.
fn ids_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(i) = rest.find("WAVE") {
                let cand = &rest[i..];
                if cand.len() >= 10
                    && cand[4..9].bytes().all(|b| b.is_ascii_digit())
                    && cand.as_bytes()[9] == b'X'
                {
                    out.push(cand[..10].to_owned());
                }
                rest = &rest[i + 4..];
            }
        }
        Value::Array(a) => a.iter().for_each(|x| ids_in(x, out)),
        Value::Object(o) => o.values().for_each(|x| ids_in(x, out)),
        _ => {}
    }
}

fn all_text(v: &Value) -> String {
    let mut out = String::new();
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(o) => o.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(v, &mut out);
    out
}

/// One attempt's answer: when it was sent (since the start), how long it
/// took, its status (0: no answer).
#[derive(Debug, Clone, Copy)]
struct Attempt {
    at: Duration,
    took: Duration,
    status: u16,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "long: the spam-wave load test (about 2 minutes); run with --ignored"]
async fn wave_of_600_posts_lands_once_each_in_few_messages() {
    let Some(mut redis) = RedisServer::start_everysec() else {
        return;
    };
    let slack = FakeSlack::start(SLACK_TOKEN).await;
    slack.grant_history();
    slack.enforce_post_pace();
    let discord = FakeDiscord::start().await;
    discord.add_channel(DISCORD_CHANNEL);
    discord.enforce_limits();

    let dir = tempfile::tempdir().unwrap();
    let mut app = Modbridge::in_dir(
        dir.path(),
        ("raid", &rules()),
        "post_url = \"https://community.example.com/posts/{post_id}\"\n",
        &redis.url,
        vec![
            ("SLACK_BOT_TOKEN".into(), SLACK_TOKEN.into()),
            ("SLACK_API_URL".into(), slack.base.clone()),
            ("DISCORD_BOT_TOKEN".into(), BOT_TOKEN.into()),
            ("DISCORD_API_URL".into(), discord.base.clone()),
        ],
    );
    let port = app.port;
    app.spawn();

    let url = format!("http://127.0.0.1:{port}/webhooks/cativa");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let start = Instant::now();
    let attempts: Arc<Mutex<BTreeMap<usize, Vec<Attempt>>>> = Arc::default();
    let mut senders = Vec::new();
    for i in 0..POSTS {
        let (client, url, attempts) = (client.clone(), url.clone(), attempts.clone());
        senders.push(tokio::spawn(async move {
            tokio::time::sleep_until((start + Duration::from_millis(100 * i as u64)).into()).await;
            let body = body(i);
            let exec = format!("wave-{i}");
            let give_up = Instant::now() + Duration::from_secs(300);
            while Instant::now() < give_up {
                let sent = Instant::now();
                let resp = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-cativa-signature", sign(SECRET, now(), body.as_bytes()))
                    .header("x-cativa-execution-id", &exec)
                    .body(body.clone())
                    .send()
                    .await;
                let status = resp.as_ref().map_or(0, |r| r.status().as_u16());
                let wait = resp
                    .ok()
                    .and_then(|r| {
                        r.headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<f64>().ok())
                    })
                    .unwrap_or(1.0);
                attempts
                    .lock()
                    .unwrap()
                    .entry(i)
                    .or_default()
                    .push(Attempt {
                        at: sent - start,
                        took: sent.elapsed(),
                        status,
                    });
                if (200..300).contains(&status) {
                    return;
                }
                tokio::time::sleep(Duration::from_secs_f64(wait.clamp(0.2, 5.0))).await;
            }
        }));
    }

    // Faults on a schedule: Redis restarts at 20 s, modbridge is killed at 40 s.
    tokio::time::sleep_until((start + Duration::from_secs(20)).into()).await;
    let redis_restart = start.elapsed();
    redis.restart();
    tokio::time::sleep_until((start + Duration::from_secs(40)).into()).await;
    let kill_at = start.elapsed();
    app.kill9();
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.spawn();
    let back_at = start.elapsed();
    for s in senders {
        s.await.unwrap();
    }
    let sent_all = start.elapsed();

    // Let the digests catch up: until the channels are quiet for 30 s
    // (longer than the lease on a group the killed process had taken).
    let mut last = (0, 0, 0);
    let mut quiet_since = Instant::now();
    let settle_until = Instant::now() + Duration::from_secs(120);
    while Instant::now() < settle_until {
        let now_counts = (
            slack.received().len(),
            discord.received().len(),
            slack.timestamps(SLACK_CHANNEL).len(),
        );
        if now_counts != last {
            last = now_counts;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() > Duration::from_secs(30) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Answers.
    let attempts = attempts.lock().unwrap().clone();
    let unanswered: Vec<usize> = (0..POSTS)
        .filter(|i| {
            !attempts
                .get(i)
                .is_some_and(|a| a.iter().any(|x| (200..300).contains(&x.status)))
        })
        .collect();
    let near_kill = |a: &Attempt| {
        let end = a.at + a.took;
        end + Duration::from_secs(1) >= kill_at && a.at <= back_at + Duration::from_secs(3)
    };
    let mut ok_times: Vec<Duration> = attempts
        .values()
        .flatten()
        .filter(|a| (200..300).contains(&a.status) && !near_kill(a))
        .map(|a| a.took)
        .collect();
    ok_times.sort();
    let mut slowest: Vec<(Duration, Duration, u16)> = attempts
        .values()
        .flatten()
        .map(|a| (a.took, a.at, a.status))
        .collect();
    slowest.sort_by_key(|a| std::cmp::Reverse(a.0));
    slowest.truncate(12);
    let pct = |p: f64| ok_times[((ok_times.len() as f64 * p) as usize).min(ok_times.len() - 1)];
    let non_2xx = attempts
        .values()
        .flatten()
        .filter(|a| !(200..300).contains(&a.status))
        .count();

    // Where each post went, by its Redis record.
    let store = app_store(&redis.url);
    let targets = [
        format!("slack:{SLACK_CHANNEL}"),
        format!("discord:{DISCORD_CHANNEL}"),
    ];
    let mut records: BTreeMap<(usize, usize), String> = BTreeMap::new();
    for i in 0..POSTS {
        for (t, target) in targets.iter().enumerate() {
            let key = SentKey::new(format!("{CUSTOMER}\u{1f}{}\u{1f}{target}", post_id(i)));
            let what = match store.card(&key).await.unwrap() {
                Some(CardRecord::Sent { .. }) => "card".to_owned(),
                Some(CardRecord::InDigest { id }) if id.starts_with("campaign") => {
                    "campaign".into()
                }
                Some(CardRecord::InDigest { .. }) => "digest".into(),
                other => format!("{other:?}"),
            };
            records.insert((i, t), what);
        }
    }

    // What each channel shows now.
    let slack_messages: Vec<Value> = slack
        .timestamps(SLACK_CHANNEL)
        .iter()
        .filter_map(|ts| slack.message(SLACK_CHANNEL, ts))
        .collect();
    let discord_messages = discord.messages(DISCORD_CHANNEL);
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for (t, (name, messages)) in [("slack", &slack_messages), ("discord", &discord_messages)]
        .into_iter()
        .enumerate()
    {
        let mut shown: BTreeMap<String, usize> = BTreeMap::new();
        let mut campaign_posts = 0usize;
        let mut campaigns = 0;
        for m in messages.iter() {
            let text = all_text(m);
            if text.contains("Campaign") {
                campaigns += 1;
                println!(
                    "{name} campaign card: {}",
                    text.lines().find(|l| l.contains("Campaign")).unwrap_or("")
                );
                // "📣 Campaign · N posts by M authors" on its header.
                let header_posts = text
                    .find("Campaign · ")
                    .map(|at| &text[at + "Campaign · ".len()..])
                    .and_then(|rest| {
                        let digits: String =
                            rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                        digits.parse::<usize>().ok()
                    })
                    .unwrap_or(0);
                campaign_posts += header_posts;
                continue;
            }
            let mut ids = Vec::new();
            ids_in(m, &mut ids);
            ids.sort();
            ids.dedup();
            for id in ids {
                *shown.entry(id).or_default() += 1;
            }
        }
        let twice: Vec<_> = shown.iter().filter(|(_, n)| **n > 1).collect();
        let in_campaign = (0..POSTS)
            .filter(|i| records.get(&(*i, t)).is_some_and(|r| r == "campaign"))
            .count();
        let lost: Vec<String> = (0..POSTS)
            .map(post_id)
            .enumerate()
            .filter(|(i, id)| {
                !shown.contains_key(id) && records.get(&(*i, t)).is_none_or(|r| r != "campaign")
            })
            .map(|(_, id)| id)
            .collect();
        let urgent_late: Vec<String> = URGENT
            .iter()
            .filter(|i| records.get(&(**i, t)).is_none_or(|r| r != "card"))
            .map(|i| post_id(*i))
            .collect();
        let by_kind = |k: Kind| {
            (0..POSTS)
                .filter(|i| kind(*i) == k)
                .map(|i| records.get(&(i, t)).cloned().unwrap_or_default())
                .fold(BTreeMap::<String, usize>::new(), |mut m, r| {
                    *m.entry(r).or_default() += 1;
                    m
                })
        };
        report.push(format!(
            "{name}: {} messages ({campaigns} campaign cards showing {campaign_posts} posts, {in_campaign} recorded in a campaign); shown in cards/digests: {}; twice: {}; lost: {}; records spam {:?} campaign {:?} urgent {:?}",
            messages.len(),
            shown.len(),
            twice.len(),
            lost.len(),
            by_kind(Kind::Spam),
            by_kind(Kind::Campaign),
            by_kind(Kind::Urgent),
        ));
        if !twice.is_empty() {
            failures.push(format!("{name}: shown twice: {twice:?}"));
        }
        if !lost.is_empty() {
            failures.push(format!("{name}: lost: {lost:?}"));
        }
        if campaign_posts < in_campaign {
            failures.push(format!(
                "{name}: campaign cards show {campaign_posts} posts, {in_campaign} recorded"
            ));
        }
        if !urgent_late.is_empty() {
            failures.push(format!(
                "{name}: urgent posts not sent as cards: {urgent_late:?}"
            ));
        }
        if messages.len() > 40 {
            failures.push(format!("{name}: {} messages (at most 40)", messages.len()));
        }
    }
    // Urgent cards: from the post's first attempt to the card's arrival.
    let slack_received = slack.received();
    let mut urgent_delays = Vec::new();
    for i in URGENT {
        let first = attempts.get(&i).and_then(|a| a.first()).map(|a| a.at);
        let arrived = slack_received
            .iter()
            .find(|r| {
                r.method == "chat.postMessage" && r.answer == "ok" && {
                    let mut ids = Vec::new();
                    ids_in(&r.body, &mut ids);
                    ids.dedup();
                    ids == [post_id(i)]
                }
            })
            .map(|r| r.at.saturating_duration_since(start));
        if let (Some(first), Some(arrived)) = (first, arrived) {
            urgent_delays.push(arrived.saturating_sub(first));
        }
    }
    urgent_delays.sort();
    let log = std::fs::read_to_string(dir.path().join("modbridge.log")).unwrap_or_default();
    let waves_started = log.matches("wave started").count();
    for line in log.lines().filter(|l| l.contains("wave ")) {
        println!("log: {line}");
    }
    println!(
        "wave load: {POSTS} posts sent by {sent_all:?}; Redis restart at {redis_restart:?}, kill at {kill_at:?} (back {back_at:?})\n\
         answers: {} unanswered, {non_2xx} non-2xx attempts; 2xx outside the kill: p50 {:?} p99 {:?} max {:?} (n={})\n\
         urgent card delay (Slack): {urgent_delays:?}\n\
         waves started: {waves_started}\nslowest attempts (took, sent at, status): {slowest:?}\n{}",
        unanswered.len(),
        pct(0.5),
        pct(0.99),
        ok_times.last().copied().unwrap_or_default(),
        ok_times.len(),
        report.join("\n")
    );
    assert!(unanswered.is_empty(), "never answered 2xx: {unanswered:?}");
    assert!(
        pct(0.99) <= Duration::from_millis(100),
        "p99 {:?} over 100 ms",
        pct(0.99)
    );
    assert!(
        urgent_delays.len() == URGENT.len()
            && urgent_delays.iter().all(|d| *d <= Duration::from_secs(5)),
        "urgent cards late or missing: {urgent_delays:?}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
