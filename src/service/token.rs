//! The token endpoint (RFC 6749 §3.2): client authentication, then one of three grants.
//! Protocol rules come from `oidc::grants`; single use and rotation are store primitives.

use serde::Serialize;

use crate::clock::UnixTime;
use crate::crypto::token::{hash_token, random_token};
use crate::domain::{
    AuditEvent, AuthorizationCode, Client, ClientKind, Grant, RefreshToken, ResourceUri, User,
};
use crate::oidc::{
    authenticate, check_code_redemption, check_family_alive, check_grant_allowed,
    check_resource_within_grant, choose_audience, client_credentials_scope, issues_refresh_token,
    narrow_scope, parse_token_request, presented_credentials, ClientAuthError, CodeChallenge,
    CodeGrantView, FamilyView, OAuthError, Params, TokenRequest,
};

use super::session::secs;
use super::tokens::{access_token, id_token, AccessTokenSpec, IdTokenSpec};
use super::{AppState, ServiceError};

/// Why a token request failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Client authentication failed (401, RFC 6749 §5.2).
    #[error("{}", .0.error)]
    Client(ClientAuthError),
    /// Any other protocol error (400).
    #[error("{0}")]
    OAuth(OAuthError),
    /// Something broke.
    #[error(transparent)]
    Internal(#[from] ServiceError),
}

impl From<OAuthError> for TokenError {
    fn from(e: OAuthError) -> Self {
        Self::OAuth(e)
    }
}

impl From<crate::store::StoreError> for TokenError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Internal(e.into())
    }
}

/// A successful token response (RFC 6749 §5.1, OIDC Core §3.1.3.3). `Debug` hides the
/// tokens.
#[derive(Serialize)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Access-token lifetime in seconds.
    pub expires_in: i64,
    /// Granted scope.
    pub scope: String,
    /// With `openid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// With the refresh_token grant and `offline_access`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// The HTTP request, reduced to what the endpoint reads. `Debug` shows parameter names only.
pub struct TokenHttpRequest {
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The decoded form body.
    pub pairs: Vec<(String, String)>,
    /// The requester's address, for the audit trail.
    pub ip: String,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for TokenHttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.pairs.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("TokenHttpRequest")
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "[redacted]"),
            )
            .field("params", &names)
            .field("ip", &self.ip)
            .finish()
    }
}

/// Authenticates a client from the request (shared with revocation and introspection).
pub async fn authenticate_client(
    state: &AppState,
    authorization: Option<&str>,
    params: &Params,
) -> Result<std::sync::Arc<Client>, TokenError> {
    let presented = presented_credentials(authorization, params).map_err(TokenError::Client)?;
    let client = state
        .clients
        .get(state.store.as_ref(), presented.client_id())
        .await?;
    let id = authenticate(&presented, client.as_deref(), |secret, hash| {
        state.secrets.verify(secret, hash)
    })
    .map_err(TokenError::Client)?;
    match client {
        Some(c) if c.id == id => Ok(c),
        _ => Err(TokenError::Client(ClientAuthError {
            error: OAuthError::invalid_client("client authentication failed"),
            basic_used: presented.is_basic(),
        })),
    }
}

/// Handles one token request.
pub async fn token(
    state: &AppState,
    req: TokenHttpRequest,
    now: UnixTime,
) -> Result<TokenResponse, TokenError> {
    let params = Params::from_pairs(req.pairs)?;
    let client = authenticate_client(state, req.authorization.as_deref(), &params).await?;
    let request = parse_token_request(&params)?;
    check_grant_allowed(&client, request.grant_type())?;
    match request {
        TokenRequest::AuthorizationCode {
            code,
            redirect_uri,
            code_verifier,
            resource,
        } => {
            let input = CodeInput {
                code: code.expose(),
                redirect_uri: redirect_uri.as_deref(),
                verifier: code_verifier.as_ref().map(|v| v.expose()),
                resource: resource.as_deref(),
            };
            redeem_code(state, &client, input, &req.ip, now).await
        }
        TokenRequest::RefreshToken {
            refresh_token,
            scope,
            resource,
        } => {
            let input = RefreshInput {
                token: refresh_token.expose(),
                scope: scope.as_ref(),
                resource: resource.as_deref(),
            };
            refresh(state, &client, input, &req.ip, now).await
        }
        TokenRequest::ClientCredentials { scope, resource } => {
            client_credentials(state, &client, scope.as_ref(), resource.as_deref(), now)
        }
    }
}

