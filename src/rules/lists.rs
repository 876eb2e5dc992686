//! Shared lists: `lists/NAME.txt` beside the rules files, one phrase a line
//! (a line whose first non-blank character is `#` is a comment; blank lines
//! are ignored; each line is trimmed). A match uses them by NAME (the file
//! stem) with `lists` (more keywords), `domain_lists` (more domains) and
//! `unless_lists` (more `unless` phrases): exactly as if the lines were
//! written inline. Here a list file is read into its usable lines, each with
//! its place; `compile` resolves the references.

use std::path::{Path, PathBuf};

use super::Diagnostic;
use super::normalize::normalize_phrase;

/// The folder of shared lists inside the rules directory.
pub const LISTS_DIR: &str = "lists";
/// A list file's extension.
pub const LIST_EXT: &str = ".txt";
/// The longest usable line, in characters: a keyword, domain or phrase, not
/// a paragraph (a longer line is most likely two lines run together).
pub const MAX_LINE_CHARS: usize = 200;

/// One list file, read.
#[derive(Debug)]
pub struct List {
    pub path: PathBuf,
    pub entries: Vec<Entry>,
}

/// One usable line of a list.
#[derive(Debug)]
pub struct Entry {
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters: where the text starts.
    pub col: usize,
    /// Trimmed, as written.
    pub text: String,
}

impl List {
    /// A problem with one line, as a diagnostic at `path:line:col`.
    pub fn diag(&self, entry: &Entry, message: String) -> Diagnostic {
        Diagnostic {
            path: self.path.clone(),
            line: entry.line,
            col: entry.col,
            message,
        }
    }
}

/// The list name of a source named `lists/NAME.txt`, if it is one.
pub fn list_name(source: &str) -> Option<&str> {
    let rest = source
        .strip_prefix(LISTS_DIR)?
        .strip_prefix(['/', std::path::MAIN_SEPARATOR])?;
    let name = rest.strip_suffix(LIST_EXT)?;
    (!name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\'])).then_some(name)
}

/// Reads a list file's bytes: its usable lines, and an error for each line
/// that is not usable (too long, nothing left once normalised, not UTF-8).
pub fn parse(dir: &Path, name: &str, bytes: &[u8]) -> (List, Vec<Diagnostic>) {
    let path = dir.join(LISTS_DIR).join(format!("{name}{LIST_EXT}"));
    let mut list = List {
        path,
        entries: Vec::new(),
    };
    let mut errors = Vec::new();
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = i + 1;
        let at = |col: usize, message: String| Diagnostic {
            path: list.path.clone(),
            line,
            col,
            message,
        };
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text = match std::str::from_utf8(raw) {
            Ok(t) => t,
            Err(e) => {
                let good = std::str::from_utf8(&raw[..e.valid_up_to()]).unwrap_or_default();
                errors.push(at(
                    good.chars().count() + 1,
                    format!(
                        "the list is not UTF-8 (byte 0x{:02X} here): save it as UTF-8",
                        raw.get(e.valid_up_to()).copied().unwrap_or(0)
                    ),
                ));
                continue;
            }
        };
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let col = text[..text.len() - text.trim_start().len()].chars().count() + 1;
        let chars = trimmed.chars().count();
        if chars > MAX_LINE_CHARS {
            errors.push(at(
                col,
                format!(
                    "line too long ({chars} characters, at most {MAX_LINE_CHARS}): one keyword, domain or phrase a line"
                ),
            ));
            continue;
        }
        if normalize_phrase(trimmed).is_empty() {
            errors.push(at(
                col,
                "nothing left once normalised (only invisible or blank characters): remove the line or write a word or phrase".to_owned(),
            ));
            continue;
        }
        list.entries.push(Entry {
            line,
            col,
            text: trimmed.to_owned(),
        });
    }
    (list, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_comments_and_blanks() {
        let (list, errors) = parse(
            Path::new("rules"),
            "words",
            b"# a comment\n\n  kill myself \r\n\t# indented comment\n#hashtag is a comment\nend it all",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let got: Vec<(usize, usize, &str)> = list
            .entries
            .iter()
            .map(|e| (e.line, e.col, e.text.as_str()))
            .collect();
        assert_eq!(got, [(3, 3, "kill myself"), (6, 1, "end it all")]);
        assert_eq!(list.path, Path::new("rules/lists/words.txt"));
    }

    #[test]
    fn unusable_lines_are_errors_at_their_line() {
        let long = "x".repeat(MAX_LINE_CHARS + 1);
        let text = format!("ok\n\u{200B}\u{2060}\n{long}\nfine\n\u{3164}\n");
        let (list, errors) = parse(Path::new("rules"), "bad", text.as_bytes());
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 3, "{shown:#?}");
        assert!(
            shown[0].starts_with("rules/lists/bad.txt:2:1: nothing left once normalised"),
            "{shown:#?}"
        );
        assert!(
            shown[1].starts_with("rules/lists/bad.txt:3:1: line too long (201 characters"),
            "{shown:#?}"
        );
        assert!(shown[2].starts_with("rules/lists/bad.txt:5:1: nothing left"));
        assert_eq!(list.entries.len(), 2);
    }

    #[test]
    fn non_utf8_lines_point_at_the_byte() {
        let (_, errors) = parse(Path::new("rules"), "l", b"fine\nab\xffc\n");
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0]
                .to_string()
                .starts_with("rules/lists/l.txt:2:3: the list is not UTF-8 (byte 0xFF here)"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn list_sources_are_named_by_their_stem() {
        assert_eq!(
            list_name("lists/link-shorteners.txt"),
            Some("link-shorteners")
        );
        assert_eq!(list_name("lists/.hidden.txt"), None);
        assert_eq!(list_name("lists/a.toml"), None);
        assert_eq!(list_name("main.toml"), None);
        assert_eq!(list_name("lists/sub/a.txt"), None);
    }
}
