//! How the Redis connection is made, kept and moved, apart from what the store
//! does with it.
//!
//! [`RedisTarget`] says where the server is: `REDIS_URL` (its scheme,
//! password and database; its host unless Sentinel names one), or Redis
//! Sentinels that name the master. `rediss://` is TLS (rustls), checked
//! against the system's CAs or the ones given ([`RedisTarget::with_ca`]).
//!
//! [`Link`] is the connection the store sends commands through (a
//! reconnecting `ConnectionManager` underneath). With Sentinel it follows a
//! failover without a restart: it asks the sentinels every second (a failed
//! over master that is still up keeps taking writes until Sentinel demotes
//! it, seconds later), and at once after a connection error, a command that
//! never answered, or a `READONLY` / `MASTERDOWN` answer (the master was
//! demoted); it moves to the master they name. A `READONLY` command was not
//! executed, so it is sent once more to the new master (after the scripts
//! loaded so far, which the new master may not hold). Every master it reaches is checked once for `maxmemory-policy`
//! ([`eviction_warning`]): every modbridge key has a TTL, so any policy but
//! `noeviction` may evict claims, sent records and parked cards.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{
    Arg, AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind,
    IntoConnectionInfo, Pipeline, RedisError, RedisFuture, RedisResult, ServerErrorKind,
    TlsCertificates, Value,
};
use tracing::{debug, info, warn};

use super::StoreError;

/// Per operation: the store's own cap ([`super::redis`]) bounds the whole.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// One sentinel's answer, connection included.
const SENTINEL_TIMEOUT: Duration = Duration::from_millis(800);
/// Errors arrive in bursts: ask the sentinels at most this often.
const RESOLVE_EVERY: Duration = Duration::from_millis(200);
/// Without errors, the sentinels are asked this often.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Where the Redis server is and how it is trusted; built from the settings.
#[derive(Clone)]
pub struct RedisTarget {
    url: Option<String>,
    sentinels: Vec<String>,
    master: String,
    ca_pem: Option<Vec<u8>>,
}

impl RedisTarget {
    /// The server `url` names (`redis://` or `rediss://`).
    pub fn server(url: &str) -> Self {
        Self {
            url: Some(url.to_owned()),
            sentinels: Vec::new(),
            master: String::new(),
            ca_pem: None,
        }
    }

    /// The master the sentinels (`host:port` or `redis(s)://` URLs) name
    /// `master`; `url`, when given, supplies the scheme (`rediss://` for TLS),
    /// user, password and database (its host and port are not used).
    pub fn sentinel(sentinels: Vec<String>, master: &str, url: Option<&str>) -> Self {
        Self {
            url: url.map(str::to_owned),
            sentinels,
            master: master.to_owned(),
            ca_pem: None,
        }
    }

    /// TLS servers (and sentinels) are checked against these CA certificates
    /// (PEM) instead of the system's.
    pub fn with_ca(mut self, ca_pem: Option<Vec<u8>>) -> Self {
        self.ca_pem = ca_pem;
        self
    }
}

/// A connection to the current master, moved by Sentinel when it changes.
/// Cheap to clone; every clone shares one connection.
#[derive(Clone)]
pub(super) struct Link(Arc<Shared>);

struct Shared {
    source: Source,
    db: i64,
    current: RwLock<Option<Arc<Master>>>,
    /// Held while the sentinels are asked; the time they last were.
    resolving: tokio::sync::Mutex<Option<Instant>>,
    /// The bodies of the scripts loaded (`SCRIPT LOAD`), loaded again into a
    /// new master before a command is resent there.
    scripts: std::sync::Mutex<Vec<Vec<u8>>>,
}

enum Source {
    Server,
    Sentinel {
        sentinels: Vec<ConnectionInfo>,
        master: String,
        /// The master's scheme, credentials and database.
        template: Box<ConnectionInfo>,
        ca_pem: Option<Vec<u8>>,
    },
}

struct Master {
    /// `host:port`, for logs (never credentials).
    addr: String,
    manager: ConnectionManager,
    /// Counts masters: tells a stale failure from one already acted on.
    generation: u64,
    policy_checked: Arc<AtomicBool>,
}

