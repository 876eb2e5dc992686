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
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use modbridge::destination::{Destination, Destinations, RawDestination};
use modbridge::post::{CustomerId, GroupId, Post, PostId, UserId};
use modbridge::rules::RuleSet;

const SYLLABLES: [&str; 20] = [
    "ka", "lo", "mi", "ren", "du", "sa", "vi", "tor", "pel", "qui", "zan", "bo", "fe", "gu", "ni",
    "ra", "te", "xo", "lu", "mar",
];

fn word(n: usize) -> String {
    (0..4)
        .map(|i| SYLLABLES[(n / 20usize.pow(i)) % 20])
        .collect()
}

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

fn post(content: String) -> Result<Post, Box<dyn std::error::Error>> {
    Ok(Post {
        group_id: Some(GroupId::parse("01HQ2GROUP1234567890XYZAB")?),
        ..Post::text(
            CustomerId::parse("01HQ0CUSTOMER")?,
            PostId::parse("01HQ1POST")?,
            UserId::parse("01HQ3USER")?,
            content,
            Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0)
                .single()
                .ok_or("bad time")?,
        )
    })
}

fn destinations() -> Result<Destinations, Box<dyn std::error::Error>> {
    let raw = RawDestination {
        slack: Some("C0123ABCD".into()),
        ..Default::default()
    };
    Ok(Destinations::new([Destination::from_raw(
        "trust-safety",
        raw,
    )?]))
}

fn bench_ruleset(dir: &Path) -> Result<RuleSet, Box<dyn std::error::Error>> {
    for f in 0..200 {
        let keywords: Vec<String> = (0..50)
            .map(|k| format!("{:?}", keyword(f * 50 + k)))
            .collect();
        let patterns: Vec<String> = (0..5)
            .map(|p| format!("'{}'", pattern(100_000 + f * 5 + p)))
            .collect();
        std::fs::write(
            dir.join(format!("generated-{f:03}.toml")),
            format!(
                "name = \"Generated {f}\"\ngroups = [\"*\"]\nto = [\"trust-safety\"]\n\n[[match]]\nname = \"words\"\nkeywords = [{}]\nunless = [\"{}\"]\n\n[[match]]\nname = \"shapes\"\npatterns = [{}]\n",
                keywords.join(", "),
                word(150_000 + f),
                patterns.join(", ")
            ),
        )?;
    }
    Ok(RuleSet::load_dir(dir, &destinations()?)
        .map_err(|e| e.to_string())?
        .rules)
}

fn adversarial(n: usize) -> Result<(RuleSet, Post), Box<dyn std::error::Error>> {
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
    let rules = RuleSet::from_sources(
        Path::new("rules"),
        [("a.toml", text.as_bytes())],
        &destinations()?,
    )
    .map_err(|e| e.to_string())?
    .rules
    .with_max_eval(Duration::from_secs(60));
    let words: Vec<String> = (0..n.max(1))
        .map(|i| if i == 0 { "buy".to_owned() } else { word(i) })
        .collect();
    let base = format!("{} ", words.join(" buy "));
    Ok((rules, post(post_text(&base, 200 * 1024, None) + " now")?))
}

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
            let rules = bench_ruleset(dir.path())?;
            let evasive = word(100_000 + 7 * 5 + 2)
                .replace('a', "4")
                .replace('o', "0")
                .to_uppercase();
            let insert = format!(" {} and {} ", keyword(1_235).to_uppercase(), evasive);
            let base = if lang == "english" {
                ENGLISH
            } else {
                PORTUGUESE
            };
            let p = post(post_text(base, 5_000, Some(&insert)))?;
            let start = Instant::now();
            for _ in 0..n {
                black_box(rules.evaluate(black_box(&p)));
            }
            if n > 0 {
                println!("{lang}: {:?} per evaluation", start.elapsed() / n as u32);
            }
        }
        Some("adversarial") => {
            let (mut rules, p) = adversarial(num(1, 1)?)?;
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
