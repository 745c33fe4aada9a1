//! The thin actix layer: extract, call a service, map the result. Each area registers its
//! routes beside its handlers; `error.rs` is the only place errors become HTTP.

mod account;
mod account_passkeys;
mod authorize;
mod cookies;
mod csp;
pub mod error;
mod extract;
mod forms;
mod health;
mod invitations;
mod login;
mod logout;
mod middleware;
mod recovery;
mod registration;
mod reset;
mod resource;
mod token;
mod ui;
mod wellknown;

use actix_web::web;

pub use middleware::{log_requests, security_headers};

pub use crate::service::AppState;

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1): for every response
/// that carries a token or says something about one.
pub(crate) fn no_store(mut res: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    res.insert_header(("Cache-Control", "no-store"))
        .insert_header(("Pragma", "no-cache"));
    res
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    wellknown::configure(cfg);
    authorize::configure(cfg);
    login::configure(cfg);
    account::configure(cfg);
    account_passkeys::configure(cfg);
    token::configure(cfg);
    resource::configure(cfg);
    logout::configure(cfg);
    ui::configure(cfg);
    reset::configure(cfg);
    invitations::configure(cfg);
    registration::configure(cfg);
    recovery::configure(cfg);
}
