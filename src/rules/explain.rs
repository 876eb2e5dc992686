//! `explain`: how every file treats a post, for people. The same scan as
//! evaluation, with every rule of an applicable file searched so near misses
//! can be told: what was found, and why it did not fire.

use std::fmt;
use std::sync::Arc;

use super::eval::{Narrowed, NotFired, Scan, decide, describe_not_applied, scan, verdict_of};
use super::model::Compiled;
use super::{Highlight, MAX_TEXT_BYTES, RuleSeverity, Verdict};
use crate::destination::Destination;
use crate::post::Post;

/// How every file treated a post. `Display` prints it for people.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub files: Vec<FileExplanation>,
    /// What `evaluate` returns for the same post.
    pub verdict: Verdict,
    /// The content was longer than [`MAX_TEXT_BYTES`]; only its start was read.
    pub truncated: bool,
}

#[derive(Debug, Clone)]
pub struct FileExplanation {
    pub file: String,
    pub name: String,
    /// `Err` says why the file does not apply (wrong group, author exempt...).
    pub applies: Result<(), String>,
    pub sensitive: bool,
    pub to: Vec<String>,
    pub matches: Vec<MatchExplanation>,
}

/// A hit that an `unless` phrase covers or overlaps.
#[derive(Debug, Clone)]
pub struct CancelledHit {
    pub hit: Highlight,
    /// The `unless` phrase as written.
    pub phrase: String,
    /// Where the phrase was found (`at.list`: the shared list it came from).
    pub at: Highlight,
}

#[derive(Debug, Clone)]
pub struct MatchExplanation {
    pub name: String,
    pub fired: bool,
    /// What was found and counts, whether or not it fired.
    pub matched: Vec<Highlight>,
    /// What was found but an `unless` phrase cancelled.
    pub cancelled: Vec<CancelledHit>,
    /// Why it did not fire.
    pub why_not: Option<String>,
    pub to: Vec<String>,
    pub mention: bool,
    pub severity: RuleSeverity,
    /// `mode = "shadow"`: when it fires, counted and explained, no card.
    pub shadow: bool,
    /// The note as written (placeholders unfilled).
    pub note: Option<String>,
}

pub fn explain(c: &Compiled, post: &Post) -> Explanation {
    let s = scan(c, post, true);
    let files = c
        .files
        .iter()
        .enumerate()
        .map(|(fi, file)| {
            let applies = s.applies[fi]
                .as_ref()
                .map_err(|why| describe_not_applied(why, file, post))
                .copied();
            let matches = if applies.is_ok() {
                file.matches
                    .clone()
                    .map(|ri| explain_match(c, &s, post, ri as u32))
                    .collect()
            } else {
                Vec::new()
            };
            FileExplanation {
                file: file.file_name.clone(),
                name: file.name.clone(),
                applies,
                sensitive: file.sensitive,
                to: names(&file.to),
                matches,
            }
        })
        .collect();
    Explanation {
        files,
        verdict: verdict_of(c, &s, post),
        truncated: s.truncated,
    }
}

fn names(to: &[Arc<Destination>]) -> Vec<String> {
    to.iter().map(|d| d.name().to_owned()).collect()
}

fn explain_match(c: &Compiled, s: &Scan, post: &Post, rule: u32) -> MatchExplanation {
    let m = &c.matches[rule as usize];
    let matched = s
        .hits
        .iter()
        .find(|(r, _)| *r == rule)
        .map(|(_, h)| h.clone())
        .unwrap_or_default();
    let why_not = match decide(c, s, post, rule, !matched.is_empty()) {
        Ok(()) => None,
        Err(NotFired::Disabled) => Some("disabled (enabled = false)".to_owned()),
        Err(NotFired::NoHit) if post.content.is_none() => Some("the post has no text".to_owned()),
        Err(NotFired::NoHit) => Some("no keyword or pattern found".to_owned()),
        Err(NotFired::Unless(phrase, at)) => Some(format!(
            "cancelled by `unless` phrase {phrase:?}{} (found {:?})",
            from_list(at),
            at.text
        )),
        Err(NotFired::Narrowed(Narrowed::TooOld { days, limit })) => Some(format!(
            "the author joined {days} days before the post; this match is for accounts up to {limit} days old"
        )),
        Err(NotFired::Narrowed(Narrowed::JoinUnknown)) => Some(
            "the author's join date is unknown, so max_account_age_days cannot hold".to_owned(),
        ),
        Err(NotFired::Narrowed(Narrowed::NeedsImage)) => {
            Some("the post has no image (has_image = true)".to_owned())
        }
        Err(NotFired::Narrowed(Narrowed::NeedsNoImage)) => {
            Some("the post has an image (has_image = false)".to_owned())
        }
        Err(NotFired::Narrowed(Narrowed::TooNew { days, limit })) => Some(format!(
            "the author joined {days} days before the post; this match is for accounts at least {limit} days old"
        )),
        Err(NotFired::Narrowed(Narrowed::NeedsLink)) => {
            Some("the post has no link (has_link = true)".to_owned())
        }
        Err(NotFired::Narrowed(Narrowed::NeedsNoLink)) => {
            Some("the post has a link (has_link = false)".to_owned())
        }
        Err(NotFired::Narrowed(Narrowed::TooShort { chars, limit })) => Some(format!(
            "the post has {chars} characters; min_length is {limit}"
        )),
        Err(NotFired::Narrowed(Narrowed::TooLong { chars, limit })) => Some(format!(
            "the post has {chars} characters; max_length is {limit}"
        )),
        Err(NotFired::Narrowed(Narrowed::MissingBadge)) => {
            Some("the author holds none of badges_any".to_owned())
        }
        Err(NotFired::Narrowed(Narrowed::NameNotMatched)) => {
            Some("neither the author's display name nor username matches `usernames`".to_owned())
        }
        Err(NotFired::Narrowed(Narrowed::HasBadge(b))) => {
            Some(format!("the author holds badge {b} (badges_none)"))
        }
    };
    let cancelled = s
        .cancelled_hits(rule)
        .map(|(hit, phrase, at)| CancelledHit {
            hit: hit.clone(),
            phrase: m.unless.get(phrase as usize).cloned().unwrap_or_default(),
            at: at.clone(),
        })
        .collect();
    MatchExplanation {
        name: m.name.clone(),
        fired: why_not.is_none(),
        matched,
        cancelled,
        why_not,
        to: names(&m.to),
        mention: m.mention,
        severity: m.severity,
        shadow: m.shadow,
        note: m.note.clone(),
    }
}

