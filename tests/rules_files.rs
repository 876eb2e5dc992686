//! Rules files through the library API: every kind of bad input gets a precise
//! `path:line:col: message`, every error of every file is reported, the shipped
//! `rules/` directory loads and passes its own tests, and live reload keeps the
//! last good rules.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use modbridge::destination::{
    Destination, Destinations, DiscordChannel, RawDestination, SlackChannel, Target,
};
use modbridge::rules::{LiveRules, LoadErrors, Loaded, RuleSet};

fn destinations() -> Destinations {
    // Through the loader, as `[destinations.NAME]` tables.
    let d = |name: &str, target: Target| {
        let (slack, discord) = match target {
            Target::Slack(c) => (Some(c.as_str().to_owned()), None),
            Target::Discord(c) => (None, Some(c.get().to_string())),
            Target::DiscordWebhook { .. } => (None, None),
        };
        let raw = RawDestination {
            slack,
            discord,
            ..Default::default()
        };
        Destination::from_raw(name, raw).unwrap()
    };
    Destinations::new([
        d(
            "trust-safety",
            Target::Slack(SlackChannel::parse("C0123ABCD").unwrap()),
        ),
        d(
            "urgent",
            Target::Discord(DiscordChannel::parse("112233445566778899").unwrap()),
        ),
    ])
}

fn write(dir: &Path, files: &[(&str, &[u8])]) {
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn load(files: &[(&str, &[u8])]) -> (tempfile::TempDir, Result<Loaded, LoadErrors>) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), files);
    let result = RuleSet::load_dir(dir.path(), &destinations());
    (dir, result)
}

/// The errors, as printed, with the temporary directory replaced by `rules`.
fn errors(files: &[(&str, &str)]) -> Vec<String> {
    let bytes: Vec<(&str, &[u8])> = files.iter().map(|(n, t)| (*n, t.as_bytes())).collect();
    let (dir, result) = load(&bytes);
    match result {
        Ok(_) => panic!("expected errors"),
        Err(e) => {
            let prefix = format!("{}/", dir.path().display());
            e.0.iter()
                .map(|d| d.to_string().replace(&prefix, "rules/"))
                .collect()
        }
    }
}

fn one_error(name: &str, text: &str) -> String {
    let mut all = errors(&[(name, text)]);
    assert_eq!(all.len(), 1, "{all:#?}");
    all.remove(0)
}

const HEAD: &str = "groups = [\"feed\"]\nto = [\"trust-safety\"]\n";

#[test]
fn malformed_toml_points_at_the_fault() {
    let e = one_error("bad.toml", "groups = [\"feed\"\nto = [\"trust-safety\"]\n");
    assert_eq!(
        e,
        "rules/bad.toml:2:1: missing comma between array elements, expected `,`"
    );
    assert!(!e.contains("\n"), "one line: {e}");
}

#[test]
fn unknown_key_suggests_the_known_one() {
    let e = one_error(
        "typo.toml",
        &format!("{HEAD}\n[[match]]\nname = \"m\"\nkeyword = [\"x\"]\n"),
    );
    assert!(
        e.starts_with("rules/typo.toml:6:1: unknown field `keyword`"),
        "{e}"
    );
    assert!(e.ends_with("did you mean `keywords`?"), "{e}");
    let e = one_error("typo.toml", &format!("{HEAD}sensitve = true\n"));
    assert!(
        e.starts_with("rules/typo.toml:3:1: unknown field `sensitve`"),
        "{e}"
    );
    assert!(e.ends_with("did you mean `sensitive`?"), "{e}");
}

#[test]
fn wrong_types_say_what_was_expected() {
    let e = one_error("types.toml", &format!("{HEAD}sensitive = \"yes\"\n"));
    assert!(
        e.starts_with("rules/types.toml:3:13: invalid type: string \"yes\", expected a boolean"),
        "{e}"
    );
    let e = one_error("types.toml", "groups = \"feed\"\nto = [\"trust-safety\"]\n");
    assert!(
        e.starts_with("rules/types.toml:1:10: invalid type: string \"feed\", expected a sequence"),
        "{e}"
    );
    let e = one_error(
        "types.toml",
        &format!("{HEAD}[[match]]\nname = \"m\"\nkeywords = [\"x\"]\nmax_account_age_days = -1\n"),
    );
    assert!(e.starts_with("rules/types.toml:6:24: invalid value"), "{e}");
}

