//! The proof of the delivery guarantees: the real binary with Redis dedupe,
//! a Cativa simulator that retries like Cativa, fake Slack and Discord behind
//! proxies that fail 20% of calls (500, 429, timeouts before and after the
//! platform records), two SIGKILLs, a Redis restart, and a destination broken
//! for part of the run. Every event must end 2xx; no card may be lost; the
//! only duplicates allowed are those a lost answer or a kill explains, and
//! none on Slack: the token has the history scope, so a Slack card whose
//! answer was lost (or whose sender was killed) is looked up in
//! `conversations.history` before it is sent again.
//!
//! Two sizes: a short run (200 events) in the default `cargo test`, and the
//! long run (2,000 events) as `cargo test --test api -- --ignored`.
//! CHAOS_EVENTS overrides either.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::chaos_proxy::{ChaosProxy, Platform};
use crate::fake_discord::{BOT_TOKEN, FakeDiscord};
use crate::fake_slack::FakeSlack;
use crate::helpers::*;

const SLACK_TOKEN: &str = "xoxb-chaos-token-0000";
const SECOND_SECRET: &str =
    "whsec_3c1e5a7f9b2d4e6a8c0f1b3d5e7a9c2e4f6b8d0a1c3e5f7b9d2a4c6e8f0b1d3e";
const CHANNELS: usize = 5;

fn slack_channel(i: usize) -> String {
    format!("CCHAOS0{i}")
}

fn discord_channel(i: usize) -> String {
    format!("10000000000000000{i}")
}

fn rules() -> String {
    let mut r = String::from("name = \"Chaos\"\ngroups = [\"*\"]\nto = [\"slack:CCHAOS00\"]\n");
    for i in 0..CHANNELS {
        r += &format!(
            "\n[[match]]\nname = \"s{i}\"\nkeywords = [\"slackword{i}\"]\nto = [\"slack:{}\"]\n",
            slack_channel(i)
        );
        r += &format!(
            "\n[[match]]\nname = \"d{i}\"\nkeywords = [\"discordword{i}\"]\nto = [\"discord:{}\"]\n",
            discord_channel(i)
        );
        r += &format!(
            "\n[[match]]\nname = \"b{i}\"\nkeywords = [\"bothword{i}\"]\nto = [\"slack:{}\", \"discord:{}\"]\n",
            slack_channel(i),
            discord_channel(i)
        );
    }
    r
}

struct Event {
    id: usize,
    post: String,
    content: String,
    expected: Vec<String>,
}

fn events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|e| {
            let i = (e / 6) % CHANNELS;
            let (word, expected) = match e % 6 {
                3 => (format!("slackword{i}"), vec![slack_channel(i)]),
                4 => (format!("discordword{i}"), vec![discord_channel(i)]),
                5 => (
                    format!("bothword{i}"),
                    vec![slack_channel(i), discord_channel(i)],
                ),
                _ => ("nothing".to_owned(), vec![]),
            };
            Event {
                id: e,
                post: format!("CHAOS{e:05}X"),
                content: format!("please look at {word} now, case {e}"),
                expected,
            }
        })
        .collect()
}

fn body(ev: &Event) -> String {
    json!({
        "CustomerId": "01HQ0CHAOSCUSTOMER00000000",
        "PostId": ev.post,
        "GroupId": null,
        "User": {"Id": format!("U{}", ev.id), "DisplayName": "Chaos Tester", "Username": "chaos",
                 "Email": "chaos.person@example.com", "PhoneNumber": "+15550009999",
                 "CreatedAt": "2026-04-12T14:32:01Z", "Badges": []},
        "Content": ev.content,
        "ImageUrl": null,
        "CreatedAt": "2026-05-08T14:32:01Z"
    })
    .to_string()
}

pub(crate) struct Modbridge {
    pub(crate) child: Option<Child>,
    pub(crate) port: u16,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) dir: std::path::PathBuf,
    pub(crate) log: std::path::PathBuf,
}

