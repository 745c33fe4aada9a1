//! Forgot password and password reset (issue 8, item 3).
//!
//! - A request names an account by username or e-mail address. Whatever it names (an
//!   account, nothing, a disabled account) and whether it was throttled, the caller gets
//!   the same answer; only an enabled account gets a mail.
//! - The link carries a 256-bit random token of which only the SHA-256 is stored
//!   (`account_tokens`, purpose `password_reset`), valid `accounts.reset_link_secs`, single
//!   use, bound to the credentials epoch at issue: a password change, a disabling or a
//!   second request voids it.
//! - A reset never bypasses a second factor: a user who has one presents it on the reset
//!   form before the new password takes effect (or goes through MFA recovery).
//! - Completing a reset spends the token, sets the hash and writes the notice in one
//!   transaction, then ends every session and revokes every refresh family (like a
//!   password change on the account page).

mod factor;
mod throttle;

use crate::clock::UnixTime;
use crate::crypto::token::{hash_token, random_token};
use crate::domain::{AccountToken, Email, FactorKind, Password, TokenPurpose, User, Username};
use crate::store::{PasswordReset, Store};

use super::login::Browser;
use super::{admin, audit, passkeys, AppState, ServiceError};

pub use factor::FactorRefusal;

/// Where a reset link points.
pub const RESET_PATH: &str = "/reset-password";

/// Length of a token from `random_token` (256 bits, base64url without padding).
const TOKEN_CHARS: usize = 43;

/// Asks for a reset link. Always `Ok(())` unless storage fails: the caller must answer the
/// same way for an account, an unknown name, a disabled account and a throttled request.
pub async fn request(
    state: &AppState,
    identifier: &str,
    browser: &Browser,
    now: UnixTime,
) -> Result<(), ServiceError> {
    let store = state.store.as_ref();
    let found = lookup(store, identifier).await?;
    let account = found
        .as_ref()
        .map_or_else(|| unknown_key(identifier), |u| u.id.as_str().to_owned());
    // Equal work on every path, so timing tells as little as the page: one throttle write
    // (a durable transaction) whatever the name, then a token, its hash and a rendered,
    // sealed message. Only the outbox write of a real request is left; it is one small
    // transaction, far below the noise of a network round trip.
    let admitted = throttle::admit(store, &account, &browser.info.ip, now).await?;
    let token = random_token()?;
    let token_hash = hash_token(&token);
    let recipient = found.as_ref().filter(|u| !u.disabled);
    let mail = compose_link(state, recipient, &token, now)?;
    let user_id = found.as_ref().map(|u| u.id.as_str());
    if !admitted {
        let info = &browser.info;
        audit::record(store, "password_reset_throttled", user_id, info, "", now).await?;
        return Ok(());
    }
    let Some(user) = recipient else {
        let detail = if found.is_some() {
            "no mail: the account is disabled"
        } else {
            "no mail: no such account"
        };
        let info = &browser.info;
        audit::record(
            store,
            "password_reset_requested",
            user_id,
            info,
            detail,
            now,
        )
        .await?;
        return Ok(());
    };
    let record = AccountToken {
        token_hash,
        purpose: TokenPurpose::PasswordReset,
        user_id: user.id.as_str().to_owned(),
        email: None,
        credentials_epoch: user.credentials_epoch,
        created_at: now,
        expires_at: now.saturating_add(link_secs(state)),
        used_at: None,
    };
    // Voids the user's earlier reset links, stores this one and queues the mail together.
    store.issue_account_token(&record, &mail).await?;
    state.mailer.wake();
    audit::record(
        store,
        "password_reset_requested",
        user_id,
        &browser.info,
        "link mailed",
        now,
    )
    .await
}

fn link_secs(state: &AppState) -> i64 {
    i64::try_from(state.settings.accounts.reset_link_secs).unwrap_or(3_600)
}

/// The `password_reset` message; rendered for an unknown account too (to a placeholder
/// that is never stored), so both paths cost the same.
fn compose_link(
    state: &AppState,
    user: Option<&User>,
    token: &str,
    now: UnixTime,
) -> Result<crate::domain::OutboxMail, ServiceError> {
    let (username, to) = user.map_or(("", "nobody@invalid.example"), |u| {
        (u.username.as_str(), u.email.as_str())
    });
    let ctx = minijinja::context! {
        username,
        link => state.mailer.link(RESET_PATH, token),
        valid_minutes => link_secs(state) / 60,
    };
    state.mailer.compose("password_reset", to, ctx, now)
}

/// The account a request names: an e-mail address if it has an `@`, a username otherwise.
async fn lookup(store: &dyn Store, identifier: &str) -> Result<Option<User>, ServiceError> {
    let identifier = identifier.trim();
    if identifier.contains('@') {
        match Email::parse(identifier) {
            Ok(email) => Ok(store.find_user_by_email(&email).await?),
            Err(_) => Ok(None),
        }
    } else {
        match Username::parse(identifier) {
            Ok(name) => Ok(store.get_user_by_username(&name).await?),
            Err(_) => Ok(None),
        }
    }
}

