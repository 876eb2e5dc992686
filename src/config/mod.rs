//! Settings: `modbridge.toml` (optional) overridden by environment variables,
//! checked once at start-up into [`Settings`]. Secrets live in
//! [`Secret`](crate::secret::Secret)s and never reach `Debug` output.
//!
//! This module owns the whole ([`Settings`], [`ConfigError`], where values
//! come from: [`Env`]) and the order of [`Settings::load`]; each section of the
//! file has a module that turns its raw part (plus the environment) into typed
//! sub-settings, adding every problem to one shared list (`loader`), so one
//! run reports them all, each naming the key or variable at fault:
//! `file` (reading the TOML), `server`, `intake`, `dedupe`, `delivery`,
//! `listeners` (webhook secrets), `destinations` (and `[alerts]`), `cards`
//! (`post_url`, `[groups]`), `capture` (the opt-in corpus of verified bodies).
//!
//! Every key, its environment variable and default are listed in README.md
//! ("Configuration reference"); keep the two in step.

mod capture;
mod cards;
mod dedupe;
mod delivery;
mod destinations;
mod file;
mod intake;
mod listeners;
mod loader;
mod server;
mod triage;
mod waves;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use self::capture::CaptureSettings;
pub use self::cards::CardSettings;
pub use self::dedupe::{DedupeSettings, RedisSettings};
pub use self::delivery::DeliverySettings;
pub use self::file::line_col;
pub use self::intake::IntakeSettings;
pub use self::listeners::{DEV_SECRET, ListenerSecret, ListenerSettings};
use self::loader::{Loader, truthy};
pub use self::server::{LogFormat, ServerSettings};
pub use self::triage::{
    DISCORD_PUBLIC_KEY_ENV, DiscordPublicKey, SLACK_SIGNING_SECRET_ENV, TriageSettings,
};
pub use self::waves::WaveSettings;
use crate::destination::Destinations;

/// The configuration file read when `--config` is not given (if it exists).
pub const DEFAULT_CONFIG_FILE: &str = "modbridge.toml";

/// Everything `serve` needs, checked.
#[derive(Clone)]
pub struct Settings {
    /// Listen addresses, log format, shutdown grace.
    pub server: ServerSettings,
    pub rules_dir: PathBuf,
    /// The time budget of one post's rules evaluation (`rules.max_eval_ms`):
    /// past it the post is marked "not fully checked".
    pub rules_max_eval: Duration,
    pub dry_run: bool,
    /// May hold a password: never log it whole (see [`Settings::redis_display`]).
    pub redis_url: Option<String>,
    /// The webhook secrets (never empty).
    pub listeners: ListenerSettings,
    pub intake: IntakeSettings,
    pub dedupe: DedupeSettings,
    pub delivery: DeliverySettings,
    pub destinations: Destinations,
    /// The destination `[alerts] to` names (one of `destinations`).
    pub alerts_to: Option<String>,
    pub cards: CardSettings,
    /// `[capture]`: off (`None`) unless a file is set.
    pub capture: Option<CaptureSettings>,
    /// Moderator actions: what authenticates a click on each platform.
    pub triage: TriageSettings,
    /// `[waves]`: digests and campaign cards when a destination overflows.
    pub waves: WaveSettings,
    /// Values the file gives for settings read from the environment by the
    /// module that owns them (the platforms read `SLACK_API_URL`,
    /// `DISCORD_API_URL`; the file's `slack_api_url`, `discord_api_url`
    /// stand in when those are unset): variable name → value. See [`Layered`].
    pub env_defaults: BTreeMap<String, String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.server.listen)
            .field("admin_listen", &self.server.admin_listen)
            .field("rules_dir", &self.rules_dir)
            .field("dry_run", &self.dry_run)
            .field("redis", &self.redis_display())
            .field("secrets", &self.listeners.secrets.len())
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

/// `rules.max_eval_ms` unless set: the rules engine's own default.
pub const DEFAULT_RULES_MAX_EVAL_MS: u64 = 50;

impl Settings {
    /// Reads `path` (or `modbridge.toml` when present), applies the environment,
    /// and checks everything, collecting every problem.
    pub fn load(
        path: Option<&Path>,
        dry_run_flag: bool,
        env: &dyn Env,
    ) -> Result<Self, ConfigError> {
        let raw = file::read(path).map_err(|e| ConfigError(vec![e]))?;
        let file_name = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| DEFAULT_CONFIG_FILE.into());
        let mut l = Loader::new(env, file_name);

