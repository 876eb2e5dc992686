//! Logs (tracing, to standard error) and metrics (the `metrics` crate with a
//! Prometheus recorder).
//!
//! Log lines about an event carry `execution_id`, `post_id` and `customer_id`
//! as fields. Secrets, tokens, emails, phone numbers and post content are
//! never logged: the types that hold them redact their `Debug` output.

use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Directive;

use crate::config::LogFormat;

/// The log filter when `RUST_LOG` is unset or empty.
pub const DEFAULT_LOG_FILTER: &str = "info";

/// `RUST_LOG` is set but is not a log filter: refused at start rather than
/// silently replaced by the default.
#[derive(Debug, thiserror::Error)]
#[error(
    "RUST_LOG={value:?} is not a valid log filter ({directive:?}: {reason}); \
     write directives such as `info` or `info,modbridge=debug`, or unset RUST_LOG for the default `info`"
)]
pub struct BadLogFilter {
    value: String,
    directive: String,
    reason: String,
}

/// The filter `RUST_LOG` asks for (`rust_log`, its value), or the default
/// when it is unset or blank.
pub fn log_filter(rust_log: Option<&str>) -> Result<EnvFilter, BadLogFilter> {
    let value = match rust_log.map(str::trim) {
        None | Some("") => DEFAULT_LOG_FILTER,
        Some(v) => v,
    };
    EnvFilter::builder().parse(value).map_err(|e| {
        // Name the directive at fault when one alone does not parse.
        let directive = value
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .find(|d| d.parse::<Directive>().is_err())
            .unwrap_or(value);
        BadLogFilter {
            value: value.to_owned(),
            directive: directive.to_owned(),
            reason: e.to_string(),
        }
    })
}

/// Starts logging to standard error, filtered by `rust_log` (the value of
/// `RUST_LOG`; see [`log_filter`]). Colours only when standard error is a
/// terminal: Docker, Kubernetes and files get plain text. Calling it twice is
/// harmless.
pub fn init_logs(format: LogFormat, rust_log: Option<&str>) -> Result<(), BadLogFilter> {
    let filter = log_filter(rust_log)?;
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
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    Ok(())
}

/// Buckets of `modbridge_webhook_duration_seconds`: an accepted webhook is
/// answered within `intake.deadline_secs` (5 s by default).
const WEBHOOK_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Buckets of `modbridge_delivery_duration_seconds`: one platform call, paced
/// and bounded by `delivery.timeout_secs` (10 s by default, may be raised).
const DELIVERY_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
];

/// Buckets of `modbridge_case_time_to_claim_seconds` and
/// `modbridge_case_time_to_resolve_seconds`: from a card to a moderator's
/// claim or decision, a minute to a day (and beyond: `+Inf`).
const CASE_BUCKETS: &[f64] = &[
    60.0, 300.0, 900.0, 1_800.0, 3_600.0, 7_200.0, 14_400.0, 28_800.0, 43_200.0, 86_400.0,
];

/// The process-wide Prometheus recorder, installed on first use. It also
/// sets `modbridge_build_info{version} 1`.
/// Set once the global recorder is (ours, or a host's that came first):
/// metric handles taken from then on stay valid for the process.
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

pub fn metrics() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("modbridge_webhook_duration_seconds".into()),
                    WEBHOOK_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("modbridge_delivery_duration_seconds".into()),
                        DELIVERY_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("modbridge_case_time_to_claim_seconds".into()),
                        CASE_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("modbridge_case_time_to_resolve_seconds".into()),
                        CASE_BUCKETS,
                    )
                })
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
            metrics::gauge!("modbridge_build_info", "version" => env!("CARGO_PKG_VERSION"))
                .set(1.0);
            handle
        })
        .clone()
}

