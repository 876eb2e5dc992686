//! Compiling `[[test]]` tables into [`TestCase`]s: where the test posts, who
//! writes it, when, and which reasons it expects (only names its own file can
//! give). `runner` turns them into posts and runs them.

use std::ops::Range;

use chrono::{DateTime, Utc};
use toml::Spanned;
use toml::value::Datetime;

use super::compile::{Ctx, parse_ids};
use super::file::{self, RawTest};
use super::model::CompiledFile;
use crate::post::{BadgeId, CustomerId, GroupId, PostId, UserId};

#[derive(Debug)]
pub struct TestCase {
    pub post_id: PostId,
    pub line: usize,
    pub col: usize,
    pub name: Option<String>,
    pub content: Option<String>,
    pub group: Option<GroupId>,
    pub customer: CustomerId,
    pub user: UserId,
    pub display_name: Option<String>,
    pub username: Option<String>,
    pub badges: Vec<BadgeId>,
    pub image: bool,
    pub author_joined: Option<DateTime<Utc>>,
    pub author_age_days: Option<u32>,
    pub posted_at: Option<DateTime<Utc>>,
    pub expect: Vec<String>,
}

/// A `[[test]]` table as a test case, or `None` after reporting what is wrong.
pub fn compile_test(
    ctx: &mut Ctx<'_>,
    file: &CompiledFile,
    known: &[String],
    span: Range<usize>,
    t: &RawTest,
) -> Option<TestCase> {
    let errors_before = ctx.errors.len();
    let group = test_group(ctx, file, t);
    let default_customer = file
        .customers
        .as_ref()
        .and_then(|c| c.first())
        .map_or("test-customer", |c| c.as_str());
    let customer = CustomerId::parse(id_or(ctx, &t.customer, default_customer, "customer")).ok()?;
    let user = UserId::parse(id_or(ctx, &t.user, "test-user", "user")).ok()?;
    let badges = parse_ids(ctx, &t.badges, "badge ID in `badges`", BadgeId::parse);
    let author_joined = datetime(ctx, &t.author_joined, "author_joined");
    let posted_at = datetime(ctx, &t.posted_at, "posted_at");
    if t.author_joined.is_some() && t.author_age_days.is_some() {
        ctx.error(
            &span,
            "set only one of `author_joined` and `author_age_days`",
        );
    }
    let expect = expected_reasons(ctx, known, &span, t);
    if ctx.errors.len() > errors_before {
        return None;
    }
    let (line, col) = file::line_col(ctx.text, span.start);
    Some(TestCase {
        post_id: PostId::parse(format!("test:{}:{line}", file.file_name)).ok()?,
        line,
        col,
        name: t.name.clone(),
        content: t.content.clone(),
        group,
        customer,
        user,
        display_name: t.display_name.clone(),
        username: t.username.clone(),
        badges,
        image: t.image,
        author_joined,
        author_age_days: t.author_age_days,
        posted_at,
        expect,
    })
}

/// Where the test posts: its `group`, or the file's first group.
fn test_group(ctx: &mut Ctx<'_>, file: &CompiledFile, t: &RawTest) -> Option<GroupId> {
    let Some(g) = &t.group else {
        return file.default_group.clone();
    };
    match g.get_ref().trim() {
        "feed" => None,
        "*" => {
            ctx.error(
                &g.span(),
                "a test posts in one place: write a GroupId or \"feed\", not \"*\"",
            );
            None
        }
        other => match GroupId::parse(other) {
            Ok(id) => Some(id),
            Err(_) => {
                ctx.error(
                    &g.span(),
                    "empty `group`: write a GroupId or \"feed\", or remove the line",
                );
                None
            }
        },
    }
}

/// The ID written in `v`, or `default` when absent (an error when empty).
fn id_or(ctx: &mut Ctx<'_>, v: &Option<Spanned<String>>, default: &str, what: &str) -> String {
    let raw = v.as_ref().map_or(default, |s| s.get_ref().trim());
    if raw.is_empty() {
        if let Some(s) = v {
            ctx.error(
                &s.span(),
                format!("empty `{what}`: write an ID or remove the line"),
            );
        }
        return default.to_owned();
    }
    raw.to_owned()
}

/// A TOML date-time with an offset, as UTC.
fn datetime(ctx: &mut Ctx<'_>, v: &Option<Spanned<Datetime>>, what: &str) -> Option<DateTime<Utc>> {
    let v = v.as_ref()?;
    match DateTime::parse_from_rfc3339(&v.get_ref().to_string()) {
        Ok(t) => Some(t.with_timezone(&Utc)),
        Err(_) => {
            ctx.error(
                &v.span(),
                format!("`{what}` needs a full date-time with offset, like 2025-01-31T09:00:00Z"),
            );
            None
        }
    }
}

/// The sorted reason names of `expect`: each must be one the file can give.
fn expected_reasons(
    ctx: &mut Ctx<'_>,
    known: &[String],
    span: &Range<usize>,
    t: &RawTest,
) -> Vec<String> {
    let mut expect = Vec::new();
    match &t.expect {
        None => ctx.error(
            span,
            "this [[test]] has no `expect`: list the reasons this file should give, like expect = [\"self-harm\"], or expect = [] for none",
        ),
        Some(list) => {
            for e in list.get_ref() {
                let value = e.get_ref().trim();
                if known.iter().any(|k| k == value) {
                    expect.push(value.to_owned());
                } else {
                    let options = if known.is_empty() { "none".to_owned() } else { known.join(", ") };
                    ctx.error(
                        &e.span(),
                        format!("this file never gives reason `{value}`: reasons here are {options} (\"sensitive\" needs sensitive = true)"),
                    );
                }
            }
        }
    }
    expect.sort();
    expect.dedup();
    expect
}
