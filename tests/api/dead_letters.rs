//! Cards a platform refuses as malformed become dead letters: answered 200
//! `dead_letter`, never sent again on their own, and they neither open the
//! destination's circuit nor hold back the cards behind them. `modbridge
//! parked` lists them with an ID; `parked drop ID` and `replay ID` act on one.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::fake_slack::{FakeSlack, Next};
use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_modbridge");
const SLACK_TOKEN: &str = "xoxb-1111-2222-fake";
const CONFIG: &str = "post_url = \"https://community.example.com/posts/{post_id}\"\n";

/// The CLI against the same Redis and fake Slack, in `dir` (no config file).
fn cli(dir: &Path, redis: &RedisServer, slack: &FakeSlack, args: &[&str]) -> (bool, String) {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("test.toml"), DEFAULT_RULES).unwrap();
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("REDIS_URL", &redis.url)
        .env("MODBRIDGE_RULES", &rules)
        .env("SLACK_BOT_TOKEN", SLACK_TOKEN)
        .env("SLACK_API_URL", &slack.base)
        .output()
        .expect("modbridge runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// How many accepted Slack posts link to post `id`.
fn posted_for(slack: &FakeSlack, id: &str) -> usize {
    let link = format!("/posts/{id}\"");
    slack
        .posted()
        .iter()
        .filter(|b| b.to_string().contains(&link))
        .count()
}

// Several threads: the CLI runs blocking while the fake Slack answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_card_is_a_dead_letter_and_the_cards_behind_it_arrive() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let slack = FakeSlack::start(SLACK_TOKEN).await;
    let app = spawn_with(AppOptions {
        redis_url: Some(redis.url.clone()),
        config: CONFIG.into(),
        env: vec![
            ("SLACK_BOT_TOKEN", SLACK_TOKEN.into()),
            ("SLACK_API_URL", slack.base.clone()),
            ("MODBRIDGE_PROBE_INTERVAL_SECS", "2".into()),
        ],
        live: true,
        ..Default::default()
    })
    .await;

    // Slack refuses the first card as malformed.
    slack.then(Next::Error("invalid_blocks"));
    let poison = post_body("POISON", "forbidden phrase");
    let (status, json) = answer(app.deliver(&poison, "poison-1").await).await;
    assert_eq!(
        (status, json["status"].as_str()),
        (200, Some("dead_letter")),
        "{json}"
    );
    // Cativa's retry, or a second listener: answered the same, not sent.
    let (status, json) = answer(app.deliver(&poison, "poison-2").await).await;
    assert_eq!(
        (status, json["status"].as_str()),
        (200, Some("dead_letter")),
        "{json}"
    );

    // The scenario: 5 later cards to the same channel, one every 1.5 s.
    for i in 1..=5 {
        let id = format!("AFTER-{i}");
        let (status, json) =
            answer(app.deliver(&post_body(&id, "forbidden phrase"), &id).await).await;
        assert_eq!(
            (status, json["cards"].as_u64()),
            (200, Some(1)),
            "{id}: {json}"
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    for i in 1..=5 {
        assert_eq!(posted_for(&slack, &format!("AFTER-{i}")), 1, "AFTER-{i}");
    }
    assert_eq!(
        posted_for(&slack, "POISON"),
        0,
        "a dead letter is not resent"
    );
    // Its record and its listing, in Redis.
    let mut conn = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let record: String = redis::cmd("GET")
        .arg("modbridge:card:01HQ0ABCDEF1234567890XYZ\u{1f}POISON\u{1f}slack:C0123ABCD")
        .query_async(&mut conn)
        .await
        .unwrap();
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(record["state"], "dead_letter", "{record}");
    assert!(
        record["reason"]
            .as_str()
            .unwrap()
            .contains("invalid_blocks"),
        "{record}"
    );
    let lists: Vec<String> = redis::cmd("SMEMBERS")
        .arg("modbridge:parked-targets")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(lists, ["dead-letter:slack:C0123ABCD"]);
    let (_, ready) = answer(app.get(format!("{}/readyz", app.base)).await).await;
    assert_eq!(ready["status"], "ready", "no circuit opened: {ready}");

    // `modbridge parked` lists it with an ID, the target, the reason.
    let dir = tempfile::tempdir().unwrap();
    let (ok, listing) = cli(dir.path(), &redis, &slack, &["parked"]);
    assert!(ok, "{listing}");
    let line = listing
        .lines()
        .find(|l| l.contains("dead_letter") && l.contains("POISON"))
        .unwrap_or_else(|| panic!("no dead letter listed:\n{listing}"));
    assert!(
        line.contains("slack:C0123ABCD") && line.contains("invalid_blocks"),
        "{line}"
    );
    assert!(
        listing.contains("0 parked card(s), 1 dead letter(s)"),
        "{listing}"
    );
    let id = line.split_whitespace().next().unwrap().to_owned();

    // After a fix, `replay ID` sends it once; it is then gone from the list.
    let (ok, out) = cli(dir.path(), &redis, &slack, &["replay", &id]);
    assert!(ok, "{out}");
    assert_eq!(posted_for(&slack, "POISON"), 1);
    let (ok, out) = cli(dir.path(), &redis, &slack, &["replay", &id]);
    assert!(
        !ok && out.contains("no parked card or dead letter has ID"),
        "{out}"
    );
    // A later delivery of the post finds it sent.
    let (_, json) = answer(app.deliver(&poison, "poison-3").await).await;
    assert_eq!(json["already_sent"], 1, "{json}");
    assert_eq!(posted_for(&slack, "POISON"), 1);

    // `parked drop ID` removes a dead letter without sending it.
    slack.then(Next::Error("invalid_blocks"));
    let (_, json) = answer(
        app.deliver(&post_body("POISON-2", "forbidden phrase"), "poison-4")
            .await,
    )
    .await;
    assert_eq!(json["status"], "dead_letter", "{json}");
    let (_, listing) = cli(dir.path(), &redis, &slack, &["parked"]);
    let id = listing
        .lines()
        .find(|l| l.contains("POISON-2"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("not listed:\n{listing}"))
        .to_owned();
    let (ok, out) = cli(dir.path(), &redis, &slack, &["parked", "drop", &id]);
    assert!(ok && out.contains("dropped dead_letter"), "{out}");
    let (_, listing) = cli(dir.path(), &redis, &slack, &["parked"]);
    assert!(
        listing.contains("0 parked card(s), 0 dead letter(s)"),
        "{listing}"
    );
    assert_eq!(posted_for(&slack, "POISON-2"), 0);
    app.stop().await;
}

#[tokio::test]
async fn a_parked_card_older_than_the_ttl_is_dropped_counted_and_alerted() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let app = spawn_with(AppOptions {
        redis_url: Some(redis.url.clone()),
        config: "[destinations.ops]\nslack = \"C0ALERTS00\"\n\n[alerts]\nto = \"ops\"\n".into(),
        env: vec![("MODBRIDGE_PROBE_INTERVAL_SECS", "1".into())],
        ..Default::default()
    })
    .await;
    let broken = modbridge::destination::Target::parse("slack:C0123ABCD").unwrap();
    let alerts = modbridge::destination::Target::parse("slack:C0ALERTS00").unwrap();
    app.recorder.break_config(&broken);
    let (_, json) = answer(
        app.deliver(&post_body("OLD", "forbidden phrase"), "old")
            .await,
    )
    .await;
    assert_eq!(json["parked"], 1, "{json}");

    // Parked 8 days ago (the default TTL is 7).
    let mut conn = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let list = "modbridge:parked:slack:C0123ABCD";
    let raw: String = redis::cmd("LINDEX")
        .arg(list)
        .arg(0)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut entry: serde_json::Value = serde_json::from_str(&raw).unwrap();
    entry["parked_at"] = (chrono::Utc::now() - chrono::Duration::days(8))
        .to_rfc3339()
        .into();
    let _: () = redis::cmd("LSET")
        .arg(list)
        .arg(0)
        .arg(entry.to_string())
        .query_async(&mut conn)
        .await
        .unwrap();

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let lost = loop {
        let lost: Vec<_> = app
            .recorder
            .cards_for(&alerts)
            .into_iter()
            .filter(|c| c.headline.starts_with("Card lost"))
            .collect();
        if !lost.is_empty() {
            break lost;
        }
        assert!(std::time::Instant::now() < deadline, "no 'card lost' alert");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(lost.len(), 1);
    let left: i64 = redis::cmd("LLEN")
        .arg(list)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0, "the expired entry is gone");
    assert!(app.recorder.cards_for(&broken).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn three_refused_cards_within_minutes_make_one_notice() {
    let app = spawn_with(AppOptions {
        config: "[destinations.ops]\nslack = \"C0ALERTS00\"\n\n[alerts]\nto = \"ops\"\n".into(),
        ..Default::default()
    })
    .await;
    let target = modbridge::destination::Target::parse("slack:C0123ABCD").unwrap();
    let ops = modbridge::destination::Target::parse("slack:C0ALERTS00").unwrap();
    app.recorder.reject(&target);
    for i in 1..=4 {
        let id = format!("REFUSED-{i}");
        let (status, json) =
            answer(app.deliver(&post_body(&id, "forbidden phrase"), &id).await).await;
        assert_eq!(
            (status, json["status"].as_str()),
            (200, Some("dead_letter")),
            "{json}"
        );
        if i == 2 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(
                app.recorder.cards_for(&ops).is_empty(),
                "two are not a burst"
            );
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while app.recorder.cards_for(&ops).is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let notices = app.recorder.cards_for(&ops);
    assert_eq!(notices.len(), 1, "one notice for the burst");
    assert_eq!(notices[0].headline, "Cards refused by slack:C0123ABCD");
    // The destination still works for cards it accepts: no circuit.
    app.recorder.fix(&target);
    let (_, json) = answer(
        app.deliver(&post_body("OK-1", "forbidden phrase"), "ok-1")
            .await,
    )
    .await;
    assert_eq!(json["cards"], 1, "{json}");
    app.stop().await;
}

/// Redis forgets a parked list and a dead-letter list that nobody replays: each
/// push gives the list (and the set of list names) a TTL of
/// `parked_ttl_days` + 1 day, so they outlive the prober's own expiry (which
/// counts and alerts the lost card) but not by more than a day.
#[tokio::test]
async fn parked_and_dead_letter_lists_expire_in_redis_a_day_after_the_ttl() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let app = spawn_with(AppOptions {
        redis_url: Some(redis.url.clone()),
        rules: DEFAULT_RULES.replace(
            "to = [\"slack:C0123ABCD\"]",
            "to = [\"slack:C0123ABCD\", \"slack:C0REFUSE00\"]",
        ),
        env: vec![("MODBRIDGE_PARKED_TTL_DAYS", "2".into())],
        ..Default::default()
    })
    .await;
    let broken = modbridge::destination::Target::parse("slack:C0123ABCD").unwrap();
    let refusing = modbridge::destination::Target::parse("slack:C0REFUSE00").unwrap();
    app.recorder.break_config(&broken);
    app.recorder.reject(&refusing);
    let (status, json) = answer(
        app.deliver(&post_body("KEPT-1", "forbidden phrase"), "kept-1")
            .await,
    )
    .await;
    assert_eq!((status, &json["parked"]), (200, &1.into()), "{json}");

    let mut conn = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let parked = "modbridge:parked:slack:C0123ABCD";
    let dead = "modbridge:parked:dead-letter:slack:C0REFUSE00";
    let names = "modbridge:parked-targets";
    let three_days: i64 = 3 * 86_400 * 1000;
    for key in [parked, dead, names] {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(
            (three_days - 60_000..=three_days).contains(&ttl),
            "{key}: PTTL {ttl} ms, expected 2 days + 1"
        );
    }

    // Every push gives the list its whole TTL back.
    let _: () = redis::cmd("PEXPIRE")
        .arg(parked)
        .arg(60_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    let (_, json) = answer(
        app.deliver(&post_body("KEPT-2", "forbidden phrase"), "kept-2")
            .await,
    )
    .await;
    assert_eq!(json["parked"], 1, "{json}");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(parked)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        ttl > three_days - 60_000,
        "PTTL {ttl} ms after a second push"
    );
    let len: i64 = redis::cmd("LLEN")
        .arg(parked)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 2);
    app.stop().await;
}
