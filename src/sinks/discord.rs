//! Discord: a [`Card`] rendered as one embed (plus an "Open post" link button)
//! and posted with serenity, to a channel as the bot or through an incoming
//! webhook. Everything Discord-specific lives here: escaping, embed limits,
//! nonces, error codes, pacing.
//!
//! Architecture invariant: this is the only file that imports serenity.
//!
//! Safety rules the renderer keeps for any input:
//! - every message sets `allowed_mentions` to parse nothing; the only mention
//!   is the destination's configured role, written by modbridge into `content`
//!   and allowed explicitly through `allowed_mentions.roles`;
//! - untrusted text (content, names, matched terms, place) is Discord-markdown
//!   escaped wherever markdown renders, so no post can forge formatting, masked
//!   links or mention chips; one-line fields lose line breaks, control
//!   characters and bidirectional overrides;
//! - every text stays inside Discord's limits in [`limits`], counted in
//!   characters (code points, as Discord and serenity count), cut on grapheme
//!   boundaries, and the card says how much was cut.
//!
//! Rate limits: against the real API (`https://discord.com`) serenity's own
//! rate limiter runs (per-route buckets, waits out 429s). serenity ignores a
//! proxy base while its limiter is on, so with any other `DISCORD_API_URL` the
//! limiter is off and modbridge paces each channel itself; a 429 is then
//! retryable.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serenity::builder::{
    CreateActionRow, CreateAllowedMentions, CreateButton, CreateEmbed, CreateEmbedAuthor,
    CreateEmbedFooter, CreateMessage, ExecuteWebhook,
};
use serenity::http::{Http, HttpBuilder, HttpError};
use serenity::model::Timestamp;
use serenity::model::channel::Nonce;
use serenity::model::id::{ChannelId, RoleId, WebhookId};
use sha2::{Digest, Sha256};
use tracing::{info, warn};
use unicode_segmentation::UnicodeSegmentation;

use super::SinkError;
use super::pacer::Pacer;
use crate::card::{Card, Severity};
use crate::destination::Target;

const PLATFORM: &str = "discord";

/// The real Discord API; any other `DISCORD_API_URL` is a proxy or a fake.
pub const DEFAULT_API_URL: &str = "https://discord.com";

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
    pub const NONCE: usize = 25;
}

// Our own budgets, inside the limits above.
const NAME_BUDGET: usize = 200;
const TERM_BUDGET: usize = 100;
const REASON_LINE_BUDGET: usize = 300;
const CONTACT_BUDGET: usize = 200;
const ID_BUDGET: usize = 100;
const LINK_URL_BUDGET: usize = 600;
const NEW_ACCOUNT_DAYS: i64 = 7;
/// Room kept in the description for the "Cut: …" note.
const CUT_NOTE_BUDGET: usize = 200 + LINK_URL_BUDGET;

const COLOUR_FLAGGED: u32 = 0xD9_3F_3F;
const COLOUR_SENSITIVE: u32 = 0xE6_A2_3C;
/// Grey: modbridge's own notices (`[alerts]`).
const COLOUR_NOTICE: u32 = 0x95a5a6;

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

