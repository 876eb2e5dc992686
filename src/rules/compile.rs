//! From rules files to one [`Compiled`] set: reads the directory, checks
//! every value of every file (collecting every error, each at `file:line:col`),
//! then builds one keyword automaton and one regex set (two when some patterns
//! are case-sensitive) for all files. Patterns are compiled in `patterns`,
//! `[[test]]` tables in `cases`; the result's shape is `model`.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex_syntax::hir::Hir;

use super::cases::compile_test;
use super::file::{self, RawFile, RawMatch, SpannedList};
use super::lists::{self, LIST_EXT, LISTS_DIR, List};
use super::model::{
    Compiled, CompiledFile, Conditions, KeywordInfo, Keywords, MatchRule, Owner, Scope, View,
};
use super::normalize::{Fold, is_word_char, normalize_phrase};
use super::patterns::{
    PatternError, PendingPattern, build_set, can_overlap, compile_pattern, keyword_hir,
};
use super::{Diagnostic, LoadErrors, Loaded, PATTERN_SIZE_LIMIT, RuleSet, RuleSeverity};
use crate::destination::{Destination, Destinations};
use crate::post::{BadgeId, CustomerId, GroupId, UserId};

/// Up to this many keywords, phrases and pattern literals, the keyword
/// automaton is a DFA.
const DFA_MAX_LITERALS: usize = 50_000;

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
    let mut errors = Vec::new();
    names.extend(list_files(dir, &mut errors));
    let mut contents = Vec::with_capacity(names.len());
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

/// The shared lists of `dir`, as `lists/NAME.txt` names relative to it,
/// sorted (none when there is no `lists` folder).
fn list_files(dir: &Path, errors: &mut Vec<Diagnostic>) -> Vec<String> {
    let lists_dir = dir.join(LISTS_DIR);
    if !lists_dir.is_dir() {
        return Vec::new();
    }
    let entries = match std::fs::read_dir(&lists_dir) {
        Ok(entries) => entries,
        Err(e) => {
            errors.push(Diagnostic {
                path: lists_dir,
                line: 0,
                col: 0,
                message: format!("cannot read the lists folder: {e}"),
            });
            return Vec::new();
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| std::fs::metadata(e.path()).is_ok_and(|m| m.is_file()))
        .filter_map(|e| e.file_name().to_str().map(|n| format!("{LISTS_DIR}/{n}")))
        .filter(|n| lists::list_name(n).is_some())
        .collect();
    names.sort();
    names
}

/// Compiles `(name, contents)` pairs as the files of `dir`: `*.toml` rules
/// files, and shared lists named `lists/NAME.txt`.
pub fn from_sources<'a>(
    dir: &Path,
    sources: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    destinations: &Destinations,
) -> Result<Loaded, LoadErrors> {
    super::normalize::warm_up();
    let mut b = Builder::new(destinations);
    let (list_sources, files): (Vec<_>, Vec<_>) = sources
        .into_iter()
        .partition(|(name, _)| lists::list_name(name).is_some());
    for (name, bytes) in list_sources {
        if let Some(name) = lists::list_name(name) {
            b.add_list(dir, name, bytes);
        }
    }
    for (name, bytes) in files {
        b.add_file(dir, name, bytes);
    }
    b.finish(dir)
}
/// The literals and patterns that run over one normalised view of the text.
#[derive(Default)]
struct PendingView {
    /// By text and whether it is a pattern trigger (which needs no word boundary).
    literal_index: HashMap<(Vec<u8>, bool), usize>,
    literals: Vec<Vec<u8>>,
    info: Vec<KeywordInfo>,
    patterns: Vec<PendingPattern>,
}

impl PendingView {
    fn add_literal(&mut self, text: Vec<u8>, trigger: bool, owner: Owner) {
        let key = (text, trigger);
        let index = match self.literal_index.get(&key) {
            Some(i) => *i,
            None => {
                let i = self.literals.len();
                let s = String::from_utf8_lossy(&key.0);
                self.info.push(KeywordInfo {
                    word_start: !trigger && s.chars().next().is_some_and(is_word_char),
                    word_end: !trigger && s.chars().next_back().is_some_and(is_word_char),
                    owners: Vec::new(),
                });
                self.literals.push(key.0.clone());
                self.literal_index.insert(key, i);
                i
            }
        };
        self.info[index].owners.push(owner);
    }

