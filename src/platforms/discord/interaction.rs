//! Discord clicks: Ed25519 over `timestamp + raw body` with the
//! application's public key (`ring`), PING → PONG, and MESSAGE_COMPONENT
//! interactions (type 3) whose `custom_id` is `<action>:<case ID>`. Answers
//! are inline interaction responses (type 1 PONG, 4 with flag 64 EPHEMERAL,
//! 6 DEFERRED_UPDATE_MESSAGE).

use ring::signature::{ED25519, UnparsedPublicKey};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::PLATFORM;
use crate::config::DiscordPublicKey;
use crate::platforms::interaction::{
    Inbound, Interaction, InteractionError, ModeratorAction, is_case_id, signed_headers,
};
use crate::platforms::{InteractionReply, MessageRef};

const SIGNATURE: &str = "x-signature-ed25519";
const TIMESTAMP: &str = "x-signature-timestamp";
/// Interaction response flag: only the clicking user sees the message.
const EPHEMERAL: u64 = 1 << 6;

fn unauthentic() -> InteractionError {
    InteractionError::Unauthentic { platform: PLATFORM }
}

/// Checks the signature on the raw bytes and the timestamp (5 minutes, as
/// for Slack: Discord documents no window, but without one a replay outlives
/// the replay guard); returns the replay key (Ed25519 signatures are
/// deterministic: the same request always carries the same signature).
pub(crate) fn verify(
    key: &DiscordPublicKey,
    headers: &[(String, String)],
    body: &[u8],
    now: i64,
) -> Result<String, InteractionError> {
    let (ts, sig) = signed_headers(PLATFORM, headers, TIMESTAMP, SIGNATURE, now)?;
    let mut signature = [0u8; 64];
    hex::decode_to_slice(sig, &mut signature).map_err(|_| unauthentic())?;
    let message = [ts.as_bytes(), body].concat();
    UnparsedPublicKey::new(&ED25519, key.bytes())
        .verify(&message, &signature)
        .map_err(|_| unauthentic())?;
    let digest = Sha256::digest(signature);
    Ok(format!("{PLATFORM}:{}", hex::encode(&digest[..16])))
}

#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "type")]
    kind: u8,
    data: Option<Data>,
    channel_id: Option<String>,
    member: Option<Member>,
    user: Option<User>,
    message: Option<Message>,
}

#[derive(Deserialize)]
struct Data {
    custom_id: Option<String>,
}

#[derive(Deserialize)]
struct Member {
    user: Option<User>,
    #[serde(default)]
    roles: Vec<String>,
}

#[derive(Deserialize)]
struct User {
    id: String,
    username: Option<String>,
    global_name: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    id: String,
    webhook_id: Option<String>,
}

/// The `custom_id` of a button for `action` on case `case_id`.
pub fn custom_id(action: ModeratorAction, case_id: &str) -> String {
    format!("{}:{case_id}", action.as_str())
}

/// Parses a verified body.
pub(crate) fn parse(body: &[u8]) -> Result<Inbound, InteractionError> {
    let malformed = |detail: String| InteractionError::Malformed {
        platform: PLATFORM,
        detail,
    };
    let p: Payload = serde_json::from_slice(body)
        .map_err(|e| malformed(format!("the body is not a Discord interaction: {e}")))?;
    match p.kind {
        1 => return Ok(Inbound::Ping),
        3 => {}
        _ => return Ok(Inbound::Ignored),
    }
    let Some((action, case_id)) = p
        .data
        .and_then(|d| d.custom_id)
        .and_then(|c| {
            let (action, case_id) = c.split_once(':')?;
            Some((ModeratorAction::parse(action)?, case_id.to_owned()))
        })
        .filter(|(_, case_id)| is_case_id(case_id))
    else {
        return Ok(Inbound::Ignored);
    };
    let (user, roles) = match (p.member, p.user) {
        (Some(m), user) => (m.user.or(user), m.roles),
        (None, user) => (user, Vec::new()),
    };
    let user = user.ok_or_else(|| malformed("a component interaction without a user".into()))?;
    let message = match (p.message, p.channel_id) {
        // A webhook's message is edited through the webhook, found by the
        // case's own record; the bot's through its channel.
        (Some(m), Some(channel)) if m.webhook_id.is_none() => {
            match (channel.parse::<u64>(), m.id.parse::<u64>()) {
                (Ok(channel), Ok(message_id)) => Some(MessageRef::Discord {
                    channel,
                    message_id,
                }),
                _ => None,
            }
        }
        _ => None,
    };
    Ok(Inbound::Click(Interaction {
        platform: PLATFORM,
        case_id,
        action,
        moderator_name: user
            .global_name
            .or(user.username)
            .unwrap_or_else(|| user.id.clone()),
        moderator_id: user.id,
        roles,
        message,
        response_url: None,
    }))
}

