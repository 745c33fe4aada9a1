//! An account's e-mail address: `email_verified` (in ID tokens and userinfo) becomes true
//! only through a confirmed link. A change from the account page mails a link to the NEW
//! address and a notice to the old one; the address changes only when the link is
//! confirmed. The same confirmation page serves self-registration's verification link.

use crate::clock::UnixTime;
use crate::crypto::token::hash_token;
use crate::domain::{Email, OutboxMail, TokenPurpose, User};
use crate::store::StoreError;

use super::invitations::{lifetime, new_link, open_link, LinkRefusal, OpenLink};
use super::login::Browser;
use super::session::ActiveSession;
use super::{audit, AppState, ServiceError};

/// The purposes the confirmation page accepts.
pub const CONFIRMING: &[TokenPurpose] = &[TokenPurpose::VerifyEmail, TokenPurpose::ChangeEmail];

/// What [`request_change`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum EmailChange {
    /// A confirmation link went to the new address (or, if that address belongs to another
    /// account, a notice to it: the answer is the same), and a notice to the old one.
    Sent,
    /// That is the account's address already, and it is verified.
    Unchanged,
    /// Not an e-mail address.
    Rejected(String),
}

/// The notice to an address that already belongs to an account (someone tried to register
/// it, or to move another account to it): nothing changed, and nobody learns on the page
/// that the address is taken.
pub(crate) fn address_in_use(
    state: &AppState,
    owner: &User,
    now: UnixTime,
) -> Result<OutboxMail, ServiceError> {
    let ctx = minijinja::context! { username => owner.username.as_str() };
    state
        .mailer
        .compose("address_in_use", owner.email.as_str(), ctx, now)
}

/// Starts a change of the signed-in user's address (the page needs a recent sign-in).
pub async fn request_change(
    state: &AppState,
    me: &ActiveSession,
    new: &str,
    browser: &Browser,
    now: UnixTime,
) -> Result<EmailChange, ServiceError> {
    let new = match Email::parse(new) {
        Ok(e) => e,
        Err(e) => return Ok(EmailChange::Rejected(e.reason)),
    };
    let user = &me.user;
    let same = new.as_str().eq_ignore_ascii_case(user.email.as_str());
    if same && user.email_verified {
        return Ok(EmailChange::Unchanged);
    }
    let store = state.store.as_ref();
    if !same {
        // The old address hears of it first: no link goes out without the notice.
        let what = format!(
            "Someone signed in to your account asked to change its e-mail address to {}. \
             Nothing changes unless the change is confirmed from that address.",
            new.as_str()
        );
        let ctx = minijinja::context! { username => user.username.as_str(), what };
        let notice = state
            .mailer
            .compose("security_notice", user.email.as_str(), ctx, now)?;
        store.enqueue_mail(&notice).await?;
    }
    match store.find_user_by_address(new.as_str()).await? {
        Some(owner) if owner.id != user.id => {
            store
                .enqueue_mail(&address_in_use(state, &owner, now)?)
                .await?;
        }
        _ => {
            let ttl = state.settings.accounts.email_link_secs;
            let (token, stored) = new_link(TokenPurpose::ChangeEmail, user, Some(&new), ttl, now)?;
            let ctx = minijinja::context! {
                username => user.username.as_str(),
                address => new.as_str(),
                link => state.mailer.link("/verify-email", &token),
                valid_for => lifetime(ttl),
            };
            let mail = state
                .mailer
                .compose("change_email", new.as_str(), ctx, now)?;
            // Voids an earlier change link, stores this one and queues its mail, at once.
            store.issue_account_token(&stored, &mail).await?;
        }
    }
    let user_id = user.id.as_str();
    audit::record(
        store,
        "email_change_requested",
        Some(user_id),
        &browser.info,
        "",
        now,
    )
    .await?;
    state.mailer.wake();
    Ok(EmailChange::Sent)
}

/// What [`confirm`] did.
#[derive(Debug)]
pub enum AddressConfirmation {
    /// The address is the user's, verified.
    Confirmed {
        /// The confirmed address.
        address: String,
        /// It replaced another address (an e-mail change).
        changed: bool,
    },
    /// The link cannot be used; nothing changed.
    Refused(LinkRefusal),
    /// The new address belongs to another account by now; nothing changed.
    Taken,
}

/// The link as the confirmation page shows it, before anything changes.
pub async fn view(
    state: &AppState,
    token: &str,
    now: UnixTime,
) -> Result<Result<OpenLink, LinkRefusal>, ServiceError> {
    open_link(state.store.as_ref(), token, CONFIRMING, now).await
}

/// Confirms an address from its link (a POST from the page the link opens: a mail
/// scanner that fetches the link changes nothing).
pub async fn confirm(
    state: &AppState,
    token: &str,
    browser: &Browser,
    now: UnixTime,
) -> Result<AddressConfirmation, ServiceError> {
    let store = state.store.as_ref();
    let link = match view(state, token, now).await? {
        Ok(link) => link,
        Err(refusal) => return Ok(AddressConfirmation::Refused(refusal)),
    };
    let purpose = link.token.purpose;
    let address = link.token.email.clone().unwrap_or_default();
    if let Some(owner) = store.find_user_by_address(&address).await? {
        if owner.id != link.user.id {
            return Ok(AddressConfirmation::Taken);
        }
    }
    match store
        .confirm_address(&hash_token(token), purpose, now)
        .await
    {
        Ok(true) => {}
        Ok(false) => return Ok(AddressConfirmation::Refused(LinkRefusal::Used)),
        // Taken between the check above and the update: the unique index decided.
        Err(StoreError::Conflict(_)) => return Ok(AddressConfirmation::Taken),
        Err(e) => return Err(e.into()),
    }
    let changed = purpose == TokenPurpose::ChangeEmail
        && !address.eq_ignore_ascii_case(link.user.email.as_str());
    let kind = if changed {
        "email_changed"
    } else {
        "email_verified"
    };
    let user_id = link.user.id.as_str();
    audit::record(store, kind, Some(user_id), &browser.info, "", now).await?;
    Ok(AddressConfirmation::Confirmed { address, changed })
}
