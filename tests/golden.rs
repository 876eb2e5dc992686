//! Golden cards: the exact Slack `chat.postMessage` body, the Discord bot
//! message and the Discord webhook execution of ~20 varied cards, rendered with
//! a fixed `now`, compared byte for byte with `tests/golden/*.json`.
//!
//! The files were written from the renderers before the platform boundary was
//! refactored; a refactor must leave them unchanged. Only a deliberate change
//! of what a card looks like may rewrite them: `UPDATE_GOLDEN=1 cargo test
//! --test golden`, and the diff goes in review.
//!
//! Files 60 and up hold grouped messages (a wave's digest, a campaign card,
//! issue #14): their body on each platform.
//!
//! Each file also holds the card as serialised (the parked-card JSON in
//! Redis): it must stay readable, and a card read back renders the same.

use std::path::PathBuf;

use chrono::{DateTime, TimeZone, Utc};
use modbridge::card::{Card, EarlierCards, Images, Level, ReasonView, Severity};
use modbridge::destination::{DiscordChannel, SlackChannel, Target};
use modbridge::digest::{Campaign, Digest, Entry, Grouped};
use serde_json::{Value, json};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 8, 14, 33, 0).unwrap()
}

fn targets() -> [(&'static str, Target); 3] {
    [
        (
            "slack",
            Target::Slack(SlackChannel::parse("C0123ABCD").unwrap()),
        ),
        (
            "discord",
            Target::Discord(DiscordChannel::parse("112233445566778899").unwrap()),
        ),
        (
            "discord_webhook",
            Target::DiscordWebhook {
                env: "MODS_HOOK".into(),
            },
        ),
    ]
}

/// What `explain` and `--dry-run` print for `card` sent to `target`.
fn render(card: &Card, target: &Target, now: DateTime<Utc>) -> Value {
    modbridge::platforms::render(card, target, now)
}

fn base(content: Option<&str>) -> Card {
    Card::example("slack:C0123ABCD", content)
}

fn reason(rules: &str, name: &str, terms: &[&str]) -> ReasonView {
    ReasonView {
        rules: rules.into(),
        name: name.into(),
        terms: terms.iter().map(|t| (*t).to_owned()).collect(),
        note: None,
    }
}

fn highlight(card: &mut Card, needle: &str) {
    let text = card.content.clone().unwrap_or_default();
    let mut from = 0;
    while let Some(at) = text[from..].find(needle) {
        let start = from + at;
        card.highlights.push(start..start + needle.len());
        from = start + needle.len();
    }
}

fn cards() -> Vec<(&'static str, Card)> {
    let mut out = Vec::new();

    let mut c = base(Some("this has a forbidden phrase in it"));
    highlight(&mut c, "forbidden phrase");
    c.image_url = Some("https://cdn.example.com/a.png".into());
    c.post_url = Some("https://community.example.com/posts/P1".into());
    out.push(("01-basic", c));

    let mut c = base(Some(
        "<!everyone> <!channel> <!here> @here @everyone & <https://evil.example|your bank> <@U123> <#C999> <!subteam^S1>",
    ));
    c.author.name = "<!here> Mallory".into();
    c.author.username = Some("<!subteam^S123>|x".into());
    c.reasons[0].terms = vec!["<!everyone>".into(), "<https://x|y>".into()];
    c.headline = "Flagged post · <!channel> & co".into();
    c.place = "<https://x|y>".into();
    c.post_id = "P<1>&".into();
    highlight(&mut c, "@here");
    out.push(("02-slack-injections", c));

    let mut c = base(Some(
        "@everyone @here <@123> <@!123> <@&456> <#789> [bank](https://evil.example) **bold** __u__ ~~s~~ `code` ```block``` ||spoiler|| > quote\n# Heading\n- list\n-# small <t:1:R> <:e:1> \\escaped",
    ));
    c.author.name = "<@&456> [x](https://evil) **me**".into();
    c.reasons[0].terms = vec!["[x](https://evil)".into(), "*".into()];
    c.headline = "**fake** <@1> ||s||".into();
    highlight(&mut c, "**bold**");
    out.push(("03-discord-markdown-injections", c));

    let long: String = (0..2_000).map(|i| format!("word{i} ")).collect::<String>();
    let mut c = base(Some(&long));
    highlight(&mut c, "word7 ");
    c.post_url = Some("https://community.example.com/posts/P1".into());
    out.push(("04-very-long-ascii-with-link", c));

    let mut c = base(Some(&"👨‍👩‍👧".repeat(5_000)));
    c.post_url = None;
    out.push(("05-very-long-emoji-no-link", c));

    let mut c = base(None);
    c.image_url = Some("https://cdn.example.com/only-image.jpg".into());
    c.post_url = Some("https://community.example.com/posts/P1".into());
    out.push(("06-media-only-with-image", c));

    let c = base(Some("   \n  "));
    out.push(("07-empty-text", c));

    let mut c = base(Some("buy cheap pills and forbidden phrase, call 555"));
    c.reasons = vec![
        reason("Everywhere", "forbidden", &["forbidden phrase"]),
        reason("Spam", "pills", &["cheap pills", "pills"]),
        reason("Spam", "phone", &["555"]),
    ];
    highlight(&mut c, "forbidden phrase");
    highlight(&mut c, "cheap pills");
    highlight(&mut c, "555");
    out.push(("08-several-reasons", c));

    let mut c = base(Some("many many matches"));
    c.reasons = (0..60)
        .map(|i| {
            reason(
                &format!("Rules file number {i} with a long name"),
                &format!("match-{i}"),
                &[
                    "many many matches",
                    "a term that is rather long to fill the budget quickly",
                ],
            )
        })
        .collect();
    out.push(("09-and-n-more-reasons", c));

    let mut c = base(Some("a moderator is needed: forbidden phrase"));
    c.mention = Some("here".into());
    out.push(("10-mention-here", c));

    let mut c = base(Some("a moderator is needed"));
    c.mention = Some("S0123ABC".into());
    out.push(("11-mention-usergroup", c));

    let mut c = base(Some("a moderator is needed"));
    c.mention = Some("123456789012345678".into());
    out.push(("12-mention-role", c));

    let mut c = base(Some("contact details shown"));
    c.author.email = Some("mary@example.com".into());
    c.author.phone = Some("+1 555 0100 <!here>".into());
    out.push(("13-email-and-phone", c));

    let mut c = base(Some("odd image urls"));
    c.image_url = Some("https://cdn.example.com/a.png?x=1|<!channel>&y=(2)".into());
    c.post_url = Some("https://example.com/p/(1)|<x>".into());
    out.push(("14-image-and-link-with-odd-characters", c));

    let mut c = base(Some("javascript image"));
    c.image_url = Some("javascript:alert(1)".into());
    c.post_url = Some(format!("https://example.com/{}", "a".repeat(700)));
    out.push(("15-bad-image-and-very-long-post-url", c));

    let mut c = base(Some("brand new"));
    c.author.joined_at = Utc.with_ymd_and_hms(2026, 5, 8, 9, 0, 0).single();
    c.author.badges = 1;
    out.push(("16-new-account-joined-today-one-badge", c));

    let mut c = base(Some("old hand"));
    c.author.joined_at = Utc.with_ymd_and_hms(2026, 5, 7, 14, 0, 0).single();
    c.author.badges = 0;
    c.author.username = None;
    out.push(("17-joined-one-day-ago-no-badges", c));

    let mut c = base(Some("veteran"));
    c.author.joined_at = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).single();
    c.author.badges = 12;
    out.push(("18-old-account-badges", c));

    let mut c = base(Some("unknown member"));
    c.author.joined_at = None;
    c.author.name = String::new();
    c.author.username = Some("   ".into());
    out.push(("19-unknown-join-no-name", c));

    let mut c = base(Some("a post in a sensitive group"));
    c.severity = Severity::SensitiveGroup;
    c.headline = "New post in sensitive group · Grief support".into();
    c.place = "Grief support".into();
    c.group_id = Some("G1".into());
    c.reasons = vec![reason("Grief support", "sensitive", &[])];
    out.push(("20-sensitive-group", c));

    let mut c = base(Some("Rules reload failed: rules/x.toml:3:1: unknown field"));
    c.severity = Severity::Notice;
    c.headline = "modbridge: rules reload failed".into();
    c.place = "modbridge".into();
    c.author.name = "modbridge".into();
    c.author.username = None;
    c.author.user_id = "modbridge".into();
    c.author.joined_at = None;
    c.author.badges = 0;
    c.reasons = vec![];
    c.post_id = "notice-1778250780000".into();
    out.push(("21-notice", c));

    let text = "unforbiddenly\nforbidden\nphrase un*forbidden*ly";
    let mut c = base(Some(text));
    c.highlights = vec![2..11, 14..30, 33..44];
    out.push(("22-highlights-in-words-across-lines", c));

    let mut c = base(Some("bidi and control"));
    c.author.name = format!("{}\u{202E}evil\u{2066}\nname\t", "N".repeat(300));
    c.author.username = Some(format!("{}\u{200F}", "u".repeat(300)));
    c.headline = format!("Flagged post · {}", "Very long place ".repeat(20));
    c.place = "Very long place ".repeat(20);
    c.reasons = vec![reason(
        &"R".repeat(400),
        &"n".repeat(400),
        &[&"t".repeat(400), "\u{202E}reversed"],
    )];
    out.push(("23-long-one-line-fields-bidi", c));

    // Notes, levels and "not fully checked" (issue 12). `{match}` was filled
    // with post text by the rules: every injection must arrive inert.
    let injected =
        "<!everyone> @everyone <@&456> **bold** [bank](https://evil.example) `x` ||s|| \u{202E}rev";
    let mut c = base(Some(&format!("look: {injected}")));
    c.reasons[0].terms = vec![injected.into()];
    c.reasons[0].note = Some(format!(
        "Check “{injected}” against the playbook & <guide>:\nhttps://wiki.example.com/playbooks/self-harm_v2 (step #1)"
    ));
    highlight(&mut c, "<!everyone>");
    out.push(("24-note-with-injections-in-match", c));

    for (name, level) in [
        ("25-level-low", Level::Low),
        ("26-level-high", Level::High),
        ("27-level-urgent", Level::Urgent),
    ] {
        let mut c = base(Some("this has a forbidden phrase in it"));
        highlight(&mut c, "forbidden phrase");
        c.level = level;
        if level == Level::Urgent {
            c.mention = Some("here".into());
        }
        out.push((name, c));
    }

    let mut c = base(Some("a very long post the rules could not finish"));
    c.not_fully_checked = true;
    out.push(("28-not-fully-checked", c));

    let mut c = base(Some("buy cheap pills and forbidden phrase, call 555"));
    c.level = Level::Urgent;
    c.not_fully_checked = true;
    let mut r1 = reason("Everywhere", "forbidden", &["forbidden phrase"]);
    r1.note = Some("Remove the post and warn the author.".into());
    let mut r2 = reason("Spam", "pills", &["cheap pills"]);
    r2.note = Some(format!("Spam: {}", "very long note ".repeat(200)));
    let mut r3 = reason("Spam", "pills again", &["pills"]);
    r3.note = Some("Remove the post and warn the author.".into());
    c.reasons = vec![r1, r2, r3];
    highlight(&mut c, "forbidden phrase");
    highlight(&mut c, "cheap pills");
    out.push(("29-several-notes-urgent-not-fully-checked", c));

    let mut c = base(Some("a post in a sensitive group that also matched"));
    c.severity = Severity::SensitiveGroup;
    c.level = Level::High;
    c.headline = "New post in sensitive group · Grief support".into();
    c.place = "Grief support".into();
    c.group_id = Some("G1".into());
    c.reasons = vec![reason("Grief support", "sensitive", &[])];
    out.push(("30-sensitive-group-high", c));

    // A destination that must not show images unasked (`images = ...`),
    // with an address that tries to end the spoiler or the link early.
    for (name, images) in [
        ("50-images-spoiler", Images::Spoiler),
        ("51-images-link", Images::Link),
    ] {
        let mut c = base(Some("a post with a distressing image"));
        c.image_url = Some("https://cdn.example.com/a.png?x=||<!channel>&y=(2)".into());
        c.images = images;
        out.push((name, c));
    }

    // With moderator actions on, the author's earlier cards.
    for (name, earlier) in [
        (
            "52-earlier-cards",
            EarlierCards {
                earlier: 4,
                resolved: 2,
                false_positive: 1,
                open: 1,
            },
        ),
        ("53-no-earlier-cards", EarlierCards::default()),
    ] {
        let mut c = base(Some("a forbidden phrase again"));
        highlight(&mut c, "forbidden phrase");
        c.earlier = Some(earlier);
        out.push((name, c));
    }

    out
}

