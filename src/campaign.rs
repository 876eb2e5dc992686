//! Near-duplicate detection for campaign cards (issue #14): many authors
//! posting the same text, or near copies of it (another emoji, link or
//! @name swapped in, a word changed), to the same destination.
//!
//! A post's text becomes a 64-bit [`Fingerprint`] (Charikar's SimHash): the
//! text is normalised as ASCII keywords see it (`rules::folded`: NFKC, case
//! folded, invisible characters removed, accents stripped, look-alikes
//! folded), links and @mentions are dropped, the rest is split into words
//! (runs of letters and digits), and every word and every run of three
//! words (a shingle) votes on each of the 64 bits with a stable hash of it.
//! Texts that share most of their words and shingles get fingerprints that
//! differ in few bits; unrelated texts differ in about half of them.
//!
//! `campaign_similarity` is the cosine similarity of two texts' words and
//! shingles (counted with repeats) above which they count as one campaign,
//! from 0 to 1; SimHash fingerprints of texts of similarity `s` differ in
//! `64 · arccos(s) / π` bits on average, and [`similarity_to_distance`] turns
//! a similarity into that many bits, the most two fingerprints of one
//! campaign may differ in. The store keeps the index (`DedupeStore::
//! campaign_join`); this module is pure.
//!
//! The hash is FNV-1a (64 bits) followed by MurmurHash3's 64-bit finaliser:
//! fixed, so the same text has the same fingerprint in every process,
//! replica and version. Changing it (or the normalisation, or the features)
//! splits campaigns that span a rollout: don't, without a migration.

use std::time::Duration;

/// Words a post needs to count towards a campaign (`campaign_min_words`):
/// below it, texts such as "thank you so much" are the same by chance.
pub const DEFAULT_MIN_WORDS: usize = 5;
/// Distinct authors that make a campaign (`campaign_min_authors`).
pub const DEFAULT_MIN_AUTHORS: u32 = 3;
/// How long after a campaign's last post a similar one still joins it
/// (`campaign_window_secs`).
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(600);
/// `campaign_similarity`: 0.8 allows 13 bits. Links, @mentions, emoji,
/// case, accents and look-alikes change nothing (the same fingerprint); one
/// word changed in 20 moves a fingerprint about 9 bits on average (SimHash
/// is noisy: about 9 in 10 such edits stay within 13); of the 20,000 pairs
/// of 200 unrelated posts of one town's feed (`tests/data/
/// unrelated_posts.txt`, many on the same topics) the closest is 14 bits
/// apart. Higher values miss more edited copies (0.9: 9 bits, about 6 in
/// 10); lower ones start to join unrelated short posts.
pub const DEFAULT_SIMILARITY: f64 = 0.8;
/// The most bits [`similarity_to_distance`] allows (a similarity of about
/// 0.56): beyond it unrelated texts start to look alike, and the store's
/// index looks up more buckets than is worth it.
pub const MAX_DISTANCE: u32 = 23;

/// Fingerprint bits.
const BITS: u32 = 64;
/// Words per shingle.
const SHINGLE: usize = 3;

/// A text's SimHash: similar texts have fingerprints a small Hamming
/// distance apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(u64);

impl Fingerprint {
    /// The 64 bits (what the store indexes).
    pub fn bits(self) -> u64 {
        self.0
    }

    /// In how many bits `self` and `other` differ.
    pub fn distance(self, other: Fingerprint) -> u32 {
        (self.0 ^ other.0).count_ones()
    }
}

/// The fingerprint of `text`, or `None` when it has fewer than `min_words`
/// words once links and @mentions are left out (too short to tell a
/// campaign from a coincidence).
pub fn fingerprint(text: &str, min_words: usize) -> Option<Fingerprint> {
    let words = words(text);
    if words.is_empty() || words.len() < min_words {
        return None;
    }
    let mut votes = [0i64; BITS as usize];
    let mut vote = |feature: &[u8]| {
        let h = stable_hash(feature);
        for (bit, v) in votes.iter_mut().enumerate() {
            if h >> bit & 1 == 1 {
                *v += 1;
            } else {
                *v -= 1;
            }
        }
    };
    for w in &words {
        vote(w.as_bytes());
    }
    let mut shingle = String::new();
    for window in words.windows(SHINGLE) {
        shingle.clear();
        for (i, w) in window.iter().enumerate() {
            if i > 0 {
                shingle.push(' ');
            }
            shingle.push_str(w);
        }
        vote(shingle.as_bytes());
    }
    let bits = votes
        .iter()
        .enumerate()
        .filter(|(_, v)| **v > 0)
        .fold(0u64, |acc, (bit, _)| acc | 1 << bit);
    Some(Fingerprint(bits))
}

