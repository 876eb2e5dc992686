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
use std::sync::OnceLock;

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

/// A normalised text and the way back to the original text.
///
/// The map is a list of segments, so plain text costs nothing: in a `Linear`
/// segment each normalised byte is the original byte at a fixed distance; in a
/// `Cluster` segment every byte came from one original range (a full-width
/// letter, a composed character, a run of whitespace).
#[derive(Debug, Default)]
pub struct Normalized {
    pub text: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    /// First normalised byte of the segment.
    norm: u32,
    /// Original byte of `norm`; for a cluster, its start.
    orig: u32,
    /// For a cluster, the end of its original range; `u32::MAX` when linear.
    orig_end: u32,
}

impl Segment {
    fn is_linear(&self) -> bool {
        self.orig_end == u32::MAX
    }
}

impl Normalized {
    fn segment(&self, norm: usize) -> Option<&Segment> {
        let i = self.segments.partition_point(|s| s.norm as usize <= norm);
        i.checked_sub(1).and_then(|i| self.segments.get(i))
    }

    fn start_of(&self, norm: usize) -> usize {
        match self.segment(norm) {
            Some(s) if s.is_linear() => s.orig as usize + (norm - s.norm as usize),
            Some(s) => s.orig as usize,
            None => 0,
        }
    }

    fn end_of(&self, norm: usize) -> usize {
        match self.segment(norm) {
            Some(s) if s.is_linear() => s.orig as usize + (norm - s.norm as usize) + 1,
            Some(s) => s.orig_end as usize,
            None => 0,
        }
    }

    /// The byte range in the original text that `range` (in the normalised
    /// text, on character boundaries) came from.
    pub fn original_range(&self, range: Range<usize>) -> Range<usize> {
        let start = self.start_of(range.start);
        if range.start >= range.end || range.end > self.text.len() {
            return start..start;
        }
        start..self.end_of(range.end - 1)
    }
}

/// Builds a [`Normalized`].
struct Writer {
    buf: Vec<u8>,
    segments: Vec<Segment>,
    /// The last byte written is a space standing for whitespace.
    after_space: bool,
}

impl Writer {
    fn pos(&self) -> u32 {
        self.buf.len() as u32
    }

    /// Whitespace from `from`: one space for a whole run.
    fn space(&mut self, from: Range<usize>, single_byte: bool) {
        if self.after_space {
            let at = self.buf.len() - 1;
            match self.segments.last_mut() {
                Some(s) if !s.is_linear() && s.norm as usize == at => s.orig_end = from.end as u32,
                _ => {
                    let orig = self.start_of_last();
                    self.segments.push(Segment {
                        norm: at as u32,
                        orig,
                        orig_end: from.end as u32,
                    });
                }
            }
            return;
        }
        if single_byte {
            self.linear(from.start);
        } else {
            self.cluster(from);
        }
        self.buf.push(b' ');
        self.after_space = true;
    }

    fn start_of_last(&self) -> u32 {
        let at = self.buf.len().saturating_sub(1) as u32;
        match self.segments.last() {
            Some(s) if s.is_linear() => s.orig + (at - s.norm),
            Some(s) => s.orig,
            None => 0,
        }
    }

    /// The next bytes written are the original bytes from `orig` on.
    fn linear(&mut self, orig: usize) {
        let norm = self.pos();
        if let Some(s) = self.segments.last() {
            if s.is_linear() && s.orig + (norm - s.norm) == orig as u32 {
                return;
            }
        }
        self.segments.push(Segment {
            norm,
            orig: orig as u32,
            orig_end: u32::MAX,
        });
    }

    /// The next bytes written all come from `from`.
    fn cluster(&mut self, from: Range<usize>) {
        self.segments.push(Segment {
            norm: self.pos(),
            orig: from.start as u32,
            orig_end: from.end as u32,
        });
    }

    /// Writes a run of ASCII that starts at byte `at` of the original.
    fn ascii(&mut self, run: &[u8], at: usize, fold: bool) {
        let is_space = |b: &u8| matches!(b, b' ' | b'\t'..=b'\r');
        let mut k = 0;
        while k < run.len() {
            let gap = run[k..]
                .iter()
                .position(is_space)
                .map_or(run.len(), |p| k + p);
            if gap > k {
                self.linear(at + k);
                if fold {
                    self.buf
                        .extend(run[k..gap].iter().map(u8::to_ascii_lowercase));
                } else {
                    self.buf.extend_from_slice(&run[k..gap]);
                }
                self.after_space = false;
            }
            if gap == run.len() {
                break;
            }
            let end = run[gap..]
                .iter()
                .position(|b| !is_space(b))
                .map_or(run.len(), |p| gap + p);
            self.space(at + gap..at + gap + 1, true);
            if end > gap + 1 {
                self.space(at + gap + 1..at + end, true);
            }
            k = end;
        }
    }

    /// Writes `c`, the only character `from` normalises to.
    fn one(&mut self, c: char, from: Range<usize>) {
        if is_invisible(c) {
            return;
        }
        if c.is_whitespace() {
            let single_byte = from.len() == 1;
            self.space(from, single_byte);
            return;
        }
        if c.len_utf8() == from.len() {
            self.linear(from.start);
        } else {
            self.cluster(from);
        }
        let mut utf8 = [0; 4];
        self.buf
            .extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
        self.after_space = false;
    }