/// Cards with their case's view (status line, buttons). The view is never
/// stored, so these are not read back from their files' `card`.
fn case_cards() -> Vec<(&'static str, Card)> {
    use modbridge::card::{CaseStatus, CaseView};
    let view = |status, by: Option<(&str, &str)>, minutes| CaseView {
        case_id: "0123456789abcdef0123456789abcdef".into(),
        status,
        by: by.map(|(n, p)| (n.to_owned(), p.to_owned())),
        minutes_after_posting: minutes,
        buttons: true,
    };
    let card = |v: CaseView| {
        let mut c = base(Some("this has a forbidden phrase in it"));
        highlight(&mut c, "forbidden phrase");
        c.post_url = Some("https://community.example.com/posts/P1".into());
        c.case = Some(v);
        c
    };
    let mut out = vec![
        (
            "40-case-open-buttons",
            card(view(CaseStatus::Open, None, None)),
        ),
        (
            "41-case-claimed",
            card(view(CaseStatus::Claimed, Some(("ana", "slack")), Some(4))),
        ),
        (
            "42-case-resolved",
            card(view(CaseStatus::Resolved, Some(("ana", "slack")), Some(12))),
        ),
        (
            "43-case-false-positive",
            card(view(
                CaseStatus::FalsePositive,
                Some(("bo", "discord")),
                Some(75),
            )),
        ),
        (
            "44-case-claimed-name-injections",
            card(view(
                CaseStatus::Claimed,
                Some((
                    "<!channel> @everyone <@&456> **x** [a](https://evil)\n<!here>",
                    "discord",
                )),
                Some(1),
            )),
        ),
    ];
    let mut off = card(view(
        CaseStatus::Reopened,
        Some(("ana", "discord")),
        Some(30),
    ));
    off.case.as_mut().unwrap().buttons = false;
    off.post_url = None;
    out.push(("45-case-reopened-buttons-off-no-link", off));
    out
}

