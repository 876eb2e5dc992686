//! The compiled rule set: what a rules directory becomes once checked, and
//! what evaluation reads. Files, matches and their routing, the keyword
//! automaton with the owners of each literal, and the pattern sets. Built only
//! by `compile`; immutable afterwards.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aho_corasick::AhoCorasick;
use regex_automata::meta;

use super::cases::TestCase;
use super::{DEFAULT_MAX_EVAL_MS, RuleSeverity};
use crate::destination::Destination;
use crate::post::{BadgeId, CustomerId, GroupId, UserId};

/// Where a file applies.
#[derive(Debug, Clone)]
pub enum Scope {
    Everywhere,
    Listed { feed: bool, groups: Vec<GroupId> },
}

impl Scope {
    pub fn covers(&self, group: Option<&GroupId>) -> bool {
        match (self, group) {
            (Scope::Everywhere, _) => true,
            (Scope::Listed { feed, .. }, None) => *feed,
            (Scope::Listed { groups, .. }, Some(g)) => groups.contains(g),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Scope::Everywhere => "everywhere".into(),
            Scope::Listed { feed, groups } => {
                let mut parts: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
                if *feed {
                    parts.insert(0, "the main feed".into());
                }
                parts.join(", ")
            }
        }
    }
}

#[derive(Debug)]
pub struct CompiledFile {
    pub name: String,
    pub file_name: String,
    pub path: PathBuf,
    pub scope: Scope,
    pub customers: Option<Vec<CustomerId>>,
    pub to: Vec<Arc<Destination>>,
    pub sensitive: bool,
    /// `mode = "shadow"`: its reasons are counted and explained, no card.
    pub shadow: bool,
    /// `enabled = false`.
    pub disabled: bool,
    pub exempt_badges: Vec<BadgeId>,
    pub exempt_users: Vec<UserId>,
    /// Indexes into [`Compiled::matches`].
    pub matches: Range<usize>,
    pub tests: Vec<TestCase>,
    /// Where a test without `group` posts.
    pub default_group: Option<GroupId>,
}

#[derive(Debug)]
pub struct MatchRule {
    pub file: usize,
    pub name: String,
    /// Resolved: the match's own `to`, else the file's.
    pub to: Vec<Arc<Destination>>,
    /// Resolved: `mention`, else whether the severity is urgent.
    pub mention: bool,
    pub conditions: Conditions,
    /// The `unless` phrases as written (inline ones, then those of `unless_lists`).
    pub unless: Vec<String>,
    /// For each of `unless`, the shared list it came from (an index into
    /// [`Compiled::lists`]), `None` when written inline.
    pub unless_lists: Vec<Option<u32>>,
    pub note: Option<String>,
    pub severity: RuleSeverity,
    /// The match's or its file's `mode = "shadow"`: counted, explained, no card.
    pub shadow: bool,
    /// The match's or its file's `enabled = false`.
    pub disabled: bool,
}

/// What a post and its author must be for a match that found its words to fire.
#[derive(Debug, Default)]
pub struct Conditions {
    pub max_account_age_days: Option<u32>,
    pub min_account_age_days: Option<u32>,
    pub has_image: Option<bool>,
    pub has_link: Option<bool>,
    /// In characters.
    pub min_length: Option<u32>,
    pub max_length: Option<u32>,
    pub badges_any: Vec<BadgeId>,
    pub badges_none: Vec<BadgeId>,
    /// Case-insensitive regexes; one must match the display name or username.
    pub usernames: Vec<regex::Regex>,
}

/// Who cares about a keyword hit.
#[derive(Debug, Clone, Copy)]
pub enum Owner {
    /// A keyword of match `rule`, from shared list `list` (an index into
    /// [`Compiled::lists`]) or written inline.
    Match {
        rule: u32,
        list: Option<u32>,
    },
    Unless {
        rule: u32,
        phrase: u32,
    },
    /// A literal every match of this pattern (an index into
    /// [`Compiled::triggered`]) starts with.
    Pattern(u32),
}

#[derive(Debug)]
pub struct KeywordInfo {
    /// The keyword starts (ends) with a word character, so the text before
    /// (after) it must not be one.
    pub word_start: bool,
    pub word_end: bool,
    pub owners: Vec<Owner>,
}

