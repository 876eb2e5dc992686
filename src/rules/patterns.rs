//! Compiling one `patterns` entry: parse it (case-folded unless
//! `case_sensitive`), refuse what would match empty text or blow up, find the
//! literals every match starts with (triggers for the keyword automaton), and
//! build the relaxed regex (without Unicode word boundaries) the lazy DFA can
//! run on any script. Also combines pending patterns into one regex set.

use regex_automata::meta;
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{Capture, Hir, HirKind, Look, Repetition};

use super::PATTERN_SIZE_LIMIT;
use super::model::{PatternRule, Patterns};

pub struct PendingPattern {
    pub rule: PatternRule,
    pub relaxed_hir: Hir,
    /// Literals every match starts with (case-insensitive patterns only).
    pub triggers: Option<Vec<Vec<u8>>>,
}

pub struct PatternError {
    /// Byte offset of the fault inside the pattern, when known.
    pub offset: Option<usize>,
    pub message: String,
}

pub fn compile_pattern(
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
    let suffixes = match &triggers {
        Some(_) => suffixes(&hir),
        None => None,
    };
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
            list: None,
            real,
            relaxed,
            suffixes,
        },
        relaxed_hir,
        triggers,
    })
}

/// Literals of at least 3 bytes that every match of `hir` starts with, when
/// there are few enough.
fn triggers(hir: &Hir) -> Option<Vec<Vec<u8>>> {
    lower_case_literals(hir, ExtractKind::Prefix)
}

