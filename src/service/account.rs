//! The self-service account page: sessions, apps holding grants, password, second factors.
//! Every use case takes the signed-in session and acts only on that user's records: a form
//! naming another user's session or grant changes nothing.

use chrono::{DateTime, Utc};

use crate::authn::user_agent;
use crate::clock::UnixTime;
use crate::domain::{FactorKind, FactorUse, Password};

use super::login::{self, throttle::Gate, Browser};
use super::notices::{self, Notice};
use super::session::{self, ActiveSession};
use super::{admin, audit, AppState, ServiceError};

/// One session in the list.
#[derive(Debug, serde::Serialize)]
pub struct SessionItem {
    /// Public id, for the sign-out form.
    pub sid: String,
    /// Browser and system, from the user agent.
    pub device: String,
    /// Address at sign-in.
    pub ip: String,
    /// Sign-in time.
    pub created: String,
    /// Last use.
    pub last_active: String,
    /// This browser's session.
    pub current: bool,
}

/// One app holding a grant.
#[derive(Debug, serde::Serialize)]
pub struct AppItem {
    /// The grant (refresh family), for the revoke form.
    pub grant_id: String,
    /// The client's name.
    pub client_name: String,
    /// Granted scopes.
    pub scopes: String,
    /// When it was granted.
    pub created: String,
    /// Last refresh.
    pub last_used: String,
}

/// What the account page shows.
#[derive(Debug)]
pub struct Overview {
    /// Live sessions, the current one marked.
    pub sessions: Vec<SessionItem>,
    /// Apps holding live grants.
    pub apps: Vec<AppItem>,
    /// TOTP is on.
    pub totp_enabled: bool,
    /// Unused backup codes.
    pub backup_codes_left: u32,
    /// Registered passkeys.
    pub passkeys: Vec<super::account_passkeys::PasskeyItem>,
}

