//! A case: one per (customer, post), shared by every copy of its card on
//! every platform. Its ID is a digest (no raw IDs ride on buttons); its state
//! moves only through [`Case::apply`] and is written by compare-and-swap on
//! the store's revision ([`Cases`]), so two moderators acting at once on two
//! replicas cannot both win.
//!
//! ```text
//! open ──Claim──▶ claimed ──Unclaim──▶ open
//! open | claimed ──Resolve | FalsePositive──▶ resolved | false_positive
//! resolved | false_positive ──Reopen──▶ open
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::card::{Card, CaseStatus, CaseView};

use crate::dedupe::{DedupeStore, StoreError, Swapped};
use crate::platforms::{MessageRef, ModeratorAction};

/// How long a case (and the copies it lists) is kept unless set.
pub const DEFAULT_CASE_TTL: Duration = Duration::from_secs(14 * 24 * 3600);
/// Compare-and-swap attempts before giving up on a busy case.
const SWAP_ATTEMPTS: usize = 8;

/// The opaque ID of the case for (customer, post): 32 hex digits.
pub fn case_id(customer_id: &str, post_id: &str) -> String {
    let digest = Sha256::digest(format!("case\u{1f}{customer_id}\u{1f}{post_id}"));
    hex::encode(&digest[..16])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseState {
    Open,
    Claimed,
    Resolved,
    FalsePositive,
}

/// Who did something: platform, user ID and handle (untrusted text).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub platform: String,
    pub id: String,
    pub name: String,
}

impl std::fmt::Debug for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Actor({}:{})", self.platform, self.id)
    }
}

/// One posted copy of the case's card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Copy {
    pub message: MessageRef,
    /// The target's text form (`slack:C…`, `discord:…`, `discord-webhook:$VAR`).
    pub target: String,
    /// Whether the copy can carry buttons (Discord incoming-webhook copies
    /// cannot: they only get status edits).
    pub buttons: bool,
    /// The destination's name (a reminder pings its configured mention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// The post's link (a reminder through a Discord webhook carries it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The platform-neutral card this copy shows (per copy: destinations
    /// differ in mention and contact details), without its view; absent in
    /// older records, whose copies then cannot be edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<Card>,
    /// The copy's `CardTag` (32 hex digits, no ID), kept on a Slack edit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// The record kept per case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    pub state: CaseState,
    /// Who moved it to `state` (none while open since creation).
    #[serde(default)]
    pub by: Option<Actor>,
    /// When (Unix ms).
    #[serde(default)]
    pub at_ms: u64,
    /// When its first card was confirmed (Unix ms): times to claim and to
    /// close, "N min after posting", escalation and stats count from here.
    pub posted_at_ms: u64,
    #[serde(default)]
    pub copies: Vec<Copy>,
    /// Whose post and which rules fired (for author history and stats);
    /// absent in cases of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// The action that moved it to `state` (absent in older records and
    /// while open since creation): tells "reopened" from "unclaimed".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<ModeratorAction>,
}

/// What the case's feedback needs of its card: the author's history key
/// (a digest, [`super::history::author_key`]) and the rules that fired (the
/// sensitive-group reason left out). No content, no raw IDs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub author: String,
    #[serde(default)]
    pub fired: Vec<super::stats::Fired>,
}

/// Why a click changed nothing; said to the clicking moderator only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Someone else holds it ("already claimed by @ana"), or a double click.
    AlreadyClaimed(Actor),
    /// Closed already (a double click on Resolved, or a late click).
    AlreadyClosed(CaseState, Option<Actor>),
    /// The action does not apply (Unclaim an open case, Reopen an open one).
    NotApplicable(CaseState),
}

impl Case {
    pub fn open(posted_at_ms: u64) -> Self {
        Self {
            state: CaseState::Open,
            by: None,
            at_ms: 0,
            posted_at_ms,
            copies: Vec::new(),
            origin: None,
            action: None,
        }
    }

    /// What a card shows of this case (`buttons`: whether the copy carries
    /// interactive buttons).
    pub fn view(&self, case_id: &str, buttons: bool) -> CaseView {
        let status = match (self.state, self.action) {
            (CaseState::Open, Some(ModeratorAction::Reopen)) => CaseStatus::Reopened,
            (CaseState::Open, Some(ModeratorAction::Unclaim)) => CaseStatus::Unclaimed,
            (CaseState::Open, _) => CaseStatus::Open,
            (CaseState::Claimed, _) => CaseStatus::Claimed,
            (CaseState::Resolved, _) => CaseStatus::Resolved,
            (CaseState::FalsePositive, _) => CaseStatus::FalsePositive,
        };
        let by = match status {
            CaseStatus::Open => None,
            _ => self
                .by
                .as_ref()
                .map(|a| (a.name.clone(), a.platform.clone())),
        };
        CaseView {
            case_id: case_id.to_owned(),
            status,
            minutes_after_posting: by
                .as_ref()
                .map(|_| self.at_ms.saturating_sub(self.posted_at_ms) / 60_000),
            by,
            buttons,
        }
    }

