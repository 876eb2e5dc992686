//! Evaluating a post against a compiled rule set: which files apply, what the
//! keyword automaton and the pattern sets find, which matches fire, and the
//! resulting [`Verdict`]. Pure: no IO, no async; the monotonic clock is read
//! only for the time budget. `explain` and
//! `runner` build on the scan done here.
//!
//! One pass over the normalised text with the keyword automaton, one with the
//! pattern set; then only the patterns the set reported are confirmed. Work is
//! linear in the text, which is capped at [`MAX_TEXT_BYTES`].

use std::ops::Range;
use std::sync::Arc;

use chrono::Duration;
use std::cell::Cell;
use std::time::{Duration as StdDuration, Instant};

use regex_automata::{Anchored, Input, PatternSet, meta};

use super::model::{Compiled, CompiledFile, MatchRule, Owner, PatternRule, Patterns};
use super::normalize::{Fold, Normalized, is_word_char, normalize};
use super::{
    CONFIRM_WINDOW, Highlight, MAX_HIGHLIGHTS, MAX_TEXT_BYTES, Reason, ReasonKind, Routing,
    RuleSeverity, Verdict,
};
use crate::destination::Destination;
use crate::post::{BadgeId, Post};

/// Why a file does not apply to a post.
pub(super) enum NotApplied {
    Group,
    Customer,
    ExemptBadge(BadgeId),
    ExemptUser,
}

fn applies(file: &CompiledFile, post: &Post) -> Result<(), NotApplied> {
    if !file.scope.covers(post.group_id.as_ref()) {
        return Err(NotApplied::Group);
    }
    if let Some(customers) = &file.customers
        && !customers.contains(&post.customer_id)
    {
        return Err(NotApplied::Customer);
    }
    if let Some(b) = file.exempt_badges.iter().find(|b| post.author.has_badge(b)) {
        return Err(NotApplied::ExemptBadge(b.clone()));
    }
    if file.exempt_users.contains(&post.author.id) {
        return Err(NotApplied::ExemptUser);
    }
    Ok(())
}

pub(super) fn describe_not_applied(why: &NotApplied, file: &CompiledFile, post: &Post) -> String {
    match why {
        NotApplied::Group => {
            let place = post
                .group_id
                .as_ref()
                .map_or("the main feed".to_owned(), |g| format!("group {g}"));
            format!(
                "wrong group: the post is in {place}; this file covers {}",
                file.scope.describe()
            )
        }
        NotApplied::Customer => {
            let list = file
                .customers
                .iter()
                .flatten()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "wrong customer: the post is from {}; this file covers {list}",
                post.customer_id
            )
        }
        NotApplied::ExemptBadge(b) => format!("author exempt: holds badge {b}"),
        NotApplied::ExemptUser => {
            format!("author exempt: user {} is in exempt_users", post.author.id)
        }
    }
}

/// Why a match that found its words does not fire anyway.
pub(super) enum Narrowed {
    TooOld { days: i64, limit: u32 },
    TooNew { days: i64, limit: u32 },
    JoinUnknown,
    NeedsImage,
    NeedsNoImage,
    NeedsLink,
    NeedsNoLink,
    TooShort { chars: usize, limit: u32 },
    TooLong { chars: usize, limit: u32 },
    MissingBadge,
    HasBadge(BadgeId),
    NameNotMatched,
}

/// Whether `text` holds a link: a URL scheme or a `www.` host.
fn has_link(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("http://") || lower.contains("https://") || lower.contains("www.")
}

fn narrow(rule: &MatchRule, post: &Post) -> Result<(), Narrowed> {
    let c = &rule.conditions;
    if c.max_account_age_days.is_some() || c.min_account_age_days.is_some() {
        let joined = post.author.joined_at.ok_or(Narrowed::JoinUnknown)?;
        let age = post.created_at - joined;
        if let Some(limit) = c.max_account_age_days
            && age > Duration::days(i64::from(limit))
        {
            return Err(Narrowed::TooOld {
                days: age.num_days(),
                limit,
            });
        }
        if let Some(limit) = c.min_account_age_days
            && age < Duration::days(i64::from(limit))
        {
            return Err(Narrowed::TooNew {
                days: age.num_days(),
                limit,
            });
        }
    }
    match (c.has_image, post.image_url.is_some()) {
        (Some(true), false) => return Err(Narrowed::NeedsImage),
        (Some(false), true) => return Err(Narrowed::NeedsNoImage),
        _ => {}
    }
    let content = post.content.as_deref().unwrap_or_default();
    if let Some(wanted) = c.has_link {
        match (wanted, has_link(content)) {
            (true, false) => return Err(Narrowed::NeedsLink),
            (false, true) => return Err(Narrowed::NeedsNoLink),
            _ => {}
        }
    }
    if c.min_length.is_some() || c.max_length.is_some() {
        let chars = content.chars().count();
        if let Some(limit) = c.min_length.filter(|l| chars < *l as usize) {
            return Err(Narrowed::TooShort { chars, limit });
        }
        if let Some(limit) = c.max_length.filter(|l| chars > *l as usize) {
            return Err(Narrowed::TooLong { chars, limit });
        }
    }
    if !c.badges_any.is_empty() && !c.badges_any.iter().any(|b| post.author.has_badge(b)) {
        return Err(Narrowed::MissingBadge);
    }
    if let Some(b) = c.badges_none.iter().find(|b| post.author.has_badge(b)) {
        return Err(Narrowed::HasBadge(b.clone()));
    }
    if !c.usernames.is_empty() {
        let names = [&post.author.display_name, &post.author.username];
        let matched = names
            .iter()
            .filter_map(|n| n.as_deref())
            .any(|n| c.usernames.iter().any(|r| r.is_match(n)));
        if !matched {
            return Err(Narrowed::NameNotMatched);
        }
    }
    Ok(())
}

/// Everything found in one post.
pub(super) struct Scan {
    pub applies: Vec<Result<(), NotApplied>>,
    /// Per rule, sorted: original ranges that matched and no `unless` phrase
    /// of the rule covers or overlaps.
    pub hits: Vec<(u32, Vec<Highlight>)>,
    /// Sorted by rule and position: (rule, phrase, where) for `unless`
    /// phrases found.
    pub unless: Vec<(u32, u32, Highlight)>,
    /// (rule, the hit, index into `unless` of what cancelled it), sorted.
    pub cancelled: Vec<(u32, Highlight, usize)>,
    pub truncated: bool,
    /// The time budget ran out before every pattern was confirmed.
    pub not_fully_checked: bool,
}

impl Scan {
    /// The hits of `rule` an `unless` phrase cancelled, each with the phrase
    /// (its index in the rule's `unless`) and where it was found.
    pub fn cancelled_hits(&self, rule: u32) -> impl Iterator<Item = (&Highlight, u32, &Highlight)> {
        let first = self.cancelled.partition_point(|c| c.0 < rule);
        self.cancelled[first..]
            .iter()
            .take_while(move |c| c.0 == rule)
            .filter_map(|(_, hit, u)| {
                self.unless
                    .get(*u)
                    .map(|(_, phrase, at)| (hit, *phrase, at))
            })
    }
}

