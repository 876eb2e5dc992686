//! Spawns the real app on port 0 with test settings, and a real
//! `redis-server` on a free port when a test needs Redis.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use modbridge::app::{Running, start_with};
use modbridge::config::Settings;
use modbridge::intake::signature::Secret;
use modbridge::platforms::{Recorder, Sinks};
use modbridge::rules::RuleSet;

/// Test secrets shaped like Cativa's (`whsec_` + 64 hex digits, many distinct):
/// `serve` refuses weaker ones outside dry-run.
pub const SECRET: &str = "whsec_5e0f3c9a71b24d86e1f07a3c5b9d2e48f6a1c3e5b7d90f2a4c6e8b1d3f5a7c9e";
pub const TENANT_SECRET: &str =
    "whsec_a7c2e9f41b6d08355c8e1f3a9b7d2c4e6f0a8b1c3d5e7f9a2b4c6d8e0f1a3b5c";

/// Rules used unless a test brings its own: one keyword match everywhere.
pub const DEFAULT_RULES: &str = r#"
name = "Everywhere"
groups = ["*"]
to = ["slack:C0123ABCD"]

[[match]]
name = "forbidden"
keywords = ["forbidden phrase"]
"#;

pub struct AppOptions {
    pub redis_url: Option<String>,
    pub rules: String,
    pub config: String,
    pub env: Vec<(&'static str, String)>,
    /// Deliver through the real platform sinks (pointed at fakes through
    /// `env`) instead of the recorder.
    pub live: bool,
    /// Changes the loaded settings before the app starts (typed fields that
    /// the file cannot set, such as seconds-long escalation delays).
    pub adjust: Option<fn(&mut Settings)>,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            redis_url: None,
            rules: DEFAULT_RULES.into(),
            config: String::new(),
            env: Vec::new(),
            live: false,
            adjust: None,
        }
    }
}

pub struct TestApp {
    pub running: Option<Running>,
    pub base: String,
    pub admin: Option<String>,
    pub client: reqwest::Client,
    pub recorder: Recorder,
    _dir: tempfile::TempDir,
}

pub async fn spawn_app() -> TestApp {
    spawn_with(AppOptions::default()).await
}

pub async fn spawn_with(opts: AppOptions) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("test.toml"), &opts.rules).unwrap();
    let config = dir.path().join("modbridge.toml");
    std::fs::write(&config, &opts.config).unwrap();
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("CATIVA_WEBHOOK_SECRET".into(), SECRET.into());
    env.insert("MODBRIDGE_LISTEN".into(), "127.0.0.1:0".into());
    // Private by default on 127.0.0.1:9090; tests run side by side on port 0.
    env.insert("MODBRIDGE_ADMIN_LISTEN".into(), "127.0.0.1:0".into());
    env.insert("MODBRIDGE_RULES".into(), rules.display().to_string());
    if let Some(url) = &opts.redis_url {
        env.insert("REDIS_URL".into(), url.clone());
    }
    for (k, v) in opts.env {
        env.insert(k.into(), v);
    }
    let mut settings = Settings::load(Some(&config), false, &env).expect("test settings load");
    if let Some(adjust) = opts.adjust {
        adjust(&mut settings);
    }
    let ruleset = RuleSet::load_dir(&settings.rules_dir, &settings.destinations)
        .expect("test rules load")
        .rules;
    let recorder = Recorder::default();
    let sinks = if opts.live {
        Sinks::for_settings(&settings, &env).expect("live sinks build")
    } else {
        Sinks::Recorder(recorder.clone())
    };
    let running = start_with(settings, ruleset, false, sinks)
        .await
        .expect("app starts");
    TestApp {
        base: format!("http://{}", running.addr),
        admin: running.admin_addr.map(|a| format!("http://{a}")),
        running: Some(running),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        recorder,
        _dir: dir,
    }
}

/// A store on `url` with the app's own key prefix: what a test reads or
/// seeds behind a running app (cases, counters, schedules).
pub fn app_store(url: &str) -> modbridge::dedupe::RedisStore {
    modbridge::dedupe::RedisStore::new(
        url,
        "modbridge:",
        modbridge::dedupe::Ttl {
            lease: Duration::from_secs(30),
            done: Duration::from_secs(3600),
        },
    )
    .unwrap()
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    Secret::new(secret).unwrap().sign(t, body)
}

/// A `post_created` body; `content` is the post text.
pub fn post_body(post_id: &str, content: &str) -> String {
    serde_json::json!({
        "CustomerId": "01HQ0ABCDEF1234567890XYZ",
        "PostId": post_id,
        "GroupId": null,
        "User": {"Id": "U1", "DisplayName": "Mary Smith", "Username": "mary", "Email": "mary@example.com",
                 "CreatedAt": "2026-04-12T14:32:01Z", "Badges": []},
        "Content": content,
        "ImageUrl": null,
        "CreatedAt": "2026-05-08T14:32:01Z"
    })
    .to_string()
}

