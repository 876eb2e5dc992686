//! A fake Slack Web API on 127.0.0.1: the parts modbridge uses
//! (`chat.postMessage`, `chat.update`, `auth.test`, `conversations.info`). It checks the
//! bearer token, the JSON body and every Block Kit limit in
//! shared/reference/slack.md, rejects like Slack does, records what it
//! received, and can be told to fail.

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
}

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

    /// Bodies of the `chat.postMessage` calls Slack accepted.
    pub fn posted(&self) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|r| r.method == "chat.postMessage" && r.answer == "ok")
            .map(|r| r.body)
            .collect()
    }
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
    if method == "chat.update" && matches!(verdict, Answer::Ok) {
        let ts = json_body["ts"].as_str().unwrap_or_default().to_owned();
        if !state.messages.contains_key(&(channel_id.clone(), ts)) {
            verdict = Answer::Error("message_not_found");
        }
    }
    match verdict {
        Answer::Ok => {
            let ts = if method == "chat.update" {
                json_body["ts"].as_str().unwrap_or_default().to_owned()
            } else {
                state.ts += 1;
                format!("1715177521.{:06}", state.ts)
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
    let has_image = body["blocks"]
        .as_array()
        .is_some_and(|b| b.iter().any(|b| b["type"] == "image"));
    if has_image && state.reject_images {
        return Answer::Error("invalid_blocks");
    }
    Answer::Ok
}

#[handler]
async fn auth_test(req: &Request, Data(state): Data<&Arc<Mutex<State>>>) -> Response {
    let mut state = state.lock().unwrap();
    match authorized(req, &state) {
        Ok(()) => {
            record(&mut state, "auth.test", Value::Null, "ok");
            json_reply(
                StatusCode::OK,
                json!({
                    "ok": true, "url": "https://fake.slack.com/", "team": "Fake Team",
                    "user": "modbridge", "team_id": "T0001", "user_id": "U0BOT", "bot_id": "B0BOT"
                }),
            )
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
                for e in elements {
                    if e["type"] != "button" {
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
}
