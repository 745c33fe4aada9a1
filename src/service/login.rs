//! Password login. A wrong password, an unknown username and a disabled account take the
//! same path and the same time: argon2 always runs (against a dummy hash when there is no
//! user), and the caller gets the same `None`.

use std::sync::Mutex;

use crate::authn::Throttle;
use crate::clock::UnixTime;
use crate::config::LoginSettings;
use crate::domain::{Password, User, Username};

use super::{AppState, ServiceError};

/// How many keys each throttle remembers at most.
const THROTTLE_CAPACITY: usize = 100_000;

/// Brute-force protection for the login form, per node: failures are counted per
/// username (existing or not, so a lockout says nothing about which accounts exist) and
/// per client IP. A blocked attempt is refused before any password hashing.
pub struct LoginGuard {
    users: Mutex<Throttle>,
    ips: Mutex<Throttle>,
}

impl LoginGuard {
    /// A guard with the configured limits.
    pub fn new(s: &LoginSettings) -> Self {
        let window = i64::try_from(s.failure_window_secs).unwrap_or(i64::MAX / 4);
        Self {
            users: Mutex::new(Throttle::new(
                s.max_failures_per_user,
                window,
                THROTTLE_CAPACITY,
            )),
            ips: Mutex::new(Throttle::new(
                s.max_failures_per_ip,
                window,
                THROTTLE_CAPACITY,
            )),
        }
    }

    fn user_key(username: &str) -> String {
        username.trim().to_ascii_lowercase()
    }

    /// True when this username or this IP has used up its failures.
    pub fn is_blocked(&self, username: &str, ip: &str, now: UnixTime) -> bool {
        let user = self
            .users
            .lock()
            .map(|t| t.is_blocked(&Self::user_key(username), now));
        let ip = self.ips.lock().map(|t| t.is_blocked(ip, now));
        // A poisoned lock fails closed.
        user.unwrap_or(true) || ip.unwrap_or(true)
    }

    /// Counts a failed attempt.
    pub fn failed(&self, username: &str, ip: &str, now: UnixTime) {
        if let Ok(mut t) = self.users.lock() {
            t.record_failure(&Self::user_key(username), now);
        }
        if let Ok(mut t) = self.ips.lock() {
            t.record_failure(ip, now);
        }
    }

    /// A successful login clears the username's count (not the IP's).
    pub fn succeeded(&self, username: &str) {
        if let Ok(mut t) = self.users.lock() {
            t.reset(&Self::user_key(username));
        }
    }
}

/// The outcome of a login attempt.
#[derive(Debug)]
pub enum LoginResult {
    /// Right password, enabled user.
    Success(Box<User>),
    /// Wrong password, unknown user or disabled account: all look the same.
    Failed,
    /// Too many failures for this username or IP; try again later.
    Throttled,
}

/// Checks the credentials behind the brute-force guard.
pub async fn attempt(
    state: &AppState,
    username: &str,
    password: &str,
    ip: &str,
    now: UnixTime,
) -> Result<LoginResult, ServiceError> {
    if state.login_guard.is_blocked(username, ip, now) {
        tracing::warn!(%ip, "login throttled");
        return Ok(LoginResult::Throttled);
    }
    match check_password(state, username, password, now).await? {
        Some(user) => {
            state.login_guard.succeeded(username);
            Ok(LoginResult::Success(Box::new(user)))
        }
        None => {
            state.login_guard.failed(username, ip, now);
            Ok(LoginResult::Failed)
        }
    }
}

/// Checks a username and password; `Some(user)` only for an enabled user with a matching
/// password.
pub async fn check_password(
    state: &AppState,
    username: &str,
    password: &str,
    _now: UnixTime,
) -> Result<Option<User>, ServiceError> {
    let password = match Password::parse_any(password) {
        Ok(p) => p,
        // Over 1 KiB: refused before hashing; length is all this reveals.
        Err(_) => return Ok(None),
    };
    let user = match Username::parse(username) {
        Ok(name) => state.store.get_user_by_username(&name).await?,
        Err(_) => None,
    };
    let stored = user.as_ref().and_then(|u| u.password_hash.as_deref());
    let matches = state.passwords.verify(stored, &password).await?;
    Ok(user.filter(|u| matches && !u.disabled))
}
