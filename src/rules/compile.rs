//! From rules files to one compiled [`Compiled`] set: checks every value,
//! collects every error of every file, then builds one keyword automaton and
//! one regex set (two when some patterns are case-sensitive) for all files.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use chrono::{DateTime, Utc};
use regex_automata::meta;
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{Capture, Hir, HirKind, Look, Repetition};

use super::file::{self, RawFile, RawMatch, RawTest, SpannedList};
use super::normalize::{is_word_char, normalize_phrase};
use super::{Diagnostic, LoadErrors, Loaded, PATTERN_SIZE_LIMIT, RuleSet};
use crate::destination::{Destination, Destinations};
use crate::post::{BadgeId, CustomerId, GroupId, PostId, UserId};

/// Up to this many keywords, phrases and pattern literals, the keyword
/// automaton is a DFA.
const DFA_MAX_LITERALS: usize = 50_000;

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
    pub mention: bool,
    pub max_account_age_days: Option<u32>,
    pub has_image: Option<bool>,
    /// The `unless` phrases as written.
    pub unless: Vec<String>,
}

#[derive(Debug)]
pub struct TestCase {
    pub post_id: PostId,
    pub line: usize,
    pub col: usize,
    pub name: Option<String>,
    pub content: Option<String>,
    pub group: Option<GroupId>,
    pub customer: CustomerId,
    pub user: UserId,
    pub badges: Vec<BadgeId>,
    pub image: bool,
    pub author_joined: Option<DateTime<Utc>>,
    pub author_age_days: Option<u32>,
    pub posted_at: Option<DateTime<Utc>>,
    pub expect: Vec<String>,
}

/// Who cares about a keyword hit.
#[derive(Debug, Clone, Copy)]
pub enum Owner {
    Match(u32),
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
    /// The regex as written.
    pub real: meta::Regex,
    /// The regex without Unicode word boundaries, when it had any: finds
    /// candidates fast on any script; `real` then confirms each anchored.
    pub relaxed: Option<meta::Regex>,
}

#[derive(Debug)]
pub struct Patterns {
    /// Every member's relaxed regex; reports which may match.
    pub set: meta::Regex,
    /// Indexed by the set's pattern ID.
    pub members: Vec<PatternRule>,
}

#[derive(Debug, Default)]
pub struct Compiled {
    pub files: Vec<CompiledFile>,
    pub matches: Vec<MatchRule>,
    pub keywords: Option<Keywords>,
    /// Patterns whose matches all start with one of a few literals: the
    /// keyword automaton finds those, and the regex runs anchored there.
    pub triggered: Vec<PatternRule>,
    /// Patterns matched against the folded text.
    pub folded: Option<Patterns>,
    /// `case_sensitive` patterns, matched against the text before folding.
    pub exact: Option<Patterns>,
}

impl Compiled {
    pub fn memory_usage(&self) -> usize {
        let kw = self.keywords.as_ref().map_or(0, |k| {
            k.automaton.memory_usage()
                + k.info
                    .iter()
                    .map(|i| i.owners.capacity() * 8 + 64)
                    .sum::<usize>()
        });
        let pats = |p: &Option<Patterns>| {
            p.as_ref().map_or(0, |p| {
                p.set.memory_usage()
                    + p.members
                        .iter()
                        .map(|m| {
                            m.real.memory_usage()
                                + m.relaxed.as_ref().map_or(0, |r| r.memory_usage())
                        })
                        .sum::<usize>()
            })
        };
        let triggered: usize = self.triggered.iter().map(|p| p.real.memory_usage()).sum();
        kw + triggered + pats(&self.folded) + pats(&self.exact)
    }

    pub fn counts(&self) -> (usize, usize) {
        let kw = self.keywords.as_ref().map_or(0, |k| k.info.len());
        let pats = |p: &Option<Patterns>| p.as_ref().map_or(0, |p| p.members.len());
        (
            kw,
            self.triggered.len() + pats(&self.folded) + pats(&self.exact),
        )
    }
}

