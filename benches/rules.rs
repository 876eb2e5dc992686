//! Rules engine figures: evaluation of 5 KB posts (English, and Portuguese with
//! accents and emoji; matching and not) against 200 files holding 10,000
//! keywords and 1,000 `\b…\b` patterns; scaling with post length; load and
//! compile time; memory of the compiled set (printed once); and 200 KiB posts
//! against one and 1,000 adversarial patterns (`.*` between words, nested
//! alternation), the 1,000 also under the default time budget.
//!
//! Run: `cargo bench --bench rules -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use modbridge::rules::RuleSet;

#[path = "support/corpus.rs"]
mod corpus;

fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let before = rss_bytes();
    let rules = corpus::ruleset(dir.path()).unwrap();
    let after_load = rss_bytes();
    let (keywords, patterns) = rules.counts();
    let insert = corpus::matching_insert();
    let en_match = corpus::post(corpus::post_text(corpus::ENGLISH, 5_000, Some(&insert))).unwrap();
    let pt_match =
        corpus::post(corpus::post_text(corpus::PORTUGUESE, 5_000, Some(&insert))).unwrap();
    assert_eq!(
        rules.evaluate(&en_match).routings.len(),
        1,
        "the matching post must match"
    );
    let reasons = &rules.evaluate(&pt_match).routings[0].reasons;
    assert_eq!(
        reasons.len(),
        2,
        "keyword and pattern must both fire: {reasons:?}"
    );
    let after_eval = rss_bytes();
    let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
    println!(
        "ruleset: {} files, {keywords} distinct keywords and unless phrases, {patterns} patterns; automata {:.1} MiB (memory_usage)",
        rules.files(),
        mib(rules.memory_usage())
    );
    if let (Some(b), Some(l), Some(e)) = (before, after_load, after_eval) {
        println!(
            "RSS: +{:.1} MiB after load, +{:.1} MiB after the first evaluations (search caches)",
            mib(l.saturating_sub(b)),
            mib(e.saturating_sub(b))
        );
    }

    let mut g = c.benchmark_group("evaluate_5KB");
    for (name, base) in [
        ("english", corpus::ENGLISH),
        ("portuguese", corpus::PORTUGUESE),
    ] {
        for matching in [false, true] {
            let p = corpus::post(corpus::post_text(
                base,
                5_000,
                matching.then_some(insert.as_str()),
            ))
            .unwrap();
            assert_eq!(rules.evaluate(&p).is_empty(), !matching);
            let id = format!("{name}/{}", if matching { "match" } else { "no_match" });
            g.throughput(Throughput::Bytes(
                p.content.as_ref().map_or(0, |c| c.len()) as u64
            ));
            g.bench_function(id, |b| b.iter(|| rules.evaluate(black_box(&p))));
        }
    }
    g.finish();

    let mut g = c.benchmark_group("evaluate_scaling_portuguese");
    for len in [1_000, 10_000, 100_000] {
        let p = corpus::post(corpus::post_text(corpus::PORTUGUESE, len, Some(&insert))).unwrap();
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::from_parameter(len), &p, |b, p| {
            b.iter(|| rules.evaluate(black_box(p)))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("load_compile");
    g.sample_size(10);
    g.bench_function("200_files_10k_keywords_1k_patterns", |b| {
        b.iter(|| corpus::load(black_box(dir.path())).unwrap())
    });
    g.finish();
}

fn adversarial(c: &mut Criterion) {
    let mut g = c.benchmark_group("adversarial_200KB");
    g.sample_size(10);
    for n in [1, 1_000] {
        let rules = corpus::adversarial_rules(n).unwrap();
        let p = corpus::adversarial_post(n).unwrap();
        let v = rules.evaluate(&p);
        assert!(!v.not_fully_checked);
        let default_budget = rules_with_default_budget(n).evaluate(&p);
        println!(
            "adversarial, {n} pattern(s): within the default 50 ms budget: {}",
            if default_budget.not_fully_checked {
                "no (not fully checked)"
            } else {
                "yes"
            }
        );
        g.bench_function(format!("{n}_patterns"), |b| {
            b.iter(|| rules.evaluate(black_box(&p)))
        });
        if n > 1 {
            // What a post costs in service: stopped by the default budget.
            let rules = rules_with_default_budget(n);
            g.bench_function(format!("{n}_patterns_default_budget"), |b| {
                b.iter(|| rules.evaluate(black_box(&p)))
            });
        }
    }
    g.finish();
}

fn rules_with_default_budget(n: usize) -> RuleSet {
    corpus::adversarial_rules(n)
        .unwrap()
        .with_max_eval(std::time::Duration::from_millis(
            modbridge::rules::DEFAULT_MAX_EVAL_MS,
        ))
}

criterion_group!(rules, benches, adversarial);
criterion_main!(rules);
