//! Security notices by mail (issue 8, item 6): the account's owner hears of every change to
//! how it signs in (password, TOTP, backup codes, passkeys) and of a sign-in from a device
//! not seen before, so a takeover cannot go unnoticed.
//!
//! Each notice is written to the outbox right after the change committed, not inside its
//! transaction: the changes are made by store methods shared with flows that mail nothing
//! (and by other aggregates' stores), and a notice carries no token. If the process died
//! between the two writes the change would stand without its notice; the audit trail
//! still records it (each change is audited by its use case). Once in the outbox, the notice survives crashes and SMTP outages.

use crate::authn::user_agent;
use crate::clock::UnixTime;
use crate::domain::User;

use super::account::when;
use super::session::ClientInfo;
use super::{AppState, ServiceError};

/// What happened to the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The password was changed on the account page.
    PasswordChanged,
    /// TOTP was turned on.
    TotpAdded,
    /// TOTP (and its backup codes) was turned off.
    TotpRemoved,
    /// A new set of backup codes replaced the old one.
    BackupCodesRegenerated,
    /// A passkey was registered, under this name.
    PasskeyAdded(String),
    /// A passkey was deleted.
    PasskeyRemoved,
    /// A password or passkey sign-in completed in a browser without a valid known-device
    /// cookie for this account.
    NewDeviceSignIn,
}

impl Notice {
    /// The short name used in the audit trail.
    pub fn name(&self) -> &'static str {
        match self {
            Self::PasswordChanged => "password_changed",
            Self::TotpAdded => "totp_added",
            Self::TotpRemoved => "totp_removed",
            Self::BackupCodesRegenerated => "backup_codes_regenerated",
            Self::PasskeyAdded(_) => "passkey_added",
            Self::PasskeyRemoved => "passkey_removed",
            Self::NewDeviceSignIn => "new_device_sign_in",
        }
    }

    /// The sentence the `security_notice` mail carries.
    fn sentence(&self) -> String {
        match self {
            Self::PasswordChanged => "The password of your account was changed.".into(),
            Self::TotpAdded => "An authenticator app (TOTP) was added to your account.".into(),
            Self::TotpRemoved => {
                "The authenticator app (TOTP) and its backup codes were removed from your account."
                    .into()
            }
            Self::BackupCodesRegenerated => {
                "New backup codes were generated for your account; the old ones no longer work."
                    .into()
            }
            Self::PasskeyAdded(name) => {
                format!("A passkey named \"{name}\" was added to your account.")
            }
            Self::PasskeyRemoved => "A passkey was removed from your account.".into(),
            Self::NewDeviceSignIn => "Someone signed in to your account.".into(),
        }
    }
}

/// Mails `notice` to `user`'s address through the outbox. `info` is the browser that made
/// the change; the new-device mail names it.
pub async fn send(
    state: &AppState,
    user: &User,
    notice: Notice,
    info: &ClientInfo,
    now: UnixTime,
) -> Result<(), ServiceError> {
    let ctx = minijinja::context! {
        username => user.username.as_str(),
        what => notice.sentence(),
        device => user_agent::describe(&info.user_agent),
        ip => info.ip.as_str(),
        at => when(now),
    };
    let kind = match notice {
        Notice::NewDeviceSignIn => "new_sign_in",
        _ => "security_notice",
    };
    let mail = state.mailer.compose(kind, user.email.as_str(), ctx, now)?;
    state.store.enqueue_mail(&mail).await?;
    state.mailer.wake();
    // The change itself is in the audit trail; the message is listed by `latchkey mail list`.
    tracing::info!(
        mail_id = %mail.id, notice = notice.name(), user_id = %user.id.as_str(),
        "security notice queued"
    );
    Ok(())
}

/// After a sign-in completed: the new-device notice, unless the browser proved (with a
/// valid known-device cookie, see `login::device`) that it signed in to this account
/// before.
pub async fn after_sign_in(
    state: &AppState,
    user: &User,
    device_cookie: Option<&str>,
    info: &ClientInfo,
    now: UnixTime,
) -> Result<(), ServiceError> {
    if state.devices.recognise(user, device_cookie, now).is_some() {
        return Ok(());
    }
    send(state, user, Notice::NewDeviceSignIn, info, now).await
}
