//! Discord rendering: a [`Card`] as one embed plus an "Open post" link
//! button, wrapped as a bot message (with a nonce) or a webhook execution;
//! a wave's digest or a campaign card ([`Grouped`]) as one embed whose
//! fields are its entries.
//! The text pieces come from [`present`]; this file adds Discord's markup
//! (markdown escaping, bold, masked links), the embed's shape and limits.
//!
//! Safety rules the renderer keeps for any input:
//! - every message sets `allowed_mentions` to parse nothing; the only mention
//!   is the destination's configured role, written by modbridge into `content`
//!   and allowed explicitly through `allowed_mentions.roles`;
//! - untrusted text (content, names, matched terms, notes, place) is
//!   Discord-markdown escaped wherever markdown renders, so no post can forge formatting, masked
//!   links or mention chips; one-line fields lose line breaks, control
//!   characters and bidirectional overrides;
//! - every text stays inside Discord's limits in [`limits`], counted in
//!   characters (code points, as Discord and serenity count), cut on grapheme
//!   boundaries, and the card says how much was cut.

use std::ops::Range;

use chrono::{DateTime, Utc};
use serenity::builder::{
    CreateActionRow, CreateAllowedMentions, CreateButton, CreateEmbed, CreateEmbedAuthor,
    CreateEmbedFooter, CreateMessage, EditMessage, EditWebhookMessage, ExecuteWebhook,
};
use serenity::model::Timestamp;
use serenity::model::application::ButtonStyle;
use serenity::model::channel::Nonce;
use serenity::model::id::RoleId;
use sha2::{Digest, Sha256};
use unicode_segmentation::UnicodeSegmentation;

use crate::card::{Card, Images, Level, ReasonView, Severity};
use crate::digest::{Entry, Grouped};
use crate::platforms::present::{self, one_line};
use crate::platforms::{CardTag, Target};

/// Discord's message and embed limits (shared/reference/discord.md), in characters.
pub mod limits {
    pub const CONTENT: usize = 2_000;
    pub const TITLE: usize = 256;
    pub const DESCRIPTION: usize = 4_096;
    pub const FIELDS: usize = 25;
    pub const FIELD_NAME: usize = 256;
    pub const FIELD_VALUE: usize = 1_024;
    pub const FOOTER: usize = 2_048;
    pub const AUTHOR: usize = 256;
    /// Title, description, field names and values, footer and author of every
    /// embed of one message together.
    pub const EMBEDS_TOTAL: usize = 6_000;
    /// `url`, `image.url` of an embed.
    pub const EMBED_URL: usize = 2_048;
    pub const BUTTON_URL: usize = 512;
    pub const BUTTON_LABEL: usize = 80;
    pub const BUTTONS_PER_ROW: usize = 5;
    pub const CUSTOM_ID: usize = 100;
    pub const NONCE: usize = 25;
}

// Our own budgets, inside the limits above.
const NAME_BUDGET: usize = 200;
const TERM_BUDGET: usize = 100;
const REASON_LINE_BUDGET: usize = 300;
const CONTACT_BUDGET: usize = 200;
const ID_BUDGET: usize = 100;
const LINK_URL_BUDGET: usize = 600;
/// Room kept in the description for the "Cut: …" note.
const CUT_NOTE_BUDGET: usize = 200 + LINK_URL_BUDGET;

const COLOUR_FLAGGED: u32 = 0xD9_3F_3F;
const COLOUR_SENSITIVE: u32 = 0xE6_A2_3C;
/// Grey: modbridge's own notices (`[alerts]`).
const COLOUR_NOTICE: u32 = 0x95a5a6;
/// Purple: an urgent match, unlike any other card.
const COLOUR_URGENT: u32 = 0x8E_24_AA;
/// Dark red: a high-severity match, darker than a flagged card's red.
const COLOUR_HIGH: u32 = 0xA3_00_00;
/// Blue grey: a low-severity match.
const COLOUR_LOW: u32 = 0x60_7D_8B;

/// Yellow: a claimed case.
const COLOUR_CLAIMED: u32 = 0xF1_C4_0F;
/// Green: a resolved case.
const COLOUR_RESOLVED: u32 = 0x2E_CC_71;
/// Light grey: a case marked as a false positive.
const COLOUR_FALSE_POSITIVE: u32 = 0xB0_BE_C5;

/// The embed's colour: a claimed or closed case shows its state; otherwise
/// modbridge's notices stay grey; otherwise the rules'
/// level when it is not `Normal`, else why the card exists (as before levels).
fn colour(card: &Card) -> u32 {
    use crate::card::CaseStatus;
    match card.case.as_ref().map(|v| v.status) {
        Some(CaseStatus::Claimed) => return COLOUR_CLAIMED,
        Some(CaseStatus::Resolved) => return COLOUR_RESOLVED,
        Some(CaseStatus::FalsePositive) => return COLOUR_FALSE_POSITIVE,
        _ => {}
    }
    match (card.severity, card.level) {
        (Severity::Notice, _) => COLOUR_NOTICE,
        (_, Level::Urgent) => COLOUR_URGENT,
        (_, Level::High) => COLOUR_HIGH,
        (_, Level::Low) => COLOUR_LOW,
        (Severity::Flagged, Level::Normal) => COLOUR_FLAGGED,
        (Severity::SensitiveGroup, Level::Normal) => COLOUR_SENSITIVE,
    }
}

/// Length as Discord counts it: characters (code points).
pub fn width(s: &str) -> usize {
    s.chars().count()
}

