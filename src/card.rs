//! The platform-neutral moderation card: what a moderator needs to judge a
//! post, built from the post, the destination's options and the reasons the
//! rules gave. The platforms turn it into Block Kit or an embed (and escape there:
//! everything here is raw, untrusted text).

use std::ops::Range;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How a destination shows images; cards carry it to the renderers.
pub use crate::destination::Images;
use crate::destination::{Destination, Target};
use crate::post::Post;
use crate::rules::{ReasonKind, Routing, RuleSeverity};

/// Why a card exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Text matched a rule: a moderator should look now.
    Flagged,
    /// Every post in a sensitive group is forwarded.
    SensitiveGroup,
    /// An operational notice from modbridge itself (`[alerts]`), not a post.
    Notice,
}

/// How serious the rules say a card is: the highest `severity` of its
/// reasons (a sensitive group's reason is `Normal`).
///
/// Kept apart from [`Severity`] on purpose: `Severity` says *why* a card
/// exists (a match, a sensitive group, modbridge's own notice) and picks the
/// headline and layout; `Level` says *how urgent* the rules consider it and
/// only adds a label (Slack) or changes the colour (Discord). The two are
/// independent (a sensitive-group card can also carry an urgent match), and
/// folding levels into `Severity` would change the serialised `severity` of
/// cards parked by earlier versions. `Normal` renders exactly as cards did
/// before levels existed, and is not serialised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Low,
    #[default]
    Normal,
    High,
    Urgent,
}

impl Level {
    /// `Normal`: the level a card has when nothing says otherwise.
    pub fn is_normal(&self) -> bool {
        *self == Level::Normal
    }
}

impl From<RuleSeverity> for Level {
    fn from(s: RuleSeverity) -> Self {
        match s {
            RuleSeverity::Low => Level::Low,
            RuleSeverity::Normal => Level::Normal,
            RuleSeverity::High => Level::High,
            RuleSeverity::Urgent => Level::Urgent,
        }
    }
}

/// The author as a card shows them. `Debug` shows the user ID only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorView {
    pub name: String,
    pub username: Option<String>,
    pub user_id: String,
    pub joined_at: Option<DateTime<Utc>>,
    pub badges: usize,
    /// Only when the destination allows it (`show_email`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Only when the destination allows it (`show_phone`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// One reason on a card. `Debug` leaves out the matched terms (post text).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasonView {
    /// The rules file's `name`.
    pub rules: String,
    /// `sensitive` or the match's name.
    pub name: String,
    /// The text that matched, as written in the post.
    pub terms: Vec<String>,
    /// The match's `note` for moderators, placeholders filled in. Untrusted:
    /// `{match}` put post text in it, so the platforms escape all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `Debug` shows IDs, the target and the severity only: a card holds post
/// text and may hold the author's email and phone.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    /// The destination's name (`[destinations.NAME]` or the inline spec).
    pub destination: String,
    /// Where it goes; serialised in its text form (`slack:C…`), as parked
    /// cards have always been.
    pub target: Target,
    pub severity: Severity,
    /// How serious the rules say it is (see [`Level`]); absent from cards
    /// parked by earlier versions, which read back as `Normal`.
    #[serde(default, skip_serializing_if = "Level::is_normal")]
    pub level: Level,
    /// The rules ran out of their time budget (`rules.max_eval_ms`) on this
    /// post: more rules may match than the card shows.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_fully_checked: bool,
    /// "Flagged post · Parents support".
    pub headline: String,
    /// Where it was posted: the group's display name or "Main feed".
    pub place: String,
    pub author: AuthorView,
    /// `None` for media-only posts.
    pub content: Option<String>,
    /// Byte ranges of `content` to highlight, sorted, not overlapping.
    pub highlights: Vec<Range<usize>>,
    /// Only http(s) URLs.
    pub image_url: Option<String>,
    /// How the destination shows the image (absent from older parked cards:
    /// shown).
    #[serde(default, skip_serializing_if = "Images::is_show")]
    pub images: Images,
    pub reasons: Vec<ReasonView>,
    pub customer_id: String,
    pub post_id: String,
    pub group_id: Option<String>,
    pub posted_at: DateTime<Utc>,
    pub post_url: Option<String>,
    /// The destination's configured mention, when a match asked for it.
    pub mention: Option<String>,
    /// The author's earlier cards (with moderator actions on: a Redis read
    /// when the card is made); absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earlier: Option<EarlierCards>,
    /// What the card shows of its moderator case (status line, buttons):
    /// set just before it is rendered, never stored (parked cards and the
    /// case's own copy of the card do not carry it).
    #[serde(skip)]
    pub case: Option<CaseView>,
}

