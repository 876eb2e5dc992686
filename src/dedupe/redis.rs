//! Redis dedupe store: shared by every replica, survives restarts (with
//! persistence on), reconnects by itself.
//!
//! Keys (`{}` is a Redis Cluster hash tag, so both keys of an execution live
//! on one shard): `<prefix>exec:{<id>}:claim` holds the lease token with a
//! millisecond TTL; `<prefix>exec:{<id>}:done` marks it processed;
//! `<prefix>sent:<key>` marks a confirmed card (delivery's key is
//! `<customer>␟<post>␟<target>`, e.g. `…␟discord-webhook:$MODS_HOOK`);
//! `<prefix>parked:<list>` is a parked list (delivery names it after the
//! target) and `<prefix>parked-targets` the set of list names. These formats
//! are shared with running replicas: `tests/api/redis_format.rs` pins them.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};

use super::{Claim, DedupeStore, ExecutionId, Lease, Parking, SentKey, StoreError, Ttl};

/// No request waits longer than this for Redis.
const OP_TIMEOUT: Duration = Duration::from_secs(2);

const CLAIM: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
local ttl = redis.call('PTTL', KEYS[2])
if ttl < 1 then return 1 end
return ttl
";
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";
const COMPLETE: &str = r"
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
end
return 1
";

struct Scripts {
    claim: Script,
    renew: Script,
    release: Script,
    complete: Script,
}

#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    scripts: Arc<Scripts>,
    prefix: Arc<str>,
    ttl: Ttl,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Does not connect yet: the first operation does, and a Redis that is down
    /// at start-up only makes requests answer 503 until it is back.
    pub fn new(url: &str, prefix: &str, ttl: Ttl) -> Result<Self, StoreError> {
        let client = Client::open(url)
            .map_err(|e| StoreError(format!("REDIS_URL is not a valid Redis URL: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(OP_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| StoreError(e.to_string()))?;
        Ok(Self {
            conn,
            scripts: Arc::new(Scripts {
                claim: Script::new(CLAIM),
                renew: Script::new(RENEW),
                release: Script::new(RELEASE),
                complete: Script::new(COMPLETE),
            }),
            prefix: prefix.into(),
            ttl,
        })
    }

    fn key(&self, id: &ExecutionId, kind: &str) -> String {
        format!("{}exec:{{{}}}:{kind}", self.prefix, id.as_str())
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        keys: &[String],
        args: &[String],
    ) -> Result<T, StoreError> {
        let mut invocation = script.prepare_invoke();
        for k in keys {
            invocation.key(k);
        }
        for a in args {
            invocation.arg(a);
        }
        let mut conn = self.conn.clone();
        match tokio::time::timeout(OP_TIMEOUT, invocation.invoke_async(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StoreError(format!("redis: {e}"))),
            Err(_) => Err(StoreError(format!(
                "redis did not answer within {} ms",
                OP_TIMEOUT.as_millis()
            ))),
        }
    }

    fn sent_key(&self, key: &SentKey) -> String {
        format!("{}sent:{}", self.prefix, key.as_str())
    }

    fn ms(d: Duration) -> String {
        d.as_millis().max(1).to_string()
    }
}

/// Parked lists: one Redis list per name, and a set of the names.
impl RedisStore {
    fn parked_list(&self, list: &str) -> String {
        format!("{}parked:{list}", self.prefix)
    }

    fn parked_index(&self) -> String {
        format!("{}parked-targets", self.prefix)
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(OP_TIMEOUT, cmd.query_async::<T>(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StoreError(format!("redis: {e}"))),
            Err(_) => Err(StoreError("redis did not answer in time".into())),
        }
    }
}

impl DedupeStore for RedisStore {
    async fn claim(&self, id: &ExecutionId) -> Result<Claim, StoreError> {
        let lease = Lease::new(id.clone());
        let answer: i64 = self
            .run(
                &self.scripts.claim,
                &[self.key(id, "done"), self.key(id, "claim")],
                &[lease.token.clone(), Self::ms(self.ttl.lease)],
            )
            .await?;
        Ok(match answer {
            -1 => Claim::Done,
            0 => Claim::First(lease),
            ms => Claim::InFlight {
                retry_after: Duration::from_millis(ms.unsigned_abs()),
            },
        })
    }

    async fn renew(&self, lease: &Lease) -> Result<bool, StoreError> {
        let renewed: i64 = self
            .run(
                &self.scripts.renew,
                &[self.key(&lease.id, "claim")],
                &[lease.token.clone(), Self::ms(self.ttl.lease)],
            )
            .await?;
        Ok(renewed == 1)
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let _: i64 = self
            .run(
                &self.scripts.release,
                &[self.key(&lease.id, "claim")],
                std::slice::from_ref(&lease.token),
            )
            .await?;
        Ok(())
    }

    async fn complete(&self, lease: &Lease) -> Result<(), StoreError> {
        let _: i64 = self
            .run(
                &self.scripts.complete,
                &[self.key(&lease.id, "done"), self.key(&lease.id, "claim")],
                &[lease.token.clone(), Self::ms(self.ttl.done)],
            )
            .await?;
        Ok(())
    }

    async fn was_sent(&self, key: &SentKey) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(self.sent_key(key));
        let exists = cmd.query_async::<i64>(&mut conn);
        match tokio::time::timeout(OP_TIMEOUT, exists).await {
            Ok(Ok(n)) => Ok(n > 0),
            Ok(Err(e)) => Err(StoreError(format!("redis: {e}"))),
            Err(_) => Err(StoreError("redis did not answer EXISTS".into())),
        }
    }

    async fn record_sent(&self, key: &SentKey) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.sent_key(key))
            .arg("1")
            .arg("PX")
            .arg(Self::ms(self.ttl.done));
        let set = cmd.query_async::<()>(&mut conn);
        match tokio::time::timeout(OP_TIMEOUT, set).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError(format!("redis: {e}"))),
            Err(_) => Err(StoreError("redis did not answer SET".into())),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let pong = tokio::time::timeout(
            OP_TIMEOUT,
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await;
        match pong {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(StoreError(format!("redis: {e}"))),
            Err(_) => Err(StoreError("redis did not answer PING".into())),
        }
    }

    async fn park(&self, list: &str, entry: &str) -> Result<Parking, StoreError> {
        let mut cmd = redis::cmd("RPUSH");
        cmd.arg(self.parked_list(list)).arg(entry);
        let _: i64 = self.query(cmd).await?;
        let mut index = redis::cmd("SADD");
        index.arg(self.parked_index()).arg(list);
        let _: i64 = self.query(index).await?;
        Ok(Parking::Parked)
    }

    async fn parked_lists(&self) -> Result<Vec<String>, StoreError> {
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(self.parked_index());
        let mut lists: Vec<String> = self.query(cmd).await?;
        lists.sort();
        Ok(lists)
    }

    async fn parked(&self, list: &str) -> Result<Vec<String>, StoreError> {
        let mut cmd = redis::cmd("LRANGE");
        cmd.arg(self.parked_list(list)).arg(0).arg(-1);
        self.query(cmd).await
    }

    async fn unpark(&self, list: &str, entry: &str) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("LREM");
        cmd.arg(self.parked_list(list)).arg(1).arg(entry);
        let _: i64 = self.query(cmd).await?;
        Ok(())
    }
}
