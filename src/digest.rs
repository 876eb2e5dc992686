//! Grouped messages for spam waves (issue #14): a **digest** lists the
//! posts a destination could not take one card at a time, and a
//! **campaign** card shows one text many authors posted. Both are one
//! message edited in place as entries arrive. Platform-neutral values, like
//! [`Card`]: the platforms render and escape them (everything here is raw,
//! untrusted text).

use std::ops::Range;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::card::{Card, Level};
use crate::destination::Target;

/// How much of a post's text an entry keeps (characters).
pub const EXCERPT_CHARS: usize = 160;

/// One post in a digest or a campaign: enough for a moderator to find it and
/// judge whether to open it. Holds no email or phone. `Debug` shows the post
/// ID only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub post_id: String,
    /// The author's shown name.
    pub author: String,
    pub username: Option<String>,
    /// The author's platform ID (campaigns count distinct authors).
    pub author_id: String,
    /// Up to [`EXCERPT_CHARS`] characters of the post's text, around the
    /// first match; `None` for media-only posts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excerpt: Option<String>,
    /// Byte ranges of `excerpt` to highlight, sorted, not overlapping.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub highlights: Vec<Range<usize>>,
    /// Why it matched: "rules file · match" for each reason, joined by ", ".
    pub reason: String,
    #[serde(default, skip_serializing_if = "Level::is_normal")]
    pub level: Level,
    /// The group's name or "Main feed".
    pub place: String,
    pub post_url: Option<String>,
    pub posted_at: DateTime<Utc>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("post_id", &self.post_id)
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

impl Entry {
    /// The entry for `card`: its author, an excerpt around the first match
    /// (highlights kept), its reasons, place and link.
    pub fn of(card: &Card) -> Entry {
        let (excerpt, highlights) = match &card.content {
            None => (None, Vec::new()),
            Some(text) => {
                let (e, h) = excerpt(text, &card.highlights, EXCERPT_CHARS);
                (Some(e), h)
            }
        };
        Entry {
            post_id: card.post_id.clone(),
            author: card.author.name.clone(),
            username: card.author.username.clone(),
            author_id: card.author.user_id.clone(),
            excerpt,
            highlights,
            reason: card
                .reasons
                .iter()
                .map(|r| format!("{} · {}", r.rules, r.name))
                .collect::<Vec<_>>()
                .join(", "),
            level: card.level,
            place: card.place.clone(),
            post_url: card.post_url.clone(),
            posted_at: card.posted_at,
        }
    }
}

/// Up to `max` characters of `text`, starting a little before the first
/// highlight so that it shows, with an ellipsis where text was cut; the
/// highlights that fall inside, moved to the excerpt's offsets (a highlight
/// cut by the edge is cut with it).
pub fn excerpt(text: &str, highlights: &[Range<usize>], max: usize) -> (String, Vec<Range<usize>>) {
    let max = max.max(2);
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    if chars.len() <= max {
        let hs = highlights
            .iter()
            .filter(|h| h.start < h.end && h.end <= text.len())
            .cloned()
            .collect();
        return (text.to_owned(), hs);
    }
    // Start up to a quarter of the budget before the first highlight, and
    // no later than where the rest of the text fills the budget.
    let first = highlights.first().map_or(0, |h| h.start);
    let first_char = chars.partition_point(|(i, _)| *i < first);
    let mut start_char = first_char.saturating_sub(max / 4);
    let lead = usize::from(start_char > 0);
    let avail = max - lead;
    if start_char + avail > chars.len() {
        start_char = chars.len() - avail;
    }
    let tail = usize::from(start_char + avail < chars.len());
    let end_char = start_char + avail - tail;
    let from = chars.get(start_char).map_or(text.len(), |(i, _)| *i);
    let to = chars.get(end_char).map_or(text.len(), |(i, _)| *i);
    let mut out = String::with_capacity(to - from + 8);
    if lead == 1 {
        out.push('…');
    }
    let shift = out.len();
    out.push_str(&text[from..to]);
    let hs = highlights
        .iter()
        .filter_map(|h| {
            let s = h.start.max(from);
            let e = h.end.min(to);
            (s < e && text.is_char_boundary(s) && text.is_char_boundary(e))
                .then(|| (s - from + shift)..(e - from + shift))
        })
        .collect();
    if tail == 1 {
        out.push('…');
    }
    (out, hs)
}

/// One digest message of a wave: the entries it lists, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// The destination's name.
    pub destination: String,
    pub target: Target,
    /// When the wave began (its first overflow), by the store's clock.
    pub wave_started: DateTime<Utc>,
    /// This message's number in the wave, from 1.
    pub part: u32,
    pub entries: Vec<Entry>,
    /// No more entries will join this message (the next ones go to part
    /// `part + 1`).
    pub full: bool,
}

/// A campaign card: one text (or near copies of it) posted by many
/// authors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    pub destination: String,
    pub target: Target,
    /// The first post's entry: its text is shown once for all of them.
    pub first: Entry,
    /// Posts in the campaign so far (this card's entries and the earlier
    /// ones below).
    pub posts: u32,
    /// Distinct authors, in order of their first post.
    pub authors: Vec<String>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Posts of the campaign that went out as their own cards (or digest
    /// entries) before it was recognised: listed with their links.
    pub earlier: Vec<Entry>,
}

/// A message that groups posts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // a few per wave: not worth a box
pub enum Grouped {
    Digest(Digest),
    Campaign(Campaign),
}

impl Grouped {
    pub fn target(&self) -> &Target {
        match self {
            Grouped::Digest(d) => &d.target,
            Grouped::Campaign(c) => &c.target,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_text_is_kept_whole_with_its_highlights() {
        let (e, h) = excerpt("buy cheap pills", &[Range { start: 4, end: 9 }], 160);
        assert_eq!(e, "buy cheap pills");
        assert_eq!(h, vec![4..9]);
    }

    #[test]
    fn a_long_text_is_cut_around_its_first_match() {
        let text = format!("{}MATCH{}", "a".repeat(300), "b".repeat(300));
        let (e, h) = excerpt(
            &text,
            &[Range {
                start: 300,
                end: 305,
            }],
            40,
        );
        assert_eq!(e.chars().count(), 40);
        assert!(e.starts_with('…') && e.ends_with('…'), "{e}");
        assert_eq!(h.len(), 1);
        assert_eq!(&e[h[0].clone()], "MATCH");
    }

    #[test]
    fn multibyte_text_is_cut_on_character_boundaries() {
        let text = "é".repeat(500);
        let (e, h) = excerpt(
            &text,
            &[Range {
                start: 400,
                end: 404,
            }],
            10,
        );
        assert_eq!(e.chars().count(), 10);
        assert_eq!(h.len(), 1);
        assert_eq!(&e[h[0].clone()], "éé");
    }

    #[test]
    fn the_end_of_a_text_is_shown_without_a_trailing_ellipsis() {
        let text = format!("{}END", "x".repeat(100));
        let (e, h) = excerpt(
            &text,
            &[Range {
                start: 100,
                end: 103,
            }],
            20,
        );
        assert!(e.ends_with("END"), "{e}");
        assert_eq!(e.chars().count(), 20);
        assert_eq!(&e[h[0].clone()], "END");
    }
}
