//! Who may sign webhooks: the shared `CATIVA_WEBHOOK_SECRET`, the
//! `[listeners.NAME]` secrets bound to tenants (and, with `automation_id`, to
//! the `X-Cativa-Automation-Id` that picks them), and the development secret
//! `--dry-run` falls back to. Outside dry-run every secret must look like one
//! Cativa issues (`whsec_` + 64 hex digits, not the development secret, not a
//! run of a few digits).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::loader::Loader;
use crate::post::CustomerId;
use crate::secret::Secret;

/// The documented development secret `--dry-run` uses when none is set. Never
/// use it where anyone else can reach the service.
pub const DEV_SECRET: &str =
    "whsec_0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawListener {
    secret_env: String,
    #[serde(default)]
    customers: Vec<String>,
    automation_id: Option<String>,
}

/// A secret that may sign webhooks, and the tenants it may speak for.
#[derive(Debug, Clone)]
pub struct ListenerSecret {
    /// Where it came from (`CATIVA_WEBHOOK_SECRET` or `listeners.NAME`), for logs.
    pub source: String,
    pub secret: Secret,
    /// `None`: any tenant.
    pub customers: Option<BTreeSet<CustomerId>>,
    /// `listeners.NAME.automation_id`: only requests whose
    /// `X-Cativa-Automation-Id` names it are checked against this secret.
    pub automation_id: Option<String>,
}

impl ListenerSecret {
    pub fn allows(&self, customer: &CustomerId) -> bool {
        self.customers.as_ref().is_none_or(|c| c.contains(customer))
    }
}

/// Every secret a webhook may be signed with.
#[derive(Debug, Clone)]
pub struct ListenerSettings {
    /// Never empty once loaded.
    pub secrets: Vec<ListenerSecret>,
    /// `--dry-run` without any secret: the development secret is in use.
    pub insecure_dev_secret: bool,
}

impl ListenerSettings {
    /// The secrets a request from `automation_id` may be signed with, as
    /// indexes into `secrets`: the listener's that names it, else every
    /// secret without an `automation_id`. One HMAC per candidate.
    pub fn candidates(&self, automation_id: Option<&str>) -> Vec<usize> {
        let named: Vec<usize> = match automation_id {
            Some(id) => (0..self.secrets.len())
                .filter(|&i| self.secrets[i].automation_id.as_deref() == Some(id))
                .collect(),
            None => Vec::new(),
        };
        if !named.is_empty() {
            return named;
        }
        (0..self.secrets.len())
            .filter(|&i| self.secrets[i].automation_id.is_none())
            .collect()
    }

    /// The shared variable's secrets, then each listener's; with none at all,
    /// the development secret when `dry_run`, else a problem. Outside
    /// `dry_run`, a weak secret is a problem ([`weakness`]).
    pub(super) fn build(raw: BTreeMap<String, RawListener>, dry_run: bool, l: &mut Loader) -> Self {
        let mut secrets = Vec::new();
        if let Some(list) = l.var("CATIVA_WEBHOOK_SECRET") {
            let var = "CATIVA_WEBHOOK_SECRET";
            split_secrets(&list, var, var, None, &mut secrets, l);
        }
        for (name, listener) in raw {
            let customers = customers(&name, listener.customers, l);
            let first = secrets.len();
            match l.var(&listener.secret_env) {
                None => {
                    let at = l.key(&format!("listeners.{name}"));
                    l.problem(format!(
                        "{at}: environment variable {} is not set (it holds that listener's whsec_ secret)",
                        listener.secret_env
                    ));
                }
                Some(list) => split_secrets(
                    &list,
                    &listener.secret_env,
                    &format!("listeners.{name}"),
                    customers.as_ref(),
                    &mut secrets,
                    l,
                ),
            }
            let automation_id = listener.automation_id.map(|a| a.trim().to_owned());
            if automation_id.as_deref() == Some("") {
                let at = l.key(&format!("listeners.{name}.automation_id"));
                l.problem(format!(
                    "{at}: is empty (remove it, or copy the listener's ID from Cativa Console > Webhooks)"
                ));
            }
            for s in &mut secrets[first..] {
                s.automation_id.clone_from(&automation_id);
            }
        }
        if !dry_run {
            for s in &secrets {
                if let Some(why) = weakness(s.secret.expose()) {
                    l.problem(format!(
                        "{}: {why}; copy the listener's secret from Cativa Console > Webhooks (whsec_ followed by 64 hex characters), or run with --dry-run to try modbridge locally",
                        s.source
                    ));
                }
            }
        }
        let insecure_dev_secret = secrets.is_empty() && dry_run;
        if insecure_dev_secret {
            match Secret::new(DEV_SECRET) {
                Ok(secret) => secrets.push(ListenerSecret {
                    source: "development secret (--dry-run)".into(),
                    secret,
                    customers: None,
                    automation_id: None,
                }),
                Err(e) => l.problem(e),
            }
        } else if secrets.is_empty() {
            l.problem(
                "no webhook secret: set CATIVA_WEBHOOK_SECRET to the listener's whsec_ secret (Cativa Console > Webhooks), or run with --dry-run to try modbridge locally",
            );
        }
        Self {
            secrets,
            insecure_dev_secret,
        }
    }
}

