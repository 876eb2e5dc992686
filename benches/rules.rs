//! Rules engine figures: evaluation of 5 KB posts (English, and Portuguese with
//! accents and emoji; matching and not) against 200 files holding 10,000
//! keywords and 1,000 `\b…\b` patterns; scaling with post length; load and
//! compile time; memory of the compiled set (printed once); and 200 KiB posts
//! against one and 1,000 adversarial patterns (`.*` between words, nested
//! alternation), the 1,000 also under the default time budget.
//!
//! Run: `cargo bench --bench rules -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::path::Path;

use chrono::{TimeZone, Utc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use modbridge::destination::{Destination, Destinations, RawDestination};
use modbridge::post::{CustomerId, GroupId, Post, PostId, UserId};
use modbridge::rules::RuleSet;

const FILES: usize = 200;
const KEYWORDS_PER_FILE: usize = 50;
const PATTERNS_PER_FILE: usize = 5;

const SYLLABLES: [&str; 20] = [
    "ka", "lo", "mi", "ren", "du", "sa", "vi", "tor", "pel", "qui", "zan", "bo", "fe", "gu", "ni",
    "ra", "te", "xo", "lu", "mar",
];

/// A made-up word, distinct for each `n` below 160,000.
fn word(n: usize) -> String {
    (0..4)
        .map(|i| SYLLABLES[(n / 20usize.pow(i)) % 20])
        .collect()
}

/// `\bs[a4@]…\b`: the shape of `\bsu[i1!]c[i1!]d[e3]\b`.
fn pattern(n: usize) -> String {
    let body: String = word(n)
        .chars()
        .map(|c| match c {
            'a' => "[a4@]".to_owned(),
            'e' => "[e3]".to_owned(),
            'i' => "[i1!]".to_owned(),
            'o' => "[o0]".to_owned(),
            c => c.to_string(),
        })
        .collect();
    format!(r"\b{body}\b")
}

fn keyword(n: usize) -> String {
    if n.is_multiple_of(5) {
        format!("{} {}", word(n), word(n + 50_000))
    } else {
        word(n)
    }
}

fn write_ruleset(dir: &Path) {
    for f in 0..FILES {
        let keywords: Vec<String> = (0..KEYWORDS_PER_FILE)
            .map(|k| format!("{:?}", keyword(f * KEYWORDS_PER_FILE + k)))
            .collect();
        let patterns: Vec<String> = (0..PATTERNS_PER_FILE)
            .map(|p| format!("'{}'", pattern(100_000 + f * PATTERNS_PER_FILE + p)))
            .collect();
        let text = format!(
            "name = \"Generated {f}\"\ngroups = [\"*\"]\nto = [\"trust-safety\"]\n\n[[match]]\nname = \"words\"\nkeywords = [{}]\nunless = [\"{}\"]\n\n[[match]]\nname = \"shapes\"\npatterns = [{}]\n",
            keywords.join(", "),
            word(150_000 + f),
            patterns.join(", ")
        );
        if let Err(e) = std::fs::write(dir.join(format!("generated-{f:03}.toml")), text) {
            panic!("cannot write the generated ruleset: {e}");
        }
    }
}

fn destinations() -> Destinations {
    let raw = RawDestination {
        slack: Some("C0123ABCD".into()),
        ..Default::default()
    };
    Destinations::new([Destination::from_raw("trust-safety", raw).unwrap()])
}

const ENGLISH: &str = "I have been reading this group for a few weeks and wanted to say thank you. \
The advice about bedtime routines really helped, and our son finally sleeps through the night. \
We still struggle with mornings, though: getting everyone dressed and out of the door by eight feels impossible. \
Does anyone have tips for packing lunches the night before without everything going soggy? \
Also, the school asked parents to volunteer for the spring fair, and I am not sure I can manage it this year. ";

const PORTUGUESE: &str = "Olá a todos! Faz algumas semanas que acompanho este grupo e queria agradecer 🙏. \
As dicas sobre a rotina da noite ajudaram muito, e o nosso filho finalmente dorme a noite inteira 😴. \
Ainda é difícil de manhã: vestir todo mundo e sair de casa às oito parece impossível… \
Alguém tem sugestões para preparar a lanchonete na véspera sem que tudo fique úmido? \
A escola pediu voluntários para a festa junina, e não sei se consigo este ano 😅❤️. Obrigada, gente! ";

/// `base` repeated to `len` bytes (cut on a character boundary), with `insert`
/// placed in the middle when given.
fn post_text(base: &str, len: usize, insert: Option<&str>) -> String {
    let mut text = String::with_capacity(len + 64);
    while text.len() < len {
        text.push_str(base);
    }
    let mut cut = len;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    if let Some(insert) = insert {
        let mut mid = text.len() / 2;
        while !text.is_char_boundary(mid) {
            mid -= 1;
        }
        text.insert_str(mid, insert);
    }
    text
}

/// A keyword phrase, and a pattern's word written with leet and full-width
/// evasions.
fn matching_insert() -> String {
    let evasive = word(100_000 + 7 * PATTERNS_PER_FILE + 2)
        .replace('a', "4")
        .replace('o', "0")
        .to_uppercase();
    format!(" {} and {} ", keyword(1_235).to_uppercase(), evasive)
}

fn post(content: String) -> Post {
    Post {
        group_id: Some(GroupId::parse("01HQ2GROUP1234567890XYZAB").unwrap()),
        ..Post::text(
            CustomerId::parse("01HQ0CUSTOMER").unwrap(),
            PostId::parse("01HQ1POST").unwrap(),
            UserId::parse("01HQ3USER").unwrap(),
            content,
            Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap(),
        )
    }
}

fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn load(dir: &Path) -> RuleSet {
    match RuleSet::load_dir(dir, &destinations()) {
        Ok(l) => l.rules,
        Err(e) => panic!("generated ruleset does not load:\n{e}"),
    }
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    write_ruleset(dir.path());

    let before = rss_bytes();
    let rules = load(dir.path());
    let after_load = rss_bytes();
    let (keywords, patterns) = rules.counts();
    let insert = matching_insert();
    let en_match = post(post_text(ENGLISH, 5_000, Some(&insert)));
    let pt_match = post(post_text(PORTUGUESE, 5_000, Some(&insert)));
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
    for (name, base) in [("english", ENGLISH), ("portuguese", PORTUGUESE)] {
        for matching in [false, true] {
            let p = post(post_text(base, 5_000, matching.then_some(insert.as_str())));
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
        let p = post(post_text(PORTUGUESE, len, Some(&insert)));
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::from_parameter(len), &p, |b, p| {
            b.iter(|| rules.evaluate(black_box(p)))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("load_compile");
    g.sample_size(10);
    g.bench_function("200_files_10k_keywords_1k_patterns", |b| {
        b.iter(|| load(black_box(dir.path())))
    });
    g.finish();
}

/// A ruleset of `n` adversarial patterns (`.*` between words, nested
/// alternation), as one file.
fn adversarial_rules(n: usize) -> RuleSet {
    let patterns: Vec<String> = (0..n)
        .map(|i| {
            if i == 0 {
                r"'\bbuy\b.*\bnow\b'".to_owned()
            } else {
                format!(r"'\b{}\b.*\b((now|today)+|(here|there)+)\b'", word(i))
            }
        })
        .collect();
    let text = format!(
        "groups = [\"*\"]\nto = [\"trust-safety\"]\n[[match]]\nname = \"adversarial\"\npatterns = [{}]\n",
        patterns.join(", ")
    );
    match RuleSet::from_sources(
        Path::new("rules"),
        [("a.toml", text.as_bytes())],
        &destinations(),
    ) {
        Ok(l) => l.rules.with_max_eval(std::time::Duration::from_secs(60)),
        Err(e) => panic!("adversarial ruleset does not load:\n{e}"),
    }
}

/// 200 KiB where every pattern has many starts and no end in reach.
fn adversarial_post(n: usize) -> Post {
    let words: Vec<String> = (0..n.max(1))
        .map(|i| if i == 0 { "buy".to_owned() } else { word(i) })
        .collect();
    let base = format!("{} ", words.join(" buy "));
    post(post_text(&base, 200 * 1024, None) + " now")
}

fn adversarial(c: &mut Criterion) {
    let mut g = c.benchmark_group("adversarial_200KB");
    g.sample_size(10);
    for n in [1, 1_000] {
        let rules = adversarial_rules(n);
        let p = adversarial_post(n);
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
    adversarial_rules(n).with_max_eval(std::time::Duration::from_millis(
        modbridge::rules::DEFAULT_MAX_EVAL_MS,
    ))
}

criterion_group!(rules, benches, adversarial);
criterion_main!(rules);
