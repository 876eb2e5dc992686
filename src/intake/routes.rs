//! The poem routes: `POST /webhooks/cativa`, `/healthz`, `/readyz`, `/metrics`.
//! They map HTTP to typed values and back: the webhook verifies the request,
//! hands the post to the ingest service and answers from its
//! [`Ingested`] outcome. The public listener serves the webhook, `/healthz`
//! and a bare `/readyz` only; `/metrics` and the detailed `/readyz` (rule
//! names, reload errors, Redis errors) are the admin listener's.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use metrics_exporter_prometheus::PrometheusHandle;
use poem::http::{HeaderValue, StatusCode, header};
use poem::web::Data;
use poem::{
    Body, Endpoint, EndpointExt, IntoEndpoint, Request, Response, Route, get, handler, post,
};
use serde_json::{Value, json};
use tracing::{Instrument, info, info_span, warn};

use super::limits::InFlight;
use super::payload::{Event, PayloadError};
use super::signature::{SignatureError, SignatureHeader, SigningKey};
use crate::config::Settings;
use crate::dedupe::{DedupeStore, ExecutionId, Store};
use crate::ingest::{Ingest, Ingested};
use crate::pipeline::Pipeline;
use crate::post::Post;
use crate::telemetry::Outcome;

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub pipeline: Pipeline,
    pub metrics: PrometheusHandle,
    /// Claims, processes and records each execution.
    pub ingest: Ingest,
    /// `[capture]`: where verified bodies are appended, when configured.
    pub capture: Option<Arc<super::capture::Capture>>,
    /// `intake.max_in_flight`: webhook requests handled at once.
    pub in_flight: InFlight,
    /// Moderator actions: the interactions endpoints' state.
    pub triage: crate::triage::Triage,
    /// The HMAC key schedule of each listener secret, in the order of
    /// `settings.listeners.secrets` ([`webhook_keys`]).
    pub webhook_keys: Arc<[SigningKey]>,
}

/// Every listener secret's [`SigningKey`], computed once at start.
pub fn webhook_keys(settings: &Settings) -> Arc<[SigningKey]> {
    settings
        .listeners
        .secrets
        .iter()
        .map(|l| SigningKey::new(&l.secret))
        .collect()
}

/// The public listener: the webhook, `/healthz` and a bare `/readyz` (the
/// status word only). Nothing here tells a stranger about rules or channels.
///
/// The webhook endpoint holds the state itself: `.data(state)` on the whole
/// route would clone every `Arc` of `AppState` into each request's
/// extensions (a map allocated per request, and atomic counts that both
/// cores fight over), which the busiest route does not need.
pub fn public_routes(state: AppState) -> impl IntoEndpoint {
    Route::new()
        .at("/webhooks/cativa", post(Webhook(Arc::new(state.clone()))))
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz_public).data(state.clone()))
        .at(
            "/slack/interactions",
            post(crate::triage::slack_interactions).data(state.triage.clone()),
        )
        .at(
            "/discord/interactions",
            post(crate::triage::discord_interactions).data(state.triage),
        )
}

/// The admin listener (`admin_listen`, `127.0.0.1:9090` unless set):
/// metrics and detailed readiness.
pub fn admin_routes(state: AppState) -> impl IntoEndpoint {
    Route::new()
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz_detailed))
        .at("/metrics", get(metrics_text))
        .data(state)
}

fn reply(status: StatusCode, body: Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(body.to_string())
}

fn error_reply(status: StatusCode, outcome: Outcome, message: &str) -> Response {
    outcome.count();
    reply(status, json!({ "error": message }))
}