/// Characters Discord markdown gives a meaning to (formatting, quotes,
/// headings, lists, spoilers, code, masked links, mentions; timestamps and
/// custom emoji start with `<`). A backslash before any of them shows it
/// literally (Discord drops a backslash before any ASCII punctuation).
fn is_markdown(c: char) -> bool {
    matches!(
        c,
        '\\' | '*' | '_' | '~' | '`' | '|' | '<' | '>' | '[' | ']' | '(' | ')' | '#' | '-' | '@'
    )
}

/// Escapes Discord markdown so the text shows exactly as written. Line breaks
/// stay; other control characters become spaces.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_markdown(c) {
            out.push('\\');
            out.push(c);
        } else if c == '\n' {
            out.push('\n');
        } else if c.is_control() {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

/// `raw` (escaped when `markdown`), cut on a grapheme boundary so that the
/// result (with `…` when cut) is at most `budget` characters. Returns the text
/// and how many characters of `raw` were left out.
fn fit(raw: &str, budget: usize, markdown: bool) -> (String, usize) {
    let esc = |s: &str| if markdown { escape(s) } else { s.to_owned() };
    crate::platforms::text::fit_escaped(raw, budget, esc, width)
}

/// A URL modbridge may put in an embed, a button or a markdown link: parsed,
/// http(s), strictly RFC 3986 (Discord refuses anything looser), and unable to
/// end a markdown link early (`(`, `)` percent-encoded).
fn web_url(raw: &str) -> Option<String> {
    let url = url::Url::parse(raw.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return None;
    }
    let whole = url.as_str();
    let (head, tail) = whole.split_at(url[..url::Position::BeforePath].len());
    let mut out = String::with_capacity(whole.len() + 16);
    out.push_str(head);
    let mut in_fragment = false;
    for b in tail.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || b"-._~!$&'*+,;=:@/?%".contains(&b)
            || (b == b'#' && !in_fragment);
        if b == b'#' {
            in_fragment = true;
        }
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Some(out)
}

/// The content as Discord markdown: highlighted ranges bold, escaped, cut on
/// grapheme boundaries within `budget`. Returns the text and the characters
/// left out.
fn highlighted(content: &str, highlights: &[Range<usize>], budget: usize) -> (String, usize) {
    let ranges = crate::platforms::text::clean_highlights(content, highlights);
    let mut out = String::new();
    // Characters written, plus the closing marker of an open bold run.
    let mut used = 0;
    let mut bold = false;
    let mut cut_at = None;
    for (at, g) in content.grapheme_indices(true) {
        let in_range = ranges.iter().any(|r| r.start <= at && at < r.end);
        // Bold never spans a line break; white space only continues a run.
        let wants = in_range && !g.contains('\n') && (bold || !g.trim().is_empty());
        let e = escape(g);
        let w = width(&e);
        let opens = wants && !bold;
        if used + w + if opens { 4 } else { 0 } > budget {
            cut_at = Some(at);
            break;
        }
        if opens {
            out.push_str("**");
            bold = true;
            used += 4;
        } else if bold && !wants {
            // Its cost was counted when it opened.
            out.push_str("**");
            bold = false;
        }
        out.push_str(&e);
        used += w;
    }
    if bold {
        out.push_str("**");
    }
    let cut = cut_at.map_or(0, |at| content[at..].chars().count());
    (out, cut)
}

/// What one card becomes on Discord, before it is wrapped as a bot message or
/// a webhook execution.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The configured role mention, when a match asked for it.
    pub content: Option<String>,
    pub embed: CreateEmbed,
    pub components: Option<Vec<CreateActionRow>>,
    pub allowed_mentions: CreateAllowedMentions,
    /// Characters of the post text left out.
    pub cut: usize,
}

/// The configured role, when the card asks for a mention (a role ID, checked
/// again here: only digits, never zero).
fn mention_role(card: &Card) -> Option<u64> {
    card.mention
        .as_deref()
        .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|m| m.parse::<u64>().ok())
        .filter(|&id| id > 0)
}

/// `fit` for a one-line field.
fn line(raw: &str, budget: usize, markdown: bool) -> String {
    fit(&one_line(raw), budget, markdown).0
}

/// The embed's author: plain text on Discord (no markdown), so one line, not escaped.
fn author_name(card: &Card) -> String {
    let mut author = line(&card.author.name, NAME_BUDGET, false);
    if author.trim().is_empty() {
        author = line(&card.author.user_id, NAME_BUDGET, false);
    }
    if author.trim().is_empty() {
        author = "(no name)".to_owned();
    }
    if let Some(u) = present::username(card) {
        let room = limits::AUTHOR.saturating_sub(width(&author) + 4);
        author.push_str(&format!(" (@{})", line(u, room, false)));
    }
    author
}

/// One reason, cut (already escaped) to [`REASON_LINE_BUDGET`] on a grapheme
/// boundary, never inside an escape or an open bold run.
fn reason_line(r: &ReasonView) -> String {
    let line = present::reason_line(
        r,
        |s| line(s, TERM_BUDGET, true),
        |rules| format!("**{rules}**"),
    );
    if width(&line) <= REASON_LINE_BUDGET {
        return line;
    }
    let mut cut = String::new();
    let mut w = 0;
    for g in line.graphemes(true) {
        if w + width(g) > REASON_LINE_BUDGET - 1 {
            break;
        }
        cut.push_str(g);
        w += width(g);
    }
    if cut.ends_with('\\') && !cut.ends_with("\\\\") {
        cut.pop();
    }
    if cut.matches("**").count() % 2 == 1 {
        cut.push_str("**");
    }
    cut.push('…');
    cut
}