/// Sorts hits into those that count and those an `unless` phrase of their
/// rule cancels (it covers or overlaps them).
struct Collector<'a> {
    /// Sorted by rule and start.
    unless: &'a [(u32, u32, Highlight)],
    /// The longest `unless` hit, in original bytes.
    longest_unless: usize,
    /// (rule, where, the shared list it came from).
    hits: Vec<(u32, Range<usize>, Option<u32>)>,
    cancelled: Vec<(u32, Range<usize>, Option<u32>, usize)>,
}

impl<'a> Collector<'a> {
    fn new(unless: &'a [(u32, u32, Highlight)]) -> Self {
        Self {
            unless,
            longest_unless: unless.iter().map(|u| u.2.range.len()).max().unwrap_or(0),
            hits: Vec::new(),
            cancelled: Vec::new(),
        }
    }

    /// Index in `unless` of a phrase of `rule` that overlaps `range`.
    fn canceller(&self, rule: u32, range: &Range<usize>) -> Option<usize> {
        let mut i = self
            .unless
            .partition_point(|u| (u.0, u.2.range.start) < (rule, range.end));
        while i > 0 {
            i -= 1;
            let (r, _, at) = &self.unless[i];
            if *r != rule || at.range.start + self.longest_unless <= range.start {
                break;
            }
            if range.start < at.range.end {
                return Some(i);
            }
        }
        None
    }

    /// Records a hit; true when it counts (no `unless` phrase cancels it).
    fn push(&mut self, rule: u32, list: Option<u32>, range: Range<usize>) -> bool {
        match self.canceller(rule, &range) {
            Some(u) => {
                self.cancelled.push((rule, range, list, u));
                false
            }
            None => {
                self.hits.push((rule, range, list));
                true
            }
        }
    }
}

