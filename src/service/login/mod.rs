//! The sign-in use case: drives the login state machine (`authn::login`) through the
//! password, second-factor, step-up and re-authentication steps, stores the pending login
//! between them, and creates or upgrades the session at the end. The HTTP layer renders
//! whatever [`Step`] comes back.

pub mod device;
mod passkey;
pub mod throttle;
mod turns;

pub use passkey::{passkey, start_passkey_second_factor};

use crate::authn::login::{Completed, Event, LoginError, Next, PendingLogin, Resume};
use crate::clock::UnixTime;
use crate::crypto::password::Place;
use crate::crypto::token::{hash_token, random_token};
use crate::domain::{FactorKind, Password, PendingLoginRecord, User, Username};
use crate::oidc::acr::{amr_of, AcrLevel};
use crate::store::SessionUpgrade;

use super::session::{self, ActiveSession, ClientInfo};
use super::{audit, mfa, passkeys, AppState, ServiceError};
use throttle::Gate;

/// What the browser sees next.
#[derive(Debug)]
pub enum Step {
    /// Signed in, stepped up or re-authenticated.
    Done(Box<SignedIn>),
    /// Ask for a second factor.
    SecondFactor(SecondFactorPrompt),
    /// The request demands multi-factor, and the user has no second factor.
    MfaUnavailable {
        /// What the user was doing.
        resume: Resume,
    },
    /// Wrong password, unknown user or disabled account: all look the same.
    Failed,
    /// Too many attempts: wait this many seconds. The same for every account name.
    Throttled {
        /// Seconds.
        retry_after: i64,
    },
    /// The pending login is gone (expired, used, too many attempts): start again.
    Restart(String),
    /// A passkey sign-in was refused; nothing changed.
    PasskeyRefused(passkeys::Refusal),
}

/// A finished sign-in.
pub struct SignedIn {
    /// The (new or upgraded) session.
    pub session: ActiveSession,
    /// The new session cookie value.
    pub session_cookie: String,
    /// The known-device cookie value.
    pub device_cookie: String,
    /// What to do next.
    pub resume: Resume,
}

impl std::fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedIn")
            .field("sid", &self.session.session.sid)
            .finish_non_exhaustive()
    }
}

/// The second-factor page.
pub struct SecondFactorPrompt {
    /// The pending-login cookie to set; `None` keeps the browser's current one.
    pub pending_cookie: Option<String>,
    /// The factors offered.
    pub offered: Vec<FactorKind>,
    /// Who is signing in.
    pub username: String,
    /// Why the last code was refused.
    pub error: Option<&'static str>,
    /// What the login resumes (the page's CSP names the client it returns to).
    pub resume: Resume,
}

impl std::fmt::Debug for SecondFactorPrompt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecondFactorPrompt")
            .field("offered", &self.offered)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// Where the request came from, and the cookies it carried.
#[derive(Debug, Clone, Default)]
pub struct Browser {
    /// Address and user agent.
    pub info: ClientInfo,
    /// The known-device cookie, if any.
    pub device_cookie: Option<String>,
    /// The WebAuthn ceremony cookie, if any.
    pub ceremony_cookie: Option<String>,
    /// The session cookie the browser sent, if any: a new sign-in ends that session.
    pub session_cookie: Option<String>,
}

/// What a password form is for.
#[derive(Debug)]
pub enum Purpose<'a> {
    /// A sign-in from the login page.
    SignIn(Resume),
    /// Re-authentication of the signed-in user before a sensitive change.
    Reauthenticate(&'a ActiveSession, Resume),
}

