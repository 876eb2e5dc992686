//! Redis dedupe store: shared by every replica, survives restarts (with
//! persistence on), reconnects by itself.
//!
//! Keys (`{}` is a Redis Cluster hash tag, so both keys of an execution live
//! on one shard): `<prefix>exec:{<id>}:claim` holds the lease token with a
//! millisecond TTL; `<prefix>exec:{<id>}:done` marks it processed;
//! `<prefix>exec:{<id>}:begun` (`1`, kept as long as done records) is set
//! with the first claim and deleted when the execution is done, so that a
//! released or expired claim still reads as an unfinished attempt;
//! `<prefix>card:<key>` is a card's record ([`CardRecord`] as JSON, e.g.
//! `{"state":"reserved","token":"…","until":1764500000000,"since":1764499990000}`
//! (`since`: the earliest attempt still unknown; absent from records of
//! earlier versions, which ignore it), kept as long as
//! done records; `until` by Redis's own `TIME`, so replicas' clocks do not
//! matter); `<prefix>sent:<key>` is the sent record of earlier versions,
//! still read (it counts as sent) and still written on confirmation, for
//! replicas of those versions during a rollout (delivery's key is
//! `<customer>␟<post>␟<target>`, e.g. `…␟discord-webhook:$MODS_HOOK`);
//! `<prefix>parked:<list>` is a parked list (delivery names it after the
//! target) and `<prefix>parked-targets` the set of list names, both expiring
//! a day after `parked_ttl` from the last push (a backstop: delivery's prober
//! drops old entries one by one, but a list nobody replays must not keep
//! e-mail addresses and post text for ever);
//! `<prefix>circuit:<name>` is an open circuit (delivery's JSON, with a TTL;
//! set with `NX`) and `<prefix>lock:<name>` a lock's token (with a TTL);
//! `<prefix>seen:<name>` marks a request seen (`SET NX PX`: replay guard);
//! `<prefix>versioned:<name>` is a versioned record, a hash of `rev` and
//! `body` (moderator cases: `case:<case ID>`), changed only by a script that
//! checks the revision; `<prefix>counts:<name>` a hash of counters
//! (`HINCRBY`, never below 0, with a TTL: moderator outcomes per day,
//! `stats:<YYYY-MM-DD>`); `<prefix>due:<set>` is a schedule, a sorted set of
//! opaque members (moderator cases: `escalations`, case IDs) scored by the
//! due time in ms since the Unix epoch, re-scored by a script when taken
//! (a lease), with a TTL renewed by each schedule.
//! Waves (issue #14): `<prefix>wave:<name>` is a destination's pace, a hash
//! of `v` (when its virtual queue would be empty, ms), `until` (the wave's
//! end, ms) and `started` (the wave's start, ms; 0 outside one), expiring
//! a minute after the wave could end; `<prefix>group:<group>` is a group's
//! entries (a list of delivery's JSON, appended in the same script that
//! writes the card's `in_digest` record), kept as long as card records.
//! Campaigns (issue #14), all keys of a scope under one hash tag
//! (`<prefix>campaign:{<scope>}:…`, one Cluster shard): `band:<b>:<xx>`
//! (`b` 0–7, `xx` two hex digits: byte `b` of a campaign's first
//! fingerprint, from the most significant) is a sorted set of the IDs of
//! campaigns with that byte, scored by their last member's time (ms);
//! `<id>` a hash of `hi`, `lo` (the first fingerprint's 32-bit halves, in
//! decimal), `first`, `last` (ms) and `posts`; `<id>:members` the members
//! in the order they joined; `<id>:seen` a hash member → index in
//! `members`; `<id>:authors` the set of authors. Every one expires the
//! window plus a minute after the campaign's last member.
//! These formats are shared with running replicas: `tests/api/redis_format.rs`
//! pins them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use redis::Script;

use super::connect::{Link, RedisTarget};
use super::{
    Attempted, CAMPAIGN_EARLIER, CAMPAIGN_MARGIN, CampaignJoin, CardLease, CardRecord,
    CircuitOpened, Claim, Confirmed, DedupeStore, ExecutionId, GroupAdd, Join, Lease, LockLease,
    Parking, Reservation, SentKey, StoreError, Swapped, Ttl, Versioned, WaveAdmit, WaveEnter,
};

/// No request waits longer than this for Redis.
const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// KEYS: done, claim, begun. ARGV: token, lease ms, done ms.
const CLAIM: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[3])
  return 0
end
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
/// KEYS: done, claim, begun. ARGV: token, done ms.
const COMPLETE: &str = r"
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
end
redis.call('DEL', KEYS[3])
return 1
";

/// The current time in ms by Redis's clock (scripts are replicated by
/// effect since Redis 5, so `TIME` is allowed before writes).
const NOW_MS: &str = r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function reserved(token, ms, since)
  local s = ''
  if since then s = ',"since":' .. string.format('%d', since) end
  return '{"state":"reserved","token":"' .. token .. '","until":' .. string.format('%d', now_ms() + tonumber(ms)) .. s .. '}'
end
local function state(raw)
  if not raw then return nil end
  local ok, rec = pcall(cjson.decode, raw)
  if ok and type(rec) == 'table' then return rec end
  return {state = 'unreadable'}
