//! The rules engine: which posts moderators see, and where.
//!
//! Owns the rules files admins write (`rules/*.toml`): their TOML model
//! (`file`), compiling every file of a directory into one immutable [`RuleSet`]
//! (`compile`, with patterns in `patterns` and `[[test]]` tables in `cases`;
//! the compiled shape is `model`), evaluating a [`Post`] against it (`eval`,
//! pure: no IO, no async), explaining that evaluation (`explain`), running the
//! `[[test]]`s (`runner`), the normalisation that defeats evasion
//! (`normalize`), shared lists of phrases (`lists`), and live reload of the
//! directory (`reload`).
//!
//! Architecture invariant: rules know nothing of HTTP, Redis, Slack or Discord.
//! They name destinations and hand back [`Verdict`]s; cards and sinks do the rest.
//!
//! How matching works, and its limits:
//! - The post's whole content is normalised (NFKC, lower-cased, every
//!   Default_Ignorable_Code_Point and bidi control removed, blank letters and
//!   whitespace runs as one space; see `normalize`). Plain-ASCII keywords and
//!   patterns run over a view that also drops combining marks and folds
//!   look-alike letters in mixed-script words (`kíll`, `k̶i̶l̶l̶`, `kіll`);
//!   the others (`über`) over the case-folded view, exactly. Match positions
//!   are mapped back to the original.
//! - All keywords and `unless` phrases of all files are one Aho-Corasick
//!   automaton per view; word boundaries are checked at each hit.
//! - Most patterns start with one of a few literals (`\bsu[i1!]c…` starts with
//!   `sui`, `su1`, `su!`): those literals join the same automaton, and the
//!   pattern's real regex only runs anchored where one was found. The regex
//!   crate's fast engines cannot handle Unicode `\b` on non-ASCII text; an
//!   anchored run at a candidate costs tens of nanoseconds instead.
//! - The other patterns form one regex set with Unicode word boundaries
//!   removed (so the lazy DFA runs on any script); only the patterns the set
//!   reports are confirmed with their real regex, anchored where the relaxed
//!   one matched. `case_sensitive` patterns are a second set over the text
//!   before folding.
//! - Each pattern is limited to [`PATTERN_SIZE_LIMIT`] bytes once compiled,
//!   and each match is confirmed within [`CONFIRM_WINDOW`] bytes of its start,
//!   searching one window ahead at a time, so no pattern makes evaluation
//!   rescan the text at every candidate. A pattern run at its prefixes whose
//!   matches all end with one of a few literals skips every window that
//!   holds none of them. Each post has a time budget
//!   ([`DEFAULT_MAX_EVAL_MS`], `RuleSet::with_max_eval`): past it no more
//!   pattern work starts and the verdict is marked not fully checked. Reading
//!   the monotonic clock for that is the only thing evaluation does besides
//!   computing.

mod cases;
mod compile;
mod eval;
#[cfg(test)]
mod evasion_tests;
mod explain;
mod file;
mod lists;
mod model;
mod normalize;
mod patterns;
pub mod reload;
mod runner;

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::destination::{Destination, Destinations};
use crate::post::Post;

pub use explain::{CancelledHit, Explanation, FileExplanation, MatchExplanation};
pub use reload::{Coverage, LiveRules, ReloadEvent, ReloadStatus, WatchGuard};

/// `text` as ASCII keywords see it: NFKC, lower-cased, invisible and bidi
/// characters removed, whitespace runs as one space, accents stripped and
/// look-alike letters folded in mixed-script words. For comparing texts
/// outside the rules (campaign fingerprints).
pub fn folded(text: &str) -> String {
    normalize::normalize(text, normalize::Fold::Marks).text
}

/// Only this many bytes of a post's content are evaluated (the start of the
/// post): far above the 1 MiB webhook body cap, so every real post is read
/// whole; it keeps offsets in `u32` for any `Post` built elsewhere.
pub const MAX_TEXT_BYTES: usize = 16 * 1024 * 1024;
/// Each pattern match is confirmed within this many bytes from its start: a
/// longer match (`.*` across a whole post) is not seen, and no pattern can
/// make evaluation scan the rest of the text at every candidate.
pub const CONFIRM_WINDOW: usize = 1024;
/// The default time budget for one post (`rules.max_eval_ms`): past it, no
/// more pattern work starts and the verdict says the post was not fully
/// checked.
pub const DEFAULT_MAX_EVAL_MS: u64 = 50;
/// The most a single pattern may take once compiled.
pub const PATTERN_SIZE_LIMIT: usize = 1024 * 1024;
/// The most highlights one reason carries (cards show a few; the rest is noise).
pub const MAX_HIGHLIGHTS: usize = 32;