pub fn load_dir(dir: &Path, destinations: &Destinations) -> Result<Loaded, LoadErrors> {
    let whole = |message: String| {
        LoadErrors(vec![Diagnostic {
            path: dir.to_owned(),
            line: 0,
            col: 0,
            message,
        }])
    };
    let entries = std::fs::read_dir(dir).map_err(|e| {
        whole(format!(
            "cannot read the rules directory: {e} (set MODBRIDGE_RULES to the directory holding the *.toml rules files)"
        ))
    })?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| whole(format!("cannot list the rules directory: {e}")))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') || !name.ends_with(".toml") {
            continue;
        }
        // Follows symlinks: Kubernetes ConfigMaps mount files as links.
        if std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) {
            names.push(name.to_owned());
        }
    }
    names.sort();
    let mut contents = Vec::with_capacity(names.len());
    let mut errors = Vec::new();
    for name in &names {
        match std::fs::read(dir.join(name)) {
            Ok(bytes) => contents.push((name.as_str(), bytes)),
            Err(e) => errors.push(Diagnostic {
                path: dir.join(name),
                line: 0,
                col: 0,
                message: format!("cannot read the file: {e}"),
            }),
        }
    }
    let result = from_sources(
        dir,
        contents.iter().map(|(n, b)| (*n, b.as_slice())),
        destinations,
    );
    match (result, errors.is_empty()) {
        (r, true) => r,
        (Ok(_), false) => Err(LoadErrors(errors)),
        (Err(LoadErrors(more)), false) => {
            errors.extend(more);
            Err(LoadErrors(errors))
        }
    }
}

pub fn from_sources<'a>(
    dir: &Path,
    sources: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    destinations: &Destinations,
) -> Result<Loaded, LoadErrors> {
    let mut b = Builder::new(destinations);
    for (name, bytes) in sources {
        b.add_file(dir, name, bytes);
    }
    b.finish(dir)
}

struct PendingPattern {
    rule: PatternRule,
    relaxed_hir: Hir,
    /// Literals every match starts with (case-insensitive patterns only).
    triggers: Option<Vec<Vec<u8>>>,
}

struct Builder<'d> {
    destinations: &'d Destinations,
    out: Compiled,
    /// By text and whether it is a pattern trigger (which needs no word boundary).
    keyword_index: HashMap<(Vec<u8>, bool), usize>,
    keyword_texts: Vec<Vec<u8>>,
    keyword_info: Vec<KeywordInfo>,
    folded: Vec<PendingPattern>,
    exact: Vec<PendingPattern>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

/// Reports about one file.
struct Ctx<'t> {
    path: PathBuf,
    text: &'t str,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn diag(&self, offset: usize, message: String) -> Diagnostic {
        let (line, col) = file::line_col(self.text, offset);
        Diagnostic {
            path: self.path.clone(),
            line,
            col,
            message,
        }
    }
    fn error(&mut self, span: &Range<usize>, message: impl Into<String>) {
        let d = self.diag(span.start, message.into());
        self.errors.push(d);
    }
    fn warn(&mut self, span: &Range<usize>, message: impl Into<String>) {
        let d = self.diag(span.start, message.into());
        self.warnings.push(d);
    }
}

impl<'d> Builder<'d> {
    fn new(destinations: &'d Destinations) -> Self {
        Self {
            destinations,
            out: Compiled::default(),
            keyword_index: HashMap::new(),
            keyword_texts: Vec::new(),
            keyword_info: Vec::new(),
            folded: Vec::new(),
            exact: Vec::new(),
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn add_file(&mut self, dir: &Path, file_name: &str, bytes: &[u8]) {
        let path = dir.join(file_name);
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let good = &bytes[..e.valid_up_to()];
                // The valid prefix is UTF-8, so positions in it are exact.
                let prefix = std::str::from_utf8(good).unwrap_or_default();
                let (line, col) = file::line_col(prefix, prefix.len());
                self.errors.push(Diagnostic {
                    path,
                    line,
                    col,
                    message: format!(
                        "the file is not UTF-8 (byte 0x{:02X} here): save it as UTF-8",
                        bytes.get(e.valid_up_to()).copied().unwrap_or(0)
                    ),
                });
                return;
            }
        };
        let mut ctx = Ctx {
            path: path.clone(),
            text,
            errors: Vec::new(),
            warnings: Vec::new(),
        };
        match file::parse(text) {
            Ok(raw) => self.add_raw(&mut ctx, file_name, raw),
            Err((span, message)) => ctx.error(&span, message),
        }
        ctx.errors.sort_by_key(|d| (d.line, d.col));
        self.errors.append(&mut ctx.errors);
        self.warnings.append(&mut ctx.warnings);
    }

