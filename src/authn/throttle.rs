//! Failed-attempt counting in fixed windows: after `max` failures for a key within
//! `window` seconds of the first one, the key is blocked until that window ends.

use std::collections::HashMap;

use crate::clock::UnixTime;

#[derive(Debug, Clone, Copy)]
struct Window {
    first_failure: UnixTime,
    failures: u32,
}

/// Counts failures per key (a username, an IP address).
#[derive(Debug)]
pub struct Throttle {
    max: u32,
    window: i64,
    capacity: usize,
    entries: HashMap<String, Window>,
}

impl Throttle {
    /// At most `max` failures per `window` seconds, remembering at most `capacity` keys.
    pub fn new(max: u32, window: i64, capacity: usize) -> Self {
        Self {
            max,
            window,
            capacity,
            entries: HashMap::new(),
        }
    }

    /// True while `key` has used up its failures for the current window.
    pub fn is_blocked(&self, key: &str, now: UnixTime) -> bool {
        self.live(key, now).is_some_and(|w| w.failures >= self.max)
    }

    /// Counts one failure for `key`.
    pub fn record_failure(&mut self, key: &str, now: UnixTime) {
        let window = match self.live(key, now) {
            Some(w) => Window {
                failures: w.failures.saturating_add(1),
                ..w
            },
            None => Window {
                first_failure: now,
                failures: 1,
            },
        };
        if self.entries.len() >= self.capacity && !self.entries.contains_key(key) {
            self.prune(now);
        }
        self.entries.insert(key.to_owned(), window);
    }

    /// Checks and counts in one step: false (and nothing counted) if `key` is blocked,
    /// otherwise the attempt is counted as a failure until [`Throttle::refund`] or
    /// [`Throttle::reset`] says otherwise. Counting before the slow check means a burst of
    /// parallel attempts cannot all slip past the limit.
    pub fn try_acquire(&mut self, key: &str, now: UnixTime) -> bool {
        if self.is_blocked(key, now) {
            return false;
        }
        self.record_failure(key, now);
        true
    }

    /// Takes back one counted attempt (it succeeded).
    pub fn refund(&mut self, key: &str) {
        if let Some(w) = self.entries.get_mut(key) {
            w.failures = w.failures.saturating_sub(1);
            if w.failures == 0 {
                self.entries.remove(key);
            }
        }
    }

    /// Forgets `key` (after a successful login).
    pub fn reset(&mut self, key: &str) {
        self.entries.remove(key);
    }

    fn live(&self, key: &str, now: UnixTime) -> Option<Window> {
        self.entries
            .get(key)
            .copied()
            .filter(|w| now < w.first_failure + self.window)
    }

    /// Drops expired windows; if that is not enough, forgets the oldest half so memory
    /// stays bounded whatever an attacker sends.
    fn prune(&mut self, now: UnixTime) {
        let (window, max) = (self.window, self.max);
        self.entries.retain(|_, w| now < w.first_failure + window);
        // Blocked keys are what the throttle is for: evict the others first, so junk
        // failures cannot flush a lock.
        if self.entries.len() >= self.capacity {
            self.entries.retain(|_, w| w.failures >= max);
        }
        if self.entries.len() >= self.capacity {
            let mut starts: Vec<UnixTime> =
                self.entries.values().map(|w| w.first_failure).collect();
            starts.sort_unstable();
            if let Some(&cutoff) = starts.get(starts.len() / 2) {
                self.entries.retain(|_, w| w.first_failure > cutoff);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_failures_until_the_window_ends() {
        let mut t = Throttle::new(3, 100, 10);
        for i in 0..3 {
            assert!(!t.is_blocked("alice", 10 + i));
            t.record_failure("alice", 10 + i);
        }
        assert!(t.is_blocked("alice", 13));
        assert!(t.is_blocked("alice", 109));
        assert!(
            !t.is_blocked("alice", 110),
            "the window started at the first failure"
        );
        assert!(!t.is_blocked("bob", 13), "keys are independent");
    }

    #[test]
    fn a_new_window_starts_after_the_old_one() {
        let mut t = Throttle::new(2, 100, 10);
        t.record_failure("k", 0);
        t.record_failure("k", 150);
        assert!(!t.is_blocked("k", 151), "one failure in the new window");
        t.record_failure("k", 160);
        assert!(t.is_blocked("k", 161));
    }

    #[test]
    fn reset_forgets() {
        let mut t = Throttle::new(1, 100, 10);
        t.record_failure("k", 0);
        assert!(t.is_blocked("k", 1));
        t.reset("k");
        assert!(!t.is_blocked("k", 1));
    }

    #[test]
    fn acquire_counts_before_the_check_and_refund_takes_it_back() {
        let mut t = Throttle::new(2, 100, 10);
        assert!(t.try_acquire("k", 0));
        assert!(t.try_acquire("k", 0));
        assert!(
            !t.try_acquire("k", 0),
            "two attempts in flight use up the limit"
        );
        t.refund("k");
        assert!(t.try_acquire("k", 0), "a success gives its attempt back");
    }

    #[test]
    fn junk_cannot_evict_a_lock() {
        let mut t = Throttle::new(2, 1000, 10);
        t.record_failure("victim", 0);
        t.record_failure("victim", 0);
        for i in 0..1000 {
            t.record_failure(&format!("junk{i}"), 1);
        }
        assert!(t.is_blocked("victim", 2));
    }

    #[test]
    fn memory_is_bounded() {
        let mut t = Throttle::new(5, 1000, 100);
        for i in 0..10_000 {
            t.record_failure(&format!("user{i}"), i);
        }
        assert!(t.entries.len() <= 100);
        assert!(t.entries.contains_key("user9999"), "the newest survive");
    }
}