#[test]
fn empty_names_are_errors() {
    let e = errors(&[(
        "names.toml",
        &format!(
            "name = \" \"\n{HEAD}[[match]]\nname = \"\"\nkeywords = [\"x\"]\n[[match]]\nkeywords = [\"y\"]\n"
        ),
    )]);
    assert_eq!(e.len(), 3, "{e:#?}");
    assert!(
        e[0].starts_with("rules/names.toml:1:8: `name` is empty"),
        "{e:#?}"
    );
    assert!(
        e[1].starts_with("rules/names.toml:5:8: match `name` is empty"),
        "{e:#?}"
    );
    assert!(
        e[2].starts_with("rules/names.toml:7:1: this [[match]] has no `name`"),
        "{e:#?}"
    );
}

#[test]
fn invalid_regex_shows_the_regex_crate_caret_display() {
    let e = one_error(
        "regex.toml",
        &format!("{HEAD}[[match]]\nname = \"self-harm\"\npatterns = ['\\bsu[i1!c[i1!]d[e3]\\b']\n"),
    );
    // Column 18 is the `[` that is never closed.
    assert!(
        e.starts_with("rules/regex.toml:5:18: match `self-harm`: invalid regex"),
        "{e}"
    );
    assert!(e.contains("regex parse error:"), "{e}");
    assert!(e.contains("^"), "{e}");
    assert!(e.contains("unclosed character class"), "{e}");
}

#[test]
fn oversized_regex_is_refused_clearly() {
    let e = one_error(
        "big.toml",
        &format!("{HEAD}[[match]]\nname = \"big\"\npatterns = ['\\w{{500}}x']\n"),
    );
    assert!(
        e.starts_with("rules/big.toml:5:13: match `big`: pattern"),
        "{e}"
    );
    assert!(e.contains("is too big"), "{e}");
    assert!(e.contains("1024 KiB"), "{e}");
}

#[test]
fn patterns_that_match_empty_text_are_refused() {
    let e = one_error(
        "empty.toml",
        &format!("{HEAD}[[match]]\nname = \"e\"\npatterns = ['x*']\n"),
    );
    assert!(e.contains("can match empty text"), "{e}");
}

#[test]
fn unknown_destinations_name_the_declared_ones() {
    // Both are errors, in file order.
    let all = errors(&[(
        "dest.toml",
        "groups = [\"feed\"]\nto = [\"trust-safety\", \"nowhere\"]\n[[match]]\nname = \"m\"\nkeywords = [\"x\"]\nto = [\"slack:general\"]\n",
    )]);
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(all[0].starts_with("rules/dest.toml:2:23: unknown destination \"nowhere\": declared ones are trust-safety, urgent"), "{all:#?}");
    assert!(
        all[1].starts_with("rules/dest.toml:6:7: \"general\" is not a Slack channel ID"),
        "{all:#?}"
    );
}

#[test]
fn duplicate_match_names_point_at_the_second() {
    let e = one_error(
        "dup.toml",
        &format!(
            "{HEAD}[[match]]\nname = \"m\"\nkeywords = [\"x\"]\n[[match]]\nname = \"m\"\nkeywords = [\"y\"]\n"
        ),
    );
    assert!(
        e.starts_with("rules/dup.toml:7:8: duplicate match name `m` (first used on line 4)"),
        "{e}"
    );
}

#[test]
fn non_utf8_files_point_at_the_first_bad_byte() {
    let (dir, result) = load(&[("latin1.toml", b"groups = [\"feed\"]\nname = \"Caf\xE9\"\n")]);
    let e = result.unwrap_err().to_string();
    let expected = format!(
        "{}:2:12: the file is not UTF-8 (byte 0xE9 here): save it as UTF-8",
        dir.path().join("latin1.toml").display()
    );
    assert_eq!(e, expected);
}