    fn resolve_list(
        &self,
        ctx: &mut Ctx<'_>,
        list: &SpannedList,
        what: &str,
    ) -> Vec<Arc<Destination>> {
        let mut out: Vec<Arc<Destination>> = Vec::new();
        if list.get_ref().is_empty() {
            ctx.error(
                &list.span(),
                format!("{what} is empty: name at least one destination from modbridge.toml, like to = [\"trust-safety\"]"),
            );
        }
        for spec in list.get_ref() {
            match self.destinations.resolve(spec.get_ref()) {
                Ok(d) => {
                    if !out.iter().any(|o| o.name() == d.name()) {
                        out.push(d);
                    }
                }
                Err(e) => ctx.error(&spec.span(), e),
            }
        }
        out
    }

    fn add_raw(&mut self, ctx: &mut Ctx<'_>, file_name: &str, raw: RawFile) {
        let whole = 0..0;
        let file_index = self.out.files.len();
        let stem = file_name
            .strip_suffix(".toml")
            .unwrap_or(file_name)
            .to_owned();
        let name = match &raw.name {
            Some(n) if n.get_ref().trim().is_empty() => {
                ctx.error(&n.span(), "`name` is empty: write the name shown on cards, or remove the line to use the file name");
                stem
            }
            Some(n) => n.get_ref().trim().to_owned(),
            None => stem,
        };

        // Where the file applies.
        let mut scope = Scope::Listed {
            feed: false,
            groups: Vec::new(),
        };
        let mut default_group = None;
        match &raw.groups {
            None => ctx.error(
                &whole,
                "missing `groups`: add groups = [\"<GroupId>\"], [\"feed\"] for the main feed or [\"*\"] for everywhere",
            ),
            Some(list) if list.get_ref().is_empty() => ctx.error(
                &list.span(),
                "`groups` is empty: list GroupIds, \"feed\" for the main feed or \"*\" for everywhere",
            ),
            Some(list) => {
                for (i, g) in list.get_ref().iter().enumerate() {
                    let value = g.get_ref().trim();
                    match (value, &mut scope) {
                        ("*", s) => {
                            if list.get_ref().len() > 1 {
                                ctx.warn(&g.span(), "\"*\" already covers everywhere: the other `groups` entries do nothing");
                            }
                            *s = Scope::Everywhere;
                        }
                        ("feed", Scope::Listed { feed, .. }) => *feed = true,
                        (_, Scope::Listed { groups, .. }) => match GroupId::parse(value) {
                            Ok(id) => {
                                if i == 0 {
                                    default_group = Some(id.clone());
                                }
                                groups.push(id);
                            }
                            Err(_) => ctx.error(
                                &g.span(),
                                "empty group ID: write a GroupId, \"feed\" for the main feed or \"*\" for everywhere",
                            ),
                        },
                        _ => {}
                    }
                }
            }
        }

        let customers = raw.customers.as_ref().map(|list| {
            if list.get_ref().is_empty() {
                ctx.error(
                    &list.span(),
                    "`customers` is empty, so the file would never apply: list CustomerIds, or remove the line to apply to every customer",
                );
            }
            parse_ids(ctx, list.get_ref(), "customer ID", CustomerId::parse)
        });
        let exempt_badges = parse_ids(
            ctx,
            &raw.exempt_badges,
            "badge ID in `exempt_badges`",
            BadgeId::parse,
        );
        let exempt_users = parse_ids(
            ctx,
            &raw.exempt_users,
            "user ID in `exempt_users`",
            UserId::parse,
        );

        let to = match &raw.to {
            Some(list) => self.resolve_list(ctx, list, "`to`"),
            None => Vec::new(),
        };
        let needs_file_to = raw.sensitive || raw.matches.iter().any(|m| m.get_ref().to.is_none());
        if raw.to.is_none() && needs_file_to {
            ctx.error(
                &whole,
                "no `to`: add to = [\"<destination>\"] at the top of the file (names from modbridge.toml, or \"slack:C0123ABCD\" / \"discord:112233445566778899\")",
            );
        }

        let first_match = self.out.matches.len();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for m in &raw.matches {
            self.add_match(ctx, file_index, &to, m.span(), m.get_ref(), &mut seen);
        }
        let matches = first_match..self.out.matches.len();
        if !raw.sensitive && raw.matches.is_empty() {
            ctx.warn(
                &whole,
                "this file does nothing: set `sensitive = true` or add a [[match]]",
            );
        }

        let mut file = CompiledFile {
            name,
            file_name: file_name.to_owned(),
            path: ctx.path.clone(),
            scope,
            customers,
            to,
            sensitive: raw.sensitive,
            exempt_badges,
            exempt_users,
            matches,
            tests: Vec::new(),
            default_group,
        };
        let known: Vec<String> = raw
            .sensitive
            .then(|| "sensitive".to_owned())
            .into_iter()
            .chain(
                self.out.matches[file.matches.clone()]
                    .iter()
                    .map(|m| m.name.clone()),
            )
            .collect();
        for t in &raw.tests {
            if let Some(case) = compile_test(ctx, &file, &known, t.span(), t.get_ref()) {
                file.tests.push(case);
            }
        }
        self.out.files.push(file);
    }

