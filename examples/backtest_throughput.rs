//! Throughput of `modbridge backtest`'s work (parse each raw body, evaluate it
//! on every core): 20,000 posts of ~5 KB against 20 files × 50 keywords + 1
//! pattern, the example-sized ruleset of issue 12. Prints posts per second.
//! With a number, that many keywords in all (spread over the 20 files): the
//! 10k-keyword figure is `-- 10000`.
//!
//! Run: `cargo run --release --example backtest_throughput [-- KEYWORDS]`

use std::time::Instant;

use modbridge::commands::backtest::backtest;
use modbridge::destination::{Destination, Destinations, RawDestination};
use modbridge::rules::RuleSet;

const POSTS: usize = 20_000;
const FILES: usize = 20;
/// Keywords in all, unless given on the command line.
const KEYWORDS: usize = FILES * 50;

const SYLLABLES: [&str; 20] = [
    "ka", "lo", "mi", "ren", "du", "sa", "vi", "tor", "pel", "qui", "zan", "bo", "fe", "gu", "ni",
    "ra", "te", "xo", "lu", "mar",
];

fn word(n: usize) -> String {
    (0..4)
        .map(|i| SYLLABLES[(n / 20usize.pow(i)) % 20])
        .collect()
}

const TEXT: &str = "I have been reading this group for a few weeks and wanted to say thank you. \
The advice about bedtime routines really helped, and our son finally sleeps through the night. \
We still struggle with mornings, though: getting everyone dressed and out of the door by eight feels impossible. ";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let total: usize = match std::env::args().nth(1) {
        Some(n) => n.parse().map_err(|e| format!("KEYWORDS {n:?}: {e}"))?,
        None => KEYWORDS,
    };
    let per_file = total.div_ceil(FILES).max(1);
    let dir = tempfile::tempdir()?;
    for f in 0..FILES {
        let keywords: Vec<String> = (0..per_file)
            .map(|k| format!("{:?}", word(f * per_file + k)))
            .collect();
        std::fs::write(
            dir.path().join(format!("generated-{f:02}.toml")),
            format!(
                "groups = [\"*\"]\nto = [\"trust-safety\"]\n[[match]]\nname = \"words\"\nkeywords = [{}]\n[[match]]\nname = \"shape\"\npatterns = ['\\bfr[e3][e3]\\s+m[o0]n[e3]y{f}\\b']\n",
                keywords.join(", ")
            ),
        )?;
    }
    let raw = RawDestination {
        slack: Some("C0123ABCD".into()),
        ..Default::default()
    };
    let destinations = Destinations::new([Destination::from_raw("trust-safety", raw)?]);
    let rules = RuleSet::load_dir(dir.path(), &destinations)
        .map_err(|e| e.to_string())?
        .rules;

    let mut body = String::new();
    while body.len() < 5_000 {
        body.push_str(TEXT);
    }
    let mut corpus = String::new();
    for i in 0..POSTS {
        // One post in ten matches a keyword.
        let content = if i % 10 == 0 {
            format!("{body} {}", word(i % (FILES * per_file)))
        } else {
            body.clone()
        };
        let line = serde_json::json!({
            "CustomerId": "01HQ0ABCDEF1234567890XYZ",
            "PostId": format!("POST{i}"),
            "User": {"Id": "01HQ7Z3X4Y5Z6A7B8C9D0E1F2G", "Email": "mary@example.com"},
            "Content": content,
            "CreatedAt": "2026-05-08T14:32:01Z",
        });
        corpus.push_str(&line.to_string());
        corpus.push('\n');
    }

    let start = Instant::now();
    let report = backtest(&corpus, &rules, None);
    let took = start.elapsed();
    println!(
        "{} keywords: {} posts ({} MB) in {:.3} s: {:.0} posts/s; {} would get a card",
        FILES * per_file,
        report.posts(),
        corpus.len() / 1_000_000,
        took.as_secs_f64(),
        report.posts() as f64 / took.as_secs_f64(),
        report.posts_with_a_card()
    );
    Ok(())
}
