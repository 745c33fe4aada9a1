//! Token-endpoint rules (RFC 6749 §4.1.3, §4.4, §6; RFC 8707 §2; OIDC Core §11).

use std::fmt;

use super::{verify_code_verifier, CodeChallenge, OAuthError, Params};
use crate::clock::UnixTime;
use crate::domain::{Client, ClientId, GrantType, ResourceUri, Scope, SecretString, UserId};

/// Lifetime of an authorization code in seconds (RFC 6749 §4.1.2: "A maximum authorization
/// code lifetime of 10 minutes is RECOMMENDED"; RFC 9700 keeps codes short-lived).
pub const CODE_TTL: i64 = 60;

/// Scope tokens that only make sense with a user, never for `client_credentials`.
const USER_ONLY_SCOPES: [&str; 2] = ["openid", "offline_access"];

/// A parsed token request. `Debug` redacts the code, refresh token and code verifier.
#[derive(Clone, PartialEq, Eq)]
pub enum TokenRequest {
    /// RFC 6749 §4.1.3.
    AuthorizationCode {
        /// The authorization code.
        code: SecretString,
        /// Must repeat the authorization request's redirect URI.
        redirect_uri: Option<String>,
        /// The PKCE verifier (RFC 7636 §4.5).
        code_verifier: Option<SecretString>,
        /// The requested audience (RFC 8707 §2).
        resource: Option<String>,
    },
    /// RFC 6749 §6.
    RefreshToken {
        /// The refresh token.
        refresh_token: SecretString,
        /// An optional narrower scope.
        scope: Option<Scope>,
        /// The requested audience (RFC 8707 §2).
        resource: Option<String>,
    },
    /// RFC 6749 §4.4.2.
    ClientCredentials {
        /// The requested scope.
        scope: Option<Scope>,
        /// The requested audience (RFC 8707 §2).
        resource: Option<String>,
    },
}

impl TokenRequest {
    /// The grant this request uses.
    pub fn grant_type(&self) -> GrantType {
        match self {
            Self::AuthorizationCode { .. } => GrantType::AuthorizationCode,
            Self::RefreshToken { .. } => GrantType::RefreshToken,
            Self::ClientCredentials { .. } => GrantType::ClientCredentials,
        }
    }
}

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AuthorizationCode {
                redirect_uri,
                resource,
                ..
            } => f
                .debug_struct("AuthorizationCode")
                .field("code", &"[redacted]")
                .field("redirect_uri", redirect_uri)
                .field("code_verifier", &"[redacted]")
                .field("resource", resource)
                .finish(),
            Self::RefreshToken {
                scope, resource, ..
            } => f
                .debug_struct("RefreshToken")
                .field("refresh_token", &"[redacted]")
                .field("scope", scope)
                .field("resource", resource)
                .finish(),
            Self::ClientCredentials { scope, resource } => f
                .debug_struct("ClientCredentials")
                .field("scope", scope)
                .field("resource", resource)
                .finish(),
        }
    }
}

/// Parses a token request body (RFC 6749 §4.1.3, §4.4.2, §6).
pub fn parse_token_request(params: &Params) -> Result<TokenRequest, OAuthError> {
    let raw = params
        .get("grant_type")
        .ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
    let grant = GrantType::parse(raw)
        .map_err(|_| OAuthError::unsupported_grant_type("unsupported grant_type"))?;
    let resource = params.get("resource").map(str::to_owned);
    Ok(match grant {
        GrantType::AuthorizationCode => TokenRequest::AuthorizationCode {
            code: required_secret(params, "code")?,
            redirect_uri: params.get("redirect_uri").map(str::to_owned),
            code_verifier: params.get("code_verifier").map(SecretString::new),
            resource,
        },
        GrantType::RefreshToken => TokenRequest::RefreshToken {
            refresh_token: required_secret(params, "refresh_token")?,
            scope: optional_scope(params)?,
            resource,
        },
        GrantType::ClientCredentials => TokenRequest::ClientCredentials {
            scope: optional_scope(params)?,
            resource,
        },
    })
}

/// A required secret-bearing parameter; missing is `invalid_request` (RFC 6749 §5.2).
fn required_secret(params: &Params, name: &'static str) -> Result<SecretString, OAuthError> {
    params
        .get(name)
        .map(SecretString::new)
        .ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))
}

