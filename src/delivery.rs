//! Delivery: one card per (post, channel), whatever retries, outages,
//! replicas and broken destinations do.
//!
//! For each card: skip it if its record says it is settled (sent, or a dead
//! letter); refuse at once when the destination's backlog is full; then
//! **reserve** it in the store (atomic across replicas: another worker that
//! finds it reserved answers "in flight"), call the platform while renewing
//! the reservation, and turn the reservation into `sent` (with the message
//! reference) right after the confirmation. An expired reservation without
//! `sent` is *unknown*: Discord bot messages are sent again with the same
//! nonce (Discord answers with the message it already has). Elsewhere the
//! platform is asked first ([`Sinks::look_up`]: Slack finds the card by the
//! [`CardTag`] in its metadata, from the `since` of the reservation, the
//! start of the earliest unconfirmed attempt, which any replica can read):
//! found → recorded sent, nothing sent; absent → sent; the lookup failed →
//! nothing sent, "retry later"; no lookup possible (no history scope,
//! Discord webhooks) → sent again, counted `outcome="maybe_duplicate"`. No
//! platform call starts after the execution's lease was lost ([`Fence`]).
//!
//! A card the platform refuses as malformed becomes a **dead letter**: kept
//! for a person (`modbridge parked`), never sent again on its own, and it
//! neither opens the circuit nor holds back the cards behind it. A
//! configuration failure (bad token, unknown channel, missing permission)
//! opens a **circuit** for that target: no platform calls while it is open
//! (Discord bans bots that keep sending invalid requests). Cards for a broken
//! target are **parked** in Redis (and the webhook answered 200), or, without
//! Redis, refused with a long `Retry-After` so Cativa keeps them. Every
//! `probe_interval` a broken target is probed with its oldest parked card (or,
//! with none parked, let through half-open: the next real card is the probe);
//! a card that really went through closes the circuit and delivers everything
//! parked, once each. A store error stops a replay as "unknown": nothing is
//! decided on it. Parked and dead-letter entries older than `parked_ttl` are
//! dropped; a parked card dropped so is a lost card, counted and alerted.
//!
//! **Journal**: when the platform confirmed a card and the store cannot take
//! the record, this process keeps it in memory; it is consulted before any
//! send and written to the store before any new reservation (and every
//! second in the background). When the store restarts (its run ID changes),
//! new reservations wait [`RESTART_GRACE`] so that every replica's journal
//! lands first.
//!
//! Delivery owns the formats of what it asks dedupe to keep: the card key
//! ([`sent_key`]), the parked list names (the target's text form; dead
//! letters under `dead-letter:<target>`) and the parked entry ([`ParkedCard`]
//! as JSON). Dedupe stores them as opaque strings.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tracing::{error, info, warn};

use crate::card::Card;
use crate::config::DeliverySettings;
use crate::dedupe::{
    Attempted, CardLease, CardRecord, CircuitOpened, Confirmed, DedupeStore, LockLease, Parking,
    Reservation, SentKey, Store, StoreError,
};
use crate::destination::Target;
use crate::platforms::{CardTag, Lookup, MessageRef, PlatformError as SinkError, Sinks, Window};
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
    /// The platform refused the card as malformed (now or before): kept as a
    /// dead letter for a person to look at; not sent again on its own.
    DeadLetter,
    /// Its destination is in a wave: recorded in the wave's digest (or it
    /// was before), shown by the digest's next edit.
    Grouped,
}

/// Tripped when the execution's lease is lost (another worker took it): no
/// platform call starts after that. Cheap to clone: clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct Fence(Arc<AtomicBool>);

impl Fence {
    pub fn trip(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_tripped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// How one reserved attempt at a card ended.
enum Attempt {
    /// The platform confirmed it now.
    Sent,
    /// Its record says it was settled before.
    Settled(CardRecord),
    /// The platform refused it as malformed: now a dead letter.
    DeadLetter(String),
    /// Another worker holds its reservation.
    InFlight(Duration),
    /// The store restarted moments ago: no new reservation for this long.
    Held(Duration),
    /// The platform call failed; the reservation was given back.
    Failed(SinkError),
    /// An earlier attempt ended unrecorded and the platform found its card:
    /// recorded sent now, nothing sent.
    Found,
    /// An earlier attempt ended unrecorded and the platform could not say
    /// whether its card is there: nothing sent, ask again after `retry_after`.
    Unlooked {
        detail: String,
        retry_after: Duration,
    },
    /// The store could not answer: nothing is known, nothing was sent.
    StoreDown(StoreError),
    /// The execution's lease was lost: nothing was sent.
    Fenced,
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

/// The list name dead letters of `target` are kept under (next to the
/// parked list named after the target itself).
pub fn dead_letter_list(target: &Target) -> String {
    format!("{DEAD_LETTER_PREFIX}{target}")
}

const DEAD_LETTER_PREFIX: &str = "dead-letter:";

/// What a parked list holds: parked cards of a broken target, or dead letters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListKind {
    Parked(Target),
    DeadLetter(Target),
}

impl ListKind {
    /// Reads a list name back; `None` for a name this version does not know.
    pub fn parse(list: &str) -> Option<Self> {
        match list.strip_prefix(DEAD_LETTER_PREFIX) {
            Some(t) => Target::parse(t).ok().map(ListKind::DeadLetter),
            None => Target::parse(list).ok().map(ListKind::Parked),
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            ListKind::Parked(_) => "parked",
            ListKind::DeadLetter(_) => "dead_letter",
        }
    }

    pub fn target(&self) -> &Target {
        match self {
            ListKind::Parked(t) | ListKind::DeadLetter(t) => t,
        }
    }
}

/// A parked card or dead letter, as stored (JSON) in the list named after its
/// target. `Debug` goes through [`Card`]'s, which shows IDs only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParkedCard {
    pub key: String,
    pub target: String,
    pub parked_at: chrono::DateTime<chrono::Utc>,
    pub reason: String,
    pub card: Card,
}

impl ParkedCard {
    /// A short stable ID for `modbridge parked drop` / `replay`: derived from
    /// the card's key, so it needs no storage and old entries have one too.
    pub fn id(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.key.as_bytes());
        hex::encode(&digest[..5])
    }
}

#[derive(Debug, Clone)]
struct Broken {
    reason: String,
    since: SystemTime,
    next_probe: Instant,
}

/// A target's circuit as kept in the store (shared by replicas, under the
/// target's text form): why, since when, and which replica opened it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CircuitRecord {
    pub reason: String,
    pub since: chrono::DateTime<chrono::Utc>,
    pub opened_by: String,
}