end
"#;
/// KEYS: card record, old sent record. ARGV: token, lease ms, record TTL ms.
/// Returns {outcome, detail}: fresh | unknown (`until` of the expired
/// reservation, then `:since` when it had one) | in_flight (ms left) |
/// settled (the record's JSON) | old_sent. A reservation after an expired
/// one keeps its `since` (the earliest attempt still unknown).
const RESERVE: &str = r"
local raw = redis.call('GET', KEYS[1])
local rec = state(raw)
if rec and rec.state ~= 'reserved' then return {'settled', raw} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'old_sent', ''} end
local outcome = 'fresh'
local detail = ''
local since = now_ms()
if rec then
  local left = (tonumber(rec['until']) or 0) - now_ms()
  if left > 0 then return {'in_flight', tostring(left)} end
  outcome = 'unknown'
  detail = string.format('%d', tonumber(rec['until']) or 0)
  if tonumber(rec['since']) then
    since = tonumber(rec['since'])
    detail = detail .. ':' .. string.format('%d', since)
  end
end
redis.call('SET', KEYS[1], reserved(ARGV[1], ARGV[2], since), 'PX', ARGV[3])
return {outcome, detail}
";
/// KEYS: card record. ARGV: token, lease ms.
const RENEW_CARD: &str = r"
local rec = state(redis.call('GET', KEYS[1]))
if not rec or rec.state ~= 'reserved' or rec.token ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], reserved(ARGV[1], ARGV[2], tonumber(rec['since'])), 'KEEPTTL')
return 1
";
/// KEYS: card record, old sent record. ARGV: token, sent JSON, TTL ms.
/// Returns 0 recorded, 1 recorded late, 2 already sent.
const CONFIRM: &str = r"
local rec = state(redis.call('GET', KEYS[1]))
local answer = 1
if rec and rec.state == 'sent' then
  answer = 2
elseif rec and rec.state == 'reserved' and rec.token == ARGV[1] and (tonumber(rec['until']) or 0) > now_ms() then
  answer = 0
end
if answer ~= 2 then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
return answer
";
/// KEYS: card record, old sent record. ARGV: dead-letter JSON, TTL ms.
const DEAD_LETTER: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local rec = state(redis.call('GET', KEYS[1]))
if rec and rec.state == 'sent' then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";
/// KEYS: card record. ARGV: token.
const RELEASE_CARD: &str = r"
local rec = state(redis.call('GET', KEYS[1]))
if rec and rec.state == 'reserved' and rec.token == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";
/// KEYS: card record.
const CLEAR_DEAD_LETTER: &str = r"
local rec = state(redis.call('GET', KEYS[1]))
if rec and rec.state == 'dead_letter' then return redis.call('DEL', KEYS[1]) end
return 0
";

