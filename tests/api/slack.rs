//! Slack delivery against the fake Slack (fake_slack.rs): end to end from a
//! signed webhook, the injection corpus, random Unicode against every Block
//! Kit limit, and how Slack's errors are handled.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use modbridge::card::{Card, Images, Level, ReasonView};
use modbridge::commands::serve::{Running, start_with};
use modbridge::config::Settings;
use modbridge::destination::SlackChannel;
use modbridge::platforms::slack::{self, Client as SlackSink};
use modbridge::platforms::{Failure, PlatformError as SinkError, Sinks};
use modbridge::rules::RuleSet;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::fake_slack::{FakeSlack, Next, check_message};
use crate::helpers::{SECRET, answer, now, sign};

const TOKEN: &str = "xoxb-1111-2222-fake";
const CHANNEL: &str = "C0123ABCD";

const RULES: &str = r#"
name = "Everywhere"
groups = ["*"]
to = ["slack:C0123ABCD"]

[[match]]
name = "forbidden"
keywords = ["forbidden phrase"]
"#;

struct SlackApp {
    running: Option<Running>,
    url: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// The real app with real sinks (not the recorder), Slack pointed at `fake`.
async fn spawn_slack_app(fake: &FakeSlack) -> SlackApp {
    spawn_slack_app_with(fake, RULES, "").await
}

/// [`spawn_slack_app`] with its own rules and more `modbridge.toml` lines.
async fn spawn_slack_app_with(fake: &FakeSlack, rules_toml: &str, config_toml: &str) -> SlackApp {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("test.toml"), rules_toml).unwrap();
    let config = dir.path().join("modbridge.toml");
    std::fs::write(
        &config,
        format!("post_url = \"https://community.example.com/posts/{{post_id}}\"\n{config_toml}"),
    )
    .unwrap();
    let env: BTreeMap<String, String> = [
        ("CATIVA_WEBHOOK_SECRET", SECRET.to_owned()),
        ("MODBRIDGE_LISTEN", "127.0.0.1:0".to_owned()),
        // Not the default 127.0.0.1:9090: tests (and other runs) side by side.
        ("MODBRIDGE_ADMIN_LISTEN", "127.0.0.1:0".to_owned()),
        ("MODBRIDGE_RULES", rules.display().to_string()),
        ("SLACK_BOT_TOKEN", TOKEN.to_owned()),
        ("SLACK_API_URL", fake.base.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let settings = Settings::load(Some(&config), false, &env).expect("settings");
    assert!(!format!("{settings:?}").contains(TOKEN));
    let ruleset = RuleSet::load_dir(&settings.rules_dir, &settings.destinations)
        .expect("rules")
        .rules;
    let sinks = Sinks::for_settings(&settings, &env).expect("sinks");
    let running = start_with(settings, ruleset, false, sinks)
        .await
        .expect("app starts");
    SlackApp {
        url: format!("http://{}/webhooks/cativa", running.addr),
        running: Some(running),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        _dir: dir,
    }
}

impl SlackApp {
    async fn deliver(&self, body: &str, execution_id: &str) -> reqwest::Response {
        self.client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-cativa-signature", sign(SECRET, now(), body.as_bytes()))
            .header("x-cativa-execution-id", execution_id)
            .body(body.to_owned())
            .send()
            .await
            .expect("answered")
    }

    async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }

    /// The Prometheus text on the admin listener.
    async fn metrics(&self) -> String {
        let admin = self
            .running
            .as_ref()
            .and_then(|r| r.admin_addr)
            .expect("admin listener on");
        self.client
            .get(format!("http://{admin}/metrics"))
            .send()
            .await
            .expect("metrics answered")
            .text()
            .await
            .expect("metrics body")
    }

    /// Sends until a 2xx (a 503 is retried after half a second) and returns
    /// it, with the 503s seen on the way.
    async fn deliver_until_ok(&self, body: &str, execution_id: &str) -> (Value, Vec<Value>) {
        let started = std::time::Instant::now();
        let mut refused = Vec::new();
        loop {
            let (status, json) = answer(self.deliver(body, execution_id).await).await;
            match status {
                200 => return (json, refused),
                503 => refused.push(json),
                other => panic!("answered {other}: {json}"),
            }
            assert!(
                started.elapsed() < Duration::from_secs(40),
                "no 2xx within 40 s: {refused:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

fn post(post_id: &str, content: &str, name: &str, image: Option<&str>) -> String {
    json!({
        "CustomerId": "01HQ0ABCDEF1234567890XYZ",
        "PostId": post_id,
        "GroupId": null,
        "User": {"Id": "U1", "DisplayName": name, "Username": "mary", "Email": "mary@example.com",
                 "CreatedAt": "2026-04-12T14:32:01Z", "Badges": []},
        "Content": content,
        "ImageUrl": image,
        "CreatedAt": "2026-05-08T14:32:01Z"
    })
    .to_string()
}

fn all_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| all_strings(v, out)),
        Value::Object(m) => m.values().for_each(|v| all_strings(v, out)),
        _ => {}
    }
}

fn blocks_of<'a>(body: &'a Value, kind: &str) -> Vec<&'a Value> {
    body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == kind)
        .collect()
}

