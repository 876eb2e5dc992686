//! `modbridge stats`: the real binary reads the outcome counters the
//! serving replicas keep in Redis (seeded here through the library's own
//! counting, `triage::stats::Stats`, on a real Redis).

use std::process::Command;
use std::time::Duration;

use modbridge::platforms::ModeratorAction as A;
use modbridge::triage::case::{Actor, Case};
use modbridge::triage::stats::{Fired, Stats};
use serde_json::Value;

use crate::helpers::*;

fn fired(rules: &str, name: &str) -> Fired {
    Fired {
        rules: rules.into(),
        name: name.into(),
    }
}

fn stats_command(redis_url: Option<&str>, args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_modbridge"));
    cmd.current_dir(dir.path())
        .arg("stats")
        .args(args)
        .env_remove("REDIS_URL")
        .env_remove("REDIS_SENTINELS")
        .env_remove("MODBRIDGE_CONFIG");
    if let Some(url) = redis_url {
        cmd.env("REDIS_URL", url);
    }
    cmd.output().unwrap()
}

#[tokio::test]
async fn stats_prints_precision_and_median_times_per_match() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let stats = Stats::new(app_store(&redis.url));
    let now_ms = chrono::Utc::now().timestamp_millis() as u64;
    let posted = now_ms - 3 * 3_600_000;
    let ana = Actor {
        platform: "slack".into(),
        id: "U0ANA".into(),
        name: "ana".into(),
    };
    let both = [fired("Spam", "pills"), fired("Everywhere", "forbidden")];
    let pills = [fired("Spam", "pills")];
    // Three pills cards: resolved, false positive, false positive; one of
    // them also matched "forbidden". A sensitive-group reason is never
    // handed in (the caller leaves it out).
    for (i, (reasons, action)) in [
        (&both[..], A::Resolve),
        (&pills[..], A::FalsePositive),
        (&pills[..], A::FalsePositive),
    ]
    .into_iter()
    .enumerate()
    {
        stats.card(reasons, posted).await.unwrap();
        let open = Case::open(posted);
        let claimed = open.apply(A::Claim, &ana, posted + 120_000).unwrap();
        stats.transition(reasons, &open, &claimed).await.unwrap();
        let closed = claimed
            .apply(action, &ana, posted + 600_000 * (i as u64 + 1))
            .unwrap();
        stats.transition(reasons, &claimed, &closed).await.unwrap();
    }

    // The format replicas share (pinned: old and new replicas count into
    // the same hashes): `modbridge:counts:stats:<day>`, fields
    // `<rules>\x1f<match>\x1f<what>`, with a TTL.
    let mut conn = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let day = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(posted as i64)
        .unwrap()
        .format("%Y-%m-%d");
    let key = format!("modbridge:counts:stats:{day}");
    let cards: i64 = redis::cmd("HGET")
        .arg(&key)
        .arg("Spam\u{1f}pills\u{1f}cards")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(cards, 3);
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 99 * 86_400, "kept 100 days: {ttl}");

    let out = stats_command(Some(&redis.url), &["--json", "--days", "7"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["days"], 7);
    let rows = doc["matches"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{doc:#}");
    let p = &rows[0];
    assert_eq!(
        (p["rules"].as_str(), p["match"].as_str()),
        (Some("Spam"), Some("pills"))
    );
    assert_eq!(
        (
            p["cards"].as_u64(),
            p["resolved"].as_u64(),
            p["false_positive"].as_u64()
        ),
        (Some(3), Some(1), Some(2))
    );
    let precision = p["precision"].as_f64().unwrap();
    assert!((precision - 1.0 / 3.0).abs() < 1e-9, "{precision}");
    assert_eq!(p["median_time_to_claim"], "≤ 5 min");
    // Closed after 10, 20 and 30 min: the median is in "≤ 1 h".
    assert_eq!(p["median_time_to_resolve"], "≤ 1 h");
    let f = &rows[1];
    assert_eq!(
        (f["match"].as_str(), f["precision"].as_f64()),
        (Some("forbidden"), Some(1.0))
    );

    let out = stats_command(Some(&redis.url), &[]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("last 30 day(s)"), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("Spam / pills"))
        .unwrap();
    assert!(line.contains("33 %") && line.contains("≤ 5 min"), "{line}");
}

#[test]
fn stats_without_redis_says_where_outcomes_are_kept() {
    let out = stats_command(None, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no Redis configured") && err.contains("REDIS_URL"),
        "{err}"
    );
    let out = stats_command(None, &["--days", "91"]);
    assert_eq!(out.status.code(), Some(64), "a usage error");
}

/// A scripted run through the real router, real Redis and the Slack fake:
/// two cards by one author; the first claimed and resolved by signed Slack
/// clicks, so the second card says "1 earlier card in 30 days: 1 resolved";
/// the second marked a false positive; `modbridge stats` then shows the
/// match with 2 cards, precision 50 %.
#[tokio::test]
async fn a_scripted_run_feeds_stats_and_the_next_card_shows_the_authors_history() {
    use crate::fake_slack::FakeSlack;
    use crate::triage::{SIGNING_SECRET, post_slack};
    use modbridge::platforms::slack::interaction::sign;
    use modbridge::triage::case::case_id;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let slack = FakeSlack::start("xoxb-1111-2222-fake").await;
    let app = spawn_with(AppOptions {
        redis_url: Some(redis.url.clone()),
        rules: "name = \"Everywhere\"\ngroups = [\"*\"]\nto = [\"slack:C0123ABCD\"]\n\n[[match]]\nname = \"forbidden\"\nkeywords = [\"forbidden phrase\"]\n".into(),
        config: String::new(),
        env: vec![
            ("SLACK_BOT_TOKEN", "xoxb-1111-2222-fake".into()),
            ("SLACK_API_URL", slack.base.clone()),
            ("SLACK_SIGNING_SECRET", SIGNING_SECRET.into()),
        ],
        live: true,
        ..Default::default()
    })
    .await;
    let click = |action: &str, case: &str| {
        let payload = serde_json::json!({
            "type": "block_actions",
            "user": {"id": "U0ANA", "username": "ana"},
            "actions": [{"action_id": action, "value": case, "type": "button"}]
        });
        let mut body = String::from("payload=");
        body.extend(url::form_urlencoded::byte_serialize(
            payload.to_string().as_bytes(),
        ));
        body
    };
    let deliver = |post: &'static str| {
        let body = post_body(post, "a forbidden phrase here");
        let app = &app;
        async move {
            let status = app
                .deliver_until_ok(&body, &format!("exec-{post}"), Duration::from_secs(30))
                .await;
            assert_eq!(status, 200);
        }
    };
    deliver("HIST-1").await;
    let first = slack.posted_in("C0123ABCD");
    assert_eq!(first.len(), 1);
    assert!(
        first[0]
            .to_string()
            .contains("No earlier cards for this author in 30 days"),
        "{}",
        first[0]
    );
    let case1 = case_id("01HQ0ABCDEF1234567890XYZ", "HIST-1");
    for (i, action) in ["case_claim", "case_resolve"].into_iter().enumerate() {
        let body = click(action, &case1);
        let t = now() + i as i64;
        let sig = sign(SIGNING_SECRET, t, body.as_bytes());
        let resp = post_slack(&app, body.as_bytes(), t, &sig).await;
        assert_eq!(resp.status(), 200, "{action}");
    }
    // The feedback is written right after the answer: wait until `stats`
    // sees it, then the next card of the same author reads it.
    let stats_json = || {
        let out = stats_command(Some(&redis.url), &["--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let started = std::time::Instant::now();
    while stats_json()["matches"][0]["resolved"] != 1 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:#}",
            stats_json()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    deliver("HIST-2").await;
    let second = slack.posted_in("C0123ABCD").last().unwrap().to_string();
    assert!(
        second.contains("1 earlier card in 30 days: 1 resolved"),
        "{second}"
    );
    let case2 = case_id("01HQ0ABCDEF1234567890XYZ", "HIST-2");
    let body = click("case_false_positive", &case2);
    let t = now();
    let sig = sign(SIGNING_SECRET, t, body.as_bytes());
    assert_eq!(
        post_slack(&app, body.as_bytes(), t, &sig).await.status(),
        200
    );
    let started = std::time::Instant::now();
    let doc = loop {
        let doc = stats_json();
        if doc["matches"][0]["false_positive"] == 1 {
            break doc;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{doc:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let row = &doc["matches"][0];
    assert_eq!(
        (row["rules"].as_str(), row["match"].as_str()),
        (Some("Everywhere"), Some("forbidden")),
        "{doc:#}"
    );
    assert_eq!(
        (row["cards"].as_u64(), row["resolved"].as_u64()),
        (Some(2), Some(1)),
        "{doc:#}"
    );
    assert_eq!(row["precision"].as_f64(), Some(0.5), "{doc:#}");
    assert_eq!(row["median_time_to_claim"], "≤ 1 min", "{doc:#}");
    assert_eq!(row["median_time_to_resolve"], "≤ 1 min", "{doc:#}");
    app.stop().await;
}