    /// Writes the characters one original cluster `from` normalises to.
    fn chars(&mut self, out: &[char], from: Range<usize>) {
        let visible: usize = out.iter().filter(|c| !is_invisible(**c)).count();
        if visible == 0 {
            return;
        }
        if out.iter().all(|c| c.is_whitespace()) {
            let single_byte = from.len() == 1;
            self.space(from, single_byte);
            return;
        }
        let same_bytes =
            visible == 1 && out.iter().map(|c| c.len_utf8()).sum::<usize>() == from.len();
        if same_bytes {
            self.linear(from.start);
        } else {
            self.cluster(from.clone());
        }
        for &c in out {
            if is_invisible(c) {
                continue;
            }
            // A cluster mixing letters and spaces (rare: compatibility
            // characters like U+2474) keeps its spaces as they are.
            let mut utf8 = [0; 4];
            self.buf
                .extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
        }
        self.after_space = out.last().is_some_and(|c| c.is_whitespace());
    }
}

/// Hangul medial vowels and final consonants compose with the syllable before.
fn continues_cluster(c: char) -> bool {
    !is_invisible(c)
        && (canonical_combining_class(c) != 0 || ('\u{1160}'..='\u{11FF}').contains(&c))
}

/// What normalising needs to know about a character below U+0800 (ASCII,
/// Latin, Greek, Cyrillic, Hebrew, Arabic...), looked up instead of computed.
#[derive(Clone, Copy)]
struct Small {
    /// A combining mark: continues the cluster before it.
    combining: bool,
    /// NFKC leaves the character alone.
    nfkc_stable: bool,
    /// Its lower case, when that is one character.
    lower: Option<char>,
}

fn small_table() -> &'static [Small] {
    static TABLE: OnceLock<Vec<Small>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..0x800u32)
            .map(|u| {
                let c = char::from_u32(u).unwrap_or('\0');
                let mut lower = c.to_lowercase();
                let single = match (lower.next(), lower.next()) {
                    (Some(l), None) => Some(l),
                    _ => None,
                };
                Small {
                    combining: continues_cluster(c),
                    nfkc_stable: is_nfkc_quick(std::iter::once(c)) == IsNormalized::Yes,
                    lower: single,
                }
            })
            .collect()
    })
}

/// Whether the character at byte `at` continues the cluster before it.
fn continues_at(original: &str, at: usize, table: &[Small]) -> Option<char> {
    let b = *original.as_bytes().get(at)?;
    if b < 0x80 {
        return None;
    }
    let c = original.get(at..)?.chars().next()?;
    let continues = match table.get(c as usize) {
        Some(s) => s.combining,
        None => continues_cluster(c),
    };
    continues.then_some(c)
}

/// Normalises `original` (callers cap its length: offsets are kept as `u32`).
/// With `fold` the text is also lower-cased.
pub fn normalize(original: &str, fold: bool) -> Normalized {
    let table = small_table();
    let bytes = original.as_bytes();
    let mut w = Writer {
        buf: Vec::with_capacity(original.len()),
        segments: Vec::new(),
        after_space: false,
    };
    let mut chars: Vec<char> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        // Fast path: a run of ASCII, less its last character when a
        // combining mark follows it.
        if b < 0x80 {
            let run_end = bytes[i..]
                .iter()
                .position(|b| *b >= 0x80)
                .map_or(bytes.len(), |p| i + p);
            let stop = if continues_at(original, run_end, table).is_some() {
                run_end - 1
            } else {
                run_end
            };
            if stop > i {
                w.ascii(&bytes[i..stop], i, fold);
                i = stop;
                continue;
            }
        }
        let Some(first) = original.get(i..).and_then(|r| r.chars().next()) else {
            break;
        };
        let mut end = i + first.len_utf8();
        while let Some(c) = continues_at(original, end, table) {
            end += c.len_utf8();
        }
        let from = i..end;
        i = end;
        if from.len() == first.len_utf8() {
            // A lone character: most often a table lookup.
            let known = table.get(first as usize).map_or_else(
                || {
                    let stable = is_nfkc_quick(std::iter::once(first)) == IsNormalized::Yes;
                    (stable, None)
                },
                |s| (s.nfkc_stable, s.lower),
            );
            match known {
                (true, _) if !fold => {
                    w.one(first, from);
                    continue;
                }
                (true, Some(lower)) => {
                    w.one(lower, from);
                    continue;
                }
                _ => {}
            }
            chars.clear();
            if known.0 {
                fold_into(&mut chars, first, fold);
            } else {
                for c in std::iter::once(first).nfkc() {
                    fold_into(&mut chars, c, fold);
                }
            }
            w.chars(&chars, from);
            continue;
        }
        chars.clear();
        for c in original[from.clone()].nfkc() {
            fold_into(&mut chars, c, fold);
        }
        w.chars(&chars, from);
    }
    let text = String::from_utf8(w.buf)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    Normalized {
        text,
        segments: w.segments,
    }
}

fn fold_into(out: &mut Vec<char>, c: char, fold: bool) {
    if fold {
        out.extend(c.to_lowercase());
    } else {
        out.push(c);
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