struct CodeInput<'a> {
    code: &'a str,
    redirect_uri: Option<&'a str>,
    verifier: Option<&'a str>,
    resource: Option<&'a str>,
}

/// RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.6). A replayed code revokes everything issued
/// from it (RFC 6749 §4.1.2).
async fn redeem_code(
    state: &AppState,
    client: &Client,
    input: CodeInput<'_>,
    ip: &str,
    now: UnixTime,
) -> Result<TokenResponse, TokenError> {
    let code_hash = hash_token(input.code);
    let Some(code) = state.store.get_code(&code_hash).await? else {
        return Err(OAuthError::invalid_grant("unknown authorization code").into());
    };
    if code.consumed_at.is_some() {
        return Err(replay(state, &code, ip, now).await);
    }
    check_code_redemption(
        &code_view(&code)?,
        &client.id,
        input.redirect_uri,
        input.verifier,
        now,
    )?;
    // A code must not outlive the session that authorized it (logout, disabled user).
    let session = state.store.get_session_by_sid(&code.sid).await?;
    if session.is_none_or(|s| s.ended_at.is_some()) {
        return Err(
            OAuthError::invalid_grant("the session that authorized this code has ended").into(),
        );
    }
    let granted_resource = code
        .resource
        .as_deref()
        .map(ResourceUri::parse)
        .transpose()
        .map_err(bad_record)?;
    check_resource_within_grant(granted_resource.as_ref(), input.resource)?;
    let user = enabled_user(state, code.user_id.as_str()).await?;
    let grant = Grant {
        id: code.grant_id.clone(),
        client_id: client.id.clone(),
        user_id: user.id.clone(),
        sid: code.sid.clone(),
        scope: code.scope.clone(),
        resource: code.resource.clone(),
        auth_time: code.auth_time,
        amr: code.amr.clone(),
        created_at: now,
        last_used_at: now,
        expires_at: now + secs(state.settings.tokens.refresh_absolute_ttl_secs),
        revoked_at: None,
    };
    let audience = choose_audience(
        client,
        input.resource.or(code.resource.as_deref()),
        state.settings.default_audience(),
    )?;
    let refresh = new_refresh(client, &grant, now)?;
    let stored = refresh.as_ref().map(|(_, r)| r);
    if !state
        .store
        .redeem_code(&code_hash, &grant, stored, now)
        .await?
    {
        // Lost a race with another redemption of the same code: that is a replay too.
        return Err(replay(state, &code, ip, now).await);
    }
    let mut response = user_tokens(
        state,
        client,
        &user,
        &grant,
        &grant.scope,
        audience,
        code.nonce.as_deref(),
        now,
    )?;
    response.refresh_token = refresh.map(|(token, _)| token);
    Ok(response)
}

async fn replay(state: &AppState, code: &AuthorizationCode, ip: &str, now: UnixTime) -> TokenError {
    let revoked = state.store.revoke_grant(&code.grant_id, now).await;
    let event = AuditEvent {
        kind: "authorization_code_reuse".into(),
        at: now,
        client_id: Some(code.client_id.to_string()),
        user_id: Some(code.user_id.to_string()),
        grant_id: Some(code.grant_id.clone()),
        ip: Some(ip.to_owned()),
        detail: "an authorization code was presented again; its grant was revoked".into(),
    };
    tracing::warn!(client_id = %code.client_id, grant_id = %code.grant_id, %ip, "authorization code reused");
    if let Err(e) = revoked {
        return e.into();
    }
    if let Err(e) = state.store.record_event(&event).await {
        return e.into();
    }
    OAuthError::invalid_grant("authorization code already used").into()
}

fn code_view(code: &AuthorizationCode) -> Result<CodeGrantView, TokenError> {
    let challenge =
        CodeChallenge::parse(Some(&code.code_challenge), Some("S256")).map_err(bad_record)?;
    Ok(CodeGrantView {
        client_id: code.client_id.clone(),
        redirect_uri: code.redirect_uri.clone(),
        code_challenge: challenge,
        expires_at: code.expires_at,
        scope: code.scope.clone(),
        resource: code
            .resource
            .as_deref()
            .map(ResourceUri::parse)
            .transpose()
            .map_err(bad_record)?,
        user_id: code.user_id.clone(),
        auth_time: code.auth_time,
        nonce: code.nonce.clone(),
    })
}

