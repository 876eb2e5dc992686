//! In-memory dedupe store: no infrastructure, one process, bounded. It
//! cannot park cards: they would be lost on restart, so it says so
//! ([`Parking::NotDurable`]) and the sender keeps them instead.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use std::time::Duration;

use super::{
    Attempted, CAMPAIGN_EARLIER, CAMPAIGN_MARGIN, CampaignJoin, CardLease, CardRecord,
    CircuitOpened, Claim, Confirmed, DedupeStore, ExecutionId, GroupAdd, Join, Lease, LockLease,
    Parking, Reservation, SentKey, StoreError, Swapped, Ttl, Versioned, WaveAdmit, WaveEnter,
    epoch_ms,
};

#[derive(Debug)]
enum Record {
    Claimed {
        token: String,
        until: Instant,
    },
    Done {
        until: Instant,
    },
    /// Claimed once, released (or stopped) before it was done.
    Begun {
        until: Instant,
    },
}

#[derive(Debug, Default)]
struct Inner {
    records: HashMap<String, Record>,
    /// Done and begun records in the order written; with one TTL for all,
    /// that is also the order they expire in.
    done_order: VecDeque<String>,
    /// Card records, each with when it expires.
    cards: HashMap<SentKey, (CardRecord, Instant)>,
    /// Card keys in the order first written (for the bound).
    card_order: VecDeque<SentKey>,
    /// Open circuits: record and expiry.
    circuits: HashMap<String, (String, Instant)>,
    /// Locks: token and expiry.
    locks: HashMap<String, (String, Instant)>,
    /// Replay guard: name → until (expired entries are dropped as new ones come).
    seen: HashMap<String, Instant>,
    /// Versioned records (cases): name → (revision, body, until).
    versioned: HashMap<String, (u64, String, Instant)>,
    /// Versioned names in the order first written (for the bound and for
    /// expiry: cases share one TTL, so this is about the order they expire).
    versioned_order: VecDeque<String>,
    /// Counters: name → (field → count, until). Few names (one a day).
    counters: HashMap<String, (BTreeMap<String, i64>, Instant)>,
    /// Schedules: set → (member → due ms, until).
    schedules: HashMap<String, (HashMap<String, u64>, Instant)>,
    /// Waves: destination → (virtual queue end ms, wave end ms, start ms).
    waves: HashMap<String, (u64, u64, u64)>,
    /// Group entries: group → (entries, until).
    groups: HashMap<String, (Vec<String>, Instant)>,
    /// Campaigns, oldest first; at most `capacity` members in all.
    campaigns: VecDeque<Campaign>,
}

#[derive(Debug)]
struct Campaign {
    id: String,
    scope: String,
    fingerprint: u64,
    first_ms: u64,
    last_ms: u64,
    /// The members remembered: all of them, unless this campaign alone
    /// outgrew the store's bound (then the first ones).
    members: Vec<String>,
    posts: u32,
    authors: HashSet<String>,
    until: Instant,
}

impl Campaign {
    fn joined(&self, index: usize, new_member: bool) -> CampaignJoin {
        CampaignJoin {
            id: self.id.clone(),
            authors: u32::try_from(self.authors.len()).unwrap_or(u32::MAX),
            posts: self.posts,
            first_ms: self.first_ms,
            last_ms: self.last_ms,
            earlier: self
                .members
                .iter()
                .take(index.min(CAMPAIGN_EARLIER))
                .cloned()
                .collect(),
            new_member,
        }
    }
}

/// Keeps at most `capacity` done records (the oldest go first) for `ttl.done`.
#[derive(Clone, Debug)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    ttl: Ttl,
    capacity: usize,
}