/// How long an open circuit is kept in the store without being closed; one
/// still broken then is opened (and announced) again by the next failure.
const CIRCUIT_TTL: Duration = Duration::from_secs(86_400);

/// How long a replica trusts what it last read of a target's shared circuit.
const CIRCUIT_CACHE: Duration = Duration::from_secs(1);
/// How long a card waits for its author's earlier cards.
const HISTORY_WAIT: Duration = Duration::from_millis(500);

#[derive(Debug)]
struct TargetState {
    backlog: Arc<Semaphore>,
    /// What this process knows of the target's circuit: the shared one (read
    /// at most every [`CIRCUIT_CACHE`]), or its own when the store fails.
    broken: Mutex<Option<Broken>>,
    /// When the shared circuit was last read.
    checked: Mutex<Option<Instant>>,
    /// Broken, but let through (nothing parked to probe with): the next real
    /// card is the probe; "works again" waits for it to go through.
    half_open: Mutex<Option<Broken>>,
    /// When this process dead-lettered cards for the target lately (for the
    /// "render bug" notice).
    dead_letters: Mutex<VecDeque<Instant>>,
}

/// How long new reservations wait after the store restarted, so that the
/// journals of every replica (each checks the run ID every second) land first.
pub const RESTART_GRACE: Duration = Duration::from_secs(3);

/// A card the platform confirmed whose record the store could not take yet.
#[derive(Debug, Clone)]
struct Journaled {
    lease: CardLease,
    message: Option<serde_json::Value>,
}

/// The sent-but-unrecorded journal, and what is known of the store's run.
#[derive(Debug, Default)]
struct Journal {
    cards: Mutex<HashMap<SentKey, Journaled>>,
    /// Serialises flushes (one writer at a time; others wait for it).
    flushing: tokio::sync::Mutex<()>,
    run_id: Mutex<Option<String>>,
    hold_until: Mutex<Option<Instant>>,
}

/// Dead letters within [`DEAD_LETTER_WINDOW`] that make one notice.
const DEAD_LETTER_ALERT: usize = 3;
const DEAD_LETTER_WINDOW: Duration = Duration::from_secs(600);

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
    /// How long parked cards and dead letters are kept.
    pub parked_ttl: Duration,
}

impl Policy {
    /// A card's reservation: longer than one platform call may take (the
    /// call's deadline plus a margin); renewed while pacing waits.
    pub fn reservation(&self) -> Duration {
        self.timeout + Duration::from_secs(5)
    }
}

impl From<&DeliverySettings> for Policy {
    fn from(s: &DeliverySettings) -> Self {
        Self {
            backlog: s.backlog,
            probe_interval: s.probe_interval,
            timeout: s.timeout,
            parked_ttl: s.parked_ttl,
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            backlog: 64,
            probe_interval: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            parked_ttl: Duration::from_secs(7 * 86_400),
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
    /// One delivery at a time per card in this process: an optimisation
    /// (fewer "in flight" answers); the store's reservation is what keeps
    /// workers of all replicas from both sending it.
    in_flight: Arc<Mutex<HashMap<SentKey, std::sync::Weak<tokio::sync::Mutex<()>>>>>,
    journal: Arc<Journal>,
    alerts: Option<Alerts>,
    /// Who opens circuits, in their records (host name and process ID).
    replica: Arc<str>,
    /// Moderator cases (when some platform's interactions are on): each
    /// confirmed copy is added to its case; a new case is counted in the
    /// stats and its author's history.
    cases: Option<crate::triage::case::Cases<Store>>,
    histories: Option<crate::triage::history::Histories<Store>>,
    /// Whose interactions are on: their copies carry the case's buttons.
    interactions: Option<crate::platforms::Interactions>,
    /// "Cannot be looked up" reasons already logged (per target and reason).
    unlookable: Arc<Mutex<std::collections::HashSet<String>>>,
    /// Digests for destinations in a wave (with Redis).
    waves: Option<crate::waves::Waves>,
}

impl Deliverer {
    pub fn new(sinks: Sinks, store: Store, policy: Policy) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "modbridge".into());
        Self {
            sinks,
            store,
            policy,
            targets: Arc::default(),
            in_flight: Arc::default(),
            journal: Arc::default(),
            alerts: None,
            replica: format!("{host}/{}", std::process::id()).into(),
            cases: None,
            histories: None,
            interactions: None,
            unlookable: Arc::default(),
            waves: None,
        }
    }

    /// Cards for a destination in a wave join its digest (`None`: never).
    pub fn with_waves(mut self, waves: Option<crate::waves::Waves>) -> Self {
        self.waves = waves;
        self
    }

    /// Adds every confirmed copy to its moderator case, kept `ttl`.
    pub fn with_cases(mut self, ttl: Option<Duration>) -> Self {
        self.cases = ttl.map(|ttl| crate::triage::case::Cases::new(self.store.clone(), ttl));
        self.histories =
            ttl.map(|ttl| crate::triage::history::Histories::new(self.store.clone(), ttl));
        self
    }

    /// What the card for `post` says about its author's earlier cases (with
    /// moderator actions on; else nothing). One store read, bounded by
    /// [`HISTORY_WAIT`]: the card goes out without it rather than late.
    pub async fn earlier_cards(
        &self,
        customer_id: &str,
        author_id: &str,
        post_id: &str,
    ) -> Option<crate::card::EarlierCards> {
        let histories = self.histories.as_ref()?;
        let key = crate::triage::history::author_key(customer_id, author_id);
        let case = crate::triage::case::case_id(customer_id, post_id);
        let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
        match tokio::time::timeout(HISTORY_WAIT, histories.of(&key, &case, now_ms)).await {
            Ok(Ok(history)) => Some(history),
            Ok(Err(e)) => {
                warn!(case_id = %case, error = %e, "cannot read the author's earlier cards: the card goes without them");
                None
            }
            Err(_) => {
                warn!(case_id = %case, "the author's earlier cards took too long: the card goes without them");
                None
            }
        }
    }

    /// Schedules each new case for a reminder `after` (with cases on).
    pub fn with_escalation(mut self, after: Option<Duration>) -> Self {
        self.cases = self.cases.take().map(|c| c.with_escalation(after));
        self
    }

    /// Cards carry their case's buttons where `interactions` are on.
    pub fn with_buttons(mut self, interactions: crate::platforms::Interactions) -> Self {
        self.interactions = Some(interactions);
        self
    }

