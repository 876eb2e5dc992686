//! The composition root: builds the running service from [`Settings`] and the
//! loaded rules — dedupe store, deliverer (with alerts and its prober), live
//! rules (with the reload watcher and what a reload announces), pipeline,
//! ingest service, routes and listeners — and returns [`Running`], which stops
//! it. `commands::serve` and the API tests both start the service here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use poem::Server;
use poem::listener::{Acceptor, Listener, TcpListener};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::Settings;
use crate::dedupe::{MemoryStore, RedisStore, RedisTarget, Store, Ttl};
use crate::delivery::{Alerts, Deliverer, Policy};
use crate::ingest::{Ingest, Timing};
use crate::intake::limits::{InFlight, Limited, raise_open_files_limit};
use crate::intake::{AppState, admin_routes, public_routes};
use crate::pipeline::Pipeline;
use crate::platforms::Sinks;
use crate::rules::{LiveRules, ReloadEvent, RuleSet, WatchGuard};
use crate::telemetry;

/// A running server (for tests and the CLI).
pub struct Running {
    pub addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    pub state: AppState,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
    prober: tokio::task::JoinHandle<()>,
    escalator: Option<tokio::task::JoinHandle<()>>,
    /// The group writer (digests), with Redis.
    writer: Option<tokio::task::JoinHandle<()>>,
    _watch: Option<WatchGuard>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, then gives background
    /// deliveries the rest of `shutdown_timeout_secs` before releasing their
    /// claims for Cativa's retry.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.prober.abort();
        if let Some(w) = &self.writer {
            // A group taken and not written comes due again after the lease.
            w.abort();
        }
        if let Some(e) = &self.escalator {
            // A case taken and not finished comes due again after the lease.
            e.abort();
        }
        let released = self
            .state
            .ingest
            .drain(self.state.settings.server.shutdown_timeout)
            .await;
        if released > 0 {
            warn!(
                released,
                "deliveries unfinished at shutdown: their claims were released for Cativa's retry"
            );
        }
    }
}

