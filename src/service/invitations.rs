//! Invitations: an admin names a user and an address, the user sets their own password
//! from a mailed single-use link (admins never handle passwords). Also the checks every
//! mailed account link of this area goes through ([`open_link`]).

use crate::clock::UnixTime;
use crate::config::AccountSettings;
use crate::crypto::token::{hash_token, random_token};
use crate::domain::{AccountToken, Email, Password, Role, TokenPurpose, User, UserId, Username};
use crate::store::Store;

use super::login::Browser;
use super::mail::Mailer;
use super::{audit, AppState, ServiceError};

/// Why a mailed link cannot be used. Nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRefusal {
    /// No such link (mistyped, tampered with, or for something else).
    Unknown,
    /// Already used, or replaced by a newer link.
    Used,
    /// Too old.
    Expired,
    /// The account is disabled.
    Disabled,
    /// The account changed since the link was sent (a new password, another address).
    Stale,
}

impl LinkRefusal {
    /// What the page says.
    pub fn message(self) -> &'static str {
        match self {
            Self::Unknown => {
                "This link is not valid. Check that you opened the whole link from the message."
            }
            Self::Used => {
                "This link was already used, or a newer one was sent. Use the newest message."
            }
            Self::Expired => "This link has expired. Ask for a new one.",
            Self::Disabled => "This account is disabled.",
            Self::Stale => "This link no longer applies: the account changed after it was sent.",
        }
    }
}

/// The pure rules of a mailed link (no I/O): is `token`, presented for `purpose` at `now`,
/// usable for `user`? A token of another purpose is treated as unknown.
pub fn check_link(
    token: Option<&AccountToken>,
    purpose: TokenPurpose,
    user: Option<&User>,
    now: UnixTime,
) -> Result<(), LinkRefusal> {
    let token = token
        .filter(|t| t.purpose == purpose)
        .ok_or(LinkRefusal::Unknown)?;
    if token.used_at.is_some() {
        return Err(LinkRefusal::Used);
    }
    if token.expires_at <= now {
        return Err(LinkRefusal::Expired);
    }
    let user = user
        .filter(|u| u.id.as_str() == token.user_id)
        .ok_or(LinkRefusal::Unknown)?;
    if user.disabled {
        return Err(LinkRefusal::Disabled);
    }
    let same_address = |u: &User| {
        token
            .email
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case(u.email.as_str()))
    };
    let current = match purpose {
        TokenPurpose::Invitation => {
            user.password_hash.is_none() && token.credentials_epoch == user.credentials_epoch
        }
        TokenPurpose::ChangeEmail => token.credentials_epoch == user.credentials_epoch,
        TokenPurpose::VerifyEmail => same_address(user),
        _ => true,
    };
    if current {
        Ok(())
    } else {
        Err(LinkRefusal::Stale)
    }
}

/// A link that passed [`check_link`]: its stored token and its user.
#[derive(Debug)]
pub struct OpenLink {
    /// The stored token.
    pub token: AccountToken,
    /// Whose link it is.
    pub user: User,
}

/// Looks up the link `token` (as presented in its URL) for one of `purposes` and checks
/// it. Changes nothing.
pub async fn open_link(
    store: &dyn Store,
    token: &str,
    purposes: &[TokenPurpose],
    now: UnixTime,
) -> Result<Result<OpenLink, LinkRefusal>, ServiceError> {
    // `random_token` makes 43 URL-safe characters; anything else was never issued.
    if token.len() != 43 {
        return Ok(Err(LinkRefusal::Unknown));
    }
    let Some(stored) = store.get_account_token(&hash_token(token)).await? else {
        return Ok(Err(LinkRefusal::Unknown));
    };
    if !purposes.contains(&stored.purpose) {
        return Ok(Err(LinkRefusal::Unknown));
    }
    let user = store.get_user(&stored.user_id).await?;
    if let Err(refusal) = check_link(Some(&stored), stored.purpose, user.as_ref(), now) {
        return Ok(Err(refusal));
    }
    Ok(user
        .map(|user| OpenLink {
            token: stored,
            user,
        })
        .ok_or(LinkRefusal::Unknown))
}

