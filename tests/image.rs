//! The container image's default configuration, without a container engine:
//! the binary runs exactly as the Dockerfile's ENV, COPY, ENTRYPOINT, CMD and
//! HEALTHCHECK say, with only the variables of the Dockerfile's documented
//! `docker run` line, in a temporary directory standing in for `/`. The test
//! reads the Dockerfile, so it follows it; `.dockerignore` and
//! `docker-compose.yml` are held to the same paths.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_modbridge");
/// Stands in for the `whsec_...` placeholder of the documented line.
const STRONG_SECRET: &str =
    "whsec_5f2c9a7e1b3d4c6a8e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(name: &str) -> String {
    std::fs::read_to_string(repo().join(name)).unwrap()
}

/// The Dockerfile's instructions (continuations joined, comments dropped),
/// as (INSTRUCTION, arguments).
fn instructions(dockerfile: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (current.is_empty() && trimmed.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (op, args) = current.split_once(' ').unwrap_or((&current, ""));
        out.push((op.to_uppercase(), args.trim().to_owned()));
        current.clear();
    }
    out
}

/// What the runtime stage (after the last FROM) says.
#[derive(Default, Debug)]
struct Image {
    env: Vec<(String, String)>,
    /// (source in the repository, absolute path in the image)
    copies: Vec<(String, String)>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    healthcheck: Vec<String>,
    /// Every COPY source of every stage (what the build context must hold).
    context_sources: Vec<String>,
}

fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("not the exec form ({e}): {args}"))
}

fn image() -> Image {
    let all = instructions(&read("Dockerfile"));
    let mut image = Image::default();
    for (op, args) in &all {
        if op == "COPY" && !args.starts_with("--from") {
            let parts: Vec<&str> = args.split_whitespace().collect();
            for src in &parts[..parts.len() - 1] {
                image.context_sources.push((*src).to_owned());
            }
        }
    }
    let last_from = all.iter().rposition(|(op, _)| op == "FROM").unwrap();
    for (op, args) in &all[last_from..] {
        match op.as_str() {
            "ENV" => {
                for pair in args.split_whitespace() {
                    let (k, v) = pair
                        .split_once('=')
                        .unwrap_or_else(|| panic!("ENV must be KEY=VALUE: {args}"));
                    image
                        .env
                        .push((k.to_owned(), v.trim_matches('"').to_owned()));
                }
            }
            "COPY" if !args.starts_with("--from") => {
                let parts: Vec<&str> = args.split_whitespace().collect();
                assert_eq!(parts.len(), 2, "one source per COPY: {args}");
                image
                    .copies
                    .push((parts[0].to_owned(), parts[1].to_owned()));
            }
            "ENTRYPOINT" => image.entrypoint = exec_form(args),
            "CMD" => image.cmd = exec_form(args),
            "HEALTHCHECK" => {
                let (_, cmd) = args.split_once("CMD ").expect("HEALTHCHECK ... CMD [..]");
                image.healthcheck = exec_form(cmd.trim());
            }
            _ => {}
        }
    }
    image
}

/// The `-e KEY=VALUE` of the documented `docker run` line.
fn documented_run_env() -> Vec<(String, String)> {
    let dockerfile = read("Dockerfile");
    let line = dockerfile
        .lines()
        .find(|l| l.starts_with('#') && l.contains("docker run"))
        .expect("the Dockerfile documents a docker run line");
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0] == "-e")
        .map(|w| {
            let (k, v) = w[1].split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    }
}

/// GET `path` over plain HTTP/1.0; the status code, if anything answered.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split_whitespace().nth(1)?.parse().ok()
}

/// The binary as the image runs it: no variable but the image's ENV (paths
/// under `/` moved into `root`, `0.0.0.0:PORT` listeners moved to free
/// loopback ports) and `extra`.
fn as_in_image(
    image: &Image,
    root: &Path,
    extra: &[(String, String)],
) -> (BTreeMap<String, String>, BTreeMap<u16, u16>) {
    let mut ports = BTreeMap::new();
    let mut env = BTreeMap::new();
    for (k, v) in image.env.iter().chain(extra) {
        let value = if let Some(port) = v.strip_prefix("0.0.0.0:") {
            let free = free_port();
            ports.insert(port.parse::<u16>().unwrap(), free);
            format!("127.0.0.1:{free}")
        } else if v.starts_with('/') {
            root.join(v.trim_start_matches('/')).display().to_string()
        } else {
            v.clone()
        };
        env.insert(k.clone(), value);
    }
    (env, ports)
}

