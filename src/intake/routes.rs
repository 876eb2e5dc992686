//! The poem routes: `POST /webhooks/cativa`, `/healthz`, `/readyz`, `/metrics`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use metrics_exporter_prometheus::PrometheusHandle;
use poem::http::{HeaderValue, StatusCode, header};
use poem::web::Data;
use poem::{Body, EndpointExt, IntoEndpoint, Request, Response, Route, get, handler, post};
use serde_json::{Value, json};
use tracing::{Instrument, error, info, info_span, warn};

use super::payload::{Event, PayloadError};
use super::signature::{SignatureError, SignatureHeader};
use crate::config::Settings;
use crate::dedupe::{Claim, DedupeStore, ExecutionId, Lease, Store};
use crate::delivery::RetryLater;
use crate::pipeline::Pipeline;
use crate::telemetry::Outcome;

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub pipeline: Pipeline,
    pub metrics: PrometheusHandle,
    /// Deliveries running, possibly past their request.
    pub inflight: super::inflight::Inflight,
}

/// The public listener. `/metrics` and the detailed `/readyz` are served here
/// only when there is no admin listener.
pub fn public_routes(state: AppState) -> impl IntoEndpoint {
    let detailed = state.settings.admin_listen.is_none();
    let mut route = Route::new()
        .at("/webhooks/cativa", post(webhook))
        .at("/healthz", get(healthz));
    if detailed {
        route = route
            .at("/readyz", get(readyz_detailed))
            .at("/metrics", get(metrics_text));
    } else {
        route = route.at("/readyz", get(readyz_public));
    }
    route.data(state)
}

/// The admin listener (`MODBRIDGE_ADMIN_LISTEN`): metrics and detailed readiness.
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

