//! Running every `[[test]]`: each test case becomes a post, is evaluated
//! against the whole rule set, and passes when its own file gives exactly the
//! expected reasons. Failures carry the file's explanation. Uses the clock: a
//! test without `posted_at` posts "now".

use chrono::{Duration, Utc};

use super::cases::TestCase;
use super::eval::evaluate;
use super::explain::explain;
use super::model::Compiled;
use super::{Diagnostic, TestReport, TestResult};
use crate::post::{Author, Post};

fn test_post(t: &TestCase) -> Post {
    let created_at = t.posted_at.unwrap_or_else(Utc::now);
    let joined_at = t.author_joined.or_else(|| {
        t.author_age_days
            .map(|d| created_at - Duration::days(i64::from(d)))
    });
    Post {
        customer_id: t.customer.clone(),
        post_id: t.post_id.clone(),
        group_id: t.group.clone(),
        author: Author {
            id: t.user.clone(),
            email: None,
            first_name: None,
            last_name: None,
            display_name: t.display_name.clone(),
            username: t.username.clone(),
            phone_number: None,
            joined_at,
            badge_id: None,
            badges: t.badges.clone(),
        },
        content: t.content.clone(),
        image_url: t
            .image
            .then(|| "https://example.com/test-image.png".to_owned()),
        created_at,
    }
}

pub fn run_tests(c: &Compiled) -> TestReport {
    let mut results = Vec::new();
    for (fi, file) in c.files.iter().enumerate() {
        for t in &file.tests {
            let post = test_post(t);
            let verdict = evaluate(c, &post);
            // Shadow matches count: a test is how to try one before it sends cards.
            let mut actual: Vec<String> = verdict
                .routings
                .iter()
                .flat_map(|d| &d.reasons)
                .chain(&verdict.shadow)
                .filter(|r| r.rules_file == file.file_name)
                .map(|r| r.name().to_owned())
                .collect();
            actual.sort();
            actual.dedup();
            let explanation = if actual == t.expect {
                String::new()
            } else {
                let mut e = explain(c, &post);
                let content = post
                    .content
                    .as_deref()
                    .map_or("(no text)".to_owned(), |c| format!("{c:?}"));
                let mut s = format!("post: {content}\n");
                if let Some(fe) = e.files.get_mut(fi) {
                    s.push_str(&fe.to_string());
                }
                s
            };
            results.push(TestResult {
                at: Diagnostic {
                    path: file.path.clone(),
                    line: t.line,
                    col: t.col,
                    message: String::new(),
                },
                name: t.name.clone(),
                expected: t.expect.clone(),
                actual,
                explanation,
            });
        }
    }
    TestReport { results }
}
