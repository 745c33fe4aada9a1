//! Passkey steps of a sign-in: a passkey alone (discoverable credential), and a passkey as
//! the second factor of a pending login.

use crate::authn::login::{Event, PendingLogin};
use crate::clock::UnixTime;
use crate::service::{audit, passkeys, AppState, ServiceError};

use super::{proceed, take_pending, Browser, Step};
use crate::domain::FactorKind;

/// Starts a passkey ceremony as the second factor of the browser's pending login (which
/// stays as it is, under the same cookie). `None` when there is no such pending login or
/// it does not offer a passkey.
pub async fn start_passkey_second_factor(
    state: &AppState,
    pending_cookie: Option<&str>,
    now: UnixTime,
) -> Result<Option<Result<passkeys::Started, passkeys::Refusal>>, ServiceError> {
    let Some((record, pending)) = take_pending(state, pending_cookie).await? else {
        return Ok(None);
    };
    state.store.insert_pending_login(&record).await?;
    let user_id = match &pending.user_id {
        Some(id) if pending.offers(FactorKind::Passkey) && now < pending.expires_at() => id,
        _ => return Ok(None),
    };
    let started =
        passkeys::start_second_factor(&state.passkeys, state.store.as_ref(), user_id, now).await?;
    Ok(Some(started))
}

/// Signs in with a passkey alone: the ceremony this browser started, the assertion it sent.
pub async fn passkey(
    state: &AppState,
    credential: &str,
    browser: &Browser,
    now: UnixTime,
) -> Result<Step, ServiceError> {
    let store = state.store.as_ref();
    let cookie = browser.ceremony_cookie.as_deref();
    let outcome = passkeys::finish_sign_in(&state.passkeys, store, cookie, credential, now).await?;
    let signed_in = match outcome {
        Ok(s) => s,
        Err(refusal) => {
            audit_refusal(state, None, refusal, browser, now).await?;
            return Ok(Step::PasskeyRefused(refusal));
        }
    };
    let user = signed_in.user;
    audit::record(
        store,
        "passkey_used",
        Some(user.id.as_str()),
        &browser.info,
        "sign-in",
        now,
    )
    .await?;
    let pending = PendingLogin::start(signed_in.resume, false, now);
    let event = Event::PasskeyVerified {
        user_id: user.id.as_str().to_owned(),
        credentials_epoch: user.credentials_epoch,
    };
    match pending.apply(event, now) {
        Ok(next) => proceed(state, next, &user, browser, now).await,
        Err(e) => Ok(Step::Restart(e.to_string())),
    }
}

/// Audits the outcome of a passkey assertion for `user_id`.
pub(super) async fn audit_passkey(
    state: &AppState,
    user_id: &str,
    outcome: &Result<(), passkeys::Refusal>,
    browser: &Browser,
    now: UnixTime,
) -> Result<(), ServiceError> {
    match outcome {
        Ok(()) => {
            let store = state.store.as_ref();
            audit::record(
                store,
                "passkey_used",
                Some(user_id),
                &browser.info,
                "second factor",
                now,
            )
            .await
        }
        Err(refusal) => audit_refusal(state, Some(user_id), *refusal, browser, now).await,
    }
}

/// Audits a refused passkey: a counter regression as its own event (a possible clone).
async fn audit_refusal(
    state: &AppState,
    user_id: Option<&str>,
    refusal: passkeys::Refusal,
    browser: &Browser,
    now: UnixTime,
) -> Result<(), ServiceError> {
    let kind = match refusal {
        passkeys::Refusal::CounterRegression => "passkey_counter_regression",
        _ => "login_failed",
    };
    let detail = format!("factor=passkey: {refusal}");
    audit::record(
        state.store.as_ref(),
        kind,
        user_id,
        &browser.info,
        detail,
        now,
    )
    .await
}
