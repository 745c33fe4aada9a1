//! A stored MFA recovery request. The rules that move it from state to state live in
//! `authn::recovery`; this is the record the store reads and writes.

use super::ParseError;
use crate::clock::UnixTime;

/// How the user proved who they are when asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryVia {
    /// The password, on the second-factor page of a sign-in (then confirmed by e-mail).
    Password,
    /// A password-reset link (the mailbox is already proven: confirmed at once).
    PasswordReset,
}

impl RecoveryVia {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::PasswordReset => "password_reset",
        }
    }

    /// Parses a stored name.
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        match value {
            "password" => Ok(Self::Password),
            "password_reset" => Ok(Self::PasswordReset),
            _ => Err(ParseError::new("via", "unknown recovery request path")),
        }
    }
}

/// Who or what cancelled a recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelledBy {
    /// The cancel link of a notice mail.
    MailLink,
    /// The account page's pending-recovery box.
    AccountPage,
    /// The user signed in with a second factor, so they still have one.
    SecondFactor,
    /// A newer request replaced this unconfirmed one.
    Superseded,
}

impl CancelledBy {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MailLink => "mail_link",
            Self::AccountPage => "account_page",
            Self::SecondFactor => "second_factor",
            Self::Superseded => "superseded",
        }
    }

    /// Parses a stored name.
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        Ok(match value {
            "mail_link" => Self::MailLink,
            "account_page" => Self::AccountPage,
            "second_factor" => Self::SecondFactor,
            "superseded" => Self::Superseded,
            _ => return Err(ParseError::new("cancelled_by", "unknown cancellation")),
        })
    }
}

/// Where a recovery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryState {
    /// Asked for with the password; awaiting confirmation from the mailbox.
    Requested,
    /// Confirmed; takes effect at `effective_at` unless cancelled.
    Waiting {
        /// When the factors go.
        effective_at: UnixTime,
        /// When the reminder mail was written, if it was.
        reminded_at: Option<UnixTime>,
    },
    /// Took effect: the factors were removed.
    Effective {
        /// When.
        at: UnixTime,
    },
    /// Cancelled before it took effect.
    Cancelled {
        /// When.
        at: UnixTime,
        /// By whom or what.
        by: CancelledBy,
    },
}

impl RecoveryState {
    /// The stored name of the state.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Waiting { .. } => "waiting",
            Self::Effective { .. } => "effective",
            Self::Cancelled { .. } => "cancelled",
        }
    }

    /// Requested or waiting: nothing has closed it yet.
    pub fn is_open(&self) -> bool {
        matches!(self, Self::Requested | Self::Waiting { .. })
    }
}

/// An MFA recovery request, as stored (table `mfa_recoveries`; one open per user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaRecovery {
    /// Random id.
    pub id: String,
    /// Whose factors it removes.
    pub user_id: String,
    /// How it was asked for.
    pub via: RecoveryVia,
    /// When it was asked for.
    pub requested_at: UnixTime,
    /// A `Requested` recovery lapses at this time if not confirmed.
    pub confirm_by: UnixTime,
    /// When it was confirmed.
    pub confirmed_at: Option<UnixTime>,
    /// Where it stands.
    pub state: RecoveryState,
}