fn retry_later(outcome: Outcome, message: &str, after: Duration) -> Response {
    outcome.count();
    let secs = after.as_secs_f64().ceil().max(1.0) as u64;
    let mut resp = reply(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({ "error": message, "retry_after_secs": secs }),
    );
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[handler]
async fn healthz() -> Response {
    reply(StatusCode::OK, json!({ "status": "alive" }))
}

#[handler]
async fn metrics_text(Data(state): Data<&AppState>) -> Response {
    Response::builder()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

async fn readiness(state: &AppState) -> (StatusCode, Value) {
    let store = state.store.ping().await;
    let rules = state.pipeline.rules().status();
    let mut problems = Vec::new();
    if let Some(e) = &rules.last_error {
        problems.push(format!(
            "rules reload failed, the last good rules are still in use: {e}"
        ));
    }
    problems.extend(state.pipeline.rules().problem());
    problems.extend(state.pipeline.sinks().problems());
    problems.extend(state.pipeline.deliverer().problems());
    let (status, word) = match &store {
        Ok(()) if problems.is_empty() => (StatusCode::OK, "ready"),
        Ok(()) => (StatusCode::OK, "degraded"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    let last_success = rules
        .last_success
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let body = json!({
        "status": word,
        "dedupe": {
            "store": state.store.kind(),
            "ok": store.is_ok(),
            "error": store.err().map(|e| e.to_string()),
        },
        "rules": {
            "files": rules.files,
            "last_reload_success_unix": last_success,
            "last_error": rules.last_error,
        },
        "degraded": problems,
        "dry_run": state.settings.dry_run,
    });
    (status, body)
}

#[handler]
async fn readyz_detailed(Data(state): Data<&AppState>) -> Response {
    let (status, body) = readiness(state).await;
    reply(status, body)
}

#[handler]
async fn readyz_public(Data(state): Data<&AppState>) -> Response {
    let (status, body) = readiness(state).await;
    reply(status, json!({ "status": body["status"] }))
}

/// `POST /webhooks/cativa`, with the state it was built with.
struct Webhook(Arc<AppState>);

impl Endpoint for Webhook {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let body = req.take_body();
        Ok(webhook(&req, body, &self.0).await)
    }
}

async fn webhook(req: &Request, body: Body, state: &AppState) -> Response {
    let started = Instant::now();
    // 0. Room: over `intake.max_in_flight`, ask for a retry before reading anything.
    let Some(_slot) = state.in_flight.try_enter() else {
        warn!("refused webhook: intake.max_in_flight requests are already being handled");
        return retry_later(
            Outcome::Overloaded,
            "too many requests in progress; retry later",
            Duration::from_secs(2),
        );
    };
    match verified_post(req, body, state).await {
        Ok(Verified::Post {
            execution_id,
            post,
            secret_index,
        }) => {
            let span = info_span!(
                "webhook",
                execution_id = %execution_id,
                post_id = %post.post_id,
                customer_id = %post.customer_id,
            );
            async {
                // 5. Tenant binding.
                let listener = &state.settings.listeners.secrets[secret_index];
                if !listener.allows(&post.customer_id) {
                    warn!(listener = %listener.source, "rejected webhook: customer not bound to the secret that signed it");
                    return error_reply(
                        StatusCode::FORBIDDEN,
                        Outcome::Forbidden,
                        "CustomerId is not bound to the listener secret that signed this request",
                    );
                }
                // 6. Claim, process, record: the ingest service.
                let ingested = state.ingest.handle(&execution_id, post).await;
                answer(ingested, started)
            }
            .instrument(span)
            .await
        }
        Ok(Verified::Ignored { execution_id }) => {
            info!(execution_id = %execution_id, "ignored: not a post_created event (subscribe this listener to post_created only)");
            Outcome::IgnoredEvent.count();
            reply(StatusCode::OK, json!({ "status": "ignored" }))
        }
        Err(refusal) => refusal.answer(),
    }
}

/// A genuine request, checked and parsed.
enum Verified {
    Post {
        execution_id: ExecutionId,
        post: Arc<Post>,
        /// Which listener secret signed it.
        secret_index: usize,
    },
    /// Not a `post_created` event.
    Ignored { execution_id: ExecutionId },
}

/// Why a request is answered before it reaches the ingest service.
enum Refusal {
    /// 413: the body is over `max_body_bytes`.
    TooLarge { limit: usize },
    /// 408: the body did not arrive within `body_timeout_secs`.
    TooSlow { timeout: Duration },
    /// 401: not signed by a listener secret, or signed too long ago.
    NotGenuine(SignatureError),
    /// 400: the request can never succeed as sent.
    BadRequest(String),
}

impl Refusal {
    fn answer(self) -> Response {
        match self {
            Refusal::TooLarge { limit } => too_large(limit),
            Refusal::TooSlow { timeout } => error_reply(
                StatusCode::REQUEST_TIMEOUT,
                Outcome::BodyTimeout,
                &format!(
                    "the body did not arrive within {} s (intake.body_timeout_secs); send it at once",
                    timeout.as_secs()
                ),
            ),
            Refusal::NotGenuine(e) => {
                let outcome = match e {
                    SignatureError::Stale { .. } | SignatureError::FromTheFuture { .. } => {
                        Outcome::Stale
                    }
                    _ => Outcome::BadSignature,
                };
                error_reply(StatusCode::UNAUTHORIZED, outcome, &e.to_string())
            }
            Refusal::BadRequest(message) => {
                error_reply(StatusCode::BAD_REQUEST, Outcome::BadRequest, &message)
            }
        }
    }
}

/// Checks 1 to 4, cheapest and least revealing first: nothing is read of the
/// body before its declared size and its signature header (present,
/// well-formed, fresh) pass.
async fn verified_post(req: &Request, body: Body, state: &AppState) -> Result<Verified, Refusal> {
    let intake = &state.settings.intake;
    declared_size(req, intake.max_body_bytes)?;
    let header = signature_header(req, &state.settings)?;
    let body = read_body(body, intake.max_body_bytes, intake.body_timeout).await?;
    let secret_index = verify_signature(req, &header, body.as_ref(), state)?;
    if let Some(capture) = &state.capture {
        capture.append(body.as_ref());
    }
    let execution_id = execution_id(req)?;
    match Event::parse(body.as_ref()) {
        Ok(Event::Post(post)) => Ok(Verified::Post {
            execution_id,
            post: Arc::new(*post),
            secret_index,
        }),
        Ok(Event::Other) => Ok(Verified::Ignored { execution_id }),
        Err(e) => {
            let message = match &e {
                // serde's message may quote input: keep only its position.
                PayloadError::NotJson(_) => "body is not valid JSON".to_owned(),
                other => other.to_string(),
            };
            warn!(execution_id = %execution_id, reason = %message, "rejected webhook: bad payload");
            Err(Refusal::BadRequest(message))
        }
    }
}

/// 1. Size, before reading: a declared length over the limit is refused at once.
fn declared_size(req: &Request, limit: usize) -> Result<(), Refusal> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(Refusal::TooLarge { limit });
    }
    Ok(())
}

/// 2a. The signature header, before the body: present, well-formed, fresh.
fn signature_header(req: &Request, settings: &Settings) -> Result<SignatureHeader, Refusal> {
    let parsed = match req.headers().get("x-cativa-signature").map(|v| v.to_str()) {
        None => Err(SignatureError::Missing),
        Some(Err(_)) => Err(SignatureError::Malformed("not ASCII")),
        Some(Ok(raw)) => SignatureHeader::parse(raw).and_then(|h| {
            h.check_fresh(unix_now(), settings.intake.signature_tolerance_secs)
                .map(|()| h)
        }),
    };
    parsed.map_err(not_genuine)
}

/// 2b. The body, within the size limit and `body_timeout_secs`.
async fn read_body(
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<impl AsRef<[u8]> + use<>, Refusal> {
    match tokio::time::timeout(timeout, body.into_bytes_limit(limit)).await {
        Err(_) => {
            warn!(
                timeout_secs = timeout.as_secs(),
                "rejected webhook: the body arrived too slowly"
            );
            Err(Refusal::TooSlow { timeout })
        }
        Ok(Ok(b)) => Ok(b),
        Ok(Err(poem::error::ReadBodyError::PayloadTooLarge)) => Err(Refusal::TooLarge { limit }),
        Ok(Err(e)) => Err(Refusal::BadRequest(format!("could not read the body: {e}"))),
    }
}

/// 2c. The signature, on the raw bytes, against the secrets of the listener
/// named by `X-Cativa-Automation-Id` (else those bound to no automation ID):
/// one HMAC per candidate. Returns which listener secret signed it.
fn verify_signature(
    req: &Request,
    header: &SignatureHeader,
    body: &[u8],
    state: &AppState,
) -> Result<usize, Refusal> {
    let settings = &state.settings;
    let automation_id = req
        .headers()
        .get("x-cativa-automation-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let candidates = settings.listeners.candidates(automation_id);
    header
        .verify(
            body,
            candidates.iter().map(|&i| &state.webhook_keys[i]),
            unix_now(),
            settings.intake.signature_tolerance_secs,
        )
        .map(|at| candidates[at])
        .map_err(not_genuine)
}

fn not_genuine(e: SignatureError) -> Refusal {
    warn!(reason = %e, "rejected webhook: not genuine");
    Refusal::NotGenuine(e)
}

/// 3. Execution ID.
fn execution_id(req: &Request) -> Result<ExecutionId, Refusal> {
    match req
        .headers()
        .get("x-cativa-execution-id")
        .and_then(|v| v.to_str().ok())
        .map(ExecutionId::parse)
    {
        Some(Ok(id)) => Ok(id),
        Some(Err(e)) => Err(Refusal::BadRequest(e.to_owned())),
        None => Err(Refusal::BadRequest(
            "missing X-Cativa-Execution-Id header".to_owned(),
        )),
    }
}

/// The no-card answer, the same bytes every time.
const NO_CARD_BODY: &str = r#"{"status":"accepted","cards":0}"#;

/// The answer to Cativa for what the ingest service did.
fn answer(ingested: Ingested, started: Instant) -> Response {
    match ingested {
        Ingested::NoCard => {
            Outcome::NoCard.count();
            Response::builder()
                .status(StatusCode::OK)
                .content_type("application/json")
                .body(NO_CARD_BODY)
        }
        Ingested::Accepted(processed) => {
            Outcome::Accepted.count();
            metrics::histogram!("modbridge_webhook_duration_seconds")
                .record(started.elapsed().as_secs_f64());
            info!(
                cards = processed.cards,
                already_sent = processed.already_sent,
                parked = processed.parked,
                in_digest = processed.in_digest,
                "accepted"
            );
            // A refused card is not Cativa's to retry: 200, said apart.
            let status = if processed.dead_letters > 0 {
                "dead_letter"
            } else {
                "accepted"
            };
            reply(
                StatusCode::OK,
                json!({
                    "status": status,
                    "cards": processed.cards,
                    "already_sent": processed.already_sent,
                    "parked": processed.parked,
                    "dead_letters": processed.dead_letters,
                    "in_digest": processed.in_digest,
                }),
            )
        }
        Ingested::Duplicate => {
            Outcome::Duplicate.count();
            reply(StatusCode::OK, json!({ "status": "duplicate" }))
        }
        Ingested::InFlight { retry_after } => retry_later(
            Outcome::InFlight,
            "this execution is being processed; retry later",
            retry_after,
        ),
        Ingested::StoreUnavailable => retry_later(
            Outcome::Unavailable,
            "dedupe store unavailable; retry later",
            Duration::from_secs(5),
        ),
        Ingested::RetryLater(e) => retry_later(
            Outcome::Unavailable,
            &format!("delivery failed: {}; retry later", e.detail),
            e.retry_after,
        ),
        Ingested::Stopped => retry_later(
            Outcome::Unavailable,
            "processing stopped unexpectedly; retry later",
            Duration::from_secs(5),
        ),
        Ingested::StillRunning => retry_later(
            Outcome::InFlight,
            "still delivering; retry later",
            Duration::from_secs(5),
        ),
    }
}

fn too_large(limit: usize) -> Response {
    error_reply(
        StatusCode::PAYLOAD_TOO_LARGE,
        Outcome::TooLarge,
        &format!("body is larger than {limit} bytes"),
    )
}
