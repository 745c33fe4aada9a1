//! The refresh_token grant with rotation and reuse detection (RFC 6749 §6, RFC 9700 §4.14.2).

use crate::clock::UnixTime;
use crate::crypto::token::{hash_token, random_token};
use crate::domain::{Client, Grant, RefreshToken, ResourceUri, Scope};
use crate::oidc::{
    check_family_alive, check_resource_within_grant, choose_audience, narrow_scope, FamilyView,
    OAuthError,
};
use crate::service::session::secs;
use crate::service::{AppState, ServiceError};

use super::{
    bad_record, enabled_user, revoke_and_audit, user_tokens, Reuse, TokenError, TokenResponse,
};
pub(super) struct RefreshInput<'a> {
    pub(super) token: &'a str,
    pub(super) scope: Option<&'a Scope>,
    pub(super) resource: Option<&'a str>,
}

/// RFC 6749 §6 with rotation (RFC 9700 §4.14.2): every use spends the token and issues its
/// successor; presenting a spent token revokes the whole family.
pub(super) async fn refresh(
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
    let user = enabled_user(state, grant.user_id.as_str(), grant.auth_time).await?;
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
    let reuse = Reuse {
        kind: "refresh_token_reuse",
        grant_id: &token.grant_id,
        client_id: token.client_id.as_str(),
        user_id,
        ip,
        detail: "a spent refresh token was presented; its family was revoked",
    };
    match revoke_and_audit(state, reuse, now).await {
        Ok(()) => OAuthError::invalid_grant("refresh token already used").into(),
        Err(e) => e,
    }
}