/// A new single-use link for `user`: the token for the URL, and what is stored (only its
/// SHA-256), valid `ttl_secs` from `now`, bound to the user's credentials epoch.
pub(crate) fn new_link(
    purpose: TokenPurpose,
    user: &User,
    email: Option<&Email>,
    ttl_secs: u64,
    now: UnixTime,
) -> Result<(String, AccountToken), ServiceError> {
    let token = random_token()?;
    let stored = AccountToken {
        token_hash: hash_token(&token),
        purpose,
        user_id: user.id.as_str().to_owned(),
        email: email.map(|e| e.as_str().to_owned()),
        credentials_epoch: user.credentials_epoch,
        created_at: now,
        expires_at: now.saturating_add(i64::try_from(ttl_secs).unwrap_or(i64::MAX / 4)),
        used_at: None,
    };
    Ok((token, stored))
}

/// "72 hours", "30 minutes": how long a link lives, for the mail.
pub(crate) fn lifetime(secs: u64) -> String {
    match secs {
        s if s >= 7_200 && s % 3_600 == 0 => format!("{} hours", s / 3_600),
        s if s >= 120 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}

/// What an admin gives to invite someone.
#[derive(Debug, Default)]
pub struct NewInvitation {
    /// Login name.
    pub username: String,
    /// The address to mail; for a user invited before, the stored one when `None`.
    pub email: Option<String>,
    /// Roles, for a new user.
    pub roles: Vec<String>,
    /// Only send a new link to a user invited before (never create one).
    pub resend: bool,
}

/// What [`invite`] did.
#[derive(Debug)]
pub struct Invited {
    /// The invited user (no password until they accept).
    pub user: User,
    /// The user had been invited before: the new link voids the old one.
    pub resent: bool,
}

/// Invites a user: creates the account without a password (it cannot sign in with one)
/// and, in the same transaction, its invitation link and mail; valid
/// `accounts.invitation_link_secs`. For a user invited before who has not accepted yet, a
/// new link that voids the old one.
pub async fn invite(
    store: &dyn Store,
    mailer: &Mailer,
    accounts: &AccountSettings,
    now: UnixTime,
    input: NewInvitation,
) -> Result<Invited, ServiceError> {
    let username = Username::parse(&input.username)?;
    let email = input.email.as_deref().map(Email::parse).transpose()?;
    let mut roles: Vec<Role> = input
        .roles
        .iter()
        .map(|r| Role::parse(r))
        .collect::<Result<_, _>>()?;
    roles.sort();
    roles.dedup();
    let (user, resent) = match store.get_user_by_username(&username).await? {
        Some(user) => (check_reinvite(user, email.as_ref(), &roles)?, true),
        None if input.resend => return Err(ServiceError::NotFound(format!("user {username}"))),
        None => {
            let email = email.ok_or_else(|| {
                crate::domain::ParseError::new("email", "is required to invite a new user")
            })?;
            (invited_user(username, email, roles, now), false)
        }
    };
    let (token, stored) = new_link(
        TokenPurpose::Invitation,
        &user,
        Some(&user.email),
        accounts.invitation_link_secs,
        now,
    )?;
    let ctx = minijinja::context! {
        username => user.username.as_str(),
        link => mailer.link("/invitation", &token),
        valid_for => lifetime(accounts.invitation_link_secs),
    };
    let mail = mailer.compose("invitation", user.email.as_str(), ctx, now)?;
    if resent {
        store.issue_account_token(&stored, &mail).await?;
    } else {
        store.insert_user_with_token(&user, &stored, &mail).await?;
    }
    let detail = if resent {
        "a new invitation link (the previous one is void)"
    } else {
        "invited by an admin"
    };
    let cli = super::session::ClientInfo {
        ip: "-".into(),
        user_agent: "latchkey cli".into(),
    };
    audit::record(
        store,
        "user_invited",
        Some(user.id.as_str()),
        &cli,
        detail,
        now,
    )
    .await?;
    mailer.wake();
    Ok(Invited { user, resent })
}

/// A user invited before may get a new link while they have not set a password, at the
/// address they were invited with; anything else is refused.
fn check_reinvite(user: User, email: Option<&Email>, roles: &[Role]) -> Result<User, ServiceError> {
    let name = &user.username;
    if user.password_hash.is_some() {
        return Err(ServiceError::Conflict(format!(
            "user {name} exists and has a password: there is nothing to invite"
        )));
    }
    if user.disabled {
        return Err(ServiceError::Refused(format!(
            "user {name} is disabled; enable it before sending a new invitation"
        )));
    }
    if email.is_some_and(|e| !e.as_str().eq_ignore_ascii_case(user.email.as_str())) {
        return Err(ServiceError::Refused(format!(
            "user {name} was invited at another address; use `--resend` without `--email`"
        )));
    }
    if !roles.is_empty() && roles != user.roles.as_slice() {
        return Err(ServiceError::Refused(format!(
            "user {name} exists; a new invitation does not change roles"
        )));
    }
    Ok(user)
}

fn invited_user(username: Username, email: Email, roles: Vec<Role>, now: UnixTime) -> User {
    User {
        id: UserId::generate(),
        username,
        email,
        // Verified only by the link (the invitation is mailed to this address).
        email_verified: false,
        // No password: the login path checks the dummy hash instead, so this account
        // answers exactly like a wrong password until the user sets one.
        password_hash: None,
        disabled: false,
        roles,
        created_at: now,
        updated_at: now,
        credentials_changed_at: now,
        credentials_epoch: 1,
        must_enrol_factor: false,
    }
}

/// What [`accept`] did.
#[derive(Debug)]
pub enum Acceptance {
    /// The password is set and the address verified; the user signs in next.
    Accepted(User),
    /// The link cannot be used; nothing changed.
    Refused(LinkRefusal),
    /// The password was not acceptable (or the copies differ): the form again, link unspent.
    Rejected {
        /// Whose invitation it is (the form shows the name).
        username: String,
        /// What is wrong.
        why: String,
    },
}

/// Sets an invited user's first password from their link: single use, the password policy
/// of every other password, and the address the invitation went to becomes verified.
pub async fn accept(
    state: &AppState,
    token: &str,
    password: &str,
    confirm: &str,
    browser: &Browser,
    now: UnixTime,
) -> Result<Acceptance, ServiceError> {
    let store = state.store.as_ref();
    let link = match open_link(store, token, &[TokenPurpose::Invitation], now).await? {
        Ok(link) => link,
        Err(refusal) => return Ok(Acceptance::Refused(refusal)),
    };
    let rejected = |why: String| {
        Ok(Acceptance::Rejected {
            username: link.user.username.as_str().to_owned(),
            why,
        })
    };
    if password != confirm {
        return rejected("The passwords do not match.".into());
    }
    let password = match Password::parse(password) {
        Ok(p) => p,
        Err(e) => return rejected(format!("The password {}.", e.reason)),
    };
    let hash = state.passwords.hash(&password).await?;
    // Spent and applied in one transaction; a concurrent use or change wins over this one.
    if !store
        .accept_invitation(&hash_token(token), &hash, now)
        .await?
    {
        return Ok(Acceptance::Refused(LinkRefusal::Used));
    }
    let user_id = link.user.id.as_str();
    audit::record(
        store,
        "invitation_accepted",
        Some(user_id),
        &browser.info,
        "",
        now,
    )
    .await?;
    Ok(Acceptance::Accepted(link.user))
}

#[cfg(test)]
mod tests;
