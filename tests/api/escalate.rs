//! Escalation (issue #13): two replicas sharing Redis, a post delivered to a
//! Slack channel, a Discord bot channel and a Discord webhook; a case still
//! open after its delay gets exactly one reminder per copy (a Slack thread
//! reply, a Discord reply, a new webhook message with the post's link),
//! pinging each destination's configured mention; a case claimed before its
//! time gets none; a case taken by a replica that died is reminded once by
//! another after the lease.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fake_discord::{CHANNEL, FakeDiscord, WEBHOOK_ID};
use crate::fake_slack::FakeSlack;
use crate::helpers::*;
use modbridge::config::Settings;
use modbridge::dedupe::{DedupeStore, RedisStore};
use modbridge::platforms::MessageRef;
use modbridge::platforms::slack::interaction::sign as slack_sign;
use modbridge::triage::case::{Case, Cases, DEFAULT_CASE_TTL, case_id};
use modbridge::triage::escalate::ESCALATIONS;

const CUSTOMER: &str = "01HQ0ABCDEF1234567890XYZ";
const SLACK_TOKEN: &str = "xoxb-1111-2222-fake";
const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const ROLE: &str = "445566778899001122";
/// The delay the tests run with (production takes whole minutes).
const AFTER: Duration = Duration::from_secs(2);

const RULES: &str = r#"
name = "Everywhere"
groups = ["*"]
to = ["mods_slack", "mods_discord", "hook"]

[[match]]
name = "forbidden"
keywords = ["forbidden phrase"]
"#;

const CONFIG: &str = r#"
post_url = "https://community.example.com/posts/{post_id}"

[destinations.mods_slack]
slack = "C0123ABCD"
mention = "here"

[destinations.mods_discord]
discord = "112233445566778899"
mention = "445566778899001122"

[destinations.hook]
discord_webhook_env = "MODS_HOOK"
mention = "445566778899001122"
"#;

fn fast_escalation(s: &mut Settings) {
    s.triage.escalate_after = Some(AFTER);
    s.triage.escalate_poll = Duration::from_millis(100);
}

struct World {
    redis: RedisServer,
    slack: FakeSlack,
    discord: FakeDiscord,
    replicas: Vec<TestApp>,
    cases: Cases<RedisStore>,
    store: RedisStore,
}

async fn world() -> Option<World> {
    let Some(redis) = RedisServer::start() else {
        eprintln!("skipped: redis-server is not installed");
        return None;
    };
    let slack = FakeSlack::start(SLACK_TOKEN).await;
    let discord = FakeDiscord::start().await;
    let mut replicas = Vec::new();
    for _ in 0..2 {
        replicas.push(
            spawn_with(AppOptions {
                redis_url: Some(redis.url.clone()),
                rules: RULES.into(),
                config: CONFIG.into(),
                env: vec![
                    ("SLACK_BOT_TOKEN", SLACK_TOKEN.into()),
                    ("SLACK_API_URL", slack.base.clone()),
                    ("DISCORD_BOT_TOKEN", crate::fake_discord::BOT_TOKEN.into()),
                    ("DISCORD_API_URL", discord.base.clone()),
                    ("MODS_HOOK", FakeDiscord::webhook_url()),
                    ("SLACK_SIGNING_SECRET", SIGNING_SECRET.into()),
                ],
                live: true,
                adjust: Some(fast_escalation),
            })
            .await,
        );
    }
    let store = app_store(&redis.url);
    Some(World {
        cases: Cases::new(store.clone(), DEFAULT_CASE_TTL),
        store,
        redis,
        slack,
        discord,
        replicas,
    })
}

impl World {
    /// Delivers `post` (through replica `n`) and returns its case, open
    /// with three copies.
    async fn deliver(&self, n: usize, post: &str) -> (String, Case) {
        let status = self.replicas[n]
            .deliver_until_ok(
                &post_body(post, "a forbidden phrase here"),
                &format!("exec-{post}"),
                Duration::from_secs(30),
            )
            .await;
        assert_eq!(status, 200);
        let id = case_id(CUSTOMER, post);
        let (_, case) = self.cases.get(&id).await.unwrap().expect("the case exists");
        assert_eq!(case.copies.len(), 3, "{case:?}");
        (id, case)
    }

    /// Reminders posted so far for `case`: Slack thread replies, Discord
    /// bot messages replying to its card, webhook messages linking its post.
    fn reminders(&self, case: &Case, post: &str) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
        let mut slack = Vec::new();
        let mut replies = Vec::new();
        for copy in &case.copies {
            match &copy.message {
                MessageRef::Slack { channel, ts } => slack = self.slack.thread(channel, ts),
                MessageRef::Discord { message_id, .. } => {
                    replies = self
                        .discord
                        .received()
                        .into_iter()
                        .filter(|r| {
                            r.method == "POST"
                                && r.status == 200
                                && r.body["message_reference"]["message_id"]
                                    == json!(message_id.to_string())
                        })
                        .map(|r| r.body)
                        .collect();
                }
                MessageRef::DiscordWebhook { .. } => {}
            }
        }
        let link = format!("<https://community.example.com/posts/{post}>");
        let hook = self
            .discord
            .messages(WEBHOOK_ID)
            .into_iter()
            .filter(|m| m["content"].as_str().is_some_and(|c| c.contains(&link)))
            .collect();
        (slack, replies, hook)
    }

    async fn stop(self) {
        for r in self.replicas {
            r.stop().await;
        }
        drop(self.redis);
    }
}

