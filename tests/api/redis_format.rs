//! Redis formats are a contract: live deployments hold 7 days of records, and
//! old and new replicas share Redis during a rollout. These tests pin, with the
//! default `key_prefix`, the exact key strings modbridge writes and reads
//! (claim, done, begun, card record and the old sent record, parked list and
//! index, circuit), and read a parked entry written in the JSON format of the first
//! release that parked cards.
//!
//! They go through HTTP and raw Redis commands only, so that no refactor of
//! the store can change a format without failing here; the campaign keys
//! (issue #14) through the store's `campaign_join` until delivery joins
//! campaigns.

use std::time::{Duration, Instant};

use modbridge::destination::Target;
use redis::AsyncCommands;

use crate::helpers::*;

/// The customer of [`post_body`].
const CUSTOMER: &str = "01HQ0ABCDEF1234567890XYZ";

/// A destination whose target text form is `discord-webhook:$MOD_HOOK`.
const HOOK_CONFIG: &str = "[destinations.hook]\ndiscord_webhook_env = \"MOD_HOOK\"\n";

fn hook_rules() -> String {
    DEFAULT_RULES.replace(r#"to = ["slack:C0123ABCD"]"#, r#"to = ["hook"]"#)
}

fn hook() -> Target {
    Target::DiscordWebhook {
        env: "MOD_HOOK".into(),
    }
}

async fn connect(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Redis's clock, in milliseconds (reservations are timed by it).
async fn redis_now_ms(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(conn).await.unwrap();
    secs * 1000 + micros / 1000
}

async fn keys(conn: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    let mut keys: Vec<String> = conn.keys("*").await.unwrap();
    keys.sort();
    keys
}

#[tokio::test]
async fn claim_done_and_sent_keys_keep_their_format() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let app = spawn_with(AppOptions {
        redis_url: Some(redis.url.clone()),
        config: HOOK_CONFIG.into(),
        rules: hook_rules(),
        ..Default::default()
    })
    .await;
    let mut conn = connect(&redis.url).await;

    // A claim held elsewhere (an old replica) under today's claim key.
    let _: () = conn
        .set_ex("modbridge:exec:{fmt-held}:claim", "someone-elses-token", 60)
        .await
        .unwrap();
    let resp = app
        .deliver(&post_body("FMT0", "forbidden phrase"), "fmt-held")
        .await;
    assert_eq!(resp.status().as_u16(), 503, "a held claim is in flight");
    assert!(app.recorder.cards().is_empty());

    // A done record written by an old replica.
    let _: () = conn
        .set_ex("modbridge:exec:{fmt-old}:done", "1", 60)
        .await
        .unwrap();
    let (status, json) = answer(
        app.deliver(&post_body("FMT0", "forbidden phrase"), "fmt-old")
            .await,
    )
    .await;
    assert_eq!((status, json["status"].as_str()), (200, Some("duplicate")));

    // A sent record written by an old replica: no second card.
    let old_sent = format!("modbridge:sent:{CUSTOMER}\u{1f}FMT-OLD\u{1f}discord-webhook:$MOD_HOOK");
    let _: () = conn.set_ex(&old_sent, "1", 60).await.unwrap();
    let (status, json) = answer(
        app.deliver(&post_body("FMT-OLD", "forbidden phrase"), "fmt-2")
            .await,
    )
    .await;
    assert_eq!(
        (status, json["already_sent"].as_u64()),
        (200, Some(1)),
        "{json}"
    );
    assert!(app.recorder.cards().is_empty());

    // A card reserved by another replica (its lease in Redis's clock):
    // in flight, not sent.
    let redis_ms = redis_now_ms(&mut conn).await;
    let reserved = format!("modbridge:card:{CUSTOMER}\u{1f}FMT-RES\u{1f}discord-webhook:$MOD_HOOK");
    let _: () = conn
        .set_ex(
            &reserved,
            format!(
                r#"{{"state":"reserved","token":"other-replica","until":{}}}"#,
                redis_ms + 60_000
            ),
            60,
        )
        .await
        .unwrap();
    let resp = app
        .deliver(&post_body("FMT-RES", "forbidden phrase"), "fmt-res")
        .await;
    assert_eq!(resp.status().as_u16(), 503, "a reserved card is in flight");
    assert!(resp.headers().contains_key("retry-after"));
    let _: () = conn.del(&reserved).await.unwrap();

    // A dead letter: answered, never sent.
    let dead = format!("modbridge:card:{CUSTOMER}\u{1f}FMT-DEAD\u{1f}discord-webhook:$MOD_HOOK");
    let _: () = conn
        .set_ex(
            &dead,
            r#"{"state":"dead_letter","reason":"Discord refused the card: 50035"}"#,
            60,
        )
        .await
        .unwrap();
    let (status, json) = answer(
        app.deliver(&post_body("FMT-DEAD", "forbidden phrase"), "fmt-dead")
            .await,
    )
    .await;
    assert_eq!(
        (status, json["status"].as_str()),
        (200, Some("dead_letter"))
    );
    assert!(app.recorder.cards().is_empty());
    let _: () = conn.del(&dead).await.unwrap();
    for id in ["fmt-res", "fmt-dead"] {
        let _: () = conn
            .del(format!("modbridge:exec:{{{id}}}:done"))
            .await
            .unwrap();
    }

    // What this version writes for a new card.
    let (status, json) = answer(
        app.deliver(&post_body("FMT1", "forbidden phrase"), "fmt-1")
            .await,
    )
    .await;
    assert_eq!((status, json["cards"].as_u64()), (200, Some(1)), "{json}");
    assert_eq!(
        keys(&mut conn).await,
        [
            format!("modbridge:card:{CUSTOMER}\u{1f}FMT1\u{1f}discord-webhook:$MOD_HOOK"),
            "modbridge:exec:{fmt-1}:done".to_owned(),
            "modbridge:exec:{fmt-2}:done".to_owned(),
            "modbridge:exec:{fmt-held}:claim".to_owned(),
            "modbridge:exec:{fmt-old}:done".to_owned(),
            // Claimed, answered 503 and released: unfinished.
            "modbridge:exec:{fmt-res}:begun".to_owned(),
            format!("modbridge:sent:{CUSTOMER}\u{1f}FMT-OLD\u{1f}discord-webhook:$MOD_HOOK"),
            format!("modbridge:sent:{CUSTOMER}\u{1f}FMT1\u{1f}discord-webhook:$MOD_HOOK"),
            // The destination's pace (spam waves), counted for every card.
            "modbridge:wave:discord-webhook:$MOD_HOOK".to_owned(),
        ]
    );
    let done: String = conn.get("modbridge:exec:{fmt-1}:done").await.unwrap();
    let sent: String = conn
        .get(format!(
            "modbridge:sent:{CUSTOMER}\u{1f}FMT1\u{1f}discord-webhook:$MOD_HOOK"
        ))
        .await
        .unwrap();
    let begun: String = conn.get("modbridge:exec:{fmt-res}:begun").await.unwrap();
    assert_eq!(
        (done.as_str(), sent.as_str(), begun.as_str()),
        ("1", "1", "1")
    );
    // The card record (the recorder returns no message reference).
    let card: String = conn
        .get(format!(
            "modbridge:card:{CUSTOMER}\u{1f}FMT1\u{1f}discord-webhook:$MOD_HOOK"
        ))
        .await
        .unwrap();
    assert_eq!(card, r#"{"state":"sent","message":null}"#);
    app.stop().await;
}

#[tokio::test]
async fn parked_lists_keep_their_names_and_entry_format() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let app = spawn_with(AppOptions {
        redis_url: Some(redis.url.clone()),
        config: HOOK_CONFIG.into(),
        rules: hook_rules(),
        env: vec![("MODBRIDGE_PROBE_INTERVAL_SECS", "1".into())],
        ..Default::default()
    })
    .await;
    let mut conn = connect(&redis.url).await;
    app.recorder.break_config(&hook());

    // What this version writes when it parks.
    let (status, json) = answer(
        app.deliver(&post_body("FMT2", "forbidden phrase"), "fmt-park")
            .await,
    )
    .await;
    assert_eq!((status, json["parked"].as_u64()), (200, Some(1)), "{json}");
    let index: Vec<String> = conn.smembers("modbridge:parked-targets").await.unwrap();
    assert_eq!(index, ["discord-webhook:$MOD_HOOK"]);
    let entries: Vec<String> = conn
        .lrange("modbridge:parked:discord-webhook:$MOD_HOOK", 0, -1)
        .await
        .unwrap();
    assert_eq!(entries.len(), 1);
    let entry: serde_json::Value = serde_json::from_str(&entries[0]).unwrap();
    assert_eq!(
        entry["key"],
        format!("{CUSTOMER}\u{1f}FMT2\u{1f}discord-webhook:$MOD_HOOK")
    );
    assert_eq!(entry["target"], "discord-webhook:$MOD_HOOK");
    assert_eq!(entry["card"]["post_id"], "FMT2");
    assert_eq!(entry["card"]["target"], "discord-webhook:$MOD_HOOK");
    let mut fields: Vec<&str> = entry
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort();
    assert_eq!(fields, ["card", "key", "parked_at", "reason", "target"]);

    // An entry an old replica parked, in today's exact JSON, beside it.
    let _: () = conn
        .rpush("modbridge:parked:discord-webhook:$MOD_HOOK", OLD_ENTRY)
        .await
        .unwrap();
    let _: () = conn
        .sadd("modbridge:parked-targets", "discord-webhook:$MOD_HOOK")
        .await
        .unwrap();

    // The destination works again: the prober delivers both, oldest first.
    app.recorder.fix(&hook());
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.recorder.cards().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cards = app.recorder.cards_for(&hook());
    let posts: Vec<&str> = cards.iter().map(|c| c.post_id.as_str()).collect();
    assert_eq!(posts, ["FMT2", "FMT-PARKED"]);
    let old = &cards[1];
    assert_eq!(old.headline, "Flagged post · Main feed");
    assert_eq!(old.content.as_deref(), Some("a forbidden phrase here"));
    assert_eq!(old.highlights.len(), 1);
    assert_eq!(old.highlights[0], 2..18);
    assert_eq!(old.author.name, "Mary Smith");
    assert_eq!(old.author.email.as_deref(), Some("mary@example.com"));
    assert_eq!(
        old.post_url.as_deref(),
        Some("https://cativa.example/p/FMT-PARKED")
    );
    assert_eq!(old.reasons[0].terms, ["forbidden phrase"]);
    assert_eq!(old.mention.as_deref(), Some("<@&112233445566778899>"));

    // Delivered entries leave the list; their sent records use today's key.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<String> = conn
            .lrange("modbridge:parked:discord-webhook:$MOD_HOOK", 0, -1)
            .await
            .unwrap();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "still parked: {left:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent: bool = conn
        .exists(format!(
            "modbridge:sent:{CUSTOMER}\u{1f}FMT-PARKED\u{1f}discord-webhook:$MOD_HOOK"
        ))
        .await
        .unwrap();
    assert!(sent, "the replayed card's sent record");
    app.stop().await;
}

/// A parked entry exactly as this format's first release wrote it (captured
/// from a running modbridge, then given an email, a mention and a post link so
/// that every optional field is read).
const OLD_ENTRY: &str = r#"{"key":"01HQ0ABCDEF1234567890XYZ\u001fFMT-PARKED\u001fdiscord-webhook:$MOD_HOOK","target":"discord-webhook:$MOD_HOOK","parked_at":"2026-11-30T08:49:01.842751597Z","reason":"recorder destination is misconfigured: told to be misconfigured","card":{"destination":"hook","target":"discord-webhook:$MOD_HOOK","severity":"flagged","headline":"Flagged post · Main feed","place":"Main feed","author":{"name":"Mary Smith","username":"mary","user_id":"U1","joined_at":"2026-04-12T14:32:01Z","badges":0,"email":"mary@example.com"},"content":"a forbidden phrase here","highlights":[{"start":2,"end":18}],"image_url":null,"reasons":[{"rules":"Everywhere","name":"forbidden","terms":["forbidden phrase"]}],"customer_id":"01HQ0ABCDEF1234567890XYZ","post_id":"FMT-PARKED","group_id":null,"posted_at":"2026-05-08T14:32:01Z","post_url":"https://cativa.example/p/FMT-PARKED","mention":"<@&112233445566778899>"}}"#;

/// A broken target's circuit is shared under `modbridge:circuit:<target>`
/// (JSON: reason, since, opened_by; with a TTL): what this version writes,
/// and one written by another replica, which parks this replica's cards
/// without a platform call.
#[tokio::test]
async fn circuits_keep_their_key_and_record_format() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let app = spawn_with(AppOptions {
        redis_url: Some(redis.url.clone()),
        config: HOOK_CONFIG.into(),
        rules: hook_rules(),
        ..Default::default()
    })
    .await;
    let mut conn = connect(&redis.url).await;
    app.recorder.break_config(&hook());
    let (status, _) = answer(
        app.deliver(&post_body("FMT5", "forbidden phrase"), "fmt-circuit")
            .await,
    )
    .await;
    assert_eq!(status, 200);
    let key = "modbridge:circuit:discord-webhook:$MOD_HOOK";
    let raw: String = conn.get(key).await.unwrap();
    let record: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert!(record["reason"].as_str().is_some(), "{record}");
    assert!(
        chrono::DateTime::parse_from_rfc3339(record["since"].as_str().unwrap()).is_ok(),
        "{record}"
    );
    assert!(record["opened_by"].as_str().is_some(), "{record}");
    let ttl: i64 = conn.ttl(key).await.unwrap();
    assert!(ttl > 0, "the circuit has a TTL: {ttl}");

    // Another replica's circuit for a target this replica has not called,
    // written before it starts: its circuit cache (1 s) may otherwise hold
    // an earlier "closed" read (its prober looks at start-up), which made
    // this test flaky on a loaded machine.
    let _: () = conn
        .set_ex(
            "modbridge:circuit:slack:C0123ABCD",
            r#"{"reason":"slack destination is misconfigured: channel_not_found","since":"2026-01-01T00:00:00Z","opened_by":"other/1"}"#,
            600,
        )
        .await
        .unwrap();
    let other = spawn_with(AppOptions {
        redis_url: Some(redis.url.clone()),
        ..Default::default()
    })
    .await;
    let (status, json) = answer(
        other
            .deliver(&post_body("FMT6", "forbidden phrase"), "fmt-circuit-2")
            .await,
    )
    .await;
    assert_eq!((status, json["parked"].as_u64()), (200, Some(1)), "{json}");
    assert_eq!(other.recorder.attempts(), 0, "no call to a broken target");
}

