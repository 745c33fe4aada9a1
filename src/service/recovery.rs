//! MFA recovery for a user who lost every second factor (issue 8, item 4): asked for with
//! the password (the second-factor page) or a password-reset link, confirmed from the
//! mailbox, and applied only after `accounts.mfa_recovery_wait_secs` by [`run_due`], unless
//! cancelled (mail link, account page, or a sign-in with a second factor) first. The rules
//! are the state machine in `authn::recovery`; every step is one store transaction with its
//! token and mail (`RecoveryStore::write_recovery`), and every step is audited.

mod account;
mod due;
mod links;

pub use account::{account_box, must_enrol, user_must_enrol, AccountBox};
pub use due::{run_due, spawn};

use links::{cancel_mail, check_link, compose, new_token, words, NOTHING_PENDING, USED};

use crate::authn::login::Stage;
use crate::authn::recovery::{self, Event, Policy};
use crate::clock::UnixTime;
use crate::crypto::token::hash_token;
use crate::domain::{
    CancelledBy, FactorKind, MfaRecovery, RecoveryState, RecoveryVia, TokenPurpose, User,
};
use crate::store::RecoveryChange;

use super::account::when;
use super::session::{ActiveSession, ClientInfo};
use super::{audit, AppState, ServiceError};

/// What the browser is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A confirmation link was mailed.
    ConfirmationSent,
    /// The waiting period runs; the factors go at this time unless cancelled.
    Waiting {
        /// When, in words.
        effective_at: String,
    },
    /// A recovery was already waiting; nothing changed.
    AlreadyWaiting {
        /// When it takes effect, in words.
        effective_at: String,
    },
    /// The recovery was cancelled.
    Cancelled,
    /// The link cannot be used; nothing changed.
    BadLink(&'static str),
    /// The request cannot be made; nothing changed.
    Refused(&'static str),
}

/// The recovery timings from `[accounts]`.
pub fn policy(state: &AppState) -> Policy {
    let a = &state.settings.accounts;
    let secs = super::session::secs;
    Policy {
        wait_secs: secs(a.mfa_recovery_wait_secs),
        reminder_secs: secs(a.mfa_recovery_reminder_secs),
        confirm_secs: secs(a.email_link_secs),
    }
}

/// "Lost your second factor?" on the second-factor page: the browser's pending login must
/// have passed the password (it is taken, single use, whatever happens next).
pub async fn request_from_login(
    state: &AppState,
    pending_cookie: Option<&str>,
    info: &ClientInfo,
    now: UnixTime,
) -> Result<Outcome, ServiceError> {
    const GONE: &str = "The sign-in has expired. Sign in again with your password first.";
    let Some((_, pending)) = super::login::take_pending(state, pending_cookie).await? else {
        return Ok(Outcome::Refused(GONE));
    };
    let password_passed = pending
        .passed
        .iter()
        .any(|f| f.kind == FactorKind::Password);
    let live = now < pending.expires_at() && now >= pending.started_at;
    if pending.stage != Stage::SecondFactor || !password_passed || !live {
        return Ok(Outcome::Refused(GONE));
    }
    let Some(user_id) = pending.user_id.as_deref() else {
        return Ok(Outcome::Refused(GONE));
    };
    let user = state.store.get_user(user_id).await?;
    let Some(user) = user.filter(|u| u.accepts_auth_under(pending.credentials_epoch)) else {
        return Ok(Outcome::Refused(GONE));
    };
    start(state, &user, RecoveryVia::Password, None, info, now).await
}

/// Checks a password-reset link offered as proof for a recovery (the page it opens).
pub async fn check_reset_link(
    state: &AppState,
    token: &str,
    now: UnixTime,
) -> Result<Result<User, &'static str>, ServiceError> {
    Ok(
        check_link(state, token, TokenPurpose::PasswordReset, true, now)
            .await?
            .map(|(_, user)| user),
    )
}

/// Starts a recovery with a password-reset link: the link is spent, and since it proved the
/// mailbox, the waiting period starts at once (no separate confirmation mail).
pub async fn request_from_reset(
    state: &AppState,
    token: &str,
    info: &ClientInfo,
    now: UnixTime,
) -> Result<Outcome, ServiceError> {
    let user = match check_reset_link(state, token, now).await? {
        Ok(user) => user,
        Err(reason) => return Ok(Outcome::BadLink(reason)),
    };
    let hash = hash_token(token);
    let spend = Some((hash.as_slice(), TokenPurpose::PasswordReset));
    start(state, &user, RecoveryVia::PasswordReset, spend, info, now).await
}

