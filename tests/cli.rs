//! The real binary, as a newcomer and an admin use it.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_modbridge");
/// Shaped like a Cativa listener secret: `serve` accepts it outside dry-run.
const STRONG_SECRET: &str =
    "whsec_5e0f3c9a71b24d86e1f07a3c5b9d2e48f6a1c3e5b7d90f2a4c6e8b1d3f5a7c9e";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn modbridge(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(repo())
        .env_remove("CATIVA_WEBHOOK_SECRET")
        .env_remove("REDIS_URL")
        .env_remove("REDIS_SENTINELS")
        .env_remove("REDIS_SENTINEL_MASTER")
        .env_remove("REDIS_CA_FILE")
        .env_remove("SLACK_BOT_TOKEN")
        .env_remove("DISCORD_BOT_TOKEN")
        .env_remove("SLACK_SIGNING_SECRET")
        .env_remove("DISCORD_PUBLIC_KEY")
        .env_remove("MODBRIDGE_DRY_RUN")
        .env_remove("MODBRIDGE_LISTEN")
        // The admin listener defaults to 127.0.0.1:9090: tests run side by side.
        .env("MODBRIDGE_ADMIN_LISTEN", "127.0.0.1:0")
        .env_remove("MODBRIDGE_RULES")
        .env_remove("MODBRIDGE_CONFIG")
        .env_remove("RUST_LOG");
    cmd
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn dry_run_serves_on_defaults_and_send_produces_a_card_on_stdout() {
    let port = free_port();
    let mut server = modbridge(&["serve", "--dry-run"])
        .env("MODBRIDGE_LISTEN", format!("0.0.0.0:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/webhooks/cativa");
    let deadline = Instant::now() + Duration::from_secs(10);
    let sent = loop {
        let out = modbridge(&[
            "send",
            "examples/post_created.json",
            "--url",
            &url,
            "--execution-id",
            "cli-1",
        ])
        .output()
        .unwrap();
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let answer = String::from_utf8_lossy(&sent.stdout);
    assert!(
        sent.status.success(),
        "send failed: {answer} {}",
        String::from_utf8_lossy(&sent.stderr)
    );
    assert!(answer.starts_with("200 "), "{answer}");
    assert!(answer.contains("accepted"), "{answer}");
    // The same execution again is a duplicate.
    let again = modbridge(&[
        "send",
        "examples/post_created.json",
        "--url",
        &url,
        "--execution-id",
        "cli-1",
    ])
    .output()
    .unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("duplicate"));

    // Stop it like an orchestrator does, then read what it printed.
    unsafe_kill(server.id(), "TERM");
    let status = wait_timeout(&mut server, Duration::from_secs(15));
    assert_eq!(status, Some(0), "exit status after SIGTERM");
    let stdout = BufReader::new(server.stdout.take().unwrap());
    let cards: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).expect("stdout is JSON lines"))
        .collect();
    assert!(!cards.is_empty(), "no card printed");
    // Each line is the platform body that would be sent (Slack chat.postMessage,
    // Discord create-message / webhook execution); each names the post ID.
    assert!(
        cards
            .iter()
            .all(|c| c.to_string().contains("01HQ8POST1234567890ABCDEFG")),
        "{cards:?}"
    );
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut server.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("INSECURE"),
        "no loud warning about the development secret:\n{stderr}"
    );
    assert!(
        stderr.contains("127.0.0.1"),
        "not bound to loopback:\n{stderr}"
    );
    assert!(
        !stderr.contains("mary@example.com") && !stderr.contains("+15551234567"),
        "personal data in logs"
    );
    assert!(!stderr.contains("highly recommend"), "post content in logs");
}

fn unsafe_kill(pid: u32, signal: &str) {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
}

fn wait_timeout(child: &mut std::process::Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    None
}

#[test]
fn serve_refuses_to_start_without_a_secret() {
    let out = modbridge(&["serve"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("CATIVA_WEBHOOK_SECRET") && err.contains("--dry-run"),
        "{err}"
    );
}

#[test]
fn serve_refuses_to_start_when_a_used_platform_has_no_token() {
    let out = modbridge(&["serve"])
        .env("CATIVA_WEBHOOK_SECRET", STRONG_SECRET)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SLACK_BOT_TOKEN"), "{err}");
}

#[test]
fn serve_exits_2_with_every_rules_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.toml"),
        "to = [\"slack:C0123ABCD\"]\ngroups = [\"*\"]\n[[match]]\nname = \"x\"\npatterns = ['(']\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("b.toml"), "keyword = 1\n").unwrap();
    let out = modbridge(&["serve", "--dry-run"])
        .env("MODBRIDGE_RULES", dir.path())
        .env("MODBRIDGE_LISTEN", format!("127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a.toml:5:"), "{err}");
    assert!(err.contains("b.toml:1:1"), "{err}");
}