/// Every rules file of a directory, compiled. Immutable; share it in an `Arc`.
pub struct RuleSet {
    compiled: model::Compiled,
}

impl fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleSet")
            .field("files", &self.compiled.files.len())
            .field("matches", &self.compiled.matches.len())
            .finish_non_exhaustive()
    }
}

impl RuleSet {
    /// No rules: nothing is forwarded.
    pub fn empty() -> Self {
        Self {
            compiled: model::Compiled::default(),
        }
    }

    /// Reads every `*.toml` in `dir` (sorted by name; other files and names
    /// starting with `.` are ignored) and every shared list `dir/lists/*.txt`,
    /// and compiles them all. Collects every error of every file.
    pub fn load_dir(dir: &Path, destinations: &Destinations) -> Result<Loaded, LoadErrors> {
        compile::load_dir(dir, destinations)
    }

    /// Compiles rules given as `(file name, contents)` pairs, as if they were
    /// the files of `dir`; names like `lists/NAME.txt` are shared lists.
    pub fn from_sources<'a>(
        dir: &Path,
        sources: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        destinations: &Destinations,
    ) -> Result<Loaded, LoadErrors> {
        compile::from_sources(dir, sources, destinations)
    }

    /// Sets the time budget of one post's evaluation (`rules.max_eval_ms`;
    /// [`DEFAULT_MAX_EVAL_MS`] unless set).
    pub fn with_max_eval(mut self, budget: std::time::Duration) -> Self {
        self.compiled.max_eval = budget;
        self
    }

    /// The time budget of one post's evaluation.
    pub fn max_eval(&self) -> std::time::Duration {
        self.compiled.max_eval
    }

    /// What to forward for `post`, and why. A post whose patterns could not
    /// all be confirmed within the budget is counted in
    /// `modbridge_rules_not_fully_checked_total` and says so in the verdict.
    pub fn evaluate(&self, post: &Post) -> Verdict {
        let verdict = eval::evaluate(&self.compiled, post);
        if verdict.not_fully_checked {
            metrics::counter!("modbridge_rules_not_fully_checked_total").increment(1);
        }
        for r in &verdict.shadow {
            metrics::counter!(
                "modbridge_rules_shadow_matches_total",
                "file" => r.rules_file.clone(),
                "match" => r.name().to_owned()
            )
            .increment(1);
        }
        verdict
    }

    /// A human-readable account of how every file treats `post`.
    pub fn explain(&self, post: &Post) -> Explanation {
        explain::explain(&self.compiled, post)
    }

    /// How many rules files were loaded.
    pub fn files(&self) -> usize {
        self.compiled.files.len()
    }

    /// How many shared lists (`lists/NAME.txt`) were loaded.
    pub fn lists(&self) -> usize {
        self.compiled.lists.len()
    }

    /// Every destination some file or match sends to, once each by name.
    pub fn destinations(&self) -> Vec<Arc<Destination>> {
        let mut seen = std::collections::BTreeMap::new();
        for file in &self.compiled.files {
            for d in &file.to {
                seen.entry(d.name().to_owned()).or_insert_with(|| d.clone());
            }
        }
        for m in &self.compiled.matches {
            for d in &m.to {
                seen.entry(d.name().to_owned()).or_insert_with(|| d.clone());
            }
        }
        seen.into_values().collect()
    }

    /// Runs every `[[test]]` of every file.
    pub fn run_tests(&self) -> TestReport {
        runner::run_tests(&self.compiled)
    }

    /// Heap bytes held by the compiled automata (keyword automaton, regex sets
    /// and per-pattern regexes; search caches, created on first use, excluded).
    pub fn memory_usage(&self) -> usize {
        self.compiled.memory_usage()
    }

    /// How many keywords and `unless` phrases (distinct, after normalisation)
    /// and patterns were compiled.
    pub fn counts(&self) -> (usize, usize) {
        self.compiled.counts()
    }
}

/// The outcome of a successful load.
#[derive(Debug)]
pub struct Loaded {
    pub rules: RuleSet,
    /// Things that load but are probably mistakes: matches that can never fire,
    /// files with nothing to do.
    pub warnings: Vec<Diagnostic>,
}

/// Every error found while loading a rules directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadErrors(pub Vec<Diagnostic>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