/// KEYS: a parked list or the set of list names. ARGV: `RPUSH` or `SADD`,
/// the entry or name, TTL ms. The key and its TTL are written together, so no
/// key is ever left without one.
const PUSH_WITH_TTL: &str = r"
redis.call(ARGV[1], KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

/// A day past `delivery.parked_ttl_days` (default 7), so the prober's own
/// expiry (counted and alerted as a lost card) always comes first.
const PARKED_GRACE: Duration = Duration::from_secs(86_400);

struct Scripts {
    claim: Script,
    renew: Script,
    release: Script,
    complete: Script,
    reserve: Script,
    renew_card: Script,
    confirm: Script,
    dead_letter: Script,
    release_card: Script,
    clear_dead_letter: Script,
    open_circuit: Script,
    lock: Script,
    push_with_ttl: Script,
    swap_versioned: Script,
    add_counts: Script,
    schedule: Script,
    take_due: Script,
    wave_admit: Script,
    wave_enter: Script,
    wave: Script,
    group_add: Script,
    group_entries: Script,
    campaign_join: Script,
}

fn card_script(body: &str) -> Script {
    Script::new(&format!("{NOW_MS}{body}"))
}

#[derive(Clone)]
pub struct RedisStore {
    conn: Link,
    scripts: Arc<Scripts>,
    prefix: Arc<str>,
    ttl: Ttl,
    /// How long Redis keeps a parked list after its last push.
    parked_expiry: Duration,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// The server `url` names ([`RedisStore::connect`]).
    pub fn new(url: &str, prefix: &str, ttl: Ttl) -> Result<Self, StoreError> {
        Self::connect(RedisTarget::server(url), prefix, ttl)
    }

    /// Does not wait for Redis: a Redis that is down at start-up only makes
    /// requests answer 503 until it is back (see `connect.rs`).
    pub fn connect(target: RedisTarget, prefix: &str, ttl: Ttl) -> Result<Self, StoreError> {
        let conn = Link::new(target)?;
        Ok(Self {
            conn,
            scripts: Arc::new(Scripts {
                claim: Script::new(CLAIM),
                renew: Script::new(RENEW),
                release: Script::new(RELEASE),
                complete: Script::new(COMPLETE),
                reserve: card_script(RESERVE),
                renew_card: card_script(RENEW_CARD),
                confirm: card_script(CONFIRM),
                dead_letter: card_script(DEAD_LETTER),
                release_card: card_script(RELEASE_CARD),
                clear_dead_letter: card_script(CLEAR_DEAD_LETTER),
                open_circuit: Script::new(OPEN_CIRCUIT),
                lock: Script::new(LOCK),
                push_with_ttl: Script::new(PUSH_WITH_TTL),
                swap_versioned: Script::new(SWAP_VERSIONED),
                add_counts: Script::new(ADD_COUNTS),
                schedule: Script::new(SCHEDULE),
                take_due: Script::new(TAKE_DUE),
                wave_admit: card_script(&format!("{WAVE_ADMIT_FN}{WAVE_ADMIT}")),
                wave_enter: card_script(&format!("{WAVE_ADMIT_FN}{WAVE_ENTER}")),
                wave: card_script(WAVE),
                group_add: Script::new(GROUP_ADD),
                group_entries: Script::new(GROUP_ENTRIES),
                campaign_join: card_script(CAMPAIGN_JOIN),
            }),
            prefix: prefix.into(),
            ttl,
            parked_expiry: Duration::from_secs(7 * 86_400) + PARKED_GRACE,
        })
    }

    /// Parked lists and dead letters are kept `parked_ttl` (delivery's
    /// `parked_ttl_days`, default 7) plus a day after their last push.
    #[must_use]
    pub fn with_parked_ttl(mut self, parked_ttl: Duration) -> Self {
        self.parked_expiry = parked_ttl.saturating_add(PARKED_GRACE);
        self
    }

    /// `<prefix>exec:{<id>}:<kind>`, written without `format!` (three per
    /// webhook).
    fn key(&self, id: &ExecutionId, kind: &str) -> String {
        let id = id.as_str();
        let mut key = String::with_capacity(self.prefix.len() + id.len() + kind.len() + 8);
        key.push_str(&self.prefix);
        key.push_str("exec:{");
        key.push_str(id);
        key.push_str("}:");
        key.push_str(kind);
        key
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
        let mut conn = &self.conn;
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

    fn card_key(&self, key: &SentKey) -> String {
        format!("{}card:{}", self.prefix, key.as_str())
    }

    fn card_keys(&self, key: &SentKey) -> [String; 2] {
        [self.card_key(key), self.sent_key(key)]
    }

    fn ms(d: Duration) -> String {
        d.as_millis().max(1).to_string()
    }
}

/// Circuits (set if absent, deleted once) and locks (the claim's scripts:
/// a token with a TTL, renewed and released by its holder only).
impl RedisStore {
    fn circuit_key(&self, name: &str) -> String {
        format!("{}circuit:{name}", self.prefix)
    }

    fn lock_key(&self, name: &str) -> String {
        format!("{}lock:{name}", self.prefix)
    }
}

/// KEYS: circuit. ARGV: record, TTL ms. Returns '' when opened now, else the
/// record already there.
const OPEN_CIRCUIT: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return '' end
return redis.call('GET', KEYS[1]) or ''
";
/// KEYS: lock. ARGV: token, TTL ms.
const LOCK: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
";

/// KEYS: record. ARGV: expected revision, body, TTL ms. Returns {1, new
/// revision, ''} when written, else {0, revision now (0: none), body now}.
const SWAP_VERSIONED: &str = r"
local rev = tonumber(redis.call('HGET', KEYS[1], 'rev') or '0')
if rev ~= tonumber(ARGV[1]) then
  return {0, rev, redis.call('HGET', KEYS[1], 'body') or ''}
end
redis.call('HSET', KEYS[1], 'rev', rev + 1, 'body', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, rev + 1, ''}
";

/// Adds ARGV[2], ARGV[3] (field, n), … to the counters of KEYS[1], none
/// below 0, and sets its TTL (ARGV[1], ms).
const ADD_COUNTS: &str = r"
for i = 2, #ARGV, 2 do
  local v = redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
  if v < 0 then redis.call('HSET', KEYS[1], ARGV[i], 0) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
";
/// KEYS: schedule. ARGV: member, due ms, TTL ms. Returns 1 when added. The
/// TTL only grows (`GT` needs Redis 7; compared here instead).
const SCHEDULE: &str = r"
local added = redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1])
local left = redis.call('PTTL', KEYS[1])
if left < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return added
";
/// KEYS: schedule. ARGV: now ms, now + lease ms, limit. Returns the members
/// due, earliest first, each re-scored to now + lease in the same step.
const TAKE_DUE: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, m in ipairs(due) do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], m) end
return due
";

/// The wave admission of `wave_admit` and `wave_enter`: counts one card
/// against the pace kept in `key`; returns in wave (0/1), the wave's start
/// ms (0 outside one), began now (0/1).
const WAVE_ADMIT_FN: &str = r"
local function admit(key, cost, limit, quiet)
local now = now_ms()
local v = tonumber(redis.call('HGET', key, 'v')) or 0
local till = tonumber(redis.call('HGET', key, 'until')) or 0
local started = tonumber(redis.call('HGET', key, 'started')) or 0
if v < now then v = now end
local active = till > now
if not active then started = 0 end
local began = 0
if v + cost - now > limit then
  if not active then
    started = now
    began = 1
  end
  till = now + quiet
  active = true
