//! The rules file as admins write it: TOML, deserialised with spans so every
//! error can point at `path:line:col`. Nothing here is checked beyond types;
//! `compile` turns these into rules or errors.

use std::ops::Range;

use serde::Deserialize;
use serde::de::IntoDeserializer;
use toml::Spanned;
use toml::de::{DeTable, DeValue};
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
    /// `"live"` (default) or `"shadow"`: counted and explained, no card.
    pub mode: Option<Spanned<String>>,
    /// `false` switches the whole file off.
    pub enabled: Option<bool>,
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
    /// Links to these domains (and their subdomains) in the text.
    #[serde(default)]
    pub domains: Vec<Spanned<String>>,
    /// Shared lists (`lists/NAME.txt`) whose lines are more `keywords`.
    #[serde(default)]
    pub lists: Vec<Spanned<String>>,
    /// Shared lists whose lines are more `domains`.
    #[serde(default)]
    pub domain_lists: Vec<Spanned<String>>,
    /// Shared lists whose lines are more `unless` phrases.
    #[serde(default)]
    pub unless_lists: Vec<Spanned<String>>,
    pub to: Option<SpannedList>,
    /// Absent: ping when the severity is `urgent`.
    pub mention: Option<bool>,
    #[serde(default)]
    pub case_sensitive: bool,
    pub max_account_age_days: Option<u32>,
    pub min_account_age_days: Option<u32>,
    pub has_image: Option<bool>,
    pub has_link: Option<bool>,
    /// Post length in characters.
    pub min_length: Option<u32>,
    pub max_length: Option<u32>,
    #[serde(default)]
    pub badges_any: Vec<Spanned<String>>,
    #[serde(default)]
    pub badges_none: Vec<Spanned<String>>,
    /// Regexes on the author's display name and username.
    #[serde(default)]
    pub usernames: Vec<Spanned<String>>,
    /// For moderators, with `{match}` and `{rule}` placeholders.
    pub note: Option<Spanned<String>>,
    /// `low`, `normal` (default), `high` or `urgent`.
    pub severity: Option<Spanned<String>>,
    /// `"live"` (default) or `"shadow"`.
    pub mode: Option<Spanned<String>>,
    /// `false` switches the match off.
    pub enabled: Option<bool>,
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
    /// The author's display name and username (for `usernames`).
    pub display_name: Option<String>,
    pub username: Option<String>,
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

/// Keys of a rules file, of a `[[match]]` and of a `[[test]]`, as the
/// structs above accept them (a unit test holds the lists to serde's).
pub const FILE_KEYS: &[&str] = &[
    "name",
    "groups",
    "customers",
    "to",
    "sensitive",
    "exempt_badges",
    "exempt_users",
    "mode",
    "enabled",
    "match",
    "test",
];
pub const MATCH_KEYS: &[&str] = &[
    "name",
    "keywords",
    "patterns",
    "unless",
    "domains",
    "lists",
    "domain_lists",
    "unless_lists",
    "to",
    "mention",
    "case_sensitive",
    "max_account_age_days",
    "min_account_age_days",
    "has_image",
    "has_link",
    "min_length",
    "max_length",
    "badges_any",
    "badges_none",
    "usernames",
    "note",
    "severity",
    "mode",
    "enabled",
];
pub const TEST_KEYS: &[&str] = &[
    "name",
    "content",
    "group",
    "customer",
    "user",
    "display_name",
    "username",
    "badges",
    "image",
    "author_joined",
    "author_age_days",
    "posted_at",
    "expect",
];

/// A problem in a rules file: where (a byte range) and what.
pub type ParseError = (Range<usize>, String);

/// Parses a rules file, collecting every problem rather than stopping at the
/// first: every unknown key in every table, and a wrong type in the file's
/// own keys, in each `[[match]]` and in each `[[test]]` (each one separately).
/// The model comes back without the tables at fault (`None` when the TOML
/// itself does not parse or the file's own keys do not).
pub fn parse(text: &str) -> (Option<RawFile>, Vec<ParseError>) {
    let mut errors = Vec::new();
    let mut doc = match DeTable::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            return (None, vec![(span, explain_toml_error(e.message()))]);
        }
    };
    let table = doc.get_mut();
    let matches = table.remove("match");
    let tests = table.remove("test");
    drop_unknown_keys(table, FILE_KEYS, &mut errors);
    let raw = match RawFile::deserialize(doc.into_deserializer()) {
        Ok(raw) => Some(raw),
        Err(e) => {
            errors.push(deserialize_error(&e));
            None
        }
    };
    let matches = each_table(matches, "match", MATCH_KEYS, &mut errors);
    let tests = each_table(tests, "test", TEST_KEYS, &mut errors);
    let raw = raw.map(|mut raw| {
        raw.matches = matches;
        raw.tests = tests;
        raw
    });
    (raw, errors)
}

