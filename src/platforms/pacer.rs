//! Per-channel pacing shared by the platforms: a small token bucket per key
//! (channel, webhook), and a hold after a 429 until its wait has passed.
//! Waiting happens before a platform call, within the call's deadline: a
//! wait that would pass it is not started ([`Pacer::wait_within`]).
//!
//! Edits of posted cards (a moderator's click) go first: while an edit
//! waits for a key, no new card takes that key's next token
//! ([`Priority::Edit`]), so a wave of new cards cannot hold a click's
//! update back by more than one token's time. Edits of grouped messages
//! (a wave's digest, a campaign card: [`Priority::Background`]) go last:
//! they yield to every waiting new card and edit of the same key, since the
//! next edit shows whatever they would have shown.

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
    /// Edits waiting for this key (they take tokens before new cards).
    edits_waiting: usize,
    /// New messages waiting for this key (background edits yield to them).
    posts_waiting: usize,
    /// A windowed pacer's messages within the window, oldest first.
    recent: std::collections::VecDeque<Instant>,
}

/// Who asks for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Priority {
    /// A new message (a card, a notice, a reminder).
    Post,
    /// An edit of a posted card after a moderator's click: first.
    Edit,
    /// An edit of a grouped message (a digest, a campaign card): after
    /// every waiting new message and edit of the same key.
    Background,
}

/// Counts an edit or a new message as waiting for its key while it lives
/// (also when its future is dropped mid-wait, as a call's deadline does).
struct Waiting<'a, K: Hash + Eq + Clone> {
    pacer: &'a Pacer<K>,
    key: K,
    priority: Priority,
}