fn bad_record(e: impl std::fmt::Display) -> TokenError {
    TokenError::Internal(ServiceError::Store(crate::store::StoreError::Corrupt(
        e.to_string(),
    )))
}

async fn enabled_user(state: &AppState, user_id: &str) -> Result<User, TokenError> {
    match state.store.get_user(user_id).await? {
        Some(u) if !u.disabled => Ok(u),
        _ => Err(OAuthError::invalid_grant("the user is disabled or gone").into()),
    }
}

/// A new refresh token for the grant, when the client may have one (OIDC Core §11).
fn new_refresh(
    client: &Client,
    grant: &Grant,
    now: UnixTime,
) -> Result<Option<(String, RefreshToken)>, TokenError> {
    if !issues_refresh_token(client, &grant.scope) {
        return Ok(None);
    }
    let token = random_token().map_err(ServiceError::from)?;
    let record = RefreshToken {
        token_hash: hash_token(&token),
        grant_id: grant.id.clone(),
        client_id: client.id.clone(),
        scope: grant.scope.clone(),
        created_at: now,
        expires_at: grant.expires_at,
        spent_at: None,
    };
    Ok(Some((token, record)))
}

#[allow(clippy::too_many_arguments)]
fn user_tokens(
    state: &AppState,
    client: &Client,
    user: &User,
    grant: &Grant,
    scope: &crate::domain::Scope,
    audience: Vec<String>,
    nonce: Option<&str>,
    now: UnixTime,
) -> Result<TokenResponse, TokenError> {
    let at = access_token(
        state,
        AccessTokenSpec {
            client,
            user: Some(user),
            grant_id: Some(&grant.id),
            scope,
            audience,
            auth_time: Some(grant.auth_time),
            sid: Some(&grant.sid),
        },
        now,
    )?;
    let id_token = if scope.contains("openid") {
        let spec = IdTokenSpec {
            user,
            client,
            scope,
            auth_time: grant.auth_time,
            nonce,
            access_token: &at.token,
            amr: &grant.amr,
            sid: &grant.sid,
        };
        Some(id_token(state, spec, now)?)
    } else {
        None
    };
    Ok(TokenResponse {
        access_token: at.token,
        token_type: "Bearer",
        expires_in: at.expires_in,
        scope: scope.to_string(),
        id_token,
        refresh_token: None,
    })
}

struct RefreshInput<'a> {
    token: &'a str,
    scope: Option<&'a crate::domain::Scope>,
    resource: Option<&'a str>,
}

/// RFC 6749 §6 with rotation (RFC 9700 §4.14.2): every use spends the token and issues its
/// successor; presenting a spent token revokes the whole family.
async fn refresh(
    state: &AppState,
    client: &Client,
    input: RefreshInput<'_>,
    ip: &str,
    now: UnixTime,
) -> Result<TokenResponse, TokenError> {
    let hash = hash_token(input.token);
    let Some(token) = state.store.get_refresh_token(&hash).await? else {
        return Err(OAuthError::invalid_grant("unknown refresh token").into());
    };
    // Bound to the client it was issued to (RFC 6749 §10.4); a foreign client changes nothing.
    if token.client_id != client.id {
        return Err(OAuthError::invalid_grant("refresh token was issued to another client").into());
    }
    if token.spent_at.is_some() {
        return Err(reuse(state, &token, ip, now).await);
    }
    let grant = live_grant(state, &token, now).await?;
    let user = enabled_user(state, grant.user_id.as_str()).await?;
    // The access token may narrow; the refresh token keeps its scope (RFC 6749 §6).
    let scope = narrow_scope(&token.scope, input.scope)?;
    let granted_resource = grant
        .resource
        .as_deref()
        .map(ResourceUri::parse)
        .transpose()
        .map_err(bad_record)?;
    check_resource_within_grant(granted_resource.as_ref(), input.resource)?;
    let audience = choose_audience(
        client,
        input.resource.or(grant.resource.as_deref()),
        state.settings.default_audience(),
    )?;
    let successor_token = random_token().map_err(ServiceError::from)?;
    let successor = RefreshToken {
        token_hash: hash_token(&successor_token),
        grant_id: grant.id.clone(),
        client_id: client.id.clone(),
        scope: token.scope.clone(),
        created_at: now,
        expires_at: grant.expires_at,
        spent_at: None,
    };
    if !state
        .store
        .rotate_refresh_token(&hash, &successor, now)
        .await?
    {
        // Spent meanwhile by a concurrent request, or the family was revoked: reuse.
        return Err(reuse(state, &token, ip, now).await);
    }
    let mut response = user_tokens(state, client, &user, &grant, &scope, audience, None, now)?;
    response.refresh_token = Some(successor_token);
    Ok(response)
}

