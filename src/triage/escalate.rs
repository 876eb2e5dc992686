//! Escalation (issue #13): a case still open `[triage]
//! escalate_after_minutes` after its first copy was posted gets one reminder
//! on every copy — a Slack thread reply, a Discord reply, a new message with
//! the post's link for a Discord incoming webhook — pinging the
//! destination's configured mention.
//!
//! Exactly one reminder across replicas and restarts:
//! - the case's due time is put in the store's schedule [`ESCALATIONS`]
//!   when its first copy creates it ([`schedule`], set-if-absent);
//! - every replica runs an [`Escalator`] that takes what is due
//!   ([`DedupeStore::take_due`]: one atomic step that also makes each taken
//!   case due again after [`LEASE`], so no two replicas take it at once and
//!   a replica that dies holding it does not lose it);
//! - the copies already reminded are recorded in the case's progress record
//!   (`escalation:<case ID>`, a versioned record) right after each reply, so
//!   a retry reminds only the copies still missing;
//! - the case leaves the schedule ([`DedupeStore::unschedule`]) once every
//!   copy was reminded, or at once when it was claimed or closed (no
//!   reminder), or expired; after [`MAX_TRIES`] failed attempts it is given
//!   up with a warning.
//!
//! The duplicate window: a replica that dies between a platform's answer and
//! the progress write (one store write), or an attempt that outlives the
//! lease. Discord bot replies carry a nonce, so those are not repeated there.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::case::{CaseState, Cases};
use crate::dedupe::{DedupeStore, Store, StoreError, Swapped};
use crate::platforms::{MessageRef, Reminder, Sinks};

/// The schedule of cases due a reminder (Redis: `<prefix>due:escalations`).
pub const ESCALATIONS: &str = "escalations";
/// How long a taken case is held by its taker before it comes due again.
/// Longer than an attempt: [`TAKE`] cases, each a few platform calls
/// bounded by `delivery.timeout_secs`.
pub const LEASE: Duration = Duration::from_secs(300);
/// Cases taken per poll.
pub const TAKE: usize = 8;
/// Attempts (each a lease apart) before a case's reminder is given up.
pub const MAX_TRIES: u32 = 3;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn progress_key(case_id: &str) -> String {
    format!("escalation:{case_id}")
}

/// Puts a new case in the schedule, due `after` from now; the schedule is
/// kept as long as the case. A failure costs only this case's reminder.
pub async fn schedule<S: DedupeStore>(store: &S, case_id: &str, after: Duration, ttl: Duration) {
    let due = now_ms().saturating_add(ms(after));
    if let Err(e) = store
        .schedule(ESCALATIONS, case_id, due, ttl.saturating_add(after))
        .await
    {
        warn!(case_id, error = %e, "cannot schedule a case's reminder: it will not be escalated");
    }
}

/// What was done for a case's reminder so far (`escalation:<case ID>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Copies reminded.
    #[serde(default)]
    pub sent: Vec<MessageRef>,
    /// Attempts that failed on some copy.
    #[serde(default)]
    pub tries: u32,
}

/// What happened to one case taken from the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escalated {
    /// Every copy was reminded now (`n` replies).
    Reminded(usize),
    /// Claimed, closed or expired before its time: no reminder.
    NotNeeded,
    /// A reply or the store failed: it comes due again after the lease.
    Later,
    /// Failed [`MAX_TRIES`] times: left.
    GivenUp,
}

/// Takes due cases and reminds their copies; one per replica.
#[derive(Clone)]
pub struct Escalator {
    store: Store,
    cases: Cases<Store>,
    sinks: Sinks,
    after: Duration,
    ttl: Duration,
    /// Destination name → its configured mention.
    mentions: Arc<BTreeMap<String, String>>,
}

impl Escalator {
    /// Reminds through `sinks` the cases open `after` (cases kept `ttl`),
    /// pinging each copy's destination's mention (`mentions`: name →
    /// mention, as configured; inline targets have none).
    pub fn new(
        store: Store,
        sinks: Sinks,
        after: Duration,
        ttl: Duration,
        mentions: BTreeMap<String, String>,
    ) -> Self {
        Self {
            cases: Cases::new(store.clone(), ttl),
            store,
            sinks,
            after,
            ttl,
            mentions: Arc::new(mentions),
        }
    }

    /// Polls every `poll` (at once again after a full batch) until the task
    /// is aborted (at shutdown: a case
    /// taken then comes due again after the lease, on any replica).
    pub fn spawn(self, poll: Duration) -> tokio::task::JoinHandle<()> {
        let poll = poll.max(Duration::from_millis(10));
        tokio::spawn(async move {
            loop {
                // A full batch: more may be due; look again at once.
                if self.tick().await.len() < TAKE {
                    tokio::time::sleep(poll).await;
                }
            }
        })
    }

    /// One poll: takes what is due and handles each case. Returns what
    /// happened to each.
    pub async fn tick(&self) -> Vec<Escalated> {
        self.tick_at(now_ms()).await
    }

