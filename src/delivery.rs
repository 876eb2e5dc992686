//! Delivery: one card per (post, channel), whatever retries, outages and
//! broken destinations do.
//!
//! For each card: skip it if the platform already confirmed it (sent record);
//! refuse at once when the destination's backlog is full; send; record the
//! confirmation before anything else. A configuration failure (bad token,
//! unknown channel, missing permission) opens a **circuit** for that target:
//! no platform calls while it is open (Discord bans bots that keep sending
//! invalid requests). Cards for a broken target are **parked** in Redis (and
//! the webhook answered 200), or, without Redis, refused with a long
//! `Retry-After` so Cativa keeps them. Every `probe_interval` a broken target
//! is probed with its oldest parked card (or, with none parked, let through
//! half-open: the next real card is the probe); success closes the circuit
//! and delivers everything parked, once each.
//!
//! Delivery owns the formats of what it asks dedupe to keep: the sent key
//! ([`sent_key`]), the parked list name (the target's text form) and the
//! parked entry ([`ParkedCard`] as JSON). Dedupe stores them as opaque strings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tracing::{error, info, warn};

use crate::card::Card;
use crate::config::DeliverySettings;
use crate::dedupe::{DedupeStore, Parking, SentKey, Store};
use crate::destination::Target;
use crate::platforms::{PlatformError as SinkError, Sinks};
use crate::post::{CustomerId, PostId};

/// What happened to one card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// The platform confirmed it now.
    Sent,
    /// It was confirmed before (a retry, a replay, another listener).
    AlreadySent,
    /// The destination is broken: kept in Redis, delivered when it works.
    Parked,
}

/// The card could not be delivered now: Cativa should retry after `retry_after`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{detail}")]
pub struct RetryLater {
    pub detail: String,
    pub retry_after: Duration,
}

/// The sent record's key for one card: customer, post and the target's text
/// form (`slack:C…`, `discord:…`, `discord-webhook:$VAR`), separated by U+001F.
/// Keyed by what was posted where, not by execution ID or destination name, so
/// a replay with a new execution ID, a second listener, or two destination
/// names for one channel never produce a second card. Live deployments hold
/// these keys: the format must not change.
pub fn sent_key(customer: &CustomerId, post: &PostId, target: &Target) -> SentKey {
    SentKey::new(format!(
        "{}\u{1f}{}\u{1f}{target}",
        customer.as_str(),
        post.as_str()
    ))
}

/// A parked card, as stored (JSON) in the list named after its target.
/// `Debug` goes through [`Card`]'s, which shows IDs only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParkedCard {
    pub key: String,
    pub target: String,
    pub parked_at: chrono::DateTime<chrono::Utc>,
    pub reason: String,
    pub card: Card,
}

#[derive(Debug, Clone)]
struct Broken {
    reason: String,
    since: SystemTime,
    next_probe: Instant,
}

#[derive(Debug)]
struct TargetState {
    backlog: Arc<Semaphore>,
    broken: Mutex<Option<Broken>>,
}

/// The delivery policy in force, built from `config::DeliverySettings`.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Cards in flight at once per target; more are refused with 503.
    pub backlog: usize,
    /// How often a broken target is probed.
    pub probe_interval: Duration,
    /// The longest one platform HTTP call may take before it counts as a
    /// (retryable) timeout; the sinks apply it.
    pub timeout: Duration,
}