impl Link {
    /// Checks the URLs; connects in the background (a Redis that is down at
    /// start-up makes operations fail until it is back).
    pub(super) fn new(target: RedisTarget) -> Result<Self, StoreError> {
        let template = match &target.url {
            Some(url) => url
                .as_str()
                .into_connection_info()
                .map_err(|e| StoreError(format!("REDIS_URL is not a valid Redis URL: {e}")))?,
            None => "redis://127.0.0.1/"
                .into_connection_info()
                .map_err(|e| StoreError(e.to_string()))?,
        };
        let tls = matches!(template.addr(), ConnectionAddr::TcpTls { .. });
        if target.ca_pem.is_some() && !tls {
            return Err(StoreError(
                "REDIS_CA_FILE is set but REDIS_URL is not rediss://: use rediss://HOST:PORT for TLS, or unset REDIS_CA_FILE".into(),
            ));
        }
        let db = template.redis_settings().db();
        let (source, current) = if target.sentinels.is_empty() {
            let addr = show(&template);
            let client = client(template, target.ca_pem.as_deref())?;
            (Source::Server, Some(Arc::new(master(addr, client, 1)?)))
        } else {
            let sentinels = target
                .sentinels
                .iter()
                .map(|s| sentinel_info(s))
                .collect::<Result<Vec<_>, _>>()?;
            let source = Source::Sentinel {
                sentinels,
                master: target.master,
                template: Box::new(template),
                ca_pem: target.ca_pem,
            };
            (source, None)
        };
        let link = Link(Arc::new(Shared {
            source,
            db,
            current: RwLock::new(current),
            resolving: tokio::sync::Mutex::new(None),
            scripts: std::sync::Mutex::new(Vec::new()),
        }));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            // First contact: finds the master, checks its eviction policy.
            let first = link.clone();
            rt.spawn(async move {
                if let Err(e) = redis::cmd("PING").query_async::<String>(&mut &first).await {
                    debug!(error = %e, "redis is not reachable yet");
                }
            });
            if matches!(link.0.source, Source::Sentinel { .. }) {
                rt.spawn(watch(Arc::downgrade(&link.0)));
            }
        }
        Ok(link)
    }

    fn current(&self) -> Option<Arc<Master>> {
        self.0.current.read().ok().and_then(|c| c.clone())
    }

    /// The master to send to, asking the sentinels first if none is known.
    async fn master(&self) -> RedisResult<Arc<Master>> {
        if let Some(m) = self.current() {
            return Ok(m);
        }
        self.resolve(0, false).await?;
        self.current().ok_or_else(|| {
            RedisError::from((ErrorKind::Io, "no Redis master known yet (sentinels asked)"))
        })
    }

    /// Asks the sentinels which master is current, unless someone already
    /// moved past master `seen` or (unless `now`) asked a moment ago; moves to
    /// the master named when it is another one.
    async fn resolve(&self, seen: u64, now: bool) -> RedisResult<()> {
        let Source::Sentinel {
            sentinels,
            master: name,
            template,
            ca_pem,
        } = &self.0.source
        else {
            return Ok(());
        };
        let mut last = self.0.resolving.lock().await;
        let current = self.current();
        let generation = current.as_ref().map_or(0, |m| m.generation);
        if generation != seen {
            return Ok(());
        }
        if !now && current.is_some() && last.is_some_and(|t| t.elapsed() < RESOLVE_EVERY) {
            return Ok(());
        }
        *last = Some(Instant::now());
        let (host, port) = ask_sentinels(sentinels, name, ca_pem.as_deref())
            .await
            .map_err(|e| RedisError::from((ErrorKind::Io, "no sentinel named the master", e)))?;
        let addr = format!("{host}:{port}");
        if current.as_ref().is_some_and(|m| m.addr == addr) {
            return Ok(());
        }
        let tls_addr = match template.addr() {
            ConnectionAddr::TcpTls { insecure, .. } => ConnectionAddr::TcpTls {
                host,
                port,
                insecure: *insecure,
                tls_params: None,
            },
            _ => ConnectionAddr::Tcp(host, port),
        };
        let client = client((**template).clone().set_addr(tls_addr), ca_pem.as_deref())
            .map_err(|e| RedisError::from((ErrorKind::InvalidClientConfig, "master", e.0)))?;
        let next = master(addr.clone(), client, generation + 1)
            .map_err(|e| RedisError::from((ErrorKind::InvalidClientConfig, "master", e.0)))?;
        match &current {
            Some(old) => warn!(
                from = %old.addr,
                to = %addr,
                master = %name,
                "redis master moved (named by the sentinels): following it"
            ),
            None => info!(to = %addr, master = %name, "redis master found through the sentinels"),
        }
        if let Ok(mut slot) = self.0.current.write() {
            *slot = Some(Arc::new(next));
        }
        Ok(())
    }

    /// Asks the sentinels in the background (a failure whose command is gone).
    fn resolve_later(&self, seen: u64) {
        if !matches!(self.0.source, Source::Sentinel { .. }) {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let me = self.clone();
            rt.spawn(async move {
                if let Err(e) = me.resolve(seen, false).await {
                    warn!(error = %e, "cannot find the redis master");
                }
            });
        }
    }

    /// Sends through the current master; `send` runs once more on the new
    /// master after a `READONLY` (nothing was executed).
    async fn call<'a, T, F, Fut>(&'a self, send: F, refused: fn(&T) -> bool) -> RedisResult<T>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>> + 'a,
    {
        let mut again = true;
        loop {
            let master = self.master().await?;
            let pending = Pending {
                link: self,
                generation: master.generation,
                done: false,
            };
            let result = send(master.manager.clone()).await;
            pending.finish();
            let failure = match &result {
                // Server errors arrive as values; `query_async` makes them errors.
                Ok(v) if refused(v) => Failure::Demoted,
                Ok(_) => {
                    // A load first: a swap on every command would bounce the
                    // flag's cache line between the cores.
                    if !master.policy_checked.load(Ordering::Relaxed)
                        && !master.policy_checked.swap(true, Ordering::Relaxed)
                    {
                        check_policy(&master);
                    }
                    Failure::None
                }
                Err(e) if demoted(e) => Failure::Demoted,
                Err(e) if unreachable(e) => Failure::Unreachable,
                Err(_) => Failure::None,
            };
            match failure {
                Failure::Demoted if matches!(self.0.source, Source::Sentinel { .. }) => {
                    // Certainly the wrong master: ask now.
                    let moved = self.resolve(master.generation, true).await.is_ok()
                        && self
                            .current()
                            .is_some_and(|m| m.generation != master.generation);
                    if moved && std::mem::take(&mut again) {
                        self.load_scripts().await;
                        continue;
                    }
                }
                Failure::Unreachable => self.resolve_later(master.generation),
                _ => {}
            }
            return result;
        }
    }
}

