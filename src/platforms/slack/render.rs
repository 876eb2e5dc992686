//! Slack rendering: a [`Card`], a wave's [`Digest`] or a [`Campaign`] card
//! as a `chat.postMessage` body (Block Kit).
//! The text pieces come from [`present`]; this file adds Slack's markup
//! (mrkdwn escaping, bold, links), Block Kit's shape and limits.
//!
//! Safety rules the renderer keeps for any input:
//! - every piece of untrusted text (content, names, username, email, phone,
//!   matched terms, notes for moderators, place, IDs) is escaped (`&`, `<`,
//!   `>`) wherever it appears, so no post can ping anyone or render a
//!   disguised link; the only `<…>`
//!   sequences are the destination's configured mention and links modbridge
//!   writes itself (URLs parsed, `|` percent-encoded);
//! - every text stays inside the Block Kit limits in [`limits`], measured in
//!   UTF-16 code units (never fewer than Slack's characters), cut on grapheme
//!   boundaries, and the card says how much was cut.

use std::borrow::Cow;
use std::ops::Range;

use chrono::{DateTime, Utc};
use slack_morphism::prelude::*;
use unicode_segmentation::UnicodeSegmentation;

use crate::card::{Card, Images, Severity};
use crate::digest::{Campaign, Digest, Entry, Grouped};
use crate::platforms::present::{self, one_line};

/// Block Kit limits for messages (shared/reference/slack.md), in characters.
/// Block Kit limits for messages (shared/reference/slack.md), in characters.
pub mod limits {
    pub const BLOCKS: usize = 50;
    pub const TEXT: usize = 3_000;
    pub const SECTION_FIELD: usize = 2_000;
    pub const SECTION_FIELDS: usize = 10;
    pub const HEADER: usize = 150;
    pub const CONTEXT_ELEMENTS: usize = 10;
    pub const IMAGE_URL: usize = 3_000;
    pub const ALT_TEXT: usize = 2_000;
    pub const ACTIONS_ELEMENTS: usize = 25;
    pub const BUTTON_TEXT: usize = 75;
    pub const BUTTON_URL: usize = 3_000;
    pub const BUTTON_VALUE: usize = 2_000;
    pub const ACTION_ID: usize = 255;
    pub const BLOCK_ID: usize = 255;
    /// All block text together (undocumented: `msg_blocks_too_long`).
    pub const ALL_BLOCK_TEXT: usize = 12_000;
    /// The fallback `text`: Slack truncates past 40,000; notifications want it short.
    pub const FALLBACK_TEXT: usize = 4_000;
}

// Our own budgets, inside the limits above.
const TOTAL_BUDGET: usize = 11_000;
const CONTENT_SECTION: usize = 2_900;
const CONTENT_MAX: usize = 7_500;
const CONTENT_SECTIONS: usize = 3;
const CUT_NOTE_BUDGET: usize = 1_100;
const NAME_BUDGET: usize = 200;
const USERNAME_BUDGET: usize = 100;
const CONTACT_BUDGET: usize = 200;
const REASONS_BUDGET: usize = 1_500;
/// The notes for moderators, all together (escaped).
const NOTES_BUDGET: usize = 1_000;
const TERM_BUDGET: usize = 100;
const ID_BUDGET: usize = 100;
const LINK_URL_BUDGET: usize = 1_000;
const FALLBACK_BUDGET: usize = 300;
const FALLBACK_HEADER: usize = 100;
const FALLBACK_NAME: usize = 60;

