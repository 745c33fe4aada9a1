//! What the account page shows about recovery, and the must-enrol rule.

use crate::clock::UnixTime;
use crate::domain::{RecoveryState, User};

use super::super::account::when;
use super::super::{AppState, ServiceError};

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
    if !state.store.must_enrol_factor(user_id).await? {
        return Ok(false);
    }
    still_without_factor(state, user_id).await
}

/// [`must_enrol`] for a user record read with its flag (the session's, on the
/// authorization path): nothing more is read while the flag is clear.
pub async fn user_must_enrol(state: &AppState, user: &User) -> Result<bool, ServiceError> {
    if !user.must_enrol_factor {
        return Ok(false);
    }
    still_without_factor(state, user.id.as_str()).await
}

/// The flag is set: true while no second factor is enrolled, else the flag is cleared.
async fn still_without_factor(state: &AppState, user_id: &str) -> Result<bool, ServiceError> {
    let store = state.store.as_ref();
    if state.factors.enrolled(store, user_id).await?.is_empty() {
        return Ok(true);
    }
    store.clear_must_enrol_factor(user_id).await?;
    Ok(false)
}