#[handler]
async fn webhook(req: &Request, body: Body, Data(state): Data<&AppState>) -> Response {
    let started = Instant::now();
    let limit = state.settings.max_body_bytes;

    // 1. Size, before reading: a declared length over the limit is refused at once.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return too_large(limit);
    }
    let body = match body.into_bytes_limit(limit).await {
        Ok(b) => b,
        Err(poem::error::ReadBodyError::PayloadTooLarge) => return too_large(limit),
        Err(e) => {
            return error_reply(
                StatusCode::BAD_REQUEST,
                Outcome::BadRequest,
                &format!("could not read the body: {e}"),
            );
        }
    };

    // 2. Signature, on the raw bytes.
    let header_value = req.headers().get("x-cativa-signature").map(|v| {
        v.to_str()
            .map_err(|_| SignatureError::Malformed("not ASCII"))
    });
    let verified = match header_value {
        None => Err(SignatureError::Missing),
        Some(Err(e)) => Err(e),
        Some(Ok(raw)) => SignatureHeader::parse(raw).and_then(|h| {
            h.verify(
                &body,
                state.settings.secrets.iter().map(|s| &s.secret),
                unix_now(),
                state.settings.signature_tolerance_secs,
            )
        }),
    };
    let secret_index = match verified {
        Ok(i) => i,
        Err(e) => {
            let outcome = match e {
                SignatureError::Stale { .. } | SignatureError::FromTheFuture { .. } => {
                    Outcome::Stale
                }
                _ => Outcome::BadSignature,
            };
            warn!(reason = %e, "rejected webhook: not genuine");
            return error_reply(StatusCode::UNAUTHORIZED, outcome, &e.to_string());
        }
    };

    // 3. Execution ID.
    let execution_id = match req
        .headers()
        .get("x-cativa-execution-id")
        .and_then(|v| v.to_str().ok())
        .map(ExecutionId::parse)
    {
        Some(Ok(id)) => id,
        Some(Err(e)) => return error_reply(StatusCode::BAD_REQUEST, Outcome::BadRequest, e),
        None => {
            return error_reply(
                StatusCode::BAD_REQUEST,
                Outcome::BadRequest,
                "missing X-Cativa-Execution-Id header",
            );
        }
    };

    // 4. Payload.
    let post = match Event::parse(&body) {
        Ok(Event::Post(post)) => Arc::new(*post),
        Ok(Event::Other) => {
            info!(execution_id = %execution_id, "ignored: not a post_created event (subscribe this listener to post_created only)");
            Outcome::IgnoredEvent.count();
            return reply(StatusCode::OK, json!({ "status": "ignored" }));
        }
        Err(e) => {
            let message = match &e {
                // serde's message may quote input: keep only its position.
                PayloadError::NotJson(_) => "body is not valid JSON".to_owned(),
                other => other.to_string(),
            };
            warn!(execution_id = %execution_id, reason = %message, "rejected webhook: bad payload");
            return error_reply(StatusCode::BAD_REQUEST, Outcome::BadRequest, &message);
        }
    };

    let span = info_span!(
        "webhook",
        execution_id = %execution_id,
        post_id = %post.post_id,
        customer_id = %post.customer_id,
    );
    async move {
        // 5. Tenant binding.
        let listener = &state.settings.secrets[secret_index];
        if !listener.allows(&post.customer_id) {
            warn!(listener = %listener.source, "rejected webhook: customer not bound to the secret that signed it");
            return error_reply(
                StatusCode::FORBIDDEN,
                Outcome::Forbidden,
                "CustomerId is not bound to the listener secret that signed this request",
            );
        }

        // 6. Dedupe claim.
        let lease = match state.store.claim(&execution_id).await {
            Ok(Claim::First(lease)) => lease,
            Ok(Claim::Done) => {
                Outcome::Duplicate.count();
                info!("duplicate delivery: already processed");
                return reply(StatusCode::OK, json!({ "status": "duplicate" }));
            }
            Ok(Claim::InFlight { retry_after }) => {
                info!("delivery in flight elsewhere: asking for a retry");
                return retry_later(
                    Outcome::InFlight,
                    "this execution is being processed; retry later",
                    retry_after,
                );
            }
            Err(e) => {
                error!(error = %e, "dedupe store unavailable");
                metrics::counter!("modbridge_dedupe_errors_total", "op" => "claim").increment(1);
                return retry_later(
                    Outcome::Unavailable,
                    "dedupe store unavailable; retry later",
                    Duration::from_secs(5),
                );
            }
        };

        // 7. Process under the lease, in a task of its own: at the deadline
        // Cativa gets 503 + Retry-After and the work goes on; the retry then
        // finds it done, or does what is left.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task_state = state.clone();
        let ticket = state.inflight.start(&lease);
        tokio::spawn(
            async move {
                let _ticket = ticket;
                let outcome = process_with_lease(&task_state, post, &lease).await;
                let outcome = match outcome {
                    Ok(processed) => match task_state.store.complete(&lease).await {
                        Ok(()) => Ok(processed),
                        Err(e) => {
                            // The cards are recorded as sent: the retry sends nothing twice.
                            error!(error = %e, "could not record the execution as done");
                            metrics::counter!("modbridge_dedupe_errors_total", "op" => "complete").increment(1);
                            Err(RetryLater {
                                detail: "dedupe store unavailable; retry later".into(),
                                retry_after: Duration::from_secs(5),
                            })
                        }
                    },
                    Err(e) => {
                        if let Err(e) = task_state.store.release(&lease).await {
                            warn!(error = %e, "could not release the claim; it expires by itself");
                        }
                        Err(e)
                    }
                };
                let _ = tx.send(outcome);
            }
            .in_current_span(),
        );
        match tokio::time::timeout(state.settings.deadline, rx).await {
            Ok(Ok(Ok(processed))) => {
                Outcome::Accepted.count();
                metrics::histogram!("modbridge_webhook_duration_seconds")
                    .record(started.elapsed().as_secs_f64());
                info!(
                    cards = processed.cards,
                    already_sent = processed.already_sent,
                    parked = processed.parked,
                    "accepted"
                );
                reply(
                    StatusCode::OK,
                    json!({
                        "status": "accepted",
                        "cards": processed.cards,
                        "already_sent": processed.already_sent,
                        "parked": processed.parked,
                    }),
                )
            }
            Ok(Ok(Err(e))) => retry_later(
                Outcome::Unavailable,
                &format!("delivery failed: {}; retry later", e.detail),
                e.retry_after,
            ),
            Ok(Err(_)) => retry_later(
                Outcome::Unavailable,
                "processing stopped unexpectedly; retry later",
                Duration::from_secs(5),
            ),
            Err(_) => {
                warn!("deadline passed; delivery goes on in the background");
                retry_later(
                    Outcome::InFlight,
                    "still delivering; retry later",
                    Duration::from_secs(5),
                )
            }
        }
    }
    .instrument(span)
    .await
}

fn too_large(limit: usize) -> Response {
    error_reply(
        StatusCode::PAYLOAD_TOO_LARGE,
        Outcome::TooLarge,
        &format!("body is larger than {limit} bytes"),
    )
}

/// Runs the pipeline, renewing the lease meanwhile.
async fn process_with_lease(
    state: &AppState,
    post: Arc<crate::post::Post>,
    lease: &Lease,
) -> Result<crate::pipeline::Processed, RetryLater> {
    let renew_every = (state.settings.dedupe.lease / 3).max(Duration::from_millis(100));
    let work = state.pipeline.process(post);
    tokio::pin!(work);
    let mut ticker =
        tokio::time::interval_at(tokio::time::Instant::now() + renew_every, renew_every);
    loop {
        tokio::select! {
            done = &mut work => return done,
            _ = ticker.tick() => {
                match state.store.renew(lease).await {
                    Ok(true) => {}
                    Ok(false) => warn!("lease lost while processing"),
                    Err(e) => warn!(error = %e, "could not renew the lease"),
                }
            }
        }
    }
}
