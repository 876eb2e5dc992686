//! Feedback into rules (issue #13): what moderators decided about each
//! match's cards, counted per rules file and match, per day, in the store.
//!
//! One counter hash per day (`stats:YYYY-MM-DD`, the day the case's first
//! card was posted, UTC), kept [`KEEP`]: for each (rules file, match) the
//! cards, how many were resolved ("the rule was right") and marked false
//! positives ("it should not have fired"), and how long moderators took to
//! claim and to close them, as counts per time bucket (a median is read off
//! the buckets: no per-case list is kept). A post with several reasons
//! counts for each; the sensitive-group reason is left out (no rule
//! matched). Outcomes are counted on the day the case began, so that cards,
//! outcomes and times of one window describe the same cards; a reopened
//! case takes its outcome back.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::case::{Case, CaseState};
use crate::dedupe::{DedupeStore, StoreError};

/// How long a day's counters are kept: `stats --days` reaches this far.
pub const KEEP: Duration = Duration::from_secs(100 * 86_400);
/// The most days `stats --days` may ask for.
pub const MAX_DAYS: u32 = 90;

/// Time buckets (upper bounds, seconds) for time to claim and to close; a
/// time past the last is counted in an open-ended bucket.
const BUCKETS: [(u64, &str); 7] = [
    (60, "≤ 1 min"),
    (5 * 60, "≤ 5 min"),
    (15 * 60, "≤ 15 min"),
    (3_600, "≤ 1 h"),
    (4 * 3_600, "≤ 4 h"),
    (24 * 3_600, "≤ 24 h"),
    (7 * 24 * 3_600, "≤ 7 d"),
];
const PAST_LAST: &str = "> 7 d";
/// The field separator: cannot occur in a rules file's or match's name
/// as typed (a control character).
const SEP: char = '\u{1f}';

/// A rule that fired on a card: its rules file's name and the match's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Fired {
    pub rules: String,
    pub name: String,
}

/// The counter hash of the day `at_ms` (Unix ms) falls on.
pub fn day_key(at_ms: u64) -> String {
    let day = DateTime::<Utc>::from_timestamp_millis(i64::try_from(at_ms).unwrap_or(i64::MAX))
        .unwrap_or_default()
        .date_naive();
    day_name(day)
}

fn day_name(day: NaiveDate) -> String {
    format!("stats:{}", day.format("%Y-%m-%d"))
}

fn bucket(elapsed_ms: u64) -> usize {
    let secs = elapsed_ms / 1000;
    BUCKETS
        .iter()
        .position(|(bound, _)| secs <= *bound)
        .unwrap_or(BUCKETS.len())
}

fn field(f: &Fired, what: &str) -> String {
    format!("{}{SEP}{}{SEP}{what}", f.rules, f.name)
}

/// What a transition from `before` to `after` adds to each fired rule's
/// counters (negative when a reopen takes an outcome back).
fn changes(before: &Case, after: &Case) -> Vec<(String, i64)> {
    use CaseState::*;
    let since_posted = |at_ms: u64| at_ms.saturating_sub(after.posted_at_ms);
    let mut out = Vec::new();
    let closed = |state: CaseState, at_ms: u64, n: i64, out: &mut Vec<(String, i64)>| {
        let what = if state == Resolved {
            "resolved"
        } else {
            "false_positive"
        };
        out.push((what.to_owned(), n));
        out.push((format!("close{}", bucket(since_posted(at_ms))), n));
    };
    match (before.state, after.state) {
        (Open, Claimed) => out.push((format!("claim{}", bucket(since_posted(after.at_ms))), 1)),
        (Open | Claimed, Resolved | FalsePositive) => closed(after.state, after.at_ms, 1, &mut out),
        (Resolved | FalsePositive, Open) => closed(before.state, before.at_ms, -1, &mut out),
        _ => {}
    }
    out
}

/// The time histograms of a transition (`modbridge_case_time_to_*`; no
/// user ID in labels): claim from open, and closing, timed from the case's
/// first card.
pub fn observe(before: &Case, after: &Case) {
    use CaseState::*;
    let secs = after.at_ms.saturating_sub(after.posted_at_ms) as f64 / 1000.0;
    match (before.state, after.state) {
        (Open, Claimed) => metrics::histogram!("modbridge_case_time_to_claim_seconds").record(secs),
        (Open | Claimed, Resolved) => {
            metrics::histogram!("modbridge_case_time_to_resolve_seconds", "outcome" => "resolved")
                .record(secs)
        }
        (Open | Claimed, FalsePositive) => metrics::histogram!(
            "modbridge_case_time_to_resolve_seconds",
            "outcome" => "false_positive"
        )
        .record(secs),
        _ => {}
    }
}

