//! The second factor on the reset form: a reset never bypasses it. The same checks as the
//! login's second step: a malformed code is refused before anything is counted, every
//! well-formed attempt counts in the user's code bucket (`code:{user}`), a TOTP step is
//! accepted once per user on every node, a backup code is spent, a passkey assertion must
//! answer the ceremony this browser started for this user.

use crate::clock::UnixTime;
use crate::domain::FactorKind;
use crate::service::login::throttle::Gate;
use crate::service::login::Browser;
use crate::service::{audit, mfa, passkeys, AppState, ServiceError};

use super::{OpenLink, Submission};

/// Why the second factor was not accepted. Nothing changed; the link still works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactorRefusal {
    /// No code (or assertion) was given.
    Missing,
    /// Not the shape of a code.
    Malformed,
    /// The code or passkey was wrong (or replayed).
    Wrong,
    /// Too many code attempts: wait this many seconds.
    Throttled(i64),
}

impl FactorRefusal {
    /// What the form says.
    pub fn message(&self) -> String {
        match self {
            Self::Missing => "Your account has two-step verification: enter a code from \
                              your authenticator app or a backup code, or use a passkey."
                .into(),
            Self::Malformed => "Enter the code exactly as shown.".into(),
            Self::Wrong => "That code is not right. Try again.".into(),
            Self::Throttled(secs) => {
                format!("Too many attempts. Wait {secs} seconds and try again.")
            }
        }
    }
}

/// The factor the form carries, among those the user has: a backup code, then a TOTP
/// code, then a passkey assertion.
fn presented<'a>(link: &OpenLink, form: &Submission<'a>) -> Option<(FactorKind, &'a str)> {
    let has = |k| link.factors.contains(&k);
    let given = |v: &'a str| !v.trim().is_empty();
    if has(FactorKind::BackupCode) && given(form.backup_code) {
        Some((FactorKind::BackupCode, form.backup_code))
    } else if has(FactorKind::Totp) && given(form.totp) {
        Some((FactorKind::Totp, form.totp))
    } else if has(FactorKind::Passkey) && given(form.credential) {
        Some((FactorKind::Passkey, form.credential))
    } else {
        None
    }
}

/// Verifies the second factor the form carries.
pub(super) async fn check(
    state: &AppState,
    link: &OpenLink,
    form: &Submission<'_>,
    browser: &Browser,
    now: UnixTime,
) -> Result<Result<FactorKind, FactorRefusal>, ServiceError> {
    let Some((kind, code)) = presented(link, form) else {
        return Ok(Err(FactorRefusal::Missing));
    };
    if !mfa::well_formed(kind, code) {
        return Ok(Err(FactorRefusal::Malformed));
    }
    let store = state.store.as_ref();
    let user_id = link.user.id.as_str();
    let ticket = match state.login_throttle.begin_code(store, user_id, now).await? {
        Gate::Throttled { retry_after } => return Ok(Err(FactorRefusal::Throttled(retry_after))),
        Gate::Open(t) => t,
    };
    let ok = match kind {
        FactorKind::Totp => state.factors.verify_totp(store, user_id, code, now).await?,
        FactorKind::BackupCode => {
            state
                .factors
                .use_backup_code(store, user_id, code, now)
                .await?
        }
        FactorKind::Passkey => {
            let cookie = browser.ceremony_cookie.as_deref();
            let outcome =
                passkeys::finish_second_factor(&state.passkeys, store, user_id, cookie, code, now)
                    .await?;
            if let Err(refusal) = outcome {
                let kind = match refusal {
                    passkeys::Refusal::CounterRegression => "passkey_counter_regression",
                    _ => "login_failed",
                };
                let detail = format!("factor=passkey (password reset): {refusal}");
                audit::record(store, kind, Some(user_id), &browser.info, detail, now).await?;
                return Ok(Err(FactorRefusal::Wrong));
            }
            true
        }
        FactorKind::Password => false,
    };
    if !ok {
        let detail = format!("factor={} (password reset)", kind.as_str());
        audit::record(
            store,
            "login_failed",
            Some(user_id),
            &browser.info,
            detail,
            now,
        )
        .await?;
        return Ok(Err(FactorRefusal::Wrong));
    }
    state.login_throttle.succeeded(store, &ticket, now).await?;
    match kind {
        FactorKind::BackupCode => {
            let left = store.backup_codes_left(user_id).await?;
            let detail = format!("{left} left");
            audit::record(
                store,
                "backup_code_used",
                Some(user_id),
                &browser.info,
                detail,
                now,
            )
            .await?;
        }
        FactorKind::Passkey => {
            let info = &browser.info;
            audit::record(
                store,
                "passkey_used",
                Some(user_id),
                info,
                "password reset",
                now,
            )
            .await?;
        }
        _ => {}
    }
    Ok(Ok(kind))
}
