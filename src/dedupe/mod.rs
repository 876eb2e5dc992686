//! Dedupe: Cativa delivers at least once, so every execution ID is claimed
//! before work starts and recorded as done after it succeeds. This module owns
//! every record modbridge shares between requests, replicas and restarts.
//!
//! Three kinds of record:
//! - a **claim** is a lease: set atomically with a random token and a short
//!   TTL, renewed while work runs, released by compare-and-delete (only the
//!   holder's token deletes it). A crashed worker's claim expires by itself.
//! - a **done** record keeps for days so late retries are recognised.
//! - a **begun** record is written with the first claim and kept (as long as
//!   done records) until the execution is done: a claim released or expired
//!   leaves it, so that [`DedupeStore::attempted`] (the no-card path's one
//!   read, instead of a claim) sees an unfinished attempt.
//! - a **card record** ([`CardRecord`], keyed by an opaque [`SentKey`]: one
//!   per customer, post and channel) goes `reserved{token, until}` →
//!   `sent{message}` | `dead_letter{reason}`: a reservation is taken
//!   atomically right before the platform call, by one worker of any replica,
//!   and turned into `sent` with a token check after the platform confirmed.
//!   A reservation that expired without `sent` means *unknown*, never "not
//!   sent". The sent records of earlier versions (`sent:` keys) still count
//!   as sent, and are still written for replicas of those versions.
//! - a **parked list** keeps opaque entries for a broken destination until
//!   they are replayed; only a durable store parks ([`Parking::NotDurable`]
//!   otherwise).
//! - a **circuit** is an opaque record per name (delivery: a broken target),
//!   created only if absent, so that of all replicas exactly one opens it,
//!   and deleted by exactly one; a **lock** is a named lease (a token, a
//!   TTL) that one worker of all replicas holds at a time.
//!
//! [`DedupeStore`] is implemented by [`MemoryStore`] (one process, bounded) and
//! [`RedisStore`] (shared by replicas); [`Store`] picks one at start-up.
//! Dedupe knows nothing of cards, destinations or delivery: keys, list names
//! and entries are strings built by its callers.

mod connect;
mod memory;
mod redis;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use connect::{RedisTarget, eviction_policy, eviction_warning};
pub use memory::MemoryStore;
pub use redis::RedisStore;

/// `X-Cativa-Execution-Id`: unique per event, the same on every retry.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ExecutionId(String);

impl ExecutionId {
    /// Visible ASCII only, 1 to 200 bytes: it becomes part of a Redis key.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let raw = raw.trim();
        if raw.is_empty() {
            Err("missing X-Cativa-Execution-Id header")
        } else if raw.len() > 200 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
            Err("X-Cativa-Execution-Id must be 1 to 200 visible ASCII characters")
        } else {
            Ok(Self(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExecutionId({:?})", self.0)
    }
}

/// Proof of holding a claim: the execution ID and the holder's random token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    id: ExecutionId,
    token: String,
}

impl Lease {
    fn new(id: ExecutionId) -> Self {
        let token = format!("{:032x}", rand::random::<u128>());
        Self { id, token }
    }

    pub fn execution_id(&self) -> &ExecutionId {
        &self.id
    }
}

/// The answer to "may I process this execution?"
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Nobody has done it and nobody is doing it: it is yours.
    First(Lease),
    /// Already processed successfully.
    Done,
    /// Someone holds a live lease; ask again after about `retry_after`.
    InFlight { retry_after: Duration },
}

/// A card the platform confirmed, as an opaque key. Delivery builds it
/// (`delivery::sent_key`); dedupe only stores it.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct SentKey(String);

impl SentKey {
    /// Wraps a key built by delivery, or read back from a parked entry.
    pub fn new(raw: String) -> Self {
        Self(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One card's record. Stored as JSON tagged by `state`; later states
/// (`in_digest{id}`) are added as variants. A state this version does not know
/// reads as [`CardRecord::Other`]: settled by a newer replica, not sent again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CardRecord {
    /// A worker is calling the platform; `until` is the lease's end in
    /// milliseconds since the Unix epoch, by the store's clock. `since` is
    /// when the earliest attempt whose outcome is still unknown began (same
    /// clock): set by the first reservation, carried over by every
    /// reservation that follows an expired one, so that any replica can look
    /// the card up on the platform from there. Absent in records of earlier
    /// versions.
    Reserved {
        token: String,
        until: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<u64>,
    },
    /// The platform confirmed it; `message` is where it is (opaque JSON
    /// built by delivery), `null` when unknown (an old record, a 2xx whose
    /// body could not be read).
    Sent {
        #[serde(default)]
        message: Option<serde_json::Value>,
    },
    /// The platform refused it as malformed: it is not sent again unless a
    /// person replays it.
    DeadLetter { reason: String },
    /// Listed in a grouped message (a wave's digest, a campaign card)
    /// instead of a card of its own: `id` names the group.
    InDigest { id: String },
    /// A state written by a newer version.
    #[serde(other)]
    Other,
}

/// Proof of holding a card's reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardLease {
    key: SentKey,
    token: String,
}

impl CardLease {
    fn new(key: SentKey) -> Self {
        let token = format!("{:032x}", rand::random::<u128>());
        Self { key, token }
    }

    pub fn key(&self) -> &SentKey {
        &self.key
    }
}

/// The answer to "may I send this card now?" ([`DedupeStore::reserve`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// Nobody has tried it: reserved for you.
    Fresh(CardLease),
    /// An earlier reservation expired without being confirmed: the platform
    /// may or may not have it. Reserved for you; the new reservation keeps
    /// the earlier attempt's start as its own `since`. `Attempted` says when
    /// the earlier attempts ran, `None` for a reservation by an earlier
    /// version (no `since` in it).
    Unknown(CardLease, Option<Attempted>),
    /// Settled before: sent, dead-lettered, or a newer version's state.
    Settled(CardRecord),
    /// Someone holds a live reservation; ask again after about `retry_after`.
    InFlight { retry_after: Duration },
}

/// When the unconfirmed attempts at a card ran, by the store's clock in
/// milliseconds since the Unix epoch: the earliest began at `since`, the
/// last one's reservation ended at `until` (no call of it outlived that: a
/// reservation outlasts its call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempted {
    pub since: u64,
    pub until: u64,
}

/// Proof of holding a named lock ([`DedupeStore::lock`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockLease {
    name: String,
    token: String,
}

impl LockLease {
    fn new(name: &str) -> Self {
        let token = format!("{:032x}", rand::random::<u128>());
        Self {
            name: name.to_owned(),
            token,
        }
    }
}

/// What [`DedupeStore::open_circuit`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CircuitOpened {
    /// Nobody had it open: this caller opened it (and says so).
    Opened,
    /// It was open already: the record as stored.
    AlreadyOpen(String),
}

/// A record that changes only by compare-and-swap on its revision
/// ([`DedupeStore::swap_versioned`]): moderator cases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// 1 for the first write, one more for each later one.
    pub revision: u64,
    /// Opaque to the store.
    pub body: String,
}

/// What [`DedupeStore::swap_versioned`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swapped {
    /// Written: the new revision.
    Written(u64),
    /// Someone wrote first: nothing written; the record as it is now (`None`:
    /// there is none, it expired).
    Stale(Option<Versioned>),
}