/// Step 1: the password.
pub async fn password(
    state: &AppState,
    username: &str,
    password: &str,
    purpose: Purpose<'_>,
    browser: &Browser,
    now: UnixTime,
) -> Result<Step, ServiceError> {
    let known = lookup(state, username).await?;
    let Some(turn) = state.login_throttle.turn(&browser.info.ip) else {
        return Ok(Step::Throttled { retry_after: 1 });
    };
    let place = hashing_place(state)?;
    let device = known.as_ref().and_then(|u| {
        state
            .devices
            .recognise(u, browser.device_cookie.as_deref(), now)
    });
    let gate = state
        .login_throttle
        .begin_password(
            state.store.as_ref(),
            username,
            &browser.info.ip,
            device.as_deref(),
            now,
        )
        .await?;
    drop(turn);
    let ticket = match gate {
        Gate::Throttled { retry_after } => return Ok(Step::Throttled { retry_after }),
        Gate::Open(ticket) => ticket,
    };
    let matched = match verify_password(state, place, known.as_ref(), password).await {
        Ok(checked) => checked,
        Err(e) => {
            // Not checked (the hashing failed): the attempt must not count against anyone.
            state
                .login_throttle
                .release(state.store.as_ref(), &ticket, now)
                .await?;
            return Err(e);
        }
    };
    let known_id = known.as_ref().map(|u| u.id.as_str());
    if !ticket.started_delay.is_empty() {
        let detail = format!("delays started: {}", ticket.started_delay.join(", "));
        audit::record(
            state.store.as_ref(),
            "login_throttled",
            known_id,
            &browser.info,
            detail,
            now,
        )
        .await?;
    }
    let Some(user) = matched else {
        audit::record(
            state.store.as_ref(),
            "login_failed",
            known_id,
            &browser.info,
            "factor=password",
            now,
        )
        .await?;
        return Ok(Step::Failed);
    };
    state
        .login_throttle
        .succeeded(state.store.as_ref(), &ticket, now)
        .await?;
    let pending = match purpose {
        Purpose::SignIn(resume) => PendingLogin::start(resume, false, now),
        Purpose::Reauthenticate(s, resume) => {
            PendingLogin::reauthenticate(s.user.id.as_str(), &s.session.sid, resume, now)
        }
    };
    let enrolled = state
        .factors
        .enrolled(state.store.as_ref(), user.id.as_str())
        .await?;
    // The epoch read with the hash that matched: a password change since then (even
    // within the same second) ends whatever this login creates.
    let event = Event::PasswordVerified {
        user_id: user.id.as_str().to_owned(),
        enrolled,
        credentials_epoch: user.credentials_epoch,
    };
    match pending.apply(event, now) {
        Ok(next) => proceed(state, next, &user, browser, now).await,
        // A re-authentication with another account's password: as if it were wrong.
        Err(LoginError::WrongUser) => Ok(Step::Failed),
        Err(e) => Ok(Step::Restart(e.to_string())),
    }
}