impl From<&DeliverySettings> for Policy {
    fn from(s: &DeliverySettings) -> Self {
        Self {
            backlog: s.backlog,
            probe_interval: s.probe_interval,
            timeout: s.timeout,
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            backlog: 64,
            probe_interval: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Posts modbridge's own notices (a destination broke or recovered, a rules
/// reload failed) to the `[alerts]` destination, in the background, once each,
/// never through a circuit.
#[derive(Clone)]
pub struct Alerts {
    sinks: Sinks,
    destination: Arc<crate::destination::Destination>,
    /// Notices may be raised from non-async threads (the rules watcher).
    runtime: Option<tokio::runtime::Handle>,
}

impl Alerts {
    /// Call from within the runtime that will send the notices.
    pub fn new(sinks: Sinks, destination: Arc<crate::destination::Destination>) -> Self {
        Self {
            sinks,
            destination,
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }

    pub fn target(&self) -> &Target {
        self.destination.target()
    }

    /// Sends the notice without waiting; failures are logged (an alert about
    /// a broken alerts channel has nowhere to go).
    pub fn notify(&self, headline: &str, text: &str) {
        let card = Card::notice(&self.destination, headline, text);
        let (sinks, target) = (self.sinks.clone(), self.destination.target().clone());
        let Some(runtime) = self.runtime.as_ref() else {
            warn!("no runtime to send the alert on");
            return;
        };
        runtime.spawn(async move {
            if let Err(e) = sinks.deliver(&card, &target).await {
                warn!(error = %e, "could not post the alert");
            }
        });
    }
}

/// Delivers cards once each, keeps per-target circuits and backlogs, parks
/// and replays. Cheap to clone: clones share all state.
#[derive(Clone)]
pub struct Deliverer {
    sinks: Sinks,
    store: Store,
    policy: Policy,
    targets: Arc<Mutex<HashMap<Target, Arc<TargetState>>>>,
    /// One delivery at a time per card in this process (a live retry and a
    /// parked replay of the same post must not both send it).
    in_flight: Arc<Mutex<HashMap<SentKey, std::sync::Weak<tokio::sync::Mutex<()>>>>>,
    alerts: Option<Alerts>,
}

impl Deliverer {
    pub fn new(sinks: Sinks, store: Store, policy: Policy) -> Self {
        Self {
            sinks,
            store,
            policy,
            targets: Arc::default(),
            in_flight: Arc::default(),
            alerts: None,
        }
    }

    /// Announces destinations breaking and recovering there.
    pub fn with_alerts(mut self, alerts: Option<Alerts>) -> Self {
        self.alerts = alerts;
        self
    }

    fn alert(&self, target: &Target, headline: &str, text: &str) {
        if let Some(a) = &self.alerts
            && a.target() != target
        {
            a.notify(headline, text);
        }
    }

    /// The lock for one card; held across check, send and record.
    fn card_lock(&self, key: &SentKey) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lock) = map.get(key).and_then(std::sync::Weak::upgrade) {
            return lock;
        }
        if map.len() > 4096 {
            map.retain(|_, w| w.strong_count() > 0);
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        map.insert(key.clone(), Arc::downgrade(&lock));
        lock
    }

    pub fn sinks(&self) -> &Sinks {
        &self.sinks
    }

    fn state(&self, target: &Target) -> Arc<TargetState> {
        let mut targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        targets
            .entry(target.clone())
            .or_insert_with(|| {
                Arc::new(TargetState {
                    backlog: Arc::new(Semaphore::new(self.policy.backlog.max(1))),
                    broken: Mutex::new(None),
                })
            })
            .clone()
    }

    /// Broken targets and why, for `/readyz`.
    pub fn problems(&self) -> Vec<String> {
        let targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<String> = targets
            .iter()
            .filter_map(|(t, s)| {
                let broken = s.broken.lock().unwrap_or_else(|p| p.into_inner());
                broken.as_ref().map(|b| {
                    let secs = b.since.elapsed().map(|d| d.as_secs()).unwrap_or(0);
                    format!("{t} is broken since {secs} s ago: {}", b.reason)
                })
            })
            .collect();
        out.sort();
        out
    }

    /// Delivers `card` to `target` once.
    pub async fn deliver(
        &self,
        key: &SentKey,
        card: &Card,
        target: &Target,
    ) -> Result<Delivered, RetryLater> {
        let lock = self.card_lock(key);
        let _one_at_a_time = lock.lock().await;
        match self.store.was_sent(key).await {
            Ok(true) => return Ok(Delivered::AlreadySent),
            Ok(false) => {}
            Err(e) => return Err(store_down(e)),
        }
        let state = self.state(target);
        let open = {
            let broken = state.broken.lock().unwrap_or_else(|p| p.into_inner());
            broken.clone()
        };
        if let Some(b) = open {
            return self.park(key, card, target, &b.reason, b.next_probe).await;
        }
        let Ok(_permit) = state.backlog.clone().try_acquire_owned() else {
            metrics::counter!("modbridge_cards_total", "destination" => card.destination.clone(), "outcome" => "backlog_full").increment(1);
            return Err(RetryLater {
                detail: format!(
                    "{target}: backlog full ({} cards in flight)",
                    self.policy.backlog
                ),
                retry_after: Duration::from_secs(10),
            });
        };
        let started = Instant::now();
        let result = self.call(card, target).await;
        metrics::histogram!("modbridge_delivery_duration_seconds", "platform" => target.platform())
            .record(started.elapsed().as_secs_f64());
        self.settle(key, card, target, &state, result).await
    }

    /// What a platform call's result means for the card: recorded as sent,
    /// retried later, or parked (the destination broke, or refused the card).
    async fn settle(
        &self,
        key: &SentKey,
        card: &Card,
        target: &Target,
        state: &TargetState,
        result: Result<(), SinkError>,
    ) -> Result<Delivered, RetryLater> {
        match result {
            Ok(()) => {
                // Record first, log after: the duplicate window is this await.
                let recorded = self.store.record_sent(key).await;
                metrics::counter!("modbridge_cards_total", "destination" => card.destination.clone(), "outcome" => "sent").increment(1);
                if let Err(e) = recorded {
                    error!(error = %e, target = %target, "card sent but not recorded: a retry may send it again");
                }
                Ok(Delivered::Sent)
            }
            Err(SinkError::Transient {
                detail,
                retry_after,
                ..
            }) => {
                let reason = if retry_after.is_some() {
                    "rate_limited"
                } else {
                    "transient"
                };
                metrics::counter!("modbridge_cards_total", "destination" => card.destination.clone(), "outcome" => reason).increment(1);
                Err(RetryLater {
                    detail: format!("{target}: {detail}"),
                    retry_after: retry_after
                        .unwrap_or(Duration::from_secs(5))
                        .max(Duration::from_secs(1)),
                })
            }
            Err(e @ SinkError::Config { .. }) => {
                metrics::counter!("modbridge_cards_total", "destination" => card.destination.clone(), "outcome" => "config").increment(1);
                let reason = e.to_string();
                let next_probe = self.open_circuit(state, target, &reason);
                self.park(key, card, target, &reason, next_probe).await
            }
            Err(e @ SinkError::Rejected { .. }) => {
                // This card, not the destination, is at fault: keep it for a
                // person to look at; other cards still flow.
                metrics::counter!("modbridge_cards_total", "destination" => card.destination.clone(), "outcome" => "rejected").increment(1);
                error!(target = %target, error = %e, "the platform refused the card");
                let reason = e.to_string();
                self.park(
                    key,
                    card,
                    target,
                    &reason,
                    Instant::now() + self.policy.probe_interval,
                )
                .await
            }
        }
    }

    /// One platform call. The sinks bound each HTTP call by the policy's
    /// timeout (pacing waits excluded: a queue for a busy channel is not a
    /// platform failure).
    async fn call(&self, card: &Card, target: &Target) -> Result<(), SinkError> {
        self.sinks.deliver(card, target).await
    }

    fn open_circuit(&self, state: &TargetState, target: &Target, reason: &str) -> Instant {
        let next_probe = Instant::now() + self.policy.probe_interval;
        let mut broken = state.broken.lock().unwrap_or_else(|p| p.into_inner());
        if broken.is_none() {
            error!(target = %target, reason, "destination broken: no more calls to it until a probe succeeds");
            metrics::gauge!("modbridge_circuit_open", "target" => target.to_string()).set(1.0);
            self.alert(
                target,
                &format!("Destination broken: {target}"),
                &format!("{reason}\nCards for it are kept and delivered once it works again (probed every {} s).", self.policy.probe_interval.as_secs()),
            );
        }
        *broken = Some(Broken {
            reason: reason.to_owned(),
            since: broken.as_ref().map_or_else(SystemTime::now, |b| b.since),
            next_probe,
        });
        next_probe
    }

    fn close_circuit(&self, target: &Target) {
        let state = self.state(target);
        let mut broken = state.broken.lock().unwrap_or_else(|p| p.into_inner());
        if broken.take().is_some() {
            info!(target = %target, "destination works again");
            metrics::gauge!("modbridge_circuit_open", "target" => target.to_string()).set(0.0);
            self.alert(
                target,
                &format!("Destination works again: {target}"),
                "Kept cards are being delivered.",
            );
        }
    }

    /// A card for a broken target (or one the platform refused): parked in a
    /// durable store, refused with a long `Retry-After` without one.
    async fn park(
        &self,
        key: &SentKey,
        card: &Card,
        target: &Target,
        reason: &str,
        next_probe: Instant,
    ) -> Result<Delivered, RetryLater> {
        let entry = ParkedCard {
            key: key.as_str().to_owned(),
            target: target.to_string(),
            parked_at: chrono::Utc::now(),
            reason: reason.to_owned(),
            card: card.clone(),
        };
        let json = serde_json::to_string(&entry).map_err(|e| RetryLater {
            detail: format!("cannot park the card: {e}"),
            retry_after: Duration::from_secs(60),
        })?;
        match self
            .store
            .park(&target.to_string(), &json)
            .await
            .map_err(store_down)?
        {
            Parking::Parked => {
                metrics::counter!("modbridge_parked_total", "destination" => card.destination.clone()).increment(1);
                warn!(target = %target, "card parked until the destination works again");
                Ok(Delivered::Parked)
            }
            Parking::NotDurable => Err(RetryLater {
                detail: format!(
                    "{target} is broken ({reason}); without Redis nothing can be parked"
                ),
                retry_after: next_probe
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_secs(60)),
            }),
        }
    }

    /// Probes every broken target whose time has come (or all, `force`), and
    /// replays every target with parked cards (parked by this process before
    /// a restart, or by another replica): oldest first; the first success
    /// closes the circuit. Returns how many parked cards were delivered.
    pub async fn probe(&self, force: bool) -> usize {
        let now = Instant::now();
        let mut due: Vec<Target> = {
            let targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
            targets
                .iter()
                .filter(|(_, s)| {
                    let b = s.broken.lock().unwrap_or_else(|p| p.into_inner());
                    b.as_ref().is_some_and(|b| force || b.next_probe <= now)
                })
                .map(|(t, _)| t.clone())
                .collect()
        };
        for raw in self.store.parked_lists().await.unwrap_or_default() {
            let Ok(target) = Target::parse(&raw) else {
                continue;
            };
            let waiting = {
                let state = self.state(&target);
                let b = state.broken.lock().unwrap_or_else(|p| p.into_inner());
                b.as_ref().is_some_and(|b| !force && b.next_probe > now)
            };
            if !waiting && !due.contains(&target) {
                due.push(target);
            }
        }
        let mut replayed = 0;
        for target in due {
            let parked = self
                .store
                .parked(&target.to_string())
                .await
                .unwrap_or_default();
            if parked.is_empty() {
                // Half-open: the next real card is the probe.
                self.close_circuit(&target);
                continue;
            }
            replayed += self.replay_target(&target, parked).await;
        }
        replayed
    }

    /// Delivers parked entries of one target, oldest first, stopping at the
    /// first failure. Returns how many were delivered (or found already sent).
    pub async fn replay_target(&self, target: &Target, parked: Vec<String>) -> usize {
        let state = self.state(target);
        let mut done = 0;
        for raw in parked {
            let entry: ParkedCard = match serde_json::from_str(&raw) {
                Ok(e) => e,
                Err(e) => {
                    error!(error = %e, target = %target, "unreadable parked entry left in place");
                    continue;
                }
            };
            let key = SentKey::new(entry.key.clone());
            let lock = self.card_lock(&key);
            let _one_at_a_time = lock.lock().await;
            let already = self.store.was_sent(&key).await.unwrap_or(false);
            let result = if already {
                Ok(())
            } else {
                self.call(&entry.card, target).await
            };
            match result {
                Ok(()) => {
                    if !already && let Err(e) = self.store.record_sent(&key).await {
                        error!(error = %e, "replayed card sent but not recorded");
                    }
                    if let Err(e) = self.store.unpark(&target.to_string(), &raw).await {
                        error!(error = %e, "replayed card still listed as parked");
                    }
                    self.close_circuit(target);
                    metrics::counter!("modbridge_replayed_total", "destination" => entry.card.destination.clone()).increment(1);
                    done += 1;
                }
                Err(e @ (SinkError::Config { .. } | SinkError::Rejected { .. })) => {
                    let reason = e.to_string();
                    self.open_circuit(&state, target, &reason);
                    break;
                }
                Err(e) => {
                    warn!(error = %e, target = %target, "replay interrupted; will try again at the next probe");
                    break;
                }
            }
        }
        done
    }

    /// Runs [`Deliverer::probe`] every `probe_interval / 4` until dropped.
    pub fn spawn_prober(&self) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        let every = (self.policy.probe_interval / 4).max(Duration::from_millis(50));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let n = me.probe(false).await;
                if n > 0 {
                    info!(replayed = n, "parked cards delivered");
                }
            }
        })
    }
}

fn store_down(e: crate::dedupe::StoreError) -> RetryLater {
    metrics::counter!("modbridge_dedupe_errors_total", "op" => "delivery").increment(1);
    RetryLater {
        detail: e.to_string(),
        retry_after: Duration::from_secs(5),
    }
}
