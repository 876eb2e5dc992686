//! The group writer: posts and edits the messages of groups with entries
//! to show. Every replica runs one; the store's schedule (`due:groups`,
//! taken under a lease) gives each due group to one of them at a time.
//!
//! A group's state (`versioned:group:<id>`) lists its messages ("parts"):
//! the index of the first entry each shows, how many it shows, and where
//! it is. Entries recorded but not shown yet (after a restart, a kill, a
//! failed edit) are shown by the next edit: the state says where showing
//! stopped, and the group stays scheduled until it is all shown.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{GROUPS_SET, GroupId, StoredEntry, Waves, millis, now_ms};
use crate::dedupe::{CardRecord, DedupeStore, Reservation, SentKey, StoreError, Swapped};
use crate::digest::{Campaign, Digest, Entry, Grouped};
use crate::platforms::{CardTag, Lookup, MessageRef, PlatformError, Window};

/// How long a taken group is this replica's before another may take it:
/// longer than a write (a post and an edit, each within the delivery
/// timeout), short enough that a killed replica's group is shown again
/// soon.
const TAKE_LEASE: Duration = Duration::from_secs(25);
/// How often each replica looks for due groups.
const POLL: Duration = Duration::from_millis(500);
/// How long a new message's reservation lasts (longer than a platform
/// call's deadline).
const POST_LEASE: Duration = Duration::from_secs(30);
/// After a failure, the group is tried again this much later.
const RETRY: Duration = Duration::from_secs(5);
/// After the destination refused (configuration, a malformed body).
const BROKEN_RETRY: Duration = Duration::from_secs(60);

/// One message of a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// Index of its first entry.
    pub first: u64,
    /// Entries it shows (from `first`).
    pub shown: u64,
    /// Where it is; `None` until posted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<MessageRef>,
    /// When it was posted (ms, this replica's clock).
    pub started_ms: u64,
    /// No more entries join it.
    #[serde(default)]
    pub full: bool,
}

/// A group's state, as kept in the store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    pub parts: Vec<Part>,
    /// A campaign's counts so far (each edit reads only the entries added
    /// since the last one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<Tally>,
}

/// What a campaign card shows, accumulated entry by entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub destination: String,
    pub first: Option<Entry>,
    pub posts: u32,
    /// Distinct authors in order of their first post: (ID, shown name).
    pub authors: Vec<(String, String)>,
    pub first_seen: Option<chrono::DateTime<chrono::Utc>>,
    pub last_seen: Option<chrono::DateTime<chrono::Utc>>,
    pub earlier: Vec<Entry>,
}

/// Distinct authors a campaign card remembers (past it, posts still count).
const TALLY_AUTHORS: usize = 10_000;

impl Tally {
    fn add(&mut self, stored: StoredEntry) {
        self.destination = stored.destination;
        self.earlier.extend(stored.earlier.iter().cloned());
        for e in stored
            .earlier
            .into_iter()
            .chain(std::iter::once(stored.entry))
        {
            if self.first.is_none() {
                self.first = Some(e.clone());
            }
            self.posts = self.posts.saturating_add(1);
            if self.authors.len() < TALLY_AUTHORS
                && !self.authors.iter().any(|(id, _)| *id == e.author_id)
            {
                self.authors.push((e.author_id.clone(), e.author.clone()));
            }
            self.first_seen = Some(self.first_seen.map_or(e.posted_at, |t| t.min(e.posted_at)));
            self.last_seen = Some(self.last_seen.map_or(e.posted_at, |t| t.max(e.posted_at)));
        }
    }

    fn card(&self, target: &crate::destination::Target) -> Option<Campaign> {
        let first = self.first.clone()?;
        Some(Campaign {
            destination: self.destination.clone(),
            target: target.clone(),
            posts: self.posts,
            authors: self.authors.iter().map(|(_, name)| name.clone()).collect(),
            first_seen: self.first_seen.unwrap_or(first.posted_at),
            last_seen: self.last_seen.unwrap_or(first.posted_at),
            earlier: self.earlier.clone(),
            first,
        })
    }
}