/// An entry of a grouped message, like `Entry::of` makes from a card.
fn entry(i: usize, text: Option<&str>) -> Entry {
    let mut c = base(text);
    c.post_id = format!("P{i}");
    c.author.user_id = format!("U{i}");
    c.post_url = Some(format!("https://community.example.com/posts/P{i}"));
    c.posted_at = Utc.with_ymd_and_hms(2026, 5, 8, 14, 0, 0).unwrap()
        + chrono::Duration::seconds(i as i64 * 7);
    if let Some(t) = text
        && let Some(at) = t.find("forbidden phrase")
    {
        c.highlights.push(at..at + "forbidden phrase".len());
    }
    Entry::of(&c)
}

/// A hostile entry: long, full of markup, mentions and bidi overrides in
/// every field.
fn hostile_entry(i: usize) -> Entry {
    let injected = "<!everyone> @everyone <@&456> **bold** [bank](https://evil.example) `x` ||s|| <https://evil|y> &amp; \u{202E}rev";
    let text = format!(
        "{}{injected} forbidden phrase {}",
        "&<>".repeat(20),
        "<@U1> ".repeat(40)
    );
    let mut e = entry(i, Some(&text));
    e.author = format!("{}<!here>\n**{i}**\u{202E}", "N".repeat(200));
    e.username = Some(format!("{}<!channel>@everyone", "u".repeat(100)));
    e.place = format!("{}[x](https://evil)", "Place ".repeat(40));
    e.reason = format!("{} · <!channel> **x**", "Rules ".repeat(60));
    e.level = [Level::Normal, Level::Urgent, Level::High][i % 3];
    e.post_url = Some(format!(
        "https://community.example.com/posts/{i}?{}",
        "q=(x)|<y>".repeat(i % 4 * 20)
    ));
    e
}