impl Modbridge {
    /// The real binary set up in `dir`: `rules` as `rules/<name>.toml`,
    /// `config` as `modbridge.toml`, a free port, the test secret, Redis at
    /// `redis_url`, and `env` (platform tokens and bases, more secrets).
    /// Not started: [`Modbridge::spawn`].
    pub(crate) fn in_dir(
        dir: &std::path::Path,
        (name, rules): (&str, &str),
        config: &str,
        redis_url: &str,
        env: Vec<(String, String)>,
    ) -> Self {
        std::fs::create_dir(dir.join("rules")).unwrap();
        std::fs::write(dir.join(format!("rules/{name}.toml")), rules).unwrap();
        std::fs::write(dir.join("modbridge.toml"), config).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut all: Vec<(String, String)> = vec![
            ("CATIVA_WEBHOOK_SECRET".into(), SECRET.into()),
            ("REDIS_URL".into(), redis_url.to_owned()),
            ("MODBRIDGE_LISTEN".into(), format!("127.0.0.1:{port}")),
            ("MODBRIDGE_ADMIN_LISTEN".into(), "127.0.0.1:0".into()),
            (
                "MODBRIDGE_RULES".into(),
                dir.join("rules").display().to_string(),
            ),
            ("RUST_LOG".into(), "info".into()),
        ];
        all.extend(env);
        Modbridge {
            child: None,
            port,
            env: all,
            dir: dir.to_path_buf(),
            log: dir.join("modbridge.log"),
        }
    }