#[test]
fn serve_refuses_weak_secrets_outside_dry_run_with_exit_2() {
    for weak in [
        "whsec_0000000000000000000000000000000000000000000000000000000000000000",
        "whsec_change_me",
        "whsec_1212121212121212121212121212121212121212121212121212121212121212",
    ] {
        let out = modbridge(&["serve"])
            .env("CATIVA_WEBHOOK_SECRET", weak)
            .env("MODBRIDGE_LISTEN", format!("127.0.0.1:{}", free_port()))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{weak}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("CATIVA_WEBHOOK_SECRET: "), "{err}");
        assert!(err.contains("Cativa Console > Webhooks"), "{err}");
        assert!(!err.contains(weak), "the secret was echoed: {err}");
    }
}

#[test]
fn serve_refuses_to_start_with_no_rules() {
    let empty = tempfile::tempdir().unwrap();
    let blank = tempfile::tempdir().unwrap();
    // Files that load but hold no rule.
    let no_match = "groups = [\"*\"]\nto = [\"slack:C0123ABCD\"]\n";
    std::fs::write(blank.path().join("a.toml"), no_match).unwrap();
    std::fs::write(blank.path().join("b.toml"), no_match).unwrap();
    for (dir, expect) in [
        (empty.path(), "no *.toml rules file"),
        (blank.path(), "2 rules file(s), none with a [[match]]"),
    ] {
        let out = modbridge(&["serve", "--dry-run"])
            .env("MODBRIDGE_RULES", dir)
            .env("MODBRIDGE_LISTEN", format!("127.0.0.1:{}", free_port()))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(expect) && err.contains("add a *.toml file"),
            "{err}"
        );
        // `check` says the same, before anyone deploys it.
        let check = modbridge(&["check"])
            .env("MODBRIDGE_RULES", dir)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&check.stdout);
        assert_eq!(check.status.code(), Some(1), "{out}");
        assert!(out.contains("error: ") && out.contains(expect), "{out}");
    }
}

#[test]
fn check_says_which_platform_lacks_its_interaction_secret() {
    let check = modbridge(&["check"])
        .env("SLACK_SIGNING_SECRET", "8f742231b10e8888abcd99yyyzzz85a5")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{out}");
    assert!(out.contains("ok: Slack moderator buttons are on"), "{out}");
    // No Redis here: spam waves cannot be digested, and check says so.
    assert!(
        out.contains("note: spam-wave digests need Redis (REDIS_URL)"),
        "{out}"
    );
    assert!(
        out.contains("note: Discord moderator buttons are off: DISCORD_PUBLIC_KEY is not set"),
        "{out}"
    );
    assert!(
        !out.contains("8f742231"),
        "the secret is never printed: {out}"
    );
    // A key that is not 32 bytes of hex fails at once, not with 401s later.
    let bad = modbridge(&["check"])
        .env("DISCORD_PUBLIC_KEY", "not-a-key")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{out}");
    assert!(out.contains("error: DISCORD_PUBLIC_KEY: expected"), "{out}");
}

#[test]
fn check_and_test_pass_on_the_shipped_rules() {
    let check = modbridge(&["check"]).output().unwrap();
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{out}");
    assert!(out.contains("ok:"), "{out}");
    let test = modbridge(&["test"]).output().unwrap();
    let out = String::from_utf8_lossy(&test.stdout);
    assert!(test.status.success(), "{out}");
    assert!(out.contains(" 0 failed"), "{out}");
    assert_eq!(
        out.matches(" passed, ").count(),
        1,
        "the summary prints once: {out}"
    );
}

#[test]
fn check_reports_errors_with_places_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("typo.toml"),
        "to = [\"nowhere\"]\ngroups = [\"*\"]\nsensitive = true\n",
    )
    .unwrap();
    let out = modbridge(&["check"])
        .env("MODBRIDGE_RULES", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("typo.toml:1:"), "{text}");
    assert!(text.contains("nowhere"), "{text}");
}

