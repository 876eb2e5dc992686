//! `[destinations.NAME]` and `[alerts]`: the named places cards may go, and
//! the one modbridge's own notices go to.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::loader::Loader;
use crate::destination::{Destination, Destinations, RawDestination};

/// `[destinations.NAME]` tables as written, by name.
pub(super) type RawDestinations = BTreeMap<String, RawDestination>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlerts {
    to: String,
}

/// The configured destinations, and the name `[alerts] to` gives (checked to
/// be one of them).
pub(super) fn build(
    raw: RawDestinations,
    alerts: Option<RawAlerts>,
    l: &mut Loader,
) -> (Destinations, Option<String>) {
    let mut named = Vec::new();
    for (name, raw_dest) in raw {
        match Destination::from_raw(&name, raw_dest) {
            Ok(d) => named.push(d),
            Err(e) => {
                let at = l.key(&format!("destinations.{name}"));
                l.problem(format!("{at}: {e}"));
            }
        }
    }
    let destinations = Destinations::new(named);
    let alerts_to = alerts.map(|a| a.to);
    if let Some(to) = &alerts_to
        && let Err(e) = destinations.resolve(to)
    {
        let at = l.key("alerts.to");
        l.problem(format!("{at}: {e}"));
    }
    (destinations, alerts_to)
}
