//! Spam waves (issue #14): a destination that gets cards faster than its
//! pace lists the rest in a digest message, edited in place; urgent cards
//! still go out on their own; every post lands exactly once; entries
//! recorded before a restart are shown after it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use modbridge::digest::Grouped;

use crate::helpers::*;

const RULES: &str = r#"
name = "Everywhere"
groups = ["*"]
to = ["slack:C0123ABCD"]

[[match]]
name = "forbidden"
keywords = ["forbidden phrase"]

[[match]]
name = "threat"
keywords = ["urgent phrase"]
severity = "urgent"
"#;

const CONFIG: &str =
    "[waves]\ndigest_after_secs = 3\nquiet_secs = 5\nedit_every_secs = 1\nmax_entries = 10\n";

fn options(url: &str) -> AppOptions {
    AppOptions {
        redis_url: Some(url.to_owned()),
        rules: RULES.into(),
        config: CONFIG.into(),
        ..AppOptions::default()
    }
}

/// Post IDs in each card and each digest entry (as last edited).
fn seen(app: &TestApp) -> (Vec<String>, Vec<(u32, Vec<String>)>) {
    let cards = app
        .recorder
        .cards()
        .into_iter()
        .map(|c| c.post_id)
        .collect();
    let digests = app
        .recorder
        .grouped()
        .into_iter()
        .filter_map(|(_, g)| match g {
            Grouped::Digest(d) => {
                Some((d.part, d.entries.into_iter().map(|e| e.post_id).collect()))
            }
            Grouped::Campaign(_) => None,
        })
        .collect();
    (cards, digests)
}

/// Waits until every post in `ids` was shown somewhere; returns how many
/// times each was shown.
async fn shown_within(app: &TestApp, ids: &[String], within: Duration) -> BTreeMap<String, usize> {
    let until = Instant::now() + within;
    loop {
        let (cards, digests) = seen(app);
        let mut count: BTreeMap<String, usize> = BTreeMap::new();
        for id in cards.iter().chain(digests.iter().flat_map(|(_, e)| e)) {
            *count.entry(id.clone()).or_default() += 1;
        }
        if ids.iter().all(|id| count.contains_key(id)) || Instant::now() > until {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_wave_becomes_a_digest_and_every_post_lands_once() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let app = spawn_with(options(&redis.url)).await;
    let mut ids = Vec::new();
    let mut slowest = Duration::ZERO;
    for i in 0..40 {
        let id = format!("P{i:03}");
        let text = if i == 20 || i == 30 {
            "this has the urgent phrase"
        } else {
            "this has the forbidden phrase"
        };
        let started = Instant::now();
        let (status, body) = answer(
            app.deliver(&post_body(&id, text), &format!("ex-{id}"))
                .await,
        )
        .await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(status, 200, "{id}: {body}");
        ids.push(id);
    }
    let count = shown_within(&app, &ids, Duration::from_secs(15)).await;
    for id in &ids {
        assert_eq!(
            count.get(id),
            Some(&1),
            "{id} shown {:?} times",
            count.get(id)
        );
    }
    let (cards, digests) = seen(&app);
    // The pace (1/s) takes about 3 s of queue: a few cards, then the digest;
    // the two urgent posts are cards of their own.
    assert!(
        cards.contains(&"P020".to_owned()) && cards.contains(&"P030".to_owned()),
        "{cards:?}"
    );
    assert!(cards.len() <= 8, "too many cards in a wave: {cards:?}");
    assert!(digests.len() >= 3, "40 posts, 10 per digest: {digests:?}");
    for (part, entries) in &digests {
        assert!(
            entries.len() <= 10,
            "part {part}: {} entries",
            entries.len()
        );
    }
    // Posting a digest entry never waits for the platform.
    assert!(
        slowest < Duration::from_secs(2),
        "slowest answer {slowest:?}"
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("modbridge_digest_entries_total"),
        "{metrics}"
    );
    assert!(metrics.contains("modbridge_digests_total"), "{metrics}");
    app.stop().await;
}

#[tokio::test]
async fn entries_recorded_before_a_restart_are_shown_after_it() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let app = spawn_with(options(&redis.url)).await;
    let mut ids = Vec::new();
    let mut in_digest = 0;
    for i in 0..15 {
        let id = format!("R{i:03}");
        let (status, body) = answer(
            app.deliver(&post_body(&id, "the forbidden phrase"), &format!("ex-{id}"))
                .await,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        in_digest += body["in_digest"].as_u64().unwrap_or(0);
        ids.push(id);
    }
    // Stopped before its writer's first edit (due a second after the first
    // entry): the entries are only in Redis.
    app.stop().await;
    assert!(in_digest >= 5, "{in_digest} posts went to the digest");
    let again = spawn_with(options(&redis.url)).await;
    let count = shown_within(&again, &ids, Duration::from_secs(10)).await;
    let (cards, digests) = seen(&again);
    let shown_after: usize = digests.iter().map(|(_, e)| e.len()).sum();
    assert_eq!(
        shown_after as u64, in_digest,
        "cards {cards:?} digests {digests:?} counts {count:?}"
    );
    again.stop().await;
}

fn authored(post_id: &str, author: &str, content: &str) -> String {
    serde_json::json!({
        "CustomerId": "01HQ0ABCDEF1234567890XYZ",
        "PostId": post_id,
        "GroupId": null,
        "User": {"Id": author, "DisplayName": format!("Name {author}"), "Username": author,
                 "CreatedAt": "2026-04-12T14:32:01Z", "Badges": []},
        "Content": content,
        "ImageUrl": null,
        "CreatedAt": "2026-05-08T14:32:01Z"
    })
    .to_string()
}

#[tokio::test]
async fn one_text_from_many_authors_becomes_one_campaign_card() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // No wave: a slow trickle, one post at a time.
    let app = spawn_with(AppOptions {
        config: "[waves]\ndigest_after_secs = 60\nedit_every_secs = 1\n".into(),
        ..options(&redis.url)
    })
    .await;
    let text = "Claim your prize now, send the forbidden phrase to our team today";
    for i in 0..6 {
        let id = format!("C{i}");
        let (status, body) = answer(
            app.deliver(
                &authored(&id, &format!("author{i}"), text),
                &format!("c-{i}"),
            )
            .await,
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    // A different text from one of them stays a card.
    let (status, _) = answer(
        app.deliver(
            &authored(
                "C9",
                "author1",
                "an unrelated forbidden phrase about the weather",
            ),
            "c-9",
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    let until = Instant::now() + Duration::from_secs(10);
    let campaign = loop {
        let found = app
            .recorder
            .grouped()
            .into_iter()
            .find_map(|(_, g)| match g {
                Grouped::Campaign(c) if c.posts == 6 => Some(c),
                _ => None,
            });
        if let Some(c) = found {
            break c;
        }
        assert!(
            Instant::now() < until,
            "no campaign card: {:?}",
            app.recorder.grouped()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let cards: Vec<String> = app
        .recorder
        .cards()
        .into_iter()
        .map(|c| c.post_id)
        .collect();
    // The first two authors went out as cards; from the third on, the campaign.
    assert_eq!(cards, ["C0", "C1", "C9"]);
    assert_eq!(campaign.authors.len(), 6, "{:?}", campaign.authors);
    let earlier: Vec<&str> = campaign
        .earlier
        .iter()
        .map(|e| e.post_id.as_str())
        .collect();
    assert_eq!(earlier, ["C0", "C1"]);
    assert_eq!(campaign.first.post_id, "C0");
    assert_eq!(app.recorder.grouped().len(), 1, "one campaign card, edited");
    app.stop().await;
}