#[test]
fn check_points_at_a_missing_list_and_test_runs_cases_that_use_lists() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("scams.toml"),
        "groups = [\"feed\"]\nto = [\"trust-safety\"]\n[[match]]\nname = \"scam\"\nlists = [\"scam-words\"]\nunless_lists = [\"warnings\"]\n\
         [[test]]\ncontent = \"a CRYPTO   giveaway today\"\nexpect = [\"scam\"]\n\
         [[test]]\ncontent = \"beware of any crypto giveaway scam\"\nexpect = []\n",
    )
    .unwrap();
    let check = |rules: &Path| {
        modbridge(&["check"])
            .env("MODBRIDGE_RULES", rules)
            .output()
            .unwrap()
    };
    let out = check(dir.path());
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let lists = dir.path().join("lists");
    for expected in [
        format!(
            "scams.toml:5:10: match `scam`: no list \"scam-words\" in `lists`: {} does not exist; there are no lists yet",
            lists.join("scam-words.txt").display()
        ),
        "scams.toml:6:17: match `scam`: no list \"warnings\" in `unless_lists`".to_owned(),
    ] {
        assert!(text.contains(&expected), "{expected}\n{text}");
    }

    std::fs::create_dir(&lists).unwrap();
    std::fs::write(lists.join("scam-words.txt"), "# scams\ncrypto giveaway\n").unwrap();
    std::fs::write(lists.join("warnings.txt"), "giveaway scam\n").unwrap();
    let out = check(dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let test = modbridge(&["test"])
        .env("MODBRIDGE_RULES", dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&test.stdout);
    assert!(test.status.success(), "{text}");
    assert!(text.contains("2 passed, 0 failed"), "{text}");

    // A failing case shows which list the hit came from.
    std::fs::write(lists.join("warnings.txt"), "unrelated\n").unwrap();
    let test = modbridge(&["test"])
        .env("MODBRIDGE_RULES", dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&test.stdout);
    assert_eq!(test.status.code(), Some(1), "{text}");
    assert!(
        text.contains("scam: fired on \"crypto giveaway\" (list scam-words)"),
        "{text}"
    );
}

#[test]
fn explain_shows_each_file_and_the_cards() {
    let out = modbridge(&["explain", "examples/post_created.json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("card for"), "{text}");
}

/// A corpus of raw bodies: each content becomes a feed post with its own ID;
/// `None` is a line that is not JSON.
fn corpus(dir: &Path, contents: &[Option<&str>]) -> std::path::PathBuf {
    let example: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("examples/post_created.json")).unwrap(),
    )
    .unwrap();
    let mut lines = Vec::new();
    for (i, content) in contents.iter().enumerate() {
        match content {
            Some(c) => {
                let mut body = example.clone();
                let obj = body.as_object_mut().unwrap();
                obj.remove("GroupId");
                obj.insert("PostId".into(), format!("POST{i}").into());
                obj.insert("Content".into(), (*c).into());
                lines.push(body.to_string());
            }
            None => lines.push("{not json".to_string()),
        }
    }
    let path = dir.join("corpus.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn rules_dir(dir: &Path, name: &str, file: &str) -> std::path::PathBuf {
    let rules = dir.join(name);
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("scams.toml"), file).unwrap();
    rules
}

#[test]
fn backtest_counts_each_match_and_reports_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_dir(
        dir.path(),
        "now",
        "groups = [\"feed\"]\nto = [\"trust-safety\"]\n\
         [[match]]\nname = \"scam\"\nkeywords = [\"crypto giveaway\"]\n\
         [[match]]\nname = \"promo\"\nkeywords = [\"discount\"]\nmode = \"shadow\"\n",
    );
    let file = corpus(
        dir.path(),
        &[
            Some("crypto giveaway today"),
            Some("a discount"),
            None,
            Some("another crypto giveaway, with a discount"),
            Some("nothing here"),
        ],
    );
    let text = backtest_ok(&["backtest", file.to_str().unwrap()], &rules);
    assert!(text.contains("4 posts"), "{text}");
    assert!(text.contains("line 3: body is not JSON"), "{text}");
    assert!(text.contains("scams.toml:"), "{text}");
    let line = |name: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line in {text}"))
            .to_string()
    };
    assert!(line("scam ").contains(" 2 posts"), "{text}");
    let promo = line("promo ");
    assert!(
        promo.contains(" 2 posts") && promo.contains("shadow"),
        "{text}"
    );
    assert!(text.contains("2 posts would get a card"), "{text}");
}