/// Why it matched, member since, badges, contact details.
fn fields(card: &Card, now: DateTime<Utc>) -> Vec<(String, String, bool)> {
    let mut fields: Vec<(String, String, bool)> = Vec::new();
    if let Some(view) = &card.case {
        let status = present::status_line(view, |n| line(n, NAME_BUDGET, true));
        fields.push(("Status".into(), status, false));
    }
    if card.severity != Severity::Notice {
        let lines = card.reasons.iter().map(reason_line);
        let (mut why, _) = present::reasons(
            String::new(),
            lines,
            card.reasons.len(),
            ("\n", "\n"),
            limits::FIELD_VALUE,
            width,
        );
        if why.is_empty() {
            why.push_str("(no reason given)");
        }
        let member = match present::member_age(card, now) {
            Some(age) if age.new_account => format!("{}\n🆕 **new account**", age.since),
            Some(age) => age.since,
            None => "unknown".to_owned(),
        };
        fields.push(("Why it matched".into(), why, false));
        if let Some(notes) = present::notes(card) {
            let value = fit(&notes, limits::FIELD_VALUE, true).0;
            fields.push((format!("📝 {}", present::NOTE_HEADING), value, false));
        }
        if card.not_fully_checked {
            fields.push((
                "⏳ Rules check".into(),
                present::NOT_FULLY_CHECKED.to_owned(),
                false,
            ));
        }
        fields.push(("Member since".into(), member, true));
        fields.push(("Badges".into(), card.author.badges.to_string(), true));
        if let Some(earlier) = present::earlier_cards(card) {
            fields.push(("🗂️ Earlier cards".into(), earlier, false));
        }
    }
    for (label, value) in present::contacts(card).filter(|(_, v)| !v.trim().is_empty()) {
        fields.push((label.into(), line(value, CONTACT_BUDGET, true), true));
    }
    if let Some(value) = image_field(card) {
        fields.push(("🖼️ Image".into(), value, false));
    }
    fields.truncate(limits::FIELDS);
    fields
}

/// Where the destination does not show images (`images = "spoiler"` or
/// `"link"`): a field instead of the embed's image. `spoiler` hides the link
/// behind Discord's spoiler bars (`||…||`, revealed by a click; `|` cannot
/// occur in the URL, `web_url` encodes it); links in embeds are never
/// previewed, so nothing is shown until a moderator opens it.
fn image_field(card: &Card) -> Option<String> {
    if card.images == Images::Show {
        return None;
    }
    let url = card.image_url.as_deref().and_then(web_url)?;
    let link = if width(&url) <= LINK_URL_BUDGET {
        format!("[open image]({url})")
    } else {
        "(its address is too long to link)".to_owned()
    };
    Some(match card.images {
        Images::Spoiler => format!("🙈 {}: ||{link}||", present::IMAGE_HIDDEN),
        _ => format!("{}: {link}", present::IMAGE_AS_LINK),
    })
}

/// The post text (highlighted, cut to `room` with a note saying so) or a placeholder.
fn description(card: &Card, room: usize, post_url: Option<&str>) -> (String, usize) {
    let (mut description, cut) = match (present::placeholder(card), card.content.as_deref()) {
        (Some(p), _) => (format!("*{p}*"), 0),
        (None, Some(c)) => highlighted(c, &card.highlights, room.saturating_sub(CUT_NOTE_BUDGET)),
        (None, None) => (String::new(), 0),
    };
    if description.trim().is_empty() {
        description = format!("*{}*", present::TEXT_HIDDEN);
    }
    if cut > 0 {
        let link = post_url
            .filter(|u| width(u) <= LINK_URL_BUDGET)
            .map(|u| format!("[Open the post]({u})"));
        description.push_str(&format!("\n\n✂️ {}", present::cut_note(card, cut, link)));
    }
    (description, cut)
}

/// Renders `card`. `now` is when it is sent (for "joined N days ago").
/// `interactive`: the message may carry the case's buttons (a bot message;
/// an incoming webhook's may not).
pub fn render(card: &Card, now: DateTime<Utc>, interactive: bool) -> Rendered {
    let author = author_name(card);
    let title = line(&present::headline(card), limits::TITLE, true);
    let title = if title.trim().is_empty() {
        "Moderation card".to_owned()
    } else {
        title
    };
    let post_url = card.post_url.as_deref().and_then(web_url);
    let fields = fields(card, now);
    let footer = format!(
        "Post ID {} · {}",
        line(&card.post_id, ID_BUDGET, false),
        line(&card.place, ID_BUDGET, false)
    );
    let total = width(&author)
        + width(&title)
        + fields
            .iter()
            .map(|(n, v, _)| width(n) + width(v))
            .sum::<usize>()
        + width(&footer);
    // The description gets what the rest leaves of the 6,000 total.
    let room = limits::DESCRIPTION.min(limits::EMBEDS_TOTAL.saturating_sub(total));
    let (description, cut) = description(card, room, post_url.as_deref());

    let mut embed = CreateEmbed::new()
        .author(CreateEmbedAuthor::new(author))
        .title(title)
        .description(description)
        .footer(CreateEmbedFooter::new(footer))
        .colour(colour(card));
    for (name, value, inline) in fields {
        embed = embed.field(name, value, inline);
    }
    if let Ok(ts) = Timestamp::from_unix_timestamp(card.posted_at.timestamp()) {
        embed = embed.timestamp(ts);
    }
    if let Some(u) = post_url
        .as_deref()
        .filter(|u| width(u) <= limits::EMBED_URL)
    {
        embed = embed.url(u);
    }
    if let Some(img) = Some(card)
        .filter(|c| c.images == Images::Show)
        .and_then(|c| c.image_url.as_deref())
        .and_then(web_url)
        .filter(|u| width(u) <= limits::EMBED_URL)
    {
        embed = embed.image(img);
    }

    // The case's buttons (≤ 3; a row holds 5), then "Open post".
    let mut buttons: Vec<CreateButton> = Vec::new();
    if let Some(view) = card.case.as_ref().filter(|v| v.buttons && interactive) {
        for (action, label) in present::case_buttons(view.status) {
            use crate::platforms::ModeratorAction as A;
            let style = match action {
                A::Claim => ButtonStyle::Primary,
                A::Resolve => ButtonStyle::Success,
                A::FalsePositive | A::Unclaim | A::Reopen => ButtonStyle::Secondary,
            };
            buttons.push(
                CreateButton::new(super::interaction::custom_id(*action, &view.case_id))
                    .label(*label)
                    .style(style),
            );
        }
    }
    if let Some(u) = post_url
        .as_deref()
        .filter(|u| width(u) <= limits::BUTTON_URL)
    {
        buttons.push(CreateButton::new_link(u).label("Open post"));
    }
    let components = (!buttons.is_empty()).then(|| {
        buttons
            .chunks(limits::BUTTONS_PER_ROW)
            .map(|row| CreateActionRow::Buttons(row.to_vec()))
            .collect()
    });

    let role = mention_role(card);
    let mut allowed_mentions = CreateAllowedMentions::new();
    if let Some(id) = role {
        allowed_mentions = allowed_mentions.roles([RoleId::new(id)]);
    }
    Rendered {
        content: role.map(|id| format!("<@&{id}> a moderator is needed")),
        embed,
        components,
        allowed_mentions,
        cut,
    }
}