/// The optional `scope` parameter; malformed is `invalid_scope` (RFC 6749 §5.2).
fn optional_scope(params: &Params) -> Result<Option<Scope>, OAuthError> {
    params
        .get("scope")
        .map(|s| Scope::parse(s).map_err(|_| OAuthError::invalid_scope("malformed scope")))
        .transpose()
}

/// RFC 6749 §5.2 `unauthorized_client`: "The authenticated client is not authorized to use
/// this authorization grant type."
pub fn check_grant_allowed(client: &Client, grant: GrantType) -> Result<(), OAuthError> {
    if client.allows_grant(grant) {
        Ok(())
    } else {
        Err(OAuthError::unauthorized_client(format!(
            "client is not registered for the {} grant",
            grant.as_str()
        )))
    }
}

/// What was stored with an authorization code when it was issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeGrantView {
    /// The client the code was issued to.
    pub client_id: ClientId,
    /// The redirect URI of the authorization request.
    pub redirect_uri: String,
    /// The PKCE challenge of the authorization request.
    pub code_challenge: CodeChallenge,
    /// When the code stops being redeemable (issued_at + [`CODE_TTL`]).
    pub expires_at: UnixTime,
    /// The granted scope.
    pub scope: Scope,
    /// The granted audience, if one was requested.
    pub resource: Option<ResourceUri>,
    /// The user who authorized.
    pub user_id: UserId,
    /// When that user authenticated (for `auth_time`).
    pub auth_time: UnixTime,
    /// The authorization request's nonce, for the ID token.
    pub nonce: Option<String>,
}

/// Checks a code redemption (RFC 6749 §4.1.3); every failure is `invalid_grant` except a
/// missing `code_verifier` (`invalid_request`, see [`verify_code_verifier`]). Single use is
/// the store's job (`consume`).
pub fn check_code_redemption(
    code: &CodeGrantView,
    client_id: &ClientId,
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
    now: UnixTime,
) -> Result<(), OAuthError> {
    check_code_client(code, client_id)?;
    check_code_expiry(code, now)?;
    check_code_redirect_uri(code, redirect_uri)?;
    verify_code_verifier(&code.code_challenge, verifier)
}

/// §4.1.3: "ensure that the authorization code was issued to the authenticated confidential
/// client, or if the client is public, ensure that the code was issued to client_id".
fn check_code_client(code: &CodeGrantView, client_id: &ClientId) -> Result<(), OAuthError> {
    if &code.client_id != client_id {
        return Err(OAuthError::invalid_grant("invalid authorization code"));
    }
    Ok(())
}

/// §4.1.3: "verify that the authorization code is valid" — it has not expired.
fn check_code_expiry(code: &CodeGrantView, now: UnixTime) -> Result<(), OAuthError> {
    if now >= code.expires_at {
        return Err(OAuthError::invalid_grant("authorization code expired"));
    }
    Ok(())
}