/// The first `MAX_TEXT_BYTES` of `text`, cut on a character boundary.
fn capped(text: &str) -> (&str, bool) {
    if text.len() <= MAX_TEXT_BYTES {
        return (text, false);
    }
    let mut end = MAX_TEXT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

/// With `detail`, every rule of an applicable file is searched (to explain
/// near misses); without, rules that cannot fire are skipped.
pub(super) fn scan(c: &Compiled, post: &Post, detail: bool) -> Scan {
    let applies: Vec<_> = c.files.iter().map(|f| applies(f, post)).collect();
    let mut out = Scan {
        applies,
        hits: Vec::new(),
        unless: Vec::new(),
        cancelled: Vec::new(),
        truncated: false,
        not_fully_checked: false,
    };
    let Some(content) = post.content.as_deref() else {
        return out;
    };
    // Whether a rule can fire, worked out the first time it is asked (most
    // rules find nothing in most posts, so most conditions are never looked at).
    let known: Vec<Cell<Option<bool>>> = vec![Cell::new(None); c.matches.len()];
    let live = |rule: usize| -> bool {
        let Some(cell) = known.get(rule) else {
            return false;
        };
        if let Some(live) = cell.get() {
            return live;
        }
        let m = &c.matches[rule];
        let live =
            out.applies[m.file].is_ok() && !m.disabled && (detail || narrow(m, post).is_ok());
        cell.set(Some(live));
        live
    };
    if !(0..c.matches.len()).any(live) {
        return out;
    }
    // From here: normalising and the keyword pass (linear, a few ms for the
    // longest post) count against the budget too, so pattern work stops at
    // the budget measured from the start of the evaluation.
    let budget = Budget::new(c.max_eval);
    let (text, truncated) = capped(content);
    out.truncated = truncated;
    let ascii = (!c.ascii.is_empty()).then(|| normalize(text, Fold::Marks));
    // On ASCII text both views are the same.
    let same_views = text.is_ascii() && ascii.is_some();
    let unicode_owned = (!c.unicode.is_empty() && !same_views).then(|| normalize(text, Fold::Case));
    let unicode = unicode_owned
        .as_ref()
        .or(ascii.as_ref().filter(|_| !c.unicode.is_empty()));
    let views = [(&c.ascii, ascii.as_ref()), (&c.unicode, unicode)];
    let mut keyword_hits: Vec<(u32, Range<usize>, Option<u32>)> = Vec::new();
    // Per view, (triggered pattern, start) to confirm once every `unless` is known.
    let mut candidates: [Vec<(u32, usize)>; 2] = [Vec::new(), Vec::new()];
    for ((view, norm), candidates) in views.iter().zip(&mut candidates) {
        let (Some(k), Some(norm)) = (&view.keywords, norm) else {
            continue;
        };
        let t = norm.text.as_str();
        for m in k.automaton.find_overlapping_iter(t) {
            let info = &k.info[m.pattern().as_usize()];
            if (info.word_start && t[..m.start()].chars().next_back().is_some_and(is_word_char))
                || (info.word_end && t[m.end()..].chars().next().is_some_and(is_word_char))
            {
                continue;
            }
            for owner in &info.owners {
                match *owner {
                    Owner::Match { rule, list } if live(rule as usize) => {
                        keyword_hits.push((rule, norm.original_range(m.range()), list))
                    }
                    Owner::Unless { rule, phrase } if live(rule as usize) => {
                        let list = c.matches[rule as usize]
                            .unless_lists
                            .get(phrase as usize)
                            .copied()
                            .flatten();
                        let at = highlight(c, content, norm.original_range(m.range()), list);
                        out.unless.push((rule, phrase, at))
                    }
                    Owner::Pattern(p) if live(c.triggered[p as usize].rule as usize) => {
                        candidates.push((p, m.start()))
                    }
                    _ => {}
                }
            }
        }
    }
    out.unless.sort_by_key(|u| (u.0, u.2.range.start));
    let wanted = |rule: u32| live(rule as usize);
    let mut hits = Collector::new(&out.unless);
    for (rule, range, list) in keyword_hits {
        hits.push(rule, list, range);
    }
    for ((view, norm), candidates) in views.iter().zip(candidates) {
        let Some(norm) = norm else { continue };
        confirm_triggered(c, norm, candidates, &wanted, &budget, &mut hits);
        if let Some(p) = &view.patterns {
            search_patterns(p, norm, &wanted, &budget, &mut hits);
        }
    }
    if let Some(p) = &c.exact {
        search_patterns(
            p,
            &normalize(text, Fold::Exact),
            &wanted,
            &budget,
            &mut hits,
        );
    }
    out.not_fully_checked = budget.spent();
    let Collector {
        hits,
        mut cancelled,
        ..
    } = hits;
    cancelled.sort_by_key(|c| (c.0, c.1.start, c.1.end));
    cancelled.dedup_by_key(|c| (c.0, c.1.clone()));
    out.cancelled = cancelled
        .into_iter()
        .map(|(rule, range, list, u)| (rule, highlight(c, content, range, list), u))
        .collect();
    out.hits = group(c, hits, content);
    out
}

/// The evaluation time budget of one post: once it is spent, no more
/// pattern work starts and the post is marked not fully checked.
pub(super) struct Budget {
    deadline: Option<Instant>,
    spent: Cell<bool>,
}

impl Budget {
    pub fn new(limit: StdDuration) -> Self {
        Self {
            deadline: Instant::now().checked_add(limit),
            spent: Cell::new(false),
        }
    }

    /// True once the deadline has passed (and from then on).
    fn spent(&self) -> bool {
        if self.spent.get() {
            return true;
        }
        let spent = self.deadline.is_some_and(|d| Instant::now() >= d);
        self.spent.set(spent);
        spent
    }
}

/// The end of the window a match starting at `start` must fit in.
fn window_end(text: &str, start: usize, len: usize) -> usize {
    let mut end = start.saturating_add(len).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    end
}

/// The real regex anchored at `start`, within [`CONFIRM_WINDOW`] bytes.
fn confirm_at(real: &meta::Regex, text: &str, start: usize) -> Option<Range<usize>> {
    let end = window_end(text, start, CONFIRM_WINDOW);
    let anchored = Input::new(text).range(start..end).anchored(Anchored::Yes);
    real.search(&anchored)
        .filter(|m| m.end() > m.start())
        .map(|m| m.range())
}

/// Runs each triggered pattern anchored where one of its literals was found.
/// Every match starts with such a literal, so none is missed.
fn confirm_triggered(
    c: &Compiled,
    folded: &Normalized,
    mut candidates: Vec<(u32, usize)>,
    wanted: &dyn Fn(u32) -> bool,
    budget: &Budget,
    hits: &mut Collector<'_>,
) {
    candidates.sort_unstable();
    candidates.dedup();
    let mut found = 0;
    let mut failed = 0;
    let mut end = 0;
    for (i, &(p, start)) in candidates.iter().enumerate() {
        if i == 0 || candidates[i - 1].0 != p {
            found = 0;
            failed = 0;
            end = 0;
        }
        let member = &c.triggered[p as usize];
        // Like find_iter: no match starts inside the previous one.
        if found >= MAX_HIGHLIGHTS || start < end || !wanted(member.rule) {
            continue;
        }
        if budget.spent() {
            return;
        }
        if failed >= ANCHORED_TRIES {
            // Many candidates that come to nothing (`buy` again and again
            // for `\bbuy\b.*\bnow\b`): scan the rest window by window, in
            // linear time, instead of a window per candidate.
            let text = &folded.text;
            confirm_from(member, text, start, found, budget, &mut |r| {
                hits.push(member.rule, member.list, folded.original_range(r))
            });
            end = text.len();
            continue;
        }
        // No literal every match ends with in the window: no match in it.
        let window = folded
            .text
            .get(start..window_end(&folded.text, start, CONFIRM_WINDOW));
        let hopeless = match (&member.suffixes, window) {
            (Some(s), Some(window)) => !s.is_match(window),
            _ => false,
        };
        match (!hopeless)
            .then(|| confirm_at(&member.real, &folded.text, start))
            .flatten()
        {
            Some(m) => {
                if hits.push(member.rule, member.list, folded.original_range(m.clone())) {
                    found += 1;
                }
                end = m.end;
            }
            None => failed += 1,
        }
    }
}

/// Failed anchored tries of one triggered pattern before the rest of the text
/// is scanned window by window instead.
const ANCHORED_TRIES: usize = 32;

fn search_patterns(
    p: &Patterns,
    norm: &Normalized,
    wanted: &dyn Fn(u32) -> bool,
    budget: &Budget,
    hits: &mut Collector<'_>,
) {
    let text = norm.text.as_str();
    let mut which = PatternSet::new(p.set.pattern_len());
    // In chunks (overlapping by a window, so no match that fits one is cut),
    // checking the budget between them.
    let mut at = 0;
    while at < text.len() && !which.is_full() {
        if budget.spent() {
            return;
        }
        let end = window_end(text, at, SET_CHUNK + CONFIRM_WINDOW);
        p.set
            .which_overlapping_matches(&Input::new(text).range(at..end), &mut which);
        at = window_end(text, at, SET_CHUNK);
    }
    for id in which.iter() {
        let member = &p.members[id.as_usize()];
        if !wanted(member.rule) {
            continue;
        }
        confirm(member, text, budget, &mut |r| {
            hits.push(member.rule, member.list, norm.original_range(r))
        });
    }
}

/// Finds up to [`MAX_HIGHLIGHTS`] matches of the real regex, each within
/// [`CONFIRM_WINDOW`] bytes of its start; the same ones `find_iter` would
/// give for matches that fit. The relaxed regex (or the real one) proposes
/// each start, searching one window ahead at a time, and the real one is run
/// anchored there, so work stays linear in the text whatever the pattern.
/// `accept` records each match and says whether it counts (is not cancelled).
fn confirm(
    member: &PatternRule,
    text: &str,
    budget: &Budget,
    accept: &mut dyn FnMut(Range<usize>) -> bool,
) {
    confirm_from(member, text, 0, 0, budget, accept);
}

/// [`confirm`] from byte `at`, with `found` matches already counted.
fn confirm_from(
    member: &PatternRule,
    text: &str,
    mut at: usize,
    mut found: usize,
    budget: &Budget,
    accept: &mut dyn FnMut(Range<usize>) -> bool,
) {
    let finder = member.relaxed.as_ref().unwrap_or(&member.real);
    // Where the next literal every match ends with starts (when the pattern
    // has such literals): text a window or more before it holds no match.
    let mut next_suffix: Option<usize> = None;
    while at < text.len() && found < MAX_HIGHLIGHTS {
        if budget.spent() {
            return;
        }
        if let Some(suffixes) = &member.suffixes {
            let next = match next_suffix {
                Some(p) if p >= at => p,
                _ => match suffixes.find(aho_corasick::Input::new(text).range(at..)) {
                    Some(m) => m.start(),
                    None => return,
                },
            };
            next_suffix = Some(next);
            // A match fits its window (plus a character's bytes).
            let mut skip_to = next.saturating_sub(CONFIRM_WINDOW + 4);
            while !text.is_char_boundary(skip_to) {
                skip_to -= 1;
            }
            if skip_to > at {
                at = skip_to;
                continue;
            }
        }
        // Every match that starts in the first window and fits a window lies
        // inside these two.
        let ahead = window_end(text, at, 2 * CONFIRM_WINDOW);
        let next_window = window_end(text, at, CONFIRM_WINDOW);
        let start = match finder.search(&Input::new(text).range(at..ahead)) {
            Some(c) if c.start() < next_window => c.start(),
            _ => {
                at = next_window;
                continue;
            }
        };
        match confirm_at(&member.real, text, start) {
            Some(m) => {
                at = m.end;
                if accept(m) {
                    found += 1;
                }
            }
            None => at = start + text[start..].chars().next().map_or(1, char::len_utf8),
        }
    }
}

fn highlight(c: &Compiled, content: &str, range: Range<usize>, list: Option<u32>) -> Highlight {
    Highlight {
        text: content.get(range.clone()).unwrap_or_default().to_owned(),
        range,
        list: list.and_then(|l| c.lists.get(l as usize).cloned()),
    }
}

/// Sorts hits by rule and position; drops ranges inside another of the same
/// rule; keeps at most [`MAX_HIGHLIGHTS`] per rule.
fn group(
    c: &Compiled,
    mut hits: Vec<(u32, Range<usize>, Option<u32>)>,
    content: &str,
) -> Vec<(u32, Vec<Highlight>)> {
    hits.sort_by(|a, b| {
        (a.0, a.1.start, std::cmp::Reverse(a.1.end)).cmp(&(
            b.0,
            b.1.start,
            std::cmp::Reverse(b.1.end),
        ))
    });
    let mut out: Vec<(u32, Vec<Highlight>)> = Vec::new();
    for (rule, range, from) in hits {
        match out.last_mut() {
            Some((r, list)) if *r == rule => {
                let inside = list.last().is_some_and(|h| h.range.end >= range.end);
                if !inside && list.len() < MAX_HIGHLIGHTS {
                    list.push(highlight(c, content, range, from));
                }
            }
            _ => out.push((rule, vec![highlight(c, content, range, from)])),
        }
    }
    out
}

/// Why a rule with an applicable file did not fire.
pub(super) enum NotFired<'s> {
    Disabled,
    NoHit,
    Unless(&'s str, &'s Highlight),
    Narrowed(Narrowed),
}

