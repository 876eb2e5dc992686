//! Dedupe against a real Redis: the shared protocol suite, and the service's
//! behaviour when Redis goes away and comes back.

use std::time::Duration;

use modbridge::dedupe::{RedisStore, Ttl, suite};

use crate::helpers::*;

fn store(url: &str, lease: Duration) -> RedisStore {
    RedisStore::new(
        url,
        &format!("test{}:", rand_suffix()),
        Ttl {
            lease,
            done: Duration::from_secs(3600),
        },
    )
    .unwrap()
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[tokio::test]
async fn redis_store_follows_the_protocol() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let lease = Duration::from_secs(1);
    suite::run(&store(&redis.url, lease), "redis", lease).await;
    suite::concurrent(&store(&redis.url, Duration::from_secs(5)), "redis").await;
    suite::concurrent_reservations(&store(&redis.url, Duration::from_secs(5)), "redis").await;
    suite::schedules(&store(&redis.url, Duration::from_secs(5)), "redis").await;
}

#[tokio::test]
async fn redis_store_joins_campaigns() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    suite::campaigns(&store(&redis.url, Duration::from_secs(5)), "redis").await;
    suite::concurrent_campaigns(&store(&redis.url, Duration::from_secs(5)), "redis").await;
}

#[tokio::test]
async fn concurrent_deliveries_through_redis_are_processed_once() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let app = spawn_with(AppOptions {
        redis_url: Some(redis.url.clone()),
        ..Default::default()
    })
    .await;
    let body = post_body("R1", "forbidden phrase");
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (client, url, body) = (app.client.clone(), app.webhook_url(), body.clone());
        tasks.push(tokio::spawn(async move {
            let resp = client
                .post(url)
                .header("x-cativa-signature", sign(SECRET, now(), body.as_bytes()))
                .header("x-cativa-execution-id", "redis-race")
                .body(body)
                .send()
                .await
                .unwrap();
            answer(resp).await
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        let (status, json) = t.await.unwrap();
        match (status, json["status"].as_str()) {
            (200, Some("accepted")) => accepted += 1,
            (200, Some("duplicate")) | (503, _) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(accepted, 1);
    assert_eq!(app.recorder.cards().len(), 1);
    // A second replica sharing Redis sees it as done.
    let replica = spawn_with(AppOptions {
        redis_url: Some(redis.url.clone()),
        ..Default::default()
    })
    .await;
    let (status, json) = answer(replica.deliver(&body, "redis-race").await).await;
    assert_eq!((status, json["status"].as_str()), (200, Some("duplicate")));
    replica.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn a_dead_holders_lease_expires_and_the_retry_succeeds() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let app = spawn_with(AppOptions {
        redis_url: Some(redis.url.clone()),
        ..Default::default()
    })
    .await;
    // A worker elsewhere claimed it and died without renewing.
    let prefix_store = RedisStore::new(
        &redis.url,
        "modbridge:",
        Ttl {
            lease: Duration::from_millis(1500),
            done: Duration::from_secs(60),
        },
    )
    .unwrap();
    let id = modbridge::dedupe::ExecutionId::parse("redis-dead").unwrap();
    let claim = modbridge::dedupe::DedupeStore::claim(&prefix_store, &id)
        .await
        .unwrap();
    assert!(matches!(claim, modbridge::dedupe::Claim::First(_)));
    let body = post_body("R2", "forbidden phrase");
    let resp = app.deliver(&body, "redis-dead").await;
    assert_eq!(resp.status().as_u16(), 503);
    assert!(resp.headers().get("retry-after").is_some());
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let (status, json) = answer(app.deliver(&body, "redis-dead").await).await;
    assert_eq!(
        (status, json["status"].as_str()),
        (200, Some("accepted")),
        "{json}"
    );
    app.stop().await;
}

#[tokio::test]
async fn redis_down_means_503_then_recovery_without_restart() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let app = spawn_with(AppOptions {
        redis_url: Some(redis.url.clone()),
        ..Default::default()
    })
    .await;
    let (status, _) = answer(app.deliver(&post_body("R3", "x"), "redis-down-1").await).await;
    assert_eq!(status, 200);

    redis.stop();
    let started = std::time::Instant::now();
    let resp = app
        .deliver(&post_body("R4", "forbidden phrase"), "redis-down-2")
        .await;
    assert_eq!(resp.status().as_u16(), 503);
    assert!(resp.headers().get("retry-after").is_some());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let ready = app.get(format!("{}/readyz", app.base)).await;
    assert_eq!(ready.status().as_u16(), 503);
    assert!(
        app.recorder.cards().is_empty(),
        "nothing is sent without a claim"
    );

    redis.restart();
    let mut recovered = false;
    for _ in 0..50 {
        let resp = app
            .deliver(&post_body("R4", "forbidden phrase"), "redis-down-2")
            .await;
        if resp.status().as_u16() == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "did not recover after Redis came back");
    let ready = app.get(format!("{}/readyz", app.base)).await;
    assert_eq!(ready.status().as_u16(), 200);
    assert_eq!(app.recorder.cards().len(), 1);
    app.stop().await;
}

/// Redis goes away while the platform is taking a card: the confirmation is
/// kept in the process's journal, consulted before any send (a second
/// listener's delivery of the post sends nothing) and written to Redis once
/// it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_confirmed_while_redis_is_down_is_journaled_not_resent() {
    let Some(mut redis) = RedisServer::start_persistent() else {
        return;
    };
    let app = spawn_with(AppOptions {
        redis_url: Some(redis.url.clone()),
        ..Default::default()
    })
    .await;
    app.recorder.set_delay(Duration::from_millis(1000));
    let body = post_body("J1", "forbidden phrase");
    let first = {
        let (client, url, body) = (app.client.clone(), app.webhook_url(), body.clone());
        tokio::spawn(async move {
            let resp = client
                .post(url)
                .header("x-cativa-signature", sign(SECRET, now(), body.as_bytes()))
                .header("x-cativa-execution-id", "journal-a")
                .body(body)
                .send()
                .await
                .unwrap();
            resp.status().as_u16()
        })
    };
    // Down while the card is with the platform; back after it confirmed.
    tokio::time::sleep(Duration::from_millis(400)).await;
    tokio::task::block_in_place(|| redis.stop());
    let status = first.await.unwrap();
    assert_eq!(status, 503, "the execution could not be recorded as done");
    assert_eq!(app.recorder.cards().len(), 1);
    tokio::task::block_in_place(|| redis.restart());
    app.recorder.set_delay(Duration::ZERO);

    // The same post through a second listener: the journal says it is sent.
    let status = app
        .deliver_until_ok(&body, "journal-b", Duration::from_secs(20))
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.recorder.cards().len(), 1, "no second card");

    // And the record lands in Redis.
    let mut conn = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = "modbridge:card:01HQ0ABCDEF1234567890XYZ\u{1f}J1\u{1f}slack:C0123ABCD";
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let record: Option<String> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        if record.as_deref() == Some(r#"{"state":"sent","message":null}"#) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "record not written: {record:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}
