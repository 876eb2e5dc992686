//! Several replicas sharing one Redis: a post that Cativa delivers under two
//! execution IDs (two listeners) to two replicas at the same instant makes
//! one card per channel, because each card is reserved in Redis before the
//! platform call, whichever replica gets there first.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::chaos_proxy::{ChaosProxy, Platform};
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

/// Waves off: these runs prove card delivery across replicas; spam waves
/// (digests) are tested in waves.rs and wave_load.rs.
const CONFIG: &str = "post_url = \"https://community.example.com/posts/{post_id}\"\n\n[waves]\nenabled = false\n\n[destinations.hook]\ndiscord_webhook_env = \"MODS_HOOK\"\n";

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
        adjust: None,
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
            adjust: None,
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

/// Slack channels of the three-replica runs (Slack paces each channel at
/// about one message a second per replica).
const TRIO_CHANNELS: usize = 10;

fn trio_channel(i: usize) -> String {
    format!("CTRIO{i:04}")
}

/// `slackword<i>` makes a card for Slack channel i; `bothword<i>` for it and
/// for the Discord incoming webhook (no nonce: a second send is a second
/// message).
fn trio_rules() -> String {
    let mut r = String::from("name = \"Trio\"\ngroups = [\"*\"]\nto = [\"slack:CTRIO0000\"]\n");
    for i in 0..TRIO_CHANNELS {
        let ch = trio_channel(i);
        r += &format!(
            "\n[[match]]\nname = \"s{i}\"\nkeywords = [\"slackword{i}\"]\nto = [\"slack:{ch}\"]\n"
        );
        r += &format!(
            "\n[[match]]\nname = \"b{i}\"\nkeywords = [\"bothword{i}\"]\nto = [\"slack:{ch}\", \"hook\"]\n"
        );
    }
    r
}

/// A post of a stream and the channels that must each get one card of it
/// (Slack channel IDs, and `hook` for the Discord webhook).
struct Due {
    post: String,
    body: String,
    channels: Vec<String>,
}

/// `n` posts spread over the Slack channels; every `hook_every`-th also goes
/// to the Discord webhook.
fn due_posts(prefix: &str, n: usize, hook_every: Option<usize>) -> Vec<Due> {
    (0..n)
        .map(|i| {
            let c = i % TRIO_CHANNELS;
            let post = format!("{prefix}{i:04}X");
            let hook = hook_every.is_some_and(|k| i % k == 0);
            let word = if hook { "bothword" } else { "slackword" };
            let mut channels = vec![trio_channel(c)];
            if hook {
                channels.push("hook".into());
            }
            Due {
                body: post_body(&post, &format!("a {word}{c} here")),
                post,
                channels,
            }
        })
        .collect()
}

/// Three replicas sharing `redis_url`, posting to Slack and Discord at the
/// given bases (a fake's or a chaos proxy's); the prober runs every second.
async fn trio(redis_url: &str, slack_api: &str, discord_api: &str) -> Vec<TestApp> {
    let mut apps = Vec::new();
    for _ in 0..3 {
        apps.push(
            spawn_with(AppOptions {
                redis_url: Some(redis_url.to_owned()),
                rules: trio_rules(),
                config: format!("{CONFIG}\n[delivery]\nprobe_interval_secs = 1\n"),
                env: vec![
                    ("SLACK_BOT_TOKEN", SLACK_TOKEN.into()),
                    ("SLACK_API_URL", slack_api.to_owned()),
                    ("DISCORD_API_URL", discord_api.to_owned()),
                    ("MODS_HOOK", FakeDiscord::webhook_url()),
                ],
                live: true,
                adjust: None,
            })
            .await,
        );
    }
    apps
}