#[tokio::test]
async fn signed_webhook_becomes_a_highlighted_escaped_card_in_slack() {
    let fake = FakeSlack::start(TOKEN).await;
    let app = spawn_slack_app(&fake).await;
    let body = post(
        "P-e2e",
        "Hi <!channel> & friends: this is a forbidden phrase <https://evil.example|bank>",
        "<@U123> Mary",
        Some("https://cdn.example.com/cat.png"),
    );
    let (status, json) = answer(app.deliver(&body, "e2e-1").await).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["status"], "accepted");

    let posted = fake.posted();
    assert_eq!(posted.len(), 1, "{:?}", fake.received());
    let msg = &posted[0];
    assert_eq!(msg["channel"], CHANNEL);
    assert_eq!(msg["unfurl_links"], false);
    assert_eq!(msg["unfurl_media"], false);
    let sections: Vec<&str> = blocks_of(msg, "section")
        .iter()
        .filter_map(|b| b["text"]["text"].as_str())
        .collect();
    assert!(
        sections.contains(
            &"Hi &lt;!channel&gt; &amp; friends: this is a *forbidden phrase* &lt;https://evil.example|bank&gt;"
        ),
        "{sections:#?}"
    );
    assert!(
        sections
            .iter()
            .any(|s| s.starts_with("*&lt;@U123&gt; Mary* (@mary)")),
        "{sections:#?}"
    );
    let images = blocks_of(msg, "image");
    assert_eq!(images.len(), 1);
    assert_eq!(images[0]["image_url"], "https://cdn.example.com/cat.png");
    let actions = blocks_of(msg, "actions");
    assert_eq!(
        actions[0]["elements"][0]["url"],
        "https://community.example.com/posts/P-e2e"
    );
    let fallback = msg["text"].as_str().unwrap();
    assert!(fallback.contains("&lt;@U123&gt; Mary"), "{fallback}");
    assert!(!fallback.contains("<!channel>"), "{fallback}");
    app.stop().await;
}

#[tokio::test]
async fn rate_limit_retry_after_is_honoured() {
    let fake = FakeSlack::start(TOKEN).await;
    fake.then(Next::RateLimited(1));
    let app = spawn_slack_app(&fake).await;
    let (status, json) = answer(
        app.deliver(&post("P-429", "a forbidden phrase", "Mary", None), "rl-1")
            .await,
    )
    .await;
    assert_eq!(status, 200, "{json}");
    let calls: Vec<_> = fake
        .received()
        .into_iter()
        .filter(|r| r.method == "chat.postMessage")
        .collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].answer, "ratelimited");
    assert_eq!(calls[1].answer, "ok");
    let gap = calls[1].at - calls[0].at;
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
    app.stop().await;
}

