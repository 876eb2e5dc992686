//! Text normalisation against evasion, with a map back to the original text.
//!
//! Matching runs on a normalised copy of the post: Unicode NFKC (full-width and
//! styled letters become plain ones, ligatures are split), case folded (with
//! `char::to_lowercase`), invisible characters removed (zero-width space, joiners,
//! word joiner, BOM, soft hyphen) and every run of whitespace turned into one
//! space. Every byte of the normalised text remembers the byte range of the
//! original text it came from, so a match can be highlighted in the original.
//!
//! NFKC is applied per cluster (a character plus the combining marks and
//! Hangul vowel/final jamo that follow it), which is what lets the map stay
//! exact. The only compositions this misses are between two starters outside
//! Hangul (a few Indic two-part vowels written as separate code points), which
//! no evasion we know of relies on.

use std::ops::Range;

use unicode_normalization::char::canonical_combining_class;
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};

/// Characters that render as nothing and are used to split words past filters.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}'
    )
}

/// A word character for whole-word matching: letters, digits, marks and `_`
/// (the Unicode `\w` of regular expressions, near enough).
pub fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || unicode_normalization::char::is_combining_mark(c)
}

/// A normalised text and, for each of its bytes, the original byte range.
#[derive(Debug, Default)]
pub struct Normalized {
    pub text: String,
    starts: Vec<u32>,
    ends: Vec<u32>,
}

impl Normalized {
    /// The byte range in the original text that `range` (in the normalised
    /// text, on character boundaries, not empty) came from.
    pub fn original_range(&self, range: Range<usize>) -> Range<usize> {
        if range.start >= range.end || range.end > self.text.len() {
            let at = self.starts.get(range.start).copied().unwrap_or(0) as usize;
            return at..at;
        }
        self.starts[range.start] as usize..self.ends[range.end - 1] as usize
    }

    fn push(&mut self, c: char, from: Range<usize>) {
        if c.is_whitespace() {
            if self.text.ends_with(' ') {
                if let Some(end) = self.ends.last_mut() {
                    *end = from.end as u32;
                }
                return;
            }
            self.push_raw(' ', from);
        } else if !is_invisible(c) {
            self.push_raw(c, from);
        }
    }

    fn push_raw(&mut self, c: char, from: Range<usize>) {
        let n = c.len_utf8();
        self.text.push(c);
        for _ in 0..n {
            self.starts.push(from.start as u32);
            self.ends.push(from.end as u32);
        }
    }
}

/// Hangul medial vowels and final consonants compose with the syllable before.
fn continues_cluster(c: char) -> bool {
    !is_invisible(c)
        && (canonical_combining_class(c) != 0 || ('\u{1160}'..='\u{11FF}').contains(&c))
}

/// Normalises `original` (callers cap its length: offsets are kept as `u32`).
/// With `fold` the text is also lower-cased.
pub fn normalize(original: &str, fold: bool) -> Normalized {
    let bytes = original.as_bytes();
    let mut out = Normalized {
        text: String::with_capacity(original.len()),
        starts: Vec::with_capacity(original.len()),
        ends: Vec::with_capacity(original.len()),
    };
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        // Fast path: an ASCII character not followed by a combining mark.
        if b < 0x80 && bytes.get(i + 1).is_none_or(|n| *n < 0x80) {
            let c = if fold { b.to_ascii_lowercase() } else { b } as char;
            out.push(c, i..i + 1);
            i += 1;
            continue;
        }
        let rest = &original[i..];
        let mut chars = rest.char_indices();
        let Some((_, first)) = chars.next() else {
            break;
        };
        let mut end = first.len_utf8();
        for (at, c) in chars {
            if !continues_cluster(c) {
                break;
            }
            end = at + c.len_utf8();
        }
        let cluster = &rest[..end];
        let from = i..i + end;
        if end == first.len_utf8() && is_nfkc_quick(std::iter::once(first)) == IsNormalized::Yes {
            push_folded(&mut out, first, fold, from);
        } else {
            for c in cluster.nfkc() {
                push_folded(&mut out, c, fold, from.clone());
            }
        }
        i += end;
    }
    out
}

fn push_folded(out: &mut Normalized, c: char, fold: bool, from: Range<usize>) {
    if fold {
        for l in c.to_lowercase() {
            out.push(l, from.clone());
        }
    } else {
        out.push(c, from);
    }
}

/// Normalises a keyword or `unless` phrase the way post text is normalised,
/// without leading or trailing space.
pub fn normalize_phrase(phrase: &str) -> String {
    normalize(phrase, true).text.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn back(n: &Normalized, original: &str, needle: &str) -> String {
        let at = n.text.find(needle).unwrap();
        original[n.original_range(at..at + needle.len())].to_owned()
    }

    #[test]
    fn folds_case_width_and_invisible_characters() {
        let original = "ＳＵＩＣＩＤＥ and s\u{200B}u\u{00AD}i\u{FEFF}c\u{2060}ide";
        let n = normalize(original, true);
        assert_eq!(n.text, "suicide and suicide");
        assert_eq!(back(&n, original, "suicide and"), "ＳＵＩＣＩＤＥ and");
        let last = n.text.rfind("suicide").unwrap();
        let r = n.original_range(last..last + 7);
        assert_eq!(&original[r], "s\u{200B}u\u{00AD}i\u{FEFF}c\u{2060}ide");
    }

    #[test]
    fn whitespace_runs_become_one_space_mapped_to_the_whole_run() {
        let original = "END it \t\n  all";
        let n = normalize(original, true);
        assert_eq!(n.text, "end it all");
        assert_eq!(back(&n, original, "end it all"), original);
        assert_eq!(back(&n, original, "it "), "it \t\n  ");
    }

    #[test]
    fn combining_marks_compose_and_map_to_the_cluster() {
        let original = "Cafe\u{301} ÜBER";
        let n = normalize(original, true);
        assert_eq!(n.text, "café über");
        assert_eq!(back(&n, original, "é"), "e\u{301}");
        assert_eq!(back(&n, original, "über"), "ÜBER");
        let kept = normalize(original, false);
        assert_eq!(kept.text, "Café ÜBER");
    }

    #[test]
    fn length_changing_characters_keep_the_map_exact() {
        // İ lower-cases to two characters; ﬁ decomposes to two; ß stays one.
        let original = "İstanbul ﬁne Straße 😢 x";
        let n = normalize(original, true);
        assert_eq!(n.text, "i\u{307}stanbul fine straße 😢 x");
        assert_eq!(back(&n, original, "fine"), "ﬁne");
        assert_eq!(back(&n, original, "i\u{307}stanbul"), "İstanbul");
        assert_eq!(back(&n, original, "😢 x"), "😢 x");
    }

    #[test]
    fn phrases_are_trimmed_and_collapsed() {
        assert_eq!(normalize_phrase("  Kill   Myself "), "kill myself");
        assert_eq!(normalize_phrase("\u{200B}"), "");
    }
}
