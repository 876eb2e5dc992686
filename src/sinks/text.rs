//! Text budgets shared by the platform sinks: cut untrusted text on grapheme
//! boundaries so that, once escaped, it fits a platform's limit.

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
}