    /// [`Escalator::tick`] as if it were `now_ms` (tests look past the lease).
    pub async fn tick_at(&self, now_ms: u64) -> Vec<Escalated> {
        let due = match self.store.take_due(ESCALATIONS, now_ms, LEASE, TAKE).await {
            Ok(due) => due,
            Err(e) => {
                warn!(error = %e, "cannot read the cases due a reminder; trying again at the next poll");
                return Vec::new();
            }
        };
        let mut outcomes = Vec::with_capacity(due.len());
        for case_id in due {
            outcomes.push(self.escalate(&case_id).await);
        }
        outcomes
    }

    async fn done(&self, case_id: &str) {
        if let Err(e) = self.store.unschedule(ESCALATIONS, case_id).await {
            warn!(case_id, error = %e, "cannot take a case off the reminder schedule: it comes due again after the lease");
        }
    }

    async fn progress(&self, case_id: &str) -> Result<(u64, Progress), StoreError> {
        match self.store.versioned(&progress_key(case_id)).await? {
            None => Ok((0, Progress::default())),
            Some(v) => Ok((
                v.revision,
                serde_json::from_str(&v.body).map_err(|e| {
                    StoreError(format!("a reminder's progress record cannot be read: {e}"))
                })?,
            )),
        }
    }

    /// Writes the progress; only this taker holds the case, so a lost swap
    /// means its lease ran out: the write is given up (the other taker
    /// keeps its own).
    async fn save(&self, case_id: &str, revision: u64, progress: &Progress) -> bool {
        let Ok(body) = serde_json::to_string(progress) else {
            return false;
        };
        match self
            .store
            .swap_versioned(&progress_key(case_id), revision, &body, self.ttl)
            .await
        {
            Ok(Swapped::Written(_)) => true,
            Ok(Swapped::Stale(_)) => {
                warn!(
                    case_id,
                    "a reminder's progress changed under this replica (its lease ran out): another replica may remind the same copies"
                );
                false
            }
            Err(e) => {
                warn!(case_id, error = %e, "cannot record which copies were reminded: a retry may remind them again");
                false
            }
        }
    }

