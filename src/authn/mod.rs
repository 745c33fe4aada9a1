//! Authentication rules that are not OAuth: brute-force throttling of logins.
//! Pure: no I/O, time comes in as `now`.

pub mod throttle;

pub use throttle::Throttle;
