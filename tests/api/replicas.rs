//! Several replicas sharing one Redis: a post that Cativa delivers under two
//! execution IDs (two listeners) to two replicas at the same instant makes
//! one card per channel, because each card is reserved in Redis before the
//! platform call, whichever replica gets there first.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fake_discord::{FakeDiscord, WEBHOOK_ID};
use crate::fake_slack::FakeSlack;
use crate::helpers::*;

const SLACK_TOKEN: &str = "xoxb-1111-2222-fake";

/// One Slack channel and one Discord incoming webhook (no nonce: nothing on
/// Discord's side would hide a second message).
const RULES: &str = r#"
name = "Everywhere"
groups = ["*"]
to = ["slack:C0123ABCD", "hook"]

[[match]]
name = "forbidden"
keywords = ["forbidden phrase"]
"#;

const CONFIG: &str = "post_url = \"https://community.example.com/posts/{post_id}\"\n\n[destinations.hook]\ndiscord_webhook_env = \"MODS_HOOK\"\n";

async fn replica(redis: &RedisServer, slack: &FakeSlack, discord: &FakeDiscord) -> TestApp {
    spawn_with(AppOptions {
        redis_url: Some(redis.url.clone()),
        rules: RULES.into(),
        config: CONFIG.into(),
        env: vec![
            ("SLACK_BOT_TOKEN", SLACK_TOKEN.into()),
            ("SLACK_API_URL", slack.base.clone()),
            ("DISCORD_API_URL", discord.base.clone()),
            ("MODS_HOOK", FakeDiscord::webhook_url()),
        ],
        live: true,
    })
    .await
}

/// How many of `bodies` link to post `id`.
fn cards_for(bodies: &[Value], id: &str) -> usize {
    let link = format!("/posts/{id}\"");
    bodies
        .iter()
        .filter(|b| b.to_string().contains(&link))
        .count()
}

