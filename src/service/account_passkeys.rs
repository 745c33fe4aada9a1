//! Passkeys on the account page: register, list, rename, delete. Every use case acts only
//! on the signed-in user's own passkeys.

use crate::clock::UnixTime;

use super::account::when;
use super::login::Browser;
use super::notices::{self, Notice};
use super::passkeys::{self, Refusal, Started};
use super::session::ActiveSession;
use super::{audit, AppState, ServiceError};

/// One passkey in the list.
#[derive(Debug, serde::Serialize)]
pub struct PasskeyItem {
    /// Public id, for the rename and delete forms.
    pub id: String,
    /// The user's name for it.
    pub name: String,
    /// Registration time.
    pub created: String,
    /// Last use, or "never".
    pub last_used: String,
    /// Synced (backed up) by its provider.
    pub synced: bool,
    /// When a cloned copy may have been used (its counter went backwards).
    pub regressed: Option<String>,
}

/// The user's passkeys, for the account page.
pub async fn list(state: &AppState, user_id: &str) -> Result<Vec<PasskeyItem>, ServiceError> {
    Ok(state
        .store
        .list_passkeys(user_id)
        .await?
        .into_iter()
        .map(|p| PasskeyItem {
            id: p.id,
            name: p.name,
            created: when(p.created_at),
            last_used: p.last_used_at.map_or_else(|| "never".to_owned(), when),
            synced: p.backed_up,
            regressed: p.counter_regressed_at.map(when),
        })
        .collect())
}

/// Starts registering a passkey named `name`.
pub async fn start(
    state: &AppState,
    me: &ActiveSession,
    name: &str,
    now: UnixTime,
) -> Result<Result<Started, Refusal>, ServiceError> {
    let store = state.store.as_ref();
    passkeys::start_registration(&state.passkeys, store, &me.user, &me.session.sid, name, now).await
}

/// Finishes a registration this browser started in this session.
pub async fn finish(
    state: &AppState,
    me: &ActiveSession,
    credential: &str,
    browser: &Browser,
    now: UnixTime,
) -> Result<Result<(), Refusal>, ServiceError> {
    let store = state.store.as_ref();
    let cookie = browser.ceremony_cookie.as_deref();
    let (user, sid) = (&me.user, me.session.sid.as_str());
    let outcome =
        passkeys::finish_registration(&state.passkeys, store, user, sid, cookie, credential, now)
            .await?;
    let record = match outcome {
        Ok(r) => r,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let detail = format!("name={:?}", record.name);
    audit::record(
        store,
        "passkey_registered",
        Some(user.id.as_str()),
        &browser.info,
        detail,
        now,
    )
    .await?;
    let notice = Notice::PasskeyAdded(record.name);
    notices::send(state, user, notice, &browser.info, now).await?;
    Ok(Ok(()))
}

/// Renames one of the user's passkeys; false if it is not theirs.
pub async fn rename(
    state: &AppState,
    me: &ActiveSession,
    id: &str,
    name: &str,
    browser: &Browser,
    now: UnixTime,
) -> Result<Result<bool, Refusal>, ServiceError> {
    let name = match passkeys::parse_name(name) {
        Ok(n) => n,
        Err(r) => return Ok(Err(r)),
    };
    let user_id = me.user.id.as_str();
    let store = state.store.as_ref();
    if !store.rename_passkey(user_id, id, &name).await? {
        return Ok(Ok(false));
    }
    let detail = format!("name={name:?}");
    audit::record(
        store,
        "passkey_renamed",
        Some(user_id),
        &browser.info,
        detail,
        now,
    )
    .await?;
    Ok(Ok(true))
}

/// The outcome of deleting a passkey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// Deleted.
    Deleted,
    /// Not the user's, or already gone.
    NotFound,
    /// The user has no password and this is their last passkey: they could never sign in
    /// again.
    LastWayToSignIn,
}

/// Deletes one of the user's passkeys, unless it is their last way to sign in.
pub async fn delete(
    state: &AppState,
    me: &ActiveSession,
    id: &str,
    browser: &Browser,
    now: UnixTime,
) -> Result<Deletion, ServiceError> {
    let user_id = me.user.id.as_str();
    let store = state.store.as_ref();
    let mine = store.list_passkeys(user_id).await?;
    if !mine.iter().any(|p| p.id == id) {
        return Ok(Deletion::NotFound);
    }
    if me.user.password_hash.is_none() && mine.len() == 1 {
        return Ok(Deletion::LastWayToSignIn);
    }
    if !store.delete_passkey(user_id, id).await? {
        return Ok(Deletion::NotFound);
    }
    audit::record(
        store,
        "passkey_deleted",
        Some(user_id),
        &browser.info,
        format!("id={id}"),
        now,
    )
    .await?;
    notices::send(state, &me.user, Notice::PasskeyRemoved, &browser.info, now).await?;
    Ok(Deletion::Deleted)
}