end
v = math.min(v + cost, now + limit)
redis.call('HSET', key, 'v', string.format('%d', v), 'until', string.format('%d', till), 'started', string.format('%d', started))
redis.call('PEXPIRE', key, limit + quiet + 60000)
local on = 0
if active then on = 1 end
return on, started, began
end
";
/// KEYS: card record, old sent record, wave, group entries, schedule.
/// ARGV: cost ms, limit ms, quiet ms, join (0/1), the join's wave start ms,
/// record JSON, record TTL ms, entry, due ms, group, schedule TTL ms.
/// Returns {taken, record JSON} | {old_sent} | {counted or added, in wave,
/// start ms, began}.
const WAVE_ENTER: &str = r"
local raw = redis.call('GET', KEYS[1])
if raw then return {'taken', raw} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'old_sent'} end
local on, started, began = admit(KEYS[3], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
if ARGV[4] ~= '1' or on ~= 1 or started ~= tonumber(ARGV[5]) then
  return {'counted', on, started, began}
end
redis.call('SET', KEYS[1], ARGV[6], 'PX', ARGV[7])
redis.call('RPUSH', KEYS[4], ARGV[8])
redis.call('PEXPIRE', KEYS[4], ARGV[7])
redis.call('ZADD', KEYS[5], 'NX', ARGV[9], ARGV[10])
if redis.call('PTTL', KEYS[5]) < tonumber(ARGV[11]) then redis.call('PEXPIRE', KEYS[5], ARGV[11]) end
return {'added', on, started, began}
";
/// KEYS: wave. ARGV: cost ms, limit ms, quiet ms. Returns {in wave (0/1),
/// wave start ms (0 outside one), began now (0/1)}.
const WAVE_ADMIT: &str = r"
local on, started, began = admit(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
return {on, started, began}
";
/// KEYS: wave. Returns the wave's start ms while one is on, else 0.
const WAVE: &str = r"
local till = tonumber(redis.call('HGET', KEYS[1], 'until')) or 0
if till <= now_ms() then return 0 end
return tonumber(redis.call('HGET', KEYS[1], 'started')) or 0
";
/// KEYS: card record, old sent record, group entries, schedule. ARGV:
/// record JSON, record TTL ms, entry, due ms, group, schedule TTL ms.
/// Returns {added, index} | {taken, record JSON} | {old_sent, ''}.
const GROUP_ADD: &str = r"
local raw = redis.call('GET', KEYS[1])
if raw then return {'taken', raw} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'old_sent', ''} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local n = redis.call('RPUSH', KEYS[3], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
redis.call('ZADD', KEYS[4], 'NX', ARGV[4], ARGV[5])
if redis.call('PTTL', KEYS[4]) < tonumber(ARGV[6]) then redis.call('PEXPIRE', KEYS[4], ARGV[6]) end
return {'added', tostring(n - 1)}
";
/// KEYS: group entries. ARGV: first index, last index. Returns {length,
/// entries}.
const GROUP_ENTRIES: &str = r"
return {redis.call('LLEN', KEYS[1]), redis.call('LRANGE', KEYS[1], ARGV[1], ARGV[2])}
";

/// KEYS: the scope's base (`<prefix>campaign:{<scope>}:`), then the band
/// keys to look in: first the 8 of this fingerprint, in band order, then
/// their neighbours. ARGV: fingerprint's high and low 32 bits, member,
/// author, window ms, max distance, TTL ms, fingerprint (16 hex digits),
/// scope tag, most earlier members. Returns {id, authors, posts, first ms,
/// last ms, earlier members, new member (0/1)}.
const CAMPAIGN_JOIN: &str = r"
local now = now_ms()
local base = KEYS[1]
local hi = tonumber(ARGV[1])
local lo = tonumber(ARGV[2])
local member = ARGV[3]
local window = tonumber(ARGV[5])
local maxd = tonumber(ARGV[6])
local ttl = tonumber(ARGV[7])
local most = tonumber(ARGV[10])
local function ones(x)
  local c = 0
  for i = 0, 31 do
    if bit.band(bit.rshift(x, i), 1) == 1 then c = c + 1 end
  end
  return c
end
local function band_keys(h, l)
  local keys = {}
  for b = 0, 7 do
    local half = h
    if b >= 4 then half = l end
    local byte = bit.band(bit.rshift(half, 24 - 8 * (b % 4)), 255)
    keys[b + 1] = base .. 'band:' .. b .. ':' .. string.format('%02x', byte)
  end
  return keys
end
local checked = {}
local best, best_d, best_first, retry
for i = 2, #KEYS do
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[i], now - window, '+inf')) do
    if not checked[id] then
      checked[id] = true
      local c = redis.call('HMGET', base .. id, 'hi', 'lo', 'first', 'last')
      local chi, clo, first, last = tonumber(c[1]), tonumber(c[2]), tonumber(c[3]), tonumber(c[4])
      if chi and clo and first and last and now - last <= window then
        local d = ones(bit.bxor(chi, hi)) + ones(bit.bxor(clo, lo))
        if d <= maxd then
          if redis.call('HEXISTS', base .. id .. ':seen', member) == 1 then retry = id end
          if not best or d < best_d or (d == best_d and (first < best_first or (first == best_first and id < best))) then
            best, best_d, best_first = id, d, first
          end
        end
      end
    end
  end
