//! Text normalisation against evasion, with a map back to the original text.
//!
//! Matching runs on normalised copies of the post (see [`Fold`]): Unicode NFKC
//! (full-width and styled letters become plain ones, ligatures are split),
//! every Default_Ignorable_Code_Point and bidi control removed (zero-width
//! characters, joiners, direction marks, variation selectors, tag characters,
//! the soft hyphen...: the set comes from the Unicode data in `regex-syntax`),
//! blank letters used as spaces (U+3164, U+FFA0, U+115F, U+1160, U+2800) and
//! every run of whitespace turned into one space, optionally case folded (with
//! `char::to_lowercase`), and for ASCII keywords also stripped of combining
//! marks (`kíll`, `k̶i̶l̶l̶`) with look-alike letters folded (`kіll` with a
//! Cyrillic `і`, see [`confusable_prototype`]). Every byte of a normalised text
//! remembers the byte range of the original text it came from, so a match can
//! be highlighted in the original.
//!
//! NFKC is applied per cluster (a character plus the combining marks and
//! Hangul vowel/final jamo that follow it), which is what lets the map stay
//! exact. The only compositions this misses are between two starters outside
//! Hangul (a few Indic two-part vowels written as separate code points), which
//! no evasion we know of relies on.

use std::ops::Range;
use std::sync::OnceLock;

use regex_syntax::hir::{Class, HirKind};
use unicode_normalization::char::{
    canonical_combining_class, decompose_canonical, is_combining_mark,
};
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};

/// How far a text is normalised beyond NFKC, removing what is invisible and
/// collapsing whitespace (which every mode does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    /// Case kept: for `case_sensitive` patterns.
    Exact,
    /// Lower-cased: for keywords and patterns that are not plain ASCII
    /// (`über` stays `über`).
    Case,
    /// Lower-cased, combining marks stripped and look-alike letters folded in
    /// mixed-script words: for ASCII keywords and patterns (`kíll`, `k̶i̶l̶l̶`
    /// and `kіll` all read `kill`).
    Marks,
}

/// Sorted, disjoint character ranges of a Unicode property.
struct Ranges(Vec<(char, char)>);

impl Ranges {
    /// The ranges of a regex character class like `\p{Latin}`, from the
    /// Unicode tables `regex-syntax` ships (a dependency already, kept current
    /// with Unicode releases).
    fn of(class: &str) -> Self {
        let ranges = match regex_syntax::parse(class).map(|h| h.into_kind()) {
            Ok(HirKind::Class(Class::Unicode(c))) => {
                c.ranges().iter().map(|r| (r.start(), r.end())).collect()
            }
            // Unreachable with the fixed classes below (a unit test parses
            // them); matching would degrade to what NFKC alone does.
            _ => Vec::new(),
        };
        Self(ranges)
    }

    fn contains(&self, c: char) -> bool {
        let i = self.0.partition_point(|r| r.1 < c);
        self.0.get(i).is_some_and(|r| r.0 <= c)
    }
}

const IGNORABLE_CLASS: &str = r"[\p{Default_Ignorable_Code_Point}\p{Bidi_Control}]";
const LATIN_CLASS: &str = r"\p{Script=Latin}";

fn ignorable_ranges() -> &'static Ranges {
    static SET: OnceLock<Ranges> = OnceLock::new();
    SET.get_or_init(|| Ranges::of(IGNORABLE_CLASS))
}

fn latin_ranges() -> &'static Ranges {
    static SET: OnceLock<Ranges> = OnceLock::new();
    SET.get_or_init(|| Ranges::of(LATIN_CLASS))
}

/// Letters that render blank and are used as spaces between words.
pub fn is_blank_letter(c: char) -> bool {
    matches!(
        c,
        '\u{3164}' | '\u{FFA0}' | '\u{115F}' | '\u{1160}' | '\u{2800}'
    )
}

/// Characters that render as nothing (Default_Ignorable_Code_Point, bidi
/// controls), blank letters excepted: removed before matching.
pub fn is_invisible(c: char) -> bool {
    !c.is_ascii() && !is_blank_letter(c) && ignorable_ranges().contains(c)
}

/// Whitespace, or a blank letter standing for it.
fn is_space(c: char) -> bool {
    c.is_whitespace() || is_blank_letter(c)
}

