//! Logs (tracing, to standard error) and metrics (the `metrics` crate with a
//! Prometheus recorder).
//!
//! Log lines about an event carry `execution_id`, `post_id` and `customer_id`
//! as fields. Secrets, tokens, emails, phone numbers and post content are
//! never logged: the types that hold them redact their `Debug` output.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Starts logging to standard error; `RUST_LOG` filters (default `info`).
/// Calling it twice is harmless.
pub fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // serenity's spans record every request with its route, and a Discord
    // webhook's route holds its token: keep them out of the logs whatever
    // RUST_LOG says (platforms/discord/ logs what matters, redacted).
    let filter = match "serenity=off".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ])
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Fails only if another recorder is installed (tests embedding us);
            // the handle then renders what this recorder saw, which is nothing.
            let _ = metrics::set_global_recorder(recorder);
            // Histogram samples queue until drained; without a scrape they
            // would pile up for ever. Drain them every few seconds.
            let upkeep = handle.clone();
            let _ = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(std::time::Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                });
            describe();
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(
        "modbridge_webhooks_total",
        "Webhook deliveries received, by outcome"
    );
    metrics::describe_counter!(
        "modbridge_dedupe_errors_total",
        "Dedupe store operations that failed (the request was answered 503)"
    );
    metrics::describe_counter!(
        "modbridge_rule_matches_total",
        "Reasons produced by the rules, by rules file and match"
    );
    metrics::describe_counter!(
        "modbridge_rules_not_fully_checked_total",
        "Posts whose rules evaluation ran out of its time budget (rules.max_eval_ms)"
    );
    metrics::describe_counter!(
        "modbridge_rules_shadow_matches_total",
        "Shadow-mode matches that fired (counted, no card), by rules file and match"
    );
    metrics::describe_counter!(
        "modbridge_cards_total",
        "Cards handed to a platform, by destination and outcome"
    );
    metrics::describe_histogram!(
        "modbridge_webhook_duration_seconds",
        "Time from the request's body read to the answer, for accepted webhooks"
    );
}

/// Outcomes of a webhook delivery, as counted in `modbridge_webhooks_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Duplicate,
    InFlight,
    BadSignature,
    Stale,
    TooLarge,
    BadRequest,
    IgnoredEvent,
    Forbidden,
    Unavailable,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::InFlight => "in_flight",
            Outcome::BadSignature => "bad_signature",
            Outcome::Stale => "stale",
            Outcome::TooLarge => "too_large",
            Outcome::BadRequest => "bad_request",
            Outcome::IgnoredEvent => "ignored_event",
            Outcome::Forbidden => "forbidden",
            Outcome::Unavailable => "unavailable",
        }
    }

    pub fn count(self) {
        metrics::counter!("modbridge_webhooks_total", "outcome" => self.as_str()).increment(1);
    }
}