/// §4.1.3: `redirect_uri` is "REQUIRED, if the redirect_uri parameter was included in the
/// authorization request ..., and their values MUST be identical." It always was included
/// here (OIDC Core §3.1.2.1), so an absent one does not match either.
fn check_code_redirect_uri(
    code: &CodeGrantView,
    redirect_uri: Option<&str>,
) -> Result<(), OAuthError> {
    if redirect_uri != Some(code.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    Ok(())
}

/// RFC 6749 §6: "The requested scope MUST NOT include any scope not originally granted by
/// the resource owner, and if omitted is treated as equal to the scope originally granted."
pub fn narrow_scope(granted: &Scope, requested: Option<&Scope>) -> Result<Scope, OAuthError> {
    match requested {
        None => Ok(granted.clone()),
        Some(r) if r.is_empty() => Err(OAuthError::invalid_scope("scope is empty")),
        Some(r) if r.is_subset_of(granted) => Ok(r.clone()),
        Some(_) => Err(OAuthError::invalid_scope(
            "scope exceeds the original grant",
        )),
    }
}

/// RFC 6749 §4.4.2 and §3.3: the client's registered scope without the user-only tokens by
/// default; a requested scope must stay within it and may not name `openid` or
/// `offline_access` (no user, no ID token, no refresh token: §4.4.3).
pub fn client_credentials_scope(
    client: &Client,
    requested: Option<&Scope>,
) -> Result<Scope, OAuthError> {
    let allowed: Scope = client
        .scope
        .iter()
        .filter(|t| !USER_ONLY_SCOPES.contains(t))
        .map(str::to_owned)
        .collect();
    let Some(requested) = requested else {
        return Ok(allowed);
    };
    if USER_ONLY_SCOPES.iter().any(|t| requested.contains(t)) {
        return Err(OAuthError::invalid_scope(
            "openid and offline_access are not available with client_credentials",
        ));
    }
    if requested.is_empty() || !requested.is_subset_of(&allowed) {
        return Err(OAuthError::invalid_scope(
            "scope exceeds what the client may request",
        ));
    }
    Ok(requested.clone())
}

/// RFC 8707 §2: the token's audience. A requested resource must be an absolute URI without a
/// fragment registered for the client, else `invalid_target`; none requested gives the
/// default audience.
pub fn choose_audience(
    client: &Client,
    requested: Option<&str>,
    default_audience: &str,
) -> Result<Vec<String>, OAuthError> {
    let Some(raw) = requested else {
        return Ok(vec![default_audience.to_owned()]);
    };
    let uri =
        ResourceUri::parse(raw).map_err(|_| OAuthError::invalid_target("malformed resource"))?;
    if !client.resources.contains(&uri) {
        return Err(OAuthError::invalid_target(
            "resource is not registered for this client",
        ));
    }
    Ok(vec![uri.as_str().to_owned()])
}

/// RFC 8707 §2.2: at the token endpoint a grant may only be exchanged for a resource within
/// it. A grant bound to a resource gives tokens for that resource; a grant authorized
/// without one covers the default audience only, so asking for any resource is
/// `invalid_target` (the user never authorized it).
pub fn check_resource_within_grant(
    granted: Option<&ResourceUri>,
    requested: Option<&str>,
) -> Result<(), OAuthError> {
    match (granted, requested) {
        (Some(g), Some(r)) if g.as_str() != r => Err(OAuthError::invalid_target(
            "resource differs from the one authorized",
        )),
        (None, Some(_)) => Err(OAuthError::invalid_target(
            "the authorization did not include a resource",
        )),
        _ => Ok(()),
    }
}

/// The liveness data of a refresh-token family (every token rotated from one grant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilyView {
    /// When the first refresh token of the family was issued.
    pub created_at: UnixTime,
    /// When a token of the family was last redeemed.
    pub last_used_at: UnixTime,
    /// True once revoked (by a replay, logout, or RFC 7009 revocation).
    pub revoked: bool,
}

/// Checks that a refresh-token family may still be used: not revoked, younger than
/// `absolute_ttl`, used within `idle_ttl` (RFC 9700 §4.14.2: refresh tokens may expire after
/// inactivity). Failures are `invalid_grant` (RFC 6749 §5.2: "expired, revoked").
pub fn check_family_alive(
    f: &FamilyView,
    now: UnixTime,
    absolute_ttl: i64,
    idle_ttl: i64,
) -> Result<(), OAuthError> {
    if f.revoked {
        return Err(OAuthError::invalid_grant("refresh token revoked"));
    }
    if now >= f.created_at.saturating_add(absolute_ttl) {
        return Err(OAuthError::invalid_grant("refresh token expired"));
    }
    if now >= f.last_used_at.saturating_add(idle_ttl) {
        return Err(OAuthError::invalid_grant(
            "refresh token expired after inactivity",
        ));
    }
    Ok(())
}

/// The same rule as [`check_family_alive`], as the bounds a store checks atomically while
/// it rotates (RFC 9700 §4.14.2): a family is alive at `now` only if it was created after
/// `created_after` and last used after `used_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilyBounds {
    /// `now - absolute_ttl`: the family's `created_at` must be later.
    pub created_after: UnixTime,
    /// `now - idle_ttl`: the family's `last_used_at` must be later.
    pub used_after: UnixTime,
}

/// The bounds [`check_family_alive`] applies at `now`.
pub fn family_bounds(now: UnixTime, absolute_ttl: i64, idle_ttl: i64) -> FamilyBounds {
    FamilyBounds {
        created_after: now.saturating_sub(absolute_ttl),
        used_after: now.saturating_sub(idle_ttl),
    }
}

/// OIDC Core §11: refresh tokens for offline access are issued only when `offline_access`
/// was granted — and only to clients registered for the refresh_token grant.
pub fn issues_refresh_token(client: &Client, scope: &Scope) -> bool {
    client.allows_grant(GrantType::RefreshToken) && scope.contains("offline_access")
}

#[cfg(test)]
mod tests;
