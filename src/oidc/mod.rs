//! Pure OAuth 2.0 / OpenID Connect protocol rules: no async, no I/O, no clock reads.
//! Time comes in as `now: UnixTime`; randomness comes in as arguments.

mod authorize;
mod client_auth;
mod error;
mod params;
mod pkce;
mod serde_domain;
#[cfg(test)]
mod test_support;

pub use authorize::{
    check_client_and_redirect, check_request, consent_covers, decide, AuthorizationRequest,
    ConsentState, Decision, PageError, Prompt, RedirectError, SessionView, MAX_LOGIN_HINT_BYTES,
    MAX_NONCE_BYTES, MAX_STATE_BYTES,
};
pub use client_auth::{authenticate, presented_credentials, ClientAuthError, PresentedCredentials};
pub use error::{ErrorCode, OAuthError};
pub use params::{Params, MAX_PARAMS, MAX_VALUE_BYTES};
pub use pkce::{verify_code_verifier, CodeChallenge};