end
local id = retry or best
local new = 1
local index
if retry then
  new = 0
  index = tonumber(redis.call('HGET', base .. id .. ':seen', member))
elseif best then
  index = redis.call('RPUSH', base .. id .. ':members', member) - 1
  redis.call('HSET', base .. id .. ':seen', member, index)
  redis.call('SADD', base .. id .. ':authors', ARGV[4])
  redis.call('HSET', base .. id, 'last', string.format('%d', now))
  redis.call('HINCRBY', base .. id, 'posts', 1)
else
  id = ARGV[8] .. '-' .. string.format('%d', now) .. '-' .. ARGV[9]
  index = 0
  redis.call('HSET', base .. id, 'hi', ARGV[1], 'lo', ARGV[2], 'first', string.format('%d', now), 'last', string.format('%d', now), 'posts', 1)
  redis.call('RPUSH', base .. id .. ':members', member)
  redis.call('HSET', base .. id .. ':seen', member, 0)
  redis.call('SADD', base .. id .. ':authors', ARGV[4])
end
local c = redis.call('HMGET', base .. id, 'hi', 'lo', 'first', 'last', 'posts')
if new == 1 then
  for _, k in ipairs(band_keys(tonumber(c[1]), tonumber(c[2]))) do
    redis.call('ZADD', k, now, id)
    redis.call('ZREMRANGEBYSCORE', k, '-inf', now - ttl)
    redis.call('PEXPIRE', k, ttl)
  end
  for _, suffix in ipairs({'', ':members', ':seen', ':authors'}) do
    redis.call('PEXPIRE', base .. id .. suffix, ttl)
  end
end
local earlier = {}
local upto = math.min(index, most)
if upto > 0 then earlier = redis.call('LRANGE', base .. id .. ':members', 0, upto - 1) end
return {id, redis.call('SCARD', base .. id .. ':authors'), tonumber(c[5]), tonumber(c[3]), tonumber(c[4]), earlier, new}
";

/// Parked lists: one Redis list per name, and a set of the names.
impl RedisStore {
    fn parked_list(&self, list: &str) -> String {
        format!("{}parked:{list}", self.prefix)
    }

    fn parked_index(&self) -> String {
        format!("{}parked-targets", self.prefix)
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, StoreError> {
        let mut conn = &self.conn;
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
                &[
                    self.key(id, "done"),
                    self.key(id, "claim"),
                    self.key(id, "begun"),
                ],
                &[
                    lease.token.clone(),
                    Self::ms(self.ttl.lease),
                    Self::ms(self.ttl.done),
                ],
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
                &[
                    self.key(&lease.id, "done"),
                    self.key(&lease.id, "claim"),
                    self.key(&lease.id, "begun"),
                ],
                &[lease.token.clone(), Self::ms(self.ttl.done)],
            )
            .await?;
        Ok(())
    }

    async fn attempted(&self, id: &ExecutionId) -> Result<bool, StoreError> {
        // One command over the execution's three keys (one hash slot).
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(self.key(id, "done"))
            .arg(self.key(id, "claim"))
            .arg(self.key(id, "begun"));
        let found: i64 = self.query(cmd).await?;
        Ok(found > 0)
    }

    async fn card(&self, key: &SentKey) -> Result<Option<CardRecord>, StoreError> {
        let mut cmd = redis::cmd("MGET");
        cmd.arg(self.card_key(key)).arg(self.sent_key(key));
        let (card, old): (Option<String>, Option<String>) = self.query(cmd).await?;
        match (card.map(|raw| parse_record(&raw)).transpose()?, old) {
            (Some(CardRecord::Reserved { .. }) | None, Some(_)) => {
                Ok(Some(CardRecord::Sent { message: None }))
            }
            (record, _) => Ok(record),
        }
    }

    async fn reserve(&self, key: &SentKey, lease: Duration) -> Result<Reservation, StoreError> {
        let card = CardLease::new(key.clone());
        let (outcome, detail): (String, String) = self
            .run(
                &self.scripts.reserve,
                &self.card_keys(key),
                &[card.token.clone(), Self::ms(lease), Self::ms(self.ttl.done)],
            )
            .await?;
        Ok(match outcome.as_str() {
            "fresh" => Reservation::Fresh(card),
            "unknown" => Reservation::Unknown(card, parse_attempted(&detail)),
            "in_flight" => Reservation::InFlight {
                retry_after: Duration::from_millis(detail.parse().unwrap_or(1000)),
            },
            "old_sent" => Reservation::Settled(CardRecord::Sent { message: None }),
            "settled" => Reservation::Settled(parse_record(&detail)?),
            other => {
                return Err(StoreError(format!(
                    "unexpected reservation answer {other:?}"
                )));
            }
        })
    }

    async fn renew_reservation(
        &self,
        lease: &CardLease,
        duration: Duration,
    ) -> Result<bool, StoreError> {
        let renewed: i64 = self
            .run(
                &self.scripts.renew_card,
                &[self.card_key(&lease.key)],
                &[lease.token.clone(), Self::ms(duration)],
            )
            .await?;
        Ok(renewed == 1)
    }

