//! Spam waves (issue #14): when a destination gets cards faster than it can
//! post them, its further cards join one **digest** message, edited in
//! place, instead of queueing behind the platform's pace.
//!
//! **Admission** ([`Waves::admit`], called by delivery for every card before
//! it is reserved): each card counts against its destination's pace in the
//! store ([`DedupeStore::wave_admit`]: a virtual queue shared by every
//! replica); a queue that would take longer than `digest_after` to post
//! begins a wave, which lasts until `quiet` passes without overflow. In a
//! wave, a card joins the wave's digest group: its record becomes
//! `in_digest{id}` and its entry is appended, in one atomic step
//! ([`DedupeStore::group_add`]), and the webhook is answered at once. Cards
//! that ping (a match with `mention`) or are `urgent` never join: they go
//! out as their own cards.
//!
//! **Writing** ([`writer`]): groups are scheduled in the store
//! (`due:groups`); one replica at a time takes a due group (a lease),
//! renders its entries and posts or edits its message, and records what it
//! showed in the group's state (a versioned record). A new message is
//! posted under a reservation like a card's (so a replica that dies
//! mid-post does not post it twice where the platform can be asked), and a
//! digest starts a new message after `max_entries` entries or
//! `max_digest` of age.
//!
//! Without Redis there are no waves: cards queue as before.

pub mod writer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::info;

use crate::card::{Card, Level, Severity};
use crate::config::WaveSettings;
use crate::dedupe::{
    CardRecord, DedupeStore, GroupAdd, Join, SentKey, Store, StoreError, WaveEnter,
};
use crate::destination::Target;
use crate::digest::Entry;
use crate::platforms::Sinks;

/// Characters of text a campaign member keeps (listed on the campaign card
/// when it went out before the campaign was recognised).
const MEMBER_EXCERPT_CHARS: usize = 80;

/// The schedule (`due:<set>`) of groups with entries to show.
pub const GROUPS_SET: &str = "groups";

/// How long one post takes of a destination's pace: Slack takes about one
/// message per second per channel, Discord five per five seconds.
pub const MESSAGE_COST: Duration = Duration::from_secs(1);

/// Where a card goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Its own card (no wave, or it pings, or it is urgent).
    Card,
    /// Listed in the group `group` (recorded; shown by the next edit).
    Grouped { group: String },
    /// The card already has a settled record (sent, a dead letter, in a
    /// group): nothing to do.
    Settled(CardRecord),
}

/// A group's entry as kept in the store: the entry and the destination's
/// name (for metrics and headers).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredEntry {
    #[serde(rename = "d")]
    pub destination: String,
    #[serde(rename = "e")]
    pub entry: Entry,
    /// A campaign's posts that went out before it was recognised (only on
    /// the entry whose post made it a campaign).
    #[serde(rename = "x", default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<Entry>,
}

/// What a group is, read from its ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupId {
    /// A wave's digest: the target and when the wave began (ms).
    Digest { target: Target, started_ms: u64 },
    /// A campaign card: the target and the campaign's ID in the store.
    Campaign { target: Target, campaign: String },
}

impl GroupId {
    /// `digest␟<target>␟<wave start ms>`.
    pub fn digest(target: &Target, started_ms: u64) -> String {
        format!("digest\u{1f}{target}\u{1f}{started_ms}")
    }

    /// `campaign␟<target>␟<campaign ID>`.
    pub fn campaign(target: &Target, campaign: &str) -> String {
        format!("campaign\u{1f}{target}\u{1f}{campaign}")
    }

    pub fn parse(id: &str) -> Option<Self> {
        let mut parts = id.split('\u{1f}');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("digest"), Some(target), Some(ms), None) => Some(GroupId::Digest {
                target: Target::parse(target).ok()?,
                started_ms: ms.parse().ok()?,
            }),
            (Some("campaign"), Some(target), Some(campaign), None) if !campaign.is_empty() => {
                Some(GroupId::Campaign {
                    target: Target::parse(target).ok()?,
                    campaign: campaign.to_owned(),
                })
            }
            _ => None,
        }
    }

    pub fn target(&self) -> &Target {
        match self {
            GroupId::Digest { target, .. } | GroupId::Campaign { target, .. } => target,
        }
    }
}