/// The literals of at least 3 bytes that every match of `hir` starts (or
/// ends, by `kind`) with, when there are at most 256 and none is shorter.
/// Those with upper-case letters are dropped: the text they are looked for in
/// is lower-cased, so it never holds them.
fn lower_case_literals(hir: &Hir, kind: ExtractKind) -> Option<Vec<Vec<u8>>> {
    let seq = Extractor::new().kind(kind).extract(hir);
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

/// A searcher for the literals of at least 3 bytes that every match of
/// `hir` (case-insensitive, run over lower-cased text) ends with, when there
/// are few enough. Those with upper-case letters are dropped: lower-cased
/// text never holds them.
fn suffixes(hir: &Hir) -> Option<aho_corasick::AhoCorasick> {
    let out = lower_case_literals(hir, ExtractKind::Suffix)?;
    // Leftmost: a search reports the occurrence that starts first.
    aho_corasick::AhoCorasick::builder()
        .match_kind(aho_corasick::MatchKind::LeftmostFirst)
        .build(&out)
        .ok()
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

pub fn build_set(pending: Vec<PendingPattern>) -> Result<Option<Patterns>, String> {
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

/// A keyword (normalised) as a regex, with the word boundaries it is matched
/// with (ASCII ones: a keyword that starts or ends with a non-ASCII letter
/// gets none there, which only widens what it matches).
pub fn keyword_hir(keyword: &str) -> Hir {
    let ascii_word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let mut parts = Vec::new();
    if ascii_word(keyword.chars().next()) {
        parts.push(Hir::look(Look::WordAscii));
    }
    parts.push(Hir::literal(keyword.as_bytes().to_vec()));
    if ascii_word(keyword.chars().next_back()) {
        parts.push(Hir::look(Look::WordAscii));
    }
    Hir::concat(parts)
}

/// Most lazy-DFA states explored when deciding whether an `unless` phrase can
/// overlap a match; past it the answer is "maybe" (no warning).
const OVERLAP_MAX_STATES: usize = 2_000;

/// Whether some text can hold a hit of `hirs` (a match's keywords as
/// literals and its patterns) that shares at least one byte with an
/// occurrence of `phrase` (normalised). Exact for keywords; for patterns,
/// Unicode word boundaries are ignored, so it may answer yes for a phrase that
/// cannot overlap, never no for one that can. Unsure (too many states): yes.
pub fn can_overlap(hirs: &[Hir], phrase: &str) -> bool {
    overlap(hirs, phrase.as_bytes()).unwrap_or(true)
}

fn overlap(hirs: &[Hir], u: &[u8]) -> Option<bool> {
    use regex_automata::Anchored;
    use regex_automata::hybrid::LazyStateID;
    use regex_automata::hybrid::dfa::DFA;
    use regex_automata::util::start;
    use std::collections::{HashMap, HashSet};

    if u.is_empty() || hirs.is_empty() {
        return Some(false);
    }
    let hir = Hir::alternation(hirs.iter().map(strip_unicode_word_boundaries).collect());
    let nfa = regex_automata::nfa::thompson::Compiler::new()
        .configure(
            regex_automata::nfa::thompson::Config::new()
                .nfa_size_limit(Some(super::PATTERN_SIZE_LIMIT)),
        )
        .build_from_hir(&hir)
        .ok()?;
    let dfa = DFA::builder()
        .configure(
            DFA::config()
                .cache_capacity(32 * 1024 * 1024)
                .minimum_cache_clear_count(Some(0)),
        )
        .build_from_nfa(nfa)
        .ok()?;
    let mut cache = dfa.create_cache();
    let units: Vec<u8> = dfa
        .byte_classes()
        .representatives(..)
        .filter_map(|u| u.as_u8())
        .collect();
    let start_after = |cache: &mut _, before: Option<u8>| {
        dfa.start_state(
            cache,
            &start::Config::new()
                .anchored(Anchored::Yes)
                .look_behind(before),
        )
        .ok()
    };
    // Every state some prefix reaches, with its transitions.
    let mut starts = Vec::new();
    for before in [None, Some(b' '), Some(b'a')] {
        starts.push(start_after(&mut cache, before)?);
    }
    let mut edges: HashMap<LazyStateID, Vec<LazyStateID>> = HashMap::new();
    let mut ends_here: HashSet<LazyStateID> = HashSet::new();
    let mut todo: Vec<LazyStateID> = starts.clone();
    while let Some(s) = todo.pop() {
        if edges.contains_key(&s) {
            continue;
        }
        if edges.len() >= OVERLAP_MAX_STATES || s.is_quit() {
            return None;
        }
        let mut next = Vec::with_capacity(units.len());
        if dfa.next_eoi_state(&mut cache, s).ok()?.is_match() {
            ends_here.insert(s);
        }
        for &b in &units {
            let n = dfa.next_state(&mut cache, s, b).ok()?;
            if n.is_match() {
                ends_here.insert(s);
            }
            if !n.is_dead() {
                next.push(n);
                todo.push(n);
            }
        }
        edges.insert(s, next);
    }
    // States from which some continuation ends a match.
    let mut can_end: HashSet<LazyStateID> = ends_here.clone();
    loop {
        let before = can_end.len();
        for (s, next) in &edges {
            if !can_end.contains(s) && next.iter().any(|n| can_end.contains(n)) {
                can_end.insert(*s);
            }
        }
        if can_end.len() == before {
            break;
        }
    }
    // Walks `rest` of the phrase from `s` (at least one byte of the phrase
    // already or yet to be inside the match): does a match end inside the
    // phrase, or can one end after it?
    let walk = |cache: &mut _, mut s: LazyStateID, rest: &[u8]| -> Option<bool> {
        for (i, &b) in rest.iter().enumerate() {
            let n = dfa.next_state(cache, s, b).ok()?;
            if n.is_match() && i > 0 {
                return Some(true);
            }
            if n.is_dead() {
                return Some(false);
            }
            s = n;
        }
        Some(can_end.contains(&s) || !edges.contains_key(&s))
    };
    // A match that starts before the phrase (any reachable state) or inside it.
    for s in edges.keys().copied().collect::<Vec<_>>() {
        if walk(&mut cache, s, u)? {
            return Some(true);
        }
    }
    for k in 1..u.len() {
        let s = start_after(&mut cache, Some(u[k - 1]))?;
        if walk(&mut cache, s, &u[k..])? {
            return Some(true);
        }
    }
    Some(false)
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

    fn folded(pattern: &str) -> Hir {
        regex_syntax::ParserBuilder::new()
            .case_insensitive(true)
            .build()
            .parse(pattern)
            .unwrap()
    }

    #[test]
    fn suffix_literals_are_those_every_match_ends_with() {
        let s = suffixes(&folded(r"\bbuy\b.*\b((now|today)+|(here|there)+)\b")).unwrap();
        assert!(s.is_match("buy it today"));
        assert!(s.is_match("buy it there, yes"));
        assert!(!s.is_match("buy it tomorrow"));
        // Too short to pay, or none at all.
        assert!(suffixes(&folded(r"\bbuy\b.*\b(no|ok)\b")).is_none());
        assert!(suffixes(&folded(r"\bbuy\b.*\w+")).is_none());
    }

    fn hirs(keywords: &[&str], patterns: &[&str]) -> Vec<Hir> {
        let mut out: Vec<Hir> = keywords.iter().map(|k| keyword_hir(k)).collect();
        for p in patterns {
            out.push(
                regex_syntax::ParserBuilder::new()
                    .case_insensitive(true)
                    .build()
                    .parse(p)
                    .unwrap(),
            );
        }
        out
    }

    #[test]
    fn unless_phrases_that_can_and_cannot_overlap() {
        let shipped = hirs(
            &["kill myself", "end it all"],
            &[r"\bsu[i1!]c[i1!]d[e3]\b", r"\bself[- ]?harm(ing)?\b"],
        );
        assert!(can_overlap(&shipped, "suicide prevention"));
        assert!(can_overlap(&shipped, "suicide hotline"));
        assert!(!can_overlap(&shipped, "hotline"));
        assert!(can_overlap(&shipped, "myself esteem"));
        assert!(can_overlap(&shipped, "it all"));
        assert!(can_overlap(&shipped, "the end"));
        assert!(!can_overlap(&shipped, "pretend it"));
        assert!(!can_overlap(&hirs(&["suicide"], &[]), "prevention"));
        assert!(!can_overlap(&hirs(&["kill"], &[]), "skills"));
        assert!(can_overlap(&hirs(&["kill"], &[]), "kill it"));
        // Unbounded patterns can span any phrase.
        assert!(can_overlap(&hirs(&[], &[r"\bbuy\b.*\bnow\b"]), "hotline"));
    }
}