#[test]
fn backtest_against_a_baseline_lists_gains_and_losses_and_json_parses() {
    let dir = tempfile::tempdir().unwrap();
    let now = rules_dir(
        dir.path(),
        "now",
        "groups = [\"feed\"]\nto = [\"trust-safety\"]\n\
         [[match]]\nname = \"scam\"\nkeywords = [\"crypto giveaway\"]\n",
    );
    let before = rules_dir(
        dir.path(),
        "before",
        "groups = [\"feed\"]\nto = [\"trust-safety\"]\n\
         [[match]]\nname = \"old\"\nkeywords = [\"discount\"]\n",
    );
    let file = corpus(
        dir.path(),
        &[Some("crypto giveaway"), Some("a discount"), Some("hello")],
    );
    let args = [
        "backtest",
        file.to_str().unwrap(),
        "--baseline",
        before.to_str().unwrap(),
    ];
    let text = backtest_ok(&args, &now);
    assert!(
        text.contains("GAIN POST0 -> trust-safety: scams.toml/scam"),
        "{text}"
    );
    assert!(
        text.contains("LOSE POST1 -> trust-safety: scams.toml/old"),
        "{text}"
    );
    assert!(text.contains("trust-safety: 1 gained, 1 lost"), "{text}");

    let mut json_args = args.to_vec();
    json_args.push("--json");
    let out = modbridge(&json_args)
        .env("MODBRIDGE_RULES", &now)
        .output()
        .unwrap();
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["posts"], 3);
    assert_eq!(doc["baseline"]["gained"][0]["post_id"], "POST0");
    assert_eq!(doc["baseline"]["lost"][0]["post_id"], "POST1");
    assert_eq!(doc["baseline"]["totals"]["trust-safety"]["lost"], 1);
    assert_eq!(doc["matches"][0]["match"], "scam");
}

#[test]
fn backtest_progress_shows_on_a_terminal_only_and_never_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_dir(
        dir.path(),
        "now",
        "groups = [\"feed\"]\nto = [\"trust-safety\"]\n\
         [[match]]\nname = \"scam\"\nkeywords = [\"crypto giveaway\"]\n",
    );
    // Long enough for a bar (PROGRESS_MIN_POSTS).
    let contents: Vec<Option<&str>> = (0..1_500)
        .map(|i| {
            Some(if i % 2 == 0 {
                "crypto giveaway"
            } else {
                "hello"
            })
        })
        .collect();
    let file = corpus(dir.path(), &contents);

    // Piped stderr: no bar, and stdout is the JSON alone.
    let out = modbridge(&["backtest", file.to_str().unwrap(), "--json"])
        .env("MODBRIDGE_RULES", &rules)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["posts"], 1_500);

    // On a terminal (util-linux `script` gives the command a pseudo-terminal;
    // stdout goes to a file): the bar is drawn on stderr, stdout stays JSON.
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped the terminal half: no `script` (util-linux) installed");
        return;
    }
    let json = dir.path().join("report.json");
    let command = format!(
        "'{BIN}' backtest '{}' --json > '{}'",
        file.display(),
        json.display()
    );
    let mut script = Command::new("script");
    for (key, value) in modbridge(&[])
        .env("MODBRIDGE_RULES", &rules)
        .env("TERM", "xterm")
        .get_envs()
    {
        match value {
            Some(v) => script.env(key, v),
            None => script.env_remove(key),
        };
    }
    let out = script
        .args(["-qec", &command, "/dev/null"])
        .current_dir(repo())
        .output()
        .unwrap();
    let terminal = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{terminal}");
    assert!(terminal.contains("evaluating"), "{terminal:?}");
    assert!(terminal.contains("/1500 posts"), "{terminal:?}");
    let report = std::fs::read_to_string(&json).unwrap();
    assert!(!report.contains("evaluating"), "{report}");
    let doc: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(doc["posts"], 1_500);
}