/// Step 2: a second factor for the pending login whose cookie the browser sent.
pub async fn second_factor(
    state: &AppState,
    pending_cookie: Option<&str>,
    method: &str,
    code: &str,
    browser: &Browser,
    now: UnixTime,
) -> Result<Step, ServiceError> {
    let Some((record, pending)) = take_pending(state, pending_cookie).await? else {
        return Ok(Step::Restart("the sign-in has expired; start again".into()));
    };
    let Some(user) = pending_user(state, &pending).await? else {
        return Ok(Step::Restart("the account cannot sign in".into()));
    };
    let kind = FactorKind::parse(method).filter(|k| pending.offers(*k));
    let Some(kind) = kind.filter(|k| mfa::well_formed(*k, code)) else {
        // Malformed input changes nothing: the same pending login, the same cookie.
        state.store.insert_pending_login(&record).await?;
        let error =
            if kind.is_none() && FactorKind::parse(method).is_some_and(|k| !pending.offers(k)) {
                "That method is not set up for this account."
            } else {
                "Enter the code exactly as shown."
            };
        return Ok(prompt(None, &pending, &user, Some(error)));
    };
    let user_id = user.id.as_str();
    let ticket = match state
        .login_throttle
        .begin_code(state.store.as_ref(), user_id, now)
        .await?
    {
        Gate::Throttled { retry_after } => {
            state.store.insert_pending_login(&record).await?;
            return Ok(Step::Throttled { retry_after });
        }
        Gate::Open(t) => t,
    };
    let store = state.store.as_ref();
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
            passkey::audit_passkey(state, user_id, &outcome, browser, now).await?;
            outcome.is_ok()
        }
        FactorKind::Password => false,
    };
    if !ok {
        // A refused passkey was audited with its reason above.
        if kind != FactorKind::Passkey {
            let detail = format!("factor={}", kind.as_str());
            audit::record(
                store,
                "login_failed",
                Some(user_id),
                &browser.info,
                detail,
                now,
            )
            .await?;
        }
        return match pending.apply(Event::SecondFactorFailed, now) {
            Ok(next) => proceed(state, next, &user, browser, now)
                .await
                .map(|step| match step {
                    Step::SecondFactor(p) => Step::SecondFactor(SecondFactorPrompt {
                        error: Some("That code is not right. Try again."),
                        ..p
                    }),
                    other => other,
                }),
            Err(e) => Ok(Step::Restart(e.to_string())),
        };
    }
    state.login_throttle.succeeded(store, &ticket, now).await?;
    if kind == FactorKind::BackupCode {
        let left = store.backup_codes_left(user_id).await?;
        audit::record(
            store,
            "backup_code_used",
            Some(user_id),
            &browser.info,
            format!("{left} left"),
            now,
        )
        .await?;
    }
    match pending.apply(Event::SecondFactorVerified(kind), now) {
        Ok(next) => proceed(state, next, &user, browser, now).await,
        Err(e) => Ok(Step::Restart(e.to_string())),
    }
}

/// A step-up of `session` to multi-factor: only the second factor is asked.
pub async fn step_up(
    state: &AppState,
    session: &ActiveSession,
    resume: Resume,
    level: AcrLevel,
    browser: &Browser,
    now: UnixTime,
) -> Result<Step, ServiceError> {
    let user = &session.user;
    let mut enrolled = state
        .factors
        .enrolled(state.store.as_ref(), user.id.as_str())
        .await?;
    // Only a passkey reaches the phishing-resistant level.
    if level == AcrLevel::PhishingResistant {
        enrolled.retain(|k| *k == FactorKind::Passkey);
    }
    let next = PendingLogin::step_up(
        user.id.as_str(),
        &session.session.sid,
        session.session.credentials_epoch,
        &session.session.factors,
        enrolled,
        resume,
        now,
    );
    proceed(state, next, user, browser, now).await
}

/// True when `user_id` has a factor that reaches `level` (to decide between a step-up and
/// `unmet_authentication_requirements`).
pub async fn can_reach(
    state: &AppState,
    user_id: &str,
    level: AcrLevel,
) -> Result<bool, ServiceError> {
    let enrolled = state
        .factors
        .enrolled(state.store.as_ref(), user_id)
        .await?;
    Ok(match level {
        AcrLevel::PhishingResistant => enrolled.contains(&FactorKind::Passkey),
        _ => !enrolled.is_empty(),
    })
}

pub(super) async fn proceed(
    state: &AppState,
    next: Next,
    user: &User,
    browser: &Browser,
    now: UnixTime,
) -> Result<Step, ServiceError> {
    match next {
        Next::SecondFactor(pending) => {
            let cookie = store_pending(state, &pending).await?;
            Ok(prompt(Some(cookie), &pending, user, None))
        }
        Next::MfaUnavailable { resume } => Ok(Step::MfaUnavailable { resume }),
        Next::Done(done) => complete(state, done, user, browser, now).await,
    }
}