    fn add_match(
        &mut self,
        ctx: &mut Ctx<'_>,
        file_index: usize,
        file_to: &[Arc<Destination>],
        span: Range<usize>,
        m: &RawMatch,
        seen: &mut HashMap<String, usize>,
    ) {
        let rule = self.out.matches.len() as u32;
        let name = match &m.name {
            None => {
                ctx.error(&span, "this [[match]] has no `name`: add name = \"...\" (shown on cards, listed in [[test]] expect)");
                format!("#{}", rule)
            }
            Some(n) => {
                let value = n.get_ref().trim();
                if value.is_empty() {
                    ctx.error(&n.span(), "match `name` is empty: give it a short name like \"self-harm\" (shown on cards, listed in [[test]] expect)");
                } else if value == "sensitive" {
                    ctx.error(&n.span(), "a match cannot be named `sensitive`: that name means \"forwarded because the group is sensitive\"; pick another");
                } else if let Some(first) = seen.get(value) {
                    let first = *first;
                    ctx.error(
                        &n.span(),
                        format!("duplicate match name `{value}` (first used on line {first}): match names must be unique within a file"),
                    );
                } else {
                    let (line, _) = file::line_col(ctx.text, n.span().start);
                    seen.insert(value.to_owned(), line);
                }
                value.to_owned()
            }
        };
        let to = match &m.to {
            Some(list) => self.resolve_list(ctx, list, "`to` of this match"),
            None => file_to.to_vec(),
        };
        if m.keywords.is_empty() && m.patterns.is_empty() {
            ctx.warn(
                &span,
                format!("match `{name}` can never fire: it has no `keywords` and no `patterns`"),
            );
        }
        for k in &m.keywords {
            if let Some(norm) = self.checked_phrase(ctx, k, "keyword") {
                self.add_keyword(norm, Owner::Match(rule));
            }
        }
        let mut unless = Vec::new();
        for (i, u) in m.unless.iter().enumerate() {
            if let Some(norm) = self.checked_phrase(ctx, u, "`unless` phrase") {
                self.add_keyword(
                    norm,
                    Owner::Unless {
                        rule,
                        phrase: i as u32,
                    },
                );
            }
            unless.push(u.get_ref().clone());
        }
        for p in &m.patterns {
            match compile_pattern(p.get_ref(), m.case_sensitive, rule) {
                Ok(PendingPattern {
                    rule,
                    triggers: Some(triggers),
                    ..
                }) => {
                    let index = self.out.triggered.len() as u32;
                    self.out.triggered.push(rule);
                    for t in triggers {
                        self.add_literal(t, true, Owner::Pattern(index));
                    }
                }
                Ok(pending) => {
                    if m.case_sensitive {
                        self.exact.push(pending);
                    } else {
                        self.folded.push(pending);
                    }
                }
                Err(PatternError { offset, message }) => {
                    let at = match (offset, file::literal_contents_start(ctx.text, &p.span())) {
                        (Some(o), Some(start)) => start + o,
                        _ => p.span().start,
                    };
                    ctx.error(&(at..at), format!("match `{name}`: {message}"));
                }
            }
        }
        self.out.matches.push(MatchRule {
            file: file_index,
            name,
            to,
            mention: m.mention,
            max_account_age_days: m.max_account_age_days,
            has_image: m.has_image,
            unless,
        });
    }

    fn checked_phrase(
        &self,
        ctx: &mut Ctx<'_>,
        raw: &toml::Spanned<String>,
        what: &str,
    ) -> Option<String> {
        let norm = normalize_phrase(raw.get_ref());
        if norm.is_empty() {
            ctx.error(
                &raw.span(),
                format!("empty {what}: remove it or write a word or phrase"),
            );
            return None;
        }
        Some(norm)
    }

