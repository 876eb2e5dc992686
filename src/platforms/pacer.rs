//! Per-channel pacing shared by the platforms: a small token bucket per key
//! (channel, webhook), and a hold after a 429 until its wait has passed.
//! Waiting happens before a platform call, within the call's deadline: a
//! wait that would pass it is not started ([`Pacer::wait_within`]).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    hold_until: Option<Instant>,
}

#[derive(Debug)]
pub(crate) struct Pacer<K> {
    buckets: Mutex<HashMap<K, Bucket>>,
    /// Messages allowed at once after a quiet spell.
    burst: f64,
    /// Sustained messages per second.
    per_second: f64,
}

impl<K: Hash + Eq + Clone> Pacer<K> {
    pub(crate) fn new(burst: f64, per_second: f64) -> Self {
        Self {
            buckets: Mutex::new(HashMap::new()),
            burst,
            per_second,
        }
    }

    /// Waits until `key` may take one more message.
    #[cfg(test)]
    pub(crate) async fn wait(&self, key: &K) {
        let _ = self.wait_within(key, None).await;
    }

    /// Waits until `key` may take one more message, unless that is after
    /// `deadline`: then returns at once with how long the wait would be
    /// (nothing taken, nothing sent).
    pub(crate) async fn wait_within(
        &self,
        key: &K,
        deadline: Option<Instant>,
    ) -> Result<(), Duration> {
        loop {
            let delay = {
                let Ok(mut buckets) = self.buckets.lock() else {
                    return Ok(());
                };
                let now = Instant::now();
                let b = buckets.entry(key.clone()).or_insert(Bucket {
                    tokens: self.burst,
                    last: now,
                    hold_until: None,
                });
                b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * self.per_second)
                    .min(self.burst);
                b.last = now;
                match b.hold_until {
                    Some(until) if until > now => until - now,
                    _ if b.tokens >= 1.0 => {
                        b.tokens -= 1.0;
                        return Ok(());
                    }
                    _ => Duration::from_secs_f64((1.0 - b.tokens) / self.per_second),
                }
            };
            if deadline.is_some_and(|d| Instant::now() + delay > d) {
                return Err(delay);
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// The platform said 429: nothing goes to `key` before `after` has passed.
    pub(crate) fn hold(&self, key: &K, after: Duration) {
        if let Ok(mut buckets) = self.buckets.lock() {
            let now = Instant::now();
            let b = buckets.entry(key.clone()).or_insert(Bucket {
                tokens: 0.0,
                last: now,
                hold_until: None,
            });
            b.tokens = 0.0;
            b.hold_until = Some(now + after);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // tokio's paused clock: sleeps advance virtual time at once, so the
    // timings below are exact and the test takes no real time.

    #[tokio::test(start_paused = true)]
    async fn allows_a_burst_then_the_rate() {
        let p = Pacer::new(3.0, 1.0);
        let start = Instant::now();
        for _ in 0..3 {
            p.wait(&"C1").await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        p.wait(&"C1").await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        p.wait(&"C1").await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn keys_have_their_own_buckets() {
        let p = Pacer::new(1.0, 1.0);
        let start = Instant::now();
        p.wait(&"C1").await;
        p.wait(&"C2").await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_holds_the_key_until_its_wait_has_passed() {
        let p = Pacer::new(3.0, 1.0);
        p.hold(&"C2", Duration::from_millis(300));
        let held = Instant::now();
        p.wait(&"C2").await;
        // The hold, then the token it emptied refills at the rate.
        assert!(
            held.elapsed() >= Duration::from_millis(300),
            "{:?}",
            held.elapsed()
        );
        assert!(
            held.elapsed() <= Duration::from_secs(2),
            "{:?}",
            held.elapsed()
        );
        // Another key is not held.
        let other = Instant::now();
        p.wait(&"C3").await;
        assert_eq!(other.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_past_the_deadline_is_not_started() {
        let p = Pacer::new(1.0, 1.0);
        p.hold(&"C1", Duration::from_secs(3600));
        let start = Instant::now();
        let refused = p
            .wait_within(&"C1", Some(start + Duration::from_secs(5)))
            .await;
        assert_eq!(refused, Err(Duration::from_secs(3600)));
        assert_eq!(start.elapsed(), Duration::ZERO, "it returned at once");
        // A wait within the deadline is waited.
        let q = Pacer::new(1.0, 1.0);
        q.wait(&"C2").await;
        let ok = q
            .wait_within(&"C2", Some(Instant::now() + Duration::from_secs(2)))
            .await;
        assert_eq!(ok, Ok(()));
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }
}
