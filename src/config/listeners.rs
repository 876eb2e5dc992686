//! Who may sign webhooks: the shared `CATIVA_WEBHOOK_SECRET`, the
//! `[listeners.NAME]` secrets bound to tenants, and the development secret
//! `--dry-run` falls back to.

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
}

/// A secret that may sign webhooks, and the tenants it may speak for.
#[derive(Debug, Clone)]
pub struct ListenerSecret {
    /// Where it came from (`CATIVA_WEBHOOK_SECRET` or `listeners.NAME`), for logs.
    pub source: String,
    pub secret: Secret,
    /// `None`: any tenant.
    pub customers: Option<BTreeSet<CustomerId>>,
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
    /// The shared variable's secrets, then each listener's; with none at all,
    /// the development secret when `dry_run`, else a problem.
    pub(super) fn build(raw: BTreeMap<String, RawListener>, dry_run: bool, l: &mut Loader) -> Self {
        let mut secrets = Vec::new();
        if let Some(list) = l.var("CATIVA_WEBHOOK_SECRET") {
            let var = "CATIVA_WEBHOOK_SECRET";
            split_secrets(&list, var, var, None, &mut secrets, l);
        }
        for (name, listener) in raw {
            let customers = customers(&name, listener.customers, l);
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
        }
        let insecure_dev_secret = secrets.is_empty() && dry_run;
        if insecure_dev_secret {
            match Secret::new(DEV_SECRET) {
                Ok(secret) => secrets.push(ListenerSecret {
                    source: "development secret (--dry-run)".into(),
                    secret,
                    customers: None,
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
            }),
            Err(e) => l.problem(format!("{var}: {e}")),
        }
    }
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
