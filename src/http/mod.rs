//! The thin actix layer: extract, call a service, map the result. Each area registers its
//! routes beside its handlers; `error.rs` is the only place errors become HTTP.

pub mod error;
mod health;
mod middleware;
mod wellknown;

use actix_web::web;


pub use middleware::{log_requests, security_headers};

pub use crate::service::AppState;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    wellknown::configure(cfg);
}
