//! Which throttle buckets a sign-in attempt touches, and the known-device cookie that lets
//! a browser which signed in before past an attacker's failures (see
//! `docs/authentication.md`).
//!
//! Password attempts, from an unknown device:
//! - `pair:{account}|{address}` — failures for one account from one address;
//! - `addr:{address}` — failures from one address across accounts (spraying);
//! - `acct:{account}` — failures for one account from everywhere; capped delays, it slows
//!   unknown devices but never locks;
//! - `ok:{account}` — a gate on successful sign-ins, so a valid password cannot keep
//!   argon2 busy.
//!
//! From a known device: `dev:{account}|{device}` and the `ok:` gate only, so an attacker's
//! failures elsewhere never stop the user. Second-factor codes: `code:{user id}`.
//! Account names are normalised and unknown accounts are keyed exactly like real ones, so
//! the answers are the same for both.

use std::net::IpAddr;
use std::sync::Arc;

use super::turns::{Turn, Turns};
use crate::authn::throttle::{acquire, count, refund, Check, Rule, Verdict};

use crate::clock::UnixTime;
use crate::config::LoginSettings;
use crate::domain::{ThrottleBucket, Username};
use crate::store::{decide_on_buckets, BucketUpdate, StoreError, ThrottleStore};

/// A bucket is forgotten a day after its first attempt (unless a delay still runs).
const FORGET_AFTER: i64 = 86_400;

/// The rules, from the settings, and the attempts waiting for them on this node.
#[derive(Debug, Clone)]
pub struct LoginThrottle {
    pair: Rule,
    address: Rule,
    account: Rule,
    success: Rule,
    code: Rule,
    turns: Arc<Turns>,
}

/// The answer to "may this attempt go ahead?".
#[derive(Debug)]
pub enum Gate {
    /// Yes; settle the ticket with the outcome.
    Open(Ticket),
    /// Not yet: wait this many seconds.
    Throttled {
        /// Seconds.
        retry_after: i64,
    },
}

/// An admitted attempt, counted as a failure until it is settled as a success.
#[derive(Debug)]
pub struct Ticket {
    keys: Vec<String>,
    kinds: Vec<Kind>,
    /// The buckets in which this attempt started a delay, by name (for the audit trail).
    pub started_delay: Vec<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Pair,
    Address,
    Account,
    Success,
    Code,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Pair => "account+address",
            Self::Address => "address",
            Self::Account => "account",
            Self::Success => "successes",
            Self::Code => "codes",
        }
    }
}

fn secs(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX / 4)
}

impl LoginThrottle {
    /// The rules the settings describe.
    pub fn new(s: &LoginSettings) -> Self {
        let growing = |free: u32, max: u64| Rule {
            free,
            base_delay: 1,
            max_delay: secs(max),
            window: FORGET_AFTER,
        };
        let fixed = |free: u32, window: u64| Rule {
            free,
            base_delay: 0,
            max_delay: 0,
            window: secs(window),
        };
        Self {
            pair: growing(s.free_failures_per_account_address, s.max_delay_secs),
            address: growing(s.free_failures_per_address, s.max_delay_secs),
            account: growing(s.free_failures_per_account, s.max_account_delay_secs),
            success: fixed(s.max_successes_per_account, s.success_window_secs),
            code: fixed(s.max_code_attempts, s.code_window_secs),
            turns: Arc::default(),
        }
    }

    /// A turn for a password attempt from `ip` to wait for the throttle, or `None` when
    /// as many from its address are waiting already (see `turns`): refuse it at once.
    pub fn turn(&self, ip: &str) -> Option<Turn> {
        self.turns.take(&address_key(ip))
    }

    fn rule(&self, kind: Kind) -> Rule {
        match kind {
            Kind::Pair => self.pair,
            Kind::Address => self.address,
            Kind::Account => self.account,
            Kind::Success => self.success,
            Kind::Code => self.code,
        }
    }

    /// Admits (and counts) a password attempt for `username` from `ip`, or says how long
    /// to wait. `device` is the known-device id the browser proved for this account.
    pub async fn begin_password(
        &self,
        store: &dyn ThrottleStore,
        username: &str,
        ip: &str,
        device: Option<&str>,
        now: UnixTime,
    ) -> Result<Gate, StoreError> {
        let account = account_key(username);
        let mut planned = match device {
            Some(d) => vec![(format!("dev:{account}|{d}"), Kind::Pair)],
            None => {
                let address = address_key(ip);
                vec![
                    (format!("pair:{account}|{address}"), Kind::Pair),
                    (format!("addr:{address}"), Kind::Address),
                    (format!("acct:{account}"), Kind::Account),
                ]
            }
        };
        planned.push((format!("ok:{account}"), Kind::Success));
        self.begin(store, planned, now).await
    }

    /// Admits (and counts) a second-factor code attempt for the user.
    pub async fn begin_code(
        &self,
        store: &dyn ThrottleStore,
        user_id: &str,
        now: UnixTime,
    ) -> Result<Gate, StoreError> {
        self.begin(store, vec![(format!("code:{user_id}"), Kind::Code)], now)
            .await
    }