/// Counts cards and outcomes in the store.
#[derive(Debug, Clone)]
pub struct Stats<S> {
    store: S,
}

impl<S: DedupeStore> Stats<S> {
    pub fn new(store: S) -> Self {
        Self { store }
    }

    /// A new case: one card for each rule that fired.
    pub async fn card(&self, fired: &[Fired], posted_at_ms: u64) -> Result<(), StoreError> {
        let counts: Vec<(String, i64)> = fired.iter().map(|f| (field(f, "cards"), 1)).collect();
        self.store
            .add_counts(&day_key(posted_at_ms), &counts, KEEP)
            .await
    }

    /// A case moved from `before` to `after`.
    pub async fn transition(
        &self,
        fired: &[Fired],
        before: &Case,
        after: &Case,
    ) -> Result<(), StoreError> {
        let counts: Vec<(String, i64)> = changes(before, after)
            .into_iter()
            .flat_map(|(what, n)| fired.iter().map(move |f| (field(f, &what), n)))
            .collect();
        self.store
            .add_counts(&day_key(after.posted_at_ms), &counts, KEEP)
            .await
    }

    /// Every fired rule's figures over the `days` days up to `today`
    /// (included), most cards first.
    pub async fn summary(&self, days: u32, today: NaiveDate) -> Result<Vec<Row>, StoreError> {
        let mut totals: BTreeMap<Fired, Totals> = BTreeMap::new();
        for back in 0..days.clamp(1, MAX_DAYS) {
            let Some(day) = today.checked_sub_days(chrono::Days::new(u64::from(back))) else {
                break;
            };
            for (key, n) in self.store.counts(&day_name(day)).await? {
                let mut parts = key.splitn(3, SEP);
                let (Some(rules), Some(name), Some(what)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                let fired = Fired {
                    rules: rules.to_owned(),
                    name: name.to_owned(),
                };
                totals.entry(fired).or_default().add(what, n.max(0) as u64);
            }
        }
        let mut rows: Vec<Row> = totals.into_iter().map(|(f, t)| t.row(f)).collect();
        rows.sort_by(|a, b| {
            b.cards
                .cmp(&a.cards)
                .then_with(|| a.rules.cmp(&b.rules))
                .then_with(|| a.name.cmp(&b.name))
        });
        Ok(rows)
    }
}

#[derive(Debug, Default)]
struct Totals {
    cards: u64,
    resolved: u64,
    false_positive: u64,
    claim: [u64; BUCKETS.len() + 1],
    close: [u64; BUCKETS.len() + 1],
}

impl Totals {
    fn add(&mut self, what: &str, n: u64) {
        let slot = |prefix: &str| {
            what.strip_prefix(prefix)
                .and_then(|i| i.parse::<usize>().ok())
                .filter(|i| *i <= BUCKETS.len())
        };
        match what {
            "cards" => self.cards += n,
            "resolved" => self.resolved += n,
            "false_positive" => self.false_positive += n,
            _ => {
                if let Some(i) = slot("claim") {
                    self.claim[i] += n;
                } else if let Some(i) = slot("close") {
                    self.close[i] += n;
                }
            }
        }
    }

    fn row(self, f: Fired) -> Row {
        let decided = self.resolved + self.false_positive;
        Row {
            rules: f.rules,
            name: f.name,
            cards: self.cards,
            resolved: self.resolved,
            false_positive: self.false_positive,
            precision: (decided > 0).then(|| self.resolved as f64 / decided as f64),
            median_time_to_claim: median(&self.claim),
            median_time_to_resolve: median(&self.close),
        }
    }
}

/// The bucket the middle count falls in, by its label ("≤ 15 min").
fn median(counts: &[u64]) -> Option<&'static str> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let middle = total.div_ceil(2);
    let mut seen = 0;
    for (i, n) in counts.iter().enumerate() {
        seen += n;
        if seen >= middle {
            return Some(BUCKETS.get(i).map_or(PAST_LAST, |(_, label)| label));
        }
    }
    None
}