/// ` (list NAME)` for what came from a shared list.
fn from_list(h: &Highlight) -> String {
    h.list
        .as_ref()
        .map(|l| format!(" (list {l})"))
        .unwrap_or_default()
}

fn quoted(h: &[Highlight]) -> String {
    h.iter()
        .map(|h| format!("{:?}{}", h.text, from_list(h)))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for FileExplanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?}): ", self.file, self.name)?;
        match &self.applies {
            Err(why) => return writeln!(f, "does not apply: {why}"),
            Ok(()) => writeln!(f, "applies")?,
        }
        if self.sensitive {
            writeln!(
                f,
                "  sensitive group: every post goes to {}",
                self.to.join(", ")
            )?;
        }
        for m in &self.matches {
            match (&m.why_not, m.matched.is_empty()) {
                (None, _) => {
                    let mention = if m.mention { " with a mention" } else { "" };
                    let severity = match m.severity {
                        RuleSeverity::Normal => String::new(),
                        s => format!(" (severity {})", s.as_str()),
                    };
                    let shadow = if m.shadow {
                        " [shadow: counted, no card]"
                    } else {
                        ""
                    };
                    writeln!(
                        f,
                        "  {}: fired on {} → {}{mention}{severity}{shadow}",
                        m.name,
                        quoted(&m.matched),
                        m.to.join(", ")
                    )?;
                    if let Some(note) = &m.note {
                        writeln!(f, "    note: {note}")?;
                    }
                }
                (Some(why), true) => writeln!(f, "  {}: not fired: {why}", m.name)?,
                (Some(why), false) => writeln!(
                    f,
                    "  {}: found {} but not fired: {why}",
                    m.name,
                    quoted(&m.matched)
                )?,
            }
            for c in &m.cancelled {
                writeln!(
                    f,
                    "    {:?}{} cancelled by `unless` phrase {:?}{} (found {:?})",
                    c.hit.text,
                    from_list(&c.hit),
                    c.phrase,
                    from_list(&c.at),
                    c.at.text
                )?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.files.is_empty() {
            writeln!(f, "no rules files loaded")?;
        }
        for file in &self.files {
            write!(f, "{file}")?;
        }
        if self.truncated {
            writeln!(
                f,
                "(only the first {} KiB of the post were read)",
                MAX_TEXT_BYTES / 1024
            )?;
        }
        if self.verdict.not_fully_checked {
            writeln!(
                f,
                "not fully checked: evaluation ran out of its time budget (rules.max_eval_ms) before every pattern was confirmed"
            )?;
        }
        for r in &self.verdict.shadow {
            writeln!(f, "shadow (no card): {} ({})", r.name(), r.rules_file)?;
        }
        if self.verdict.is_empty() {
            return write!(f, "result: nothing forwarded");
        }
        write!(f, "result:")?;
        for d in &self.verdict.routings {
            let reasons = d
                .reasons
                .iter()
                .map(|r| format!("{} ({})", r.name(), r.rules_file))
                .collect::<Vec<_>>()
                .join(", ");
            let mention = if d.mention { ", with a mention" } else { "" };
            write!(f, "\n  → {}: {reasons}{mention}", d.destination.name())?;
        }
        Ok(())
    }
}
