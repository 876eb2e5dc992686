//! Presentation shared by every platform: the card's text pieces (member age,
//! reasons with "… and N more", cut notes, placeholders, one-line fields, the
//! severity label, notes for moderators, "not fully checked") built once from
//! a [`Card`], and those of grouped messages (a wave's [`Digest`], a
//! [`Campaign`] card). A platform supplies only its markup: escaping
//! and cutting (`fit`), bold, italics, links, separators and width budgets.

use chrono::{DateTime, Utc};

use std::borrow::Cow;
use std::ops::Range;

use crate::card::{Card, CaseStatus, CaseView, Images, Level, ReasonView};
use crate::digest::{Campaign, Digest, Entry};
use crate::platforms::ModeratorAction;

/// A destination with `images = "spoiler"`: what stands where the image would.
pub const IMAGE_HIDDEN: &str =
    "The post has an image, hidden in this channel (open it only if you need to)";
/// … when its address is too long for a button.
pub const IMAGE_HIDDEN_TOO_LONG: &str =
    "The post has an image, hidden in this channel (its address is too long to link)";
/// A destination with `images = "link"`: the label before the link.
pub const IMAGE_AS_LINK: &str = "Image (not shown in this channel)";

/// An account younger than this many days is flagged "new account".
pub const NEW_ACCOUNT_DAYS: i64 = 7;

/// Shown instead of the text of a post that has none.
pub const MEDIA_ONLY: &str = "(no text: media only)";
/// Shown instead of a text that is only white space.
pub const EMPTY_TEXT: &str = "(empty text)";
/// Shown when nothing of the text fits (it never should).
pub const TEXT_HIDDEN: &str = "(the text cannot be shown here)";

/// Said on a card whose rules ran out of their time budget.
pub const NOT_FULLY_CHECKED: &str =
    "Not fully checked: the post ran out of its rules time budget; more rules may match.";
/// The heading of the notes for moderators.
pub const NOTE_HEADING: &str = "Note for moderators";

/// The reminder under a copy of a case nobody claimed: "Still open after 30
/// min: nobody has claimed this card." (whole minutes; seconds below one).
pub fn still_open(after: std::time::Duration) -> String {
    let secs = after.as_secs();
    let how_long = if secs >= 60 {
        format!("{} min", secs / 60)
    } else {
        format!("{} s", secs.max(1))
    };
    format!("Still open after {how_long}: nobody has claimed this card.")
}

/// `1 day`, `3 days`.
pub fn pluralize(n: i64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// A one-line field (name, username, term, ID): line breaks and other control
/// characters become spaces, and bidirectional overrides are dropped so that a
/// name cannot reorder or fake the text modbridge writes after it.
pub fn one_line(s: &str) -> String {
    s.chars()
        .filter(|c| {
            !matches!(
                c,
                '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
            )
        })
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A text of several lines (a note): like [`one_line`], but line breaks stay.
pub fn multi_line(s: &str) -> String {
    s.split('\n').map(one_line).collect::<Vec<_>>().join("\n")
}

/// The buttons a case shows in `status`, in order: the action each one
/// asks for and its label. (The "Open post" link button comes after them.)
pub fn case_buttons(status: CaseStatus) -> &'static [(ModeratorAction, &'static str)] {
    use ModeratorAction as A;
    match status {
        CaseStatus::Open | CaseStatus::Reopened | CaseStatus::Unclaimed => &[
            (A::Claim, "Claim"),
            (A::Resolve, "Resolved"),
            (A::FalsePositive, "False positive"),
        ],
        CaseStatus::Claimed => &[
            (A::Resolve, "Resolved"),
            (A::FalsePositive, "False positive"),
            (A::Unclaim, "Unclaim"),
        ],
        CaseStatus::Resolved | CaseStatus::FalsePositive => &[(A::Reopen, "Reopen")],
    }
}

/// The emoji that starts a status line.
pub fn status_emoji(status: CaseStatus) -> &'static str {
    match status {
        CaseStatus::Open | CaseStatus::Reopened | CaseStatus::Unclaimed => "🔴",
        CaseStatus::Claimed => "🟡",
        CaseStatus::Resolved => "✅",
        CaseStatus::FalsePositive => "⚪",
    }
}