/// The dedupe store the settings ask for: Redis with `REDIS_URL` or
/// `[redis] sentinels`, memory without.
pub fn store_for(settings: &Settings) -> anyhow::Result<Store> {
    let ttl = Ttl {
        lease: settings.dedupe.lease,
        done: settings.dedupe.done_ttl,
    };
    let redis = &settings.dedupe.redis;
    let target = match (&redis.master, &settings.redis_url) {
        (Some(master), url) if !redis.sentinels.is_empty() => Some(RedisTarget::sentinel(
            redis.sentinels.clone(),
            master,
            url.as_deref(),
        )),
        (_, Some(url)) => Some(RedisTarget::server(url)),
        _ => None,
    };
    Ok(match target {
        Some(target) => Store::Redis(
            RedisStore::connect(
                target.with_ca(redis.ca_pem.clone()),
                &settings.dedupe.key_prefix,
                ttl,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .with_parked_ttl(settings.delivery.parked_ttl),
        ),
        None => Store::Memory(MemoryStore::new(ttl, settings.dedupe.memory_capacity)),
    })
}

/// Binds the listeners and serves in the background.
pub async fn start(
    settings: Settings,
    rules: RuleSet,
    watch_rules: bool,
) -> anyhow::Result<Running> {
    let sinks = Sinks::for_settings(&settings, &crate::config::ProcessEnv)
        .map_err(|e| anyhow::anyhow!(e))?;
    start_with(settings, rules, watch_rules, sinks).await
}

/// [`start`] with the sinks given (tests record cards instead of sending).
pub async fn start_with(
    settings: Settings,
    rules: RuleSet,
    watch_rules: bool,
    sinks: Sinks,
) -> anyhow::Result<Running> {
    let settings = Arc::new(settings);
    let store = announced_store(&settings)?;
    let live = LiveRules::new(
        rules.with_max_eval(settings.rules_max_eval),
        settings.rules_dir.clone(),
        settings.destinations.clone(),
    );
    if let Some(p) = live.problem() {
        warn!("{p}");
    }
    let guard = if watch_rules { watch(&live) } else { None };
    let alerts = alerts_for(&settings, &sinks);
    // Cases are kept only while some platform's clicks can reach them, or
    // while unclaimed ones are escalated.
    let interactions_on = settings.triage.slack_signing_secret.is_some()
        || settings.triage.discord_public_key.is_some();
    let escalate_after = settings.triage.escalate_after;
    let case_ttl = settings.triage.case_ttl;
    let escalator = escalate_after.map(|after| {
        let mentions = settings
            .destinations
            .iter()
            .filter_map(|d| Some((d.name().to_owned(), d.mention()?.to_owned())))
            .collect();
        crate::triage::escalate::Escalator::new(
            store.clone(),
            sinks.clone(),
            after,
            case_ttl,
            mentions,
        )
    });
    let interactions = crate::platforms::Interactions::new(&settings.triage);
    let update_sinks = sinks.clone();
    let waves = crate::waves::Waves::new(
        store.clone(),
        sinks.clone(),
        settings.waves.clone(),
        settings.dedupe.done_ttl,
    );
    let deliverer = Deliverer::new(sinks, store.clone(), Policy::from(&settings.delivery))
        .with_waves(waves.clone())
        .with_alerts(alerts.clone())
        .with_cases((interactions_on || escalate_after.is_some()).then_some(case_ttl))
        .with_escalation(escalate_after)
        .with_buttons(interactions.clone());
    let prober = deliverer.spawn_prober();
    announce_reloads(&live, alerts, deliverer.clone());
    let pipeline = Pipeline::new(
        live,
        deliverer,
        settings.cards.post_url.clone(),
        settings.cards.groups.clone(),
    );
    let ingest = Ingest::new(
        store.clone(),
        pipeline.clone(),
        Timing::new(settings.intake.deadline, settings.dedupe.lease)
            .with_max_processing(settings.intake.max_processing),
    );
    let cases = crate::triage::case::Cases::new(store.clone(), settings.triage.case_ttl);
    let triage = crate::triage::Triage {
        interactions: interactions.clone(),
        store: store.clone(),
        histories: crate::triage::history::Histories::new(store.clone(), case_ttl),
        cases: cases.clone(),
        updater: crate::triage::update::Updater {
            store: store.clone(),
            cases,
            sinks: update_sinks,
            interactions,
        },
    };
    let state = AppState {
        settings: settings.clone(),
        store,
        pipeline,
        metrics: telemetry::metrics(),
        ingest,
        capture: match &settings.capture {
            Some(c) => Some(Arc::new(crate::intake::capture::Capture::open(c)?)),
            None => None,
        },
        in_flight: InFlight::new(settings.intake.max_in_flight),
        triage,
        webhook_keys: crate::intake::routes::webhook_keys(&settings),
    };
    let listeners = listen(&settings, &state).await?;
    if settings.listeners.insecure_dev_secret {
        warn!(
            "INSECURE: no CATIVA_WEBHOOK_SECRET set; accepting only requests signed with the published development secret, on 127.0.0.1 only. Never run this way in production."
        );
    }
    info!(
        listen = %listeners.addr,
        admin = ?listeners.admin_addr,
        dry_run = settings.dry_run,
        rules = state.pipeline.rules().current().files(),
        "modbridge is listening"
    );
    let escalator = escalator.map(|e| e.spawn(settings.triage.escalate_poll));
    let writer = waves.map(|w| w.spawn_writer());
    Ok(Running {
        addr: listeners.addr,
        admin_addr: listeners.admin_addr,
        state,
        shutdown: listeners.shutdown,
        tasks: listeners.tasks,
        prober,
        escalator,
        writer,
        _watch: guard,
    })
}

/// [`store_for`], saying in the log which store is in use and what that means.
fn announced_store(settings: &Settings) -> anyhow::Result<Store> {
    let store = store_for(settings)?;
    match &store {
        Store::Redis(_) => info!(
            redis = %settings.redis_display().unwrap_or_default(),
            setup = ?settings.dedupe.redis,
            "dedupe records in Redis (shared by every replica)"
        ),
        Store::Memory(_) => info!(
            capacity = settings.dedupe.memory_capacity,
            "dedupe records in memory (REDIS_URL is not set: one process only, forgotten on restart)"
        ),
    }
    Ok(store)
}

/// Watches the rules directory; without a watcher, SIGHUP still reloads.
fn watch(live: &Arc<LiveRules>) -> Option<WatchGuard> {
    match live.watch() {
        Ok(g) => Some(g),
        Err(e) => {
            warn!(error = %e, "cannot watch the rules directory; reload with SIGHUP");
            None
        }
    }
}

/// The `[alerts]` destination's notifier, when one is configured.
fn alerts_for(settings: &Settings, sinks: &Sinks) -> Option<Alerts> {
    let name = settings.alerts_to.as_ref()?;
    settings
        .destinations
        .resolve(name)
        .ok()
        .map(|d| Alerts::new(sinks.clone(), d))
}

/// Every reload: announce failures (and the recovery after one), and probe
/// broken destinations at once (the fix may have been in the rules).
fn announce_reloads(live: &Arc<LiveRules>, alerts: Option<Alerts>, probe: Deliverer) {
    let runtime = tokio::runtime::Handle::current();
    live.on_reload(move |event| {
        match &event {
            ReloadEvent::Failed { errors } => {
                if let Some(a) = &alerts {
                    a.notify(
                        "Rules reload failed: the previous rules keep running",
                        errors,
                    );
                }
            }
            ReloadEvent::Loaded { files, recovered } => {
                if *recovered && let Some(a) = &alerts {
                    a.notify(
                        "Rules reloaded",
                        &format!("{files} rules file(s) are in force again."),
                    );
                }
            }
        }
        let probe = probe.clone();
        runtime.spawn(async move { probe.probe(true).await });
    });
}

/// The bound listeners, serving in the background until `shutdown` says stop.
struct Listeners {
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// Binds the public listener (with the intake limits) and the admin one
/// (when not off), and serves.
async fn listen(settings: &Settings, state: &AppState) -> anyhow::Result<Listeners> {
    let (shutdown, signal) = watch::channel(false);
    let intake = &settings.intake;
    match raise_open_files_limit() {
        Ok(limit) if limit < intake.max_connections as u64 + 64 => warn!(
            open_files = limit,
            max_connections = intake.max_connections,
            "the open-files limit is below intake.max_connections: raise the hard limit (ulimit -Hn, LimitNOFILE=) or lower max_connections"
        ),
        Ok(_) => {}
        Err(e) => warn!(error = %e, "cannot raise the open-files limit"),
    }
    let acceptor = TcpListener::bind(settings.server.listen)
        .into_acceptor()
        .await
        .with_context(|| format!("cannot listen on {}", settings.server.listen))?;
    let addr = local(&acceptor).unwrap_or(settings.server.listen);
    let acceptor = Limited::new(acceptor, intake.max_connections, intake.header_timeout);
    let mut tasks = vec![tokio::spawn(serve_on(
        acceptor,
        public_routes(state.clone()),
        signal.clone(),
        settings.server.shutdown_timeout,
        Some(intake.idle_timeout),
    ))];
    let mut admin_addr = None;
    if let Some(admin) = settings.server.admin_listen {
        let acceptor = TcpListener::bind(admin)
            .into_acceptor()
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {admin} (admin_listen / MODBRIDGE_ADMIN_LISTEN: set another address, or \"off\")"
                )
            })?;
        admin_addr = Some(local(&acceptor).unwrap_or(admin));
        tasks.push(tokio::spawn(serve_on(
            acceptor,
            admin_routes(state.clone()),
            signal,
            settings.server.shutdown_timeout,
            None,
        )));
    }
    Ok(Listeners {
        addr,
        admin_addr,
        shutdown,
        tasks,
    })
}

fn local(acceptor: &impl Acceptor) -> Option<SocketAddr> {
    acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
}

async fn serve_on<A: Acceptor + 'static>(
    acceptor: A,
    routes: impl poem::IntoEndpoint<Endpoint: 'static>,
    mut signal: watch::Receiver<bool>,
    grace: Duration,
    idle_timeout: Option<Duration>,
) -> std::io::Result<()> {
    let mut server = Server::new_with_acceptor(acceptor);
    if let Some(idle) = idle_timeout {
        server = server.idle_timeout(idle);
    }
    server
        .run_with_graceful_shutdown(
            routes,
            async move {
                let _ = signal.wait_for(|stop| *stop).await;
            },
            Some(grace),
        )
        .await
}
