//! Optional self-registration (`[registration] enabled`, off by default): anyone may
//! create an account, unverified until the link mailed to its address is confirmed.
//!
//! The page answers the same whether the username or the address is taken: a taken
//! address gets a notice instead of a link (its owner learns of the attempt, the visitor
//! learns nothing), a taken username gets a message to the given address asking for
//! another name. The password is hashed on every path, so the time taken says little.

use crate::authn::throttle::{acquire, Check, Rule, Verdict};
use crate::clock::UnixTime;
use crate::domain::{Email, Password, TokenPurpose, User, UserId, Username};
use crate::store::{decide_on_buckets, StoreError, ThrottleStore};

use super::email_address::address_in_use;
use super::invitations::{lifetime, new_link};
use super::login::throttle::address_key;
use super::login::Browser;
use super::{audit, AppState, ServiceError};

/// Registrations from one client address (IPv6 per /64): 10 an hour.
const PER_CLIENT: Rule = Rule {
    free: 10,
    base_delay: 0,
    max_delay: 0,
    window: 3_600,
};

/// Registrations naming one e-mail address, so nobody can flood a mailbox with links or
/// notices from many client addresses: 3 an hour.
const PER_MAILBOX: Rule = Rule {
    free: 3,
    base_delay: 0,
    max_delay: 0,
    window: 3_600,
};

/// What the registration form gives.
#[derive(Debug)]
pub struct NewRegistration<'a> {
    /// Login name.
    pub username: &'a str,
    /// E-mail address.
    pub email: &'a str,
    /// Password, and its second copy.
    pub password: &'a str,
    /// The second copy.
    pub confirm: &'a str,
}

/// What [`register`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Registration {
    /// A message went to the address (a link, or a notice): "check your mail".
    Sent,
    /// An input is not acceptable; nothing stored, nothing counted.
    Rejected(String),
    /// Too many registrations from this client or for this address: wait.
    Throttled(i64),
}

/// Registers an account: unverified, with a `VerifyEmail` link mailed in the same
/// transaction. Throttled per client address and per e-mail address (the shared
/// throttle buckets), before the password is hashed.
pub async fn register(
    state: &AppState,
    input: &NewRegistration<'_>,
    browser: &Browser,
    now: UnixTime,
) -> Result<Registration, ServiceError> {
    let (username, email, password) = match parse(input) {
        Ok(parsed) => parsed,
        Err(why) => return Ok(Registration::Rejected(why)),
    };
    let store = state.store.as_ref();
    if let Some(wait) = admit(store, &browser.info.ip, &email, now).await? {
        return Ok(Registration::Throttled(wait));
    }
    // Hashed on every path below, taken name or address included.
    let hash = state.passwords.hash(&password).await?;
    if let Some(owner) = store.find_user_by_address(email.as_str()).await? {
        store
            .enqueue_mail(&address_in_use(state, &owner, now)?)
            .await?;
        let detail = "someone tried to register an account with this address";
        let owner_id = Some(owner.id.as_str());
        audit::record(
            store,
            "registration_refused",
            owner_id,
            &browser.info,
            detail,
            now,
        )
        .await?;
        state.mailer.wake();
        return Ok(Registration::Sent);
    }
    let user = new_user(username, email, hash, now);
    let ttl = state.settings.accounts.email_link_secs;
    let (token, stored) = new_link(
        TokenPurpose::VerifyEmail,
        &user,
        Some(&user.email),
        ttl,
        now,
    )?;
    let ctx = minijinja::context! {
        username => user.username.as_str(),
        link => state.mailer.link("/verify-email", &token),
        valid_for => lifetime(ttl),
    };
    let mail = state
        .mailer
        .compose("verify_email", user.email.as_str(), ctx, now)?;
    match store.insert_user_with_token(&user, &stored, &mail).await {
        Ok(()) => {
            let user_id = Some(user.id.as_str());
            audit::record(store, "user_registered", user_id, &browser.info, "", now).await?;
        }
        Err(StoreError::Conflict(_)) => taken(state, &user, browser, now).await?,
        Err(e) => return Err(e.into()),
    }
    state.mailer.wake();
    Ok(Registration::Sent)
}

fn parse(input: &NewRegistration<'_>) -> Result<(Username, Email, Password), String> {
    let username =
        Username::parse(input.username).map_err(|e| format!("The username {}.", e.reason))?;
    let email =
        Email::parse(input.email).map_err(|_| "That is not an e-mail address.".to_owned())?;
    if input.password != input.confirm {
        return Err("The passwords do not match.".into());
    }
    let password =
        Password::parse(input.password).map_err(|e| format!("The password {}.", e.reason))?;
    Ok((username, email, password))
}

fn new_user(username: Username, email: Email, hash: String, now: UnixTime) -> User {
    User {
        id: UserId::generate(),
        username,
        email,
        email_verified: false,
        password_hash: Some(hash),
        disabled: false,
        roles: Vec::new(),
        created_at: now,
        updated_at: now,
        credentials_changed_at: now,
        credentials_epoch: 1,
        must_enrol_factor: false,
    }
}

/// The account could not be created: the username is taken (or the address was taken a
/// moment ago). The address hears why; the page says the same as for a success.
async fn taken(
    state: &AppState,
    wanted: &User,
    browser: &Browser,
    now: UnixTime,
) -> Result<(), ServiceError> {
    let store = state.store.as_ref();
    let address = wanted.email.as_str();
    let (mail, detail) = match store.find_user_by_address(address).await? {
        Some(owner) => (address_in_use(state, &owner, now)?, "address in use"),
        None => {
            let ctx = minijinja::context! { username => wanted.username.as_str() };
            let mail = state.mailer.compose("username_taken", address, ctx, now)?;
            (mail, "username taken")
        }
    };
    store.enqueue_mail(&mail).await?;
    audit::record(
        store,
        "registration_refused",
        None,
        &browser.info,
        detail,
        now,
    )
    .await?;
    Ok(())
}

/// Counts a registration in the client's and the mailbox's buckets; `Some(wait)` when
/// either is full (nothing counted then).
async fn admit(
    store: &dyn ThrottleStore,
    ip: &str,
    email: &Email,
    now: UnixTime,
) -> Result<Option<i64>, StoreError> {
    let keys = [
        format!("register:{}", address_key(ip)),
        format!("register-to:{}", email.as_str().to_lowercase()),
    ];
    let checks = [Check::counted(PER_CLIENT), Check::counted(PER_MAILBOX)];
    let verdict = decide_on_buckets(store, &keys, now, move |current| {
        let acquired = acquire(&checks, current, now);
        (acquired.buckets, acquired.verdict)
    })
    .await?;
    Ok(match verdict {
        Verdict::Allowed => None,
        Verdict::Throttled { retry_after } => Some(retry_after),
    })
}