pub(super) fn decide<'s>(
    c: &'s Compiled,
    s: &'s Scan,
    post: &Post,
    rule: u32,
    hit: bool,
) -> Result<(), NotFired<'s>> {
    let m = &c.matches[rule as usize];
    if m.disabled {
        return Err(NotFired::Disabled);
    }
    if !hit {
        return match s.cancelled_hits(rule).next() {
            Some((_, phrase, at)) => {
                let phrase = m.unless.get(phrase as usize).map_or("", String::as_str);
                Err(NotFired::Unless(phrase, at))
            }
            None => Err(NotFired::NoHit),
        };
    }
    narrow(m, post).map_err(NotFired::Narrowed)
}

fn add(verdict: &mut Verdict, to: &[Arc<Destination>], reason: &Reason, mention: bool) {
    for d in to {
        match verdict
            .routings
            .iter_mut()
            .find(|x| x.destination.name() == d.name())
        {
            Some(existing) => {
                existing.reasons.push(reason.clone());
                existing.mention |= mention;
            }
            None => verdict.routings.push(Routing {
                destination: d.clone(),
                reasons: vec![reason.clone()],
                mention,
            }),
        }
    }
}

pub(super) fn verdict_of(c: &Compiled, s: &Scan, post: &Post) -> Verdict {
    let mut verdict = Verdict::default();
    let mut hits = s.hits.iter().peekable();
    for (fi, file) in c.files.iter().enumerate() {
        let reason = |kind, matched, note, severity| Reason {
            rules_name: file.name.clone(),
            rules_file: file.file_name.clone(),
            kind,
            matched,
            note,
            severity,
        };
        if s.applies[fi].is_ok() && file.sensitive && !file.disabled {
            let r = reason(
                ReasonKind::SensitiveGroup,
                Vec::new(),
                None,
                RuleSeverity::default(),
            );
            if file.shadow {
                verdict.shadow.push(r);
            } else {
                add(&mut verdict, &file.to, &r, false);
            }
        }
        while let Some((rule, highlights)) =
            hits.next_if(|(r, _)| c.matches[*r as usize].file == fi)
        {
            if s.applies[fi].is_err() || decide(c, s, post, *rule, true).is_err() {
                continue;
            }
            let m = &c.matches[*rule as usize];
            let note = m.note.as_ref().map(|n| {
                let first = highlights.first().map_or("", |h| h.text.as_str());
                n.replace("{rule}", &m.name).replace("{match}", first)
            });
            let r = reason(
                ReasonKind::Match {
                    name: m.name.clone(),
                },
                highlights.clone(),
                note,
                m.severity,
            );
            if m.shadow {
                verdict.shadow.push(r);
            } else {
                add(&mut verdict, &m.to, &r, m.mention);
            }
        }
    }
    verdict.not_fully_checked = s.not_fully_checked;
    verdict
}

pub fn evaluate(c: &Compiled, post: &Post) -> Verdict {
    verdict_of(c, &scan(c, post, false), post)
}

/// How much text the pattern set reads between two looks at the budget.
const SET_CHUNK: usize = 32 * 1024;

#[cfg(test)]
mod tests {
    use std::path::Path;

    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::destination::{Destinations, DiscordChannel, RawDestination, SlackChannel, Target};
    use crate::post::{CustomerId, GroupId, PostId, UserId};
    use crate::rules::{CONFIRM_WINDOW, RuleSet, RuleSeverity};

    const GROUP: &str = "01HQ2GROUP1234567890XYZAB";

    fn destinations() -> Destinations {
        // Through the loader, as `[destinations.NAME]` tables.
        let d = |name: &str, target: Target| {
            let (slack, discord) = match target {
                Target::Slack(c) => (Some(c.as_str().to_owned()), None),
                Target::Discord(c) => (None, Some(c.get().to_string())),
                Target::DiscordWebhook { .. } => (None, None),
            };
            let raw = RawDestination {
                slack,
                discord,
                ..Default::default()
            };
            Destination::from_raw(name, raw).unwrap()
        };
        Destinations::new([
            d(
                "trust-safety",
                Target::Slack(SlackChannel::parse("C0123ABCD").unwrap()),
            ),
            d(
                "urgent",
                Target::Discord(DiscordChannel::parse("112233445566778899").unwrap()),
            ),
        ])
    }

    fn rules(files: &[(&str, &str)]) -> RuleSet {
        let sources = files.iter().map(|(n, t)| (*n, t.as_bytes()));
        match RuleSet::from_sources(Path::new("rules"), sources, &destinations()) {
            Ok(l) => l.rules,
            Err(e) => panic!("{e}"),
        }
    }

    impl RuleSet {
        fn clone_with_budget(self, budget: std::time::Duration) -> RuleSet {
            self.with_max_eval(budget)
        }
    }

    fn one(body: &str) -> RuleSet {
        rules(&[(
            "t.toml",
            &format!("groups = [\"*\"]\nto = [\"trust-safety\"]\n{body}"),
        )])
    }

    fn post(content: &str) -> Post {
        Post {
            group_id: Some(GroupId::parse(GROUP).unwrap()),
            ..Post::text(
                CustomerId::parse("C1").unwrap(),
                PostId::parse("P1").unwrap(),
                UserId::parse("U1").unwrap(),
                content,
                Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap(),
            )
        }
    }