    async fn escalate(&self, case_id: &str) -> Escalated {
        let case = match self.cases.get(case_id).await {
            Ok(Some((_, case))) => case,
            Ok(None) => {
                self.done(case_id).await;
                return Escalated::NotNeeded;
            }
            Err(e) => {
                warn!(case_id, error = %e, "cannot read a case due a reminder; it comes due again after the lease");
                return Escalated::Later;
            }
        };
        if case.state != CaseState::Open {
            self.done(case_id).await;
            return Escalated::NotNeeded;
        }
        let (revision, mut progress) = match self.progress(case_id).await {
            Ok(p) => p,
            Err(e) => {
                warn!(case_id, error = %e, "cannot read a reminder's progress; it comes due again after the lease");
                return Escalated::Later;
            }
        };
        let mut replies = 0;
        let mut failed = false;
        for copy in &case.copies {
            if progress.sent.contains(&copy.message) {
                continue;
            }
            let reminder = Reminder {
                after: self.after,
                mention: copy
                    .destination
                    .as_ref()
                    .and_then(|d| self.mentions.get(d))
                    .cloned(),
                link: copy.link.clone(),
            };
            match self.sinks.reply(&copy.message, &reminder).await {
                Ok(_) => {
                    replies += 1;
                    progress.sent.push(copy.message.clone());
                }
                Err(e) => {
                    failed = true;
                    warn!(case_id, target = %copy.target, error = %e, "cannot post a reminder on a copy; trying again after the lease");
                }
            }
        }
        if failed {
            progress.tries += 1;
        }
        let saved = self.save(case_id, revision, &progress).await;
        if !failed {
            self.done(case_id).await;
            metrics::counter!("modbridge_cases_total", "outcome" => "escalated").increment(1);
            // The audit line: IDs only.
            info!(
                case_id,
                copies = case.copies.len(),
                replies,
                "case escalated: still open, a reminder is on every copy"
            );
            return Escalated::Reminded(replies);
        }
        if saved && progress.tries >= MAX_TRIES {
            warn!(
                case_id,
                tries = progress.tries,
                reminded = progress.sent.len(),
                copies = case.copies.len(),
                "giving up a case's reminder: some copies could not be reminded"
            );
            self.done(case_id).await;
            if !progress.sent.is_empty() {
                metrics::counter!("modbridge_cases_total", "outcome" => "escalated").increment(1);
            }
            return Escalated::GivenUp;
        }
        Escalated::Later
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedupe::{MemoryStore, Ttl};
    use crate::platforms::{ModeratorAction, Recorder};
    use crate::triage::case::{Actor, Copy, case_id};

    fn copy(ts: &str, destination: &str) -> Copy {
        Copy {
            message: MessageRef::Slack {
                channel: "C0123ABCD".into(),
                ts: ts.into(),
            },
            target: "slack:C0123ABCD".into(),
            buttons: true,
            destination: Some(destination.into()),
            link: None,
            card: None,
            tag: None,
        }
    }

    #[tokio::test]
    async fn open_cases_are_reminded_once_on_every_copy_and_claimed_ones_never() {
        let store = Store::Memory(MemoryStore::new(
            Ttl {
                lease: Duration::from_secs(30),
                done: Duration::from_secs(60),
            },
            1000,
        ));
        let after = Duration::from_millis(200);
        let ttl = Duration::from_secs(3600);
        let cases = Cases::new(store.clone(), ttl).with_escalation(Some(after));
        let recorder = Recorder::default();
        let mentions = BTreeMap::from([("mods".to_owned(), "here".to_owned())]);
        let escalator = Escalator::new(
            store.clone(),
            Sinks::Recorder(recorder.clone()),
            after,
            ttl,
            mentions,
        );
        let (open, claimed) = (case_id("acme", "p1"), case_id("acme", "p2"));
        cases
            .add_copy(&open, 1, copy("1.1", "mods"), &Default::default())
            .await
            .unwrap();
        cases
            .add_copy(&open, 1, copy("1.2", "inline"), &Default::default())
            .await
            .unwrap();
        cases
            .add_copy(&claimed, 1, copy("2.1", "mods"), &Default::default())
            .await
            .unwrap();
        let ana = Actor {
            platform: "slack".into(),
            id: "U0ANA".into(),
            name: "ana".into(),
        };
        cases
            .act(&claimed, ModeratorAction::Claim, &ana, 5)
            .await
            .unwrap();
        assert!(escalator.tick().await.is_empty(), "not due yet");
        tokio::time::sleep(after + Duration::from_millis(50)).await;
        let mut outcomes = escalator.tick().await;
        outcomes.sort_by_key(|o| format!("{o:?}"));
        assert_eq!(
            outcomes,
            [Escalated::NotNeeded, Escalated::Reminded(2)],
            "claimed: none; open: both copies"
        );
        let replies = recorder.replies();
        assert_eq!(replies.len(), 2);
        assert_eq!(replies[0].1.mention.as_deref(), Some("here"));
        assert_eq!(
            replies[1].1.mention, None,
            "a destination without a mention"
        );
        tokio::time::sleep(after).await;
        assert!(escalator.tick().await.is_empty(), "off the schedule");
        assert_eq!(recorder.replies().len(), 2);
        // A copy added later does not schedule the case again.
        cases
            .add_copy(&open, 1, copy("1.3", "mods"), &Default::default())
            .await
            .unwrap();
        tokio::time::sleep(after + Duration::from_millis(50)).await;
        assert!(escalator.tick().await.is_empty());
    }

    #[tokio::test]
    async fn a_failed_reply_is_retried_after_the_lease_for_the_missing_copies_only_then_given_up() {
        let store = Store::Memory(MemoryStore::new(
            Ttl {
                lease: Duration::from_secs(30),
                done: Duration::from_secs(60),
            },
            1000,
        ));
        let (after, ttl) = (Duration::from_millis(1), Duration::from_secs(3600));
        let cases = Cases::new(store.clone(), ttl).with_escalation(Some(after));
        let recorder = Recorder::default();
        let escalator = Escalator::new(
            store.clone(),
            Sinks::Recorder(recorder.clone()),
            after,
            ttl,
            BTreeMap::new(),
        );
        let lease = ms(LEASE);
        let (id, doomed) = (case_id("acme", "p1"), case_id("acme", "p2"));
        cases
            .add_copy(&id, 1, copy("1.1", "mods"), &Default::default())
            .await
            .unwrap();
        cases
            .add_copy(&id, 1, copy("1.2", "mods"), &Default::default())
            .await
            .unwrap();
        let t = now_ms() + 10;
        // The first copy's reminder fails, the second's goes out.
        recorder.fail_next_replies(1);
        assert_eq!(escalator.tick_at(t).await, [Escalated::Later]);
        assert_eq!(recorder.replies().len(), 1);
        assert!(escalator.tick_at(t + lease - 1).await.is_empty(), "leased");
        // After the lease: only the copy still missing.
        assert_eq!(escalator.tick_at(t + lease).await, [Escalated::Reminded(1)]);
        let sent: Vec<MessageRef> = recorder.replies().into_iter().map(|(m, _)| m).collect();
        assert_eq!(sent, [copy("1.2", "").message, copy("1.1", "").message]);
        assert!(escalator.tick_at(t + 10 * lease).await.is_empty(), "done");

        // A copy that always fails: given up after MAX_TRIES attempts.
        cases
            .add_copy(&doomed, 1, copy("2.1", "mods"), &Default::default())
            .await
            .unwrap();
        recorder.fail_next_replies(usize::MAX);
        let t = now_ms() + 10;
        let mut outcomes = Vec::new();
        for attempt in 0..=MAX_TRIES {
            outcomes.extend(escalator.tick_at(t + u64::from(attempt) * lease).await);
        }
        assert_eq!(
            outcomes,
            [Escalated::Later, Escalated::Later, Escalated::GivenUp]
        );
        recorder.fail_next_replies(0);
        assert!(escalator.tick_at(t + 10 * lease).await.is_empty(), "left");
        assert_eq!(recorder.replies().len(), 2);
    }
}