/// A platform's name as people write it.
fn platform_label(platform: &str) -> &str {
    match platform {
        super::slack::PLATFORM => "Slack",
        super::discord::PLATFORM => "Discord",
        other => other,
    }
}

/// `4 min`, `less than a minute`, `2 h 5 min`, `3 days`.
fn after_posting(minutes: u64) -> String {
    match minutes {
        0 => "less than a minute after posting".to_owned(),
        1..60 => format!("{minutes} min after posting"),
        60..2880 => match minutes % 60 {
            0 => format!("{} h after posting", minutes / 60),
            m => format!("{} h {m} min after posting", minutes / 60),
        },
        _ => format!("{} days after posting", minutes / 1440),
    }
}

/// The case's status line: `🟡 Claimed by @ana on Slack · 4 min after
/// posting`. `name` makes the moderator's handle (untrusted) safe for the
/// platform: one line, escaped, short.
pub fn status_line(view: &CaseView, name: impl Fn(&str) -> String) -> String {
    let emoji = status_emoji(view.status);
    let verb = match view.status {
        CaseStatus::Open => return format!("{emoji} Open: nobody has claimed it yet"),
        CaseStatus::Claimed => "Claimed by",
        CaseStatus::Resolved => "Resolved by",
        CaseStatus::FalsePositive => "False positive — marked by",
        CaseStatus::Reopened => "Reopened by",
        CaseStatus::Unclaimed => "Unclaimed by",
    };
    let mut out = match &view.by {
        Some((who, platform)) => format!(
            "{emoji} {verb} @{} on {}",
            name(&one_line(who)),
            platform_label(platform)
        ),
        None => format!("{emoji} {}", verb.trim_end_matches(" by")),
    };
    if let Some(m) = view.minutes_after_posting {
        out.push_str(" · ");
        out.push_str(&after_posting(m));
    }
    out
}

/// The label a card's [`Level`] adds before its headline: `None` for
/// `Normal`, so such cards read as they always have.
pub fn level_label(level: Level) -> Option<&'static str> {
    match level {
        Level::Low => Some("⚪ Low severity"),
        Level::Normal => None,
        Level::High => Some("🟠 High severity"),
        Level::Urgent => Some("🚨 URGENT"),
    }
}

/// The headline with the level's label before it (`🚨 URGENT · Flagged post
/// · Parents support`), or the headline alone. Raw: the platforms escape it.
pub fn headline(card: &Card) -> Cow<'_, str> {
    match level_label(card.level) {
        Some(label) => Cow::Owned(format!("{label} · {}", card.headline)),
        None => Cow::Borrowed(&card.headline),
    }
}

/// The notes for moderators, raw (untrusted: the platforms escape and cut the
/// result), one paragraph each, identical notes once. A note is prefixed with
/// `rules › match:` when reasons with different notes share the card, so a
/// moderator knows which match asks for what. `None` when no reason has one.
pub fn notes(card: &Card) -> Option<String> {
    let mut seen: Vec<&str> = Vec::new();
    let mut with_note: Vec<(&ReasonView, &str)> = Vec::new();
    for r in &card.reasons {
        if let Some(n) = r.note.as_deref().map(str::trim).filter(|n| !n.is_empty())
            && !seen.contains(&n)
        {
            seen.push(n);
            with_note.push((r, n));
        }
    }
    if with_note.is_empty() {
        return None;
    }
    let several = with_note.len() > 1;
    let paragraphs: Vec<String> = with_note
        .into_iter()
        .map(|(r, n)| {
            let n = multi_line(n);
            if several {
                format!("{} › {}: {n}", one_line(&r.rules), one_line(&r.name))
            } else {
                n
            }
        })
        .collect();
    Some(paragraphs.join("\n"))
}

/// How long the author has been a member, when the post says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberAge {
    /// `2026-05-05 (joined 3 days ago)`.
    pub since: String,
    /// Joined less than [`NEW_ACCOUNT_DAYS`] ago.
    pub new_account: bool,
}