impl MemoryStore {
    pub fn new(ttl: Ttl, capacity: usize) -> Self {
        Self {
            inner: Arc::default(),
            ttl,
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-written in
        // a way that matters here; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn mark_done(&self, key: String) {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.evict(now, self.capacity);
        inner.records.insert(
            key.clone(),
            Record::Done {
                until: now + self.ttl.done,
            },
        );
        inner.done_order.push_back(key);
    }

    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn reserved(lease: &CardLease, duration: Duration, since: u64) -> CardRecord {
    let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    CardRecord::Reserved {
        token: lease.token.clone(),
        until: epoch_ms().saturating_add(ms),
        since: Some(since),
    }
}

impl Inner {
    fn card(&self, key: &SentKey, now: Instant) -> Option<&CardRecord> {
        match self.cards.get(key) {
            Some((record, expires)) if *expires > now => Some(record),
            _ => None,
        }
    }

    /// Whether `lease` still holds a live reservation.
    fn holds_card(&self, lease: &CardLease, now: Instant) -> bool {
        matches!(
            self.card(&lease.key, now),
            Some(CardRecord::Reserved { token, until, .. }) if *token == lease.token && *until > epoch_ms()
        )
    }

    /// Writes a card record; beyond `capacity` card records the oldest go.
    fn put_card(&mut self, key: &SentKey, record: CardRecord, expires: Instant, capacity: usize) {
        if self.cards.insert(key.clone(), (record, expires)).is_none() {
            self.card_order.push_back(key.clone());
        }
        while self.cards.len() > capacity {
            match self.card_order.pop_front() {
                Some(old) => {
                    self.cards.remove(&old);
                }
                None => break,
            }
        }
        if self.card_order.len() > capacity * 2 {
            let cards = &self.cards;
            self.card_order.retain(|k| cards.contains_key(k));
        }
    }

    /// Drops expired versioned records from the oldest on (amortised: no
    /// scan of every record per write) and, beyond `capacity` of them, the
    /// oldest while more than `keep` are held, so that the cases of a
    /// long-running process without Redis cannot grow without bound. A
    /// record dropped for room reads as expired.
    fn drop_old_versioned(&mut self, now: Instant, keep: usize) {
        while let Some(name) = self.versioned_order.front() {
            let gone = match self.versioned.get(name) {
                None => true,
                Some((_, _, until)) if *until <= now => {
                    self.versioned.remove(name);
                    true
                }
                Some(_) => self.versioned.len() > keep,
            };
            if !gone {
                break;
            }
            if let Some(name) = self.versioned_order.pop_front() {
                self.versioned.remove(&name);
            }
        }
    }

    fn holds(&self, lease: &Lease, now: Instant) -> bool {
        matches!(
            self.records.get(lease.id.as_str()),
            Some(Record::Claimed { token, until }) if *token == lease.token && *until > now
        )
    }

    fn evict(&mut self, now: Instant, capacity: usize) {
        while let Some(key) = self.done_order.front() {
            let expired = match self.records.get(key) {
                Some(Record::Done { until } | Record::Begun { until }) => *until <= now,
                _ => true, // stale queue entry
            };
            if !(expired || self.records.len() >= capacity) {
                break;
            }
            if let Some(key) = self.done_order.pop_front()
                && matches!(
                    self.records.get(&key),
                    Some(Record::Done { .. } | Record::Begun { .. })
                )
            {
                self.records.remove(&key);
            }
        }
        if self.records.len() >= capacity {
            // Only claims left: drop the expired ones.
            self.records.retain(|_, r| match r {
                Record::Claimed { until, .. }
                | Record::Done { until }
                | Record::Begun { until } => *until > now,
            });
        }
    }
}

impl DedupeStore for MemoryStore {
    async fn claim(&self, id: &ExecutionId) -> Result<Claim, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        match inner.records.get(id.as_str()) {
            Some(Record::Done { until }) if *until > now => return Ok(Claim::Done),
            Some(Record::Claimed { until, .. }) if *until > now => {
                return Ok(Claim::InFlight {
                    retry_after: *until - now,
                });
            }
            _ => {}
        }
        inner.evict(now, self.capacity);
        let lease = Lease::new(id.clone());
        inner.records.insert(
            id.as_str().to_owned(),
            Record::Claimed {
                token: lease.token.clone(),
                until: now + self.ttl.lease,
            },
        );
        Ok(Claim::First(lease))
    }

    async fn renew(&self, lease: &Lease) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        if !inner.holds(lease, now) {
            return Ok(false);
        }
        inner.records.insert(
            lease.id.as_str().to_owned(),
            Record::Claimed {
                token: lease.token.clone(),
                until: now + self.ttl.lease,
            },
        );
        Ok(true)
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if matches!(inner.records.get(lease.id.as_str()), Some(Record::Claimed { token, .. }) if *token == lease.token)
        {
            // Unfinished, not forgotten: `attempted` still sees it.
            let key = lease.id.as_str().to_owned();
            let until = Instant::now() + self.ttl.done;
            inner.records.insert(key.clone(), Record::Begun { until });
            inner.done_order.push_back(key);
        }
        Ok(())
    }

