//! The evasion corpus: every way of hiding a word from the rules that issue 12
//! lists (and a few more) must still match, highlighted in the original text;
//! look-alike folding must never make ordinary text in other scripts, or
//! near-miss English words, match. Plus a randomised check that every
//! normalised range maps back to a valid range of the original.

use std::path::Path;

use chrono::{TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::normalize::{Fold, normalize};
use super::{RuleSet, Verdict};
use crate::destination::Destinations;
use crate::post::{CustomerId, Post, PostId, UserId};

fn rules(body: &str) -> RuleSet {
    let destinations = Destinations::default();
    let text = format!("groups = [\"*\"]\nto = [\"slack:C0123ABCD\"]\n{body}");
    match RuleSet::from_sources(
        Path::new("rules"),
        [("t.toml", text.as_bytes())],
        &destinations,
    ) {
        Ok(l) => l.rules,
        Err(e) => panic!("{e}"),
    }
}

fn post(content: &str) -> Post {
    Post::text(
        CustomerId::parse("C1").unwrap(),
        PostId::parse("P1").unwrap(),
        UserId::parse("U1").unwrap(),
        content,
        Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap(),
    )
}

/// Every highlight of every reason, checked to be a valid range of `content`.
fn highlights(v: &Verdict, content: &str) -> Vec<String> {
    let mut out = Vec::new();
    for d in &v.routings {
        for r in &d.reasons {
            for h in &r.matched {
                assert_eq!(content.get(h.range.clone()), Some(h.text.as_str()));
                out.push(h.text.clone());
            }
        }
    }
    out
}

const SELF_HARM: &str = "[[match]]\nname = \"m\"\nkeywords = [\"kill myself\", \"suicide\", \"kill\", \"uber\"]\npatterns = ['\\bsu[i1!]c[i1!]d[e3]\\b', '\\bk[i1]ll\\b']\n";

/// (post, the highlight expected: the whole evasive spelling).
const HITS: &[(&str, &str)] = &[
    // Default_Ignorable_Code_Point and bidi controls.
    ("I will ki\u{200E}ll myself", "ki\u{200E}ll myself"),
    ("sui\u{2063}cide", "sui\u{2063}cide"),
    ("suicide\u{034F}", "suicide"),
    ("s\u{FE0F}uicide", "s\u{FE0F}uicide"),
    ("k\u{E0101}ill", "k\u{E0101}ill"),
    ("sui\u{180E}cide", "sui\u{180E}cide"),
    ("su\u{E0041}\u{E007F}icide", "su\u{E0041}\u{E007F}icide"),
    ("su\u{202E}icide", "su\u{202E}icide"),
    ("\u{2066}kill\u{2069} it", "kill"),
    ("ki\u{061C}ll", "ki\u{061C}ll"),
    (
        "k\u{200B}i\u{200C}l\u{200D}l\u{2060}",
        "k\u{200B}i\u{200C}l\u{200D}l",
    ),
    ("s\u{AD}u\u{FEFF}icide", "s\u{AD}u\u{FEFF}icide"),
    // Look-alike letters from other scripts inside Latin words.
    ("I will k\u{456}ll", "k\u{456}ll"),
    ("\u{455}uicide", "\u{455}uicide"),
    ("K\u{406}LL", "K\u{406}LL"),
    ("s\u{3BF}\u{3BF}n: suicid\u{435}", "suicid\u{435}"),
    // Accents and combining marks on ASCII words.
    ("k\u{ED}ll", "k\u{ED}ll"),
    ("ki\u{301}ll", "ki\u{301}ll"),
    (
        "k\u{336}i\u{336}l\u{336}l\u{336}",
        "k\u{336}i\u{336}l\u{336}l\u{336}",
    ),
    ("s\u{FC}\u{EF}c\u{EE}d\u{E9}", "s\u{FC}\u{EF}c\u{EE}d\u{E9}"),
    ("\u{DC}BER", "\u{DC}BER"),
    // Blank letters used as spaces.
    ("kill\u{3164}myself", "kill\u{3164}myself"),
    ("kill\u{FFA0}myself", "kill\u{FFA0}myself"),
    ("kill\u{115F}myself", "kill\u{115F}myself"),
    ("kill\u{1160}myself", "kill\u{1160}myself"),
    ("kill\u{2800}myself", "kill\u{2800}myself"),
    // Full-width and styled letters (NFKC).
    (
        "\u{FF4B}\u{FF49}\u{FF4C}\u{FF4C}",
        "\u{FF4B}\u{FF49}\u{FF4C}\u{FF4C}",
    ),
    ("\u{1D42C}uicide", "\u{1D42C}uicide"),
];

#[test]
fn every_evasion_class_still_matches_and_highlights_the_original() {
    let r = rules(SELF_HARM);
    let mut missed = Vec::new();
    for (content, expected) in HITS {
        let v = r.evaluate(&post(content));
        let found = highlights(&v, content);
        if !found.iter().any(|h| h == expected) {
            missed.push(format!(
                "{content:?}: expected {expected:?} among {found:?}"
            ));
        }
    }
    assert!(missed.is_empty(), "{}", missed.join("\n"));
}

#[test]
fn padding_before_the_text_does_not_hide_it() {
    let r = rules(SELF_HARM);
    let content = format!("{}suicide", "\u{200B}".repeat(70_000));
    let v = r.evaluate(&post(&content));
    assert_eq!(highlights(&v, &content), ["suicide"]);
}

#[test]
fn folding_makes_no_false_matches() {
    let r = rules(
        "[[match]]\nname = \"m\"\nkeywords = [\"dick\", \"bum\", \"lol\", \"cop\", \"kill\", \"die\", \"ass\", \"sex\", \"hot\", \"top\", \"pop\", \"no\", \"ok\", \"one\", \"ape\", \"xo\", \"ho\", \"op\", \"ex\", \"ok\", \"po\"]\npatterns = ['\\bsu[i1!]c[i1!]d[e3]\\b']\n",
    );
    let quiet = [
        "click here",
        "I burn the toast",
        "room 101",
        "Весь этот сор надо убрать",
        "Привет, как дела? Сегодня хорошая погода, и мы пойдём гулять в парк.",
        "Καλημέρα σας, τι κάνετε; Ο καιρός είναι πολύ ωραίος σήμερα.",
        "مرحبا، كيف حالك؟ الطقس جميل اليوم.",
        "नमस्ते, आप कैसे हैं? आज मौसम बहुत अच्छा है।",
        "こんにちは、お元気ですか？今日はいい天気ですね。",
        "Ура! Ехо, хор, рок, сор, сок, тор, поп, ор, ох",
    ];
    for content in quiet {
        let v = r.evaluate(&post(content));
        assert!(
            v.is_empty(),
            "{content:?} matched {:?}",
            highlights(&v, content)
        );
    }
}

#[test]
fn non_ascii_keywords_stay_exact() {
    let r = rules("[[match]]\nname = \"m\"\nkeywords = [\"über\"]\n");
    assert!(!r.evaluate(&post("ÜBER alles")).is_empty());
    assert!(r.evaluate(&post("uber alles")).is_empty());
}

#[test]
fn normalised_ranges_map_back_to_valid_ranges_of_the_original() {
    const ALPHABET: &[char] = &[
        'a',
        'k',
        'I',
        'l',
        ' ',
        '\n',
        '\t',
        '\u{301}',
        '\u{336}',
        '\u{34F}',
        '\u{200B}',
        '\u{200E}',
        '\u{202E}',
        '\u{2063}',
        '\u{FE0F}',
        '\u{E0041}',
        '\u{180E}',
        '\u{3164}',
        '\u{FFA0}',
        '\u{115F}',
        '\u{1160}',
        '\u{2800}',
        '\u{456}',
        '\u{455}',
        '\u{3BF}',
        'é',
        'İ',
        'ﬁ',
        'Ｋ',
        '😢',
        '\u{200D}',
        '\u{1100}',
        '\u{1161}',
        '\u{11A8}',
        'ß',
        '\u{AD}',
        'ü',
        'с',
        'я',
        '\u{93E}',
        'क',
        '①',
    ];
    let mut rng = StdRng::seed_from_u64(12);
    for _ in 0..2_000 {
        let len = rng.random_range(0..24);
        let original: String = (0..len)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
            .collect();
        for fold in [Fold::Exact, Fold::Case, Fold::Marks] {
            let n = normalize(&original, fold);
            let bounds: Vec<usize> = n
                .text
                .char_indices()
                .map(|(i, _)| i)
                .chain([n.text.len()])
                .collect();
            let mut last_start = 0;
            for (i, &a) in bounds.iter().enumerate() {
                for &b in &bounds[i..] {
                    let r = n.original_range(a..b);
                    assert!(
                        r.start <= r.end
                            && r.end <= original.len()
                            && original.is_char_boundary(r.start)
                            && original.is_char_boundary(r.end),
                        "{original:?} {fold:?}: {a}..{b} of {:?} maps to {r:?}",
                        n.text
                    );
                    if a < b {
                        assert!(r.start < r.end, "{original:?} {fold:?}: {a}..{b} is empty");
                    }
                }
                let start = n.original_range(a..a).start;
                assert!(start >= last_start, "{original:?} {fold:?}: not monotonic");
                last_start = start;
            }
        }
    }
}

#[test]
fn rules_highlights_are_valid_on_random_evasive_posts() {
    let r = rules(SELF_HARM);
    const PIECES: &[&str] = &[
        "kill",
        "k\u{456}ll",
        "ki\u{301}ll",
        "su\u{200B}icide",
        " ",
        "\u{3164}",
        "myself",
        "é",
        "\u{202E}",
        "😢",
        "ＫＩＬＬ",
        "\u{336}",
        "x",
    ];
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..1_000 {
        let len = rng.random_range(1..10);
        let content: String = (0..len)
            .map(|_| PIECES[rng.random_range(0..PIECES.len())])
            .collect();
        highlights(&r.evaluate(&post(&content)), &content);
    }
}
