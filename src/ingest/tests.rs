//! The lifecycle of one execution, against the memory store and a recorder.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::dedupe::{MemoryStore, RedisStore, Ttl};
use crate::delivery::{Deliverer, Policy};
use crate::destination::Destinations;
use crate::intake::payload::Event;
use crate::platforms::{Recorder, Sinks};
use crate::rules::{LiveRules, RuleSet};

const RULES: &str = r#"
name = "Everywhere"
groups = ["*"]
to = ["slack:C0123ABCD"]

[[match]]
name = "forbidden"
keywords = ["forbidden phrase"]
"#;

struct Setup {
    ingest: Ingest,
    store: Store,
    recorder: Recorder,
}

fn ttl(lease: Duration) -> Ttl {
    Ttl {
        lease,
        done: Duration::from_secs(3600),
    }
}

fn setup(lease: Duration, timing: Timing) -> Setup {
    setup_with(Store::Memory(MemoryStore::new(ttl(lease), 1_000)), timing)
}

fn setup_with(store: Store, timing: Timing) -> Setup {
    let destinations = Destinations::default();
    let rules = RuleSet::from_sources(
        Path::new("rules"),
        [("test.toml", RULES.as_bytes())],
        &destinations,
    )
    .unwrap()
    .rules;
    let live = LiveRules::new(rules, "rules".into(), destinations);
    let recorder = Recorder::default();
    let deliverer = Deliverer::new(
        Sinks::Recorder(recorder.clone()),
        store.clone(),
        Policy::default(),
    );
    let pipeline = Pipeline::new(live, deliverer, None, BTreeMap::new());
    Setup {
        ingest: Ingest::new(store.clone(), pipeline, timing),
        store,
        recorder,
    }
}

fn quick() -> Setup {
    setup(
        Duration::from_secs(5),
        Timing::new(Duration::from_secs(5), Duration::from_secs(5)),
    )
}

fn post(id: &str) -> Arc<Post> {
    let body = serde_json::json!({
        "CustomerId": "01HQ0ABCDEF1234567890XYZ",
        "PostId": id,
        "GroupId": null,
        "User": {"Id": "U1", "DisplayName": "Mary Smith", "Username": "mary",
                 "CreatedAt": "2026-04-12T14:32:01Z", "Badges": []},
        "Content": "a forbidden phrase here",
        "ImageUrl": null,
        "CreatedAt": "2026-05-08T14:32:01Z"
    })
    .to_string();
    match Event::parse(body.as_bytes()).unwrap() {
        Event::Post(p) => Arc::new(*p),
        Event::Other => panic!("not a post"),
    }
}

fn exec(id: &str) -> ExecutionId {
    ExecutionId::parse(id).unwrap()
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn first_delivery_is_accepted_and_a_retry_is_a_duplicate() {
    let s = quick();
    match s.ingest.handle(&exec("e1"), post("P1")).await {
        Ingested::Accepted(p) => assert_eq!(p.cards, 1),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        s.ingest.handle(&exec("e1"), post("P1")).await,
        Ingested::Duplicate
    ));
    assert_eq!(s.recorder.cards().len(), 1);
    assert!(s.ingest.inflight().is_empty());
}

#[tokio::test]
async fn a_failure_releases_the_claim_so_the_retry_does_the_work() {
    let s = quick();
    s.recorder.fail_next(1);
    match s.ingest.handle(&exec("e2"), post("P2")).await {
        Ingested::RetryLater(e) => assert!(e.detail.contains("told to fail"), "{e:?}"),
        other => panic!("{other:?}"),
    }
    assert!(s.recorder.cards().is_empty());
    assert!(matches!(
        s.ingest.handle(&exec("e2"), post("P2")).await,
        Ingested::Accepted(p) if p.cards == 1
    ));
}

#[tokio::test]
async fn past_the_deadline_the_work_goes_on_under_its_lease() {
    let s = setup(
        Duration::from_millis(300),
        Timing::new(Duration::from_millis(100), Duration::from_millis(300)),
    );
    s.recorder.set_delay(Duration::from_millis(800));
    assert!(matches!(
        s.ingest.handle(&exec("e3"), post("P3")).await,
        Ingested::StillRunning
    ));
    assert_eq!(s.ingest.inflight().len(), 1);
    // Longer than the lease: only renewal keeps it.
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(matches!(
        s.ingest.handle(&exec("e3"), post("P3")).await,
        Ingested::InFlight { .. }
    ));
    wait_until("the background work ends", || {
        s.ingest.inflight().is_empty()
    })
    .await;
    assert_eq!(s.recorder.cards().len(), 1);
    assert!(matches!(
        s.ingest.handle(&exec("e3"), post("P3")).await,
        Ingested::Duplicate
    ));
}

