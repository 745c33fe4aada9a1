//! Browser sessions: resolve the cookie, create on login, end on logout.

use crate::clock::UnixTime;
use crate::crypto::token::{hash_token, random_token};
use crate::domain::{CredentialsEpoch, FactorUse, Session, User};
use crate::oidc::acr::amr_of;

use super::{AppState, ServiceError};

/// A session that may be used now, with its (enabled) user.
#[derive(Debug, Clone)]
pub struct ActiveSession {
    /// The stored session.
    pub session: Session,
    /// Its user, enabled.
    pub user: User,
}

/// Resolves a session cookie: the session must exist, not be ended, be within its idle
/// timeout and absolute lifetime, and belong to an enabled user.
pub async fn resolve(
    state: &AppState,
    cookie: Option<&str>,
    now: UnixTime,
) -> Result<Option<ActiveSession>, ServiceError> {
    let Some(cookie) = cookie.filter(|c| c.len() == 43) else {
        return Ok(None);
    };
    let id_hash = hash_token(cookie);
    let Some((session, user)) = state.store.get_session_with_user(&id_hash).await? else {
        return Ok(None);
    };
    let idle = secs(state.settings.sessions.idle_timeout_secs);
    if !session.is_active(now, idle) {
        return Ok(None);
    }
    // Disabled, or the password changed (or the account was disabled) after this login.
    if !user.accepts_auth_under(session.credentials_epoch) {
        return Ok(None);
    }
    // Use is recorded by the second: at most one write per session and second.
    if session.last_seen_at < now {
        state.store.touch_session(&id_hash, now).await?;
    }
    Ok(Some(ActiveSession { session, user }))
}

/// Where a login came from, for the user's session list and the audit trail.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// `User-Agent`, truncated.
    pub user_agent: String,
    /// The peer address.
    pub ip: String,
}

/// Creates a session for `user` with a fresh random id (never one the browser offered,
/// so a planted cookie cannot fix the session), recording the factors used and the
/// credentials epoch they were checked under. Returns the cookie value.
pub async fn create(
    state: &AppState,
    user: &User,
    credentials_epoch: CredentialsEpoch,
    factors: &[FactorUse],
    info: &ClientInfo,
    now: UnixTime,
) -> Result<(String, Session), ServiceError> {
    let cookie = random_token()?;
    let session = Session {
        id_hash: hash_token(&cookie),
        sid: uuid::Uuid::new_v4().simple().to_string(),
        user_id: user.id.clone(),
        user_agent: info.user_agent.chars().take(256).collect(),
        ip: info.ip.clone(),
        auth_time: now,
        credentials_epoch,
        amr: amr_of(factors),
        factors: factors.to_vec(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + secs(state.settings.sessions.absolute_lifetime_secs),
        ended_at: None,
    };
    state.store.insert_session(&session).await?;
    Ok((cookie, session))
}

/// Ends a session from the account page ("sign out this device", "sign out all other
/// devices"): a security action, so every grant bound to the session ends with it,
/// `offline_access` families included.
pub async fn end(state: &AppState, sid: &str, now: UnixTime) -> Result<(), ServiceError> {
    end_keeping(state, sid, false, now).await
}

/// Ends a session at RP-initiated logout. OIDC Core §11: offline access is for when the user
/// is not logged in, so `offline_access` families survive (`sessions.keep_offline_on_logout`,
/// default true) unless their client was registered with `end_offline_on_logout`.
pub async fn logout(state: &AppState, sid: &str, now: UnixTime) -> Result<(), ServiceError> {
    let keep = state.settings.sessions.keep_offline_on_logout;
    end_keeping(state, sid, keep, now).await
}

async fn end_keeping(
    state: &AppState,
    sid: &str,
    keep_offline: bool,
    now: UnixTime,
) -> Result<(), ServiceError> {
    // Order matters: end the session, spend its codes, then revoke its grants, so a code
    // redemption racing the logout either fails or creates a grant that is then revoked.
    state.store.end_session(sid, now).await?;
    state.store.consume_session_codes(sid, now).await?;
    state
        .store
        .revoke_session_grants(sid, keep_offline, now)
        .await?;
    Ok(())
}

pub(crate) fn secs(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX / 4)
}
