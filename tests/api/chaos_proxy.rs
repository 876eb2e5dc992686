//! A proxy in front of a fake platform that fails like the real one does, at
//! random: 500s, 429s with `Retry-After`, timeouts before the request reaches
//! the platform, and timeouts after it did (the message exists, the answer is
//! lost). It remembers every lost answer, so a test can tell an honest
//! duplicate from a bug. It can also make one channel look deleted.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Data;
use poem::{Body, EndpointExt, Request, Response, Route, Server, handler};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Slack,
    Discord,
}

#[derive(Default, Debug, Clone)]
pub struct Counts {
    pub forwarded: usize,
    pub server_errors: usize,
    pub rate_limited: usize,
    pub lost_before: usize,
    pub lost_after: usize,
    pub broken_answers: usize,
}

struct State {
    upstream: String,
    platform: Platform,
    rate: f64,
    /// Only 500s and 429s: every request either reaches the platform and is
    /// answered, or does not reach it (no lost answer can excuse a duplicate).
    errors_only: bool,
    hang: Duration,
    rng: StdRng,
    counts: Counts,
    /// Bodies (and paths) of requests the platform recorded but whose answer was lost.
    lost_answers: Vec<String>,
    /// Channels answered as deleted (`channel_not_found` / 10003).
    broken: BTreeSet<String>,
    client: reqwest::Client,
}

pub struct ChaosProxy {
    pub base: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

enum Roll {
    Pass,
    ServerError,
    RateLimited,
    LostBefore,
    LostAfter,
}

impl ChaosProxy {
    /// Fails `rate` of requests (a quarter each way); hangs last `hang`.
    pub async fn start(
        upstream: &str,
        platform: Platform,
        rate: f64,
        hang: Duration,
        seed: u64,
    ) -> Self {
        let state = Arc::new(Mutex::new(State {
            upstream: upstream.trim_end_matches('/').to_owned(),
            platform,
            rate,
            errors_only: false,
            hang,
            rng: StdRng::seed_from_u64(seed),
            counts: Counts::default(),
            lost_answers: Vec::new(),
            broken: BTreeSet::new(),
            client: reqwest::Client::new(),
        }));
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
        let app = Route::new().at("/*path", proxy).data(state.clone());
        let task = tokio::spawn(async move {
            let _ = Server::new_with_acceptor(acceptor).run(app).await;
        });
        let suffix = if platform == Platform::Slack {
            "/api"
        } else {
            ""
        };
        Self {
            base: format!("http://{addr}{suffix}"),
            state,
            task,
        }
    }

    pub fn counts(&self) -> Counts {
        self.state.lock().unwrap().counts.clone()
    }

    pub fn lost_answers(&self) -> Vec<String> {
        self.state.lock().unwrap().lost_answers.clone()
    }

    /// From now on the faults are 500s and 429s only, half each.
    pub fn errors_only(&self) {
        self.state.lock().unwrap().errors_only = true;
    }

    pub fn set_rate(&self, rate: f64) {
        self.state.lock().unwrap().rate = rate;
    }

    pub fn break_channel(&self, channel: &str) {
        self.state.lock().unwrap().broken.insert(channel.to_owned());
    }

    pub fn fix_channel(&self, channel: &str) {
        self.state.lock().unwrap().broken.remove(channel);
    }
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(body.to_string())
}

#[handler]
async fn proxy(req: &Request, body: Body, Data(state): Data<&Arc<Mutex<State>>>) -> Response {
    let body = body.into_vec().await.unwrap_or_default();
    let path = req.uri().path().to_owned();
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).into_owned();
    let is_message = path.ends_with("chat.postMessage")
        || path.contains("/messages")
        || path.contains("/webhooks/");
    let (roll, platform, hang, upstream, client, broken) = {
        let mut s = state.lock().unwrap();
        let broken = s.broken.iter().any(|c| {
            let c = c.as_str();
            (s.platform == Platform::Slack && text.contains(&format!("\"channel\":\"{c}\"")))
                || (s.platform == Platform::Discord && path.contains(&format!("/channels/{c}/")))
        });
        let r: f64 = s.rng.random();
        let rate = s.rate;
        let roll = if !is_message || r >= rate {
            Roll::Pass
        } else if s.errors_only {
            if r < rate * 0.5 {
                Roll::ServerError
            } else {
                Roll::RateLimited
            }
        } else if r < rate * 0.25 {
            Roll::ServerError
        } else if r < rate * 0.5 {
            Roll::RateLimited
        } else if r < rate * 0.75 {
            Roll::LostBefore
        } else {
            Roll::LostAfter
        };
        (
            roll,
            s.platform,
            s.hang,
            s.upstream.clone(),
            s.client.clone(),
            broken,
        )
    };
    if broken && is_message {
        state.lock().unwrap().counts.broken_answers += 1;
        return match platform {
            Platform::Slack => json(
                StatusCode::OK,
                serde_json::json!({"ok": false, "error": "channel_not_found"}),
            ),
            Platform::Discord => json(
                StatusCode::NOT_FOUND,
                serde_json::json!({"code": 10003, "message": "Unknown Channel"}),
            ),
        };
    }
    match roll {
        Roll::ServerError => {
            state.lock().unwrap().counts.server_errors += 1;
            return Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .body("upstream exploded");
        }
        Roll::RateLimited => {
            state.lock().unwrap().counts.rate_limited += 1;
            let body = match platform {
                Platform::Slack => serde_json::json!({"ok": false, "error": "ratelimited"}),
                Platform::Discord => {
                    serde_json::json!({"message": "You are being rate limited.", "retry_after": 1.0, "global": false})
                }
            };
            let mut resp = json(StatusCode::TOO_MANY_REQUESTS, body);
            resp.headers_mut()
                .insert("retry-after", poem::http::HeaderValue::from_static("1"));
            return resp;
        }
        Roll::LostBefore => {
            state.lock().unwrap().counts.lost_before += 1;
            tokio::time::sleep(hang).await;
            return Response::builder()
                .status(StatusCode::GATEWAY_TIMEOUT)
                .body("");
        }
        Roll::Pass | Roll::LostAfter => {}
    }
    let upstream_path = match platform {
        // The fake Slack's base already ends in /api.
        Platform::Slack => path.trim_start_matches("/api"),
        Platform::Discord => path.as_str(),
    };
    let mut forward = client.request(
        req.method().clone(),
        format!("{upstream}{upstream_path}{query}"),
    );
    for name in ["authorization", "content-type", "user-agent"] {
        if let Some(v) = req.headers().get(name) {
            forward = forward.header(name, v.as_bytes());
        }
    }
    let answer = match forward.body(body).send().await {
        Ok(a) => a,
        Err(_) => return Response::builder().status(StatusCode::BAD_GATEWAY).body(""),
    };
    let status = answer.status().as_u16();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap_or_default();
    if matches!(roll, Roll::LostAfter) {
        {
            let mut s = state.lock().unwrap();
            s.counts.lost_after += 1;
            s.lost_answers.push(format!("{path} {text}"));
        }
        tokio::time::sleep(hang).await;
    } else {
        state.lock().unwrap().counts.forwarded += 1;
    }
    let mut resp =
        Response::builder().status(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY));
    for (name, value) in headers.iter() {
        let n = name.as_str();
        if n == "content-type" || n == "retry-after" || n.starts_with("x-ratelimit") {
            resp = resp.header(name.as_str(), value.as_bytes());
        }
    }
    resp.body(bytes.to_vec())
}
