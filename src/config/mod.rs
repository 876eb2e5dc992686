//! Settings: `modbridge.toml` (optional) overridden by environment variables,
//! checked once at start-up into [`Settings`]. Secrets live in
//! [`Secret`]s and never reach `Debug` output.
//!
//! Every key, its environment variable and default are listed in README.md
//! ("Configuration reference"); keep the two in step.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::destination::{Destination, Destinations, RawDestination};
use crate::post::CustomerId;
use crate::secret::Secret;

/// The documented development secret `--dry-run` uses when none is set. Never
/// use it where anyone else can reach the service.
pub const DEV_SECRET: &str =
    "whsec_0000000000000000000000000000000000000000000000000000000000000000";

/// The configuration file read when `--config` is not given (if it exists).
pub const DEFAULT_CONFIG_FILE: &str = "modbridge.toml";

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    admin_listen: Option<String>,
    rules_dir: Option<PathBuf>,
    dry_run: Option<bool>,
    redis_url: Option<String>,
    shutdown_timeout_secs: Option<u64>,
    post_url: Option<String>,
    log_format: Option<String>,
    slack_api_url: Option<String>,
    discord_api_url: Option<String>,
    #[serde(default)]
    intake: RawIntake,
    #[serde(default)]
    dedupe: RawDedupe,
    #[serde(default)]
    delivery: RawDelivery,
    #[serde(default)]
    listeners: BTreeMap<String, RawListener>,
    #[serde(default)]
    destinations: BTreeMap<String, RawDestination>,
    #[serde(default)]
    groups: BTreeMap<String, String>,
    alerts: Option<RawAlerts>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIntake {
    max_body_bytes: Option<usize>,
    signature_tolerance_secs: Option<u64>,
    deadline_secs: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDedupe {
    lease_secs: Option<u64>,
    done_ttl_days: Option<u64>,
    memory_capacity: Option<usize>,
    key_prefix: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDelivery {
    backlog: Option<usize>,
    probe_interval_secs: Option<u64>,
    timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    secret_env: String,
    #[serde(default)]
    customers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    to: String,
}

/// A secret that may sign webhooks, and the tenants it may speak for.
#[derive(Debug, Clone)]
pub struct ListenerSecret {
    /// Where it came from (`CATIVA_WEBHOOK_SECRET` or `listeners.NAME`), for logs.
    pub source: String,
    pub secret: Secret,
    /// `None`: any tenant.
    pub customers: Option<BTreeSet<CustomerId>>,
}

impl ListenerSecret {
    pub fn allows(&self, customer: &CustomerId) -> bool {
        self.customers.as_ref().is_none_or(|c| c.contains(customer))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct DedupeSettings {
    pub lease: Duration,
    pub done_ttl: Duration,
    pub memory_capacity: usize,
    pub key_prefix: String,
}

/// `[delivery]`: plain values; delivery builds its runtime policy from them.
#[derive(Debug, Clone, Copy)]
pub struct DeliverySettings {
    /// Cards in flight at once per target; more are refused with 503.
    pub backlog: usize,
    /// How often a broken target is probed.
    pub probe_interval: Duration,
    /// The longest one platform HTTP call may take.
    pub timeout: Duration,
}

/// Everything `serve` needs, checked.
#[derive(Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub admin_listen: Option<SocketAddr>,
    pub rules_dir: PathBuf,
    pub dry_run: bool,
    /// May hold a password: never log it whole (see [`Settings::redis_display`]).
    pub redis_url: Option<String>,
    /// How long SIGTERM waits for in-flight requests and deliveries.
    pub shutdown_timeout: Duration,
    pub secrets: Vec<ListenerSecret>,
    /// `--dry-run` without any secret: the development secret is in use.
    pub insecure_dev_secret: bool,
    pub max_body_bytes: usize,
    pub signature_tolerance_secs: u64,
    pub deadline: Duration,
    pub dedupe: DedupeSettings,
    pub delivery: DeliverySettings,
    pub destinations: Destinations,
    pub groups: BTreeMap<String, String>,
    pub post_url: Option<String>,
    pub alerts_to: Option<String>,
    pub log_format: LogFormat,
    /// Values the file gives for settings read from the environment by the
    /// module that owns them (the platforms read `SLACK_API_URL`,
    /// `DISCORD_API_URL`; the file's `slack_api_url`, `discord_api_url`
    /// stand in when those are unset): variable name → value. See [`Layered`].
    pub env_defaults: BTreeMap<String, String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("admin_listen", &self.admin_listen)
            .field("rules_dir", &self.rules_dir)
            .field("dry_run", &self.dry_run)
            .field("redis", &self.redis_display())
            .field("secrets", &self.secrets.len())
            .finish_non_exhaustive()
    }
}

/// Every problem found, one per line, each naming the key or variable at fault.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct ConfigError(pub Vec<String>);

/// Where settings come from besides the file (the process environment, or a
/// map in tests).
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment; empty values count as unset.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

/// The environment first, then the defaults the file gives
/// ([`Settings::env_defaults`]).
pub struct Layered<'a> {
    pub env: &'a dyn Env,
    pub defaults: &'a BTreeMap<String, String>,
}

impl Env for Layered<'_> {
    fn var(&self, name: &str) -> Option<String> {
        self.env.var(name).or_else(|| self.defaults.var(name))
    }
}

