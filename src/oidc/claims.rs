//! Claims for JWT access tokens (RFC 9068), ID tokens (OIDC Core §2) and UserInfo
//! (OIDC Core §5). Builders take every input as an argument: no clock, no randomness.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::clock::UnixTime;
use crate::domain::{ClientId, Scope, User};

/// The claims of a JWT access token (RFC 9068 §2.2). Signed with header `typ: at+jwt`
/// (RFC 9068 §2.1) by the crypto module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// Issuer identifier.
    pub iss: String,
    /// The user id, or for `client_credentials` the client id (RFC 9068 §2.2: "In cases of
    /// access tokens obtained through grants where no resource owner is involved, such as the
    /// client credentials grant, the value of sub SHOULD correspond to an identifier the
    /// authorization server uses to indicate the client application").
    pub sub: String,
    /// Audiences. Always serialised as an array (RFC 7519 §4.1.3 allows either form; one
    /// form keeps resource servers simple); a single string is accepted when reading.
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    /// Expiry.
    pub exp: UnixTime,
    /// Issued at.
    pub iat: UnixTime,
    /// Not before; omitted by the builder (RFC 9068 does not require it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<UnixTime>,
    /// Unique token id (RFC 9068 §2.2), used for revocation and introspection.
    pub jti: String,
    /// The client the token was issued to (RFC 8693 §4.3).
    pub client_id: String,
    /// Space-delimited granted scope (RFC 9068 §2.2.3).
    pub scope: String,
    /// When the user authenticated (RFC 9068 §2.2.1); absent without a user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<UnixTime>,
    /// The login session id, for logout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The user's roles when the `roles` scope was granted (RFC 9068 §2.2.3.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
}

/// The claims of an ID token (OIDC Core §2, §3.1.3.6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    /// Issuer identifier.
    pub iss: String,
    /// The user id.
    pub sub: String,
    /// The client id: one audience, serialised as a string (OIDC Core §2 allows it).
    pub aud: String,
    /// Expiry.
    pub exp: UnixTime,
    /// Issued at.
    pub iat: UnixTime,
    /// When the user authenticated; always included (required whenever `max_age` was used).
    pub auth_time: UnixTime,
    /// The authorization request's nonce, unchanged (OIDC Core §3.1.2.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Access-token hash (OIDC Core §3.1.3.6), see [`at_hash`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    /// Authentication methods (RFC 8176), e.g. `pwd`, `otp`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// Authentication context class (OIDC Core §2), derived from `amr`
    /// (see [`super::acr`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// Login session id (OIDC Front-/Back-Channel Logout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Profile, email and roles claims allowed by the scope (see [`user_claims`]).
    #[serde(flatten)]
    pub user: Map<String, Value>,
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// OIDC Core §3.1.3.6: "Its value is the base64url encoding of the left-most half of the
/// hash of the octets of the ASCII representation of the access_token value, where the hash
/// algorithm used is the hash algorithm used in the alg Header Parameter of the ID Token's
/// JOSE Header." Every allowlisted algorithm (RS256, PS256, ES256) uses SHA-256.
pub fn at_hash(access_token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, access_token.as_bytes());
    let bytes = digest.as_ref();
    URL_SAFE_NO_PAD.encode(bytes.get(..bytes.len() / 2).unwrap_or(bytes))
}

/// The user claims the scope allows (OIDC Core §5.4): `profile` gives `preferred_username`
/// and `updated_at`; `email` gives `email` and `email_verified`; `roles` gives `roles`.
/// `sub` is not included (see [`userinfo_claims`]).
pub fn user_claims(user: &User, scope: &Scope) -> Map<String, Value> {
    let mut claims = Map::new();
    if scope.contains("profile") {
        claims.insert("preferred_username".into(), user.username.as_str().into());
        claims.insert("updated_at".into(), user.updated_at.into());
    }
    if scope.contains("email") {
        claims.insert("email".into(), user.email.as_str().into());
        claims.insert("email_verified".into(), user.email_verified.into());
    }
    if scope.contains("roles") {
        claims.insert("roles".into(), role_names(user).into());
    }
    claims
}

