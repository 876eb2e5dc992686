//! `X-Cativa-Signature` verification, on the raw body bytes, before anything
//! else looks at them.
//!
//! `v1` is the lowercase hex HMAC-SHA256 of `<t>.<raw body>`, keyed with the
//! listener secret exactly as written (`whsec_` prefix included). Several `v1`
//! values may be present; any that matches is enough. The comparison is
//! constant-time (`Mac::verify_slice`).

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use crate::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Longest header accepted; real ones are about 80 bytes.
const MAX_HEADER_LEN: usize = 2048;
/// Most `v1` values accepted in one header.
const MAX_SIGNATURES: usize = 8;

/// Signing with a listener secret (the type lives in `crate::secret`).
impl Secret {
    /// Signs `body` as Cativa does, for time `t`: the full header value.
    pub fn sign(&self, t: i64, body: &[u8]) -> String {
        let mac = self.mac(t, body);
        format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
    }

    fn mac(&self, t: i64, body: &[u8]) -> HmacSha256 {
        signed_part(keyed(self), t, body)
    }
}

/// HMAC keyed with `secret`: its key schedule (a long key hashed, then the
/// inner and outer pads' first blocks), before any message byte.
fn keyed(secret: &Secret) -> HmacSha256 {
    // HMAC takes keys of any length (long ones are hashed first).
    <HmacSha256 as hmac::digest::KeyInit>::new_from_slice(secret.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"))
}

/// Feeds `<t>.<body>` to a keyed HMAC.
fn signed_part(mut mac: HmacSha256, t: i64, body: &[u8]) -> HmacSha256 {
    // `t` in decimal without an allocation (it is never negative once parsed,
    // but any i64 is written as `to_string` would).
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = t.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if t < 0 {
        mac.update(b"-");
    }
    mac.update(&digits[at..]);
    mac.update(b".");
    mac.update(body);
    mac
}

/// A listener secret's HMAC key schedule, computed once at start: each
/// request then clones it instead of hashing the key and both pads again.
/// Holds key material: never printed.
#[derive(Clone)]
pub struct SigningKey(HmacSha256);

impl SigningKey {
    pub fn new(secret: &Secret) -> Self {
        Self(keyed(secret))
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

/// What a signature can be checked with: a secret (keyed on each use) or its
/// precomputed [`SigningKey`].
pub trait Key {
    fn keyed(&self) -> HmacSha256Key;
}

/// A keyed HMAC-SHA256, ready for the message.
pub struct HmacSha256Key(HmacSha256);

impl Key for &Secret {
    fn keyed(&self) -> HmacSha256Key {
        HmacSha256Key(keyed(self))
    }
}

impl Key for &SigningKey {
    fn keyed(&self) -> HmacSha256Key {
        HmacSha256Key(self.0.clone())
    }
}

/// A parsed `X-Cativa-Signature` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    timestamp: i64,
    signatures: Vec<[u8; 32]>,
}

/// Why a request is not accepted as genuine. Messages are safe to send back:
/// they never echo a secret or an expected signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Cativa-Signature header")]
    Missing,
    #[error("malformed X-Cativa-Signature header: {0}")]
    Malformed(&'static str),
    #[error("signature timestamp is stale ({age_secs} s old, tolerance {tolerance_secs} s)")]
    Stale { age_secs: i64, tolerance_secs: u64 },
    #[error(
        "signature timestamp is from the future ({ahead_secs} s ahead, tolerance {tolerance_secs} s)"
    )]
    FromTheFuture {
        ahead_secs: i64,
        tolerance_secs: u64,
    },
    #[error("signature does not match any configured secret")]
    Mismatch,
}

