//! Newtypes with parse constructors. Every protocol or admin input becomes one of these
//! before it reaches a service; a value of these types is valid by construction.

mod client;
mod factor;
mod flow;
mod key;
mod mail;
mod recovery;
mod scope;
mod secret;
mod user;

pub use client::{
    is_loopback_url, Client, ClientId, ClientKind, GrantType, RedirectUri, ResourceUri,
};
pub use factor::{
    AuditFilter, CeremonyRecord, FactorKind, FactorUse, PasskeyRecord, PasskeyUse,
    PendingLoginRecord, ThrottleBucket, TotpCredential,
};
pub use flow::{AuditEvent, AuthorizationCode, Grant, RefreshToken, Session};
pub use key::{KeyState, SigningKeyRecord};
pub use mail::{AccountToken, OutboxMail, TokenPurpose};
pub use recovery::{CancelledBy, MfaRecovery, RecoveryState, RecoveryVia};
pub use scope::Scope;
pub use secret::{Password, SecretString};
pub use user::{CredentialsEpoch, Email, Role, User, UserId, Username};

/// Why an input was refused. The message names the field and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ParseError {
    /// The input's name, as the user would know it.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl ParseError {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}
