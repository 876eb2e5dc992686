//! Slack: a [`Card`] rendered as a `chat.postMessage` body (Block Kit) and
//! posted with slack-morphism. Everything Slack-specific lives here: escaping,
//! Block Kit limits, error codes, per-channel pacing.
//!
//! Architecture invariant: this is the only file that imports slack-morphism.
//!
//! Safety rules the renderer keeps for any input:
//! - every piece of untrusted text (content, names, username, email, phone,
//!   matched terms, place, IDs) is escaped (`&`, `<`, `>`) wherever it appears,
//!   so no post can ping anyone or render a disguised link; the only `<…>`
//!   sequences are the destination's configured mention and links modbridge
//!   writes itself (URLs parsed, `|` percent-encoded);
//! - every text stays inside the Block Kit limits in [`limits`], measured in
//!   UTF-16 code units (never fewer than Slack's characters), cut on grapheme
//!   boundaries, and the card says how much was cut.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;
use tracing::{info, warn};
use unicode_segmentation::UnicodeSegmentation;

use super::SinkError;
use super::pacer::Pacer;
use crate::card::{Card, Severity};
use crate::destination::SlackChannel;

const PLATFORM: &str = "slack";

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
const TERM_BUDGET: usize = 100;
const ID_BUDGET: usize = 100;
const LINK_URL_BUDGET: usize = 1_000;
const FALLBACK_BUDGET: usize = 300;
const FALLBACK_HEADER: usize = 100;
const FALLBACK_NAME: usize = 60;
const NEW_ACCOUNT_DAYS: i64 = 7;

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

/// A one-line field (name, username, term, ID): line breaks and other control
/// characters become spaces, and bidirectional overrides are dropped so that a
/// name cannot reorder or fake the text modbridge writes after it.
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

/// `raw` escaped, cut on a grapheme boundary so that the result (with `…` when
/// cut) is at most `budget` wide. Returns the text and how many characters of
/// `raw` were left out.
fn fit(raw: &str, budget: usize) -> (String, usize) {
    super::text::fit_escaped(raw, budget, |s| escape(s).into_owned(), width)
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

/// The destination's configured mention, written by modbridge only.
fn mention_markup(mention: &str) -> Option<String> {
    match mention {
        "here" => Some("<!here>".into()),
        "channel" => Some("<!channel>".into()),
        m if m.len() > 1
            && m.starts_with('S')
            && m.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) =>
        {
            Some(format!("<!subteam^{m}>"))
        }
        _ => None,
    }
}

