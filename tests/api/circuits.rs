//! Circuits shared by replicas: a destination that breaks is announced once
//! whichever replicas see it, its cards are parked by all of them without
//! calling it again, one replica at a time probes it, and "works again" is
//! announced once, after a card really went through.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fake_slack::FakeSlack;
use crate::helpers::*;

const SLACK_TOKEN: &str = "xoxb-1111-2222-fake";
const BROKEN: &str = "C0123ABCD";
const ALERTS: &str = "C0ALERTS00";

const RULES: &str = r#"
name = "Everywhere"
groups = ["*"]
to = ["slack:C0123ABCD"]

[[match]]
name = "forbidden"
keywords = ["forbidden phrase"]
"#;

async fn replica(redis: &RedisServer, slack: &FakeSlack) -> TestApp {
    spawn_with(AppOptions {
        redis_url: Some(redis.url.clone()),
        rules: RULES.into(),
        config: format!(
            // Waves off: this proves circuits and parking, card by card.
            "post_url = \"https://community.example.com/posts/{{post_id}}\"\n\n[waves]\nenabled = false\n\n[destinations.ops]\nslack = \"{ALERTS}\"\n\n[alerts]\nto = \"ops\"\n"
        ),
        env: vec![
            ("SLACK_BOT_TOKEN", SLACK_TOKEN.into()),
            ("SLACK_API_URL", slack.base.clone()),
            ("MODBRIDGE_PROBE_INTERVAL_SECS", "1".into()),
        ],
        live: true,
        adjust: None,
    })
    .await
}

fn posted_to(slack: &FakeSlack, channel: &str) -> Vec<Value> {
    slack
        .posted()
        .into_iter()
        .filter(|b| b["channel"] == channel)
        .collect()
}

fn notices(slack: &FakeSlack, headline: &str) -> usize {
    posted_to(slack, ALERTS)
        .iter()
        .filter(|b| b.to_string().contains(headline))
        .count()
}

fn failed_calls(slack: &FakeSlack) -> usize {
    slack
        .received()
        .iter()
        .filter(|r| {
            r.method == "chat.postMessage"
                && r.body["channel"] == BROKEN
                && r.answer == "channel_not_found"
        })
        .count()
}

async fn wait_until(within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_circuit_opened_on_two_replicas_is_announced_once_and_closed_once() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let slack = FakeSlack::start(SLACK_TOKEN).await;
    let a = replica(&redis, &slack).await;
    let b = replica(&redis, &slack).await;
    slack.remove_channel(BROKEN);

    // The first card breaks the circuit on replica A.
    let started = Instant::now();
    let first = post_body("C-0", "a forbidden phrase");
    assert_eq!(
        a.deliver_until_ok(&first, "c-a-0", Duration::from_secs(20))
            .await,
        200
    );
    // Both replicas get more posts: B has never called the channel, and
    // parks them all the same.
    let (a, b) = (&a, &b);
    let mut sends = Vec::new();
    for i in 1..=5 {
        sends.push(async move {
            let (pa, pb) = (format!("C-A{i}"), format!("C-B{i}"));
            let (ba, bb) = (
                post_body(&pa, "a forbidden phrase"),
                post_body(&pb, "a forbidden phrase"),
            );
            let (ea, eb) = (format!("c-a-{i}"), format!("c-b-{i}"));
            tokio::join!(
                a.deliver_until_ok(&ba, &ea, Duration::from_secs(20)),
                b.deliver_until_ok(&bb, &eb, Duration::from_secs(20)),
            )
        });
    }
    for (x, y) in futures_util::future::join_all(sends).await {
        assert_eq!((x, y), (200, 200), "parked cards are answered 200");
    }
    // Both replicas probe every second for a while.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let broken_for = started.elapsed();
    wait_until(Duration::from_secs(2), || {
        notices(&slack, "Destination broken") >= 1
    })
    .await;
    assert_eq!(
        notices(&slack, "Destination broken: slack:C0123ABCD"),
        1,
        "one notice for two replicas"
    );
    // The first failure, then one probe per interval for all replicas
    // together (each replica on its own would probe every interval).
    let failed = failed_calls(&slack);
    let bound = 2 + broken_for.as_secs() as usize;
    eprintln!(
        "broken for {:.1} s on two replicas: {failed} failing calls (bound {bound})",
        broken_for.as_secs_f64()
    );
    assert!(failed <= bound, "{failed} failing calls in {broken_for:?}");
    assert!(posted_to(&slack, BROKEN).is_empty());

    slack.restore_channel(BROKEN);
    wait_until(Duration::from_secs(20), || {
        posted_to(&slack, BROKEN).len() >= 11
    })
    .await;
    // Late duplicates or a second notice would show up within this.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let delivered = posted_to(&slack, BROKEN);
    assert_eq!(delivered.len(), 11, "every parked card once");
    for id in std::iter::once("C-0".to_owned())
        .chain((1..=5).flat_map(|i| [format!("C-A{i}"), format!("C-B{i}")]))
    {
        let link = format!("/posts/{id}\"");
        let n = delivered
            .iter()
            .filter(|b| b.to_string().contains(&link))
            .count();
        assert_eq!(n, 1, "cards for {id}");
    }
    assert_eq!(
        notices(&slack, "Destination works again: slack:C0123ABCD"),
        1,
        "one recovery notice for two replicas"
    );
    assert_eq!(notices(&slack, "Destination broken: slack:C0123ABCD"), 1);
}