/// The nonce for a card in a channel: the same post to the same channel always
/// gets the same one, so a resend returns the message already created.
pub fn nonce(card: &Card, channel: u64) -> String {
    let mut h = Sha256::new();
    for part in [
        card.customer_id.as_str(),
        card.post_id.as_str(),
        &channel.to_string(),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let hex = hex::encode(h.finalize());
    format!("mb{}", &hex[..limits::NONCE - 2])
}

/// The bot message for `card` in `channel`.
pub fn message(card: &Card, channel: u64, now: DateTime<Utc>) -> CreateMessage {
    let r = render(card, now, true);
    let mut m = CreateMessage::new()
        .embed(r.embed)
        .allowed_mentions(r.allowed_mentions)
        .nonce(Nonce::String(nonce(card, channel)))
        .enforce_nonce(true);
    if let Some(c) = r.content {
        m = m.content(c);
    }
    if let Some(c) = r.components {
        m = m.components(c);
    }
    m
}

/// The webhook execution for `card` (no nonce: webhooks do not take one).
pub fn webhook_execution(card: &Card, now: DateTime<Utc>) -> ExecuteWebhook {
    let r = render(card, now, false);
    let mut w = ExecuteWebhook::new()
        .embed(r.embed)
        .allowed_mentions(r.allowed_mentions);
    if let Some(c) = r.content {
        w = w.content(c);
    }
    if let Some(c) = r.components {
        // Link buttons on webhooks not owned by an application need `with_components`.
        w = w.components(c).with_components(true);
    }
    w
}

/// The bot's edit of a posted card (`PATCH /channels/{id}/messages/{id}`).
pub fn edit_message(card: &Card, now: DateTime<Utc>) -> EditMessage {
    let r = render(card, now, true);
    let mut m = EditMessage::new()
        .embed(r.embed)
        .allowed_mentions(r.allowed_mentions);
    if let Some(c) = r.content {
        m = m.content(c);
    }
    // Always set: the buttons change with the case's state.
    m.components(r.components.unwrap_or_default())
}

/// A webhook's edit of its message (`PATCH /webhooks/{id}/{token}/messages/{id}`).
/// Components are left as posted (a webhook not owned by an application
/// cannot set them on an edit).
pub fn edit_webhook_message(card: &Card, now: DateTime<Utc>) -> EditWebhookMessage {
    let r = render(card, now, false);
    let mut w = EditWebhookMessage::new()
        .embed(r.embed)
        .allowed_mentions(r.allowed_mentions);
    if let Some(c) = r.content {
        w = w.content(c);
    }
    w
}

/// A reminder's text and mentions: the configured role (the only ping,
/// allowed by ID; anything else in `mention` pings nobody), then the text;
/// with `link`, the post's URL (checked like the card's, in `<…>` so that
/// it shows no preview). Nothing untrusted in it.
fn reminder_parts(
    r: &crate::platforms::Reminder,
    with_link: bool,
) -> (String, CreateAllowedMentions) {
    let role = r
        .mention
        .as_deref()
        .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|m| m.parse::<u64>().ok())
        .filter(|&id| id > 0);
    let mut allowed = CreateAllowedMentions::new();
    let mut text = String::new();
    if let Some(id) = role {
        allowed = allowed.roles([RoleId::new(id)]);
        text.push_str(&format!("<@&{id}> "));
    }
    text.push_str("\u{23f0} ");
    text.push_str(&present::still_open(r.after));
    if with_link && let Some(url) = r.link.as_deref().and_then(web_url) {
        text.push_str(&format!("\nOpen post: <{url}>"));
    }
    (text, allowed)
}

