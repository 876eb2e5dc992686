//! A fake Discord API (v10) for the parts modbridge uses: bot messages
//! (`POST /api/v10/channels/{id}/messages`) and their edits (`PATCH
//! …/messages/{id}`), webhook executions (`POST /api/v10/webhooks/{id}/{token}`)
//! and their edits (`PATCH …/{token}/messages/{id}`), `GET /users/@me` and
//! `GET /channels/{id}`.
//!
//! Like Discord it checks `Authorization: Bot …`, validates every body against
//! Discord's OpenAPI spec (`tests/data/discord-openapi.json`) plus the two
//! limits the spec misses (content 2,000; 6,000 across embeds), honours
//! `nonce` + `enforce_nonce`, answers real-shaped JSON with well-formed
//! `x-ratelimit-*` headers, and can be told to fail the next requests the ways
//! Discord fails. It records everything it received.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Body, EndpointExt, Request, Response, Route, Server, handler};
use serde_json::{Value, json};

pub const BOT_TOKEN: &str = "fake-bot-token.0123456789";
pub const CHANNEL: u64 = 112233445566778899;
pub const WEBHOOK_ID: u64 = 223344556677889900;
pub const WEBHOOK_TOKEN: &str = "fake-webhook-token_ABCdef0123456789";

/// A way Discord fails, for the next request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fail {
    /// 429 with `retry_after` (seconds) in the body and `Retry-After`.
    RateLimited(f64),
    /// 403, code 50001.
    MissingAccess,
    /// 404, code 10003.
    UnknownChannel,
    /// 500 without a JSON body.
    ServerError,
    /// Does what was asked (creates the message), then answers 200 with a
    /// body that is not JSON (a proxy's page, a cut answer).
    UnreadableOk,
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub body: Value,
    /// The status the fake answered.
    pub status: u16,
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    /// Messages created, by channel (webhooks: by webhook ID).
    messages: HashMap<u64, Vec<Value>>,
    /// `(channel, nonce)` → message, for `enforce_nonce`.
    nonces: HashMap<(u64, String), Value>,
    fail: VecDeque<Fail>,
    /// Why bodies were refused (schema or limits): tests assert it stays empty.
    invalid: Vec<String>,
    /// Channels besides [`CHANNEL`] the bot may post in.
    extra_channels: std::collections::HashSet<u64>,
    /// Enforce Discord's limits (off unless a test asks): 5 requests per 5 s
    /// per route and channel (or webhook), 50 per second in all for the bot.
    limits: bool,
    /// Per (method, channel or webhook): when its window began, requests in it.
    route_calls: HashMap<(String, String), (std::time::Instant, usize)>,
    /// Recent bot requests (the global limit).
    global_calls: VecDeque<std::time::Instant>,
    /// The counted request's bucket as its answer's headers say it: requests
    /// left and seconds to the reset (limits on only).
    bucket: Option<(u32, f64)>,
}

/// Requests per route and channel within [`ROUTE_WINDOW`] when limits are on.
pub const ROUTE_LIMIT: usize = 5;
pub const ROUTE_WINDOW: std::time::Duration = std::time::Duration::from_secs(5);
/// Bot requests per second in all when limits are on.
pub const GLOBAL_PER_SECOND: usize = 50;

pub struct FakeDiscord {
    pub base: String,
    state: Arc<Mutex<State>>,
    _server: tokio::task::JoinHandle<()>,
}

struct Validators {
    message: jsonschema::Validator,
    webhook: jsonschema::Validator,
    edit: jsonschema::Validator,
    webhook_edit: jsonschema::Validator,
}

