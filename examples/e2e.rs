//! End-to-end latency and soak: signed webhook in → card accepted by a fake
//! Slack, through the real release binary.
//!
//! cargo build --release && cargo run --release --example e2e -- \
//!     [--rate 100] [--seconds 30] [--channels 100] [--redis redis://127.0.0.1:6379/]
//!
//! Starts a minimal fake Slack (answers `ok` at once and timestamps each
//! card's arrival), writes a rules directory with one match per channel,
//! starts `target/release/modbridge serve` against both, then sends posts at
//! a fixed rate spread over the channels (so pacing does not queue). The
//! latency is arrival at the fake minus the send time, so the fake's own work
//! is not in it. Reports p50/p99, and the server's RSS and open sockets at
//! start and end. Loopback only; bounded in time.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use modbridge::intake::signature::Secret;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Json};
use poem::{EndpointExt, Route, Server, handler, post};

/// Shaped like a Cativa secret: `serve` refuses weaker ones outside dry-run.
const SECRET: &str = "whsec_e2e0f3c9a71b24d86e1f07a3c5b9d2e48f6a1c3e5b7d90f2a4c6e8b1d3f5a7c9";

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

#[handler]
fn post_message(
    Json(body): Json<serde_json::Value>,
    Data(arrivals): Data<&Arrivals>,
) -> Json<serde_json::Value> {
    let at = Instant::now();
    let text = body.to_string();
    if let Some(i) = text.find("E2EPOST") {
        let id: String = text[i..].chars().take(18).collect();
        arrivals.lock().unwrap().entry(id).or_insert(at);
    }
    Json(serde_json::json!({"ok": true, "channel": body["channel"], "ts": "1715177521.000100"}))
}

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

fn proc_status(pid: u32) -> (f64, usize) {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .unwrap_or(0.0)
        / 1024.0;
    let sockets = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
                })
                .count()
        })
        .unwrap_or(0);
    (rss, sockets)
}

#[tokio::main]
async fn main() {
    let rate: f64 = arg("--rate", "100").parse().expect("--rate");
    let seconds: u64 = arg("--seconds", "30").parse().expect("--seconds");
    let channels: usize = arg("--channels", "100").parse().expect("--channels");
    let redis = arg("--redis", "");
    assert!(seconds <= 900, "at most 900 seconds");

    let arrivals: Arrivals = Arc::default();
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let fake = *acceptor.local_addr()[0].as_socket_addr().unwrap();
    let app = Route::new()
        .at("/api/chat.postMessage", post(post_message))
        .data(arrivals.clone());
    tokio::spawn(async move { Server::new_with_acceptor(acceptor).run(app).await });

    let dir = tempfile::tempdir().unwrap();
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir(&rules_dir).unwrap();
    let mut rules = String::from("name = \"E2E\"\ngroups = [\"*\"]\nto = [\"slack:CLAT0000\"]\n");
    for i in 0..channels {
        rules += &format!(
            "\n[[match]]\nname = \"m{i}\"\nkeywords = [\"word{i}\"]\nto = [\"slack:CLAT{i:04}\"]\n"
        );
    }
    std::fs::write(rules_dir.join("e2e.toml"), rules).unwrap();
    std::fs::write(dir.path().join("modbridge.toml"), "").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new("target/release/modbridge");
    cmd.arg("--config")
        .arg(dir.path().join("modbridge.toml"))
        .arg("serve")
        .env("CATIVA_WEBHOOK_SECRET", SECRET)
        .env("SLACK_BOT_TOKEN", "xoxb-e2e")
        .env("SLACK_API_URL", format!("http://{fake}/api"))
        .env("MODBRIDGE_LISTEN", format!("127.0.0.1:{port}"))
        .env("MODBRIDGE_ADMIN_LISTEN", "127.0.0.1:0")
        .env("MODBRIDGE_RULES", &rules_dir)
        .env("RUST_LOG", "warn")
        .env_remove("MODBRIDGE_DRY_RUN")
        .stdout(Stdio::null());
    if redis.is_empty() {
        cmd.env_remove("REDIS_URL");
    } else {
        cmd.env("REDIS_URL", &redis);
    }
    let mut server = cmd
        .spawn()
        .expect("target/release/modbridge (cargo build --release first)");
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/webhooks/cativa");
    while client
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let start_status = proc_status(server.id());
    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 100_000;
    let total = (rate * seconds as f64) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut tasks = Vec::new();
    let mut failures = 0usize;
    for i in 0..total {
        tokio::time::sleep_until((started + interval * i as u32).into()).await;
        let post = format!("E2EPOST{run:05}{i:06}");
        let body = serde_json::json!({
            "CustomerId": "E2E", "PostId": post, "GroupId": null,
            "User": {"Id": "U1", "DisplayName": "Load", "CreatedAt": "2026-04-12T14:32:01Z"},
            "Content": format!("please look at word{} now", i % channels),
            "ImageUrl": null, "CreatedAt": "2026-05-08T14:32:01Z"
        })
        .to_string();
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let sig = Secret::new(SECRET).unwrap().sign(t, body.as_bytes());
        sent.lock().unwrap().insert(post.clone(), Instant::now());
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .header("x-cativa-signature", sig)
                .header("x-cativa-execution-id", format!("e2e-{post}"))
                .body(body)
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false)
        }));
        if i % 1000 == 999 {
            let (rss, sockets) = proc_status(server.id());
            eprintln!(
                "{:>5.0}s sent={} rss={rss:.1}MB sockets={sockets}",
                started.elapsed().as_secs_f64(),
                i + 1
            );
        }
    }
    for t in tasks {
        if !t.await.unwrap_or(false) {
            failures += 1;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let end_status = proc_status(server.id());
    let sent = sent.lock().unwrap();
    let arrivals = arrivals.lock().unwrap();
    let mut latencies: Vec<f64> = sent
        .iter()
        .filter_map(|(post, at)| {
            arrivals
                .get(post)
                .map(|a| a.duration_since(*at).as_secs_f64() * 1000.0)
        })
        .collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "sent={total} non_2xx={failures} cards={} rate={rate}/s channels={channels} seconds={seconds} dedupe={}",
        latencies.len(),
        if redis.is_empty() { "memory" } else { "redis" }
    );
    println!(
        "latency_ms p50={:.2} p99={:.2} max={:.2}",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "rss_mb start={:.1} end={:.1}; sockets start={} end={}",
        start_status.0, end_status.0, start_status.1, end_status.1
    );
    let _ = server.kill();
    let _ = server.wait();
}
