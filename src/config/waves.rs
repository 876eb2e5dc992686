//! `[waves]`: what happens when a destination gets more cards than it can
//! post (issue #14). Past `digest_after_secs` of queue, further cards join a
//! digest message edited in place; near-identical posts from several
//! authors become one campaign card. Both need Redis (a dry run or the
//! in-memory store queues cards as before).

use std::time::Duration;

use serde::Deserialize;

use super::loader::Loader;

/// `[waves]` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWaves {
    enabled: Option<bool>,
    digest_after_secs: Option<u64>,
    max_entries: Option<u64>,
    max_digest_secs: Option<u64>,
    quiet_secs: Option<u64>,
    edit_every_secs: Option<u64>,
    campaigns: Option<bool>,
    campaign_min_words: Option<u64>,
    campaign_min_authors: Option<u64>,
    campaign_window_secs: Option<u64>,
    campaign_similarity: Option<f64>,
}

/// Digests and campaigns, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct WaveSettings {
    /// Digests on (`enabled`, default true; with Redis only).
    pub enabled: bool,
    /// A destination whose queue would take longer than this to post is in
    /// a wave: further cards join its digest.
    pub digest_after: Duration,
    /// Entries per digest message before a new one starts.
    pub max_entries: usize,
    /// Age of a digest message after which a new one starts.
    pub max_digest: Duration,
    /// The wave ends after this long without overflow.
    pub quiet: Duration,
    /// How often a digest or campaign message is edited at most.
    pub edit_every: Duration,
    /// Campaign cards on (`campaigns`, default true; with Redis only).
    pub campaigns: bool,
    pub campaign_min_words: usize,
    pub campaign_min_authors: u32,
    pub campaign_window: Duration,
    /// 0–1: how alike two texts must be to be one campaign (1: identical
    /// once normalised).
    pub campaign_similarity: f64,
}

impl Default for WaveSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            digest_after: Duration::from_secs(5),
            max_entries: 25,
            max_digest: Duration::from_secs(600),
            quiet: Duration::from_secs(30),
            edit_every: Duration::from_secs(3),
            campaigns: true,
            campaign_min_words: 5,
            campaign_min_authors: 3,
            campaign_window: Duration::from_secs(600),
            campaign_similarity: 0.8,
        }
    }
}

impl WaveSettings {
    pub(super) fn build(raw: RawWaves, l: &mut Loader) -> Self {
        let d = Self::default();
        let mut positive = |name: &str, v: Option<u64>, default: u64, what: &str| -> u64 {
            match v {
                Some(0) => {
                    let key = l.key(&format!("waves.{name}"));
                    l.problem(format!("{key} must be at least 1 ({what})"));
                    default
                }
                Some(v) => v,
                None => default,
            }
        };
        let digest_after = positive(
            "digest_after_secs",
            raw.digest_after_secs,
            d.digest_after.as_secs(),
            "seconds of queue a destination may have before cards join a digest",
        );
        let max_entries = positive(
            "max_entries",
            raw.max_entries,
            d.max_entries as u64,
            "posts listed in one digest message",
        );
        let max_digest = positive(
            "max_digest_secs",
            raw.max_digest_secs,
            d.max_digest.as_secs(),
            "seconds a digest message takes entries before a new one starts",
        );
        let quiet = positive(
            "quiet_secs",
            raw.quiet_secs,
            d.quiet.as_secs(),
            "seconds without overflow that end a wave",
        );
        let edit_every = positive(
            "edit_every_secs",
            raw.edit_every_secs,
            d.edit_every.as_secs(),
            "seconds between edits of a digest or campaign message",
        );
        let min_words = positive(
            "campaign_min_words",
            raw.campaign_min_words,
            d.campaign_min_words as u64,
            "words a post needs to count towards a campaign",
        );
        let min_authors = positive(
            "campaign_min_authors",
            raw.campaign_min_authors,
            u64::from(d.campaign_min_authors),
            "distinct authors that make a campaign",
        );
        let window = positive(
            "campaign_window_secs",
            raw.campaign_window_secs,
            d.campaign_window.as_secs(),
            "seconds within which similar posts form one campaign",
        );
        if max_entries > 25 {
            let key = l.key("waves.max_entries");
            l.problem(format!(
                "{key} = {max_entries}: at most 25 (Discord shows 25 fields per embed and Slack 50 blocks per message)"
            ));
        }
        let similarity = raw.campaign_similarity.unwrap_or(d.campaign_similarity);
        if !(0.5..=1.0).contains(&similarity) {
            let key = l.key("waves.campaign_similarity");
            l.problem(format!(
                "{key} = {similarity}: expected a number from 0.5 (loosely alike) to 1.0 (identical once normalised)"
            ));
        }
        Self {
            enabled: raw.enabled.unwrap_or(d.enabled),
            digest_after: Duration::from_secs(digest_after),
            max_entries: usize::try_from(max_entries.min(25)).unwrap_or(25),
            max_digest: Duration::from_secs(max_digest),
            quiet: Duration::from_secs(quiet),
            edit_every: Duration::from_secs(edit_every),
            campaigns: raw.campaigns.unwrap_or(d.campaigns),
            campaign_min_words: usize::try_from(min_words).unwrap_or(d.campaign_min_words),
            campaign_min_authors: u32::try_from(min_authors).unwrap_or(u32::MAX),
            campaign_window: Duration::from_secs(window),
            campaign_similarity: similarity.clamp(0.5, 1.0),
        }
    }

    /// One line for `check`: what a spam wave does here.
    pub fn report(&self, redis: bool) -> String {
        match (self.enabled, redis) {
            (false, _) => "note: spam-wave digests are off (waves.enabled = false): a raid queues cards behind each channel's pace".to_owned(),
            (true, false) => "note: spam-wave digests need Redis (REDIS_URL): without it a raid queues cards behind each channel's pace".to_owned(),
            (true, true) => format!(
                "ok: spam waves: past {} s of queue a destination's cards join a digest ({} entries a message), campaigns {}",
                self.digest_after.as_secs(),
                self.max_entries,
                if self.campaigns {
                    format!(
                        "of {}+ authors within {} s become one card",
                        self.campaign_min_authors,
                        self.campaign_window.as_secs()
                    )
                } else {
                    "off".to_owned()
                }
            ),
        }
    }
}