impl<K: Hash + Eq + Clone> Drop for Waiting<'_, K> {
    fn drop(&mut self) {
        if let Ok(mut buckets) = self.pacer.buckets.lock()
            && let Some(b) = buckets.get_mut(&self.key)
        {
            match self.priority {
                Priority::Edit => b.edits_waiting = b.edits_waiting.saturating_sub(1),
                Priority::Post => b.posts_waiting = b.posts_waiting.saturating_sub(1),
                Priority::Background => {}
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct Pacer<K> {
    buckets: Mutex<HashMap<K, Bucket>>,
    /// Messages allowed at once after a quiet spell.
    burst: f64,
    /// Sustained messages per second.
    per_second: f64,
    /// At most this many messages in any such window (instead of the token
    /// bucket): a client that keeps to it never passes a platform's fixed
    /// windows of the same size, however they are aligned.
    window: Option<(usize, Duration)>,
}

impl<K: Hash + Eq + Clone> Pacer<K> {
    pub(crate) fn new(burst: f64, per_second: f64) -> Self {
        Self {
            buckets: Mutex::new(HashMap::new()),
            burst,
            per_second,
            window: None,
        }
    }

    /// At most `n` messages per key in any `window` (Discord's buckets:
    /// five per five seconds per channel and route).
    pub(crate) fn windowed(n: usize, window: Duration) -> Self {
        Self {
            buckets: Mutex::new(HashMap::new()),
            burst: n as f64,
            per_second: n as f64 / window.as_secs_f64().max(0.001),
            window: Some((n.max(1), window)),
        }
    }

    /// Waits until `key` may take one more message.
    #[cfg(test)]
    pub(crate) async fn wait(&self, key: &K) {
        let _ = self.wait_within(key, None, Priority::Post).await;
    }

    /// Waits until `key` may take one more message, unless that is after
    /// `deadline`: then returns at once with how long the wait would be
    /// (nothing taken, nothing sent). An edit ([`Priority::Edit`]) goes
    /// before every new message waiting for the same key; a background edit
    /// ([`Priority::Background`]) after every waiting edit and new message.
    pub(crate) async fn wait_within(
        &self,
        key: &K,
        deadline: Option<Instant>,
        priority: Priority,
    ) -> Result<(), Duration> {
        let mut waiting: Option<Waiting<'_, K>> = None;
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
                    edits_waiting: 0,
                    posts_waiting: 0,
                    recent: std::collections::VecDeque::new(),
                });
                b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * self.per_second)
                    .min(self.burst);
                b.last = now;
                if let Some((n, window)) = self.window {
                    while b
                        .recent
                        .front()
                        .is_some_and(|t| now.duration_since(*t) >= window)
                    {
                        b.recent.pop_front();
                    }
                    // A token per free place in the window.
                    b.tokens = n.saturating_sub(b.recent.len()) as f64;
                }
                let next_place = match (self.window, b.recent.front()) {
                    (Some((_, window)), Some(oldest)) => Some(*oldest + window - now),
                    _ => None,
                };
                // Who waits before this one (a waiting caller does not
                // count itself): a new message yields to edits, a
                // background edit to edits and new messages.
                let ahead = match priority {
                    Priority::Post => b.edits_waiting,
                    Priority::Edit => 0,
                    Priority::Background => b.edits_waiting + b.posts_waiting,
                };
                let one_token = Duration::from_secs_f64(1.0 / self.per_second);
                match b.hold_until {
                    Some(until) if until > now => until - now,
                    _ if b.tokens >= 1.0 && ahead == 0 => {
                        b.tokens -= 1.0;
                        if self.window.is_some() {
                            b.recent.push_back(now);
                        }
                        // `waiting` (if any) is dropped on return: the
                        // edit no longer waits.
                        return Ok(());
                    }
                    // Tokens there, but someone ahead is about to take them.
                    _ if b.tokens >= 1.0 => one_token.min(Duration::from_millis(50)),
                    _ => next_place.unwrap_or_else(|| {
                        Duration::from_secs_f64((1.0 - b.tokens) / self.per_second)
                    }),
                }
            };
            if priority != Priority::Background && waiting.is_none() {
                if let Ok(mut buckets) = self.buckets.lock()
                    && let Some(b) = buckets.get_mut(key)
                {
                    match priority {
                        Priority::Edit => b.edits_waiting += 1,
                        _ => b.posts_waiting += 1,
                    }
                }
                waiting = Some(Waiting {
                    pacer: self,
                    key: key.clone(),
                    priority,
                });
            }
            let delay = match (self.window, deadline) {
                // A window's next place may be seconds away while others
                // wait for it too: wait for it up to the deadline, like a
                // bucket's tokens, and give up only when the deadline has
                // come (so a caller that retries gets its turn as often).
                (Some(_), Some(d)) => {
                    let now = Instant::now();
                    if now >= d {
                        return Err(delay);
                    }
                    delay.min(d - now)
                }
                (None, Some(d)) if Instant::now() + delay > d => return Err(delay),
                _ => delay,
            };
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
                edits_waiting: 0,
                posts_waiting: 0,
                recent: std::collections::VecDeque::new(),
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
    async fn a_windowed_pacer_never_puts_more_than_n_in_any_window() {
        let p = Pacer::windowed(5, Duration::from_secs(5));
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..12 {
            p.wait(&"C1").await;
            at.push(start.elapsed().as_secs());
        }
        // Five at once, the next five when the window has passed, and so on.
        assert_eq!(at, [0, 0, 0, 0, 0, 5, 5, 5, 5, 5, 10, 10]);
        // Another key has its own window.
        p.wait(&"C2").await;
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }

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
    async fn an_edit_takes_the_next_token_before_new_cards_waiting_longer() {
        use std::sync::Arc;
        let p = Arc::new(Pacer::new(1.0, 1.0));
        p.wait(&"C1").await; // the burst is used up
        let start = Instant::now();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Five new cards queue first, then one edit.
        for i in 0..5 {
            let (p, order) = (p.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                p.wait_within(&"C1", None, Priority::Post).await.unwrap();
                order.lock().unwrap().push(format!("card{i}"));
            }));
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (q, o) = (p.clone(), order.clone());
        let edit = tokio::spawn(async move {
            q.wait_within(&"C1", None, Priority::Edit).await.unwrap();
            o.lock().unwrap().push("edit".to_owned());
            start.elapsed()
        });
        let took = edit.await.unwrap();
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(order[0], "edit", "{order:?}");
        assert!(took <= Duration::from_secs(1), "one token's time: {took:?}");
        assert_eq!(order.len(), 6);
        // Nothing is left counted as waiting: cards flow at the rate again.
        let later = Instant::now();
        p.wait(&"C1").await;
        assert!(later.elapsed() <= Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_digest_edit_waits_behind_new_cards_and_edits_queued_after_it() {
        use std::sync::Arc;
        let p = Arc::new(Pacer::new(1.0, 1.0));
        p.wait(&"C1").await; // the burst is used up
        let start = Instant::now();
        let order = Arc::new(Mutex::new(Vec::new()));
        let spawn = |name: &'static str, priority| {
            let (p, order) = (p.clone(), order.clone());
            tokio::spawn(async move {
                p.wait_within(&"C1", None, priority).await.unwrap();
                order.lock().unwrap().push((name, start.elapsed()));
            })
        };
        // The digest's edit asks first, then two new cards and a click's edit.
        let mut tasks = vec![spawn("digest", Priority::Background)];
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        for (name, priority) in [
            ("card1", Priority::Post),
            ("card2", Priority::Post),
            ("edit", Priority::Edit),
        ] {
            tasks.push(spawn(name, priority));
            tokio::task::yield_now().await;
        }
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        let names: Vec<&str> = order.iter().map(|(n, _)| *n).collect();
        assert_eq!(names[0], "edit", "{order:?}");
        assert_eq!(names[3], "digest", "{order:?}");
        // Four tokens at one a second: the digest's edit is not starved.
        assert!(
            order[3].1 >= Duration::from_secs(4) && order[3].1 <= Duration::from_millis(4_100),
            "{order:?}"
        );
        // With nobody else waiting, a background edit takes a token at once.
        let q = Pacer::new(1.0, 1.0);
        let later = Instant::now();
        q.wait_within(&"C2", None, Priority::Background)
            .await
            .unwrap();
        assert_eq!(later.elapsed(), Duration::ZERO);
        // Nothing is left counted as waiting: the next card waits one token.
        let again = Instant::now();
        p.wait(&"C1").await;
        assert!(again.elapsed() <= Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn an_edit_given_up_at_its_deadline_holds_nothing_back() {
        let p = Pacer::new(1.0, 1.0);
        p.hold(&"C1", Duration::from_secs(10));
        let refused = p
            .wait_within(
                &"C1",
                Some(Instant::now() + Duration::from_secs(1)),
                Priority::Edit,
            )
            .await;
        assert!(refused.is_err());
        // An edit cut off mid-wait (its future dropped) neither.
        let q = Pacer::new(1.0, 1.0);
        q.wait(&"C2").await;
        let cut = tokio::time::timeout(
            Duration::from_millis(200),
            q.wait_within(&"C2", None, Priority::Edit),
        )
        .await;
        assert!(cut.is_err(), "still waiting when cut");
        let start = Instant::now();
        q.wait(&"C2").await;
        assert!(
            start.elapsed() <= Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_past_the_deadline_is_not_started() {
        let p = Pacer::new(1.0, 1.0);
        p.hold(&"C1", Duration::from_secs(3600));
        let start = Instant::now();
        let refused = p
            .wait_within(&"C1", Some(start + Duration::from_secs(5)), Priority::Post)
            .await;
        assert_eq!(refused, Err(Duration::from_secs(3600)));
        assert_eq!(start.elapsed(), Duration::ZERO, "it returned at once");
        // A wait within the deadline is waited.
        let q = Pacer::new(1.0, 1.0);
        q.wait(&"C2").await;
        let ok = q
            .wait_within(
                &"C2",
                Some(Instant::now() + Duration::from_secs(2)),
                Priority::Post,
            )
            .await;
        assert_eq!(ok, Ok(()));
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }
}