    async fn complete(&self, lease: &Lease) -> Result<(), StoreError> {
        self.mark_done(lease.id.as_str().to_owned());
        Ok(())
    }

    async fn attempted(&self, id: &ExecutionId) -> Result<bool, StoreError> {
        let now = Instant::now();
        Ok(match self.lock().records.get(id.as_str()) {
            None => false,
            // A claim whose lease ran out without a release is unfinished too.
            Some(Record::Claimed { .. }) => true,
            Some(Record::Done { until } | Record::Begun { until }) => *until > now,
        })
    }

    async fn card(&self, key: &SentKey) -> Result<Option<CardRecord>, StoreError> {
        Ok(self.lock().card(key, Instant::now()).cloned())
    }

    async fn reserve(&self, key: &SentKey, lease: Duration) -> Result<Reservation, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        // `None`: nobody tried; `Some(earlier)`: an expired reservation.
        let unknown = match inner.card(key, now) {
            None => None,
            Some(CardRecord::Reserved { until, since, .. }) => {
                let left = until.saturating_sub(epoch_ms());
                if left > 0 {
                    return Ok(Reservation::InFlight {
                        retry_after: Duration::from_millis(left),
                    });
                }
                Some(since.map(|since| Attempted {
                    since,
                    until: *until,
                }))
            }
            Some(settled) => return Ok(Reservation::Settled(settled.clone())),
        };
        let card = CardLease::new(key.clone());
        let since = unknown.flatten().map_or_else(epoch_ms, |a| a.since);
        inner.put_card(
            key,
            reserved(&card, lease, since),
            now + self.ttl.done,
            self.capacity,
        );
        Ok(match unknown {
            Some(earlier) => Reservation::Unknown(card, earlier),
            None => Reservation::Fresh(card),
        })
    }

    async fn renew_reservation(
        &self,
        lease: &CardLease,
        duration: Duration,
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let since = match inner.card(&lease.key, now) {
            Some(CardRecord::Reserved { since, .. }) if inner.holds_card(lease, now) => {
                since.unwrap_or_else(epoch_ms)
            }
            _ => return Ok(false),
        };
        inner.put_card(
            &lease.key,
            reserved(lease, duration, since),
            now + self.ttl.done,
            self.capacity,
        );
        Ok(true)
    }

    async fn confirm(
        &self,
        lease: &CardLease,
        message: Option<&serde_json::Value>,
    ) -> Result<Confirmed, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let answer = match inner.card(&lease.key, now) {
            Some(CardRecord::Sent { .. }) => return Ok(Confirmed::AlreadySent),
            _ if inner.holds_card(lease, now) => Confirmed::Recorded,
            _ => Confirmed::RecordedLate,
        };
        let sent = CardRecord::Sent {
            message: message.cloned(),
        };
        inner.put_card(&lease.key, sent, now + self.ttl.done, self.capacity);
        Ok(answer)
    }

    async fn dead_letter(&self, lease: &CardLease, reason: &str) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        if matches!(inner.card(&lease.key, now), Some(CardRecord::Sent { .. })) {
            return Ok(false);
        }
        let dead = CardRecord::DeadLetter {
            reason: reason.to_owned(),
        };
        inner.put_card(&lease.key, dead, now + self.ttl.done, self.capacity);
        Ok(true)
    }

    async fn release_reservation(&self, lease: &CardLease) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if matches!(inner.cards.get(&lease.key), Some((CardRecord::Reserved { token, .. }, _)) if *token == lease.token)
        {
            inner.cards.remove(&lease.key);
        }
        Ok(())
    }

    async fn clear_dead_letter(&self, key: &SentKey) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        if matches!(
            inner.card(key, Instant::now()),
            Some(CardRecord::DeadLetter { .. })
        ) {
            inner.cards.remove(key);
            return Ok(true);
        }
        Ok(false)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn run_id(&self) -> Result<String, StoreError> {
        // It lives and dies with the process.
        Ok("memory".to_owned())
    }

    async fn open_circuit(
        &self,
        name: &str,
        record: &str,
        ttl: Duration,
    ) -> Result<CircuitOpened, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        match inner.circuits.get(name) {
            Some((open, until)) if *until > now => Ok(CircuitOpened::AlreadyOpen(open.clone())),
            _ => {
                inner
                    .circuits
                    .insert(name.to_owned(), (record.to_owned(), now + ttl));
                Ok(CircuitOpened::Opened)
            }
        }
    }

    async fn circuit(&self, name: &str) -> Result<Option<String>, StoreError> {
        let now = Instant::now();
        Ok(self
            .lock()
            .circuits
            .get(name)
            .filter(|(_, until)| *until > now)
            .map(|(r, _)| r.clone()))
    }

    async fn close_circuit(&self, name: &str) -> Result<bool, StoreError> {
        let now = Instant::now();
        Ok(self
            .lock()
            .circuits
            .remove(name)
            .is_some_and(|(_, until)| until > now))
    }

    async fn lock(&self, name: &str, ttl: Duration) -> Result<Option<LockLease>, StoreError> {
        let now = Instant::now();
        let mut inner = MemoryStore::lock(self);
        if inner.locks.get(name).is_some_and(|(_, until)| *until > now) {
            return Ok(None);
        }
        let lease = LockLease::new(name);
        inner
            .locks
            .insert(name.to_owned(), (lease.token.clone(), now + ttl));
        Ok(Some(lease))
    }

    async fn renew_lock(&self, lease: &LockLease, ttl: Duration) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut inner = MemoryStore::lock(self);
        match inner.locks.get_mut(&lease.name) {
            Some((token, until)) if *token == lease.token && *until > now => {
                *until = now + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn unlock(&self, lease: &LockLease) -> Result<(), StoreError> {
        let mut inner = MemoryStore::lock(self);
        if inner
            .locks
            .get(&lease.name)
            .is_some_and(|(token, _)| *token == lease.token)
        {
            inner.locks.remove(&lease.name);
        }
        Ok(())
    }

    async fn versioned(&self, name: &str) -> Result<Option<Versioned>, StoreError> {
        let now = Instant::now();
        let inner = MemoryStore::lock(self);
        Ok(inner
            .versioned
            .get(name)
            .filter(|(_, _, until)| *until > now)
            .map(|(revision, body, _)| Versioned {
                revision: *revision,
                body: body.clone(),
            }))
    }

    async fn swap_versioned(
        &self,
        name: &str,
        expected: u64,
        body: &str,
        ttl: Duration,
    ) -> Result<Swapped, StoreError> {
        let now = Instant::now();
        let mut inner = MemoryStore::lock(self);
        // Room for one more only when this record is new.
        let keep = if inner.versioned.contains_key(name) {
            self.capacity
        } else {
            self.capacity - 1
        };
        inner.drop_old_versioned(now, keep);
        let current = inner
            .versioned
            .get(name)
            .filter(|(_, _, until)| *until > now)
            .map(|(r, b, _)| (*r, b.clone()));
        let revision = current.as_ref().map_or(0, |(r, _)| *r);
        if revision != expected {
            return Ok(Swapped::Stale(
                current.map(|(revision, body)| Versioned { revision, body }),
            ));
        }
        if inner
            .versioned
            .insert(name.to_owned(), (revision + 1, body.to_owned(), now + ttl))
            .is_none()
        {
            inner.versioned_order.push_back(name.to_owned());
        }
        Ok(Swapped::Written(revision + 1))
    }

    async fn add_counts(
        &self,
        name: &str,
        counts: &[(String, i64)],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut inner = MemoryStore::lock(self);
        inner.counters.retain(|_, (_, until)| *until > now);
        let entry = inner
            .counters
            .entry(name.to_owned())
            .or_insert_with(|| (BTreeMap::new(), now));
        for (field, n) in counts {
            let count = entry.0.entry(field.clone()).or_insert(0);
            *count = (*count + n).max(0);
        }
        entry.1 = now + ttl;
        Ok(())
    }

    async fn counts(&self, name: &str) -> Result<BTreeMap<String, i64>, StoreError> {
        let now = Instant::now();
        let inner = MemoryStore::lock(self);
        Ok(inner
            .counters
            .get(name)
            .filter(|(_, until)| *until > now)
            .map(|(counts, _)| counts.clone())
            .unwrap_or_default())
    }

    async fn first_sighting(&self, name: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut inner = MemoryStore::lock(self);
        inner.seen.retain(|_, until| *until > now);
        if inner.seen.contains_key(name) {
            return Ok(false);
        }
        inner.seen.insert(name.to_owned(), now + ttl);
        Ok(true)
    }

    async fn schedule(
        &self,
        set: &str,
        member: &str,
        due_ms: u64,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut inner = MemoryStore::lock(self);
        inner.schedules.retain(|_, (_, until)| *until > now);
        let (members, until) = inner
            .schedules
            .entry(set.to_owned())
            .or_insert_with(|| (HashMap::new(), now + ttl));
        *until = (*until).max(now + ttl);
        if members.contains_key(member) {
            return Ok(false);
        }
        members.insert(member.to_owned(), due_ms);
        Ok(true)
    }

    async fn take_due(
        &self,
        set: &str,
        now_ms: u64,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let now = Instant::now();
        let mut inner = MemoryStore::lock(self);
        let Some((members, until)) = inner.schedules.get_mut(set) else {
            return Ok(Vec::new());
        };
        if *until <= now {
            return Ok(Vec::new());
        }
        let mut due: Vec<(u64, String)> = members
            .iter()
            .filter(|(_, at)| **at <= now_ms)
            .map(|(m, at)| (*at, m.clone()))
            .collect();
        due.sort();
        due.truncate(limit);
        let again = now_ms.saturating_add(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX));
        for (_, m) in &due {
            members.insert(m.clone(), again);
        }
        Ok(due.into_iter().map(|(_, m)| m).collect())
    }

    async fn unschedule(&self, set: &str, member: &str) -> Result<(), StoreError> {
        let mut inner = MemoryStore::lock(self);
        if let Some((members, _)) = inner.schedules.get_mut(set) {
            members.remove(member);
        }
        Ok(())
    }

    async fn wave_admit(
        &self,
        name: &str,
        cost: Duration,
        limit: Duration,
        quiet: Duration,
    ) -> Result<WaveAdmit, StoreError> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let (cost, limit, quiet) = (ms(cost), ms(limit), ms(quiet));
        let now = epoch_ms();
        let mut inner = MemoryStore::lock(self);
        inner
            .waves
            .retain(|_, (v, till, _)| *v > now || *till > now);
        let (v, till, started) = inner.waves.entry(name.to_owned()).or_default();
        *v = (*v).max(now);
        let mut active = *till > now;
        if !active {
            *started = 0;
        }
        let mut began = false;
        if (*v).saturating_add(cost) - now > limit {
            if !active {
                *started = now;
                began = true;
            }
            *till = now.saturating_add(quiet);
            active = true;
        }
        *v = (*v).saturating_add(cost).min(now.saturating_add(limit));
        Ok(WaveAdmit {
            in_wave: active,
            started_ms: *started,
            began,
        })
    }

    /// One process: the steps need not be one atomic step (a card's own
    /// delivery is serialised per process before it gets here).
    async fn wave_enter(
        &self,
        key: &SentKey,
        name: &str,
        (cost, limit, quiet): (Duration, Duration, Duration),
        join: Option<Join<'_>>,
    ) -> Result<WaveEnter, StoreError> {
        if let Some(record) = self.card(key).await? {
            return Ok(WaveEnter::Taken(record));
        }
        let wave = self.wave_admit(name, cost, limit, quiet).await?;
        let added = match join {
            Some(j) if wave.in_wave && wave.started_ms == j.started_ms => {
                match self
                    .group_add(key, j.group, j.entry, j.set, j.due_ms)
                    .await?
                {
                    GroupAdd::Added(_) => true,
                    GroupAdd::Taken(record) => return Ok(WaveEnter::Taken(record)),
                }
            }
            _ => false,
        };
        Ok(WaveEnter::Admitted { wave, added })
    }

    async fn wave(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let now = epoch_ms();
        Ok(MemoryStore::lock(self)
            .waves
            .get(name)
            .filter(|(_, till, _)| *till > now)
            .map(|(_, _, started)| *started))
    }

    async fn group_add(
        &self,
        key: &SentKey,
        group: &str,
        entry: &str,
        set: &str,
        due_ms: u64,
    ) -> Result<GroupAdd, StoreError> {
        let now = Instant::now();
        let expires = now + self.ttl.done;
        let index = {
            let mut inner = MemoryStore::lock(self);
            if let Some(record) = inner.card(key, now) {
                return Ok(GroupAdd::Taken(record.clone()));
            }
            inner.put_card(
                key,
                CardRecord::InDigest {
                    id: group.to_owned(),
                },
                expires,
                self.capacity,
            );
            inner.groups.retain(|_, (_, until)| *until > now);
            let (entries, until) = inner
                .groups
                .entry(group.to_owned())
                .or_insert_with(|| (Vec::new(), expires));
            *until = expires;
            entries.push(entry.to_owned());
            entries.len() as u64 - 1
        };
        self.schedule(set, group, due_ms, self.ttl.done).await?;
        Ok(GroupAdd::Added(index))
    }

    async fn group_entries(
        &self,
        group: &str,
        from: u64,
        max: usize,
    ) -> Result<(u64, Vec<String>), StoreError> {
        let now = Instant::now();
        let inner = MemoryStore::lock(self);
        let Some((entries, _)) = inner.groups.get(group).filter(|(_, until)| *until > now) else {
            return Ok((0, Vec::new()));
        };
        let from = usize::try_from(from).unwrap_or(usize::MAX);
        Ok((
            entries.len() as u64,
            entries.iter().skip(from).take(max).cloned().collect(),
        ))
    }

    async fn campaign_join(
        &self,
        scope: &str,
        fingerprint: u64,
        member: &str,
        author: &str,
        window: Duration,
        max_distance: u32,
    ) -> Result<CampaignJoin, StoreError> {
        super::check_campaign_join(member, max_distance)?;
        let now = Instant::now();
        let now_ms = epoch_ms();
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let mut inner = MemoryStore::lock(self);
        inner.campaigns.retain(|c| c.until > now);
        // The nearest live campaign within reach (then the oldest), and
        // whether one of them holds this member already (a retry).
        let mut best: Option<(u32, u64, usize)> = None;
        let mut retry = None;
        for (i, c) in inner.campaigns.iter().enumerate() {
            let d = (c.fingerprint ^ fingerprint).count_ones();
            if c.scope != scope || d > max_distance || now_ms.saturating_sub(c.last_ms) > window_ms
            {
                continue;
            }
            if let Some(at) = c.members.iter().position(|m| m == member) {
                retry = Some((i, at));
            }
            if best.is_none_or(|(bd, bf, _)| (d, c.first_ms) < (bd, bf)) {
                best = Some((d, c.first_ms, i));
            }
        }
        if let Some((i, at)) = retry {
            return Ok(inner.campaigns[i].joined(at, false));
        }
        let until = now + window.saturating_add(CAMPAIGN_MARGIN);
        let mut total: usize = inner.campaigns.iter().map(|c| c.members.len()).sum();
        let i = match best {
            Some((_, _, i)) => {
                let c = &mut inner.campaigns[i];
                if total < self.capacity {
                    c.members.push(member.to_owned());
                    total += 1;
                }
                c.posts = c.posts.saturating_add(1);
                c.authors.insert(author.to_owned());
                c.last_ms = now_ms;
                c.until = until;
                i
            }
            None => {
                inner.campaigns.push_back(Campaign {
                    id: super::campaign_id(fingerprint, now_ms, scope),
                    scope: scope.to_owned(),
                    fingerprint,
                    first_ms: now_ms,
                    last_ms: now_ms,
                    members: vec![member.to_owned()],
                    posts: 1,
                    authors: HashSet::from([author.to_owned()]),
                    until,
                });
                total += 1;
                inner.campaigns.len() - 1
            }
        };
        let c = &inner.campaigns[i];
        let joined = c.joined(usize::try_from(c.posts).unwrap_or(usize::MAX) - 1, true);
        // The bound: whole campaigns go, oldest first, never the one just
        // joined (which stops remembering members once it alone fills it).
        while total > self.capacity {
            let Some(old) = inner.campaigns.iter().position(|c| c.id != joined.id) else {
                break;
            };
            if let Some(c) = inner.campaigns.remove(old) {
                total -= c.members.len();
            }
        }
        Ok(joined)
    }

    async fn park(&self, _list: &str, _entry: &str) -> Result<Parking, StoreError> {
        Ok(Parking::NotDurable)
    }

    async fn parked_lists(&self) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }

    async fn parked(&self, _list: &str) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }

    async fn unpark(&self, _list: &str, _entry: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

/// For tests: a store whose leases last `lease`.
#[cfg(test)]
pub fn short_lived(lease: std::time::Duration) -> MemoryStore {
    MemoryStore::new(
        Ttl {
            lease,
            done: std::time::Duration::from_secs(3600),
        },
        10_000,
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::dedupe::suite;

    #[tokio::test]
    async fn memory_store_follows_the_protocol() {
        let lease = Duration::from_secs(1);
        suite::run(&short_lived(lease), "mem", lease).await;
    }

    #[tokio::test]
    async fn memory_store_has_one_winner_under_contention() {
        suite::concurrent(&short_lived(Duration::from_secs(5)), "mem").await;
        suite::concurrent_reservations(&short_lived(Duration::from_secs(5)), "mem").await;
    }

    #[tokio::test]
    async fn memory_store_joins_campaigns() {
        suite::campaigns(&short_lived(Duration::from_secs(5)), "mem").await;
        suite::concurrent_campaigns(&short_lived(Duration::from_secs(5)), "mem").await;
    }

    #[tokio::test]
    async fn memory_store_schedules_and_leases_due_members() {
        suite::schedules(&short_lived(Duration::from_secs(5)), "mem").await;
    }

    #[tokio::test]
    async fn memory_store_stays_bounded() {
        let store = MemoryStore::new(
            Ttl {
                lease: Duration::from_secs(5),
                done: Duration::from_secs(3600),
            },
            100,
        );
        for i in 0..1_000 {
            let id = ExecutionId::parse(&format!("e{i}")).unwrap();
            let Claim::First(lease) = store.claim(&id).await.unwrap() else {
                panic!("fresh id not first")
            };
            store.complete(&lease).await.unwrap();
        }
        assert!(store.len() <= 100, "{} records", store.len());
        // The newest are still remembered.
        let last = ExecutionId::parse("e999").unwrap();
        assert_eq!(store.claim(&last).await.unwrap(), Claim::Done);
    }

    #[tokio::test]
    async fn campaigns_stay_bounded() {
        let store = MemoryStore::new(
            Ttl {
                lease: Duration::from_secs(5),
                done: Duration::from_secs(3600),
            },
            100,
        );
        let window = Duration::from_secs(600);
        // 500 campaigns of one member each, far apart.
        for i in 0..500u64 {
            let fp = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let joined = store
                .campaign_join("slack:C1", fp, &format!("m{i}"), "a", window, 0)
                .await
                .unwrap();
            assert_eq!(joined.posts, 1);
        }
        let remembered = |store: &MemoryStore| -> usize {
            MemoryStore::lock(store)
                .campaigns
                .iter()
                .map(|c| c.members.len())
                .sum()
        };
        assert!(remembered(&store) <= 100, "{}", remembered(&store));
        // The newest are kept: a retry is still a retry.
        let fp = 499u64.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let retry = store
            .campaign_join("slack:C1", fp, "m499", "a", window, 0)
            .await
            .unwrap();
        assert!(!retry.new_member);
        // One campaign alone outgrowing the bound keeps counting.
        for i in 0..300 {
            let joined = store
                .campaign_join(
                    "slack:C1",
                    7,
                    &format!("big{i}"),
                    &format!("a{i}"),
                    window,
                    0,
                )
                .await
                .unwrap();
            assert_eq!(joined.posts, i + 1);
            assert_eq!(joined.authors, i + 1);
        }
        assert!(remembered(&store) <= 100, "{}", remembered(&store));
    }

    #[tokio::test]
    async fn versioned_records_stay_bounded_and_expired_ones_go() {
        let store = MemoryStore::new(
            Ttl {
                lease: Duration::from_secs(5),
                done: Duration::from_secs(3600),
            },
            100,
        );
        let day = Duration::from_secs(86_400);
        for i in 0..1_000 {
            let name = format!("case{i}");
            let written = store.swap_versioned(&name, 0, "{}", day).await.unwrap();
            assert_eq!(written, Swapped::Written(1));
        }
        let kept = MemoryStore::lock(&store).versioned.len();
        assert!(kept <= 100, "{kept} cases");
        assert!(store.versioned("case0").await.unwrap().is_none());
        let newest = store.versioned("case999").await.unwrap().unwrap();
        assert_eq!(newest.revision, 1);
        // Rewriting a kept case does not count it twice.
        let again = store.swap_versioned("case999", 1, "{}", day).await.unwrap();
        assert_eq!(again, Swapped::Written(2));
        assert_eq!(MemoryStore::lock(&store).versioned_order.len(), kept);

        // Expired ones go as new ones come, long before the bound.
        let store = MemoryStore::new(store.ttl, 100);
        let short = Duration::from_millis(20);
        for i in 0..10 {
            let name = format!("brief{i}");
            store.swap_versioned(&name, 0, "{}", short).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
        let written = store.swap_versioned("later", 0, "{}", day).await.unwrap();
        assert_eq!(written, Swapped::Written(1));
        assert_eq!(MemoryStore::lock(&store).versioned.len(), 1);
    }
}
