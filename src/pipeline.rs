//! What happens to a genuine, first-seen post: rules → cards → sinks.
//!
//! Knows nothing of HTTP or dedupe; intake calls [`Pipeline::process`] while it
//! holds the execution's lease and answers Cativa from the result.

use std::collections::BTreeMap;
use std::sync::Arc;

use tracing::{info, warn};

use crate::card::{Card, CardContext};
use crate::post::Post;
use crate::rules::{LiveRules, RuleSet, Verdict};
use crate::sinks::{SinkError, Sinks};

/// Posts longer than this (bytes of content) are evaluated on a blocking
/// thread so that a huge post cannot stall the async workers.
const INLINE_EVAL_LIMIT: usize = 16 * 1024;

#[derive(Clone)]
pub struct Pipeline {
    rules: Arc<LiveRules>,
    sinks: Sinks,
    post_url: Option<Arc<str>>,
    groups: Arc<BTreeMap<String, String>>,
}

/// What processing produced.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Processed {
    /// Cards delivered (one per destination at most).
    pub cards: usize,
}

impl Pipeline {
    pub fn new(
        rules: Arc<LiveRules>,
        sinks: Sinks,
        post_url: Option<String>,
        groups: BTreeMap<String, String>,
    ) -> Self {
        Self {
            rules,
            sinks,
            post_url: post_url.map(Into::into),
            groups: Arc::new(groups),
        }
    }

    pub fn rules(&self) -> &Arc<LiveRules> {
        &self.rules
    }

    pub fn sinks(&self) -> &Sinks {
        &self.sinks
    }

    /// Evaluates the post against the current rules, off the async threads when
    /// it is long.
    pub async fn evaluate(&self, post: &Arc<Post>) -> Verdict {
        let rules: Arc<RuleSet> = self.rules.current();
        if post
            .content
            .as_ref()
            .is_some_and(|c| c.len() > INLINE_EVAL_LIMIT)
        {
            let post = post.clone();
            let eval_rules = rules.clone();
            match tokio::task::spawn_blocking(move || eval_rules.evaluate(&post)).await {
                Ok(v) => return v,
                Err(e) => warn!(error = %e, "rules evaluation thread failed; evaluating inline"),
            }
        }
        rules.evaluate(post)
    }

    pub fn cards(&self, post: &Post, verdict: &Verdict) -> Vec<Card> {
        let ctx = CardContext {
            post_url_template: self.post_url.as_deref(),
            group_names: Some(&self.groups),
        };
        verdict
            .deliveries
            .iter()
            .map(|d| Card::build(post, d, &ctx))
            .collect()
    }

    /// Rules, cards, delivery. Fails if any card could not be delivered: the
    /// caller then lets Cativa retry the whole event.
    pub async fn process(&self, post: Arc<Post>) -> Result<Processed, SinkError> {
        let verdict = self.evaluate(&post).await;
        for delivery in &verdict.deliveries {
            for reason in &delivery.reasons {
                metrics::counter!(
                    "modbridge_rule_matches_total",
                    "rules" => reason.rules_file.clone(),
                    "match" => reason.name().to_owned()
                )
                .increment(1);
            }
        }
        if verdict.deliveries.is_empty() {
            info!("no rule matched");
            return Ok(Processed::default());
        }
        let mut cards = 0;
        for (card, delivery) in self.cards(&post, &verdict).iter().zip(&verdict.deliveries) {
            let result = self.sinks.deliver(card, &delivery.destination.target).await;
            let outcome = if result.is_ok() { "sent" } else { "failed" };
            metrics::counter!("modbridge_cards_total", "destination" => card.destination.clone(), "outcome" => outcome)
                .increment(1);
            result?;
            cards += 1;
            info!(destination = %card.destination, reasons = card.reasons.len(), "card delivered");
        }
        Ok(Processed { cards })
    }
}