async fn start(
    state: &AppState,
    user: &User,
    via: RecoveryVia,
    spend: Option<(&[u8], TokenPurpose)>,
    info: &ClientInfo,
    now: UnixTime,
) -> Result<Outcome, ServiceError> {
    let store = state.store.as_ref();
    let user_id = user.id.as_str();
    if state.factors.enrolled(store, user_id).await?.is_empty() {
        return Ok(Outcome::Refused(
            "This account has no second factor to recover: sign in with your password.",
        ));
    }
    if let Some(outcome) = already_waiting(state, user_id).await? {
        return Ok(outcome);
    }
    let id = uuid::Uuid::new_v4().to_string();
    let policy = policy(state);
    let r = recovery::request(id, user_id.to_owned(), via, &policy, now);
    let (issue, mail, outcome) = match r.state {
        RecoveryState::Waiting { effective_at, .. } => {
            let (token, mail) =
                cancel_mail(state, user, "mfa_recovery_requested", effective_at, now)?;
            let outcome = Outcome::Waiting {
                effective_at: when(effective_at),
            };
            (token, mail, outcome)
        }
        _ => {
            let (value, token) =
                new_token(TokenPurpose::ConfirmMfaRecovery, user, r.confirm_by, now)?;
            let ctx = minijinja::context! {
                username => user.username.as_str(),
                link => state.mailer.link("/mfa-recovery/confirm", &value),
                expires => when(r.confirm_by),
                wait => words(policy.wait_secs),
            };
            let mail = compose(state, "mfa_recovery_confirm", user, ctx, now)?;
            (token, mail, Outcome::ConfirmationSent)
        }
    };
    let change = RecoveryChange {
        from: None,
        to: &r,
        spend,
        void: &[
            TokenPurpose::ConfirmMfaRecovery,
            TokenPurpose::CancelMfaRecovery,
        ],
        issue: Some(&issue),
        remove_factors: false,
        mails: std::slice::from_ref(&mail),
        now,
    };
    if !store.write_recovery(&change).await? {
        // The link was spent meanwhile, or a recovery started waiting meanwhile.
        if spend.is_some() {
            return Ok(Outcome::BadLink(USED));
        }
        return Ok(already_waiting(state, user_id)
            .await?
            .unwrap_or(Outcome::BadLink(USED)));
    }
    state.mailer.wake();
    let detail = format!("via={}", via.as_str());
    audit::record(
        store,
        "mfa_recovery_requested",
        Some(user_id),
        info,
        detail,
        now,
    )
    .await?;
    Ok(outcome)
}

async fn already_waiting(state: &AppState, user_id: &str) -> Result<Option<Outcome>, ServiceError> {
    Ok(match state.store.open_recovery(user_id).await? {
        Some(MfaRecovery {
            state: RecoveryState::Waiting { effective_at, .. },
            ..
        }) => Some(Outcome::AlreadyWaiting {
            effective_at: when(effective_at),
        }),
        _ => None,
    })
}

/// Checks a confirmation link (the page it opens): the recovery it confirms, if usable.
pub async fn check_confirm_link(
    state: &AppState,
    token: &str,
    now: UnixTime,
) -> Result<Result<User, &'static str>, ServiceError> {
    Ok(
        check_link(state, token, TokenPurpose::ConfirmMfaRecovery, true, now)
            .await?
            .map(|(_, user)| user),
    )
}

/// Follows a confirmation link: the waiting period starts; a notice with a cancel link goes
/// to the mailbox.
pub async fn confirm(
    state: &AppState,
    token: &str,
    info: &ClientInfo,
    now: UnixTime,
) -> Result<Outcome, ServiceError> {
    let user = match check_confirm_link(state, token, now).await? {
        Ok(user) => user,
        Err(reason) => return Ok(Outcome::BadLink(reason)),
    };
    let user_id = user.id.as_str();
    let Some(open) = state.store.open_recovery(user_id).await? else {
        return Ok(Outcome::BadLink(NOTHING_PENDING));
    };
    let Ok(next) = recovery::apply(open.clone(), Event::Confirm, &policy(state), now) else {
        return Ok(Outcome::BadLink(
            "This request has lapsed or was already confirmed.",
        ));
    };
    let RecoveryState::Waiting { effective_at, .. } = next.state else {
        return Ok(Outcome::BadLink(NOTHING_PENDING));
    };
    let (issue, mail) = cancel_mail(state, &user, "mfa_recovery_requested", effective_at, now)?;
    let hash = hash_token(token);
    let change = RecoveryChange {
        from: Some(&open),
        to: &next,
        spend: Some((&hash, TokenPurpose::ConfirmMfaRecovery)),
        void: &[TokenPurpose::CancelMfaRecovery],
        issue: Some(&issue),
        remove_factors: false,
        mails: std::slice::from_ref(&mail),
        now,
    };
    if !state.store.write_recovery(&change).await? {
        return Ok(Outcome::BadLink(USED));
    }
    state.mailer.wake();
    let detail = format!("takes effect {}", when(effective_at));
    let store = state.store.as_ref();
    audit::record(
        store,
        "mfa_recovery_confirmed",
        Some(user_id),
        info,
        detail,
        now,
    )
    .await?;
    Ok(Outcome::Waiting {
        effective_at: when(effective_at),
    })
}