fn is_latin(c: char) -> bool {
    c.is_ascii_alphabetic() || (!c.is_ascii() && latin_ranges().contains(c))
}

/// The one ASCII letter a non-Latin letter looks like (its Unicode TS #39
/// confusable prototype), when there is one: Cyrillic `і` → `i`, `ѕ` → `s`,
/// Greek `ο` → `o`. Never for ASCII, Latin letters, digits, or characters
/// whose prototype is more than one letter (`rn` → `m` would make "burn"
/// read "bum").
pub fn confusable_prototype(c: char) -> Option<char> {
    if c.is_ascii() {
        return None;
    }
    let table = confusable_table();
    table
        .binary_search_by_key(&c, |(from, _)| *from)
        .ok()
        .and_then(|i| table.get(i))
        .map(|(_, to)| *to)
}

fn confusable_table() -> &'static [(char, char)] {
    static TABLE: OnceLock<Vec<(char, char)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut out = Vec::new();
        // Styled letters outside the BMP (mathematical alphanumerics) are
        // plain ASCII after NFKC already.
        for c in (0x80..0x1_0000u32).filter_map(char::from_u32) {
            if !c.is_alphabetic() || is_latin(c) || c.to_lowercase().ne(std::iter::once(c)) {
                continue;
            }
            let mut buf = [0; 4];
            let mut skeleton =
                unicode_security::confusable_detection::skeleton(c.encode_utf8(&mut buf));
            if let (Some(p), None) = (skeleton.next(), skeleton.next())
                && p.is_ascii_alphabetic()
            {
                out.push((c, p.to_ascii_lowercase()));
            }
        }
        out
    })
}

/// Builds the look-up tables once (a few milliseconds), so the first post
/// evaluated does not pay for it.
pub fn warm_up() {
    let _ = (
        ignorable_ranges(),
        latin_ranges(),
        confusable_table(),
        small_table(),
    );
}

/// A word character for whole-word matching: letters, digits, marks and `_`
/// (the Unicode `\w` of regular expressions, near enough).
pub fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || is_combining_mark(c)
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

impl Normalized {
    /// This text with each `(range, c)` of `edits` (sorted, disjoint,
    /// character ranges) replaced by `c`, mapped to the same original bytes.
    fn replace_chars(&self, edits: &[(Range<usize>, char)]) -> Normalized {
        let mut w = Writer {
            buf: Vec::with_capacity(self.text.len()),
            segments: Vec::with_capacity(self.segments.len() + 2 * edits.len()),
            after_space: false,
        };
        let mut at = 0;
        for (range, c) in edits {
            self.copy_into(&mut w, at..range.start);
            w.cluster(self.original_range(range.clone()));
            let mut utf8 = [0; 4];
            w.buf.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            at = range.end;
        }
        self.copy_into(&mut w, at..self.text.len());
        let text = String::from_utf8(w.buf)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        Normalized {
            text,
            segments: w.segments,
        }
    }