#[tokio::test]
async fn a_lost_lease_still_sends_one_card() {
    // Renewal slower than the lease: it is lost while the card is being sent,
    // and a retry takes the execution over.
    let s = setup(
        Duration::from_millis(100),
        Timing {
            deadline: Duration::from_secs(5),
            renew_every: Duration::from_secs(60),
            max_processing: DEFAULT_MAX_PROCESSING,
        },
    );
    s.recorder.set_delay(Duration::from_millis(400));
    let first = {
        let ingest = s.ingest.clone();
        tokio::spawn(async move { ingest.handle(&exec("e4"), post("P4")).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = s.ingest.handle(&exec("e4"), post("P4")).await;
    let first = first.await.unwrap();
    let results = [&first, &second];
    let sent: usize = results
        .iter()
        .map(|r| match r {
            Ingested::Accepted(p) => p.cards,
            _ => 0,
        })
        .sum();
    let already: usize = results
        .iter()
        .map(|r| match r {
            Ingested::Accepted(p) => p.already_sent,
            _ => 0,
        })
        .sum();
    assert_eq!((sent, already), (1, 1), "{first:?} / {second:?}");
    assert_eq!(s.recorder.cards().len(), 1);
}

#[tokio::test]
async fn shutdown_waits_then_releases_what_cannot_finish() {
    let s = setup(
        Duration::from_secs(30),
        Timing::new(Duration::from_millis(50), Duration::from_secs(30)),
    );
    s.recorder.set_delay(Duration::from_secs(3));
    assert!(matches!(
        s.ingest.handle(&exec("e5"), post("P5")).await,
        Ingested::StillRunning
    ));
    assert_eq!(s.ingest.drain(Duration::from_millis(100)).await, 1);
    // The claim is free for Cativa's retry at once.
    assert!(matches!(
        s.store.claim(&exec("e5")).await.unwrap(),
        Claim::First(_)
    ));

    // Work that ends within the grace period is waited for, not released.
    let s = setup(
        Duration::from_secs(30),
        Timing::new(Duration::from_millis(50), Duration::from_secs(30)),
    );
    s.recorder.set_delay(Duration::from_millis(300));
    assert!(matches!(
        s.ingest.handle(&exec("e6"), post("P6")).await,
        Ingested::StillRunning
    ));
    assert_eq!(s.ingest.drain(Duration::from_secs(5)).await, 0);
    assert_eq!(s.recorder.cards().len(), 1);
    assert_eq!(s.store.claim(&exec("e6")).await.unwrap(), Claim::Done);
}

#[tokio::test]
async fn a_store_that_cannot_answer_means_nothing_is_done() {
    // Nothing listens on port 1: every Redis operation fails at once.
    let redis = RedisStore::new("redis://127.0.0.1:1/", "t:", ttl(Duration::from_secs(5))).unwrap();
    let s = setup_with(
        Store::Redis(redis),
        Timing::new(Duration::from_secs(5), Duration::from_secs(5)),
    );
    assert!(matches!(
        s.ingest.handle(&exec("e7"), post("P7")).await,
        Ingested::StoreUnavailable
    ));
    assert_eq!(s.recorder.attempts(), 0, "nothing is sent without a claim");
    assert!(s.ingest.inflight().is_empty());
}

#[tokio::test]
async fn work_older_than_max_processing_stops_and_releases_its_lease() {
    let s = setup(
        Duration::from_secs(30),
        Timing::new(Duration::from_millis(50), Duration::from_secs(30))
            .with_max_processing(Duration::from_millis(300)),
    );
    // A platform that answers after 20 s.
    s.recorder.set_delay(Duration::from_secs(20));
    let started = std::time::Instant::now();
    assert!(matches!(
        s.ingest.handle(&exec("e8"), post("P8")).await,
        Ingested::StillRunning
    ));
    while !s.ingest.inflight().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the work still runs after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(300));
    // The lease is free for Cativa's retry at once (not after its 30 s).
    assert!(matches!(
        s.store.claim(&exec("e8")).await.unwrap(),
        Claim::First(_)
    ));
    assert!(s.recorder.cards().is_empty(), "the cut call sent nothing");
}