/// `2026-12-01 14:05 UTC`.
pub fn when(t: UnixTime) -> String {
    DateTime::<Utc>::from_timestamp(t, 0).map_or_else(
        || "-".to_owned(),
        |d| d.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// Everything the page lists.
pub async fn overview(
    state: &AppState,
    me: &ActiveSession,
    now: UnixTime,
) -> Result<Overview, ServiceError> {
    let user_id = me.user.id.as_str();
    let store = state.store.as_ref();
    let sessions = store
        .list_user_sessions(user_id, now)
        .await?
        .into_iter()
        .map(|s| SessionItem {
            current: s.sid == me.session.sid,
            device: user_agent::describe(&s.user_agent),
            ip: s.ip,
            created: when(s.created_at),
            last_active: when(s.last_seen_at),
            sid: s.sid,
        })
        .collect();
    let mut apps = Vec::new();
    for g in store.list_user_grants(user_id, now).await? {
        let client_name = super::clients::named(state, Some(g.client_id.as_str()))
            .await?
            .map_or_else(|| g.client_id.as_str().to_owned(), |c| c.name);
        apps.push(AppItem {
            grant_id: g.id,
            client_name,
            scopes: g.scope.to_string(),
            created: when(g.created_at),
            last_used: when(g.last_used_at),
        });
    }
    let enrolled = state.factors.enrolled(store, user_id).await?;
    Ok(Overview {
        sessions,
        apps,
        totp_enabled: enrolled.contains(&FactorKind::Totp),
        backup_codes_left: store.backup_codes_left(user_id).await?,
        passkeys: super::account_passkeys::list(state, user_id).await?,
    })
}

/// True when the user signed in (or re-authenticated) recently enough to change a password
/// or a factor.
pub fn is_recent(state: &AppState, me: &ActiveSession, now: UnixTime) -> bool {
    let window = super::session::secs(state.settings.login.reauth_window_secs);
    now.saturating_sub(me.session.auth_time) <= window
}

/// True when a second factor was presented recently (removing TOTP needs one).
pub fn has_recent_second_factor(state: &AppState, me: &ActiveSession, now: UnixTime) -> bool {
    let window = super::session::secs(state.settings.login.reauth_window_secs);
    me.session
        .factors
        .iter()
        .any(|f| f.kind.is_second_factor() && now.saturating_sub(f.at) <= window)
}

/// Ends one of the user's own sessions; false (nothing changed) for a session that is not
/// theirs or already ended.
pub async fn end_session(
    state: &AppState,
    me: &ActiveSession,
    sid: &str,
    browser: &Browser,
    now: UnixTime,
) -> Result<bool, ServiceError> {
    let Some(target) = state.store.get_session_by_sid(sid).await? else {
        return Ok(false);
    };
    if target.user_id != me.user.id || target.ended_at.is_some() {
        return Ok(false);
    }
    session::end(state, sid, now).await?;
    let detail = format!("sid={sid}");
    audit::record(
        state.store.as_ref(),
        "session_revoked",
        Some(me.user.id.as_str()),
        &browser.info,
        detail,
        now,
    )
    .await?;
    Ok(true)
}

/// "Sign out all other devices": ends every session but this one, with their codes and
/// session-bound grants.
pub async fn end_other_sessions(
    state: &AppState,
    me: &ActiveSession,
    browser: &Browser,
    now: UnixTime,
) -> Result<usize, ServiceError> {
    let user_id = me.user.id.as_str();
    let ended = state
        .store
        .end_other_sessions(user_id, &me.session.sid, now)
        .await?;
    for sid in &ended {
        session::end(state, sid, now).await?;
    }
    let detail = format!("{} sessions", ended.len());
    audit::record(
        state.store.as_ref(),
        "other_sessions_revoked",
        Some(user_id),
        &browser.info,
        detail,
        now,
    )
    .await?;
    Ok(ended.len())
}

/// Revokes one of the user's grants (its refresh family and access tokens); false for a
/// grant that is not theirs or already revoked.
pub async fn revoke_app(
    state: &AppState,
    me: &ActiveSession,
    grant_id: &str,
    browser: &Browser,
    now: UnixTime,
) -> Result<bool, ServiceError> {
    let Some(grant) = state.store.get_grant(grant_id).await? else {
        return Ok(false);
    };
    if grant.user_id != me.user.id || !state.store.revoke_grant(grant_id, now).await? {
        return Ok(false);
    }
    let event = crate::domain::AuditEvent {
        kind: "app_revoked".into(),
        at: now,
        client_id: Some(grant.client_id.as_str().to_owned()),
        user_id: Some(me.user.id.as_str().to_owned()),
        grant_id: Some(grant.id),
        ip: Some(browser.info.ip.clone()),
        user_agent: Some(browser.info.user_agent.chars().take(256).collect()),
        detail: "revoked from the account page".into(),
    };
    state.store.record_event(&event).await?;
    Ok(true)
}

/// The outcome of a password change.
#[derive(Debug)]
pub enum PasswordChange {
    /// Changed; this browser continues in a new session (cookie value), every other
    /// session and every refresh family ended.
    Changed(String),
    /// The current password is wrong.
    WrongCurrent,
    /// Too many wrong current passwords: wait.
    Throttled(i64),
    /// The new password is not acceptable, or the two copies differ.
    Rejected(String),
}

/// Changes the user's password: needs the current one; the new hash uses the current
/// argon2 settings; every session (this one is replaced by a new one) and every refresh
/// family ends.
pub async fn change_password(
    state: &AppState,
    me: &ActiveSession,
    current: &str,
    new: &str,
    confirm: &str,
    browser: &Browser,
    now: UnixTime,
) -> Result<PasswordChange, ServiceError> {
    if new != confirm {
        return Ok(PasswordChange::Rejected(
            "The new passwords do not match.".into(),
        ));
    }
    let new = match Password::parse(new) {
        Ok(p) => p,
        Err(e) => return Ok(PasswordChange::Rejected(e.reason)),
    };
    let username = me.user.username.as_str();
    let device = state
        .devices
        .recognise(&me.user, browser.device_cookie.as_deref(), now);
    let store = state.store.as_ref();
    let Some(turn) = state.login_throttle.turn(&browser.info.ip) else {
        return Ok(PasswordChange::Throttled(1));
    };
    let place = login::hashing_place(state)?;
    let ticket = match state
        .login_throttle
        .begin_password(store, username, &browser.info.ip, device.as_deref(), now)
        .await?
    {
        Gate::Throttled { retry_after } => return Ok(PasswordChange::Throttled(retry_after)),
        Gate::Open(t) => t,
    };
    drop(turn);
    let matched = match login::check_password(state, place, username, current).await {
        Ok(checked) => checked,
        Err(e) => {
            state.login_throttle.release(store, &ticket, now).await?;
            return Err(e);
        }
    };
    let Some(user) = matched.filter(|u| u.id == me.user.id) else {
        audit::record(
            store,
            "login_failed",
            Some(me.user.id.as_str()),
            &browser.info,
            "factor=password (password change)",
            now,
        )
        .await?;
        return Ok(PasswordChange::WrongCurrent);
    };
    state.login_throttle.succeeded(store, &ticket, now).await?;
    let epoch = admin::set_password(store, &state.passwords, username, &new, now).await?;
    // Every session ended with the change; this browser carries on in a new one that
    // keeps its factors, the password proven just now.
    let mut factors: Vec<FactorUse> = me
        .session
        .factors
        .iter()
        .copied()
        .filter(|f| f.kind != FactorKind::Password)
        .collect();
    factors.insert(
        0,
        FactorUse {
            kind: FactorKind::Password,
            at: now,
        },
    );
    let info = &browser.info;
    let (cookie, _) = session::create(state, &user, epoch, &factors, info, now).await?;
    audit::record(
        store,
        "password_changed",
        Some(user.id.as_str()),
        &browser.info,
        "from the account page",
        now,
    )
    .await?;
    notices::send(state, &user, Notice::PasswordChanged, &browser.info, now).await?;
    Ok(PasswordChange::Changed(cookie))
}

/// True when the user has TOTP on.
pub async fn has_totp(state: &AppState, me: &ActiveSession) -> Result<bool, ServiceError> {
    let enrolled = state
        .factors
        .enrolled(state.store.as_ref(), me.user.id.as_str())
        .await?;
    Ok(enrolled.contains(&FactorKind::Totp))
}

/// Turns TOTP off (with every backup code).
pub async fn remove_totp(
    state: &AppState,
    me: &ActiveSession,
    browser: &Browser,
    now: UnixTime,
) -> Result<bool, ServiceError> {
    let user_id = me.user.id.as_str();
    if !state.store.delete_totp(user_id).await? {
        return Ok(false);
    }
    audit::record(
        state.store.as_ref(),
        "totp_removed",
        Some(user_id),
        &browser.info,
        "",
        now,
    )
    .await?;
    notices::send(state, &me.user, Notice::TotpRemoved, &browser.info, now).await?;
    Ok(true)
}

/// The outcome of confirming a TOTP enrolment.
#[derive(Debug)]
pub enum Confirmation {
    /// On; the ten backup codes to show once.
    Confirmed(Vec<String>),
    /// Malformed or wrong code, or no enrolment in progress.
    Wrong,
    /// Too many code attempts: wait this many seconds.
    Throttled(i64),
}

/// Confirms TOTP enrolment with a first valid code. A malformed code is refused before
/// anything is counted; a well-formed one counts in the account's code bucket.
pub async fn confirm_totp(
    state: &AppState,
    me: &ActiveSession,
    code: &str,
    browser: &Browser,
    now: UnixTime,
) -> Result<Confirmation, ServiceError> {
    if !super::mfa::well_formed(FactorKind::Totp, code) {
        return Ok(Confirmation::Wrong);
    }
    let user_id = me.user.id.as_str();
    let store = state.store.as_ref();
    let ticket = match state.login_throttle.begin_code(store, user_id, now).await? {
        Gate::Throttled { retry_after } => return Ok(Confirmation::Throttled(retry_after)),
        Gate::Open(t) => t,
    };
    let Some(codes) = state
        .factors
        .confirm_totp(store, user_id, code, now)
        .await?
    else {
        return Ok(Confirmation::Wrong);
    };
    state.login_throttle.succeeded(store, &ticket, now).await?;
    audit::record(
        store,
        "totp_enrolled",
        Some(user_id),
        &browser.info,
        "",
        now,
    )
    .await?;
    notices::send(state, &me.user, Notice::TotpAdded, &browser.info, now).await?;
    Ok(Confirmation::Confirmed(codes))
}

/// A new set of backup codes, voiding the old ones.
pub async fn regenerate_backup_codes(
    state: &AppState,
    me: &ActiveSession,
    browser: &Browser,
    now: UnixTime,
) -> Result<Vec<String>, ServiceError> {
    let user_id = me.user.id.as_str();
    let codes = state
        .factors
        .regenerate_backup_codes(state.store.as_ref(), user_id, now)
        .await?;
    audit::record(
        state.store.as_ref(),
        "backup_codes_regenerated",
        Some(user_id),
        &browser.info,
        "",
        now,
    )
    .await?;
    let notice = Notice::BackupCodesRegenerated;
    notices::send(state, &me.user, notice, &browser.info, now).await?;
    Ok(codes)
}