fn slack_target() -> Target {
    Target::Slack(SlackChannel::parse("C0123ABCD").unwrap())
}

fn wave_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 8, 13, 59, 30).unwrap()
}

fn grouped_cases() -> Vec<(&'static str, Grouped)> {
    let digest = |entries: Vec<Entry>, part, full| {
        Grouped::Digest(Digest {
            destination: "mods".into(),
            target: slack_target(),
            wave_started: wave_start(),
            part,
            entries,
            full,
        })
    };
    let mut out = vec![
        (
            "60-digest-25-long-hostile-entries",
            digest((0..25).map(hostile_entry).collect(), 2, true),
        ),
        (
            "61-digest-small",
            digest(
                vec![
                    entry(
                        1,
                        Some("buy cheap pills: this has a forbidden phrase in it"),
                    ),
                    entry(2, None),
                    entry(3, Some("another forbidden phrase\non two lines")),
                ],
                1,
                false,
            ),
        ),
    ];
    let campaign = |first: Entry, authors: Vec<String>, earlier: Vec<Entry>| {
        Grouped::Campaign(Campaign {
            destination: "mods".into(),
            target: slack_target(),
            first,
            posts: 57,
            authors,
            first_seen: wave_start(),
            last_seen: wave_start() + chrono::Duration::minutes(9),
            earlier,
        })
    };
    let mut first = hostile_entry(0);
    first.level = Level::High;
    let authors = (0..40)
        .map(|i| format!("Author {i} <!here> @everyone [x](https://evil) **b**\u{202E}"))
        .collect();
    out.push((
        "62-campaign-40-authors-injections",
        campaign(first, authors, Vec::new()),
    ));
    let authors = ["Mary Smith", "Bo", "Ana"].map(str::to_owned).to_vec();
    out.push((
        "63-campaign-earlier-entries",
        campaign(
            entry(10, Some("join my channel for free money: forbidden phrase")),
            authors,
            (11..14)
                .map(|i| entry(i, Some("join my channel for free money: forbidden phrase")))
                .collect(),
        ),
    ));
    out
}