    /// `destination: reason, reason` per delivery.
    fn summary(v: &Verdict) -> Vec<String> {
        v.routings
            .iter()
            .map(|d| {
                let r: Vec<&str> = d.reasons.iter().map(|r| r.name()).collect();
                format!("{}: {}", d.destination.name(), r.join(", "))
            })
            .collect()
    }

    fn fires(r: &RuleSet, content: &str) -> bool {
        !r.evaluate(&post(content)).is_empty()
    }

    #[test]
    fn keywords_match_whole_words_on_unicode_boundaries() {
        let r = one("[[match]]\nname = \"m\"\nkeywords = [\"ass\", \"Über\", \"kill myself\"]\n");
        assert!(!fires(&r, "this class is great"));
        assert!(!fires(&r, "passé"));
        assert!(fires(&r, "what an ass."));
        assert!(fires(&r, "ÜBER alles"));
        assert!(fires(&r, "ich bin über"));
        assert!(!fires(&r, "überall"));
        assert!(!fires(&r, "xüber"));
        assert!(fires(&r, "I will KILL\n\t  myself"));
        assert!(!fires(&r, "kill myselfish"));
    }

    #[test]
    fn keywords_with_symbols_need_no_boundary_on_the_symbol_side() {
        let r = one("[[match]]\nname = \"m\"\nkeywords = [\"@everyone\", \"$$$\"]\n");
        assert!(fires(&r, "hey@everyone"));
        assert!(fires(&r, "cash$$$now"));
        assert!(!fires(&r, "@everyoneelse"));
    }

    #[test]
    fn zero_width_and_fullwidth_evasions_match() {
        let r = one(
            "[[match]]\nname = \"m\"\nkeywords = [\"suicide\"]\npatterns = ['\\bk[i1]ll\\b']\n",
        );
        assert!(fires(
            &r,
            "s\u{200B}u\u{200C}i\u{200D}c\u{2060}i\u{FEFF}d\u{AD}e"
        ));
        assert!(fires(&r, "ｓｕｉｃｉｄｅ"));
        assert!(fires(&r, "ＫＩ\u{200B}ＬＬ"));
        assert!(!fires(&r, "skill"));
    }

    #[test]
    fn highlights_point_into_the_original_text() {
        let r = one(
            "[[match]]\nname = \"m\"\nkeywords = [\"end it all\"]\npatterns = ['\\bsu[i1!]c[i1!]d[e3]\\b']\n",
        );
        let content = "Não aguento 😢 vou END it \n all, ｓｕｉ\u{200B}ｃｉｄｅ amanhã";
        let v = r.evaluate(&post(content));
        let h = &v.routings[0].reasons[0].matched;
        let texts: Vec<&str> = h.iter().map(|h| h.text.as_str()).collect();
        assert_eq!(texts, ["END it \n all", "ｓｕｉ\u{200B}ｃｉｄｅ"]);
        for h in h {
            assert_eq!(&content[h.range.clone()], h.text);
        }
    }

    #[test]
    fn patterns_fold_case_unless_case_sensitive() {
        let r = one(
            "[[match]]\nname = \"shout\"\npatterns = ['BUY NOW']\ncase_sensitive = true\n[[match]]\nname = \"any\"\npatterns = ['free\\s+money']\n",
        );
        assert_eq!(
            summary(&r.evaluate(&post("BUY NOW"))),
            ["trust-safety: shout"]
        );
        assert!(r.evaluate(&post("buy now")).is_empty());
        assert_eq!(
            summary(&r.evaluate(&post("ＢＵＹ ＮＯＷ"))),
            ["trust-safety: shout"]
        );
        assert_eq!(
            summary(&r.evaluate(&post("FREE   Money"))),
            ["trust-safety: any"]
        );
    }

    #[test]
    fn unicode_word_boundaries_in_patterns_hold_on_any_script() {
        let r = one("[[match]]\nname = \"m\"\npatterns = ['\\bcão\\b']\n");
        assert!(fires(&r, "meu CÃO é bravo"));
        assert!(!fires(&r, "cãozinho"));
        assert!(!fires(&r, "écão"));
        // The relaxed candidate inside a word must not hide a real match after it.
        assert!(fires(&r, "xcão cão"));
        // Without a literal prefix the pattern goes through the regex set.
        let r = one("[[match]]\nname = \"m\"\npatterns = ['\\b\\w+ÇÃO\\b']\n");
        let v = r.evaluate(&post("Uma AVIAÇÃO! e aviaçãozinha"));
        let h = &v.routings[0].reasons[0].matched;
        assert_eq!(
            h.iter().map(|h| h.text.as_str()).collect::<Vec<_>>(),
            ["AVIAÇÃO"]
        );
        assert!(!fires(&r, "aviaçãozinha"));
    }

    #[test]
    fn unless_cancels_only_its_match() {
        let r = one(
            "[[match]]\nname = \"self-harm\"\nkeywords = [\"suicide\"]\nunless = [\"suicide prevention\", \"hotline\"]\n[[match]]\nname = \"other\"\nkeywords = [\"suicide\"]\n",
        );
        assert_eq!(
            summary(&r.evaluate(&post("thinking about suicide"))),
            ["trust-safety: self-harm, other"]
        );
        assert_eq!(
            summary(&r.evaluate(&post("Suicide  Prevention week"))),
            ["trust-safety: other"]
        );
        // Issue 12: an `unless` phrase cancels only the hits it covers or
        // overlaps; "hotline" elsewhere in the post cancels nothing.
        assert_eq!(
            summary(&r.evaluate(&post("suicide? call the HOTLINE"))),
            ["trust-safety: self-harm, other"]
        );
        let v = r.evaluate(&post("suicide prevention week. I think about suicide"));
        assert_eq!(summary(&v), ["trust-safety: self-harm, other"]);
        assert_eq!(v.routings[0].reasons[0].matched.len(), 1);
        assert_eq!(v.routings[0].reasons[0].matched[0].range, 39..46);
        let e = r.explain(&post("Suicide  Prevention week")).to_string();
        assert!(
            e.contains("self-harm: not fired: cancelled by `unless` phrase \"suicide prevention\""),
            "{e}"
        );
        assert!(
            e.contains("\"Suicide\" cancelled by `unless` phrase \"suicide prevention\" (found \"Suicide  Prevention\")"),
            "{e}"
        );
    }

