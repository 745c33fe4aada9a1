//! Authentication rules that are not OAuth: the login state machine, MFA recovery, the
//! throttle policy, TOTP, backup codes, and how a session's device is described. Pure: no
//! I/O, time comes in as `now`.

pub mod backup_codes;
pub mod login;
pub mod recovery;
pub mod throttle;
pub mod totp;
pub mod user_agent;