impl SignatureHeader {
    pub fn parse(raw: &str) -> Result<Self, SignatureError> {
        use SignatureError::Malformed;
        if raw.trim().is_empty() {
            return Err(SignatureError::Missing);
        }
        if raw.len() > MAX_HEADER_LEN {
            return Err(Malformed("longer than 2048 bytes"));
        }
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for part in raw.split(',') {
            let part = part.trim();
            let Some((key, value)) = part.split_once('=') else {
                return Err(Malformed("expected comma-separated key=value pairs"));
            };
            match key {
                "t" => {
                    if timestamp.is_some() {
                        return Err(Malformed("more than one t"));
                    }
                    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(Malformed("t is not a unix time in seconds"));
                    }
                    timestamp = Some(
                        value
                            .parse::<i64>()
                            .map_err(|_| Malformed("t is not a unix time in seconds"))?,
                    );
                }
                "v1" => {
                    let mut sig = [0u8; 32];
                    hex::decode_to_slice(value, &mut sig)
                        .map_err(|_| Malformed("v1 is not 64 hex characters"))?;
                    if signatures.len() == MAX_SIGNATURES {
                        return Err(Malformed("more than 8 v1 values"));
                    }
                    signatures.push(sig);
                }
                // Other schemes may appear in future; they are not ours to judge.
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or(Malformed("no t"))?;
        if signatures.is_empty() {
            return Err(Malformed("no v1"));
        }
        Ok(Self {
            timestamp,
            signatures,
        })
    }

    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// Checks freshness against `now` (unix seconds), then the signature with
    /// each secret (or its [`SigningKey`]) in turn. Returns the index of the
    /// first that verifies.
    pub fn verify<K: Key>(
        &self,
        body: &[u8],
        secrets: impl IntoIterator<Item = K>,
        now: i64,
        tolerance_secs: u64,
    ) -> Result<usize, SignatureError> {
        self.check_fresh(now, tolerance_secs)?;
        for (index, secret) in secrets.into_iter().enumerate() {
            let mac = signed_part(secret.keyed().0, self.timestamp, body);
            let computed = mac.finalize().into_bytes();
            // Constant-time comparison of every candidate, whatever matches.
            let mut matched = subtle::Choice::from(0);
            for sig in &self.signatures {
                matched |= subtle::ConstantTimeEq::ct_eq(computed.as_slice(), sig.as_slice());
            }
            if bool::from(matched) {
                return Ok(index);
            }
        }
        Err(SignatureError::Mismatch)
    }

    /// Whether the timestamp is within `tolerance_secs` of `now` (unix
    /// seconds): checked before the body is read, and again by [`Self::verify`].
    pub fn check_fresh(&self, now: i64, tolerance_secs: u64) -> Result<(), SignatureError> {
        let tolerance = i64::try_from(tolerance_secs).unwrap_or(i64::MAX);
        let age = now.saturating_sub(self.timestamp);
        if age > tolerance {
            return Err(SignatureError::Stale {
                age_secs: age,
                tolerance_secs,
            });
        }
        if -age > tolerance {
            return Err(SignatureError::FromTheFuture {
                ahead_secs: -age,
                tolerance_secs,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Vectors {
        secret: String,
        vectors: Vec<Vector>,
    }
    #[derive(serde::Deserialize)]
    struct Vector {
        name: String,
        t: i64,
        header: String,
        body: String,
        expect: String,
    }

    fn vectors() -> Vectors {
        let raw = include_str!("../../tests/data/signature-vectors.json");
        serde_json::from_str(raw).expect("signature vectors parse")
    }

    #[test]
    fn every_independent_vector_gives_its_expected_answer() {
        let v = vectors();
        let secret = Secret::new(v.secret).unwrap();
        assert!(v.vectors.len() >= 10);
        for case in v.vectors {
            let got = SignatureHeader::parse(&case.header)
                .and_then(|h| h.verify(case.body.as_bytes(), [&secret], case.t, 300));
            let valid = got.is_ok();
            assert_eq!(
                valid,
                case.expect == "valid",
                "vector {}: got {got:?}",
                case.name
            );
        }
    }

    #[test]
    fn signing_reproduces_the_valid_vector() {
        let v = vectors();
        let secret = Secret::new(v.secret).unwrap();
        let valid = v.vectors.iter().find(|c| c.name == "valid").unwrap();
        assert_eq!(secret.sign(valid.t, valid.body.as_bytes()), valid.header);
    }

    #[test]
    fn any_of_several_secrets_verifies_and_reports_which() {
        let a = Secret::new("whsec_a").unwrap();
        let b = Secret::new("whsec_b").unwrap();
        let header = SignatureHeader::parse(&b.sign(100, b"{}")).unwrap();
        assert_eq!(header.verify(b"{}", [&a, &b], 100, 300), Ok(1));
        assert_eq!(
            header.verify(b"{}", [&a], 100, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn tolerance_names_stale_and_future() {
        let s = Secret::new("whsec_x").unwrap();
        let header = SignatureHeader::parse(&s.sign(1_000, b"x")).unwrap();
        assert_eq!(header.verify(b"x", [&s], 1_300, 300), Ok(0));
        assert_eq!(header.verify(b"x", [&s], 700, 300), Ok(0));
        assert!(matches!(
            header.verify(b"x", [&s], 1_301, 300),
            Err(SignatureError::Stale { age_secs: 301, .. })
        ));
        assert!(matches!(
            header.verify(b"x", [&s], 699, 300),
            Err(SignatureError::FromTheFuture {
                ahead_secs: 301,
                ..
            })
        ));
        assert!(header.verify(b"x", [&s], 1_301, 0).is_err());
    }

    #[test]
    fn header_edge_cases_are_rejected_with_a_reason() {
        let good = "0".repeat(64);
        for (raw, why) in [
            ("", "missing"),
            ("   ", "missing"),
            (&format!("t=1,t=2,v1={good}"), "more than one t"),
            (&format!("t=-5,v1={good}"), "unix time"),
            (&format!("t=1,v1={good}0"), "64 hex"),
            ("t=1,v1=é", "64 hex"),
            (&format!("t=١٢٣,v1={good}"), "unix time"),
            (&format!("t=1,garbage,v1={good}"), "key=value"),
            (
                &format!("t=1,{}", format!("v1={good},").repeat(9)),
                "more than 8",
            ),
            (&format!("t=1,v1={good},{}", "x".repeat(3000)), "2048"),
            (&format!("t=99999999999999999999,v1={good}"), "unix time"),
        ] {
            let err = SignatureHeader::parse(raw).unwrap_err().to_string();
            assert!(err.contains(why), "{raw:?}: {err}");
        }
    }

    #[test]
    fn unknown_schemes_are_ignored_and_whitespace_tolerated() {
        let s = Secret::new("whsec_x").unwrap();
        let signed = s.sign(5, b"b");
        let (t, v1) = signed.split_once(',').unwrap();
        let header = SignatureHeader::parse(&format!("{t},  v0=abc, {v1}")).unwrap();
        assert_eq!(header.verify(b"b", [&s], 5, 300), Ok(0));
    }

    #[test]
    fn a_precomputed_key_verifies_exactly_as_its_secret() {
        let v = vectors();
        let secret = Secret::new(v.secret).unwrap();
        let key = SigningKey::new(&secret);
        for case in v.vectors {
            let header = SignatureHeader::parse(&case.header);
            let with_secret = header
                .clone()
                .and_then(|h| h.verify(case.body.as_bytes(), [&secret], case.t, 300));
            let with_key = header.and_then(|h| h.verify(case.body.as_bytes(), [&key], case.t, 300));
            assert_eq!(with_key, with_secret, "vector {}", case.name);
        }
        // Timestamps of any length are written as decimal digits.
        for t in [0, 7, 10, 1_700_000_000, i64::MAX] {
            let signed = secret.sign(t, b"{}");
            let header = SignatureHeader::parse(&signed).unwrap();
            assert_eq!(header.verify(b"{}", [&key], t, 0), Ok(0), "{signed}");
            assert!(signed.starts_with(&format!("t={t},")));
        }
        assert_eq!(format!("{key:?}"), "SigningKey(***)");
    }

    #[test]
    fn secrets_are_never_debug_printed() {
        let s = Secret::new("whsec_topsecret").unwrap();
        assert!(!format!("{s:?}").contains("topsecret"));
        assert!(Secret::new(" whsec_x").is_err());
        assert!(Secret::new("").is_err());
    }
}
