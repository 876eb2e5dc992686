//! A fake Slack Web API on 127.0.0.1: the parts modbridge uses
//! (`chat.postMessage`, `chat.update`, `auth.test`, `conversations.info`,
//! `conversations.history`). It checks the bearer token, the JSON body, every
//! Block Kit limit in shared/reference/slack.md and the message metadata,
//! rejects like Slack does, records what it received, and can be told to
//! fail. Message `ts` values are real times (seconds.microseconds), so that
//! `conversations.history`'s `oldest`/`latest` mean what they mean on Slack.
//! Scopes: `chat:write`, `chat:write.public`, `channels:read`, `groups:read`
//! by default (reported in `x-oauth-scopes` by `auth.test`, like Slack);
//! `channels:history`/`groups:history` only after [`FakeSlack::grant_history`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Data;
use poem::{Body, EndpointExt, Request, Response, Route, Server, get, handler, post};
use serde_json::{Value, json};

/// What the fake answers to the next `chat.postMessage` (once each, in order).
#[derive(Debug, Clone)]
pub enum Next {
    /// HTTP 429 with `Retry-After: secs`.
    RateLimited(u64),
    /// HTTP 500.
    ServerError,
    /// HTTP 200 `{"ok":false,"error":code}`.
    Error(&'static str),
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub body: Value,
    pub at: Instant,
    /// `ok`, or the error the fake answered.
    pub answer: String,
}

#[derive(Default)]
struct State {
    token: String,
    received: Vec<Received>,
    next: VecDeque<Next>,
    reject_images: bool,
    missing_channels: BTreeSet<String>,
    no_read_scope: bool,
    ts: u64,
    /// What each posted message shows now, by (channel, ts).
    messages: BTreeMap<(String, String), Value>,
    /// How long `chat.postMessage` waits between recording and answering.
    answer_delay: std::time::Duration,
    /// `channels:history` / `groups:history` granted.
    history_scope: bool,
    /// Channels the bot is not a member of (`not_in_channel` on history).
    not_member: BTreeSet<String>,
    /// What the next `conversations.history` calls answer (once each).
    history_next: VecDeque<Next>,
    /// Recent `conversations.history` calls (Tier 3: 50 a minute).
    history_calls: VecDeque<Instant>,
    /// Recent accepted `chat.update` calls (Tier 3: 50 a minute per
    /// workspace).
    update_calls: VecDeque<Instant>,
    /// The last `ts` handed out, in microseconds since the epoch.
    last_ts: u64,
    /// Enforce `chat.postMessage`'s pace: one message a second per channel,
    /// bursts of [`POST_BURST`] allowed (off unless a test asks).
    post_pace: bool,
    /// Per channel: tokens left and when they were counted.
    post_buckets: BTreeMap<String, (f64, Instant)>,
}

/// `chat.postMessage` messages a channel takes at once after a quiet spell
/// (then one a second) when the pace is enforced.
pub const POST_BURST: f64 = 3.0;

/// `conversations.history` calls allowed per minute (Slack's Tier 3).
pub const HISTORY_PER_MINUTE: usize = 50;
/// `chat.update` calls allowed per minute and workspace (Slack's Tier 3).
pub const UPDATES_PER_MINUTE: usize = 50;

pub struct FakeSlack {
    /// Base URL for `SLACK_API_URL`: `http://127.0.0.1:PORT/api`.
    pub base: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeSlack {
    /// Starts on a free port, accepting `token` only.
    pub async fn start(token: &str) -> FakeSlack {
        let state = Arc::new(Mutex::new(State {
            token: token.to_owned(),
            ..State::default()
        }));
        let app = Route::new()
            .at("/api/chat.postMessage", post(post_message))
            .at("/api/chat.update", post(update_message))
            .at("/actions/:team/:id/:token", post(response_url))
            .at("/api/auth.test", get(auth_test).post(auth_test))
            .at(
                "/api/conversations.info",
                get(conversations_info).post(conversations_info),
            )
            .at(
                "/api/conversations.history",
                get(conversations_history).post(conversations_history),
            )
            .data(state.clone());
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("fake Slack binds");
        let addr = *acceptor.local_addr()[0]
            .as_socket_addr()
            .expect("a socket address");
        let task = tokio::spawn(async move {
            let _ = Server::new_with_acceptor(acceptor).run(app).await;
        });
        FakeSlack {
            base: format!("http://{addr}/api"),
            state,
            task,
        }
    }

    /// From now on `chat.postMessage` takes one message a second per
    /// channel (bursts of [`POST_BURST`]), as Slack does, and answers 429
    /// past it.
    pub fn enforce_post_pace(&self) {
        self.state.lock().unwrap().post_pace = true;
    }

    /// A `response_url` as Slack puts in an interaction payload (no token
    /// needed: the URL is the capability).
    pub fn response_url(&self) -> String {
        format!("{}/actions/T1/1/abc", self.base.trim_end_matches("/api"))
    }

    /// What was sent to `response_url`s, oldest first.
    pub fn responses(&self) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|r| r.method == "response_url")
            .map(|r| r.body)
            .collect()
    }