impl ReasonView {
    /// The reason "forwarded because the group is sensitive" (no rule
    /// matched: left out of rule statistics).
    pub fn is_sensitive_group(&self) -> bool {
        self.name == crate::rules::SENSITIVE_REASON
    }
}

/// What a card says about its author's earlier cases (last 30 days): how
/// many, and how they ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarlierCards {
    /// Earlier cases (this post's own left out).
    pub earlier: u32,
    pub resolved: u32,
    pub false_positive: u32,
    /// Open or claimed.
    pub open: u32,
}

/// Where a moderator case stands, as a card shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseStatus {
    /// Nobody has acted yet.
    Open,
    Claimed,
    Resolved,
    FalsePositive,
    /// Open again after a Reopen.
    Reopened,
    /// Open again after an Unclaim.
    Unclaimed,
}

/// What a card shows of its moderator case: a status line and, when the
/// platform's interactions are on and the copy can carry them, the buttons
/// that move it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseView {
    /// The case's opaque ID (what the buttons carry).
    pub case_id: String,
    pub status: CaseStatus,
    /// Who made the last change: handle (untrusted text) and platform name.
    pub by: Option<(String, String)>,
    /// How long after the post the last change came, in whole minutes.
    pub minutes_after_posting: Option<u64>,
    /// Interactive buttons on this copy.
    pub buttons: bool,
}

impl std::fmt::Debug for AuthorView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorView")
            .field("user_id", &self.user_id)
            .field("joined_at", &self.joined_at)
            .field("badges", &self.badges)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ReasonView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReasonView")
            .field("rules", &self.rules)
            .field("name", &self.name)
            .field("terms", &self.terms.len())
            .field("note", &self.note.is_some())
            .finish()
    }
}

impl std::fmt::Debug for Card {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Card")
            .field("destination", &self.destination)
            .field("target", &self.target)
            .field("severity", &self.severity)
            .field("level", &self.level)
            .field("not_fully_checked", &self.not_fully_checked)
            .field("customer_id", &self.customer_id)
            .field("post_id", &self.post_id)
            .field("group_id", &self.group_id)
            .field("author", &self.author)
            .field("reasons", &self.reasons)
            .finish_non_exhaustive()
    }
}

/// What a card needs besides the post and the reasons.
#[derive(Debug, Clone, Default)]
pub struct CardContext<'a> {
    pub post_url_template: Option<&'a str>,
    pub group_names: Option<&'a std::collections::BTreeMap<String, String>>,
    /// The verdict ran out of its time budget (`Verdict::not_fully_checked`).
    pub not_fully_checked: bool,
}

