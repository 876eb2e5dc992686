//! The domain model of a published post: what every stage after intake works on.
//!
//! Values here are already parsed: an ID is never empty, a time is a real
//! instant. The wire format (PascalCase JSON) lives in `intake::payload`, which is
//! the only way raw input becomes a [`Post`].

use std::fmt;

use chrono::{DateTime, Utc};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Accepts any non-blank string: Cativa IDs are opaque.
            pub fn parse(raw: impl Into<String>) -> Result<Self, EmptyId> {
                let raw = raw.into();
                if raw.trim().is_empty() {
                    Err(EmptyId)
                } else {
                    Ok(Self(raw))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

/// An ID was empty or only whitespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("is empty")]
pub struct EmptyId;

id_type!(
    /// The tenant that emitted the event.
    CustomerId
);
id_type!(
    /// A post.
    PostId
);
id_type!(
    /// A group inside a community (the main feed has none).
    GroupId
);
id_type!(
    /// A member of the community.
    UserId
);
id_type!(
    /// A badge a member holds.
    BadgeId
);

/// A post published on the main feed or inside a group.
///
/// `Debug` shows IDs only: content, image URL and the author's personal data
/// never reach a log through a stray `{:?}`.
#[derive(Clone, PartialEq)]
pub struct Post {
    pub customer_id: CustomerId,
    pub post_id: PostId,
    /// `None` is the community's main feed.
    pub group_id: Option<GroupId>,
    pub author: Author,
    /// `None` for media-only posts.
    pub content: Option<String>,
    /// The first image, as Cativa sent it (not checked to be a URL: cards decide
    /// whether they can show it).
    pub image_url: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The author of a post, as Cativa described them at the time of the post.
///
/// Personal data (email, phone) is here so that cards can show it where the
/// operator allows; it is never logged.
#[derive(Clone, PartialEq)]
pub struct Author {
    pub id: UserId,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub display_name: Option<String>,
    pub username: Option<String>,
    pub phone_number: Option<String>,
    /// When the author joined the tenant; `None` when Cativa did not say (or said
    /// something that is not a time).
    pub joined_at: Option<DateTime<Utc>>,
    pub badge_id: Option<BadgeId>,
    pub badges: Vec<BadgeId>,
}

impl Post {
    /// A text post on the main feed by an author known only by ID: the
    /// smallest valid post, which tests and benchmarks build on.
    pub fn text(
        customer_id: CustomerId,
        post_id: PostId,
        author: UserId,
        content: impl Into<String>,
        created_at: DateTime<Utc>,
    ) -> Self {
        Post {
            customer_id,
            post_id,
            group_id: None,
            author: Author::with_id(author),
            content: Some(content.into()),
            image_url: None,
            created_at,
        }
    }
}

impl Author {
    /// An author Cativa described by ID only.
    pub fn with_id(id: UserId) -> Self {
        Author {
            id,
            email: None,
            first_name: None,
            last_name: None,
            display_name: None,
            username: None,
            phone_number: None,
            joined_at: None,
            badge_id: None,
            badges: vec![],
        }
    }

    /// The name to show: display name, else first + last name, else username,
    /// else the user ID.
    pub fn shown_name(&self) -> String {
        if let Some(name) = self
            .display_name
            .as_deref()
            .filter(|s| !s.trim().is_empty())
        {
            return name.to_owned();
        }
        let full = [self.first_name.as_deref(), self.last_name.as_deref()]
            .into_iter()
            .flatten()
            .filter(|s| !s.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if !full.is_empty() {
            return full;
        }
        if let Some(user) = self.username.as_deref().filter(|s| !s.trim().is_empty()) {
            return user.to_owned();
        }
        self.id.to_string()
    }

    /// Whether the author holds `badge` (primary or any other).
    pub fn has_badge(&self, badge: &BadgeId) -> bool {
        self.badge_id.as_ref() == Some(badge) || self.badges.contains(badge)
    }
}

impl fmt::Debug for Post {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Post")
            .field("customer_id", &self.customer_id)
            .field("post_id", &self.post_id)
            .field("group_id", &self.group_id)
            .field("author", &self.author)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// Personal data stays out of `Debug` output, so a stray `{:?}` cannot log it.
impl fmt::Debug for Author {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Author")
            .field("id", &self.id)
            .field("joined_at", &self.joined_at)
            .field("badges", &self.badges.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_blank() {
        assert_eq!(PostId::parse(""), Err(EmptyId));
        assert_eq!(PostId::parse("  "), Err(EmptyId));
        assert_eq!(
            PostId::parse("01HQ").map(|p| p.to_string()),
            Ok("01HQ".into())
        );
    }

    #[test]
    fn author_debug_hides_personal_data() {
        let author = Author {
            id: UserId::parse("U1").unwrap(),
            email: Some("mary@example.com".into()),
            first_name: None,
            last_name: None,
            display_name: Some("Mary".into()),
            username: None,
            phone_number: Some("+15551234567".into()),
            joined_at: None,
            badge_id: None,
            badges: vec![],
        };
        let shown = format!("{author:?}");
        assert!(!shown.contains("mary@"));
        assert!(!shown.contains("+1555"));
        assert_eq!(author.shown_name(), "Mary");
    }
}
