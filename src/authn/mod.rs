//! Authentication rules that are not OAuth: the login state machine and the throttle
//! policy. Pure: no I/O, time comes in as `now`.

pub mod login;
pub mod throttle;