        let dry_run = dry_run(dry_run_flag, raw.dry_run, &mut l);
        let mut server = ServerSettings::build(raw.server, &mut l);
        let intake = IntakeSettings::build(raw.intake, &mut l);
        let delivery = DeliverySettings::build(raw.delivery, &mut l);
        let dedupe = DedupeSettings::build(raw.dedupe, raw.redis, intake.deadline, &mut l);
        let listeners = ListenerSettings::build(raw.listeners, dry_run, &mut l);
        if listeners.insecure_dev_secret {
            // Nobody else may reach a service that trusts a published secret.
            server.bind_loopback();
        }
        let (destinations, alerts_to) = destinations::build(raw.destinations, raw.alerts, &mut l);
        let cards = CardSettings::build(raw.post_url, raw.groups, &mut l);
        let capture = CaptureSettings::build(raw.capture, &mut l);
        let triage = TriageSettings::build(raw.triage, &mut l);
        let waves = WaveSettings::build(raw.waves, &mut l);

        let settings = Settings {
            server,
            rules_dir: l
                .var("MODBRIDGE_RULES")
                .map(PathBuf::from)
                .or(raw.rules_dir)
                .unwrap_or_else(|| PathBuf::from("rules")),
            rules_max_eval: Duration::from_millis(
                l.whole_number(
                    "MODBRIDGE_RULES_MAX_EVAL_MS",
                    raw.rules.max_eval_ms,
                    DEFAULT_RULES_MAX_EVAL_MS,
                )
                .max(1),
            ),
            dry_run,
            redis_url: l.var("REDIS_URL").or(raw.redis_url),
            listeners,
            intake,
            dedupe,
            delivery,
            destinations,
            alerts_to,
            cards,
            capture,
            triage,
            waves,
            env_defaults: raw.env_defaults,
        };
        l.finish(settings)
    }

    /// The Redis URL without its password, for logs.
    pub fn redis_display(&self) -> Option<String> {
        self.redis_url.as_deref().map(redact_url)
    }
}