/// Delivers post `n` every `spacing`, each like Cativa with two listeners: under
/// two execution IDs, to two different replicas at the same instant, each
/// retried on every non-2xx; every fifth is then delivered once more under its
/// first execution ID to the third replica (a plain redelivery, as after an
/// answer Cativa did not get). Returns how many deliveries never got a 2xx.
async fn deliver_stream(apps: &[TestApp], posts: &[Due], spacing: Duration) -> usize {
    let within = Duration::from_secs(150);
    let answers =
        futures_util::future::join_all(posts.iter().enumerate().map(|(n, due)| async move {
            tokio::time::sleep(spacing * n as u32).await;
            let (exec_a, exec_b) = (format!("{}-a", due.post), format!("{}-b", due.post));
            let (x, y) = tokio::join!(
                apps[n % 3].deliver_until_ok(&due.body, &exec_a, within),
                apps[(n + 1) % 3].deliver_until_ok(&due.body, &exec_b, within),
            );
            let z = if n % 5 == 0 {
                apps[(n + 2) % 3]
                    .deliver_until_ok(&due.body, &exec_a, within)
                    .await
            } else {
                200
            };
            [x, y, z]
        }))
        .await;
    answers
        .iter()
        .flatten()
        .filter(|s| !(200..300).contains(*s))
        .count()
}

/// The post IDs linked from a card (`…/posts/<id>`).
fn linked_posts(text: &str) -> BTreeSet<String> {
    text.split("/posts/")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect::<String>()
        })
        .filter(|id| !id.is_empty())
        .collect()
}

/// Cards that arrived, by (post, channel): Slack messages the fake accepted
/// and messages of the Discord webhook (channel `hook`).
fn arrived(slack: &FakeSlack, discord: &FakeDiscord) -> BTreeMap<(String, String), usize> {
    let mut got = BTreeMap::new();
    for body in slack.posted() {
        let channel = body["channel"].as_str().unwrap_or_default().to_owned();
        for post in linked_posts(&body.to_string()) {
            *got.entry((post, channel.clone())).or_insert(0) += 1;
        }
    }
    for body in discord.messages(WEBHOOK_ID) {
        for post in linked_posts(&body.to_string()) {
            *got.entry((post, "hook".to_owned())).or_insert(0) += 1;
        }
    }
    got
}

/// Every (post, channel) the stream must make a card for.
fn expected(posts: &[Due]) -> BTreeSet<(String, String)> {
    posts
        .iter()
        .flat_map(|d| d.channels.iter().map(|c| (d.post.clone(), c.clone())))
        .collect()
}