/// The comma-separated secrets `list` read from variable `var`, each from
/// `source` and allowed to speak for `customers` (`None`: any tenant).
fn split_secrets(
    list: &str,
    var: &str,
    source: &str,
    customers: Option<&BTreeSet<CustomerId>>,
    into: &mut Vec<ListenerSecret>,
    l: &mut Loader,
) {
    for part in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match Secret::new(part) {
            Ok(secret) => into.push(ListenerSecret {
                source: source.to_owned(),
                secret,
                customers: customers.cloned(),
                automation_id: None,
            }),
            Err(e) => l.problem(format!("{var}: {e}")),
        }
    }
}

/// Fewest distinct hex digits a secret may use: 64 random hex digits use all
/// 16 but with vanishing odds; fewer than 8 means a made-up one.
pub const MIN_DISTINCT_HEX_DIGITS: usize = 8;

/// Why `secret` may not sign webhooks outside dry-run, if it may not. Never
/// quotes the secret.
pub fn weakness(secret: &str) -> Option<String> {
    if secret == DEV_SECRET {
        return Some("is the published development secret, which anyone can sign with".into());
    }
    let Some(hex) = secret
        .strip_prefix("whsec_")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    else {
        return Some(format!(
            "is not a Cativa listener secret ({} characters; expected whsec_ followed by 64 hex characters)",
            secret.chars().count()
        ));
    };
    let distinct = hex
        .bytes()
        .map(|b| b.to_ascii_lowercase())
        .collect::<BTreeSet<u8>>()
        .len();
    (distinct < MIN_DISTINCT_HEX_DIGITS).then(|| {
        format!(
            "is too weak to be a real secret (only {distinct} distinct hex digits, at least {MIN_DISTINCT_HEX_DIGITS} expected)"
        )
    })
}

/// `listeners.NAME.customers`: `None` (any tenant) when the list is empty.
fn customers(name: &str, ids: Vec<String>, l: &mut Loader) -> Option<BTreeSet<CustomerId>> {
    if ids.is_empty() {
        return None;
    }
    let mut set = BTreeSet::new();
    for id in ids {
        match CustomerId::parse(id) {
            Ok(c) => {
                set.insert(c);
            }
            Err(_) => {
                let at = l.key(&format!("listeners.{name}.customers"));
                l.problem(format!("{at}: an ID is empty"));
            }
        }
    }
    Some(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_secrets_shaped_like_cativa_ones_are_strong() {
        let good = "whsec_3f9a1c7e5b2d4086af1e9c3b7d5a2e4f60718293a4b5c6d7e8f9012345678abc";
        assert_eq!(weakness(good), None);
        assert_eq!(
            weakness(&good.to_uppercase().replace("WHSEC_", "whsec_")),
            None
        );
        for weak in [
            DEV_SECRET,
            "whsec_change_me",
            "whsec_",
            "hunter2",
            &good[..69],
            format!("{good}0").as_str(),
            good.replace("whsec_", "wh_sec").as_str(),
            "whsec_0123456001234560012345600123456001234560012345600123456001234560",
        ] {
            let why = weakness(weak).unwrap_or_else(|| panic!("{weak} passed"));
            assert!(weak.len() < 8 || !why.contains(weak), "{why}");
        }
        assert!(
            weakness("whsec_0123456001234560012345600123456001234560012345600123456001234560")
                .unwrap()
                .contains("7 distinct hex digits")
        );
        assert!(
            weakness("whsec_01234567012345670123456701234567012345670123456701234567aAaAaAaA")
                .is_none()
        );
    }
}