/// The inline interaction response: the status and JSON body of the 200.
pub(crate) fn answer(reply: &InteractionReply) -> (u16, Option<serde_json::Value>) {
    let body = match reply {
        InteractionReply::Pong => json!({ "type": 1 }),
        InteractionReply::Acknowledge => json!({ "type": 6 }),
        InteractionReply::Ephemeral(text) => json!({
            "type": 4,
            "data": {
                "content": super::escape(text),
                "flags": EPHEMERAL,
                "allowed_mentions": { "parse": [] },
            }
        }),
    };
    (200, Some(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    fn keypair() -> (Ed25519KeyPair, DiscordPublicKey) {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let public = DiscordPublicKey::parse(&hex::encode(pair.public_key().as_ref())).unwrap();
        (pair, public)
    }

    fn signed(pair: &Ed25519KeyPair, ts: i64, body: &[u8]) -> Vec<(String, String)> {
        let sig = pair.sign(&[ts.to_string().as_bytes(), body].concat());
        vec![
            (TIMESTAMP.into(), ts.to_string()),
            (SIGNATURE.into(), hex::encode(sig.as_ref())),
        ]
    }

    const CLICK: &str = r#"{"type":3,"id":"1","application_id":"2","token":"t","version":1,
        "channel_id":"112233445566778899","guild_id":"5",
        "data":{"custom_id":"claim:0123456789abcdef0123456789abcdef","component_type":2},
        "member":{"user":{"id":"42","username":"bo","global_name":"Bo"},"roles":["777"]},
        "message":{"id":"998877","channel_id":"112233445566778899"}}"#;

    #[test]
    fn only_the_application_key_over_timestamp_and_body_passes() {
        let (pair, public) = keypair();
        let (_, other) = keypair();
        let now = 1_700_000_000;
        let body = CLICK.as_bytes();
        let h = signed(&pair, now, body);
        let key = verify(&public, &h, body, now).unwrap();
        assert!(key.starts_with("discord:"));
        assert!(verify(&other, &h, body, now).is_err(), "another key");
        assert!(verify(&public, &h, b"{}", now).is_err(), "another body");
        assert!(verify(&public, &h, body, now + 301).is_err(), "stale");
        let mut shifted = h.clone();
        shifted[0].1 = (now + 1).to_string();
        assert!(
            verify(&public, &shifted, body, now).is_err(),
            "another timestamp"
        );
        assert!(verify(&public, &h[..1], body, now).is_err(), "no signature");
    }

    #[test]
    fn ping_and_component_clicks_parse_and_answers_never_ping() {
        assert_eq!(parse(br#"{"type":1,"id":"1"}"#).unwrap(), Inbound::Ping);
        let Inbound::Click(i) = parse(CLICK.as_bytes()).unwrap() else {
            panic!("expected a click");
        };
        assert_eq!(i.action, ModeratorAction::Claim);
        assert_eq!(
            (i.moderator_id.as_str(), i.moderator_name.as_str()),
            ("42", "Bo")
        );
        assert_eq!(i.roles, vec!["777".to_owned()]);
        assert_eq!(
            i.message,
            Some(MessageRef::Discord {
                channel: 112233445566778899,
                message_id: 998877
            })
        );
        assert_eq!(parse(br#"{"type":2}"#).unwrap(), Inbound::Ignored);
        assert!(parse(b"[").is_err());
        let (_, body) = answer(&InteractionReply::Ephemeral("@everyone hi".into()));
        let body = body.unwrap();
        assert_eq!(body["type"], 4);
        assert_eq!(body["data"]["flags"], 64);
        assert_eq!(body["data"]["allowed_mentions"]["parse"], json!([]));
        assert_eq!(
            answer(&InteractionReply::Pong).1.unwrap(),
            json!({"type": 1})
        );
    }
}
