//! What happens to a genuine post: rules (before any claim) → cards → sinks.
//!
//! Knows nothing of HTTP or leases; the ingest service calls
//! [`Pipeline::process`] while it holds the execution's lease, and intake
//! answers Cativa from the result. Each card goes
//! through [`Deliverer`] (sent records, backlog, circuits, parking).

use std::collections::BTreeMap;
use std::sync::Arc;

use tracing::{info, warn};

use crate::card::{Card, CardContext};
use crate::dedupe::SentKey;
use crate::delivery::{Delivered, Deliverer, Fence, RetryLater, sent_key};
use crate::destination::Target;
use crate::platforms::Sinks;
use crate::post::Post;
use crate::rules::{LiveRules, RuleSet, Verdict};

/// Posts longer than this (bytes of content) are evaluated on a blocking
/// thread so that a huge post cannot stall the async workers.
const INLINE_EVAL_LIMIT: usize = 16 * 1024;

#[derive(Clone)]
pub struct Pipeline {
    rules: Arc<LiveRules>,
    deliverer: Deliverer,
    post_url: Option<Arc<str>>,
    groups: Arc<BTreeMap<String, String>>,
}

/// What processing produced.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Processed {
    /// Cards the platforms confirmed now (one per channel at most).
    pub cards: usize,
    /// Cards confirmed by an earlier attempt.
    pub already_sent: usize,
    /// Cards kept for a broken destination.
    pub parked: usize,
    /// Cards the platform refused as malformed (now or before): dead letters.
    pub dead_letters: usize,
    /// Cards listed in a wave's digest instead (now or before).
    pub in_digest: usize,
}

/// The rules' verdict on one post, evaluated before the execution is
/// claimed.
#[derive(Debug)]
pub struct Assessment(Verdict);

impl Assessment {
    /// No card to make, and the rules checked the whole post: nothing to do.
    /// A verdict cut by the time budget (`not_fully_checked`) is not a
    /// settled "nothing here" and keeps the recorded path (claim, done).
    pub fn settled_without_cards(&self) -> bool {
        self.0.routings.is_empty() && !self.0.not_fully_checked
    }
}

impl Pipeline {
    pub fn new(
        rules: Arc<LiveRules>,
        deliverer: Deliverer,
        post_url: Option<String>,
        groups: BTreeMap<String, String>,
    ) -> Self {
        Self {
            rules,
            deliverer,
            post_url: post_url.map(Into::into),
            groups: Arc::new(groups),
        }
    }

    pub fn rules(&self) -> &Arc<LiveRules> {
        &self.rules
    }

    pub fn sinks(&self) -> &Sinks {
        self.deliverer.sinks()
    }

    pub fn deliverer(&self) -> &Deliverer {
        &self.deliverer
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

    /// The rules' answer for `post`, taken once before anything is claimed
    /// (the no-card path needs it first) and then handed to
    /// [`Pipeline::process`].
    pub async fn assess(&self, post: &Arc<Post>) -> Assessment {
        Assessment(self.evaluate(post).await)
    }

    pub fn cards(&self, post: &Post, verdict: &Verdict) -> Vec<Card> {
        let ctx = CardContext {
            post_url_template: self.post_url.as_deref(),
            group_names: Some(&self.groups),
            not_fully_checked: verdict.not_fully_checked,
        };
        verdict
            .routings
            .iter()
            .map(|d| Card::build(post, d, &ctx))
            .collect()
    }

    /// Cards and delivery for `assessment` (the rules' answer for `post`), once
    /// per channel. Every card is attempted even when one fails, so that a
    /// retry only sends what is missing (sent records skip the rest). Fails
    /// if any card must be retried. No platform call starts once `fence` is
    /// tripped (the lease was lost).
    pub async fn process(
        &self,
        post: Arc<Post>,
        Assessment(verdict): Assessment,
        fence: &Fence,
    ) -> Result<Processed, RetryLater> {
        for delivery in &verdict.routings {
            for reason in &delivery.reasons {
                metrics::counter!(
                    "modbridge_rule_matches_total",
                    "rules" => reason.rules_file.clone(),
                    "match" => reason.name().to_owned()
                )
                .increment(1);
            }
        }
        if verdict.routings.is_empty() {
            info!("no rule matched");
            return Ok(Processed::default());
        }
        // With moderator actions on, every card says what became of the
        // author's earlier cards (one read for all of them).
        let earlier = self
            .deliverer
            .earlier_cards(
                post.customer_id.as_str(),
                post.author.id.as_str(),
                post.post_id.as_str(),
            )
            .await;
        // Two destination names for one channel still make one card.
        let mut seen = std::collections::HashSet::new();
        let cards: Vec<(Card, SentKey, Target)> = self
            .cards(&post, &verdict)
            .into_iter()
            .map(|mut card| {
                card.earlier = earlier;
                card
            })
            .zip(&verdict.routings)
            .filter(|(_, d)| seen.insert(d.destination.target().clone()))
            .map(|(card, d)| {
                let target = d.destination.target().clone();
                let key = sent_key(&post.customer_id, &post.post_id, &target);
                (card, key, target)
            })
            .collect();
        let results = futures_util::future::join_all(
            cards
                .iter()
                .map(|(card, key, target)| self.deliverer.deliver(key, card, target, fence)),
        )
        .await;
        let mut processed = Processed::default();
        let mut retry: Option<RetryLater> = None;
        for ((card, _, target), result) in cards.iter().zip(results) {
            match result {
                Ok(Delivered::Sent) => {
                    processed.cards += 1;
                    info!(destination = %card.destination, target = %target, "card delivered");
                }
                Ok(Delivered::AlreadySent) => {
                    processed.already_sent += 1;
                    info!(destination = %card.destination, "card was already delivered");
                }
                Ok(Delivered::Parked) => processed.parked += 1,
                Ok(Delivered::DeadLetter) => processed.dead_letters += 1,
                Ok(Delivered::Grouped) => {
                    processed.in_digest += 1;
                    info!(destination = %card.destination, "card listed in the wave's digest");
                }
                Err(e) => {
                    warn!(destination = %card.destination, error = %e, "card not delivered; Cativa will retry");
                    retry = Some(match retry {
                        Some(r) if r.retry_after >= e.retry_after => r,
                        _ => e,
                    });
                }
            }
        }
        match retry {
            Some(r) => Err(r),
            None => Ok(processed),
        }
    }
}