/// The bot's reply to its card `message_id` in `channel`: a nonce of its
/// own (a resend returns the reply already made).
pub fn reminder_message(
    r: &crate::platforms::Reminder,
    channel: u64,
    message_id: u64,
) -> CreateMessage {
    let (text, allowed) = reminder_parts(r, false);
    CreateMessage::new()
        .content(text)
        .allowed_mentions(allowed)
        .reference_message((
            serenity::model::id::ChannelId::new(channel),
            serenity::model::id::MessageId::new(message_id),
        ))
        .nonce(Nonce::String(format!("r{message_id}")))
        .enforce_nonce(true)
}

/// A webhook's reminder: a new message (webhooks cannot reply) with the
/// post's link.
pub fn reminder_webhook(r: &crate::platforms::Reminder) -> ExecuteWebhook {
    let (text, allowed) = reminder_parts(r, true);
    ExecuteWebhook::new()
        .content(text)
        .allowed_mentions(allowed)
}

// Grouped messages (issue #14): a wave's digest and a campaign card, one
// embed each. No mention ever (`allowed_mentions` parses nothing, no
// `content`), no buttons: each entry links its post in its field.

/// One entry's field, name and value together (25 of them fit the 6,000
/// total with the rest of the embed).
const ENTRY_BUDGET: usize = 225;
const ENTRY_NAME: usize = 30;
const ENTRY_USERNAME: usize = 16;
const ENTRY_PLACE: usize = 24;
const ENTRY_REASON: usize = 40;
/// A post's link is written when its URL is at most this long …
const ENTRY_URL: usize = 100;
/// … and leaves the excerpt at least this much room.
const ENTRY_MIN_EXCERPT: usize = 40;
/// The title, description and footer of a grouped message, at most; the
/// rest of [`limits::EMBEDS_TOTAL`] is for fields.
const GROUP_FRAME: usize = 300;
const GROUP_DESTINATION: usize = 40;
const CAMPAIGN_TEXT: usize = 1_200;
const CAMPAIGN_REASON: usize = 300;
const CAMPAIGN_AUTHOR: usize = 40;

/// Blue: a wave's digest.
const COLOUR_DIGEST: u32 = 0x34_98_DB;
/// Orange: a campaign card.
const COLOUR_CAMPAIGN: u32 = 0xE6_7E_22;

/// The excerpt of `e` highlighted and escaped within `budget` (with `…`
/// when cut), or its placeholder.
fn entry_text(e: &Entry, budget: usize) -> String {
    present::entry_excerpt(e)
        .map(|(text, hs)| {
            let (mut out, cut) = highlighted(&text, &hs, budget.saturating_sub(1));
            if cut > 0 {
                out.push('…');
            }
            out
        })
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| format!("*{}*", present::entry_placeholder(e)))
}

/// One entry as a field (name, value): who; where and when; why; the
/// excerpt with its matches in bold; "Open post". At most
/// [`ENTRY_BUDGET`] characters together.
fn entry_field(e: &Entry) -> (String, String) {
    let mut name = line(&e.author, ENTRY_NAME, true);
    if name.trim().is_empty() {
        name = "(no name)".to_owned();
    }
    if let Some(u) = present::entry_username(e) {
        name.push_str(&format!(" (@{})", line(u, ENTRY_USERNAME, true)));
    }
    let head = format!(
        "{} · {}",
        line(&e.place, ENTRY_PLACE, true),
        present::entry_time(e)
    );
    let why = line(&present::entry_reason(e), ENTRY_REASON, true);
    let fixed = width(&name) + width(&head) + width(&why) + 3;
    let link = e
        .post_url
        .as_deref()
        .and_then(web_url)
        .filter(|u| width(u) <= ENTRY_URL)
        .map(|u| format!("[Open post]({u})"))
        .filter(|l| fixed + width(l) + ENTRY_MIN_EXCERPT <= ENTRY_BUDGET);
    let room = ENTRY_BUDGET.saturating_sub(fixed + link.as_deref().map_or(0, |l| width(l) + 1));
    let mut value = format!("{head}\n{why}\n{}", entry_text(e, room));
    if let Some(l) = link {
        value.push('\n');
        value.push_str(&l);
    }
    (name, value)
}

/// The fields of `entries` that fit `fields_left` fields and `room`
/// characters, newest kept; and how many were left out.
fn entry_fields(
    entries: &[Entry],
    fields_left: usize,
    room: usize,
) -> (Vec<(String, String)>, usize) {
    let rendered: Vec<(String, String)> = entries.iter().map(entry_field).collect();
    let first =
        present::newest_that_fit(&rendered, fields_left, room, |(n, v)| width(n) + width(v));
    (rendered.into_iter().skip(first).collect(), first)
}

