//! Every answer of the intake table, over real HTTP against the real router
//! (in-memory dedupe; Redis has its own file).

use std::io::{Read, Write};
use std::time::Duration;

use crate::helpers::*;

#[tokio::test]
async fn a_genuine_matching_post_is_accepted_once_and_carded() {
    let app = spawn_app().await;
    let body = post_body("P1", "this has a Forbidden   Phrase in it");
    let (status, json) = answer(app.deliver(&body, "exec-1").await).await;
    assert_eq!(
        (status, json["status"].as_str()),
        (200, Some("accepted")),
        "{json}"
    );
    assert_eq!(json["cards"], 1);
    let cards = app.recorder.cards();
    assert_eq!(cards.len(), 1);
    assert_eq!(cards[0].post_id, "P1");
    assert_eq!(cards[0].reasons[0].name, "forbidden");
    assert!(
        cards[0].author.email.is_none(),
        "email shown without show_email"
    );

    // Cativa delivers again: acknowledged, nothing else happens.
    let (status, json) = answer(app.deliver(&body, "exec-1").await).await;
    assert_eq!((status, json["status"].as_str()), (200, Some("duplicate")));
    assert_eq!(app.recorder.cards().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_post_that_matches_nothing_is_accepted_without_a_card() {
    let app = spawn_app().await;
    let (status, json) = answer(app.deliver(&post_body("P2", "hello"), "exec-2").await).await;
    assert_eq!((status, json["cards"].as_u64()), (200, Some(0)));
    assert!(app.recorder.cards().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn signature_failures_are_401_with_a_reason() {
    let app = spawn_app().await;
    let body = post_body("P3", "x");
    let url = app.webhook_url();
    let send = |sig: Option<String>| {
        let mut req = app
            .client
            .post(&url)
            .header("x-cativa-execution-id", "exec-3")
            .body(body.clone());
        if let Some(sig) = sig {
            req = req.header("x-cativa-signature", sig);
        }
        req.send()
    };
    let cases = [
        (None, "missing"),
        (Some("garbage".into()), "malformed"),
        (
            Some(sign("whsec_wrong", now(), body.as_bytes())),
            "does not match",
        ),
        (Some(sign(SECRET, now() - 301, body.as_bytes())), "stale"),
        (Some(sign(SECRET, now() + 301, body.as_bytes())), "future"),
        (Some(sign(SECRET, now(), b"another body")), "does not match"),
    ];
    for (sig, want) in cases {
        let (status, json) = answer(send(sig.clone()).await.unwrap()).await;
        assert_eq!(status, 401, "{sig:?}");
        let err = json["error"].as_str().unwrap();
        assert!(err.contains(want), "{sig:?}: {err}");
        assert!(!err.contains(SECRET));
    }
    // None of them left a claim: the genuine delivery is processed.
    let (status, json) = answer(app.deliver(&body, "exec-3").await).await;
    assert_eq!((status, json["status"].as_str()), (200, Some("accepted")));
    app.stop().await;
}

#[tokio::test]
async fn bad_requests_are_400_naming_the_problem() {
    let app = spawn_app().await;
    let missing_user = r#"{"CustomerId":"c","PostId":"p","CreatedAt":"2026-05-08T14:32:01Z"}"#;
    for (body, want) in [
        ("not json at all", "not valid JSON"),
        ("[1,2]", "not a JSON object"),
        (missing_user, "User.Id"),
        (
            r#"{"PostId":"p","User":{"Id":"u"},"CreatedAt":"2026-05-08T14:32:01Z"}"#,
            "CustomerId",
        ),
        (
            r#"{"CustomerId":"c","PostId":"p","User":{"Id":"u"}}"#,
            "CreatedAt",
        ),
    ] {
        let (status, json) = answer(app.deliver(body, "exec-bad").await).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            json["error"].as_str().unwrap().contains(want),
            "{body}: {json}"
        );
    }
    // No execution ID.
    let body = post_body("P4", "x");
    let resp = app
        .client
        .post(app.webhook_url())
        .header("x-cativa-signature", sign(SECRET, now(), body.as_bytes()))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let (status, json) = answer(resp).await;
    assert_eq!(status, 400);
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("X-Cativa-Execution-Id")
    );
    // The bad deliveries left no claim behind.
    let (status, _) = answer(app.deliver(&body, "exec-bad").await).await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn other_events_are_acknowledged_and_ignored() {
    let app = spawn_app().await;
    for body in [
        r#"{"CustomerId":"c","User":{"Id":"u"},"GroupId":"g","GroupName":"Parents"}"#,
        r#"{"CustomerId":"c","PostId":"p","CommentId":"k","Content":"forbidden phrase"}"#,
    ] {
        let (status, json) =
            answer(app.deliver(body, &format!("other-{}", body.len())).await).await;
        assert_eq!(
            (status, json["status"].as_str()),
            (200, Some("ignored")),
            "{body}"
        );
    }
    assert!(app.recorder.cards().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_without_being_read() {
    let app = spawn_with(AppOptions {
        env: vec![("MODBRIDGE_MAX_BODY_BYTES", "1000".into())],
        ..Default::default()
    })
    .await;
    let big = "x".repeat(1001);
    let (status, _) = answer(app.deliver(&big, "exec-big").await).await;
    assert_eq!(status, 413);

    // Declares 100 MB, sends none of it: the answer comes at once.
    let addr = app.base.trim_start_matches("http://").to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(
            b"POST /webhooks/cativa HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n",
        )
        .unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // Chunked, no declared length: cut off at the limit.
    let stream =
        futures_util::stream::iter((0..20).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 100])));
    let resp = app
        .client
        .post(app.webhook_url())
        .header("x-cativa-signature", sign(SECRET, now(), b"x"))
        .header("x-cativa-execution-id", "exec-chunked")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    app.stop().await;
}

#[tokio::test]
async fn wrong_method_and_path_are_405_and_404() {
    let app = spawn_app().await;
    let get = app.get(app.webhook_url()).await;
    assert_eq!(get.status().as_u16(), 405);
    let nowhere = app
        .client
        .post(format!("{}/webhooks/other", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(nowhere.status().as_u16(), 404);
    app.stop().await;
}

#[tokio::test]
async fn a_tenant_cannot_post_as_another() {
    let config = r#"
[listeners.acme]
secret_env = "ACME_SECRET"
customers = ["ACME"]
"#;
    let app = spawn_with(AppOptions {
        config: config.into(),
        env: vec![("ACME_SECRET", TENANT_SECRET.into())],
        ..Default::default()
    })
    .await;
    let other_tenant = post_body("P5", "hello"); // CustomerId 01HQ0ABCDEF...
    let (status, json) = answer(
        app.deliver_signed(&other_tenant, "exec-t1", TENANT_SECRET)
            .await,
    )
    .await;
    assert_eq!(status, 403, "{json}");
    let own = other_tenant.replace("01HQ0ABCDEF1234567890XYZ", "ACME");
    let (status, _) = answer(app.deliver_signed(&own, "exec-t2", TENANT_SECRET).await).await;
    assert_eq!(status, 200);
    // The shared secret may speak for anyone.
    let (status, _) = answer(app.deliver(&other_tenant, "exec-t1").await).await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_deliveries_are_processed_exactly_once() {
    let app = spawn_app().await;
    let body = post_body("P6", "a forbidden phrase");
    let mut answers = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (client, url, body) = (app.client.clone(), app.webhook_url(), body.clone());
        tasks.push(tokio::spawn(async move {
            let resp = client
                .post(url)
                .header("x-cativa-signature", sign(SECRET, now(), body.as_bytes()))
                .header("x-cativa-execution-id", "exec-race")
                .body(body)
                .send()
                .await
                .unwrap();
            let retry_after = resp.headers().get("retry-after").is_some();
            let (status, json) = answer(resp).await;
            (
                status,
                json["status"].as_str().map(str::to_owned),
                retry_after,
            )
        }));
    }
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let accepted = answers
        .iter()
        .filter(|a| a.1.as_deref() == Some("accepted"))
        .count();
    assert_eq!(accepted, 1, "{answers:?}");
    for (status, word, retry_after) in &answers {
        match (status, word.as_deref()) {
            (200, Some("accepted" | "duplicate")) => {}
            (503, _) => assert!(retry_after, "503 without Retry-After"),
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(app.recorder.cards().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_failed_delivery_releases_the_claim_so_the_retry_succeeds() {
    let app = spawn_app().await;
    app.recorder.fail_next(1);
    let body = post_body("P7", "forbidden phrase");
    let resp = app.deliver(&body, "exec-retry").await;
    assert_eq!(resp.status().as_u16(), 503);
    assert!(resp.headers().get("retry-after").is_some());
    let (status, json) = answer(app.deliver(&body, "exec-retry").await).await;
    assert_eq!((status, json["status"].as_str()), (200, Some("accepted")));
    assert_eq!(app.recorder.cards().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = spawn_app().await;
    let _ = app.deliver(&post_body("P8", "x"), "exec-m").await;
    let health = app.get(format!("{}/healthz", app.base)).await;
    assert_eq!(health.status().as_u16(), 200);
    let (status, ready) = answer(app.get(app.admin_url("/readyz")).await).await;
    assert_eq!(
        (status, ready["status"].as_str()),
        (200, Some("ready")),
        "{ready}"
    );
    assert_eq!(ready["dedupe"]["store"], "memory");
    let metrics = app.metrics().await;
    assert!(metrics.contains("modbridge_webhooks_total"), "{metrics}");
    app.stop().await;
}

#[tokio::test]
async fn capture_appends_each_verified_body_as_one_line_and_nothing_unsigned() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("corpus.jsonl");
    let app = spawn_with(AppOptions {
        config: format!(
            "[capture]\nfile = {:?}\nmax_mb = 1\n",
            file.display().to_string()
        ),
        ..AppOptions::default()
    })
    .await;
    let one = post_body("CAP1", "first");
    let two = post_body("CAP2", "second");
    assert_eq!(answer(app.deliver(&one, "cap-1").await).await.0, 200);
    // A bad signature is refused before anything is written.
    let forged = post_body("CAP3", "forged");
    let (status, _) = answer(app.deliver_signed(&forged, "cap-3", "whsec_wrong").await).await;
    assert_eq!(status, 401);
    assert_eq!(answer(app.deliver(&two, "cap-2").await).await.0, 200);
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for (line, id) in lines.iter().zip(["CAP1", "CAP2"]) {
        let body: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(body["PostId"], id);
    }
    assert!(!text.contains("CAP3"));
    app.stop().await;
}

#[tokio::test]
async fn capture_follows_a_file_moved_away_while_serving() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("corpus.jsonl");
    let app = spawn_with(AppOptions {
        config: format!(
            "[capture]\nfile = {:?}\nmax_mb = 1\n",
            file.display().to_string()
        ),
        ..AppOptions::default()
    })
    .await;
    let ids = |path: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| {
                let body: serde_json::Value = serde_json::from_str(l).unwrap();
                body["PostId"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    let send = |id: &'static str| {
        let app = &app;
        async move {
            let body = post_body(id, "captured");
            assert_eq!(answer(app.deliver(&body, id).await).await.0, 200);
        }
    };
    send("ROT1").await;
    // logrotate's default: move the file away (and, with `create`, make an
    // empty one); the next post after the check interval goes to the path.
    std::fs::rename(&file, dir.path().join("corpus.jsonl.1")).unwrap();
    tokio::time::sleep(modbridge::intake::capture::ROTATION_CHECK + Duration::from_millis(100))
        .await;
    send("ROT2").await;
    assert_eq!(ids(&dir.path().join("corpus.jsonl.1")), ["ROT1"]);
    assert_eq!(ids(&file), ["ROT2"]);
    std::fs::rename(&file, dir.path().join("corpus.jsonl.2")).unwrap();
    std::fs::File::create(&file).unwrap();
    tokio::time::sleep(modbridge::intake::capture::ROTATION_CHECK + Duration::from_millis(100))
        .await;
    send("ROT3").await;
    assert_eq!(ids(&dir.path().join("corpus.jsonl.2")), ["ROT2"]);
    assert_eq!(ids(&file), ["ROT3"]);
    app.stop().await;
}
