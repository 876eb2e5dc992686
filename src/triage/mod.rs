//! Moderator actions on cards (claim, resolve, false positive, reopen): the
//! interactions endpoints `POST /slack/interactions` and
//! `POST /discord/interactions` on the public listener.
//!
//! Order of checks: the platform's secret is set (else 404) → body size →
//! signature on the raw bytes, timestamp within 5 minutes (else 401, nothing
//! parsed) → replay guard: the same request seen within 5 minutes, by any
//! replica sharing the store, is refused (401) → parse → the case's
//! transition ([`case::Cases::act`], compare-and-swap on its revision) →
//! answer: acknowledged, or an ephemeral word to the clicking moderator
//! alone ("already claimed by @ana", "this case has expired"; Slack: through
//! the click's `response_url`, after the 200). After a change every copy of
//! the case is edited to its new state ([`update::Updater`], one worker of
//! all replicas per case at a time).

pub mod case;
pub mod escalate;
pub mod history;
pub mod stats;
pub mod update;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use poem::http::{HeaderMap, StatusCode};
use poem::web::Data;
use poem::{Body, Response, handler};
use serde_json::json;
use tracing::{info, warn};

use self::case::{Acted, Actor, CaseState, Cases, Refusal};
use crate::dedupe::{DedupeStore, Store};
use crate::platforms::{
    Inbound, InteractionError, InteractionReply, Interactions, discord, interaction_answer, slack,
};

/// Larger bodies are refused (Slack's block_actions carries the whole
/// message: tens of KB at most).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// How long a request's replay key is kept: the freshness window.
const REPLAY_WINDOW: Duration = Duration::from_secs(5 * 60);
/// A click is decided within this, or acknowledged and decided after (the
/// platforms wait 3 s for an answer).
const DECIDE_WITHIN: Duration = Duration::from_millis(1500);

/// What the interactions endpoints share.
#[derive(Clone)]
pub struct Triage {
    pub interactions: Interactions,
    pub store: Store,
    pub cases: Cases<Store>,
    /// Authors' earlier cases, moved along with each case's outcome.
    pub histories: history::Histories<Store>,
    /// Edits every copy after a change.
    pub updater: update::Updater,
}

/// What the clicking moderator is told when nothing changed.
fn refusal_text(refusal: &Refusal) -> String {
    match refusal {
        Refusal::AlreadyClaimed(by) => format!("Already claimed by @{}", by.name),
        Refusal::AlreadyClosed(state, by) => {
            let what = match state {
                CaseState::FalsePositive => "marked as a false positive",
                _ => "resolved",
            };
            match by {
                Some(by) => format!("Already {what} by @{}", by.name),
                None => format!("Already {what}"),
            }
        }
        Refusal::NotApplicable(CaseState::Open) => "This case is open: nothing to undo".into(),
        Refusal::NotApplicable(_) => "This case is not closed: nothing to reopen".into(),
    }
}