    fn add_keyword(&mut self, norm: String, owner: Owner) {
        self.add_literal(norm.into_bytes(), false, owner);
    }

    fn add_literal(&mut self, text: Vec<u8>, trigger: bool, owner: Owner) {
        let key = (text, trigger);
        let index = match self.keyword_index.get(&key) {
            Some(i) => *i,
            None => {
                let i = self.keyword_texts.len();
                let s = String::from_utf8_lossy(&key.0);
                self.keyword_info.push(KeywordInfo {
                    word_start: !trigger && s.chars().next().is_some_and(is_word_char),
                    word_end: !trigger && s.chars().next_back().is_some_and(is_word_char),
                    owners: Vec::new(),
                });
                self.keyword_texts.push(key.0.clone());
                self.keyword_index.insert(key, i);
                i
            }
        };
        self.keyword_info[index].owners.push(owner);
    }

    fn finish(mut self, dir: &Path) -> Result<Loaded, LoadErrors> {
        if !self.errors.is_empty() {
            return Err(LoadErrors(self.errors));
        }
        let whole = |message: String| {
            LoadErrors(vec![Diagnostic {
                path: dir.to_owned(),
                line: 0,
                col: 0,
                message,
            }])
        };
        if !self.keyword_texts.is_empty() {
            let automaton = AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                // A DFA is about a third faster than the default NFA here
                // (about 1.6 KiB per literal); past DFA_MAX_LITERALS memory wins.
                .kind(
                    (self.keyword_texts.len() <= DFA_MAX_LITERALS).then_some(AhoCorasickKind::DFA),
                )
                // With thousands of literals nearly every byte is a candidate:
                // a prefilter only adds work.
                .prefilter(false)
                .build(&self.keyword_texts)
                .map_err(|e| {
                    whole(format!(
                        "cannot build the keyword automaton: {e}; use fewer keywords"
                    ))
                })?;
            self.out.keywords = Some(Keywords {
                automaton,
                info: self.keyword_info,
            });
        }
        self.out.folded = build_set(self.folded).map_err(&whole)?;
        self.out.exact = build_set(self.exact).map_err(&whole)?;
        Ok(Loaded {
            rules: RuleSet { compiled: self.out },
            warnings: self.warnings,
        })
    }
}

fn parse_ids<T>(
    ctx: &mut Ctx<'_>,
    raw: &[toml::Spanned<String>],
    what: &str,
    parse: impl Fn(String) -> Result<T, crate::post::EmptyId>,
) -> Vec<T> {
    let mut out = Vec::new();
    for v in raw {
        match parse(v.get_ref().trim().to_owned()) {
            Ok(id) => out.push(id),
            Err(_) => ctx.error(
                &v.span(),
                format!("empty {what}: remove it or write the ID"),
            ),
        }
    }
    out
}

