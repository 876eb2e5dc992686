//! `modbridge explain PAYLOAD.json`: how the rules treat a payload, and the
//! cards that would be sent (each platform's exact request body).

use std::path::Path;
use std::process::ExitCode;

use crate::dedupe::{MemoryStore, Store, Ttl};
use crate::delivery::{Deliverer, Policy};
use crate::intake::payload::Event;
use crate::pipeline::Pipeline;
use crate::platforms::{self, DryRun, Sinks};
use crate::rules::LiveRules;

pub fn main(config: Option<&Path>, payload: &Path) -> ExitCode {
    let (settings, rules) = match super::settings_and_rules(config) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let body = match std::fs::read(payload) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("modbridge: cannot read {}: {e}", payload.display());
            return ExitCode::FAILURE;
        }
    };
    let post = match Event::parse(&body) {
        Ok(Event::Post(p)) => *p,
        Ok(Event::Other) => {
            println!(
                "not a post_created payload (no PostId, or a CommentId): modbridge would answer 200 and ignore it"
            );
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("modbridge: {}: {e}", payload.display());
            return ExitCode::FAILURE;
        }
    };
    print!("{}", rules.explain(&post));
    let verdict = rules.evaluate(&post);
    let live = LiveRules::new(
        rules,
        settings.rules_dir.clone(),
        settings.destinations.clone(),
    );
    let deliverer = Deliverer::new(
        Sinks::DryRun(DryRun),
        Store::Memory(MemoryStore::new(
            Ttl {
                lease: settings.dedupe.lease,
                done: settings.dedupe.done_ttl,
            },
            1,
        )),
        Policy::default(),
    );
    let pipeline = Pipeline::new(
        live,
        deliverer,
        settings.cards.post_url.clone(),
        settings.cards.groups.clone(),
    );
    let cards = pipeline.cards(&post, &verdict);
    if cards.is_empty() {
        println!("\nno card would be sent");
    }
    let now = chrono::Utc::now();
    for (card, delivery) in cards.iter().zip(&verdict.routings) {
        let target = delivery.destination.target();
        // "trust-safety (slack:C0123ABCD)", or just the spec for inline destinations.
        let label = if card.destination == target.to_string() {
            card.destination.clone()
        } else {
            format!("{} ({target})", card.destination)
        };
        println!(
            "\ncard for {label}, as the {}:",
            platforms::body_name(target)
        );
        match serde_json::to_string_pretty(&platforms::render(card, target, now)) {
            Ok(json) => println!("{json}"),
            Err(e) => eprintln!("modbridge: cannot show the card: {e}"),
        }
    }
    ExitCode::SUCCESS
}
