//! Slack clicks: the `v0` request signature (HMAC-SHA256 keyed with the
//! app's signing secret over `v0:{timestamp}:{raw body}`, a 5-minute window,
//! compared in constant time) and the `block_actions` payload (a form field
//! `payload` holding JSON). Button `action_id`s are `case_<action>`, their
//! `value` the opaque case ID; nothing else rides on a button.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::PLATFORM;
use crate::platforms::interaction::{
    Inbound, Interaction, InteractionError, ModeratorAction, signed_headers,
};
use crate::platforms::{InteractionReply, MessageRef};
use crate::secret::Secret;

const SIGNATURE: &str = "x-slack-signature";
const TIMESTAMP: &str = "x-slack-request-timestamp";

fn unauthentic() -> InteractionError {
    InteractionError::Unauthentic { platform: PLATFORM }
}

/// Checks the signature on the raw bytes; returns the replay key (a digest
/// of timestamp and signature: the same request seen twice has the same one).
pub(crate) fn verify(
    secret: &Secret,
    headers: &[(String, String)],
    body: &[u8],
    now: i64,
) -> Result<String, InteractionError> {
    let (ts, sig) = signed_headers(PLATFORM, headers, TIMESTAMP, SIGNATURE, now)?;
    let mut tag = [0u8; 32];
    let hex_tag = sig.strip_prefix("v0=").ok_or_else(unauthentic)?;
    hex::decode_to_slice(hex_tag, &mut tag).map_err(|_| unauthentic())?;
    let mut mac =
        <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(secret.expose().as_bytes())
            .map_err(|_| unauthentic())?;
    mac.update(b"v0:");
    mac.update(ts.as_bytes());
    mac.update(b":");
    mac.update(body);
    // Constant time.
    mac.verify_slice(&tag).map_err(|_| unauthentic())?;
    Ok(replay_key(ts, hex_tag))
}

fn replay_key(ts: &str, sig: &str) -> String {
    let digest = Sha256::digest(format!("{PLATFORM}:{ts}:{}", sig.to_ascii_lowercase()));
    format!("{PLATFORM}:{}", hex::encode(&digest[..16]))
}