    fn build(self) -> Result<View, String> {
        let keywords = if self.literals.is_empty() {
            None
        } else {
            let automaton = AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                // A DFA is about a third faster than the default NFA here
                // (about 1.6 KiB per literal); past DFA_MAX_LITERALS memory wins.
                .kind((self.literals.len() <= DFA_MAX_LITERALS).then_some(AhoCorasickKind::DFA))
                // With thousands of literals nearly every byte is a candidate:
                // a prefilter only adds work.
                .prefilter(false)
                .build(&self.literals)
                .map_err(|e| {
                    format!("cannot build the keyword automaton: {e}; use fewer keywords")
                })?;
            Some(Keywords {
                automaton,
                info: self.info,
            })
        };
        Ok(View {
            keywords,
            patterns: build_set(self.patterns)?,
        })
    }
}

/// Which view a keyword or pattern runs over: plain ASCII ones over the text
/// without marks and look-alikes, the others over the case-folded text.
fn view_of(text: &str) -> Fold {
    if text.is_ascii() {
        Fold::Marks
    } else {
        Fold::Case
    }
}

struct Builder<'d> {
    destinations: &'d Destinations,
    out: Compiled,
    /// Over [`Fold::Marks`] text.
    ascii: PendingView,
    /// Over [`Fold::Case`] text.
    unicode: PendingView,
    exact: Vec<PendingPattern>,
    /// The shared lists by name, each with its index in `out.lists`.
    lists: HashMap<String, (u32, Rc<List>)>,
    /// List lines already reported as unusable (list index, line).
    reported: HashSet<(u32, usize)>,
    /// The lists some match uses.
    used: HashSet<u32>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

/// Reports about one file.
pub(super) struct Ctx<'t> {
    pub path: PathBuf,
    pub text: &'t str,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
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
    pub fn error(&mut self, span: &Range<usize>, message: impl Into<String>) {
        let d = self.diag(span.start, message.into());
        self.errors.push(d);
    }
    pub fn warn(&mut self, span: &Range<usize>, message: impl Into<String>) {
        let d = self.diag(span.start, message.into());
        self.warnings.push(d);
    }
}

