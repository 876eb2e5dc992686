//! Architecture invariants the compiler cannot see, checked by reading the
//! source tree (after rust-analyzer's tidy test). Each failure names the file
//! and line, and what to do instead.

use std::path::{Path, PathBuf};

/// Every `.rs` file below `dir`, with its path relative to the crate root.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The lines of a source file that are code: comments and doc comments are
/// left out so prose may name anything.
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .map(|(i, l)| (i + 1, l.to_owned()))
        .collect()
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The first-level modules of this crate a line refers to (`crate::x`).
fn crate_modules(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.push(name);
        } else if let Some(braced) = after.strip_prefix('{') {
            // `use crate::{a, b::{c, d}}`: every first-level name in the braces.
            let mut depth = 0;
            let mut item = String::new();
            for c in braced.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.push(item.trim().split("::").next().unwrap_or("").to_owned());
                        item.clear();
                    }
                    _ if depth == 0 => item.push(c),
                    _ => {}
                }
            }
            found.push(item.trim().split("::").next().unwrap_or("").to_owned());
        }
        rest = after;
    }
    found.retain(|n| !n.is_empty());
    found
}

#[test]
fn platform_crates_are_imported_only_in_their_platform_folder() {
    let src = root().join("src");
    let platforms = [
        ("slack_morphism", "src/platforms/slack/"),
        ("serenity", "src/platforms/discord/"),
    ];
    let mut wrong = Vec::new();
    for file in rust_files(&src) {
        let rel = relative(&file);
        for (n, line) in code_lines(&file) {
            for (krate, home) in platforms {
                let uses =
                    line.contains(&format!("{krate}::")) || line.contains(&format!("use {krate}"));
                if uses && !rel.starts_with(home) {
                    wrong.push(format!(
                        "{rel}:{n}: `{krate}` is used outside {home}: put this code in the platform's folder and call it through src/platforms/mod.rs"
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

/// `config` turns files and the environment into checked settings; it may
/// use value modules (IDs, secrets, destinations) but nothing that acts on
/// them (that is how the old import cycles started).
#[test]
fn config_imports_only_value_modules() {
    let allowed = ["config", "post", "secret", "destination"];
    let src = root().join("src");
    let mut files = Vec::new();
    if src.join("config.rs").exists() {
        files.push(src.join("config.rs"));
    }
    if src.join("config").is_dir() {
        files.extend(rust_files(&src.join("config")));
    }
    assert!(!files.is_empty(), "no src/config.rs or src/config/");
    let mut wrong = Vec::new();
    for file in files {
        for (n, line) in code_lines(&file) {
            for module in crate_modules(&line) {
                if !allowed.contains(&module.as_str()) {
                    wrong.push(format!(
                        "{}:{n}: config imports crate::{module}: config may use only {allowed:?}; build runtime objects from Settings in app.rs instead",
                        relative(&file)
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

/// The value modules config may use stay values: `destination` reaches the
/// platforms only for `Target` and the channel-ID types, and those files
/// import nothing of modbridge (so config never depends on platform code
/// that acts: clients, rendering, environment).
#[test]
fn value_modules_stay_leaves() {
    let mut wrong = Vec::new();
    for (n, line) in code_lines(&root().join("src/destination.rs")) {
        for module in crate_modules(&line) {
            let ok = module == "platforms"
                && [
                    "crate::platforms::Target",
                    "crate::platforms::discord::Channel",
                    "crate::platforms::slack::Channel",
                ]
                .iter()
                .any(|p| line.contains(p));
            if !ok {
                wrong.push(format!(
                    "src/destination.rs:{n}: imports crate::{module}: destination may use only platforms::Target and the channel-ID types"
                ));
            }
        }
    }
    for leaf in [
        "src/post.rs",
        "src/secret.rs",
        "src/platforms/target.rs",
        "src/platforms/slack/mod.rs",
        "src/platforms/discord/mod.rs",
    ] {
        for (n, line) in code_lines(&root().join(leaf)) {
            if !crate_modules(&line).is_empty() {
                wrong.push(format!(
                    "{leaf}:{n}: a value file imports crate::…: keep it a leaf (move the code that needs it elsewhere)"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

/// Dedupe stores opaque keys; it knows nothing of what delivery keys them by.
#[test]
fn dedupe_knows_nothing_of_delivery_or_platforms() {
    let forbidden = [
        "delivery",
        "destination",
        "platforms",
        "card",
        "pipeline",
        "rules",
    ];
    let mut wrong = Vec::new();
    for file in rust_files(&root().join("src/dedupe")) {
        for (n, line) in code_lines(&file) {
            for module in crate_modules(&line) {
                if forbidden.contains(&module.as_str()) {
                    wrong.push(format!(
                        "{}:{n}: dedupe imports crate::{module}: pass an opaque key or value instead",
                        relative(&file)
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

/// Rules are pure: no HTTP, Redis, async runtime or platform in `src/rules/`
/// except the reload watcher, which is the rules' one piece of IO.
#[test]
fn rules_know_nothing_of_http_redis_or_platforms() {
    let forbidden_crates = [
        "poem::",
        "redis::",
        "reqwest::",
        "slack_morphism",
        "serenity",
    ];
    let forbidden_modules = ["intake", "dedupe", "delivery", "platforms", "pipeline"];
    let mut wrong = Vec::new();
    for file in rust_files(&root().join("src/rules")) {
        let rel = relative(&file);
        for (n, line) in code_lines(&file) {
            for krate in forbidden_crates {
                if line.contains(krate) {
                    wrong.push(format!("{rel}:{n}: rules use `{krate}`"));
                }
            }
            for module in crate_modules(&line) {
                if forbidden_modules.contains(&module.as_str()) {
                    wrong.push(format!("{rel}:{n}: rules import crate::{module}"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn no_leftover_debugging_or_todo_in_src() {
    let mut wrong = Vec::new();
    for file in rust_files(&root().join("src")) {
        for (n, line) in code_lines(&file) {
            for marker in ["dbg!(", "todo!(", "unimplemented!("] {
                if line.contains(marker) {
                    wrong.push(format!("{}:{n}: {marker}", relative(&file)));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn the_scanner_finds_braced_and_plain_imports() {
    assert_eq!(
        crate_modules("use crate::{post::Post, rules::{A, B}, card};"),
        ["post", "rules", "card"]
    );
    assert_eq!(
        crate_modules("let x = crate::delivery::Policy::default();"),
        ["delivery"]
    );
    assert!(crate_modules("let x = 1;").is_empty());
}

/// Waves sit between delivery and the platforms: delivery asks them where a
/// card goes, so they never reach back up (delivery, pipeline, ingest,
/// intake), and `digest` stays a value module like `card`.
#[test]
fn waves_point_down_and_digest_stays_a_value() {
    let mut wrong = Vec::new();
    let up = ["delivery", "pipeline", "ingest", "intake", "app", "triage"];
    for file in rust_files(&root().join("src/waves")) {
        for (n, line) in code_lines(&file) {
            for module in crate_modules(&line) {
                if up.contains(&module.as_str()) {
                    wrong.push(format!(
                        "{}:{n}: waves import crate::{module}: delivery calls waves, not the other way",
                        relative(&file)
                    ));
                }
            }
        }
    }
    for (n, line) in code_lines(&root().join("src/digest.rs")) {
        for module in crate_modules(&line) {
            if !["card", "destination"].contains(&module.as_str()) {
                wrong.push(format!(
                    "src/digest.rs:{n}: imports crate::{module}: digest holds values only (card, destination)"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}
