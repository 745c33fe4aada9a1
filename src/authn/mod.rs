//! Authentication rules that are not OAuth: brute-force throttling of logins, TOTP.
//! Pure: no I/O, time comes in as `now`.

pub mod throttle;
pub mod totp;

pub use throttle::Throttle;