fn prompt(
    cookie: Option<String>,
    pending: &PendingLogin,
    user: &User,
    error: Option<&'static str>,
) -> Step {
    Step::SecondFactor(SecondFactorPrompt {
        pending_cookie: cookie,
        offered: pending.enrolled.clone(),
        username: user.username.as_str().to_owned(),
        error,
        resume: pending.resume.clone(),
    })
}

/// A new sign-in replaces the browser's previous session (whoever it belonged to): one
/// browser, one session, and no orphan left behind that the old cookie could still open.
async fn end_previous_session(
    state: &AppState,
    browser: &Browser,
    now: UnixTime,
) -> Result<(), ServiceError> {
    let Some(cookie) = browser.session_cookie.as_deref().filter(|c| c.len() == 43) else {
        return Ok(());
    };
    let hash = crate::crypto::token::hash_token(cookie);
    if let Some(previous) = state.store.get_session(&hash).await? {
        if previous.ended_at.is_none() {
            session::logout(state, &previous.sid, now).await?;
        }
    }
    Ok(())
}

/// Creates the session (or upgrades the one being stepped up or re-authenticated, under
/// a new id) and audits the sign-in.
async fn complete(
    state: &AppState,
    done: Completed,
    user: &User,
    browser: &Browser,
    now: UnixTime,
) -> Result<Step, ServiceError> {
    let amr = amr_of(&done.factors);
    let (session_cookie, session) = match &done.session_sid {
        None => {
            end_previous_session(state, browser, now).await?;
            let epoch = done.credentials_epoch;
            session::create(state, user, epoch, &done.factors, &browser.info, now).await?
        }
        Some(sid) => match upgrade(state, sid, user, &done, &amr, now).await? {
            Some(upgraded) => upgraded,
            None => {
                return Ok(Step::Restart(
                    "your session has ended; sign in again".into(),
                ))
            }
        },
    };
    // Whoever presents a second factor still has one: an MFA recovery in progress ends.
    if done.factors.iter().any(|f| f.kind.is_second_factor()) {
        super::recovery::second_factor_used(state, user, &browser.info, now).await?;
    }
    let kinds: Vec<&str> = done.factors.iter().map(|f| f.kind.as_str()).collect();
    let kind = if done.session_sid.is_some() {
        "reauthenticated"
    } else {
        "login_succeeded"
    };
    let detail = format!("factors={}", kinds.join(","));
    audit::record(
        state.store.as_ref(),
        kind,
        Some(user.id.as_str()),
        &browser.info,
        detail,
        now,
    )
    .await?;
    if done.session_sid.is_none() {
        let cookie = browser.device_cookie.as_deref();
        super::notices::after_sign_in(state, user, cookie, &browser.info, now).await?;
    }
    let device_cookie = state
        .devices
        .issue(user, browser.device_cookie.as_deref(), now)?;
    Ok(Step::Done(Box::new(SignedIn {
        session: ActiveSession {
            session,
            user: user.clone(),
        },
        session_cookie,
        device_cookie,
        resume: done.resume,
    })))
}

async fn upgrade(
    state: &AppState,
    sid: &str,
    user: &User,
    done: &Completed,
    amr: &[String],
    now: UnixTime,
) -> Result<Option<(String, crate::domain::Session)>, ServiceError> {
    let Some(current) = state.store.get_session_by_sid(sid).await? else {
        return Ok(None);
    };
    if current.user_id != user.id {
        return Ok(None);
    }
    let cookie = random_token()?;
    let id_hash = hash_token(&cookie);
    let upgrade = SessionUpgrade {
        new_id_hash: &id_hash,
        factors: &done.factors,
        amr,
        auth_time: now,
        credentials_epoch: done.credentials_epoch,
    };
    if !state.store.upgrade_session(sid, &upgrade).await? {
        return Ok(None);
    }
    let session = crate::domain::Session {
        id_hash,
        factors: done.factors.clone(),
        amr: amr.to_vec(),
        auth_time: now,
        credentials_epoch: done.credentials_epoch,
        last_seen_at: now,
        ..current
    };
    Ok(Some((cookie, session)))
}