    /// `card` as it is posted: with its case's view (status line, buttons)
    /// as the case stands now, so a copy delivered after a click (a late
    /// replay) shows the current state; open when there is no case yet.
    async fn shown<'a>(&self, card: &'a Card, target: &Target) -> std::borrow::Cow<'a, Card> {
        use crate::triage::case::{Case, case_id};
        // modbridge's own notices are nobody's case.
        let Some(cases) = self
            .cases
            .as_ref()
            .filter(|_| card.severity != crate::card::Severity::Notice)
        else {
            return std::borrow::Cow::Borrowed(card);
        };
        let buttons = !matches!(target, Target::DiscordWebhook { .. })
            && self
                .interactions
                .as_ref()
                .is_some_and(|i| i.enabled(target.platform()));
        let id = case_id(&card.customer_id, &card.post_id);
        let view = match cases.get(&id).await {
            Ok(Some((_, case))) => case.view(&id, buttons),
            Ok(None) => Case::open(0).view(&id, buttons),
            Err(e) => {
                warn!(case_id = %id, error = %e, "cannot read the card's case: it is posted as open");
                Case::open(0).view(&id, buttons)
            }
        };
        let mut shown = card.clone();
        shown.case = Some(view);
        std::borrow::Cow::Owned(shown)
    }

    /// Lists a confirmed copy in its case, so a click edits it too. A
    /// failure costs only that copy's status edits: the card is sent.
    async fn add_to_case(&self, card: &Card, target: &Target, message: &MessageRef, key: &SentKey) {
        let Some(cases) = self
            .cases
            .as_ref()
            .filter(|_| card.severity != crate::card::Severity::Notice)
        else {
            return;
        };
        use crate::triage::case::{Copy, case_id};
        let copy = Copy {
            message: message.clone(),
            target: target.to_string(),
            buttons: !matches!(target, Target::DiscordWebhook { .. }),
            destination: Some(card.destination.clone()),
            link: card.post_url.clone(),
            card: Some(card.clone()),
            tag: Some(CardTag::of(key.as_str()).as_str().to_owned()),
        };
        let id = case_id(&card.customer_id, &card.post_id);
        // The case's clock starts with its first card (not the post's own
        // time: a backlog or a replay would count as moderators' delay).
        let posted = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
        let origin = crate::triage::case::Origin {
            author: crate::triage::history::author_key(&card.customer_id, &card.author.user_id),
            fired: card
                .reasons
                .iter()
                .filter(|r| !r.is_sensitive_group())
                .map(|r| crate::triage::stats::Fired {
                    rules: r.rules.clone(),
                    name: r.name.clone(),
                })
                .collect(),
        };
        match cases.add_copy(&id, posted, copy, &origin).await {
            // This copy made the case: count it once.
            Ok((1, case)) => {
                let origin = case.origin.unwrap_or(origin);
                let stats = crate::triage::stats::Stats::new(self.store.clone());
                if let Err(e) = stats.card(&origin.fired, posted).await {
                    warn!(case_id = %id, error = %e, "a new case could not be counted in the stats");
                }
                if let Some(h) = &self.histories
                    && let Err(e) = h.opened(&origin.author, &id, posted).await
                {
                    warn!(case_id = %id, error = %e, "a new case could not be added to its author's history");
                }
            }
            Ok(_) => {}
            Err(e) => {
                warn!(case_id = %id, target = %target, error = %e, "a sent card could not be added to its case: moderator actions will not update this copy");
            }
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
                    checked: Mutex::new(None),
                    half_open: Mutex::new(None),
                    dead_letters: Mutex::new(VecDeque::new()),
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

    /// Delivers `card` to `target` once, unless `fence` was tripped.
    pub async fn deliver(
        &self,
        key: &SentKey,
        card: &Card,
        target: &Target,
        fence: &Fence,
    ) -> Result<Delivered, RetryLater> {
        let lock = self.card_lock(key);
        let _one_at_a_time = lock.lock().await;
        if self.journaled(key) {
            return Ok(Delivered::AlreadySent);
        }
        // The card's record first: settled → answered; reserved or none →
        // the reservation below decides. With waves, their admission reads
        // it (and may list the card in its destination's digest instead).
        let record = match &self.waves {
            Some(waves) => {
                use crate::waves::Admission;
                match waves.admit(key, card, target).await {
                    Ok(Admission::Card) => None,
                    Ok(Admission::Grouped { .. }) => return Ok(Delivered::Grouped),
                    Ok(Admission::Settled(record)) => Some(record),
                    Err(e) => return Err(store_down(e)),
                }
            }
            None => match self.store.card(key).await {
                Ok(record) => record,
                Err(e) => return Err(store_down(e)),
            },
        };
        match record {
            Some(CardRecord::DeadLetter { .. }) => return Ok(Delivered::DeadLetter),
            Some(CardRecord::InDigest { .. }) => return Ok(Delivered::Grouped),
            Some(CardRecord::Sent { .. } | CardRecord::Other) => {
                return Ok(Delivered::AlreadySent);
            }
            Some(CardRecord::Reserved { .. }) | None => {}
        }
        let state = self.state(target);
        if let Some(b) = self.shared_circuit(&state, target).await {
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
        match self.attempt(key, card, target, fence).await {
            Attempt::Sent => {
                let half_open = state
                    .half_open
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_some();
                if half_open {
                    self.close_circuit(target).await;
                }
                Ok(Delivered::Sent)
            }
            Attempt::Settled(CardRecord::DeadLetter { .. }) => Ok(Delivered::DeadLetter),
            Attempt::Settled(_) | Attempt::Found => Ok(Delivered::AlreadySent),
            Attempt::Unlooked {
                detail,
                retry_after,
            } => Err(RetryLater {
                detail: format!(
                    "{target}: an earlier attempt's answer was lost and the platform could not be asked whether the card is there ({detail}): not sent, to avoid a duplicate"
                ),
                retry_after,
            }),
            Attempt::DeadLetter(reason) => {
                self.keep_dead_letter(key, card, target, &reason).await;
                Ok(Delivered::DeadLetter)
            }
            Attempt::InFlight(retry_after) => Err(RetryLater {
                detail: format!("{target}: this card is being sent by another worker"),
                retry_after: retry_after.max(Duration::from_secs(1)),
            }),
            Attempt::Held(left) => Err(RetryLater {
                detail: "the dedupe store restarted or failed over moments ago (its run_id changed): new cards wait until every replica recorded what it sent".into(),
                retry_after: left.max(Duration::from_secs(1)),
            }),
            Attempt::StoreDown(e) => Err(store_down(e)),
            Attempt::Fenced => Err(fenced()),
            Attempt::Failed(SinkError::Transient {
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
            Attempt::Failed(SinkError::TimedOut { detail, .. }) => {
                metrics::counter!("modbridge_cards_total", "destination" => card.destination.clone(), "outcome" => "timeout").increment(1);
                Err(RetryLater {
                    detail: format!("{target}: {detail}"),
                    // Once the reservation has expired the retry may send it.
                    retry_after: self.policy.reservation(),
                })
            }
            Attempt::Failed(e) => {
                // Configuration (a rejection became a dead letter above).
                metrics::counter!("modbridge_cards_total", "destination" => card.destination.clone(), "outcome" => "config").increment(1);
                let reason = e.to_string();
                let next_probe = self.open_circuit(&state, target, &reason).await;
                self.park(key, card, target, &reason, next_probe).await
            }
        }
    }

    /// One attempt at a card: reserve it, call the platform while renewing
    /// the reservation, record what the platform said.
    async fn attempt(&self, key: &SentKey, card: &Card, target: &Target, fence: &Fence) -> Attempt {
        if fence.is_tripped() {
            return Attempt::Fenced;
        }
        if self.journaled(key) {
            return Attempt::Settled(CardRecord::Sent { message: None });
        }
        if let Err(e) = self.flush_journal().await {
            return Attempt::StoreDown(e);
        }
        if let Some(left) = self.held() {
            return Attempt::Held(left);
        }
        let lease_for = self.policy.reservation();
        let lease = match self.store.reserve(key, lease_for).await {
            Ok(Reservation::Fresh(lease)) => lease,
            Ok(Reservation::Unknown(lease, earlier)) => {
                if target.resend_is_deduplicated() {
                    info!(target = %target, "an earlier attempt at this card ended unrecorded: sending again with the same nonce");
                } else if let Some(settled) = self
                    .look_up_earlier(&lease, key, card, target, earlier)
                    .await
                {
                    return settled;
                }
                lease
            }
            Ok(Reservation::Settled(record)) => return Attempt::Settled(record),
            Ok(Reservation::InFlight { retry_after }) => return Attempt::InFlight(retry_after),
            Err(e) => return Attempt::StoreDown(e),
        };
        if fence.is_tripped() {
            self.give_back(&lease).await;
            return Attempt::Fenced;
        }
        let started = Instant::now();
        let tag = CardTag::of(key.as_str());
        let shown = self.shown(card, target).await;
        let result = self
            .call_renewing(&lease, lease_for, &shown, target, &tag)
            .await;
        metrics::histogram!("modbridge_delivery_duration_seconds", "platform" => target.platform())
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(message) => {
                self.record_sent(lease, key, message, card, target).await;
                metrics::counter!("modbridge_cards_total", "destination" => card.destination.clone(), "outcome" => "sent").increment(1);
                Attempt::Sent
            }
            Err(SinkError::Rejected { platform, detail }) => {
                let reason = format!("{platform} refused the card: {detail}");
                match self.store.dead_letter(&lease, &reason).await {
                    Ok(true) => Attempt::DeadLetter(reason),
                    Ok(false) => Attempt::Settled(CardRecord::Sent { message: None }),
                    Err(e) => {
                        self.give_back(&lease).await;
                        Attempt::StoreDown(e)
                    }
                }
            }
            // No answer in time: the card may be there. The reservation is
            // left to expire (no longer renewed), so the next attempt reads
            // it as unknown.
            Err(e @ SinkError::TimedOut { .. }) => Attempt::Failed(e),
            Err(e) => {
                self.give_back(&lease).await;
                Attempt::Failed(e)
            }
        }
    }

    /// Records the card sent (its reservation becomes `sent{message}`);
    /// when the store cannot take it, keeps it in this process's journal.
    async fn record_sent(
        &self,
        lease: CardLease,
        key: &SentKey,
        message: Option<MessageRef>,
        card: &Card,
        target: &Target,
    ) {
        // Record first, log after: the duplicate window is this await.
        let posted = message.clone();
        let message = message.and_then(|m| serde_json::to_value(m).ok());
        let recorded = self.store.confirm(&lease, message.as_ref()).await;
        if matches!(recorded, Ok(Confirmed::Recorded | Confirmed::RecordedLate))
            && let Some(posted) = &posted
        {
            self.add_to_case(card, target, posted, key).await;
        }
        match recorded {
            Ok(Confirmed::Recorded) => {}
            Ok(Confirmed::RecordedLate) => {
                warn!(target = %target, "the card's reservation expired during the platform call: another worker may have sent it too")
            }
            Ok(Confirmed::AlreadySent) => {
                warn!(target = %target, "another worker had already sent this card: duplicate")
            }
            Err(e) => {
                error!(error = %e, target = %target, "card sent but not recorded: kept in this process's journal until the store takes it");
                metrics::counter!("modbridge_dedupe_errors_total", "op" => "confirm").increment(1);
                self.journal
                    .cards
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key.clone(), Journaled { lease, message });
            }
        }
    }

    /// An earlier attempt ended unrecorded (its reservation expired, so at
    /// least the call timeout has passed since it began): asks the platform
    /// whether the card is there before sending it again. `Some`: the
    /// attempt ends here (found and recorded, or the lookup failed: nothing
    /// sent, the reservation left to expire so that the next attempt looks
    /// again from the same time). `None`: send (not found, or the platform
    /// cannot look: then the send may duplicate it, counted
    /// `maybe_duplicate`).
    async fn look_up_earlier(
        &self,
        lease: &CardLease,
        key: &SentKey,
        card: &Card,
        target: &Target,
        earlier: Option<Attempted>,
    ) -> Option<Attempt> {
        let lookup = match earlier.and_then(window) {
            Some(window) => {
                self.sinks
                    .look_up(target, &CardTag::of(key.as_str()), window)
                    .await
            }
            None => Lookup::Unavailable(
                "the earlier attempt's time is not recorded (reserved by an earlier version)"
                    .into(),
            ),
        };
        match lookup {
            Lookup::Found(message) => {
                info!(target = %target, "an earlier attempt at this card ended unrecorded; the card was found on the platform and is recorded, not sent again");
                self.record_sent(lease.clone(), key, Some(message), card, target)
                    .await;
                metrics::counter!("modbridge_cards_total", "destination" => card.destination.clone(), "outcome" => "found").increment(1);
                Some(Attempt::Found)
            }
            Lookup::Absent => {
                info!(target = %target, "an earlier attempt at this card ended unrecorded and the card is not on the platform: sending it");
                None
            }
            Lookup::Unknown {
                detail,
                retry_after,
            } => {
                warn!(target = %target, detail, "an earlier attempt at this card ended unrecorded and the platform could not be asked whether it is there: not sent now");
                Some(Attempt::Unlooked {
                    detail,
                    retry_after: retry_after
                        .unwrap_or_default()
                        .max(self.policy.reservation()),
                })
            }
            Lookup::Unavailable(reason) => {
                let first = self
                    .unlookable
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(format!("{target}: {reason}"));
                if first {
                    warn!(target = %target, reason, "cards of this destination cannot be looked up after a lost answer: they are sent again, which may duplicate them (counted maybe_duplicate; said once per destination and reason)");
                }
                warn!(target = %target, "an earlier attempt at this card ended unrecorded: sending again, which may duplicate it");
                metrics::counter!("modbridge_cards_total", "destination" => card.destination.clone(), "outcome" => "maybe_duplicate").increment(1);
                None
            }
        }
    }

    /// Whether this process holds a confirmation of `key` the store has not
    /// taken yet.
    fn journaled(&self, key: &SentKey) -> bool {
        self.journal
            .cards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(key)
    }

    /// Cards confirmed by a platform whose record the store has not taken yet.
    pub fn journal_len(&self) -> usize {
        self.journal
            .cards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Writes the journal to the store; the first failure stops it (the rest
    /// stays journaled) and is returned.
    pub async fn flush_journal(&self) -> Result<(), StoreError> {
        if self.journal_len() == 0 {
            return Ok(());
        }
        let _one_writer = self.journal.flushing.lock().await;
        let pending: Vec<(SentKey, Journaled)> = {
            let cards = self.journal.cards.lock().unwrap_or_else(|p| p.into_inner());
            cards.iter().map(|(k, j)| (k.clone(), j.clone())).collect()
        };
        for (key, entry) in pending {
            let confirmed = self
                .store
                .confirm(&entry.lease, entry.message.as_ref())
                .await?;
            if confirmed == Confirmed::AlreadySent {
                warn!("a journaled card was found sent by another worker: duplicate");
            }
            self.journal
                .cards
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            info!("a journaled card's record was written");
        }
        Ok(())
    }

    /// How long new reservations still wait after a store restart.
    fn held(&self) -> Option<Duration> {
        let until = *self
            .journal
            .hold_until
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        until
            .map(|u| u.saturating_duration_since(Instant::now()))
            .filter(|left| !left.is_zero())
    }

    /// Asks the store which run answers; a new run (a restart) holds new
    /// reservations for [`RESTART_GRACE`]. Then writes the journal.
    pub async fn watch_store(&self) {
        if let Ok(run) = self.store.run_id().await {
            let restarted = {
                let mut known = self
                    .journal
                    .run_id
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                let restarted = known.as_ref().is_some_and(|k| *k != run);
                *known = Some(run);
                restarted
            };
            if restarted {
                warn!(
                    grace_secs = RESTART_GRACE.as_secs(),
                    "the dedupe store restarted or failed over (its run_id changed): new reservations wait so that every replica's journal lands first"
                );
                *self
                    .journal
                    .hold_until
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + RESTART_GRACE);
            }
        }
        if let Err(e) = self.flush_journal().await {
            warn!(error = %e, journaled = self.journal_len(), "journaled cards not written yet");
        }
    }

    /// The platform said no: the card is not there, the next attempt is fresh.
    async fn give_back(&self, lease: &CardLease) {
        if let Err(e) = self.store.release_reservation(lease).await {
            warn!(error = %e, "could not give a card's reservation back; it expires by itself and the next attempt counts as unknown");
        }
    }

    /// One platform call, renewing the card's reservation while it runs
    /// (pacing waits included). The sinks bound each HTTP call by the
    /// policy's timeout.
    async fn call_renewing(
        &self,
        lease: &CardLease,
        lease_for: Duration,
        card: &Card,
        target: &Target,
        tag: &CardTag,
    ) -> Result<Option<MessageRef>, SinkError> {
        let call = self.sinks.deliver_tagged(card, target, Some(tag));
        tokio::pin!(call);
        let every = lease_for / 3;
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                result = &mut call => return result,
                _ = ticker.tick() => match self.store.renew_reservation(lease, lease_for).await {
                    Ok(true) => {}
                    Ok(false) => warn!(target = %target, "a card's reservation was lost during the platform call"),
                    Err(e) => warn!(error = %e, "could not renew a card's reservation"),
                },
            }
        }
    }

    /// The target's circuit as every replica sees it: the store's, read at
    /// most every [`CIRCUIT_CACHE`] (a store error keeps what is known).
    /// Sets `modbridge_circuit_open` from it. `None`: closed, or half-open
    /// here (this process lets the next card through).
    async fn shared_circuit(&self, state: &TargetState, target: &Target) -> Option<Broken> {
        let fresh = state
            .checked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|at| at.elapsed() < CIRCUIT_CACHE);
        if !fresh {
            if let Ok(record) = self.store.circuit(&target.to_string()).await {
                self.adopt(state, target, record.as_deref());
            }
            *state.checked.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        }
        state
            .broken
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Takes the store's view of the circuit (`None`: closed) as this
    /// process's.
    fn adopt(&self, state: &TargetState, target: &Target, record: Option<&str>) {
        let mut broken = state.broken.lock().unwrap_or_else(|p| p.into_inner());
        let mut half_open = state.half_open.lock().unwrap_or_else(|p| p.into_inner());
        let gauge = metrics::gauge!("modbridge_circuit_open", "target" => target.to_string());
        let Some(raw) = record else {
            if broken.take().is_some() || half_open.take().is_some() {
                info!(target = %target, "destination works again (closed by another replica)");
            }
            gauge.set(0.0);
            return;
        };
        gauge.set(1.0);
        if broken.is_some() || half_open.is_some() {
            return;
        }
        let (reason, since) = match serde_json::from_str::<CircuitRecord>(raw) {
            Ok(r) => (r.reason, SystemTime::from(r.since)),
            Err(_) => (
                "broken (unreadable circuit record)".to_owned(),
                SystemTime::now(),
            ),
        };
        info!(target = %target, reason, "destination broken (opened by another replica): its cards are parked");
        *broken = Some(Broken {
            reason,
            since,
            next_probe: Instant::now() + self.policy.probe_interval,
        });
    }

    /// A configuration failure: opens the target's circuit here and in the
    /// store; the replica that opened it in the store announces it (without
    /// a store, or when it fails, this process does, once).
    async fn open_circuit(&self, state: &TargetState, target: &Target, reason: &str) -> Instant {
        let next_probe = Instant::now() + self.policy.probe_interval;
        let (first_here, since) = {
            let mut broken = state.broken.lock().unwrap_or_else(|p| p.into_inner());
            let was_half_open = state
                .half_open
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            let first_here = broken.is_none() && was_half_open.is_none();
            let since = broken
                .as_ref()
                .or(was_half_open.as_ref())
                .map_or_else(SystemTime::now, |b| b.since);
            *broken = Some(Broken {
                reason: reason.to_owned(),
                since,
                next_probe,
            });
            (first_here, since)
        };
        metrics::gauge!("modbridge_circuit_open", "target" => target.to_string()).set(1.0);
        let record = CircuitRecord {
            reason: reason.to_owned(),
            since: since.into(),
            opened_by: self.replica.to_string(),
        };
        let opened = match serde_json::to_string(&record) {
            Ok(json) => self
                .store
                .open_circuit(&target.to_string(), &json, CIRCUIT_TTL)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        *state.checked.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        let announce = match opened {
            Ok(CircuitOpened::Opened) => true,
            Ok(CircuitOpened::AlreadyOpen(_)) => false,
            Err(e) => {
                warn!(error = %e, target = %target, "cannot share the destination's broken state: this replica keeps its own");
                first_here
            }
        };
        if announce {
            error!(target = %target, reason, "destination broken: no more calls to it until a probe succeeds");
            self.alert(
                target,
                &format!("Destination broken: {target}"),
                &format!("{reason}\nCards for it are kept and delivered once it works again (probed every {} s).", self.policy.probe_interval.as_secs()),
            );
        }
        next_probe
    }

    /// A card really went through: the target works (again). The replica
    /// that closes the shared circuit announces it; a store error announces
    /// nothing (the circuit stays open for the others; a later probe closes
    /// it).
    async fn close_circuit(&self, target: &Target) {
        let state = self.state(target);
        let was = {
            let mut broken = state.broken.lock().unwrap_or_else(|p| p.into_inner());
            let half_open = state
                .half_open
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            broken.take().is_some() || half_open.is_some()
        };
        match self.store.close_circuit(&target.to_string()).await {
            Ok(closed) => {
                *state.checked.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                metrics::gauge!("modbridge_circuit_open", "target" => target.to_string()).set(0.0);
                if closed {
                    info!(target = %target, "destination works again");
                    self.alert(
                        target,
                        &format!("Destination works again: {target}"),
                        "Kept cards are being delivered.",
                    );
                } else if was {
                    info!(target = %target, "destination works again (announced by another replica)");
                }
            }
            Err(e) => {
                warn!(error = %e, target = %target, "a card went through but the shared circuit could not be closed: it stays open for the other replicas until a probe closes it");
            }
        }
    }

    /// Nothing parked to probe with: let the next real card through; the
    /// circuit closes (and "works again" is said) only once one went through.
    fn let_through(&self, target: &Target) {
        let state = self.state(target);
        let mut broken = state.broken.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = broken.take() {
            info!(target = %target, "nothing parked: the next card to it is the probe");
            *state.half_open.lock().unwrap_or_else(|p| p.into_inner()) = Some(b);
        }
    }

    /// A card for a broken target: parked in a durable store, refused with a
    /// long `Retry-After` without one.
    async fn park(
        &self,
        key: &SentKey,
        card: &Card,
        target: &Target,
        reason: &str,
        next_probe: Instant,
    ) -> Result<Delivered, RetryLater> {
        let json = entry_json(key, card, target, reason).map_err(|e| RetryLater {
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

    /// A card the platform refused (its record is already `dead_letter`):
    /// counted, listed for `modbridge parked` when the store is durable, and
    /// one notice when the destination dead-letters several within minutes.
    async fn keep_dead_letter(&self, key: &SentKey, card: &Card, target: &Target, reason: &str) {
        metrics::counter!("modbridge_cards_total", "destination" => card.destination.clone(), "outcome" => "dead_letter").increment(1);
        metrics::counter!("modbridge_dead_letters_total", "destination" => card.destination.clone()).increment(1);
        error!(target = %target, reason, "the platform refused the card: kept as a dead letter (see `modbridge parked`)");
        match entry_json(key, card, target, reason) {
            Ok(json) => {
                if let Err(e) = self.store.park(&dead_letter_list(target), &json).await {
                    warn!(error = %e, target = %target, "dead letter not listed (its record is kept)");
                }
            }
            Err(e) => warn!(error = %e, "dead letter not listed"),
        }
        let state = self.state(target);
        let now = Instant::now();
        let burst = {
            let mut recent = state.dead_letters.lock().unwrap_or_else(|p| p.into_inner());
            recent.retain(|at| now.duration_since(*at) < DEAD_LETTER_WINDOW);
            recent.push_back(now);
            if recent.len() >= DEAD_LETTER_ALERT {
                recent.clear();
                true
            } else {
                false
            }
        };
        if burst {
            self.alert(
                target,
                &format!("Cards refused by {target}"),
                &format!(
                    "{DEAD_LETTER_ALERT} cards were refused as malformed within {} minutes (likely a modbridge rendering bug). Last reason: {reason}\nThey are kept: `modbridge parked` lists them, `modbridge replay ID` sends one again after a fix.",
                    DEAD_LETTER_WINDOW.as_secs() / 60
                ),
            );
        }
    }

    /// Probes every broken target whose time has come (or all, `force`), and
    /// replays every target with parked cards (parked by this process before
    /// a restart, or by another replica): oldest first; a card that really
    /// went through closes the circuit. Expires old entries first. A store
    /// error decides nothing. Returns how many parked cards were delivered.
    pub async fn probe(&self, force: bool) -> usize {
        // Every replica reads the shared circuits (and reports them).
        let known: Vec<(Target, Arc<TargetState>)> = {
            let targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
            targets
                .iter()
                .map(|(t, s)| (t.clone(), s.clone()))
                .collect()
        };
        for (target, state) in &known {
            self.shared_circuit(state, target).await;
        }
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
        let lists = match self.store.parked_lists().await {
            Ok(lists) => lists,
            Err(e) => {
                warn!(error = %e, "cannot read the parked lists: nothing probed or replayed until the store answers");
                return 0;
            }
        };
        for raw in lists {
            let Some(kind) = ListKind::parse(&raw) else {
                continue;
            };
            self.expire(&raw, &kind).await;
            let ListKind::Parked(target) = kind else {
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
        // One replica at a time probes and replays a target, under a lock
        // that outlasts one card's call (renewed after each card); after a
        // failed probe it is kept for `probe_interval`, so that all replicas
        // together probe a broken target once per interval.
        let hold = self.policy.reservation();
        for target in due {
            let lock = match self.store.lock(&format!("probe:{target}"), hold).await {
                Ok(Some(lock)) => lock,
                Ok(None) => continue,
                Err(e) => {
                    warn!(error = %e, target = %target, "cannot take the probe lock: not probed");
                    continue;
                }
            };
            let parked = match self.store.parked(&target.to_string()).await {
                Ok(parked) => parked,
                Err(e) => {
                    warn!(error = %e, target = %target, "cannot read the parked cards: the destination's state is unknown");
                    continue;
                }
            };
            if parked.is_empty() {
                // Half-open: the next real card is the probe.
                self.let_through(&target);
            } else {
                replayed += self.replay(&target, parked, Some((&lock, hold))).await;
            }
            let state = self.state(&target);
            let closed = state
                .broken
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_none()
                && state
                    .half_open
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_none();
            let kept = if closed {
                self.store.unlock(&lock).await
            } else {
                self.store
                    .renew_lock(&lock, self.policy.probe_interval)
                    .await
                    .map(|_| ())
            };
            if let Err(e) = kept {
                warn!(error = %e, "could not set the probe lock; it expires by itself");
            }
        }
        replayed
    }

    /// Drops entries of one list older than `parked_ttl`: a parked card so
    /// dropped is lost (counted and alerted), a dead letter only forgotten.
    /// Sets the gauge of what is left.
    async fn expire(&self, list: &str, kind: &ListKind) {
        let Ok(entries) = self.store.parked(list).await else {
            return;
        };
        let cutoff = chrono::Utc::now()
            - chrono::Duration::from_std(self.policy.parked_ttl).unwrap_or(chrono::Duration::MAX);
        let mut left = entries.len();
        for raw in &entries {
            let Ok(entry) = serde_json::from_str::<ParkedCard>(raw) else {
                continue;
            };
            if entry.parked_at > cutoff {
                continue;
            }
            if self.store.unpark(list, raw).await.is_err() {
                continue;
            }
            left -= 1;
            if let ListKind::Parked(target) = kind {
                metrics::counter!("modbridge_cards_total", "destination" => entry.card.destination.clone(), "outcome" => "expired").increment(1);
                error!(target = %target, id = %entry.id(), "a parked card expired undelivered: it is lost");
                self.alert(
                    target,
                    &format!("Card lost: {target}"),
                    &format!(
                        "A card parked since {} for post {} was never delivered and is dropped after {} days ({}).",
                        entry.parked_at.format("%Y-%m-%d %H:%M UTC"),
                        entry.card.post_id,
                        self.policy.parked_ttl.as_secs() / 86_400,
                        entry.reason
                    ),
                );
            }
        }
        metrics::gauge!("modbridge_parked_entries", "target" => kind.target().to_string(), "kind" => kind.label())
            .set(left as f64);
    }

    /// Delivers parked entries of one target, oldest first, stopping at the
    /// first failure; a dead letter moves aside and does not stop the rest.
    /// Returns how many were delivered (or found already sent).
    pub async fn replay_target(&self, target: &Target, parked: Vec<String>) -> usize {
        self.replay(target, parked, None).await
    }

    /// [`Deliverer::replay_target`], renewing `lock` (for its duration)
    /// after each card; a lost lock stops the replay (another replica goes on).
    async fn replay(
        &self,
        target: &Target,
        parked: Vec<String>,
        lock: Option<(&LockLease, Duration)>,
    ) -> usize {
        let state = self.state(target);
        let list = target.to_string();
        let mut done = 0;
        for raw in parked {
            if let Some((lock, hold)) = lock {
                match self.store.renew_lock(lock, hold).await {
                    Ok(true) => {}
                    Ok(false) => {
                        info!(target = %target, "the probe lock was lost: replay stops here");
                        break;
                    }
                    Err(e) => {
                        warn!(error = %e, target = %target, "store unavailable: replay stopped, nothing decided");
                        break;
                    }
                }
            }
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
            let outcome = self
                .attempt(&key, &entry.card, target, &Fence::default())
                .await;
            match outcome {
                Attempt::Sent
                | Attempt::Found
                | Attempt::Settled(
                    CardRecord::Sent { .. } | CardRecord::Other | CardRecord::InDigest { .. },
                ) => {
                    if let Err(e) = self.store.unpark(&list, &raw).await {
                        error!(error = %e, "replayed card still listed as parked");
                    }
                    if matches!(outcome, Attempt::Sent) {
                        self.close_circuit(target).await;
                    }
                    metrics::counter!("modbridge_replayed_total", "destination" => entry.card.destination.clone()).increment(1);
                    done += 1;
                }
                Attempt::DeadLetter(_) | Attempt::Settled(CardRecord::DeadLetter { .. }) => {
                    if let Attempt::DeadLetter(reason) = &outcome {
                        self.keep_dead_letter(&key, &entry.card, target, reason)
                            .await;
                    }
                    if let Err(e) = self.store.unpark(&list, &raw).await {
                        error!(error = %e, "dead letter still listed as parked");
                    }
                }
                Attempt::Failed(e @ SinkError::Config { .. }) => {
                    let reason = e.to_string();
                    self.open_circuit(&state, target, &reason).await;
                    break;
                }
                Attempt::Failed(e) => {
                    warn!(error = %e, target = %target, "replay interrupted; will try again at the next probe");
                    break;
                }
                Attempt::Unlooked { detail, .. } => {
                    warn!(target = %target, detail, "replay interrupted: whether a parked card is already there is unknown; will try again at the next probe");
                    break;
                }
                Attempt::InFlight(_) | Attempt::Settled(CardRecord::Reserved { .. }) => {
                    info!(target = %target, "a parked card is being sent by another worker; replay stops here");
                    break;
                }
                Attempt::StoreDown(e) => {
                    warn!(error = %e, target = %target, "store unavailable: replay stopped, nothing decided");
                    break;
                }
                Attempt::Held(_) => break,
                Attempt::Fenced => break,
            }
        }
        done
    }

    /// Replays one parked card or dead letter by its ID (`modbridge replay
    /// ID`): a dead letter's record is cleared first, so that it is sent
    /// again. `Ok(None)` when no entry has that ID.
    pub async fn replay_one(&self, id: &str) -> Result<Option<Delivered>, String> {
        let lists = self.store.parked_lists().await.map_err(|e| e.to_string())?;
        for list in lists {
            let Some(kind) = ListKind::parse(&list) else {
                continue;
            };
            let entries = self.store.parked(&list).await.map_err(|e| e.to_string())?;
            for raw in entries {
                let Ok(entry) = serde_json::from_str::<ParkedCard>(&raw) else {
                    continue;
                };
                if entry.id() != id {
                    continue;
                }
                let key = SentKey::new(entry.key.clone());
                let target = kind.target().clone();
                if matches!(kind, ListKind::DeadLetter(_)) {
                    self.store
                        .clear_dead_letter(&key)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                let outcome = self
                    .attempt(&key, &entry.card, &target, &Fence::default())
                    .await;
                let delivered = match outcome {
                    Attempt::Sent => Delivered::Sent,
                    Attempt::Settled(
                        CardRecord::Sent { .. } | CardRecord::Other | CardRecord::InDigest { .. },
                    )
                    | Attempt::Found => Delivered::AlreadySent,
                    Attempt::Unlooked { detail, .. } => {
                        return Err(format!(
                            "{target}: whether an earlier attempt posted it is unknown ({detail}); try again in a minute"
                        ));
                    }
                    Attempt::DeadLetter(reason) => {
                        return Err(format!("{target} refused the card again: {reason}"));
                    }
                    Attempt::Settled(CardRecord::DeadLetter { reason }) => {
                        return Err(format!("the card is a dead letter: {reason}"));
                    }
                    Attempt::InFlight(_) | Attempt::Settled(CardRecord::Reserved { .. }) => {
                        return Err(
                            "the card is being sent by another worker; try again in a minute"
                                .into(),
                        );
                    }
                    Attempt::Failed(e) => return Err(format!("{target}: {e}")),
                    Attempt::StoreDown(e) => return Err(e.to_string()),
                    Attempt::Held(_) => {
                        return Err(
                            "the dedupe store restarted or failed over moments ago; try again in a few seconds"
                                .into(),
                        );
                    }
                    Attempt::Fenced => return Err("stopped".into()),
                };
                self.store
                    .unpark(&list, &raw)
                    .await
                    .map_err(|e| e.to_string())?;
                return Ok(Some(delivered));
            }
        }
        Ok(None)
    }

    /// Runs [`Deliverer::probe`] every `probe_interval / 4`, and
    /// [`Deliverer::watch_store`] every second, until dropped.
    pub fn spawn_prober(&self) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        let every = (self.policy.probe_interval / 4).max(Duration::from_millis(50));
        tokio::spawn(async move {
            let mut probe = tokio::time::interval(every);
            let mut watch = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = probe.tick() => {
                        let n = me.probe(false).await;
                        if n > 0 {
                            info!(replayed = n, "parked cards delivered");
                        }
                    }
                    _ = watch.tick() => me.watch_store().await,
                }
            }
        })
    }
}

/// A parked card or dead letter as its JSON entry.
fn entry_json(
    key: &SentKey,
    card: &Card,
    target: &Target,
    reason: &str,
) -> Result<String, serde_json::Error> {
    serde_json::to_string(&ParkedCard {
        key: key.as_str().to_owned(),
        target: target.to_string(),
        parked_at: chrono::Utc::now(),
        reason: reason.to_owned(),
        card: card.clone(),
    })
}

/// The lookup window of earlier attempts (store clock, ms since the epoch).
fn window(earlier: Attempted) -> Option<Window> {
    Window::between_ms(earlier.since, earlier.until)
}

fn fenced() -> RetryLater {
    RetryLater {
        detail: "this execution's lease was lost to another worker: stopped before the next platform call".into(),
        retry_after: Duration::from_secs(5),
    }
}

fn store_down(e: StoreError) -> RetryLater {
    metrics::counter!("modbridge_dedupe_errors_total", "op" => "delivery").increment(1);
    RetryLater {
        detail: e.to_string(),
        retry_after: Duration::from_secs(5),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedupe::{MemoryStore, Ttl};
    use crate::platforms::Recorder;

    fn deliverer(recorder: &Recorder) -> (Deliverer, Store) {
        let store = Store::Memory(MemoryStore::new(
            Ttl {
                lease: Duration::from_secs(5),
                done: Duration::from_secs(3600),
            },
            1_000,
        ));
        let d = Deliverer::new(
            Sinks::Recorder(recorder.clone()),
            store.clone(),
            Policy::default(),
        );
        (d, store)
    }

    fn card() -> (SentKey, Card, Target) {
        let destination = crate::destination::Destinations::default()
            .resolve("slack:C0123ABCD")
            .unwrap();
        let target = destination.target().clone();
        let card = Card::notice(&destination, "headline", "text");
        (
            SentKey::new("cust\u{1f}P1\u{1f}slack:C0123ABCD".into()),
            card,
            target,
        )
    }

    #[tokio::test]
    async fn no_platform_call_starts_after_the_fence_tripped() {
        let recorder = Recorder::default();
        let (d, store) = deliverer(&recorder);
        let (key, card, target) = card();
        let fence = Fence::default();
        fence.trip();
        let e = d.deliver(&key, &card, &target, &fence).await.unwrap_err();
        assert!(e.detail.contains("lease was lost"), "{}", e.detail);
        assert_eq!(recorder.attempts(), 0);
        assert_eq!(store.card(&key).await.unwrap(), None, "nothing reserved");
        // Another worker (unfenced) sends it.
        let sent = d.deliver(&key, &card, &target, &Fence::default()).await;
        assert_eq!(sent.unwrap(), Delivered::Sent);
        assert_eq!(recorder.cards().len(), 1);
    }

    #[tokio::test]
    async fn a_reservation_held_elsewhere_is_in_flight_and_a_confirmed_card_is_not_resent() {
        let recorder = Recorder::default();
        let (d, store) = deliverer(&recorder);
        let (key, card, target) = card();
        let Reservation::Fresh(other) = store.reserve(&key, Duration::from_secs(30)).await.unwrap()
        else {
            panic!("fresh");
        };
        let e = d
            .deliver(&key, &card, &target, &Fence::default())
            .await
            .unwrap_err();
        assert!(e.detail.contains("another worker"), "{}", e.detail);
        assert_eq!(recorder.attempts(), 0);
        store.confirm(&other, None).await.unwrap();
        let again = d.deliver(&key, &card, &target, &Fence::default()).await;
        assert_eq!(again.unwrap(), Delivered::AlreadySent);
        assert_eq!(recorder.attempts(), 0);
    }
}