    /// Queues answers for the next `chat.postMessage` calls.
    pub fn then(&self, next: Next) {
        self.state.lock().unwrap().next.push_back(next);
    }

    /// `chat.postMessage` records the message, then waits this long before
    /// answering (a slow Slack: a wider window between post and record).
    pub fn delay_answers(&self, delay: std::time::Duration) {
        self.state.lock().unwrap().answer_delay = delay;
    }

    /// Answers `invalid_blocks` to any message with an image block (as Slack
    /// does when it cannot fetch the image).
    pub fn reject_images(&self, yes: bool) {
        self.state.lock().unwrap().reject_images = yes;
    }

    /// `channel_not_found` for this channel, on every method.
    pub fn remove_channel(&self, channel: &str) {
        self.state
            .lock()
            .unwrap()
            .missing_channels
            .insert(channel.to_owned());
    }

    /// The channel exists again (after [`FakeSlack::remove_channel`]).
    pub fn restore_channel(&self, channel: &str) {
        self.state.lock().unwrap().missing_channels.remove(channel);
    }

    /// The token lacks `channels:read`/`groups:read`: `conversations.info` fails.
    pub fn without_read_scope(&self) {
        self.state.lock().unwrap().no_read_scope = true;
    }

    /// Grants `channels:history` and `groups:history` (lookups after a lost
    /// answer work).
    pub fn grant_history(&self) {
        self.state.lock().unwrap().history_scope = true;
    }

    /// Queues answers for the next `conversations.history` calls.
    pub fn history_then(&self, next: Next) {
        self.state.lock().unwrap().history_next.push_back(next);
    }

    /// The bot is not in `channel`: its history cannot be read.
    pub fn leave_channel(&self, channel: &str) {
        self.state
            .lock()
            .unwrap()
            .not_member
            .insert(channel.to_owned());
    }

    /// A message by another app in `channel` now, with `metadata` as given
    /// (e.g. non-string payload values, which Slack allows).
    pub fn post_foreign(&self, channel: &str, metadata: Value) -> String {
        let mut state = self.state.lock().unwrap();
        let ts = next_ts(&mut state);
        state.messages.insert(
            (channel.to_owned(), ts.clone()),
            json!({"channel": channel, "text": "another app", "metadata": metadata, "app": "other"}),
        );
        ts
    }

    /// The message at (`channel`, `ts`) is deleted (a moderator removed
    /// it): history no longer lists it.
    pub fn delete(&self, channel: &str, ts: &str) {
        self.state
            .lock()
            .unwrap()
            .messages
            .remove(&(channel.to_owned(), ts.to_owned()));
    }

    /// Accepted `chat.postMessage` bodies for `channel`.
    pub fn posted_in(&self, channel: &str) -> Vec<Value> {
        self.posted()
            .into_iter()
            .filter(|b| b["channel"] == channel)
            .collect()
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// What the message at (`channel`, `ts`) shows now (its last accepted
    /// post or update body).
    pub fn message(&self, channel: &str, ts: &str) -> Option<Value> {
        let state = self.state.lock().unwrap();
        state
            .messages
            .get(&(channel.to_owned(), ts.to_owned()))
            .cloned()
    }

    /// The `ts` of every message in `channel`, oldest first.
    pub fn timestamps(&self, channel: &str) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state
            .messages
            .keys()
            .filter(|(c, _)| c == channel)
            .map(|(_, ts)| ts.clone())
            .collect()
    }

