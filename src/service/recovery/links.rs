//! The mailed links of a recovery: their tokens, the read-only checks a link's page runs,
//! and the mails that carry them.

use crate::clock::UnixTime;
use crate::crypto::token::{hash_token, random_token};
use crate::domain::{AccountToken, OutboxMail, TokenPurpose, User};

use super::super::account::when;
use super::super::{AppState, ServiceError};

pub(super) const USED: &str = "This link was already used.";
pub(super) const NOTHING_PENDING: &str = "There is no recovery pending for this account.";

/// Read-only checks of a mailed link: the token exists, is for `purpose`, unspent,
/// unexpired, its user enabled, and (when `bound`) issued under the current credentials.
pub(super) async fn check_link(
    state: &AppState,
    token: &str,
    purpose: TokenPurpose,
    bound: bool,
    now: UnixTime,
) -> Result<Result<(AccountToken, User), &'static str>, ServiceError> {
    const INVALID: &str = "This link is not valid. Copy the whole link from the e-mail.";
    if token.len() != 43 {
        return Ok(Err(INVALID));
    }
    let Some(t) = state.store.get_account_token(&hash_token(token)).await? else {
        return Ok(Err(INVALID));
    };
    if t.purpose != purpose {
        return Ok(Err("This link is not for this page."));
    }
    if t.used_at.is_some() {
        return Ok(Err(USED));
    }
    if now >= t.expires_at {
        return Ok(Err("This link has expired."));
    }
    let user = state.store.get_user(&t.user_id).await?;
    let Some(user) = user.filter(|u| !u.disabled) else {
        return Ok(Err("This account cannot use this link."));
    };
    if bound && t.credentials_epoch != user.credentials_epoch {
        return Ok(Err(
            "This link is void: the account's password changed since it was sent.",
        ));
    }
    Ok(Ok((t, user)))
}

/// A new single-use token (value, stored form) for `user`.
pub(super) fn new_token(
    purpose: TokenPurpose,
    user: &User,
    expires_at: UnixTime,
    now: UnixTime,
) -> Result<(String, AccountToken), ServiceError> {
    let value = random_token()?;
    let token = AccountToken {
        token_hash: hash_token(&value),
        purpose,
        user_id: user.id.as_str().to_owned(),
        email: None,
        credentials_epoch: user.credentials_epoch,
        created_at: now,
        expires_at,
        used_at: None,
    };
    Ok((value, token))
}

/// A notice (`kind`) with a cancel link valid until the recovery takes effect.
pub(super) fn cancel_mail(
    state: &AppState,
    user: &User,
    kind: &str,
    effective_at: UnixTime,
    now: UnixTime,
) -> Result<(AccountToken, OutboxMail), ServiceError> {
    let (value, token) = new_token(TokenPurpose::CancelMfaRecovery, user, effective_at, now)?;
    let ctx = minijinja::context! {
        username => user.username.as_str(),
        link => state.mailer.link("/mfa-recovery/cancel", &value),
        effective => when(effective_at),
    };
    Ok((token, compose(state, kind, user, ctx, now)?))
}

pub(super) fn compose(
    state: &AppState,
    kind: &str,
    user: &User,
    ctx: minijinja::Value,
    now: UnixTime,
) -> Result<OutboxMail, ServiceError> {
    state.mailer.compose(kind, user.email.as_str(), ctx, now)
}

/// `24 hours`, `90 minutes`, `3 days`.
pub(super) fn words(secs: i64) -> String {
    let (n, unit) = if secs >= 2 * 86_400 && secs % 86_400 == 0 {
        (secs / 86_400, "day")
    } else if secs >= 3_600 && secs % 3_600 == 0 {
        (secs / 3_600, "hour")
    } else if secs >= 60 {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_in_words() {
        assert_eq!(super::words(86_400), "24 hours");
        assert_eq!(super::words(3_600), "1 hour");
        assert_eq!(super::words(21 * 3_600), "21 hours");
        assert_eq!(super::words(3 * 86_400), "3 days");
        assert_eq!(super::words(90 * 60), "90 minutes");
    }
}
