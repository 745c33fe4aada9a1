//! The authorization_code grant (RFC 6749 §4.1.3, RFC 7636 §4.6).

use crate::clock::UnixTime;
use crate::crypto::token::{hash_token, random_token};
use crate::domain::{AuthorizationCode, Client, Grant, RefreshToken, ResourceUri, Session, User};
use crate::oidc::{
    check_code_redemption, check_resource_within_grant, choose_audience, issues_refresh_token,
    CodeChallenge, CodeGrantView, OAuthError,
};
use crate::service::session::secs;
use crate::service::tokens::access_token_ttl;
use crate::service::{AppState, ServiceError};
use crate::store::StoreError;

use super::{bad_record, revoke_and_audit, user_tokens, Reuse, TokenError, TokenResponse};
pub(super) struct CodeInput<'a> {
    pub(super) code: &'a str,
    pub(super) redirect_uri: Option<&'a str>,
    pub(super) verifier: Option<&'a str>,
    pub(super) resource: Option<&'a str>,
}

/// RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.6). A replayed code revokes everything issued
/// from it (RFC 6749 §4.1.2).
pub(super) async fn redeem_code(
    state: &AppState,
    client: &Client,
    input: CodeInput<'_>,
    ip: &str,
    now: UnixTime,
) -> Result<TokenResponse, TokenError> {
    let code_hash = hash_token(input.code);
    // One read on the way that succeeds: the code with its session and user. Without them
    // (the session or user is gone, or one of their rows does not parse), the code alone
    // decides between unknown and replay, so a replay is always handled as one.
    let (code, signed_in) = match state.store.get_code_in_session(&code_hash).await {
        Ok(Some((code, session, user))) => (code, Some((session, user))),
        Err(e) if !matches!(e, StoreError::Corrupt(_)) => return Err(ServiceError::from(e).into()),
        Ok(None) | Err(_) => match state.store.get_code(&code_hash).await? {
            Some(code) => (code, None),
            None => return Err(OAuthError::invalid_grant("unknown authorization code").into()),
        },
    };
    if code.consumed_at.is_some() {
        return Err(replay(state, &code, ip, now).await);
    }
    let user = check_binding(state, client, &input, &code, signed_in, now)?;
    // A family lives as long as its refresh tokens may; a grant without one needs to
    // outlive only the access token issued now (its `jti` names the grant).
    let lifetime = if issues_refresh_token(client, &code.scope) {
        secs(state.settings.tokens.refresh_absolute_ttl_secs)
    } else {
        access_token_ttl(state, client)
    };
    let grant = grant_from(&code, &user, lifetime, now);
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

/// Everything the code is bound to must match (RFC 6749 §4.1.3, RFC 7636 §4.6), the
/// session that authorized it must still be alive, a requested resource must be within
/// the grant (RFC 8707 §2.2), and the user must be enabled under the credentials the code
/// was issued with: returns that user. Nothing is changed when a check fails.
fn check_binding(
    state: &AppState,
    client: &Client,
    input: &CodeInput<'_>,
    code: &AuthorizationCode,
    signed_in: Option<(Session, User)>,
    now: UnixTime,
) -> Result<User, TokenError> {
    check_code_redemption(
        &code_view(code)?,
        &client.id,
        input.redirect_uri,
        input.verifier,
        now,
    )?;
    // A code must not outlive its session (logout, disabled user, idle or absolute end).
    let idle = secs(state.settings.sessions.idle_timeout_secs);
    let Some((_, user)) = signed_in.filter(|(s, _)| s.is_active(now, idle)) else {
        return Err(
            OAuthError::invalid_grant("the session that authorized this code has ended").into(),
        );
    };
    let granted = code
        .resource
        .as_deref()
        .map(ResourceUri::parse)
        .transpose()
        .map_err(bad_record)?;
    check_resource_within_grant(granted.as_ref(), input.resource)?;
    if !user.accepts_auth_under(code.credentials_epoch) {
        return Err(OAuthError::invalid_grant(
            "the user is disabled, gone, or changed credentials",
        )
        .into());
    }
    Ok(user)
}

/// The grant (refresh family) a redemption creates; it carries the code's grant id.
fn grant_from(code: &AuthorizationCode, user: &User, lifetime: i64, now: UnixTime) -> Grant {
    Grant {
        id: code.grant_id.clone(),
        client_id: code.client_id.clone(),
        user_id: user.id.clone(),
        sid: code.sid.clone(),
        scope: code.scope.clone(),
        resource: code.resource.clone(),
        auth_time: code.auth_time,
        credentials_epoch: code.credentials_epoch,
        amr: code.amr.clone(),
        created_at: now,
        last_used_at: now,
        expires_at: now + lifetime,
        revoked_at: None,
    }
}

/// RFC 6749 §4.1.2: a code used twice revokes everything issued from it.
async fn replay(state: &AppState, code: &AuthorizationCode, ip: &str, now: UnixTime) -> TokenError {
    let reuse = Reuse {
        kind: "authorization_code_reuse",
        grant_id: &code.grant_id,
        client_id: code.client_id.as_str(),
        user_id: Some(code.user_id.to_string()),
        ip,
        detail: "an authorization code was presented again; its grant was revoked",
    };
    match revoke_and_audit(state, reuse, now).await {
        Ok(()) => OAuthError::invalid_grant("authorization code already used").into(),
        Err(e) => e,
    }
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
