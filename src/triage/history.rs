//! Author history (issue #13): how many earlier cases an author had in the
//! last 30 days and how they ended, shown on every new card ("3 earlier
//! cards in 30 days: 2 resolved, 1 false positive"), as moderators asked of
//! every queue tool.
//!
//! One counter hash per (customer, author) in the store, its name a digest
//! (no raw IDs): one field per case, `<case ID>\x1f<posted ms>\x1f<state>`,
//! set to 1 while the case is in that state (a transition moves the 1 from
//! the old state's field to the new one's, in one atomic step). Only case
//! IDs, times and outcomes; the hash expires with the cases (the case TTL
//! from its last write), and fields older than the window are ignored.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::case::CaseState;
use crate::card::EarlierCards as AuthorHistory;
use crate::dedupe::{DedupeStore, StoreError};

/// How far back the history looks.
pub const WINDOW: Duration = Duration::from_secs(30 * 86_400);
const SEP: char = '\u{1f}';

/// The history's name for (customer, author): a digest, no raw ID.
pub fn author_key(customer_id: &str, author_id: &str) -> String {
    let digest = Sha256::digest(format!("author{SEP}{customer_id}{SEP}{author_id}"));
    format!("author:{}", hex::encode(&digest[..16]))
}

/// The field word of a state: claimed counts as open.
fn word(state: CaseState) -> &'static str {
    match state {
        CaseState::Open | CaseState::Claimed => "open",
        CaseState::Resolved => "resolved",
        CaseState::FalsePositive => "false_positive",
    }
}

fn field(case_id: &str, posted_at_ms: u64, state: CaseState) -> String {
    format!("{case_id}{SEP}{posted_at_ms}{SEP}{}", word(state))
}

/// Author histories in the store.
#[derive(Debug, Clone)]
pub struct Histories<S> {
    store: S,
    /// The cases' TTL: a history lives as long as its newest case.
    ttl: Duration,
}

impl<S: DedupeStore> Histories<S> {
    pub fn new(store: S, ttl: Duration) -> Self {
        Self { store, ttl }
    }

    /// A new case for the author `key`.
    pub async fn opened(
        &self,
        key: &str,
        case_id: &str,
        posted_at_ms: u64,
    ) -> Result<(), StoreError> {
        let counts = [(field(case_id, posted_at_ms, CaseState::Open), 1)];
        self.store.add_counts(key, &counts, self.ttl).await
    }

    /// A case of the author `key` moved from `from` to `to`.
    pub async fn moved(
        &self,
        key: &str,
        case_id: &str,
        posted_at_ms: u64,
        from: CaseState,
        to: CaseState,
    ) -> Result<(), StoreError> {
        if word(from) == word(to) {
            return Ok(());
        }
        let counts = [
            (field(case_id, posted_at_ms, from), -1),
            (field(case_id, posted_at_ms, to), 1),
        ];
        self.store.add_counts(key, &counts, self.ttl).await
    }

    /// The author's cases within [`WINDOW`] before `now_ms`, `this_case`
    /// (the card being made) left out.
    pub async fn of(
        &self,
        key: &str,
        this_case: &str,
        now_ms: u64,
    ) -> Result<AuthorHistory, StoreError> {
        let since = now_ms.saturating_sub(WINDOW.as_millis() as u64);
        let mut history = AuthorHistory::default();
        for (f, n) in self.store.counts(key).await? {
            if n <= 0 {
                continue;
            }
            let mut parts = f.splitn(3, SEP);
            let (Some(case), Some(posted), Some(state)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let posted: u64 = posted.parse().unwrap_or(0);
            if case == this_case || posted < since {
                continue;
            }
            history.earlier += 1;
            match state {
                "resolved" => history.resolved += 1,
                "false_positive" => history.false_positive += 1,
                _ => history.open += 1,
            }
        }
        Ok(history)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedupe::{MemoryStore, Ttl};

    #[tokio::test]
    async fn earlier_cases_are_counted_by_how_they_ended_within_the_window() {
        let ttl = Ttl {
            lease: Duration::from_secs(5),
            done: Duration::from_secs(60),
        };
        let histories = Histories::new(MemoryStore::new(ttl, 1000), Duration::from_secs(3600));
        let mary = author_key("cust", "U-mary");
        let other = author_key("cust", "U-bo");
        assert_ne!(mary, other);
        assert!(!mary.contains("U-mary") && !mary.contains("cust"));
        let day = 86_400_000u64;
        let now = 100 * day;
        // 40 days ago (outside), then three within the window.
        histories
            .opened(&mary, "c-old", now - 40 * day)
            .await
            .unwrap();
        for case in ["c1", "c2", "c3"] {
            histories.opened(&mary, case, now - day).await.unwrap();
        }
        use CaseState::*;
        histories
            .moved(&mary, "c1", now - day, Open, Claimed)
            .await
            .unwrap();
        histories
            .moved(&mary, "c1", now - day, Claimed, Resolved)
            .await
            .unwrap();
        histories
            .moved(&mary, "c2", now - day, Open, FalsePositive)
            .await
            .unwrap();
        histories
            .moved(&mary, "c2", now - day, FalsePositive, Open)
            .await
            .unwrap();
        histories
            .moved(&mary, "c2", now - day, Open, Resolved)
            .await
            .unwrap();
        histories.opened(&other, "c9", now - day).await.unwrap();
        // The card being made for c4 (its case already opened on a retry).
        histories.opened(&mary, "c4", now).await.unwrap();
        let h = histories.of(&mary, "c4", now).await.unwrap();
        assert_eq!(
            h,
            AuthorHistory {
                earlier: 3,
                resolved: 2,
                false_positive: 0,
                open: 1
            }
        );
        let none = histories
            .of(&author_key("cust", "U-new"), "c5", now)
            .await
            .unwrap();
        assert_eq!(none, AuthorHistory::default());
    }
}
