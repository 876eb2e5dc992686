//! `modbridge serve`: load settings and rules, pick the dedupe store and the
//! sinks, run the public (and admin) listeners until SIGTERM/SIGINT; SIGHUP
//! reloads the rules.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use poem::Server;
use poem::listener::{Acceptor, Listener, TcpListener};
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::EXIT_CONFIG;
use crate::config::{Env, ProcessEnv, Settings};
use crate::dedupe::{MemoryStore, RedisStore, Store, Ttl};
use crate::delivery::{Alerts, Deliverer};
use crate::intake::{AppState, admin_routes, public_routes};
use crate::pipeline::Pipeline;
use crate::platforms::Sinks;
use crate::rules::{LiveRules, ReloadEvent, RuleSet};
use crate::telemetry;

pub fn main(config: Option<&Path>, dry_run: bool) -> ExitCode {
    let settings = match Settings::load(config, dry_run, &ProcessEnv) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("modbridge: configuration errors:\n{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    telemetry::init_logs(settings.log_format);
    let rules = match RuleSet::load_dir(&settings.rules_dir, &settings.destinations) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                warn!("{w}");
            }
            loaded.rules
        }
        Err(errors) => {
            eprintln!(
                "modbridge: the rules in {} do not load:\n{errors}",
                settings.rules_dir.display()
            );
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Err(problems) = check_sinks(&settings, &rules, &ProcessEnv) {
        eprintln!("modbridge: cannot deliver cards:\n{}", problems.join("\n"));
        return ExitCode::from(EXIT_CONFIG);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("modbridge: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(settings, rules)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("modbridge: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Without `--dry-run`, every platform that a destination uses needs its
/// token or webhook URL: a forgotten one must not turn into silently dropped
/// posts.
pub fn check_sinks(settings: &Settings, rules: &RuleSet, env: &dyn Env) -> Result<(), Vec<String>> {
    if settings.dry_run {
        return Ok(());
    }
    let mut problems = Vec::new();
    let targets = settings
        .destinations
        .iter()
        .map(|d| d.target().clone())
        .chain(rules.destinations().into_iter().map(|d| d.target().clone()));
    let mut seen = std::collections::BTreeSet::new();
    for target in targets {
        let need = target.credential_env();
        if !seen.insert(need.clone()) {
            continue;
        }
        if env.var(&need).is_none() {
            problems.push(format!(
                "{} destinations need {need}; set it, or run with --dry-run to print cards instead",
                target.platform()
            ));
        }
        // Present is enough here: the platforms judge the token itself
        // (`modbridge check --live`, and `/readyz` after a failed delivery).
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// A running server (for tests and the CLI).
pub struct Running {
    pub addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    pub state: AppState,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
    prober: tokio::task::JoinHandle<()>,
    _watch: Option<crate::rules::WatchGuard>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish (up to 10 s), returns.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.prober.abort();
        let released = self
            .state
            .inflight
            .drain(&self.state.store, self.state.settings.shutdown_timeout)
            .await;
        if released > 0 {
            warn!(
                released,
                "deliveries unfinished at shutdown: their claims were released for Cativa's retry"
            );
        }
    }
}

pub fn store_for(settings: &Settings) -> anyhow::Result<Store> {
    let ttl = Ttl {
        lease: settings.dedupe.lease,
        done: settings.dedupe.done_ttl,
    };
    Ok(match &settings.redis_url {
        Some(url) => Store::Redis(
            RedisStore::new(url, &settings.dedupe.key_prefix, ttl)
                .map_err(|e| anyhow::anyhow!("{e}"))?,
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
    let sinks = Sinks::for_settings(&settings, &ProcessEnv).map_err(|e| anyhow::anyhow!(e))?;
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
    let store = store_for(&settings)?;
    match &store {
        Store::Redis(_) => info!(
            redis = %settings.redis_display().unwrap_or_default(),
            "dedupe records in Redis (shared by every replica)"
        ),
        Store::Memory(_) => info!(
            capacity = settings.dedupe.memory_capacity,
            "dedupe records in memory (REDIS_URL is not set: one process only, forgotten on restart)"
        ),
    }
    let live = LiveRules::new(
        rules,
        settings.rules_dir.clone(),
        settings.destinations.clone(),
    );
    let guard = if watch_rules {
        match live.watch() {
            Ok(g) => Some(g),
            Err(e) => {
                warn!(error = %e, "cannot watch the rules directory; reload with SIGHUP");
                None
            }
        }
    } else {
        None
    };
    let alerts = match &settings.alerts_to {
        Some(name) => settings
            .destinations
            .resolve(name)
            .ok()
            .map(|d| Alerts::new(sinks.clone(), d)),
        None => None,
    };
    let deliverer =
        Deliverer::new(sinks, store.clone(), settings.delivery).with_alerts(alerts.clone());
    let prober = deliverer.spawn_prober();
    // Every reload: announce failures (and the recovery after one), and probe
    // broken destinations at once (the fix may have been in the rules).
    let runtime = tokio::runtime::Handle::current();
    let probe = deliverer.clone();
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
    let pipeline = Pipeline::new(
        live,
        deliverer,
        settings.post_url.clone(),
        settings.groups.clone(),
    );
    let state = AppState {
        settings: settings.clone(),
        store,
        pipeline,
        metrics: telemetry::metrics(),
        inflight: Default::default(),
    };

    let (shutdown, signal) = watch::channel(false);
    let acceptor = TcpListener::bind(settings.listen)
        .into_acceptor()
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = local(&acceptor).unwrap_or(settings.listen);
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(serve_on(
        acceptor,
        public_routes(state.clone()),
        signal.clone(),
        settings.shutdown_timeout,
    )));
    let mut admin_addr = None;
    if let Some(admin) = settings.admin_listen {
        let acceptor = TcpListener::bind(admin)
            .into_acceptor()
            .await
            .with_context(|| format!("cannot listen on {admin} (MODBRIDGE_ADMIN_LISTEN)"))?;
        admin_addr = Some(local(&acceptor).unwrap_or(admin));
        tasks.push(tokio::spawn(serve_on(
            acceptor,
            admin_routes(state.clone()),
            signal,
            settings.shutdown_timeout,
        )));
    }
    if settings.insecure_dev_secret {
        warn!(
            "INSECURE: no CATIVA_WEBHOOK_SECRET set; accepting only requests signed with the published development secret, on 127.0.0.1 only. Never run this way in production."
        );
    }
    info!(
        listen = %addr,
        admin = ?admin_addr,
        dry_run = settings.dry_run,
        rules = state.pipeline.rules().current().files(),
        "modbridge is listening"
    );
    Ok(Running {
        addr,
        admin_addr,
        state,
        shutdown,
        tasks,
        prober,
        _watch: guard,
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
) -> std::io::Result<()> {
    Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(
            routes,
            async move {
                let _ = signal.wait_for(|stop| *stop).await;
            },
            Some(grace),
        )
        .await
}

async fn run(settings: Settings, rules: RuleSet) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let running = start(settings, rules, true).await?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = hup.recv() => {
                info!("SIGHUP: reloading rules");
                let live = running.state.pipeline.rules().clone();
                let _ = tokio::task::spawn_blocking(move || live.reload_now()).await;
            }
        }
    }
    info!("shutting down: finishing in-flight requests (up to 10 s)");
    running.stop().await;
    info!("stopped");
    Ok(())
}