/// Validators for `MessageCreateRequest`, `IncomingWebhookRequestPartial` and
/// their edits (`MessageEditRequestPartial`, `IncomingWebhookUpdateRequestPartial`),
/// resolved inside Discord's OpenAPI document (compiled once per test binary).
fn validators() -> &'static Validators {
    static V: OnceLock<Validators> = OnceLock::new();
    V.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/discord-openapi.json"
        );
        let spec: Value = serde_json::from_slice(&std::fs::read(path).expect("spec readable"))
            .expect("spec is JSON");
        let build = |name: &str| {
            let mut root = json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "$ref": format!("#/components/schemas/{name}"),
            });
            root["components"] = spec["components"].clone();
            jsonschema::options()
                .should_validate_formats(true)
                .build(&root)
                .unwrap_or_else(|e| panic!("schema {name} compiles: {e}"))
        };
        Validators {
            message: build("MessageCreateRequest"),
            webhook: build("IncomingWebhookRequestPartial"),
            edit: build("MessageEditRequestPartial"),
            webhook_edit: build("IncomingWebhookUpdateRequestPartial"),
        }
    })
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Discord's other limits: content 2,000, and 6,000 characters over every
/// embed's title, description, field names and values, footer and author.
pub fn limit_problems(body: &Value) -> Vec<String> {
    let len = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
    let mut problems = Vec::new();
    if len(&body["content"]) > 2_000 {
        problems.push(format!(
            "content: {} characters > 2000",
            len(&body["content"])
        ));
    }
    let mut total = 0;
    for e in body["embeds"].as_array().into_iter().flatten() {
        total += len(&e["title"]) + len(&e["description"]);
        total += len(&e["footer"]["text"]) + len(&e["author"]["name"]);
        for f in e["fields"].as_array().into_iter().flatten() {
            total += len(&f["name"]) + len(&f["value"]);
            for part in ["name", "value"] {
                if f[part].as_str().is_some_and(|s| s.trim().is_empty()) {
                    problems.push(format!("embeds.fields.{part}: must not be empty"));
                }
            }
        }
    }
    if total > 6_000 {
        problems.push(format!("embeds: {total} characters > 6000 in total"));
    }
    for row in body["components"].as_array().into_iter().flatten() {
        let buttons = row["components"].as_array().map_or(0, Vec::len);
        if buttons > 5 {
            problems.push(format!("components: {buttons} buttons in a row > 5"));
        }
        for b in row["components"].as_array().into_iter().flatten() {
            if len(&b["custom_id"]) > 100 {
                problems.push("components.custom_id: longer than 100".into());
            }
        }
    }
    let empty_content = body["content"].as_str().is_none_or(|c| c.trim().is_empty());
    if empty_content && body["embeds"].as_array().is_none_or(|e| e.is_empty()) {
        problems.push("Cannot send an empty message".into());
    }
    problems
}

fn rate_headers(
    resp: poem::ResponseBuilder,
    remaining: u32,
    reset_after: f64,
) -> poem::ResponseBuilder {
    resp.header("x-ratelimit-limit", "5")
        .header("x-ratelimit-remaining", remaining.to_string())
        .header(
            "x-ratelimit-reset",
            format!("{:.3}", now_secs() + reset_after),
        )
        .header("x-ratelimit-reset-after", format!("{reset_after:.3}"))
        .header("x-ratelimit-bucket", "f4k3bucket0123456789abcdef")
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let b = Response::builder()
        .status(status)
        .content_type("application/json");
    rate_headers(b, 4, 1.0).body(body.to_string())
}

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    json_response(status, &json!({ "code": code, "message": message }))
}

