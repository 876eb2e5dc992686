//! `modbridge backtest FILE.jsonl [--baseline DIR] [--json]`: how the
//! configured rules treat a corpus of raw `post_created` bodies (one per
//! line), and with a baseline rules directory, which posts would gain or lose
//! a card per destination.
//!
//! Owns only the counting and the report; parsing is `intake::payload`'s job
//! and matching is `rules`'.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::intake::payload::Event;
use crate::post::Post;
use crate::rules::{RuleSet, Verdict};

/// One match that fired: `(rules file, match name)`.
type Key = (String, String);

/// What one post did under one rule set, reduced to what the report needs.
#[derive(Debug, Default)]
struct Outcome {
    /// Matches that routed the post somewhere.
    fired: BTreeSet<Key>,
    /// `mode = "shadow"` matches that fired (no card).
    shadow: BTreeSet<Key>,
    /// Destination name → the matches that sent a card there.
    cards: BTreeMap<String, BTreeSet<Key>>,
    not_fully_checked: bool,
}

impl Outcome {
    fn of(verdict: &Verdict) -> Self {
        let mut out = Outcome {
            not_fully_checked: verdict.not_fully_checked,
            ..Outcome::default()
        };
        for routing in &verdict.routings {
            let keys = out
                .cards
                .entry(routing.destination.name().to_string())
                .or_default();
            for reason in &routing.reasons {
                let key = (reason.rules_file.clone(), reason.name().to_string());
                keys.insert(key.clone());
                out.fired.insert(key);
            }
        }
        for reason in &verdict.shadow {
            out.shadow
                .insert((reason.rules_file.clone(), reason.name().to_string()));
        }
        out
    }
}

#[derive(Debug, Serialize)]
struct BadLine {
    line: usize,
    error: String,
}

#[derive(Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
struct MatchCount {
    rules_file: String,
    #[serde(rename = "match")]
    name: String,
    shadow: bool,
    posts: usize,
}