/// What a command's outcome says about the master.
enum Failure {
    None,
    /// No longer a master (`READONLY`, `MASTERDOWN`).
    Demoted,
    /// Down or unreachable.
    Unreachable,
}

/// A server error value saying the master was demoted.
fn refused_value(v: &Value) -> bool {
    match v {
        Value::ServerError(e) => demoted(&RedisError::from(e.clone())),
        _ => false,
    }
}

// `&Vec`: `call` takes a `fn(&T)` and `req_packed_commands` answers a `Vec`.
#[allow(clippy::ptr_arg)]
fn refused_values(vs: &Vec<Value>) -> bool {
    vs.iter().any(refused_value)
}

impl Link {
    /// Remembers the body of a `SCRIPT LOAD` passing through.
    fn remember_script(&self, cmd: &Cmd) {
        let mut args = cmd.args_iter().map(|a| match a {
            Arg::Simple(b) => b,
            _ => b"",
        });
        let (Some(name), Some(sub), Some(body)) = (args.next(), args.next(), args.next()) else {
            return;
        };
        if !(name.eq_ignore_ascii_case(b"SCRIPT") && sub.eq_ignore_ascii_case(b"LOAD")) {
            return;
        }
        if let Ok(mut scripts) = self.0.scripts.lock()
            && !scripts.iter().any(|s| s == body)
            && scripts.len() < 64
        {
            scripts.push(body.to_vec());
        }
    }

    /// Loads every script seen into the current master (best effort: a
    /// script missing there only costs the command a `NOSCRIPT`).
    async fn load_scripts(&self) {
        let scripts = self.0.scripts.lock().map(|s| s.clone()).unwrap_or_default();
        let Some(master) = self.current() else {
            return;
        };
        for body in scripts {
            let mut conn = master.manager.clone();
            let loaded = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(body)
                .query_async::<String>(&mut conn)
                .await;
            if let Err(e) = loaded {
                debug!(error = %e, "cannot load a script into the new redis master");
            }
        }
    }
}

/// Asks the sentinels every [`WATCH_EVERY`] while the link lives.
async fn watch(link: std::sync::Weak<Shared>) {
    let mut tick = tokio::time::interval(WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = link.upgrade() else {
            return;
        };
        let link = Link(shared);
        let seen = link.current().map_or(0, |m| m.generation);
        if let Err(e) = link.resolve(seen, false).await {
            debug!(error = %e, "cannot ask the sentinels for the redis master");
        }
    }
}