impl Env for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned().filter(|v| !v.trim().is_empty())
    }
}

fn truthy(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

impl Settings {
    /// Reads `path` (or `modbridge.toml` when present), applies the environment,
    /// and checks everything, collecting every problem.
    pub fn load(
        path: Option<&Path>,
        dry_run_flag: bool,
        env: &dyn Env,
    ) -> Result<Self, ConfigError> {
        let mut errors = Vec::new();
        let raw = match read_file(path) {
            Ok(raw) => raw,
            Err(e) => return Err(ConfigError(vec![e])),
        };
        let file_name = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| DEFAULT_CONFIG_FILE.into());

        let dry_run = match env.var("MODBRIDGE_DRY_RUN") {
            Some(v) => match truthy(&v) {
                Some(b) => b || dry_run_flag,
                None => {
                    errors.push(format!("MODBRIDGE_DRY_RUN={v:?}: use 1 or 0"));
                    dry_run_flag
                }
            },
            None => dry_run_flag || raw.dry_run.unwrap_or(false),
        };

        let mut addr = |var: &str, key: &str, file_value: Option<String>, default: Option<&str>| {
            let (value, from) = match env.var(var) {
                Some(v) => (Some(v), var.to_owned()),
                None => (
                    file_value.or(default.map(str::to_owned)),
                    format!("{file_name}: {key}"),
                ),
            };
            value.and_then(|v| match v.parse::<SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    errors.push(format!(
                        "{from}: {v:?} is not a listen address (like 0.0.0.0:8080 or 127.0.0.1:9090)"
                    ));
                    None
                }
            })
        };
        let listen = addr(
            "MODBRIDGE_LISTEN",
            "listen",
            raw.listen,
            Some("0.0.0.0:8080"),
        );
        let admin_listen = addr(
            "MODBRIDGE_ADMIN_LISTEN",
            "admin_listen",
            raw.admin_listen,
            None,
        );

        let rules_dir = env
            .var("MODBRIDGE_RULES")
            .map(PathBuf::from)
            .or(raw.rules_dir)
            .unwrap_or_else(|| PathBuf::from("rules"));

        let number =
            |errors: &mut Vec<String>, var: &str, file: Option<u64>, default: u64| -> u64 {
                match env.var(var) {
                    Some(v) => v.trim().parse::<u64>().unwrap_or_else(|_| {
                        errors.push(format!("{var}={v:?}: expected a whole number"));
                        default
                    }),
                    None => file.unwrap_or(default),
                }
            };
        let max_body_bytes = number(
            &mut errors,
            "MODBRIDGE_MAX_BODY_BYTES",
            raw.intake.max_body_bytes.map(|n| n as u64),
            1024 * 1024,
        ) as usize;
        let signature_tolerance_secs = number(
            &mut errors,
            "MODBRIDGE_SIGNATURE_TOLERANCE_SECS",
            raw.intake.signature_tolerance_secs,
            300,
        );
        let deadline_secs = number(
            &mut errors,
            "MODBRIDGE_DEADLINE_SECS",
            raw.intake.deadline_secs,
            5,
        );
        if deadline_secs == 0 {
            errors.push("intake.deadline_secs must be at least 1".into());
        }
        let probe_interval_secs = number(
            &mut errors,
            "MODBRIDGE_PROBE_INTERVAL_SECS",
            raw.delivery.probe_interval_secs,
            60,
        );
        let delivery_timeout_secs = number(
            &mut errors,
            "MODBRIDGE_DELIVERY_TIMEOUT_SECS",
            raw.delivery.timeout_secs,
            10,
        );
        let shutdown_timeout_secs = number(
            &mut errors,
            "MODBRIDGE_SHUTDOWN_TIMEOUT_SECS",
            raw.shutdown_timeout_secs,
            10,
        );
        let lease_secs = raw.dedupe.lease_secs.unwrap_or(deadline_secs + 5).max(1);
        let done_ttl_days = number(
            &mut errors,
            "MODBRIDGE_DEDUPE_TTL_DAYS",
            raw.dedupe.done_ttl_days,
            7,
        )
        .max(1);

        let log_format = match env
            .var("MODBRIDGE_LOG_FORMAT")
            .or(raw.log_format)
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                errors.push(format!("MODBRIDGE_LOG_FORMAT={other:?}: use text or json"));
                LogFormat::Text
            }
        };

        // Secrets: the shared variable, then per-listener ones.
        let mut secrets = Vec::new();
        if let Some(list) = env.var("CATIVA_WEBHOOK_SECRET") {
            for part in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match Secret::new(part) {
                    Ok(secret) => secrets.push(ListenerSecret {
                        source: "CATIVA_WEBHOOK_SECRET".into(),
                        secret,
                        customers: None,
                    }),
                    Err(e) => errors.push(format!("CATIVA_WEBHOOK_SECRET: {e}")),
                }
            }
        }
        for (name, listener) in raw.listeners {
            let customers = if listener.customers.is_empty() {
                None
            } else {
                let mut set = BTreeSet::new();
                for c in listener.customers {
                    match CustomerId::parse(c) {
                        Ok(c) => {
                            set.insert(c);
                        }
                        Err(_) => errors.push(format!(
                            "{file_name}: listeners.{name}.customers: an ID is empty"
                        )),
                    }
                }
                Some(set)
            };
            match env.var(&listener.secret_env) {
                None => errors.push(format!(
                    "{file_name}: listeners.{name}: environment variable {} is not set (it holds that listener's whsec_ secret)",
                    listener.secret_env
                )),
                Some(list) => {
                    for part in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        match Secret::new(part) {
                            Ok(secret) => secrets.push(ListenerSecret {
                                source: format!("listeners.{name}"),
                                secret,
                                customers: customers.clone(),
                            }),
                            Err(e) => errors.push(format!("{}: {e}", listener.secret_env)),
                        }
                    }
                }
            }
        }
        let mut insecure_dev_secret = false;
        let mut listen = listen;
        if secrets.is_empty() {
            if dry_run {
                insecure_dev_secret = true;
                secrets.push(ListenerSecret {
                    source: "development secret (--dry-run)".into(),
                    secret: Secret::new(DEV_SECRET).map_err(|e| ConfigError(vec![e.into()]))?,
                    customers: None,
                });
                // Nobody else may reach a service that trusts a published secret.
                if let Some(a) = listen.as_mut() {
                    a.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
            } else {
                errors.push(
                    "no webhook secret: set CATIVA_WEBHOOK_SECRET to the listener's whsec_ secret (Cativa Console > Webhooks), or run with --dry-run to try modbridge locally"
                        .into(),
                );
            }
        }

        let mut named = Vec::new();
        for (name, raw_dest) in raw.destinations {
            match Destination::from_raw(&name, raw_dest) {
                Ok(d) => named.push(d),
                Err(e) => errors.push(format!("{file_name}: destinations.{name}: {e}")),
            }
        }
        let destinations = Destinations::new(named);
        let alerts_to = raw.alerts.map(|a| a.to);
        if let Some(to) = &alerts_to
            && let Err(e) = destinations.resolve(to)
        {
            errors.push(format!("{file_name}: alerts.to: {e}"));
        }
        if let Some(url) = &raw.post_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            errors.push(format!(
                "{file_name}: post_url must start with https:// (like \"https://community.example.com/posts/{{post_id}}\")"
            ));
        }

        let env_defaults: BTreeMap<String, String> = [
            ("SLACK_API_URL", raw.slack_api_url),
            ("DISCORD_API_URL", raw.discord_api_url),
        ]
        .into_iter()
        .filter_map(|(var, v)| v.map(|v| (var.to_owned(), v)))
        .collect();

        match (listen, errors.is_empty()) {
            (Some(listen), true) => Ok(Settings {
                listen,
                admin_listen,
                rules_dir,
                dry_run,
                redis_url: env.var("REDIS_URL").or(raw.redis_url),
                shutdown_timeout: Duration::from_secs(shutdown_timeout_secs),
                secrets,
                insecure_dev_secret,
                max_body_bytes,
                signature_tolerance_secs,
                deadline: Duration::from_secs(deadline_secs),
                dedupe: DedupeSettings {
                    lease: Duration::from_secs(lease_secs),
                    done_ttl: Duration::from_secs(done_ttl_days * 86_400),
                    memory_capacity: raw.dedupe.memory_capacity.unwrap_or(100_000),
                    key_prefix: raw.dedupe.key_prefix.unwrap_or_else(|| "modbridge:".into()),
                },
                delivery: DeliverySettings {
                    backlog: raw.delivery.backlog.unwrap_or(64).max(1),
                    probe_interval: Duration::from_secs(probe_interval_secs.max(1)),
                    timeout: Duration::from_secs(delivery_timeout_secs.max(1)),
                },
                destinations,
                groups: raw.groups,
                post_url: raw.post_url,
                alerts_to,
                log_format,
                env_defaults,
            }),
            _ => Err(ConfigError(errors)),
        }
    }

    /// The Redis URL without its password, for logs.
    pub fn redis_display(&self) -> Option<String> {
        self.redis_url.as_deref().map(redact_url)
    }
}

