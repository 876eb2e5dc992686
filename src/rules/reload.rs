//! Live rules: the current [`RuleSet`], swapped atomically when the rules
//! directory changes (watched with notify) or on demand (`SIGHUP`).
//!
//! A reload that fails keeps the last good set running, logs every error and
//! records it in [`ReloadStatus`] (shown by `/readyz`) and in metrics. A
//! directory left with no rules at all (no file, or only empty ones) is such
//! a failure: it would answer every post 200 and forward nothing. Rules that
//! are all disabled or in shadow mode load, and [`LiveRules::problem`] says so. Any event
//! in the directory or its `lists/` folder (shared lists) triggers a reload, debounced: Kubernetes ConfigMaps swap a
//! `..data` symlink instead of writing `*.toml` files, and editors write
//! several times per save.

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use notify::{EventKind, RecursiveMode, Watcher as _};

use super::{Diagnostic, LoadErrors, RuleSet};
use crate::destination::Destinations;

/// Quiet time after the last event before reloading.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// How the last reloads went.
#[derive(Debug, Clone)]
pub struct ReloadStatus {
    /// When the rules now running were loaded.
    pub last_success: SystemTime,
    /// The errors of the last reload, when it failed (cleared by a success).
    pub last_error: Option<String>,
    /// Rules files in the running set.
    pub files: usize,
}

/// What a rule set can do, as far as forwarding goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// No match and no sensitive group: nothing could ever be forwarded.
    NoRules,
    /// Rules exist, but every one is disabled or in shadow mode.
    Quiet,
    /// At least one rule can send a card.
    Live,
}

impl RuleSet {
    /// Whether these rules can forward anything.
    pub fn coverage(&self) -> Coverage {
        let c = &self.compiled;
        let sensitive = c.files.iter().filter(|f| f.sensitive);
        if c.matches.is_empty() && sensitive.clone().next().is_none() {
            return Coverage::NoRules;
        }
        let live = c.matches.iter().any(|m| !m.disabled && !m.shadow)
            || sensitive.into_iter().any(|f| !f.disabled && !f.shadow);
        if live {
            Coverage::Live
        } else {
            Coverage::Quiet
        }
    }

    /// Why these rules cannot run at all, when they cannot: `serve` refuses to
    /// start, and a reload keeps the previous set.
    pub fn refusal(&self, dir: &std::path::Path) -> Option<LoadErrors> {
        (self.coverage() == Coverage::NoRules).then(|| {
            LoadErrors(vec![Diagnostic {
                path: dir.to_path_buf(),
                line: 0,
                col: 0,
                message: format!(
                    "no rules: {} (every post would be answered 200 and nothing forwarded); add a *.toml file with at least one [[match]] (see README, \"Rules guide\")",
                    match self.files() {
                        0 => "no *.toml rules file".to_owned(),
                        n => format!("{n} rules file(s), none with a [[match]]"),
                    }
                ),
            }])
        })
    }
}

/// The rules in force, shared by every request.
pub struct LiveRules {
    current: RwLock<Arc<RuleSet>>,
    status: Mutex<ReloadStatus>,
    /// Serialises reloads from the watcher and from `SIGHUP`.
    reloading: Mutex<()>,
    dir: PathBuf,
    destinations: Destinations,
    /// Told about every reload (alerts, delivery probes); knows nothing of
    /// what it does.
    listener: Mutex<Option<ReloadListener>>,
}

/// What a reload did, for whoever listens.
#[derive(Debug, Clone)]
pub enum ReloadEvent {
    /// New rules are in force; `recovered` when the previous reload had failed.
    Loaded { files: usize, recovered: bool },
    /// The previous rules keep running; every error, one per line.
    Failed { errors: String },
}

type ReloadListener = Box<dyn Fn(ReloadEvent) + Send + Sync>;

impl std::fmt::Debug for LiveRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveRules")
            .field("dir", &self.dir)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

fn record_success(files: usize) {
    metrics::counter!("modbridge_rules_reloads_total", "outcome" => "success").increment(1);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    metrics::gauge!("modbridge_rules_last_reload_success_timestamp_seconds").set(now);
    metrics::gauge!("modbridge_rules_last_reload_successful").set(1.0);
    metrics::gauge!("modbridge_rules_files").set(files as f64);
}

impl LiveRules {
    /// Starts with `initial` (already loaded from `dir`, which later reloads read).
    pub fn new(initial: RuleSet, dir: PathBuf, destinations: Destinations) -> Arc<Self> {
        let files = initial.files();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        metrics::gauge!("modbridge_rules_last_reload_success_timestamp_seconds").set(now);
        metrics::gauge!("modbridge_rules_last_reload_successful").set(1.0);
        metrics::gauge!("modbridge_rules_files").set(files as f64);
        Arc::new(Self {
            current: RwLock::new(Arc::new(initial)),
            status: Mutex::new(ReloadStatus {
                last_success: SystemTime::now(),
                last_error: None,
                files,
            }),
            reloading: Mutex::new(()),
            dir,
            destinations,
            listener: Mutex::new(None),
        })
    }

    /// Calls `listener` after every reload (from the reloading thread: keep it
    /// short, spawn the rest).
    pub fn on_reload(&self, listener: impl Fn(ReloadEvent) + Send + Sync + 'static) {
        *self.listener.lock().unwrap_or_else(PoisonError::into_inner) = Some(Box::new(listener));
    }