    /// Replies posted in the thread of `ts` in `channel`.
    pub fn thread(&self, channel: &str, ts: &str) -> Vec<Value> {
        self.posted()
            .into_iter()
            .filter(|b| b["channel"] == channel && b["thread_ts"] == ts)
            .collect()
    }

    /// Bodies of the `chat.postMessage` calls Slack accepted.
    pub fn posted(&self) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|r| r.method == "chat.postMessage" && r.answer == "ok")
            .map(|r| r.body)
            .collect()
    }
}

/// A new message `ts`: now, in seconds with microseconds, strictly
/// increasing.
fn next_ts(state: &mut State) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    state.ts += 1;
    state.last_ts = now.max(state.last_ts + 1);
    format!(
        "{}.{:06}",
        state.last_ts / 1_000_000,
        state.last_ts % 1_000_000
    )
}

/// A `ts` (or `oldest`/`latest`) as microseconds, for comparing.
fn ts_micros(ts: &str) -> Option<u64> {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, "0"));
    let frac = format!("{frac:0<6}");
    Some(secs.parse::<u64>().ok()? * 1_000_000 + frac.get(..6)?.parse::<u64>().ok()?)
}

fn json_reply(status: StatusCode, body: Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json; charset=utf-8")
        .body(body.to_string())
}

fn slack_error(code: &str) -> Response {
    json_reply(StatusCode::OK, json!({ "ok": false, "error": code }))
}

fn authorized(req: &Request, state: &State) -> Result<(), &'static str> {
    match req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    {
        None => Err("not_authed"),
        Some(v) if v == format!("Bearer {}", state.token) => Ok(()),
        Some(_) => Err("invalid_auth"),
    }
}

/// `response_url`: JSON with `text` (or `blocks`), `response_type`
/// `ephemeral` or `in_channel`; Slack answers 404 `no_text` / 400 otherwise.
#[handler]
async fn response_url(
    req: &Request,
    body: Body,
    Data(state): Data<&Arc<Mutex<State>>>,
) -> Response {
    let raw = body.into_vec().await.unwrap_or_default();
    let mut state = state.lock().unwrap();
    let json_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let Ok(body) = serde_json::from_slice::<Value>(&raw) else {
        record(&mut state, "response_url", Value::Null, "invalid_payload");
        return Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body("invalid_payload");
    };
    let text_ok = body["text"].as_str().is_some_and(|t| !t.trim().is_empty())
        || body["blocks"].as_array().is_some_and(|b| !b.is_empty());
    let type_ok = body
        .get("response_type")
        .is_none_or(|t| t == "ephemeral" || t == "in_channel");
    let answer = if !json_type {
        "invalid_payload"
    } else if !text_ok {
        "no_text"
    } else if !type_ok {
        "invalid_response_type"
    } else {
        "ok"
    };
    record(&mut state, "response_url", body, answer);
    if answer == "ok" {
        json_reply(StatusCode::OK, json!({ "ok": true }))
    } else {
        Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(answer)
    }
}

fn record(state: &mut State, method: &str, body: Value, answer: &str) {
    state.received.push(Received {
        method: method.to_owned(),
        body,
        at: Instant::now(),
        answer: answer.to_owned(),
    });
}

#[handler]
async fn post_message(
    req: &Request,
    body: Body,
    Data(state): Data<&Arc<Mutex<State>>>,
) -> Response {
    let raw = body.into_vec().await.unwrap_or_default();
    let answer = write_message(req, &raw, state, "chat.postMessage");
    let delay = state.lock().unwrap().answer_delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    answer
}

/// `chat.update`: the same checks as posting, and the message must exist.
#[handler]
async fn update_message(
    req: &Request,
    body: Body,
    Data(state): Data<&Arc<Mutex<State>>>,
) -> Response {
    let raw = body.into_vec().await.unwrap_or_default();
    write_message(req, &raw, state, "chat.update")
}