/// `v0=` + hex HMAC, the header value Slack sends (for tests and tools).
pub fn sign(secret: &str, ts: i64, body: &[u8]) -> String {
    let Ok(mut mac) = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(secret.as_bytes())
    else {
        return String::new();
    };
    mac.update(format!("v0:{ts}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "type")]
    kind: String,
    user: Option<User>,
    #[serde(default)]
    actions: Vec<Action>,
    response_url: Option<String>,
    container: Option<Container>,
}

#[derive(Deserialize)]
struct User {
    id: String,
    username: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct Action {
    action_id: String,
    value: Option<String>,
}

#[derive(Deserialize)]
struct Container {
    channel_id: Option<String>,
    message_ts: Option<String>,
}

/// The `action_id` of a button for `action`.
pub fn action_id(action: ModeratorAction) -> String {
    format!("case_{}", action.as_str())
}

/// Parses a verified body: a `block_actions` click on one of modbridge's
/// buttons, or something modbridge does not act on (the "Open post" link
/// button also sends a `block_actions` that only needs an answer).
pub(crate) fn parse(body: &[u8]) -> Result<Inbound, InteractionError> {
    let malformed = |detail: &str| InteractionError::Malformed {
        platform: PLATFORM,
        detail: detail.to_owned(),
    };
    let payload = url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| malformed("the form has no payload field"))?;
    let p: Payload = serde_json::from_str(&payload)
        .map_err(|e| malformed(&format!("the payload is not a Slack interaction: {e}")))?;
    if p.kind != "block_actions" {
        return Ok(Inbound::Ignored);
    }
    let Some(user) = p.user else {
        return Err(malformed("a block_actions payload without a user"));
    };
    let Some((action, case_id)) = p.actions.iter().find_map(|a| {
        let action = ModeratorAction::parse(a.action_id.strip_prefix("case_")?)?;
        let case_id = a.value.as_deref().filter(|v| is_case_id(v))?;
        Some((action, case_id.to_owned()))
    }) else {
        return Ok(Inbound::Ignored);
    };
    let message = p
        .container
        .and_then(|c| match (c.channel_id, c.message_ts) {
            (Some(channel), Some(ts)) => Some(MessageRef::Slack { channel, ts }),
            _ => None,
        });
    Ok(Inbound::Click(Interaction {
        platform: PLATFORM,
        case_id,
        action,
        moderator_name: user
            .username
            .or(user.name)
            .unwrap_or_else(|| user.id.clone()),
        moderator_id: user.id,
        roles: Vec::new(),
        message,
        response_url: p.response_url,
    }))
}

fn is_case_id(v: &str) -> bool {
    crate::platforms::interaction::is_case_id(v)
}

/// Slack wants HTTP 200 within 3 s; what a moderator sees is sent through
/// `response_url` (ephemeral or replace_original), never in this body.
pub(crate) fn answer(_reply: &InteractionReply) -> (u16, Option<serde_json::Value>) {
    (200, None)
}

/// Tells only the clicking moderator (`response_type: ephemeral` through
/// the click's `response_url`; the card stays as it is). `text` is plain:
/// escaped here, so a moderator's handle cannot ping.
pub(crate) async fn respond_ephemeral(
    http: &reqwest::Client,
    response_url: &str,
    text: &str,
) -> Result<(), String> {
    let body = serde_json::json!({
        "response_type": "ephemeral",
        "replace_original": false,
        "text": super::escape(text),
    });
    let resp = http
        .post(response_url)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("Slack response_url did not answer: {}", e.without_url()))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("Slack response_url answered {}", resp.status()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

    fn headers(ts: i64, sig: &str) -> Vec<(String, String)> {
        vec![
            (TIMESTAMP.into(), ts.to_string()),
            (SIGNATURE.into(), sig.into()),
        ]
    }

    fn click(action: &str, value: &str) -> Vec<u8> {
        let json = serde_json::json!({
            "type": "block_actions",
            "user": {"id": "U0ANA", "username": "ana", "name": "ana", "team_id": "T1"},
            "team": {"id": "T1", "domain": "acme"},
            "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C0123ABCD", "is_ephemeral": false},
            "channel": {"id": "C0123ABCD", "name": "mods"},
            "response_url": "https://hooks.slack.com/actions/T1/1/abc",
            "trigger_id": "1.2.3",
            "api_app_id": "A1",
            "actions": [{"action_id": action, "block_id": "case-r1", "value": value, "type": "button", "action_ts": "1700000001.000200"}]
        });
        let mut body = String::from("payload=");
        body.extend(url::form_urlencoded::byte_serialize(
            json.to_string().as_bytes(),
        ));
        body.into_bytes()
    }

    #[test]
    fn a_signed_fresh_request_passes_and_forged_or_stale_ones_do_not() {
        let secret = Secret::new(SECRET).unwrap();
        let body = click("case_claim", "0123456789abcdef0123456789abcdef");
        let now = 1_700_000_000;
        let good = sign(SECRET, now, &body);
        let key = verify(&secret, &headers(now, &good), &body, now + 299).unwrap();
        assert_eq!(
            key,
            verify(&secret, &headers(now, &good), &body, now).unwrap(),
            "the same request has the same replay key"
        );
        // Stale (either direction), forged, tampered, missing, malformed.
        assert!(verify(&secret, &headers(now, &good), &body, now + 301).is_err());
        assert!(verify(&secret, &headers(now, &good), &body, now - 301).is_err());
        let forged = sign("another-secret", now, &body);
        assert!(verify(&secret, &headers(now, &forged), &body, now).is_err());
        let mut tampered = body.clone();
        tampered.push(b'x');
        assert!(verify(&secret, &headers(now, &good), &tampered, now).is_err());
        assert!(verify(&secret, &headers(now + 1, &good), &body, now).is_err());
        assert!(verify(&secret, &[], &body, now).is_err());
        assert!(verify(&secret, &headers(now, "v1=00"), &body, now).is_err());
        assert!(verify(&secret, &headers(now, &good[3..]), &body, now).is_err());
    }

    #[test]
    fn a_block_actions_click_becomes_an_interaction() {
        let body = click("case_false_positive", "0123456789abcdef0123456789abcdef");
        let Inbound::Click(i) = parse(&body).unwrap() else {
            panic!("expected a click");
        };
        assert_eq!(i.action, ModeratorAction::FalsePositive);
        assert_eq!(i.case_id, "0123456789abcdef0123456789abcdef");
        assert_eq!(
            (i.moderator_id.as_str(), i.moderator_name.as_str()),
            ("U0ANA", "ana")
        );
        assert_eq!(
            i.message,
            Some(MessageRef::Slack {
                channel: "C0123ABCD".into(),
                ts: "1700000000.000100".into()
            })
        );
        // The link button, an unknown action, a value that is not a case ID.
        assert_eq!(parse(&click("open_post", "x")).unwrap(), Inbound::Ignored);
        // A digest entry's link button.
        assert_eq!(
            parse(&click("open_post_24", "x")).unwrap(),
            Inbound::Ignored
        );
        assert_eq!(
            parse(&click("case_delete", "0123abcd")).unwrap(),
            Inbound::Ignored
        );
        assert_eq!(
            parse(&click("case_claim", "U0ANA <@here>")).unwrap(),
            Inbound::Ignored
        );
        assert!(parse(b"payload=%7B").is_err());
        assert!(parse(b"nothing=1").is_err());
    }
}