    /// The case after `action` by `actor` at `now_ms`, or why nothing changes.
    pub fn apply(
        &self,
        action: ModeratorAction,
        actor: &Actor,
        now_ms: u64,
    ) -> Result<Case, Refusal> {
        use CaseState::*;
        use ModeratorAction as A;
        let next = match (self.state, action) {
            (Open, A::Claim) => Claimed,
            (Claimed, A::Claim) => {
                return Err(Refusal::AlreadyClaimed(
                    self.by.clone().unwrap_or_else(|| actor.clone()),
                ));
            }
            (Claimed, A::Unclaim) => Open,
            (Open | Claimed, A::Resolve) => Resolved,
            (Open | Claimed, A::FalsePositive) => FalsePositive,
            (Resolved | FalsePositive, A::Reopen) => Open,
            (Resolved | FalsePositive, A::Claim | A::Resolve | A::FalsePositive | A::Unclaim) => {
                return Err(Refusal::AlreadyClosed(self.state, self.by.clone()));
            }
            (Open, A::Unclaim | A::Reopen) | (Claimed, A::Reopen) => {
                return Err(Refusal::NotApplicable(self.state));
            }
        };
        Ok(Case {
            state: next,
            by: Some(actor.clone()),
            at_ms: now_ms,
            posted_at_ms: self.posted_at_ms,
            copies: self.copies.clone(),
            origin: self.origin.clone(),
            action: Some(action),
        })
    }
}

/// What a click did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acted {
    /// The case moved from `before` to `case`, now at `revision` (edit
    /// every copy to it).
    Changed {
        revision: u64,
        before: Box<Case>,
        case: Case,
    },
    /// Nothing changed: tell the moderator why.
    Refused(Refusal),
    /// No such case (expired, or never made).
    Unknown,
}

/// Cases in the store (Redis, or memory for one process).
#[derive(Debug, Clone)]
pub struct Cases<S> {
    store: S,
    ttl: Duration,
    /// A new case is scheduled for a reminder this long after its first
    /// copy ([`super::escalate`]); `None`: never.
    escalate_after: Option<Duration>,
}

fn key(case_id: &str) -> String {
    format!("case:{case_id}")
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError(format!("a case record cannot be read: {e}"))
}

impl<S: DedupeStore> Cases<S> {
    pub fn new(store: S, ttl: Duration) -> Self {
        Self {
            store,
            ttl,
            escalate_after: None,
        }
    }

    /// Schedules each case its first copy creates for a reminder `after`
    /// ([`super::escalate::schedule`]).
    #[must_use]
    pub fn with_escalation(mut self, after: Option<Duration>) -> Self {
        self.escalate_after = after;
        self
    }

    /// The case and its revision.
    pub async fn get(&self, case_id: &str) -> Result<Option<(u64, Case)>, StoreError> {
        match self.store.versioned(&key(case_id)).await? {
            None => Ok(None),
            Some(v) => Ok(Some((
                v.revision,
                serde_json::from_str(&v.body).map_err(corrupt)?,
            ))),
        }
    }

    /// Adds a posted copy to its case (creating the case, open, with its
    /// `origin`): called by delivery after the platform confirmed the card.
    /// A copy already listed is not added twice. The copy keeps its card
    /// (without its view) so that a click can render it again. Returns the
    /// case's revision (1: this call created it) and record.
    pub async fn add_copy(
        &self,
        case_id: &str,
        posted_at_ms: u64,
        mut copy: Copy,
        origin: &Origin,
    ) -> Result<(u64, Case), StoreError> {
        if let Some(card) = &mut copy.card {
            card.case = None;
        }
        let mut current = self.get(case_id).await?;
        for _ in 0..SWAP_ATTEMPTS {
            let (revision, mut case) = current.clone().unwrap_or((0, Case::open(posted_at_ms)));
            if case.copies.iter().any(|c| c.message == copy.message) {
                return Ok((revision, case));
            }
            case.copies.push(copy.clone());
            if case.origin.is_none() {
                case.origin = Some(origin.clone());
            }
            let body = serde_json::to_string(&case).map_err(corrupt)?;
            match self
                .store
                .swap_versioned(&key(case_id), revision, &body, self.ttl)
                .await?
            {
                Swapped::Written(revision) => {
                    if revision == 1
                        && let Some(after) = self.escalate_after
                    {
                        super::escalate::schedule(&self.store, case_id, after, self.ttl).await;
                    }
                    return Ok((revision, case));
                }
                Swapped::Stale(now) => {
                    current = match now {
                        Some(v) => {
                            Some((v.revision, serde_json::from_str(&v.body).map_err(corrupt)?))
                        }
                        None => None,
                    }
                }
            }
        }
        Err(StoreError(format!(
            "case {case_id} is changing too fast to add a copy; try again"
        )))
    }

