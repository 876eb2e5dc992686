//! Ingest: the service between HTTP and the pipeline. It owns one
//! execution's lifecycle: evaluate the rules; a post that makes no card, of
//! an execution never claimed before, ends there (one read, no write);
//! otherwise claim the execution ID → process the post under the
//! lease (renewed while the work runs) → record it as done, or release the
//! claim so that Cativa's retry can do the work. It also owns the request's
//! deadline: past it the caller is told to retry and the work goes on in the
//! background, still holding its lease, registered in [`Inflight`] so that a
//! shutdown can wait for it and release what cannot finish. Work older than
//! `intake.max_processing_secs` stops: it is dropped where it is and its
//! lease released, so that Cativa's retry does what is left.
//!
//! Knows nothing of HTTP: intake verifies the request and maps each
//! [`Ingested`] outcome to an answer.

pub mod inflight;

use std::sync::Arc;
use std::time::Duration;

use tracing::{Instrument, error, info, warn};

use crate::dedupe::{Claim, DedupeStore, ExecutionId, Lease, Store};
use crate::delivery::{Fence, RetryLater};
use crate::pipeline::{Assessment, Pipeline, Processed};
use crate::post::Post;

pub use inflight::Inflight;

/// How long a request waits, and how the lease is kept alive.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long the caller waits for the work before it is told to retry.
    pub deadline: Duration,
    /// How often the lease is renewed while the work runs.
    pub renew_every: Duration,
    /// The longest an execution's work may run (`intake.max_processing_secs`).
    pub max_processing: Duration,
}

impl Timing {
    /// Renews three times per lease, so that one slow or failed renewal does
    /// not lose it.
    pub fn new(deadline: Duration, lease: Duration) -> Self {
        Self {
            deadline,
            renew_every: (lease / 3).max(Duration::from_millis(100)),
            max_processing: DEFAULT_MAX_PROCESSING,
        }
    }

    /// Work older than `max` stops and releases its lease.
    pub fn with_max_processing(mut self, max: Duration) -> Self {
        self.max_processing = max;
        self
    }
}

/// `intake.max_processing_secs` unless set.
pub const DEFAULT_MAX_PROCESSING: Duration = Duration::from_secs(60);

impl Timing {}

/// What became of one execution.
#[derive(Debug)]
pub enum Ingested {
    /// The rules made no card and no attempt of this execution was ever
    /// claimed: nothing to do, nothing written.
    NoCard,
    /// Processed now and recorded as done.
    Accepted(Processed),
    /// Processed before: this is a retry or a duplicate delivery.
    Duplicate,
    /// Another worker holds a live lease on it; ask again after `retry_after`.
    InFlight { retry_after: Duration },
    /// The store could not be asked: nothing was done.
    StoreUnavailable,
    /// Processing must be retried (a card could not be delivered now, or the
    /// work could not be recorded as done); what was sent is recorded.
    RetryLater(RetryLater),
    /// The processing task ended without an answer (a bug): its lease expires
    /// by itself.
    Stopped,
    /// The deadline passed: the work goes on in the background under its
    /// lease; a retry finds it done, or does what is left.
    StillRunning,
}

/// Shared by every request; cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    store: Store,
    pipeline: Pipeline,
    timing: Timing,
    inflight: Inflight,
}

impl Ingest {
    pub fn new(store: Store, pipeline: Pipeline, timing: Timing) -> Self {
        Self {
            store,
            pipeline,
            timing,
            inflight: Inflight::default(),
        }
    }

    /// Executions still running, possibly past their request.
    pub fn inflight(&self) -> &Inflight {
        &self.inflight
    }

