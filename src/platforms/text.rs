//! Text budgets shared by the platforms: cut untrusted text on grapheme
//! boundaries so that, once escaped, it fits a platform's limit.

use std::ops::Range;

use unicode_segmentation::UnicodeSegmentation;

/// Escapes `raw` with `escape` and, when the result is wider than `budget`
/// (as `width` measures it: each platform counts differently), keeps the
/// longest prefix of whole graphemes that fits with a closing `…`. Returns
/// the text and how many characters of `raw` were left out.
pub(crate) fn fit_escaped(
    raw: &str,
    budget: usize,
    escape: impl Fn(&str) -> String,
    width: impl Fn(&str) -> usize,
) -> (String, usize) {
    let whole = escape(raw);
    if width(&whole) <= budget {
        return (whole, 0);
    }
    let room = budget.saturating_sub(1);
    let mut out = String::new();
    let mut used = 0;
    let mut taken_bytes = 0;
    for g in raw.graphemes(true) {
        let e = escape(g);
        let w = width(&e);
        if used + w > room {
            break;
        }
        out.push_str(&e);
        used += w;
        taken_bytes += g.len();
    }
    if budget > 0 {
        out.push('…');
    }
    (out, raw[taken_bytes..].chars().count())
}

/// The highlight ranges a platform can use: inside `content`, on character
/// boundaries, trimmed of white space (bold around nothing, or around a space,
/// renders wrong on both platforms), empty ones dropped.
pub(crate) fn clean_highlights(content: &str, highlights: &[Range<usize>]) -> Vec<Range<usize>> {
    highlights
        .iter()
        .filter(|r| {
            r.start < r.end
                && r.end <= content.len()
                && content.is_char_boundary(r.start)
                && content.is_char_boundary(r.end)
        })
        .filter_map(|r| {
            let s = &content[r.clone()];
            let lead = s.len() - s.trim_start().len();
            let trimmed = s.trim();
            (!trimmed.is_empty()).then(|| r.start + lead..r.start + lead + trimmed.len())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_graphemes_and_counts_what_was_left_out() {
        let chars = |s: &str| s.chars().count();
        let same = |s: &str| s.to_owned();
        assert_eq!(fit_escaped("short", 10, same, chars), ("short".into(), 0));
        // "e" + combining acute is one grapheme of two chars: never split.
        let (out, cut) = fit_escaped("ab\u{65}\u{301}cd", 4, same, chars);
        assert_eq!((out.as_str(), cut), ("ab…", 4));
        let (out, cut) = fit_escaped("ab\u{65}\u{301}cd", 5, same, chars);
        assert_eq!((out.as_str(), cut), ("ab\u{65}\u{301}…", 2));
        let (out, _) = fit_escaped("<<<<", 5, |s| s.replace('<', "&lt;"), chars);
        assert!(chars(&out) <= 5, "{out}");
        assert_eq!(fit_escaped("abc", 0, same, chars), (String::new(), 3));
    }

    #[test]
    fn highlights_are_trimmed_and_invalid_ones_dropped() {
        let text = "a bad  word é";
        let got = clean_highlights(text, &[1..6, 6..8, 7..99, 11..12, 3..3]);
        assert_eq!(got, vec![2..5, 7..8]);
    }
}
