//! A click updates every copy of its case: the clicked one, the other
//! channels, the other platform.
//!
//! Order across replicas: an edit for an older revision must never be the
//! last one a copy gets. One worker of all replicas edits a case at a time,
//! under a per-case lock in the store (`case-edit:<id>`, a lease renewed
//! between copies). A worker whose swap succeeded takes the lock; if another
//! holds it, it does nothing: the holder reads the case again before it lets
//! go. The holder loops: read the case (revision r); r is the revision it
//! last rendered → stop; else render r on every copy. After unlocking it
//! reads once more: a revision that moved while it was letting go is taken
//! up again (by whoever gets the lock).

use std::time::Duration;

use tracing::{info, warn};

use super::case::{Case, Cases};
use crate::dedupe::{DedupeStore, Store};
use crate::platforms::{CardTag, Interactions, MessageRef, PlatformError, Sinks, Target};

/// How long the edit lock is held without a renewal.
const LOCK_LEASE: Duration = Duration::from_secs(30);
/// Edits per copy and revision (a 429 waits and tries again).
const EDIT_ATTEMPTS: usize = 3;
/// The longest wait a 429's `Retry-After` may ask for here.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// Rounds of "the revision moved after unlocking" before giving up (a
/// case clicked this often is edited by the next click).
const MAX_ROUNDS: usize = 20;

/// Edits every copy of a case to its current state.
#[derive(Clone)]
pub struct Updater {
    pub store: Store,
    pub cases: Cases<Store>,
    pub sinks: Sinks,
    pub interactions: Interactions,
}

fn lock_name(case_id: &str) -> String {
    format!("case-edit:{case_id}")
}

impl Updater {
    /// Brings every copy of `case_id` up to date, on a task of its own.
    pub fn spawn(&self, case_id: String) {
        let this = self.clone();
        tokio::spawn(async move { this.run(&case_id).await });
    }

    /// Brings every copy of `case_id` up to date (see the module's doc).
    pub async fn run(&self, case_id: &str) {
        let name = lock_name(case_id);
        let mut last: Option<u64> = None;
        for _ in 0..MAX_ROUNDS {
            let lease = match self.store.lock(&name, LOCK_LEASE).await {
                Ok(Some(lease)) => lease,
                // Another worker edits this case: it reads it again before
                // it lets go, so it will render this revision.
                Ok(None) => return,
                Err(e) => {
                    warn!(case_id, error = %e, "cannot take a case's edit lock: its copies are not updated");
                    return;
                }
            };
            loop {
                let (revision, case) = match self.cases.get(case_id).await {
                    Ok(Some(found)) => found,
                    Ok(None) => break,
                    Err(e) => {
                        warn!(case_id, error = %e, "cannot read a case to update its copies");
                        break;
                    }
                };
                if last == Some(revision) {
                    break;
                }
                let mut held = true;
                for copy in &case.copies {
                    self.edit(case_id, &case, copy).await;
                    held = matches!(self.store.renew_lock(&lease, LOCK_LEASE).await, Ok(true));
                    if !held {
                        break;
                    }
                }
                if !held {
                    // The lease ran out: whoever holds it now edits.
                    warn!(case_id, "lost a case's edit lock while editing its copies");
                    return;
                }
                last = Some(revision);
            }
            if let Err(e) = self.store.unlock(&lease).await {
                warn!(case_id, error = %e, "cannot give a case's edit lock back: it expires");
            }
            match self.cases.get(case_id).await {
                Ok(Some((revision, _))) if last != Some(revision) => continue,
                _ => return,
            }
        }
    }

    /// Renders `copy` for the case as it stands and edits it; a 429 waits
    /// its `Retry-After` (bounded); a failure is logged (IDs only) and
    /// counted.
    async fn edit(&self, case_id: &str, case: &Case, copy: &super::case::Copy) {
        let platform = match copy.message {
            MessageRef::Slack { .. } => crate::platforms::slack::PLATFORM,
            MessageRef::Discord { .. } | MessageRef::DiscordWebhook { .. } => {
                crate::platforms::discord::PLATFORM
            }
        };
        let count = |outcome: &'static str| {
            metrics::counter!("modbridge_case_updates_total", "platform" => platform, "outcome" => outcome).increment(1);
        };
        let Some(card) = &copy.card else {
            // Listed by an earlier version, without its card.
            count("no_card");
            return;
        };
        let webhook = matches!(
            Target::parse(&copy.target),
            Ok(Target::DiscordWebhook { .. })
        );
        let buttons = copy.buttons && !webhook && self.interactions.enabled(platform);
        let mut shown = card.clone();
        shown.case = Some(case.view(case_id, buttons));
        let tag = copy.tag.as_deref().and_then(CardTag::from_stored);
        for attempt in 1..=EDIT_ATTEMPTS {
            match self.sinks.update(&copy.message, &shown, tag.as_ref()).await {
                Ok(()) => {
                    count("updated");
                    return;
                }
                Err(PlatformError::Transient {
                    retry_after: Some(after),
                    ..
                }) if attempt < EDIT_ATTEMPTS => {
                    info!(case_id, platform, "rate limited editing a copy: waiting");
                    count("rate_limited");
                    tokio::time::sleep(after.min(MAX_RETRY_AFTER)).await;
                }
                Err(e) => {
                    warn!(case_id, target = %copy.target, error = %e, "cannot update a copy of a case");
                    count("failed");
                    return;
                }
            }
        }
    }
}
