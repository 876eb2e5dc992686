//! Dedupe: Cativa delivers at least once, so every execution ID is claimed
//! before work starts and recorded as done after it succeeds. This module owns
//! every record modbridge shares between requests, replicas and restarts.
//!
//! Three kinds of record:
//! - a **claim** is a lease: set atomically with a random token and a short
//!   TTL, renewed while work runs, released by compare-and-delete (only the
//!   holder's token deletes it). A crashed worker's claim expires by itself.
//! - a **done** record keeps for days so late retries are recognised; a
//!   **sent** record (keyed by an opaque [`SentKey`]) does the same per card.
//! - a **parked list** keeps opaque entries for a broken destination until
//!   they are replayed; only a durable store parks ([`Parking::NotDurable`]
//!   otherwise).
//!
//! [`DedupeStore`] is implemented by [`MemoryStore`] (one process, bounded) and
//! [`RedisStore`] (shared by replicas); [`Store`] picks one at start-up.
//! Dedupe knows nothing of cards, destinations or delivery: keys, list names
//! and entries are strings built by its callers.

mod memory;
mod redis;

use std::fmt;
use std::future::Future;
use std::time::Duration;

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
    /// Whether this card was already confirmed by the platform.
    fn was_sent(&self, key: &SentKey) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Records a confirmed card (kept as long as done records).
    fn record_sent(&self, key: &SentKey) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Whether the store answers (for `/readyz`).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

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
    async fn was_sent(&self, key: &SentKey) -> Result<bool, StoreError> {
        match self {
            Store::Memory(s) => s.was_sent(key).await,
            Store::Redis(s) => s.was_sent(key).await,
        }
    }
    async fn record_sent(&self, key: &SentKey) -> Result<(), StoreError> {
        match self {
            Store::Memory(s) => s.record_sent(key).await,
            Store::Redis(s) => s.record_sent(key).await,
        }
    }
    async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Memory(s) => s.ping().await,
            Store::Redis(s) => s.ping().await,
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
        let lease_a = first(store.claim(&a).await.unwrap());
        match store.claim(&a).await.unwrap() {
            Claim::InFlight { retry_after } => {
                assert!(retry_after <= lease + Duration::from_secs(1))
            }
            other => panic!("second claim while held: {other:?}"),
        }
        assert!(store.renew(&lease_a).await.unwrap());
        store.complete(&lease_a).await.unwrap();
        assert_eq!(store.claim(&a).await.unwrap(), Claim::Done);
        assert!(
            !store.renew(&lease_a).await.unwrap(),
            "renewing a completed claim"
        );

        // Release lets a retry do the work.
        let b = id(&format!("{prefix}-b"));
        let lease_b = first(store.claim(&b).await.unwrap());
        store.release(&lease_b).await.unwrap();
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

        // Sent records: opaque keys, control characters included.
        let sent = SentKey::new(format!("{prefix}-cust\u{1f}P1\u{1f}slack:C0123ABCD"));
        let other = SentKey::new(format!("{prefix}-cust\u{1f}P2\u{1f}slack:C0123ABCD"));
        assert!(!store.was_sent(&sent).await.unwrap());
        store.record_sent(&sent).await.unwrap();
        assert!(store.was_sent(&sent).await.unwrap());
        assert!(!store.was_sent(&other).await.unwrap());

        store.ping().await.unwrap();
        parking(store, prefix).await;
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