/// Reports and removes the keys of `table` that are not in `known`.
fn drop_unknown_keys(table: &mut DeTable<'_>, known: &[&str], errors: &mut Vec<ParseError>) {
    let unknown: Vec<(String, Range<usize>)> = table
        .keys()
        .filter(|key| !known.contains(&key.get_ref().as_ref()))
        .map(|key| (key.get_ref().to_string(), key.span()))
        .collect();
    let expected = known
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    for (name, span) in unknown {
        table.remove(name.as_str());
        errors.push((
            span,
            explain_toml_error(&format!(
                "unknown field `{name}`, expected one of {expected}"
            )),
        ));
    }
}

/// Each table of an array of tables (`[[match]]`, `[[test]]`), checked and
/// deserialised on its own so one bad table hides nothing in the others.
fn each_table<T: serde::de::DeserializeOwned>(
    value: Option<Spanned<DeValue<'_>>>,
    what: &str,
    known: &[&str],
    errors: &mut Vec<ParseError>,
) -> Vec<Spanned<T>> {
    let Some(value) = value else {
        return Vec::new();
    };
    let span = value.span();
    let DeValue::Array(items) = value.into_inner() else {
        errors.push((
            span,
            format!("`{what}` must be tables written [[{what}]], not a value"),
        ));
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items.iter() {
        let mut item = item.clone();
        let item_span = item.span();
        match item.get_mut() {
            DeValue::Table(t) => drop_unknown_keys(t, known, errors),
            _ => {
                errors.push((
                    item_span,
                    format!("each `{what}` must be a table written [[{what}]]"),
                ));
                continue;
            }
        }
        match Spanned::<T>::deserialize(item.into_deserializer()) {
            Ok(v) => out.push(v),
            Err(e) => errors.push(deserialize_error(&e)),
        }
    }
    out
}

fn deserialize_error(e: &toml::de::Error) -> ParseError {
    (e.span().unwrap_or(0..0), explain_toml_error(e.message()))
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
    fn the_key_lists_are_the_ones_serde_accepts() {
        fn serde_keys<T: serde::de::DeserializeOwned + std::fmt::Debug>() -> Vec<String> {
            let e = toml::from_str::<T>("bogus_key = 1").unwrap_err();
            let (_, expected) = e.message().split_once("expected one of ").unwrap();
            expected
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect()
        }
        assert_eq!(serde_keys::<RawFile>(), FILE_KEYS);
        assert_eq!(serde_keys::<RawMatch>(), MATCH_KEYS);
        assert_eq!(serde_keys::<RawTest>(), TEST_KEYS);
    }

    #[test]
    fn every_unknown_key_and_bad_table_is_reported() {
        let (raw, errors) = parse(
            "groups = [\"feed\"]\nsensitve = true\n[[match]]\nname = \"x\"\nkeyword = [\"a\"]\n[[match]]\nname = 1\n[[match]]\nname = \"ok\"\n[[test]]\nexpect = []\nimgae = true\n",
        );
        let messages: Vec<&str> = errors.iter().map(|e| e.1.as_str()).collect();
        assert_eq!(messages.len(), 4, "{messages:?}");
        assert!(
            messages[0].contains("unknown field `sensitve`"),
            "{messages:?}"
        );
        let raw = raw.unwrap();
        assert_eq!(raw.matches.len(), 2);
        assert_eq!(raw.tests.len(), 1);
    }

    #[test]
    fn typo_gets_a_suggestion() {
        let (_, errors) =
            parse("groups = [\"feed\"]\n[[match]]\nname = \"x\"\nkeyword = [\"a\"]\n");
        let err = errors.into_iter().next().unwrap();
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
