//! Exactly one card per (post, channel): sent records, partial failures,
//! deadlines, broken destinations (circuit + parking), shutdown.

use std::time::{Duration, Instant};

use modbridge::destination::{SlackChannel, Target};

use crate::helpers::*;

const TWO_CHANNELS: &str = r#"
name = "Two channels"
groups = ["*"]
to = ["slack:C0000AAAA", "slack:C0000BBBB"]

[[match]]
name = "forbidden"
keywords = ["forbidden phrase"]
"#;

fn slack(id: &str) -> Target {
    Target::Slack(SlackChannel::parse(id).unwrap())
}

#[tokio::test]
async fn a_replay_with_a_new_execution_id_sends_no_second_card() {
    let app = spawn_app().await;
    let body = post_body("D1", "forbidden phrase");
    let (_, first) = answer(app.deliver(&body, "d1-a").await).await;
    assert_eq!(first["cards"], 1);
    // Same post, new execution ID (a captured request replayed, or a second listener).
    let (status, again) = answer(app.deliver(&body, "d1-b").await).await;
    assert_eq!(
        (status, again["already_sent"].as_u64()),
        (200, Some(1)),
        "{again}"
    );
    assert_eq!(app.recorder.cards().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn two_destination_names_for_one_channel_make_one_card() {
    let config = r#"
[destinations.mods]
slack = "C0123ABCD"
[destinations.also-mods]
slack = "C0123ABCD"
"#;
    let rules = DEFAULT_RULES.replace(
        r#"to = ["slack:C0123ABCD"]"#,
        r#"to = ["mods", "also-mods"]"#,
    );
    let app = spawn_with(AppOptions {
        config: config.into(),
        rules,
        ..Default::default()
    })
    .await;
    let (status, json) = answer(
        app.deliver(&post_body("D2", "forbidden phrase"), "d2")
            .await,
    )
    .await;
    assert_eq!((status, json["cards"].as_u64()), (200, Some(1)), "{json}");
    assert_eq!(app.recorder.cards().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn when_one_channel_fails_the_retry_sends_only_what_is_missing() {
    let app = spawn_with(AppOptions {
        rules: TWO_CHANNELS.into(),
        ..Default::default()
    })
    .await;
    app.recorder.fail_next_for(&slack("C0000BBBB"), 1);
    let body = post_body("D3", "forbidden phrase");
    let resp = app.deliver(&body, "d3").await;
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(app.recorder.cards_for(&slack("C0000AAAA")).len(), 1);
    assert_eq!(app.recorder.cards_for(&slack("C0000BBBB")).len(), 0);
    let (status, json) = answer(app.deliver(&body, "d3").await).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(
        (json["cards"].as_u64(), json["already_sent"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        app.recorder.cards_for(&slack("C0000AAAA")).len(),
        1,
        "A sent twice"
    );
    assert_eq!(app.recorder.cards_for(&slack("C0000BBBB")).len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_delivery_past_the_deadline_finishes_in_the_background() {
    let app = spawn_with(AppOptions {
        env: vec![("MODBRIDGE_DEADLINE_SECS", "1".into())],
        ..Default::default()
    })
    .await;
    app.recorder.set_delay(Duration::from_secs(3));
    let body = post_body("D4", "forbidden phrase");
    let started = Instant::now();
    let resp = app.deliver(&body, "d4").await;
    assert_eq!(resp.status().as_u16(), 503);
    assert!(resp.headers().get("retry-after").is_some());
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "answered after {:?}",
        started.elapsed()
    );
    // Cativa's retry while it still runs: in flight.
    let (status, _) = answer(app.deliver(&body, "d4").await).await;
    assert_eq!(status, 503);
    // Once the background delivery is done, the retry is a duplicate.
    let status = app
        .deliver_until_ok(&body, "d4", Duration::from_secs(10))
        .await;
    assert_eq!(status, 200);
    let (status, json) = answer(app.deliver(&body, "d4").await).await;
    assert_eq!(
        (status, json["status"].as_str()),
        (200, Some("duplicate")),
        "{json}"
    );
    assert_eq!(app.recorder.cards().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn without_redis_a_broken_destination_is_not_called_again_and_cativa_keeps_the_post() {
    let app = spawn_with(AppOptions {
        env: vec![("MODBRIDGE_PROBE_INTERVAL_SECS", "1".into())],
        ..Default::default()
    })
    .await;
    let target = slack("C0123ABCD");
    app.recorder.break_config(&target);
    let resp = app
        .deliver(&post_body("D5", "forbidden phrase"), "d5")
        .await;
    assert_eq!(resp.status().as_u16(), 503);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        retry >= 60,
        "a long Retry-After so Cativa keeps it, got {retry}"
    );
    let attempts = app.recorder.attempts();
    // More posts for the broken destination: no platform calls.
    for i in 0..5 {
        let resp = app
            .deliver(
                &post_body(&format!("D5-{i}"), "forbidden phrase"),
                &format!("d5-{i}"),
            )
            .await;
        assert_eq!(resp.status().as_u16(), 503);
    }
    assert_eq!(
        app.recorder.attempts(),
        attempts,
        "called a broken destination"
    );
    let (_, ready) = answer(app.get(format!("{}/readyz", app.base)).await).await;
    assert_eq!(ready["status"], "degraded", "{ready}");
    // Fixed; after the probe interval the next retry goes through.
    app.recorder.fix(&target);
    // Cativa retries until the probe interval has passed and the card goes.
    let status = app
        .deliver_until_ok(
            &post_body("D5", "forbidden phrase"),
            "d5",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.recorder.cards().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn with_redis_a_broken_destinations_cards_are_parked_then_delivered_once() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let app = spawn_with(AppOptions {
        redis_url: Some(redis.url.clone()),
        env: vec![("MODBRIDGE_PROBE_INTERVAL_SECS", "1".into())],
        ..Default::default()
    })
    .await;
    let target = slack("C0123ABCD");
    app.recorder.break_config(&target);
    for i in 0..3 {
        let (status, json) = answer(
            app.deliver(
                &post_body(&format!("D6-{i}"), "forbidden phrase"),
                &format!("d6-{i}"),
            )
            .await,
        )
        .await;
        assert_eq!((status, json["parked"].as_u64()), (200, Some(1)), "{json}");
    }
    assert!(app.recorder.cards().is_empty());
    app.recorder.fix(&target);
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.recorder.cards().len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut posts: Vec<String> = app
        .recorder
        .cards()
        .iter()
        .map(|c| c.post_id.clone())
        .collect();
    posts.sort();
    assert_eq!(posts, ["D6-0", "D6-1", "D6-2"]);
    // Cativa's late duplicate of a parked post sends nothing more.
    let (status, _) = answer(
        app.deliver(&post_body("D6-0", "forbidden phrase"), "d6-0-again")
            .await,
    )
    .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(app.recorder.cards().len(), 3);
    app.stop().await;
}

#[tokio::test]
async fn breaking_recovery_and_failed_reloads_are_announced_to_the_alerts_destination() {
    let app = spawn_with(AppOptions {
        config: "[destinations.ops]\nslack = \"C0ALERTS00\"\n\n[alerts]\nto = \"ops\"\n".into(),
        env: vec![("MODBRIDGE_PROBE_INTERVAL_SECS", "1".into())],
        ..Default::default()
    })
    .await;
    let ops = slack("C0ALERTS00");
    let headlines = |app: &TestApp| -> Vec<String> {
        app.recorder
            .cards_for(&ops)
            .iter()
            .map(|c| c.headline.clone())
            .collect()
    };
    let wait_for = |app: &TestApp, n: usize| {
        let deadline = Instant::now() + Duration::from_secs(5);
        let recorder = app.recorder.clone();
        let ops = ops.clone();
        async move {
            while recorder.cards_for(&ops).len() < n && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };

    let target = slack("C0123ABCD");
    app.recorder.break_config(&target);
    let _ = app
        .deliver(&post_body("D7", "forbidden phrase"), "d7")
        .await;
    wait_for(&app, 1).await;
    assert_eq!(headlines(&app), ["Destination broken: slack:C0123ABCD"]);
    app.recorder.fix(&target);
    // Cativa retries until the probe interval has passed and the card goes.
    let status = app
        .deliver_until_ok(
            &post_body("D7", "forbidden phrase"),
            "d7",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(status, 200);
    wait_for(&app, 2).await;
    assert_eq!(
        headlines(&app)[1],
        "Destination works again: slack:C0123ABCD"
    );

    // A rules change that does not load: the old rules keep running, admins hear of it.
    let rules = app.running.as_ref().unwrap().state.pipeline.rules().clone();
    std::fs::write(rules.dir().join("broken.toml"), "keyword = [\"typo\"]\n").unwrap();
    assert!(rules.reload_now().is_err());
    wait_for(&app, 3).await;
    let notice = app.recorder.cards_for(&ops).pop().unwrap();
    assert_eq!(
        notice.headline,
        "Rules reload failed: the previous rules keep running"
    );
    assert!(notice.content.unwrap().contains("broken.toml:1:1"));
    std::fs::remove_file(rules.dir().join("broken.toml")).unwrap();
    assert!(rules.reload_now().is_ok());
    wait_for(&app, 4).await;
    assert_eq!(headlines(&app)[3], "Rules reloaded");
    app.stop().await;
}

/// A replay that cannot read Redis decides nothing: no "works again" until a
/// parked card really went through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_during_replay_sends_no_false_recovery() {
    let Some(mut redis) = RedisServer::start_persistent() else {
        return;
    };
    let app = spawn_with(AppOptions {
        redis_url: Some(redis.url.clone()),
        config: "[destinations.ops]\nslack = \"C0ALERTS00\"\n\n[alerts]\nto = \"ops\"\n".into(),
        env: vec![("MODBRIDGE_PROBE_INTERVAL_SECS", "1".into())],
        ..Default::default()
    })
    .await;
    let ops = slack("C0ALERTS00");
    let target = slack("C0123ABCD");
    let headlines = |app: &TestApp| -> Vec<String> {
        app.recorder
            .cards_for(&ops)
            .iter()
            .map(|c| c.headline.clone())
            .collect()
    };
    app.recorder.break_config(&target);
    let (_, json) = answer(
        app.deliver(&post_body("RD1", "forbidden phrase"), "rd1")
            .await,
    )
    .await;
    assert_eq!(json["parked"], 1, "{json}");

    // Redis goes away; the destination is fixed meanwhile.
    tokio::task::block_in_place(|| redis.stop());
    app.recorder.fix(&target);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(headlines(&app), ["Destination broken: slack:C0123ABCD"]);
    assert!(app.recorder.cards_for(&target).is_empty());

    // Back: the parked card goes through, then "works again".
    tokio::task::block_in_place(|| redis.restart());
    let deadline = Instant::now() + Duration::from_secs(10);
    while headlines(&app).len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.recorder.cards_for(&target).len(), 1);
    assert_eq!(
        headlines(&app),
        [
            "Destination broken: slack:C0123ABCD",
            "Destination works again: slack:C0123ABCD"
        ]
    );
    app.stop().await;
}
