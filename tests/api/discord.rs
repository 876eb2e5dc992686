//! Discord delivery against the fake Discord: signed webhook → rules → embed,
//! for a bot channel and an incoming webhook; hostile text; limits for any
//! input; nonces; error classification.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use modbridge::card::{AuthorView, Card, EarlierCards, Images, Level, ReasonView, Severity};
use modbridge::destination::{DiscordChannel, Target};
use modbridge::platforms::discord::{self, Client as DiscordSink, limits};
use modbridge::platforms::{MessageRef, PlatformError as SinkError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::fake_discord::{BOT_TOKEN, CHANNEL, Fail, FakeDiscord, WEBHOOK_ID, check_body};
use crate::helpers::{AppOptions, TestApp, answer, spawn_with};

const BOT_RULES: &str = r#"
name = "Everywhere"
groups = ["*"]
to = ["mods"]

[[match]]
name = "forbidden"
keywords = ["forbidden phrase"]
mention = true
"#;

fn config(target: &str) -> String {
    format!(
        "post_url = \"https://community.example.com/posts/{{post_id}}\"\n\n[destinations.mods]\n{target}\nmention = \"456\"\n"
    )
}

async fn app_with(fake: &FakeDiscord, target: &str, env: Vec<(&'static str, String)>) -> TestApp {
    let mut env = env;
    env.push(("DISCORD_API_URL", fake.base.clone()));
    spawn_with(AppOptions {
        rules: BOT_RULES.into(),
        config: config(target),
        env,
        live: true,
        ..Default::default()
    })
    .await
}

async fn bot_app(fake: &FakeDiscord) -> TestApp {
    app_with(
        fake,
        &format!("discord = \"{CHANNEL}\""),
        vec![("DISCORD_BOT_TOKEN", BOT_TOKEN.into())],
    )
    .await
}

fn body(post_id: &str, content: &str) -> String {
    json!({
        "CustomerId": "01HQ0ABCDEF1234567890XYZ",
        "PostId": post_id,
        "GroupId": null,
        "User": {"Id": "U1", "DisplayName": "Mary Smith", "Username": "mary",
                 "CreatedAt": "2026-04-12T14:32:01Z", "Badges": [{"Id": "b1"}]},
        "Content": content,
        "ImageUrl": "https://cdn.example.com/photo.png",
        "CreatedAt": "2026-05-08T14:32:01Z"
    })
    .to_string()
}

fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Value::Object(m) => m.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

fn assert_card(sent: &Value) {
    assert_eq!(sent["allowed_mentions"]["parse"], json!([]), "{sent}");
    assert_eq!(sent["allowed_mentions"]["roles"], json!(["456"]));
    assert_eq!(sent["content"], "<@&456> a moderator is needed");
    let e = &sent["embeds"][0];
    assert_eq!(e["title"], "Flagged post · Main feed");
    assert_eq!(e["author"]["name"], "Mary Smith (@mary)");
    assert_eq!(
        e["description"],
        "please look: this has a **forbidden phrase** in it"
    );
    assert_eq!(e["image"]["url"], "https://cdn.example.com/photo.png");
    assert_eq!(e["url"], "https://community.example.com/posts/P-e2e");
    assert_eq!(
        sent["components"][0]["components"][0]["url"],
        "https://community.example.com/posts/P-e2e"
    );
}

#[tokio::test]
async fn signed_webhook_becomes_an_embed_in_the_bot_channel() {
    let fake = FakeDiscord::start().await;
    let app = bot_app(&fake).await;
    let resp = app
        .deliver(
            &body("P-e2e", "please look: this has a forbidden phrase in it"),
            "exec-d1",
        )
        .await;
    let (status, json) = answer(resp).await;
    assert_eq!((status, &json["cards"]), (200, &json!(1)), "{json}");
    let received = fake.received();
    assert_eq!(received.len(), 1, "{received:?}");
    let r = &received[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, format!("/api/v10/channels/{CHANNEL}/messages"));
    assert_eq!(
        r.authorization.as_deref(),
        Some(format!("Bot {BOT_TOKEN}").as_str())
    );
    assert_card(&r.body);
    assert_eq!(r.body["enforce_nonce"], true);
    assert!(r.body["nonce"].as_str().is_some_and(|n| n.len() <= 25));
    assert_eq!(fake.messages(CHANNEL).len(), 1);
    assert!(fake.invalid().is_empty(), "{:?}", fake.invalid());
    app.stop().await;
}

#[tokio::test]
async fn signed_webhook_becomes_an_embed_through_a_discord_webhook() {
    let fake = FakeDiscord::start().await;
    let app = app_with(
        &fake,
        "discord_webhook_env = \"MODS_HOOK\"",
        vec![("MODS_HOOK", FakeDiscord::webhook_url())],
    )
    .await;
    let resp = app
        .deliver(
            &body("P-e2e", "please look: this has a forbidden phrase in it"),
            "exec-d2",
        )
        .await;
    let (status, json) = answer(resp).await;
    assert_eq!(status, 200, "{json}");
    let received = fake.received();
    assert_eq!(received.len(), 1, "{received:?}");
    let r = &received[0];
    assert!(
        r.path
            .starts_with(&format!("/api/v10/webhooks/{WEBHOOK_ID}/"))
    );
    assert!(r.query.contains("wait=true"), "{}", r.query);
    assert!(r.body.get("nonce").is_none());
    assert_card(&r.body);
    assert_eq!(fake.messages(WEBHOOK_ID).len(), 1);
    assert!(fake.invalid().is_empty(), "{:?}", fake.invalid());
    app.stop().await;
}

#[tokio::test]
async fn hostile_text_pings_no_one_and_forges_nothing() {
    let corpus = [
        "@everyone",
        "@here",
        "<@123>",
        "<@!123>",
        "<@&456>",
        "<#789>",
        "[x](https://evil.example)",
        "[https://bank.example](https://evil.example)",
        "[bank](<https://evil.example>)",
        "**bold** __under__ ~~strike~~ ||spoiler|| `code` ```block```",
        "> quote\n# heading\n-# subtext\n- list",
        "<t:1700000000:R> <:emoji:123> <a:anim:456>",
        "\\@everyone \\<@123>",
        "@\u{200B}everyone",
    ];
    let fake = FakeDiscord::start().await;
    let app = bot_app(&fake).await;
    let content = format!("forbidden phrase {}", corpus.join(" "));
    let (status, json) = answer(app.deliver(&body("P-evil", &content), "exec-d3").await).await;
    assert_eq!(status, 200, "{json}");
    let sent = &fake.received()[0].body;
    assert_eq!(sent["allowed_mentions"]["parse"], json!([]));
    // Only the configured role may be pinged, and only through `content`.
    assert_eq!(sent["allowed_mentions"]["roles"], json!(["456"]));
    assert_eq!(sent["allowed_mentions"]["users"], json!([]));
    let description = sent["embeds"][0]["description"].as_str().unwrap();
    // Every markdown or mention character from the post is escaped.
    let unescaped = |s: &str, c: char| {
        let mut prev = ' ';
        let mut escaped = false;
        for ch in s.chars() {
            if ch == c && (escaped || prev != '\\') {
                return true;
            }
            escaped = prev == '\\' && !escaped;
            prev = ch;
        }
        false
    };
    for c in ['<', '>', '@', '[', ']', '(', ')', '`', '|', '~', '_', '#'] {
        assert!(
            !unescaped(description, c),
            "unescaped {c:?} in {description:?}"
        );
    }
    // The only `**` runs are modbridge's highlight.
    assert_eq!(description.matches("**").count(), 2, "{description}");
    let mut all = Vec::new();
    strings(sent, &mut all);
    for s in all.iter().filter(|s| !s.starts_with("<@&456>")) {
        assert!(!s.contains("<@&456>") || s.contains("\\<\\@&456\\>"), "{s}");
    }
    app.stop().await;
}

pub(crate) fn random_text(rng: &mut StdRng, max: usize) -> String {
    const POOL: &[&str] = &[
        "a",
        "Z",
        " ",
        "\n",
        "\r\n",
        "\t",
        "*",
        "_",
        "~",
        "`",
        "|",
        ">",
        "<",
        "@",
        "#",
        "-",
        "[",
        "]",
        "(",
        ")",
        "\\",
        ":",
        "é",
        "e\u{301}",
        "\u{0301}",
        "ß",
        "ﬁ",
        "👨‍👩‍👧",
        "🇵🇹",
        "👍🏽",
        "\u{200B}",
        "\u{200D}",
        "\u{202E}",
        "\u{2066}",
        "שלום",
        "مرحبا",
        "中文",
        "\u{FEFF}",
        "\u{0000}",
        "𝔘",
        "@everyone",
        "<@123>",
        "[x](https://evil)",
    ];
    let len = rng.random_range(0..=max);
    let mut s = String::new();
    let mut chars = 0;
    while chars < len {
        let piece = if rng.random_bool(0.3) {
            // Any scalar value.
            let c = loop {
                if let Some(c) = char::from_u32(rng.random_range(0..0x11_0000)) {
                    break c;
                }
            };
            c.to_string()
        } else {
            POOL[rng.random_range(0..POOL.len())].to_owned()
        };
        chars += piece.chars().count();
        s.push_str(&piece);
    }
    s
}

pub(crate) fn char_boundary_ranges(rng: &mut StdRng, text: &str) -> Vec<std::ops::Range<usize>> {
    let bounds: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect();
    let mut ranges: Vec<std::ops::Range<usize>> = (0..rng.random_range(0..20))
        .filter_map(|_| {
            let a = bounds[rng.random_range(0..bounds.len())];
            let b = bounds[rng.random_range(0..bounds.len())];
            (a < b).then_some(a..b)
        })
        .collect();
    ranges.sort_by_key(|r| (r.start, r.end));
    let mut merged: Vec<std::ops::Range<usize>> = Vec::new();
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    merged
}

fn random_card(rng: &mut StdRng, max_text: usize) -> Card {
    let content = rng.random_bool(0.9).then(|| random_text(rng, max_text));
    let highlights = content
        .as_deref()
        .map(|c| char_boundary_ranges(rng, c))
        .unwrap_or_default();
    let reasons = (0..rng.random_range(0..40))
        .map(|_| ReasonView {
            rules: random_text(rng, 300),
            name: random_text(rng, 300),
            terms: (0..rng.random_range(0..10))
                .map(|_| random_text(rng, 300))
                .collect(),
            note: rng.random_bool(0.3).then(|| random_text(rng, 2_000)),
        })
        .collect();
    let mention = rng.random_bool(0.3).then(|| "456".to_owned());
    Card {
        case: None,
        destination: "mods".into(),
        target: bot_target(),
        severity: if rng.random_bool(0.5) {
            Severity::Flagged
        } else {
            Severity::SensitiveGroup
        },
        level: [Level::Low, Level::Normal, Level::High, Level::Urgent][rng.random_range(0..4)],
        not_fully_checked: rng.random_bool(0.3),
        headline: format!("Flagged post · {}", random_text(rng, 1_000)),
        place: random_text(rng, 1_000),
        author: AuthorView {
            name: random_text(rng, 1_000),
            username: rng.random_bool(0.8).then(|| random_text(rng, 1_000)),
            user_id: random_text(rng, 100),
            joined_at: rng.random_bool(0.8).then(|| {
                Utc.timestamp_opt(rng.random_range(0..1_800_000_000), 0)
                    .unwrap()
            }),
            badges: rng.random_range(0..1_000),
            email: rng.random_bool(0.3).then(|| random_text(rng, 1_000)),
            phone: rng.random_bool(0.3).then(|| random_text(rng, 1_000)),
        },
        content,
        highlights,
        image_url: rng
            .random_bool(0.5)
            .then(|| format!("https://cdn.example.com/{}", random_text(rng, 3_000))),
        images: [Images::Show, Images::Spoiler, Images::Link][rng.random_range(0..3)],
        reasons,
        customer_id: random_text(rng, 1_000),
        post_id: random_text(rng, 1_000),
        group_id: None,
        posted_at: Utc
            .timestamp_opt(rng.random_range(0..2_000_000_000), 0)
            .unwrap(),
        post_url: rng.random_bool(0.7).then(|| {
            format!(
                "https://community.example.com/posts/{}",
                random_text(rng, 700)
            )
        }),
        mention,
        earlier: rng.random_bool(0.5).then(|| EarlierCards {
            earlier: rng.random_range(0..100_000),
            resolved: rng.random_range(0..100_000),
            false_positive: rng.random_range(0..100_000),
            open: rng.random_range(0..100_000),
        }),
    }
}

fn check_limits(v: &Value) {
    let len = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
    assert!(len(&v["content"]) <= limits::CONTENT);
    let embeds = v["embeds"].as_array().unwrap();
    assert_eq!(embeds.len(), 1);
    let e = &embeds[0];
    assert!(len(&e["title"]) <= limits::TITLE && len(&e["title"]) > 0);
    assert!(
        len(&e["description"]) <= limits::DESCRIPTION
            && !e["description"].as_str().unwrap().trim().is_empty()
    );
    assert!(len(&e["footer"]["text"]) <= limits::FOOTER);
    assert!(len(&e["author"]["name"]) <= limits::AUTHOR && len(&e["author"]["name"]) > 0);
    let fields = e["fields"].as_array().unwrap();
    assert!(fields.len() <= limits::FIELDS);
    for f in fields {
        assert!(
            len(&f["name"]) <= limits::FIELD_NAME && !f["name"].as_str().unwrap().trim().is_empty()
        );
        assert!(
            len(&f["value"]) <= limits::FIELD_VALUE
                && !f["value"].as_str().unwrap().trim().is_empty()
        );
    }
    assert_eq!(v["allowed_mentions"]["parse"], json!([]));
}

#[test]
fn any_input_stays_within_every_discord_limit() {
    let mut rng = StdRng::seed_from_u64(0x0D15_C0D5);
    let now = Utc::now();
    let bot = Target::Discord(DiscordChannel::parse(&CHANNEL.to_string()).unwrap());
    let hook = Target::DiscordWebhook { env: "HOOK".into() };
    for i in 0..120 {
        // A few enormous posts, many ordinary ones.
        let max = if i % 10 == 0 { 100_000 } else { 5_000 };
        let card = random_card(&mut rng, max);
        for (target, kind) in [(&bot, "message"), (&hook, "webhook")] {
            let v = discord::payload(&card, target, now);
            check_limits(&v);
            let problems = check_body(kind, &v);
            assert!(problems.is_empty(), "case {i}: {problems:?}");
        }
    }
}

fn sink(fake: &FakeDiscord) -> DiscordSink {
    let hooks = BTreeMap::from([("MODS_HOOK".to_owned(), FakeDiscord::webhook_url())]);
    DiscordSink::new(Some(BOT_TOKEN), &fake.base, &hooks).unwrap()
}

fn card() -> Card {
    let mut rng = StdRng::seed_from_u64(7);
    let mut c = random_card(&mut rng, 200);
    c.customer_id = "C1".into();
    c.post_id = "P1".into();
    c
}

fn bot_target() -> Target {
    Target::Discord(DiscordChannel::parse(&CHANNEL.to_string()).unwrap())
}

#[tokio::test]
async fn a_resend_with_the_same_nonce_returns_the_existing_message() {
    let fake = FakeDiscord::start().await;
    let sink = sink(&fake);
    let first = sink.deliver(&card(), &bot_target()).await.unwrap();
    let second = sink.deliver(&card(), &bot_target()).await.unwrap();
    assert_eq!(first, second);
    assert!(matches!(first, MessageRef::Discord { message_id, .. } if message_id > 0));
    assert_eq!(fake.received().len(), 2);
    assert_eq!(
        fake.messages(CHANNEL).len(),
        1,
        "a second message was created"
    );
}

#[tokio::test]
async fn missing_access_and_unknown_channel_are_configuration_errors() {
    let fake = FakeDiscord::start().await;
    let sink = sink(&fake);
    fake.fail_next(Fail::MissingAccess);
    match sink.deliver(&card(), &bot_target()).await {
        Err(SinkError::Config { detail, .. }) => {
            assert!(
                detail.contains("View Channel, Send Messages, Embed Links"),
                "{detail}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(
        sink.problems().iter().any(|p| p.contains("50001")),
        "{:?}",
        sink.problems()
    );
    fake.fail_next(Fail::UnknownChannel);
    assert!(matches!(
        sink.deliver(&card(), &bot_target()).await,
        Err(SinkError::Config { .. })
    ));
    let other = Target::Discord(DiscordChannel::parse("99999999999999999").unwrap());
    assert!(matches!(
        sink.deliver(&card(), &other).await,
        Err(SinkError::Config { .. })
    ));
    // A bad token, and a deleted webhook.
    let bad = DiscordSink::new(Some("wrong"), &fake.base, &BTreeMap::new()).unwrap();
    match bad.deliver(&card(), &bot_target()).await {
        Err(SinkError::Config { detail, .. }) => {
            assert!(detail.contains("DISCORD_BOT_TOKEN"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
    let gone = BTreeMap::from([(
        "OLD_HOOK".to_owned(),
        format!("https://discord.com/api/webhooks/{WEBHOOK_ID}/not-the-token"),
    )]);
    let gone = DiscordSink::new(None, &fake.base, &gone).unwrap();
    match gone
        .deliver(
            &card(),
            &Target::DiscordWebhook {
                env: "OLD_HOOK".into(),
            },
        )
        .await
    {
        Err(SinkError::Config { detail, .. }) => {
            assert!(
                detail.contains("$OLD_HOOK") && !detail.contains("not-the-token"),
                "{detail}"
            )
        }
        other => panic!("{other:?}"),
    }
    // Recovered: the next success clears the problem.
    sink.deliver(&card(), &bot_target()).await.unwrap();
    assert!(
        sink.problems()
            .iter()
            .all(|p| !p.contains(&CHANNEL.to_string())),
        "{:?}",
        sink.problems()
    );
}

#[tokio::test]
async fn a_server_error_is_transient_and_the_webhook_is_answered_503() {
    let fake = FakeDiscord::start().await;
    let sink = sink(&fake);
    fake.fail_next(Fail::ServerError);
    assert!(matches!(
        sink.deliver(&card(), &bot_target()).await,
        Err(SinkError::Transient { .. })
    ));
    let app = bot_app(&fake).await;
    fake.fail_next(Fail::ServerError);
    let resp = app
        .deliver(&body("P-500", "a forbidden phrase"), "exec-d500")
        .await;
    assert_eq!(resp.status().as_u16(), 503);
    assert!(resp.headers().get("retry-after").is_some());
    app.stop().await;
}

#[tokio::test]
async fn a_429_without_serenitys_limiter_is_waited_out_once_then_retryable() {
    let fake = FakeDiscord::start().await;
    let sink = sink(&fake);
    fake.fail_next(Fail::RateLimited(0.2));
    sink.deliver(&card(), &bot_target()).await.unwrap();
    assert_eq!(fake.received().len(), 2);
    fake.fail_next(Fail::RateLimited(0.2));
    fake.fail_next(Fail::RateLimited(0.2));
    assert!(matches!(
        sink.deliver(&card(), &bot_target()).await,
        Err(SinkError::Transient { .. })
    ));
}

#[tokio::test]
async fn check_live_proves_the_token_and_each_channel() {
    let fake = FakeDiscord::start().await;
    let lines = live_check_lines(&fake, &format!("[destinations.mods]\ndiscord = \"{CHANNEL}\"\n[destinations.gone]\ndiscord = \"99999999999999999\"\n[destinations.hook]\ndiscord_webhook_env = \"MODS_HOOK\"\n"), false).await;
    assert!(
        lines.contains("ok: discord: GET /users/@me accepts DISCORD_BOT_TOKEN"),
        "{lines}"
    );
    assert!(
        lines.contains(&format!("ok: discord: mods ({CHANNEL})")),
        "{lines}"
    );
    assert!(
        lines.contains("error: discord: gone (99999999999999999)"),
        "{lines}"
    );
    assert!(
        lines.contains(&format!("webhooks/{WEBHOOK_ID}/***")),
        "{lines}"
    );
    assert!(
        !lines.contains(crate::fake_discord::WEBHOOK_TOKEN),
        "{lines}"
    );
    // Nothing was posted.
    assert!(fake.received().iter().all(|r| r.method == "GET"));
}

/// A TLS front for the fake: terminates TLS for `discord.com` with a test CA
/// and pipes the bytes to the fake's plain HTTP port. Returns the CA (PEM) and
/// the address to resolve `discord.com` to.
async fn tls_front(fake: &FakeDiscord) -> (String, std::net::SocketAddr) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["discord.com".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let config = ServerConfig::builder_with_provider(std::sync::Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let upstream = fake.base.trim_start_matches("http://").to_owned();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (ca.pem(), addr)
}

#[tokio::test]
async fn a_429_is_waited_out_by_serenitys_real_rate_limiter() {
    let fake = FakeDiscord::start().await;
    let (ca, addr) = tls_front(&fake).await;
    // The real API base, so serenity keeps its rate limiter on; discord.com
    // resolves to the fake, whose certificate the test CA signed.
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .resolve("discord.com", addr)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .build()
        .unwrap();
    let sink = DiscordSink::with_client(
        Some(BOT_TOKEN),
        "https://discord.com",
        &BTreeMap::new(),
        client,
    )
    .unwrap();
    assert!(
        sink.serenity_ratelimiter(),
        "the limiter must be on for the real API"
    );
    fake.fail_next(Fail::RateLimited(1.0));
    let started = std::time::Instant::now();
    let posted = sink.deliver(&card(), &bot_target()).await;
    assert!(posted.is_ok(), "{posted:?}");
    let waited = started.elapsed();
    let statuses: Vec<u16> = fake.received().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 200], "serenity did not retry after the 429");
    assert!(
        waited >= std::time::Duration::from_millis(900),
        "retried after only {waited:?}"
    );
    assert_eq!(fake.messages(CHANNEL).len(), 1);
}

/// Post then edit through the boundary, as the bot and through the webhook
/// (`wait=true` gives the message ID; the reference names the variable, never
/// the URL); the fake checks every edit against Discord's spec.
#[tokio::test]
async fn posted_cards_are_edited_in_place_as_bot_and_webhook() {
    use modbridge::platforms::Platforms;
    let fake = FakeDiscord::start().await;
    let platforms = Platforms::new(None, Some(sink(&fake)));
    let hook = Target::DiscordWebhook {
        env: "MODS_HOOK".into(),
    };
    for target in [bot_target(), hook] {
        let posted = platforms.post(&card(), &target).await.unwrap().unwrap();
        let json = serde_json::to_string(&posted).unwrap();
        assert!(!json.contains(crate::fake_discord::WEBHOOK_TOKEN), "{json}");
        let mut changed = card();
        changed.headline = "Resolved · updated card".into();
        platforms.update(&posted, &changed).await.unwrap();
        let (key, id) = match &posted {
            MessageRef::Discord { message_id, .. } => (CHANNEL, *message_id),
            MessageRef::DiscordWebhook { env, message_id } => {
                assert_eq!(env, "MODS_HOOK");
                (WEBHOOK_ID, *message_id)
            }
            other => panic!("{other:?}"),
        };
        let now = fake.messages(key);
        let m = now
            .iter()
            .find(|m| m["id"].as_str() == Some(id.to_string().as_str()))
            .expect("the posted message");
        assert_eq!(m["embeds"][0]["title"], "Resolved · updated card");
        assert!(!m["edited_timestamp"].is_null());
    }
    assert!(fake.invalid().is_empty(), "{:?}", fake.invalid());
    let patches: Vec<_> = fake
        .received()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 2, "{patches:?}");
    assert!(patches.iter().all(|r| r.status == 200), "{patches:?}");
    // An edit of a message that does not exist is a configuration error
    // (never a silent success).
    let gone = MessageRef::Discord {
        channel: CHANNEL,
        message_id: 1,
    };
    assert!(matches!(
        platforms.update(&gone, &card()).await,
        Err(SinkError::Config { .. })
    ));
}

/// `check --live --send-test` posts a marked test card to every Discord
/// destination: the bot's channels and the webhooks (never showing the URL).
#[tokio::test]
async fn check_live_send_test_posts_a_test_card_to_channels_and_webhooks() {
    let fake = FakeDiscord::start().await;
    let lines = live_check_lines(&fake, &format!("[destinations.mods]\ndiscord = \"{CHANNEL}\"\n[destinations.hook]\ndiscord_webhook_env = \"MODS_HOOK\"\n"), true).await;
    assert!(
        lines.contains(&format!("ok: discord: mods ({CHANNEL}): test card posted")),
        "{lines}"
    );
    assert!(
        lines.contains("ok: discord: hook: test card posted"),
        "{lines}"
    );
    assert!(
        !lines.contains(crate::fake_discord::WEBHOOK_TOKEN),
        "{lines}"
    );
    for key in [CHANNEL, WEBHOOK_ID] {
        let posted = fake.messages(key);
        assert_eq!(posted.len(), 1, "{key}: {posted:?}");
        let title = posted[0]["embeds"][0]["title"].as_str().unwrap_or_default();
        assert!(title.starts_with("TEST card"), "{title}");
    }
    assert!(fake.invalid().is_empty(), "{:?}", fake.invalid());
}

const URGENT_RULES: &str = r#"
name = "Everywhere"
groups = ["*"]
to = ["mods"]

[[match]]
name = "threat"
patterns = ['forbidden \S+']
severity = "urgent"
note = "{rule}: check “{match}” against the playbook"
"#;

/// Issue 12 end to end: an urgent match with a note pings the configured
/// role, colours the embed and shows the note with the post text in it inert.
#[tokio::test]
async fn an_urgent_match_with_a_note_is_coloured_pinged_and_escaped() {
    let fake = FakeDiscord::start().await;
    let app = spawn_with(AppOptions {
        rules: URGENT_RULES.into(),
        config: config(&format!("discord = \"{CHANNEL}\"")),
        env: vec![
            ("DISCORD_API_URL", fake.base.clone()),
            ("DISCORD_BOT_TOKEN", BOT_TOKEN.into()),
        ],
        live: true,
        ..Default::default()
    })
    .await;
    let (status, json) = answer(
        app.deliver(&body("P-urgent", "look: forbidden @everyone"), "exec-d12")
            .await,
    )
    .await;
    assert_eq!((status, &json["cards"]), (200, &json!(1)), "{json}");
    assert!(fake.invalid().is_empty(), "{:?}", fake.invalid());
    let sent = &fake.received()[0].body;
    assert_eq!(sent["content"], "<@&456> a moderator is needed", "{sent}");
    assert_eq!(sent["allowed_mentions"]["parse"], json!([]));
    let e = &sent["embeds"][0];
    assert_eq!(e["title"], "🚨 URGENT · Flagged post · Main feed");
    assert_eq!(e["color"], 0x8E_24_AA);
    let note = e["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "📝 Note for moderators")
        .unwrap_or_else(|| panic!("no note field: {e}"));
    assert_eq!(
        note["value"],
        "threat: check “forbidden \\@everyone” against the playbook"
    );
    app.stop().await;
}

/// One card with a note (hostile `{match}` text), a level and "not fully
/// checked", as a bot message and a webhook execution: Discord's OpenAPI
/// spec accepts both, and each piece is where moderators look for it.
#[tokio::test]
async fn note_level_and_not_fully_checked_pass_discords_validation() {
    let fake = FakeDiscord::start().await;
    let sink = sink(&fake);
    let mut c = Card::example("slack:C0123ABCD", Some("look: forbidden phrase"));
    c.level = Level::Urgent;
    c.not_fully_checked = true;
    c.reasons[0].note = Some(format!(
        "Check “<@&456> @everyone [x](https://evil.example) **b**” {}",
        "and more ".repeat(300)
    ));
    for target in [
        bot_target(),
        Target::DiscordWebhook {
            env: "MODS_HOOK".into(),
        },
    ] {
        c.target = target.clone();
        sink.deliver(&c, &target).await.unwrap();
    }
    assert!(fake.invalid().is_empty(), "{:?}", fake.invalid());
    let received = fake.received();
    assert_eq!(received.len(), 2);
    for r in &received {
        let e = &r.body["embeds"][0];
        assert_eq!(e["color"], 0x8E_24_AA, "{e}");
        let fields = e["fields"].as_array().unwrap();
        let value = |name: &str| {
            fields
                .iter()
                .find(|f| f["name"] == name)
                .and_then(|f| f["value"].as_str())
                .unwrap_or_else(|| panic!("no field {name}: {e}"))
        };
        let note = value("📝 Note for moderators");
        assert!(note.chars().count() <= limits::FIELD_VALUE, "{note}");
        assert!(
            note.starts_with(
                "Check “\\<\\@&456\\> \\@everyone \\[x\\]\\(https://evil.example\\) \\*\\*b\\*\\*”"
            ),
            "{note}"
        );
        assert!(note.ends_with('…'), "a long note is cut: {note}");
        assert_eq!(
            value("⏳ Rules check"),
            "Not fully checked: the post ran out of its rules time budget; more rules may match."
        );
        assert_eq!(r.body["allowed_mentions"]["parse"], json!([]));
    }
}

/// `check --live` (and `--send-test` when asked) against the fake, with the
/// bot token and a `MODS_HOOK` webhook set; its report, one line per check.
async fn live_check_lines(fake: &FakeDiscord, config_text: &str, send_test: bool) -> String {
    use modbridge::commands::check::live_check;
    use modbridge::config::Settings;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("modbridge.toml");
    std::fs::write(&config, config_text).unwrap();
    let env: BTreeMap<String, String> = [
        ("DISCORD_API_URL", fake.base.clone()),
        ("DISCORD_BOT_TOKEN", BOT_TOKEN.to_owned()),
        ("MODS_HOOK", FakeDiscord::webhook_url()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let settings = Settings::load(Some(&config), true, &env).unwrap();
    let destinations: Vec<_> = settings.destinations.iter().cloned().collect();
    live_check(&settings, &env, &destinations, send_test)
        .await
        .join("\n")
}

/// A 2xx whose body cannot be read is a delivery: answered 200, recorded as
/// sent (reference unknown), never sent again (a webhook has no nonce).
#[tokio::test]
async fn an_unreadable_2xx_from_discord_counts_as_delivered() {
    let fake = FakeDiscord::start().await;
    let app = app_with(
        &fake,
        "discord_webhook_env = \"MODS_HOOK\"",
        vec![("MODS_HOOK", FakeDiscord::webhook_url())],
    )
    .await;
    fake.fail_next(Fail::UnreadableOk);
    let post = body("P-garbled", "this has a forbidden phrase in it");
    let (status, json) = answer(app.deliver(&post, "exec-garbled-1").await).await;
    assert_eq!(
        (status, json["status"].as_str(), json["cards"].as_u64()),
        (200, Some("accepted"), Some(1)),
        "{json}"
    );
    assert_eq!(fake.messages(WEBHOOK_ID).len(), 1);
    // A second listener's delivery of the same post sends nothing.
    let (status, json) = answer(app.deliver(&post, "exec-garbled-2").await).await;
    assert_eq!(
        (status, json["already_sent"].as_u64()),
        (200, Some(1)),
        "{json}"
    );
    assert_eq!(fake.messages(WEBHOOK_ID).len(), 1);
    assert_eq!(fake.received().len(), 1, "one call to Discord");

    // The same for a bot message.
    let bot = bot_app(&fake).await;
    fake.fail_next(Fail::UnreadableOk);
    let post = body("P-garbled-bot", "this has a forbidden phrase in it");
    let (status, json) = answer(bot.deliver(&post, "exec-garbled-3").await).await;
    assert_eq!((status, json["cards"].as_u64()), (200, Some(1)), "{json}");
    assert_eq!(fake.messages(CHANNEL).len(), 1);
    assert_eq!(fake.received().len(), 2, "one call to Discord each");
    app.stop().await;
    bot.stop().await;
}

/// serenity's rate limiter sleeps through any `Retry-After`: the call's
/// deadline cuts it, and the card counts as timed out (it may exist).
#[tokio::test]
async fn serenitys_limiter_does_not_hold_a_call_beyond_its_deadline() {
    let fake = FakeDiscord::start().await;
    let (ca, addr) = tls_front(&fake).await;
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .resolve("discord.com", addr)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .build()
        .unwrap();
    let sink = DiscordSink::with_client(
        Some(BOT_TOKEN),
        "https://discord.com",
        &BTreeMap::new(),
        client,
    )
    .unwrap()
    .with_deadline(std::time::Duration::from_secs(2));
    assert!(sink.serenity_ratelimiter());
    fake.fail_next(Fail::RateLimited(3600.0));
    let started = std::time::Instant::now();
    let posted = sink.post(&card(), &bot_target()).await;
    let took = started.elapsed();
    assert!(
        matches!(posted, Err(SinkError::TimedOut { .. })),
        "{posted:?}"
    );
    assert!(
        took >= std::time::Duration::from_millis(1900) && took < std::time::Duration::from_secs(4),
        "{took:?}"
    );
    assert!(fake.messages(CHANNEL).is_empty());
}

/// A destination with `images = "spoiler"`: the embed has no image, and a
/// field holds the link behind spoiler bars; `images = "link"` the link
/// alone. Discord accepts both (the fake checks every body against the
/// OpenAPI spec and Discord's limits).
#[tokio::test]
async fn images_spoiler_and_link_never_embed_the_image() {
    for mode in ["spoiler", "link"] {
        let fake = FakeDiscord::start().await;
        let app = app_with(
            &fake,
            &format!("discord = \"{CHANNEL}\"\nimages = \"{mode}\""),
            vec![("DISCORD_BOT_TOKEN", BOT_TOKEN.into())],
        )
        .await;
        let resp = app
            .deliver(
                &body(&format!("P-img-{mode}"), "a forbidden phrase"),
                &format!("img-{mode}"),
            )
            .await;
        let (status, json) = answer(resp).await;
        assert_eq!((status, &json["cards"]), (200, &json!(1)), "{json}");
        let sent = &fake.received()[0].body;
        let e = &sent["embeds"][0];
        assert!(e.get("image").is_none(), "{mode}: {e}");
        let field = e["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "🖼️ Image")
            .unwrap_or_else(|| panic!("{mode}: no image field in {e}"));
        let link = "[open image](https://cdn.example.com/photo.png)";
        let want = if mode == "spoiler" {
            format!("||{link}||")
        } else {
            link.to_owned()
        };
        assert!(field["value"].as_str().unwrap().ends_with(&want), "{field}");
        assert!(fake.invalid().is_empty(), "{:?}", fake.invalid());
        app.stop().await;
    }
}

/// The fake enforces Discord's limits when asked: five messages per route
/// and channel in a 5 s window, the sixth refused with `retry_after`, the
/// answers telling the bucket as Discord's do.
#[tokio::test]
async fn the_fake_refuses_a_sixth_message_in_a_channels_window() {
    let fake = FakeDiscord::start().await;
    fake.enforce_limits();
    let direct = reqwest::Client::new();
    let mut answers = Vec::new();
    for i in 0..6 {
        let r = direct
            .post(format!("{}/api/v10/channels/{CHANNEL}/messages", fake.base))
            .header("authorization", format!("Bot {BOT_TOKEN}"))
            .json(&json!({"content": format!("hi {i}")}))
            .send()
            .await
            .unwrap();
        let left = r
            .headers()
            .get("x-ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        answers.push((r.status().as_u16(), left));
    }
    let expected: Vec<(u16, String)> = [
        (200, "4"),
        (200, "3"),
        (200, "2"),
        (200, "1"),
        (200, "0"),
        (429, "0"),
    ]
    .into_iter()
    .map(|(s, l)| (s, l.to_owned()))
    .collect();
    assert_eq!(answers, expected);
}

/// With Discord's limits enforced (5 per 5 s per channel and route, 50 a
/// second in all), modbridge's own pacing on the proxy path keeps under
/// them: eight cards to one channel all arrive, and the fake never had to
/// answer 429.
#[tokio::test]
async fn cards_to_one_channel_keep_to_discords_limits() {
    let fake = FakeDiscord::start().await;
    fake.enforce_limits();
    let app = bot_app(&fake).await;
    let answers = futures_util::future::join_all((0..8).map(|i| {
        let body = body(&format!("P-limit-{i}"), "this has a forbidden phrase");
        let app = &app;
        async move {
            app.deliver_until_ok(
                &body,
                &format!("limit-{i}"),
                std::time::Duration::from_secs(30),
            )
            .await
        }
    }))
    .await;
    assert_eq!(answers, [200; 8]);
    assert_eq!(fake.messages(CHANNEL).len(), 8);
    let refused: Vec<_> = fake
        .received()
        .into_iter()
        .filter(|r| r.status == 429)
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
    app.stop().await;
}