pub fn member_age(card: &Card, now: DateTime<Utc>) -> Option<MemberAge> {
    let joined = card.author.joined_at?;
    let days = (now - joined).num_days();
    let ago = if days < 1 {
        "joined today".to_owned()
    } else {
        format!("joined {} ago", pluralize(days, "day", "days"))
    };
    Some(MemberAge {
        since: format!("{} ({ago})", joined.format("%Y-%m-%d")),
        new_account: days < NEW_ACCOUNT_DAYS,
    })
}

/// The author's username, unless blank.
pub fn username(card: &Card) -> Option<&str> {
    card.author
        .username
        .as_deref()
        .filter(|u| !u.trim().is_empty())
}

/// The author's earlier cards, when known: "3 earlier cards in 30 days:
/// 2 resolved, 1 false positive" (numbers only: nothing to escape).
pub fn earlier_cards(card: &Card) -> Option<String> {
    let e = card.earlier?;
    if e.earlier == 0 {
        return Some("No earlier cards for this author in 30 days".into());
    }
    let mut how = Vec::new();
    if e.resolved > 0 {
        how.push(format!("{} resolved", e.resolved));
    }
    if e.false_positive > 0 {
        how.push(pluralize(
            i64::from(e.false_positive),
            "false positive",
            "false positives",
        ));
    }
    if e.open > 0 {
        how.push(format!("{} open", e.open));
    }
    let head = pluralize(i64::from(e.earlier), "earlier card", "earlier cards");
    Some(format!("{head} in 30 days: {}", how.join(", ")))
}

/// The contact details the destination allows, labelled.
pub fn contacts(card: &Card) -> impl Iterator<Item = (&'static str, &str)> {
    [("Email", &card.author.email), ("Phone", &card.author.phone)]
        .into_iter()
        .filter_map(|(label, v)| v.as_deref().map(|v| (label, v)))
}

/// One reason: `rules › match: “term”, “term”` (or `rules › sensitive
/// group`). `fit` makes an untrusted one-line piece safe and short;
/// `rules_markup` marks the rules file's name up.
pub fn reason_line(
    r: &ReasonView,
    fit: impl Fn(&str) -> String,
    rules_markup: impl Fn(String) -> String,
) -> String {
    let rules = rules_markup(fit(&r.rules));
    let mut line = if r.name == "sensitive" {
        format!("{rules} › sensitive group")
    } else {
        format!("{rules} › {}", fit(&r.name))
    };
    if !r.terms.is_empty() {
        let terms: Vec<String> = r.terms.iter().map(|t| format!("“{}”", fit(t))).collect();
        line.push_str(": ");
        line.push_str(&terms.join(", "));
    }
    line
}

/// Reasons joined by `sep` after `prefix` while they fit in `budget` (as
/// `width` measures), with room kept for the tail; then `tail_sep` and
/// "… and N more reasons" for those left out. Returns the text and how many
/// reasons it shows.
pub fn reasons(
    prefix: String,
    lines: impl Iterator<Item = String>,
    total: usize,
    (sep, tail_sep): (&str, &str),
    budget: usize,
    width: impl Fn(&str) -> usize,
) -> (String, usize) {
    let mut out = prefix;
    let mut shown = 0;
    for line in lines {
        let sep = if shown == 0 { "" } else { sep };
        // Leave room for the "and N more" tail.
        if width(&out) + width(sep) + width(&line) > budget - 40 {
            break;
        }
        out.push_str(sep);
        out.push_str(&line);
        shown += 1;
    }
    if shown < total {
        out.push_str(&format!(
            "{tail_sep}… and {} more",
            pluralize((total - shown) as i64, "reason", "reasons")
        ));
    }
    (out, shown)
}

/// `Cut: 120 of 5000 characters not shown. <link> to read it all.`, where
/// `link` is the platform's link to the post, when it has one that fits.
pub fn cut_note(card: &Card, cut: usize, link: Option<String>) -> String {
    let total = card.content.as_deref().map_or(0, |c| c.chars().count());
    let link = link
        .map(|l| format!(" {l} to read it all."))
        .unwrap_or_else(|| " Open the post in Cativa to read it all.".to_owned());
    format!("Cut: {cut} of {total} characters not shown.{link}")
}

