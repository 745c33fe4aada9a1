//! Password login. A wrong password, an unknown username and a disabled account take the
//! same path and the same time: argon2 always runs (against a dummy hash when there is no
//! user), and the caller gets the same `None`.

use crate::clock::UnixTime;
use crate::domain::{Password, User, Username};

use super::{AppState, ServiceError};

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
