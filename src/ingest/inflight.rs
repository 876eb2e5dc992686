//! The in-flight registry: every execution being processed, with its lease,
//! including work that outlived its request (still running at the deadline,
//! holding and renewing its lease). On shutdown it gets a grace period; the
//! leases of what could not finish are released so that Cativa's retry can do
//! the work at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::dedupe::{DedupeStore, Lease, Store};

/// Cheap to clone: clones share one registry.
#[derive(Clone, Default)]
pub struct Inflight {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    next: AtomicU64,
    leases: Mutex<HashMap<u64, Lease>>,
    idle: Notify,
}

/// Removes its lease from the registry when the work ends (or panics).
pub struct Ticket {
    inflight: Inflight,
    id: u64,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut leases = self
            .inflight
            .inner
            .leases
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        leases.remove(&self.id);
        if leases.is_empty() {
            self.inflight.inner.idle.notify_waiters();
        }
    }
}

impl Inflight {
    /// Registers `lease` until the returned ticket is dropped.
    pub fn start(&self, lease: &Lease) -> Ticket {
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        self.inner
            .leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, lease.clone());
        Ticket {
            inflight: self.clone(),
            id,
        }
    }

    pub fn len(&self) -> usize {
        self.inner
            .leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits up to `grace` for running work, then releases the leases of what
    /// is left. Returns how many were released.
    pub async fn drain(&self, store: &Store, grace: Duration) -> usize {
        let waited = tokio::time::timeout(grace, async {
            loop {
                let idle = self.inner.idle.notified();
                if self.is_empty() {
                    return;
                }
                idle.await;
            }
        })
        .await;
        if waited.is_ok() {
            return 0;
        }
        let left: Vec<Lease> = self
            .inner
            .leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for lease in &left {
            let _ = store.release(lease).await;
        }
        left.len()
    }
}
