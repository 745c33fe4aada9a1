//! Pure OAuth 2.0 / OpenID Connect protocol rules: no async, no I/O, no clock reads.
//! Time comes in as `now: UnixTime`; randomness comes in as arguments.

pub mod acr;
mod authorize;
mod claims;
mod client_auth;
mod discovery;
mod error;
mod grants;
mod introspection;
mod logout;
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
pub use claims::{
    access_token_claims, at_hash, id_token_claims, user_claims, userinfo_claims, AccessTokenClaims,
    AccessTokenInput, IdTokenClaims, IdTokenInput,
};
pub use client_auth::{authenticate, presented_credentials, ClientAuthError, PresentedCredentials};
pub use discovery::{
    authorization_server_metadata, openid_configuration, CLAIMS_SUPPORTED, PROMPT_VALUES_SUPPORTED,
    SCOPES_SUPPORTED,
};
pub use error::{ErrorCode, OAuthError};
pub use grants::{
    check_code_redemption, check_family_alive, check_grant_allowed, check_resource_within_grant,
    choose_audience, client_credentials_scope, family_bounds, issues_refresh_token, narrow_scope,
    parse_token_request, CodeGrantView, FamilyBounds, FamilyView, TokenRequest, CODE_TTL,
};
pub use introspection::{
    active_response, inactive_response, issued_to_live_client, may_introspect,
};
pub use logout::{hint_matches_client, post_logout_redirect};
pub use params::{Params, MAX_PARAMS, MAX_VALUE_BYTES};
pub use pkce::{verify_code_verifier, CodeChallenge};
