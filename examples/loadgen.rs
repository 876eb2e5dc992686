//! Load generator for `modbridge serve`: signed `post_created` deliveries with
//! unique execution IDs, like Cativa sends them.
//!
//! cargo run --release --example loadgen -- [--url URL] [--secret S]
//!     [--rate N] [--seconds S] [--concurrency C] [--matching]
//!
//! `--rate 0` (default): closed loop, C workers back to back: the maximum
//! sustained rate. `--rate N`: open loop at N requests/s; latency is measured
//! from each request's scheduled time, so queueing is not hidden.
//! Bounded in count and time; loopback targets only.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use modbridge::intake::signature::Secret;

struct Args {
    url: String,
    secret: String,
    rate: u64,
    seconds: u64,
    concurrency: usize,
    matching: bool,
}

fn args() -> Args {
    let mut a = Args {
        url: "http://127.0.0.1:8080/webhooks/cativa".into(),
        secret: std::env::var("CATIVA_WEBHOOK_SECRET")
            .unwrap_or_else(|_| modbridge::config::DEV_SECRET.into()),
        rate: 0,
        seconds: 10,
        concurrency: 64,
        matching: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => a.url = value(),
            "--secret" => a.secret = value(),
            "--rate" => a.rate = value().parse().expect("--rate N"),
            "--seconds" => a.seconds = value().parse().expect("--seconds S"),
            "--concurrency" => a.concurrency = value().parse().expect("--concurrency C"),
            "--matching" => a.matching = true,
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(a.seconds <= 600, "at most 600 seconds");
    let host = a.url.split("://").nth(1).unwrap_or_default();
    assert!(
        host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]"),
        "loopback targets only"
    );
    a
}

fn body(i: u64, matching: bool) -> String {
    let content = if matching {
        "I want to end it all tonight"
    } else {
        "Just finished module 3 of the course — highly recommend!"
    };
    serde_json::json!({
        "CustomerId": "01HQ0ABCDEF1234567890XYZ",
        "PostId": format!("LOAD{i:012}"),
        "GroupId": null,
        "User": {"Id": "01HQ7Z3X4Y5Z6A7B8C9D0E1F2G", "DisplayName": "Load Test", "Username": "load",
                 "CreatedAt": "2026-04-12T14:32:01Z", "Badges": []},
        "Content": content,
        "ImageUrl": null,
        "CreatedAt": "2026-05-08T14:32:01Z"
    })
    .to_string()
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    non_2xx: AtomicU64,
    errors: AtomicU64,
}

async fn one(
    client: &reqwest::Client,
    args: &Args,
    secret: &Secret,
    run: u64,
    i: u64,
    tally: &Tally,
) {
    let body = body(i, args.matching);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let result = client
        .post(&args.url)
        .header("content-type", "application/json")
        .header("x-cativa-signature", secret.sign(t, body.as_bytes()))
        .header("x-cativa-execution-id", format!("load-{run:x}-{i}"))
        .body(body)
        .send()
        .await;
    match result {
        Ok(r) if r.status().is_success() => {
            let _ = r.bytes().await;
            tally.ok.fetch_add(1, Ordering::Relaxed);
        }
        Ok(r) => {
            let _ = r.bytes().await;
            tally.non_2xx.fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => {
            tally.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let args = Arc::new(args());
    let secret = Arc::new(Secret::new(args.secret.clone()).expect("secret"));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let tally = Arc::new(Tally::default());
    let counter = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut workers = Vec::new();
    let per_worker_interval = (args.rate > 0)
        .then(|| Duration::from_secs_f64(args.concurrency as f64 / args.rate as f64));
    for w in 0..args.concurrency {
        let (client, args, secret, tally, counter) = (
            client.clone(),
            args.clone(),
            secret.clone(),
            tally.clone(),
            counter.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            // Open loop: worker w sends at start + w·δ + k·interval.
            let offset = per_worker_interval
                .map(|iv| iv.mul_f64(w as f64 / args.concurrency as f64))
                .unwrap_or_default();
            let mut k = 0u32;
            loop {
                let scheduled = match per_worker_interval {
                    Some(iv) => started + offset + iv * k,
                    None => Instant::now(),
                };
                if scheduled >= deadline {
                    break;
                }
                tokio::time::sleep_until(scheduled.into()).await;
                let i = counter.fetch_add(1, Ordering::Relaxed);
                one(&client, &args, &secret, run, i, &tally).await;
                latencies.push(scheduled.elapsed().as_micros() as u64);
                k += 1;
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.expect("worker"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let ok = tally.ok.load(Ordering::Relaxed);
    println!(
        "requests={} ok={} non_2xx={} errors={} seconds={:.1} rate={:.0}/s ok_rate={:.0}/s",
        all.len(),
        ok,
        tally.non_2xx.load(Ordering::Relaxed),
        tally.errors.load(Ordering::Relaxed),
        elapsed,
        all.len() as f64 / elapsed,
        ok as f64 / elapsed
    );
    println!(
        "latency_ms p50={:.2} p90={:.2} p99={:.2} p999={:.2} max={:.2}",
        percentile(&all, 0.5),
        percentile(&all, 0.9),
        percentile(&all, 0.99),
        percentile(&all, 0.999),
        percentile(&all, 1.0)
    );
}