    #[test]
    fn exemptions_and_customers_scope_a_file() {
        let r = one(
            "exempt_badges = [\"MOD\"]\nexempt_users = [\"U9\"]\ncustomers = [\"C1\"]\n[[match]]\nname = \"m\"\nkeywords = [\"spam\"]\n",
        );
        let mut p = post("spam");
        assert!(!r.evaluate(&p).is_empty());
        p.author.badges = vec![BadgeId::parse("MOD").unwrap()];
        assert!(r.evaluate(&p).is_empty());
        assert!(
            r.explain(&p)
                .to_string()
                .contains("author exempt: holds badge MOD")
        );
        p.author.badges.clear();
        p.author.badge_id = Some(BadgeId::parse("MOD").unwrap());
        assert!(r.evaluate(&p).is_empty());
        p.author.badge_id = None;
        p.author.id = UserId::parse("U9").unwrap();
        assert!(r.evaluate(&p).is_empty());
        p.author.id = UserId::parse("U1").unwrap();
        p.customer_id = CustomerId::parse("C2").unwrap();
        assert!(r.evaluate(&p).is_empty());
        assert!(r.explain(&p).to_string().contains("wrong customer"));
    }

    #[test]
    fn feed_star_and_group_ids_scope_a_file() {
        let file = |groups: &str| {
            format!(
                "groups = {groups}\nto = [\"trust-safety\"]\n[[match]]\nname = \"m\"\nkeywords = [\"spam\"]\n"
            )
        };
        let feed = rules(&[("f.toml", &file("[\"feed\"]"))]);
        let group = rules(&[("g.toml", &file(&format!("[\"{GROUP}\"]")))]);
        let star = rules(&[("s.toml", &file("[\"*\"]"))]);
        let mut p = post("spam");
        assert!(feed.evaluate(&p).is_empty());
        assert!(!group.evaluate(&p).is_empty());
        assert!(!star.evaluate(&p).is_empty());
        p.group_id = None;
        assert!(!feed.evaluate(&p).is_empty());
        assert!(group.evaluate(&p).is_empty());
        assert!(!star.evaluate(&p).is_empty());
        assert!(
            group
                .explain(&p)
                .to_string()
                .contains("wrong group: the post is in the main feed")
        );
    }

    #[test]
    fn account_age_and_image_narrow_a_match() {
        let r = one(
            "[[match]]\nname = \"new-links\"\npatterns = ['https?://']\nmax_account_age_days = 7\n[[match]]\nname = \"pic\"\nkeywords = [\"look\"]\nhas_image = true\n[[match]]\nname = \"nopic\"\nkeywords = [\"look\"]\nhas_image = false\n",
        );
        let mut p = post("look at https://x.example");
        assert_eq!(
            summary(&r.evaluate(&p)),
            ["trust-safety: nopic"],
            "join date unknown: no new-links"
        );
        p.author.joined_at = Some(p.created_at - Duration::days(3));
        assert_eq!(summary(&r.evaluate(&p)), ["trust-safety: new-links, nopic"]);
        p.author.joined_at = Some(p.created_at - Duration::days(30));
        p.image_url = Some("https://img".into());
        assert_eq!(summary(&r.evaluate(&p)), ["trust-safety: pic"]);
        let e = r.explain(&p).to_string();
        assert!(e.contains("joined 30 days before the post"), "{e}");
    }

    #[test]
    fn one_delivery_per_destination_with_mention_and_sensitive() {
        let a = format!(
            "name = \"Parents\"\ngroups = [\"{GROUP}\"]\nto = [\"trust-safety\"]\nsensitive = true\n[[match]]\nname = \"self-harm\"\nkeywords = [\"end it all\"]\nto = [\"urgent\", \"trust-safety\"]\nmention = true\n[[match]]\nname = \"quiet\"\nkeywords = [\"end\"]\n"
        );
        let b = "groups = [\"*\"]\nto = [\"trust-safety\"]\n[[match]]\nname = \"general\"\nkeywords = [\"end it all\"]\n";
        let r = rules(&[("a.toml", &a), ("b.toml", b)]);
        let v = r.evaluate(&post("I want to end it all"));
        assert_eq!(
            summary(&v),
            [
                "trust-safety: sensitive, self-harm, quiet, general",
                "urgent: self-harm"
            ]
        );
        assert!(v.routings.iter().all(|d| d.mention));
        let quiet = r.evaluate(&post("the end"));
        assert_eq!(summary(&quiet), ["trust-safety: sensitive, quiet"]);
        assert!(!quiet.routings[0].mention);
        assert_eq!(v.routings[0].reasons[0].rules_name, "Parents");
        assert_eq!(v.routings[0].reasons[3].rules_name, "b");
        assert_eq!(v.routings[0].reasons[3].rules_file, "b.toml");
    }

    #[test]
    fn media_only_posts_still_reach_sensitive_groups() {
        let r = one("sensitive = true\n[[match]]\nname = \"m\"\nkeywords = [\"x\"]\n");
        let mut p = post("");
        p.content = None;
        assert_eq!(summary(&r.evaluate(&p)), ["trust-safety: sensitive"]);
    }

    #[test]
    fn patterns_are_confirmed_within_a_window_in_linear_time() {
        let r = one(
            "[[match]]\nname = \"m\"\npatterns = ['\\bbuy\\b.*\\bnow\\b', '(a|aa|b)+c', '\\w+x\\b']\n",
        );
        assert!(fires(&r, "buy it now"));
        assert!(fires(&r, "aabac"));
        let far = format!("buy {} now", "x ".repeat(CONFIRM_WINDOW));
        assert!(
            !fires(&r, &far),
            "a match longer than the window is not seen"
        );
        let adversarial = format!("{}now", "buy ".repeat(50_000));
        let started = std::time::Instant::now();
        let v = r
            .clone_with_budget(std::time::Duration::from_secs(60))
            .evaluate(&post(&adversarial));
        assert!(!v.not_fully_checked);
        // Linear: far below the seconds a scan to the end at each candidate takes.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let h = &v.routings[0].reasons[0].matched[0].text;
        assert!(h.ends_with("buy now") && h.len() <= CONFIRM_WINDOW, "{h}");
        // Text a window or more before the next "now" (a literal every match
        // ends with) is skipped: no match is lost or shortened.
        let two = format!("{}now {}now", "buy ".repeat(2_000), "buy ".repeat(2_000));
        let r = one("[[match]]\nname = \"m\"\npatterns = ['\\bbuy\\b.*\\bnow\\b']\n");
        let v = r.evaluate(&post(&two));
        let matched = &v.routings[0].reasons[0].matched;
        let first_end = two.find("now").unwrap() + 3;
        let first_start = (first_end - CONFIRM_WINDOW).div_ceil(4) * 4;
        let second_end = two.len();
        let second_buys = first_end + 1;
        let second_start =
            second_buys + (second_end - CONFIRM_WINDOW - second_buys).div_ceil(4) * 4;
        let ranges: Vec<_> = matched.iter().map(|h| h.range.clone()).collect();
        assert_eq!(
            ranges,
            [first_start..first_end, second_start..second_end],
            "{matched:?}"
        );
    }

