//! The no-card path (issue #11, item 11): a post that matches nothing is
//! answered after one read of Redis and writes nothing; an execution that
//! was claimed before (in flight, unfinished, done) keeps the recorded path,
//! even when a reload between its attempts took its matches away.

use std::time::Duration;

use redis::AsyncCommands;

use crate::helpers::*;

const NO_CARD: &str = r#"{"status":"accepted","cards":0}"#;

/// The same rule as [`DEFAULT_RULES`] with its keyword changed: the posts
/// that matched before match nothing now.
const RELOADED_RULES: &str = r#"
name = "Everywhere"
groups = ["*"]
to = ["slack:C0123ABCD"]

[[match]]
name = "forbidden"
keywords = ["another phrase altogether"]
"#;

async fn keys(url: &str) -> Vec<String> {
    let mut conn = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut keys: Vec<String> = conn.keys("*").await.unwrap();
    keys.sort();
    keys
}

/// `modbridge_webhooks_total{outcome="…"}` in this app's scrape.
fn webhooks(metrics: &str, outcome: &str) -> u64 {
    let prefix = format!("modbridge_webhooks_total{{outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

fn reload(app: &TestApp, rules: &str) {
    let live = app.running.as_ref().unwrap().state.pipeline.rules().clone();
    std::fs::write(live.dir().join("test.toml"), rules).unwrap();
    live.reload_now().unwrap();
}

#[tokio::test]
async fn a_post_that_matches_nothing_is_answered_without_a_write() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let app = spawn_with(AppOptions {
        redis_url: Some(redis.url.clone()),
        ..Default::default()
    })
    .await;
    let before = keys(&redis.url).await;
    let counted = webhooks(&app.metrics().await, "no_card");

    let resp = app
        .deliver(&post_body("NC1", "a kind word about the course"), "nc-1")
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().await.unwrap(), NO_CARD);
    // Its duplicate too: nothing was recorded, so nothing tells them apart.
    let resp = app
        .deliver(&post_body("NC1", "a kind word about the course"), "nc-1")
        .await;
    assert_eq!(resp.text().await.unwrap(), NO_CARD);

    assert_eq!(keys(&redis.url).await, before, "no Redis key written");
    let mut conn = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let size: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    assert_eq!(size as usize, before.len());
    // The recorder is process-wide: other tests count no_card too.
    assert!(
        webhooks(&app.metrics().await, "no_card") >= counted + 2,
        "no_card not counted"
    );
    assert!(app.recorder.cards().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_retry_after_a_reload_that_took_its_matches_away_keeps_the_recorded_path() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let app = spawn_with(AppOptions {
        redis_url: Some(redis.url.clone()),
        ..Default::default()
    })
    .await;
    let body = post_body("NC2", "a forbidden phrase");

    // 1. Unfinished: the first attempt claimed, made a card, could not send
    // it and released its claim. The reload makes the retry match nothing;
    // the retry still sees the attempt (its begun record), claims, and
    // records the execution as done.
    app.recorder.fail_next(1);
    let resp = app.deliver(&body, "nc-unfinished").await;
    assert_eq!(resp.status().as_u16(), 503);
    let left = keys(&redis.url).await;
    assert!(
        left.contains(&"modbridge:exec:{nc-unfinished}:begun".to_owned()),
        "{left:?}"
    );
    assert!(!left.contains(&"modbridge:exec:{nc-unfinished}:claim".to_owned()));
    reload(&app, RELOADED_RULES);
    let (status, json) = answer(app.deliver(&body, "nc-unfinished").await).await;
    assert_eq!(
        (status, json["status"].as_str(), json["cards"].as_u64()),
        (200, Some("accepted"), Some(0)),
        "{json}"
    );
    assert!(
        json.get("already_sent").is_some(),
        "the recorded path's answer, not the no-card one: {json}"
    );
    let left = keys(&redis.url).await;
    assert!(left.contains(&"modbridge:exec:{nc-unfinished}:done".to_owned()));
    assert!(!left.contains(&"modbridge:exec:{nc-unfinished}:begun".to_owned()));
    assert!(app.recorder.cards().is_empty());

    // 2. In flight: the first attempt (old rules) is still sending when the
    // retry (new rules) comes: the retry must not answer 200 behind its back.
    reload(&app, DEFAULT_RULES);
    app.recorder.set_delay(Duration::from_millis(1500));
    let first = {
        let (client, url, body) = (app.client.clone(), app.webhook_url(), body.clone());
        tokio::spawn(async move {
            client
                .post(url)
                .header("x-cativa-signature", sign(SECRET, now(), body.as_bytes()))
                .header("x-cativa-execution-id", "nc-in-flight")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    reload(&app, RELOADED_RULES);
    let resp = app.deliver(&body, "nc-in-flight").await;
    assert_eq!(resp.status().as_u16(), 503, "in flight: retry later");
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(first.await.unwrap(), 200);
    assert_eq!(app.recorder.cards().len(), 1);
    // 3. Done: a later duplicate is a duplicate, not a no-card answer.
    let (status, json) = answer(app.deliver(&body, "nc-in-flight").await).await;
    assert_eq!((status, json["status"].as_str()), (200, Some("duplicate")));
    app.stop().await;
}