/// The UserInfo response body: `sub` plus [`user_claims`] (OIDC Core §5.3.2: "The sub
/// (subject) Claim MUST always be returned in the UserInfo Response").
pub fn userinfo_claims(user: &User, scope: &Scope) -> Map<String, Value> {
    let mut claims = user_claims(user, scope);
    claims.insert("sub".into(), user.id.as_str().into());
    claims
}

fn role_names(user: &User) -> Vec<String> {
    user.roles.iter().map(|r| r.as_str().to_owned()).collect()
}

/// Everything an access token is built from.
#[derive(Debug, Clone)]
pub struct AccessTokenInput<'a> {
    /// Issuer identifier.
    pub issuer: &'a str,
    /// The resource owner; `None` for `client_credentials`.
    pub user: Option<&'a User>,
    /// The client the token is for.
    pub client_id: &'a ClientId,
    /// From [`super::choose_audience`].
    pub audience: Vec<String>,
    /// The granted scope.
    pub scope: &'a Scope,
    /// A fresh random token id.
    pub jti: &'a str,
    /// The current time.
    pub now: UnixTime,
    /// Lifetime in seconds.
    pub ttl: i64,
    /// When the user authenticated.
    pub auth_time: Option<UnixTime>,
    /// Login session id.
    pub sid: Option<&'a str>,
}

/// Builds access-token claims (RFC 9068 §2.2).
pub fn access_token_claims(input: AccessTokenInput<'_>) -> AccessTokenClaims {
    let sub = match input.user {
        Some(user) => user.id.as_str().to_owned(),
        None => input.client_id.as_str().to_owned(),
    };
    let roles = input
        .user
        .filter(|_| input.scope.contains("roles"))
        .map(role_names);
    AccessTokenClaims {
        iss: input.issuer.to_owned(),
        sub,
        aud: input.audience,
        exp: input.now.saturating_add(input.ttl),
        iat: input.now,
        nbf: None,
        jti: input.jti.to_owned(),
        client_id: input.client_id.as_str().to_owned(),
        scope: input.scope.to_string(),
        auth_time: input.user.and(input.auth_time),
        sid: input.sid.map(str::to_owned),
        roles,
    }
}

/// Everything an ID token is built from.
#[derive(Debug, Clone)]
pub struct IdTokenInput<'a> {
    /// Issuer identifier.
    pub issuer: &'a str,
    /// The authenticated user.
    pub user: &'a User,
    /// The client, the only audience.
    pub client_id: &'a ClientId,
    /// The granted scope, selecting the user claims.
    pub scope: &'a Scope,
    /// The current time.
    pub now: UnixTime,
    /// Lifetime in seconds.
    pub ttl: i64,
    /// When the user authenticated.
    pub auth_time: UnixTime,
    /// The authorization request's nonce.
    pub nonce: Option<&'a str>,
    /// The access token issued alongside, for `at_hash`.
    pub access_token: Option<&'a str>,
    /// Authentication methods (RFC 8176).
    pub amr: &'a [String],
    /// Login session id.
    pub sid: Option<&'a str>,
}

/// Builds ID-token claims (OIDC Core §2, §3.1.3.6).
pub fn id_token_claims(input: IdTokenInput<'_>) -> IdTokenClaims {
    IdTokenClaims {
        iss: input.issuer.to_owned(),
        sub: input.user.id.as_str().to_owned(),
        aud: input.client_id.as_str().to_owned(),
        exp: input.now.saturating_add(input.ttl),
        iat: input.now,
        auth_time: input.auth_time,
        nonce: input.nonce.map(str::to_owned),
        at_hash: input.access_token.map(at_hash),
        amr: input.amr.to_vec(),
        acr: Some(super::acr::acr_of_amr(input.amr).to_owned()),
        sid: input.sid.map(str::to_owned),
        user: user_claims(input.user, input.scope),
    }
}

#[cfg(test)]
mod tests;