    /// Copies `range` of this text, with its map, to the end of `w`.
    fn copy_into(&self, w: &mut Writer, range: Range<usize>) {
        if range.is_empty() {
            return;
        }
        let first = self
            .segments
            .partition_point(|s| s.norm as usize <= range.start)
            .saturating_sub(1);
        for (i, s) in self.segments.iter().enumerate().skip(first) {
            let seg_start = s.norm as usize;
            if seg_start >= range.end {
                break;
            }
            let seg_end = self
                .segments
                .get(i + 1)
                .map_or(self.text.len(), |n| n.norm as usize);
            let piece = seg_start.max(range.start)..seg_end.min(range.end);
            if piece.is_empty() {
                continue;
            }
            if s.is_linear() {
                w.linear(s.orig as usize + (piece.start - seg_start));
            } else {
                w.cluster(s.orig as usize..s.orig_end as usize);
            }
            w.buf.extend_from_slice(&self.text.as_bytes()[piece]);
        }
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
        if let Some(s) = self.segments.last()
            && s.is_linear()
            && s.orig + (norm - s.norm) == orig as u32
        {
            return;
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
    ///
    /// In bulk: everything up to the next whitespace run longer than one byte
    /// is one piece, written byte for byte (the map stays linear); only such
    /// runs, which become one space, touch the map. The same text and map as
    /// writing each byte through [`Writer::one`] (a unit test holds them
    /// equal).
    fn ascii(&mut self, run: &[u8], at: usize, fold: bool) {
        let n = run.len();
        self.buf.reserve(n);
        // The first byte not yet written.
        let mut k = 0;
        let mut i = 0;
        while i < n {
            if !is_ascii_space(run[i]) {
                i += 1;
                continue;
            }
            let mut end = i + 1;
            while end < n && is_ascii_space(run[end]) {
                end += 1;
            }
            // Whitespace right after a space already written joins it.
            let joins = i == k && self.after_space;
            if end == i + 1 && !joins {
                i = end;
                continue;
            }
            self.plain(&run[k..i], at + k, fold);
            if self.after_space {
                self.space(at + i..at + end, true);
            } else {
                self.linear(at + i);
                self.buf.push(b' ');
                self.after_space = true;
                self.space(at + i + 1..at + end, true);
            }
            k = end;
            i = end;
        }
        self.plain(&run[k..], at + k, fold);
    }

    /// Writes ASCII with no whitespace run longer than one byte, each
    /// whitespace byte as a space: byte for byte.
    fn plain(&mut self, bytes: &[u8], at: usize, fold: bool) {
        let Some(&last) = bytes.last() else {
            return;
        };
        self.linear(at);
        let byte = |b: u8| match (is_ascii_space(b), fold) {
            (true, _) => b' ',
            (false, true) => b.to_ascii_lowercase(),
            (false, false) => b,
        };
        self.buf.extend(bytes.iter().map(|b| byte(*b)));
        self.after_space = is_ascii_space(last);
    }

    /// Writes `c`, the only character `from` normalises to (not invisible).
    fn one(&mut self, c: char, from: Range<usize>) {
        if is_space(c) {
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

    /// Writes the characters one original cluster `from` normalises to
    /// (invisible ones already dropped).
    fn chars(&mut self, out: &[char], from: Range<usize>) {
        match out {
            [] => return,
            [c] => return self.one(*c, from),
            _ => {}
        }
        if out.iter().all(|c| is_space(*c)) {
            let single_byte = from.len() == 1;
            self.space(from, single_byte);
            return;
        }
        self.cluster(from);
        for &c in out {
            // A cluster mixing letters and spaces (rare: compatibility
            // characters like U+2474) keeps its spaces as they are.
            let c = if is_blank_letter(c) { ' ' } else { c };
            let mut utf8 = [0; 4];
            self.buf
                .extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
        }
        self.after_space = out.last().is_some_and(|c| is_space(*c));
    }
}

/// ASCII whitespace as `char::is_whitespace` sees it.
fn is_ascii_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t'..=b'\r')
}

/// Hangul medial vowels and final consonants, and combining marks, compose
/// with the character before.
fn continues_cluster(c: char) -> bool {
    !is_invisible(c)
        && !is_blank_letter(c)
        && (canonical_combining_class(c) != 0 || ('\u{1160}'..='\u{11FF}').contains(&c))
}

/// Characters below this are looked up in a table.
const SMALL: u32 = 0x800;

/// What normalising needs to know about a character below U+0800 (ASCII,
/// Latin, Greek, Cyrillic, Hebrew, Arabic...), looked up instead of computed.
#[derive(Clone, Copy)]
struct Small {
    /// A combining mark: continues the cluster before it.
    combining: bool,
    /// Removed before matching.
    invisible: bool,
    /// NFKC leaves the character alone.
    nfkc_stable: bool,
    /// Its lower case, when that is one character.
    lower: Option<char>,
    /// Its lower case without combining marks, when that is one character
    /// (`é` → `e`); `None` for a mark alone.
    bare: Option<char>,
}

fn small_table() -> &'static [Small] {
    static TABLE: OnceLock<Vec<Small>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..SMALL)
            .map(|u| {
                let c = char::from_u32(u).unwrap_or('\0');
                let mut lower = c.to_lowercase();
                let single = match (lower.next(), lower.next()) {
                    (Some(l), None) => Some(l),
                    _ => None,
                };
                let mut bare = Vec::new();
                strip_marks_into(&mut bare, single.unwrap_or(c));
                Small {
                    combining: continues_cluster(c),
                    invisible: is_invisible(c),
                    nfkc_stable: is_nfkc_quick(std::iter::once(c)) == IsNormalized::Yes,
                    lower: single,
                    bare: match (single, bare.as_slice()) {
                        (Some(_), [b]) => Some(*b),
                        _ => None,
                    },
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

/// Normalises `original` (offsets are kept as `u32`: callers keep texts under
/// 4 GiB) as `fold` says.
pub fn normalize(original: &str, fold: Fold) -> Normalized {
    normalize_with(original, fold, true)
}

/// [`normalize`]; with `ascii_runs` false, ASCII goes through the general
/// per-character path too (what the fast path is tested against).
fn normalize_with(original: &str, fold: Fold, ascii_runs: bool) -> Normalized {
    let table = small_table();
    let bytes = original.as_bytes();
    let mut w = Writer {
        buf: Vec::with_capacity(original.len()),
        segments: Vec::new(),
        after_space: false,
    };
    let lower = fold != Fold::Exact;
    let mut chars: Vec<char> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        // Fast path: a run of ASCII, less its last character when a
        // combining mark follows it.
        if b < 0x80 && ascii_runs {
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
                w.ascii(&bytes[i..stop], i, lower);
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
            if let Some(s) = table.get(first as usize) {
                if s.invisible {
                    continue;
                }
                let known = match fold {
                    Fold::Exact => Some(first),
                    Fold::Case => s.lower,
                    Fold::Marks => s.bare,
                };
                if let (true, Some(c)) = (s.nfkc_stable, known) {
                    w.one(c, from);
                    continue;
                }
            }
            chars.clear();
            for c in std::iter::once(first).nfkc() {
                fold_into(&mut chars, c, fold);
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
    let n = Normalized {
        text,
        segments: w.segments,
    };
    if fold == Fold::Marks {
        fold_confusables(n)
    } else {
        n
    }
}

/// Appends `c` as `fold` says, invisible characters dropped.
fn fold_into(out: &mut Vec<char>, c: char, fold: Fold) {
    if is_invisible(c) {
        return;
    }
    match fold {
        Fold::Exact => out.push(c),
        Fold::Case => out.extend(c.to_lowercase()),
        Fold::Marks => {
            for l in c.to_lowercase() {
                strip_marks_into(out, l);
            }
        }
    }
}

/// `c` decomposed, without its combining marks (`é` → `e`; a mark alone →
/// nothing).
fn strip_marks_into(out: &mut Vec<char>, c: char) {
    if c.is_ascii() {
        out.push(c);
        return;
    }
    decompose_canonical(c, |d| {
        if !is_combining_mark(d) && !is_invisible(d) {
            out.push(d);
        }
    });
}

/// Whether some character of `text` has an ASCII look-alike, looking only at
/// the non-ASCII ones.
fn has_confusable(text: &str) -> bool {
    if text.is_ascii() {
        return false;
    }
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(p) = bytes
        .get(i..)
        .and_then(|b| b.iter().position(|b| *b >= 0x80))
    {
        let at = i + p;
        let Some(c) = text.get(at..).and_then(|t| t.chars().next()) else {
            return false;
        };
        if confusable_prototype(c).is_some() {
            return true;
        }
        i = at + c.len_utf8();
    }
    false
}

/// In every word that mixes Latin letters with letters of another script,
/// the non-Latin letters that look like one ASCII letter become that letter.
fn fold_confusables(n: Normalized) -> Normalized {
    // Most texts have no letter to fold at all: one look per non-ASCII
    // character decides, before any word is looked at.
    if !has_confusable(&n.text) {
        return n;
    }
    let mut edits: Vec<(Range<usize>, char)> = Vec::new();
    let text = n.text.as_str();
    let mut word_start = None;
    let check = |start: usize, end: usize, edits: &mut Vec<(Range<usize>, char)>| {
        let word = &text[start..end];
        if word.is_ascii() || !word.chars().any(is_latin) {
            return;
        }
        for (at, c) in word.char_indices() {
            if is_latin(c) {
                continue;
            }
            if let Some(p) = confusable_prototype(c) {
                edits.push((start + at..start + at + c.len_utf8(), p));
            }
        }
    };
    for (at, c) in text.char_indices() {
        match (is_word_char(c), word_start) {
            (true, None) => word_start = Some(at),
            (false, Some(start)) => {
                check(start, at, &mut edits);
                word_start = None;
            }
            _ => {}
        }
    }
    if let Some(start) = word_start {
        check(start, text.len(), &mut edits);
    }
    if edits.is_empty() {
        n
    } else {
        n.replace_chars(&edits)
    }
}

/// Normalises a keyword or `unless` phrase the way post text is normalised,
/// without leading or trailing space.
pub fn normalize_phrase(phrase: &str) -> String {
    normalize(phrase, Fold::Case).text.trim().to_owned()
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
        let n = normalize(original, Fold::Case);
        assert_eq!(n.text, "suicide and suicide");
        assert_eq!(back(&n, original, "suicide and"), "ＳＵＩＣＩＤＥ and");
        let last = n.text.rfind("suicide").unwrap();
        let r = n.original_range(last..last + 7);
        assert_eq!(&original[r], "s\u{200B}u\u{00AD}i\u{FEFF}c\u{2060}ide");
    }

    #[test]
    fn whitespace_runs_become_one_space_mapped_to_the_whole_run() {
        let original = "END it \t\n  all";
        let n = normalize(original, Fold::Case);
        assert_eq!(n.text, "end it all");
        assert_eq!(back(&n, original, "end it all"), original);
        assert_eq!(back(&n, original, "it "), "it \t\n  ");
    }

    #[test]
    fn combining_marks_compose_and_map_to_the_cluster() {
        let original = "Cafe\u{301} ÜBER";
        let n = normalize(original, Fold::Case);
        assert_eq!(n.text, "café über");
        assert_eq!(back(&n, original, "é"), "e\u{301}");
        assert_eq!(back(&n, original, "über"), "ÜBER");
        let kept = normalize(original, Fold::Exact);
        assert_eq!(kept.text, "Café ÜBER");
    }

    #[test]
    fn length_changing_characters_keep_the_map_exact() {
        // İ lower-cases to two characters; ﬁ decomposes to two; ß stays one.
        let original = "İstanbul ﬁne Straße 😢 x";
        let n = normalize(original, Fold::Case);
        assert_eq!(n.text, "i\u{307}stanbul fine straße 😢 x");
        assert_eq!(back(&n, original, "fine"), "ﬁne");
        assert_eq!(back(&n, original, "i\u{307}stanbul"), "İstanbul");
        assert_eq!(back(&n, original, "😢 x"), "😢 x");
    }

    /// The same text, and every character range mapped to the same original
    /// range, as the general per-character path.
    fn assert_same_as_general_path(original: &str) {
        for fold in [Fold::Exact, Fold::Case, Fold::Marks] {
            let fast = normalize(original, fold);
            let general = normalize_with(original, fold, false);
            assert_eq!(fast.text, general.text, "{original:?} {fold:?}");
            let bounds: Vec<usize> = fast
                .text
                .char_indices()
                .map(|(i, _)| i)
                .chain([fast.text.len()])
                .collect();
            for (i, &a) in bounds.iter().enumerate() {
                for &b in &bounds[i..] {
                    assert_eq!(
                        fast.original_range(a..b),
                        general.original_range(a..b),
                        "{original:?} {fold:?} {a}..{b}"
                    );
                }
            }
        }
    }

    #[test]
    fn ascii_fast_path_matches_the_general_path() {
        for original in [
            "",
            " ",
            "   ",
            "a",
            "Kill Myself",
            "  leading and trailing  ",
            "tabs\tand\nnew\r\nlines \x0b\x0c here",
            "END it \t\n  all",
            "x\u{a0} \u{3000}y",
            "caf\u{e9}  \u{301}over  ",
            "Cafe\u{301}  ÜBER  ok",
            "ＳＵＩＣＩＤＥ  and s\u{200B}u  \u{00AD}ide",
            "k\u{456}ll  me \u{2800}  now",
            "a\u{200B} \u{200B} b",
            "Olá a todos!  Faz 🙏.  \n As dicas",
        ] {
            assert_same_as_general_path(original);
        }
    }

    #[test]
    fn phrases_are_trimmed_and_collapsed() {
        assert_eq!(normalize_phrase("  Kill   Myself "), "kill myself");
        assert_eq!(normalize_phrase("\u{200B}"), "");
    }
}