fn write_message(req: &Request, raw: &[u8], state: &Mutex<State>, method: &str) -> Response {
    let mut state = state.lock().unwrap();
    let json_body: Value = match serde_json::from_slice(raw) {
        Ok(v) => v,
        Err(_) => {
            record(&mut state, method, Value::Null, "invalid_json");
            return slack_error("invalid_json");
        }
    };
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut verdict = check_post(&mut state, req, content_type, &json_body);
    let channel_id = json_body["channel"].as_str().unwrap_or_default().to_owned();
    // A thread reply names the `ts` of a message in the same channel.
    if method == "chat.postMessage"
        && matches!(verdict, Answer::Ok)
        && let Some(thread) = json_body.get("thread_ts")
    {
        let known = thread.as_str().is_some_and(|ts| {
            state
                .messages
                .contains_key(&(channel_id.clone(), ts.to_owned()))
        });
        if !known {
            verdict = Answer::Error("thread_not_found");
        }
    }
    if method == "chat.postMessage" && state.post_pace && matches!(verdict, Answer::Ok) {
        // One message a second per channel (bursts of 3): a 429 with the
        // wait for the next token.
        let now = Instant::now();
        let (tokens, last) = state
            .post_buckets
            .entry(channel_id.clone())
            .or_insert((POST_BURST, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64()).min(POST_BURST);
        *last = now;
        // Slack's limits are approximate: a message up to 100 ms early
        // (network jitter behind a client pacing at exactly one a second)
        // passes, and counts.
        if *tokens < 0.9 {
            verdict = Answer::RateLimited(((1.0 - *tokens).ceil() as u64).max(1));
        } else {
            *tokens -= 1.0;
        }
    }
    if method == "chat.update" && matches!(verdict, Answer::Ok) {
        // Tier 3: a 429 with the wait until the oldest call of the last
        // minute leaves the window.
        let now = Instant::now();
        let minute = std::time::Duration::from_secs(60);
        while state
            .update_calls
            .front()
            .is_some_and(|t| now.duration_since(*t) >= minute)
        {
            state.update_calls.pop_front();
        }
        if let Some(oldest) = state.update_calls.front()
            && state.update_calls.len() >= UPDATES_PER_MINUTE
        {
            let wait = 60u64
                .saturating_sub(now.duration_since(*oldest).as_secs())
                .max(1);
            verdict = Answer::RateLimited(wait);
        }
    }
    if method == "chat.update" && matches!(verdict, Answer::Ok) {
        let ts = json_body["ts"].as_str().unwrap_or_default().to_owned();
        if !state.messages.contains_key(&(channel_id.clone(), ts)) {
            verdict = Answer::Error("message_not_found");
        }
    }
    match verdict {
        Answer::Ok => {
            let ts = if method == "chat.update" {
                state.update_calls.push_back(Instant::now());
                json_body["ts"].as_str().unwrap_or_default().to_owned()
            } else {
                next_ts(&mut state)
            };
            state
                .messages
                .insert((channel_id, ts.clone()), json_body.clone());
            let channel = json_body["channel"].clone();
            record(&mut state, method, json_body.clone(), "ok");
            json_reply(
                StatusCode::OK,
                json!({
                    "ok": true,
                    "channel": channel,
                    "ts": ts,
                    "message": { "type": "message", "ts": ts, "text": json_body["text"], "blocks": json_body["blocks"] }
                }),
            )
        }
        Answer::RateLimited(secs) => {
            record(&mut state, method, json_body, "ratelimited");
            let mut resp = json_reply(
                StatusCode::TOO_MANY_REQUESTS,
                json!({ "ok": false, "error": "ratelimited" }),
            );
            resp.headers_mut()
                .insert("retry-after", secs.to_string().parse().unwrap());
            resp
        }
        Answer::ServerError => {
            record(&mut state, method, json_body, "http_500");
            Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .body("upstream trouble")
        }
        Answer::Error(code) => {
            record(&mut state, method, json_body, code);
            slack_error(code)
        }
    }
}

enum Answer {
    Ok,
    Error(&'static str),
    RateLimited(u64),
    ServerError,
}

fn check_post(state: &mut State, req: &Request, content_type: &str, body: &Value) -> Answer {
    if let Err(code) = authorized(req, state) {
        return Answer::Error(code);
    }
    if !content_type.starts_with("application/json") {
        return Answer::Error("invalid_form_data");
    }
    match state.next.pop_front() {
        None => {}
        Some(Next::RateLimited(secs)) => return Answer::RateLimited(secs),
        Some(Next::ServerError) => return Answer::ServerError,
        Some(Next::Error(code)) => return Answer::Error(code),
    }
    let channel = body["channel"].as_str().unwrap_or_default();
    if channel.is_empty() || state.missing_channels.contains(channel) {
        return Answer::Error("channel_not_found");
    }
    if let Err(code) = check_message(body) {
        return Answer::Error(code);
    }
    if let Err(code) = check_metadata(body) {
        return Answer::Error(code);
    }
    let has_image = body["blocks"]
        .as_array()
        .is_some_and(|b| b.iter().any(|b| b["type"] == "image"));
    if has_image && state.reject_images {
        return Answer::Error("invalid_blocks");
    }
    Answer::Ok
}

/// Message metadata as Slack checks it: an object with an `event_type`
/// (letters, digits, underscores, ≤ 255) and an object `event_payload`.
fn check_metadata(body: &Value) -> Result<(), &'static str> {
    let Some(metadata) = body.get("metadata") else {
        return Ok(());
    };
    let Some(m) = metadata.as_object() else {
        return Err("invalid_metadata_format");
    };
    let event_type = m.get("event_type").and_then(Value::as_str).unwrap_or("");
    if event_type.is_empty()
        || event_type.len() > 255
        || !event_type
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        || !m.get("event_payload").is_some_and(Value::is_object)
    {
        return Err("invalid_metadata_schema");
    }
    if metadata.to_string().len() > 8_000 {
        return Err("metadata_too_large");
    }
    Ok(())
}

/// The scopes the token has, as Slack lists them in `x-oauth-scopes`.
fn scopes(state: &State) -> String {
    let mut scopes = vec!["chat:write", "chat:write.public"];
    if !state.no_read_scope {
        scopes.extend(["channels:read", "groups:read"]);
    }
    if state.history_scope {
        scopes.extend(["channels:history", "groups:history"]);
    }
    scopes.join(",")
}

#[handler]
async fn auth_test(req: &Request, Data(state): Data<&Arc<Mutex<State>>>) -> Response {
    let mut state = state.lock().unwrap();
    match authorized(req, &state) {
        Ok(()) => {
            record(&mut state, "auth.test", Value::Null, "ok");
            let mut resp = json_reply(
                StatusCode::OK,
                json!({
                    "ok": true, "url": "https://fake.slack.com/", "team": "Fake Team",
                    "user": "modbridge", "team_id": "T0001", "user_id": "U0BOT", "bot_id": "B0BOT"
                }),
            );
            resp.headers_mut()
                .insert("x-oauth-scopes", scopes(&state).parse().unwrap());
            resp
        }
        Err(code) => {
            record(&mut state, "auth.test", Value::Null, code);
            slack_error(code)
        }
    }
}

#[handler]
async fn conversations_info(req: &Request, Data(state): Data<&Arc<Mutex<State>>>) -> Response {
    let mut state = state.lock().unwrap();
    let channel = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|kv| kv.strip_prefix("channel="))
        .unwrap_or_default()
        .to_owned();
    let verdict = authorized(req, &state).and_then(|()| {
        if state.no_read_scope {
            Err("missing_scope")
        } else if channel.is_empty() || state.missing_channels.contains(&channel) {
            Err("channel_not_found")
        } else {
            Ok(())
        }
    });
    match verdict {
        Ok(()) => {
            record(
                &mut state,
                "conversations.info",
                json!({ "channel": channel }),
                "ok",
            );
            json_reply(
                StatusCode::OK,
                json!({ "ok": true, "channel": {
                    "id": channel, "name": "moderators", "created": 1_700_000_000,
                    "is_channel": true, "is_member": true, "is_archived": false, "is_private": false
                }}),
            )
        }
        Err(code) => {
            record(
                &mut state,
                "conversations.info",
                json!({ "channel": channel }),
                code,
            );
            slack_error(code)
        }
    }
}

