//! In-memory dedupe store: no infrastructure, one process, bounded. It
//! cannot park cards: they would be lost on restart, so it says so
//! ([`Parking::NotDurable`]) and the sender keeps them instead.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::{Claim, DedupeStore, ExecutionId, Lease, Parking, SentKey, StoreError, Ttl};

#[derive(Debug)]
enum Record {
    Claimed { token: String, until: Instant },
    Done { until: Instant },
}

#[derive(Debug, Default)]
struct Inner {
    records: HashMap<String, Record>,
    /// Done records in the order written; with one TTL for all, that is also
    /// the order they expire in.
    done_order: VecDeque<String>,
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

/// Sent records share the map with execution records; execution IDs are
/// visible ASCII, so a control character keeps the two apart.
fn sent_key(key: &SentKey) -> String {
    format!("\u{1e}sent{}", key.as_str())
}

impl Inner {
    fn holds(&self, lease: &Lease, now: Instant) -> bool {
        matches!(
            self.records.get(lease.id.as_str()),
            Some(Record::Claimed { token, until }) if *token == lease.token && *until > now
        )
    }

    fn evict(&mut self, now: Instant, capacity: usize) {
        while let Some(key) = self.done_order.front() {
            let expired = match self.records.get(key) {
                Some(Record::Done { until }) => *until <= now,
                _ => true, // stale queue entry
            };
            if !(expired || self.records.len() >= capacity) {
                break;
            }
            if let Some(key) = self.done_order.pop_front()
                && matches!(self.records.get(&key), Some(Record::Done { .. }))
            {
                self.records.remove(&key);
            }
        }
        if self.records.len() >= capacity {
            // Only claims left: drop the expired ones.
            self.records.retain(|_, r| match r {
                Record::Claimed { until, .. } | Record::Done { until } => *until > now,
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
            inner.records.remove(lease.id.as_str());
        }
        Ok(())
    }

    async fn complete(&self, lease: &Lease) -> Result<(), StoreError> {
        self.mark_done(lease.id.as_str().to_owned());
        Ok(())
    }

    async fn was_sent(&self, key: &SentKey) -> Result<bool, StoreError> {
        let now = Instant::now();
        Ok(matches!(
            self.lock().records.get(&sent_key(key)),
            Some(Record::Done { until }) if *until > now
        ))
    }

    async fn record_sent(&self, key: &SentKey) -> Result<(), StoreError> {
        self.mark_done(sent_key(key));
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
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
}
