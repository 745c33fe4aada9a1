//! Authentication rules that are not OAuth: brute-force throttling of logins, TOTP,
//! backup codes, session labels. Pure: no I/O apart from OS randomness for new secrets
//! and codes; time comes in as `now`.

pub mod backup_codes;
pub mod throttle;
pub mod totp;
pub mod user_agent;

pub use throttle::Throttle;