    pub(crate) fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_modbridge"));
        cmd.arg("--config")
            .arg(self.dir.join("modbridge.toml"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        self.child = Some(cmd.spawn().expect("modbridge starts"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("modbridge did not listen");
    }

    pub(crate) fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = c.try_wait() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        None
    }
}

impl Drop for Modbridge {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[derive(Default)]
struct Tally {
    attempts: AtomicUsize,
    non_2xx: AtomicUsize,
    conn_errors: AtomicUsize,
    done: AtomicUsize,
    failed: AtomicUsize,
}

/// Delivers like Cativa: until 2xx, honouring Retry-After on a curve
/// accelerated 20× (and capped), fresh signature each time.
async fn deliver_until_ok(
    client: &reqwest::Client,
    url: &str,
    body: &str,
    exec: &str,
    secret: &str,
    tally: &Tally,
) -> bool {
    let deadline = Instant::now() + Duration::from_secs(360);
    while Instant::now() < deadline {
        tally.attempts.fetch_add(1, Ordering::Relaxed);
        let resp = client
            .post(url)
            .header("content-type", "application/json")
            .header("x-cativa-signature", sign(secret, now(), body.as_bytes()))
            .header("x-cativa-execution-id", exec)
            .body(body.to_owned())
            .send()
            .await;
        match resp {
            Ok(r) if r.status().is_success() => return true,
            Ok(r) => {
                tally.non_2xx.fetch_add(1, Ordering::Relaxed);
                let secs: f64 = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(5.0);
                tokio::time::sleep(Duration::from_secs_f64((secs.min(60.0) / 20.0).max(0.05)))
                    .await;
            }
            Err(_) => {
                tally.conn_errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    false
}

fn post_ids(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("CHAOS") {
        let cand = &rest[i..];
        if cand.len() >= 11
            && cand[5..10].bytes().all(|b| b.is_ascii_digit())
            && cand.as_bytes()[10] == b'X'
        {
            out.push(cand[..11].to_owned());
        }
        rest = &rest[i + 5..];
    }
    out.sort();
    out.dedup();
    out
}

/// The short run in the default `cargo test`: every fault of the long run, on
/// 200 events.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_short_every_matching_post_arrives_once_per_channel() {
    run(events_from_env(200)).await;
}

/// The long run: 2,000 events (about 5 minutes). `.ci/run` runs it after the
/// default suite with `cargo test --test api -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "long chaos run: cargo test --test api -- --ignored"]
async fn chaos_long_every_matching_post_arrives_once_per_channel() {
    run(events_from_env(2000)).await;
}

/// `CHAOS_EVENTS` overrides the size of either run.
fn events_from_env(default: usize) -> usize {
    std::env::var("CHAOS_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn run(n: usize) {
    let Some(mut redis) = RedisServer::start_persistent() else {
        return;
    };
    let started = Instant::now();

    let slack = FakeSlack::start(SLACK_TOKEN).await;
    slack.grant_history();
    let discord = FakeDiscord::start().await;
    for i in 0..CHANNELS {
        discord.add_channel(discord_channel(i).parse().unwrap());
    }
    let hang = Duration::from_millis(4000);
    let slack_proxy = ChaosProxy::start(&slack.base, Platform::Slack, 0.2, hang, 7).await;
    let discord_proxy = ChaosProxy::start(&discord.base, Platform::Discord, 0.2, hang, 11).await;
    let broken = slack_channel(0);
    slack_proxy.break_channel(&broken);

    let dir = tempfile::tempdir().unwrap();
    let mut app = Modbridge::in_dir(
        dir.path(),
        ("chaos", &rules()),
        // Waves off: this proves card delivery under faults; spam waves
        // (digests) have their own load test (wave_load.rs).
        "[waves]\nenabled = false\n\n[listeners.second]\nsecret_env = \"SECOND_SECRET\"\n\n[intake]\ndeadline_secs = 2\n\n[dedupe]\nlease_secs = 3\n\n[delivery]\nprobe_interval_secs = 1\ntimeout_secs = 3\n",
        &redis.url,
        vec![
            ("SECOND_SECRET".into(), SECOND_SECRET.into()),
            ("SLACK_BOT_TOKEN".into(), SLACK_TOKEN.into()),
            ("SLACK_API_URL".into(), slack_proxy.base.clone()),
            ("DISCORD_BOT_TOKEN".into(), BOT_TOKEN.into()),
            ("DISCORD_API_URL".into(), discord_proxy.base.clone()),
        ],
    );
    let port = app.port;
    app.spawn();

    let url = format!("http://127.0.0.1:{port}/webhooks/cativa");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let events = Arc::new(events(n));
    let tally = Arc::new(Tally::default());
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut StdRng::seed_from_u64(3));
    let queue = Arc::new(std::sync::Mutex::new(order));
    let duplicates_sent = Arc::new(AtomicUsize::new(0));

    let mut workers = Vec::new();
    for w in 0..48 {
        let (client, url, events, tally, queue, dups) = (
            client.clone(),
            url.clone(),
            events.clone(),
            tally.clone(),
            queue.clone(),
            duplicates_sent.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(100 + w);
            loop {
                let Some(e) = queue.lock().unwrap().pop() else {
                    break;
                };
                let ev = &events[e];
                let body = body(ev);
                let exec = format!("ev-{e}");
                let twice = e % 5 == 0;
                let ok = match (twice, (e / 5) % 3) {
                    (true, 0) => {
                        // Twice at once.
                        dups.fetch_add(1, Ordering::Relaxed);
                        let (a, b) = tokio::join!(
                            deliver_until_ok(&client, &url, &body, &exec, SECRET, &tally),
                            deliver_until_ok(&client, &url, &body, &exec, SECRET, &tally)
                        );
                        a && b
                    }
                    (true, 1) => {
                        // Again later.
                        dups.fetch_add(1, Ordering::Relaxed);
                        let a = deliver_until_ok(&client, &url, &body, &exec, SECRET, &tally).await;
                        tokio::time::sleep(Duration::from_millis(rng.random_range(0..500))).await;
                        a && deliver_until_ok(&client, &url, &body, &exec, SECRET, &tally).await
                    }
                    (true, _) => {
                        // Through the second listener, as a new execution.
                        dups.fetch_add(1, Ordering::Relaxed);
                        let second = format!("ev-{e}-second-listener");
                        let (a, b) = tokio::join!(
                            deliver_until_ok(&client, &url, &body, &exec, SECRET, &tally),
                            deliver_until_ok(&client, &url, &body, &second, SECOND_SECRET, &tally)
                        );
                        a && b
                    }
                    (false, _) => {
                        deliver_until_ok(&client, &url, &body, &exec, SECRET, &tally).await
                    }
                };
                if ok {
                    tally.done.fetch_add(1, Ordering::Relaxed);
                } else {
                    tally.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }

    // Chaos on a schedule of progress.
    let mut kills: Vec<Instant> = Vec::new();
    let mut step = 0;
    while tally.done.load(Ordering::Relaxed) + tally.failed.load(Ordering::Relaxed) < n {
        let progress = tally.done.load(Ordering::Relaxed) * 100 / n.max(1);
        match (step, progress) {
            (0, p) if p >= 20 => {
                kills.push(Instant::now());
                app.kill9();
                tokio::time::sleep(Duration::from_millis(300)).await;
                app.spawn();
                step += 1;
            }
            (1, p) if p >= 40 => {
                slack_proxy.fix_channel(&broken);
                step += 1;
            }
            (2, p) if p >= 45 => {
                redis.restart();
                step += 1;
            }
            (3, p) if p >= 65 => {
                kills.push(Instant::now());
                app.kill9();
                tokio::time::sleep(Duration::from_millis(300)).await;
                app.spawn();
                step += 1;
            }
            _ => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(540),
            "chaos run took too long"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for w in workers {
        w.await.unwrap();
    }

    // Parked cards drain once the destination works; then count.
    let expected: BTreeSet<(String, String)> = events
        .iter()
        .flat_map(|ev| {
            ev.expected
                .iter()
                .map(move |c| (ev.post.clone(), c.clone()))
        })
        .collect();
    let count = || {
        let mut got: BTreeMap<(String, String), usize> = BTreeMap::new();
        for body in slack.posted() {
            let channel = body["channel"].as_str().unwrap_or_default().to_owned();
            for post in post_ids(&body.to_string()) {
                *got.entry((post, channel.clone())).or_default() += 1;
            }
        }
        for i in 0..CHANNELS {
            let ch = discord_channel(i);
            for body in discord.messages(ch.parse().unwrap()) {
                for post in post_ids(&body.to_string()) {
                    *got.entry((post, ch.clone())).or_default() += 1;
                }
            }
        }
        got
    };
    let drain_deadline = Instant::now() + Duration::from_secs(60);
    slack_proxy.set_rate(0.0);
    discord_proxy.set_rate(0.0);
    while expected.iter().any(|k| !count().contains_key(k)) && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let got = count();
    let status = app.terminate();

    let lost: Vec<_> = expected.iter().filter(|k| !got.contains_key(*k)).collect();
    let unexpected: Vec<_> = got.keys().filter(|k| !expected.contains(*k)).collect();
    let lost_answers = [slack_proxy.lost_answers(), discord_proxy.lost_answers()].concat();
    let slack_received = slack.received();
    let (mut dup_lost_answer, mut dup_kill, mut dup_unexplained) = (0, 0, Vec::new());
    // Slack duplicates are not explained by anything: lookups prevent them.
    let mut dup_slack = Vec::new();
    for ((post, channel), n) in got.iter().filter(|(_, n)| **n > 1) {
        let extra = n - 1;
        if channel.starts_with('C') {
            dup_slack.push((post.clone(), channel.clone(), *n));
        } else if lost_answers
            .iter()
            .any(|l| l.contains(post.as_str()) && l.contains(channel.as_str()))
        {
            dup_lost_answer += extra;
        } else if slack_received.iter().any(|r| {
            r.body.to_string().contains(post.as_str())
                && kills.iter().any(|k| {
                    // Sent just before the kill, or in flight while it happened.
                    (r.at <= *k && k.duration_since(r.at) < Duration::from_secs(3))
                        || (r.at > *k && r.at.duration_since(*k) < Duration::from_secs(1))
                })
        }) {
            dup_kill += extra;
        } else {
            dup_unexplained.push((post.clone(), channel.clone(), *n));
        }
    }
    let cards: usize = got.values().sum();
    let mut discord_statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for r in discord.received() {
        *discord_statuses.entry(r.status).or_default() += 1;
    }
    println!("chaos: discord answers by status {discord_statuses:?}");
    if let Some(r) = discord.received().iter().find(|r| r.status >= 400) {
        println!(
            "chaos: first refused Discord request {} {} {}",
            r.method, r.path, r.body
        );
    }
    let s = slack_proxy.counts();
    let d = discord_proxy.counts();
    println!(
        "chaos: events={n} duplicates_sent={} attempts={} non_2xx={} connection_errors={} failed_events={}",
        duplicates_sent.load(Ordering::Relaxed),
        tally.attempts.load(Ordering::Relaxed),
        tally.non_2xx.load(Ordering::Relaxed),
        tally.conn_errors.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed)
    );
    println!(
        "chaos: expected_cards={} cards={cards} lost={} unexpected={} duplicates: lost_answer={dup_lost_answer} kill_window={dup_kill} unexplained={}",
        expected.len(),
        lost.len(),
        unexpected.len(),
        dup_unexplained.len()
    );
    let mut lookups: BTreeMap<String, usize> = BTreeMap::new();
    for r in slack_received
        .iter()
        .filter(|r| r.method == "conversations.history")
    {
        *lookups.entry(r.answer.clone()).or_default() += 1;
    }
    let slack_lost_answers = slack_proxy.lost_answers().len();
    println!(
        "chaos: slack lost answers {slack_lost_answers}, history lookups by answer {lookups:?}, slack duplicates {}",
        dup_slack.len()
    );
    println!("chaos: slack proxy {s:?}");
    println!("chaos: discord proxy {d:?}");
    println!(
        "chaos: broken channel answers (cards parked) {}; kills {}; redis restarts 1; took {:.1}s",
        s.broken_answers,
        kills.len(),
        started.elapsed().as_secs_f64()
    );

    assert_eq!(
        tally.failed.load(Ordering::Relaxed),
        0,
        "events that never got a 2xx"
    );
    assert!(lost.is_empty(), "lost cards: {lost:?}");
    assert!(
        unexpected.is_empty(),
        "cards nobody asked for: {unexpected:?}"
    );
    assert!(
        dup_unexplained.is_empty(),
        "unexplained duplicates: {dup_unexplained:?}"
    );
    assert!(
        dup_slack.is_empty(),
        "Slack duplicates although the history scope is granted: {dup_slack:?}"
    );
    assert!(
        slack_lost_answers == 0 || lookups.get("ok").copied().unwrap_or(0) > 0,
        "Slack answers were lost but nothing was looked up"
    );
    assert!(
        s.broken_answers > 0,
        "the broken destination was never exercised"
    );
    assert!(
        discord.invalid().is_empty(),
        "Discord bodies refused: {:?}",
        discord.invalid()
    );
    assert_eq!(status, Some(0), "exit status after SIGTERM");

    // Nothing secret or personal in the logs of the whole run.
    let log = std::fs::read_to_string(&app.log).unwrap();
    for needle in [
        SECRET,
        SECOND_SECRET,
        SLACK_TOKEN,
        BOT_TOKEN,
        "chaos.person@example.com",
        "+15550009999",
        "please look at",
    ] {
        assert!(!log.contains(needle), "log contains {needle:?}");
    }
}