/// The throttle key of a name that matches no account: normalised like a lookup, and one
/// shared key for what cannot be a name (so junk cannot grow the table).
fn unknown_key(identifier: &str) -> String {
    let identifier = identifier.trim();
    if identifier.contains('@') {
        Email::parse(identifier).map_or_else(
            |_| "!invalid".to_owned(),
            |e| format!("email:{}", e.as_str().to_lowercase()),
        )
    } else {
        super::login::throttle::account_key(identifier)
    }
}

/// A reset link that may still be used, and whose it is.
#[derive(Debug)]
pub struct OpenLink {
    /// The user the link resets.
    pub user: User,
    /// The second factors the user must present one of (empty: none).
    pub factors: Vec<FactorKind>,
}

/// The link's token, if it is a `password_reset` token that is unspent and unexpired at
/// `now`, and its user is enabled and still at the credentials epoch of issue. Reading
/// changes nothing.
pub async fn open(
    state: &AppState,
    token: &str,
    now: UnixTime,
) -> Result<Option<OpenLink>, ServiceError> {
    if token.len() != TOKEN_CHARS {
        return Ok(None);
    }
    let store = state.store.as_ref();
    let Some(t) = store.get_account_token(&hash_token(token)).await? else {
        return Ok(None);
    };
    if t.purpose != TokenPurpose::PasswordReset || t.used_at.is_some() || now >= t.expires_at {
        return Ok(None);
    }
    let Some(user) = store.get_user(&t.user_id).await? else {
        return Ok(None);
    };
    if !user.accepts_auth_under(t.credentials_epoch) {
        return Ok(None);
    }
    let factors = state.factors.enrolled(store, user.id.as_str()).await?;
    Ok(Some(OpenLink { user, factors }))
}

/// What the reset form posts.
#[derive(Debug, Default)]
pub struct Submission<'a> {
    /// The link's token.
    pub token: &'a str,
    /// The new password.
    pub new: &'a str,
    /// Its copy.
    pub confirm: &'a str,
    /// A TOTP code, if the user has TOTP.
    pub totp: &'a str,
    /// A backup code instead.
    pub backup_code: &'a str,
    /// A passkey assertion (JSON) instead.
    pub credential: &'a str,
}

/// The outcome of a reset form.
#[derive(Debug)]
pub enum Outcome {
    /// The new password is set; every session and refresh family ended.
    Done,
    /// The link is not (or no longer) valid: nothing changed.
    Invalid,
    /// The new password is not acceptable: nothing changed, the link still works.
    Rejected(OpenLink, String),
    /// The second factor is missing or wrong, or code attempts are throttled: nothing
    /// changed, the link still works.
    Factor(OpenLink, FactorRefusal),
}

/// Completes a reset: checks the link, the new password, the second factor (if the user
/// has one), then spends the token and sets the password in one transaction.
pub async fn complete(
    state: &AppState,
    form: &Submission<'_>,
    browser: &Browser,
    now: UnixTime,
) -> Result<Outcome, ServiceError> {
    let Some(link) = open(state, form.token, now).await? else {
        return Ok(Outcome::Invalid);
    };
    if form.new != form.confirm {
        let message = "The new passwords do not match.".to_owned();
        return Ok(Outcome::Rejected(link, message));
    }
    let new = match Password::parse(form.new) {
        Ok(p) => p,
        Err(e) => return Ok(Outcome::Rejected(link, e.reason)),
    };
    if !link.factors.is_empty() {
        if let Err(refusal) = factor::check(state, &link, form, browser, now).await? {
            return Ok(Outcome::Factor(link, refusal));
        }
    }
    let hash = state.passwords.hash(&new).await?;
    let user = &link.user;
    let ctx = minijinja::context! {
        username => user.username.as_str(),
        what => "Your password was reset.",
    };
    let notice = state
        .mailer
        .compose("security_notice", user.email.as_str(), ctx, now)?;
    let token_hash = hash_token(form.token);
    let reset = PasswordReset {
        token_hash: &token_hash,
        password_hash: &hash,
        notice: &notice,
        now,
    };
    let store = state.store.as_ref();
    if store.reset_password(&reset).await?.is_none() {
        // Spent or voided by a concurrent request since `open`.
        return Ok(Outcome::Invalid);
    }
    state.mailer.wake();
    // The epoch moved in the same statement as the hash, so every session, code and
    // refresh token is already unusable; this ends and revokes them for good.
    admin::cut_off(store, user, now).await?;
    audit::record(
        store,
        "password_reset",
        Some(user.id.as_str()),
        &browser.info,
        "with the mailed link",
        now,
    )
    .await?;
    Ok(Outcome::Done)
}

/// Starts a passkey ceremony as the second factor of a reset (the reset form's "Use a
/// passkey"). `None` when the link is not valid or its user has no passkey.
pub async fn start_passkey(
    state: &AppState,
    token: &str,
    now: UnixTime,
) -> Result<Option<Result<passkeys::Started, passkeys::Refusal>>, ServiceError> {
    let Some(link) = open(state, token, now).await? else {
        return Ok(None);
    };
    if !link.factors.contains(&FactorKind::Passkey) {
        return Ok(None);
    }
    let store = state.store.as_ref();
    let started =
        passkeys::start_second_factor(&state.passkeys, store, link.user.id.as_str(), now).await?;
    Ok(Some(started))
}