#[test]
fn a_file_with_no_to_is_an_error() {
    let e = one_error(
        "noto.toml",
        "groups = [\"feed\"]\n[[match]]\nname = \"m\"\nkeywords = [\"x\"]\n",
    );
    assert!(e.starts_with("rules/noto.toml:1:1: no `to`"), "{e}");
    // Unless every match has its own.
    let (_dir, ok) = load(&[(
        "ok.toml",
        b"groups = [\"feed\"]\n[[match]]\nname = \"m\"\nkeywords = [\"x\"]\nto = [\"urgent\"]\n",
    )]);
    assert!(ok.is_ok());
    let e = one_error(
        "emptyto.toml",
        "groups = [\"feed\"]\nto = []\nsensitive = true\n",
    );
    assert!(
        e.starts_with("rules/emptyto.toml:2:6: `to` is empty"),
        "{e}"
    );
}

#[test]
fn missing_groups_and_bad_tests_are_errors() {
    let e = one_error("nogroups.toml", "to = [\"urgent\"]\nsensitive = true\n");
    assert!(
        e.starts_with("rules/nogroups.toml:1:1: missing `groups`"),
        "{e}"
    );
    let e = one_error(
        "badtest.toml",
        &format!(
            "{HEAD}[[match]]\nname = \"m\"\nkeywords = [\"x\"]\n[[test]]\ncontent = \"x\"\nexpect = [\"n\"]\n"
        ),
    );
    assert!(
        e.starts_with(
            "rules/badtest.toml:8:11: this file never gives reason `n`: reasons here are m"
        ),
        "{e}"
    );
}

#[test]
fn every_error_of_every_file_is_reported() {
    let all = errors(&[
        (
            "a.toml",
            "groups = [\"feed\"]\nto = [\"nowhere\"]\n[[match]]\nname = \"m\"\npatterns = ['(']\n",
        ),
        ("b.toml", "groups = [\"feed\"\n"),
        (
            "c.toml",
            "groups = [\"feed\"]\nto = [\"urgent\"]\nsensitive = true\n",
        ),
    ]);
    assert_eq!(all.len(), 3, "{all:#?}");
    assert!(
        all[0].starts_with("rules/a.toml:2:7: unknown destination"),
        "{all:#?}"
    );
    assert_eq!(
        all[1],
        "rules/a.toml:5:14: match `m`: invalid regex (Rust regex syntax):\nregex parse error:\n    (\n    ^\nerror: unclosed group"
    );
    assert_eq!(all[2], "rules/b.toml:1:17: unclosed array, expected `]`");
}

#[test]
fn other_files_are_ignored_and_warnings_reported() {
    let (_dir, result) = load(&[
        ("README.md", b"not rules"),
        (".#editor-lock.toml", b"garbage"),
        (
            "a.toml",
            b"groups = [\"feed\"]\nto = [\"urgent\"]\n[[match]]\nname = \"nothing\"\n",
        ),
    ]);
    let loaded = result.unwrap();
    assert_eq!(loaded.rules.files(), 1);
    let w: Vec<String> = loaded.warnings.iter().map(|w| w.message.clone()).collect();
    assert_eq!(
        w,
        [
            "match `nothing` can never fire: it has no `keywords`, `patterns` or `domains` (inline or in lists)"
        ]
    );
}

#[test]
fn failing_tests_print_expected_and_actual() {
    let (_dir, result) = load(&[(
        "t.toml",
        b"groups = [\"feed\"]\nto = [\"urgent\"]\n[[match]]\nname = \"m\"\nkeywords = [\"spam\"]\nunless = [\"spam and ham\"]\n[[test]]\ncontent = \"spam and ham\"\nexpect = [\"m\"]\n[[test]]\ncontent = \"spam\"\nexpect = [\"m\"]\n",
    )]);
    let report = result.unwrap().rules.run_tests();
    assert_eq!((report.passed(), report.failed()), (1, 1));
    let shown = report.to_string();
    assert!(
        shown.contains("t.toml:7:1: test failed: expected [m], got []"),
        "{shown}"
    );
    assert!(
        shown.contains("cancelled by `unless` phrase \"spam and ham\""),
        "{shown}"
    );
    assert!(shown.ends_with("1 passed, 1 failed"), "{shown}");
}

fn shipped_rules() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