/// HELP text of every family modbridge exports (`tests/metrics_docs.rs`
/// holds that each one is described here and listed in README.md).
/// Labels: `destination` is a destination's configured name (or the inline
/// `slack:…` / `discord:…` spec a rules file names); `target` is the channel
/// it resolves to (`slack:C…`, `discord:…`, `discord-webhook:ENV`).
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        "modbridge_build_info",
        "Always 1; the version label says which modbridge runs"
    );
    describe_counter!(
        "modbridge_webhooks_total",
        "Webhook deliveries received, by outcome"
    );
    describe_counter!(
        "modbridge_interactions_total",
        "Requests on the moderator-action endpoints (/slack/interactions, /discord/interactions), by platform and outcome"
    );
    describe_counter!(
        "modbridge_cases_total",
        "Moderator actions that changed a case, by the outcome they led to; outcome=\"escalated\": cases still open at their due time that got a reminder on their copies"
    );
    describe_histogram!(
        "modbridge_case_time_to_claim_seconds",
        "Time from a case's first card to its claim (each Claim of an open case)"
    );
    describe_histogram!(
        "modbridge_case_time_to_resolve_seconds",
        "Time from a case's first card to Resolved or False positive, by outcome"
    );
    describe_counter!(
        "modbridge_case_updates_total",
        "Edits of a case's copies after a change, by platform and outcome (updated, rate_limited: waited and tried again, failed, no_card: listed by an earlier version)"
    );
    describe_counter!(
        "modbridge_digest_entries_total",
        "Cards listed in a wave's digest instead of posted on their own, by destination"
    );
    describe_counter!(
        "modbridge_digests_total",
        "Digest messages posted (a wave's first, and each new one after max_entries or max_digest_secs), by destination"
    );
    describe_counter!(
        "modbridge_campaigns_total",
        "Campaign cards posted (near-identical posts from several authors shown as one card), by destination"
    );
    describe_gauge!(
        "modbridge_wave_active",
        "1 while this replica has seen the destination in a wave (cards join its digest), 0 after it ended"
    );
    describe_histogram!(
        "modbridge_webhook_duration_seconds",
        "Time from the request's body read to the answer, for accepted webhooks (outcome=\"accepted\"; no_card answers are not timed)"
    );
    describe_counter!(
        "modbridge_dedupe_errors_total",
        "Dedupe store (Redis) operations that failed, by operation (the request was answered 503)"
    );
    describe_counter!(
        "modbridge_rule_matches_total",
        "Reasons produced by the rules, by rules file and match"
    );
    describe_counter!(
        "modbridge_rules_not_fully_checked_total",
        "Posts whose rules evaluation ran out of its time budget (rules.max_eval_ms)"
    );
    describe_counter!(
        "modbridge_rules_shadow_matches_total",
        "Shadow-mode matches that fired (counted, no card), by rules file and match"
    );
    describe_counter!(
        "modbridge_rules_reloads_total",
        "Rules reloads, by outcome (success, failure)"
    );
    describe_gauge!(
        "modbridge_rules_last_reload_successful",
        "1 when the last rules load succeeded, 0 while the last reload failed (the previous rules keep running)"
    );
    describe_gauge!(
        "modbridge_rules_last_reload_success_timestamp_seconds",
        "Unix time of the last successful rules load"
    );
    describe_gauge!(
        "modbridge_rules_files",
        "Rules files in the running rule set"
    );
    describe_counter!(
        "modbridge_cards_total",
        "Cards handed to a platform, by destination and outcome"
    );
    describe_histogram!(
        "modbridge_delivery_duration_seconds",
        "Duration of one platform call, by platform"
    );
    describe_gauge!(
        "modbridge_circuit_open",
        "1 while a target is broken (configuration failure: no calls until a probe succeeds), else 0"
    );
    describe_counter!(
        "modbridge_parked_total",
        "Cards parked for a broken target, by destination"
    );
    describe_counter!(
        "modbridge_replayed_total",
        "Parked cards delivered later, by destination"
    );
    describe_counter!(
        "modbridge_dead_letters_total",
        "Cards a platform refused, kept as dead letters, by destination"
    );
    describe_gauge!(
        "modbridge_parked_entries",
        "Entries kept in Redis now, by parking list (its target) and kind (parked, dead_letter)"
    );
    describe_counter!(
        "modbridge_slack_errors_total",
        "Failed Slack API calls, by Slack error code (ratelimited, transient, or Slack's own code)"
    );
    describe_counter!(
        "modbridge_slack_lookups_total",
        "Slack conversations.history lookups after a lost answer, by result (found: recorded, not resent; absent: sent; unknown: not sent, 503; unavailable: no history scope or membership, sent again)"
    );
    describe_counter!(
        "modbridge_slack_image_fallbacks_total",
        "Slack cards resent with the image as a link after invalid_blocks"
    );
    describe_counter!(
        "modbridge_discord_errors_total",
        "Failed Discord API calls, by code (ratelimited, transient, or Discord's error code)"
    );
}

/// Outcomes of a webhook delivery, as counted in `modbridge_webhooks_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    /// The rules made no card: answered after one read, nothing written.
    NoCard,
    Duplicate,
    InFlight,
    BadSignature,
    Stale,
    TooLarge,
    BadRequest,
    IgnoredEvent,
    Forbidden,
    Unavailable,
    /// Over `intake.max_in_flight`: refused before anything was read.
    Overloaded,
    /// The body did not arrive within `intake.body_timeout_secs`.
    BodyTimeout,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::NoCard => "no_card",
            Outcome::Duplicate => "duplicate",
            Outcome::InFlight => "in_flight",
            Outcome::BadSignature => "bad_signature",
            Outcome::Stale => "stale",
            Outcome::TooLarge => "too_large",
            Outcome::BadRequest => "bad_request",
            Outcome::IgnoredEvent => "ignored_event",
            Outcome::Forbidden => "forbidden",
            Outcome::Unavailable => "unavailable",
            Outcome::Overloaded => "overloaded",
            Outcome::BodyTimeout => "body_timeout",
        }
    }

    /// One more `modbridge_webhooks_total{outcome}`. Once the recorder is
    /// installed, each outcome's counter is looked up once and kept (the
    /// registry lookup hashes the name and label on every call otherwise).
    pub fn count(self) {
        const N: usize = Outcome::BodyTimeout as usize + 1;
        static COUNTERS: [OnceLock<metrics::Counter>; N] = [const { OnceLock::new() }; N];
        let lookup = || metrics::counter!("modbridge_webhooks_total", "outcome" => self.as_str());
        match (HANDLE.get(), COUNTERS.get(self as usize)) {
            (Some(_), Some(cached)) => cached.get_or_init(lookup).increment(1),
            _ => lookup().increment(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unset_or_blank_rust_log_is_the_default_and_a_bad_one_an_error() {
        assert_eq!(log_filter(None).unwrap().to_string(), DEFAULT_LOG_FILTER);
        assert_eq!(
            log_filter(Some("  ")).unwrap().to_string(),
            DEFAULT_LOG_FILTER
        );
        assert!(log_filter(Some("warn,modbridge=debug")).is_ok());
        let err = log_filter(Some("info,modbridge=lots"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"modbridge=lots\""), "{err}");
        assert!(err.contains("unset RUST_LOG"), "{err}");
    }
}
