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

    /// The username as it would be looked up; names that cannot exist share one key, so
    /// they cannot grow the table (and they never log in anyway).
    fn user_key(username: &str) -> String {
        Username::parse(username)
            .map_or_else(|_| "\u{0}invalid".to_owned(), |u| u.as_str().to_owned())
    }

    /// IPv4 addresses count one by one; IPv6 per /64, the block one host usually owns.
    fn ip_key(ip: &str) -> String {
        match ip.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(v6)) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            _ => ip.to_owned(),
        }
    }

    /// Checks and counts the attempt under both limits in one step, before any hashing.
    /// False when this username or this address has used up its failures.
    pub fn try_begin(&self, username: &str, ip: &str, now: UnixTime) -> bool {
        let (Ok(mut users), Ok(mut ips)) = (self.users.lock(), self.ips.lock()) else {
            return false; // a poisoned lock fails closed
        };
        let (user, ip) = (Self::user_key(username), Self::ip_key(ip));
        if users.is_blocked(&user, now) || ips.is_blocked(&ip, now) {
            return false;
        }
        users.try_acquire(&user, now) && ips.try_acquire(&ip, now)
    }

    /// The attempt succeeded: clear the username's failures, give the address its attempt
    /// back.
    pub fn succeeded(&self, username: &str, ip: &str) {
        if let Ok(mut t) = self.users.lock() {
            t.reset(&Self::user_key(username));
        }
        if let Ok(mut t) = self.ips.lock() {
            t.refund(&Self::ip_key(ip));
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
    if !state.login_guard.try_begin(username, ip, now) {
        tracing::warn!(%ip, "login throttled");
        return Ok(LoginResult::Throttled);
    }
    // The attempt is already counted as a failure; a success takes it back.
    match check_password(state, username, password, now).await? {
        Some(user) => {
            state.login_guard.succeeded(username, ip);
            Ok(LoginResult::Success(Box::new(user)))
        }
        None => Ok(LoginResult::Failed),
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

#[cfg(test)]
mod tests {
    use super::LoginGuard;

    #[test]
    fn ipv6_counts_per_64_and_ipv4_per_address() {
        assert_eq!(
            LoginGuard::ip_key("2001:db8:1:2:aaaa::1"),
            LoginGuard::ip_key("2001:db8:1:2:bbbb::9")
        );
        assert_ne!(
            LoginGuard::ip_key("2001:db8:1:2::1"),
            LoginGuard::ip_key("2001:db8:1:3::1")
        );
        assert_ne!(
            LoginGuard::ip_key("10.0.0.1"),
            LoginGuard::ip_key("10.0.0.2")
        );
    }

    #[test]
    fn invalid_usernames_share_one_key() {
        assert_eq!(
            LoginGuard::user_key("not a valid name"),
            LoginGuard::user_key(&"x y".repeat(1000))
        );
        assert_eq!(
            LoginGuard::user_key(" Alice "),
            LoginGuard::user_key("alice")
        );
    }
}
