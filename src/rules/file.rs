//! The rules file as admins write it: TOML, deserialised with spans so every
//! error can point at `path:line:col`. Nothing here is checked beyond types;
//! `compile` turns these into rules or errors.

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;
use toml::value::Datetime;

/// A list with the span of the whole list and of each entry.
pub type SpannedList = Spanned<Vec<Spanned<String>>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub name: Option<Spanned<String>>,
    pub groups: Option<SpannedList>,
    pub customers: Option<SpannedList>,
    pub to: Option<SpannedList>,
    #[serde(default)]
    pub sensitive: bool,
    #[serde(default)]
    pub exempt_badges: Vec<Spanned<String>>,
    #[serde(default)]
    pub exempt_users: Vec<Spanned<String>>,
    #[serde(default, rename = "match")]
    pub matches: Vec<Spanned<RawMatch>>,
    #[serde(default, rename = "test")]
    pub tests: Vec<Spanned<RawTest>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    pub name: Option<Spanned<String>>,
    #[serde(default)]
    pub keywords: Vec<Spanned<String>>,
    #[serde(default)]
    pub patterns: Vec<Spanned<String>>,
    #[serde(default)]
    pub unless: Vec<Spanned<String>>,
    pub to: Option<SpannedList>,
    #[serde(default)]
    pub mention: bool,
    #[serde(default)]
    pub case_sensitive: bool,
    pub max_account_age_days: Option<u32>,
    pub has_image: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTest {
    /// Shown in reports.
    pub name: Option<String>,
    /// The post's text; absent for a media-only post.
    pub content: Option<String>,
    /// A GroupId or `"feed"`; defaults to the file's first group.
    pub group: Option<Spanned<String>>,
    pub customer: Option<Spanned<String>>,
    pub user: Option<Spanned<String>>,
    #[serde(default)]
    pub badges: Vec<Spanned<String>>,
    /// Whether the post has an image.
    #[serde(default)]
    pub image: bool,
    /// When the author joined (TOML date-time, like `2025-01-31T09:00:00Z`).
    pub author_joined: Option<Spanned<Datetime>>,
    /// Shorthand: the author joined this many days before the post.
    pub author_age_days: Option<u32>,
    /// When the post was made; defaults to the time the test runs.
    pub posted_at: Option<Spanned<Datetime>>,
    pub expect: Option<SpannedList>,
}

/// Parses a rules file, or says where and why not.
pub fn parse(text: &str) -> Result<RawFile, (Range<usize>, String)> {
    toml::from_str::<RawFile>(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        (span, explain_toml_error(e.message()))
    })
}

/// Adds a hint to serde's messages: the closest known key for a typo.
fn explain_toml_error(message: &str) -> String {
    let message = message.trim_end().trim_end_matches('.');
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_owned();
    };
    let Some((unknown, expected)) = rest.split_once('`') else {
        return message.to_owned();
    };
    let candidates = expected.split('`').skip(1).step_by(2);
    let best = candidates
        .map(|c| (edit_distance(unknown, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((_, c)) => format!("{message}; did you mean `{c}`?"),
        None => message.to_owned(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Where the contents of the string literal at `span` start in the file, when
/// every character between the quotes stands for itself (so an offset into the
/// value is an offset into the file).
pub fn literal_contents_start(text: &str, span: &Range<usize>) -> Option<usize> {
    let raw = text.get(span.clone())?;
    let (open, escapes) = if raw.starts_with("'''") {
        (3, false)
    } else if raw.starts_with('\'') {
        (1, false)
    } else if raw.starts_with("\"\"\"") {
        (3, true)
    } else if raw.starts_with('"') {
        (1, true)
    } else {
        return None;
    };
    if escapes && raw.contains('\\') {
        return None;
    }
    let mut start = span.start + open;
    if open == 3 && text[start..].starts_with('\n') {
        start += 1;
    }
    Some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typo_gets_a_suggestion() {
        let err =
            parse("groups = [\"feed\"]\n[[match]]\nname = \"x\"\nkeyword = [\"a\"]\n").unwrap_err();
        assert!(err.1.contains("unknown field `keyword`"), "{}", err.1);
        assert!(err.1.ends_with("did you mean `keywords`?"), "{}", err.1);
        assert_eq!(
            line_col(
                "groups = [\"feed\"]\n[[match]]\nname = \"x\"\nkeyword = [\"a\"]\n",
                err.0.start
            ),
            (4, 1)
        );
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("a\nüx", 4), (2, 2));
        assert_eq!(line_col("abc", 0), (1, 1));
    }
}
