//! The wire format of Cativa events and the one way it becomes a [`Post`].
//!
//! No header names the event, so the shape decides: a `post_created` payload
//! has `PostId` and no `CommentId`. Anything else that is a JSON object is
//! another event, to be acknowledged and ignored.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

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
    /// One pass over the bytes, straight into the fields a post needs
    /// (strings borrowed from the body where they have no escapes): no
    /// `serde_json::Value` tree, no copies of the keys or of unknown fields.
    /// Every JSON value is accepted where a field is read, so the checks
    /// below, not serde, decide (and word) what is wrong, in a fixed order;
    /// a repeated key keeps its last value, as a JSON object map would.
    pub fn parse(body: &[u8]) -> Result<Self, PayloadError> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let root = RootSeed
            .deserialize(&mut de)
            .and_then(|root| de.end().map(|()| root))
            .map_err(|e| PayloadError::NotJson(e.to_string()))?;
        let Some(mut root) = root else {
            return Err(PayloadError::NotAnObject);
        };
        let is_post = root.has_post_id && !root.has_comment_id;
        if !is_post {
            return Ok(Event::Other);
        }
        post_from(&mut root).map(|p| Event::Post(Box::new(p)))
    }
}

/// One field's value as sent: every JSON value is accepted here.
#[derive(Debug, Default)]
enum Field<'a> {
    #[default]
    Absent,
    Null,
    Str(Cow<'a, str>),
    /// A number, a boolean, an array or an object where a string belongs.
    Other,
}

impl Field<'_> {
    fn take(&mut self) -> Self {
        std::mem::take(self)
    }
}

/// The top-level fields a post is built from.
#[derive(Default)]
struct Root<'a> {
    has_post_id: bool,
    has_comment_id: bool,
    customer_id: Field<'a>,
    post_id: Field<'a>,
    group_id: Field<'a>,
    created_at: Field<'a>,
    content: Field<'a>,
    image_url: Field<'a>,
    user: UserField<'a>,
}

/// `User` as sent.
#[derive(Default)]
enum UserField<'a> {
    #[default]
    Absent,
    Null,
    Object(Box<User<'a>>),
    Other,
}

#[derive(Default)]
struct User<'a> {
    id: Field<'a>,
    email: Field<'a>,
    first_name: Field<'a>,
    last_name: Field<'a>,
    display_name: Field<'a>,
    username: Field<'a>,
    phone_number: Field<'a>,
    created_at: Field<'a>,
    badge_id: Field<'a>,
    badges: Badges<'a>,
}

/// `User.Badges` as sent.
#[derive(Default)]
enum Badges<'a> {
    #[default]
    Absent,
    Null,
    /// The string items; the rest are skipped, as they always were.
    Items(Vec<Cow<'a, str>>),
    Other,
}

/// The top-level value: `Some` for an object, `None` for any other JSON.
struct RootSeed;

impl<'de> DeserializeSeed<'de> for RootSeed {
    type Value = Option<Root<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(RootVisitor)
    }
}

struct RootVisitor;

/// Answers `None` for every JSON value but an object (read whole, so that
/// what follows it is still checked).
macro_rules! not_an_object {
    () => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Self::Value::default())
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(Self::Value::default())
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(Self::Value::default())
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Self::Value::default())
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(Self::Value::default())
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Self::Value::default())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Self::Value::default())
        }
    };
}

impl<'de> Visitor<'de> for RootVisitor {
    type Value = Option<Root<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    not_an_object!();

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut root = Root::default();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key.0.as_ref() {
                "PostId" => {
                    root.has_post_id = true;
                    root.post_id = map.next_value()?;
                }
                "CommentId" => {
                    root.has_comment_id = true;
                    map.next_value::<IgnoredAny>()?;
                }
                "CustomerId" => root.customer_id = map.next_value()?,
                "GroupId" => root.group_id = map.next_value()?,
                "CreatedAt" => root.created_at = map.next_value()?,
                "Content" => root.content = map.next_value()?,
                "ImageUrl" => root.image_url = map.next_value()?,
                "User" => root.user = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(root))
    }
}

/// An object key, borrowed unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor).map(Key)
    }
}

