//! The wire format of Cativa events and the one way it becomes a [`Post`].
//!
//! No header names the event, so the shape decides: a `post_created` payload
//! has `PostId` and no `CommentId`. Anything else that is a JSON object is
//! another event, to be acknowledged and ignored.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::post::{Author, BadgeId, CustomerId, GroupId, Post, PostId, UserId};

/// What a genuine body turned out to be.
#[derive(Debug)]
pub enum Event {
    Post(Box<Post>),
    /// Another event (or a comment): acknowledged, logged, counted, dropped.
    Other,
}

/// Why a genuine body cannot be used. Messages name the field at fault and
/// never echo its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("body is not a JSON object")]
    NotAnObject,
    #[error("post_created payload is missing required field {0}")]
    Missing(&'static str),
    #[error("post_created payload field {field} {problem}")]
    Invalid {
        field: &'static str,
        problem: &'static str,
    },
}

impl Event {
    pub fn parse(body: &[u8]) -> Result<Self, PayloadError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| PayloadError::NotJson(e.to_string()))?;
        let Value::Object(mut root) = value else {
            return Err(PayloadError::NotAnObject);
        };
        let is_post = root.contains_key("PostId") && !root.contains_key("CommentId");
        if !is_post {
            return Ok(Event::Other);
        }
        post_from(&mut root).map(|p| Event::Post(Box::new(p)))
    }
}

fn post_from(root: &mut Map<String, Value>) -> Result<Post, PayloadError> {
    let customer_id = required_id(root, "CustomerId", CustomerId::parse)?;
    let post_id = required_id(root, "PostId", PostId::parse)?;
    let group_id =
        optional_string(root, "GroupId", "GroupId")?.and_then(|g| GroupId::parse(g).ok());
    let created_at = required_time(root, "CreatedAt", "CreatedAt")?;
    let content = optional_string(root, "Content", "Content")?;
    let image_url = optional_string(root, "ImageUrl", "ImageUrl")?.filter(|u| !u.trim().is_empty());

    let mut user = match root.remove("User") {
        Some(Value::Object(user)) => user,
        None | Some(Value::Null) => return Err(PayloadError::Missing("User.Id")),
        Some(_) => {
            return Err(PayloadError::Invalid {
                field: "User",
                problem: "is not an object",
            });
        }
    };
    let id = required_id(&mut user, "Id", UserId::parse).map_err(|e| match e {
        PayloadError::Missing(_) => PayloadError::Missing("User.Id"),
        PayloadError::Invalid { problem, .. } => PayloadError::Invalid {
            field: "User.Id",
            problem,
        },
        other => other,
    })?;
    let badges = match user.remove("Badges") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .into_iter()
            .filter_map(|b| match b {
                Value::String(s) => BadgeId::parse(s).ok(),
                _ => None,
            })
            .collect(),
        Some(_) => {
            return Err(PayloadError::Invalid {
                field: "User.Badges",
                problem: "is not an array of IDs",
            });
        }
    };
    let author = Author {
        id,
        email: optional_string(&mut user, "Email", "User.Email")?,
        first_name: optional_string(&mut user, "FirstName", "User.FirstName")?,
        last_name: optional_string(&mut user, "LastName", "User.LastName")?,
        display_name: optional_string(&mut user, "DisplayName", "User.DisplayName")?,
        username: optional_string(&mut user, "Username", "User.Username")?,
        phone_number: optional_string(&mut user, "PhoneNumber", "User.PhoneNumber")?,
        // Optional: a value that is not a time is treated as unknown rather
        // than failing the post, which Cativa would then retry for days.
        joined_at: optional_string(&mut user, "CreatedAt", "User.CreatedAt")?
            .and_then(|s| parse_time(&s)),
        badge_id: optional_string(&mut user, "BadgeId", "User.BadgeId")?
            .and_then(|b| BadgeId::parse(b).ok()),
        badges,
    };
    Ok(Post {
        customer_id,
        post_id,
        group_id,
        author,
        content,
        image_url,
        created_at,
    })
}

fn required_id<T, E>(
    obj: &mut Map<String, Value>,
    key: &'static str,
    parse: impl FnOnce(String) -> Result<T, E>,
) -> Result<T, PayloadError> {
    match obj.remove(key) {
        None | Some(Value::Null) => Err(PayloadError::Missing(key)),
        Some(Value::String(s)) => parse(s).map_err(|_| PayloadError::Invalid {
            field: key,
            problem: "is empty",
        }),
        Some(_) => Err(PayloadError::Invalid {
            field: key,
            problem: "is not a string",
        }),
    }
}

