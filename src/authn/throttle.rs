//! The throttle policy, pure: how one attempt changes a set of buckets. The buckets live in
//! the database so that every node shares them (`store::ThrottleStore`); the service
//! decides which keys an attempt touches (`service::throttle`).
//!
//! An attempt is counted *before* the slow check it guards (argon2, a TOTP comparison), so
//! a burst of parallel attempts cannot slip past a limit; a success takes its attempt back.
//! Once a bucket's count reaches `free`, every further attempt must wait: the delay starts
//! at `base_delay` and doubles with each attempt up to `max_delay` (a growing delay, never
//! a lockout). A rule with `base_delay == 0` is a fixed window instead: blocked until the
//! window ends.

use crate::clock::UnixTime;
use crate::domain::ThrottleBucket;

/// The limits of one kind of bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Attempts allowed before the first delay.
    pub free: u32,
    /// The first delay, in seconds; 0 makes the rule a fixed window.
    pub base_delay: i64,
    /// The longest delay, in seconds.
    pub max_delay: i64,
    /// A bucket is forgotten this long after its first attempt, in seconds.
    pub window: i64,
}

/// One bucket an attempt touches: whether the attempt counts in it (a bucket that only
/// gates, such as the per-account success limit, is checked but not counted), and whether
/// its delay holds this attempt back (the per-account ceiling counts every failure but
/// holds back only addresses that failed for the account themselves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// The rule.
    pub rule: Rule,
    /// Count this attempt in the bucket.
    pub count: bool,
    /// A running delay in this bucket throttles the attempt.
    pub enforce: bool,
}

impl Check {
    /// Counted and enforced.
    pub fn counted(rule: Rule) -> Self {
        Self {
            rule,
            count: true,
            enforce: true,
        }
    }

    /// Enforced, not counted.
    pub fn gate(rule: Rule) -> Self {
        Self {
            rule,
            count: false,
            enforce: true,
        }
    }
}

/// The verdict on an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead; the attempt is counted.
    Allowed,
    /// Wait this many seconds (at least 1); nothing was counted.
    Throttled {
        /// Seconds until the earliest allowed attempt.
        retry_after: i64,
    },
}

/// What [`acquire`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acquired {
    /// Allowed or throttled.
    pub verdict: Verdict,
    /// The buckets to store, in the order of the checks.
    pub buckets: Vec<Option<ThrottleBucket>>,
    /// Per check: this attempt started a delay in that bucket (for the audit trail).
    pub started_delay: Vec<bool>,
}

/// The bucket as it stands at `now`: `None` once its window has passed and no delay is
/// running.
fn live(rule: &Rule, bucket: Option<ThrottleBucket>, now: UnixTime) -> Option<ThrottleBucket> {
    bucket.filter(|b| now < b.window_start.saturating_add(rule.window) || now < b.blocked_until)
}

/// The delay after the `n`-th attempt beyond the free ones (n = 0 for the first).
fn delay(rule: &Rule, n: i64) -> i64 {
    let shift = u32::try_from(n.clamp(0, 40)).unwrap_or(40);
    rule.base_delay
        .saturating_mul(1_i64 << shift)
        .clamp(1, rule.max_delay.max(1))
}

/// Counts one attempt in `bucket` under `rule`.
pub fn count(rule: &Rule, bucket: Option<ThrottleBucket>, now: UnixTime) -> ThrottleBucket {
    let mut b = live(rule, bucket, now).unwrap_or(ThrottleBucket {
        count: 0,
        window_start: now,
        blocked_until: 0,
    });
    b.count = b.count.saturating_add(1);
    let free = i64::from(rule.free);
    if b.count >= free {
        b.blocked_until = if rule.base_delay == 0 {
            b.window_start.saturating_add(rule.window)
        } else {
            now.saturating_add(delay(rule, b.count - free))
        };
    }
    b
}

/// Checks every bucket; if any is in a delay, the attempt is throttled and nothing
/// changes. Otherwise the attempt is counted in every bucket whose check counts.
pub fn acquire(checks: &[Check], buckets: &[Option<ThrottleBucket>], now: UnixTime) -> Acquired {
    let current: Vec<Option<ThrottleBucket>> = checks
        .iter()
        .zip(buckets.iter().chain(std::iter::repeat(&None)))
        .map(|(c, b)| live(&c.rule, *b, now))
        .collect();
    let wait = checks
        .iter()
        .zip(&current)
        .filter(|(c, _)| c.enforce)
        .filter_map(|(_, b)| b.map(|b| b.blocked_until - now))
        .max()
        .unwrap_or(0);
    if wait > 0 {
        return Acquired {
            verdict: Verdict::Throttled { retry_after: wait },
            buckets: current,
            started_delay: vec![false; checks.len()],
        };
    }
    let mut started_delay = Vec::with_capacity(checks.len());
    let buckets = checks
        .iter()
        .zip(current)
        .map(|(c, b)| {
            if !c.count {
                started_delay.push(false);
                return b;
            }
            let next = count(&c.rule, b, now);
            started_delay.push(next.blocked_until > now);
            Some(next)
        })
        .collect();
    Acquired {
        verdict: Verdict::Allowed,
        buckets,
        started_delay,
    }
}

/// Takes back one counted attempt (it succeeded): the count drops by one, and a delay
/// that only this attempt caused is lifted.
pub fn refund(
    rule: &Rule,
    bucket: Option<ThrottleBucket>,
    now: UnixTime,
) -> Option<ThrottleBucket> {
    let mut b = live(rule, bucket, now)?;
    b.count = b.count.saturating_sub(1);
    if b.count <= 0 {
        return None;
    }
    if b.count < i64::from(rule.free) {
        b.blocked_until = 0;
    }
    Some(b)
}

#[cfg(test)]
mod tests;