impl TestApp {
    pub fn webhook_url(&self) -> String {
        format!("{}/webhooks/cativa", self.base)
    }

    /// Posts `body` signed with the test secret, now, as `execution_id`.
    pub async fn deliver(&self, body: &str, execution_id: &str) -> reqwest::Response {
        self.deliver_signed(body, execution_id, SECRET).await
    }

    pub async fn deliver_signed(
        &self,
        body: &str,
        execution_id: &str,
        secret: &str,
    ) -> reqwest::Response {
        self.client
            .post(self.webhook_url())
            .header("content-type", "application/json")
            .header("x-cativa-signature", sign(secret, now(), body.as_bytes()))
            .header("x-cativa-execution-id", execution_id)
            .body(body.to_owned())
            .send()
            .await
            .expect("request answered")
    }

    /// Delivers like Cativa retrying: every 250 ms until a 2xx or `within`
    /// has passed; returns the last status.
    pub async fn deliver_until_ok(&self, body: &str, execution_id: &str, within: Duration) -> u16 {
        let deadline = Instant::now() + within;
        loop {
            let status = self.deliver(body, execution_id).await.status().as_u16();
            if (200..300).contains(&status) || Instant::now() >= deadline {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `path` on the admin listener (`/metrics`, the detailed `/readyz`).
    pub fn admin_url(&self, path: &str) -> String {
        format!(
            "{}{path}",
            self.admin.as_deref().expect("admin listener on")
        )
    }

    /// The Prometheus text on the admin listener.
    pub async fn metrics(&self) -> String {
        let resp = self.get(self.admin_url("/metrics")).await;
        resp.text().await.expect("metrics body")
    }

    /// GET `url` (the admin listener's or the public one's).
    pub async fn get(&self, url: String) -> reqwest::Response {
        self.client.get(url).send().await.expect("GET answered")
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }
}

/// Status and JSON body of a response.
pub async fn answer(resp: reqwest::Response) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, json)
}

/// A `redis-server` of our own on a free port, stopped on drop.
pub struct RedisServer {
    child: Option<Child>,
    /// Append-only file on: a restart keeps what reached it.
    persistent: bool,
    /// `always` (a restart keeps every record) or `everysec`.
    appendfsync: &'static str,
    pub port: u16,
    pub url: String,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl RedisServer {
    /// Starts one, or explains why not. Under `CI=true` a missing
    /// `redis-server` fails the test; elsewhere the test is skipped with a notice.
    pub fn start() -> Option<Self> {
        Self::start_with(false, "always")
    }

    /// Like [`RedisServer::start`], with persistence (AOF, fsync always) on.
    pub fn start_persistent() -> Option<Self> {
        Self::start_with(true, "always")
    }

    /// AOF on with `appendfsync everysec`, Redis's default for AOF: what an
    /// operator runs, and what a crash can cost up to a second of.
    pub fn start_everysec() -> Option<Self> {
        Self::start_with(true, "everysec")
    }

    fn start_with(persistent: bool, appendfsync: &'static str) -> Option<Self> {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok();
        if !found {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "redis-server is not installed, and CI=true requires the Redis tests to run (.ci/run installs it)"
                );
            }
            eprintln!(
                "NOTICE: redis-server not found: skipping this Redis test (install redis-server to run it)"
            );
            return None;
        }
        let tmp = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self {
            child: None,
            persistent,
            appendfsync,
            port,
            url: format!("redis://127.0.0.1:{port}/"),
            dir: tmp.path().to_path_buf(),
            _tmp: tmp,
        };
        server.spawn();
        Some(server)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                if self.persistent { "yes" } else { "no" },
                "--appendfsync",
                self.appendfsync,
                // DEBUG SLEEP from tests: a Redis that is slow to answer.
                "--enable-debug-command",
                "local",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read, Write};
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buf = [0u8; 16];
                if s.write_all(b"PING\r\n").is_ok()
                    && s.read(&mut buf)
                        .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not answer PING", self.port);
    }

    /// `SIGKILL`: Redis gets no chance to write or sync anything.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills it ([`RedisServer::stop`]) and starts it again on the same port
    /// and directory (empty unless persistent).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The append-only file Redis (7+) is appending to now: the newest
    /// `appendonlydir/*.incr.aof`.
    pub fn aof_tail(&self) -> Option<PathBuf> {
        std::fs::read_dir(self.dir.join("appendonlydir"))
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|p| {
                // appendonly.aof.<sequence>.incr.aof
                let name = p
                    .file_name()?
                    .to_str()?
                    .strip_suffix(".incr.aof")?
                    .to_owned();
                let seq: u64 = name.rsplit('.').next()?.parse().ok()?;
                Some((seq, p))
            })
            .max_by_key(|(seq, _)| *seq)
            .map(|(_, p)| p)
    }

    /// Starts it again after [`RedisServer::stop`] or a `SHUTDOWN`.
    pub fn start_again(&mut self) {
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