fn compile_test(
    ctx: &mut Ctx<'_>,
    file: &CompiledFile,
    known: &[String],
    span: Range<usize>,
    t: &RawTest,
) -> Option<TestCase> {
    let errors_before = ctx.errors.len();
    let group = match &t.group {
        None => file.default_group.clone(),
        Some(g) => match g.get_ref().trim() {
            "feed" => None,
            "*" => {
                ctx.error(
                    &g.span(),
                    "a test posts in one place: write a GroupId or \"feed\", not \"*\"",
                );
                None
            }
            other => match GroupId::parse(other) {
                Ok(id) => Some(id),
                Err(_) => {
                    ctx.error(
                        &g.span(),
                        "empty `group`: write a GroupId or \"feed\", or remove the line",
                    );
                    None
                }
            },
        },
    };
    let id_or =
        |ctx: &mut Ctx<'_>, v: &Option<toml::Spanned<String>>, default: &str, what: &str| {
            let raw = v.as_ref().map_or(default, |s| s.get_ref().trim());
            if raw.is_empty() {
                if let Some(s) = v {
                    ctx.error(
                        &s.span(),
                        format!("empty `{what}`: write an ID or remove the line"),
                    );
                }
                return default.to_owned();
            }
            raw.to_owned()
        };
    let default_customer = file
        .customers
        .as_ref()
        .and_then(|c| c.first())
        .map_or("test-customer", |c| c.as_str());
    let customer = CustomerId::parse(id_or(ctx, &t.customer, default_customer, "customer")).ok()?;
    let user = UserId::parse(id_or(ctx, &t.user, "test-user", "user")).ok()?;
    let badges = parse_ids(ctx, &t.badges, "badge ID in `badges`", BadgeId::parse);
    let datetime =
        |ctx: &mut Ctx<'_>, v: &Option<toml::Spanned<toml::value::Datetime>>, what: &str| {
            let v = v.as_ref()?;
            match DateTime::parse_from_rfc3339(&v.get_ref().to_string()) {
                Ok(t) => Some(t.with_timezone(&Utc)),
                Err(_) => {
                    ctx.error(
                        &v.span(),
                        format!(
                            "`{what}` needs a full date-time with offset, like 2025-01-31T09:00:00Z"
                        ),
                    );
                    None
                }
            }
        };
    let author_joined = datetime(ctx, &t.author_joined, "author_joined");
    let posted_at = datetime(ctx, &t.posted_at, "posted_at");
    if t.author_joined.is_some() && t.author_age_days.is_some() {
        ctx.error(
            &span,
            "set only one of `author_joined` and `author_age_days`",
        );
    }
    let mut expect = Vec::new();
    match &t.expect {
        None => ctx.error(
            &span,
            "this [[test]] has no `expect`: list the reasons this file should give, like expect = [\"self-harm\"], or expect = [] for none",
        ),
        Some(list) => {
            for e in list.get_ref() {
                let value = e.get_ref().trim();
                if known.iter().any(|k| k == value) {
                    expect.push(value.to_owned());
                } else {
                    let options = if known.is_empty() { "none".to_owned() } else { known.join(", ") };
                    ctx.error(
                        &e.span(),
                        format!("this file never gives reason `{value}`: reasons here are {options} (\"sensitive\" needs sensitive = true)"),
                    );
                }
            }
        }
    }
    expect.sort();
    expect.dedup();
    if ctx.errors.len() > errors_before {
        return None;
    }
    let (line, col) = file::line_col(ctx.text, span.start);
    Some(TestCase {
        post_id: PostId::parse(format!("test:{}:{line}", file.file_name)).ok()?,
        line,
        col,
        name: t.name.clone(),
        content: t.content.clone(),
        group,
        customer,
        user,
        badges,
        image: t.image,
        author_joined,
        author_age_days: t.author_age_days,
        posted_at,
        expect,
    })
}

struct PatternError {
    /// Byte offset of the fault inside the pattern, when known.
    offset: Option<usize>,
    message: String,
}

fn compile_pattern(
    pattern: &str,
    case_sensitive: bool,
    rule: u32,
) -> Result<PendingPattern, PatternError> {
    if pattern.is_empty() {
        return Err(PatternError {
            offset: None,
            message: "empty pattern: it would match every post; remove it".into(),
        });
    }
    let hir = regex_syntax::ParserBuilder::new()
        .case_insensitive(!case_sensitive)
        .build()
        .parse(pattern)
        .map_err(|e| {
            let offset = match &e {
                regex_syntax::Error::Parse(e) => Some(e.span().start.offset),
                regex_syntax::Error::Translate(e) => Some(e.span().start.offset),
                _ => None,
            };
            PatternError {
                offset,
                message: format!("invalid regex (Rust regex syntax):\n{e}"),
            }
        })?;
    if hir.properties().minimum_len() == Some(0) {
        return Err(PatternError {
            offset: None,
            message: format!(
                "pattern {pattern:?} can match empty text, so it would fire on every post: make it require at least one character (e.g. `+` instead of `*`)"
            ),
        });
    }
    // A regex only ever run anchored needs no prefilter (which would triple
    // its size).
    let build = |hir: &Hir, anchored_only: bool| {
        meta::Builder::new()
            .configure(
                meta::Config::new()
                    .nfa_size_limit(Some(PATTERN_SIZE_LIMIT))
                    .auto_prefilter(!anchored_only)
                    // Full DFAs (built when some other crate enables them) cost far
                    // more memory than they save time on short confirmations.
                    .dfa(false),
            )
            .build_from_hir(hir)
            .map_err(|e| PatternError {
                offset: None,
                message: match e.size_limit() {
                    Some(limit) => format!(
                        "pattern {pattern:?} is too big: compiled it exceeds {} KiB (the limit per pattern); large counted repetitions like {{1000}} and wide Unicode classes blow up, so simplify it or split it into several patterns",
                        limit / 1024
                    ),
                    None => format!("cannot compile pattern {pattern:?}: {e}"),
                },
            })
    };
    let triggers = if case_sensitive { None } else { triggers(&hir) };
    let unicode_words = hir.properties().look_set().contains_word_unicode();
    let real = build(&hir, triggers.is_some() || unicode_words)?;
    let (relaxed, relaxed_hir) = if triggers.is_none() && unicode_words {
        let stripped = strip_unicode_word_boundaries(&hir);
        (Some(build(&stripped, false)?), stripped)
    } else {
        (None, hir)
    };
    Ok(PendingPattern {
        rule: PatternRule {
            rule,
            real,
            relaxed,
        },
        relaxed_hir,
        triggers,
    })
}