impl FakeDiscord {
    pub async fn start() -> Self {
        let _ = validators();
        let state = Arc::new(Mutex::new(State::default()));
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("fake Discord binds");
        let addr = *acceptor.local_addr()[0]
            .as_socket_addr()
            .expect("a TCP address");
        let app = Route::new().at("/*path", handle).data(state.clone());
        let server = tokio::spawn(async move {
            let _ = Server::new_with_acceptor(acceptor).run(app).await;
        });
        Self {
            base: format!("http://{addr}"),
            state,
            _server: server,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next request fails this way (several calls queue up).
    /// From now on the fake enforces Discord's limits: 5 requests per 5 s
    /// per route and channel (or webhook), 50 a second in all for the bot;
    /// past them a 429 with `retry_after`.
    pub fn enforce_limits(&self) {
        self.lock().limits = true;
    }

    pub fn fail_next(&self, fail: Fail) {
        self.lock().fail.push_back(fail);
    }

    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// Lets the bot post in `channel` too.
    pub fn add_channel(&self, channel: u64) {
        self.lock().extra_channels.insert(channel);
    }

    /// Messages created in `channel` (or by webhook `id`).
    pub fn messages(&self, channel: u64) -> Vec<Value> {
        self.lock()
            .messages
            .get(&channel)
            .cloned()
            .unwrap_or_default()
    }

    /// Bodies refused for breaking the spec or a limit.
    pub fn invalid(&self) -> Vec<String> {
        self.lock().invalid.clone()
    }

    /// `https://discord.com/api/webhooks/…` for the fake's webhook.
    pub fn webhook_url() -> String {
        format!("https://discord.com/api/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}")
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1_300_000_000_000_000_000);

fn message_json(channel: u64, body: &Value, webhook: Option<u64>) -> Value {
    let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
    let mut m = json!({
        "id": id.to_string(),
        "type": 0,
        "channel_id": channel.to_string(),
        "author": {
            "id": webhook.unwrap_or(1_200_000_000_000_000_001).to_string(),
            "username": "modbridge",
            "discriminator": "0000",
            "global_name": null,
            "avatar": null,
            "bot": true
        },
        "content": body["content"].as_str().unwrap_or(""),
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "edited_timestamp": null,
        "tts": false,
        "mention_everyone": false,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": body["embeds"].clone(),
        "components": body["components"].as_array().cloned().unwrap_or_default(),
        "pinned": false,
        "flags": 0
    });
    if let Some(n) = body.get("nonce") {
        m["nonce"] = n.clone();
    }
    if let Some(w) = webhook {
        m["webhook_id"] = json!(w.to_string());
    }
    m
}

#[handler]
async fn handle(req: &Request, body: Body, state: poem::web::Data<&Arc<Mutex<State>>>) -> Response {
    let bytes = body.into_bytes().await.unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let path = req.uri().path().to_owned();
    let mut received = Received {
        method: req.method().to_string(),
        path: path.clone(),
        query: req.uri().query().unwrap_or("").to_owned(),
        authorization: req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: body.clone(),
        status: 0,
    };
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    st.bucket = None;
    let mut resp = answer(&mut st, req.method().as_str(), &path, &received, &body);
    // With limits on, a counted request's answer tells the real bucket (as
    // Discord does), so clients that read it (serenity) can keep under it.
    if let Some((left, reset_after)) = st.bucket
        && resp.status().is_success()
    {
        let h = resp.headers_mut();
        if let Ok(v) = left.to_string().parse() {
            h.insert("x-ratelimit-remaining", v);
        }
        if let Ok(v) = format!("{reset_after:.3}").parse() {
            h.insert("x-ratelimit-reset-after", v);
        }
        if let Ok(v) = format!("{:.3}", now_secs() + reset_after).parse() {
            h.insert("x-ratelimit-reset", v);
        }
    }
    received.status = resp.status().as_u16();
    st.received.push(received);
    resp
}

/// Discord's limits, when on: a 429 (`global: true` for the global one)
/// with `retry_after`, or `None` (the request is counted).
fn limit(st: &mut State, method: &str, segments: &[&str], is_webhook: bool) -> Option<Response> {
    let now = std::time::Instant::now();
    let second = std::time::Duration::from_secs(1);
    let too_many = |after: f64, global: bool| {
        let b = Response::builder()
            .status(StatusCode::TOO_MANY_REQUESTS)
            .content_type("application/json")
            .header("retry-after", format!("{}", after.ceil() as u64))
            .header("x-ratelimit-scope", if global { "global" } else { "user" });
        let b = if global {
            b.header("x-ratelimit-global", "true")
        } else {
            b
        };
        rate_headers(b, 0, after).body(
            json!({"message": "You are being rate limited.", "retry_after": after, "global": global})
                .to_string(),
        )
    };
    if !is_webhook {
        while st
            .global_calls
            .front()
            .is_some_and(|t| now.duration_since(*t) >= second)
        {
            st.global_calls.pop_front();
        }
        if st.global_calls.len() >= GLOBAL_PER_SECOND {
            let oldest = *st.global_calls.front()?;
            let after = (second - now.duration_since(oldest))
                .as_secs_f64()
                .max(0.01);
            return Some(too_many(after, true));
        }
    }
    // A route's bucket is a fixed window, as Discord's are: it resets
    // whole when `reset_after` has passed.
    let key = (
        method.to_owned(),
        segments.get(1).copied().unwrap_or("").to_owned(),
    );
    let (start, count) = st.route_calls.entry(key).or_insert((now, 0));
    if now.duration_since(*start) >= ROUTE_WINDOW {
        *start = now;
        *count = 0;
    }
    let reset_after = (ROUTE_WINDOW - now.duration_since(*start))
        .as_secs_f64()
        .max(0.01);
    if *count >= ROUTE_LIMIT {
        return Some(too_many(reset_after, false));
    }
    *count += 1;
    st.bucket = Some(((ROUTE_LIMIT - *count) as u32, reset_after));
    if !is_webhook {
        st.global_calls.push_back(now);
    }
    None
}

fn answer(st: &mut State, method: &str, path: &str, r: &Received, body: &Value) -> Response {
    let segments: Vec<&str> = path.trim_start_matches("/api/v10/").split('/').collect();
    if !path.starts_with("/api/v10/") {
        return error(StatusCode::NOT_FOUND, 0, "404: Not Found");
    }
    let is_webhook = segments.first() == Some(&"webhooks");
    let bot_ok = r.authorization.as_deref() == Some(&format!("Bot {BOT_TOKEN}"));
    if !is_webhook && !bot_ok {
        return error(StatusCode::UNAUTHORIZED, 0, "401: Unauthorized");
    }
    if st.limits
        && let Some(limited) = limit(st, method, &segments, is_webhook)
    {
        return limited;
    }
    if st.fail.front() == Some(&Fail::UnreadableOk) {
        st.fail.pop_front();
        let done = answer(st, method, path, r, body);
        if !done.status().is_success() {
            return done;
        }
        return Response::builder()
            .status(StatusCode::OK)
            .content_type("text/html")
            .body("<html>upstream answered</html");
    }
    if let Some(fail) = st.fail.pop_front() {
        return match fail {
            Fail::RateLimited(after) => {
                let b = Response::builder()
                    .status(StatusCode::TOO_MANY_REQUESTS)
                    .content_type("application/json")
                    .header("retry-after", format!("{}", after.ceil() as u64))
                    .header("x-ratelimit-scope", "user");
                rate_headers(b, 0, after).body(
                    json!({"message": "You are being rate limited.", "retry_after": after, "global": false})
                        .to_string(),
                )
            }
            Fail::MissingAccess => error(StatusCode::FORBIDDEN, 50001, "Missing Access"),
            Fail::UnknownChannel => error(StatusCode::NOT_FOUND, 10003, "Unknown Channel"),
            Fail::ServerError => Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .content_type("text/plain")
                .body("internal server error"),
            Fail::UnreadableOk => unreachable!("handled above"),
        };
    }
    match (method, segments.as_slice()) {
        ("GET", ["users", "@me"]) => json_response(
            StatusCode::OK,
            &json!({"id": "1200000000000000001", "username": "modbridge", "discriminator": "0000",
                    "global_name": null, "avatar": null, "bot": true, "verified": true, "flags": 0}),
        ),
        ("GET", ["channels", id]) => match id.parse::<u64>() {
            Ok(CHANNEL) => json_response(
                StatusCode::OK,
                &json!({"id": CHANNEL.to_string(), "type": 0, "guild_id": "1100000000000000001",
                        "name": "mods", "position": 0, "permission_overwrites": [], "nsfw": false}),
            ),
            _ => error(StatusCode::NOT_FOUND, 10003, "Unknown Channel"),
        },
        ("POST", ["channels", id, "messages"]) => {
            let Ok(channel) = id.parse::<u64>() else {
                return error(StatusCode::NOT_FOUND, 10003, "Unknown Channel");
            };
            if channel != CHANNEL && !st.extra_channels.contains(&channel) {
                return error(StatusCode::NOT_FOUND, 10003, "Unknown Channel");
            }
            if let Some(resp) = invalid(st, "message", body) {
                return resp;
            }
            // A reply names a message of this channel (Discord: 400, 50035
            // MESSAGE_REFERENCE_UNKNOWN_MESSAGE).
            if let Some(reference) = body.get("message_reference").filter(|r| !r.is_null()) {
                let same_channel = reference["channel_id"]
                    .as_str()
                    .is_none_or(|c| c == channel.to_string());
                let exists = st
                    .messages
                    .get(&channel)
                    .is_some_and(|ms| ms.iter().any(|m| m["id"] == reference["message_id"]));
                if !same_channel || !exists {
                    st.invalid
                        .push("message_reference to an unknown message".into());
                    return error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body");
                }
            }
            let nonce = body["nonce"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| body["nonce"].as_i64().map(|n| n.to_string()));
            if body["enforce_nonce"] == json!(true)
                && let Some(n) = &nonce
                && let Some(existing) = st.nonces.get(&(channel, n.clone()))
            {
                return json_response(StatusCode::OK, existing);
            }
            let m = message_json(channel, body, None);
            if let Some(n) = nonce {
                st.nonces.insert((channel, n), m.clone());
            }
            st.messages.entry(channel).or_default().push(m.clone());
            json_response(StatusCode::OK, &m)
        }
        ("POST", ["webhooks", id, token]) => {
            if id.parse::<u64>() != Ok(WEBHOOK_ID) || *token != WEBHOOK_TOKEN {
                return error(StatusCode::NOT_FOUND, 10015, "Unknown Webhook");
            }
            if let Some(resp) = invalid(st, "webhook", body) {
                return resp;
            }
            let query: HashSet<&str> = r.query.split('&').collect();
            let has_components = body["components"].as_array().is_some_and(|c| !c.is_empty());
            // A webhook not owned by an application may carry link buttons only.
            let interactive = body["components"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|row| row["components"].as_array().into_iter().flatten())
                .any(|b| !b["custom_id"].is_null());
            if interactive {
                st.invalid
                    .push("interactive components on a webhook message".into());
                return error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body");
            }
            if has_components && !query.contains("with_components=true") {
                st.invalid
                    .push("components on a webhook without with_components=true".into());
                return error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body");
            }
            let m = message_json(CHANNEL, body, Some(WEBHOOK_ID));
            st.messages.entry(WEBHOOK_ID).or_default().push(m.clone());
            if query.contains("wait=true") {
                json_response(StatusCode::OK, &m)
            } else {
                rate_headers(Response::builder().status(StatusCode::NO_CONTENT), 4, 1.0).finish()
            }
        }
        ("PATCH", ["channels", id, "messages", message_id]) => {
            let Ok(channel) = id.parse::<u64>() else {
                return error(StatusCode::NOT_FOUND, 10003, "Unknown Channel");
            };
            edit(st, channel, message_id, "edit", body)
        }
        ("PATCH", ["webhooks", id, token, "messages", message_id]) => {
            if id.parse::<u64>() != Ok(WEBHOOK_ID) || *token != WEBHOOK_TOKEN {
                return error(StatusCode::NOT_FOUND, 10015, "Unknown Webhook");
            }
            edit(st, WEBHOOK_ID, message_id, "webhook_edit", body)
        }
        _ => error(StatusCode::NOT_FOUND, 0, "404: Not Found"),
    }
}

/// Edits message `message_id` created in `channel` (or by the webhook): the
/// body is checked like a new one; the fields it has replace the message's.
fn edit(st: &mut State, channel: u64, message_id: &str, kind: &str, body: &Value) -> Response {
    if let Some(resp) = invalid(st, kind, body) {
        return resp;
    }
    let Some(m) = st
        .messages
        .get_mut(&channel)
        .and_then(|ms| ms.iter_mut().find(|m| m["id"] == message_id))
    else {
        return error(StatusCode::NOT_FOUND, 10008, "Unknown Message");
    };
    for field in ["content", "embeds", "components", "allowed_mentions"] {
        if let Some(v) = body.get(field) {
            m[field] = v.clone();
        }
    }
    m["edited_timestamp"] = json!(chrono::Utc::now().to_rfc3339());
    let m = m.clone();
    json_response(StatusCode::OK, &m)
}

/// A 400 like Discord's when `body` breaks the schema or a limit.
fn invalid(st: &mut State, kind: &str, body: &Value) -> Option<Response> {
    let problems = check_body(kind, body);
    if problems.is_empty() {
        return None;
    }
    st.invalid.extend(problems.iter().cloned());
    Some(json_response(
        StatusCode::BAD_REQUEST,
        &json!({"code": 50035, "message": "Invalid Form Body", "errors": {"_errors": problems.iter().map(|p| json!({"code": "BASE_TYPE_INVALID", "message": p})).collect::<Vec<_>>()}}),
    ))
}

/// Why Discord would refuse `body` (`kind`: "message", "webhook", "edit" or
/// "webhook_edit"): the spec's schema and the limits it misses. Empty: accepted.
pub fn check_body(kind: &str, body: &Value) -> Vec<String> {
    let v = validators();
    let validator = match kind {
        "webhook" => &v.webhook,
        "edit" => &v.edit,
        "webhook_edit" => &v.webhook_edit,
        _ => &v.message,
    };
    let mut problems: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    problems.extend(limit_problems(body));
    problems
}