/// Width as Slack could count it at most: UTF-16 code units (an emoji is 2, a
/// character never more).
pub fn width(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Escapes the three mrkdwn control characters.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `raw` escaped, cut on a grapheme boundary so that the result (with `…` when
/// cut) is at most `budget` wide. Returns the text and how many characters of
/// `raw` were left out.
fn fit(raw: &str, budget: usize) -> (String, usize) {
    super::super::text::fit_escaped(raw, budget, |s| escape(s).into_owned(), width)
}

/// A URL modbridge may write into a block or a link: parsed, http(s), and in a
/// mrkdwn link it cannot end the URL early (`|` is percent-encoded; the parser
/// already encoded `<`, `>` and spaces).
fn web_url(raw: &str) -> Option<url::Url> {
    let url = url::Url::parse(raw.trim()).ok()?;
    matches!(url.scheme(), "http" | "https").then_some(url)
}

fn mrkdwn_link(url: &url::Url, label: &str) -> Option<String> {
    let target = url.as_str().replace('|', "%7C");
    let target = escape(&target);
    (width(&target) <= LINK_URL_BUDGET).then(|| format!("<{target}|{label}>"))
}

/// How the image is shown: as an image block, or (after Slack could not fetch
/// it) as a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageMode {
    Block,
    Link,
}

/// The content as mrkdwn sections: highlighted ranges bold, escaped, cut on
/// grapheme boundaries. Returns the sections and the characters left out.
fn content_sections(
    content: &str,
    highlights: &[Range<usize>],
    budget: usize,
) -> (Vec<String>, usize) {
    let ranges = super::super::text::clean_highlights(content, highlights);
    let pieces: Vec<(usize, &str, bool)> = content
        .grapheme_indices(true)
        .map(|(at, g)| {
            let bold = !g.contains('\n') && ranges.iter().any(|r| r.start <= at && at < r.end);
            (at, g, bold)
        })
        .collect();
    let starts_alnum = |g: &str| g.chars().next().is_some_and(char::is_alphanumeric);
    let ends_alnum = |s: &str| s.chars().next_back().is_some_and(char::is_alphanumeric);

    let mut sections = Vec::new();
    let mut idx = 0;
    let mut remaining = budget;
    while idx < pieces.len() && sections.len() < CONTENT_SECTIONS {
        let limit = remaining.min(CONTENT_SECTION);
        let mut s = String::new();
        let mut w = 0;
        let mut bold = false;
        while let Some(&(_, g, b)) = pieces.get(idx) {
            let opens = b && !bold && !g.trim().is_empty();
            let e = escape(g);
            // Opening reserves the closing marker and two zero-width spaces.
            let cost = width(&e) + if opens { 4 } else { 0 };
            if w + cost > limit {
                break;
            }
            if opens {
                if ends_alnum(&s) {
                    s.push('\u{200B}');
                }
                s.push('*');
                bold = true;
            } else if bold && !b {
                s.push('*');
                if starts_alnum(g) {
                    s.push('\u{200B}');
                }
                bold = false;
            }
            s.push_str(&e);
            w += cost;
            idx += 1;
        }
        if bold {
            s.push('*');
        }
        if s.trim().is_empty() {
            break;
        }
        remaining = remaining.saturating_sub(width(&s));
        sections.push(s);
    }
    let cut = pieces
        .get(idx)
        .map_or(0, |&(at, _, _)| content[at..].chars().count());
    (sections, cut)
}

fn section(text: String) -> SlackBlock {
    SlackSectionBlock::new()
        .with_text(SlackBlockMarkDownText::new(text).into())
        .into()
}

/// `fit` for a one-line field: control characters out, escaped, cut.
fn line(raw: &str, budget: usize) -> String {
    fit(&one_line(raw), budget).0
}

fn context(texts: Vec<String>) -> SlackBlock {
    SlackContextBlock::new(
        texts
            .into_iter()
            .map(|t| SlackBlockMarkDownText::new(t).into())
            .collect(),
    )
    .into()
}

/// Name, username, member age, badges and the contact details allowed.
fn author_text(card: &Card, now: DateTime<Utc>) -> String {
    let mut author = format!("*{}*", line(&card.author.name, NAME_BUDGET));
    if let Some(u) = present::username(card) {
        author.push_str(&format!(" (@{})", line(u, USERNAME_BUDGET)));
    }
    match present::member_age(card, now) {
        Some(age) => {
            author.push_str(&format!("\nMember since {}", age.since));
            if age.new_account {
                author.push_str(" · :new: *new account*");
            }
        }
        None => author.push_str("\nMember since: unknown"),
    }
    author.push_str(&format!(
        " · {}",
        present::pluralize(card.author.badges as i64, "badge", "badges")
    ));
    for (label, value) in present::contacts(card) {
        author.push_str(&format!("\n{label}: {}", line(value, CONTACT_BUDGET)));
    }
    if let Some(earlier) = present::earlier_cards(card) {
        author.push_str(&format!("\n:card_index_dividers: {earlier}"));
    }
    author
}

/// "*Why:* …" (reasons and terms), or what stands in for them.
fn why_text(card: &Card) -> String {
    let lines = card
        .reasons
        .iter()
        .map(|r| present::reason_line(r, |s| line(s, TERM_BUDGET), |rules| rules));
    let (why, _) = present::reasons(
        "*Why:* ".to_owned(),
        lines,
        card.reasons.len(),
        ("; ", " "),
        REASONS_BUDGET,
        width,
    );
    match (card.reasons.is_empty(), card.severity) {
        (true, Severity::Notice) => "*modbridge notice*".to_owned(),
        (true, _) => format!("{why}(no reason given)"),
        (false, _) => why,
    }
}

/// The image as a block, or a note with a link to it. The destination's
/// `images` decides first: `spoiler` shows a "Show image" link button
/// (nothing is fetched or shown until a moderator opens it), `link` only a
/// link (`unfurl_media` is off, so Slack does not preview it).
fn image_parts(card: &Card, image: ImageMode) -> (Option<SlackBlock>, Option<String>) {
    let Some(url) = card.image_url.as_deref().and_then(web_url) else {
        return (None, None);
    };
    if card.images == Images::Spoiler {
        if width(url.as_str()) > limits::BUTTON_URL {
            return (None, Some(present::IMAGE_HIDDEN_TOO_LONG.to_owned()));
        }
        let button =
            SlackBlockButtonElement::new(SlackBlockPlainText::new("Show image".into()).into())
                .with_action_id(SlackActionId::new("show_image".into()))
                .with_url(url);
        let block = SlackSectionBlock::new()
            .with_text(
                SlackBlockMarkDownText::new(format!(":see_no_evil: {}", present::IMAGE_HIDDEN))
                    .into(),
            )
            .with_accessory(SlackSectionBlockElement::Button(button));
        return (Some(block.into()), None);
    }
    if image == ImageMode::Block
        && card.images == Images::Show
        && width(url.as_str()) <= limits::IMAGE_URL
    {
        let block = SlackImageBlock::new(
            SlackImageUrlOrFile::ImageUrl { image_url: url },
            "Image attached to the post".into(),
        );
        return (Some(block.into()), None);
    }
    let note = match mrkdwn_link(&url, "open image") {
        Some(link) if card.images == Images::Link => {
            format!("{}: {link}", present::IMAGE_AS_LINK)
        }
        Some(link) if image == ImageMode::Link => {
            format!("Image (Slack could not show it): {link}")
        }
        Some(link) => format!("Image: {link}"),
        None => "Image: (its address is too long to show)".to_owned(),
    };
    (None, Some(note))
}

/// The content sections (or a placeholder) and, when cut, the note saying so.
fn content_blocks(card: &Card, budget: usize, post_url: Option<&url::Url>) -> Vec<SlackBlock> {
    let (mut sections, cut) = match (present::placeholder(card), card.content.as_deref()) {
        (Some(p), _) => (vec![format!("_{p}_")], 0),
        (None, Some(c)) => content_sections(c, &card.highlights, budget),
        (None, None) => (Vec::new(), 0),
    };
    if sections.is_empty() {
        sections.push(format!("_{}_", present::TEXT_HIDDEN));
    }
    let mut blocks: Vec<SlackBlock> = sections.into_iter().map(section).collect();
    if cut > 0 {
        let link = post_url.and_then(|u| mrkdwn_link(u, "Open the post"));
        let note = present::cut_note(card, cut, link);
        blocks.push(context(vec![format!(":scissors: {note}")]));
    }
    blocks
}

/// The fallback `text`: one short escaped line (notifications show it).
fn fallback_text(card: &Card, mention: Option<&str>) -> String {
    let excerpt_raw: String = card
        .content
        .as_deref()
        .map(one_line)
        .unwrap_or_else(|| "(media only)".into());
    let prefix = format!(
        "{}{} — {}: ",
        mention.map(|m| format!("{m} ")).unwrap_or_default(),
        line(&present::headline(card), FALLBACK_HEADER),
        line(&card.author.name, FALLBACK_NAME),
    );
    let excerpt = fit(&excerpt_raw, FALLBACK_BUDGET.saturating_sub(width(&prefix))).0;
    format!("{prefix}{excerpt}")
}

/// The `chat.postMessage` body of a reminder in the thread of the card at
/// `thread_ts`: plain mrkdwn text, the configured mention (if it is Slack
/// mention syntax) its only `<…>` sequence. Nothing untrusted in it.
pub fn reminder(
    channel: &str,
    thread_ts: &str,
    r: &crate::platforms::Reminder,
) -> serde_json::Value {
    let mention = r
        .mention
        .as_deref()
        .and_then(super::mention_markup)
        .map(|m| format!("{m} "))
        .unwrap_or_default();
    serde_json::json!({
        "channel": channel,
        "thread_ts": thread_ts,
        "text": format!(":alarm_clock: {mention}{}", present::still_open(r.after)),
    })
}

/// The `chat.postMessage` body for `card` in `channel`. `now` is when it is
/// sent (for "joined N days ago").
pub fn render(
    card: &Card,
    channel: &str,
    now: DateTime<Utc>,
    image: ImageMode,
) -> SlackApiChatPostMessageRequest {
    // Header (plain text, escaped too: Slack decodes the entities), with the
    // level's label: Block Kit has no colour.
    let header = line(&present::headline(card), limits::HEADER);
    let mut blocks: Vec<SlackBlock> =
        vec![SlackHeaderBlock::new(SlackBlockPlainText::new(header).into()).into()];
    // The case's status line, under the header (the handle escaped).
    if let Some(view) = &card.case {
        blocks.push(context(vec![present::status_line(view, |n| {
            line(n, USERNAME_BUDGET)
        })]));
    }
    // Mention: only the destination's, only when a match asked for it.
    let mention = card.mention.as_deref().and_then(super::mention_markup);
    if let Some(m) = &mention {
        blocks.push(section(format!("{m} a moderator is needed")));
    }
    // A notice from modbridge itself has no author worth a block.
    if card.severity != Severity::Notice {
        blocks.push(section(author_text(card, now)));
    }
    let (image_block, image_note) = image_parts(card, image);
    let meta = format!(
        "Posted {} · post ID {}",
        card.posted_at.format("%Y-%m-%d %H:%M UTC"),
        line(&card.post_id, ID_BUDGET)
    );
    let why = context(vec![why_text(card), meta]);
    // Under the reasons: the notes (post text inside, escaped) and whether
    // the rules could check everything.
    let mut after_why: Vec<SlackBlock> = Vec::new();
    if let Some(notes) = present::notes(card) {
        let text = fit(&notes, NOTES_BUDGET).0;
        after_why.push(section(format!(
            ":memo: *{}:*\n{text}",
            present::NOTE_HEADING
        )));
    }
    if card.not_fully_checked {
        after_why.push(context(vec![format!(
            ":hourglass_flowing_sand: {}",
            present::NOT_FULLY_CHECKED
        )]));
    }
    let post_url = card
        .post_url
        .as_deref()
        .and_then(web_url)
        .filter(|u| width(u.as_str()) <= limits::BUTTON_URL);
    // The case's buttons (when this copy carries them), then "Open post".
    let mut buttons: Vec<SlackActionBlockElement> = Vec::new();
    if let Some(view) = card.case.as_ref().filter(|v| v.buttons) {
        for (action, label) in present::case_buttons(view.status) {
            let mut b =
                SlackBlockButtonElement::new(SlackBlockPlainText::new((*label).into()).into())
                    .with_action_id(SlackActionId::new(super::interaction::action_id(*action)))
                    .with_value(view.case_id.clone());
            if *action == crate::platforms::ModeratorAction::Claim {
                b = b.with_style(SlackBlockButtonStyle::Primary);
            }
            buttons.push(b.into());
        }
    }
    if let Some(u) = &post_url {
        buttons.push(
            SlackBlockButtonElement::new(SlackBlockPlainText::new("Open post".into()).into())
                .with_action_id(SlackActionId::new("open_post".into()))
                .with_url(u.clone())
                .into(),
        );
    }
    let actions: Option<SlackBlock> =
        (!buttons.is_empty()).then(|| SlackActionsBlock::new(buttons).into());
    // Content gets what the rest leaves of the whole-message budget.
    let used: usize = blocks
        .iter()
        .chain(image_block.iter())
        .chain(std::iter::once(&why))
        .chain(after_why.iter())
        .chain(actions.iter())
        .map(block_text_width)
        .sum::<usize>()
        + image_note.as_deref().map_or(0, width);
    let content_budget = TOTAL_BUDGET
        .saturating_sub(used + CUT_NOTE_BUDGET)
        .min(CONTENT_MAX);
    blocks.extend(content_blocks(card, content_budget, post_url.as_ref()));
    blocks.extend(image_note.map(section));
    blocks.extend(image_block);
    blocks.push(why);
    blocks.extend(after_why);
    blocks.extend(actions);
    let text = fallback_text(card, mention.as_deref());
    SlackApiChatPostMessageRequest::new(
        channel.to_owned().into(),
        SlackMessageContent::new()
            .with_text(text)
            .with_blocks(blocks),
    )
    .with_unfurl_links(false)
    .with_unfurl_media(false)
}

/// The body as JSON (dry run, `explain`).
pub fn payload(card: &Card, channel: &str, now: DateTime<Utc>) -> serde_json::Value {
    serde_json::to_value(render(card, channel, now, ImageMode::Block))
        .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }))
}

