//! Moderator actions on cards (claim, resolve, false positive, reopen): the
//! interactions endpoints `POST /slack/interactions` and
//! `POST /discord/interactions` on the public listener.
//!
//! Order of checks: the platform's secret is set (else 404) → body size →
//! signature on the raw bytes, timestamp within 5 minutes (else 401, nothing
//! parsed) → replay guard: the same request seen within 5 minutes, by any
//! replica sharing the store, is refused (401) → parse → answer. Cases
//! (who claimed what) are not kept yet: a click on a card answers that there
//! is nothing to act on, and cards carry no buttons.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use poem::http::{HeaderMap, StatusCode};
use poem::web::Data;
use poem::{Body, Response, handler};
use serde_json::json;
use tracing::{info, warn};

use crate::dedupe::{DedupeStore, Store};
use crate::platforms::{
    Inbound, InteractionError, InteractionReply, Interactions, discord, interaction_answer, slack,
};

/// Larger bodies are refused (Slack's block_actions carries the whole
/// message: tens of KB at most).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// How long a request's replay key is kept: the freshness window.
const REPLAY_WINDOW: Duration = Duration::from_secs(5 * 60);

/// What the interactions endpoints share.
#[derive(Clone)]
pub struct Triage {
    pub interactions: Interactions,
    pub store: Store,
}

#[handler]
pub async fn slack_interactions(
    headers: &HeaderMap,
    body: Body,
    Data(triage): Data<&Triage>,
) -> Response {
    triage.handle(slack::PLATFORM, headers, body).await
}

#[handler]
pub async fn discord_interactions(
    headers: &HeaderMap,
    body: Body,
    Data(triage): Data<&Triage>,
) -> Response {
    triage.handle(discord::PLATFORM, headers, body).await
}

fn error(status: StatusCode, message: &str) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(json!({ "error": message }).to_string())
}

fn reply(platform: &str, reply: &InteractionReply) -> Response {
    let (status, body) = interaction_answer(platform, reply);
    let builder =
        Response::builder().status(StatusCode::from_u16(status).unwrap_or(StatusCode::OK));
    match body {
        Some(json) => builder
            .content_type("application/json")
            .body(json.to_string()),
        None => builder.body(Body::empty()),
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Triage {
    async fn handle(&self, platform: &'static str, headers: &HeaderMap, body: Body) -> Response {
        if !self.interactions.enabled(platform) {
            // Before reading anything: nothing is served here.
            return error(StatusCode::NOT_FOUND, "not found");
        }
        let body = match body.into_bytes_limit(MAX_BODY_BYTES).await {
            Ok(b) => b,
            Err(_) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the interaction body is too large or could not be read",
                );
            }
        };
        let headers: Vec<(String, String)> = headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let verified = match self
            .interactions
            .verify(platform, &headers, &body, unix_now())
        {
            Ok(v) => v,
            Err(InteractionError::NotConfigured { .. }) => {
                return error(StatusCode::NOT_FOUND, "not found");
            }
            Err(e) => {
                warn!(platform, "refused interaction: forged or stale signature");
                metrics::counter!("modbridge_interactions_total", "platform" => platform, "outcome" => "unauthentic").increment(1);
                return error(StatusCode::UNAUTHORIZED, &e.to_string());
            }
        };
        match self
            .store
            .first_sighting(
                &format!("interaction:{}", verified.replay_key()),
                REPLAY_WINDOW,
            )
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                warn!(
                    platform,
                    "refused interaction: replayed (seen within 5 minutes)"
                );
                metrics::counter!("modbridge_interactions_total", "platform" => platform, "outcome" => "replayed").increment(1);
                return error(
                    StatusCode::UNAUTHORIZED,
                    &format!("the {platform} interaction request was already received"),
                );
            }
            Err(e) => {
                warn!(platform, error = %e, "cannot check an interaction for replay");
                metrics::counter!("modbridge_interactions_total", "platform" => platform, "outcome" => "store_error").increment(1);
                return match verified.parse() {
                    Ok(Inbound::Ping) => reply(platform, &InteractionReply::Pong),
                    _ => reply(
                        platform,
                        &InteractionReply::Ephemeral(
                            "modbridge could not record this; try again".into(),
                        ),
                    ),
                };
            }
        }
        let inbound = match verified.parse() {
            Ok(i) => i,
            Err(e) => {
                warn!(platform, error = %e, "refused interaction");
                metrics::counter!("modbridge_interactions_total", "platform" => platform, "outcome" => "malformed").increment(1);
                return error(StatusCode::BAD_REQUEST, &e.to_string());
            }
        };
        match inbound {
            Inbound::Ping => {
                metrics::counter!("modbridge_interactions_total", "platform" => platform, "outcome" => "ping").increment(1);
                reply(platform, &InteractionReply::Pong)
            }
            Inbound::Ignored => {
                metrics::counter!("modbridge_interactions_total", "platform" => platform, "outcome" => "ignored").increment(1);
                reply(platform, &InteractionReply::Acknowledge)
            }
            Inbound::Click(click) => {
                // Cases are not kept yet, so no card carries buttons: a
                // click can only come from a stale or foreign message.
                info!(
                    case_id = %click.case_id,
                    action = click.action.as_str(),
                    platform,
                    moderator_id = %click.moderator_id,
                    "moderator action on an unknown case: nothing changed"
                );
                metrics::counter!("modbridge_interactions_total", "platform" => platform, "outcome" => "unknown_case").increment(1);
                reply(
                    platform,
                    &InteractionReply::Ephemeral(
                        "modbridge has no case for this card: nothing changed".into(),
                    ),
                )
            }
        }
    }
}
