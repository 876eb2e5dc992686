//! The configuration file: reading `modbridge.toml` (or `--config`) into the
//! raw, unchecked parts each section builds its settings from, and pointing
//! at the line and column of a syntax error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::DEFAULT_CONFIG_FILE;
use super::capture::RawCapture;
use super::dedupe::{RawDedupe, RawRedis};
use super::delivery::RawDelivery;
use super::destinations::{RawAlerts, RawDestinations};
use super::intake::RawIntake;
use super::listeners::RawListener;
use super::server::RawServer;
use super::triage::RawTriage;
use super::waves::RawWaves;

/// The file exactly as written; unknown keys are refused.
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
    redis: RawRedis,
    #[serde(default)]
    capture: RawCapture,
    #[serde(default)]
    delivery: RawDelivery,
    #[serde(default)]
    rules: RawRules,
    #[serde(default)]
    listeners: BTreeMap<String, RawListener>,
    #[serde(default)]
    destinations: RawDestinations,
    #[serde(default)]
    groups: BTreeMap<String, String>,
    alerts: Option<RawAlerts>,
    #[serde(default)]
    triage: RawTriage,
    #[serde(default)]
    waves: RawWaves,
}

/// `[rules]`: how rules run (where they are is the top-level `rules_dir`).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRules {
    pub max_eval_ms: Option<u64>,
}

/// The file's values grouped by the section that checks them.
#[derive(Debug, Default)]
pub(super) struct RawSections {
    pub dry_run: Option<bool>,
    pub rules_dir: Option<PathBuf>,
    pub redis_url: Option<String>,
    /// Variable name → the file's value for it (`slack_api_url`, …).
    pub env_defaults: BTreeMap<String, String>,
    pub server: RawServer,
    pub intake: RawIntake,
    pub dedupe: RawDedupe,
    pub redis: RawRedis,
    pub capture: RawCapture,
    pub delivery: RawDelivery,
    pub rules: RawRules,
    pub listeners: BTreeMap<String, RawListener>,
    pub destinations: RawDestinations,
    pub alerts: Option<RawAlerts>,
    pub post_url: Option<String>,
    pub groups: BTreeMap<String, String>,
    pub triage: RawTriage,
    pub waves: RawWaves,
}

impl From<RawConfig> for RawSections {
    fn from(raw: RawConfig) -> Self {
        let env_defaults = [
            ("SLACK_API_URL", raw.slack_api_url),
            ("DISCORD_API_URL", raw.discord_api_url),
        ]
        .into_iter()
        .filter_map(|(var, v)| v.map(|v| (var.to_owned(), v)))
        .collect();
        Self {
            dry_run: raw.dry_run,
            rules_dir: raw.rules_dir,
            redis_url: raw.redis_url,
            env_defaults,
            server: RawServer {
                listen: raw.listen,
                admin_listen: raw.admin_listen,
                shutdown_timeout_secs: raw.shutdown_timeout_secs,
                log_format: raw.log_format,
            },
            intake: raw.intake,
            dedupe: raw.dedupe,
            redis: raw.redis,
            capture: raw.capture,
            delivery: raw.delivery,
            rules: raw.rules,
            listeners: raw.listeners,
            destinations: raw.destinations,
            alerts: raw.alerts,
            post_url: raw.post_url,
            groups: raw.groups,
            triage: raw.triage,
            waves: raw.waves,
        }
    }
}

/// Reads `path`, or `modbridge.toml` when it exists (no file: all defaults).
/// The error names the file, and the line and column of a syntax error.
pub(super) fn read(path: Option<&Path>) -> Result<RawSections, String> {
    let (path, required) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(RawSections::default());
        }
        Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
    };
    toml::from_str::<RawConfig>(&text)
        .map(RawSections::from)
        .map_err(|e| {
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
