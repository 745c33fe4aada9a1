//! Minting access tokens (RFC 9068) and ID tokens (OIDC Core §2), signed by the current
//! key through the allowlist. The `jti` of a token issued under a grant names the grant
//! (`g.<grant>.<random>`), so revoking the grant revokes its access tokens too.

use crate::clock::UnixTime;
use crate::crypto::token::random_token;
use crate::domain::{Client, Scope, User};
use crate::oidc::{access_token_claims, id_token_claims, AccessTokenInput, IdTokenInput};

use super::session::secs;
use super::{AppState, ServiceError};

/// RFC 9068 §2.1: the `typ` of a JWT access token.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// A signed access token and its lifetime.
pub struct AccessToken {
    /// The JWS.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: i64,
}

/// Everything an access token says.
pub struct AccessTokenSpec<'a> {
    /// The client it is issued to.
    pub client: &'a Client,
    /// The user, for user tokens; `None` for client credentials.
    pub user: Option<&'a User>,
    /// The grant it belongs to, for user tokens.
    pub grant_id: Option<&'a str>,
    /// Scope.
    pub scope: &'a Scope,
    /// `aud`.
    pub audience: Vec<String>,
    /// When the user authenticated.
    pub auth_time: Option<UnixTime>,
    /// The browser session.
    pub sid: Option<&'a str>,
}

/// The grant a `jti` names, if it was issued under one.
pub fn grant_of_jti(jti: &str) -> Option<&str> {
    jti.strip_prefix("g.")
        .and_then(|rest| rest.split_once('.'))
        .map(|(grant, _)| grant)
}

/// The lifetime of `client`'s access tokens, in seconds: its own, or the default.
pub fn access_token_ttl(state: &AppState, client: &Client) -> i64 {
    client
        .access_token_ttl
        .unwrap_or_else(|| secs(state.settings.tokens.access_token_ttl_secs))
}

/// Signs an access token.
pub fn access_token(
    state: &AppState,
    spec: AccessTokenSpec<'_>,
    now: UnixTime,
) -> Result<AccessToken, ServiceError> {
    let ttl = access_token_ttl(state, spec.client);
    let random = random_token()?;
    let jti = match spec.grant_id {
        Some(g) => format!("g.{g}.{random}"),
        None => format!("c.{random}"),
    };
    let claims = access_token_claims(AccessTokenInput {
        issuer: &state.settings.issuer,
        user: spec.user,
        client_id: &spec.client.id,
        audience: spec.audience,
        scope: spec.scope,
        jti: &jti,
        now,
        ttl,
        auth_time: spec.auth_time,
        sid: spec.sid,
    });
    let token = state.keys.sign(ACCESS_TOKEN_TYP, &claims)?;
    Ok(AccessToken {
        token,
        expires_in: ttl,
    })
}

/// What an ID token says beyond the user and client.
pub struct IdTokenSpec<'a> {
    /// The user.
    pub user: &'a User,
    /// The client (`aud`).
    pub client: &'a Client,
    /// Granted scope (decides the profile and email claims).
    pub scope: &'a Scope,
    /// When the user authenticated.
    pub auth_time: UnixTime,
    /// The authorization request's nonce (absent on refresh, OIDC Core §12.2).
    pub nonce: Option<&'a str>,
    /// The access token issued with it, for `at_hash`.
    pub access_token: &'a str,
    /// Authentication methods.
    pub amr: &'a [String],
    /// The browser session.
    pub sid: &'a str,
}

/// Signs an ID token.
pub fn id_token(
    state: &AppState,
    spec: IdTokenSpec<'_>,
    now: UnixTime,
) -> Result<String, ServiceError> {
    let claims = id_token_claims(IdTokenInput {
        issuer: &state.settings.issuer,
        user: spec.user,
        client_id: &spec.client.id,
        scope: spec.scope,
        now,
        ttl: secs(state.settings.tokens.id_token_ttl_secs),
        auth_time: spec.auth_time,
        nonce: spec.nonce,
        access_token: Some(spec.access_token),
        amr: spec.amr,
        sid: Some(spec.sid),
    });
    Ok(state.keys.sign("JWT", &claims)?)
}

#[cfg(test)]
mod tests {
    use super::grant_of_jti;

    #[test]
    fn jti_names_its_grant() {
        assert_eq!(grant_of_jti("g.abc123.xyz"), Some("abc123"));
        assert_eq!(grant_of_jti("c.xyz"), None);
        assert_eq!(grant_of_jti("g.nodot"), None);
        assert_eq!(grant_of_jti("random"), None);
    }
}