impl Card {
    pub fn build(post: &Post, routing: &Routing, ctx: &CardContext<'_>) -> Card {
        let dest: &Destination = &routing.destination;
        let severity = if routing
            .reasons
            .iter()
            .any(|r| matches!(r.kind, ReasonKind::Match { .. }))
        {
            Severity::Flagged
        } else {
            Severity::SensitiveGroup
        };
        let rules_name = routing
            .reasons
            .first()
            .map(|r| r.rules_name.clone())
            .unwrap_or_default();
        let place = match &post.group_id {
            None => "Main feed".to_owned(),
            Some(g) => ctx
                .group_names
                .and_then(|names| names.get(g.as_str()).cloned())
                .unwrap_or_else(|| rules_name.clone()),
        };
        let headline = match severity {
            Severity::Flagged => format!("Flagged post · {place}"),
            Severity::SensitiveGroup | Severity::Notice => {
                format!("New post in sensitive group · {place}")
            }
        };
        let mut highlights: Vec<Range<usize>> = routing
            .reasons
            .iter()
            .flat_map(|r| r.matched.iter().map(|h| h.range.clone()))
            .collect();
        highlights.sort_by_key(|r| (r.start, r.end));
        let mut merged: Vec<Range<usize>> = Vec::with_capacity(highlights.len());
        for r in highlights {
            match merged.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => merged.push(r),
            }
        }
        let image_url = post
            .image_url
            .clone()
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"));
        let post_url = ctx.post_url_template.map(|t| {
            t.replace("{post_id}", post.post_id.as_str())
                .replace("{customer_id}", post.customer_id.as_str())
                .replace(
                    "{group_id}",
                    post.group_id.as_ref().map_or("", |g| g.as_str()),
                )
        });
        let level = routing
            .reasons
            .iter()
            .map(|r| Level::from(r.severity))
            .max()
            .unwrap_or_default();
        Card {
            case: None,
            destination: dest.name().to_owned(),
            target: dest.target().clone(),
            severity,
            level,
            not_fully_checked: ctx.not_fully_checked,
            headline,
            place,
            author: AuthorView {
                name: post.author.shown_name(),
                username: post.author.username.clone(),
                user_id: post.author.id.to_string(),
                joined_at: post.author.joined_at,
                badges: post.author.badges.len(),
                email: dest
                    .show_email()
                    .then(|| post.author.email.clone())
                    .flatten(),
                phone: dest
                    .show_phone()
                    .then(|| post.author.phone_number.clone())
                    .flatten(),
            },
            content: post.content.clone(),
            highlights: merged,
            image_url,
            images: dest.images(),
            reasons: routing
                .reasons
                .iter()
                .map(|r| ReasonView {
                    rules: r.rules_name.clone(),
                    name: r.name().to_owned(),
                    terms: r.matched.iter().map(|h| h.text.clone()).collect(),
                    note: r.note.clone().filter(|n| !n.trim().is_empty()),
                })
                .collect(),
            customer_id: post.customer_id.to_string(),
            post_id: post.post_id.to_string(),
            group_id: post.group_id.as_ref().map(|g| g.to_string()),
            posted_at: post.created_at,
            post_url,
            mention: if routing.mention {
                dest.mention().map(str::to_owned)
            } else {
                None
            },
            earlier: None,
        }
    }
}

impl Card {
    /// A small, fixed card (Mary Smith's flagged post P1) for tests and
    /// examples of the platforms' output. `target` in its text form; one
    /// that does not parse stands for the example Slack channel.
    #[doc(hidden)]
    pub fn example(target: &str, content: Option<&str>) -> Card {
        use chrono::TimeZone;
        let target = Target::parse(target).unwrap_or_else(|_| {
            Target::Slack(
                crate::destination::SlackChannel::parse("C0123ABCD").unwrap_or_else(|_| {
                    unreachable!("C0123ABCD is a well-formed Slack channel ID")
                }),
            )
        });
        Card {
            case: None,
            destination: "mods".into(),
            target,
            severity: Severity::Flagged,
            level: Level::Normal,
            not_fully_checked: false,
            headline: "Flagged post · Parents support".into(),
            place: "Parents support".into(),
            author: AuthorView {
                name: "Mary Smith".into(),
                username: Some("mary".into()),
                user_id: "U1".into(),
                joined_at: Utc.with_ymd_and_hms(2026, 5, 5, 10, 0, 0).single(),
                badges: 2,
                email: None,
                phone: None,
            },
            content: content.map(str::to_owned),
            highlights: vec![],
            image_url: None,
            images: Images::Show,
            reasons: vec![ReasonView {
                rules: "Everywhere".into(),
                name: "forbidden".into(),
                terms: vec!["forbidden phrase".into()],
                note: None,
            }],
            customer_id: "CUST".into(),
            post_id: "P1".into(),
            group_id: None,
            posted_at: Utc
                .with_ymd_and_hms(2026, 5, 8, 14, 32, 1)
                .single()
                .unwrap_or_default(),
            post_url: None,
            mention: None,
            earlier: None,
        }
    }
}