/// `conversations.history`: the channel's messages in [`oldest`, `latest`]
/// (exclusive unless `inclusive`), newest first, `limit` (default 100, at
/// most 999) per page, `cursor` paging, metadata only with
/// `include_all_metadata`. Needs the history scope and membership; 50 calls
/// a minute, then 429 with `Retry-After`.
#[handler]
async fn conversations_history(req: &Request, Data(state): Data<&Arc<Mutex<State>>>) -> Response {
    let mut state = state.lock().unwrap();
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let logged = json!(query);
    let param = |k: &str| query.get(k).map(String::as_str);
    let channel = param("channel").unwrap_or_default().to_owned();
    if let Err(code) = authorized(req, &state) {
        record(&mut state, "conversations.history", logged, code);
        return slack_error(code);
    }
    let now = Instant::now();
    while state
        .history_calls
        .front()
        .is_some_and(|t| now.duration_since(*t) >= std::time::Duration::from_secs(60))
    {
        state.history_calls.pop_front();
    }
    let forced = state.history_next.pop_front();
    // Refused calls do not use the budget; served ones do.
    let limited = state.history_calls.len() >= HISTORY_PER_MINUTE;
    if !limited && forced.is_none() {
        state.history_calls.push_back(now);
    }
    let rate_limited = |state: &mut State, secs: u64| {
        record(
            state,
            "conversations.history",
            logged.clone(),
            "ratelimited",
        );
        let mut resp = json_reply(
            StatusCode::TOO_MANY_REQUESTS,
            json!({ "ok": false, "error": "ratelimited" }),
        );
        resp.headers_mut()
            .insert("retry-after", secs.to_string().parse().unwrap());
        resp
    };
    match forced {
        Some(Next::RateLimited(secs)) => return rate_limited(&mut state, secs),
        Some(Next::ServerError) => {
            record(&mut state, "conversations.history", logged, "http_500");
            return Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .body("upstream trouble");
        }
        Some(Next::Error(code)) => {
            record(&mut state, "conversations.history", logged, code);
            return slack_error(code);
        }
        None => {}
    }
    if limited {
        let oldest = *state.history_calls.front().unwrap();
        let wait = 60u64
            .saturating_sub(now.duration_since(oldest).as_secs())
            .max(1);
        return rate_limited(&mut state, wait);
    }
    let refusal = if !state.history_scope {
        Some("missing_scope")
    } else if channel.is_empty() || state.missing_channels.contains(&channel) {
        Some("channel_not_found")
    } else if state.not_member.contains(&channel) {
        Some("not_in_channel")
    } else {
        None
    };
    if let Some(code) = refusal {
        record(&mut state, "conversations.history", logged, code);
        return if code == "missing_scope" {
            json_reply(
                StatusCode::OK,
                json!({"ok": false, "error": code, "needed": "channels:history", "provided": scopes(&state)}),
            )
        } else {
            slack_error(code)
        };
    }
    let bound = |k: &str| param(k).and_then(ts_micros);
    let (oldest, latest) = (bound("oldest").unwrap_or(0), bound("latest"));
    let inclusive = matches!(param("inclusive"), Some("true" | "1"));
    let limit = param("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, 999);
    let offset = match param("cursor") {
        None | Some("") => 0,
        Some(c) => match c
            .strip_prefix("next_")
            .and_then(|o| o.parse::<usize>().ok())
        {
            Some(o) => o,
            None => {
                record(
                    &mut state,
                    "conversations.history",
                    logged,
                    "invalid_cursor",
                );
                return slack_error("invalid_cursor");
            }
        },
    };
    let metadata = matches!(param("include_all_metadata"), Some("true" | "1"));
    let mut in_window: Vec<(u64, String, &Value)> = state
        .messages
        .iter()
        .filter(|((ch, _), _)| *ch == channel)
        .filter_map(|((_, ts), body)| Some((ts_micros(ts)?, ts.clone(), body)))
        .filter(|(at, _, _)| {
            let after = if inclusive {
                *at >= oldest
            } else {
                *at > oldest
            };
            let before = latest.is_none_or(|l| if inclusive { *at <= l } else { *at < l });
            after && before
        })
        .collect();
    in_window.sort_by_key(|m| std::cmp::Reverse(m.0));
    let page: Vec<Value> = in_window
        .iter()
        .skip(offset)
        .take(limit)
        .map(|(_, ts, body)| {
            let mut m = json!({"type": "message", "ts": ts, "text": body["text"]});
            if body["app"] != "other" {
                m["bot_id"] = json!("B0BOT");
            }
            if metadata && body.get("metadata").is_some() {
                m["metadata"] = body["metadata"].clone();
            }
            m
        })
        .collect();
    let has_more = in_window.len() > offset + limit;
    record(&mut state, "conversations.history", logged, "ok");
    json_reply(
        StatusCode::OK,
        json!({
            "ok": true,
            "messages": page,
            "has_more": has_more,
            "response_metadata": {"next_cursor": if has_more { format!("next_{}", offset + limit) } else { String::new() }},
        }),
    )
}

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

/// A text object: type, 1..=max characters, not blank. Returns its length.
fn text_object(v: &Value, max: usize, plain_only: bool) -> Result<usize, &'static str> {
    let kind = v["type"].as_str().ok_or("invalid_blocks")?;
    if kind != "plain_text" && (plain_only || kind != "mrkdwn") {
        return Err("invalid_blocks");
    }
    let text = v["text"].as_str().ok_or("invalid_blocks")?;
    let n = text.chars().count();
    if n == 0 || n > max || text.trim().is_empty() {
        return Err("invalid_blocks");
    }
    Ok(n)
}

