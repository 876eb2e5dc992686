//! Cards kept in memory instead of posted: for tests and for embedding modbridge
//! as a library. It can be told to fail, per target, the ways platforms fail.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Target;
use super::{MessageRef, PlatformError, Reminder};
use crate::card::Card;
use crate::digest::Grouped;

#[derive(Debug, Clone)]
enum Failure {
    /// The next `n` deliveries fail as transient errors.
    Transient(usize),
    /// Every delivery fails as a configuration error until cleared.
    Config,
    /// Every delivery is refused as malformed until cleared.
    Rejected,
}

#[derive(Debug, Clone, Default)]
pub struct Recorder {
    cards: Arc<Mutex<Vec<(Target, Card)>>>,
    attempts: Arc<AtomicUsize>,
    /// `None` key: any target.
    failures: Arc<Mutex<HashMap<Option<Target>, Failure>>>,
    delay: Arc<Mutex<Duration>>,
    replies: Arc<Mutex<Vec<(MessageRef, Reminder)>>>,
    /// Reminders still to fail.
    failing_replies: Arc<AtomicUsize>,
    /// Grouped messages (digests, campaigns), each as last posted or edited.
    grouped: Arc<Mutex<Vec<(Target, Grouped)>>>,
    /// Posts and edits of grouped messages.
    grouped_calls: Arc<AtomicUsize>,
}

impl Recorder {
    /// Cards accepted, in order.
    pub fn cards(&self) -> Vec<Card> {
        self.lock_cards().iter().map(|(_, c)| c.clone()).collect()
    }

    /// Cards accepted for one target.
    pub fn cards_for(&self, target: &Target) -> Vec<Card> {
        self.lock_cards()
            .iter()
            .filter(|(t, _)| t == target)
            .map(|(_, c)| c.clone())
            .collect()
    }

    /// Every delivery attempt, accepted or not.
    pub fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }

    /// The next `n` deliveries (to any target) fail as transient errors.
    pub fn fail_next(&self, n: usize) {
        self.set(None, Failure::Transient(n));
    }

    /// The next `n` deliveries to `target` fail as transient errors.
    pub fn fail_next_for(&self, target: &Target, n: usize) {
        self.set(Some(target.clone()), Failure::Transient(n));
    }

    /// Deliveries to `target` fail as configuration errors until [`Recorder::fix`].
    pub fn break_config(&self, target: &Target) {
        self.set(Some(target.clone()), Failure::Config);
    }

    /// Deliveries to `target` are refused as malformed until [`Recorder::fix`].
    pub fn reject(&self, target: &Target) {
        self.set(Some(target.clone()), Failure::Rejected);
    }

    pub fn fix(&self, target: &Target) {
        self.lock_failures().remove(&Some(target.clone()));
    }

    /// Every delivery takes this long (a slow platform).
    pub fn set_delay(&self, delay: Duration) {
        *self.delay.lock().unwrap_or_else(|p| p.into_inner()) = delay;
    }

    fn set(&self, key: Option<Target>, failure: Failure) {
        self.lock_failures().insert(key, failure);
    }

    fn lock_cards(&self) -> std::sync::MutexGuard<'_, Vec<(Target, Card)>> {
        self.cards.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_failures(&self) -> std::sync::MutexGuard<'_, HashMap<Option<Target>, Failure>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn failure(&self, target: &Target) -> Option<PlatformError> {
        let mut failures = self.lock_failures();
        for key in [Some(target.clone()), None] {
            match failures.get_mut(&key) {
                Some(Failure::Config) => {
                    return Some(PlatformError::Config {
                        platform: "recorder",
                        detail: "told to be misconfigured".into(),
                    });
                }
                Some(Failure::Rejected) => {
                    return Some(PlatformError::Rejected {
                        platform: "recorder",
                        detail: "told to refuse the card".into(),
                    });
                }
                Some(Failure::Transient(n)) if *n > 0 => {
                    *n -= 1;
                    return Some(PlatformError::Transient {
                        platform: "recorder",
                        detail: "told to fail".into(),
                        retry_after: None,
                    });
                }
                _ => {}
            }
        }
        None
    }

    pub async fn deliver(&self, card: &Card, target: &Target) -> Result<(), PlatformError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let delay = *self.delay.lock().unwrap_or_else(|p| p.into_inner());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if let Some(e) = self.failure(target) {
            return Err(e);
        }
        self.lock_cards().push((target.clone(), card.clone()));
        Ok(())
    }

    /// The next `n` reminders fail as transient errors.
    pub fn fail_next_replies(&self, n: usize) {
        self.failing_replies.store(n, Ordering::SeqCst);
    }

    /// Keeps a reminder (or fails, when told to).
    pub async fn reply(
        &self,
        message: &MessageRef,
        reminder: &Reminder,
    ) -> Result<(), PlatformError> {
        let failing = self
            .failing_replies
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if failing.is_ok() {
            return Err(PlatformError::Transient {
                platform: "recorder",
                detail: "told to fail".into(),
                retry_after: None,
            });
        }
        self.replies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((message.clone(), reminder.clone()));
        Ok(())
    }

    /// Reminders kept, in order.
    pub fn replies(&self) -> Vec<(MessageRef, Reminder)> {
        self.replies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Posts a grouped message (or fails like a card would); its reference
    /// is its index, so that it can be edited.
    pub async fn post_grouped(
        &self,
        grouped: &Grouped,
        target: &Target,
    ) -> Result<MessageRef, PlatformError> {
        self.grouped_calls.fetch_add(1, Ordering::SeqCst);
        if let Some(e) = self.failure(target) {
            return Err(e);
        }
        let mut all = self.grouped.lock().unwrap_or_else(|p| p.into_inner());
        all.push((target.clone(), grouped.clone()));
        Ok(MessageRef::Slack {
            channel: RECORDED.into(),
            ts: (all.len() - 1).to_string(),
        })
    }

    /// Replaces a grouped message posted here.
    pub async fn update_grouped(
        &self,
        message: &MessageRef,
        grouped: &Grouped,
    ) -> Result<(), PlatformError> {
        self.grouped_calls.fetch_add(1, Ordering::SeqCst);
        let index = match message {
            MessageRef::Slack { channel, ts } if channel == RECORDED => ts.parse::<usize>().ok(),
            _ => None,
        };
        let mut all = self.grouped.lock().unwrap_or_else(|p| p.into_inner());
        match index.and_then(|i| all.get_mut(i)) {
            Some((target, g)) => {
                if let Some(e) = self.failure(target) {
                    return Err(e);
                }
                *g = grouped.clone();
                Ok(())
            }
            None => Err(PlatformError::Rejected {
                platform: "recorder",
                detail: "no such grouped message".into(),
            }),
        }
    }

    /// Grouped messages, each as last posted or edited, in order of posting.
    pub fn grouped(&self) -> Vec<(Target, Grouped)> {
        self.grouped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Posts and edits of grouped messages.
    pub fn grouped_calls(&self) -> usize {
        self.grouped_calls.load(Ordering::SeqCst)
    }
}

/// The channel of the references the recorder gives grouped messages.
const RECORDED: &str = "recorder";