/// One fired rule's figures (what `modbridge stats` prints).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub rules: String,
    #[serde(rename = "match")]
    pub name: String,
    pub cards: u64,
    pub resolved: u64,
    pub false_positive: u64,
    /// resolved / (resolved + false positive); none before any decision.
    pub precision: Option<f64>,
    /// The median's bucket ("≤ 15 min"); none before any claim.
    pub median_time_to_claim: Option<&'static str>,
    /// Time to resolved or false positive, from the first card.
    pub median_time_to_resolve: Option<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedupe::{MemoryStore, Ttl};
    use crate::platforms::ModeratorAction as A;
    use crate::triage::case::Actor;

    fn fired(rules: &str, name: &str) -> Fired {
        Fired {
            rules: rules.into(),
            name: name.into(),
        }
    }

    fn ana() -> Actor {
        Actor {
            platform: "slack".into(),
            id: "U1".into(),
            name: "ana".into(),
        }
    }

    /// 2026-11-30 12:00 UTC in ms.
    const NOON: u64 = 1_796_040_000_000;

    #[tokio::test]
    async fn outcomes_add_up_per_match_and_a_reopen_takes_one_back() {
        let ttl = Ttl {
            lease: Duration::from_secs(5),
            done: Duration::from_secs(60),
        };
        let stats = Stats::new(MemoryStore::new(ttl, 1000));
        let spam = [fired("Spam", "pills"), fired("Everywhere", "forbidden")];
        let only_pills = [fired("Spam", "pills")];
        // Case 1: both rules, claimed after 3 min, resolved after 20 min.
        let open = Case::open(NOON);
        stats.card(&spam, NOON).await.unwrap();
        let claimed = open.apply(A::Claim, &ana(), NOON + 180_000).unwrap();
        stats.transition(&spam, &open, &claimed).await.unwrap();
        let resolved = claimed.apply(A::Resolve, &ana(), NOON + 1_200_000).unwrap();
        stats.transition(&spam, &claimed, &resolved).await.unwrap();
        // Case 2: pills only, marked false positive at once, reopened, then
        // false positive again after 2 h.
        stats.card(&only_pills, NOON).await.unwrap();
        let open2 = Case::open(NOON);
        let fp = open2
            .apply(A::FalsePositive, &ana(), NOON + 30_000)
            .unwrap();
        stats.transition(&only_pills, &open2, &fp).await.unwrap();
        let reopened = fp.apply(A::Reopen, &ana(), NOON + 60_000).unwrap();
        stats.transition(&only_pills, &fp, &reopened).await.unwrap();
        let fp2 = reopened
            .apply(A::FalsePositive, &ana(), NOON + 7_200_000)
            .unwrap();
        stats
            .transition(&only_pills, &reopened, &fp2)
            .await
            .unwrap();

        let today = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let rows = stats.summary(30, today).await.unwrap();
        let pills = rows.iter().find(|r| r.name == "pills").unwrap();
        assert_eq!(
            (pills.cards, pills.resolved, pills.false_positive),
            (2, 1, 1)
        );
        assert_eq!(pills.precision, Some(0.5));
        assert_eq!(pills.median_time_to_claim, Some("≤ 5 min"));
        // Closes at 20 min and 2 h (the reopened 30 s one taken back).
        assert_eq!(pills.median_time_to_resolve, Some("≤ 1 h"));
        let forbidden = rows.iter().find(|r| r.name == "forbidden").unwrap();
        assert_eq!(
            (
                forbidden.cards,
                forbidden.resolved,
                forbidden.false_positive
            ),
            (1, 1, 0)
        );
        assert_eq!(forbidden.precision, Some(1.0));
        assert_eq!(rows[0].name, "pills", "most cards first");
        // A window that ends the day before sees nothing.
        let yesterday = today.pred_opt().unwrap();
        assert!(stats.summary(30, yesterday).await.unwrap().is_empty());
    }

    #[test]
    fn the_median_is_read_off_the_buckets() {
        assert_eq!(median(&[0; 8]), None);
        assert_eq!(median(&[1, 0, 0, 0, 0, 0, 0, 0]), Some("≤ 1 min"));
        assert_eq!(median(&[1, 0, 0, 3, 0, 0, 0, 0]), Some("≤ 1 h"));
        assert_eq!(median(&[0, 0, 0, 0, 0, 0, 0, 2]), Some("> 7 d"));
        assert_eq!(bucket(60_000), 0);
        assert_eq!(bucket(60_001 + 999), 1);
        assert_eq!(bucket(30 * 86_400_000), BUCKETS.len());
        assert_eq!(day_key(NOON), "stats:2026-11-30");
    }
}