fn optional_string(
    obj: &mut Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<Option<String>, PayloadError> {
    match obj.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(PayloadError::Invalid {
            field,
            problem: "is not a string or null",
        }),
    }
}

fn required_time(
    obj: &mut Map<String, Value>,
    key: &'static str,
    field: &'static str,
) -> Result<DateTime<Utc>, PayloadError> {
    let raw = optional_string(obj, key, field)?.ok_or(PayloadError::Missing(field))?;
    parse_time(&raw).ok_or(PayloadError::Invalid {
        field,
        problem: "is not an ISO 8601 time (like 2026-05-08T14:32:01Z)",
    })
}

fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../../examples/post_created.json");

    fn post(json: &str) -> Post {
        match Event::parse(json.as_bytes()) {
            Ok(Event::Post(p)) => *p,
            other => panic!("expected a post, got {other:?}"),
        }
    }

    #[test]
    fn the_docs_sample_parses_into_a_post() {
        let p = post(SAMPLE);
        assert_eq!(p.post_id.as_str(), "01HQ8POST1234567890ABCDEFG");
        assert_eq!(
            p.group_id.as_ref().map(|g| g.as_str()),
            Some("01HQ2GROUP1234567890XYZAB")
        );
        assert_eq!(p.author.username.as_deref(), Some("mary.smith"));
        assert_eq!(p.author.badges.len(), 1);
        assert!(p.author.joined_at.is_some());
        assert!(p.content.unwrap().contains("module 3"));
    }

    #[test]
    fn nulls_and_missing_optionals_are_fine() {
        let p = post(
            r#"{"CustomerId":"c","PostId":"p","GroupId":null,"User":{"Id":"u","PhoneNumber":null},
               "Content":null,"ImageUrl":null,"CreatedAt":"2026-05-08T14:32:01Z","Extra":{"x":[1]}}"#,
        );
        assert!(p.group_id.is_none());
        assert!(p.content.is_none());
        assert!(p.image_url.is_none());
        assert!(p.author.badges.is_empty());
        assert!(p.author.phone_number.is_none());
        assert!(p.author.joined_at.is_none());
    }

    #[test]
    fn a_bad_optional_join_date_is_unknown_not_fatal() {
        let p = post(
            r#"{"CustomerId":"c","PostId":"p","User":{"Id":"u","CreatedAt":"yesterday"},"CreatedAt":"2026-05-08T14:32:01+02:00"}"#,
        );
        assert!(p.author.joined_at.is_none());
        assert_eq!(p.created_at.to_rfc3339(), "2026-05-08T12:32:01+00:00");
    }

    #[test]
    fn other_events_and_comments_are_not_posts() {
        for body in [
            r#"{"CustomerId":"c","User":{"Id":"u"}}"#,
            r#"{"CustomerId":"c","PostId":"p","CommentId":"x"}"#,
            r#"{}"#,
        ] {
            assert!(
                matches!(Event::parse(body.as_bytes()), Ok(Event::Other)),
                "{body}"
            );
        }
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("nope", "not JSON"),
            ("[1]", "not a JSON object"),
            (
                r#"{"PostId":"p","User":{"Id":"u"},"CreatedAt":"2026-05-08T14:32:01Z"}"#,
                "CustomerId",
            ),
            (
                r#"{"CustomerId":"c","PostId":"p","CreatedAt":"2026-05-08T14:32:01Z"}"#,
                "User.Id",
            ),
            (
                r#"{"CustomerId":"c","PostId":"p","User":{},"CreatedAt":"2026-05-08T14:32:01Z"}"#,
                "User.Id",
            ),
            (
                r#"{"CustomerId":"c","PostId":"p","User":{"Id":"u"}}"#,
                "CreatedAt",
            ),
            (
                r#"{"CustomerId":"c","PostId":"p","User":{"Id":"u"},"CreatedAt":"soon"}"#,
                "ISO 8601",
            ),
            (
                r#"{"CustomerId":"c","PostId":7,"User":{"Id":"u"},"CreatedAt":"2026-05-08T14:32:01Z"}"#,
                "PostId is not a string",
            ),
            (
                r#"{"CustomerId":"","PostId":"p","User":{"Id":"u"},"CreatedAt":"2026-05-08T14:32:01Z"}"#,
                "CustomerId is empty",
            ),
            (
                r#"{"CustomerId":"c","PostId":"p","User":{"Id":"u"},"Content":5,"CreatedAt":"2026-05-08T14:32:01Z"}"#,
                "Content",
            ),
        ];
        for (body, want) in cases {
            let err = Event::parse(body.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(want), "{body}: {err}");
        }
    }
}