/// The `outcome` label of `modbridge_cases_total` for a case now in `state`.
fn outcome(action: crate::platforms::ModeratorAction) -> &'static str {
    use crate::platforms::ModeratorAction as A;
    match action {
        A::Claim => "claimed",
        A::Unclaim => "unclaimed",
        A::Resolve => "resolved",
        A::FalsePositive => "false_positive",
        A::Reopen => "reopened",
    }
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
    /// A transition's outcome into the rule statistics and the author's
    /// history, off the click's answer (a failure costs only figures).
    fn feedback(&self, case_id: &str, before: case::Case, after: case::Case) {
        let Some(origin) = after.origin.clone() else {
            return;
        };
        let (store, histories, case_id) = (
            self.store.clone(),
            self.histories.clone(),
            case_id.to_owned(),
        );
        tokio::spawn(async move {
            let stats = stats::Stats::new(store);
            if let Err(e) = stats.transition(&origin.fired, &before, &after).await {
                warn!(case_id = %case_id, error = %e, "a moderator action could not be counted in the stats");
            }
            let moved = histories.moved(
                &origin.author,
                &case_id,
                after.posted_at_ms,
                before.state,
                after.state,
            );
            if let Err(e) = moved.await {
                warn!(case_id = %case_id, error = %e, "a moderator action could not be written to the author's history");
            }
        });
    }

    /// Slack answers 200 at once; what the moderator reads goes through the
    /// click's `response_url`, on a task of its own.
    fn tell_after_answer(&self, click: &crate::platforms::Interaction, text: &str) {
        let (interactions, click, text) =
            (self.interactions.clone(), click.clone(), text.to_owned());
        tokio::spawn(async move {
            if let Err(e) = interactions.tell_privately(&click, &text).await {
                warn!(case_id = %click.case_id, platform = click.platform, error = %e, "cannot tell the moderator privately");
            }
        });
    }

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
        let now = unix_now();
        // Verified first thing on the task (a forged request is answered
        // 401 at once); what follows needs the store: decided within
        // DECIDE_WITHIN, or acknowledged then (the platform's 3-second
        // window) and finished in the background — the copies are edited
        // when it is done.
        let this = self.clone();
        let (late_headers, late_body) = (headers.clone(), body.clone());
        let work = tokio::spawn(async move {
            this.verified(platform, &late_headers, &late_body, now)
                .await
        });
        match tokio::time::timeout(DECIDE_WITHIN, work).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                warn!(platform, error = %e, "an interaction's work failed");
                reply(
                    platform,
                    &InteractionReply::Ephemeral(
                        "modbridge could not record this; try again".into(),
                    ),
                )
            }
            Err(_) => {
                warn!(
                    platform,
                    "the store is slow: the interaction is acknowledged now and decided in the background"
                );
                metrics::counter!("modbridge_interactions_total", "platform" => platform, "outcome" => "deferred").increment(1);
                // Only an authentic request gets this far (verifying takes
                // microseconds): a PING still needs its PONG.
                let ping = self
                    .interactions
                    .verify(platform, &headers, &body, now)
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .is_some_and(|i| matches!(i, Inbound::Ping));
                if ping {
                    reply(platform, &InteractionReply::Pong)
                } else {
                    reply(platform, &InteractionReply::Acknowledge)
                }
            }
        }
    }

    /// A request's work: the signature on the raw bytes (else 401, nothing
    /// parsed), the replay guard, then parse and decide.
    async fn verified(
        &self,
        platform: &'static str,
        headers: &[(String, String)],
        body: &[u8],
        now: i64,
    ) -> Response {
        let verified = match self.interactions.verify(platform, headers, body, now) {
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
            Inbound::Click(click) if !self.interactions.allows(&click) => {
                info!(
                    case_id = %click.case_id,
                    action = click.action.as_str(),
                    platform,
                    moderator_id = %click.moderator_id,
                    "moderator action refused: not allowed by [triage]"
                );
                metrics::counter!("modbridge_interactions_total", "platform" => platform, "outcome" => "not_allowed").increment(1);
                let text = "You are not allowed to act on modbridge cases: nothing changed (ask an admin: [triage] slack_users / discord_roles)";
                self.tell_after_answer(&click, text);
                reply(platform, &InteractionReply::Ephemeral(text.into()))
            }
            Inbound::Click(click) => {
                let actor = Actor {
                    platform: platform.to_owned(),
                    id: click.moderator_id.clone(),
                    name: click.moderator_name.clone(),
                };
                let now_ms = u64::try_from(unix_now()).unwrap_or(0) * 1000;
                let answer = match self
                    .cases
                    .act(&click.case_id, click.action, &actor, now_ms)
                    .await
                {
                    Ok(Acted::Changed {
                        revision,
                        before,
                        case,
                    }) => {
                        // The audit line: IDs only, never content.
                        info!(
                            case_id = %click.case_id,
                            action = click.action.as_str(),
                            platform,
                            moderator_id = %click.moderator_id,
                            revision,
                            "moderator action"
                        );
                        metrics::counter!("modbridge_cases_total", "outcome" => outcome(click.action)).increment(1);
                        stats::observe(&before, &case);
                        self.feedback(&click.case_id, *before, case);
                        // Answered at once; every copy is edited after.
                        self.updater.spawn(click.case_id.clone());
                        InteractionReply::Acknowledge
                    }
                    Ok(Acted::Refused(refusal)) => {
                        InteractionReply::Ephemeral(refusal_text(&refusal))
                    }
                    Ok(Acted::Unknown) => {
                        InteractionReply::Ephemeral("This case has expired: nothing changed".into())
                    }
                    Err(e) => {
                        warn!(case_id = %click.case_id, error = %e, "cannot record a moderator action");
                        InteractionReply::Ephemeral(
                            "modbridge could not record this; try again".into(),
                        )
                    }
                };
                metrics::counter!("modbridge_interactions_total", "platform" => platform, "outcome" => "click").increment(1);
                if let InteractionReply::Ephemeral(text) = &answer {
                    self.tell_after_answer(&click, text);
                }
                reply(platform, &answer)
            }
        }
    }
}