async fn live_grant(
    state: &AppState,
    token: &RefreshToken,
    now: UnixTime,
) -> Result<Grant, TokenError> {
    let Some(grant) = state.store.get_grant(&token.grant_id).await? else {
        return Err(OAuthError::invalid_grant("unknown grant").into());
    };
    let t = &state.settings.tokens;
    let view = FamilyView {
        created_at: grant.created_at,
        last_used_at: grant.last_used_at,
        revoked: grant.revoked_at.is_some(),
    };
    check_family_alive(
        &view,
        now,
        secs(t.refresh_absolute_ttl_secs),
        secs(t.refresh_idle_ttl_secs),
    )?;
    if now >= token.expires_at {
        return Err(OAuthError::invalid_grant("refresh token expired").into());
    }
    Ok(grant)
}

/// A spent token presented again: revoke the family and leave an audit record.
async fn reuse(state: &AppState, token: &RefreshToken, ip: &str, now: UnixTime) -> TokenError {
    let user_id = match state.store.get_grant(&token.grant_id).await {
        Ok(g) => g.map(|g| g.user_id.to_string()),
        Err(e) => return e.into(),
    };
    if let Err(e) = state.store.revoke_grant(&token.grant_id, now).await {
        return e.into();
    }
    tracing::warn!(client_id = %token.client_id, grant_id = %token.grant_id, %ip, "refresh token reused; family revoked");
    let event = AuditEvent {
        kind: "refresh_token_reuse".into(),
        at: now,
        client_id: Some(token.client_id.to_string()),
        user_id,
        grant_id: Some(token.grant_id.clone()),
        ip: Some(ip.to_owned()),
        detail: "a spent refresh token was presented; its family was revoked".into(),
    };
    if let Err(e) = state.store.record_event(&event).await {
        return e.into();
    }
    OAuthError::invalid_grant("refresh token already used").into()
}

/// RFC 6749 §4.4: confidential clients only, no refresh token.
fn client_credentials(
    state: &AppState,
    client: &Client,
    scope: Option<&crate::domain::Scope>,
    resource: Option<&str>,
    now: UnixTime,
) -> Result<TokenResponse, TokenError> {
    if client.kind != ClientKind::Confidential {
        return Err(OAuthError::unauthorized_client(
            "client_credentials needs a confidential client",
        )
        .into());
    }
    let scope = client_credentials_scope(client, scope)?;
    let audience = choose_audience(client, resource, state.settings.default_audience())?;
    let spec = AccessTokenSpec {
        client,
        user: None,
        grant_id: None,
        scope: &scope,
        audience,
        auth_time: None,
        sid: None,
    };
    let at = access_token(state, spec, now)?;
    Ok(TokenResponse {
        access_token: at.token,
        token_type: "Bearer",
        expires_in: at.expires_in,
        scope: scope.to_string(),
        id_token: None,
        refresh_token: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let req = TokenHttpRequest {
            authorization: Some("Basic c2VjcmV0LWNsaWVudDpzM2NyM3Q=".into()),
            pairs: vec![
                ("refresh_token".into(), "rt-s3cr3t".into()),
                ("client_secret".into(), "cs-s3cr3t".into()),
            ],
            ip: "127.0.0.1".into(),
        };
        let res = TokenResponse {
            access_token: "at-s3cr3t".into(),
            token_type: "Bearer",
            expires_in: 1,
            scope: "openid".into(),
            id_token: Some("id-s3cr3t".into()),
            refresh_token: Some("rt2-s3cr3t".into()),
        };
        let shown = format!("{req:?} {res:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("c2Vjcm"),
            "{shown}"
        );
        assert!(
            shown.contains("refresh_token") && shown.contains("client_secret"),
            "{shown}"
        );
    }
}