#[derive(Debug, Serialize)]
struct Change {
    post_id: String,
    destination: String,
    /// `file/match` names: the current rules' for a gain, the baseline's for a loss.
    matches: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Diff {
    gained: Vec<Change>,
    lost: Vec<Change>,
    /// Destination → (gained, lost).
    totals: BTreeMap<String, Totals>,
}

#[derive(Debug, Default, Serialize)]
struct Totals {
    gained: usize,
    lost: usize,
}

/// What a corpus did under the rules (and against a baseline).
#[derive(Debug, Serialize)]
pub struct Report {
    lines: usize,
    posts: usize,
    other_events: usize,
    bad_lines: Vec<BadLine>,
    posts_with_a_card: usize,
    not_fully_checked: usize,
    matches: Vec<MatchCount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline: Option<Diff>,
}

pub fn main(config: Option<&Path>, file: &Path, baseline: Option<&Path>, json: bool) -> ExitCode {
    let (settings, rules) = match super::settings_and_rules(config) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let base = match baseline {
        None => None,
        Some(dir) => match RuleSet::load_dir(dir, &settings.destinations) {
            Ok(loaded) => Some(loaded.rules.with_max_eval(settings.rules_max_eval)),
            Err(e) => {
                eprintln!(
                    "modbridge: the baseline rules in {} do not load:\n{e}",
                    dir.display()
                );
                return ExitCode::from(super::EXIT_CONFIG);
            }
        },
    };
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("modbridge: cannot read {}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    let report = run(&text, &rules, base.as_ref(), progress);
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(doc) => println!("{doc}"),
            Err(e) => {
                eprintln!("modbridge: cannot write the JSON report: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print_text(&report);
    }
    ExitCode::SUCCESS
}

/// Corpora of at least this many posts show a progress bar (on a terminal).
pub const PROGRESS_MIN_POSTS: usize = 1_000;

/// A progress bar over `posts` evaluations on stderr, or a hidden one when the
/// corpus is short or stderr is not a terminal (a pipe, a log file, CI): the
/// report and the JSON go to stdout, never mixed with it.
fn progress(posts: usize) -> ProgressBar {
    if posts < PROGRESS_MIN_POSTS || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(posts as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "evaluating {pos}/{len} posts [{bar:40}] {percent}%, {per_sec}, about {eta} left",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Parses every line of `text` as a raw body and evaluates the posts against
/// `rules` (and `base`), on every core. Public for the throughput example.
pub fn backtest(text: &str, rules: &RuleSet, base: Option<&RuleSet>) -> Report {
    run(text, rules, base, |_| ProgressBar::hidden())
}

/// [`backtest`], showing the evaluation's progress on the bar `bar` makes for
/// the number of posts.
fn run(
    text: &str,
    rules: &RuleSet,
    base: Option<&RuleSet>,
    bar: impl FnOnce(usize) -> ProgressBar,
) -> Report {
    let mut posts = Vec::new();
    let mut bad_lines = Vec::new();
    let mut other_events = 0;
    let numbered: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .collect();
    let lines = numbered.len();
    // Parsing a body costs about as much as evaluating it: on every core too.
    let parsed = on_every_core(&numbered, |(_, line)| Event::parse(line.as_bytes()));
    for ((i, _), event) in numbered.iter().zip(parsed) {
        match event {
            Ok(Event::Post(p)) => posts.push(*p),
            Ok(Event::Other) => other_events += 1,
            Err(e) => bad_lines.push(BadLine {
                line: i + 1,
                error: e.to_string(),
            }),
        }
    }
    let bar = bar(posts.len());
    let outcomes = evaluate_all(&posts, rules, base, &bar);
    bar.finish_and_clear();

    let mut counts: BTreeMap<(Key, bool), usize> = BTreeMap::new();
    let mut posts_with_a_card = 0;
    let mut not_fully_checked = 0;
    for (now, _) in &outcomes {
        for key in &now.fired {
            *counts.entry((key.clone(), false)).or_default() += 1;
        }
        for key in &now.shadow {
            *counts.entry((key.clone(), true)).or_default() += 1;
        }
        if !now.cards.is_empty() {
            posts_with_a_card += 1;
        }
        if now.not_fully_checked {
            not_fully_checked += 1;
        }
    }
    let matches = counts
        .into_iter()
        .map(|(((rules_file, name), shadow), posts)| MatchCount {
            rules_file,
            name,
            shadow,
            posts,
        })
        .collect();

    let baseline = base.map(|_| diff(&posts, &outcomes));
    Report {
        lines,
        posts: posts.len(),
        other_events,
        bad_lines,
        posts_with_a_card,
        not_fully_checked,
        matches,
        baseline,
    }
}

/// Evaluates every post (and against the baseline, if any) on every core,
/// in order.
fn evaluate_all(
    posts: &[Post],
    rules: &RuleSet,
    base: Option<&RuleSet>,
    bar: &ProgressBar,
) -> Vec<(Outcome, Option<Outcome>)> {
    let one = |post: &Post| {
        let outcome = (
            Outcome::of(&rules.evaluate(post)),
            base.map(|b| Outcome::of(&b.evaluate(post))),
        );
        bar.inc(1);
        outcome
    };
    on_every_core(posts, one)
}

/// `f` of every item, in order, the items split between the cores.
fn on_every_core<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads <= 1 || items.len() < 256 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(f).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(done) => done,
                // A panic in the rules engine is a bug: show it, as a
                // sequential run would have.
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

fn diff(posts: &[Post], outcomes: &[(Outcome, Option<Outcome>)]) -> Diff {
    let names = |keys: &BTreeSet<Key>| keys.iter().map(|(f, m)| format!("{f}/{m}")).collect();
    let empty = Outcome::default();
    let mut gained = Vec::new();
    let mut lost = Vec::new();
    let mut totals: BTreeMap<String, Totals> = BTreeMap::new();
    for (post, (now, before)) in posts.iter().zip(outcomes) {
        let before = before.as_ref().unwrap_or(&empty);
        for (dest, keys) in &now.cards {
            if !before.cards.contains_key(dest) {
                totals.entry(dest.clone()).or_default().gained += 1;
                gained.push(Change {
                    post_id: post.post_id.to_string(),
                    destination: dest.clone(),
                    matches: names(keys),
                });
            }
        }
        for (dest, keys) in &before.cards {
            if !now.cards.contains_key(dest) {
                totals.entry(dest.clone()).or_default().lost += 1;
                lost.push(Change {
                    post_id: post.post_id.to_string(),
                    destination: dest.clone(),
                    matches: names(keys),
                });
            }
        }
    }
    Diff {
        gained,
        lost,
        totals,
    }
}

impl Report {
    /// How many lines were `post_created` bodies.
    pub fn posts(&self) -> usize {
        self.posts
    }

    /// How many posts would get at least one card.
    pub fn posts_with_a_card(&self) -> usize {
        self.posts_with_a_card
    }
}

fn print_text(r: &Report) {
    println!(
        "{} lines: {} posts, {} other events, {} bad lines",
        r.lines,
        r.posts,
        r.other_events,
        r.bad_lines.len()
    );
    for bad in &r.bad_lines {
        println!("  line {}: {}", bad.line, bad.error);
    }
    println!(
        "{} posts would get a card; {} not fully checked (rules.max_eval_ms ran out)",
        r.posts_with_a_card, r.not_fully_checked
    );
    let mut file = None;
    for m in &r.matches {
        if file != Some(&m.rules_file) {
            println!("{}:", m.rules_file);
            file = Some(&m.rules_file);
        }
        let mark = if m.shadow { " (shadow: no card)" } else { "" };
        println!("  {:<32} {:>8} posts{mark}", m.name, m.posts);
    }
    if let Some(d) = &r.baseline {
        println!("against the baseline:");
        for c in &d.gained {
            println!(
                "  GAIN {} -> {}: {}",
                c.post_id,
                c.destination,
                c.matches.join(", ")
            );
        }
        for c in &d.lost {
            println!(
                "  LOSE {} -> {}: {}",
                c.post_id,
                c.destination,
                c.matches.join(", ")
            );
        }
        if d.totals.is_empty() {
            println!("  no post gains or loses a card");
        }
        for (dest, t) in &d.totals {
            println!("  {dest}: {} gained, {} lost", t.gained, t.lost);
        }
    }
}