/// A grouped message's embed.
fn grouped_embed(g: &Grouped) -> CreateEmbed {
    let mut fields: Vec<(String, String, bool)> = Vec::new();
    let (title, mut description, footer, colour, at) = match g {
        Grouped::Digest(d) => {
            let room = limits::EMBEDS_TOTAL - GROUP_FRAME;
            let (shown, left_out) = entry_fields(&d.entries, limits::FIELDS, room);
            fields.extend(shown.into_iter().map(|(n, v)| (n, v, false)));
            let mut description = present::wave_started(d);
            if left_out > 0 {
                description.push_str(&format!(
                    "\n⬆️ {}",
                    present::not_shown(left_out, "entry", "entries")
                ));
            }
            if d.full {
                description.push_str(&format!("\n➡️ **{}**", present::DIGEST_CONTINUED));
            }
            (
                present::digest_header(d),
                description,
                &d.destination,
                COLOUR_DIGEST,
                d.wave_started,
            )
        }
        Grouped::Campaign(c) => {
            let text = entry_text(&c.first, CAMPAIGN_TEXT);
            let why = line(&present::entry_reason(&c.first), CAMPAIGN_REASON, true);
            let authors = present::campaign_authors(c, |a| line(a, CAMPAIGN_AUTHOR, true));
            fields.push(("Why it matched".into(), why, false));
            fields.push(("Authors".into(), authors, false));
            let at = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
            fields.push(("First seen".into(), at(c.first_seen), true));
            fields.push(("Last seen".into(), at(c.last_seen), true));
            if !c.earlier.is_empty() {
                let used: usize = width(&text)
                    + fields
                        .iter()
                        .map(|(n, v, _)| width(n) + width(v))
                        .sum::<usize>();
                // The heading field names how many are left out: keep room.
                let room = (limits::EMBEDS_TOTAL - GROUP_FRAME).saturating_sub(used + 120);
                let fields_left = limits::FIELDS - fields.len() - 1;
                let (shown, left_out) = entry_fields(&c.earlier, fields_left, room);
                let mut note = format!(
                    "{} (newest last)",
                    present::pluralize(shown.len() as i64, "post", "posts")
                );
                if left_out > 0 {
                    note.push_str(&format!(
                        " · {}",
                        present::not_shown(left_out, "post", "posts")
                    ));
                }
                fields.push((present::CAMPAIGN_EARLIER.into(), note, false));
                fields.extend(shown.into_iter().map(|(n, v)| (n, v, false)));
            }
            (
                present::campaign_header(c),
                text,
                &c.destination,
                COLOUR_CAMPAIGN,
                c.last_seen,
            )
        }
    };
    if description.trim().is_empty() {
        description = format!("*{}*", present::TEXT_HIDDEN);
    }
    let mut embed = CreateEmbed::new()
        .title(line(&title, limits::TITLE, true))
        .description(description)
        .footer(CreateEmbedFooter::new(format!(
            "modbridge · {}",
            line(footer, GROUP_DESTINATION, false)
        )))
        .colour(colour);
    for (name, value, inline) in fields {
        embed = embed.field(name, value, inline);
    }
    if let Ok(ts) = Timestamp::from_unix_timestamp(at.timestamp()) {
        embed = embed.timestamp(ts);
    }
    embed
}

/// The nonce of a grouped message tagged `tag`: a resend after a lost
/// answer returns the message already created.
pub fn grouped_nonce(tag: &CardTag) -> String {
    let hex = tag.as_str();
    format!("mg{}", &hex[..hex.len().min(limits::NONCE - 2)])
}

/// The bot message of a grouped message (with a nonce from `tag`, when given).
pub fn grouped_message(g: &Grouped, tag: Option<&CardTag>) -> CreateMessage {
    let mut m = CreateMessage::new()
        .embed(grouped_embed(g))
        .allowed_mentions(CreateAllowedMentions::new());
    if let Some(tag) = tag {
        m = m
            .nonce(Nonce::String(grouped_nonce(tag)))
            .enforce_nonce(true);
    }
    m
}

/// The webhook execution of a grouped message.
pub fn grouped_webhook(g: &Grouped) -> ExecuteWebhook {
    ExecuteWebhook::new()
        .embed(grouped_embed(g))
        .allowed_mentions(CreateAllowedMentions::new())
}

/// The bot's edit of a grouped message.
pub fn grouped_edit(g: &Grouped) -> EditMessage {
    EditMessage::new()
        .embed(grouped_embed(g))
        .allowed_mentions(CreateAllowedMentions::new())
}

/// A webhook's edit of its grouped message.
pub fn grouped_webhook_edit(g: &Grouped) -> EditWebhookMessage {
    EditWebhookMessage::new()
        .embed(grouped_embed(g))
        .allowed_mentions(CreateAllowedMentions::new())
}

/// The body a grouped message would be posted with (dry run, `explain`).
pub fn grouped_payload(g: &Grouped, tag: Option<&CardTag>) -> serde_json::Value {
    let json = match g.target() {
        Target::Discord(_) => serde_json::to_value(grouped_message(g, tag)),
        _ => serde_json::to_value(grouped_webhook(g)),
    };
    json.unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }))
}