#[tokio::test]
async fn two_replicas_make_one_card_per_channel_for_a_post_delivered_twice_at_once() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let slack = FakeSlack::start(SLACK_TOKEN).await;
    let discord = FakeDiscord::start().await;
    let a = replica(&redis, &slack, &discord).await;
    let b = replica(&redis, &slack, &discord).await;
    let posts: Vec<String> = (0..20).map(|i| format!("TWO-{i}")).collect();
    let started = Instant::now();
    let mut sends = Vec::new();
    let (a, b) = (&a, &b);
    for id in &posts {
        let body = post_body(id, "a forbidden phrase here");
        // The same post under two execution IDs, one to each replica, at once;
        // each retried like Cativa until it is answered 2xx.
        sends.push(async move {
            let (exec_a, exec_b) = (format!("listener-a-{id}"), format!("listener-b-{id}"));
            tokio::join!(
                a.deliver_until_ok(&body, &exec_a, Duration::from_secs(90)),
                b.deliver_until_ok(&body, &exec_b, Duration::from_secs(90)),
            )
        });
    }
    for (x, y) in futures_util::future::join_all(sends).await {
        assert_eq!(
            (x, y),
            (200, 200),
            "every delivery is answered 200 in the end"
        );
    }
    let slack_cards = slack.posted();
    let discord_cards = discord.messages(WEBHOOK_ID);
    for id in &posts {
        assert_eq!(cards_for(&slack_cards, id), 1, "Slack cards for {id}");
        assert_eq!(cards_for(&discord_cards, id), 1, "Discord cards for {id}");
    }
    assert_eq!((slack_cards.len(), discord_cards.len()), (20, 20));
    assert!(discord.invalid().is_empty(), "{:?}", discord.invalid());
    eprintln!(
        "two replicas: 40 deliveries, 40 cards in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Slack channels the restart run spreads its cards over (Slack paces each
/// channel at about one message a second per replica).
const RESTART_CHANNELS: usize = 8;

fn restart_rules() -> String {
    let mut r =
        String::from("name = \"Restarts\"\ngroups = [\"*\"]\nto = [\"slack:CRESTART00\"]\n");
    for i in 0..RESTART_CHANNELS {
        r += &format!(
            "\n[[match]]\nname = \"w{i}\"\nkeywords = [\"word{i}\"]\nto = [\"slack:CRESTART0{i}\"]\n"
        );
    }
    r
}

/// Redis shut down gracefully (AOF, fsync always) and started again on the
/// same port, twice, while two replicas deliver 160 posts (each under two
/// execution IDs, one per replica, at once) through a Slack that answers
/// 200 ms after it recorded the message: cards confirmed while Redis is down
/// are journaled and recorded when it is back, before new reservations. No
/// post may get a second card (Slack has no idempotency key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: cargo test --test api -- --ignored"]
async fn graceful_redis_restarts_under_load_make_no_duplicate() {
    let Some(mut redis) = RedisServer::start_persistent() else {
        return;
    };
    let slack = FakeSlack::start(SLACK_TOKEN).await;
    slack.delay_answers(Duration::from_millis(200));
    let spawn = |redis_url: String| {
        spawn_with(AppOptions {
            redis_url: Some(redis_url),
            rules: restart_rules(),
            config: CONFIG.into(),
            env: vec![
                ("SLACK_BOT_TOKEN", SLACK_TOKEN.into()),
                ("SLACK_API_URL", slack.base.clone()),
            ],
            live: true,
        })
    };
    let (a, b) = (
        spawn(redis.url.clone()).await,
        spawn(redis.url.clone()).await,
    );
    let posts: Vec<(String, String)> = (0..160)
        .map(|i| (format!("RST-{i}"), format!("word{}", i % RESTART_CHANNELS)))
        .collect();
    let started = Instant::now();
    let load = {
        let (a, b) = (&a, &b);
        futures_util::future::join_all(posts.iter().enumerate().map(|(n, (id, word))| async move {
            // Spread over the first ~8 s.
            tokio::time::sleep(Duration::from_millis(50 * n as u64)).await;
            let body = post_body(id, &format!("a {word} here"));
            let (exec_a, exec_b) = (format!("rst-a-{id}"), format!("rst-b-{id}"));
            tokio::join!(
                a.deliver_until_ok(&body, &exec_a, Duration::from_secs(150)),
                b.deliver_until_ok(&body, &exec_b, Duration::from_secs(150)),
            )
        }))
    };
    let restarts = async {
        for at in [2_000, 5_000] {
            tokio::time::sleep_until(tokio::time::Instant::from_std(
                started + Duration::from_millis(at),
            ))
            .await;
            shutdown_gracefully(&redis.url).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            tokio::task::block_in_place(|| redis.restart());
        }
    };
    let (answers, ()) = tokio::join!(load, restarts);
    for (x, y) in answers {
        assert_eq!(
            (x, y),
            (200, 200),
            "every delivery is answered 200 in the end"
        );
    }
    let posted = slack.posted();
    let mut duplicates = 0;
    for (id, _) in &posts {
        let n = cards_for(&posted, id);
        assert!(n >= 1, "{id} lost");
        duplicates += n - 1;
    }
    // Cards confirmed while Redis was away (journaled), per replica.
    let mut journaled = Vec::new();
    for app in [&a, &b] {
        let text = app
            .get(format!(
                "{}/metrics",
                app.admin.as_ref().unwrap_or(&app.base)
            ))
            .await
            .text()
            .await
            .unwrap();
        journaled.push(
            text.lines()
                .find(|l| {
                    l.starts_with("modbridge_dedupe_errors_total") && l.contains("op=\"confirm\"")
                })
                .and_then(|l| l.rsplit(' ').next())
                .unwrap_or("0")
                .to_owned(),
        );
    }
    eprintln!(
        "graceful redis restarts: 2 restarts, 2 replicas, {} posts x 2 execution IDs, {} cards, {duplicates} duplicates, journaled (confirmed while Redis was away) {journaled:?}, {:.1} s",
        posts.len(),
        posted.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(duplicates, 0);
}

/// `SHUTDOWN` (Redis writes its AOF and exits; the connection drops).
async fn shutdown_gracefully(url: &str) {
    let client = redis::Client::open(url).unwrap();
    if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
        let _: Result<(), _> = redis::cmd("SHUTDOWN").query_async(&mut conn).await;
    }
}
