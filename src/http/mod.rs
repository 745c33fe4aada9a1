//! The thin actix layer: extract, call a service, map the result. Each area registers its
//! routes beside its handlers; `error.rs` is the only place errors become HTTP.

mod authorize;
mod cookies;
pub mod error;
mod forms;
mod health;
mod logout;
mod middleware;
mod resource;
mod token;
mod ui;
mod wellknown;

use actix_web::web;

pub use middleware::{log_requests, security_headers};

pub use crate::service::AppState;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    wellknown::configure(cfg);
    authorize::configure(cfg);
    token::configure(cfg);
    resource::configure(cfg);
    logout::configure(cfg);
    ui::configure(cfg);
}