#[test]
fn backtest_exit_codes() {
    let missing = modbridge(&["backtest", "/nonexistent/corpus.jsonl"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    let dir = tempfile::tempdir().unwrap();
    let broken = rules_dir(dir.path(), "broken", "to = [\"nowhere\"]\n");
    let file = corpus(dir.path(), &[Some("hello")]);
    let out = modbridge(&["backtest", file.to_str().unwrap()])
        .env("MODBRIDGE_RULES", &broken)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Runs `modbridge ARGS` with `MODBRIDGE_RULES=rules`, expects success and
/// returns its standard output.
fn backtest_ok(args: &[&str], rules: &Path) -> String {
    let out = modbridge(args)
        .env("MODBRIDGE_RULES", rules)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn usage_errors_exit_64_help_and_version_exit_0() {
    for args in [
        &["frobnicate"][..],
        &["serve", "--no-such-option"],
        &["explain"],
        &[],
        &["completions", "tcsh"],
    ] {
        let out = modbridge(args).output().unwrap();
        assert_eq!(out.status.code(), Some(64), "modbridge {args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("error:") || err.contains("Usage:"),
            "modbridge {args:?}: says nothing"
        );
    }
    for args in [&["--help"][..], &["--version"], &["serve", "--help"]] {
        let out = modbridge(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "modbridge {args:?}");
        assert!(!out.stdout.is_empty());
    }
}

#[test]
fn modbridge_config_names_the_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("elsewhere.toml");
    std::fs::write(&config, "[destinations.only-here]\nslack = \"C0123ABCD\"\n").unwrap();
    let rules = rules_dir(
        dir.path(),
        "rules",
        "groups = [\"*\"]\nto = [\"only-here\"]\nsensitive = true\n",
    );
    // Without the variable, ./modbridge.toml has no `only-here`.
    let without = modbridge(&["check"])
        .env("MODBRIDGE_RULES", &rules)
        .output()
        .unwrap();
    assert_eq!(without.status.code(), Some(1));
    let with = modbridge(&["check"])
        .env("MODBRIDGE_RULES", &rules)
        .env("MODBRIDGE_CONFIG", &config)
        .output()
        .unwrap();
    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stdout)
    );
    // A configuration that does not load is exit 2, as with --config.
    std::fs::write(&config, "listen = [\n").unwrap();
    let broken = modbridge(&["test"])
        .env("MODBRIDGE_CONFIG", &config)
        .output()
        .unwrap();
    assert_eq!(broken.status.code(), Some(2));
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let out = modbridge(&["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("modbridge") && script.contains("backtest"),
            "{shell}: {script}"
        );
    }
}

#[test]
fn an_invalid_rust_log_stops_serve_with_exit_2() {
    let out = modbridge(&["serve", "--dry-run"])
        .env("RUST_LOG", "info,modbridge=lots")
        .env("MODBRIDGE_LISTEN", format!("127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("RUST_LOG") && err.contains("\"modbridge=lots\""),
        "{err}"
    );
}

#[test]
fn test_and_explain_exit_2_on_rules_errors_and_explain_1_on_a_bad_payload() {
    let dir = tempfile::tempdir().unwrap();
    let broken = rules_dir(dir.path(), "broken", "to = [\"nowhere\"]\n");
    for args in [&["test"][..], &["explain", "examples/post_created.json"]] {
        let out = modbridge(args)
            .env("MODBRIDGE_RULES", &broken)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "modbridge {args:?}");
    }
    let payload = dir.path().join("not.json");
    std::fs::write(&payload, "{not json").unwrap();
    let out = modbridge(&["explain", payload.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

/// The README's commands table names every subcommand, and its exit-code
/// table every code the commands use.
#[test]
fn the_readme_documents_every_command_and_exit_code() {
    use clap::CommandFactory;
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    for sub in modbridge::cli::Cli::command().get_subcommands() {
        let name = sub.get_name();
        assert!(
            readme.contains(&format!("| `modbridge {name}")),
            "README's commands table lacks `modbridge {name}`"
        );
    }
    let codes = readme
        .split("### Exit codes")
        .nth(1)
        .expect("README has an \"### Exit codes\" section");
    for code in ["| 0 |", "| 1 |", "| 2 |", "| 64 |"] {
        assert!(codes.contains(code), "exit code table lacks {code}");
    }
}

/// The README's first screen: its first two commands are the ones
/// `dry_run_serves_on_defaults_and_send_produces_a_card_on_stdout` runs (it
/// adds only a free port and an execution ID), after the webhook URL and the
/// prerequisites.
#[test]
fn the_readme_first_screen_is_the_two_commands_the_dry_run_test_runs() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let first_screen = &readme[..readme.find("\n## ").unwrap()];
    let blocks: Vec<&str> = first_screen
        .split("```sh\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap().trim())
        .collect();
    assert_eq!(
        blocks[..2],
        [
            "cargo run --release -- serve --dry-run",
            "cargo run --release -- send examples/post_created.json"
        ]
    );
    let before = &first_screen[..first_screen.find("```sh").unwrap()];
    assert!(before.contains("POST /webhooks/cativa"), "{before}");
    assert!(before.contains("Rust ≥ 1.88"), "{before}");
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("rust-version = \"1.88\""),
        "README and Cargo.toml disagree on the minimum Rust"
    );
}
