//! The one type for secret values (webhook signing secrets, and any token a
//! later module keeps): the value is never in `Debug` output or logs, and is
//! read only through [`Secret::expose`], where it is used.

use std::fmt;

/// A secret value, exactly as written (nothing is trimmed: a signing key is
/// the string as issued).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Accepts any non-blank value without surrounding white space (a sign
    /// of a bad copy and paste).
    pub fn new(raw: impl Into<String>) -> Result<Self, &'static str> {
        let raw = raw.into();
        if raw.trim().is_empty() {
            Err("a secret is empty")
        } else if raw.trim() != raw {
            Err(
                "a secret has leading or trailing white space (copy it again from where it was issued)",
            )
        } else {
            Ok(Self(raw))
        }
    }

    /// The value itself, for the one place that uses it (a signature, a header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_value_and_blank_or_padded_values_are_refused() {
        let s = Secret::new("whsec_topsecret").unwrap();
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(s.expose(), "whsec_topsecret");
        assert!(Secret::new("").is_err());
        assert!(Secret::new(" x").is_err());
    }
}
