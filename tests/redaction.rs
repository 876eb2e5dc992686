//! "Types that hold personal data redact `Debug`": every type that carries a
//! post's text or its author's email and phone is built here from sentinel
//! strings and formatted with `{:?}`; no sentinel may show. A derived `Debug`
//! added to one of them later fails this test.

use chrono::{TimeZone, Utc};
use modbridge::card::{AuthorView, Card, Images, Level, ReasonView, Severity};
use modbridge::delivery::ParkedCard;
use modbridge::destination::{SlackChannel, Target};
use modbridge::post::{Author, BadgeId, CustomerId, GroupId, Post, PostId, UserId};

const EMAIL: &str = "sentinel.email@example.invalid";
const PHONE: &str = "+15550100999";
const CONTENT: &str = "SENTINEL-CONTENT words nobody may log";
const NAME: &str = "SENTINEL-NAME";
const IMAGE: &str = "https://img.example.invalid/SENTINEL-IMAGE.png";
const TERM: &str = "SENTINEL-TERM";

const SENTINELS: [&str; 6] = [
    EMAIL,
    PHONE,
    "SENTINEL-CONTENT",
    NAME,
    "SENTINEL-IMAGE",
    TERM,
];

fn assert_redacted(what: &str, shown: &str) {
    for s in SENTINELS {
        assert!(
            !shown.contains(s),
            "{what}'s Debug shows {s:?}; write a manual Debug that shows IDs only:\n{shown}"
        );
    }
}

fn post() -> Post {
    Post {
        customer_id: CustomerId::parse("C-ID").unwrap(),
        post_id: PostId::parse("P-ID").unwrap(),
        group_id: Some(GroupId::parse("G-ID").unwrap()),
        author: Author {
            id: UserId::parse("U-ID").unwrap(),
            email: Some(EMAIL.into()),
            first_name: Some(NAME.into()),
            last_name: Some(NAME.into()),
            display_name: Some(NAME.into()),
            username: Some(NAME.into()),
            phone_number: Some(PHONE.into()),
            joined_at: None,
            badge_id: Some(BadgeId::parse("B-ID").unwrap()),
            badges: vec![],
        },
        content: Some(CONTENT.into()),
        image_url: Some(IMAGE.into()),
        created_at: Utc.with_ymd_and_hms(2026, 5, 8, 14, 32, 1).unwrap(),
    }
}

fn author_view() -> AuthorView {
    AuthorView {
        name: NAME.into(),
        username: Some(NAME.into()),
        user_id: "U-ID".into(),
        joined_at: None,
        badges: 1,
        email: Some(EMAIL.into()),
        phone: Some(PHONE.into()),
    }
}

fn card() -> Card {
    Card {
        case: None,
        destination: "mods".into(),
        target: Target::Slack(SlackChannel::parse("C0123ABCD").unwrap()),
        severity: Severity::Flagged,
        level: Level::Normal,
        not_fully_checked: false,
        headline: format!("Flagged post · {NAME}"),
        place: NAME.into(),
        author: author_view(),
        content: Some(CONTENT.into()),
        highlights: vec![0..8, 9..14],
        image_url: Some(IMAGE.into()),
        images: Images::Spoiler,
        reasons: vec![ReasonView {
            rules: "Rules".into(),
            name: "match".into(),
            terms: vec![TERM.into()],
            note: None,
        }],
        customer_id: "C-ID".into(),
        post_id: "P-ID".into(),
        group_id: Some("G-ID".into()),
        posted_at: Utc.with_ymd_and_hms(2026, 5, 8, 14, 32, 1).unwrap(),
        post_url: Some("https://example.invalid/posts/P-ID".into()),
        mention: None,
        earlier: None,
    }
}

#[test]
fn post_debug_shows_ids_only() {
    let shown = format!("{:?}", post());
    assert_redacted("Post", &shown);
    assert!(shown.contains("P-ID"), "IDs are what a log needs: {shown}");
}

#[test]
fn author_debug_shows_ids_only() {
    assert_redacted("Author", &format!("{:?}", post().author));
    assert_redacted("AuthorView", &format!("{:?}", author_view()));
}

#[test]
fn card_debug_shows_ids_only() {
    let shown = format!("{:?}", card());
    assert_redacted("Card", &shown);
    assert!(shown.contains("P-ID"), "{shown}");
}

#[test]
fn parked_card_debug_shows_ids_only() {
    let parked = ParkedCard {
        key: "C-ID\u{1f}P-ID\u{1f}slack:C0123ABCD".into(),
        target: "slack:C0123ABCD".into(),
        parked_at: Utc.with_ymd_and_hms(2026, 5, 8, 14, 32, 1).unwrap(),
        reason: "channel_not_found".into(),
        card: card(),
    };
    assert_redacted("ParkedCard", &format!("{parked:?}"));
}

#[test]
fn the_sentinels_are_in_the_values_so_the_test_can_fail() {
    // Serialising shows everything: proof that the values carry the sentinels.
    let json = serde_json::to_string(&card()).unwrap();
    for s in SENTINELS {
        assert!(json.contains(s), "{s} missing from the card itself");
    }
}