async fn store_pending(state: &AppState, pending: &PendingLogin) -> Result<String, ServiceError> {
    let cookie = random_token()?;
    let record = PendingLoginRecord {
        id_hash: hash_token(&cookie),
        state: serde_json::to_string(pending).map_err(|e| ServiceError::Refused(e.to_string()))?,
        created_at: pending.started_at,
        expires_at: pending.expires_at(),
    };
    state.store.insert_pending_login(&record).await?;
    Ok(cookie)
}

/// Takes (single use) the pending login named by the cookie.
pub(super) async fn take_pending(
    state: &AppState,
    cookie: Option<&str>,
) -> Result<Option<(PendingLoginRecord, PendingLogin)>, ServiceError> {
    let Some(cookie) = cookie.filter(|c| c.len() == 43) else {
        return Ok(None);
    };
    let Some(record) = state.store.take_pending_login(&hash_token(cookie)).await? else {
        return Ok(None);
    };
    // A record that no longer parses (an older version's) is as good as expired.
    Ok(serde_json::from_str::<PendingLogin>(&record.state)
        .ok()
        .map(|p| (record, p)))
}

/// The pending login's user, if it still may sign in.
async fn pending_user(
    state: &AppState,
    pending: &PendingLogin,
) -> Result<Option<User>, ServiceError> {
    let Some(id) = &pending.user_id else {
        return Ok(None);
    };
    let user = state.store.get_user(id).await?;
    Ok(user.filter(|u| u.accepts_auth_under(pending.credentials_epoch)))
}

/// The account a sign-in names, if it exists.
async fn lookup(state: &AppState, username: &str) -> Result<Option<User>, ServiceError> {
    match Username::parse(username) {
        Ok(name) => Ok(state.store.get_user_by_username(&name).await?),
        Err(_) => Ok(None),
    }
}

/// The enabled user whose password matches, checked in `place`. A wrong password, an
/// unknown user (`None`) and a disabled account take the same path and the same argon2
/// work.
async fn verify_password(
    state: &AppState,
    place: Place,
    user: Option<&User>,
    password: &str,
) -> Result<Option<User>, ServiceError> {
    let password = match Password::parse_any(password) {
        Ok(p) => p,
        // Over 1 KiB: refused before hashing; length is all this reveals.
        Err(_) => return Ok(None),
    };
    let stored = user.and_then(|u| u.password_hash.as_deref());
    let matches = state.passwords.verify_in(place, stored, &password).await?;
    Ok(user.filter(|u| matches && !u.disabled).cloned())
}

/// A place in the hashing queue for a password check, or `Busy` (503 with
/// `Retry-After`) at once when the queue is full; taken before the throttle counts the
/// attempt. So an attempt the server is too busy to check costs no write (counting it and
/// refunding it were two locking transactions per refused attempt, during a storm of
/// sign-ins the bulk of the store's writes), and it is answered at once: when places were
/// only looked at here and taken after the throttle, every attempt that saw one free went
/// on to the throttle, where attempts from one address wait for each other's lock on its
/// bucket, and most of them then found the queue full; their 503 came after that wait,
/// half a second and more during a storm (`docs/performance.md`, "Ninth round"). An
/// attempt the throttle refuses gives its place back at once. Held while the attempt
/// waits for the throttle, places are bounded per address there (`turns`): ask for the
/// attempt's turn first.
pub(crate) fn hashing_place(state: &AppState) -> Result<Place, ServiceError> {
    Ok(state.passwords.reserve()?)
}

/// Checks a username and password in `place` (`hashing_place`): the enabled user whose
/// password matches, if any.
pub async fn check_password(
    state: &AppState,
    place: Place,
    username: &str,
    password: &str,
) -> Result<Option<User>, ServiceError> {
    let user = lookup(state, username).await?;
    verify_password(state, place, user.as_ref(), password).await
}
