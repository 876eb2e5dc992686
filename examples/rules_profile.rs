//! A fixed amount of rules work for instruction-count profiling (valgrind's
//! callgrind counts instructions, which the load of other builds on a shared
//! machine does not change, unlike wall-clock time):
//!
//! - `english N` / `portuguese N`: the bench's ruleset (200 files, 10,000
//!   keywords, 1,000 `\b…\b` patterns) and its 5 KB matching post, evaluated
//!   N times;
//! - `adversarial PATTERNS N [BUDGET_MS]`: the bench's 200 KiB adversarial
//!   post against that many adversarial patterns, evaluated N times (a 60 s
//!   budget unless given, so the whole work is counted), printing the
//!   wall-clock time of each.
//!
//! The cost of N evaluations is the difference between a run with N and one
//! with 0 (loading and compiling are the same in both):
//!
//! ```text
//! cargo build --release --example rules_profile
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p \
//!     target/release/examples/rules_profile english 100
//! callgrind_annotate --inclusive=yes /tmp/cg.PID | head -60
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

#[path = "../benches/support/corpus.rs"]
mod corpus;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: usize| -> Result<usize, Box<dyn std::error::Error>> {
        Ok(match args.get(i) {
            Some(n) => n.parse()?,
            None => default,
        })
    };
    match args.first().map(String::as_str) {
        Some(lang @ ("english" | "portuguese")) => {
            let n = num(1, 100)?;
            let dir = tempfile::tempdir()?;
            let rules = corpus::ruleset(dir.path())?;
            let insert = corpus::matching_insert();
            let base = if lang == "english" {
                corpus::ENGLISH
            } else {
                corpus::PORTUGUESE
            };
            let p = corpus::post(corpus::post_text(base, 5_000, Some(&insert)))?;
            let start = Instant::now();
            for _ in 0..n {
                black_box(rules.evaluate(black_box(&p)));
            }
            if n > 0 {
                println!("{lang}: {:?} per evaluation", start.elapsed() / n as u32);
            }
        }
        Some("adversarial") => {
            let patterns = num(1, 1)?;
            let mut rules = corpus::adversarial_rules(patterns)?;
            let p = corpus::adversarial_post(patterns)?;
            if let Some(ms) = args.get(3) {
                rules = rules.with_max_eval(Duration::from_millis(ms.parse()?));
            }
            for _ in 0..num(2, 1)? {
                let start = Instant::now();
                let v = black_box(rules.evaluate(black_box(&p)));
                let highlights: usize = v
                    .routings
                    .iter()
                    .flat_map(|r| &r.reasons)
                    .map(|r| r.matched.len())
                    .sum();
                println!(
                    "adversarial: {:?} ({highlights} highlights; not fully checked: {})",
                    start.elapsed(),
                    v.not_fully_checked
                );
            }
        }
        _ => {
            return Err(
                "usage: rules_profile english|portuguese N | adversarial PATTERNS N [BUDGET_MS]"
                    .into(),
            );
        }
    }
    Ok(())
}