/// A grouped message's exact body on each platform ([`render_grouped`]).
fn grouped_document(g: &Grouped) -> Value {
    let mut doc = json!({});
    for (name, target) in targets() {
        let mut g = g.clone();
        match &mut g {
            Grouped::Digest(d) => d.target = target,
            Grouped::Campaign(c) => c.target = target,
        }
        doc[name] = modbridge::platforms::render_grouped(&g, now());
    }
    doc
}

#[test]
fn grouped_messages_render_exactly_as_the_golden_files_say() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let dir = golden_dir();
    let mut failures = Vec::new();
    for (name, g) in grouped_cases() {
        let path = dir.join(format!("{name}.json"));
        let text = serde_json::to_string_pretty(&grouped_document(&g)).unwrap() + "\n";
        if update {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(want) if want == text => {}
            Ok(_) => failures.push(format!(
                "{name}: output differs from {} (if the change is deliberate: UPDATE_GOLDEN=1 cargo test --test golden, and review the diff)",
                path.display()
            )),
            Err(e) => failures.push(format!("{name}: cannot read {}: {e}", path.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn document(card: &Card) -> Value {
    let mut doc = json!({ "card": serde_json::to_value(card).unwrap() });
    for (name, target) in targets() {
        doc[name] = render(card, &target, now());
    }
    doc
}

#[test]
fn cards_render_exactly_as_the_golden_files_say() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let dir = golden_dir();
    let mut failures = Vec::new();
    for (name, card) in cards().into_iter().chain(case_cards()) {
        let path = dir.join(format!("{name}.json"));
        let text = serde_json::to_string_pretty(&document(&card)).unwrap() + "\n";
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(want) if want == text => {}
            Ok(_) => failures.push(format!(
                "{name}: output differs from {} (if the change is deliberate: UPDATE_GOLDEN=1 cargo test --test golden, and review the diff)",
                path.display()
            )),
            Err(e) => failures.push(format!("{name}: cannot read {}: {e}", path.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A card parked in Redis by an earlier version reads back, serialises to the
/// same JSON and renders the same.
#[test]
fn stored_cards_read_back_and_render_the_same() {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        return;
    }
    for (name, _) in cards() {
        let path = golden_dir().join(format!("{name}.json"));
        let stored: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let card: Card = serde_json::from_value(stored["card"].clone())
            .unwrap_or_else(|e| panic!("{name}: stored card does not read back: {e}"));
        assert_eq!(document(&card), stored, "{name}");
    }
}