#[test]
fn the_image_default_configuration_starts_and_its_healthcheck_passes() {
    let image = image();
    assert_eq!(
        image.entrypoint,
        ["/usr/local/bin/modbridge"],
        "the binary is copied to /usr/local/bin/modbridge"
    );
    assert_eq!(image.cmd, ["serve"]);
    let root = tempfile::tempdir().unwrap();
    for (src, dest) in &image.copies {
        assert!(dest.starts_with('/'), "COPY to an absolute path: {dest}");
        copy_tree(
            &repo().join(src),
            &root.path().join(dest.trim_start_matches('/')),
        );
    }
    let extra: Vec<(String, String)> = documented_run_env()
        .into_iter()
        .map(|(k, v)| {
            let v = if v.contains("...") {
                assert_eq!(k, "CATIVA_WEBHOOK_SECRET", "placeholder in {k}");
                STRONG_SECRET.to_owned()
            } else {
                v
            };
            (k, v)
        })
        .collect();
    let (env, ports) = as_in_image(&image, root.path(), &extra);
    let public = ports[&8080];
    // WORKDIR /app: an empty directory, so nothing is read from the repository.
    let workdir = root.path().join("app");
    std::fs::create_dir_all(&workdir).unwrap();
    let run = |args: &[String]| {
        let mut cmd = Command::new(BIN);
        cmd.args(args).env_clear().envs(&env).current_dir(&workdir);
        cmd
    };
    let mut server = run(&image.cmd)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let healthcheck: Vec<String> = image.healthcheck[1..].to_vec();
    assert_eq!(image.healthcheck[0], "/usr/local/bin/modbridge");
    let deadline = Instant::now() + Duration::from_secs(20);
    let healthy = loop {
        let status = run(&healthcheck).stderr(Stdio::null()).status().unwrap();
        if status.success() {
            break true;
        }
        if Instant::now() > deadline || server.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let alive = http_status(public, "/healthz");
    let ready = http_status(public, "/readyz");
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    let code = server.wait().unwrap().code();
    let mut stderr = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(healthy, "HEALTHCHECK never passed; serve said:\n{stderr}");
    assert_eq!(alive, Some(200), "{stderr}");
    assert_eq!(ready, Some(200), "{stderr}");
    assert_eq!(code, Some(0), "exit after SIGTERM:\n{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes in logs that are not a terminal:\n{stderr}"
    );

    // Nothing listening: the HEALTHCHECK fails.
    let status = run(&healthcheck).stderr(Stdio::null()).status().unwrap();
    assert_eq!(status.code(), Some(1));
}

#[test]
fn probe_fails_when_nothing_answers() {
    let url = format!("http://127.0.0.1:{}/healthz", free_port());
    let out = Command::new(BIN)
        .args(["probe", "--url", &url, "--timeout", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&url));
}

#[test]
fn the_build_context_holds_every_copy_source_and_nothing_else() {
    let ignore = read(".dockerignore");
    let rules: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(rules.first(), Some(&"*"), "an allow-list: `*` first");
    let allowed: Vec<&str> = rules[1..]
        .iter()
        .map(|l| {
            l.strip_prefix('!')
                .unwrap_or_else(|| panic!("only `!` lines after `*`: {l}"))
        })
        .map(|l| l.trim_end_matches('/'))
        .collect();
    for src in image().context_sources {
        let src = src.trim_end_matches('/');
        assert!(
            allowed.contains(&src),
            "COPY {src}: .dockerignore keeps it out of the build context"
        );
    }
}

#[test]
fn compose_mounts_the_image_paths_and_keeps_metrics_on_loopback() {
    let compose = read("docker-compose.yml");
    let image = image();
    for (_, dest) in &image.copies {
        assert!(
            compose.contains(&format!(":{dest}:ro")),
            "docker-compose.yml does not mount {dest}"
        );
    }
    let env: BTreeMap<_, _> = image.env.iter().cloned().collect();
    assert_eq!(env["MODBRIDGE_CONFIG"], "/etc/modbridge/modbridge.toml");
    assert_eq!(env["MODBRIDGE_RULES"], "/etc/modbridge/rules");
    assert!(compose.contains("\"127.0.0.1:9090:9090\""), "{compose}");
    assert!(
        compose.contains("CATIVA_WEBHOOK_SECRET: ${CATIVA_WEBHOOK_SECRET:?"),
        "compose must refuse to start without a secret"
    );
}

#[test]
fn the_image_version_label_is_the_crate_version() {
    let version = instructions(&read("Dockerfile"))
        .into_iter()
        .find_map(|(op, args)| {
            (op == "ARG")
                .then(|| args.strip_prefix("VERSION=").map(str::to_owned))
                .flatten()
        })
        .expect("ARG VERSION=… (the org.opencontainers.image.version label)");
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
}