/// Waves across replicas: admission and the group writer. Cheap to clone.
#[derive(Clone)]
pub struct Waves {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    sinks: Sinks,
    settings: WaveSettings,
    /// How long groups and their state are kept (as long as card records).
    keep: Duration,
    /// Destinations this replica saw in a wave: target → destination name
    /// (for the gauge and the "wave ended" line) and the wave's start (its
    /// digest group, tried first).
    active: Mutex<HashMap<Target, (String, u64)>>,
}

impl Waves {
    /// Waves over `store` (Redis only: `None` with the in-memory store or
    /// when `[waves] enabled = false`).
    pub fn new(store: Store, sinks: Sinks, settings: WaveSettings, keep: Duration) -> Option<Self> {
        if !settings.enabled || !matches!(store, Store::Redis(_)) {
            return None;
        }
        Some(Self::over(store, sinks, settings, keep))
    }

    /// Waves over any store (tests drive the in-memory one).
    pub fn over(store: Store, sinks: Sinks, settings: WaveSettings, keep: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                sinks,
                settings,
                keep,
                active: Mutex::default(),
            }),
        }
    }

    pub fn settings(&self) -> &WaveSettings {
        &self.inner.settings
    }

    /// Decides where `card` (record key `key`) goes: counts it against its
    /// destination's pace and, in a wave, records it in the wave's digest
    /// (one store round trip once this replica knows the wave). A card
    /// that already has a record is not counted: settled, it is answered
    /// as such; reserved, its own path decides (in flight, or unknown and
    /// looked up). A store error decides nothing (the caller answers
    /// "retry").
    pub async fn admit(
        &self,
        key: &SentKey,
        card: &Card,
        target: &Target,
    ) -> Result<Admission, StoreError> {
        if card.severity == Severity::Notice {
            return Ok(Admission::Card);
        }
        let s = &self.inner.settings;
        // A ping or an urgent card is never buried in a digest.
        let bypass = card.mention.is_some() || card.level == Level::Urgent;
        let entry = StoredEntry {
            destination: card.destination.clone(),
            entry: Entry::of(card),
            earlier: Vec::new(),
        };
        let entry =
            serde_json::to_string(&entry).map_err(|e| StoreError(format!("digest entry: {e}")))?;
        let due = now_ms().saturating_add(millis(s.edit_every.min(Duration::from_secs(1))));
        let name = target.to_string();
        if s.campaigns
            && !bypass
            && let Some(admission) = self.campaign(key, card, target, &name, due).await?
        {
            return Ok(admission);
        }
        let known = self.known_wave(target);
        let group = GroupId::digest(target, known);
        let join = (!bypass && known != 0).then_some(Join {
            group: &group,
            started_ms: known,
            entry: &entry,
            set: GROUPS_SET,
            due_ms: due,
        });
        let pace = (MESSAGE_COST, s.digest_after, s.quiet);
        let (wave, added) = match self.inner.store.wave_enter(key, &name, pace, join).await? {
            WaveEnter::Taken(CardRecord::Reserved { .. }) => return Ok(Admission::Card),
            WaveEnter::Taken(settled) => return Ok(Admission::Settled(settled)),
            WaveEnter::Admitted { wave, added } => (wave, added),
        };
        if wave.began {
            info!(destination = %card.destination, target = %target, "wave started: further cards join a digest until {} s pass without overflow", s.quiet.as_secs());
        }
        if wave.in_wave {
            self.mark_active(target, &card.destination, wave.started_ms);
        }
        if added {
            metrics::counter!("modbridge_digest_entries_total", "destination" => card.destination.clone()).increment(1);
            return Ok(Admission::Grouped { group });
        }
        if !wave.in_wave || bypass {
            return Ok(Admission::Card);
        }
        // A wave this replica did not know yet: its group now.
        let group = GroupId::digest(target, wave.started_ms);
        match self
            .inner
            .store
            .group_add(key, &group, &entry, GROUPS_SET, due)
            .await?
        {
            GroupAdd::Added(_) => {
                metrics::counter!("modbridge_digest_entries_total", "destination" => card.destination.clone()).increment(1);
                Ok(Admission::Grouped { group })
            }
            GroupAdd::Taken(CardRecord::Reserved { .. }) => Ok(Admission::Card),
            GroupAdd::Taken(settled) => Ok(Admission::Settled(settled)),
        }
    }

    /// A post of a campaign (the same or a very similar text from at least
    /// `campaign_min_authors` authors within `campaign_window`, in the
    /// store's index that every replica shares) joins the campaign's card;
    /// `None`: not (yet) a campaign, the card goes its way (and is listed
    /// on the campaign card if the campaign comes).
    async fn campaign(
        &self,
        key: &SentKey,
        card: &Card,
        target: &Target,
        name: &str,
        due: u64,
    ) -> Result<Option<Admission>, StoreError> {
        let s = &self.inner.settings;
        let Some(fingerprint) = card
            .content
            .as_deref()
            .and_then(|text| crate::campaign::fingerprint(text, s.campaign_min_words))
        else {
            return Ok(None);
        };
        // The member: who, where and a short excerpt, for the card's
        // "earlier posts" (kept under the store's 1 KiB a member).
        let mut slim = Entry::of(card);
        if let Some(text) = card.content.as_deref() {
            let (excerpt, highlights) =
                crate::digest::excerpt(text, &card.highlights, MEMBER_EXCERPT_CHARS);
            slim.excerpt = Some(excerpt);
            slim.highlights = highlights;
        }
        let mut member = serde_json::to_string(&slim)
            .map_err(|e| StoreError(format!("campaign member: {e}")))?;
        if member.len() > crate::dedupe::CAMPAIGN_MEMBER_MAX {
            slim.excerpt = None;
            slim.highlights.clear();
            slim.post_url = None;
            slim.reason.clear();
            slim.author = slim.author.chars().take(64).collect();
            member = serde_json::to_string(&slim)
                .map_err(|e| StoreError(format!("campaign member: {e}")))?;
        }
        let join = self
            .inner
            .store
            .campaign_join(
                name,
                fingerprint.bits(),
                &member,
                &card.author.user_id,
                s.campaign_window,
                crate::campaign::similarity_to_distance(s.campaign_similarity),
            )
            .await?;
        if join.authors < s.campaign_min_authors {
            return Ok(None);
        }
        // The post that made it a campaign lists the ones before it (they
        // went out as cards or digest entries).
        let earlier = if join.new_member && join.authors == s.campaign_min_authors {
            join.earlier
                .iter()
                .filter_map(|m| serde_json::from_str::<Entry>(m).ok())
                .collect()
        } else {
            Vec::new()
        };
        let group = GroupId::campaign(target, &join.id);
        let entry = StoredEntry {
            destination: card.destination.clone(),
            entry: Entry::of(card),
            earlier,
        };
        let entry = serde_json::to_string(&entry)
            .map_err(|e| StoreError(format!("campaign entry: {e}")))?;
        Ok(Some(
            match self
                .inner
                .store
                .group_add(key, &group, &entry, GROUPS_SET, due)
                .await?
            {
                GroupAdd::Added(index) => {
                    if index == 0 {
                        info!(destination = %card.destination, target = %target, authors = join.authors, "campaign recognised: its posts join one card");
                    }
                    Admission::Grouped { group }
                }
                GroupAdd::Taken(CardRecord::Reserved { .. }) => Admission::Card,
                GroupAdd::Taken(settled) => Admission::Settled(settled),
            },
        ))
    }

    /// The start of the wave this replica last saw `target` in (0: none).
    fn known_wave(&self, target: &Target) -> u64 {
        self.inner
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(target)
            .map_or(0, |(_, started)| *started)
    }

    fn mark_active(&self, target: &Target, destination: &str, started_ms: u64) {
        let mut active = self.inner.active.lock().unwrap_or_else(|p| p.into_inner());
        if active
            .insert(target.clone(), (destination.to_owned(), started_ms))
            .is_none()
        {
            metrics::gauge!("modbridge_wave_active", "destination" => destination.to_owned())
                .set(1.0);
        }
    }

    /// Forgets waves that ended (the store says none is on): gauge to 0
    /// and a log line, once per wave this replica saw.
    pub async fn check_ended(&self) {
        let seen: Vec<(Target, String)> = self
            .inner
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(t, (d, _))| (t.clone(), d.clone()))
            .collect();
        for (target, destination) in seen {
            if let Ok(None) = self.inner.store.wave(&target.to_string()).await {
                self.inner
                    .active
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&target);
                metrics::gauge!("modbridge_wave_active", "destination" => destination.clone())
                    .set(0.0);
                info!(destination = %destination, target = %target, "wave ended: cards go out one by one again");
            }
        }
    }
}

pub(crate) fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