struct StrVisitor;

impl<'de> Visitor<'de> for StrVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

impl<'de> de::Deserialize<'de> for Field<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldVisitor)
    }
}

struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = Field<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Field::Null)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Field::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Field::Other)
    }
}

impl<'de> de::Deserialize<'de> for UserField<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UserVisitor)
    }
}

struct UserVisitor;

impl<'de> Visitor<'de> for UserVisitor {
    type Value = UserField<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(UserField::Null)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(UserField::Other)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(UserField::Other)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(UserField::Other)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(UserField::Other)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(UserField::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(UserField::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut user = User::default();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key.0.as_ref() {
                "Id" => user.id = map.next_value()?,
                "Email" => user.email = map.next_value()?,
                "FirstName" => user.first_name = map.next_value()?,
                "LastName" => user.last_name = map.next_value()?,
                "DisplayName" => user.display_name = map.next_value()?,
                "Username" => user.username = map.next_value()?,
                "PhoneNumber" => user.phone_number = map.next_value()?,
                "CreatedAt" => user.created_at = map.next_value()?,
                "BadgeId" => user.badge_id = map.next_value()?,
                "Badges" => user.badges = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(UserField::Object(Box::new(user)))
    }
}

impl<'de> de::Deserialize<'de> for Badges<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(BadgesVisitor)
    }
}

struct BadgesVisitor;

impl<'de> Visitor<'de> for BadgesVisitor {
    type Value = Badges<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Badges::Null)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Badges::Other)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Badges::Other)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Badges::Other)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Badges::Other)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Badges::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Badges::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Field<'de>>()? {
            if let Field::Str(s) = item {
                items.push(s);
            }
        }
        Ok(Badges::Items(items))
    }
}

fn post_from(root: &mut Root<'_>) -> Result<Post, PayloadError> {
    let customer_id = required_id(root.customer_id.take(), "CustomerId", CustomerId::parse)?;
    let post_id = required_id(root.post_id.take(), "PostId", PostId::parse)?;
    let group_id =
        optional_string(root.group_id.take(), "GroupId")?.and_then(|g| GroupId::parse(g).ok());
    let created_at = required_time(root.created_at.take(), "CreatedAt")?;
    let content = optional_string(root.content.take(), "Content")?;
    let image_url =
        optional_string(root.image_url.take(), "ImageUrl")?.filter(|u| !u.trim().is_empty());

    let mut user = match std::mem::take(&mut root.user) {
        UserField::Object(user) => user,
        UserField::Absent | UserField::Null => return Err(PayloadError::Missing("User.Id")),
        UserField::Other => {
            return Err(PayloadError::Invalid {
                field: "User",
                problem: "is not an object",
            });
        }
    };
    let id = required_id(user.id.take(), "Id", UserId::parse).map_err(|e| match e {
        PayloadError::Missing(_) => PayloadError::Missing("User.Id"),
        PayloadError::Invalid { problem, .. } => PayloadError::Invalid {
            field: "User.Id",
            problem,
        },
        other => other,
    })?;
    let badges = match std::mem::take(&mut user.badges) {
        Badges::Absent | Badges::Null => Vec::new(),
        Badges::Items(items) => items
            .into_iter()
            .filter_map(|b| BadgeId::parse(b.into_owned()).ok())
            .collect(),
        Badges::Other => {
            return Err(PayloadError::Invalid {
                field: "User.Badges",
                problem: "is not an array of IDs",
            });
        }
    };
    let author = Author {
        id,
        email: optional_string(user.email.take(), "User.Email")?,
        first_name: optional_string(user.first_name.take(), "User.FirstName")?,
        last_name: optional_string(user.last_name.take(), "User.LastName")?,
        display_name: optional_string(user.display_name.take(), "User.DisplayName")?,
        username: optional_string(user.username.take(), "User.Username")?,
        phone_number: optional_string(user.phone_number.take(), "User.PhoneNumber")?,
        // Optional: a value that is not a time is treated as unknown rather
        // than failing the post, which Cativa would then retry for days.
        joined_at: optional_str(user.created_at.take(), "User.CreatedAt")?
            .and_then(|s| parse_time(&s)),
        badge_id: optional_string(user.badge_id.take(), "User.BadgeId")?
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
    value: Field<'_>,
    key: &'static str,
    parse: impl FnOnce(String) -> Result<T, E>,
) -> Result<T, PayloadError> {
    match value {
        Field::Absent | Field::Null => Err(PayloadError::Missing(key)),
        Field::Str(s) => parse(s.into_owned()).map_err(|_| PayloadError::Invalid {
            field: key,
            problem: "is empty",
        }),
        Field::Other => Err(PayloadError::Invalid {
            field: key,
            problem: "is not a string",
        }),
    }
}

fn optional_str<'a>(
    value: Field<'a>,
    field: &'static str,
) -> Result<Option<Cow<'a, str>>, PayloadError> {
    match value {
        Field::Absent | Field::Null => Ok(None),
        Field::Str(s) => Ok(Some(s)),
        Field::Other => Err(PayloadError::Invalid {
            field,
            problem: "is not a string or null",
        }),
    }
}