impl<'d> Builder<'d> {
    fn new(destinations: &'d Destinations) -> Self {
        Self {
            destinations,
            out: Compiled::default(),
            ascii: PendingView::default(),
            unicode: PendingView::default(),
            exact: Vec::new(),
            lists: HashMap::new(),
            reported: HashSet::new(),
            used: HashSet::new(),
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn add_list(&mut self, dir: &Path, name: &str, bytes: &[u8]) {
        let (list, errors) = lists::parse(dir, name, bytes);
        self.errors.extend(errors);
        let index = self.out.lists.len() as u32;
        self.out.lists.push(Arc::from(name));
        self.lists.insert(name.to_owned(), (index, Rc::new(list)));
    }

    /// The lists named by one of a match's `lists`, `domain_lists` or
    /// `unless_lists`; an error at each name with no file.
    fn named_lists(
        &mut self,
        ctx: &mut Ctx<'_>,
        match_name: &str,
        key: &str,
        names: &[toml::Spanned<String>],
    ) -> Vec<(u32, Rc<List>, Range<usize>)> {
        let mut out = Vec::new();
        for n in names {
            match self.lists.get(n.get_ref().trim()) {
                Some((index, list)) => {
                    self.used.insert(*index);
                    out.push((*index, list.clone(), n.span()));
                }
                None => {
                    let dir = ctx.path.parent().unwrap_or(Path::new(""));
                    let looked = dir
                        .join(LISTS_DIR)
                        .join(format!("{}{LIST_EXT}", n.get_ref().trim()));
                    let mut known: Vec<&str> = self.lists.keys().map(String::as_str).collect();
                    known.sort_unstable();
                    let known = if known.is_empty() {
                        format!(
                            "there are no lists yet: create {} with one phrase a line",
                            looked.display()
                        )
                    } else {
                        format!("the lists are: {}", known.join(", "))
                    };
                    ctx.error(
                        &n.span(),
                        format!(
                            "match `{match_name}`: no list {:?} in `{key}`: {} does not exist; {known}",
                            n.get_ref(),
                            looked.display()
                        ),
                    );
                }
            }
        }
        out
    }

    /// Reports an unusable line of a list once, however many matches use it.
    fn list_error(&mut self, index: u32, list: &List, entry: &lists::Entry, message: String) {
        if self.reported.insert((index, entry.line)) {
            self.errors.push(list.diag(entry, message));
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
        let (raw, errors) = file::parse(text);
        for (span, message) in errors {
            ctx.error(&span, message);
        }
        if let Some(raw) = raw {
            self.add_raw(&mut ctx, file_name, raw);
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
        let file_index = self.out.files.len();
        let name = file_display_name(ctx, file_name, &raw);
        let (scope, default_group) = file_scope(ctx, &raw);
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
        let to = self.file_to(ctx, &raw);

        let first_match = self.out.matches.len();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let (shadow, disabled) = (parse_mode(ctx, &raw.mode), raw.enabled == Some(false));
        let defaults = FileDefaults {
            index: file_index,
            to: &to,
            shadow,
            disabled,
        };
        for m in &raw.matches {
            self.add_match(ctx, &defaults, m.span(), m.get_ref(), &mut seen);
        }
        let matches = first_match..self.out.matches.len();
        if !raw.sensitive && raw.matches.is_empty() {
            ctx.warn(
                &WHOLE_FILE,
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
            shadow,
            disabled,
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

    /// The file's `to`, resolved; an error when some part of the file needs it
    /// and it is missing.
    fn file_to(&self, ctx: &mut Ctx<'_>, raw: &RawFile) -> Vec<Arc<Destination>> {
        let to = match &raw.to {
            Some(list) => self.resolve_list(ctx, list, "`to`"),
            None => Vec::new(),
        };
        let needs_file_to = raw.sensitive || raw.matches.iter().any(|m| m.get_ref().to.is_none());
        if raw.to.is_none() && needs_file_to {
            ctx.error(
                &WHOLE_FILE,
                "no `to`: add to = [\"<destination>\"] at the top of the file (names from modbridge.toml, or \"slack:C0123ABCD\" / \"discord:112233445566778899\")",
            );
        }
        to
    }

    fn add_match(
        &mut self,
        ctx: &mut Ctx<'_>,
        file: &FileDefaults<'_>,
        span: Range<usize>,
        m: &RawMatch,
        seen: &mut HashMap<String, usize>,
    ) {
        let file_index = file.index;
        let file_to = file.to;
        let rule = self.out.matches.len() as u32;
        let name = match_name(ctx, m, &span, rule, seen);
        let to = match &m.to {
            Some(list) => self.resolve_list(ctx, list, "`to` of this match"),
            None => file_to.to_vec(),
        };
        let keyword_lists = self.named_lists(ctx, &name, "lists", &m.lists);
        let domain_lists = self.named_lists(ctx, &name, "domain_lists", &m.domain_lists);
        let unless_lists = self.named_lists(ctx, &name, "unless_lists", &m.unless_lists);
        let listed = |lists: &[(u32, Rc<List>, Range<usize>)]| {
            lists.iter().map(|(_, l, _)| l.entries.len()).sum::<usize>()
        };
        // Every keyword, pattern and domain, inline or listed.
        let terms = m.keywords.len()
            + m.patterns.len()
            + m.domains.len()
            + listed(&keyword_lists)
            + listed(&domain_lists);
        if terms == 0 {
            ctx.warn(
                &span,
                format!("match `{name}` can never fire: it has no `keywords`, `patterns` or `domains` (inline or in lists)"),
            );
        }
        // What a hit of this match can be, to tell `unless` phrases that
        // can never overlap one.
        let mut hit_shapes: Vec<Hir> = Vec::new();
        let checks_unless = !m.unless.is_empty() || !unless_lists.is_empty();
        for k in &m.keywords {
            if let Some(norm) = self.checked_phrase(ctx, k, "keyword") {
                if checks_unless {
                    hit_shapes.push(keyword_hir(&norm));
                }
                self.add_keyword(norm, Owner::Match { rule, list: None });
            }
        }
        for (index, list, _) in &keyword_lists {
            for entry in &list.entries {
                // Lines that normalise to nothing are refused when the list is read.
                let norm = normalize_phrase(&entry.text);
                if checks_unless {
                    hit_shapes.push(keyword_hir(&norm));
                }
                let list = Some(*index);
                self.add_keyword(norm, Owner::Match { rule, list });
            }
        }
        let mut unless = Vec::new();
        let mut unless_from = Vec::new();
        // (where to warn, the phrase normalised, the list line it came from)
        let mut unless_norm = Vec::new();
        for (i, u) in m.unless.iter().enumerate() {
            if let Some(norm) = self.checked_phrase(ctx, u, "`unless` phrase") {
                unless_norm.push((u.span(), norm.clone(), None));
                self.add_keyword(
                    norm,
                    Owner::Unless {
                        rule,
                        phrase: i as u32,
                    },
                );
            }
            unless.push(u.get_ref().clone());
            unless_from.push(None);
        }
        for (index, list, reference) in &unless_lists {
            for entry in &list.entries {
                let norm = normalize_phrase(&entry.text);
                let at = format!("{}:{}", list.path.display(), entry.line);
                unless_norm.push((reference.clone(), norm.clone(), Some(at)));
                let phrase = unless.len() as u32;
                self.add_keyword(norm, Owner::Unless { rule, phrase });
                unless.push(entry.text.clone());
                unless_from.push(Some(*index));
            }
        }
        for p in &m.patterns {
            let at_fault = |offset: Option<usize>| match (
                offset,
                file::literal_contents_start(ctx.text, &p.span()),
            ) {
                (Some(o), Some(start)) => start + o,
                _ => p.span().start,
            };
            let fault = self.add_pattern(
                p.get_ref(),
                m.case_sensitive,
                (rule, None),
                checks_unless,
                &mut hit_shapes,
            );
            if let Err(PatternError { offset, message }) = fault {
                let at = at_fault(offset);
                ctx.error(&(at..at), format!("match `{name}`: {message}"));
            }
        }
        for d in &m.domains {
            match domain_pattern(d.get_ref()) {
                Ok(regex) => {
                    if let Err(e) = self.add_pattern(
                        &regex,
                        false,
                        (rule, None),
                        checks_unless,
                        &mut hit_shapes,
                    ) {
                        ctx.error(
                            &d.span(),
                            format!("match `{name}`: domain {:?}: {}", d.get_ref(), e.message),
                        );
                    }
                }
                Err(message) => ctx.error(&d.span(), format!("match `{name}`: {message}")),
            }
        }
        for (index, list, _) in &domain_lists {
            for entry in &list.entries {
                let added = domain_pattern(&entry.text).and_then(|regex| {
                    self.add_pattern(
                        &regex,
                        false,
                        (rule, Some(*index)),
                        checks_unless,
                        &mut hit_shapes,
                    )
                    .map_err(|e| format!("domain {:?}: {}", entry.text, e.message))
                });
                if let Err(message) = added {
                    self.list_error(
                        *index,
                        list,
                        entry,
                        format!("{message} (used by `domain_lists` of match `{name}`)"),
                    );
                }
            }
        }
        let complete = hit_shapes.len() == terms;
        if checks_unless && complete && !hit_shapes.is_empty() {
            warn_unless_without_overlap(ctx, &name, &hit_shapes, &unless_norm);
        }
        let (severity, note) = severity_and_note(ctx, &name, m);
        let conditions = match_conditions(ctx, &name, m);
        self.out.matches.push(MatchRule {
            file: file_index,
            to,
            mention: m.mention.unwrap_or(severity == RuleSeverity::Urgent),
            conditions,
            unless,
            unless_lists: unless_from,
            note,
            severity,
            shadow: file.shadow || parse_mode(ctx, &m.mode),
            disabled: file.disabled || m.enabled == Some(false),
            name,
        });
    }

    /// Compiles one pattern of match `rule` into the right view; with
    /// `shapes`, remembers what its hits can be.
    fn add_pattern(
        &mut self,
        source: &str,
        case_sensitive: bool,
        (rule, list): (u32, Option<u32>),
        shapes: bool,
        hit_shapes: &mut Vec<Hir>,
    ) -> Result<(), PatternError> {
        let view = view_of(source);
        let mut pending = compile_pattern(source, case_sensitive, rule)?;
        pending.rule.list = list;
        if shapes {
            hit_shapes.push(pending.relaxed_hir.clone());
        }
        match pending {
            PendingPattern {
                rule,
                triggers: Some(triggers),
                ..
            } => {
                let index = self.out.triggered.len() as u32;
                self.out.triggered.push(rule);
                for t in triggers {
                    self.view(view).add_literal(t, true, Owner::Pattern(index));
                }
            }
            pending if case_sensitive => self.exact.push(pending),
            pending => self.view(view).patterns.push(pending),
        }
        Ok(())
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

    fn view(&mut self, fold: Fold) -> &mut PendingView {
        match fold {
            Fold::Marks => &mut self.ascii,
            _ => &mut self.unicode,
        }
    }

    fn add_keyword(&mut self, norm: String, owner: Owner) {
        let view = view_of(&norm);
        self.view(view).add_literal(norm.into_bytes(), false, owner);
    }

    fn finish(mut self, dir: &Path) -> Result<Loaded, LoadErrors> {
        if !self.errors.is_empty() {
            return Err(LoadErrors(self.errors));
        }
        let mut unused: Vec<(&String, &Rc<List>)> = self
            .lists
            .iter()
            .filter(|(_, (index, _))| !self.used.contains(index))
            .map(|(name, (_, list))| (name, list))
            .collect();
        unused.sort_by_key(|(name, _)| *name);
        for (name, list) in unused {
            self.warnings.push(Diagnostic {
                path: list.path.clone(),
                line: 0,
                col: 0,
                message: format!(
                    "no match uses this list: add lists = [\"{name}\"] (or domain_lists, unless_lists) to a [[match]], or delete the file"
                ),
            });
        }
        let whole = |message: String| {
            LoadErrors(vec![Diagnostic {
                path: dir.to_owned(),
                line: 0,
                col: 0,
                message,
            }])
        };
        self.out.ascii = self.ascii.build().map_err(&whole)?;
        self.out.unicode = self.unicode.build().map_err(&whole)?;
        self.out.exact = build_set(self.exact).map_err(&whole)?;
        Ok(Loaded {
            rules: RuleSet { compiled: self.out },
            warnings: self.warnings,
        })
    }
}

/// The regex for a `domains` entry: the domain and its subdomains, with or
/// without a scheme, and written to dodge link filters (`example[.]com`,
/// `example . com`, `example(dot)com`).
fn domain_pattern(domain: &str) -> Result<String, String> {
    let domain = domain.trim().trim_start_matches("*.").trim_end_matches('.');
    let labels: Vec<&str> = domain.split('.').collect();
    let valid = labels.len() >= 2
        && labels
            .iter()
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if !valid {
        return Err(format!(
            "{domain:?} is not a domain: write it like \"bit.ly\" or \"example.com\" (no scheme, no path; subdomains are included)"
        ));
    }
    let dot =
        r"\s*(?:[.。]|\[\s*(?:\.|dot)\s*\]|\(\s*(?:\.|dot)\s*\)|\{\s*(?:\.|dot)\s*\}|\s+dot\s+)\s*";
    let body = labels
        .iter()
        .map(|l| regex_syntax::escape(l))
        .collect::<Vec<_>>()
        .join(dot);
    Ok(format!(r"\b{body}\b"))
}

/// The match's `name`, checked (present, not empty, not `sensitive`, unique
/// in the file: `seen` maps names to their line).
fn match_name(
    ctx: &mut Ctx<'_>,
    m: &RawMatch,
    span: &Range<usize>,
    rule: u32,
    seen: &mut HashMap<String, usize>,
) -> String {
    match &m.name {
        None => {
            ctx.error(span, "this [[match]] has no `name`: add name = \"...\" (shown on cards, listed in [[test]] expect)");
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
    }
}

/// The match's `severity` and `note`, checked.
fn severity_and_note(
    ctx: &mut Ctx<'_>,
    name: &str,
    m: &RawMatch,
) -> (RuleSeverity, Option<String>) {
    let severity = match &m.severity {
            None => RuleSeverity::default(),
            Some(s) => RuleSeverity::parse(s.get_ref().trim()).unwrap_or_else(|| {
                ctx.error(
                    &s.span(),
                    format!("match `{name}`: unknown severity {:?}: write \"low\", \"normal\", \"high\" or \"urgent\"", s.get_ref()),
                );
                RuleSeverity::default()
            }),
        };
    let note = m.note.as_ref().and_then(|n| {
            let text = n.get_ref().trim();
            if text.is_empty() {
                ctx.error(&n.span(), format!("match `{name}`: `note` is empty: write what moderators should check, or remove the line"));
                return None;
            }
            Some(text.to_owned())
        });
    (severity, note)
}

/// Warns about each `unless` phrase that can never overlap a hit of the
/// match (a listed phrase at the reference to its list, naming its line).
fn warn_unless_without_overlap(
    ctx: &mut Ctx<'_>,
    name: &str,
    hit_shapes: &[Hir],
    unless: &[(Range<usize>, String, Option<String>)],
) {
    for (span, phrase, from) in unless {
        if !can_overlap(hit_shapes, phrase) {
            let from = from
                .as_ref()
                .map(|at| format!(" (from {at})"))
                .unwrap_or_default();
            ctx.warn(
                span,
                format!(
                    "`unless` phrase {phrase:?}{from} can never overlap a hit of match `{name}`, so it cancels nothing: a phrase only cancels the hits it covers or overlaps (\"suicide hotline\" covers \"suicide\"); write it around a keyword or remove it"
                ),
            );
        }
    }
}

/// What a file gives each of its matches.
struct FileDefaults<'a> {
    index: usize,
    to: &'a [Arc<Destination>],
    shadow: bool,
    disabled: bool,
}

/// `mode`: true for `"shadow"`, false for `"live"` or absent.
fn parse_mode(ctx: &mut Ctx<'_>, mode: &Option<toml::Spanned<String>>) -> bool {
    match mode.as_ref().map(|m| (m.get_ref().trim(), m.span())) {
        None | Some(("live", _)) => false,
        Some(("shadow", _)) => true,
        Some((other, span)) => {
            ctx.error(
                &span,
                format!("unknown mode {other:?}: write \"live\" (cards) or \"shadow\" (counted and explained, no card)"),
            );
            false
        }
    }
}

/// The author and post conditions of a match, checked.
fn match_conditions(ctx: &mut Ctx<'_>, name: &str, m: &RawMatch) -> Conditions {
    if let (Some(min), Some(max)) = (m.min_account_age_days, m.max_account_age_days)
        && min > max
    {
        ctx.error(
                &(0..0),
                format!("match `{name}`: min_account_age_days ({min}) is above max_account_age_days ({max}), so it can never fire"),
            );
    }
    if let (Some(min), Some(max)) = (m.min_length, m.max_length)
        && min > max
    {
        ctx.error(
                &(0..0),
                format!("match `{name}`: min_length ({min}) is above max_length ({max}), so it can never fire"),
            );
    }
    Conditions {
        max_account_age_days: m.max_account_age_days,
        min_account_age_days: m.min_account_age_days,
        has_image: m.has_image,
        has_link: m.has_link,
        min_length: m.min_length,
        max_length: m.max_length,
        badges_any: parse_ids(
            ctx,
            &m.badges_any,
            "badge ID in `badges_any`",
            BadgeId::parse,
        ),
        badges_none: parse_ids(
            ctx,
            &m.badges_none,
            "badge ID in `badges_none`",
            BadgeId::parse,
        ),
        usernames: m
            .usernames
            .iter()
            .filter_map(|u| {
                regex::RegexBuilder::new(u.get_ref())
                    .case_insensitive(true)
                    .size_limit(PATTERN_SIZE_LIMIT)
                    .build()
                    .map_err(|e| {
                        ctx.error(
                            &u.span(),
                            format!("match `{name}`: invalid regex in `usernames` (Rust regex syntax):\n{e}"),
                        )
                    })
                    .ok()
            })
            .collect(),
    }
}

/// Diagnostics about the file as a whole point at its start.
const WHOLE_FILE: Range<usize> = 0..0;

/// The file's `name`, or its stem.
fn file_display_name(ctx: &mut Ctx<'_>, file_name: &str, raw: &RawFile) -> String {
    let stem = file_name
        .strip_suffix(".toml")
        .unwrap_or(file_name)
        .to_owned();
    match &raw.name {
        Some(n) if n.get_ref().trim().is_empty() => {
            ctx.error(&n.span(), "`name` is empty: write the name shown on cards, or remove the line to use the file name");
            stem
        }
        Some(n) => n.get_ref().trim().to_owned(),
        None => stem,
    }
}

/// Where the file applies, and the group a `[[test]]` without `group` posts in.
fn file_scope(ctx: &mut Ctx<'_>, raw: &RawFile) -> (Scope, Option<GroupId>) {
    let mut scope = Scope::Listed {
        feed: false,
        groups: Vec::new(),
    };
    let mut default_group = None;
    match &raw.groups {
            None => ctx.error(
                &WHOLE_FILE,
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
    (scope, default_group)
}

pub(super) fn parse_ids<T>(
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
