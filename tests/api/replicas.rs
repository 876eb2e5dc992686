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
