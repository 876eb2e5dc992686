//! `[dedupe]`: how long an event is claimed and remembered, and where;
//! `[redis]`: how the Redis server is found (Sentinel) and trusted (TLS CA).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::loader::Loader;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDedupe {
    lease_secs: Option<u64>,
    done_ttl_days: Option<u64>,
    memory_capacity: Option<usize>,
    key_prefix: Option<String>,
}

#[derive(Debug, Clone)]
pub struct DedupeSettings {
    pub lease: Duration,
    pub done_ttl: Duration,
    pub memory_capacity: usize,
    pub key_prefix: String,
    /// `[redis]`: Sentinel and TLS (used when Redis is).
    pub redis: RedisSettings,
}

impl DedupeSettings {
    /// `deadline`: the intake deadline; the lease outlives it by 5 s unless set.
    pub(super) fn build(
        raw: RawDedupe,
        redis: RawRedis,
        deadline: Duration,
        l: &mut Loader,
    ) -> Self {
        let lease_secs = raw.lease_secs.unwrap_or(deadline.as_secs() + 5).max(1);
        let done_ttl_days = l
            .whole_number("MODBRIDGE_DEDUPE_TTL_DAYS", raw.done_ttl_days, 7)
            .max(1);
        Self {
            lease: Duration::from_secs(lease_secs),
            done_ttl: Duration::from_secs(done_ttl_days * 86_400),
            memory_capacity: raw.memory_capacity.unwrap_or(100_000),
            key_prefix: raw.key_prefix.unwrap_or_else(|| "modbridge:".into()),
            redis: RedisSettings::build(redis, l),
        }
    }
}

/// `[redis]`: how the Redis server is found and trusted (`REDIS_URL` says
/// which one, with its password, database and `rediss://` for TLS).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRedis {
    sentinels: Option<Vec<String>>,
    master: Option<String>,
    ca_file: Option<PathBuf>,
}

/// Checked `[redis]` settings.
#[derive(Clone, Default)]
pub struct RedisSettings {
    /// Redis Sentinels that name the master (`host:port`, or a `redis://` /
    /// `rediss://` URL when one needs a password or TLS). Empty: `REDIS_URL`'s
    /// host is the server.
    pub sentinels: Vec<String>,
    /// The master's name in the sentinels (`sentinel monitor NAME …`); set
    /// whenever `sentinels` is.
    pub master: Option<String>,
    /// The CA certificates (PEM) that `rediss://` servers are checked against,
    /// instead of the system's.
    pub ca_pem: Option<Vec<u8>>,
}

impl RedisSettings {
    fn build(raw: RawRedis, l: &mut Loader) -> Self {
        let sentinels: Vec<String> = match l.var("REDIS_SENTINELS") {
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            None => raw.sentinels.unwrap_or_default(),
        };
        for s in &sentinels {
            if let Err(e) = check_sentinel(s) {
                l.problem(format!(
                    "REDIS_SENTINELS / [redis] sentinels: {:?} {e}",
                    super::redact_url(s)
                ));
            }
        }
        let master = l.var("REDIS_SENTINEL_MASTER").or(raw.master);
        match (&master, sentinels.is_empty()) {
            (None, false) => l.problem(
                "REDIS_SENTINELS / [redis] sentinels is set but the master's name is not: set REDIS_SENTINEL_MASTER or [redis] master to NAME from sentinel.conf's `sentinel monitor NAME …`",
            ),
            (Some(_), true) => l.problem(
                "REDIS_SENTINEL_MASTER / [redis] master is set without sentinels: set REDIS_SENTINELS or [redis] sentinels (\"host:26379\", …), or unset the master",
            ),
            _ => {}
        }
        let ca_file = l.var("REDIS_CA_FILE").map(PathBuf::from).or(raw.ca_file);
        let ca_pem = ca_file.and_then(|path| match std::fs::read(&path) {
            Ok(pem) if pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") => Some(pem),
            Ok(_) => {
                l.problem(format!(
                    "REDIS_CA_FILE / [redis] ca_file: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    path.display()
                ));
                None
            }
            Err(e) => {
                l.problem(format!(
                    "REDIS_CA_FILE / [redis] ca_file: cannot read {}: {e}",
                    path.display()
                ));
                None
            }
        });
        Self {
            sentinels,
            master,
            ca_pem,
        }
    }
}

/// `host:port`, or a `redis://` / `rediss://` URL.
fn check_sentinel(s: &str) -> Result<(), &'static str> {
    if let Some((scheme, _)) = s.split_once("://") {
        return match scheme {
            "redis" | "rediss" => Ok(()),
            _ => Err("is not host:port or a redis:// or rediss:// URL"),
        };
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
            Ok(())
        }
        _ => Err("is not host:port (for example \"10.0.0.5:26379\")"),
    }
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sentinels: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| super::redact_url(s))
            .collect();
        f.debug_struct("RedisSettings")
            .field("sentinels", &sentinels)
            .field("master", &self.master)
            .field("ca", &self.ca_pem.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn build(env: &[(&str, &str)], raw: RawRedis) -> Result<RedisSettings, Vec<String>> {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut l = Loader::new(&env, "modbridge.toml".into());
        let s = RedisSettings::build(raw, &mut l);
        l.finish(s).map_err(|e| e.0)
    }

    #[test]
    fn sentinels_come_from_the_environment_first_and_need_a_master() {
        let s = build(
            &[
                ("REDIS_SENTINELS", " h1:26379, rediss://:pw@h2:26380 ,"),
                ("REDIS_SENTINEL_MASTER", "mymaster"),
            ],
            RawRedis {
                sentinels: Some(vec!["file:1".into()]),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.sentinels, ["h1:26379", "rediss://:pw@h2:26380"]);
        assert_eq!(s.master.as_deref(), Some("mymaster"));
        assert!(!format!("{s:?}").contains("pw"), "{s:?}");

        let e = build(&[("REDIS_SENTINELS", "h1:26379")], RawRedis::default()).unwrap_err();
        assert!(e[0].contains("REDIS_SENTINEL_MASTER"), "{e:?}");
        let e = build(&[("REDIS_SENTINEL_MASTER", "m")], RawRedis::default()).unwrap_err();
        assert!(e[0].contains("without sentinels"), "{e:?}");
    }

    #[test]
    fn a_sentinel_is_host_port_or_a_redis_url() {
        for bad in ["h1", "h1:", ":26379", "h1:0", "h1:70000", "http://h1:26379"] {
            let e = build(
                &[("REDIS_SENTINELS", bad), ("REDIS_SENTINEL_MASTER", "m")],
                RawRedis::default(),
            )
            .unwrap_err();
            assert!(e[0].contains(bad), "{bad}: {e:?}");
        }
        for good in ["h1:26379", "[::1]:26379", "redis://h1:26379", "rediss://h1"] {
            build(
                &[("REDIS_SENTINELS", good), ("REDIS_SENTINEL_MASTER", "m")],
                RawRedis::default(),
            )
            .unwrap();
        }
    }

    #[test]
    fn the_ca_file_must_hold_a_pem_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = build(
            &[("REDIS_CA_FILE", missing.to_str().unwrap())],
            RawRedis::default(),
        )
        .unwrap_err();
        assert!(
            e[0].contains("cannot read") && e[0].contains("missing.pem"),
            "{e:?}"
        );
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let e = build(
            &[],
            RawRedis {
                ca_file: Some(junk),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e[0].contains("no PEM certificate"), "{e:?}");
    }
}
