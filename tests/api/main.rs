//! The one integration-test binary. Every test gets its own app on port 0 and its own
//! database: a fresh SQLite file, or a fresh schema in the PostgreSQL database named by
//! LATCHKEY_TEST_DATABASE_URL (see helpers.rs).

mod accounts_support;
mod hardening;
mod helpers;
mod oauth;
mod reset_support;
mod smtp;

mod abuse;
mod account_page;
mod browser;
mod cli;
mod config_errors;
mod conformance;
mod csp;
mod durability;
mod email_verification;
mod flows_code;
mod flows_concurrency;
mod flows_logout;
mod flows_sessions;
mod flows_tokens;
mod fuzz_corpus;
mod invitations;
mod key_binding;
mod keys;
mod logs;
mod mail_delivery;
mod mail_notices;
mod mail_outbox;
mod mfa;
mod mfa_recovery;
mod passkeys;
mod password_reset;
mod password_reset_factors;
mod refresh_grace;
mod soft_authenticator;
mod store_accounts;
mod store_code_batch;
mod store_contract;
mod store_flows;
mod store_passkeys;
mod store_reads;
mod store_rotation;
mod store_spend;
mod store_spend_batch;
mod store_upkeep;
mod throttle;
mod two_nodes;
mod wellknown;