/// Waits up to `within` for every expected card (parked ones are replayed by
/// the prober), then returns what arrived.
async fn settle(
    slack: &FakeSlack,
    discord: &FakeDiscord,
    expected: &BTreeSet<(String, String)>,
    within: Duration,
) -> BTreeMap<(String, String), usize> {
    let deadline = Instant::now() + within;
    loop {
        let got = arrived(slack, discord);
        if expected.iter().all(|k| got.contains_key(k)) || Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The sum over replicas of `modbridge_cards_total{outcome=…}`.
async fn cards_counted(apps: &[TestApp], outcome: &str) -> u64 {
    let label = format!("outcome=\"{outcome}\"");
    let mut total = 0;
    for app in apps {
        total += app
            .metrics()
            .await
            .lines()
            .filter(|l| l.starts_with("modbridge_cards_total") && l.contains(&label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64;
    }
    total
}

/// Three replicas sharing one Redis (AOF, fsync always), 300 posts each
/// delivered under two execution IDs to two different replicas at the same
/// instant plus 20% plain redeliveries, Slack and Discord behind proxies that
/// answer 20% of the calls with a 500 or a 429 (never losing an answer, so no
/// duplicate is excusable), and Redis shut down gracefully and started again
/// while the stream runs: every due card arrives exactly once per channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "long: cargo test --test api -- --ignored"]
async fn three_replicas_with_faults_and_a_redis_restart_send_every_card_once() {
    let Some(mut redis) = RedisServer::start_persistent() else {
        return;
    };
    let slack = FakeSlack::start(SLACK_TOKEN).await;
    let discord = FakeDiscord::start().await;
    let slack_proxy = ChaosProxy::start(&slack.base, Platform::Slack, 0.2, Duration::ZERO, 5).await;
    let discord_proxy =
        ChaosProxy::start(&discord.base, Platform::Discord, 0.2, Duration::ZERO, 9).await;
    slack_proxy.errors_only();
    discord_proxy.errors_only();
    let apps = trio(&redis.url, &slack_proxy.base, &discord_proxy.base).await;
    let posts = due_posts("TRI", 300, Some(4));
    let expected = expected(&posts);
    let started = Instant::now();
    let restart = async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        shutdown_gracefully(&redis.url).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        tokio::task::block_in_place(|| redis.restart());
    };
    let (failed, ()) = tokio::join!(
        deliver_stream(&apps, &posts, Duration::from_millis(100)),
        restart
    );
    let answered = started.elapsed();
    assert_eq!(failed, 0, "deliveries never answered 2xx");
    slack_proxy.set_rate(0.0);
    discord_proxy.set_rate(0.0);
    let got = settle(&slack, &discord, &expected, Duration::from_secs(60)).await;
    let lost: Vec<_> = expected.iter().filter(|k| !got.contains_key(*k)).collect();
    let unexpected: Vec<_> = got.keys().filter(|k| !expected.contains(*k)).collect();
    let duplicated: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
    let (s, d) = (slack_proxy.counts(), discord_proxy.counts());
    let maybe = cards_counted(&apps, "maybe_duplicate").await;
    eprintln!(
        "three replicas: {} posts x 2 execution IDs at once + {} redeliveries, 1 graceful Redis restart, faults Slack {}x500 {}x429 Discord {}x500 {}x429; {} cards due, {} arrived, {} lost, {} duplicates, maybe_duplicate {maybe}; answered in {:.1} s, all cards in {:.1} s",
        posts.len(),
        posts.len().div_ceil(5),
        s.server_errors,
        s.rate_limited,
        d.server_errors,
        d.rate_limited,
        expected.len(),
        got.values().sum::<usize>(),
        lost.len(),
        duplicated.iter().map(|(_, n)| **n - 1).sum::<usize>(),
        answered.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    assert!(lost.is_empty(), "lost cards: {lost:?}");
    assert!(
        unexpected.is_empty(),
        "cards nobody asked for: {unexpected:?}"
    );
    assert!(duplicated.is_empty(), "duplicates: {duplicated:?}");
    assert!(
        s.server_errors + s.rate_limited > 0 && d.server_errors + d.rate_limited > 0,
        "the faults were never exercised"
    );
    assert!(discord.invalid().is_empty(), "{:?}", discord.invalid());
    for app in apps {
        app.stop().await;
    }
}

/// Redis with `appendfsync everysec` killed with `SIGKILL` while three
/// replicas deliver 200 posts (two execution IDs each, to two replicas at
/// once) through a Slack that answers 200 ms after it recorded the message,
/// then started again on the same port and directory; Cativa's retries finish
/// the stream. Redis writes its AOF before it answers, so a killed process
/// loses nothing the kernel has: the test asserts no card is lost and explains
/// every duplicate (see [`kill_run`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "long: cargo test --test api -- --ignored"]
async fn redis_killed_with_everysec_loses_no_card_and_explains_every_duplicate() {
    kill_run(false).await;
}

/// As above, but the host "crashes" with Redis: the AOF is cut back to what
/// it held a second before the kill (what `everysec` may lose when the kernel
/// goes too: every write of the last second), so cards confirmed in that
/// second lose their records and may be sent twice; nothing else may.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "long: cargo test --test api -- --ignored"]
async fn redis_losing_its_last_second_duplicates_only_that_seconds_cards() {
    kill_run(true).await;
}

/// A duplicate is allowed only for a card whose sent record Redis may have
/// lost: one Slack first recorded within the last second before the kill
/// (everysec's window), plus the 200 ms the fake holds its answer and 300 ms
/// for the answer and the record to travel. Any other duplicate, or any lost
/// card, fails.
async fn kill_run(lose_last_second: bool) {
    let Some(mut redis) = RedisServer::start_everysec() else {
        return;
    };
    let slack = FakeSlack::start(SLACK_TOKEN).await;
    let discord = FakeDiscord::start().await;
    let answer_delay = Duration::from_millis(200);
    slack.delay_answers(answer_delay);
    let apps = trio(&redis.url, &slack.base, &discord.base).await;
    let prefix = if lose_last_second { "CUT" } else { "KIL" };
    let posts = due_posts(prefix, 200, None);
    let expected = expected(&posts);
    let started = Instant::now();
    let kill = async {
        // The AOF's size every 50 ms, to cut it back to a second before the kill.
        let mut sizes: Vec<(Instant, u64)> = Vec::new();
        while started.elapsed() < Duration::from_secs(6) {
            if let Some(len) = redis
                .aof_tail()
                .and_then(|p| p.metadata().ok())
                .map(|m| m.len())
            {
                sizes.push((Instant::now(), len));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let at = Instant::now();
        let cut = tokio::task::block_in_place(|| {
            redis.stop();
            let cut = lose_last_second.then(|| {
                let keep = sizes
                    .iter()
                    .rev()
                    .find(|(t, _)| at.duration_since(*t) >= Duration::from_secs(1))
                    .map_or(0, |(_, len)| *len);
                let aof = redis.aof_tail().expect("an AOF to cut");
                let before = aof.metadata().expect("AOF readable").len();
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&aof)
                    .and_then(|f| f.set_len(keep))
                    .expect("AOF cut back");
                before - keep
            });
            std::thread::sleep(Duration::from_millis(300));
            redis.start_again();
            cut
        });
        (at, cut)
    };
    let (failed, (killed_at, cut)) = tokio::join!(
        deliver_stream(&apps, &posts, Duration::from_millis(75)),
        kill
    );
    assert_eq!(failed, 0, "deliveries never answered 2xx");
    let got = settle(&slack, &discord, &expected, Duration::from_secs(60)).await;
    let lost: Vec<_> = expected.iter().filter(|k| !got.contains_key(*k)).collect();
    let unexpected: Vec<_> = got.keys().filter(|k| !expected.contains(*k)).collect();

    // When Slack first took each duplicated card.
    let window = Duration::from_secs(1) + answer_delay + Duration::from_millis(300);
    let received = slack.received();
    let (mut explained, mut unexplained) = (0, Vec::new());
    for ((post, channel), n) in got.iter().filter(|(_, n)| **n > 1) {
        let first = received
            .iter()
            .filter(|r| r.answer == "ok" && r.body["channel"].as_str() == Some(channel))
            .find(|r| linked_posts(&r.body.to_string()).contains(post))
            .map(|r| r.at);
        match first {
            Some(at) if at <= killed_at && killed_at.duration_since(at) <= window => {
                explained += n - 1;
            }
            _ => unexplained.push((
                post.clone(),
                channel.clone(),
                *n,
                first.map(|at| at.saturating_duration_since(started).as_millis()),
            )),
        }
    }
    let maybe = cards_counted(&apps, "maybe_duplicate").await;
    let how = match cut {
        Some(bytes) => format!("SIGKILL + AOF cut back to 1 s before ({bytes} bytes lost)"),
        None => "SIGKILL".to_owned(),
    };
    eprintln!(
        "redis {how}, appendfsync everysec: 3 replicas, {} posts x 2 execution IDs at once + {} redeliveries, killed at {:.1} s; {} cards due, {} arrived, {} lost, duplicates {explained} of cards Slack took within {} ms before the kill, {} otherwise, maybe_duplicate {maybe}; {:.1} s",
        posts.len(),
        posts.len().div_ceil(5),
        killed_at.duration_since(started).as_secs_f64(),
        expected.len(),
        got.values().sum::<usize>(),
        lost.len(),
        window.as_millis(),
        unexplained.len(),
        started.elapsed().as_secs_f64(),
    );
    assert!(lost.is_empty(), "lost cards: {lost:?}");
    assert!(
        unexpected.is_empty(),
        "cards nobody asked for: {unexpected:?}"
    );
    assert!(
        unexplained.is_empty(),
        "duplicates of cards Slack first took outside the last {} ms before the kill (post, channel, cards, first taken at ms): {unexplained:?}",
        window.as_millis()
    );
    for app in apps {
        app.stop().await;
    }
}