#[tokio::test]
async fn long_retry_after_goes_back_to_cativa() {
    let fake = FakeSlack::start(TOKEN).await;
    fake.then(Next::RateLimited(40));
    let app = spawn_slack_app(&fake).await;
    let resp = app
        .deliver(&post("P-429b", "a forbidden phrase", "Mary", None), "rl-2")
        .await;
    assert_eq!(resp.status().as_u16(), 503);
    let after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(after >= 40, "Retry-After {after}");
    assert!(fake.posted().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn server_error_is_retryable_and_the_retry_delivers() {
    let fake = FakeSlack::start(TOKEN).await;
    fake.then(Next::ServerError);
    let app = spawn_slack_app(&fake).await;
    let body = post("P-500", "a forbidden phrase", "Mary", None);
    let resp = app.deliver(&body, "5xx-1").await;
    assert_eq!(resp.status().as_u16(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    assert!(fake.posted().is_empty());
    // Cativa retries the same execution: now Slack is fine.
    let (status, json) = answer(app.deliver(&body, "5xx-1").await).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(fake.posted().len(), 1);
    app.stop().await;
}

fn card(content: Option<&str>) -> Card {
    Card::example(&format!("slack:{CHANNEL}"), content)
}

fn channel(id: &str) -> SlackChannel {
    SlackChannel::parse(id).unwrap()
}

#[tokio::test]
async fn channel_not_found_is_a_configuration_error_with_the_fix() {
    let fake = FakeSlack::start(TOKEN).await;
    fake.remove_channel("C0GONE000");
    let sink = SlackSink::new(TOKEN, &fake.base).unwrap();
    let err = sink
        .deliver(&card(Some("x")), &channel("C0GONE000"))
        .await
        .unwrap_err();
    match &err {
        SinkError::Config { platform, detail } => {
            assert_eq!(*platform, "slack");
            assert!(
                detail.contains("channel_not_found") && detail.contains("C0GONE000"),
                "{detail}"
            );
            assert!(detail.contains("invite the bot"), "{detail}");
        }
        other => panic!("not a config error: {other:?}"),
    }
    assert!(!format!("{err:?} {err}").contains(TOKEN));
    let problems = sink.problems();
    assert!(
        problems.iter().any(|p| p.contains("C0GONE000")),
        "{problems:?}"
    );
    // A later success clears it.
    sink.deliver(&card(Some("x")), &channel(CHANNEL))
        .await
        .unwrap();
    assert_eq!(sink.problems().len(), 1);
}

#[tokio::test]
async fn other_configuration_codes_are_classified() {
    let fake = FakeSlack::start(TOKEN).await;
    let sink = SlackSink::new(TOKEN, &fake.base).unwrap();
    for code in [
        "not_in_channel",
        "is_archived",
        "missing_scope",
        "token_revoked",
    ] {
        fake.then(Next::Error(code));
        let err = sink
            .deliver(&card(Some("x")), &channel(CHANNEL))
            .await
            .unwrap_err();
        assert!(matches!(err, SinkError::Config { .. }), "{code}: {err:?}");
    }
    fake.then(Next::Error("not_in_channel"));
    let err = sink
        .deliver(&card(Some("x")), &channel(CHANNEL))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("chat:write.public"), "{err}");

    let wrong = SlackSink::new("xoxb-wrong", &fake.base).unwrap();
    match wrong.auth_test().await {
        Err(Failure::Config { code, .. }) => assert_eq!(code, "invalid_auth"),
        other => panic!("{other:?}"),
    }
    let err = wrong
        .deliver(&card(Some("x")), &channel(CHANNEL))
        .await
        .unwrap_err();
    assert!(matches!(err, SinkError::Config { .. }), "{err:?}");
}

#[tokio::test]
async fn unfetchable_image_is_resent_once_as_a_link() {
    let fake = FakeSlack::start(TOKEN).await;
    fake.reject_images(true);
    let sink = SlackSink::new(TOKEN, &fake.base).unwrap();
    let mut c = card(Some("look"));
    c.image_url = Some("https://cdn.example.com/private/cat.png".into());
    sink.deliver(&c, &channel(CHANNEL)).await.unwrap();
    let calls = fake.received();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].answer, "invalid_blocks");
    assert_eq!(blocks_of(&calls[0].body, "image").len(), 1);
    assert_eq!(calls[1].answer, "ok");
    assert!(blocks_of(&calls[1].body, "image").is_empty());
    let mut strings = Vec::new();
    all_strings(&calls[1].body, &mut strings);
    assert!(
        strings
            .iter()
            .any(|s| s.contains("<https://cdn.example.com/private/cat.png|open image>")),
        "{strings:#?}"
    );
    // Without an image, invalid_blocks is not retried.
    fake.then(Next::Error("invalid_blocks"));
    let err = sink
        .deliver(&card(Some("x")), &channel(CHANNEL))
        .await
        .unwrap_err();
    assert!(matches!(err, SinkError::Rejected { .. }), "{err:?}");
    assert_eq!(fake.received().len(), 3);
}

const INJECTIONS: &[&str] = &[
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U123>",
    "<#C123>",
    "<!subteam^S123>",
    "<https://evil.example|bank>",
    "&lt;!channel&gt;",
    "*<!channel>*",
    "_<!here|here>_ ~<@U123|boss>~ `<#C123|general>`",
    "> <!everyone> quoted",
    "[bank](https://evil.example) <mailto:x@evil.example|support>",
    "<https://evil.example?q=<!channel>|bank>",
    "&amp;lt;!here&amp;gt;",
    "\u{202E}<!channel>\n<!here>",
];

/// Every `<` in the payload must open a link modbridge wrote itself, to an
/// address it owns, with a label it chose; every `&` must start an entity.
fn assert_no_live_markup(payload: &Value, allowed_links: &[&str]) {
    let mut strings = Vec::new();
    all_strings(payload, &mut strings);
    for s in &strings {
        let mut rest = s.as_str();
        while let Some(i) = rest.find('<') {
            let tail = &rest[i..];
            let end = tail.find('>').expect("unbalanced <");
            let token = &tail[..=end];
            assert!(
                allowed_links.contains(&token),
                "live markup {token:?} in {s:?}"
            );
            rest = &tail[end + 1..];
        }
        for (i, _) in s.match_indices('&') {
            let after = &s[i..];
            assert!(
                after.starts_with("&amp;")
                    || after.starts_with("&lt;")
                    || after.starts_with("&gt;"),
                "bare & in {s:?}"
            );
        }
    }
}

#[tokio::test]
async fn injection_corpus_never_pings_or_disguises_a_link() {
    let fake = FakeSlack::start(TOKEN).await;
    let sink = SlackSink::new(TOKEN, &fake.base).unwrap();
    let when = Utc::now();
    let post_link = "<https://community.example.com/posts/P1|Open the post>";
    for (i, evil) in INJECTIONS.iter().enumerate() {
        let mixed = format!("**bold** {evil} _it_ {evil}\n```{evil}```");
        let mut c = card(Some(&mixed));
        let at = mixed.find(evil).unwrap();
        c.highlights = vec![at..at + evil.len(), 0..2];
        c.author.name = format!("{evil} Mary");
        c.author.username = Some(evil.to_string());
        c.author.email = Some(format!("{evil}@example.com"));
        c.author.phone = Some(evil.to_string());
        c.headline = format!("Flagged post · {evil}");
        c.place = evil.to_string();
        c.post_id = format!("P{evil}");
        c.reasons[0].terms = vec![evil.to_string(), mixed.clone()];
        c.reasons[0].rules = evil.to_string();
        c.reasons[0].name = evil.to_string();
        c.image_url = Some(format!("https://cdn.example.com/{i}.png?{evil}"));
        c.post_url = Some("https://community.example.com/posts/P1".into());
        let payload = slack::payload(&c, CHANNEL, when);
        assert_no_live_markup(&payload, &[post_link]);
        check_message(&payload).unwrap_or_else(|e| panic!("{e} for {evil:?}"));
        // And in the link form of the image, after Slack refuses it.
        let link =
            serde_json::to_value(slack::render(&c, CHANNEL, when, slack::ImageMode::Link)).unwrap();
        let image_link = link["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|b| b["text"]["text"].as_str())
            .find(|t| t.starts_with("Image"))
            .map(|t| t[t.find('<').unwrap()..].to_owned())
            .unwrap();
        assert!(
            !image_link[1..image_link.len() - 1].contains(['<', '>'])
                && image_link.ends_with("|open image>")
                && image_link.matches('|').count() == 1,
            "{image_link}"
        );
        assert_no_live_markup(&link, &[post_link, &image_link]);
        // A configured mention is the only one, and only modbridge's.
        c.mention = Some("here".into());
        let with_mention = slack::payload(&c, CHANNEL, when);
        assert_no_live_markup(&with_mention, &[post_link, "<!here>"]);
    }
    // One of them through HTTP too: the fake accepts it as is.
    let mut c = card(Some(INJECTIONS.join(" ").as_str()));
    c.author.name = INJECTIONS.join("");
    sink.deliver(&c, &channel(CHANNEL)).await.unwrap();
    assert_no_live_markup(&fake.posted()[0], &[]);
}

/// Text made of the pieces that break naive cutting and escaping.
fn random_text(rng: &mut StdRng, max_chars: usize) -> String {
    const PIECES: &[&str] = &[
        "a",
        "Z",
        " ",
        "\n",
        "<",
        ">",
        "&",
        "*",
        "_",
        "~",
        "`",
        "|",
        "é",
        "e\u{301}",
        "a\u{300}\u{301}\u{302}\u{303}",
        "👍",
        "👍🏽",
        "👨‍👩‍👧‍👦",
        "🏳️‍🌈",
        "🇫🇷",
        "שלום",
        "مرحبا",
        "\u{202E}",
        "\u{200F}",
        "\u{200B}",
        "中文",
        "\u{FEFF}",
        "\t",
        "<!channel>",
        "forbidden",
    ];
    let target = if max_chars == 0 {
        0
    } else {
        rng.random_range(0..=max_chars)
    };
    let mut s = String::new();
    let mut n = 0;
    while n < target {
        if rng.random_range(0..200) == 0 {
            // A single grapheme with a huge run of combining marks.
            s.push('x');
            let marks = rng.random_range(1..4_000);
            for _ in 0..marks {
                s.push('\u{301}');
            }
            n += marks + 1;
            continue;
        }
        let p = PIECES[rng.random_range(0..PIECES.len())];
        s.push_str(p);
        n += p.chars().count();
    }
    s
}

fn random_ranges(rng: &mut StdRng, text: &str) -> Vec<std::ops::Range<usize>> {
    let bounds: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()))
        .collect();
    let mut ranges = Vec::new();
    if bounds.len() < 2 {
        return ranges;
    }
    let mut at = 0;
    for _ in 0..rng.random_range(0..20) {
        let start = rng.random_range(at..bounds.len());
        if start + 1 >= bounds.len() {
            break;
        }
        let end = rng.random_range(start + 1..bounds.len().min(start + 200));
        ranges.push(bounds[start]..bounds[end]);
        at = end;
        if at + 1 >= bounds.len() {
            break;
        }
    }
    ranges
}