// Grouped messages (issue #14): a wave's digest and a campaign card, as
// plain Block Kit JSON. No mention ever, no buttons but "Open post" links.

/// One entry's section text, at most (25 of them fit [`GROUP_BUDGET`]).
const ENTRY_BUDGET: usize = 420;
/// All block text of a grouped message (inside [`limits::ALL_BLOCK_TEXT`]).
const GROUP_BUDGET: usize = 11_500;
const ENTRY_NAME: usize = 50;
const ENTRY_USERNAME: usize = 30;
const ENTRY_PLACE: usize = 40;
const ENTRY_REASON: usize = 100;
/// The campaign's text (its first post's excerpt, highlighted).
const CAMPAIGN_TEXT: usize = 1_500;
const CAMPAIGN_REASON: usize = 600;
const CAMPAIGN_AUTHOR: usize = 40;

fn section_json(text: String) -> serde_json::Value {
    serde_json::json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

fn context_json(text: String) -> serde_json::Value {
    serde_json::json!({"type": "context", "elements": [{"type": "mrkdwn", "text": text}]})
}

fn header_json(text: &str) -> serde_json::Value {
    serde_json::json!({"type": "header", "text": {"type": "plain_text", "text": line(text, limits::HEADER)}})
}

/// The excerpt of `e` highlighted and escaped within `budget`, or its
/// placeholder.
fn entry_text(e: &Entry, budget: usize) -> String {
    let shown = present::entry_excerpt(e).and_then(|(text, hs)| {
        let (sections, cut) = content_sections(&text, &hs, budget.saturating_sub(1));
        let more = cut > 0 || sections.len() > 1;
        let mut s = sections.into_iter().next()?;
        if more {
            s.push('…');
        }
        Some(s)
    });
    shown.unwrap_or_else(|| format!("_{}_", present::entry_placeholder(e)))
}

/// One entry as a section: who, where, when, why, the excerpt with its
/// matches in bold; its "Open post" link as the section's button (its URL
/// is not block text; its `action_id`, `open_post_<n>`, is unique in the
/// message and ignored when clicked). At most [`ENTRY_BUDGET`] wide.
fn entry_block(n: usize, e: &Entry) -> serde_json::Value {
    let mut who = format!("*{}*", line(&e.author, ENTRY_NAME));
    if let Some(u) = present::entry_username(e) {
        who.push_str(&format!(" (@{})", line(u, ENTRY_USERNAME)));
    }
    let head = format!(
        "{who} · {} · {}",
        line(&e.place, ENTRY_PLACE),
        present::entry_time(e)
    );
    let why = format!("Why: {}", line(&present::entry_reason(e), ENTRY_REASON));
    let room = ENTRY_BUDGET.saturating_sub(width(&head) + width(&why) + 2);
    let text = format!("{head}\n{why}\n{}", entry_text(e, room));
    let mut block = section_json(text);
    if let Some(u) = e
        .post_url
        .as_deref()
        .and_then(web_url)
        .filter(|u| width(u.as_str()) <= limits::BUTTON_URL)
    {
        block["accessory"] = serde_json::json!({
            "type": "button",
            "text": {"type": "plain_text", "text": "Open post"},
            "action_id": format!("open_post_{n}"),
            "url": u.as_str(),
        });
    }
    block
}

/// The entry blocks of `entries` that fit `blocks_left` blocks and `room`
/// text, newest kept; with "+N … not shown" first when some are left out.
fn entry_blocks(
    entries: &[Entry],
    blocks_left: usize,
    room: usize,
    (one, many): (&str, &str),
) -> Vec<serde_json::Value> {
    let rendered: Vec<serde_json::Value> = entries
        .iter()
        .enumerate()
        .map(|(n, e)| entry_block(n, e))
        .collect();
    // Keep a block and some text for the "not shown" line.
    let first = present::newest_that_fit(
        &rendered,
        blocks_left.saturating_sub(1),
        room.saturating_sub(60),
        json_text_width,
    );
    let mut out = Vec::new();
    if first > 0 {
        out.push(context_json(format!(
            ":arrow_up: {}",
            present::not_shown(first, one, many)
        )));
    }
    out.extend(rendered.into_iter().skip(first));
    out
}

fn digest_blocks(d: &Digest) -> Vec<serde_json::Value> {
    let mut blocks = vec![
        header_json(&present::digest_header(d)),
        context_json(format!(
            "{} · {}",
            present::wave_started(d),
            line(&d.destination, ENTRY_PLACE)
        )),
    ];
    let tail = d
        .full
        .then(|| context_json(format!(":arrow_right: {}", present::DIGEST_CONTINUED)));
    let used: usize = blocks.iter().chain(tail.iter()).map(json_text_width).sum();
    let blocks_left = limits::BLOCKS - blocks.len() - usize::from(tail.is_some());
    blocks.extend(entry_blocks(
        &d.entries,
        blocks_left,
        GROUP_BUDGET.saturating_sub(used),
        ("entry", "entries"),
    ));
    blocks.extend(tail);
    blocks
}

fn campaign_blocks(c: &Campaign) -> Vec<serde_json::Value> {
    let text = entry_text(&c.first, CAMPAIGN_TEXT);
    let authors = present::campaign_authors(c, |a| line(a, CAMPAIGN_AUTHOR));
    let mut blocks = vec![
        header_json(&present::campaign_header(c)),
        section_json(text),
        context_json(format!(
            "*Why:* {}",
            line(&present::entry_reason(&c.first), CAMPAIGN_REASON)
        )),
        section_json(format!("*Authors:* {authors}")),
        context_json(format!(
            "{} · {}",
            present::campaign_seen(c),
            line(&c.destination, ENTRY_PLACE)
        )),
    ];
    if !c.earlier.is_empty() {
        blocks.push(section_json(format!("*{}:*", present::CAMPAIGN_EARLIER)));
        let used: usize = blocks.iter().map(json_text_width).sum();
        let blocks_left = limits::BLOCKS - blocks.len();
        blocks.extend(entry_blocks(
            &c.earlier,
            blocks_left,
            GROUP_BUDGET.saturating_sub(used),
            ("post", "posts"),
        ));
    }
    blocks
}

/// The `chat.postMessage` body of a grouped message in `channel` (a
/// `chat.update` takes its `text` and `blocks`). The fallback text is the
/// header alone: nothing untrusted, nothing that pings.
pub fn grouped(g: &Grouped, channel: &str, _now: DateTime<Utc>) -> serde_json::Value {
    let (text, blocks) = match g {
        Grouped::Digest(d) => (present::digest_header(d), digest_blocks(d)),
        Grouped::Campaign(c) => (present::campaign_header(c), campaign_blocks(c)),
    };
    serde_json::json!({
        "channel": channel,
        "text": line(&text, FALLBACK_BUDGET),
        "blocks": blocks,
        "unfurl_links": false,
        "unfurl_media": false,
    })
}

/// Sum of the text a block carries (what `msg_blocks_too_long` counts).
fn block_text_width(block: &SlackBlock) -> usize {
    serde_json::to_value(block)
        .map(|v| json_text_width(&v))
        .unwrap_or(0)
}

fn json_text_width(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| match (k.as_str(), v) {
                ("text" | "alt_text", serde_json::Value::String(s)) => width(s),
                (_, other) => json_text_width(other),
            })
            .sum(),
        serde_json::Value::Array(items) => items.iter().map(json_text_width).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::super::mention_markup;
    use super::*;

    #[test]
    fn reminders_reply_in_the_thread_and_ping_only_the_configured_mention() {
        use crate::platforms::Reminder;
        let mut r = Reminder {
            after: std::time::Duration::from_secs(1800),
            mention: Some("S0123ABC".into()),
            link: Some("https://x.example/p/1".into()),
        };
        let body = reminder("C0123ABCD", "1700000000.000100", &r);
        assert_eq!(
            body,
            serde_json::json!({
                "channel": "C0123ABCD",
                "thread_ts": "1700000000.000100",
                "text": ":alarm_clock: <!subteam^S0123ABC> Still open after 30 min: nobody has claimed this card."
            })
        );
        for bad in ["<!everyone>", "everyone", ""] {
            r.mention = Some(bad.into());
            assert_eq!(
                reminder("C1", "1.2", &r)["text"],
                ":alarm_clock: Still open after 30 min: nobody has claimed this card."
            );
        }
        r.mention = Some("here".into());
        r.after = std::time::Duration::from_secs(90);
        assert_eq!(
            reminder("C1", "1.2", &r)["text"],
            ":alarm_clock: <!here> Still open after 1 min: nobody has claimed this card."
        );
    }
    use crate::platforms::present::fixtures::{self, now};

    fn c_target() -> String {
        "slack:C0123ABCD".to_owned()
    }

    fn card(content: Option<&str>) -> Card {
        Card::example(&c_target(), content)
    }

    fn json(card: &Card) -> serde_json::Value {
        payload(card, "C0123ABCD", now())
    }

    fn all_strings(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|v| all_strings(v, out)),
            serde_json::Value::Object(m) => m.values().for_each(|v| all_strings(v, out)),
            _ => {}
        }
    }

    #[test]
    #[allow(clippy::single_range_in_vec_init)] // one highlighted range
    fn card_has_header_author_content_context_and_no_unfurls() {
        let text = "this has a forbidden phrase in it";
        let mut c = card(Some(text));
        let at = text.find("forbidden phrase").unwrap();
        c.highlights = vec![at..at + "forbidden phrase".len()];
        c.image_url = Some("https://cdn.example.com/a.png".into());
        c.post_url = Some("https://community.example.com/posts/P1".into());
        let v = json(&c);
        assert_eq!(v["unfurl_links"], false);
        assert_eq!(v["unfurl_media"], false);
        assert_eq!(v["channel"], "C0123ABCD");
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["type"], "plain_text");
        assert_eq!(blocks[0]["text"]["text"], "Flagged post · Parents support");
        let author = blocks[1]["text"]["text"].as_str().unwrap();
        assert!(author.contains("*Mary Smith* (@mary)"), "{author}");
        assert!(
            author.contains("Member since 2026-05-05 (joined 3 days ago)"),
            "{author}"
        );
        assert!(author.contains("new account"), "{author}");
        assert!(author.contains("2 badges"), "{author}");
        assert_eq!(
            blocks[2]["text"]["text"],
            "this has a *forbidden phrase* in it"
        );
        let image = blocks.iter().find(|b| b["type"] == "image").unwrap();
        assert_eq!(image["image_url"], "https://cdn.example.com/a.png");
        assert!(!image["alt_text"].as_str().unwrap().is_empty());
        let context = blocks.iter().find(|b| b["type"] == "context").unwrap();
        let why = context["elements"][0]["text"].as_str().unwrap();
        assert!(
            why.contains("Everywhere › forbidden: “forbidden phrase”"),
            "{why}"
        );
        let meta = context["elements"][1]["text"].as_str().unwrap();
        assert!(
            meta.contains("2026-05-08 14:32 UTC") && meta.contains("P1"),
            "{meta}"
        );
        let actions = blocks.iter().find(|b| b["type"] == "actions").unwrap();
        assert_eq!(
            actions["elements"][0]["url"],
            "https://community.example.com/posts/P1"
        );
        assert_eq!(actions["elements"][0]["text"]["text"], "Open post");
        let fallback = v["text"].as_str().unwrap();
        assert!(
            fallback.starts_with("Flagged post · Parents support — Mary Smith: "),
            "{fallback}"
        );
        assert!(width(fallback) <= FALLBACK_BUDGET);
    }

    fn digest_of(entries: Vec<Entry>, full: bool) -> Grouped {
        Grouped::Digest(Digest {
            destination: "mods".into(),
            target: crate::platforms::Target::parse("slack:C0123ABCD").unwrap(),
            wave_started: now(),
            part: 1,
            entries,
            full,
        })
    }

    #[test]
    #[allow(clippy::single_range_in_vec_init)] // one highlighted range
    fn a_digest_entry_shows_who_why_the_match_in_bold_and_never_pings() {
        let text = "<!channel> buy a forbidden phrase <https://evil|bank>";
        let mut c = card(Some(text));
        let at = text.find("forbidden phrase").unwrap();
        c.highlights = vec![at..at + "forbidden phrase".len()];
        c.author.name = "<!here> Mallory".into();
        c.post_url = Some("https://community.example.com/posts/P1".into());
        let v = grouped(&digest_of(vec![Entry::of(&c)], true), "C0123ABCD", now());
        assert_eq!(v["text"], "🌊 Wave digest · 1 post");
        let blocks = v["blocks"].as_array().unwrap();
        let entry = &blocks[2];
        assert_eq!(
            entry["text"]["text"],
            "*&lt;!here&gt; Mallory* (@mary) · Parents support · 14:32 UTC\nWhy: Everywhere · forbidden\n&lt;!channel&gt; buy a *forbidden phrase* &lt;https://evil|bank&gt;"
        );
        assert_eq!(
            entry["accessory"]["url"],
            "https://community.example.com/posts/P1"
        );
        let last = blocks.last().unwrap();
        assert_eq!(
            last["elements"][0]["text"],
            format!(":arrow_right: {}", present::DIGEST_CONTINUED)
        );
        let mut strings = Vec::new();
        all_strings(&v, &mut strings);
        assert!(strings.iter().all(|s| !s.contains('<')), "{strings:?}");
    }

    #[test]
    fn media_only_post_says_so() {
        let v = json(&card(None));
        let texts: Vec<String> = v["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|b| b["text"]["text"].as_str().map(str::to_owned))
            .collect();
        assert!(
            texts.iter().any(|t| t.contains("(no text: media only)")),
            "{texts:?}"
        );
        assert!(!texts.iter().any(|t| t.trim().is_empty()));
    }

    #[test]
    fn untrusted_text_is_escaped_and_mentions_only_when_configured() {
        let mut c = card(Some("<!channel> & <https://evil.example|bank> <@U123>"));
        c.author.name = "<!here>".into();
        c.author.username = Some("<!subteam^S123>".into());
        c.reasons[0].terms = vec!["<!everyone>".into()];
        let v = json(&c);
        let mut strings = Vec::new();
        all_strings(&v, &mut strings);
        for s in &strings {
            assert!(!s.contains('<'), "live markup in {s:?}");
        }
        let content = v["blocks"][2]["text"]["text"].as_str().unwrap();
        assert_eq!(
            content,
            "&lt;!channel&gt; &amp; &lt;https://evil.example|bank&gt; &lt;@U123&gt;"
        );
        c.mention = Some("here".into());
        let v = json(&c);
        assert!(v["text"].as_str().unwrap().starts_with("<!here> "));
        assert_eq!(
            v["blocks"][1]["text"]["text"],
            "<!here> a moderator is needed"
        );
        c.mention = Some("<!everyone>".into());
        let v = json(&c);
        let mut strings = Vec::new();
        all_strings(&v, &mut strings);
        assert!(strings.iter().all(|s| !s.contains('<')));
        assert_eq!(
            mention_markup("S0123ABC").as_deref(),
            Some("<!subteam^S0123ABC>")
        );
    }

    #[test]
    fn highlights_inside_words_and_across_lines_stay_bold() {
        let text = "unforbiddenly\nforbidden\nphrase";
        let mut c = card(Some(text));
        c.highlights = vec![2..11, 14..30];
        let v = json(&c);
        assert_eq!(
            v["blocks"][2]["text"]["text"],
            "un\u{200B}*forbidden*\u{200B}ly\n*forbidden*\n*phrase*"
        );
    }

    #[test]
    fn long_content_is_cut_on_graphemes_and_says_how_much() {
        let c = fixtures::long_card(&c_target());
        let text = c.content.clone().unwrap();
        let v = json(&c);
        let blocks = v["blocks"].as_array().unwrap();
        let mut shown = 0;
        for b in blocks.iter().filter(|b| b["type"] == "section").skip(1) {
            let t = b["text"]["text"].as_str().unwrap();
            assert!(width(t) <= limits::TEXT);
            // Whole families only: never a lone ZWJ at either end.
            assert!(
                t.starts_with('👨') && t.ends_with('👧'),
                "cut inside a grapheme"
            );
            shown += t.chars().count();
        }
        let total = text.chars().count();
        let note = blocks
            .iter()
            .filter(|b| b["type"] == "context")
            .find_map(|b| {
                b["elements"][0]["text"]
                    .as_str()
                    .filter(|t| t.contains("Cut:"))
            })
            .unwrap();
        assert!(
            note.contains(&format!("{} of {total} characters", total - shown)),
            "{note}"
        );
        assert!(note.contains("<https://community.example.com/posts/P1|Open the post>"));
    }

    #[test]
    fn image_link_mode_replaces_the_block_with_a_safe_link() {
        let mut c = card(Some("x"));
        c.image_url = Some("https://cdn.example.com/a.png?x=1|<!channel>".into());
        let req = render(&c, "C0123ABCD", now(), ImageMode::Link);
        let v = serde_json::to_value(&req).unwrap();
        let blocks = v["blocks"].as_array().unwrap();
        assert!(blocks.iter().all(|b| b["type"] != "image"));
        let note = blocks
            .iter()
            .find_map(|b| {
                b["text"]["text"]
                    .as_str()
                    .filter(|t| t.starts_with("Image"))
            })
            .unwrap();
        assert!(
            note.contains("<https://cdn.example.com/a.png?x=1%7C%3C!channel%3E|open image>"),
            "{note}"
        );
    }
}