#[test]
fn shipped_rules_load_and_pass_their_tests() {
    let loaded = match RuleSet::load_dir(&shipped_rules(), &destinations()) {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    assert!(loaded.rules.files() >= 3);
    let used: Vec<String> = loaded
        .rules
        .destinations()
        .iter()
        .map(|d| d.name().to_owned())
        .collect();
    assert_eq!(used, ["trust-safety", "urgent"]);
    let report = loaded.rules.run_tests();
    assert_eq!(report.failed(), 0, "{report}");
    assert!(report.passed() >= 10, "{report}");
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn reload_keeps_the_last_good_rules_and_watching_picks_up_changes() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[(
            "a.toml",
            b"groups = [\"feed\"]\nto = [\"urgent\"]\nsensitive = true\n",
        )],
    );
    let initial = RuleSet::load_dir(dir.path(), &destinations())
        .unwrap()
        .rules;
    let live = LiveRules::new(initial, dir.path().to_owned(), destinations());
    assert_eq!(live.status().files, 1);

    write(dir.path(), &[("b.toml", b"groups = [\"feed\"\n")]);
    let err = live.reload_now().unwrap_err();
    assert!(err.to_string().contains("b.toml:1:"), "{err}");
    assert_eq!(live.current().files(), 1, "last good set still running");
    assert!(live.status().last_error.is_some());

    std::fs::remove_file(dir.path().join("b.toml")).unwrap();
    live.reload_now().unwrap();
    assert!(live.status().last_error.is_none());

    let guard = live.watch().unwrap();
    write(
        dir.path(),
        &[(
            "c.toml",
            b"groups = [\"*\"]\nto = [\"urgent\"]\nsensitive = true\n",
        )],
    );
    wait_for("the watcher to load c.toml", || live.current().files() == 2);
    // A ConfigMap-style swap: a new file appears under a dot-name, then is renamed.
    write(
        dir.path(),
        &[(
            ".d.toml.tmp",
            b"groups = [\"*\"]\nto = [\"urgent\"]\nsensitive = true\n",
        )],
    );
    std::fs::rename(dir.path().join(".d.toml.tmp"), dir.path().join("d.toml")).unwrap();
    wait_for("the watcher to load d.toml", || live.current().files() == 3);
    drop(guard);
    write(
        dir.path(),
        &[(
            "e.toml",
            b"groups = [\"*\"]\nto = [\"urgent\"]\nsensitive = true\n",
        )],
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        live.current().files(),
        3,
        "no reloads after the guard is dropped"
    );
}

/// The keys serde accepts, read from its own "unknown field" message.
fn accepted_keys(toml_text: &str) -> Vec<String> {
    let (_dir, result) = load(&[("keys.toml", toml_text.as_bytes())]);
    // Every error is reported now: take the unknown-key one.
    let errors = result.unwrap_err().0;
    let message = errors
        .iter()
        .map(|d| d.message.clone())
        .find(|m| m.starts_with("unknown field"))
        .unwrap_or_else(|| panic!("{errors:?}"));
    let (_, expected) = message
        .split_once("expected one of ")
        .unwrap_or_else(|| panic!("{message}"));
    let expected = expected.split(';').next().unwrap_or_default();
    let mut keys: Vec<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    keys.sort();
    keys
}

fn schema_keys(schema: &serde_json::Value, pointer: &str) -> Vec<String> {
    let props = schema
        .pointer(pointer)
        .and_then(|p| p.as_object())
        .unwrap_or_else(|| panic!("{pointer}"));
    let mut keys: Vec<String> = props.keys().cloned().collect();
    keys.sort();
    keys
}

#[test]
fn the_json_schema_knows_exactly_the_keys_the_loader_accepts() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/rules.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(
        schema_keys(&schema, "/properties"),
        accepted_keys("zzz = 1\n")
    );
    assert_eq!(
        schema_keys(&schema, "/definitions/match/properties"),
        accepted_keys("groups = [\"feed\"]\n[[match]]\nzzz = 1\n")
    );
    assert_eq!(
        schema_keys(&schema, "/definitions/test/properties"),
        accepted_keys("groups = [\"feed\"]\n[[test]]\nzzz = 1\n")
    );
}

#[test]
fn unless_phrases_that_can_never_overlap_a_hit_are_warned_about() {
    let (_dir, result) = load(&[(
        "a.toml",
        b"groups = [\"feed\"]\nto = [\"urgent\"]\n[[match]]\nname = \"self-harm\"\nkeywords = [\"kill myself\"]\npatterns = ['\\bsu[i1!]c[i1!]d[e3]\\b']\nunless = [\"suicide prevention\", \"hotline\", \"kill myself now\"]\n",
    )]);
    let loaded = result.unwrap();
    let w: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains(
            "a.toml:7:33: `unless` phrase \"hotline\" can never overlap a hit of match `self-harm`"
        ),
        "{w:?}"
    );
}

