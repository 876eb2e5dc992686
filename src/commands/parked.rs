//! `modbridge parked` and `modbridge replay`: the cards kept in Redis for
//! destinations that were broken, listed or delivered on demand.

use std::path::Path;
use std::process::ExitCode;

use crate::config::{ProcessEnv, Settings};
use crate::dedupe::{DedupeStore, Store};
use crate::delivery::{Deliverer, ParkedCard, Policy};
use crate::destination::Target;
use crate::platforms::Sinks;

/// The settings and the store, which must be Redis: only Redis parks cards.
fn parking_store(config: Option<&Path>) -> Result<(Settings, Store), String> {
    // The webhook secret is not needed here: load as for a dry run, then
    // deliver for real.
    let mut settings = Settings::load(config, true, &ProcessEnv).map_err(|e| e.to_string())?;
    settings.dry_run = false;
    let store = crate::app::store_for(&settings).map_err(|e| e.to_string())?;
    match store {
        Store::Redis(_) => Ok((settings, store)),
        Store::Memory(_) => Err("REDIS_URL is not set: cards are only parked in Redis".into()),
    }
}

fn block_on(work: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(work),
        Err(e) => {
            eprintln!("modbridge: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

pub fn list(config: Option<&Path>) -> ExitCode {
    block_on(async {
        let (_, store) = match parking_store(config) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("modbridge: {e}");
                return ExitCode::FAILURE;
            }
        };
        let targets = match store.parked_lists().await {
            Ok(t) => t,
            Err(e) => {
                eprintln!("modbridge: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut total = 0;
        for target in targets {
            let entries = store.parked(&target).await.unwrap_or_default();
            if entries.is_empty() {
                continue;
            }
            println!("{target}: {} parked", entries.len());
            for raw in &entries {
                match serde_json::from_str::<ParkedCard>(raw) {
                    Ok(p) => println!(
                        "  {}  post {}  to {}  ({})",
                        p.parked_at.format("%Y-%m-%d %H:%M:%S"),
                        p.card.post_id,
                        p.card.destination,
                        p.reason
                    ),
                    Err(e) => println!("  unreadable entry: {e}"),
                }
            }
            total += entries.len();
        }
        println!("{total} parked card(s)");
        ExitCode::SUCCESS
    })
}

pub fn replay(config: Option<&Path>, only: Option<&str>) -> ExitCode {
    block_on(async {
        let (settings, store) = match parking_store(config) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("modbridge: {e}");
                return ExitCode::FAILURE;
            }
        };
        let sinks = match Sinks::for_settings(&settings, &crate::config::ProcessEnv) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("modbridge: {e}");
                return ExitCode::FAILURE;
            }
        };
        let deliverer = Deliverer::new(sinks, store.clone(), Policy::from(&settings.delivery));
        let targets = store.parked_lists().await.unwrap_or_default();
        let mut failed = false;
        for raw_target in targets
            .iter()
            .filter(|t| only.is_none_or(|o| o == t.as_str()))
        {
            let target = match Target::parse(raw_target) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("modbridge: {e}");
                    failed = true;
                    continue;
                }
            };
            let entries = store.parked(raw_target).await.unwrap_or_default();
            let n = entries.len();
            let done = deliverer.replay_target(&target, entries).await;
            println!("{raw_target}: delivered {done} of {n}");
            failed |= done < n;
        }
        if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    })
}