    #[test]
    fn a_post_over_the_time_budget_is_marked_not_fully_checked() {
        let r = one("[[match]]\nname = \"m\"\npatterns = ['\\bk[i1]ll\\b', 'x+y']\n")
            .clone_with_budget(std::time::Duration::ZERO);
        let p = post("kill xxy");
        assert!(r.evaluate(&p).not_fully_checked);
        let e = r.explain(&p).to_string();
        assert!(e.contains("not fully checked"), "{e}");
        let r = one("[[match]]\nname = \"m\"\npatterns = ['\\bk[i1]ll\\b']\n");
        assert!(!r.evaluate(&p).not_fully_checked);
    }

    #[test]
    fn note_severity_and_mention() {
        let r = one(
            "[[match]]\nname = \"threat\"\nkeywords = [\"kill\"]\nseverity = \"urgent\"\nnote = \"{rule}: check {match} against the playbook\"\n[[match]]\nname = \"quiet\"\nkeywords = [\"kill\"]\nseverity = \"urgent\"\nmention = false\n",
        );
        let v = r.evaluate(&post("I will KILL"));
        assert!(v.routings[0].mention, "urgent pings by default");
        let threat = &v.routings[0].reasons[0];
        assert_eq!(threat.severity, RuleSeverity::Urgent);
        assert_eq!(
            threat.note.as_deref(),
            Some("threat: check KILL against the playbook")
        );
        let r = one(
            "[[match]]\nname = \"quiet\"\nkeywords = [\"kill\"]\nseverity = \"urgent\"\nmention = false\n",
        );
        assert!(!r.evaluate(&post("kill")).routings[0].mention);
    }

    #[test]
    fn shadow_and_disabled_matches_send_no_card() {
        let r = one(
            "[[match]]\nname = \"try\"\nkeywords = [\"spam\"]\nmode = \"shadow\"\n[[match]]\nname = \"off\"\nkeywords = [\"spam\"]\nenabled = false\n",
        );
        let v = r.evaluate(&post("spam"));
        assert!(v.is_empty());
        assert_eq!(v.shadow.len(), 1);
        let e = r.explain(&post("spam")).to_string();
        assert!(e.contains("[shadow: counted, no card]"), "{e}");
        assert!(
            e.contains("off: not fired: disabled (enabled = false)"),
            "{e}"
        );
        let r = one(
            "mode = \"shadow\"\nsensitive = true\n[[match]]\nname = \"m\"\nkeywords = [\"spam\"]\n",
        );
        let v = r.evaluate(&post("spam"));
        assert!(v.is_empty());
        assert_eq!(v.shadow.len(), 2);
        let r = one(
            "enabled = false\nsensitive = true\n[[match]]\nname = \"m\"\nkeywords = [\"spam\"]\n",
        );
        let v = r.evaluate(&post("spam"));
        assert!(v.is_empty() && v.shadow.is_empty());
    }

    #[test]
    fn author_and_post_conditions_narrow_a_match() {
        let r = one(
            "[[match]]\nname = \"old-links\"\nkeywords = [\"offer\"]\nhas_link = true\nmin_account_age_days = 30\n[[match]]\nname = \"short\"\nkeywords = [\"offer\"]\nmax_length = 10\n[[match]]\nname = \"long\"\nkeywords = [\"offer\"]\nmin_length = 11\n[[match]]\nname = \"vip\"\nkeywords = [\"offer\"]\nbadges_any = [\"VIP\"]\nbadges_none = [\"MOD\"]\n",
        );
        let mut p = post("offer www.x.example");
        p.author.joined_at = Some(p.created_at - Duration::days(40));
        assert_eq!(summary(&r.evaluate(&p)), ["trust-safety: old-links, long"]);
        p.author.joined_at = Some(p.created_at - Duration::days(3));
        assert_eq!(summary(&r.evaluate(&p)), ["trust-safety: long"]);
        let e = r.explain(&p).to_string();
        assert!(e.contains("at least 30 days old"), "{e}");
        let mut p = post("offer");
        assert_eq!(summary(&r.evaluate(&p)), ["trust-safety: short"]);
        p.author.badges = vec![BadgeId::parse("VIP").unwrap()];
        assert_eq!(summary(&r.evaluate(&p)), ["trust-safety: short, vip"]);
        p.author.badges.push(BadgeId::parse("MOD").unwrap());
        assert_eq!(summary(&r.evaluate(&p)), ["trust-safety: short"]);
        let r = one(
            "[[match]]\nname = \"names\"\nkeywords = [\"offer\"]\nusernames = ['^crypto', 'support$']\n",
        );
        let mut p = post("offer");
        assert!(r.evaluate(&p).is_empty());
        assert!(r.explain(&p).to_string().contains("matches `usernames`"));
        p.author.username = Some("CryptoKing".into());
        assert!(!r.evaluate(&p).is_empty());
        p.author.username = None;
        p.author.display_name = Some("Official Support".into());
        assert!(!r.evaluate(&p).is_empty());
    }

