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