/// What [`DedupeStore::confirm`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmed {
    /// Our reservation became `sent`.
    Recorded,
    /// Recorded as sent, but our reservation had expired (and may have been
    /// taken by another worker, which may send it too).
    RecordedLate,
    /// It was already recorded as sent (by another worker): left as it was.
    AlreadySent,
}

/// Milliseconds since the Unix epoch, by this process's clock (the memory
/// store's; Redis uses its own `TIME`).
fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What became of a card handed to [`DedupeStore::park`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parking {
    /// Kept durably until it is replayed and unparked.
    Parked,
    /// This store cannot keep it across a restart (memory): nothing was kept,
    /// the caller must have the sender keep it instead.
    NotDurable,
}

/// How long records live.
#[derive(Debug, Clone, Copy)]
pub struct Ttl {
    /// A claim's lease: the processing deadline plus a margin.
    pub lease: Duration,
    /// How long a done record is kept.
    pub done: Duration,
}

/// The store could not be reached or answered nonsense: nothing was decided,
/// the caller must ask Cativa to retry.
#[derive(Debug, thiserror::Error)]
#[error("dedupe store unavailable: {0}")]
pub struct StoreError(pub String);

/// What [`DedupeStore::wave_admit`] found for one more card to a
/// destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaveAdmit {
    /// The destination is in a wave: the card may join its digest.
    pub in_wave: bool,
    /// When the wave began (ms since the epoch, store clock); 0 outside one.
    pub started_ms: u64,
    /// This card's overflow began the wave.
    pub began: bool,
}

/// What [`DedupeStore::wave_enter`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum WaveEnter {
    /// The card already has a record (reserved, sent, a dead letter, in a
    /// group): nothing counted, nothing written.
    Taken(CardRecord),
    /// Counted against the pace; `added`: recorded in the group given
    /// (the destination is in the wave that group belongs to).
    Admitted { wave: WaveAdmit, added: bool },
}

/// The group a card joins if its destination is in the wave that began at
/// `started_ms` ([`DedupeStore::wave_enter`]).
#[derive(Debug, Clone, Copy)]
pub struct Join<'a> {
    pub group: &'a str,
    pub started_ms: u64,
    /// The entry (opaque).
    pub entry: &'a str,
    /// The schedule the group goes into, and when it is due.
    pub set: &'a str,
    pub due_ms: u64,
}

/// What [`DedupeStore::group_add`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupAdd {
    /// Recorded in the group (the card's record says so) at this index.
    Added(u64),
    /// The card already has a record (reserved, sent, a dead letter, in a
    /// group): nothing written.
    Taken(CardRecord),
}

/// What [`DedupeStore::campaign_join`] found: the campaign a post joined
/// (or started), counted with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignJoin {
    /// Opaque, stable for the campaign's life (hex digits, `-`, digits).
    pub id: String,
    /// Distinct authors, this one included.
    pub authors: u32,
    /// Members, this one included.
    pub posts: u32,
    /// When its first and last members joined (ms since the epoch, the
    /// store's clock).
    pub first_ms: u64,
    pub last_ms: u64,
    /// Members that joined before this one, oldest first, at most
    /// [`CAMPAIGN_EARLIER`].
    pub earlier: Vec<String>,
    /// False when this exact member was in it already (a retry): nothing
    /// was counted again.
    pub new_member: bool,
}

/// At most this many earlier members come back from
/// [`DedupeStore::campaign_join`] (the first ones).
pub const CAMPAIGN_EARLIER: usize = 100;
/// The most bits [`DedupeStore::campaign_join`] takes as `max_distance`
/// (the index finds every campaign up to it; more is refused).
pub const CAMPAIGN_MAX_DISTANCE: u32 = 23;
/// Members longer than this are refused.
pub const CAMPAIGN_MEMBER_MAX: usize = 1024;

/// How long a campaign and its index outlive its window: a backstop, the
/// window decides.
const CAMPAIGN_MARGIN: Duration = Duration::from_secs(60);

/// Refuses what [`DedupeStore::campaign_join`] cannot take.
fn check_campaign_join(member: &str, max_distance: u32) -> Result<(), StoreError> {
    if member.len() > CAMPAIGN_MEMBER_MAX {
        return Err(StoreError(format!(
            "campaign member of {} bytes: at most {CAMPAIGN_MEMBER_MAX} (pass a key, not the post)",
            member.len()
        )));
    }
    if max_distance > CAMPAIGN_MAX_DISTANCE {
        return Err(StoreError(format!(
            "campaign distance of {max_distance} bits: at most {CAMPAIGN_MAX_DISTANCE} (raise campaign_similarity)"
        )));
    }
    Ok(())
}

/// A campaign's ID: its first fingerprint, when it began and its scope, so
/// that IDs of different destinations never meet.
fn campaign_id(fingerprint: u64, first_ms: u64, scope: &str) -> String {
    format!(
        "{fingerprint:016x}-{first_ms}-{}",
        campaign_scope_tag(scope)
    )
}

/// 8 hex digits of SHA-256 of the scope.
fn campaign_scope_tag(scope: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(scope.as_bytes());
    hex::encode(&digest[..4])
}

