//! Metrics an operator can rely on: every family the code records has HELP
//! text and a row in README.md, and the dashboard and alert rules in `ops/`
//! name only families that exist. (`tests/api/metrics.rs` scrapes a running
//! app; `promtool check rules` in `.ci/run` checks the alert rules' syntax.)

use std::collections::BTreeSet;
use std::path::Path;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((path.display().to_string(), text));
        }
    }
}

fn describe_call() -> regex::Regex {
    regex::Regex::new(r#"describe_(?:counter|gauge|histogram)!\(\s*"(modbridge_[a-z0-9_]+)""#)
        .unwrap()
}

/// Every `"modbridge_…"` string literal under src/ outside the `describe_*!`
/// calls: the families recorded (names are literals at every call site, by
/// convention).
fn families() -> BTreeSet<String> {
    let mut files = Vec::new();
    sources(&repo().join("src"), &mut files);
    let literal = regex::Regex::new(r#""(modbridge_[a-z0-9_]+)""#).unwrap();
    let describe = describe_call();
    files
        .iter()
        .flat_map(|(_, text)| {
            let recorded = describe.replace_all(text, "");
            literal
                .captures_iter(&recorded)
                .map(|c| c[1].to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn described() -> BTreeSet<String> {
    let mut files = Vec::new();
    sources(&repo().join("src"), &mut files);
    let describe = describe_call();
    files
        .iter()
        .flat_map(|(_, text)| describe.captures_iter(text).map(|c| c[1].to_owned()))
        .collect()
}

/// The families a PromQL text names (`_bucket`, `_sum`, `_count` of a
/// histogram count as the histogram).
fn named_in(text: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let name = regex::Regex::new(r"modbridge_[a-z0-9_]+").unwrap();
    name.find_iter(text)
        .map(|m| {
            let n = m.as_str();
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    n.strip_suffix(suffix)
                        .filter(|base| known.contains(*base))
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| n.to_owned())
        })
        .collect()
}

#[test]
fn every_family_has_help_text_and_a_readme_row() {
    let families = families();
    assert!(families.len() >= 15, "{families:?}");
    let described = described();
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let metrics_docs = readme
        .split("- `GET /metrics`")
        .nth(1)
        .expect("README's Operations section documents GET /metrics");
    for family in &families {
        assert!(
            described.contains(family),
            "{family} has no HELP text: add a describe_*! for it (src/telemetry.rs)"
        );
        assert!(
            metrics_docs.contains(&format!("`{family}`")),
            "{family} is not in README's metrics table"
        );
    }
    for family in &described {
        assert!(
            families.contains(family),
            "{family} is described but never recorded"
        );
    }
}

#[test]
fn the_dashboard_is_json_and_names_only_families_that_exist() {
    let text = std::fs::read_to_string(repo().join("ops/grafana-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let known = families();
    let mut exprs = String::new();
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push_str(target["expr"].as_str().unwrap_or_default());
            exprs.push('\n');
        }
    }
    let named = named_in(&exprs, &known);
    assert!(!named.is_empty());
    for family in named {
        assert!(
            known.contains(&family),
            "the dashboard names {family}, which no code records"
        );
    }
}

#[test]
fn the_alert_rules_name_only_families_that_exist() {
    let text = std::fs::read_to_string(repo().join("ops/prometheus-alerts.yml")).unwrap();
    let known = families();
    let named = named_in(&text, &known);
    for family in &named {
        assert!(
            known.contains(family),
            "ops/prometheus-alerts.yml names {family}, which no code records"
        );
    }
    for alert in [
        "ModbridgeRulesReloadFailing",
        "ModbridgeDestinationBroken",
        "ModbridgeParkedGrowing",
        "ModbridgeDeadLetters",
        "ModbridgeRedisDown",
        "ModbridgeServerErrors",
    ] {
        assert!(text.contains(&format!("alert: {alert}")), "no {alert} rule");
    }
}