    async fn confirm(
        &self,
        lease: &CardLease,
        message: Option<&serde_json::Value>,
    ) -> Result<Confirmed, StoreError> {
        let sent = CardRecord::Sent {
            message: message.cloned(),
        };
        let json = serde_json::to_string(&sent).map_err(|e| StoreError(e.to_string()))?;
        let answer: i64 = self
            .run(
                &self.scripts.confirm,
                &self.card_keys(&lease.key),
                &[lease.token.clone(), json, Self::ms(self.ttl.done)],
            )
            .await?;
        Ok(match answer {
            0 => Confirmed::Recorded,
            2 => Confirmed::AlreadySent,
            _ => Confirmed::RecordedLate,
        })
    }

    async fn dead_letter(&self, lease: &CardLease, reason: &str) -> Result<bool, StoreError> {
        let dead = CardRecord::DeadLetter {
            reason: reason.to_owned(),
        };
        let json = serde_json::to_string(&dead).map_err(|e| StoreError(e.to_string()))?;
        let written: i64 = self
            .run(
                &self.scripts.dead_letter,
                &self.card_keys(&lease.key),
                &[json, Self::ms(self.ttl.done)],
            )
            .await?;
        Ok(written == 1)
    }

    async fn release_reservation(&self, lease: &CardLease) -> Result<(), StoreError> {
        let _: i64 = self
            .run(
                &self.scripts.release_card,
                &[self.card_key(&lease.key)],
                std::slice::from_ref(&lease.token),
            )
            .await?;
        Ok(())
    }

