//! Pure OAuth 2.0 / OpenID Connect protocol rules: no async, no I/O, no clock reads.
//! Time comes in as `now: UnixTime`; randomness comes in as arguments.

mod error;
mod params;
mod pkce;

pub use error::{ErrorCode, OAuthError};
pub use params::{Params, MAX_PARAMS, MAX_VALUE_BYTES};
pub use pkce::{verify_code_verifier, CodeChallenge};
