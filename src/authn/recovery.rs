//! MFA recovery for a user who lost every second factor: a state machine whose last step
//! removes the factors only after a waiting period, so that someone who took over the
//! mailbox (and knows the password) cannot strip a second factor at once. Pure: the service
//! stores the record, feeds it events with `now`, and writes what comes back.
//!
//! ```text
//!   (password, 2FA page) --> Requested --confirm link--> Waiting{effective_at, reminded}
//!   (password-reset link) -------------------------->    Waiting --reminder--> Waiting
//!   Requested | Waiting --cancel (mail link, account page, 2FA sign-in)--> Cancelled
//!   Waiting --now >= effective_at--> Effective (factors removed)
//! ```

use crate::clock::UnixTime;
use crate::domain::{CancelledBy, MfaRecovery, RecoveryState, RecoveryVia};

/// The timings, from `[accounts]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// From confirmation to effect (`mfa_recovery_wait_secs`).
    pub wait_secs: i64,
    /// The reminder goes out this long before the effect (`mfa_recovery_reminder_secs`).
    pub reminder_secs: i64,
    /// A request must be confirmed within this (`email_link_secs`).
    pub confirm_secs: i64,
}

/// What happened to a recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The confirmation link was followed.
    Confirm,
    /// The reminder is being sent.
    Remind,
    /// The waiting period is over: remove the factors.
    TakeEffect,
    /// The user cancelled (or signed in with a second factor).
    Cancel(CancelledBy),
}

/// Why an event was refused; the record is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryError {
    /// The request was not confirmed in time.
    #[error("the recovery request has lapsed; ask again")]
    Lapsed,
    /// Too early for this step.
    #[error("the recovery is not due yet")]
    NotDue,
    /// The event does not apply in the current state (already confirmed, reminded,
    /// cancelled or taken effect).
    #[error("the recovery is no longer in a state where this applies")]
    WrongState,
}

/// A new request. Asked with the password, it waits for the mailbox's confirmation; asked
/// with a password-reset link, the mailbox is already proven, so the wait starts at once.
pub fn request(
    id: String,
    user_id: String,
    via: RecoveryVia,
    policy: &Policy,
    now: UnixTime,
) -> MfaRecovery {
    let requested = MfaRecovery {
        id,
        user_id,
        via,
        requested_at: now,
        confirm_by: now.saturating_add(policy.confirm_secs),
        confirmed_at: None,
        state: RecoveryState::Requested,
    };
    match via {
        RecoveryVia::Password => requested,
        RecoveryVia::PasswordReset => confirmed(requested, policy, now),
    }
}

fn confirmed(mut r: MfaRecovery, policy: &Policy, now: UnixTime) -> MfaRecovery {
    r.confirmed_at = Some(now);
    r.state = RecoveryState::Waiting {
        effective_at: now.saturating_add(policy.wait_secs),
        reminded_at: None,
    };
    r
}

/// When the reminder for a recovery taking effect at `effective_at` is due.
pub fn reminder_at(effective_at: UnixTime, policy: &Policy) -> UnixTime {
    effective_at.saturating_sub(policy.reminder_secs)
}

/// Applies `event` at `now`: the next record, or why not (then nothing may change).
pub fn apply(
    mut r: MfaRecovery,
    event: Event,
    policy: &Policy,
    now: UnixTime,
) -> Result<MfaRecovery, RecoveryError> {
    match (r.state, event) {
        (RecoveryState::Requested, Event::Confirm) if now >= r.confirm_by => {
            Err(RecoveryError::Lapsed)
        }
        (RecoveryState::Requested, Event::Confirm) => Ok(confirmed(r, policy, now)),
        (
            RecoveryState::Waiting {
                effective_at,
                reminded_at: None,
            },
            Event::Remind,
        ) => {
            if now < reminder_at(effective_at, policy) || now >= effective_at {
                return Err(RecoveryError::NotDue);
            }
            r.state = RecoveryState::Waiting {
                effective_at,
                reminded_at: Some(now),
            };
            Ok(r)
        }
        (RecoveryState::Waiting { effective_at, .. }, Event::TakeEffect) => {
            if now < effective_at {
                return Err(RecoveryError::NotDue);
            }
            r.state = RecoveryState::Effective { at: now };
            Ok(r)
        }
        // Cancelling keeps the factors, so it is allowed until the effect was applied,
        // even a moment past `effective_at`.
        (RecoveryState::Requested | RecoveryState::Waiting { .. }, Event::Cancel(by)) => {
            r.state = RecoveryState::Cancelled { at: now, by };
            Ok(r)
        }
        _ => Err(RecoveryError::WrongState),
    }
}