/// A command under way; dropped unfinished (the store's timeout gave up on
/// it), the master may be gone: the sentinels are asked.
struct Pending<'a> {
    link: &'a Link,
    generation: u64,
    done: bool,
}

impl Pending<'_> {
    fn finish(mut self) {
        self.done = true;
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.link.resolve_later(self.generation);
        }
    }
}

impl Link {
    fn send<'a>(&'a self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.remember_script(cmd);
        Box::pin(self.call(
            move |mut m| async move { m.req_packed_command(cmd).await },
            refused_value,
        ))
    }

    fn send_pipeline<'a>(
        &'a self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(self.call(
            move |mut m| async move { m.req_packed_commands(cmd, offset, count).await },
            refused_values,
        ))
    }
}

/// Commands go through a shared reference: none clones the `Link` (an
/// atomic count on a line every request shares).
impl ConnectionLike for &Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.send(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.send_pipeline(cmd, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.0.db
    }
}

/// The master no longer takes writes: it was demoted, or lost its own master.
fn demoted(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
    ) || {
        // A script's write refused on a replica arrives as the script's error.
        let text = e.to_string();
        text.contains("READONLY") || text.contains("MASTERDOWN")
    }
}

/// The master may be down or unreachable.
fn unreachable(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}

fn client(info: ConnectionInfo, ca_pem: Option<&[u8]>) -> Result<Client, StoreError> {
    let client = match ca_pem {
        Some(pem) => Client::build_with_tls(
            info,
            TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.to_vec()),
            },
        ),
        None => Client::open(info),
    };
    client.map_err(|e| StoreError(format!("redis: {e}")))
}

fn master(addr: String, client: Client, generation: u64) -> Result<Master, StoreError> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    let manager = ConnectionManager::new_lazy_with_config(client, config)
        .map_err(|e| StoreError(e.to_string()))?;
    Ok(Master {
        addr,
        manager,
        generation,
        policy_checked: Arc::new(AtomicBool::new(false)),
    })
}

/// `host:port` or a `redis://` / `rediss://` URL (checked by the settings).
fn sentinel_info(s: &str) -> Result<ConnectionInfo, StoreError> {
    let url = if s.contains("://") {
        s.to_owned()
    } else {
        format!("redis://{s}")
    };
    url.as_str().into_connection_info().map_err(|e| {
        StoreError(format!(
            "REDIS_SENTINELS: {:?} is not host:port or a Redis URL: {e}",
            redact(s)
        ))
    })
}

/// A URL without its password.
fn redact(s: &str) -> String {
    match (s.find("://"), s.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme + 3 => {
            format!("{}***{}", &s[..scheme + 3], &s[at..])
        }
        _ => s.to_owned(),
    }
}

/// `host:port` of a connection (never its credentials).
fn show(info: &ConnectionInfo) -> String {
    match info.addr() {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            format!("{host}:{port}")
        }
        ConnectionAddr::Unix(path) => path.display().to_string(),
        _ => "redis".into(),
    }
}

/// The first sentinel that answers names the master; every failure otherwise.
async fn ask_sentinels(
    sentinels: &[ConnectionInfo],
    name: &str,
    ca_pem: Option<&[u8]>,
) -> Result<(String, u16), String> {
    let mut failures = Vec::new();
    for info in sentinels {
        let asked = tokio::time::timeout(SENTINEL_TIMEOUT, ask(info, name, ca_pem)).await;
        let failure = match asked {
            Ok(Ok(Some(addr))) => return Ok(addr),
            Ok(Ok(None)) => format!("knows no master named {name:?} (check `sentinel monitor`)"),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} ms", SENTINEL_TIMEOUT.as_millis()),
        };
        failures.push(format!("sentinel {}: {failure}", show(info)));
    }
    Err(failures.join("; "))
}

async fn ask(
    info: &ConnectionInfo,
    name: &str,
    ca_pem: Option<&[u8]>,
) -> RedisResult<Option<(String, u16)>> {
    let client = client(info.clone(), ca_pem)
        .map_err(|e| RedisError::from((ErrorKind::InvalidClientConfig, "sentinel", e.0)))?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(SENTINEL_TIMEOUT))
        .set_response_timeout(Some(SENTINEL_TIMEOUT));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(name)
        .query_async(&mut conn)
        .await
}

