//! The generated rules and posts that `benches/rules.rs` (criterion, wall
//! clock) and `examples/rules_profile.rs` (callgrind, instruction counts)
//! both measure: one definition, so the two figures describe the same work.
//! Included by path (`#[path = …] mod corpus;`); each user takes what it needs.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use modbridge::destination::{Destination, Destinations, RawDestination};
use modbridge::post::{CustomerId, GroupId, Post, PostId, UserId};
use modbridge::rules::RuleSet;

pub type Error = Box<dyn std::error::Error>;

/// The bench's ruleset: 200 files × (50 keywords + 5 patterns).
pub const FILES: usize = 200;
pub const KEYWORDS_PER_FILE: usize = 50;
pub const PATTERNS_PER_FILE: usize = 5;

const SYLLABLES: [&str; 20] = [
    "ka", "lo", "mi", "ren", "du", "sa", "vi", "tor", "pel", "qui", "zan", "bo", "fe", "gu", "ni",
    "ra", "te", "xo", "lu", "mar",
];

/// A made-up word, distinct for each `n` below 160,000.
pub fn word(n: usize) -> String {
    (0..4)
        .map(|i| SYLLABLES[(n / 20usize.pow(i)) % 20])
        .collect()
}

/// `\bs[a4@]…\b`: the shape of `\bsu[i1!]c[i1!]d[e3]\b`.
pub fn pattern(n: usize) -> String {
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

/// Every fifth keyword is a two-word phrase.
pub fn keyword(n: usize) -> String {
    if n.is_multiple_of(5) {
        format!("{} {}", word(n), word(n + 50_000))
    } else {
        word(n)
    }
}

/// Writes the bench's ruleset (`FILES` files) into `dir` and loads it.
pub fn ruleset(dir: &Path) -> Result<RuleSet, Error> {
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
        std::fs::write(dir.join(format!("generated-{f:03}.toml")), text)?;
    }
    load(dir)
}

/// Loads a rules directory written by [`ruleset`].
pub fn load(dir: &Path) -> Result<RuleSet, Error> {
    Ok(RuleSet::load_dir(dir, &destinations()?)
        .map_err(|e| e.to_string())?
        .rules)
}

pub fn destinations() -> Result<Destinations, Error> {
    let raw = RawDestination {
        slack: Some("C0123ABCD".into()),
        ..Default::default()
    };
    Ok(Destinations::new([Destination::from_raw(
        "trust-safety",
        raw,
    )?]))
}

pub const ENGLISH: &str = "I have been reading this group for a few weeks and wanted to say thank you. \
The advice about bedtime routines really helped, and our son finally sleeps through the night. \
We still struggle with mornings, though: getting everyone dressed and out of the door by eight feels impossible. \
Does anyone have tips for packing lunches the night before without everything going soggy? \
Also, the school asked parents to volunteer for the spring fair, and I am not sure I can manage it this year. ";

pub const PORTUGUESE: &str = "Olá a todos! Faz algumas semanas que acompanho este grupo e queria agradecer 🙏. \
As dicas sobre a rotina da noite ajudaram muito, e o nosso filho finalmente dorme a noite inteira 😴. \
Ainda é difícil de manhã: vestir todo mundo e sair de casa às oito parece impossível… \
Alguém tem sugestões para preparar a lanchonete na véspera sem que tudo fique úmido? \
A escola pediu voluntários para a festa junina, e não sei se consigo este ano 😅❤️. Obrigada, gente! ";

/// `base` repeated to `len` bytes (cut on a character boundary), with `insert`
/// placed in the middle when given.
pub fn post_text(base: &str, len: usize, insert: Option<&str>) -> String {
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
/// evasions: what makes the 5 KB post match.
pub fn matching_insert() -> String {
    let evasive = word(100_000 + 7 * PATTERNS_PER_FILE + 2)
        .replace('a', "4")
        .replace('o', "0")
        .to_uppercase();
    format!(" {} and {} ", keyword(1_235).to_uppercase(), evasive)
}

pub fn post(content: String) -> Result<Post, Error> {
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

/// A ruleset of `n` adversarial patterns (`.*` between words, nested
/// alternation), as one file, with a 60 s budget so the whole work is done.
pub fn adversarial_rules(n: usize) -> Result<RuleSet, Error> {
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
    Ok(RuleSet::from_sources(
        Path::new("rules"),
        [("a.toml", text.as_bytes())],
        &destinations()?,
    )
    .map_err(|e| e.to_string())?
    .rules
    .with_max_eval(Duration::from_secs(60)))
}

/// 200 KiB where every adversarial pattern has many starts and no end in reach.
pub fn adversarial_post(n: usize) -> Result<Post, Error> {
    let words: Vec<String> = (0..n.max(1))
        .map(|i| if i == 0 { "buy".to_owned() } else { word(i) })
        .collect();
    let base = format!("{} ", words.join(" buy "));
    post(post_text(&base, 200 * 1024, None) + " now")
}
