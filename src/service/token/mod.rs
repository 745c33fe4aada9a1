//! The token endpoint (RFC 6749 §3.2): client authentication, then one of three grants.
//! Protocol rules come from `oidc::grants`; single use and rotation are store primitives.

use serde::Serialize;

use crate::clock::UnixTime;
use crate::domain::{AuditEvent, Client, ClientKind, Grant, Scope, User};
use crate::oidc::{
    authenticate, check_grant_allowed, choose_audience, client_credentials_scope,
    parse_token_request, presented_credentials, ClientAuthError, OAuthError, Params, TokenRequest,
};

use super::tokens::{access_token, id_token, AccessTokenSpec, IdTokenSpec};
use super::{AppState, ServiceError};

mod code;
mod refresh;

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

/// What a replayed code or a reused refresh token tells the audit trail.
struct Reuse<'a> {
    kind: &'static str,
    grant_id: &'a str,
    client_id: &'a str,
    user_id: Option<String>,
    ip: &'a str,
    detail: &'static str,
}

/// Revokes the grant (its refresh tokens and access tokens) and records who presented
/// what, from where.
async fn revoke_and_audit(state: &AppState, r: Reuse<'_>, now: UnixTime) -> Result<(), TokenError> {
    tracing::warn!(
        kind = r.kind,
        client_id = r.client_id,
        grant_id = r.grant_id,
        ip = r.ip,
        "grant revoked"
    );
    state.store.revoke_grant(r.grant_id, now).await?;
    let event = AuditEvent {
        kind: r.kind.into(),
        at: now,
        client_id: Some(r.client_id.to_owned()),
        user_id: r.user_id,
        grant_id: Some(r.grant_id.to_owned()),
        ip: Some(r.ip.to_owned()),
        user_agent: None,
        detail: r.detail.into(),
    };
    state.store.record_event(&event).await?;
    Ok(())
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

/// A client-authenticated form POST (`/token`, `/revoke`, `/introspect`), reduced to what
/// the endpoints read. `Debug` shows parameter names only.
pub struct ClientRequest {
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

impl std::fmt::Debug for ClientRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.pairs.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("ClientRequest")
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
    req: ClientRequest,
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
            let input = code::CodeInput {
                code: code.expose(),
                redirect_uri: redirect_uri.as_deref(),
                verifier: code_verifier.as_ref().map(|v| v.expose()),
                resource: resource.as_deref(),
            };
            code::redeem_code(state, &client, input, &req.ip, now).await
        }
        TokenRequest::RefreshToken {
            refresh_token,
            scope,
            resource,
        } => {
            let input = refresh::RefreshInput {
                token: refresh_token.expose(),
                scope: scope.as_ref(),
                resource: resource.as_deref(),
            };
            refresh::refresh(state, &client, input, &req.ip, now).await
        }
        TokenRequest::ClientCredentials { scope, resource } => {
            client_credentials(state, &client, scope.as_ref(), resource.as_deref(), now)
        }
    }
}

fn bad_record(e: impl std::fmt::Display) -> TokenError {
    TokenError::Internal(ServiceError::Store(crate::store::StoreError::Corrupt(
        e.to_string(),
    )))
}

#[allow(clippy::too_many_arguments)]
fn user_tokens(
    state: &AppState,
    client: &Client,
    user: &User,
    grant: &Grant,
    scope: &Scope,
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

/// RFC 6749 §4.4: confidential clients only, no refresh token.
fn client_credentials(
    state: &AppState,
    client: &Client,
    scope: Option<&Scope>,
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
        let req = ClientRequest {
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