/// The escalation schedule: one sorted set, `modbridge:due:escalations`,
/// members the case IDs scored by the due time (ms since the Unix epoch),
/// kept at least as long as the cases; a reminder's progress is the
/// versioned record `modbridge:versioned:escalation:<case ID>`.
#[tokio::test]
async fn the_escalation_schedule_keeps_its_key_and_scores() {
    use crate::fake_slack::FakeSlack;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let slack = FakeSlack::start("xoxb-1111-2222-fake").await;
    fn in_ten_minutes(s: &mut modbridge::config::Settings) {
        s.triage.escalate_after = Some(Duration::from_secs(600));
    }
    let app = spawn_with(AppOptions {
        redis_url: Some(redis.url.clone()),
        env: vec![
            ("SLACK_BOT_TOKEN", "xoxb-1111-2222-fake".into()),
            ("SLACK_API_URL", slack.base.clone()),
        ],
        live: true,
        adjust: Some(in_ten_minutes),
        ..Default::default()
    })
    .await;
    let mut conn = connect(&redis.url).await;
    let before = redis_now_ms(&mut conn).await;
    let status = app
        .deliver_until_ok(
            &post_body("ESC-FORMAT", "a forbidden phrase here"),
            "exec-esc-format",
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(status, 200);
    let case = modbridge::triage::case::case_id(CUSTOMER, "ESC-FORMAT");
    let score: Option<u64> = conn
        .zscore("modbridge:due:escalations", &case)
        .await
        .unwrap();
    let score = score.expect("the case is scheduled under its ID");
    assert!(
        (before + 600_000..before + 610_000).contains(&score),
        "due 10 minutes after its first copy: {score} vs {before}"
    );
    let ttl: i64 = conn.pttl("modbridge:due:escalations").await.unwrap();
    assert!(
        ttl >= 14 * 86_400 * 1000,
        "kept at least as long as cases: {ttl}"
    );
    assert!(
        keys(&mut conn)
            .await
            .contains(&format!("modbridge:versioned:case:{case}"))
    );
    app.stop().await;
}

/// A wave's keys: the destination's pace hash, the digest group's entries
/// (a list of `{"d": destination, "e": entry}`), the card's `in_digest`
/// record naming the group, the group in the `due:groups` schedule, and the
/// group's state (a versioned record). Replicas of every version during a
/// rollout read these.
#[tokio::test]
async fn a_waves_keys_keep_their_names_and_formats() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let app = spawn_with(AppOptions {
        redis_url: Some(redis.url.clone()),
        config: "[waves]\ndigest_after_secs = 1\nedit_every_secs = 60\n".into(),
        ..AppOptions::default()
    })
    .await;
    for i in 0..4 {
        let id = format!("PW{i}");
        let (status, body) = answer(
            app.deliver(&post_body(&id, "a forbidden phrase"), &format!("w-{i}"))
                .await,
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let mut conn = connect(&redis.url).await;
    let all = keys(&mut conn).await;
    let pace: std::collections::HashMap<String, String> = conn
        .hgetall("modbridge:wave:slack:C0123ABCD")
        .await
        .unwrap();
    let started: u64 = pace["started"].parse().unwrap();
    assert!(started > 0, "{pace:?}");
    assert!(pace["until"].parse::<u64>().unwrap() > started, "{pace:?}");
    assert!(pace.contains_key("v"), "{pace:?}");
    let group = format!("digest\u{1f}slack:C0123ABCD\u{1f}{started}");
    let entries: Vec<String> = conn
        .lrange(format!("modbridge:group:{group}"), 0, -1)
        .await
        .unwrap();
    assert!(!entries.is_empty(), "keys: {all:?}");
    let entry: serde_json::Value = serde_json::from_str(&entries[0]).unwrap();
    assert_eq!(entry["d"], "slack:C0123ABCD");
    assert!(entry["e"]["post_id"].as_str().unwrap().starts_with("PW"));
    assert_eq!(entry["e"]["excerpt"], "a forbidden phrase");
    let post = entry["e"]["post_id"].as_str().unwrap();
    let record: String = conn
        .get(format!(
            "modbridge:card:{CUSTOMER}\u{1f}{post}\u{1f}slack:C0123ABCD"
        ))
        .await
        .unwrap();
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(
        record,
        serde_json::json!({"state": "in_digest", "id": group})
    );
    let due: Vec<String> = conn.zrange("modbridge:due:groups", 0, -1).await.unwrap();
    assert_eq!(due, std::slice::from_ref(&group));
    app.stop().await;
}

/// Campaigns (issue #14): every key of a destination under one hash tag,
/// `modbridge:campaign:{<target>}:`, each with a TTL of the window plus a
/// minute. Through the store (delivery does not join campaigns yet) and
/// raw commands.
#[tokio::test]
async fn campaign_keys_keep_their_format() {
    use modbridge::dedupe::{DedupeStore, RedisStore, Ttl};
    use sha2::Digest;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::new(
        &redis.url,
        "modbridge:",
        Ttl {
            lease: Duration::from_secs(5),
            done: Duration::from_secs(3600),
        },
    )
    .unwrap();
    let mut conn = connect(&redis.url).await;
    let window = Duration::from_secs(600);
    let fp: u64 = 0x0123_4567_89ab_cdef;
    let before = redis_now_ms(&mut conn).await;
    let first = store
        .campaign_join("slack:C0123ABCD", fp, "member-1", "author-1", window, 13)
        .await
        .unwrap();
    let second = store
        .campaign_join(
            "slack:C0123ABCD",
            fp ^ 1,
            "member-2",
            "author-2",
            window,
            13,
        )
        .await
        .unwrap();
    assert_eq!(second.id, first.id);

    // The ID: the first fingerprint, its time, 8 hex digits of SHA-256 of
    // the target.
    let tag = hex::encode(&sha2::Sha256::digest(b"slack:C0123ABCD")[..4]);
    let parts: Vec<&str> = first.id.split('-').collect();
    assert_eq!(parts.len(), 3, "{}", first.id);
    assert_eq!(parts[0], "0123456789abcdef");
    assert_eq!(parts[1].parse::<u64>().unwrap(), first.first_ms);
    assert!(first.first_ms >= before);
    assert_eq!(parts[2], tag);

    let base = "modbridge:campaign:{slack:C0123ABCD}:";
    let id = &first.id;
    let mut want: Vec<String> = ["01", "23", "45", "67", "89", "ab", "cd", "ef"]
        .iter()
        .enumerate()
        .map(|(b, byte)| format!("{base}band:{b}:{byte}"))
        .collect();
    for suffix in ["", ":members", ":seen", ":authors"] {
        want.push(format!("{base}{id}{suffix}"));
    }
    want.sort();
    assert_eq!(keys(&mut conn).await, want);

    let meta: std::collections::HashMap<String, String> =
        conn.hgetall(format!("{base}{id}")).await.unwrap();
    assert_eq!(meta["hi"], "19088743", "0x01234567 in decimal");
    assert_eq!(meta["lo"], "2309737967", "0x89abcdef in decimal");
    assert_eq!(meta["first"], first.first_ms.to_string());
    assert_eq!(meta["last"], second.last_ms.to_string());
    assert_eq!(meta["posts"], "2");
    assert_eq!(meta.len(), 5);
    let members: Vec<String> = conn
        .lrange(format!("{base}{id}:members"), 0, -1)
        .await
        .unwrap();
    assert_eq!(members, ["member-1", "member-2"]);
    let seen: std::collections::HashMap<String, u32> =
        conn.hgetall(format!("{base}{id}:seen")).await.unwrap();
    assert_eq!(
        seen,
        [("member-1".into(), 0), ("member-2".into(), 1)].into()
    );
    let mut authors: Vec<String> = conn.smembers(format!("{base}{id}:authors")).await.unwrap();
    authors.sort();
    assert_eq!(authors, ["author-1", "author-2"]);
    let scores: Vec<(String, u64)> = conn
        .zrange_withscores(format!("{base}band:0:01"), 0, -1)
        .await
        .unwrap();
    assert_eq!(
        scores,
        [(id.clone(), second.last_ms)],
        "scored by the last member"
    );

    for key in want {
        let ttl: i64 = conn.pttl(&key).await.unwrap();
        assert!(
            (650_000..=660_000).contains(&ttl),
            "{key}: the window plus a minute, got {ttl} ms"
        );
    }
}