/// A message about a place in a rules file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    /// 1-based; 0 when the message is about the whole file or directory.
    pub line: usize,
    /// 1-based, in characters.
    pub col: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.path.display(),
                self.line,
                self.col,
                self.message
            )
        }
    }
}

/// What to do with a post: one card per destination. Empty: nothing to forward.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// One per destination.
    pub routings: Vec<Routing>,
    /// The evaluation ran out of its time budget (`rules.max_eval_ms`)
    /// before every pattern was confirmed: more rules may match than these.
    pub not_fully_checked: bool,
    /// Matches in `mode = "shadow"` that fired: counted and explained, no card.
    pub shadow: Vec<Reason>,
}

impl Verdict {
    pub fn is_empty(&self) -> bool {
        self.routings.is_empty()
    }
}

/// Where the rules send a post: one destination, with every reason that
/// sent it there. (Sending it is the `delivery` module's job.)
#[derive(Debug, Clone)]
pub struct Routing {
    pub destination: Arc<Destination>,
    pub reasons: Vec<Reason>,
    /// Whether the card pings the destination's configured mention.
    pub mention: bool,
}

/// Why a post is forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    /// The file's `name`, or its stem.
    pub rules_name: String,
    /// The file name, like `parents-support.toml`.
    pub rules_file: String,
    pub kind: ReasonKind,
    /// What matched in the post (empty for a sensitive group).
    pub matched: Vec<Highlight>,
    /// The match's `note` for moderators, `{rule}` and `{match}` filled in
    /// (`{match}` is post text: escape it like all post text).
    pub note: Option<String>,
    pub severity: RuleSeverity,
}

/// How serious a match is (`severity` in a `[[match]]`); a sensitive group's
/// reason is `Normal`. `Urgent` pings the destination's mention unless the
/// match says `mention = false`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum RuleSeverity {
    Low,
    #[default]
    Normal,
    High,
    Urgent,
}

impl RuleSeverity {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "low" => Some(Self::Low),
            "normal" => Some(Self::Normal),
            "high" => Some(Self::High),
            "urgent" => Some(Self::Urgent),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
            Self::Urgent => "urgent",
        }
    }
}

/// The name of the reason "forwarded because the group is sensitive" (no
/// match may take it).
pub const SENSITIVE_REASON: &str = "sensitive";

impl Reason {
    /// `sensitive` or the match's name: what `[[test]] expect` lists.
    pub fn name(&self) -> &str {
        match &self.kind {
            ReasonKind::SensitiveGroup => SENSITIVE_REASON,
            ReasonKind::Match { name } => name,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReasonKind {
    /// The file forwards every post of its groups.
    SensitiveGroup,
    /// A `[[match]]` fired.
    Match { name: String },
}

/// A span of the original post content that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Highlight {
    /// Byte range into `post.content`.
    pub range: Range<usize>,
    pub text: String,
    /// The shared list (`lists/NAME.txt`) of the keyword, domain or phrase
    /// that matched; `None` when it was written in the rules file.
    pub list: Option<Arc<str>>,
}

/// The outcome of every `[[test]]`.
#[derive(Debug, Clone, Default)]
pub struct TestReport {
    pub results: Vec<TestResult>,
}

/// One `[[test]]` run.
#[derive(Debug, Clone)]
pub struct TestResult {
    /// Where the test is written.
    pub at: Diagnostic,
    pub name: Option<String>,
    /// Sorted reason names.
    pub expected: Vec<String>,
    /// Sorted reason names the test's own file produced.
    pub actual: Vec<String>,
    /// How the test's file treated the post (printed for failures).
    pub explanation: String,
}

impl TestResult {
    pub fn passed(&self) -> bool {
        self.expected == self.actual
    }
}

impl TestReport {
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.passed()).count()
    }
    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }
}

impl fmt::Display for TestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in self.results.iter().filter(|r| !r.passed()) {
            let name = r
                .name
                .as_deref()
                .map(|n| format!(" {n:?}"))
                .unwrap_or_default();
            writeln!(
                f,
                "{}:{}:{}: test{name} failed: expected [{}], got [{}]",
                r.at.path.display(),
                r.at.line,
                r.at.col,
                r.expected.join(", "),
                r.actual.join(", ")
            )?;
            for line in r.explanation.lines() {
                writeln!(f, "    {line}")?;
            }
        }
        write!(f, "{} passed, {} failed", self.passed(), self.failed())
    }
}
