//! Latchkey: a standalone OpenID Connect / OAuth 2.0 identity provider.
//!
//! Dependencies point one way: `http -> service -> {oidc, crypto, store traits} -> domain`.
//! `oidc/` and `domain/` are pure: no actix, no sqlx, no async (checked in `.ci/run`).

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo)
)]

pub mod authn;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod oidc;
pub mod service;
pub mod startup;
pub mod store;
pub mod telemetry;