fn pluralize(n: i64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
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
    let ranges = super::text::clean_highlights(content, highlights);
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

/// The `chat.postMessage` body for `card` in `channel`. `now` is when it is
/// sent (for "joined N days ago").
pub fn render(
    card: &Card,
    channel: &str,
    now: DateTime<Utc>,
    image: ImageMode,
) -> SlackApiChatPostMessageRequest {
    let name = fit(&one_line(&card.author.name), NAME_BUDGET).0;
    let mut blocks: Vec<SlackBlock> = Vec::new();

    // Header (plain text, escaped too: Slack decodes the entities).
    let header = fit(&one_line(&card.headline), limits::HEADER).0;
    blocks.push(SlackHeaderBlock::new(SlackBlockPlainText::new(header.clone()).into()).into());

    // Mention: only the destination's, only when a match asked for it.
    let mention = card.mention.as_deref().and_then(mention_markup);
    if let Some(m) = &mention {
        blocks.push(section(format!("{m} a moderator is needed")));
    }

    // Author.
    let mut author = format!("*{name}*");
    if let Some(u) = card
        .author
        .username
        .as_deref()
        .filter(|u| !u.trim().is_empty())
    {
        author.push_str(&format!(" (@{})", fit(&one_line(u), USERNAME_BUDGET).0));
    }
    match card.author.joined_at {
        Some(joined) => {
            let days = (now - joined).num_days();
            let ago = if days < 1 {
                "joined today".to_owned()
            } else {
                format!("joined {} ago", pluralize(days, "day", "days"))
            };
            author.push_str(&format!(
                "\nMember since {} ({ago})",
                joined.format("%Y-%m-%d")
            ));
            if days < NEW_ACCOUNT_DAYS {
                author.push_str(" · :new: *new account*");
            }
        }
        None => author.push_str("\nMember since: unknown"),
    }
    author.push_str(&format!(
        " · {}",
        pluralize(card.author.badges as i64, "badge", "badges")
    ));
    if let Some(email) = card.author.email.as_deref() {
        author.push_str(&format!(
            "\nEmail: {}",
            fit(&one_line(email), CONTACT_BUDGET).0
        ));
    }
    if let Some(phone) = card.author.phone.as_deref() {
        author.push_str(&format!(
            "\nPhone: {}",
            fit(&one_line(phone), CONTACT_BUDGET).0
        ));
    }
    // A notice from modbridge itself has no author worth a block.
    if card.severity != Severity::Notice {
        blocks.push(section(author));
    }

    // Image (or a link to it).
    let image_url = card.image_url.as_deref().and_then(web_url);
    let mut image_block = None;
    let mut image_note = None;
    if let Some(url) = &image_url {
        match image {
            ImageMode::Block if width(url.as_str()) <= limits::IMAGE_URL => {
                image_block = Some(SlackBlock::from(SlackImageBlock::new(
                    SlackImageUrlOrFile::ImageUrl {
                        image_url: url.clone(),
                    },
                    "Image attached to the post".into(),
                )));
            }
            _ => {
                image_note = Some(match mrkdwn_link(url, "open image") {
                    Some(link) if image == ImageMode::Link => {
                        format!("Image (Slack could not show it): {link}")
                    }
                    Some(link) => format!("Image: {link}"),
                    None => "Image: (its address is too long to show)".to_owned(),
                });
            }
        }
    }

    // Why: reasons and terms, then when and which post.
    let mut why = String::from("*Why:* ");
    let mut shown = 0;
    for (i, r) in card.reasons.iter().enumerate() {
        let mut part = format!(
            "{} › {}",
            fit(&one_line(&r.rules), TERM_BUDGET).0,
            fit(&one_line(&r.name), TERM_BUDGET).0
        );
        if r.name == "sensitive" {
            part = format!(
                "{} › sensitive group",
                fit(&one_line(&r.rules), TERM_BUDGET).0
            );
        }
        if !r.terms.is_empty() {
            let terms: Vec<String> = r
                .terms
                .iter()
                .map(|t| format!("“{}”", fit(&one_line(t), TERM_BUDGET).0))
                .collect();
            part.push_str(&format!(": {}", terms.join(", ")));
        }
        let sep = if i == 0 { "" } else { "; " };
        // Leave room for the "and N more" tail.
        if width(&why) + width(sep) + width(&part) > REASONS_BUDGET - 40 {
            break;
        }
        why.push_str(sep);
        why.push_str(&part);
        shown += 1;
    }
    if shown < card.reasons.len() {
        why.push_str(&format!(
            " … and {} more",
            pluralize((card.reasons.len() - shown) as i64, "reason", "reasons")
        ));
    }
    if shown == 0 && card.reasons.is_empty() {
        why = if card.severity == Severity::Notice {
            "*modbridge notice*".to_owned()
        } else {
            format!("{why}(no reason given)")
        };
    }
    let meta = format!(
        "Posted {} · post ID {}",
        card.posted_at.format("%Y-%m-%d %H:%M UTC"),
        fit(&one_line(&card.post_id), ID_BUDGET).0
    );
    let context: SlackBlock = SlackContextBlock::new(vec![
        SlackBlockMarkDownText::new(why).into(),
        SlackBlockMarkDownText::new(meta).into(),
    ])
    .into();

    // Open post button.
    let post_url = card
        .post_url
        .as_deref()
        .and_then(web_url)
        .filter(|u| width(u.as_str()) <= limits::BUTTON_URL);
    let actions: Option<SlackBlock> = post_url.as_ref().map(|u| {
        SlackActionsBlock::new(vec![
            SlackBlockButtonElement::new(SlackBlockPlainText::new("Open post".into()).into())
                .with_action_id(SlackActionId::new("open_post".into()))
                .with_url(u.clone())
                .into(),
        ])
        .into()
    });

    // Content gets what the rest leaves of the whole-message budget.
    let used: usize = blocks
        .iter()
        .chain(image_block.iter())
        .chain(std::iter::once(&context))
        .chain(actions.iter())
        .map(block_text_width)
        .sum::<usize>()
        + image_note.as_deref().map_or(0, width);
    let content_budget = TOTAL_BUDGET
        .saturating_sub(used + CUT_NOTE_BUDGET)
        .min(CONTENT_MAX);
    let (sections, cut) = match card.content.as_deref() {
        None => (vec!["_(no text: media only)_".to_owned()], 0),
        Some(c) if c.trim().is_empty() => (vec!["_(empty text)_".to_owned()], 0),
        Some(c) => content_sections(c, &card.highlights, content_budget),
    };
    let total_chars = card.content.as_deref().map_or(0, |c| c.chars().count());
    let mut sections = sections;
    if sections.is_empty() {
        sections.push("_(the text cannot be shown here)_".to_owned());
    }
    for s in sections {
        blocks.push(section(s));
    }
    if cut > 0 {
        let link = post_url
            .as_ref()
            .and_then(|u| mrkdwn_link(u, "Open the post"))
            .map(|l| format!(" {l} to read it all."))
            .unwrap_or_else(|| " Open the post in Cativa to read it all.".to_owned());
        blocks.push(
            SlackContextBlock::new(vec![
                SlackBlockMarkDownText::new(format!(
                    ":scissors: Cut: {cut} of {total_chars} characters not shown.{link}"
                ))
                .into(),
            ])
            .into(),
        );
    }
    if let Some(note) = image_note {
        blocks.push(section(note));
    }
    if let Some(b) = image_block {
        blocks.push(b);
    }
    blocks.push(context);
    if let Some(a) = actions {
        blocks.push(a);
    }

    // Fallback text: one short escaped line (notifications show it).
    let excerpt_raw: String = card
        .content
        .as_deref()
        .map(one_line)
        .unwrap_or_else(|| "(media only)".into());
    let prefix = format!(
        "{}{} — {}: ",
        mention.map(|m| format!("{m} ")).unwrap_or_default(),
        fit(&one_line(&card.headline), FALLBACK_HEADER).0,
        fit(&one_line(&card.author.name), FALLBACK_NAME).0,
    );
    let excerpt = fit(&excerpt_raw, FALLBACK_BUDGET.saturating_sub(width(&prefix))).0;
    let text = format!("{prefix}{excerpt}");

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

// ---------------------------------------------------------------------------
// Delivery

/// A card Slack accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    pub channel: String,
    pub ts: String,
}

#[derive(Debug, Deserialize)]
struct PostMessageAnswer {
    channel: Option<String>,
    ts: Option<String>,
}

/// What `auth.test` says about the token.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthInfo {
    pub team: Option<String>,
    pub user: Option<String>,
    pub user_id: Option<String>,
    pub bot_id: Option<String>,
    pub url: Option<String>,
}