/// Everything modbridge keeps between requests: the claim/lease/done
/// protocol, sent records and parked lists. Every operation is atomic on its
/// own; an `Err` means the store could not answer: nothing was decided.
pub trait DedupeStore: Send + Sync {
    /// Takes the execution if nobody has done it and nobody is doing it.
    fn claim(&self, id: &ExecutionId) -> impl Future<Output = Result<Claim, StoreError>> + Send;
    /// Extends a lease still held; `false` when it was lost (expired and taken).
    fn renew(&self, lease: &Lease) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Gives the claim up so a retry can do the work (compare-and-delete).
    fn release(&self, lease: &Lease) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Records the execution as done and drops the claim.
    fn complete(&self, lease: &Lease) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Whether an attempt of this execution was ever claimed: done, claimed
    /// now, or claimed and not finished (released, or its lease expired).
    /// One read, no write: the no-card path asks it instead of claiming.
    fn attempted(&self, id: &ExecutionId) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The card's record, if any (an old-format sent record reads as
    /// `Sent { message: None }`).
    fn card(
        &self,
        key: &SentKey,
    ) -> impl Future<Output = Result<Option<CardRecord>, StoreError>> + Send;
    /// Reserves the card for one platform call for `lease`, atomically across
    /// replicas, unless it is settled or reserved by a live lease.
    fn reserve(
        &self,
        key: &SentKey,
        lease: Duration,
    ) -> impl Future<Output = Result<Reservation, StoreError>> + Send;
    /// Extends a reservation still held by `lease`'s token; `false` when it
    /// was taken or settled.
    fn renew_reservation(
        &self,
        lease: &CardLease,
        duration: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The platform confirmed the card: records `sent{message}` (kept as long
    /// as done records), whoever holds the reservation now, unless it is
    /// already sent.
    fn confirm(
        &self,
        lease: &CardLease,
        message: Option<&serde_json::Value>,
    ) -> impl Future<Output = Result<Confirmed, StoreError>> + Send;
    /// The platform refused the card as malformed: records
    /// `dead_letter{reason}`, unless it is sent. `false` if it was sent.
    fn dead_letter(
        &self,
        lease: &CardLease,
        reason: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The platform said no (the card is not there): gives the reservation
    /// up if still held (compare-and-delete), so the next attempt is fresh.
    fn release_reservation(
        &self,
        lease: &CardLease,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Forgets a dead letter so that a person can replay the card; `false`
    /// if the record is not a dead letter.
    fn clear_dead_letter(
        &self,
        key: &SentKey,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Whether the store answers (for `/readyz`).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Which run of the store answers: it changes when the store restarts
    /// (Redis's `run_id`), so that callers can tell a restart from an outage.
    fn run_id(&self) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// Opens the circuit `name` with the opaque `record` for `ttl`, unless
    /// it is open already (atomic across replicas: one caller opens it).
    fn open_circuit(
        &self,
        name: &str,
        record: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<CircuitOpened, StoreError>> + Send;
    /// The circuit's record while it is open.
    fn circuit(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    /// Closes the circuit; `true` for the one caller that closed it.
    fn close_circuit(&self, name: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Takes the lock `name` for `ttl` unless someone holds it.
    fn lock(
        &self,
        name: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<LockLease>, StoreError>> + Send;
    /// Extends a lock still held; `false` when it was lost.
    fn renew_lock(
        &self,
        lease: &LockLease,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Gives the lock up if still held (compare-and-delete).
    fn unlock(&self, lease: &LockLease) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The versioned record `name`, if there is one.
    fn versioned(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Versioned>, StoreError>> + Send;
    /// Writes `body` as revision `expected + 1` of `name` (kept `ttl`) if its
    /// revision is still `expected` (0: there is none), atomically.
    fn swap_versioned(
        &self,
        name: &str,
        expected: u64,
        body: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Swapped, StoreError>> + Send;
    /// Adds each `(field, n)` to the counters of `name` (a field absent
    /// counts from 0; `n` may be negative) and keeps them `ttl` from now, in
    /// one atomic step. Counters never go below 0.
    fn add_counts(
        &self,
        name: &str,
        counts: &[(String, i64)],
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every counter of `name` (empty when there is none).
    fn counts(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<BTreeMap<String, i64>, StoreError>> + Send;
    /// Marks `name` as seen for `ttl`; `true` for the first caller within
    /// that time, `false` for every later one (a replayed request).
    fn first_sighting(
        &self,
        name: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Puts `member` in the schedule `set`, due at `due_ms` (ms since the
    /// Unix epoch), unless it is there already (its due time is kept);
    /// `true` when added. The set is kept at least `ttl` after this call.
    fn schedule(
        &self,
        set: &str,
        member: &str,
        due_ms: u64,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Up to `limit` members of `set` due at `now_ms`, earliest first, each
    /// made due again at `now_ms + lease` in the same atomic step: two
    /// callers never take the same member, and a member whose taker never
    /// calls [`DedupeStore::unschedule`] comes due again after the lease.
    fn take_due(
        &self,
        set: &str,
        now_ms: u64,
        lease: Duration,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
    /// Removes `member` from `set` (its work is done).
    fn unschedule(
        &self,
        set: &str,
        member: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Counts one more card for the destination `name` against its pace:
    /// each costs `cost` of the destination's time, and a destination whose
    /// queue would pass `limit` overflows. An overflow begins (or extends) a
    /// wave that ends `quiet` after the last overflow. Every card counts,
    /// those that join a digest too (the queue is virtual, capped at
    /// `limit`), so a wave lasts as long as cards come faster than the pace.
    fn wave_admit(
        &self,
        name: &str,
        cost: Duration,
        limit: Duration,
        quiet: Duration,
    ) -> impl Future<Output = Result<WaveAdmit, StoreError>> + Send;
    /// For the card `key` to the destination `name`, in one atomic step:
    /// nothing if the card has a record ([`WaveEnter::Taken`]); else
    /// [`DedupeStore::wave_admit`], and, when the destination is in the
    /// wave `join` names, [`DedupeStore::group_add`] into its group. One
    /// round trip for the common case of a wave.
    fn wave_enter(
        &self,
        key: &SentKey,
        name: &str,
        pace: (Duration, Duration, Duration),
        join: Option<Join<'_>>,
    ) -> impl Future<Output = Result<WaveEnter, StoreError>> + Send;
    /// The wave of `name` if one is on: when it began (ms, store clock).
    fn wave(&self, name: &str) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;
    /// Records the card `key` as listed in the group `group` and appends
    /// `entry` (opaque) to the group's entries, in one atomic step, unless
    /// the card already has a record; schedules `group` in `set` at
    /// `due_ms` (set-if-absent, like [`DedupeStore::schedule`]). The record
    /// and the entries are kept as long as sent records.
    fn group_add(
        &self,
        key: &SentKey,
        group: &str,
        entry: &str,
        set: &str,
        due_ms: u64,
    ) -> impl Future<Output = Result<GroupAdd, StoreError>> + Send;
    /// The number of entries in `group` and those from index `from` (up to
    /// `max`), oldest first.
    fn group_entries(
        &self,
        group: &str,
        from: u64,
        max: usize,
    ) -> impl Future<Output = Result<(u64, Vec<String>), StoreError>> + Send;

    /// Adds `member` (opaque, at most [`CAMPAIGN_MEMBER_MAX`] bytes) posted
    /// by `author` with the 64-bit `fingerprint` to the campaign of `scope`
    /// (delivery passes the target's text form) whose first member's
    /// fingerprint is at most `max_distance` bits away (at most
    /// [`CAMPAIGN_MAX_DISTANCE`]) and whose last member joined within
    /// `window`, the nearest if several (then the oldest), or starts a new
    /// one. One atomic step: concurrent joiners of similar posts end in one
    /// campaign. A member already in a campaign found this way (a retry)
    /// counts nothing again (`new_member` false). A campaign and its index
    /// are kept `window` plus a minute after its last member.
    fn campaign_join(
        &self,
        scope: &str,
        fingerprint: u64,
        member: &str,
        author: &str,
        window: Duration,
        max_distance: u32,
    ) -> impl Future<Output = Result<CampaignJoin, StoreError>> + Send;

    /// Appends `entry` to the parked list `list` (and lists `list` among
    /// [`DedupeStore::parked_lists`]), or says it cannot keep it durably.
    fn park(
        &self,
        list: &str,
        entry: &str,
    ) -> impl Future<Output = Result<Parking, StoreError>> + Send;
    /// Every list that has (or had) parked entries, sorted.
    fn parked_lists(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
    /// The entries of one list, oldest first.
    fn parked(&self, list: &str) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
    /// Removes one entry (delivered, or found already sent).
    fn unpark(
        &self,
        list: &str,
        entry: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The store in use, chosen at start-up.
#[derive(Clone)]
pub enum Store {
    Memory(MemoryStore),
    Redis(RedisStore),
}

impl Store {
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Memory(_) => "memory",
            Store::Redis(_) => "redis",
        }
    }
}

impl DedupeStore for Store {
    async fn claim(&self, id: &ExecutionId) -> Result<Claim, StoreError> {
        match self {
            Store::Memory(s) => s.claim(id).await,
            Store::Redis(s) => s.claim(id).await,
        }
    }
    async fn renew(&self, lease: &Lease) -> Result<bool, StoreError> {
        match self {
            Store::Memory(s) => s.renew(lease).await,
            Store::Redis(s) => s.renew(lease).await,
        }
    }
    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        match self {
            Store::Memory(s) => s.release(lease).await,
            Store::Redis(s) => s.release(lease).await,
        }
    }
    async fn complete(&self, lease: &Lease) -> Result<(), StoreError> {
        match self {
            Store::Memory(s) => s.complete(lease).await,
            Store::Redis(s) => s.complete(lease).await,
        }
    }
    async fn attempted(&self, id: &ExecutionId) -> Result<bool, StoreError> {
        match self {
            Store::Memory(s) => s.attempted(id).await,
            Store::Redis(s) => s.attempted(id).await,
        }
    }
    async fn card(&self, key: &SentKey) -> Result<Option<CardRecord>, StoreError> {
        match self {
            Store::Memory(s) => s.card(key).await,
            Store::Redis(s) => s.card(key).await,
        }
    }
    async fn reserve(&self, key: &SentKey, lease: Duration) -> Result<Reservation, StoreError> {
        match self {
            Store::Memory(s) => s.reserve(key, lease).await,
            Store::Redis(s) => s.reserve(key, lease).await,
        }
    }
    async fn renew_reservation(
        &self,
        lease: &CardLease,
        duration: Duration,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Memory(s) => s.renew_reservation(lease, duration).await,
            Store::Redis(s) => s.renew_reservation(lease, duration).await,
        }
    }
    async fn confirm(
        &self,
        lease: &CardLease,
        message: Option<&serde_json::Value>,
    ) -> Result<Confirmed, StoreError> {
        match self {
            Store::Memory(s) => s.confirm(lease, message).await,
            Store::Redis(s) => s.confirm(lease, message).await,
        }
    }
    async fn dead_letter(&self, lease: &CardLease, reason: &str) -> Result<bool, StoreError> {
        match self {
            Store::Memory(s) => s.dead_letter(lease, reason).await,
            Store::Redis(s) => s.dead_letter(lease, reason).await,
        }
    }
    async fn release_reservation(&self, lease: &CardLease) -> Result<(), StoreError> {
        match self {
            Store::Memory(s) => s.release_reservation(lease).await,
            Store::Redis(s) => s.release_reservation(lease).await,
        }
    }
    async fn clear_dead_letter(&self, key: &SentKey) -> Result<bool, StoreError> {
        match self {
            Store::Memory(s) => s.clear_dead_letter(key).await,
            Store::Redis(s) => s.clear_dead_letter(key).await,
        }
    }
    async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Memory(s) => s.ping().await,
            Store::Redis(s) => s.ping().await,
        }
    }
    async fn run_id(&self) -> Result<String, StoreError> {
        match self {
            Store::Memory(s) => s.run_id().await,
            Store::Redis(s) => s.run_id().await,
        }
    }
    async fn open_circuit(
        &self,
        name: &str,
        record: &str,
        ttl: Duration,
    ) -> Result<CircuitOpened, StoreError> {
        match self {
            Store::Memory(s) => s.open_circuit(name, record, ttl).await,
            Store::Redis(s) => s.open_circuit(name, record, ttl).await,
        }
    }
    async fn circuit(&self, name: &str) -> Result<Option<String>, StoreError> {
        match self {
            Store::Memory(s) => s.circuit(name).await,
            Store::Redis(s) => s.circuit(name).await,
        }
    }
    async fn close_circuit(&self, name: &str) -> Result<bool, StoreError> {
        match self {
            Store::Memory(s) => s.close_circuit(name).await,
            Store::Redis(s) => s.close_circuit(name).await,
        }
    }
    async fn lock(&self, name: &str, ttl: Duration) -> Result<Option<LockLease>, StoreError> {
        match self {
            Store::Memory(s) => s.lock(name, ttl).await,
            Store::Redis(s) => s.lock(name, ttl).await,
        }
    }
    async fn renew_lock(&self, lease: &LockLease, ttl: Duration) -> Result<bool, StoreError> {
        match self {
            Store::Memory(s) => s.renew_lock(lease, ttl).await,
            Store::Redis(s) => s.renew_lock(lease, ttl).await,
        }
    }
    async fn unlock(&self, lease: &LockLease) -> Result<(), StoreError> {
        match self {
            Store::Memory(s) => s.unlock(lease).await,
            Store::Redis(s) => s.unlock(lease).await,
        }
    }
    async fn versioned(&self, name: &str) -> Result<Option<Versioned>, StoreError> {
        match self {
            Store::Memory(s) => s.versioned(name).await,
            Store::Redis(s) => s.versioned(name).await,
        }
    }
    async fn swap_versioned(
        &self,
        name: &str,
        expected: u64,
        body: &str,
        ttl: Duration,
    ) -> Result<Swapped, StoreError> {
        match self {
            Store::Memory(s) => s.swap_versioned(name, expected, body, ttl).await,
            Store::Redis(s) => s.swap_versioned(name, expected, body, ttl).await,
        }
    }
    async fn add_counts(
        &self,
        name: &str,
        counts: &[(String, i64)],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(s) => s.add_counts(name, counts, ttl).await,
            Store::Redis(s) => s.add_counts(name, counts, ttl).await,
        }
    }
    async fn counts(&self, name: &str) -> Result<BTreeMap<String, i64>, StoreError> {
        match self {
            Store::Memory(s) => s.counts(name).await,
            Store::Redis(s) => s.counts(name).await,
        }
    }
    async fn first_sighting(&self, name: &str, ttl: Duration) -> Result<bool, StoreError> {
        match self {
            Store::Memory(s) => s.first_sighting(name, ttl).await,
            Store::Redis(s) => s.first_sighting(name, ttl).await,
        }
    }
    async fn schedule(
        &self,
        set: &str,
        member: &str,
        due_ms: u64,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Memory(s) => s.schedule(set, member, due_ms, ttl).await,
            Store::Redis(s) => s.schedule(set, member, due_ms, ttl).await,
        }
    }
    async fn take_due(
        &self,
        set: &str,
        now_ms: u64,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Memory(s) => s.take_due(set, now_ms, lease, limit).await,
            Store::Redis(s) => s.take_due(set, now_ms, lease, limit).await,
        }
    }
    async fn unschedule(&self, set: &str, member: &str) -> Result<(), StoreError> {
        match self {
            Store::Memory(s) => s.unschedule(set, member).await,
            Store::Redis(s) => s.unschedule(set, member).await,
        }
    }
    async fn wave_admit(
        &self,
        name: &str,
        cost: Duration,
        limit: Duration,
        quiet: Duration,
    ) -> Result<WaveAdmit, StoreError> {
        match self {
            Store::Memory(s) => s.wave_admit(name, cost, limit, quiet).await,
            Store::Redis(s) => s.wave_admit(name, cost, limit, quiet).await,
        }
    }
    async fn wave_enter(
        &self,
        key: &SentKey,
        name: &str,
        pace: (Duration, Duration, Duration),
        join: Option<Join<'_>>,
    ) -> Result<WaveEnter, StoreError> {
        match self {
            Store::Memory(s) => s.wave_enter(key, name, pace, join).await,
            Store::Redis(s) => s.wave_enter(key, name, pace, join).await,
        }
    }
    async fn wave(&self, name: &str) -> Result<Option<u64>, StoreError> {
        match self {
            Store::Memory(s) => s.wave(name).await,
            Store::Redis(s) => s.wave(name).await,
        }
    }
    async fn group_add(
        &self,
        key: &SentKey,
        group: &str,
        entry: &str,
        set: &str,
        due_ms: u64,
    ) -> Result<GroupAdd, StoreError> {
        match self {
            Store::Memory(s) => s.group_add(key, group, entry, set, due_ms).await,
            Store::Redis(s) => s.group_add(key, group, entry, set, due_ms).await,
        }
    }
    async fn group_entries(
        &self,
        group: &str,
        from: u64,
        max: usize,
    ) -> Result<(u64, Vec<String>), StoreError> {
        match self {
            Store::Memory(s) => s.group_entries(group, from, max).await,
            Store::Redis(s) => s.group_entries(group, from, max).await,
        }
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
        match self {
            Store::Memory(s) => {
                s.campaign_join(scope, fingerprint, member, author, window, max_distance)
                    .await
            }
            Store::Redis(s) => {
                s.campaign_join(scope, fingerprint, member, author, window, max_distance)
                    .await
            }
        }
    }
    async fn park(&self, list: &str, entry: &str) -> Result<Parking, StoreError> {
        match self {
            Store::Memory(s) => s.park(list, entry).await,
            Store::Redis(s) => s.park(list, entry).await,
        }
    }
    async fn parked_lists(&self) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Memory(s) => s.parked_lists().await,
            Store::Redis(s) => s.parked_lists().await,
        }
    }
    async fn parked(&self, list: &str) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Memory(s) => s.parked(list).await,
            Store::Redis(s) => s.parked(list).await,
        }
    }
    async fn unpark(&self, list: &str, entry: &str) -> Result<(), StoreError> {
        match self {
            Store::Memory(s) => s.unpark(list, entry).await,
            Store::Redis(s) => s.unpark(list, entry).await,
        }
    }
}

/// One suite of semantics, run against every implementation (the memory store
/// in unit tests, Redis in `tests/dedupe_redis.rs`).
#[doc(hidden)]
// Test code compiled into the library so that `tests/` can run it against
// Redis: a panic is how it reports a failed expectation.
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub mod suite {
    use super::*;

    fn id(s: &str) -> ExecutionId {
        ExecutionId::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn first(claim: Claim) -> Lease {
        match claim {
            Claim::First(lease) => lease,
            other => panic!("expected First, got {other:?}"),
        }
    }

    /// Runs every check; `prefix` keeps IDs apart between runs. The store's
    /// lease must be short (≤ 1 s) for the expiry check.
    pub async fn run<S: DedupeStore>(store: &S, prefix: &str, lease: Duration) {
        let a = id(&format!("{prefix}-a"));
        assert!(!store.attempted(&a).await.unwrap(), "never claimed");
        let lease_a = first(store.claim(&a).await.unwrap());
        assert!(store.attempted(&a).await.unwrap(), "claimed");
        match store.claim(&a).await.unwrap() {
            Claim::InFlight { retry_after } => {
                assert!(retry_after <= lease + Duration::from_secs(1))
            }
            other => panic!("second claim while held: {other:?}"),
        }
        assert!(store.renew(&lease_a).await.unwrap());
        store.complete(&lease_a).await.unwrap();
        assert!(store.attempted(&a).await.unwrap(), "done");
        assert_eq!(store.claim(&a).await.unwrap(), Claim::Done);
        assert!(
            !store.renew(&lease_a).await.unwrap(),
            "renewing a completed claim"
        );

        // Release lets a retry do the work.
        let b = id(&format!("{prefix}-b"));
        let lease_b = first(store.claim(&b).await.unwrap());
        store.release(&lease_b).await.unwrap();
        // A released attempt is unfinished, not forgotten.
        assert!(store.attempted(&b).await.unwrap(), "released");
        let lease_b2 = first(store.claim(&b).await.unwrap());
        // Only the holder's token deletes the claim.
        store.release(&lease_b).await.unwrap();
        assert!(matches!(
            store.claim(&b).await.unwrap(),
            Claim::InFlight { .. }
        ));
        store.release(&lease_b2).await.unwrap();

        // A holder that dies (stops renewing) loses the claim by expiry.
        let c = id(&format!("{prefix}-c"));
        let dead = first(store.claim(&c).await.unwrap());
        tokio::time::sleep(lease + Duration::from_millis(150)).await;
        assert!(store.attempted(&c).await.unwrap(), "lease expired");
        let retry = first(store.claim(&c).await.unwrap());
        assert!(
            !store.renew(&dead).await.unwrap(),
            "an expired lease renewed"
        );
        store.release(&dead).await.unwrap();
        assert!(matches!(
            store.claim(&c).await.unwrap(),
            Claim::InFlight { .. }
        ));
        store.complete(&retry).await.unwrap();
        assert_eq!(store.claim(&c).await.unwrap(), Claim::Done);

        store.ping().await.unwrap();
        let run = store.run_id().await.unwrap();
        assert!(!run.is_empty());
        assert_eq!(store.run_id().await.unwrap(), run, "the same run");
        cards(store, prefix, lease).await;
        parking(store, prefix).await;
        circuits(store, prefix, lease).await;
    }

    /// Circuits open once and close once; locks are held by one at a time
    /// and expire. `lease` ≤ 1 s.
    pub async fn circuits<S: DedupeStore>(store: &S, prefix: &str, lease: Duration) {
        let name = format!("{prefix}-slack:C0123ABCD");
        assert_eq!(store.circuit(&name).await.unwrap(), None);
        assert_eq!(
            store
                .open_circuit(&name, "{\"n\":1}", lease * 10)
                .await
                .unwrap(),
            CircuitOpened::Opened
        );
        assert_eq!(
            store
                .open_circuit(&name, "{\"n\":2}", lease * 10)
                .await
                .unwrap(),
            CircuitOpened::AlreadyOpen("{\"n\":1}".into())
        );
        assert_eq!(
            store.circuit(&name).await.unwrap().as_deref(),
            Some("{\"n\":1}")
        );
        assert!(store.close_circuit(&name).await.unwrap());
        assert!(!store.close_circuit(&name).await.unwrap(), "closed once");
        assert_eq!(store.circuit(&name).await.unwrap(), None);
        // A circuit left open expires.
        store.open_circuit(&name, "{}", lease).await.unwrap();
        tokio::time::sleep(lease + Duration::from_millis(150)).await;
        assert_eq!(store.circuit(&name).await.unwrap(), None);

        let lock = format!("{prefix}-probe");
        let held = store.lock(&lock, lease).await.unwrap().expect("free");
        assert_eq!(store.lock(&lock, lease).await.unwrap(), None, "held");
        assert!(store.renew_lock(&held, lease).await.unwrap());
        store.unlock(&held).await.unwrap();
        let next = store.lock(&lock, lease).await.unwrap().expect("released");
        // Only the holder's token releases it; an expired lock is free.
        store.unlock(&held).await.unwrap();
        assert_eq!(store.lock(&lock, lease).await.unwrap(), None);
        tokio::time::sleep(lease + Duration::from_millis(150)).await;
        assert!(!store.renew_lock(&next, lease).await.unwrap());
        let third = store.lock(&lock, lease).await.unwrap().expect("expired");
        store.unlock(&third).await.unwrap();

        // A request is seen once within its window, and again after it.
        let seen = format!("{prefix}-interaction");
        assert!(store.first_sighting(&seen, lease).await.unwrap());
        assert!(!store.first_sighting(&seen, lease).await.unwrap(), "replay");
        assert!(
            store
                .first_sighting(&format!("{seen}-other"), lease)
                .await
                .unwrap()
        );
        tokio::time::sleep(lease + Duration::from_millis(150)).await;
        assert!(store.first_sighting(&seen, lease).await.unwrap(), "expired");

        // Versioned records: written only on the revision read.
        let rec = format!("{prefix}-case");
        assert_eq!(store.versioned(&rec).await.unwrap(), None);
        let long = lease * 10;
        assert_eq!(
            store.swap_versioned(&rec, 0, "a", long).await.unwrap(),
            Swapped::Written(1)
        );
        let one = Versioned {
            revision: 1,
            body: "a".into(),
        };
        assert_eq!(
            store.swap_versioned(&rec, 0, "b", long).await.unwrap(),
            Swapped::Stale(Some(one.clone())),
            "created once"
        );
        assert_eq!(
            store.swap_versioned(&rec, 1, "c", long).await.unwrap(),
            Swapped::Written(2)
        );
        assert_eq!(
            store.swap_versioned(&rec, 1, "d", long).await.unwrap(),
            Swapped::Stale(Some(Versioned {
                revision: 2,
                body: "c".into()
            })),
            "a writer on an old revision loses"
        );
        assert_eq!(store.versioned(&rec).await.unwrap().unwrap().body, "c");
        let short = format!("{prefix}-short-case");
        store.swap_versioned(&short, 0, "x", lease).await.unwrap();
        tokio::time::sleep(lease + Duration::from_millis(150)).await;
        assert_eq!(store.versioned(&short).await.unwrap(), None, "expired");
        assert_eq!(
            store.swap_versioned(&short, 1, "y", lease).await.unwrap(),
            Swapped::Stale(None)
        );

        // Counters: added atomically, never below 0, gone with their TTL.
        let day = format!("{prefix}-stats:2026-11-30");
        assert!(store.counts(&day).await.unwrap().is_empty());
        let add = |pairs: &[(&str, i64)]| -> Vec<(String, i64)> {
            pairs.iter().map(|(f, n)| ((*f).to_owned(), *n)).collect()
        };
        store
            .add_counts(&day, &add(&[("a", 2), ("b", 1)]), long)
            .await
            .unwrap();
        store
            .add_counts(&day, &add(&[("a", 1), ("b", -3)]), long)
            .await
            .unwrap();
        let counts = store.counts(&day).await.unwrap();
        assert_eq!(
            counts.into_iter().collect::<Vec<_>>(),
            vec![("a".to_owned(), 3), ("b".to_owned(), 0)],
            "added, and floored at 0"
        );
        let brief = format!("{prefix}-stats:brief");
        store
            .add_counts(&brief, &add(&[("a", 1)]), lease)
            .await
            .unwrap();
        tokio::time::sleep(lease + Duration::from_millis(150)).await;
        assert!(store.counts(&brief).await.unwrap().is_empty(), "expired");
    }

    fn reserved(r: Reservation) -> CardLease {
        match r {
            Reservation::Fresh(lease) => lease,
            other => panic!("expected Fresh, got {other:?}"),
        }
    }

    /// Card records: reserve → sent | dead letter, with token checks; an
    /// expired reservation is unknown, never "not sent". `lease` ≤ 1 s.
    pub async fn cards<S: DedupeStore>(store: &S, prefix: &str, lease: Duration) {
        // Opaque keys, control characters included.
        let key = |n: &str| SentKey::new(format!("{prefix}-cust\u{1f}{n}\u{1f}slack:C0123ABCD"));
        let message = serde_json::json!({"platform": "slack", "channel": "C1", "ts": "1.2"});

        let p1 = key("P1");
        assert_eq!(store.card(&p1).await.unwrap(), None);
        let mine = reserved(store.reserve(&p1, lease * 5).await.unwrap());
        assert!(matches!(
            store.card(&p1).await.unwrap(),
            Some(CardRecord::Reserved { .. })
        ));
        match store.reserve(&p1, lease * 5).await.unwrap() {
            Reservation::InFlight { retry_after } => {
                assert!(retry_after <= lease * 5 + Duration::from_secs(1))
            }
            other => panic!("second reservation while held: {other:?}"),
        }
        assert!(store.renew_reservation(&mine, lease * 5).await.unwrap());
        assert_eq!(
            store.confirm(&mine, Some(&message)).await.unwrap(),
            Confirmed::Recorded
        );
        let sent = CardRecord::Sent {
            message: Some(message.clone()),
        };
        assert_eq!(store.card(&p1).await.unwrap(), Some(sent.clone()));
        assert_eq!(
            store.reserve(&p1, lease).await.unwrap(),
            Reservation::Settled(sent.clone())
        );
        assert!(!store.renew_reservation(&mine, lease).await.unwrap());
        // A second confirmation (another worker) changes nothing.
        assert_eq!(
            store.confirm(&mine, None).await.unwrap(),
            Confirmed::AlreadySent
        );
        assert_eq!(store.card(&p1).await.unwrap(), Some(sent));
        assert!(!store.dead_letter(&mine, "late").await.unwrap());

        // A definite failure gives the reservation back: the next is fresh.
        let p2 = key("P2");
        let failed = reserved(store.reserve(&p2, lease * 5).await.unwrap());
        store.release_reservation(&failed).await.unwrap();
        assert_eq!(store.card(&p2).await.unwrap(), None);
        let again = reserved(store.reserve(&p2, lease * 5).await.unwrap());
        // Only the holder's token releases it.
        store.release_reservation(&failed).await.unwrap();
        assert!(matches!(
            store.reserve(&p2, lease).await.unwrap(),
            Reservation::InFlight { .. }
        ));
        assert!(!store.renew_reservation(&failed, lease).await.unwrap());
        store.confirm(&again, None).await.unwrap();
        assert_eq!(
            store.card(&p2).await.unwrap(),
            Some(CardRecord::Sent { message: None })
        );

        // A holder that dies leaves an expired reservation: unknown.
        let p3 = key("P3");
        let dead = reserved(store.reserve(&p3, lease).await.unwrap());
        tokio::time::sleep(lease + Duration::from_millis(150)).await;
        let (next, earlier) = match store.reserve(&p3, lease * 5).await.unwrap() {
            Reservation::Unknown(lease, Some(earlier)) => (lease, earlier),
            other => panic!("expired reservation: {other:?}"),
        };
        assert!(earlier.since < earlier.until, "{earlier:?}");
        // The new reservation keeps the first attempt's start: a lookup
        // after it expires too covers both attempts.
        let Some(CardRecord::Reserved { since, .. }) = store.card(&p3).await.unwrap() else {
            panic!("reserved");
        };
        assert_eq!(since, Some(earlier.since));
        assert!(store.renew_reservation(&next, lease * 5).await.unwrap());
        assert!(matches!(
            store.card(&p3).await.unwrap(),
            Some(CardRecord::Reserved { since: Some(s), .. }) if s == earlier.since
        ));
        assert!(!store.renew_reservation(&dead, lease).await.unwrap());
        store.release_reservation(&dead).await.unwrap();
        // The late holder's confirmation still records the card, and says so.
        assert_eq!(
            store.confirm(&dead, None).await.unwrap(),
            Confirmed::RecordedLate
        );
        assert_eq!(
            store.confirm(&next, None).await.unwrap(),
            Confirmed::AlreadySent
        );

        // Dead letters stay until a person clears them.
        let p4 = key("P4");
        let refused = reserved(store.reserve(&p4, lease * 5).await.unwrap());
        assert!(store.dead_letter(&refused, "invalid_blocks").await.unwrap());
        let dead_letter = CardRecord::DeadLetter {
            reason: "invalid_blocks".into(),
        };
        assert_eq!(
            store.reserve(&p4, lease).await.unwrap(),
            Reservation::Settled(dead_letter.clone())
        );
        assert!(!store.clear_dead_letter(&key("P1")).await.unwrap());
        assert!(store.clear_dead_letter(&p4).await.unwrap());
        assert_eq!(store.card(&p4).await.unwrap(), None);
        let replay = reserved(store.reserve(&p4, lease * 5).await.unwrap());
        assert_eq!(
            store.confirm(&replay, None).await.unwrap(),
            Confirmed::Recorded
        );
    }

    /// Many concurrent reservations of one card: exactly one wins.
    pub async fn concurrent_reservations<S: DedupeStore + Clone + 'static>(
        store: &S,
        prefix: &str,
    ) {
        let key = SentKey::new(format!("{prefix}-race\u{1f}P\u{1f}slack:C1"));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (store, key) = (store.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                store.reserve(&key, Duration::from_secs(5)).await.unwrap()
            }));
        }
        let mut winners = 0;
        for t in tasks {
            if matches!(t.await.unwrap(), Reservation::Fresh(_)) {
                winners += 1;
            }
        }
        assert_eq!(winners, 1);
    }

    /// A durable store keeps parked entries per list, oldest first, until
    /// unparked; a store that cannot keep them says so and keeps nothing.
    pub async fn parking<S: DedupeStore>(store: &S, prefix: &str) {
        let list = format!("{prefix}-discord-webhook:$HOOK");
        let other = format!("{prefix}-slack:C0123ABCD");
        let (first, second) = ("{\"n\":1}", "{\"n\":2}");
        match store.park(&list, first).await.unwrap() {
            Parking::NotDurable => {
                assert!(store.parked_lists().await.unwrap().is_empty());
                assert!(store.parked(&list).await.unwrap().is_empty());
                store.unpark(&list, first).await.unwrap();
                return;
            }
            Parking::Parked => {}
        }
        assert_eq!(store.park(&list, second).await.unwrap(), Parking::Parked);
        assert_eq!(store.park(&other, first).await.unwrap(), Parking::Parked);
        let lists = store.parked_lists().await.unwrap();
        assert!(lists.contains(&list) && lists.contains(&other), "{lists:?}");
        assert_eq!(store.parked(&list).await.unwrap(), [first, second]);
        store.unpark(&list, first).await.unwrap();
        assert_eq!(store.parked(&list).await.unwrap(), [second]);
        assert_eq!(store.parked(&other).await.unwrap(), [first]);
        // Unparking what is not there changes nothing.
        store.unpark(&list, first).await.unwrap();
        assert_eq!(store.parked(&list).await.unwrap(), [second]);
        store.unpark(&list, second).await.unwrap();
        store.unpark(&other, first).await.unwrap();
        assert!(store.parked(&list).await.unwrap().is_empty());
    }

    /// Schedules: added once (the first due time kept), taken when due
    /// (earliest first, at most `limit`), made due again after the lease
    /// unless unscheduled; many concurrent takers never share a member.
    pub async fn schedules<S: DedupeStore + Clone + 'static>(store: &S, prefix: &str) {
        let set = format!("{prefix}-escalations");
        let ttl = Duration::from_secs(60);
        let lease = Duration::from_millis(300);
        let t = epoch_ms();
        assert!(store.schedule(&set, "b", t + 20, ttl).await.unwrap());
        assert!(store.schedule(&set, "a", t + 10, ttl).await.unwrap());
        assert!(
            !store.schedule(&set, "a", t + 5_000, ttl).await.unwrap(),
            "scheduled once: its first due time stays"
        );
        assert!(
            store
                .schedule(&set, "later", t + 60_000, ttl)
                .await
                .unwrap()
        );
        assert!(store.take_due(&set, t, lease, 10).await.unwrap().is_empty());
        assert_eq!(
            store.take_due(&set, t + 30, lease, 1).await.unwrap(),
            ["a"],
            "earliest first, at most `limit`"
        );
        assert_eq!(
            store.take_due(&set, t + 30, lease, 10).await.unwrap(),
            ["b"]
        );
        assert!(
            store
                .take_due(&set, t + 30, lease, 10)
                .await
                .unwrap()
                .is_empty(),
            "taken members are leased"
        );
        store.unschedule(&set, "b").await.unwrap();
        // After the lease, what was taken and not unscheduled is due again.
        let after = t + 30 + 300;
        assert_eq!(store.take_due(&set, after, lease, 10).await.unwrap(), ["a"]);
        store.unschedule(&set, "a").await.unwrap();
        store.unschedule(&set, "a").await.unwrap();
        assert!(
            store
                .take_due(&set, after + 1_000, lease, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store.schedule(&set, "a", t, ttl).await.unwrap(),
            "unscheduled members may be scheduled again"
        );
        store.unschedule(&set, "a").await.unwrap();
        assert!(
            store
                .take_due(&set, t + 59_000, lease, 10)
                .await
                .unwrap()
                .is_empty()
        );
        // Other sets are apart.
        let other = format!("{prefix}-other");
        assert!(
            store
                .take_due(&other, t + 120_000, lease, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store.take_due(&set, t + 120_000, lease, 10).await.unwrap(),
            ["later"]
        );

        // Concurrent takers: every member is taken exactly once.
        let race = format!("{prefix}-race-escalations");
        for i in 0..40 {
            store
                .schedule(&race, &format!("m{i}"), t, ttl)
                .await
                .unwrap();
        }
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (store, race) = (store.clone(), race.clone());
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                for _ in 0..10 {
                    got.extend(
                        store
                            .take_due(&race, t + 1, Duration::from_secs(30), 3)
                            .await
                            .unwrap(),
                    );
                }
                got
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        all.sort();
        let mut want: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
        want.sort();
        assert_eq!(all, want, "each member taken once");
    }

    /// Campaigns: joining by fingerprint within reach and window, counts,
    /// earlier members, retries, scopes, the nearest campaign, limits.
    /// A join with a 10-minute window and a 13-bit reach.
    async fn join<S: DedupeStore>(
        store: &S,
        scope: &str,
        fp: u64,
        member: &str,
        author: &str,
    ) -> Result<CampaignJoin, StoreError> {
        store
            .campaign_join(scope, fp, member, author, Duration::from_secs(600), 13)
            .await
    }

    pub async fn campaigns<S: DedupeStore>(store: &S, prefix: &str) {
        let ten_minutes = Duration::from_secs(600);
        let scope = format!("slack:{prefix}-C1");
        let f: u64 = 0x0123_4567_89ab_cdef;
        // 13 bits off: 2 in each of bands 0–4, 1 in bands 5–7 (the most a
        // 13-bit reach can leave in every band).
        let mut mask = 0u64;
        for (band, bits) in [2, 2, 2, 2, 2, 1, 1, 1].iter().enumerate() {
            let shift = 56 - 8 * band;
            mask |= (if *bits == 2 { 0b1001u64 } else { 0b0100 }) << shift;
        }
        assert_eq!(mask.count_ones(), 13);

        let a = join(store, &scope, f, "m1", "alice").await.unwrap();
        assert!(a.new_member);
        assert_eq!((a.posts, a.authors), (1, 1));
        assert!(a.earlier.is_empty());
        assert_eq!(a.first_ms, a.last_ms);
        assert!(a.first_ms > 1_700_000_000_000, "ms since the epoch");

        let b = join(store, &scope, f ^ mask, "m2", "bob").await.unwrap();
        assert_eq!(b.id, a.id, "13 bits away: the same campaign");
        assert_eq!((b.posts, b.authors), (2, 2));
        assert_eq!(b.earlier, ["m1"]);
        assert_eq!(b.first_ms, a.first_ms);
        assert!(b.last_ms >= a.last_ms);

        let c = join(store, &scope, f, "m3", "bob").await.unwrap();
        assert_eq!(c.id, a.id);
        assert_eq!((c.posts, c.authors), (3, 2), "bob counts once");
        assert_eq!(c.earlier, ["m1", "m2"]);

        let retry = join(store, &scope, f ^ mask, "m2", "bob").await.unwrap();
        assert!(!retry.new_member, "a retry");
        assert_eq!(retry.id, a.id);
        assert_eq!(
            (retry.posts, retry.authors),
            (3, 2),
            "nothing counted twice"
        );
        assert_eq!(retry.earlier, ["m1"]);

        let far = join(store, &scope, f ^ mask ^ 0x10, "m4", "carol")
            .await
            .unwrap();
        assert_ne!(far.id, a.id, "14 bits away: a campaign of its own");
        assert_eq!((far.posts, far.authors), (1, 1));

        let other = join(store, &format!("discord:{prefix}-1"), f, "m1", "alice")
            .await
            .unwrap();
        assert_ne!(other.id, a.id, "another scope, another campaign");
        assert!(other.new_member);

        let exact = store
            .campaign_join(&scope, f ^ 1, "m5", "dave", ten_minutes, 0)
            .await
            .unwrap();
        assert_ne!(
            exact.id, a.id,
            "a reach of 0 takes the same fingerprint only"
        );
        let same = store
            .campaign_join(&scope, f ^ 1, "m6", "erin", ten_minutes, 0)
            .await
            .unwrap();
        assert_eq!(same.id, exact.id);

        // The nearest campaign wins: `near` was started 5 bits from `f`
        // (with a reach of 4, so apart from `a`); a post 1 bit from it and
        // 4 from `f` joins it.
        let near_scope = format!("slack:{prefix}-near");
        let g = join(store, &near_scope, f, "n1", "alice").await.unwrap();
        let near = store
            .campaign_join(&near_scope, f ^ 0x1f, "n2", "bob", ten_minutes, 4)
            .await
            .unwrap();
        assert_ne!(near.id, g.id);
        let to_near = join(store, &near_scope, f ^ 0x0f, "n3", "carol")
            .await
            .unwrap();
        assert_eq!(to_near.id, near.id);
        let to_g = join(store, &near_scope, f ^ 0x01, "n4", "dave")
            .await
            .unwrap();
        assert_eq!(to_g.id, g.id);

        // The window: past it since the last member, a new campaign.
        let short = Duration::from_millis(300);
        let window_scope = format!("slack:{prefix}-window");
        let w1 = store
            .campaign_join(&window_scope, f, "w1", "alice", short, 13)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        let w2 = store
            .campaign_join(&window_scope, f, "w2", "bob", short, 13)
            .await
            .unwrap();
        assert_eq!(w2.id, w1.id);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let w3 = store
            .campaign_join(&window_scope, f, "w3", "carol", short, 13)
            .await
            .unwrap();
        assert_eq!(w3.id, w1.id, "within the window of the last member");
        tokio::time::sleep(Duration::from_millis(450)).await;
        let w4 = store
            .campaign_join(&window_scope, f, "w4", "dave", short, 13)
            .await
            .unwrap();
        assert_ne!(w4.id, w1.id, "past the window");

        // Earlier members: the first ones, at most CAMPAIGN_EARLIER.
        let many_scope = format!("slack:{prefix}-many");
        for i in 0..=CAMPAIGN_EARLIER {
            join(
                store,
                &many_scope,
                f,
                &format!("p{i}"),
                &format!("u{}", i % 7),
            )
            .await
            .unwrap();
        }
        let last = join(store, &many_scope, f, "last", "u0").await.unwrap();
        assert_eq!(last.posts as usize, CAMPAIGN_EARLIER + 2);
        assert_eq!(last.authors, 7);
        assert_eq!(last.earlier.len(), CAMPAIGN_EARLIER);
        assert_eq!(last.earlier[0], "p0");
        assert_eq!(
            last.earlier[CAMPAIGN_EARLIER - 1],
            format!("p{}", CAMPAIGN_EARLIER - 1)
        );

        // Limits.
        let long = "x".repeat(CAMPAIGN_MEMBER_MAX + 1);
        assert!(join(store, &scope, f, &long, "alice").await.is_err());
        assert!(
            store
                .campaign_join(
                    &scope,
                    f,
                    "m9",
                    "alice",
                    ten_minutes,
                    CAMPAIGN_MAX_DISTANCE + 1
                )
                .await
                .is_err()
        );
        let reach = store
            .campaign_join(&scope, f, "m9", "alice", ten_minutes, CAMPAIGN_MAX_DISTANCE)
            .await
            .unwrap();
        assert_eq!(reach.id, a.id);
    }

    /// Eight replicas joining near copies of one text at once end in one
    /// campaign, each member counted once.
    pub async fn concurrent_campaigns<S: DedupeStore + Clone + 'static>(store: &S, prefix: &str) {
        let scope = format!("slack:{prefix}-race");
        let f: u64 = 0xfeed_f00d_dead_beef;
        let mut tasks = Vec::new();
        for k in 0..8u64 {
            let (store, scope) = (store.clone(), scope.clone());
            tasks.push(tokio::spawn(async move {
                // One bit off in band k: any two are 2 bits apart.
                let fp = f ^ (1 << (8 * k + 3));
                store
                    .campaign_join(
                        &scope,
                        fp,
                        &format!("m{k}"),
                        &format!("a{k}"),
                        Duration::from_secs(600),
                        13,
                    )
                    .await
                    .unwrap()
            }));
        }
        let mut joins = Vec::new();
        for t in tasks {
            joins.push(t.await.unwrap());
        }
        let id = &joins[0].id;
        assert!(joins.iter().all(|j| &j.id == id), "one campaign");
        let mut posts: Vec<u32> = joins.iter().map(|j| j.posts).collect();
        posts.sort_unstable();
        assert_eq!(posts, (1..=8).collect::<Vec<_>>(), "each counted once");
        assert!(
            joins
                .iter()
                .all(|j| j.new_member && j.earlier.len() + 1 == j.posts as usize)
        );
    }

    /// Many concurrent claims of one ID: exactly one wins.
    pub async fn concurrent<S: DedupeStore + Clone + 'static>(store: &S, prefix: &str) {
        let e = id(&format!("{prefix}-race"));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (store, e) = (store.clone(), e.clone());
            tasks.push(tokio::spawn(async move { store.claim(&e).await.unwrap() }));
        }
        let mut winners = 0;
        for t in tasks {
            if matches!(t.await.unwrap(), Claim::First(_)) {
                winners += 1;
            }
        }
        assert_eq!(winners, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_ids_are_checked() {
        assert!(ExecutionId::parse("").is_err());
        assert!(ExecutionId::parse("a b").is_err());
        assert!(ExecutionId::parse(&"x".repeat(201)).is_err());
        assert!(ExecutionId::parse("ünï").is_err());
        assert_eq!(
            ExecutionId::parse(" 01HQ-exec ").unwrap().as_str(),
            "01HQ-exec"
        );
    }
}