    async fn clear_dead_letter(&self, key: &SentKey) -> Result<bool, StoreError> {
        let cleared: i64 = self
            .run(&self.scripts.clear_dead_letter, &[self.card_key(key)], &[])
            .await?;
        Ok(cleared == 1)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = &self.conn;
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

    async fn run_id(&self) -> Result<String, StoreError> {
        let mut cmd = redis::cmd("INFO");
        cmd.arg("server");
        let info: String = self.query(cmd).await?;
        info.lines()
            .find_map(|l| l.strip_prefix("run_id:"))
            .map(|id| id.trim().to_owned())
            .ok_or_else(|| StoreError("redis INFO server has no run_id".into()))
    }

    async fn open_circuit(
        &self,
        name: &str,
        record: &str,
        ttl: Duration,
    ) -> Result<CircuitOpened, StoreError> {
        let there: String = self
            .run(
                &self.scripts.open_circuit,
                &[self.circuit_key(name)],
                &[record.to_owned(), Self::ms(ttl)],
            )
            .await?;
        Ok(if there.is_empty() {
            CircuitOpened::Opened
        } else {
            CircuitOpened::AlreadyOpen(there)
        })
    }

    async fn circuit(&self, name: &str) -> Result<Option<String>, StoreError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.circuit_key(name));
        self.query(cmd).await
    }

    async fn close_circuit(&self, name: &str) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.circuit_key(name));
        let deleted: i64 = self.query(cmd).await?;
        Ok(deleted == 1)
    }

    async fn lock(&self, name: &str, ttl: Duration) -> Result<Option<LockLease>, StoreError> {
        let lease = LockLease::new(name);
        let taken: i64 = self
            .run(
                &self.scripts.lock,
                &[self.lock_key(name)],
                &[lease.token.clone(), Self::ms(ttl)],
            )
            .await?;
        Ok((taken == 1).then_some(lease))
    }

    async fn renew_lock(&self, lease: &LockLease, ttl: Duration) -> Result<bool, StoreError> {
        let renewed: i64 = self
            .run(
                &self.scripts.renew,
                &[self.lock_key(&lease.name)],
                &[lease.token.clone(), Self::ms(ttl)],
            )
            .await?;
        Ok(renewed == 1)
    }

    async fn unlock(&self, lease: &LockLease) -> Result<(), StoreError> {
        let _: i64 = self
            .run(
                &self.scripts.release,
                &[self.lock_key(&lease.name)],
                std::slice::from_ref(&lease.token),
            )
            .await?;
        Ok(())
    }

    async fn versioned(&self, name: &str) -> Result<Option<Versioned>, StoreError> {
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(format!("{}versioned:{name}", self.prefix))
            .arg("rev")
            .arg("body");
        let (rev, body): (Option<u64>, Option<String>) = self.query(cmd).await?;
        Ok(match (rev, body) {
            (Some(revision), Some(body)) => Some(Versioned { revision, body }),
            _ => None,
        })
    }

    async fn swap_versioned(
        &self,
        name: &str,
        expected: u64,
        body: &str,
        ttl: Duration,
    ) -> Result<Swapped, StoreError> {
        let answer: (u8, u64, Option<String>) = self
            .run(
                &self.scripts.swap_versioned,
                &[format!("{}versioned:{name}", self.prefix)],
                &[expected.to_string(), body.to_owned(), Self::ms(ttl)],
            )
            .await?;
        Ok(match answer {
            (1, revision, _) => Swapped::Written(revision),
            (_, 0, _) => Swapped::Stale(None),
            (_, revision, body) => Swapped::Stale(Some(Versioned {
                revision,
                body: body.unwrap_or_default(),
            })),
        })
    }

    async fn add_counts(
        &self,
        name: &str,
        counts: &[(String, i64)],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        if counts.is_empty() {
            return Ok(());
        }
        let mut args = vec![Self::ms(ttl)];
        for (field, n) in counts {
            args.push(field.clone());
            args.push(n.to_string());
        }
        let _: i64 = self
            .run(
                &self.scripts.add_counts,
                &[format!("{}counts:{name}", self.prefix)],
                &args,
            )
            .await?;
        Ok(())
    }

    async fn counts(&self, name: &str) -> Result<BTreeMap<String, i64>, StoreError> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(format!("{}counts:{name}", self.prefix));
        self.query(cmd).await
    }

    async fn first_sighting(&self, name: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(format!("{}seen:{name}", self.prefix))
            .arg("1")
            .arg("NX")
            .arg("PX")
            .arg(Self::ms(ttl));
        let set: Option<String> = self.query(cmd).await?;
        Ok(set.is_some())
    }

    async fn schedule(
        &self,
        set: &str,
        member: &str,
        due_ms: u64,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let added: i64 = self
            .run(
                &self.scripts.schedule,
                &[format!("{}due:{set}", self.prefix)],
                &[member.to_owned(), due_ms.to_string(), Self::ms(ttl)],
            )
            .await?;
        Ok(added == 1)
    }

    async fn take_due(
        &self,
        set: &str,
        now_ms: u64,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let again = now_ms.saturating_add(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX));
        self.run(
            &self.scripts.take_due,
            &[format!("{}due:{set}", self.prefix)],
            &[
                now_ms.to_string(),
                again.to_string(),
                limit.max(1).to_string(),
            ],
        )
        .await
    }

    async fn unschedule(&self, set: &str, member: &str) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("ZREM");
        cmd.arg(format!("{}due:{set}", self.prefix)).arg(member);
        let _: i64 = self.query(cmd).await?;
        Ok(())
    }

    async fn wave_admit(
        &self,
        name: &str,
        cost: Duration,
        limit: Duration,
        quiet: Duration,
    ) -> Result<WaveAdmit, StoreError> {
        let (on, started, began): (i64, u64, i64) = self
            .run(
                &self.scripts.wave_admit,
                &[format!("{}wave:{name}", self.prefix)],
                &[Self::ms(cost), Self::ms(limit), Self::ms(quiet)],
            )
            .await?;
        Ok(WaveAdmit {
            in_wave: on == 1,
            started_ms: started,
            began: began == 1,
        })
    }

    async fn wave_enter(
        &self,
        key: &SentKey,
        name: &str,
        (cost, limit, quiet): (Duration, Duration, Duration),
        join: Option<Join<'_>>,
    ) -> Result<WaveEnter, StoreError> {
        let [card, sent] = self.card_keys(key);
        let wave_key = format!("{}wave:{name}", self.prefix);
        let (group_key, due_key) = match &join {
            Some(j) => (
                format!("{}group:{}", self.prefix, j.group),
                format!("{}due:{}", self.prefix, j.set),
            ),
            // Unused without a join (named so the script's keys are fixed).
            None => (wave_key.clone(), wave_key.clone()),
        };
        let record = match &join {
            Some(j) => serde_json::to_string(&CardRecord::InDigest {
                id: j.group.to_owned(),
            })
            .map_err(|e| StoreError(format!("card record: {e}")))?,
            None => String::new(),
        };
        let answer: Vec<redis::Value> = self
            .run(
                &self.scripts.wave_enter,
                &[card, sent, wave_key, group_key, due_key],
                &[
                    Self::ms(cost),
                    Self::ms(limit),
                    Self::ms(quiet),
                    if join.is_some() { "1" } else { "0" }.to_owned(),
                    join.map_or(0, |j| j.started_ms).to_string(),
                    record,
                    Self::ms(self.ttl.done),
                    join.map_or("", |j| j.entry).to_owned(),
                    join.map_or(0, |j| j.due_ms).to_string(),
                    join.map_or("", |j| j.group).to_owned(),
                    Self::ms(self.ttl.done),
                ],
            )
            .await?;
        let text = |v: Option<&redis::Value>| -> String {
            match v {
                Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(redis::Value::SimpleString(s)) => s.clone(),
                _ => String::new(),
            }
        };
        let int = |v: Option<&redis::Value>| -> u64 {
            match v {
                Some(redis::Value::Int(i)) => u64::try_from(*i).unwrap_or(0),
                _ => 0,
            }
        };
        match text(answer.first()).as_str() {
            "taken" => Ok(WaveEnter::Taken(parse_record(&text(answer.get(1)))?)),
            "old_sent" => Ok(WaveEnter::Taken(CardRecord::Sent { message: None })),
            outcome @ ("counted" | "added") => Ok(WaveEnter::Admitted {
                wave: WaveAdmit {
                    in_wave: int(answer.get(1)) == 1,
                    started_ms: int(answer.get(2)),
                    began: int(answer.get(3)) == 1,
                },
                added: outcome == "added",
            }),
            other => Err(StoreError(format!("unexpected wave answer {other:?}"))),
        }
    }

    async fn wave(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let started: u64 = self
            .run(
                &self.scripts.wave,
                &[format!("{}wave:{name}", self.prefix)],
                &[],
            )
            .await?;
        Ok((started > 0).then_some(started))
    }

    async fn group_add(
        &self,
        key: &SentKey,
        group: &str,
        entry: &str,
        set: &str,
        due_ms: u64,
    ) -> Result<GroupAdd, StoreError> {
        let record = serde_json::to_string(&CardRecord::InDigest {
            id: group.to_owned(),
        })
        .map_err(|e| StoreError(format!("card record: {e}")))?;
        let [card, sent] = self.card_keys(key);
        let (outcome, detail): (String, String) = self
            .run(
                &self.scripts.group_add,
                &[
                    card,
                    sent,
                    format!("{}group:{group}", self.prefix),
                    format!("{}due:{set}", self.prefix),
                ],
                &[
                    record,
                    Self::ms(self.ttl.done),
                    entry.to_owned(),
                    due_ms.to_string(),
                    group.to_owned(),
                    Self::ms(self.ttl.done),
                ],
            )
            .await?;
        match outcome.as_str() {
            "added" => Ok(GroupAdd::Added(detail.parse().unwrap_or(0))),
            "old_sent" => Ok(GroupAdd::Taken(CardRecord::Sent { message: None })),
            "taken" => Ok(GroupAdd::Taken(parse_record(&detail)?)),
            other => Err(StoreError(format!("unexpected group answer {other:?}"))),
        }
    }

    async fn group_entries(
        &self,
        group: &str,
        from: u64,
        max: usize,
    ) -> Result<(u64, Vec<String>), StoreError> {
        let last = from.saturating_add(max.max(1) as u64 - 1);
        self.run(
            &self.scripts.group_entries,
            &[format!("{}group:{group}", self.prefix)],
            &[from.to_string(), last.to_string()],
        )
        .await
    }

    async fn campaign_join(
        &self,
        scope: &str,
        fingerprint: u64,
        member: &str,
        author: &str,
        window: Duration,
        max_distance: u32,
    ) -> Result<CampaignJoin, StoreError> {
        super::check_campaign_join(member, max_distance)?;
        let base = format!("{}campaign:{{{scope}}}:", self.prefix);
        let radius = max_distance / 8;
        let bytes = fingerprint.to_be_bytes();
        let mut keys = vec![base.clone()];
        for (b, byte) in bytes.iter().enumerate() {
            keys.push(format!("{base}band:{b}:{byte:02x}"));
        }
        if radius > 0 {
            for (b, byte) in bytes.iter().enumerate() {
                for other in 0..=255u8 {
                    let d = (other ^ byte).count_ones();
                    if d > 0 && d <= radius {
                        keys.push(format!("{base}band:{b}:{other:02x}"));
                    }
                }
            }
        }
        let ttl = window.saturating_add(CAMPAIGN_MARGIN);
        let (id, authors, posts, first_ms, last_ms, earlier, new): (
            String,
            u32,
            u32,
            u64,
            u64,
            Vec<String>,
            i64,
        ) = self
            .run(
                &self.scripts.campaign_join,
                &keys,
                &[
                    (fingerprint >> 32).to_string(),
                    (fingerprint & 0xffff_ffff).to_string(),
                    member.to_owned(),
                    author.to_owned(),
                    Self::ms(window),
                    max_distance.to_string(),
                    Self::ms(ttl),
                    format!("{fingerprint:016x}"),
                    super::campaign_scope_tag(scope),
                    CAMPAIGN_EARLIER.to_string(),
                ],
            )
            .await?;
        Ok(CampaignJoin {
            id,
            authors,
            posts,
            first_ms,
            last_ms,
            earlier,
            new_member: new == 1,
        })
    }

    /// The list and the set of names get their TTL back on every push (one
    /// script per key: they may live on different Cluster shards).
    async fn park(&self, list: &str, entry: &str) -> Result<Parking, StoreError> {
        let ttl = Self::ms(self.parked_expiry);
        let _: i64 = self
            .run(
                &self.scripts.push_with_ttl,
                &[self.parked_list(list)],
                &["RPUSH".into(), entry.to_owned(), ttl.clone()],
            )
            .await?;
        let _: i64 = self
            .run(
                &self.scripts.push_with_ttl,
                &[self.parked_index()],
                &["SADD".into(), list.to_owned(), ttl],
            )
            .await?;
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

/// A stored card record; one this version cannot read is an error (nothing
/// is decided on it), one of a newer version's states is [`CardRecord::Other`].
fn parse_record(raw: &str) -> Result<CardRecord, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError(format!("unreadable card record: {e}")))
}

/// An `unknown` reservation's detail: `until[:since]`; `None` without `since`
/// (a reservation by an earlier version) or when unreadable.
fn parse_attempted(detail: &str) -> Option<Attempted> {
    let (until, since) = detail.split_once(':')?;
    Some(Attempted {
        since: since.parse().ok()?,
        until: until.parse().ok()?,
    })
}