    /// Evaluates `post`; when it makes no card and no attempt of `id` was
    /// ever claimed, answers [`Ingested::NoCard`] after one read and no
    /// write. Otherwise claims `id`, processes the post under the lease and
    /// records the outcome, waiting at most the deadline for it.
    pub async fn handle(&self, id: &ExecutionId, post: Arc<Post>) -> Ingested {
        let verdict = self.pipeline.assess(&post).await;
        if verdict.settled_without_cards() {
            match self.store.attempted(id).await {
                Ok(false) => return Ingested::NoCard,
                // An earlier attempt is in flight, unfinished or done (it may
                // have made cards under other rules): the recorded path.
                Ok(true) => info!("no card, but an earlier attempt was claimed: claiming"),
                Err(e) => {
                    error!(error = %e, "dedupe store unavailable");
                    metrics::counter!("modbridge_dedupe_errors_total", "op" => "attempted")
                        .increment(1);
                    return Ingested::StoreUnavailable;
                }
            }
        }
        let lease = match self.store.claim(id).await {
            Ok(Claim::First(lease)) => lease,
            Ok(Claim::Done) => {
                info!("duplicate delivery: already processed");
                return Ingested::Duplicate;
            }
            Ok(Claim::InFlight { retry_after }) => {
                info!("delivery in flight elsewhere: asking for a retry");
                return Ingested::InFlight { retry_after };
            }
            Err(e) => {
                error!(error = %e, "dedupe store unavailable");
                metrics::counter!("modbridge_dedupe_errors_total", "op" => "claim").increment(1);
                return Ingested::StoreUnavailable;
            }
        };
        // In a task of its own, so that it outlives the deadline.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let ticket = self.inflight.start(&lease);
        let me = self.clone();
        tokio::spawn(
            async move {
                let _ticket = ticket;
                let _ = tx.send(me.run(post, verdict, &lease).await);
            }
            .in_current_span(),
        );
        match tokio::time::timeout(self.timing.deadline, rx).await {
            Ok(Ok(Ok(processed))) => Ingested::Accepted(processed),
            Ok(Ok(Err(e))) => Ingested::RetryLater(e),
            Ok(Err(_)) => Ingested::Stopped,
            Err(_) => {
                warn!("deadline passed; delivery goes on in the background");
                Ingested::StillRunning
            }
        }
    }

    /// Processes under `lease`, then completes it (success) or releases it
    /// (failure).
    async fn run(
        &self,
        post: Arc<Post>,
        verdict: Assessment,
        lease: &Lease,
    ) -> Result<Processed, RetryLater> {
        match self.process_renewing(post, verdict, lease).await {
            Ok(processed) => match self.store.complete(lease).await {
                Ok(()) => Ok(processed),
                Err(e) => {
                    // The cards are recorded as sent: the retry sends nothing twice.
                    error!(error = %e, "could not record the execution as done");
                    metrics::counter!("modbridge_dedupe_errors_total", "op" => "complete")
                        .increment(1);
                    Err(RetryLater {
                        detail: "dedupe store unavailable; retry later".into(),
                        retry_after: Duration::from_secs(5),
                    })
                }
            },
            Err(e) => {
                if let Err(e) = self.store.release(lease).await {
                    warn!(error = %e, "could not release the claim; it expires by itself");
                }
                Err(e)
            }
        }
    }

    /// Runs the pipeline, renewing the lease meanwhile. A renewal that finds
    /// the lease lost (another worker took the execution) trips the fence: no
    /// platform call starts after it, and the cards left are the other
    /// worker's (the card reservations keep the two from sending one twice).
    /// Past `max_processing` the work is dropped where it is (a platform call
    /// cut there leaves its card's reservation to expire, after which the
    /// card reads as unknown) and the caller releases the lease.
    async fn process_renewing(
        &self,
        post: Arc<Post>,
        verdict: Assessment,
        lease: &Lease,
    ) -> Result<Processed, RetryLater> {
        let every = self.timing.renew_every;
        let fence = Fence::default();
        let work = self.pipeline.process(post, verdict, &fence);
        tokio::pin!(work);
        let now = tokio::time::Instant::now();
        let mut ticker = tokio::time::interval_at(now + every, every);
        let too_old = tokio::time::sleep_until(now + self.timing.max_processing);
        tokio::pin!(too_old);
        loop {
            tokio::select! {
                done = &mut work => return done,
                () = &mut too_old => {
                    fence.trip();
                    let secs = self.timing.max_processing.as_secs_f64();
                    error!(max_processing_secs = secs, "execution still running after intake.max_processing_secs: stopped, its lease released for Cativa's retry");
                    metrics::counter!("modbridge_dedupe_errors_total", "op" => "processing_stopped").increment(1);
                    return Err(RetryLater {
                        detail: format!("processing took longer than intake.max_processing_secs ({secs} s): stopped; Cativa's retry does what is left"),
                        retry_after: Duration::from_secs(5),
                    });
                }
                _ = ticker.tick() => {
                    match self.store.renew(lease).await {
                        Ok(true) => {}
                        Ok(false) => {
                            if !fence.is_tripped() {
                                warn!("lease lost while processing: stopping before the next platform call");
                                metrics::counter!("modbridge_dedupe_errors_total", "op" => "lease_lost").increment(1);
                            }
                            fence.trip();
                        }
                        Err(e) => warn!(error = %e, "could not renew the lease"),
                    }
                }
            }
        }
    }

    /// On shutdown: waits up to `grace` for running work, then releases the
    /// leases of what is left so that Cativa's retry can do it at once.
    /// Returns how many were released.
    pub async fn drain(&self, grace: Duration) -> usize {
        self.inflight.drain(&self.store, grace).await
    }
}

#[cfg(test)]
mod tests;
