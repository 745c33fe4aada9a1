//! What resource servers and clients ask about tokens: userinfo (OIDC Core §5.3),
//! introspection (RFC 7662) and revocation (RFC 7009). A signature alone is not enough
//! here: the user must be enabled, the grant alive, and the `jti` not revoked.

use serde_json::{Map, Value};

use crate::clock::UnixTime;
use crate::crypto::jwt::{verify, Expected};
use crate::crypto::token::hash_token;
use crate::domain::{Client, ClientId, ClientKind, RefreshToken, Scope, User};
use crate::oidc::{
    active_response, inactive_response, issued_to_live_client, may_introspect, userinfo_claims,
    AccessTokenClaims, OAuthError, Params,
};

use super::session::secs;
use super::token::{authenticate_client, ClientRequest, TokenError};
use super::tokens::{grant_of_jti, ACCESS_TOKEN_TYP};
use super::{AppState, ServiceError};

/// Why a bearer-token request failed (RFC 6750 §3.1).
#[derive(Debug, thiserror::Error)]
pub enum BearerError {
    /// No token was presented: answer with a bare `WWW-Authenticate: Bearer`.
    #[error("no access token")]
    Missing,
    /// `invalid_token` or `insufficient_scope`.
    #[error("{0}")]
    OAuth(OAuthError),
    /// Something broke.
    #[error(transparent)]
    Internal(#[from] ServiceError),
}

/// An access token that verifies and is still valid against stored state.
struct LiveAccessToken {
    claims: AccessTokenClaims,
    user: Option<User>,
}

/// Verifies our own access token (signature via the allowlist, `typ`, `iss`, `exp`, and
/// `aud` when given) and checks it against stored state. `None` when it is not (or no
/// longer) valid.
async fn live_access_token(
    state: &AppState,
    token: &str,
    audience: Option<&str>,
    now: UnixTime,
) -> Result<Option<LiveAccessToken>, ServiceError> {
    let published = state.keys.published();
    let expected = Expected {
        issuer: &state.settings.issuer,
        audience,
        typ: Some(ACCESS_TOKEN_TYP),
        now,
        leeway_secs: 0,
    };
    let Ok(claims) = verify::<AccessTokenClaims>(token, &published.verifying, &expected) else {
        return Ok(None);
    };
    // The client must still exist and not have revoked its tokens since (from the client
    // cache: a change is seen within `clients.cache_refresh_secs`).
    let owner = match ClientId::parse(&claims.client_id) {
        Ok(id) => state.clients.get(state.store.as_ref(), &id).await?,
        Err(_) => None,
    };
    if !issued_to_live_client(owner.as_deref(), claims.iat) {
        return Ok(None);
    }
    let user = match grant_of_jti(&claims.jti) {
        None => {
            if state.store.is_jti_revoked(&claims.jti).await? {
                return Ok(None);
            }
            None
        }
        // One query: the grant not revoked, the `jti` not revoked, and the user.
        Some(grant_id) => match state.store.get_token_grant(grant_id, &claims.jti).await? {
            Some((grant, u))
                if u.accepts_auth_under(grant.credentials_epoch) && u.id.as_str() == claims.sub =>
            {
                Some(u)
            }
            _ => return Ok(None),
        },
    };
    Ok(Some(LiveAccessToken { claims, user }))
}

/// `/userinfo`: the claims the token's scope allows, for an enabled user.
pub async fn userinfo(
    state: &AppState,
    token: Option<&str>,
    now: UnixTime,
) -> Result<Map<String, Value>, BearerError> {
    let token = token.ok_or(BearerError::Missing)?;
    let invalid = || {
        BearerError::OAuth(OAuthError::invalid_token(
            "the access token is invalid, expired or revoked",
        ))
    };
    // A token minted for another resource (RFC 8707) is not good here: its `aud` must name
    // us (the default audience: the issuer unless configured).
    let audience = Some(state.settings.default_audience());
    let live = live_access_token(state, token, audience, now)
        .await?
        .ok_or_else(invalid)?;
    let user = live.user.ok_or_else(invalid)?;
    let scope = Scope::parse(&live.claims.scope).map_err(|_| invalid())?;
    if !scope.contains("openid") {
        return Err(BearerError::OAuth(OAuthError::insufficient_scope(
            "the token lacks the openid scope",
        )));
    }
    Ok(userinfo_claims(&user, &scope))
}

/// `/introspect` (RFC 7662 §2): confidential clients only; `active: false` for anything
/// revoked, expired, garbage, or not the caller's business (§4: issued to another client,
/// not naming the caller in `aud`, unless the caller is a registered resource server).
pub async fn introspect(
    state: &AppState,
    req: ClientRequest,
    now: UnixTime,
) -> Result<Value, TokenError> {
    let params = Params::from_pairs(req.pairs)?;
    let client = authenticate_client(state, req.authorization.as_deref(), &params).await?;
    if client.kind != ClientKind::Confidential {
        return Err(TokenError::OAuth(OAuthError::unauthorized_client(
            "introspection needs a confidential client",
        )));
    }
    let token = params
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    // A refresh token is random base64url, never a JWS with its dots: skip the lookup.
    let maybe_refresh = !token.contains('.');
    let refresh = match maybe_refresh {
        true => state.store.get_refresh_token(&hash_token(token)).await?,
        false => None,
    };
    if let Some(refresh) = refresh {
        // Refresh tokens concern only the client they were issued to (RFC 7662 §4).
        if refresh.client_id != client.id {
            return Ok(inactive_response());
        }
        return Ok(refresh_status(state, &refresh, now).await?);
    }
    Ok(match live_access_token(state, token, None, now).await? {
        // RFC 7662 §4: need-to-know; a token the caller may not see is just inactive.
        Some(live) if may_introspect(&client, &live.claims.client_id, &live.claims.aud) => {
            let username = live.user.as_ref().map(|u| u.username.as_str());
            active_response(&live.claims, "Bearer", username)
        }
        _ => inactive_response(),
    })
}

async fn refresh_status(
    state: &AppState,
    token: &RefreshToken,
    now: UnixTime,
) -> Result<Value, ServiceError> {
    if token.spent_at.is_some() || now >= token.expires_at {
        return Ok(inactive_response());
    }
    let Some(grant) = state.store.get_grant(&token.grant_id).await? else {
        return Ok(inactive_response());
    };
    let t = &state.settings.tokens;
    let idle_end = grant.last_used_at + secs(t.refresh_idle_ttl_secs);
    if grant.revoked_at.is_some() || now >= idle_end || now >= grant.expires_at {
        return Ok(inactive_response());
    }
    let user = match state.store.get_user(grant.user_id.as_str()).await? {
        Some(u) if u.accepts_auth_under(grant.credentials_epoch) => u,
        _ => return Ok(inactive_response()),
    };
    Ok(serde_json::json!({
        "active": true,
        "scope": token.scope.to_string(),
        "client_id": token.client_id.as_str(),
        "username": user.username.as_str(),
        "sub": user.id.as_str(),
        "exp": token.expires_at.min(idle_end),
        "iat": token.created_at,
        "iss": state.settings.issuer,
        "token_type": "refresh_token",
    }))
}

/// `/revoke` (RFC 7009 §2.1): a refresh token revokes its family; an access token's `jti`
/// is recorded until it expires. Unknown tokens are fine (§2.2); another client's token
/// is refused and changes nothing.
pub async fn revoke(state: &AppState, req: ClientRequest, now: UnixTime) -> Result<(), TokenError> {
    let params = Params::from_pairs(req.pairs)?;
    let client = authenticate_client(state, req.authorization.as_deref(), &params).await?;
    let token = params
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    if let Some(refresh) = state.store.get_refresh_token(&hash_token(token)).await? {
        check_owner(&client, refresh.client_id.as_str())?;
        state.store.revoke_grant(&refresh.grant_id, now).await?;
        return Ok(());
    }
    let published = state.keys.published();
    let expected = Expected {
        issuer: &state.settings.issuer,
        audience: None,
        typ: Some(ACCESS_TOKEN_TYP),
        now,
        leeway_secs: 0,
    };
    if let Ok(claims) = verify::<AccessTokenClaims>(token, &published.verifying, &expected) {
        check_owner(&client, &claims.client_id)?;
        state.store.revoke_jti(&claims.jti, claims.exp).await?;
    }
    Ok(())
}

fn check_owner(client: &Client, owner: &str) -> Result<(), TokenError> {
    if client.id.as_str() == owner {
        Ok(())
    } else {
        Err(OAuthError::invalid_request("the token was not issued to this client").into())
    }
}