/// The body that would be sent to `target` (dry run, `explain`).
pub fn payload(card: &Card, target: &Target, now: DateTime<Utc>) -> serde_json::Value {
    let json = match target {
        Target::Discord(channel) => serde_json::to_value(message(card, channel.get(), now)),
        _ => serde_json::to_value(webhook_execution(card, now)),
    };
    json.unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::Severity;
    use crate::platforms::discord::Channel as DiscordChannel;
    use crate::platforms::present::fixtures::{self, now};

    const CHANNEL: u64 = 112233445566778899;

    #[test]
    fn reminders_ping_only_the_configured_role_and_link_safely() {
        use crate::platforms::Reminder;
        let r = Reminder {
            after: std::time::Duration::from_secs(1800),
            mention: Some("456".into()),
            link: Some("https://x.example/p/1 <@&9>)[x](y)".into()),
        };
        let reply = serde_json::to_value(reminder_message(&r, CHANNEL, 77)).unwrap();
        assert_eq!(
            reply["content"],
            "<@&456> \u{23f0} Still open after 30 min: nobody has claimed this card."
        );
        assert_eq!(reply["allowed_mentions"]["parse"], serde_json::json!([]));
        assert_eq!(
            reply["allowed_mentions"]["roles"],
            serde_json::json!(["456"])
        );
        assert_eq!(reply["message_reference"]["message_id"], "77");
        assert_eq!(
            reply["message_reference"]["channel_id"],
            CHANNEL.to_string()
        );
        assert_eq!(reply["nonce"], "r77");
        let hook = serde_json::to_value(reminder_webhook(&r)).unwrap();
        let content = hook["content"].as_str().unwrap();
        assert!(
            content.ends_with("\nOpen post: <https://x.example/p/1%20%3C@&9%3E%29%5Bx%5D%28y%29>"),
            "the link cannot end early, mention or mask: {content}"
        );
        assert_eq!(
            hook["allowed_mentions"]["roles"],
            serde_json::json!(["456"])
        );
        // Anything but a role ID pings nobody; no link, no line for it.
        for mention in [Some("@everyone"), Some("here"), None] {
            let r = Reminder {
                mention: mention.map(str::to_owned),
                link: Some("javascript:alert(1)".into()),
                ..r.clone()
            };
            let hook = serde_json::to_value(reminder_webhook(&r)).unwrap();
            assert_eq!(
                hook["content"],
                "\u{23f0} Still open after 30 min: nobody has claimed this card."
            );
            assert_eq!(hook["allowed_mentions"]["parse"], serde_json::json!([]));
            assert_eq!(hook["allowed_mentions"]["roles"], serde_json::json!([]));
        }
    }

    fn c_target() -> String {
        format!("discord:{CHANNEL}")
    }

    fn card(content: Option<&str>) -> Card {
        Card::example(&c_target(), content)
    }

    fn bot(card: &Card) -> serde_json::Value {
        let target = Target::Discord(DiscordChannel::parse(&CHANNEL.to_string()).unwrap());
        payload(card, &target, now())
    }

    #[test]
    fn card_is_one_embed_with_author_title_highlights_fields_footer_and_button() {
        let text = "this has a forbidden phrase in it";
        let mut c = card(Some(text));
        let at = text.find("forbidden phrase").unwrap();
        c.highlights = std::iter::once(at..at + "forbidden phrase".len()).collect();
        c.image_url = Some("https://cdn.example.com/a.png".into());
        c.post_url = Some("https://community.example.com/posts/P1".into());
        let v = bot(&c);
        assert_eq!(v["allowed_mentions"]["parse"], serde_json::json!([]));
        assert_eq!(v["allowed_mentions"]["roles"], serde_json::json!([]));
        assert!(v.get("content").is_none(), "{v}");
        assert_eq!(v["enforce_nonce"], true);
        let nonce = v["nonce"].as_str().unwrap();
        assert!(
            nonce.len() <= limits::NONCE && nonce.starts_with("mb"),
            "{nonce}"
        );
        let embeds = v["embeds"].as_array().unwrap();
        assert_eq!(embeds.len(), 1);
        let e = &embeds[0];
        assert_eq!(e["author"]["name"], "Mary Smith (@mary)");
        assert_eq!(e["title"], "Flagged post · Parents support");
        assert_eq!(e["url"], "https://community.example.com/posts/P1");
        assert_eq!(e["description"], "this has a **forbidden phrase** in it");
        assert_eq!(e["image"]["url"], "https://cdn.example.com/a.png");
        assert_eq!(e["color"], COLOUR_FLAGGED);
        assert!(
            e["timestamp"]
                .as_str()
                .unwrap()
                .starts_with("2026-05-08T14:32:01")
        );
        assert_eq!(e["footer"]["text"], "Post ID P1 · Parents support");
        let fields = e["fields"].as_array().unwrap();
        assert_eq!(fields[0]["name"], "Why it matched");
        assert_eq!(
            fields[0]["value"],
            "**Everywhere** › forbidden: “forbidden phrase”"
        );
        assert_eq!(fields[1]["name"], "Member since");
        let member = fields[1]["value"].as_str().unwrap();
        assert!(
            member.starts_with("2026-05-05 (joined 3 days ago)"),
            "{member}"
        );
        assert!(member.contains("new account"));
        assert_eq!(fields[2]["value"], "2");
        let button = &v["components"][0]["components"][0];
        assert_eq!(button["label"], "Open post");
        assert_eq!(button["url"], "https://community.example.com/posts/P1");
        assert_eq!(button["style"], 5);
    }

    #[test]
    fn severity_sets_the_colour_and_media_only_says_so() {
        let mut c = card(None);
        c.severity = Severity::SensitiveGroup;
        let v = bot(&c);
        assert_eq!(v["embeds"][0]["color"], COLOUR_SENSITIVE);
        assert_eq!(v["embeds"][0]["description"], "*(no text: media only)*");
        assert!(v.get("components").is_none());
    }

    #[test]
    fn the_configured_role_is_the_only_mention_and_is_allowed_explicitly() {
        let mut c = card(Some("hello @everyone <@&999>"));
        c.mention = Some("456".into());
        let v = bot(&c);
        assert_eq!(v["content"], "<@&456> a moderator is needed");
        assert_eq!(v["allowed_mentions"]["parse"], serde_json::json!([]));
        assert_eq!(v["allowed_mentions"]["roles"], serde_json::json!(["456"]));
        c.mention = Some("@everyone".into());
        let v = bot(&c);
        assert!(v.get("content").is_none());
        assert_eq!(v["allowed_mentions"]["roles"], serde_json::json!([]));
    }

    #[test]
    fn user_text_cannot_forge_markdown_links_or_mentions() {
        let evil = "@everyone @here <@123> <@!123> <@&456> <#789> [bank](https://evil.example) **bold** `code` ||spoiler|| > quote\n# Heading\n-# small <t:1:R> <:e:1>";
        let mut c = card(Some(evil));
        c.author.name = "<@&456> [x](https://evil)".into();
        c.reasons[0].terms = vec!["[x](https://evil)".into()];
        c.headline = "**fake** <@1>".into();
        let v = bot(&c);
        let e = &v["embeds"][0];
        let d = e["description"].as_str().unwrap();
        assert_eq!(
            d,
            "\\@everyone \\@here \\<\\@123\\> \\<\\@!123\\> \\<\\@&456\\> \\<#789\\> \\[bank\\]\\(https://evil.example\\) \\*\\*bold\\*\\* \\`code\\` \\|\\|spoiler\\|\\| \\> quote\n\\# Heading\n\\-\\# small \\<t:1:R\\> \\<:e:1\\>"
                .replace("\\<#", "\\<\\#")
        );
        assert_eq!(e["title"], "\\*\\*fake\\*\\* \\<\\@1\\>");
        let why = e["fields"][0]["value"].as_str().unwrap();
        assert!(why.contains("“\\[x\\]\\(https://evil\\)”"), "{why}");
        // The author name is plain text on Discord: shown as written, pings no one.
        assert_eq!(e["author"]["name"], "<@&456> [x](https://evil) (@mary)");
        assert_eq!(v["allowed_mentions"]["parse"], serde_json::json!([]));
    }

    #[test]
    fn highlights_never_span_lines_and_survive_markdown_characters() {
        let text = "un*forbidden*ly\nforbidden\nphrase";
        let mut c = card(Some(text));
        c.highlights = vec![2..13, 16..32];
        let v = bot(&c);
        assert_eq!(
            v["embeds"][0]["description"],
            "un**\\*forbidden\\***ly\n**forbidden**\n**phrase**"
        );
    }

    #[test]
    fn a_long_description_is_cut_on_graphemes_and_says_how_much() {
        let d = bot(&fixtures::long_card(&c_target()))["embeds"][0]["description"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(width(&d) <= limits::DESCRIPTION);
        let (shown, note) = d.split_once("\n\n✂️ Cut: ").unwrap();
        assert!(
            shown.starts_with('👨') && shown.ends_with('👧'),
            "cut inside a grapheme"
        );
        let total = 5 * 5_000;
        assert!(
            note.starts_with(&format!(
                "{} of {total} characters not shown.",
                total - shown.chars().count()
            )),
            "{note}"
        );
        assert!(note.contains("[Open the post](https://community.example.com/posts/P1)"));
    }

    #[test]
    fn urls_are_http_only_and_cannot_break_out_of_a_link() {
        let mut c = card(Some(&"x".repeat(10_000)));
        c.image_url = Some("javascript:alert(1)".into());
        c.post_url = Some("https://example.com/p/(1)".into());
        let v = bot(&c);
        assert!(v["embeds"][0].get("image").is_none());
        assert!(
            v["embeds"][0]["description"]
                .as_str()
                .unwrap()
                .contains("(https://example.com/p/%281%29)")
        );
    }

    #[test]
    fn webhook_body_has_no_nonce_and_asks_for_components() {
        let mut c = card(Some("x"));
        c.post_url = Some("https://community.example.com/posts/P1".into());
        let v = payload(&c, &Target::DiscordWebhook { env: "HOOK".into() }, now());
        assert!(v.get("nonce").is_none() && v.get("enforce_nonce").is_none());
        assert_eq!(v["allowed_mentions"]["parse"], serde_json::json!([]));
        assert_eq!(v["components"][0]["components"][0]["label"], "Open post");
    }

    #[test]
    fn a_grouped_message_never_pings_and_its_nonce_comes_from_its_tag() {
        let text = "@everyone <@&456> a forbidden phrase";
        let mut c = card(Some(text));
        let at = text.find("forbidden").unwrap_or(0);
        c.highlights = vec![std::ops::Range {
            start: at,
            end: text.len(),
        }];
        c.post_url = Some(format!("https://community.example.com/{}", "p".repeat(200)));
        let e = crate::digest::Entry::of(&c);
        let g = Grouped::Digest(crate::digest::Digest {
            destination: "mods".into(),
            target: Target::parse(&format!("discord:{CHANNEL}")).unwrap(),
            wave_started: now(),
            part: 3,
            entries: vec![e],
            full: false,
        });
        let tag = CardTag::of("some record key");
        let v = grouped_payload(&g, Some(&tag));
        assert!(v.get("content").is_none(), "{v}");
        assert_eq!(v["allowed_mentions"]["parse"], serde_json::json!([]));
        assert_eq!(v["nonce"], grouped_nonce(&tag));
        assert_eq!(grouped_nonce(&tag).len(), limits::NONCE);
        assert_ne!(grouped_nonce(&tag), grouped_nonce(&CardTag::of("another")));
        let e = &v["embeds"][0];
        assert_eq!(e["title"], "🌊 Wave digest · 1 post · part 3");
        let value = e["fields"][0]["value"].as_str().unwrap();
        assert!(
            value.ends_with("\\@everyone \\<\\@&456\\> a **forbidden phrase**"),
            "{value}"
        );
        // A link too long for the entry's budget is left out, the text kept.
        assert!(!value.contains("Open post"), "{value}");
    }

    #[test]
    fn nonce_depends_on_post_and_channel_only() {
        let a = card(Some("x"));
        let mut b = card(Some("something else"));
        assert_eq!(nonce(&a, 1), nonce(&b, 1));
        assert_ne!(nonce(&a, 1), nonce(&a, 2));
        b.post_id = "P2".into();
        assert_ne!(nonce(&a, 1), nonce(&b, 1));
        assert_eq!(nonce(&a, 1).len(), limits::NONCE);
    }
}