fn optional_string(value: Field<'_>, field: &'static str) -> Result<Option<String>, PayloadError> {
    optional_str(value, field).map(|s| s.map(Cow::into_owned))
}

fn required_time(value: Field<'_>, field: &'static str) -> Result<DateTime<Utc>, PayloadError> {
    let raw = optional_str(value, field)?.ok_or(PayloadError::Missing(field))?;
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
    fn escaped_strings_repeated_keys_and_unknown_values_read_as_a_map_would() {
        let p = post(
            r#"{"CustomerId":"c\u0031","PostId":"p","PostId":"p2","Unknown":{"a":[1,{"b":null}],"c":"\""},
               "User":{"Id":"u","Badges":["b\n1",7,null,"b2"],"DisplayName":"M\u00e9"},
               "Content":"line\nnext \"quoted\"","CreatedAt":"2026-05-08T14:32:01Z"}"#,
        );
        assert_eq!(p.customer_id.as_str(), "c1");
        assert_eq!(p.post_id.as_str(), "p2");
        assert_eq!(p.content.as_deref(), Some("line\nnext \"quoted\""));
        assert_eq!(p.author.display_name.as_deref(), Some("Mé"));
        let badges: Vec<_> = p.author.badges.iter().map(|b| b.as_str()).collect();
        assert_eq!(badges, ["b\n1", "b2"]);
    }

    #[test]
    fn a_null_post_id_still_makes_a_post_and_a_null_comment_id_an_other_event() {
        let err = Event::parse(br#"{"PostId":null,"CustomerId":"c"}"#).unwrap_err();
        assert_eq!(err, PayloadError::Missing("PostId"));
        assert!(matches!(
            Event::parse(br#"{"PostId":"p","CommentId":null,"User":5}"#),
            Ok(Event::Other)
        ));
    }

    #[test]
    fn wrong_shapes_of_user_and_badges_are_named() {
        let user = Event::parse(
            br#"{"CustomerId":"c","PostId":"p","User":"u","CreatedAt":"2026-05-08T14:32:01Z"}"#,
        )
        .unwrap_err();
        assert_eq!(
            user.to_string(),
            "post_created payload field User is not an object"
        );
        let badges = Event::parse(
            br#"{"CustomerId":"c","PostId":"p","User":{"Id":"u","Badges":{}},"CreatedAt":"2026-05-08T14:32:01Z"}"#,
        )
        .unwrap_err();
        assert_eq!(
            badges.to_string(),
            "post_created payload field User.Badges is not an array of IDs"
        );
    }

    #[test]
    fn what_follows_the_value_and_broken_json_anywhere_are_not_json() {
        for body in [
            r#"{"CustomerId":"c"} x"#,
            r#"[1,2"#,
            r#"{"PostId":"p","Extra":[1,}"#,
            r#""text" 1"#,
        ] {
            assert!(
                matches!(Event::parse(body.as_bytes()), Err(PayloadError::NotJson(_))),
                "{body}"
            );
        }
        for body in ["[1,{}]", "\"text\"", "7", "null", "true"] {
            assert_eq!(
                Event::parse(body.as_bytes()).unwrap_err(),
                PayloadError::NotAnObject,
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