fn http_url(v: &Value, max: usize) -> Result<(), &'static str> {
    let url = v.as_str().ok_or("invalid_blocks")?;
    if url.chars().count() > max || !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err("invalid_blocks");
    }
    Ok(())
}

/// Every Block Kit limit in shared/reference/slack.md, rejecting like Slack.
pub fn check_message(body: &Value) -> Result<(), &'static str> {
    let text = body["text"].as_str().unwrap_or_default();
    let blocks = body.get("blocks");
    if text.trim().is_empty() && blocks.is_none() {
        return Err("no_text");
    }
    // modbridge always sends a fallback; keep it short, as the reference asks.
    if text.trim().is_empty() {
        return Err("no_text");
    }
    if text.chars().count() > 4_000 {
        return Err("msg_too_long");
    }
    if body.get("link_names").is_some() || body.get("parse").is_some() {
        return Err("invalid_arguments");
    }
    let Some(blocks) = blocks else { return Ok(()) };
    let blocks = blocks.as_array().ok_or("invalid_blocks_format")?;
    if blocks.is_empty() || blocks.len() > 50 {
        return Err("invalid_blocks");
    }
    let mut total = 0;
    for b in blocks {
        if chars(&b["block_id"]) > 255 {
            return Err("invalid_blocks");
        }
        match b["type"].as_str().unwrap_or_default() {
            "header" => total += text_object(&b["text"], 150, true)?,
            "section" => {
                let mut any = false;
                if !b["text"].is_null() {
                    total += text_object(&b["text"], 3_000, false)?;
                    any = true;
                }
                if let Some(fields) = b["fields"].as_array() {
                    if fields.is_empty() || fields.len() > 10 {
                        return Err("invalid_blocks");
                    }
                    for f in fields {
                        total += text_object(f, 2_000, false)?;
                    }
                    any = true;
                }
                if !any {
                    return Err("invalid_blocks");
                }
                // An accessory: one element, here only a button (the
                // elements modbridge uses), checked like those of actions.
                if let Some(accessory) = b.get("accessory") {
                    if accessory["type"] != "button" {
                        return Err("invalid_blocks");
                    }
                    total += text_object(&accessory["text"], 75, true)?;
                    if !accessory["url"].is_null() {
                        http_url(&accessory["url"], 3_000)?;
                    }
                    if chars(&accessory["action_id"]) > 255 {
                        return Err("invalid_blocks");
                    }
                }
            }
            "context" => {
                let elements = b["elements"].as_array().ok_or("invalid_blocks")?;
                if elements.is_empty() || elements.len() > 10 {
                    return Err("invalid_blocks");
                }
                for e in elements {
                    if e["type"] == "image" {
                        http_url(&e["image_url"], 3_000)?;
                    } else {
                        total += text_object(e, 3_000, false)?;
                    }
                }
            }
            "image" => {
                http_url(&b["image_url"], 3_000)?;
                let alt = chars(&b["alt_text"]);
                if alt == 0 || alt > 2_000 {
                    return Err("invalid_blocks");
                }
                total += alt;
            }
            "actions" => {
                let elements = b["elements"].as_array().ok_or("invalid_blocks")?;
                if elements.is_empty() || elements.len() > 25 {
                    return Err("invalid_blocks");
                }
                let mut ids = std::collections::HashSet::new();
                for e in elements {
                    if e["type"] != "button" {
                        return Err("invalid_blocks");
                    }
                    // action_ids are unique within a message's blocks.
                    if let Some(id) = e["action_id"].as_str()
                        && !ids.insert(id.to_owned())
                    {
                        return Err("invalid_blocks");
                    }
                    total += text_object(&e["text"], 75, true)?;
                    if !e["url"].is_null() {
                        http_url(&e["url"], 3_000)?;
                    }
                    if chars(&e["value"]) > 2_000 || chars(&e["action_id"]) > 255 {
                        return Err("invalid_blocks");
                    }
                }
            }
            "divider" => {}
            _ => return Err("invalid_blocks"),
        }
    }
    if total > 12_000 {
        return Err("msg_blocks_too_long");
    }
    Ok(())
}