impl Card {
    /// An operational notice for the `[alerts]` destination: a headline and a
    /// short text, written by modbridge (it may quote configuration errors,
    /// never post content). Rendered like a card, escaped like one.
    pub fn notice(destination: &Destination, headline: &str, text: &str) -> Card {
        let now = Utc::now();
        Card {
            case: None,
            destination: destination.name().to_owned(),
            target: destination.target().clone(),
            severity: Severity::Notice,
            level: Level::Normal,
            not_fully_checked: false,
            headline: headline.to_owned(),
            place: "modbridge".into(),
            author: AuthorView {
                name: "modbridge".into(),
                username: None,
                user_id: "modbridge".into(),
                joined_at: None,
                badges: 0,
                email: None,
                phone: None,
            },
            content: Some(text.to_owned()),
            highlights: vec![],
            image_url: None,
            images: Images::Show,
            reasons: vec![],
            customer_id: "modbridge".into(),
            post_id: format!("notice-{}", now.timestamp_millis()),
            group_id: None,
            posted_at: now,
            post_url: None,
            mention: None,
            earlier: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use chrono::TimeZone;

    use super::*;
    use crate::destination::Destinations;
    use crate::post::{CustomerId, PostId, UserId};
    use crate::rules::RuleSet;

    const RULES: &str = r#"
groups = ["*"]
to = ["slack:C0123ABCD"]

[[match]]
name = "threat"
keywords = ["kill"]
severity = "urgent"
note = "check “{match}” against the playbook"

[[match]]
name = "spam"
keywords = ["pills"]
severity = "low"

[[match]]
name = "quiet"
keywords = ["quiet"]
severity = "low"
"#;

    fn post(content: &str) -> Post {
        Post::text(
            CustomerId::parse("C1").unwrap(),
            PostId::parse("P1").unwrap(),
            UserId::parse("U1").unwrap(),
            content,
            Utc.with_ymd_and_hms(2026, 5, 8, 12, 0, 0).unwrap(),
        )
    }

    fn cards(content: &str, not_fully_checked: bool) -> Vec<Card> {
        let rules = RuleSet::from_sources(
            Path::new("rules"),
            [("t.toml", RULES.as_bytes())],
            &Destinations::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .rules;
        let post = post(content);
        let verdict = rules.evaluate(&post);
        let ctx = CardContext {
            not_fully_checked,
            ..Default::default()
        };
        verdict
            .routings
            .iter()
            .map(|d| Card::build(&post, d, &ctx))
            .collect()
    }

    #[test]
    fn the_level_is_the_highest_of_the_reasons_and_notes_carry_the_match() {
        let card = &cards("cheap pills, or I KILL", false)[0];
        assert_eq!(card.level, Level::Urgent);
        assert!(!card.not_fully_checked);
        let notes: Vec<Option<&str>> = card.reasons.iter().map(|r| r.note.as_deref()).collect();
        assert_eq!(
            notes,
            [Some("check “KILL” against the playbook"), None],
            "in the order of the rules file"
        );
        assert_eq!(cards("quiet pills", false)[0].level, Level::Low);
    }

    #[test]
    fn not_fully_checked_comes_from_the_verdict() {
        assert!(cards("pills", true)[0].not_fully_checked);
    }

    #[test]
    fn new_fields_are_left_out_when_unset_and_default_when_missing() {
        let card = Card::example("slack:C0123ABCD", Some("text"));
        let json = serde_json::to_value(&card).unwrap();
        for key in ["level", "not_fully_checked"] {
            assert!(json.get(key).is_none(), "{key} in {json}");
        }
        assert!(json["reasons"][0].get("note").is_none(), "{json}");
        let back: Card = serde_json::from_value(json).unwrap();
        assert_eq!(back.level, Level::Normal);
        assert!(!back.not_fully_checked && back.reasons[0].note.is_none());

        let mut card = card;
        card.level = Level::High;
        card.not_fully_checked = true;
        card.reasons[0].note = Some("n".into());
        let json = serde_json::to_value(&card).unwrap();
        assert_eq!(
            (
                &json["level"],
                &json["not_fully_checked"],
                &json["reasons"][0]["note"]
            ),
            (
                &serde_json::json!("high"),
                &serde_json::json!(true),
                &serde_json::json!("n")
            )
        );
    }
}