/// Checks a cancel link (the page it opens). Not bound to the credentials epoch: cancelling
/// only keeps the factors, and must work even after someone changed the password.
pub async fn check_cancel_link(
    state: &AppState,
    token: &str,
    now: UnixTime,
) -> Result<Result<User, &'static str>, ServiceError> {
    Ok(
        check_link(state, token, TokenPurpose::CancelMfaRecovery, false, now)
            .await?
            .map(|(_, user)| user),
    )
}

/// Cancels from a notice mail's link.
pub async fn cancel_by_link(
    state: &AppState,
    token: &str,
    info: &ClientInfo,
    now: UnixTime,
) -> Result<Outcome, ServiceError> {
    let user = match check_cancel_link(state, token, now).await? {
        Ok(user) => user,
        Err(reason) => return Ok(Outcome::BadLink(reason)),
    };
    let hash = hash_token(token);
    let spend = Some((hash.as_slice(), TokenPurpose::CancelMfaRecovery));
    cancel(state, &user, CancelledBy::MailLink, spend, info, now).await
}

/// Cancels from the account page.
pub async fn cancel_by_account(
    state: &AppState,
    me: &ActiveSession,
    info: &ClientInfo,
    now: UnixTime,
) -> Result<Outcome, ServiceError> {
    cancel(state, &me.user, CancelledBy::AccountPage, None, info, now).await
}

/// A sign-in (or step-up, or re-authentication) with a second factor: the user still has
/// one, so an open recovery is cancelled and the must-enrol flag cleared.
pub async fn second_factor_used(
    state: &AppState,
    user: &User,
    info: &ClientInfo,
    now: UnixTime,
) -> Result<(), ServiceError> {
    let user_id = user.id.as_str();
    state.store.clear_must_enrol_factor(user_id).await?;
    if state.store.open_recovery(user_id).await?.is_some() {
        cancel(state, user, CancelledBy::SecondFactor, None, info, now).await?;
    }
    Ok(())
}

async fn cancel(
    state: &AppState,
    user: &User,
    by: CancelledBy,
    spend: Option<(&[u8], TokenPurpose)>,
    info: &ClientInfo,
    now: UnixTime,
) -> Result<Outcome, ServiceError> {
    let user_id = user.id.as_str();
    let Some(open) = state.store.open_recovery(user_id).await? else {
        return Ok(Outcome::BadLink(NOTHING_PENDING));
    };
    let Ok(next) = recovery::apply(open.clone(), Event::Cancel(by), &policy(state), now) else {
        return Ok(Outcome::BadLink(NOTHING_PENDING));
    };
    let how = match by {
        CancelledBy::MailLink => "with the link in our e-mail",
        CancelledBy::AccountPage => "from your account page",
        CancelledBy::SecondFactor => "because you signed in with a second factor",
        CancelledBy::Superseded => "by a newer request",
    };
    let ctx = minijinja::context! { username => user.username.as_str(), how };
    let mail = compose(state, "mfa_recovery_cancelled", user, ctx, now)?;
    let change = RecoveryChange {
        from: Some(&open),
        to: &next,
        spend,
        void: &[
            TokenPurpose::ConfirmMfaRecovery,
            TokenPurpose::CancelMfaRecovery,
        ],
        issue: None,
        remove_factors: false,
        mails: std::slice::from_ref(&mail),
        now,
    };
    if !state.store.write_recovery(&change).await? {
        return Ok(Outcome::BadLink(NOTHING_PENDING));
    }
    state.mailer.wake();
    let detail = format!("by={}", by.as_str());
    let store = state.store.as_ref();
    audit::record(
        store,
        "mfa_recovery_cancelled",
        Some(user_id),
        info,
        detail,
        now,
    )
    .await?;
    Ok(Outcome::Cancelled)
}