#[test]
fn the_fake_rejects_what_slack_rejects() {
    let section = |t: &str| json!({"type": "section", "text": {"type": "mrkdwn", "text": t}});
    let ok = json!({"channel": "C1", "text": "hi", "blocks": [section("x")]});
    assert_eq!(check_message(&ok), Ok(()));
    let long = "x".repeat(3_001);
    let too_long = json!({"channel": "C1", "text": "hi", "blocks": [section(&long)]});
    assert_eq!(check_message(&too_long), Err("invalid_blocks"));
    let empty = json!({"channel": "C1", "text": "hi", "blocks": [section("")]});
    assert_eq!(check_message(&empty), Err("invalid_blocks"));
    let header = json!({"channel": "C1", "text": "hi", "blocks": [
        {"type": "header", "text": {"type": "mrkdwn", "text": "x"}}]});
    assert_eq!(check_message(&header), Err("invalid_blocks"));
    let many: Vec<Value> = (0..51).map(|_| section("x")).collect();
    assert_eq!(
        check_message(&json!({"channel": "C1", "text": "hi", "blocks": many})),
        Err("invalid_blocks")
    );
    let big = "x".repeat(2_900);
    let five: Vec<Value> = (0..5).map(|_| section(&big)).collect();
    assert_eq!(
        check_message(&json!({"channel": "C1", "text": "hi", "blocks": five})),
        Err("msg_blocks_too_long")
    );
    assert_eq!(
        check_message(&json!({"channel": "C1", "blocks": [section("x")]})),
        Err("no_text")
    );
    assert_eq!(
        check_message(&json!({"channel": "C1", "text": "x".repeat(4_001)})),
        Err("msg_too_long")
    );
    let with = |accessory: Value| {
        let mut b = section("x");
        b["accessory"] = accessory;
        json!({"channel": "C1", "text": "hi", "blocks": [b]})
    };
    let button = json!({"type": "button", "text": {"type": "plain_text", "text": "Show image"}, "url": "https://cdn.example.com/a.png", "action_id": "show_image"});
    assert_eq!(check_message(&with(button.clone())), Ok(()));
    let mut bad_url = button.clone();
    bad_url["url"] = json!("javascript:alert(1)");
    assert_eq!(check_message(&with(bad_url)), Err("invalid_blocks"));
    let mut mrkdwn = button;
    mrkdwn["text"]["type"] = json!("mrkdwn");
    assert_eq!(check_message(&with(mrkdwn)), Err("invalid_blocks"));
    assert_eq!(
        check_message(&with(json!({"type": "overflow"}))),
        Err("invalid_blocks")
    );
}