/// The most bits two fingerprints of one campaign may differ in for a
/// `campaign_similarity` of `similarity`: `64 · arccos(s) / π`, rounded,
/// at most [`MAX_DISTANCE`]. 1 (or more) is 0 bits: the same words and
/// shingles once normalised; 0.9 is 9 bits, 0.8 is 13.
pub fn similarity_to_distance(similarity: f64) -> u32 {
    if similarity.is_nan() {
        return 0;
    }
    let s = similarity.clamp(-1.0, 1.0);
    let bits = (f64::from(BITS) * s.acos() / std::f64::consts::PI).round();
    // In 0..=64 by the clamp above.
    (bits as u32).min(MAX_DISTANCE)
}

/// The words of `text` that count: normalised, links and @mentions left
/// out, split into runs of letters and digits.
fn words(text: &str) -> Vec<String> {
    let folded = crate::rules::folded(text);
    folded
        .split_whitespace()
        .filter(|token| !is_link_or_mention(token))
        .flat_map(|token| token.split(|c: char| !c.is_alphanumeric()))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `@name`, `https://…`, `www.…`: what spam campaigns vary between copies.
fn is_link_or_mention(token: &str) -> bool {
    let t = token.trim_start_matches(|c: char| !c.is_alphanumeric() && c != '@');
    t.starts_with('@') || t.contains("://") || t.starts_with("www.")
}

/// FNV-1a, then MurmurHash3's finaliser so that every output bit depends
/// on every input bit (SimHash needs independent-looking bits).
fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPAM: &str = "Congratulations! You have been selected for our exclusive giveaway, \
        claim your free gift card today before the offer expires tonight at midnight";

    fn fp(text: &str) -> Fingerprint {
        fingerprint(text, DEFAULT_MIN_WORDS).unwrap_or_else(|| panic!("no fingerprint: {text}"))
    }

    fn default_distance() -> u32 {
        similarity_to_distance(DEFAULT_SIMILARITY)
    }

    fn assert_near(a: &str, b: &str) {
        let d = fp(a).distance(fp(b));
        assert!(
            d <= default_distance(),
            "{d} bits apart, allowed {}:\n{a}\n{b}",
            default_distance()
        );
    }

    #[test]
    fn the_same_text_has_the_same_fingerprint_everywhere() {
        assert_eq!(fp(SPAM), fp(SPAM));
        // Pinned: a change of hash, normalisation or features splits the
        // campaigns that span a rollout.
        assert_eq!(
            fp(SPAM).bits(),
            0x4c5b_658f_a75c_1d96,
            "{:#x}",
            fp(SPAM).bits()
        );
    }

    #[test]
    fn case_accents_invisible_characters_and_look_alikes_do_not_count() {
        let variants = [
            "CONGRATULATIONS! YOU HAVE BEEN SELECTED FOR OUR EXCLUSIVE GIVEAWAY, \
             CLAIM YOUR FREE GIFT CARD TODAY BEFORE THE OFFER EXPIRES TONIGHT AT MIDNIGHT",
            "Cóngratulatíons! You have been selécted for our exclusive gìveaway, \
             claim your frée gift card today before the offer expires tonight at midnight",
            "Congra\u{200B}tulations! You have been sel\u{00AD}ected for our exclu\u{2060}sive \
             giveaway, claim your free gift card today before the offer expires tonight at midnight",
            // Cyrillic а, е, о and full-width letters.
            "Congr\u{0430}tulations! You have b\u{0435}en selected f\u{043E}r our exclusive \
             giveaway, claim your ｆｒｅｅ gift card today before the offer expires tonight at midnight",
        ];
        for v in variants {
            assert_eq!(fp(v), fp(SPAM), "{v}");
        }
    }

    #[test]
    fn swapped_links_mentions_and_emoji_do_not_count() {
        let a = format!("{SPAM} https://gift.example/claim?id=8f3a2 @alice 🎁🎉");
        let b = format!("{SPAM} https://prizes.example.net/r/ZZ91 @bob_1990 💰");
        let c = format!("🔥🔥 {SPAM} www.free-stuff.example/x");
        assert_eq!(fp(&a), fp(&b));
        assert_eq!(fp(&a), fp(&c));
        assert_eq!(fp(&a), fp(SPAM));
    }

    #[test]
    fn small_edits_stay_within_the_default_distance() {
        let twenty = "hey everyone my cousin made so much money with this trading app \
                      last month you should all try it right now";
        let ws = words(twenty);
        assert_eq!(ws.len(), 21);
        // One word in twenty changed, wherever it is.
        for k in 0..ws.len() {
            let mut edited = ws.clone();
            edited[k] = "something".into();
            assert_near(twenty, &edited.join(" "));
        }
        assert_near(twenty, &twenty.replacen("cousin", "brother", 1));
        // A different name addressed, without the @.
        assert_near(
            "Hi Maria, I saw your profile and I have an amazing investment opportunity for you, \
             message me on WhatsApp to learn more",
            "Hi Jonathan, I saw your profile and I have an amazing investment opportunity for you, \
             message me on WhatsApp to learn more",
        );
        // A word added or left out.
        assert_near(SPAM, &SPAM.replacen("free ", "", 1));
        assert_near(SPAM, &SPAM.replacen("gift card", "gift card worth 500", 1));
        // Another number in it.
        assert_near(
            "Earn 5000 dollars a week working from home, no experience needed, \
             ask me how in the comments below",
            "Earn 8000 dollars a week working from home, no experience needed, \
             ask me how in the comments below",
        );
    }

    /// 200 posts of a town's feed, many on the same few topics (school
    /// sports, crypto, money, gardens): no two are within the default
    /// distance, so none of them would make a campaign (the closest pair,
    /// two "Does anyone know a … who …" questions, is 14 bits apart).
    #[test]
    fn unrelated_posts_are_never_near() {
        let posts: Vec<&str> = include_str!("../tests/data/unrelated_posts.txt")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert!(posts.len() >= 200);
        let fps: Vec<Fingerprint> = posts.iter().map(|p| fp(p)).collect();
        let mut closest = (u32::MAX, 0, 0);
        for i in 0..fps.len() {
            for j in i + 1..fps.len() {
                let d = fps[i].distance(fps[j]);
                if d < closest.0 {
                    closest = (d, i, j);
                }
            }
        }
        let (d, i, j) = closest;
        assert!(
            d > default_distance(),
            "{d} bits apart:\n{}\n{}",
            posts[i],
            posts[j]
        );
    }

    /// Different spam texts of one kind (giveaways, crypto, jobs) are
    /// different campaigns.
    #[test]
    fn different_spam_texts_on_one_topic_are_not_near() {
        let spam = [
            SPAM,
            "Congratulations, you won a free iPhone in our weekly giveaway, \
             click the link in my bio to claim your prize now",
            "Free gift cards for the first hundred people who share this post \
             and tag three friends in the comments",
            "I made ten thousand dollars in one week trading bitcoin with this \
             simple strategy, message me to learn how",
            "Invest in our new crypto token today and double your money in seven \
             days, guaranteed returns, limited spots",
            "My account manager helped me earn passive income from crypto, \
             contact her on Telegram for a free consultation",
            "Work from home and earn 500 dollars a day, no experience needed, \
             message me for details",
            "We are hiring remote workers for simple online tasks, flexible \
             hours and daily pay, apply in my bio",
        ];
        for (i, a) in spam.iter().enumerate() {
            for b in &spam[i + 1..] {
                let d = fp(a).distance(fp(b));
                assert!(d > default_distance(), "{d} bits apart:\n{a}\n{b}");
            }
        }
    }

    #[test]
    fn short_texts_have_no_fingerprint() {
        assert_eq!(fingerprint("thank you so much", 5), None);
        assert_eq!(fingerprint("", 5), None);
        assert_eq!(fingerprint("🎁🎁🎁 💰💰", 1), None);
        // Links and mentions are not words.
        assert_eq!(
            fingerprint("@a @b @c look https://x.example/1 https://y.example/2", 5),
            None
        );
        assert!(fingerprint("thank you so much everyone", 5).is_some());
        assert!(fingerprint("thank you", 2).is_some());
    }

    #[test]
    fn similarity_maps_to_bits() {
        assert_eq!(similarity_to_distance(1.0), 0);
        assert_eq!(similarity_to_distance(1.5), 0);
        assert_eq!(similarity_to_distance(f64::NAN), 0);
        assert_eq!(similarity_to_distance(0.9), 9);
        assert_eq!(similarity_to_distance(0.8), 13);
        assert_eq!(similarity_to_distance(0.0), MAX_DISTANCE);
        assert!(similarity_to_distance(0.95) < similarity_to_distance(0.9));
    }

    #[test]
    fn words_leave_out_links_and_mentions() {
        assert_eq!(
            words("Hey @Bob, look: https://x.example/a-b (free!) e-mail"),
            ["hey", "look", "free", "e", "mail"]
        );
    }
}