/// What `conversations.info` says about a channel.
#[derive(Debug, Clone, Deserialize)]
pub struct ChannelInfo {
    pub id: String,
    pub name: Option<String>,
    pub is_member: Option<bool>,
    pub is_archived: Option<bool>,
    pub is_private: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct ChannelAnswer {
    channel: ChannelInfo,
}

/// A Slack call's failure, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// HTTP 429 (or `ratelimited`): wait this long.
    RateLimited(Option<Duration>),
    /// 5xx, connection, timeouts, unknown codes: worth retrying.
    Transient(String),
    /// Fix the token, scopes or channel: retrying as-is will not help.
    Config { code: String, fix: String },
    /// Slack refused this message (`invalid_blocks`, `msg_too_long`, …).
    Rejected(String),
}

impl Failure {
    pub fn into_sink_error(self) -> SinkError {
        match self {
            Failure::RateLimited(after) => SinkError::Transient {
                platform: PLATFORM,
                detail: match after {
                    Some(a) => format!("rate limited: retry after {} s", a.as_secs()),
                    None => "rate limited".into(),
                },
                retry_after: after,
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
            Failure::Rejected(code) => SinkError::Rejected {
                platform: PLATFORM,
                detail: format!(
                    "Slack refused the card ({code}); this is a modbridge bug, please report it"
                ),
            },
        }
    }
}

/// What to do about a Slack error code, for the channel it happened in.
pub fn classify_code(code: &str, channel: &str) -> Failure {
    let config = |fix: String| Failure::Config {
        code: code.to_owned(),
        fix,
    };
    match code {
        "ratelimited" | "rate_limited" => Failure::RateLimited(None),
        "channel_not_found" => config(format!(
            "channel {channel} does not exist or the bot cannot see it: check the channel ID; for a private channel, invite the bot (/invite @your-bot)"
        )),
        "not_in_channel" => config(format!(
            "the bot is not a member of {channel}: invite the bot to the channel (/invite @your-bot) or add the chat:write.public scope and reinstall the app"
        )),
        "is_archived" => config(format!(
            "channel {channel} is archived: unarchive it or send this destination elsewhere"
        )),
        "invalid_auth" | "not_authed" | "account_inactive" | "token_revoked" => config(
            "SLACK_BOT_TOKEN is not accepted: install the Slack app again and set SLACK_BOT_TOKEN to its xoxb- bot token".into(),
        ),
        "missing_scope" => config(
            "the token lacks a scope: add chat:write (and chat:write.public for channels the bot has not joined), then reinstall the app".into(),
        ),
        "restricted_action" => config(format!(
            "the workspace does not let the bot post in {channel}: ask a Slack admin to allow the app to post there"
        )),
        "invalid_blocks" | "invalid_blocks_format" | "msg_too_long" | "msg_blocks_too_long"
        | "no_text" | "invalid_arguments" | "too_many_attachments" => {
            Failure::Rejected(code.to_owned())
        }
        other => Failure::Transient(format!("Slack answered {other}")),
    }
}

fn classify(err: SlackClientError, channel: &str) -> Failure {
    match err {
        SlackClientError::ApiError(e) => classify_code(&e.code, channel),
        SlackClientError::RateLimitError(e) => Failure::RateLimited(e.retry_after),
        SlackClientError::HttpError(e) => {
            let status = e.status_code;
            if status.is_server_error() || status.as_u16() == 408 {
                Failure::Transient(format!("Slack answered HTTP {status}"))
            } else {
                Failure::Config {
                    code: format!("http_{}", status.as_u16()),
                    fix: format!(
                        "the Slack API answered HTTP {status}: check SLACK_API_URL (default https://slack.com/api)"
                    ),
                }
            }
        }
        SlackClientError::ProtocolError(_) => {
            Failure::Transient("Slack's answer could not be read".into())
        }
        other => Failure::Transient(format!("cannot reach Slack: {other}")),
    }
}

/// A 429 asking to wait at most this long is waited out inline (within the
/// webhook's deadline); a longer one goes back to the caller.
const MAX_INLINE_WAIT: Duration = Duration::from_secs(2);

/// Posts cards to Slack with one bot token.
#[derive(Clone)]
pub struct SlackSink {
    inner: Arc<Inner>,
    /// The longest one Web API call may take (pacing waits not included).
    call_timeout: Duration,
}

struct Inner {
    client: SlackHyperClient,
    token: SlackApiToken,
    api_url: String,
    /// About one message a second per channel, bursts of three.
    pacer: Pacer<String>,
    /// Configuration problems per channel, cleared by the next success (for `/readyz`).
    problems: Mutex<BTreeMap<String, String>>,
}

/// The token never reaches `Debug` output.
impl fmt::Debug for SlackSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackSink")
            .field("api_url", &self.inner.api_url)
            .finish_non_exhaustive()
    }
}