    fn tell(&self, event: ReloadEvent) {
        if let Some(l) = self
            .listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            l(event);
        }
    }

    /// The rules in force now. Hold the `Arc` for a whole evaluation: a reload
    /// never changes a set in use.
    pub fn current(&self) -> Arc<RuleSet> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn status(&self) -> ReloadStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// What readiness should report about the rules in force, beyond a
    /// failed reload: rules that cannot send any card.
    pub fn problem(&self) -> Option<String> {
        (self.current().coverage() == Coverage::Quiet).then(|| {
            "every rule is disabled or in shadow mode: no card will be sent (enable a rule, or set mode = \"live\")".to_owned()
        })
    }

    /// Reloads the directory now. On failure logs every error, keeps the
    /// running rules and returns the errors.
    pub fn reload_now(&self) -> Result<(), LoadErrors> {
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let loaded =
            RuleSet::load_dir(&self.dir, &self.destinations).and_then(|loaded| {
                match loaded.rules.refusal(&self.dir) {
                    Some(no_rules) => Err(no_rules),
                    None => Ok(loaded),
                }
            });
        match loaded {
            Ok(mut loaded) => {
                // A reload keeps the budget the service was started with.
                loaded.rules = loaded.rules.with_max_eval(self.current().max_eval());
                for w in &loaded.warnings {
                    tracing::warn!("{w}");
                }
                let files = loaded.rules.files();
                if loaded.rules.coverage() == Coverage::Quiet {
                    tracing::warn!(
                        dir = %self.dir.display(),
                        "every rule is disabled or in shadow mode: no card will be sent"
                    );
                }
                *self.current.write().unwrap_or_else(PoisonError::into_inner) =
                    Arc::new(loaded.rules);
                let recovered = {
                    let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
                    let recovered = status.last_error.is_some();
                    *status = ReloadStatus {
                        last_success: SystemTime::now(),
                        last_error: None,
                        files,
                    };
                    recovered
                };
                record_success(files);
                tracing::info!(files, dir = %self.dir.display(), "rules reloaded");
                self.tell(ReloadEvent::Loaded { files, recovered });
                Ok(())
            }
            Err(errors) => {
                for e in &errors.0 {
                    tracing::error!("{e}");
                }
                tracing::error!(
                    errors = errors.0.len(),
                    dir = %self.dir.display(),
                    "rules reload failed: the previous rules keep running; fix the errors above and save again"
                );
                self.status
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .last_error = Some(errors.to_string());
                metrics::counter!("modbridge_rules_reloads_total", "outcome" => "failure")
                    .increment(1);
                metrics::gauge!("modbridge_rules_last_reload_successful").set(0.0);
                self.tell(ReloadEvent::Failed {
                    errors: errors.to_string(),
                });
                Err(errors)
            }
        }
    }

    /// Watches the rules directory and its `lists/` folder, and reloads after
    /// any change. Dropping the guard stops watching.
    pub fn watch(self: &Arc<Self>) -> anyhow::Result<WatchGuard> {
        let (tx, rx) = mpsc::channel::<Wake>();
        let changed = tx.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
                // Reading the files (our own reloads included) is not a change.
                Ok(e) if matches!(e.kind, EventKind::Access(_)) => {}
                Ok(_) => {
                    let _ = changed.send(Wake::Changed);
                }
                Err(e) => tracing::warn!(error = %e, "watching the rules directory failed"),
            })
            .context("cannot start watching the rules directory")?;
        watcher
            .watch(&self.dir, RecursiveMode::NonRecursive)
            .with_context(|| format!("cannot watch the rules directory {}", self.dir.display()))?;
        let lists = self.dir.join(super::lists::LISTS_DIR);
        watch_lists(&mut watcher, &lists);
        let live = Arc::downgrade(self);
        let thread = std::thread::Builder::new()
            .name("rules-watch".into())
            .spawn(move || watch_loop(&rx, &live, &mut watcher, &lists))
            .context("cannot start the rules watcher thread")?;
        Ok(WatchGuard {
            stop: Some(tx),
            thread: Some(thread),
        })
    }
}

/// What wakes the watcher thread.
enum Wake {
    Changed,
    Stop,
}

/// Watches `lists/` (not recursive, like the rules directory) when it exists.
/// Called again before each reload: the folder may have been created, or
/// replaced (a ConfigMap swaps the link it lives behind), since.
fn watch_lists(watcher: &mut notify::RecommendedWatcher, lists: &std::path::Path) {
    let _ = watcher.unwatch(lists);
    if lists.is_dir()
        && let Err(e) = watcher.watch(lists, RecursiveMode::NonRecursive)
    {
        tracing::warn!(error = %e, dir = %lists.display(), "cannot watch the lists folder: edits to lists reload only with the rules files or SIGHUP");
    }
}

fn watch_loop(
    rx: &mpsc::Receiver<Wake>,
    live: &Weak<LiveRules>,
    watcher: &mut notify::RecommendedWatcher,
    lists: &std::path::Path,
) {
    while let Ok(Wake::Changed) = rx.recv() {
        loop {
            match rx.recv_timeout(DEBOUNCE) {
                Ok(Wake::Changed) => continue,
                Err(RecvTimeoutError::Timeout) => break,
                Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        let Some(live) = live.upgrade() else { return };
        // Before reading, so no edit after the read goes unseen.
        watch_lists(watcher, lists);
        // Errors are logged and recorded by reload_now.
        let _ = live.reload_now();
    }
}

/// Keeps the watcher running; dropping it stops the watcher and waits for its
/// thread.
pub struct WatchGuard {
    /// Tells the thread (which owns the watcher) to stop.
    stop: Option<mpsc::Sender<Wake>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for WatchGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchGuard").finish_non_exhaustive()
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        // The thread stops (dropping the watcher) at once, even mid-debounce.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(Wake::Stop);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
