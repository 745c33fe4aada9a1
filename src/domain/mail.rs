//! Stored mail and the single-use tokens that mailed links carry.

use std::fmt;

use super::ParseError;
use crate::clock::UnixTime;

/// A message in the outbox, as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct OutboxMail {
    /// Random id.
    pub id: String,
    /// Which template made it (`password_reset`, `security_notice`, ...).
    pub kind: String,
    /// The address it goes to.
    pub recipient: String,
    /// Subject line (never holds a secret).
    pub subject: String,
    /// The text and HTML bodies, sealed (they carry links with tokens); `None` once the
    /// message was delivered or given up.
    pub body_sealed: Option<Vec<u8>>,
    /// When it was written.
    pub created_at: UnixTime,
    /// Not to be tried before this time.
    pub next_attempt_at: UnixTime,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// A node is delivering it until this time.
    pub locked_until: Option<UnixTime>,
    /// Delivered.
    pub sent_at: Option<UnixTime>,
    /// Given up.
    pub failed_at: Option<UnixTime>,
    /// What the last failed attempt said.
    pub last_error: Option<String>,
}

impl OutboxMail {
    /// A new message, due at once.
    pub fn new(
        kind: &str,
        recipient: &str,
        subject: &str,
        body_sealed: Vec<u8>,
        now: UnixTime,
    ) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            kind: kind.to_owned(),
            recipient: recipient.to_owned(),
            subject: subject.to_owned(),
            body_sealed: Some(body_sealed),
            created_at: now,
            next_attempt_at: now,
            attempts: 0,
            locked_until: None,
            sent_at: None,
            failed_at: None,
            last_error: None,
        }
    }
}

impl fmt::Debug for OutboxMail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboxMail")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("recipient", &self.recipient)
            .field("subject", &self.subject)
            .field("attempts", &self.attempts)
            .field("sent_at", &self.sent_at)
            .field("failed_at", &self.failed_at)
            .finish_non_exhaustive()
    }
}

/// What a mailed link is for. A token of one purpose is never accepted for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenPurpose {
    /// Set a new password (forgot password).
    PasswordReset,
    /// Set the first password of an invited account.
    Invitation,
    /// Confirm the account's address (invitation, self-registration).
    VerifyEmail,
    /// Confirm a new address (the address is on the token).
    ChangeEmail,
    /// Confirm an MFA recovery request.
    ConfirmMfaRecovery,
    /// Cancel a pending MFA recovery.
    CancelMfaRecovery,
}

impl TokenPurpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PasswordReset => "password_reset",
            Self::Invitation => "invitation",
            Self::VerifyEmail => "verify_email",
            Self::ChangeEmail => "change_email",
            Self::ConfirmMfaRecovery => "confirm_mfa_recovery",
            Self::CancelMfaRecovery => "cancel_mfa_recovery",
        }
    }

    /// Parses a stored name.
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        Ok(match value {
            "password_reset" => Self::PasswordReset,
            "invitation" => Self::Invitation,
            "verify_email" => Self::VerifyEmail,
            "change_email" => Self::ChangeEmail,
            "confirm_mfa_recovery" => Self::ConfirmMfaRecovery,
            "cancel_mfa_recovery" => Self::CancelMfaRecovery,
            _ => return Err(ParseError::new("purpose", "unknown token purpose")),
        })
    }
}

/// A mailed link's token, as stored: only its SHA-256, single use, bound to the user's
/// credentials epoch at issue (a password change voids it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountToken {
    /// SHA-256 of the token in the link.
    pub token_hash: Vec<u8>,
    /// What it is for.
    pub purpose: TokenPurpose,
    /// Whose it is.
    pub user_id: String,
    /// The address being confirmed (`VerifyEmail`, `ChangeEmail`).
    pub email: Option<String>,
    /// The user's credentials epoch when it was issued.
    pub credentials_epoch: i64,
    /// Issued at.
    pub created_at: UnixTime,
    /// Void from this time on.
    pub expires_at: UnixTime,
    /// Spent at.
    pub used_at: Option<UnixTime>,
}