async fn claim_from_slack(app: &TestApp, case: &str) {
    let payload = json!({
        "type": "block_actions",
        "user": {"id": "U0ANA", "username": "ana"},
        "actions": [{"action_id": "case_claim", "value": case, "type": "button"}]
    });
    let mut body = String::from("payload=");
    body.extend(url::form_urlencoded::byte_serialize(
        payload.to_string().as_bytes(),
    ));
    let t = now();
    let r = app
        .client
        .post(format!("{}/slack/interactions", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", t.to_string())
        .header(
            "x-slack-signature",
            slack_sign(SIGNING_SECRET, t, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

async fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_unclaimed_case_gets_one_reminder_per_copy_and_a_claimed_one_none() {
    let Some(w) = world().await else { return };
    let started = Instant::now();
    let (open_id, open) = w.deliver(0, "ESC-OPEN").await;
    let (claimed_id, claimed) = w.deliver(1, "ESC-CLAIMED").await;
    claim_from_slack(&w.replicas[1], &claimed_id).await;
    // Nothing before the delay (unless this machine took that long).
    if started.elapsed() < AFTER - Duration::from_millis(500) {
        assert_eq!(w.reminders(&open, "ESC-OPEN"), (vec![], vec![], vec![]));
    }
    wait_for("the reminders", Duration::from_secs(15), || {
        let (s, r, h) = w.reminders(&open, "ESC-OPEN");
        !s.is_empty() && !r.is_empty() && !h.is_empty()
    })
    .await;
    assert!(started.elapsed() >= AFTER, "not before its time");
    // Several polls of both replicas later: still exactly one of each.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (slack, replies, hook) = w.reminders(&open, "ESC-OPEN");
    assert_eq!((slack.len(), replies.len(), hook.len()), (1, 1, 1));
    let created = w
        .discord
        .messages(CHANNEL)
        .into_iter()
        .filter(|m| {
            m["content"]
                .as_str()
                .is_some_and(|c| c.contains("Still open"))
        })
        .count();
    assert_eq!(created, 1, "one Discord reply message");
    // Slack: a thread reply pinging the destination's mention.
    let text = slack[0]["text"].as_str().unwrap();
    assert_eq!(
        text,
        ":alarm_clock: <!here> Still open after 2 s: nobody has claimed this card."
    );
    // Discord bot: a reply pinging only the configured role.
    let reply = &replies[0];
    assert!(
        reply["content"]
            .as_str()
            .unwrap()
            .starts_with(&format!("<@&{ROLE}> \u{23f0} Still open after 2 s")),
        "{reply}"
    );
    assert_eq!(reply["allowed_mentions"]["parse"], json!([]));
    assert_eq!(reply["allowed_mentions"]["roles"], json!([ROLE]));
    // Discord webhook: a new message with the post's link.
    let content = hook[0]["content"].as_str().unwrap();
    assert!(content.starts_with(&format!("<@&{ROLE}> ")), "{content}");
    assert!(
        content.ends_with("Open post: <https://community.example.com/posts/ESC-OPEN>"),
        "{content}"
    );
    let hook_bodies: Vec<Value> = w
        .discord
        .received()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/v10/webhooks/") && r.body["content"] == content)
        .map(|r| r.body)
        .collect();
    assert_eq!(hook_bodies.len(), 1);
    assert_eq!(hook_bodies[0]["allowed_mentions"]["roles"], json!([ROLE]));
    // The claimed case: nothing, ever; both leave the schedule.
    assert_eq!(
        w.reminders(&claimed, "ESC-CLAIMED"),
        (vec![], vec![], vec![])
    );
    let left = w
        .store
        .take_due(ESCALATIONS, u64::MAX / 2, Duration::from_secs(1), 10)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    assert!(w.discord.invalid().is_empty(), "{:?}", w.discord.invalid());
    let metrics = w.replicas[0].metrics().await;
    assert!(
        metrics.contains(r#"modbridge_cases_total{outcome="escalated"}"#),
        "{metrics}"
    );
    // Which copies were reminded is recorded with the case.
    let progress = w
        .store
        .versioned(&format!("escalation:{open_id}"))
        .await
        .unwrap()
        .expect("the reminder's progress record");
    let progress: Value = serde_json::from_str(&progress.body).unwrap();
    assert_eq!(progress["sent"].as_array().unwrap().len(), 3, "{progress}");
    w.stop().await;
}

#[tokio::test]
async fn a_case_taken_by_a_replica_that_died_is_reminded_once_after_the_lease() {
    let Some(w) = world().await else { return };
    let (id, case) = w.deliver(0, "ESC-ORPHAN").await;
    // A third replica takes it at its due time with a 2 s lease, then dies
    // before replying.
    let taken_at = Instant::now();
    let due = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + AFTER.as_millis() as u64;
    let lease = Duration::from_secs(2);
    let taken = w.store.take_due(ESCALATIONS, due, lease, 10).await.unwrap();
    assert_eq!(taken, [id]);
    // Its due time was AFTER from now; leased, it comes due AFTER + lease
    // from now, on whichever replica looks first.
    tokio::time::sleep(
        (AFTER + lease).saturating_sub(taken_at.elapsed() + Duration::from_millis(300)),
    )
    .await;
    assert_eq!(
        w.reminders(&case, "ESC-ORPHAN"),
        (vec![], vec![], vec![]),
        "nothing while the dead replica's lease runs"
    );
    wait_for("the reminders", Duration::from_secs(15), || {
        let (s, r, h) = w.reminders(&case, "ESC-ORPHAN");
        !s.is_empty() && !r.is_empty() && !h.is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (s, r, h) = w.reminders(&case, "ESC-ORPHAN");
    assert_eq!((s.len(), r.len(), h.len()), (1, 1, 1));
    w.stop().await;
}
