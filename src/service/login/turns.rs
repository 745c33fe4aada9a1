//! How many password attempts from one client address may wait for the throttle at once,
//! on this node. An attempt takes its place in the hashing queue before the throttle
//! answers (`super::hashing_place`), and attempts that share a bucket (one address, one
//! account) wait for each other's lock on it; without a bound per address, one client,
//! even one the throttle refuses every time, could keep every place of the queue held by
//! attempts waiting there, and every other sign-in would be refused 503. With it, one
//! address holds at most [`PER_ADDRESS`] places before the throttle, and beyond that its
//! attempts are refused at once (429, `Retry-After: 1`), counted nowhere.
//!
//! Only the wait for the throttle is bounded here: an attempt the throttle admits keeps
//! its place until it is hashed, as many as the throttle's own limits let through. The
//! bound is per address, never per account, so that no one can keep a user's attempts out
//! by sending attempts for that account (the account's bucket never locks: see
//! `throttle`). It is a node's own load shedding, not a security counter: the throttle's
//! buckets, shared by every node, stay the authority.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Attempts from one address that may wait for the throttle at once.
pub const PER_ADDRESS: usize = 2;

/// The attempts waiting for the throttle, per address key (`throttle::address_key`).
#[derive(Debug, Default)]
pub struct Turns {
    waiting: Mutex<HashMap<String, usize>>,
}

/// One attempt's turn at the throttle, given back on drop.
#[derive(Debug)]
pub struct Turn {
    turns: Arc<Turns>,
    address: String,
}

impl Turns {
    /// A turn for an attempt from `address`, or `None` when [`PER_ADDRESS`] attempts from
    /// it are waiting already.
    pub fn take(self: &Arc<Self>, address: &str) -> Option<Turn> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let n = waiting.entry(address.to_owned()).or_insert(0);
        if *n >= PER_ADDRESS {
            return None;
        }
        *n += 1;
        Some(Turn {
            turns: Arc::clone(self),
            address: address.to_owned(),
        })
    }

    /// How many addresses have an attempt waiting (the map holds no others).
    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.waiting.lock().map_or(0, |w| w.len())
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut waiting = self.turns.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = waiting.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                waiting.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_two_turns_at_once_and_others_theirs() {
        let turns = Arc::new(Turns::default());
        let first = turns.take("10.0.0.1").unwrap();
        let second = turns.take("10.0.0.1").unwrap();
        assert!(
            turns.take("10.0.0.1").is_none(),
            "a third waits for nothing"
        );
        let other = turns
            .take("10.0.0.2")
            .expect("another address is not held back");
        drop(first);
        let again = turns.take("10.0.0.1").expect("a turn given back is free");
        drop((second, again, other));
        assert_eq!(
            turns.addresses(),
            0,
            "no address is kept once its turns are back"
        );
    }
}