/// `MODBRIDGE_DRY_RUN` (which can only add to `--dry-run`), else the flag or
/// the file's `dry_run`.
fn dry_run(flag: bool, file: Option<bool>, l: &mut Loader) -> bool {
    match l.var("MODBRIDGE_DRY_RUN") {
        Some(v) => match truthy(&v) {
            Some(b) => b || flag,
            None => {
                l.problem(format!("MODBRIDGE_DRY_RUN={v:?}: use 1 or 0"));
                flag
            }
        },
        None => flag || file.unwrap_or(false),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::post::CustomerId;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const STRONG_A: &str = "whsec_3f9a1c7e5b2d4086af1e9c3b7d5a2e4f60718293a4b5c6d7e8f9012345678abc";
    const STRONG_B: &str = "whsec_9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d";

    #[test]
    fn intake_limits_and_the_private_admin_listener_have_safe_defaults() {
        let s = Settings::load(None, false, &env(&[("CATIVA_WEBHOOK_SECRET", STRONG_A)])).unwrap();
        assert_eq!(s.server.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(
            s.server.admin_listen.map(|a| a.to_string()).as_deref(),
            Some("127.0.0.1:9090")
        );
        let i = s.intake;
        assert_eq!(i.header_timeout, Duration::from_secs(10));
        assert_eq!(i.body_timeout, Duration::from_secs(10));
        assert_eq!(i.idle_timeout, Duration::from_secs(60));
        assert!(i.max_connections >= 4096, "{}", i.max_connections);
        assert_eq!(i.max_in_flight, 512);
        let f = write(concat!(
            "admin_listen = \"off\"\n[intake]\nheader_timeout_secs = 2\nbody_timeout_secs = 3\n",
            "idle_timeout_secs = 4\nmax_connections = 5\nmax_in_flight = 6\n"
        ));
        let s = Settings::load(Some(f.path()), true, &env(&[])).unwrap();
        assert_eq!(s.server.admin_listen, None);
        let i = s.intake;
        assert_eq!(
            (i.header_timeout, i.body_timeout, i.idle_timeout),
            (
                Duration::from_secs(2),
                Duration::from_secs(3),
                Duration::from_secs(4)
            )
        );
        assert_eq!((i.max_connections, i.max_in_flight), (5, 6));
        let err = Settings::load(
            Some(f.path()),
            true,
            &env(&[
                ("MODBRIDGE_MAX_IN_FLIGHT", "0"),
                ("MODBRIDGE_ADMIN_LISTEN", "127.0.0.1:1"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "intake.max_in_flight (MODBRIDGE_MAX_IN_FLIGHT) must be at least 1"
        );
    }

    #[test]
    fn a_destination_says_how_it_shows_images_and_a_wrong_word_is_placed() {
        use crate::destination::Images;
        let f = write(concat!(
            "[destinations.quiet]\nslack = \"C0123ABCD\"\nimages = \"spoiler\"\n",
            "[destinations.plain]\ndiscord = \"112233445566778899\"\n",
        ));
        let s = Settings::load(Some(f.path()), true, &env(&[])).unwrap();
        let images = |name: &str| s.destinations.get(name).map(|d| d.images());
        assert_eq!(images("quiet"), Some(Images::Spoiler));
        assert_eq!(images("plain"), Some(Images::Show));
        let f = write("[destinations.quiet]\nslack = \"C0123ABCD\"\nimages = \"blur\"\n");
        let err = Settings::load(Some(f.path()), true, &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains(":3:10:"), "{err}");
        assert!(
            err.contains("unknown variant `blur`, expected one of `show`, `spoiler`, `link`"),
            "{err}"
        );
    }

    #[test]
    fn waves_default_to_digests_and_refuse_settings_that_cannot_work() {
        let s = Settings::load(None, true, &env(&[])).unwrap();
        assert_eq!(s.waves, WaveSettings::default());
        assert_eq!(s.waves.digest_after, Duration::from_secs(5));
        assert_eq!(s.waves.max_entries, 25);
        let f = write("[waves]\ndigest_after_secs = 10\nmax_entries = 10\ncampaigns = false\n");
        let s = Settings::load(Some(f.path()), true, &env(&[])).unwrap();
        assert_eq!(s.waves.digest_after, Duration::from_secs(10));
        assert_eq!(s.waves.max_entries, 10);
        assert!(!s.waves.campaigns);
        let f = write(
            "[waves]\nmax_entries = 40\nquiet_secs = 0\ncampaign_similarity = 0.2\nbogus = 1\n",
        );
        let err = Settings::load(Some(f.path()), true, &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `bogus`"), "{err}");
        let f = write("[waves]\nmax_entries = 40\nquiet_secs = 0\ncampaign_similarity = 0.2\n");
        let err = Settings::load(Some(f.path()), true, &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("waves.max_entries = 40: at most 25"), "{err}");
        assert!(err.contains("waves.quiet_secs must be at least 1"), "{err}");
        assert!(
            err.contains("waves.campaign_similarity = 0.2: expected a number from 0.5"),
            "{err}"
        );
    }

    #[test]
    fn escalation_is_off_unless_set_and_at_least_a_minute() {
        let s = Settings::load(None, true, &env(&[])).unwrap();
        assert_eq!(s.triage.escalate_after, None);
        let f = write("[triage]\nescalate_after_minutes = 30\n");
        let s = Settings::load(Some(f.path()), true, &env(&[])).unwrap();
        assert_eq!(s.triage.escalate_after, Some(Duration::from_secs(1800)));
        assert_eq!(s.triage.escalate_poll, Duration::from_secs(5));
        assert!(
            s.triage
                .report()
                .iter()
                .any(|l| l.starts_with("ok: cases still open 30 min after their first card")),
            "check says so"
        );
        let s = Settings::load(
            Some(f.path()),
            true,
            &env(&[("MODBRIDGE_ESCALATE_AFTER_MINUTES", "5")]),
        )
        .unwrap();
        assert_eq!(s.triage.escalate_after, Some(Duration::from_secs(300)));
        let f = write("[triage]\nescalate_after_minutes = 0\n");
        let err = Settings::load(Some(f.path()), true, &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("triage.escalate_after_minutes (or MODBRIDGE_ESCALATE_AFTER_MINUTES) must be at least 1"),
            "{err}"
        );
        let err = Settings::load(
            None,
            true,
            &env(&[("MODBRIDGE_ESCALATE_AFTER_MINUTES", "soon")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("MODBRIDGE_ESCALATE_AFTER_MINUTES=\"soon\": expected a whole number"),
            "{err}"
        );
    }

    #[test]
    fn triage_names_who_may_act_and_refuses_ids_that_cannot_be() {
        let f = write(
            "[triage]\nslack_users = [\"U0ANA123\"]\ndiscord_roles = [\"111122223333444455\"]\n",
        );
        let s = Settings::load(Some(f.path()), true, &env(&[])).unwrap();
        assert_eq!(s.triage.slack_users, vec!["U0ANA123".to_owned()]);
        assert_eq!(
            s.triage.discord_roles,
            vec!["111122223333444455".to_owned()]
        );
        assert!(s.triage.slack_signing_secret.is_none());
        assert_eq!(s.triage.case_ttl, Duration::from_secs(14 * 86_400));
        let f = write("[triage]\ncase_ttl_days = 3\n");
        let s = Settings::load(Some(f.path()), true, &env(&[])).unwrap();
        assert_eq!(s.triage.case_ttl, Duration::from_secs(3 * 86_400));
        let s = Settings::load(
            Some(f.path()),
            true,
            &env(&[("MODBRIDGE_CASE_TTL_DAYS", "30")]),
        )
        .unwrap();
        assert_eq!(s.triage.case_ttl, Duration::from_secs(30 * 86_400));
        let f = write("[triage]\nslack_users = [\"@ana\"]\ndiscord_roles = [\"mods\"]\n");
        let err = Settings::load(Some(f.path()), true, &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("triage.slack_users: \"@ana\" is not a Slack user ID"),
            "{err}"
        );
        assert!(
            err.contains("triage.discord_roles: \"mods\" is not a Discord role ID"),
            "{err}"
        );
        let err = Settings::load(None, true, &env(&[("SLACK_SIGNING_SECRET", " padded")]))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("SLACK_SIGNING_SECRET: "), "{err}");
        assert!(!err.contains("padded"), "{err}");
    }

    #[test]
    fn weak_secrets_are_refused_outside_dry_run_without_being_quoted() {
        for weak in [DEV_SECRET, "whsec_change_me", "whsec_topsecret"] {
            let err = Settings::load(None, false, &env(&[("CATIVA_WEBHOOK_SECRET", weak)]))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("CATIVA_WEBHOOK_SECRET: "), "{err}");
            assert!(err.contains("Cativa Console > Webhooks"), "{err}");
            assert!(!err.contains(weak), "{err}");
            // Dry run: anything goes (it binds to loopback without a secret).
            assert!(Settings::load(None, true, &env(&[("CATIVA_WEBHOOK_SECRET", weak)])).is_ok());
        }
        let f = write("[listeners.acme]\nsecret_env = \"ACME_SECRET\"\n");
        let err = Settings::load(
            Some(f.path()),
            false,
            &env(&[(
                "ACME_SECRET",
                "whsec_1111111111111111111111111111111111111111111111111111111111111111",
            )]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(
                "listeners.acme: is too weak to be a real secret (only 1 distinct hex digits"
            ),
            "{err}"
        );
    }

    #[test]
    fn an_automation_id_picks_its_listener_and_no_other() {
        let f = write(concat!(
            "[listeners.acme]\nsecret_env = \"ACME_SECRET\"\nautomation_id = \"auto-acme\"\n",
            "[listeners.blank]\nsecret_env = \"BLANK_SECRET\"\nautomation_id = \" \"\n",
        ));
        let e = env(&[
            ("CATIVA_WEBHOOK_SECRET", STRONG_A),
            ("ACME_SECRET", STRONG_B),
            ("BLANK_SECRET", STRONG_B),
        ]);
        let err = Settings::load(Some(f.path()), false, &e)
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("listeners.blank.automation_id: is empty (remove it, or copy the listener's ID from Cativa Console > Webhooks)"), "{err}");
        let f = write(
            "[listeners.acme]\nsecret_env = \"ACME_SECRET\"\nautomation_id = \"auto-acme\"\n",
        );
        let s = Settings::load(Some(f.path()), false, &e).unwrap();
        let l = &s.listeners;
        assert_eq!(l.secrets[1].source, "listeners.acme");
        assert_eq!(l.candidates(Some("auto-acme")), vec![1]);
        assert_eq!(l.candidates(Some("someone-else")), vec![0]);
        assert_eq!(l.candidates(None), vec![0]);
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn rules_time_budget_from_file_env_or_default() {
        let none = write("");
        let s = Settings::load(Some(none.path()), true, &env(&[])).unwrap();
        assert_eq!(s.rules_max_eval, Duration::from_millis(50));
        let f = write("[rules]\nmax_eval_ms = 7\n");
        let s = Settings::load(Some(f.path()), true, &env(&[])).unwrap();
        assert_eq!(s.rules_max_eval, Duration::from_millis(7));
        let s = Settings::load(
            Some(f.path()),
            true,
            &env(&[("MODBRIDGE_RULES_MAX_EVAL_MS", "200")]),
        )
        .unwrap();
        assert_eq!(s.rules_max_eval, Duration::from_millis(200));
        let typo = write("[rules]\nmax_eval = 7\n");
        let err = Settings::load(Some(typo.path()), true, &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn no_secret_refuses_unless_dry_run_which_binds_loopback() {
        let err = Settings::load(None, false, &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("CATIVA_WEBHOOK_SECRET"), "{err}");
        let s = Settings::load(None, true, &env(&[])).unwrap();
        assert!(s.listeners.insecure_dev_secret);
        assert_eq!(s.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.listeners.secrets[0].secret.expose(), DEV_SECRET);
    }

    #[test]
    fn env_overrides_file_and_secrets_split_on_commas() {
        let f = write("listen = \"0.0.0.0:1\"\n[intake]\nmax_body_bytes = 10\n");
        let s = Settings::load(
            Some(f.path()),
            false,
            &env(&[
                ("MODBRIDGE_LISTEN", "127.0.0.1:9"),
                ("CATIVA_WEBHOOK_SECRET", &format!("{STRONG_A}, {STRONG_B}")),
            ]),
        )
        .unwrap();
        assert_eq!(s.server.listen.to_string(), "127.0.0.1:9");
        assert_eq!(s.intake.max_body_bytes, 10);
        assert_eq!(s.listeners.secrets.len(), 2);
        assert!(!format!("{s:?}").contains(STRONG_A));
    }

    #[test]
    fn listeners_bind_secrets_to_customers() {
        let f = write("[listeners.acme]\nsecret_env = \"ACME_SECRET\"\ncustomers = [\"C1\"]\n");
        let s = Settings::load(Some(f.path()), false, &env(&[("ACME_SECRET", STRONG_A)])).unwrap();
        let l = &s.listeners.secrets[0];
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
    fn every_problem_is_reported_word_for_word_section_by_section() {
        let f = write(concat!(
            "listen = \"nowhere\"\npost_url = \"ftp://x\"\n",
            "[intake]\ndeadline_secs = 0\n",
            "[listeners.acme]\nsecret_env = \"ACME_SECRET\"\ncustomers = [\"\"]\n",
            "[destinations.x]\nslack = \"general\"\n",
            "[alerts]\nto = \"nope\"\n",
        ));
        let err = Settings::load(
            Some(f.path()),
            false,
            &env(&[
                ("MODBRIDGE_DRY_RUN", "maybe"),
                ("MODBRIDGE_ADMIN_LISTEN", "x"),
                ("MODBRIDGE_SHUTDOWN_TIMEOUT_SECS", "soon"),
                ("MODBRIDGE_LOG_FORMAT", "XML"),
                ("MODBRIDGE_MAX_BODY_BYTES", "-1"),
                ("MODBRIDGE_PROBE_INTERVAL_SECS", "often"),
                ("MODBRIDGE_DEDUPE_TTL_DAYS", "week"),
            ]),
        )
        .unwrap_err()
        .0;
        let file = f.path().display().to_string();
        let address = "is not a listen address (like 0.0.0.0:8080 or 127.0.0.1:9090)";
        let expected = [
            "MODBRIDGE_DRY_RUN=\"maybe\": use 1 or 0".to_owned(),
            format!("{file}: listen: \"nowhere\" {address}"),
            format!("MODBRIDGE_ADMIN_LISTEN: \"x\" {address}"),
            "MODBRIDGE_SHUTDOWN_TIMEOUT_SECS=\"soon\": expected a whole number".into(),
            "MODBRIDGE_LOG_FORMAT=\"xml\": use text or json".into(),
            "MODBRIDGE_MAX_BODY_BYTES=\"-1\": expected a whole number".into(),
            "intake.deadline_secs must be at least 1".into(),
            "MODBRIDGE_PROBE_INTERVAL_SECS=\"often\": expected a whole number".into(),
            "MODBRIDGE_DEDUPE_TTL_DAYS=\"week\": expected a whole number".into(),
            format!("{file}: listeners.acme.customers: an ID is empty"),
            format!(
                "{file}: listeners.acme: environment variable ACME_SECRET is not set (it holds that listener's whsec_ secret)"
            ),
            "no webhook secret: set CATIVA_WEBHOOK_SECRET to the listener's whsec_ secret (Cativa Console > Webhooks), or run with --dry-run to try modbridge locally".into(),
        ];
        assert_eq!(err[..expected.len()], expected, "{err:#?}");
        let rest = &err[expected.len()..];
        assert_eq!(rest.len(), 3, "{err:#?}");
        assert!(
            rest[0].starts_with(&format!("{file}: destinations.x: ")),
            "{err:#?}"
        );
        assert!(
            rest[1].starts_with(&format!("{file}: alerts.to: ")),
            "{err:#?}"
        );
        assert_eq!(
            rest[2],
            format!(
                "{file}: post_url must start with https:// (like \"https://community.example.com/posts/{{post_id}}\")"
            )
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
