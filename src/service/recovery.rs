//! MFA recovery for a user who lost every second factor (issue 8, item 4): asked for with
//! the password (the second-factor page) or a password-reset link, confirmed from the
//! mailbox, and applied only after `accounts.mfa_recovery_wait_secs` by [`run_due`], unless
//! cancelled (mail link, account page, or a sign-in with a second factor) first. The rules
//! are the state machine in `authn::recovery`; every step is one store transaction with its
//! token and mail (`RecoveryStore::write_recovery`), and every step is audited.

mod due;

pub use due::{run_due, spawn};

use crate::authn::login::Stage;
use crate::authn::recovery::{self, Event, Policy};
use crate::clock::UnixTime;
use crate::crypto::token::{hash_token, random_token};
use crate::domain::{
    AccountToken, CancelledBy, FactorKind, MfaRecovery, OutboxMail, RecoveryState, RecoveryVia,
    TokenPurpose, User,
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

/// The account page's recovery box.
#[derive(Debug, serde::Serialize)]
pub struct AccountBox {
    /// Confirmed and waiting (otherwise awaiting the mailbox's confirmation).
    pub waiting: bool,
    /// When the factors go (waiting), or when the request lapses (requested).
    pub at: String,
    /// A recovery took effect: the user must enrol a new second factor.
    pub must_enrol: bool,
}

/// What the account page shows about recovery, if anything.
pub async fn account_box(
    state: &AppState,
    user_id: &str,
    now: UnixTime,
) -> Result<Option<AccountBox>, ServiceError> {
    let open = state.store.open_recovery(user_id).await?;
    let (waiting, at) = match open.map(|r| (r.state, r.confirm_by)) {
        Some((RecoveryState::Waiting { effective_at, .. }, _)) => (true, Some(effective_at)),
        Some((RecoveryState::Requested, by)) if now < by => (false, Some(by)),
        _ => (false, None),
    };
    let must_enrol = must_enrol(state, user_id).await?;
    if at.is_none() && !must_enrol {
        return Ok(None);
    }
    Ok(Some(AccountBox {
        waiting,
        at: at.map(when).unwrap_or_default(),
        must_enrol,
    }))
}

/// True when a recovery took effect and the user has not enrolled a second factor since:
/// no application may be signed in to until they do (the authorization endpoint demands
/// multi-factor of them).
pub async fn must_enrol(state: &AppState, user_id: &str) -> Result<bool, ServiceError> {
    let store = state.store.as_ref();
    if !store.must_enrol_factor(user_id).await? {
        return Ok(false);
    }
    if state.factors.enrolled(store, user_id).await?.is_empty() {
        return Ok(true);
    }
    store.clear_must_enrol_factor(user_id).await?;
    Ok(false)
}

const USED: &str = "This link was already used.";
const NOTHING_PENDING: &str = "There is no recovery pending for this account.";

/// Read-only checks of a mailed link: the token exists, is for `purpose`, unspent,
/// unexpired, its user enabled, and (when `bound`) issued under the current credentials.
async fn check_link(
    state: &AppState,
    token: &str,
    purpose: TokenPurpose,
    bound: bool,
    now: UnixTime,
) -> Result<Result<(AccountToken, User), &'static str>, ServiceError> {
    const INVALID: &str = "This link is not valid. Copy the whole link from the e-mail.";
    if token.len() != 43 {
        return Ok(Err(INVALID));
    }
    let Some(t) = state.store.get_account_token(&hash_token(token)).await? else {
        return Ok(Err(INVALID));
    };
    if t.purpose != purpose {
        return Ok(Err("This link is not for this page."));
    }
    if t.used_at.is_some() {
        return Ok(Err(USED));
    }
    if now >= t.expires_at {
        return Ok(Err("This link has expired."));
    }
    let user = state.store.get_user(&t.user_id).await?;
    let Some(user) = user.filter(|u| !u.disabled) else {
        return Ok(Err("This account cannot use this link."));
    };
    if bound && t.credentials_epoch != user.credentials_epoch {
        return Ok(Err(
            "This link is void: the account's password changed since it was sent.",
        ));
    }
    Ok(Ok((t, user)))
}

/// A new single-use token (value, stored form) for `user`.
fn new_token(
    purpose: TokenPurpose,
    user: &User,
    expires_at: UnixTime,
    now: UnixTime,
) -> Result<(String, AccountToken), ServiceError> {
    let value = random_token()?;
    let token = AccountToken {
        token_hash: hash_token(&value),
        purpose,
        user_id: user.id.as_str().to_owned(),
        email: None,
        credentials_epoch: user.credentials_epoch,
        created_at: now,
        expires_at,
        used_at: None,
    };
    Ok((value, token))
}

/// A notice (`kind`) with a cancel link valid until the recovery takes effect.
fn cancel_mail(
    state: &AppState,
    user: &User,
    kind: &str,
    effective_at: UnixTime,
    now: UnixTime,
) -> Result<(AccountToken, OutboxMail), ServiceError> {
    let (value, token) = new_token(TokenPurpose::CancelMfaRecovery, user, effective_at, now)?;
    let ctx = minijinja::context! {
        username => user.username.as_str(),
        link => state.mailer.link("/mfa-recovery/cancel", &value),
        effective => when(effective_at),
    };
    Ok((token, compose(state, kind, user, ctx, now)?))
}

fn compose(
    state: &AppState,
    kind: &str,
    user: &User,
    ctx: minijinja::Value,
    now: UnixTime,
) -> Result<OutboxMail, ServiceError> {
    state.mailer.compose(kind, user.email.as_str(), ctx, now)
}

/// `24 hours`, `90 minutes`, `3 days`.
fn words(secs: i64) -> String {
    let (n, unit) = if secs >= 2 * 86_400 && secs % 86_400 == 0 {
        (secs / 86_400, "day")
    } else if secs >= 3_600 && secs % 3_600 == 0 {
        (secs / 3_600, "hour")
    } else if secs >= 60 {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_in_words() {
        assert_eq!(super::words(86_400), "24 hours");
        assert_eq!(super::words(3_600), "1 hour");
        assert_eq!(super::words(21 * 3_600), "21 hours");
        assert_eq!(super::words(3 * 86_400), "3 days");
        assert_eq!(super::words(90 * 60), "90 minutes");
    }
}