impl SlackSink {
    /// `api_url` like `https://slack.com/api` (plain `http://` works for local fakes).
    pub fn new(token: &str, api_url: &str) -> Result<Self, String> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| {
                format!("cannot load the system's CA certificates for Slack (install ca-certificates): {e}")
            })?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let api_url = api_url.trim_end_matches('/').to_owned();
        let connector = SlackClientHyperConnector::from(https).with_slack_api_url(&api_url);
        Ok(Self {
            inner: Arc::new(Inner {
                client: SlackClient::new(connector),
                token: SlackApiToken::new(SlackApiTokenValue::new(token.to_owned())),
                api_url,
                pacer: Pacer::new(3.0, 1.0),
                problems: Mutex::new(BTreeMap::new()),
            }),
            call_timeout: Duration::from_secs(10),
        })
    }

    /// Bounds every Web API call (not the pacing before it); past it the call
    /// counts as a retryable failure.
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    pub fn api_url(&self) -> &str {
        &self.inner.api_url
    }

    /// Configuration problems seen on the last attempt per channel.
    pub fn problems(&self) -> Vec<String> {
        self.inner
            .problems
            .lock()
            .map(|p| {
                p.iter()
                    .map(|(ch, why)| format!("slack:{ch}: {why}"))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Renders and posts `card`; when Slack cannot use the image, posts it once
    /// more with the image as a link.
    pub async fn deliver(&self, card: &Card, channel: &SlackChannel) -> Result<Posted, SinkError> {
        let ch = channel.as_str();
        let now = Utc::now();
        let request = render(card, ch, now, ImageMode::Block);
        let has_image = request
            .content
            .blocks
            .as_ref()
            .is_some_and(|b| b.iter().any(|b| matches!(b, SlackBlock::Image(_))));
        let result = match self.post(ch, &request).await {
            Err(Failure::Rejected(code)) if code == "invalid_blocks" && has_image => {
                warn!(
                    channel = ch,
                    "Slack could not use the post's image; sending the card again with the image as a link"
                );
                metrics::counter!("modbridge_slack_image_fallbacks_total").increment(1);
                self.post(ch, &render(card, ch, now, ImageMode::Link)).await
            }
            other => other,
        };
        match result {
            Ok(posted) => {
                if let Ok(mut p) = self.inner.problems.lock() {
                    p.remove(ch);
                }
                info!(channel = ch, ts = %posted.ts, "posted to Slack");
                Ok(posted)
            }
            Err(failure) => {
                let code = match &failure {
                    Failure::RateLimited(_) => "ratelimited".to_owned(),
                    Failure::Transient(_) => "transient".to_owned(),
                    Failure::Config { code, .. } | Failure::Rejected(code) => code.clone(),
                };
                metrics::counter!("modbridge_slack_errors_total", "code" => code).increment(1);
                if let Failure::Config { code, fix } = &failure {
                    warn!(channel = ch, code = %code, "Slack destination misconfigured: {fix}");
                    if let Ok(mut p) = self.inner.problems.lock() {
                        p.insert(ch.to_owned(), format!("{code}: {fix}"));
                    }
                }
                Err(failure.into_sink_error())
            }
        }
    }

    /// One `chat.postMessage`, paced; a short 429 is waited out once.
    pub async fn post(
        &self,
        channel: &str,
        request: &SlackApiChatPostMessageRequest,
    ) -> Result<Posted, Failure> {
        let mut waited = false;
        loop {
            self.inner.pacer.wait(&channel.to_owned()).await;
            let session = self.inner.client.open_session(&self.inner.token);
            let call = session.http_session_api.http_post::<_, PostMessageAnswer>(
                "chat.postMessage",
                request,
                None,
            );
            let answer = match tokio::time::timeout(self.call_timeout, call).await {
                Ok(answer) => answer.map_err(|e| classify(e, channel)),
                // The message may exist: the honest duplicate risk of an API
                // without idempotency keys.
                Err(_) => Err(Failure::Transient(format!(
                    "no answer within {} s",
                    self.call_timeout.as_secs_f32()
                ))),
            };
            match answer {
                Ok(a) => {
                    return Ok(Posted {
                        channel: a.channel.unwrap_or_else(|| channel.to_owned()),
                        ts: a.ts.unwrap_or_default(),
                    });
                }
                Err(Failure::RateLimited(after)) => {
                    let wait = after.unwrap_or(Duration::from_secs(1));
                    self.inner.pacer.hold(&channel.to_owned(), wait);
                    if waited || wait > MAX_INLINE_WAIT {
                        return Err(Failure::RateLimited(after));
                    }
                    warn!(
                        channel,
                        wait_secs = wait.as_secs_f64(),
                        "Slack asked to slow down; waiting"
                    );
                    waited = true;
                }
                Err(other) => return Err(other),
            }
        }
    }

    /// `auth.test`: proves the token works (any scope).
    pub async fn auth_test(&self) -> Result<AuthInfo, Failure> {
        let session = self.inner.client.open_session(&self.inner.token);
        let none: Vec<(&str, Option<&str>)> = Vec::new();
        session
            .http_session_api
            .http_get("auth.test", &none, None)
            .await
            .map_err(|e| classify(e, "-"))
    }

    /// `conversations.info`: needs `channels:read` (public) or `groups:read` (private).
    pub async fn channel_info(&self, channel: &SlackChannel) -> Result<ChannelInfo, Failure> {
        let session = self.inner.client.open_session(&self.inner.token);
        let params = vec![("channel", Some(channel.as_str()))];
        session
            .http_session_api
            .http_get::<ChannelAnswer, _, _>("conversations.info", &params, None)
            .await
            .map(|a| a.channel)
            .map_err(|e| classify(e, channel.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn card(content: Option<&str>) -> Card {
        Card::example("slack:C0123ABCD", content)
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 8, 14, 33, 0).unwrap()
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
        let family = "👨‍👩‍👧";
        let text = family.repeat(5_000);
        let mut c = card(Some(&text));
        c.post_url = Some("https://community.example.com/posts/P1".into());
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

    #[test]
    fn error_codes_are_classified() {
        assert!(matches!(
            classify_code("channel_not_found", "C1"),
            Failure::Config { .. }
        ));
        match classify_code("not_in_channel", "C1") {
            Failure::Config { fix, .. } => {
                assert!(fix.contains("invite the bot") && fix.contains("chat:write.public"))
            }
            other => panic!("{other:?}"),
        }
        for code in [
            "is_archived",
            "invalid_auth",
            "not_authed",
            "account_inactive",
            "token_revoked",
            "missing_scope",
            "restricted_action",
        ] {
            assert!(
                matches!(classify_code(code, "C1"), Failure::Config { .. }),
                "{code}"
            );
        }
        assert_eq!(
            classify_code("ratelimited", "C1"),
            Failure::RateLimited(None)
        );
        assert_eq!(
            classify_code("rate_limited", "C1"),
            Failure::RateLimited(None)
        );
        assert!(matches!(
            classify_code("invalid_blocks", "C1"),
            Failure::Rejected(_)
        ));
        assert!(matches!(
            classify_code("internal_error", "C1"),
            Failure::Transient(_)
        ));
    }

    #[test]
    fn debug_hides_the_token() {
        let sink = SlackSink::new("xoxb-secret-token", "http://127.0.0.1:9/api").unwrap();
        assert!(!format!("{sink:?}").contains("xoxb"));
    }
}