    /// Applies a moderator's action atomically: read, decide, swap on the
    /// revision read; a lost race decides again on the winner's state (so
    /// the second Claim hears "already claimed by" the winner).
    pub async fn act(
        &self,
        case_id: &str,
        action: ModeratorAction,
        actor: &Actor,
        now_ms: u64,
    ) -> Result<Acted, StoreError> {
        let mut current = self.get(case_id).await?;
        for _ in 0..SWAP_ATTEMPTS {
            let Some((revision, case)) = current else {
                return Ok(Acted::Unknown);
            };
            let next = match case.apply(action, actor, now_ms) {
                Ok(next) => next,
                Err(refusal) => return Ok(Acted::Refused(refusal)),
            };
            let body = serde_json::to_string(&next).map_err(corrupt)?;
            match self
                .store
                .swap_versioned(&key(case_id), revision, &body, self.ttl)
                .await?
            {
                Swapped::Written(revision) => {
                    return Ok(Acted::Changed {
                        revision,
                        before: Box::new(case),
                        case: next,
                    });
                }
                Swapped::Stale(now) => {
                    current = match now {
                        Some(v) => {
                            Some((v.revision, serde_json::from_str(&v.body).map_err(corrupt)?))
                        }
                        None => None,
                    }
                }
            }
        }
        Err(StoreError(format!(
            "case {case_id} is changing too fast; try again"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedupe::{MemoryStore, Ttl};
    use ModeratorAction as A;

    fn actor(name: &str) -> Actor {
        Actor {
            platform: "slack".into(),
            id: format!("U{name}"),
            name: name.into(),
        }
    }

    fn store() -> MemoryStore {
        MemoryStore::new(
            Ttl {
                lease: Duration::from_secs(30),
                done: Duration::from_secs(60),
            },
            1000,
        )
    }

    fn copy(ts: &str) -> Copy {
        Copy {
            message: MessageRef::Slack {
                channel: "C0123ABCD".into(),
                ts: ts.into(),
            },
            target: "slack:C0123ABCD".into(),
            buttons: true,
            destination: None,
            link: None,
            card: None,
            tag: None,
        }
    }

    #[test]
    fn case_ids_are_opaque_hex_and_differ_per_customer_and_post() {
        let a = case_id("acme", "p1");
        assert_eq!(a.len(), 32);
        assert!(crate::platforms::is_case_id(&a));
        assert!(!a.contains("acme") && !a.contains("p1"));
        assert_ne!(a, case_id("acme", "p2"));
        assert_ne!(a, case_id("acm", "ep1"));
        assert_eq!(a, case_id("acme", "p1"));
    }

    #[test]
    fn every_transition_of_the_state_machine() {
        use CaseState::*;
        let (ana, bo) = (actor("ana"), actor("bo"));
        let open = Case::open(1);
        let claimed = open.apply(A::Claim, &ana, 10).unwrap();
        assert_eq!(
            (claimed.state, claimed.by.as_ref(), claimed.at_ms),
            (Claimed, Some(&ana), 10)
        );
        assert_eq!(
            claimed.apply(A::Claim, &bo, 11),
            Err(Refusal::AlreadyClaimed(ana.clone()))
        );
        assert_eq!(
            claimed.apply(A::Claim, &ana, 11),
            Err(Refusal::AlreadyClaimed(ana.clone())),
            "double click"
        );
        assert_eq!(
            claimed.apply(A::Unclaim, &bo, 12).unwrap().state,
            Open,
            "anyone may unclaim"
        );
        for (from, to) in [(&open, Resolved), (&claimed, Resolved)] {
            assert_eq!(from.apply(A::Resolve, &bo, 13).unwrap().state, to);
        }
        let fp = claimed.apply(A::FalsePositive, &bo, 14).unwrap();
        assert_eq!(fp.state, FalsePositive);
        for a in [A::Claim, A::Resolve, A::FalsePositive, A::Unclaim] {
            assert_eq!(
                fp.apply(a, &ana, 15),
                Err(Refusal::AlreadyClosed(FalsePositive, Some(bo.clone())))
            );
        }
        assert_eq!(fp.apply(A::Reopen, &ana, 16).unwrap().state, Open);
        assert_eq!(
            open.apply(A::Unclaim, &ana, 1),
            Err(Refusal::NotApplicable(Open))
        );
        assert_eq!(
            open.apply(A::Reopen, &ana, 1),
            Err(Refusal::NotApplicable(Open))
        );
        assert_eq!(
            claimed.apply(A::Reopen, &ana, 1),
            Err(Refusal::NotApplicable(Claimed))
        );
    }

    #[test]
    fn a_case_shows_its_state_who_and_how_long_after_posting() {
        use crate::card::CaseStatus as S;
        let (ana, bo) = (actor("ana"), actor("bo"));
        let id = case_id("acme", "p1");
        let open = Case::open(60_000);
        let v = open.view(&id, true);
        assert_eq!(
            (v.status, v.by, v.minutes_after_posting),
            (S::Open, None, None)
        );
        assert!(v.buttons);
        let claimed = open
            .apply(A::Claim, &ana, 60_000 + 4 * 60_000 + 59_000)
            .unwrap();
        let v = claimed.view(&id, false);
        assert_eq!(v.status, S::Claimed);
        assert_eq!(v.by, Some(("ana".into(), "slack".into())));
        assert_eq!(v.minutes_after_posting, Some(4));
        assert!(!v.buttons);
        assert_eq!(v.case_id, id);
        let unclaimed = claimed.apply(A::Unclaim, &bo, 70_000_000).unwrap();
        assert_eq!(unclaimed.view(&id, true).status, S::Unclaimed);
        let resolved = unclaimed.apply(A::Resolve, &bo, 70_000_000).unwrap();
        assert_eq!(resolved.view(&id, true).status, S::Resolved);
        let reopened = resolved.apply(A::Reopen, &ana, 70_000_000).unwrap();
        assert_eq!(reopened.view(&id, true).status, S::Reopened);
        let fp = reopened.apply(A::FalsePositive, &ana, 70_000_000).unwrap();
        assert_eq!(fp.view(&id, true).status, S::FalsePositive);
        // A record written before `action` existed reads back (open).
        let old: Case =
            serde_json::from_str(r#"{"state":"open","posted_at_ms":1,"copies":[]}"#).unwrap();
        assert_eq!(old.view(&id, true).status, S::Open);
    }

    #[tokio::test]
    async fn copies_gather_in_one_case_and_one_of_two_simultaneous_claims_wins() {
        let cases = Cases::new(store(), DEFAULT_CASE_TTL);
        let id = case_id("acme", "p1");
        assert_eq!(
            cases.act(&id, A::Claim, &actor("ana"), 5).await.unwrap(),
            Acted::Unknown
        );
        let (r1, _) = cases
            .add_copy(&id, 1, copy("1.1"), &Origin::default())
            .await
            .unwrap();
        let (r2, case) = cases
            .add_copy(&id, 1, copy("1.2"), &Origin::default())
            .await
            .unwrap();
        assert_eq!((r1, r2, case.copies.len()), (1, 2, 2));
        let (r3, _) = cases
            .add_copy(&id, 1, copy("1.2"), &Origin::default())
            .await
            .unwrap();
        assert_eq!(r3, 2, "the same copy is listed once");
        let (ana, bo) = (actor("ana"), actor("bo"));
        let (a, b) = tokio::join!(
            cases.act(&id, A::Claim, &ana, 5),
            cases.act(&id, A::Claim, &bo, 5)
        );
        let outcomes = [a.unwrap(), b.unwrap()];
        let won: Vec<_> = outcomes
            .iter()
            .filter(|o| matches!(o, Acted::Changed { .. }))
            .collect();
        assert_eq!(won.len(), 1, "{outcomes:?}");
        assert!(
            outcomes
                .iter()
                .any(|o| matches!(o, Acted::Refused(Refusal::AlreadyClaimed(_))))
        );
        let Acted::Changed {
            revision,
            before,
            case,
        } = cases.act(&id, A::Resolve, &bo, 6).await.unwrap()
        else {
            panic!("resolve");
        };
        assert_eq!(
            (revision, case.state, case.copies.len()),
            (4, CaseState::Resolved, 2)
        );
        assert_eq!(before.state, CaseState::Claimed, "the state it left");
    }
}