/// Literals of at least 3 bytes that every match of `hir` starts with, when
/// there are few enough. Those with upper-case letters are dropped: the text
/// they are looked for in is lower-cased.
fn triggers(hir: &Hir) -> Option<Vec<Vec<u8>>> {
    let seq = Extractor::new().kind(ExtractKind::Prefix).extract(hir);
    let literals = seq.literals()?;
    if literals.is_empty() || literals.len() > 256 {
        return None;
    }
    let mut out = Vec::new();
    for l in literals {
        let bytes = l.as_bytes();
        if bytes.len() < 3 {
            return None;
        }
        let folded_away = std::str::from_utf8(bytes)
            .is_ok_and(|s| s.chars().any(|c| c.to_lowercase().ne(std::iter::once(c))));
        if !folded_away {
            out.push(bytes.to_vec());
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The same regex without Unicode word-boundary assertions: it matches
/// wherever the original does (and more), and the lazy DFA can run it on
/// non-ASCII text.
fn strip_unicode_word_boundaries(hir: &Hir) -> Hir {
    match hir.kind() {
        HirKind::Look(look) if is_unicode_word_look(*look) => Hir::empty(),
        HirKind::Empty | HirKind::Literal(_) | HirKind::Class(_) | HirKind::Look(_) => hir.clone(),
        HirKind::Repetition(r) => Hir::repetition(Repetition {
            min: r.min,
            max: r.max,
            greedy: r.greedy,
            sub: Box::new(strip_unicode_word_boundaries(&r.sub)),
        }),
        HirKind::Capture(c) => Hir::capture(Capture {
            index: c.index,
            name: c.name.clone(),
            sub: Box::new(strip_unicode_word_boundaries(&c.sub)),
        }),
        HirKind::Concat(subs) => {
            Hir::concat(subs.iter().map(strip_unicode_word_boundaries).collect())
        }
        HirKind::Alternation(subs) => {
            Hir::alternation(subs.iter().map(strip_unicode_word_boundaries).collect())
        }
    }
}

fn is_unicode_word_look(look: Look) -> bool {
    matches!(
        look,
        Look::WordUnicode
            | Look::WordUnicodeNegate
            | Look::WordStartUnicode
            | Look::WordEndUnicode
            | Look::WordStartHalfUnicode
            | Look::WordEndHalfUnicode
    )
}

fn build_set(pending: Vec<PendingPattern>) -> Result<Option<Patterns>, String> {
    if pending.is_empty() {
        return Ok(None);
    }
    let hirs: Vec<&Hir> = pending.iter().map(|p| &p.relaxed_hir).collect();
    let set = meta::Builder::new()
        .configure(
            meta::Config::new()
                .match_kind(regex_automata::MatchKind::All)
                .which_captures(regex_automata::nfa::thompson::WhichCaptures::None)
                .nfa_size_limit(None)
                .hybrid_cache_capacity(8 * 1024 * 1024),
        )
        .build_many_from_hir(&hirs)
        .map_err(|e| {
            format!("cannot combine the patterns into one set: {e}; use fewer or simpler patterns")
        })?;
    Ok(Some(Patterns {
        set,
        members: pending.into_iter().map(|p| p.rule).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relaxed_pattern_drops_only_unicode_word_boundaries() {
        let hir = regex_syntax::parse(r"\bsu[i1!]c(?-u:\b)x\B").unwrap();
        let stripped = strip_unicode_word_boundaries(&hir);
        assert!(!stripped.properties().look_set().contains_word_unicode());
        assert!(stripped.properties().look_set().contains_word_ascii());
    }
}