#[test]
fn random_unicode_stays_within_every_block_kit_limit() {
    let mut rng = StdRng::seed_from_u64(0x5eed_51ac);
    let when = Utc::now();
    for case in 0..120 {
        let max = match case % 4 {
            0 => 0,
            1 => 300,
            2 => 10_000,
            _ => 100_000,
        };
        let content = random_text(&mut rng, max);
        let mut c = card(if case % 13 == 0 { None } else { Some(&content) });
        c.highlights = random_ranges(&mut rng, &content);
        c.author.name = random_text(&mut rng, 1_000);
        c.author.username = Some(random_text(&mut rng, 1_000));
        c.author.email = (case % 2 == 0).then(|| random_text(&mut rng, 1_000));
        c.author.phone = (case % 3 == 0).then(|| random_text(&mut rng, 1_000));
        c.headline = format!("Flagged post · {}", random_text(&mut rng, 1_000));
        c.post_id = random_text(&mut rng, 300);
        c.level = [Level::Low, Level::Normal, Level::High, Level::Urgent][case % 4];
        c.not_fully_checked = case % 5 == 0;
        c.reasons = (0..rng.random_range(1..30))
            .map(|_| ReasonView {
                rules: random_text(&mut rng, 200),
                name: random_text(&mut rng, 200),
                terms: (0..rng.random_range(0..10))
                    .map(|_| random_text(&mut rng, 500))
                    .collect(),
                note: (case % 3 == 0).then(|| random_text(&mut rng, 2_000)),
            })
            .collect();
        if case % 2 == 1 {
            c.image_url = Some(format!(
                "https://cdn.example.com/{}",
                random_text(&mut rng, 4_000)
            ));
            c.images = [Images::Show, Images::Spoiler, Images::Link][case % 3];
            c.post_url = Some(format!(
                "https://community.example.com/posts/{}",
                random_text(&mut rng, 200)
            ));
        }
        for mode in [slack::ImageMode::Block, slack::ImageMode::Link] {
            let payload = serde_json::to_value(slack::render(&c, CHANNEL, when, mode)).unwrap();
            if let Err(e) = check_message(&payload) {
                panic!("case {case} ({mode:?}): Slack would answer {e}");
            }
            let text = payload["text"].as_str().unwrap();
            assert!(
                text.chars().count() <= 300,
                "case {case}: fallback too long"
            );
        }
        // A long text says how much was cut.
        let payload = slack::payload(&c, CHANNEL, when);
        if content.chars().count() > 7_500 && c.content.is_some() {
            let mut strings = Vec::new();
            all_strings(&payload, &mut strings);
            assert!(
                strings.iter().any(|s| s.contains("characters not shown")),
                "case {case}: cut without saying so"
            );
        }
    }
}

