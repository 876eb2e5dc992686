//! Bounded time: an execution still running after
//! `intake.max_processing_secs` stops and gives its lease back, however
//! slow the platform is.

use std::time::{Duration, Instant};

use redis::AsyncCommands;

use crate::fake_slack::FakeSlack;
use crate::helpers::*;

const SLACK_TOKEN: &str = "xoxb-1111-2222-fake";

#[tokio::test]
async fn an_execution_past_max_processing_stops_and_releases_its_lease() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let slack = FakeSlack::start(SLACK_TOKEN).await;
    // Slack takes the message, then answers after 20 s.
    slack.delay_answers(Duration::from_secs(20));
    let app = spawn_with(AppOptions {
        redis_url: Some(redis.url.clone()),
        env: vec![
            ("SLACK_BOT_TOKEN", SLACK_TOKEN.into()),
            ("SLACK_API_URL", slack.base.clone()),
            ("MODBRIDGE_DEADLINE_SECS", "1".into()),
            ("MODBRIDGE_MAX_PROCESSING_SECS", "1".into()),
            ("MODBRIDGE_DELIVERY_TIMEOUT_SECS", "30".into()),
        ],
        live: true,
        ..Default::default()
    })
    .await;
    let mut conn = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let body = post_body("SLOW1", "a forbidden phrase");
    let started = Instant::now();
    let resp = app.deliver(&body, "slow-1").await;
    assert_eq!(resp.status().as_u16(), 503, "past the request's deadline");
    let claim = "modbridge:exec:{slow-1}:claim";
    let mut held = true;
    while started.elapsed() < Duration::from_secs(4) {
        held = conn.exists(claim).await.unwrap();
        if !held {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let released_after = started.elapsed();
    assert!(!held, "the lease is still held after {released_after:?}");
    eprintln!(
        "max_processing_secs = 1: lease released after {:.2} s (Slack answers after 20 s)",
        released_after.as_secs_f64()
    );
    // Cativa's retry can take the execution; the card cut mid-call stays
    // reserved (it may be in Slack), so nothing is sent twice meanwhile.
    let resp = app.deliver(&body, "slow-1").await;
    assert_eq!(resp.status().as_u16(), 503);
    let calls = slack
        .received()
        .into_iter()
        .filter(|r| r.method == "chat.postMessage")
        .count();
    assert_eq!(calls, 1, "one call to Slack");
    app.stop().await;
}