/// Reads the master's `maxmemory-policy` in the background and says what to
/// change when it may evict modbridge's keys.
fn check_policy(master: &Master) {
    let mut conn = master.manager.clone();
    let addr = master.addr.clone();
    tokio::spawn(async move {
        let info = tokio::time::timeout(
            RESPONSE_TIMEOUT,
            redis::cmd("INFO")
                .arg("memory")
                .query_async::<String>(&mut conn),
        )
        .await;
        match info {
            Ok(Ok(info)) => match eviction_policy(&info) {
                Some(policy) => match eviction_warning(policy) {
                    Some(w) => warn!(redis = %addr, policy, "{w}"),
                    None => info!(redis = %addr, policy, "redis maxmemory-policy is noeviction"),
                },
                None => warn!(
                    redis = %addr,
                    "redis INFO memory does not say its maxmemory-policy: make sure it is noeviction"
                ),
            },
            Ok(Err(e)) => warn!(
                redis = %addr,
                error = %e,
                "cannot read redis maxmemory-policy (INFO memory): make sure it is noeviction"
            ),
            Err(_) => debug!(redis = %addr, "INFO memory did not answer in time"),
        }
    });
}

/// `maxmemory_policy` from the text of `INFO memory`.
pub fn eviction_policy(info: &str) -> Option<&str> {
    info.lines()
        .find_map(|l| l.trim().strip_prefix("maxmemory_policy:"))
        .map(str::trim)
}

/// What to tell the operator about `policy`: nothing for `noeviction`.
pub fn eviction_warning(policy: &str) -> Option<String> {
    if policy.eq_ignore_ascii_case("noeviction") {
        return None;
    }
    let what = if policy.starts_with("volatile-") {
        "it evicts keys that have a TTL, and every modbridge key has one"
    } else {
        "it evicts any key, modbridge's included"
    };
    Some(format!(
        "redis maxmemory-policy is {policy}: under memory pressure {what} (a lost claim or sent record means a duplicate card, a lost parked list means lost cards). Set `maxmemory-policy noeviction` in redis.conf (or CONFIG SET maxmemory-policy noeviction); Redis then refuses writes when full, and modbridge answers 503 so Cativa retries"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "# Memory\r\nused_memory:1024\r\nmaxmemory:0\r\nmaxmemory_human:0B\r\nmaxmemory_policy:allkeys-lru\r\nallocator_frag_ratio:1.0\r\n";

    #[test]
    fn the_policy_is_read_from_info_memory() {
        assert_eq!(eviction_policy(INFO), Some("allkeys-lru"));
        assert_eq!(
            eviction_policy("maxmemory_policy:noeviction\n"),
            Some("noeviction")
        );
        assert_eq!(eviction_policy("# Memory\r\nused_memory:1\r\n"), None);
    }

    #[test]
    fn only_noeviction_is_quiet() {
        assert_eq!(eviction_warning("noeviction"), None);
        for policy in [
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
            "allkeys-lru",
            "allkeys-lfu",
            "allkeys-random",
        ] {
            let w = eviction_warning(policy).unwrap();
            assert!(
                w.contains(policy) && w.contains("maxmemory-policy noeviction"),
                "{w}"
            );
        }
        assert!(eviction_warning("volatile-ttl").unwrap().contains("TTL"));
    }

    #[test]
    fn failures_that_move_to_another_master() {
        let readonly = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ReadOnly),
            "READONLY",
            "You can't write against a read only replica.".to_owned(),
        ));
        assert!(demoted(&readonly));
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(unreachable(&refused) && !demoted(&refused));
        let other = RedisError::from((ErrorKind::UnexpectedReturnType, "type error"));
        assert!(!unreachable(&other) && !demoted(&other));
    }

    #[test]
    fn sentinels_are_host_port_or_urls_and_never_shown_with_a_password() {
        assert_eq!(show(&sentinel_info("h1:26379").unwrap()), "h1:26379");
        assert_eq!(
            show(&sentinel_info("rediss://:secret@h2:26380").unwrap()),
            "h2:26380"
        );
        let e = sentinel_info("redis://:secret@").err().unwrap();
        assert!(!e.0.contains("secret"), "{}", e.0);
    }

    #[tokio::test]
    async fn a_ca_needs_a_tls_url() {
        let e = Link::new(RedisTarget::server("redis://127.0.0.1:1/").with_ca(Some(b"x".to_vec())))
            .err()
            .unwrap();
        assert!(e.0.contains("rediss://"), "{}", e.0);
        let e = Link::new(RedisTarget::server("http://x")).err().unwrap();
        assert!(e.0.contains("REDIS_URL"), "{}", e.0);
    }
}
