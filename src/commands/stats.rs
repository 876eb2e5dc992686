//! `modbridge stats`: what moderators decided about each match's cards over
//! the last days (`triage::stats`, counted in Redis by the serving replicas).

use std::path::Path;
use std::process::ExitCode;

use crate::config::{ProcessEnv, Settings};
use crate::dedupe::Store;
use crate::triage::stats::{Row, Stats};

pub fn main(config: Option<&Path>, days: u32, json: bool) -> ExitCode {
    super::parked::block_on(async move {
        let settings = Settings::load(config, true, &ProcessEnv).map_err(|e| e.to_string())?;
        let store = crate::app::store_for(&settings).map_err(|e| e.to_string())?;
        if let Store::Memory(_) = store {
            return Err("no Redis configured (REDIS_URL, or REDIS_SENTINELS with REDIS_SENTINEL_MASTER): moderator outcomes are only kept in Redis (without it, in the serving process's memory, which this command cannot read)".into());
        }
        let today = chrono::Utc::now().date_naive();
        let rows = Stats::new(store)
            .summary(days, today)
            .await
            .map_err(|e| format!("cannot read the counts from Redis: {e}"))?;
        let from = today
            .checked_sub_days(chrono::Days::new(u64::from(days.saturating_sub(1))))
            .unwrap_or(today);
        if json {
            let doc = serde_json::json!({
                "days": days,
                "from": from.to_string(),
                "to": today.to_string(),
                "matches": rows,
            });
            println!("{doc:#}");
        } else {
            print!("{}", table(&rows, days, from, today));
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn table(rows: &[Row], days: u32, from: chrono::NaiveDate, to: chrono::NaiveDate) -> String {
    let mut out = format!(
        "Moderator outcomes per match, last {days} day(s) ({from} to {to}, UTC, by the day each card was posted)\n"
    );
    if rows.is_empty() {
        out.push_str("no cases yet: outcomes are counted once moderators claim, resolve or mark cards (buttons need SLACK_SIGNING_SECRET / DISCORD_PUBLIC_KEY)\n");
        return out;
    }
    let name = |r: &Row| format!("{} / {}", r.rules, r.name);
    let width = rows
        .iter()
        .map(|r| name(r).chars().count())
        .max()
        .unwrap_or(0)
        .max(16);
    out.push_str(&format!(
        "{:<width$}  {:>6}  {:>8}  {:>10}  {:>9}  {:>13}  {:>13}\n",
        "rules / match",
        "cards",
        "resolved",
        "false pos.",
        "precision",
        "claim (med.)",
        "close (med.)"
    ));
    for r in rows {
        let precision = r
            .precision
            .map_or("-".to_owned(), |p| format!("{:.0} %", p * 100.0));
        out.push_str(&format!(
            "{:<width$}  {:>6}  {:>8}  {:>10}  {:>9}  {:>13}  {:>13}\n",
            name(r),
            r.cards,
            r.resolved,
            r.false_positive,
            precision,
            r.median_time_to_claim.unwrap_or("-"),
            r.median_time_to_resolve.unwrap_or("-"),
        ));
    }
    out.push_str("precision = resolved / (resolved + false positive): low means the rule wastes moderators' time\n");
    out
}
