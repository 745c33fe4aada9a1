//! The thin actix layer: extract, call a service, map the result. Each area registers its
//! routes beside its handlers; `error.rs` is the only place errors become HTTP.

pub mod error;
mod health;
mod middleware;
mod wellknown;

use std::sync::Arc;

use actix_web::web;

use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::password::PasswordHasher;
use crate::crypto::token::SecretHasher;
use crate::service::KeyRing;
use crate::store::Store;

pub use middleware::{log_requests, security_headers};

/// Everything a handler may use, shared by every worker.
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
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    wellknown::configure(cfg);
}
