//! Use cases. Services take the store traits, a clock and the key ring; they never import
//! actix or sqlx, and never produce HTTP status codes.

pub mod account;
pub mod account_passkeys;
pub mod admin;
pub mod audit;
pub mod authorize;
pub mod clients;
pub mod email_address;
pub mod housekeeping;
pub mod invitations;
pub mod keys;
pub mod login;
pub mod logout;
pub mod mail;
pub mod mfa;
pub mod notices;
pub mod passkeys;
pub mod recovery;
pub mod registration;
pub mod reset;
pub mod resource;
pub mod session;
pub mod token;
mod tokens;

use std::sync::Arc;

pub use keys::{Document, KeyRing, Published};

use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::password::PasswordHasher;
use crate::crypto::token::SecretHasher;
use crate::crypto::CryptoError;
use crate::domain::ParseError;
use crate::store::{Store, StoreError};

/// Everything a use case may need, shared by every worker.
pub struct AppState {
    /// Validated settings.
    pub settings: Arc<Settings>,
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Signing keys and published documents.
    pub keys: Arc<KeyRing>,
    /// The clock; read once per request.
    pub clock: Arc<dyn Clock>,
    /// argon2id, bounded.
    pub passwords: Arc<PasswordHasher>,
    /// Keyed hash for client secrets.
    pub secrets: Arc<SecretHasher>,
    /// Registered clients, cached for the token endpoint.
    pub clients: Arc<clients::ClientCache>,
    /// Sign-in throttling, shared through the store.
    pub login_throttle: login::throttle::LoginThrottle,
    /// Known-device cookies.
    pub devices: login::device::KnownDevices,
    /// TOTP secrets and backup codes.
    pub factors: mfa::Factors,
    /// The WebAuthn relying party.
    pub passkeys: passkeys::Passkeys,
    /// Keyed hash for the account pages' CSRF tokens (bound to the session).
    pub account_csrf: SecretHasher,
    /// Seals the successor of a spent refresh token for clients with a refresh grace
    /// window (a sub-key of the key-encryption key).
    pub refresh_successors: crate::crypto::kek::MasterKey,
    /// Renders and seals outgoing mail; wakes the outbox worker.
    pub mailer: mail::Mailer,
}

/// Why a use case failed. `http::error` and the CLI map these, each in one place.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// An input did not parse.
    #[error("{0}")]
    Invalid(#[from] ParseError),
    /// The thing named does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with stored state (a name is taken, a race was lost).
    #[error("{0}")]
    Conflict(String),
    /// The operation is refused by a safety rule; the message says how to proceed.
    #[error("{0}")]
    Refused(String),
    /// Storage failed.
    #[error("storage failed")]
    Store(#[source] StoreError),
    /// A cryptographic operation failed.
    #[error("cryptographic operation failed")]
    Crypto(#[from] CryptoError),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => Self::Conflict(m),
            other => Self::Store(other),
        }
    }
}
