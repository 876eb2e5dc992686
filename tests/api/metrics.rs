//! `/metrics` as Prometheus scrapes it: every family carries HELP text, the
//! build and reload gauges are there, and each histogram has its own buckets.
//! (`tests/metrics_docs.rs` holds the README and the dashboard to the code.)

use crate::helpers::*;

#[tokio::test]
async fn every_family_scraped_has_help_and_the_histograms_their_own_buckets() {
    let app = spawn_app().await;
    assert_eq!(
        app.deliver(&post_body("PM1", "a forbidden phrase"), "exec-metrics-1")
            .await
            .status()
            .as_u16(),
        200
    );
    let _ = app
        .deliver_signed(&post_body("PM2", "x"), "exec-metrics-2", TENANT_SECRET)
        .await;
    // /metrics is on the admin listener when there is one.
    let base = app.admin.clone().unwrap_or_else(|| app.base.clone());
    let text = app
        .get(format!("{base}/metrics"))
        .await
        .text()
        .await
        .unwrap();
    let families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for family in [
        "modbridge_build_info",
        "modbridge_webhooks_total",
        "modbridge_webhook_duration_seconds",
        "modbridge_cards_total",
        "modbridge_delivery_duration_seconds",
        "modbridge_rule_matches_total",
        "modbridge_rules_last_reload_successful",
        "modbridge_rules_last_reload_success_timestamp_seconds",
    ] {
        assert!(families.contains(&family), "{family} not scraped:\n{text}");
    }
    for family in &families {
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "{family} has no HELP:\n{text}"
        );
    }
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        text.contains(&format!("modbridge_build_info{{version=\"{version}\"}} 1")),
        "{text}"
    );
    let bucket = |family: &str, le: &str| {
        text.lines().any(|l| {
            l.starts_with(&format!("{family}_bucket{{")) && l.contains(&format!("le=\"{le}\""))
        })
    };
    assert!(
        bucket("modbridge_delivery_duration_seconds", "30"),
        "{text}"
    );
    assert!(bucket("modbridge_webhook_duration_seconds", "10"), "{text}");
    assert!(
        !bucket("modbridge_webhook_duration_seconds", "30"),
        "{text}"
    );
    app.stop().await;
}