/// The placeholder shown instead of the post text, when there is no text to show.
pub fn placeholder(card: &Card) -> Option<&'static str> {
    match card.content.as_deref() {
        None => Some(MEDIA_ONLY),
        Some(c) if c.trim().is_empty() => Some(EMPTY_TEXT),
        Some(_) => None,
    }
}

/// A card that says plainly it is a test (`check --live --send-test`; no
/// mention: a test must not ping).
pub fn test_card(name: &str, target: &super::Target) -> Card {
    let now = Utc::now();
    Card {
        case: None,
        destination: name.to_owned(),
        target: target.clone(),
        severity: crate::card::Severity::Flagged,
        level: crate::card::Level::Normal,
        not_fully_checked: false,
        headline: "TEST card from modbridge · not a real post".into(),
        place: "modbridge check --live --send-test".into(),
        author: crate::card::AuthorView {
            name: "modbridge".into(),
            username: None,
            user_id: "-".into(),
            joined_at: None,
            badges: 0,
            email: None,
            phone: None,
        },
        content: Some(format!(
            "This is a test card sent by `modbridge check --live --send-test` to destination {name}. Nothing needs moderating: if you can read this, modbridge can post cards here."
        )),
        highlights: Vec::new(),
        image_url: None,
        images: Images::Show,
        reasons: vec![ReasonView {
            rules: "modbridge check".into(),
            name: "test card".into(),
            terms: Vec::new(),
            note: None,
        }],
        customer_id: "-".into(),
        post_id: format!("test-{}", now.timestamp()),
        group_id: None,
        posted_at: now,
        post_url: None,
        mention: None,
        earlier: None,
    }
}

// Grouped messages (issue #14): a wave's digest and a campaign card. The
// text pieces below hold nothing untrusted unless they say so; the
// platforms escape and cut what does.

/// Said at the end of a digest that takes no more entries.
pub const DIGEST_CONTINUED: &str = "This digest is full: continued in the next digest.";
/// The heading over a campaign's posts that went out before it was recognised.
pub const CAMPAIGN_EARLIER: &str = "Posts of this campaign sent before it was recognised";
/// Authors a campaign card names; the rest are counted.
pub const CAMPAIGN_AUTHORS_SHOWN: usize = 10;

/// `🌊 Wave digest · 12 posts · part 2` (the part only from the second on).
pub fn digest_header(d: &Digest) -> String {
    let mut out = format!(
        "🌊 Wave digest · {}",
        pluralize(d.entries.len() as i64, "post", "posts")
    );
    if d.part > 1 {
        out.push_str(&format!(" · part {}", d.part));
    }
    out
}

/// `Wave started 2026-05-08 14:30 UTC`.
pub fn wave_started(d: &Digest) -> String {
    format!(
        "Wave started {}",
        d.wave_started.format("%Y-%m-%d %H:%M UTC")
    )
}

/// `📣 Campaign · 40 posts by 12 authors`.
pub fn campaign_header(c: &Campaign) -> String {
    format!(
        "📣 Campaign · {} by {}",
        pluralize(i64::from(c.posts), "post", "posts"),
        pluralize(c.authors.len() as i64, "author", "authors")
    )
}

/// `First seen 2026-05-08 14:02 UTC · last seen 2026-05-08 14:31 UTC`.
pub fn campaign_seen(c: &Campaign) -> String {
    format!(
        "First seen {} · last seen {}",
        c.first_seen.format("%Y-%m-%d %H:%M UTC"),
        c.last_seen.format("%Y-%m-%d %H:%M UTC")
    )
}

/// `+3 earlier entries not shown` (`what`: "entry"/"entries" style pair).
pub fn not_shown(n: usize, one: &str, many: &str) -> String {
    format!(
        "+{} earlier {} not shown",
        n,
        if n == 1 { one } else { many }
    )
}

/// When an entry's post was written: `14:32 UTC`.
pub fn entry_time(e: &Entry) -> String {
    e.posted_at.format("%H:%M UTC").to_string()
}

/// The entry's author's username, unless blank.
pub fn entry_username(e: &Entry) -> Option<&str> {
    e.username.as_deref().filter(|u| !u.trim().is_empty())
}