#[derive(Debug)]
pub struct Keywords {
    pub automaton: AhoCorasick,
    /// Indexed by the automaton's pattern ID.
    pub info: Vec<KeywordInfo>,
}

#[derive(Debug)]
pub struct PatternRule {
    pub rule: u32,
    /// The shared list it came from (a `domain_lists` line), an index into
    /// [`Compiled::lists`]; `None` when written inline.
    pub list: Option<u32>,
    /// The regex as written.
    pub real: meta::Regex,
    /// The regex without Unicode word boundaries, when it had any: finds
    /// candidates fast on any script; `real` then confirms each anchored.
    pub relaxed: Option<meta::Regex>,
    /// For a triggered pattern, the literals every match ends with, when
    /// there are few enough: a window without one holds no match, so the
    /// regex need not scan it.
    pub suffixes: Option<AhoCorasick>,
}

#[derive(Debug)]
pub struct Patterns {
    /// Every member's relaxed regex; reports which may match.
    pub set: meta::Regex,
    /// Indexed by the set's pattern ID.
    pub members: Vec<PatternRule>,
}

/// The keyword automaton and the pattern set that run over one normalised
/// view of a post.
#[derive(Debug, Default)]
pub struct View {
    pub keywords: Option<Keywords>,
    /// Patterns without trigger literals; reports which may match.
    pub patterns: Option<Patterns>,
}

impl View {
    fn memory_usage(&self) -> usize {
        let kw = self.keywords.as_ref().map_or(0, |k| {
            k.automaton.memory_usage()
                + k.info
                    .iter()
                    .map(|i| i.owners.capacity() * std::mem::size_of::<Owner>() + 64)
                    .sum::<usize>()
        });
        kw + patterns_memory(&self.patterns)
    }

    pub fn is_empty(&self) -> bool {
        self.keywords.is_none() && self.patterns.is_none()
    }
}

fn patterns_memory(p: &Option<Patterns>) -> usize {
    p.as_ref().map_or(0, |p| {
        p.set.memory_usage()
            + p.members
                .iter()
                .map(|m| m.real.memory_usage() + m.relaxed.as_ref().map_or(0, |r| r.memory_usage()))
                .sum::<usize>()
    })
}

#[derive(Debug)]
pub struct Compiled {
    pub files: Vec<CompiledFile>,
    pub matches: Vec<MatchRule>,
    /// The names of the shared lists (`lists/NAME.txt`), which hits name.
    pub lists: Vec<Arc<str>>,
    /// Plain-ASCII keywords and patterns, over the text without marks and
    /// look-alikes ([`Fold::Marks`](super::normalize::Fold::Marks)).
    pub ascii: View,
    /// The other keywords and patterns, over the case-folded text.
    pub unicode: View,
    /// Patterns whose matches all start with one of a few literals: a view's
    /// keyword automaton finds those, and the regex runs anchored there.
    pub triggered: Vec<PatternRule>,
    /// `case_sensitive` patterns, matched against the text before folding.
    pub exact: Option<Patterns>,
    /// The time budget of one post's evaluation.
    pub max_eval: Duration,
}

impl Default for Compiled {
    fn default() -> Self {
        Self {
            files: Vec::new(),
            matches: Vec::new(),
            lists: Vec::new(),
            ascii: View::default(),
            unicode: View::default(),
            triggered: Vec::new(),
            exact: None,
            max_eval: Duration::from_millis(DEFAULT_MAX_EVAL_MS),
        }
    }
}

impl Compiled {
    pub fn memory_usage(&self) -> usize {
        let triggered: usize = self
            .triggered
            .iter()
            .map(|p| p.real.memory_usage() + p.suffixes.as_ref().map_or(0, |a| a.memory_usage()))
            .sum();
        self.ascii.memory_usage()
            + self.unicode.memory_usage()
            + triggered
            + patterns_memory(&self.exact)
    }

    pub fn counts(&self) -> (usize, usize) {
        let kw = |v: &View| v.keywords.as_ref().map_or(0, |k| k.info.len());
        let pats = |p: &Option<Patterns>| p.as_ref().map_or(0, |p| p.members.len());
        (
            kw(&self.ascii) + kw(&self.unicode),
            self.triggered.len()
                + pats(&self.ascii.patterns)
                + pats(&self.unicode.patterns)
                + pats(&self.exact),
        )
    }
}