/// A one-line field (name, username, term, ID): line breaks and other control
/// characters become spaces, and bidirectional overrides are dropped so that a
/// name cannot reorder the text modbridge writes after it.
fn one_line(s: &str) -> String {
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

/// `raw` (escaped when `markdown`), cut on a grapheme boundary so that the
/// result (with `…` when cut) is at most `budget` characters. Returns the text
/// and how many characters of `raw` were left out.
fn fit(raw: &str, budget: usize, markdown: bool) -> (String, usize) {
    let esc = |s: &str| if markdown { escape(s) } else { s.to_owned() };
    super::text::fit_escaped(raw, budget, esc, width)
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

fn pluralize(n: i64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// The content as Discord markdown: highlighted ranges bold, escaped, cut on
/// grapheme boundaries within `budget`. Returns the text and the characters
/// left out.
fn highlighted(content: &str, highlights: &[Range<usize>], budget: usize) -> (String, usize) {
    let ranges = super::text::clean_highlights(content, highlights);
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

/// Renders `card`. `now` is when it is sent (for "joined N days ago").
pub fn render(card: &Card, now: DateTime<Utc>) -> Rendered {
    let mut total = 0;

    // Author: plain text on Discord (no markdown), so one line, not escaped.
    let mut author = fit(&one_line(&card.author.name), NAME_BUDGET, false).0;
    if author.trim().is_empty() {
        author = fit(&one_line(&card.author.user_id), NAME_BUDGET, false).0;
    }
    if author.trim().is_empty() {
        author = "(no name)".to_owned();
    }
    if let Some(u) = card
        .author
        .username
        .as_deref()
        .filter(|u| !u.trim().is_empty())
    {
        let room = limits::AUTHOR.saturating_sub(width(&author) + 4);
        author.push_str(&format!(" (@{})", fit(&one_line(u), room, false).0));
    }
    total += width(&author);

    let title = fit(&one_line(&card.headline), limits::TITLE, true).0;
    let title = if title.trim().is_empty() {
        "Moderation card".to_owned()
    } else {
        title
    };
    total += width(&title);

    let post_url = card.post_url.as_deref().and_then(web_url);

    // Fields: why it matched, member since, badges, contact details.
    let mut fields: Vec<(String, String, bool)> = Vec::new();
    let mut why = String::new();
    let mut shown = 0;
    for r in &card.reasons {
        let rules = fit(&one_line(&r.rules), TERM_BUDGET, true).0;
        let mut line = if r.name == "sensitive" {
            format!("**{rules}** › sensitive group")
        } else {
            format!(
                "**{rules}** › {}",
                fit(&one_line(&r.name), TERM_BUDGET, true).0
            )
        };
        if !r.terms.is_empty() {
            let terms: Vec<String> = r
                .terms
                .iter()
                .map(|t| format!("“{}”", fit(&one_line(t), TERM_BUDGET, true).0))
                .collect();
            line.push_str(": ");
            line.push_str(&terms.join(", "));
        }
        if width(&line) > REASON_LINE_BUDGET {
            // Cut the line's own text (already escaped) on a grapheme boundary;
            // never inside an escape: drop a dangling backslash.
            let mut cut: String = String::new();
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
            line = cut;
        }
        let sep = if why.is_empty() { "" } else { "\n" };
        // Leave room for the "and N more" tail.
        if width(&why) + width(sep) + width(&line) > limits::FIELD_VALUE - 40 {
            break;
        }
        why.push_str(sep);
        why.push_str(&line);
        shown += 1;
    }
    if shown < card.reasons.len() {
        why.push_str(&format!(
            "\n… and {} more",
            pluralize((card.reasons.len() - shown) as i64, "reason", "reasons")
        ));
    }
    if why.is_empty() {
        why.push_str("(no reason given)");
    }
    let notice = card.severity == Severity::Notice;
    if !notice {
        fields.push(("Why it matched".into(), why, false));
    }

    let member = match card.author.joined_at {
        Some(joined) => {
            let days = (now - joined).num_days();
            let ago = if days < 1 {
                "joined today".to_owned()
            } else {
                format!("joined {} ago", pluralize(days, "day", "days"))
            };
            let mut s = format!("{} ({ago})", joined.format("%Y-%m-%d"));
            if days < NEW_ACCOUNT_DAYS {
                s.push_str("\n🆕 **new account**");
            }
            s
        }
        None => "unknown".to_owned(),
    };
    if !notice {
        fields.push(("Member since".into(), member, true));
        fields.push(("Badges".into(), card.author.badges.to_string(), true));
    }
    if let Some(email) = card
        .author
        .email
        .as_deref()
        .filter(|e| !e.trim().is_empty())
    {
        fields.push((
            "Email".into(),
            fit(&one_line(email), CONTACT_BUDGET, true).0,
            true,
        ));
    }
    if let Some(phone) = card
        .author
        .phone
        .as_deref()
        .filter(|p| !p.trim().is_empty())
    {
        fields.push((
            "Phone".into(),
            fit(&one_line(phone), CONTACT_BUDGET, true).0,
            true,
        ));
    }
    fields.truncate(limits::FIELDS);
    total += fields
        .iter()
        .map(|(n, v, _)| width(n) + width(v))
        .sum::<usize>();

    let footer = format!(
        "Post ID {} · {}",
        fit(&one_line(&card.post_id), ID_BUDGET, false).0,
        fit(&one_line(&card.place), ID_BUDGET, false).0
    );
    total += width(&footer);

    // The description gets what the rest leaves of the 6,000 total.
    let room = limits::DESCRIPTION.min(limits::EMBEDS_TOTAL.saturating_sub(total));
    let (mut description, cut) = match card.content.as_deref() {
        None => ("*(no text: media only)*".to_owned(), 0),
        Some(c) if c.trim().is_empty() => ("*(empty text)*".to_owned(), 0),
        Some(c) => highlighted(c, &card.highlights, room.saturating_sub(CUT_NOTE_BUDGET)),
    };
    if description.trim().is_empty() {
        description = "*(the text cannot be shown here)*".to_owned();
    }
    if cut > 0 {
        let total_chars = card.content.as_deref().map_or(0, |c| c.chars().count());
        let link = post_url
            .as_deref()
            .filter(|u| width(u) <= LINK_URL_BUDGET)
            .map(|u| format!(" [Open the post]({u}) to read it all."))
            .unwrap_or_else(|| " Open the post in Cativa to read it all.".to_owned());
        description.push_str(&format!(
            "\n\n✂️ Cut: {cut} of {total_chars} characters not shown.{link}"
        ));
    }

    let mut embed = CreateEmbed::new()
        .author(CreateEmbedAuthor::new(author))
        .title(title)
        .description(description)
        .footer(CreateEmbedFooter::new(footer))
        .colour(match card.severity {
            Severity::Flagged => COLOUR_FLAGGED,
            Severity::SensitiveGroup => COLOUR_SENSITIVE,
            Severity::Notice => COLOUR_NOTICE,
        });
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
    if let Some(img) = card
        .image_url
        .as_deref()
        .and_then(web_url)
        .filter(|u| width(u) <= limits::EMBED_URL)
    {
        embed = embed.image(img);
    }

    let components = post_url
        .as_deref()
        .filter(|u| width(u) <= limits::BUTTON_URL)
        .map(|u| {
            vec![CreateActionRow::Buttons(vec![
                CreateButton::new_link(u).label("Open post"),
            ])]
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
    let r = render(card, now);
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
    let r = render(card, now);
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

/// The body that would be sent to `target` (dry run, `explain`).
pub fn payload(card: &Card, target: &Target, now: DateTime<Utc>) -> serde_json::Value {
    let json = match target {
        Target::Discord(channel) => serde_json::to_value(message(card, channel.get(), now)),
        _ => serde_json::to_value(webhook_execution(card, now)),
    };
    json.unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }))
}

// ---------------------------------------------------------------------------
// Delivery

/// An incoming webhook: its ID and its secret token.
#[derive(Clone)]
pub struct WebhookUrl {
    id: u64,
    token: String,
}

impl WebhookUrl {
    /// `https://discord.com/api/webhooks/ID/TOKEN` (any host, optional
    /// `/v10`). The error never repeats the URL.
    pub fn parse(raw: &str) -> Result<Self, String> {
        const HOW: &str = "is not a Discord webhook URL (like https://discord.com/api/webhooks/123…/abc…: channel settings > Integrations > Webhooks > Copy Webhook URL)";
        let url = url::Url::parse(raw.trim()).map_err(|_| HOW.to_owned())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(HOW.into());
        }
        let mut segments = url
            .path_segments()
            .ok_or(HOW)?
            .skip_while(|s| *s != "webhooks");
        segments.next();
        let id = segments
            .next()
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|&id| id > 0);
        let token = segments.next().filter(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
        match (id, token) {
            (Some(id), Some(token)) => Ok(Self {
                id,
                token: token.to_owned(),
            }),
            _ => Err(HOW.into()),
        }
    }

    /// The form that may appear in logs: `webhooks/<id>/***`.
    pub fn redacted(&self) -> String {
        format!("webhooks/{}/***", self.id)
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// A card Discord accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    pub message_id: Option<u64>,
}

/// A Discord call's failure, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// HTTP 429 with the rate limiter off: worth retrying later.
    RateLimited,
    /// 5xx, connection, timeouts: worth retrying.
    Transient(String),
    /// Fix the token, the permissions, the channel or the webhook.
    Config { code: String, fix: String },
    /// Discord refused this message as malformed (a modbridge bug).
    Rejected(String),
}

impl Failure {
    pub fn into_sink_error(self) -> SinkError {
        match self {
            Failure::RateLimited => SinkError::Transient {
                platform: PLATFORM,
                detail: "rate limited (HTTP 429)".into(),
                retry_after: None,
            },
            Failure::Transient(detail) => SinkError::Transient {
                platform: PLATFORM,
                detail,
                retry_after: None,
            },
            Failure::Config { code, fix } => SinkError::Config {
                platform: PLATFORM,
                detail: format!("{code}: {fix}"),
            },
            Failure::Rejected(detail) => SinkError::Rejected {
                platform: PLATFORM,
                detail: format!("{detail}; this is a modbridge bug, please report it"),
            },
        }
    }
}

/// Where a card was going, for messages about it (never the webhook URL).
#[derive(Debug, Clone)]
pub enum Place {
    Channel(u64),
    /// The environment variable holding the webhook URL, and its redacted form.
    Webhook {
        env: String,
        redacted: String,
    },
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Channel(id) => write!(f, "discord:{id}"),
            Place::Webhook { env, redacted } => write!(f, "discord webhook ${env} ({redacted})"),
        }
    }
}

/// What to do about an unsuccessful answer: HTTP status and Discord's JSON
/// error code (`-1` when the body was not Discord's error JSON).
pub fn classify_status(status: u16, code: isize, place: &Place) -> Failure {
    let config = |fix: String| Failure::Config {
        code: if code > 0 {
            format!("http_{status}/{code}")
        } else {
            format!("http_{status}")
        },
        fix,
    };
    let permissions = |channel: &str| {
        format!(
            "the bot cannot post in {channel}: give the bot View Channel, Send Messages, Embed Links in that channel (Edit Channel > Permissions)"
        )
    };
    match (place, status, code) {
        (_, 429, _) => Failure::RateLimited,
        (_, 408, _) => Failure::Transient("Discord timed out (HTTP 408)".into()),
        (_, s, _) if s >= 500 => Failure::Transient(format!("Discord answered HTTP {s}")),
        (Place::Channel(_), 401, _) => config(
            "DISCORD_BOT_TOKEN is not accepted: reset the token (Developer Portal > your app > Bot > Reset Token) and set DISCORD_BOT_TOKEN to it".into(),
        ),
        (Place::Channel(id), 403, 50001) => config(permissions(&format!("channel {id} (Missing Access)"))),
        (Place::Channel(id), 403, 50013) => config(permissions(&format!("channel {id} (Missing Permissions)"))),
        (Place::Channel(id), 403, _) => config(permissions(&format!("channel {id}"))),
        (Place::Channel(id), 404, _) => config(format!(
            "channel {id} does not exist or the bot is not in its server (Unknown Channel): check the channel ID and invite the bot to the server"
        )),
        (Place::Webhook { env, .. }, 401 | 403 | 404, _) => config(format!(
            "the webhook in ${env} was deleted or its URL is wrong (Unknown Webhook): create a webhook (channel settings > Integrations > Webhooks) and set ${env} to its URL"
        )),
        (_, 400, _) => Failure::Rejected(format!("Discord refused the card (HTTP 400, code {code})")),
        (_, s, _) => config(format!(
            "the Discord API answered HTTP {s}: check DISCORD_API_URL (default {DEFAULT_API_URL})"
        )),
    }
}

fn classify(err: serenity::Error, place: &Place) -> Failure {
    use serenity::Error;
    match err {
        Error::Http(HttpError::UnsuccessfulRequest(resp)) => {
            classify_status(resp.status_code.as_u16(), resp.error.code, place)
        }
        // reqwest's message names the URL, which holds a webhook's token: drop it.
        Error::Http(HttpError::Request(e)) => {
            let e = e.without_url();
            if e.is_timeout() {
                Failure::Transient("Discord did not answer in time".into())
            } else {
                Failure::Transient(format!("cannot reach Discord: {e}"))
            }
        }
        Error::Http(HttpError::RateLimitI64F64 | HttpError::RateLimitUtf8) => {
            Failure::Transient("Discord's rate-limit headers could not be read".into())
        }
        Error::Http(HttpError::Url(_) | HttpError::InvalidScheme | HttpError::InvalidPort) => {
            Failure::Config {
                code: "bad_url".into(),
                fix: format!("DISCORD_API_URL is not a usable URL (default {DEFAULT_API_URL})"),
            }
        }
        Error::Model(e) => Failure::Rejected(format!("serenity refused the card: {e}")),
        Error::Json(_) => Failure::Transient("Discord's answer could not be read".into()),
        _ => Failure::Transient("Discord request failed".into()),
    }
}

/// How long a channel rests after a 429 (serenity does not pass `Retry-After`
/// on when its limiter is off).
const HOLD_AFTER_429: Duration = Duration::from_secs(1);

/// Posts cards to Discord: as the bot (when `DISCORD_BOT_TOKEN` is set) and
/// through the incoming webhooks named in the configuration.
#[derive(Clone)]
pub struct DiscordSink {
    inner: Arc<Inner>,
}

struct Inner {
    /// With the bot token.
    bot: Option<Http>,
    /// Without a token: webhook executions carry theirs in the URL.
    hooks: Http,
    api_url: String,
    /// Webhook URLs by the environment variable that held them.
    webhooks: BTreeMap<String, WebhookUrl>,
    /// Some when serenity's rate limiter is off (a non-default API URL).
    /// About five messages per five seconds per channel or webhook; only
    /// when serenity's own rate limiter is off.
    pacer: Option<Pacer<u64>>,
    /// Configuration problems per destination, cleared by the next success.
    problems: Mutex<BTreeMap<String, String>>,
}

/// Neither the token nor a webhook URL reaches `Debug` output.
impl fmt::Debug for DiscordSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscordSink")
            .field("api_url", &self.inner.api_url)
            .field("bot", &self.inner.bot.is_some())
            .field("webhooks", &self.inner.webhooks)
            .finish_non_exhaustive()
    }
}