/// The due-work routine's question: what this recovery needs at `now`, if anything.
/// Taking effect wins over a reminder that was never sent.
pub fn due(r: &MfaRecovery, policy: &Policy, now: UnixTime) -> Option<Event> {
    match r.state {
        RecoveryState::Waiting { effective_at, .. } if now >= effective_at => {
            Some(Event::TakeEffect)
        }
        RecoveryState::Waiting {
            effective_at,
            reminded_at: None,
        } if now >= reminder_at(effective_at, policy) => Some(Event::Remind),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy {
        wait_secs: 86_400,
        reminder_secs: 10_800,
        confirm_secs: 3_600,
    };

    fn requested(at: UnixTime) -> MfaRecovery {
        request("r".into(), "u".into(), RecoveryVia::Password, &POLICY, at)
    }

    fn waiting(at: UnixTime) -> MfaRecovery {
        apply(requested(at), Event::Confirm, &POLICY, at).unwrap()
    }

    #[test]
    fn a_password_request_waits_for_the_mailbox_and_a_reset_one_does_not() {
        let r = requested(100);
        assert_eq!(r.state, RecoveryState::Requested);
        assert_eq!(r.confirm_by, 3_700);
        let r = request(
            "r".into(),
            "u".into(),
            RecoveryVia::PasswordReset,
            &POLICY,
            100,
        );
        assert_eq!(
            r.state,
            RecoveryState::Waiting {
                effective_at: 86_500,
                reminded_at: None
            }
        );
        assert_eq!(r.confirmed_at, Some(100));
    }

    #[test]
    fn confirmation_starts_the_wait_and_only_in_time_and_only_once() {
        let r = apply(requested(100), Event::Confirm, &POLICY, 200).unwrap();
        assert_eq!(
            r.state,
            RecoveryState::Waiting {
                effective_at: 86_600,
                reminded_at: None
            }
        );
        assert_eq!(r.confirmed_at, Some(200));
        assert_eq!(
            apply(r, Event::Confirm, &POLICY, 300),
            Err(RecoveryError::WrongState)
        );
        assert_eq!(
            apply(requested(100), Event::Confirm, &POLICY, 3_700),
            Err(RecoveryError::Lapsed)
        );
    }

    #[test]
    fn nothing_happens_before_the_wait_is_over() {
        let r = waiting(0);
        assert_eq!(due(&r, &POLICY, 0), None);
        assert_eq!(due(&r, &POLICY, 75_599), None);
        assert_eq!(
            apply(r.clone(), Event::TakeEffect, &POLICY, 86_399),
            Err(RecoveryError::NotDue)
        );
        assert_eq!(
            apply(r.clone(), Event::Remind, &POLICY, 75_599),
            Err(RecoveryError::NotDue)
        );
        assert_eq!(
            apply(requested(0), Event::TakeEffect, &POLICY, 999_999),
            Err(RecoveryError::WrongState),
            "an unconfirmed request never takes effect"
        );
    }

    #[test]
    fn the_reminder_goes_once_before_the_effect() {
        let r = waiting(0);
        assert_eq!(due(&r, &POLICY, 75_600), Some(Event::Remind));
        let reminded = apply(r, Event::Remind, &POLICY, 75_600).unwrap();
        assert_eq!(due(&reminded, &POLICY, 80_000), None);
        assert_eq!(
            apply(reminded.clone(), Event::Remind, &POLICY, 80_000),
            Err(RecoveryError::WrongState)
        );
        assert_eq!(due(&reminded, &POLICY, 86_400), Some(Event::TakeEffect));
    }

    #[test]
    fn when_both_are_due_the_effect_wins() {
        let r = waiting(0);
        assert_eq!(due(&r, &POLICY, 90_000), Some(Event::TakeEffect));
        assert_eq!(
            apply(r.clone(), Event::Remind, &POLICY, 90_000),
            Err(RecoveryError::NotDue)
        );
        let done = apply(r, Event::TakeEffect, &POLICY, 90_000).unwrap();
        assert_eq!(done.state, RecoveryState::Effective { at: 90_000 });
        assert_eq!(due(&done, &POLICY, 99_999), None);
        assert_eq!(
            apply(done, Event::TakeEffect, &POLICY, 99_999),
            Err(RecoveryError::WrongState),
            "applied once"
        );
    }

    #[test]
    fn an_open_recovery_can_be_cancelled_and_a_closed_one_cannot() {
        for r in [requested(0), waiting(0)] {
            let c = apply(r, Event::Cancel(CancelledBy::MailLink), &POLICY, 10).unwrap();
            assert_eq!(
                c.state,
                RecoveryState::Cancelled {
                    at: 10,
                    by: CancelledBy::MailLink
                }
            );
            assert!(!c.state.is_open());
            assert_eq!(due(&c, &POLICY, 999_999), None);
            assert_eq!(
                apply(c, Event::Cancel(CancelledBy::AccountPage), &POLICY, 11),
                Err(RecoveryError::WrongState)
            );
        }
        let done = apply(waiting(0), Event::TakeEffect, &POLICY, 86_400).unwrap();
        assert_eq!(
            apply(
                done,
                Event::Cancel(CancelledBy::SecondFactor),
                &POLICY,
                86_401
            ),
            Err(RecoveryError::WrongState)
        );
    }
}
