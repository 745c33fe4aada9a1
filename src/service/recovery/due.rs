//! The due work of MFA recoveries: reminders before the effect, and the effect itself.
//! [`run_due`] runs on every node (spawned at start-up, every `mail.poll_interval_secs`);
//! each step is a conditional `UPDATE` from the state it read, so a step two nodes both
//! find due is applied once.

use std::sync::Arc;
use std::time::Duration;

use crate::authn::recovery::{self, Event};
use crate::clock::UnixTime;
use crate::domain::{MfaRecovery, RecoveryState, TokenPurpose};
use crate::store::RecoveryChange;

use super::super::session::ClientInfo;
use super::super::{admin, audit, AppState, ServiceError};
use super::{cancel_mail, compose, policy, when};

/// Recoveries looked at per batch.
const BATCH: u32 = 50;
/// Most batches per run.
const MAX_BATCHES: u32 = 20;

/// Runs [`run_due`] every `mail.poll_interval_secs` until the process ends.
pub fn spawn(state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = Duration::from_secs(state.settings.mail.poll_interval_secs.max(1));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = run_due(&state, state.clock.now()).await {
                tracing::warn!(error = %e, "MFA recovery due work failed; will retry");
            }
        }
    })
}

/// Sends the reminders and applies the recoveries that are due at `now`; returns how many
/// steps this call applied (another node may have applied the rest).
pub async fn run_due(state: &AppState, now: UnixTime) -> Result<usize, ServiceError> {
    let policy = policy(state);
    let remind_until = now.saturating_add(policy.reminder_secs);
    let mut applied = 0;
    for _ in 0..MAX_BATCHES {
        let due = state.store.due_recoveries(now, remind_until, BATCH).await?;
        let full = due.len() == BATCH as usize;
        for r in due {
            let done = match recovery::due(&r, &policy, now) {
                Some(Event::TakeEffect) => take_effect(state, r, now).await?,
                Some(Event::Remind) => remind(state, r, now).await?,
                _ => false,
            };
            applied += usize::from(done);
        }
        if !full {
            break;
        }
    }
    if applied > 0 {
        state.mailer.wake();
    }
    Ok(applied)
}

/// Who acts for the due work in the audit trail.
fn scheduler() -> ClientInfo {
    ClientInfo {
        user_agent: "latchkey (scheduled)".into(),
        ip: String::new(),
    }
}

async fn remind(state: &AppState, r: MfaRecovery, now: UnixTime) -> Result<bool, ServiceError> {
    let Some(user) = state.store.get_user(&r.user_id).await? else {
        return Ok(false);
    };
    let Ok(next) = recovery::apply(r.clone(), Event::Remind, &policy(state), now) else {
        return Ok(false);
    };
    let RecoveryState::Waiting { effective_at, .. } = next.state else {
        return Ok(false);
    };
    // A second cancel link; the first mail's link stays valid too.
    let (issue, mail) = cancel_mail(state, &user, "mfa_recovery_reminder", effective_at, now)?;
    let change = RecoveryChange {
        from: Some(&r),
        to: &next,
        spend: None,
        void: &[],
        issue: Some(&issue),
        remove_factors: false,
        mails: std::slice::from_ref(&mail),
        now,
    };
    if !state.store.write_recovery(&change).await? {
        return Ok(false);
    }
    let detail = format!("takes effect {}", when(effective_at));
    let store = state.store.as_ref();
    let info = scheduler();
    audit::record(
        store,
        "mfa_recovery_reminded",
        Some(user.id.as_str()),
        &info,
        detail,
        now,
    )
    .await?;
    Ok(true)
}

/// The waiting period is over: in one transaction the second factors go, the credentials
/// epoch moves on (every session, pending login, code and refresh token made before ends
/// with it) and the user must enrol a new factor; then sessions are ended and refresh
/// families revoked explicitly, as a password change does.
async fn take_effect(
    state: &AppState,
    r: MfaRecovery,
    now: UnixTime,
) -> Result<bool, ServiceError> {
    let Some(user) = state.store.get_user(&r.user_id).await? else {
        return Ok(false);
    };
    let Ok(next) = recovery::apply(r.clone(), Event::TakeEffect, &policy(state), now) else {
        return Ok(false);
    };
    let ctx = minijinja::context! { username => user.username.as_str() };
    let mail = compose(state, "mfa_recovery_effective", &user, ctx, now)?;
    let change = RecoveryChange {
        from: Some(&r),
        to: &next,
        spend: None,
        void: &[
            TokenPurpose::ConfirmMfaRecovery,
            TokenPurpose::CancelMfaRecovery,
        ],
        issue: None,
        remove_factors: true,
        mails: std::slice::from_ref(&mail),
        now,
    };
    if !state.store.write_recovery(&change).await? {
        return Ok(false);
    }
    admin::cut_off(state.store.as_ref(), &user, now).await?;
    let store = state.store.as_ref();
    let detail = "second factors removed; sessions and refresh families ended";
    let info = scheduler();
    audit::record(
        store,
        "mfa_recovery_effective",
        Some(user.id.as_str()),
        &info,
        detail,
        now,
    )
    .await?;
    Ok(true)
}
