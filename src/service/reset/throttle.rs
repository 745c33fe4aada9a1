//! How often reset links may be requested, in the throttle buckets that sign-ins use
//! (`authn::throttle`, `throttle_buckets`): per account and per client address, fixed
//! windows of an hour. A request over either limit is counted nowhere and mails nothing;
//! its answer is the same as any other.

use crate::authn::throttle::{acquire, Check, Rule, Verdict};
use crate::clock::UnixTime;
use crate::service::login::throttle::address_key;
use crate::store::{decide_on_buckets, StoreError, ThrottleStore};

/// Reset mails per account an hour: enough for a lost first mail and a typo, too few to
/// bury a mailbox.
pub const PER_ACCOUNT: u32 = 3;
/// Requests per client address an hour, across all names (spraying for accounts).
pub const PER_ADDRESS: u32 = 10;

const WINDOW: i64 = 3_600;

fn fixed(free: u32) -> Rule {
    // `base_delay == 0`: a fixed window, blocked until it ends once `free` were counted.
    Rule {
        free,
        base_delay: 0,
        max_delay: 0,
        window: WINDOW,
    }
}

/// Counts a request for `account` from `ip`; false when either bucket is full.
pub async fn admit(
    store: &dyn ThrottleStore,
    account: &str,
    ip: &str,
    now: UnixTime,
) -> Result<bool, StoreError> {
    let keys = [
        format!("reset:{account}"),
        format!("reset-addr:{}", address_key(ip)),
    ];
    let checks = [
        Check::counted(fixed(PER_ACCOUNT)),
        Check::counted(fixed(PER_ADDRESS)),
    ];
    let verdict = decide_on_buckets(store, &keys, now, move |current| {
        let acquired = acquire(&checks, current, now);
        (acquired.buckets, acquired.verdict)
    })
    .await?;
    Ok(verdict == Verdict::Allowed)
}