/// Why a group could not be written now.
#[derive(Debug)]
enum WriteError {
    Store(StoreError),
    Platform(PlatformError),
    /// Another replica is posting this part, or its outcome is unknown.
    Busy(Duration),
}

impl From<StoreError> for WriteError {
    fn from(e: StoreError) -> Self {
        WriteError::Store(e)
    }
}

impl From<PlatformError> for WriteError {
    fn from(e: PlatformError) -> Self {
        WriteError::Platform(e)
    }
}

impl Waves {
    /// Every replica's writer: takes due groups and writes them, until the
    /// task is aborted.
    pub fn spawn_writer(&self) -> tokio::task::JoinHandle<()> {
        let waves = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut checks = 0u32;
            loop {
                tick.tick().await;
                waves.write_due().await;
                checks = checks.wrapping_add(1);
                if checks.is_multiple_of(4) {
                    waves.check_ended().await;
                }
            }
        })
    }

    /// Writes every group due now; returns how many were written.
    pub async fn write_due(&self) -> usize {
        let store = &self.inner.store;
        let due = match store.take_due(GROUPS_SET, now_ms(), TAKE_LEASE, 16).await {
            Ok(due) => due,
            Err(e) => {
                warn!(error = %e, "cannot read the groups due an edit; trying again shortly");
                return 0;
            }
        };
        let mut written = 0;
        for group in due {
            let next = match self.write(&group).await {
                Ok(()) => {
                    written += 1;
                    None
                }
                Err(WriteError::Store(e)) => {
                    // The lease brings it back.
                    warn!(error = %e, "cannot write a digest: the store failed; trying again after the lease");
                    continue;
                }
                Err(WriteError::Busy(wait)) => Some(wait),
                // A broken destination (bad token, unknown channel, a body
                // refused): not called again for a minute; the entries wait.
                Err(WriteError::Platform(
                    e @ (PlatformError::Config { .. } | PlatformError::Rejected { .. }),
                )) => {
                    warn!(error = %e, "cannot post or edit a digest: the destination refuses it; its entries stay recorded, tried again in a minute");
                    Some(BROKEN_RETRY)
                }
                Err(WriteError::Platform(e)) => {
                    warn!(error = %e, "cannot post or edit a digest; its entries stay recorded and are shown by the next attempt");
                    Some(e.retry_after().unwrap_or(RETRY).max(Duration::from_secs(1)))
                }
            };
            if let Err(e) = self.reschedule(&group, next).await {
                warn!(error = %e, "cannot reschedule a digest; the lease brings it back");
            }
        }
        written
    }

    /// After a write: the group leaves the schedule, and comes back at the
    /// next edit time if entries remain to show (or at `retry`).
    async fn reschedule(&self, group: &str, retry: Option<Duration>) -> Result<(), StoreError> {
        let store = &self.inner.store;
        store.unschedule(GROUPS_SET, group).await?;
        let again = match retry {
            Some(wait) => Some(wait),
            // An entry added before the unschedule found the group
            // scheduled and did not schedule it: look again.
            None => {
                let state = self.state(group).await?.1;
                let shown = state.parts.last().map_or(0, |p| p.first + p.shown);
                let (len, _) = store.group_entries(group, 0, 1).await?;
                (len > shown).then_some(self.inner.settings.edit_every)
            }
        };
        if let Some(wait) = again {
            store
                .schedule(
                    GROUPS_SET,
                    group,
                    now_ms().saturating_add(millis(wait)),
                    self.inner.keep,
                )
                .await?;
        }
        Ok(())
    }

    async fn state(&self, group: &str) -> Result<(u64, GroupState), StoreError> {
        match self.inner.store.versioned(&state_name(group)).await? {
            None => Ok((0, GroupState::default())),
            Some(v) => Ok((
                v.revision,
                serde_json::from_str(&v.body)
                    .map_err(|e| StoreError(format!("unreadable group state: {e}")))?,
            )),
        }
    }

    async fn save(
        &self,
        group: &str,
        revision: u64,
        state: &GroupState,
    ) -> Result<u64, StoreError> {
        let body =
            serde_json::to_string(state).map_err(|e| StoreError(format!("group state: {e}")))?;
        match self
            .inner
            .store
            .swap_versioned(&state_name(group), revision, &body, self.inner.keep)
            .await?
        {
            Swapped::Written(r) => Ok(r),
            Swapped::Stale(_) => Err(StoreError(
                "the group's state was changed by another writer (its lease ran out): left to it"
                    .into(),
            )),
        }
    }

    /// Shows every entry of `group` not shown yet: edits the current
    /// message, or posts a new one (a digest's message is full after
    /// `max_entries` entries or `max_digest`).
    async fn write(&self, group: &str) -> Result<(), WriteError> {
        let Some(id) = GroupId::parse(group) else {
            warn!(
                "a scheduled group has an ID this version cannot read: dropped from the schedule"
            );
            return Ok(());
        };
        let settings = &self.inner.settings;
        let (mut revision, mut state) = self.state(group).await?;
        let (len, _) = self.inner.store.group_entries(group, 0, 1).await?;
        if let GroupId::Campaign { target, .. } = &id {
            return self
                .write_campaign(group, target, revision, state, len)
                .await;
        }
        loop {
            if state.parts.is_empty() {
                state.parts.push(Part {
                    first: 0,
                    shown: 0,
                    message: None,
                    started_ms: now_ms(),
                    full: false,
                });
            }
            let index = state.parts.len() - 1;
            let part = state.parts[index].clone();
            let end = part.first + part.shown;
            if part.message.is_some() && end >= len {
                return Ok(());
            }
            let max = settings.max_entries as u64;
            let old = now_ms().saturating_sub(part.started_ms) >= millis(settings.max_digest);
            let digest = matches!(id, GroupId::Digest { .. });
            if digest && part.message.is_some() && (part.shown >= max || old) {
                // Full: say so on it, then start the next message.
                if !part.full
                    && let Some(message) = &part.message
                    && let Some((grouped, _)) = self.render(group, &id, index, &part, true).await?
                {
                    let tag = CardTag::of(part_key(group, index).as_str());
                    self.inner
                        .sinks
                        .update_grouped(message, &grouped, Some(&tag))
                        .await?;
                }
                state.parts[index].full = true;
                state.parts.push(Part {
                    first: end,
                    shown: 0,
                    message: None,
                    started_ms: now_ms(),
                    full: false,
                });
                revision = self.save(group, revision, &state).await?;
                continue;
            }
            let Some((grouped, count)) = self.render(group, &id, index, &part, false).await? else {
                return Ok(());
            };
            match &part.message {
                Some(message) => {
                    // Slack replaces the metadata on an edit: keep the tag.
                    let tag = CardTag::of(part_key(group, index).as_str());
                    self.inner
                        .sinks
                        .update_grouped(message, &grouped, Some(&tag))
                        .await?;
                }
                None => {
                    let message = self.post_part(group, index, &grouped).await?;
                    metrics::counter!("modbridge_digests_total", "destination" => destination(&grouped)).increment(1);
                    state.parts[index].message = message;
                    if state.parts[index].message.is_none() {
                        // Posted where nothing can be edited (the dry run):
                        // the next entries go to a new message.
                        state.parts[index].full = true;
                    }
                }
            }
            state.parts[index].shown = count;
            if state.parts[index].message.is_none() {
                state.parts.push(Part {
                    first: part.first + count,
                    shown: 0,
                    message: None,
                    started_ms: now_ms(),
                    full: false,
                });
            }
            revision = self.save(group, revision, &state).await?;
            // Loop: more entries may need the next message.
            if part.first + count >= len {
                return Ok(());
            }
        }
    }

    /// The digest message of part `index` with its entries (up to
    /// `max_entries` from the part's first); with how many entries it
    /// shows. `None` when it has none (or for a campaign: see
    /// `write_campaign`).
    async fn render(
        &self,
        group: &str,
        id: &GroupId,
        index: usize,
        part: &Part,
        full: bool,
    ) -> Result<Option<(Grouped, u64)>, WriteError> {
        let max = match id {
            // A full part shows what it showed, nothing newer (the next
            // part will).
            GroupId::Digest { .. } if full => usize::try_from(part.shown).unwrap_or(0),
            GroupId::Digest { .. } => self.inner.settings.max_entries,
            GroupId::Campaign { .. } => CAMPAIGN_ENTRIES,
        };
        if max == 0 {
            return Ok(None);
        }
        let (_, raw) = self
            .inner
            .store
            .group_entries(group, part.first, max)
            .await?;
        let mut destination = String::new();
        let mut entries = Vec::with_capacity(raw.len());
        for r in &raw {
            match serde_json::from_str::<StoredEntry>(r) {
                Ok(e) => {
                    destination = e.destination;
                    entries.push(e.entry);
                }
                // Counted as shown (it cannot be), never blocking the rest.
                Err(e) => warn!(error = %e, "a group entry cannot be read: left out"),
            }
        }
        let count = raw.len() as u64;
        let grouped = match id {
            GroupId::Digest { target, started_ms } => Grouped::Digest(Digest {
                destination,
                target: target.clone(),
                wave_started: at_ms(*started_ms),
                part: u32::try_from(index + 1).unwrap_or(u32::MAX),
                entries,
                full,
            }),
            // Written by `write_campaign`, from the group's tally.
            GroupId::Campaign { .. } => return Ok(None),
        };
        Ok((count > 0).then_some((grouped, count)))
    }

    /// A campaign's one card: the entries added since the last edit join
    /// the tally kept in the group's state, then the card is posted or
    /// edited to show it.
    async fn write_campaign(
        &self,
        group: &str,
        target: &crate::destination::Target,
        mut revision: u64,
        mut state: GroupState,
        len: u64,
    ) -> Result<(), WriteError> {
        if state.parts.is_empty() {
            state.parts.push(Part {
                first: 0,
                shown: 0,
                message: None,
                started_ms: now_ms(),
                full: false,
            });
        }
        loop {
            let part = state.parts[0].clone();
            if part.message.is_some() && part.shown >= len {
                return Ok(());
            }
            let (_, raw) = self
                .inner
                .store
                .group_entries(group, part.shown, CAMPAIGN_ENTRIES)
                .await?;
            let mut tally = state.campaign.clone().unwrap_or_default();
            for r in &raw {
                match serde_json::from_str::<StoredEntry>(r) {
                    Ok(e) => tally.add(e),
                    Err(e) => warn!(error = %e, "a campaign entry cannot be read: left out"),
                }
            }
            let Some(card) = tally.card(target) else {
                return Ok(());
            };
            let grouped = Grouped::Campaign(card);
            let tag = CardTag::of(part_key(group, 0).as_str());
            match &part.message {
                Some(message) => {
                    self.inner
                        .sinks
                        .update_grouped(message, &grouped, Some(&tag))
                        .await?;
                }
                None => {
                    let message = self.post_part(group, 0, &grouped).await?;
                    metrics::counter!("modbridge_campaigns_total", "destination" => destination(&grouped)).increment(1);
                    info!(target = %target, "campaign card posted");
                    state.parts[0].message = message;
                }
            }
            state.parts[0].shown = part.shown + raw.len() as u64;
            state.campaign = Some(tally);
            revision = self.save(group, revision, &state).await?;
            if state.parts[0].shown >= len || raw.is_empty() || state.parts[0].message.is_none() {
                return Ok(());
            }
        }
    }

    /// Posts part `index`'s first version once across replicas and
    /// restarts: under a reservation like a card's, looked up on the
    /// platform when an earlier attempt's outcome is unknown.
    async fn post_part(
        &self,
        group: &str,
        index: usize,
        grouped: &Grouped,
    ) -> Result<Option<MessageRef>, WriteError> {
        let store = &self.inner.store;
        let sinks = &self.inner.sinks;
        let key = part_key(group, index);
        let tag = CardTag::of(key.as_str());
        let target = grouped.target();
        let lease = match store.reserve(&key, POST_LEASE).await? {
            Reservation::Fresh(lease) => lease,
            Reservation::Settled(CardRecord::Sent { message }) => {
                return Ok(message.and_then(|m| serde_json::from_value(m).ok()));
            }
            Reservation::Settled(_) => return Ok(None),
            Reservation::InFlight { retry_after } => return Err(WriteError::Busy(retry_after)),
            Reservation::Unknown(lease, earlier) => {
                if !target.resend_is_deduplicated()
                    && let Some(window) = earlier.and_then(|a| Window::between_ms(a.since, a.until))
                {
                    match sinks.look_up(target, &tag, window).await {
                        Lookup::Found(message) => {
                            let json = serde_json::to_value(&message).ok();
                            store.confirm(&lease, json.as_ref()).await?;
                            return Ok(Some(message));
                        }
                        Lookup::Absent => {}
                        Lookup::Unknown { retry_after, .. } => {
                            return Err(WriteError::Busy(retry_after.unwrap_or(RETRY)));
                        }
                        Lookup::Unavailable(why) => {
                            info!(target = %target, reason = %why, "a digest message's earlier post cannot be looked up: posting it again (a possible duplicate)");
                        }
                    }
                }
                lease
            }
        };
        match sinks.post_grouped(grouped, Some(&tag)).await {
            Ok(message) => {
                let json = message.as_ref().and_then(|m| serde_json::to_value(m).ok());
                store.confirm(&lease, json.as_ref()).await?;
                Ok(message)
            }
            // No answer in time: it may be there; the reservation expires
            // into "unknown" and the next attempt looks it up.
            Err(e @ PlatformError::TimedOut { .. }) => Err(e.into()),
            Err(e) => {
                store.release_reservation(&lease).await?;
                Err(e.into())
            }
        }
    }
}