    #[test]
    fn domains_match_links_subdomains_and_obfuscations() {
        let r = one("[[match]]\nname = \"links\"\ndomains = [\"bit.ly\", \"example.com\"]\n");
        for hit in [
            "see https://bit.ly/abc",
            "bit.ly/abc",
            "go to www.example.com/x",
            "shop.EXAMPLE.com",
            "example[.]com",
            "example . com",
            "example(dot)com",
            "ｅｘａｍｐｌｅ．ｃｏｍ",
        ] {
            assert!(fires(&r, hit), "{hit}");
        }
        for miss in [
            "xbit.ly",
            "bit.lyrics",
            "example.community",
            "an example. Come",
        ] {
            assert!(!fires(&r, miss), "{miss}");
        }
        let e = RuleSet::from_sources(
            Path::new("rules"),
            [(
                "t.toml",
                "groups = [\"*\"]\nto = [\"trust-safety\"]\n[[match]]\nname = \"m\"\ndomains = [\"https://x.com/a\"]\n".as_bytes(),
            )],
            &destinations(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("is not a domain"), "{e}");
    }

    #[test]
    fn long_and_padded_posts_are_read_to_the_end() {
        let r = one("[[match]]\nname = \"m\"\nkeywords = [\"needle\"]\n");
        let early = format!("needle {}", "é".repeat(200 * 1024));
        let late = format!("{} needle", "é".repeat(200 * 1024));
        let padded = format!("{}needle", "\u{200B}".repeat(70_000));
        assert!(fires(&r, &early));
        assert!(fires(&r, &late));
        assert!(fires(&r, &padded));
        assert!(!r.explain(&post(&late)).truncated);
    }

    /// Shared lists: the same rules written inline and through lists.
    const LISTED: &[(&str, &str)] = &[
        (
            "t.toml",
            "groups = [\"*\"]\nto = [\"trust-safety\"]\n[[match]]\nname = \"m\"\nlists = [\"words\"]\ndomain_lists = [\"hosts\"]\nunless_lists = [\"safe\"]\n",
        ),
        (
            "lists/words.txt",
            "# self-harm phrases\nkill myself\n\n  Über  \nsuicide\n",
        ),
        ("lists/hosts.txt", "bit.ly\n# shorteners\ntinyurl.com\n"),
        ("lists/safe.txt", "suicide prevention\n"),
    ];
    const INLINE: &str = "groups = [\"*\"]\nto = [\"trust-safety\"]\n[[match]]\nname = \"m\"\nkeywords = [\"kill myself\", \"Über\", \"suicide\"]\ndomains = [\"bit.ly\", \"tinyurl.com\"]\nunless = [\"suicide prevention\"]\n";

    #[test]
    fn listed_phrases_match_exactly_like_inline_ones() {
        let listed = rules(LISTED);
        let inline = rules(&[("t.toml", INLINE)]);
        let ranges = |r: &RuleSet, content: &str| -> Vec<Range<usize>> {
            r.evaluate(&post(content))
                .routings
                .iter()
                .flat_map(|d| d.reasons.iter().flat_map(|r| r.matched.iter()))
                .map(|h| h.range.clone())
                .collect()
        };
        for content in [
            "I will KILL\n\t  myself",
            "kíll mysélf",
            "kіll myself",
            "s\u{200B}u\u{200C}i\u{200D}c\u{2060}ide",
            "ÜBER alles",
            "überall",
            "skill myselfish",
            "suicide prevention week",
            "suicide prevention week, suicide",
            "see bit[.]ly/x and go.bit.ly and tinyurl . com",
            "https://www.tinyurl(dot)com/abc",
            "notbit.lyrics",
            "nothing here",
        ] {
            assert_eq!(
                ranges(&listed, content),
                ranges(&inline, content),
                "{content:?}"
            );
        }
        assert!(fires(&listed, "go to sub.bit.ly"));
        assert!(!fires(&listed, "suicide prevention week"));
    }

    #[test]
    fn hits_and_cancellations_name_their_list() {
        let r = rules(LISTED);
        let v = r.evaluate(&post("bit[.]ly and suicide"));
        let hits: Vec<(&str, Option<&str>)> = v.routings[0].reasons[0]
            .matched
            .iter()
            .map(|h| (h.text.as_str(), h.list.as_deref()))
            .collect();
        assert_eq!(
            hits,
            [("bit[.]ly", Some("hosts")), ("suicide", Some("words"))]
        );
        let shown = r
            .explain(&post("suicide prevention and bit.ly"))
            .to_string();
        assert!(
            shown.contains("m: fired on \"bit.ly\" (list hosts)"),
            "{shown}"
        );
        assert!(
            shown.contains(
                "\"suicide\" (list words) cancelled by `unless` phrase \"suicide prevention\" (list safe)"
            ),
            "{shown}"
        );
        // Inline hits name no list.
        let inline = rules(&[("t.toml", INLINE)]);
        let v = inline.evaluate(&post("bit.ly"));
        assert_eq!(v.routings[0].reasons[0].matched[0].list, None);
    }

    fn load_errors(files: &[(&str, &str)]) -> Vec<String> {
        let sources = files.iter().map(|(n, t)| (*n, t.as_bytes()));
        match RuleSet::from_sources(Path::new("rules"), sources, &destinations()) {
            Ok(_) => panic!("expected errors"),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn missing_lists_and_bad_list_lines_are_all_reported() {
        let errors = load_errors(&[
            (
                "a.toml",
                "groups = [\"*\"]\nto = [\"urgent\"]\n[[match]]\nname = \"m\"\nlists = [\"wrods\"]\ndomain_lists = [\"hosts\"]\n[[match]]\nname = \"n\"\ndomain_lists = [\"hosts\"]\nunless_lists = [\"nope\"]\n",
            ),
            (
                "lists/hosts.txt",
                "bit.ly\nhttps://evil.example/path\n\u{200B}\n",
            ),
            ("lists/words.txt", "fine\n"),
        ]);
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert!(
            errors[0].starts_with("rules/lists/hosts.txt:3:1: nothing left once normalised"),
            "{errors:#?}"
        );
        // Reported once, though two matches use the list.
        assert!(
            errors[1].starts_with(
                "rules/lists/hosts.txt:2:1: \"https://evil.example/path\" is not a domain"
            ) && errors[1].ends_with("(used by `domain_lists` of match `m`)"),
            "{errors:#?}"
        );
        assert_eq!(
            errors[2],
            "rules/a.toml:5:10: match `m`: no list \"wrods\" in `lists`: rules/lists/wrods.txt does not exist; the lists are: hosts, words"
        );
        assert!(
            errors[3]
                .starts_with("rules/a.toml:10:17: match `n`: no list \"nope\" in `unless_lists`"),
            "{errors:#?}"
        );
    }

    #[test]
    fn without_any_list_the_hint_says_where_to_create_one() {
        let errors = load_errors(&[(
            "a.toml",
            "groups = [\"*\"]\nto = [\"urgent\"]\n[[match]]\nname = \"m\"\nlists = [\"words\"]\n",
        )]);
        assert_eq!(
            errors,
            [
                "rules/a.toml:5:10: match `m`: no list \"words\" in `lists`: rules/lists/words.txt does not exist; there are no lists yet: create rules/lists/words.txt with one phrase a line"
            ]
        );
    }

    #[test]
    fn a_list_no_match_uses_is_a_warning() {
        let sources = [
            (
                "a.toml",
                "groups = [\"*\"]\nto = [\"urgent\"]\n[[match]]\nname = \"m\"\nlists = [\"used\"]\n",
            ),
            ("lists/used.txt", "word\n"),
            ("lists/spare.txt", "other\n"),
        ];
        let loaded = RuleSet::from_sources(
            Path::new("rules"),
            sources.iter().map(|(n, t)| (*n, t.as_bytes())),
            &destinations(),
        )
        .unwrap();
        let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            [
                "rules/lists/spare.txt: no match uses this list: add lists = [\"spare\"] (or domain_lists, unless_lists) to a [[match]], or delete the file"
            ]
        );
        assert_eq!(loaded.rules.lists(), 2);
    }

    #[test]
    fn a_listed_unless_phrase_that_cannot_overlap_is_warned_about_at_its_reference() {
        let sources = [
            (
                "a.toml",
                "groups = [\"*\"]\nto = [\"urgent\"]\n[[match]]\nname = \"m\"\nkeywords = [\"suicide\"]\nunless_lists = [\"safe\"]\n",
            ),
            ("lists/safe.txt", "suicide prevention\nhotline\n"),
        ];
        let loaded = RuleSet::from_sources(
            Path::new("rules"),
            sources.iter().map(|(n, t)| (*n, t.as_bytes())),
            &destinations(),
        )
        .unwrap();
        let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(warnings.len(), 1, "{warnings:#?}");
        assert!(
            warnings[0].starts_with(
                "rules/a.toml:6:17: `unless` phrase \"hotline\" (from rules/lists/safe.txt:2) can never overlap a hit of match `m`"
            ),
            "{warnings:#?}"
        );
    }
}
