//! `modbridge parked` and `modbridge replay`: the cards kept in Redis for
//! destinations that were broken, and the dead letters (cards a platform
//! refused), listed, dropped or delivered on demand.

use std::path::Path;
use std::process::ExitCode;

use crate::config::{ProcessEnv, Settings};
use crate::dedupe::{DedupeStore, Store};
use crate::delivery::{Delivered, Deliverer, ListKind, ParkedCard, Policy};
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
        Store::Memory(_) => Err(
            "no Redis configured (REDIS_URL, or REDIS_SENTINELS with REDIS_SENTINEL_MASTER): cards are only parked in Redis"
                .into(),
        ),
    }
}

fn deliverer(settings: &Settings, store: &Store) -> Result<Deliverer, String> {
    let sinks = Sinks::for_settings(settings, &ProcessEnv)?;
    Ok(Deliverer::new(
        sinks,
        store.clone(),
        Policy::from(&settings.delivery),
    ))
}

pub(super) fn block_on(
    work: impl std::future::Future<Output = Result<ExitCode, String>>,
) -> ExitCode {
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(work).unwrap_or_else(|e| {
            eprintln!("modbridge: {e}");
            ExitCode::FAILURE
        }),
        Err(e) => {
            eprintln!("modbridge: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// "3 h", "2 d": how long ago.
fn age(since: chrono::DateTime<chrono::Utc>) -> String {
    let secs = (chrono::Utc::now() - since).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7_200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3_600),
        s => format!("{} d", s / 86_400),
    }
}

/// Every entry of every list: (list name, what it is, raw entry).
async fn entries(store: &Store) -> Result<Vec<(String, ListKind, String)>, String> {
    let mut out = Vec::new();
    for list in store.parked_lists().await.map_err(|e| e.to_string())? {
        let Some(kind) = ListKind::parse(&list) else {
            continue;
        };
        for raw in store.parked(&list).await.map_err(|e| e.to_string())? {
            out.push((list.clone(), kind.clone(), raw));
        }
    }
    Ok(out)
}

pub fn list(config: Option<&Path>) -> ExitCode {
    block_on(async {
        let (_, store) = parking_store(config)?;
        let (mut parked, mut dead) = (0, 0);
        println!(
            "ID          KIND         TARGET                          DESTINATION   AGE     POST  REASON"
        );
        for (_, kind, raw) in entries(&store).await? {
            match serde_json::from_str::<ParkedCard>(&raw) {
                Ok(p) => {
                    println!(
                        "{:<11} {:<12} {:<31} {:<13} {:<7} {}  {}",
                        p.id(),
                        kind.label(),
                        kind.target(),
                        p.card.destination,
                        age(p.parked_at),
                        p.card.post_id,
                        p.reason
                    );
                    match kind {
                        ListKind::Parked(_) => parked += 1,
                        ListKind::DeadLetter(_) => dead += 1,
                    }
                }
                Err(e) => println!(
                    "-           {:<12} {}  unreadable entry: {e}",
                    kind.label(),
                    kind.target()
                ),
            }
        }
        println!("{parked} parked card(s), {dead} dead letter(s)");
        Ok(ExitCode::SUCCESS)
    })
}

pub fn drop(config: Option<&Path>, id: &str) -> ExitCode {
    block_on(async {
        let (_, store) = parking_store(config)?;
        for (list, kind, raw) in entries(&store).await? {
            let Ok(p) = serde_json::from_str::<ParkedCard>(&raw) else {
                continue;
            };
            if p.id() == id {
                store.unpark(&list, &raw).await.map_err(|e| e.to_string())?;
                println!(
                    "dropped {} {id} for {} (post {})",
                    kind.label(),
                    kind.target(),
                    p.card.post_id
                );
                return Ok(ExitCode::SUCCESS);
            }
        }
        Err(format!(
            "no parked card or dead letter has ID {id:?}; `modbridge parked` lists them"
        ))
    })
}

pub fn replay_one(config: Option<&Path>, id: &str) -> ExitCode {
    block_on(async {
        let (settings, store) = parking_store(config)?;
        let deliverer = deliverer(&settings, &store)?;
        match deliverer.replay_one(id).await? {
            Some(Delivered::AlreadySent) => println!("{id}: was already delivered; removed"),
            Some(_) => println!("{id}: delivered"),
            None => {
                return Err(format!(
                    "no parked card or dead letter has ID {id:?}; `modbridge parked` lists them"
                ));
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn replay(config: Option<&Path>, only: Option<&str>) -> ExitCode {
    block_on(async {
        let (settings, store) = parking_store(config)?;
        let deliverer = deliverer(&settings, &store)?;
        let mut failed = false;
        for list in store.parked_lists().await.map_err(|e| e.to_string())? {
            let Some(ListKind::Parked(target)) = ListKind::parse(&list) else {
                continue;
            };
            if only.is_some_and(|o| o != list) {
                continue;
            }
            let entries = store.parked(&list).await.map_err(|e| e.to_string())?;
            let n = entries.len();
            let done = deliverer.replay_target(&target, entries).await;
            println!("{list}: delivered {done} of {n}");
            failed |= done < n;
        }
        Ok(if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    })
}