/// Entries a campaign card reads (its count and authors come from them).
const CAMPAIGN_ENTRIES: usize = 1000;

fn at_ms(ms: u64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(0)).unwrap_or_default()
}

/// The record key of a group's part `index` (its message posted once).
fn part_key(group: &str, index: usize) -> SentKey {
    SentKey::new(format!("group\u{1f}{group}\u{1f}{index}"))
}

fn state_name(group: &str) -> String {
    format!("group:{group}")
}

fn destination(grouped: &Grouped) -> String {
    match grouped {
        Grouped::Digest(d) => d.destination.clone(),
        Grouped::Campaign(c) => c.destination.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::{Card, Level};
    use crate::config::WaveSettings;
    use crate::dedupe::{MemoryStore, Store, Ttl};
    use crate::platforms::{Recorder, Sinks};
    use crate::waves::Admission;

    fn waves(recorder: &Recorder, settings: WaveSettings) -> Waves {
        let store = Store::Memory(MemoryStore::new(
            Ttl {
                lease: Duration::from_secs(5),
                done: Duration::from_secs(3600),
            },
            10_000,
        ));
        Waves::over(
            store,
            Sinks::Recorder(recorder.clone()),
            settings,
            Duration::from_secs(3600),
        )
    }

    fn settings() -> WaveSettings {
        WaveSettings {
            digest_after: Duration::from_secs(2),
            max_entries: 4,
            ..WaveSettings::default()
        }
    }

    /// Admits cards for posts `from..to`; returns the digest group they
    /// joined (the first ones are cards).
    async fn admit(w: &Waves, from: usize, to: usize) -> Option<String> {
        let mut group = None;
        for i in from..to {
            let mut card = Card::example("slack:C0123ABCD", Some("a forbidden phrase"));
            card.post_id = format!("P{i}");
            let key = SentKey::new(format!("CUST\u{1f}P{i}\u{1f}slack:C0123ABCD"));
            let target = card.target.clone();
            if let Admission::Grouped { group: g } = w.admit(&key, &card, &target).await.unwrap() {
                group = Some(g);
            }
        }
        group
    }

    fn digests(recorder: &Recorder) -> Vec<(u32, Vec<String>, bool)> {
        recorder
            .grouped()
            .into_iter()
            .filter_map(|(_, g)| match g {
                Grouped::Digest(d) => Some((
                    d.part,
                    d.entries.into_iter().map(|e| e.post_id).collect(),
                    d.full,
                )),
                Grouped::Campaign(_) => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_digest_fills_parts_in_order_and_says_when_one_is_full() {
        let recorder = Recorder::default();
        let w = waves(&recorder, settings());
        // Two cards fit the 2 s of queue; the rest join the digest.
        let group = admit(&w, 0, 8).await.expect("a wave began");
        w.write(&group).await.unwrap();
        let got = digests(&recorder);
        assert_eq!(
            got,
            vec![
                (
                    1,
                    vec!["P2".into(), "P3".into(), "P4".into(), "P5".into()],
                    true
                ),
                (2, vec!["P6".into(), "P7".into()], false),
            ]
        );
        // More entries fill part 2, then start part 3.
        admit(&w, 8, 11).await;
        w.write(&group).await.unwrap();
        let got = digests(&recorder);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[1].1, ["P6", "P7", "P8", "P9"]);
        assert!(got[1].2, "part 2 is full");
        assert_eq!(got[2], (3, vec!["P10".into()], false));
        // Nothing new: no call at all.
        let calls = recorder.grouped_calls();
        w.write(&group).await.unwrap();
        assert_eq!(recorder.grouped_calls(), calls);
    }

    #[tokio::test]
    async fn entries_a_failed_post_could_not_show_are_shown_by_the_next_write() {
        let recorder = Recorder::default();
        let w = waves(&recorder, settings());
        let group = admit(&w, 0, 5).await.expect("a wave began");
        recorder.fail_next(1);
        assert!(matches!(
            w.write(&group).await,
            Err(WriteError::Platform(_))
        ));
        assert!(digests(&recorder).is_empty());
        w.write(&group).await.unwrap();
        assert_eq!(
            digests(&recorder),
            vec![(1, vec!["P2".into(), "P3".into(), "P4".into()], false)]
        );
    }

    #[tokio::test]
    async fn an_old_part_takes_no_more_entries() {
        let recorder = Recorder::default();
        let w = waves(
            &recorder,
            WaveSettings {
                max_digest: Duration::from_millis(1),
                ..settings()
            },
        );
        let group = admit(&w, 0, 4).await.expect("a wave began");
        w.write(&group).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        admit(&w, 4, 5).await;
        w.write(&group).await.unwrap();
        assert_eq!(
            digests(&recorder),
            vec![
                (1, vec!["P2".into(), "P3".into()], true),
                (2, vec!["P4".into()], false),
            ]
        );
    }

    #[tokio::test]
    async fn pings_and_urgent_cards_never_join_a_digest() {
        let recorder = Recorder::default();
        let w = waves(&recorder, settings());
        admit(&w, 0, 5).await.expect("a wave began");
        let mut urgent = Card::example("slack:C0123ABCD", Some("threat"));
        urgent.post_id = "U1".into();
        urgent.level = Level::Urgent;
        let mut pinging = urgent.clone();
        pinging.post_id = "U2".into();
        pinging.level = Level::Normal;
        pinging.mention = Some("here".into());
        for card in [urgent, pinging] {
            let key = SentKey::new(format!("CUST\u{1f}{}\u{1f}slack:C0123ABCD", card.post_id));
            let target = card.target.clone();
            assert_eq!(
                w.admit(&key, &card, &target).await.unwrap(),
                Admission::Card
            );
        }
    }

    #[tokio::test]
    async fn a_retried_post_already_in_the_digest_is_not_added_again() {
        let recorder = Recorder::default();
        let w = waves(&recorder, settings());
        let group = admit(&w, 0, 4).await.expect("a wave began");
        let again = admit(&w, 3, 4).await;
        assert_eq!(again, None, "settled, not grouped again");
        w.write(&group).await.unwrap();
        assert_eq!(digests(&recorder)[0].1, ["P2", "P3"]);
    }
}