#[test]
fn every_error_in_a_file_is_reported_in_one_run() {
    let errors = errors(&[(
        "many.toml",
        "groups = [\"feed\"]\nto = [\"nowhere\"]\nsensitve = true\n[[match]]\nname = \"m\"\nkeyword = [\"x\"]\npatterns = ['(']\n[[match]]\nname = 1\n[[test]]\ncontent = \"x\"\nexpect = [\"nope\"]\n",
    )]);
    let joined = errors.join("\n");
    for expected in [
        "many.toml:2:7: ",
        "many.toml:3:1: unknown field `sensitve`",
        "many.toml:6:1: unknown field `keyword`",
        "many.toml:7:",
        "many.toml:9:8: invalid type",
        "many.toml:12:11: this file never gives reason `nope`",
    ] {
        assert!(joined.contains(expected), "{expected}: {joined}");
    }
}

/// Whether the live rules send a feed post with `content` anywhere.
fn fires(live: &LiveRules, content: &str) -> bool {
    use modbridge::post::{CustomerId, Post, PostId, UserId};
    let post = Post::text(
        CustomerId::parse("C1").unwrap(),
        PostId::parse("P1").unwrap(),
        UserId::parse("U1").unwrap(),
        content,
        chrono::Utc::now(),
    );
    !live.current().evaluate(&post).is_empty()
}

#[test]
fn editing_a_shared_list_reloads_the_rules_and_a_bad_list_keeps_the_last_good_set() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[(
            "a.toml",
            b"groups = [\"*\"]\nto = [\"urgent\"]\n[[match]]\nname = \"m\"\nkeywords = [\"inline\"]\nlists = [\"words\"]\n",
        )],
    );
    // The lists folder does not exist yet when watching starts.
    let err = RuleSet::load_dir(dir.path(), &destinations()).unwrap_err();
    assert!(err.to_string().contains("no list \"words\""), "{err}");
    std::fs::create_dir(dir.path().join("lists")).unwrap();
    std::fs::write(dir.path().join("lists/words.txt"), "first\n").unwrap();
    let initial = RuleSet::load_dir(dir.path(), &destinations())
        .unwrap()
        .rules;
    std::fs::remove_dir_all(dir.path().join("lists")).unwrap();
    let live = LiveRules::new(initial, dir.path().to_owned(), destinations());
    let _guard = live.watch().unwrap();
    assert!(fires(&live, "the first one"));

    // lists/ created after watching started: seen, and so is a later edit in it.
    std::fs::create_dir(dir.path().join("lists")).unwrap();
    std::fs::write(dir.path().join("lists/words.txt"), "second\n").unwrap();
    wait_for("the new list to load", || fires(&live, "the second one"));
    assert!(!fires(&live, "the first one"));
    std::thread::sleep(Duration::from_millis(400));
    std::fs::write(dir.path().join("lists/words.txt"), "third\n# a comment\n").unwrap();
    wait_for("the list edit to load", || fires(&live, "a third one"));
    assert!(!fires(&live, "the second one"));

    // A bad line: the last good set keeps running, and the error names the line.
    std::fs::write(dir.path().join("lists/words.txt"), "fourth\n\u{200B}\n").unwrap();
    wait_for("the failed reload", || live.status().last_error.is_some());
    let error = live.status().last_error.unwrap();
    assert!(
        error.contains("lists/words.txt:2:1: nothing left once normalised"),
        "{error}"
    );
    assert!(fires(&live, "a third one"), "last good set still running");
    assert!(!fires(&live, "the fourth one"));

    // A ConfigMap-style swap of the list file: written under a dot-name, renamed.
    std::fs::write(dir.path().join("lists/.words.txt.tmp"), "fifth\n").unwrap();
    std::fs::rename(
        dir.path().join("lists/.words.txt.tmp"),
        dir.path().join("lists/words.txt"),
    )
    .unwrap();
    wait_for("the swapped list to load", || fires(&live, "the fifth one"));
    assert!(live.status().last_error.is_none());
    assert!(fires(&live, "still inline"));
}