#[tokio::test]
async fn check_live_says_what_each_call_proves_and_send_test_posts_a_marked_card() {
    use modbridge::commands::check::live_check;
    use modbridge::destination::Destinations;
    let fake = FakeSlack::start(TOKEN).await;
    let env: BTreeMap<String, String> = [
        ("SLACK_BOT_TOKEN", TOKEN.to_owned()),
        ("SLACK_API_URL", fake.base.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let settings = Settings::load(None, true, &env).unwrap();
    let known = Destinations::default();
    let dests = vec![
        known.resolve("slack:C0123ABCD").unwrap(),
        known.resolve("slack:C0GONE000").unwrap(),
        known.resolve("discord:112233445566778899").unwrap(),
    ];
    fake.remove_channel("C0GONE000");
    let report = live_check(&settings, &env, &dests, false).await.join("\n");
    assert!(
        report.contains("ok: slack: auth.test accepts SLACK_BOT_TOKEN"),
        "{report}"
    );
    assert!(
        report.contains("#moderators exists and the bot is a member"),
        "{report}"
    );
    assert!(
        report.contains(
            "error: slack: slack:C0GONE000 (C0GONE000): conversations.info: channel_not_found"
        ),
        "{report}"
    );
    assert!(
        report.contains(
            "warning: slack: slack:C0123ABCD (C0123ABCD): the token lacks channels:history"
        ),
        "{report}"
    );
    assert!(report.contains("maybe_duplicate"), "{report}");
    fake.grant_history();
    let report = live_check(&settings, &env, &dests[..1], false)
        .await
        .join("\n");
    assert!(
        report
            .contains("ok: slack: slack:C0123ABCD (C0123ABCD): conversations.history can be read"),
        "{report}"
    );
    fake.leave_channel("C0123ABCD");
    let report = live_check(&settings, &env, &dests[..1], false)
        .await
        .join("\n");
    assert!(
        report.contains("the bot is not a member, so it cannot read the channel's history"),
        "{report}"
    );
    // (What it says about the Discord destination is Discord's business.)
    assert!(!report.contains(TOKEN));
    assert!(fake.posted().is_empty(), "no card without --send-test");

    fake.without_read_scope();
    let report = live_check(&settings, &env, &dests[..1], true)
        .await
        .join("\n");
    assert!(
        report.contains("channels:read") && report.contains("groups:read"),
        "{report}"
    );
    assert!(report.contains("test card posted"), "{report}");
    let posted = fake.posted();
    assert_eq!(posted.len(), 1);
    assert!(
        posted[0]["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .starts_with("TEST card")
    );

    let wrong: BTreeMap<String, String> = [
        ("SLACK_BOT_TOKEN".to_owned(), "xoxb-wrong".to_owned()),
        ("SLACK_API_URL".to_owned(), fake.base.clone()),
    ]
    .into_iter()
    .collect();
    let settings = Settings::load(None, true, &wrong).unwrap();
    let report = live_check(&settings, &wrong, &dests[..1], false)
        .await
        .join("\n");
    assert!(
        report.contains("error: slack: auth.test: invalid_auth"),
        "{report}"
    );
}

#[test]
fn an_alert_notice_renders_as_a_short_escaped_card() {
    let dest = modbridge::destination::Destinations::default()
        .resolve("slack:C0ALERTS00")
        .unwrap();
    let card = Card::notice(
        &dest,
        "Destination broken: slack:C0123ABCD",
        "channel_not_found <!channel>",
    );
    let body = modbridge::platforms::slack::payload(&card, "C0ALERTS00", Utc::now());
    let text = body.to_string();
    assert!(
        text.contains("Destination broken: slack:C0123ABCD"),
        "{text}"
    );
    assert!(!text.contains("<!channel>"), "{text}");
    crate::fake_slack::check_message(&body).unwrap();
}

/// Post then `chat.update` through the boundary: the fake checks the update
/// like a post (token, Block Kit limits) and that the message exists.
#[tokio::test]
async fn posted_cards_are_updated_in_place() {
    use modbridge::platforms::{MessageRef, Platforms, Target};
    let fake = FakeSlack::start(TOKEN).await;
    let platforms = Platforms::new(Some(SlackSink::new(TOKEN, &fake.base).unwrap()), None);
    let target = Target::Slack(channel(CHANNEL));
    let posted = platforms
        .post(&card(Some("first")), &target)
        .await
        .unwrap()
        .unwrap();
    let MessageRef::Slack { channel: ch, ts } = &posted else {
        panic!("{posted:?}");
    };
    assert_eq!(ch, CHANNEL);
    let mut changed = card(Some("second <!channel>"));
    changed.headline = "Resolved · updated card".into();
    platforms.update(&posted, &changed).await.unwrap();
    let shown = fake.message(CHANNEL, ts).unwrap();
    assert_eq!(
        shown["blocks"][0]["text"]["text"],
        "Resolved · updated card"
    );
    assert!(!shown.to_string().contains("<!channel>"), "{shown}");
    let calls = fake.received();
    assert_eq!(
        calls
            .iter()
            .map(|c| (c.method.as_str(), c.answer.as_str()))
            .collect::<Vec<_>>(),
        [("chat.postMessage", "ok"), ("chat.update", "ok")]
    );
    // Updating a message Slack does not have is refused, not ignored.
    let gone = MessageRef::Slack {
        channel: CHANNEL.into(),
        ts: "1.000001".into(),
    };
    assert!(platforms.update(&gone, &changed).await.is_err());
    assert_eq!(fake.received()[2].answer, "message_not_found");
}

/// Issue 12: one card with a note (every injection of the corpus in its
/// `{match}` text), an urgent level and "not fully checked", through HTTP to
/// the fake: accepted, nothing live in it, and each piece where moderators
/// look for it (Block Kit has no colour: the level is a label in the header).
#[tokio::test]
async fn note_level_and_not_fully_checked_reach_slack_inert() {
    let fake = FakeSlack::start(TOKEN).await;
    let sink = SlackSink::new(TOKEN, &fake.base).unwrap();
    let mut c = card(Some("look: forbidden phrase"));
    c.level = Level::Urgent;
    c.not_fully_checked = true;
    c.reasons[0].note = Some(format!(
        "Check “{}” against the playbook\n{}",
        INJECTIONS.join(" "),
        "and more ".repeat(500)
    ));
    sink.deliver(&c, &channel(CHANNEL)).await.unwrap();
    let sent = &fake.posted()[0];
    check_message(sent).unwrap();
    assert_no_live_markup(sent, &[]);
    let blocks = sent["blocks"].as_array().unwrap();
    assert_eq!(
        blocks[0]["text"]["text"],
        "🚨 URGENT · Flagged post · Parents support"
    );
    assert!(
        sent["text"]
            .as_str()
            .unwrap()
            .starts_with("🚨 URGENT · Flagged post"),
        "notifications say it too: {sent}"
    );
    let note = blocks_of(sent, "section")
        .into_iter()
        .filter_map(|b| b["text"]["text"].as_str())
        .find(|t| t.starts_with(":memo: *Note for moderators:*\nCheck “&lt;!channel&gt;"))
        .unwrap_or_else(|| panic!("no note block: {sent}"));
    assert!(
        note.ends_with('…') && note.chars().count() <= 1_100,
        "{note}"
    );
    let last_context = blocks_of(sent, "context")
        .last()
        .and_then(|b| b["elements"][0]["text"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        last_context,
        ":hourglass_flowing_sand: Not fully checked: the post ran out of its rules time budget; more rules may match."
    );
}

/// A channel held by a 429 with a huge `Retry-After` does not hold the next
/// card beyond the call's deadline: it is refused at once (nothing sent), and
/// a Slack that does not answer is abandoned at the deadline as timed out.
#[tokio::test]
async fn no_call_outlasts_its_deadline() {
    let fake = FakeSlack::start(TOKEN).await;
    let sink = SlackSink::new(TOKEN, &fake.base)
        .unwrap()
        .with_call_timeout(Duration::from_secs(2));
    fake.then(Next::RateLimited(3600));
    let started = std::time::Instant::now();
    let first = sink.deliver(&card(None), &channel(CHANNEL)).await;
    assert!(
        matches!(&first, Err(SinkError::Transient { retry_after: Some(a), .. }) if *a >= Duration::from_secs(3590)),
        "{first:?}"
    );
    let second = sink.deliver(&card(None), &channel(CHANNEL)).await;
    assert!(
        matches!(&second, Err(SinkError::Transient { retry_after: Some(a), .. }) if *a >= Duration::from_secs(3590)),
        "{second:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        fake.received().len(),
        1,
        "the held channel got no second call"
    );

    fake.delay_answers(Duration::from_secs(30));
    let started = std::time::Instant::now();
    let slow = sink.deliver(&card(None), &channel("C0SLOW0001")).await;
    let took = started.elapsed();
    assert!(matches!(slow, Err(SinkError::TimedOut { .. })), "{slow:?}");
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
        "{took:?}"
    );
}

/// Rules sending everything to `channel`.
fn rules_to(channel: &str) -> String {
    RULES.replace("slack:C0123ABCD", &format!("slack:{channel}"))
}

/// One platform call may take 1 s: a card's reservation is 6 s.
const QUICK: &str = "[delivery]\ntimeout_secs = 1\n";

/// The value of `modbridge_cards_total{destination, outcome}` (0 if absent).
fn cards_total(metrics: &str, destination: &str, outcome: &str) -> u64 {
    metrics
        .lines()
        .find(|l| {
            l.starts_with("modbridge_cards_total{")
                && l.contains(&format!("destination=\"{destination}\""))
                && l.contains(&format!("outcome=\"{outcome}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Issue #11 item 8: Slack posted the card but its answer was lost (no
/// answer within the call timeout). The retry, once the reservation expired
/// (≥ the call timeout after the attempt), finds the card by its metadata in
/// `conversations.history` (past another app's message whose metadata holds
/// non-string values), records it sent and posts nothing: exactly one
/// message, no `maybe_duplicate`. The metadata carries no ID.
#[tokio::test]
async fn a_lost_answer_is_looked_up_in_the_history_and_not_sent_twice() {
    const CH: &str = "C0LOSTFND1";
    let fake = FakeSlack::start(TOKEN).await;
    fake.grant_history();
    let app = spawn_slack_app_with(&fake, &rules_to(CH), QUICK).await;
    fake.delay_answers(Duration::from_secs(3));
    let body = post("LOST-FOUND-1", "forbidden phrase", "Mary", None);
    let (status, json) = answer(app.deliver(&body, "lost-found-1").await).await;
    assert_eq!(status, 503, "{json}");
    fake.delay_answers(Duration::ZERO);
    fake.post_foreign(
        CH,
        json!({"event_type": "other_app", "event_payload": {"n": 5, "deep": {"list": [1, 2]}}}),
    );
    let (json, refused) = app.deliver_until_ok(&body, "lost-found-1").await;
    assert_eq!(json["already_sent"].as_u64(), Some(1), "{json}");
    assert!(!refused.is_empty(), "the reservation held the retries back");

    let posted = fake.posted_in(CH);
    assert_eq!(posted.len(), 1, "exactly one message: {posted:?}");
    let metadata = &posted[0]["metadata"];
    assert_eq!(metadata["event_type"], "modbridge_card", "{metadata}");
    let tag = metadata["event_payload"]["k"].as_str().unwrap();
    assert_eq!(tag.len(), 32);
    assert_eq!(metadata["event_payload"].as_object().unwrap().len(), 1);
    for id in ["LOST-FOUND-1", "01HQ0ABCDEF1234567890XYZ", CH, "U1"] {
        assert!(!metadata.to_string().contains(id), "{metadata}");
    }
    let lookups: Vec<_> = fake
        .received()
        .into_iter()
        .filter(|r| r.method == "conversations.history")
        .collect();
    assert_eq!(lookups.len(), 1, "{lookups:?}");
    assert_eq!(lookups[0].answer, "ok");
    assert_eq!(lookups[0].body["include_all_metadata"], "true");
    assert_eq!(lookups[0].body["channel"], CH);

    let metrics = app.metrics().await;
    let dest = format!("slack:{CH}");
    assert_eq!(cards_total(&metrics, &dest, "maybe_duplicate"), 0);
    assert_eq!(cards_total(&metrics, &dest, "found"), 1);
    assert!(
        metrics.contains("modbridge_slack_lookups_total{result=\"found\"}"),
        "{metrics}"
    );
    // Later retries find the record: nothing more is posted or looked up.
    let (json, _) = app.deliver_until_ok(&body, "lost-found-2").await;
    assert_eq!(json["already_sent"].as_u64(), Some(1), "{json}");
    assert_eq!(fake.posted_in(CH).len(), 1);
    app.stop().await;
}

/// Another app (or anyone with a token) can post any metadata, including a
/// card's tag copied from it. After a lost answer, with the card itself
/// gone from the channel (deleted by a moderator) and another app's message
/// carrying the same tag in the window, the lookup must not take that
/// message for the card: only modbridge's own bot's messages count (its
/// `bot_id`, from `auth.test`). The card is sent again.
#[tokio::test]
async fn a_tag_copied_by_another_app_does_not_pass_for_the_card() {
    const CH: &str = "C0FORGED01";
    let fake = FakeSlack::start(TOKEN).await;
    fake.grant_history();
    let app = spawn_slack_app_with(&fake, &rules_to(CH), QUICK).await;
    fake.delay_answers(Duration::from_secs(3));
    let body = post("FORGED-1", "forbidden phrase", "Mary", None);
    let (status, json) = answer(app.deliver(&body, "forged-1").await).await;
    assert_eq!(status, 503, "{json}");
    fake.delay_answers(Duration::ZERO);
    let first = fake.timestamps(CH);
    assert_eq!(first.len(), 1, "the first attempt reached Slack");
    let metadata = fake.message(CH, &first[0]).unwrap()["metadata"].clone();
    fake.delete(CH, &first[0]);
    fake.post_foreign(CH, metadata);
    let (json, _) = app.deliver_until_ok(&body, "forged-1").await;
    assert_eq!(json["already_sent"].as_u64(), Some(0), "sent again: {json}");
    assert_eq!(json["cards"].as_u64(), Some(1), "{json}");
    assert_eq!(
        fake.posted_in(CH).len(),
        2,
        "the first (deleted) and the resend"
    );
    let looked = fake
        .received()
        .into_iter()
        .filter(|r| r.method == "conversations.history" && r.answer == "ok")
        .count();
    assert!(looked >= 1, "the resend followed a lookup");
    let metrics = app.metrics().await;
    assert_eq!(cards_total(&metrics, &format!("slack:{CH}"), "found"), 0);
    app.stop().await;
}

/// The lookup itself fails (Slack answers 429: Tier 3): nothing is known,
/// so nothing is sent: 503 with Slack's `Retry-After` (at least the
/// reservation). The next retry looks again from the same attempt time and
/// finds the card.
#[tokio::test]
async fn a_lookup_answered_429_is_unknown_and_sends_nothing() {
    const CH: &str = "C0LOST4291";
    let fake = FakeSlack::start(TOKEN).await;
    fake.grant_history();
    let app = spawn_slack_app_with(&fake, &rules_to(CH), QUICK).await;
    fake.delay_answers(Duration::from_secs(3));
    let body = post("LOST-429-1", "forbidden phrase", "Mary", None);
    let (status, _) = answer(app.deliver(&body, "lost-429-1").await).await;
    assert_eq!(status, 503);
    fake.delay_answers(Duration::ZERO);
    fake.history_then(Next::RateLimited(10));
    // Retry until the lookup was asked (and refused).
    let started = std::time::Instant::now();
    let refused = loop {
        let resp = app.deliver(&body, "lost-429-1").await;
        let retry_after = resp.headers().get("retry-after").cloned();
        let (status, json) = answer(resp).await;
        assert_eq!(status, 503, "{json}");
        if fake
            .received()
            .iter()
            .any(|r| r.method == "conversations.history")
        {
            break (json, retry_after);
        }
        assert!(started.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let (json, retry_after) = refused;
    assert!(json.to_string().contains("could not be asked"), "{json}");
    let secs: u64 = retry_after.unwrap().to_str().unwrap().parse().unwrap();
    assert!(secs >= 10, "Slack's Retry-After is passed on: {secs}");
    assert_eq!(
        fake.posted_in(CH).len(),
        1,
        "nothing sent on an unknown lookup"
    );
    let (json, _) = app.deliver_until_ok(&body, "lost-429-1").await;
    assert_eq!(json["already_sent"].as_u64(), Some(1), "{json}");
    assert_eq!(fake.posted_in(CH).len(), 1);
    let answers: Vec<String> = fake
        .received()
        .into_iter()
        .filter(|r| r.method == "conversations.history")
        .map(|r| r.answer)
        .collect();
    assert_eq!(answers, ["ratelimited", "ok"]);
    let metrics = app.metrics().await;
    assert_eq!(
        cards_total(&metrics, &format!("slack:{CH}"), "maybe_duplicate"),
        0
    );
    assert!(metrics.contains("modbridge_slack_lookups_total{result=\"unknown\"}"));
    app.stop().await;
}

/// Without `channels:history` the lookup is refused (`missing_scope`):
/// today's behaviour, documented: the card is sent again (two messages) and
/// counted `maybe_duplicate`.
#[tokio::test]
async fn without_the_history_scope_a_lost_answer_is_sent_again_and_counted() {
    const CH: &str = "C0LOSTNOS1";
    let fake = FakeSlack::start(TOKEN).await;
    let app = spawn_slack_app_with(&fake, &rules_to(CH), QUICK).await;
    fake.delay_answers(Duration::from_secs(3));
    let body = post("LOST-NOSCOPE-1", "forbidden phrase", "Mary", None);
    let (status, _) = answer(app.deliver(&body, "lost-noscope-1").await).await;
    assert_eq!(status, 503);
    fake.delay_answers(Duration::ZERO);
    let (json, _) = app.deliver_until_ok(&body, "lost-noscope-1").await;
    assert_eq!(
        (json["cards"].as_u64(), json["already_sent"].as_u64()),
        (Some(1), Some(0)),
        "{json}"
    );
    assert_eq!(fake.posted_in(CH).len(), 2, "the honest duplicate");
    let lookups: Vec<String> = fake
        .received()
        .into_iter()
        .filter(|r| r.method == "conversations.history")
        .map(|r| r.answer)
        .collect();
    assert_eq!(lookups, ["missing_scope"]);
    let metrics = app.metrics().await;
    assert_eq!(
        cards_total(&metrics, &format!("slack:{CH}"), "maybe_duplicate"),
        1
    );
    assert!(metrics.contains("modbridge_slack_lookups_total{result=\"unavailable\"}"));
    app.stop().await;
}

/// A destination with `images = "spoiler"` (a self-harm channel): Slack
/// shows no image block, only a "Show image" link button beside a note;
/// with `images = "link"`, a link only. Slack accepts both (the fake checks
/// section accessories as Slack does).
#[tokio::test]
async fn images_spoiler_and_link_never_embed_the_image() {
    const IMG: &str = "https://cdn.example.com/distressing.png";
    for (mode, ch) in [("spoiler", "C0SPOILER1"), ("link", "C0IMGLINK1")] {
        let fake = FakeSlack::start(TOKEN).await;
        let rules = RULES.replace("slack:C0123ABCD", "quiet");
        let config = format!("[destinations.quiet]\nslack = \"{ch}\"\nimages = \"{mode}\"\n");
        let app = spawn_slack_app_with(&fake, &rules, &config).await;
        let body = post(
            &format!("IMG-{mode}"),
            "a forbidden phrase",
            "Mary",
            Some(IMG),
        );
        let (status, json) = answer(app.deliver(&body, &format!("img-{mode}")).await).await;
        assert_eq!((status, json["cards"].as_u64()), (200, Some(1)), "{json}");
        let posted = fake.posted_in(ch);
        assert_eq!(posted.len(), 1, "{mode}");
        let blocks = posted[0]["blocks"].as_array().unwrap();
        assert!(
            blocks.iter().all(|b| b["type"] != "image"),
            "{mode}: {blocks:?}"
        );
        let buttons: Vec<&Value> = blocks.iter().filter_map(|b| b.get("accessory")).collect();
        let mut strings = Vec::new();
        all_strings(&posted[0], &mut strings);
        if mode == "spoiler" {
            assert_eq!(buttons.len(), 1, "{blocks:?}");
            assert_eq!(buttons[0]["text"]["text"], "Show image");
            assert_eq!(buttons[0]["url"], IMG);
            assert!(strings.iter().all(|s| !s.contains(&format!("<{IMG}|"))));
        } else {
            assert!(buttons.is_empty(), "{blocks:?}");
            assert!(
                strings
                    .iter()
                    .any(|s| s.contains(&format!("<{IMG}|open image>"))),
                "{strings:?}"
            );
        }
        app.stop().await;
    }
}

/// The fake holds `chat.update` to Slack's Tier 3 (50 a minute per
/// workspace), as moderator-action edits must live with: the 51st within a
/// minute gets 429 with a `Retry-After`.
#[tokio::test]
async fn the_fake_holds_chat_update_to_tier_3() {
    let fake = FakeSlack::start(TOKEN).await;
    let client = reqwest::Client::new();
    let call = |method: &str, body: Value| {
        client
            .post(format!("{}/{method}", fake.base))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
    };
    let posted: Value = call(
        "chat.postMessage",
        json!({"channel": "C0TIER301", "text": "card"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let ts = posted["ts"].as_str().unwrap().to_owned();
    for i in 0..crate::fake_slack::UPDATES_PER_MINUTE {
        let r = call(
            "chat.update",
            json!({"channel": "C0TIER301", "ts": ts, "text": format!("edit {i}")}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200, "edit {i}");
    }
    let r = call(
        "chat.update",
        json!({"channel": "C0TIER301", "ts": ts, "text": "one too many"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
}

/// With Slack's pace enforced (one message a second per channel, bursts of
/// three), the fake refuses a fourth message in a second, and modbridge's
/// own pacing keeps six cards to one channel under it: all arrive, none
/// refused.
#[tokio::test]
async fn cards_to_one_channel_keep_to_slacks_pace() {
    let fake = FakeSlack::start(TOKEN).await;
    fake.enforce_post_pace();
    let direct = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = direct
            .post(format!("{}/chat.postMessage", fake.base))
            .bearer_auth(TOKEN)
            .json(&json!({"channel": "C0PACED01", "text": "hi"}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429], "{:?}", fake.received());

    let app = spawn_slack_app(&fake).await;
    let answers = futures_util::future::join_all((0..6).map(|i| {
        let body = post(&format!("P-pace-{i}"), "a forbidden phrase", "Mary", None);
        let app = &app;
        async move {
            answer(app.deliver(&body, &format!("pace-{i}")).await)
                .await
                .0
        }
    }))
    .await;
    assert_eq!(answers, [200; 6]);
    assert_eq!(fake.posted_in(CHANNEL).len(), 6);
    let refused: Vec<_> = fake
        .received()
        .into_iter()
        .filter(|r| r.answer == "ratelimited" && r.body["channel"] == CHANNEL)
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
    app.stop().await;
}