    async fn begin(
        &self,
        store: &dyn ThrottleStore,
        planned: Vec<(String, Kind)>,
        now: UnixTime,
    ) -> Result<Gate, StoreError> {
        let (keys, kinds): (Vec<String>, Vec<Kind>) = planned.into_iter().unzip();
        let rules = self.clone();
        let checked = kinds.clone();
        let acquired = decide_on_buckets(store, &keys, now, move |current| {
            let checks = rules.checks(&checked, current, now);
            let acquired = acquire(&checks, current, now);
            (acquired.buckets.clone(), acquired)
        })
        .await?;
        Ok(match acquired.verdict {
            Verdict::Throttled { retry_after } => Gate::Throttled { retry_after },
            Verdict::Allowed => Gate::Open(Ticket {
                started_delay: kinds
                    .iter()
                    .zip(&acquired.started_delay)
                    .filter(|(_, started)| **started)
                    .map(|(k, _)| k.name())
                    .collect(),
                keys,
                kinds,
            }),
        })
    }

    /// The checks of an attempt touching `kinds`, whose buckets stand at `current`. The
    /// per-account ceiling counts every failure, but holds back only an address that has
    /// failed for this account itself: attackers spread over many addresses cannot keep a
    /// user on a new device out.
    fn checks(
        &self,
        kinds: &[Kind],
        current: &[Option<ThrottleBucket>],
        now: UnixTime,
    ) -> Vec<Check> {
        let pair_failed = kinds.iter().zip(current).any(|(k, b)| {
            *k == Kind::Pair
                && b.is_some_and(|b| b.count > 0 && now < b.window_start + self.pair.window)
        });
        kinds
            .iter()
            .map(|&k| match k {
                Kind::Success => Check::gate(self.success),
                Kind::Account => Check {
                    enforce: pair_failed,
                    ..Check::counted(self.account)
                },
                other => Check::counted(self.rule(other)),
            })
            .collect()
    }

    /// The attempt could not be checked (the password hasher was busy): every count it made
    /// is taken back, so an overloaded server never charges users for its own refusals.
    pub async fn release(
        &self,
        store: &dyn ThrottleStore,
        ticket: &Ticket,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let rules = self.clone();
        let kinds = ticket.kinds.clone();
        let update: BucketUpdate = Box::new(move |current| {
            kinds
                .iter()
                .zip(current)
                .map(|(&kind, bucket)| match kind {
                    Kind::Success => *bucket,
                    other => refund(&rules.rule(other), *bucket, now),
                })
                .collect()
        });
        store.update_buckets(&ticket.keys, now, update).await?;
        Ok(())
    }

    /// The attempt succeeded: the account+address (or device) bucket is cleared, the
    /// others get the attempt back, and the success is counted against the account's
    /// success limit.
    pub async fn succeeded(
        &self,
        store: &dyn ThrottleStore,
        ticket: &Ticket,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let rules = self.clone();
        let kinds = ticket.kinds.clone();
        let update: BucketUpdate = Box::new(move |current| {
            kinds
                .iter()
                .zip(current)
                .map(|(&kind, bucket)| match kind {
                    Kind::Pair => None,
                    Kind::Success => Some(count(&rules.success, *bucket, now)),
                    other => refund(&rules.rule(other), *bucket, now),
                })
                .collect()
        });
        store.update_buckets(&ticket.keys, now, update).await?;
        Ok(())
    }
}

/// The account as it would be looked up; names that cannot exist share one key, so they
/// cannot grow the table (and they never sign in anyway).
pub fn account_key(username: &str) -> String {
    // `!` is not a username character, so no real account shares this key (and no NUL:
    // PostgreSQL text cannot hold one).
    Username::parse(username).map_or_else(|_| "!invalid".to_owned(), |u| u.as_str().to_owned())
}

/// IPv4 addresses count one by one, IPv6 per /64 (the block one host usually owns);
/// IPv4-mapped IPv6 addresses are IPv4 addresses.
pub fn address_key(ip: &str) -> String {
    match ip.parse::<IpAddr>().map(|a| a.to_canonical()) {
        Ok(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => ip.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_per_64_and_ipv4_per_address() {
        assert_eq!(
            address_key("2001:db8:1:2:aaaa::1"),
            address_key("2001:db8:1:2:bbbb::9")
        );
        assert_ne!(
            address_key("2001:db8:1:2::1"),
            address_key("2001:db8:1:3::1")
        );
        assert_ne!(address_key("10.0.0.1"), address_key("10.0.0.2"));
    }

    #[test]
    fn ipv4_mapped_addresses_are_ipv4() {
        assert_eq!(address_key("::ffff:10.0.0.1"), "10.0.0.1");
        assert_eq!(address_key("::ffff:10.0.0.1"), address_key("10.0.0.1"));
    }

    #[test]
    fn invalid_usernames_share_one_key() {
        assert_eq!(
            account_key("not a valid name"),
            account_key(&"x y".repeat(1000))
        );
        assert_eq!(account_key(" Alice "), account_key("alice"));
    }
}