/// `redis://user:pass@host:6379/0` → `redis://user:***@host:6379/0`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme + 3 => {
            let creds = &url[scheme + 3..at];
            let user = creds.split_once(':').map(|(u, _)| u).unwrap_or(creds);
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

fn read_file(path: Option<&Path>) -> Result<RawConfig, String> {
    let (path, required) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(RawConfig::default());
        }
        Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
    };
    toml::from_str(&text).map_err(|e| {
        let (line, col) = e.span().map(|s| line_col(&text, s.start)).unwrap_or((1, 1));
        format!("{}:{line}:{col}: {}", path.display(), e.message())
    })
}

/// 1-based line and column (in characters) of byte offset `at`.
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn no_secret_refuses_unless_dry_run_which_binds_loopback() {
        let err = Settings::load(None, false, &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("CATIVA_WEBHOOK_SECRET"), "{err}");
        let s = Settings::load(None, true, &env(&[])).unwrap();
        assert!(s.insecure_dev_secret);
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.secrets[0].secret.expose(), DEV_SECRET);
    }

    #[test]
    fn env_overrides_file_and_secrets_split_on_commas() {
        let f = write("listen = \"0.0.0.0:1\"\n[intake]\nmax_body_bytes = 10\n");
        let s = Settings::load(
            Some(f.path()),
            false,
            &env(&[
                ("MODBRIDGE_LISTEN", "127.0.0.1:9"),
                ("CATIVA_WEBHOOK_SECRET", "whsec_a, whsec_b"),
            ]),
        )
        .unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:9");
        assert_eq!(s.max_body_bytes, 10);
        assert_eq!(s.secrets.len(), 2);
        assert!(!format!("{s:?}").contains("whsec_a"));
    }

    #[test]
    fn listeners_bind_secrets_to_customers() {
        let f = write("[listeners.acme]\nsecret_env = \"ACME_SECRET\"\ncustomers = [\"C1\"]\n");
        let s = Settings::load(
            Some(f.path()),
            false,
            &env(&[("ACME_SECRET", "whsec_acme")]),
        )
        .unwrap();
        let l = &s.secrets[0];
        assert!(l.allows(&CustomerId::parse("C1").unwrap()));
        assert!(!l.allows(&CustomerId::parse("C2").unwrap()));
        let err = Settings::load(Some(f.path()), false, &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ACME_SECRET is not set"), "{err}");
    }

    #[test]
    fn every_error_is_reported_with_its_place() {
        let f = write("listen = \"nowhere\"\n[destinations.x]\nslack = \"general\"\n");
        let err = Settings::load(
            Some(f.path()),
            false,
            &env(&[("MODBRIDGE_LOG_FORMAT", "xml")]),
        )
        .unwrap_err()
        .0;
        assert_eq!(err.len(), 4, "{err:?}");
        let typo = write("[intake]\nmax_body = 1\n");
        let err = Settings::load(Some(typo.path()), true, &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(":2:1:") && err.contains("unknown field"),
            "{err}"
        );
    }

    #[test]
    fn file_api_urls_stand_in_for_unset_variables() {
        let f = write("slack_api_url = \"http://127.0.0.1:9/api/\"\n");
        let s = Settings::load(Some(f.path()), true, &env(&[])).unwrap();
        let e = env(&[("DISCORD_API_URL", "https://gw.example")]);
        let layered = Layered {
            env: &e,
            defaults: &s.env_defaults,
        };
        assert_eq!(
            layered.var("SLACK_API_URL").as_deref(),
            Some("http://127.0.0.1:9/api/")
        );
        assert_eq!(
            layered.var("DISCORD_API_URL").as_deref(),
            Some("https://gw.example")
        );
    }

    #[test]
    fn redis_passwords_are_redacted() {
        assert_eq!(
            redact_url("redis://:hunter2@h:6379/0"),
            "redis://:***@h:6379/0"
        );
        assert_eq!(redact_url("redis://u:p@h"), "redis://u:***@h");
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
    }
}