/// Why the entry matched, raw (untrusted: rule and match names), with its
/// level's label first when it is not `Normal`.
pub fn entry_reason(e: &Entry) -> String {
    let reason = if e.reason.trim().is_empty() {
        "(no reason given)".to_owned()
    } else {
        one_line(&e.reason)
    };
    match level_label(e.level) {
        Some(label) => format!("{label} · {reason}"),
        None => reason,
    }
}

/// The entry's excerpt on one line (line breaks and control characters
/// become spaces, bidirectional overrides go, as in [`one_line`]) with its
/// highlights moved along; `None` when the entry has no text to show.
pub fn entry_excerpt(e: &Entry) -> Option<(String, Vec<Range<usize>>)> {
    let text = e.excerpt.as_deref().filter(|t| !t.trim().is_empty())?;
    let mut out = String::with_capacity(text.len());
    // The byte offset in `out` of each byte offset of `text` (and its end).
    let mut at = vec![0; text.len() + 1];
    for (i, c) in text.char_indices() {
        at[i] = out.len();
        if matches!(
            c,
            '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        ) {
            continue;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    at[text.len()] = out.len();
    let highlights = e
        .highlights
        .iter()
        .filter(|h| {
            h.start < h.end
                && h.end <= text.len()
                && text.is_char_boundary(h.start)
                && text.is_char_boundary(h.end)
        })
        .map(|h| at[h.start]..at[h.end])
        .filter(|h| h.start < h.end)
        .collect();
    Some((out, highlights))
}

/// What stands for an entry's text when it has none to show.
pub fn entry_placeholder(e: &Entry) -> &'static str {
    match e.excerpt {
        None => MEDIA_ONLY,
        Some(_) => EMPTY_TEXT,
    }
}

/// The campaign's authors: up to [`CAMPAIGN_AUTHORS_SHOWN`] names made
/// safe by `name`, joined by ", ", then "+N more".
pub fn campaign_authors(c: &Campaign, name: impl Fn(&str) -> String) -> String {
    let shown: Vec<String> = c
        .authors
        .iter()
        .take(CAMPAIGN_AUTHORS_SHOWN)
        .map(|a| {
            let n = name(a);
            if n.trim().is_empty() {
                "(no name)".to_owned()
            } else {
                n
            }
        })
        .collect();
    let mut out = if shown.is_empty() {
        "(none known)".to_owned()
    } else {
        shown.join(", ")
    };
    if c.authors.len() > CAMPAIGN_AUTHORS_SHOWN {
        out.push_str(&format!(
            " +{} more",
            c.authors.len() - CAMPAIGN_AUTHORS_SHOWN
        ));
    }
    out
}

/// Which of `entries` a grouped message shows: the newest that fit. `cost`
/// is what one entry takes; `room` is what all of them may take together;
/// at most `max` are shown. Returns the index of the first one shown (the
/// ones before it are "not shown").
pub fn newest_that_fit<T>(
    entries: &[T],
    max: usize,
    room: usize,
    cost: impl Fn(&T) -> usize,
) -> usize {
    let mut used = 0;
    let mut first = entries.len();
    for (i, e) in entries.iter().enumerate().rev() {
        let c = cost(e);
        if entries.len() - i > max || used + c > room {
            break;
        }
        used += c;
        first = i;
    }
    first
}

/// Cards the platforms' render tests share.
#[cfg(test)]
pub(crate) mod fixtures {
    use chrono::{DateTime, TimeZone, Utc};

    use crate::card::Card;

    /// A minute after the example card was posted.
    pub fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 8, 14, 33, 0)
            .single()
            .unwrap_or_default()
    }

    /// The example card with 5,000 family emoji (five code points each, so
    /// a cut inside one shows) and a link to the post.
    pub fn long_card(target: &str) -> Card {
        let mut c = Card::example(target, Some(&"👨‍👩‍👧".repeat(5_000)));
        c.post_url = Some("https://community.example.com/posts/P1".into());
        c
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn status_lines_say_who_where_and_when_with_the_name_made_safe() {
        use crate::card::{CaseStatus as S, CaseView};
        let view = |status, by: Option<(&str, &str)>, minutes| CaseView {
            case_id: "0".repeat(32),
            status,
            by: by.map(|(n, p)| (n.to_owned(), p.to_owned())),
            minutes_after_posting: minutes,
            buttons: true,
        };
        let plain = |s: &str| s.to_owned();
        let ana = Some(("ana", "slack"));
        let bo = Some(("bo", "discord"));
        assert_eq!(
            super::status_line(&view(S::Open, None, None), plain),
            "🔴 Open: nobody has claimed it yet"
        );
        assert_eq!(
            super::status_line(&view(S::Claimed, ana, Some(4)), plain),
            "🟡 Claimed by @ana on Slack · 4 min after posting"
        );
        assert_eq!(
            super::status_line(&view(S::Resolved, bo, Some(0)), plain),
            "✅ Resolved by @bo on Discord · less than a minute after posting"
        );
        assert_eq!(
            super::status_line(&view(S::FalsePositive, bo, Some(125)), plain),
            "⚪ False positive — marked by @bo on Discord · 2 h 5 min after posting"
        );
        assert_eq!(
            super::status_line(&view(S::Reopened, ana, Some(3000)), plain),
            "🔴 Reopened by @ana on Slack · 2 days after posting"
        );
        assert_eq!(
            super::status_line(&view(S::Unclaimed, ana, None), plain),
            "🔴 Unclaimed by @ana on Slack"
        );
        // The name goes through the platform's escaping, on one line.
        let line = super::status_line(
            &view(S::Claimed, Some(("<!channel>\n\u{202E}x", "slack")), None),
            |s| s.replace('<', "&lt;").replace('>', "&gt;"),
        );
        assert_eq!(line, "🟡 Claimed by @&lt;!channel&gt; x on Slack");
    }

    #[test]
    fn button_sets_per_state() {
        use crate::card::CaseStatus as S;
        let labels = |s| {
            super::case_buttons(s)
                .iter()
                .map(|(_, l)| *l)
                .collect::<Vec<_>>()
        };
        for open in [S::Open, S::Reopened, S::Unclaimed] {
            assert_eq!(labels(open), ["Claim", "Resolved", "False positive"]);
        }
        assert_eq!(
            labels(S::Claimed),
            ["Resolved", "False positive", "Unclaim"]
        );
        assert_eq!(labels(S::Resolved), ["Reopen"]);
        assert_eq!(labels(S::FalsePositive), ["Reopen"]);
        use crate::platforms::ModeratorAction as A;
        assert_eq!(
            super::case_buttons(S::Claimed)
                .iter()
                .map(|(a, _)| *a)
                .collect::<Vec<_>>(),
            [A::Resolve, A::FalsePositive, A::Unclaim]
        );
    }

    use super::*;
    use chrono::TimeZone;

    #[test]
    fn member_age_counts_days_and_flags_new_accounts() {
        let card = Card::example("slack:C0123ABCD", None);
        let now = Utc.with_ymd_and_hms(2026, 5, 8, 14, 33, 0).unwrap();
        let age = member_age(&card, now).unwrap();
        assert_eq!(age.since, "2026-05-05 (joined 3 days ago)");
        assert!(age.new_account);
        let later = Utc.with_ymd_and_hms(2026, 6, 8, 14, 33, 0).unwrap();
        assert!(!member_age(&card, later).unwrap().new_account);
    }

    #[test]
    fn reasons_stop_at_the_budget_and_say_how_many_more() {
        let lines = (0..10).map(|i| format!("reason {i}"));
        let (text, shown) = reasons(String::new(), lines, 10, ("; ", " "), 80, |s| s.len());
        assert_eq!(shown, 4, "{text}");
        assert!(text.ends_with(" … and 6 reasons more"), "{text}");
    }

    #[test]
    fn notes_are_said_once_and_name_their_match_when_several() {
        let mut card = Card::example("slack:C0123ABCD", None);
        assert_eq!(notes(&card), None);
        card.reasons[0].note = Some("  ".into());
        assert_eq!(notes(&card), None, "a blank note is no note");
        card.reasons[0].note = Some("Warn\u{202E} the author\nthen log it".into());
        assert_eq!(
            notes(&card).as_deref(),
            Some("Warn the author\nthen log it")
        );
        let mut other = card.reasons[0].clone();
        other.name = "second".into();
        let mut third = other.clone();
        third.note = Some("Ban".into());
        card.reasons.extend([other, third]);
        assert_eq!(
            notes(&card).as_deref(),
            Some("Everywhere › forbidden: Warn the author\nthen log it\nEverywhere › second: Ban")
        );
    }

    #[test]
    fn grouped_headers_count_posts_parts_and_authors() {
        use crate::digest::{Campaign, Digest, Entry};
        let e = Entry::of(&Card::example("slack:C0123ABCD", Some("x")));
        let mut d = Digest {
            destination: "mods".into(),
            target: e_target(),
            wave_started: Utc.with_ymd_and_hms(2026, 5, 8, 14, 30, 0).unwrap(),
            part: 1,
            entries: vec![e.clone()],
            full: false,
        };
        assert_eq!(digest_header(&d), "🌊 Wave digest · 1 post");
        d.part = 2;
        d.entries = vec![e.clone(); 12];
        assert_eq!(digest_header(&d), "🌊 Wave digest · 12 posts · part 2");
        assert_eq!(wave_started(&d), "Wave started 2026-05-08 14:30 UTC");
        let c = Campaign {
            destination: "mods".into(),
            target: e_target(),
            first: e,
            posts: 40,
            authors: (0..13).map(|i| format!("a{i}")).collect(),
            first_seen: d.wave_started,
            last_seen: d.wave_started,
            earlier: Vec::new(),
        };
        assert_eq!(campaign_header(&c), "📣 Campaign · 40 posts by 13 authors");
        assert_eq!(
            campaign_authors(&c, |a| a.to_uppercase()),
            "A0, A1, A2, A3, A4, A5, A6, A7, A8, A9 +3 more"
        );
        assert_eq!(
            not_shown(1, "entry", "entries"),
            "+1 earlier entry not shown"
        );
    }

    fn e_target() -> crate::platforms::Target {
        crate::platforms::Target::parse("slack:C0123ABCD").unwrap()
    }

    #[test]
    #[allow(clippy::single_range_in_vec_init)] // one highlighted range
    fn an_excerpt_goes_on_one_line_and_its_highlights_move_with_it() {
        let mut e = crate::digest::Entry::of(&Card::example("slack:C0123ABCD", None));
        assert_eq!(entry_excerpt(&e), None);
        assert_eq!(entry_placeholder(&e), MEDIA_ONLY);
        e.excerpt = Some(" \n ".into());
        assert_eq!(entry_excerpt(&e), None);
        assert_eq!(entry_placeholder(&e), EMPTY_TEXT);
        // A bidi override (3 bytes) goes before the match, a line break stays
        // a space: the highlight still covers "bad".
        let text = "\u{202E}a\nbad\u{2066}x";
        e.excerpt = Some(text.into());
        let at = text.find("bad").unwrap();
        e.highlights = vec![at..at + 3, 0..1, 5..99];
        let (line, hs) = entry_excerpt(&e).unwrap();
        assert_eq!(line, "a badx");
        assert_eq!(hs, vec![2..5]);
        assert_eq!(&line[hs[0].clone()], "bad");
    }

    #[test]
    fn the_newest_entries_that_fit_are_kept() {
        let costs = [5, 5, 5, 5];
        assert_eq!(newest_that_fit(&costs, 10, 100, |c| *c), 0);
        assert_eq!(newest_that_fit(&costs, 10, 12, |c| *c), 2);
        assert_eq!(newest_that_fit(&costs, 1, 100, |c| *c), 3);
        assert_eq!(newest_that_fit(&costs, 10, 4, |c| *c), 4);
    }

    #[test]
    fn only_a_normal_level_leaves_the_headline_alone() {
        let mut card = Card::example("slack:C0123ABCD", None);
        assert_eq!(headline(&card), "Flagged post · Parents support");
        card.level = Level::Urgent;
        assert_eq!(
            headline(&card),
            "🚨 URGENT · Flagged post · Parents support"
        );
        assert!(level_label(Level::Low).is_some() && level_label(Level::High).is_some());
    }
}