/// How long one request to Discord may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

impl DiscordSink {
    /// `api_url` like `https://discord.com` (plain `http://` works for local
    /// fakes); `webhooks` maps environment variable names to the webhook URLs
    /// they hold.
    pub fn new(
        bot_token: Option<&str>,
        api_url: &str,
        webhooks: &BTreeMap<String, String>,
    ) -> Result<Self, String> {
        Self::with_call_timeout(bot_token, api_url, webhooks, REQUEST_TIMEOUT)
    }

    /// [`DiscordSink::new`] with every HTTP call (not the pacing before it)
    /// bounded by `timeout`.
    pub fn with_call_timeout(
        bot_token: Option<&str>,
        api_url: &str,
        webhooks: &BTreeMap<String, String>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client for Discord: {e}"))?;
        Self::with_client(bot_token, api_url, webhooks, client)
    }

    /// [`DiscordSink::new`] with the HTTP client given (tests point
    /// `discord.com` at a local fake that way, keeping serenity's limiter on).
    pub fn with_client(
        bot_token: Option<&str>,
        api_url: &str,
        webhooks: &BTreeMap<String, String>,
        client: reqwest::Client,
    ) -> Result<Self, String> {
        let api_url = api_url.trim().trim_end_matches('/').to_owned();
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            return Err(format!(
                "DISCORD_API_URL must start with https:// (default {DEFAULT_API_URL})"
            ));
        }
        let real = api_url == DEFAULT_API_URL;
        let build = |token: &str| {
            let b = HttpBuilder::new(token).client(client.clone());
            // serenity only honours a proxy base with its rate limiter off.
            if real {
                b
            } else {
                b.proxy(api_url.clone()).ratelimiter_disabled(true)
            }
            .build()
        };
        let mut parsed = BTreeMap::new();
        for (env, url) in webhooks {
            let hook = WebhookUrl::parse(url).map_err(|e| format!("{env} {e}"))?;
            parsed.insert(env.clone(), hook);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                bot: bot_token.map(|t| build(t.trim())),
                hooks: build(""),
                webhooks: parsed,
                pacer: (!real).then(|| Pacer::new(5.0, 1.0)),
                api_url,
                problems: Mutex::new(BTreeMap::new()),
            }),
        })
    }

    pub fn api_url(&self) -> &str {
        &self.inner.api_url
    }

    /// Whether serenity's own rate limiter is on (the real API).
    pub fn serenity_ratelimiter(&self) -> bool {
        self.inner.pacer.is_none()
    }

    /// Configuration problems seen on the last attempt per destination.
    pub fn problems(&self) -> Vec<String> {
        self.inner
            .problems
            .lock()
            .map(|p| p.iter().map(|(at, why)| format!("{at}: {why}")).collect())
            .unwrap_or_default()
    }

    /// Renders and posts `card` to a Discord target.
    pub async fn deliver(&self, card: &Card, target: &Target) -> Result<Posted, SinkError> {
        let (place, result) = match target {
            Target::Discord(channel) => {
                let place = Place::Channel(channel.get());
                let r = self.post_bot(card, channel.get(), &place).await;
                (place, r)
            }
            Target::DiscordWebhook { env } => match self.inner.webhooks.get(env) {
                Some(hook) => {
                    let place = Place::Webhook {
                        env: env.clone(),
                        redacted: hook.redacted(),
                    };
                    let r = self.post_webhook(card, hook, &place).await;
                    (place, r)
                }
                None => {
                    let place = Place::Webhook {
                        env: env.clone(),
                        redacted: "webhooks/?/***".into(),
                    };
                    let fix = format!("${env} is not set: set it to the webhook's URL");
                    (
                        place,
                        Err(Failure::Config {
                            code: "no_webhook_url".into(),
                            fix,
                        }),
                    )
                }
            },
            Target::Slack(_) => {
                return Err(SinkError::Config {
                    platform: PLATFORM,
                    detail: "not a Discord destination".into(),
                });
            }
        };
        let key = place.to_string();
        match result {
            Ok(posted) => {
                if let Ok(mut p) = self.inner.problems.lock() {
                    p.remove(&key);
                }
                info!(destination = %place, message_id = ?posted.message_id, "posted to Discord");
                Ok(posted)
            }
            Err(failure) => {
                let code = match &failure {
                    Failure::RateLimited => "ratelimited".to_owned(),
                    Failure::Transient(_) => "transient".to_owned(),
                    Failure::Rejected(_) => "rejected".to_owned(),
                    Failure::Config { code, .. } => code.clone(),
                };
                metrics::counter!("modbridge_discord_errors_total", "code" => code).increment(1);
                match &failure {
                    Failure::Config { code, fix } => {
                        warn!(destination = %place, code = %code, "Discord destination misconfigured: {fix}");
                        if let Ok(mut p) = self.inner.problems.lock() {
                            p.insert(key, format!("{code}: {fix}"));
                        }
                    }
                    Failure::Rejected(detail) => warn!(destination = %place, "{detail}"),
                    _ => {}
                }
                Err(failure.into_sink_error())
            }
        }
    }

    async fn post_bot(&self, card: &Card, channel: u64, place: &Place) -> Result<Posted, Failure> {
        let Some(http) = &self.inner.bot else {
            return Err(Failure::Config {
                code: "no_token".into(),
                fix: "DISCORD_BOT_TOKEN is not set: create a bot (Developer Portal > New Application > Bot), invite it, and set DISCORD_BOT_TOKEN".into(),
            });
        };
        let id = ChannelId::new(channel);
        let mut retried = false;
        loop {
            self.pace(channel).await;
            // The same nonce each time: a resend after a lost answer returns the
            // message Discord already created.
            match id
                .send_message(http, message(card, channel, Utc::now()))
                .await
            {
                Ok(m) => {
                    return Ok(Posted {
                        message_id: Some(m.id.get()),
                    });
                }
                Err(e) => match classify(e, place) {
                    Failure::RateLimited if !retried => {
                        self.hold(channel);
                        warn!(destination = %place, "Discord asked to slow down; waiting");
                        retried = true;
                    }
                    Failure::RateLimited => {
                        self.hold(channel);
                        return Err(Failure::RateLimited);
                    }
                    other => return Err(other),
                },
            }
        }
    }

    async fn post_webhook(
        &self,
        card: &Card,
        hook: &WebhookUrl,
        place: &Place,
    ) -> Result<Posted, Failure> {
        use serenity::builder::Builder;
        self.pace(hook.id).await;
        let execution = webhook_execution(card, Utc::now());
        match execution
            .execute(
                &self.inner.hooks,
                (WebhookId::new(hook.id), hook.token.as_str(), true),
            )
            .await
        {
            Ok(m) => Ok(Posted {
                message_id: m.map(|m| m.id.get()),
            }),
            Err(e) => {
                let f = classify(e, place);
                if f == Failure::RateLimited {
                    self.hold(hook.id);
                }
                Err(f)
            }
        }
    }

    async fn pace(&self, key: u64) {
        if let Some(p) = &self.inner.pacer {
            p.wait(&key).await;
        }
    }

    fn hold(&self, key: u64) {
        if let Some(p) = &self.inner.pacer {
            p.hold(&key, HOLD_AFTER_429);
        }
    }

    /// `GET /users/@me`: proves the bot token works. Returns the bot's name.
    pub async fn whoami(&self) -> Result<String, Failure> {
        let Some(http) = &self.inner.bot else {
            return Err(Failure::Config {
                code: "no_token".into(),
                fix: "DISCORD_BOT_TOKEN is not set".into(),
            });
        };
        http.get_current_user()
            .await
            .map(|u| u.name.clone())
            .map_err(|e| classify(e, &Place::Channel(0)))
    }

    /// `GET /channels/{id}`: the bot can see the channel.
    pub async fn channel_visible(&self, channel: u64) -> Result<(), Failure> {
        let Some(http) = &self.inner.bot else {
            return Err(Failure::Config {
                code: "no_token".into(),
                fix: "DISCORD_BOT_TOKEN is not set".into(),
            });
        };
        http.get_channel(ChannelId::new(channel))
            .await
            .map(|_| ())
            .map_err(|e| classify(e, &Place::Channel(channel)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::Severity;
    use crate::destination::DiscordChannel;
    use chrono::TimeZone;

    const CHANNEL: u64 = 112233445566778899;

    fn card(content: Option<&str>) -> Card {
        Card::example(&format!("discord:{CHANNEL}"), content)
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 8, 14, 33, 0).unwrap()
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
    fn long_content_is_cut_on_graphemes_and_says_how_much() {
        let family = "👨‍👩‍👧";
        let text = family.repeat(5_000);
        let mut c = card(Some(&text));
        c.post_url = Some("https://community.example.com/posts/P1".into());
        let v = bot(&c);
        let d = v["embeds"][0]["description"].as_str().unwrap();
        assert!(width(d) <= limits::DESCRIPTION);
        let (shown, note) = d.split_once("\n\n✂️ Cut: ").unwrap();
        assert!(
            shown.starts_with('👨') && shown.ends_with('👧'),
            "cut inside a grapheme"
        );
        let total = text.chars().count();
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
    fn nonce_depends_on_post_and_channel_only() {
        let a = card(Some("x"));
        let mut b = card(Some("something else"));
        assert_eq!(nonce(&a, 1), nonce(&b, 1));
        assert_ne!(nonce(&a, 1), nonce(&a, 2));
        b.post_id = "P2".into();
        assert_ne!(nonce(&a, 1), nonce(&b, 1));
        assert_eq!(nonce(&a, 1).len(), limits::NONCE);
    }

    #[test]
    fn errors_are_classified_with_what_to_fix() {
        let ch = Place::Channel(42);
        match classify_status(403, 50001, &ch) {
            Failure::Config { fix, code } => {
                assert_eq!(code, "http_403/50001");
                assert!(
                    fix.contains("View Channel, Send Messages, Embed Links"),
                    "{fix}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify_status(403, 50013, &ch),
            Failure::Config { .. }
        ));
        assert!(matches!(
            classify_status(404, 10003, &ch),
            Failure::Config { .. }
        ));
        match classify_status(401, 0, &ch) {
            Failure::Config { fix, .. } => assert!(fix.contains("DISCORD_BOT_TOKEN")),
            other => panic!("{other:?}"),
        }
        let hook = Place::Webhook {
            env: "HOOK".into(),
            redacted: "webhooks/1/***".into(),
        };
        match classify_status(404, 10015, &hook) {
            Failure::Config { fix, .. } => assert!(fix.contains("$HOOK")),
            other => panic!("{other:?}"),
        }
        assert_eq!(classify_status(429, -1, &ch), Failure::RateLimited);
        assert!(matches!(
            classify_status(500, -1, &ch),
            Failure::Transient(_)
        ));
        assert!(matches!(
            classify_status(502, -1, &hook),
            Failure::Transient(_)
        ));
        assert!(matches!(
            classify_status(400, 50035, &ch),
            Failure::Rejected(_)
        ));
    }

    #[test]
    fn webhook_urls_parse_and_never_show_their_token() {
        let url = "https://discord.com/api/webhooks/123456789012345678/abcDEF-_123";
        let hook = WebhookUrl::parse(url).unwrap();
        assert_eq!(hook.redacted(), "webhooks/123456789012345678/***");
        assert_eq!(format!("{hook:?}"), "webhooks/123456789012345678/***");
        assert!(WebhookUrl::parse("https://discord.com/api/v10/webhooks/1/t").is_ok());
        for bad in [
            "",
            "discord.com/api/webhooks/1/t",
            "https://x/api/webhooks/abc/t",
            "https://x/api/webhooks/1/t%2F..",
            "ftp://x/webhooks/1/t",
        ] {
            let err = WebhookUrl::parse(bad).err().unwrap();
            assert!(!err.contains("t%2F"), "{err}");
        }
        let hooks = BTreeMap::from([("HOOK".to_owned(), url.to_owned())]);
        let sink =
            DiscordSink::new(Some("bot-secret-token"), "http://127.0.0.1:9", &hooks).unwrap();
        let debug = format!("{sink:?}");
        assert!(
            !debug.contains("abcDEF") && !debug.contains("bot-secret"),
            "{debug}"
        );
        assert!(!sink.serenity_ratelimiter());
        let real = DiscordSink::new(Some("t"), "https://discord.com/", &hooks).unwrap();
        assert!(real.serenity_ratelimiter());
    }
}
