//! The refresh_token grant with rotation and reuse detection (RFC 6749 §6, RFC 9700 §4.14.2),
//! and the opt-in grace window for clients that present a token twice at once.

use crate::clock::UnixTime;
use crate::crypto::token::{hash_token, random_token};
use crate::domain::{Client, Grant, RefreshToken, ResourceUri, Scope, User};
use crate::oidc::{
    check_family_alive, check_resource_within_grant, choose_audience, family_bounds, narrow_scope,
    FamilyBounds, FamilyView, OAuthError,
};
use crate::service::session::secs;
use crate::service::{AppState, ServiceError};
use crate::store::{RefreshFamily, RefreshRotation, RefreshSpend};

use super::{bad_record, revoke_and_audit, user_tokens, Reuse, TokenError, TokenResponse};
pub(super) struct RefreshInput<'a> {
    pub(super) token: &'a str,
    pub(super) scope: Option<&'a Scope>,
    pub(super) resource: Option<&'a str>,
}

/// What the checks of a refresh request established.
struct Checked {
    grant: Grant,
    user: User,
    scope: Scope,
    audience: Vec<String>,
}

/// RFC 6749 §6 with rotation (RFC 9700 §4.14.2): every use spends the token and issues its
/// successor; presenting a spent token revokes the whole family, unless the client has a
/// refresh grace window and the same client presents it again within it: then it gets the
/// same successor (see `docs/architecture.md`).
///
/// Without `scope` or `resource` the store is asked once on the way that succeeds
/// (`rotate_at_once`). Otherwise, or when that spends nothing, twice: one query reads the
/// token, its grant and user (for the checks and the claims), then one short transaction
/// spends the token, touches the grant and inserts the successor, re-checking inside it
/// what may have changed since the read (spent, revoked, expired, user disabled or
/// credentials changed).
pub(super) async fn refresh(
    state: &AppState,
    client: &Client,
    input: RefreshInput<'_>,
    ip: &str,
    now: UnixTime,
) -> Result<TokenResponse, TokenError> {
    let hash = hash_token(input.token);
    // Without `scope` or `resource` nothing in the request is checked against the family,
    // so the store can spend first and check everything atomically (one round trip).
    if input.scope.is_none() && input.resource.is_none() {
        if let Some(response) = rotate_at_once(state, client, &hash, now).await? {
            return Ok(response);
        }
    }
    let Some(family) = state.store.get_refresh_family(&hash).await? else {
        return Err(OAuthError::invalid_grant("unknown refresh token").into());
    };
    // Bound to the client it was issued to (RFC 6749 §10.4); a foreign client changes nothing.
    if family.token.client_id != client.id {
        return Err(OAuthError::invalid_grant("refresh token was issued to another client").into());
    }
    if family.token.spent_at.is_some() {
        return presented_again(state, client, &input, family, ip, now).await;
    }
    let token = family.token.clone();
    let checked = check(state, client, &input, family, now)?;
    let successor_token = random_token().map_err(ServiceError::from)?;
    let successor = RefreshToken {
        token_hash: hash_token(&successor_token),
        grant_id: checked.grant.id.clone(),
        client_id: client.id.clone(),
        scope: token.scope.clone(),
        created_at: now,
        expires_at: checked.grant.expires_at,
        spent_at: None,
    };
    let sealed = seal_successor(state, client, &successor_token, &hash)?;
    let bounds = bounds_at(state, now);
    let rotation = RefreshRotation {
        presented_hash: &hash,
        successor: &successor,
        successor_sealed: sealed.as_deref(),
        now,
        created_after: bounds.created_after,
        used_after: bounds.used_after,
    };
    if !state.store.rotate_refresh_token(&rotation).await? {
        return lost_rotation(state, client, &input, &hash, ip, now).await;
    }
    issue(state, client, checked, successor_token, now)
}

/// The common refresh in one store call: the store spends the token and inserts its
/// successor only if every check on stored state passes (the same checks as `check`, in
/// SQL), and returns the family. `None` when it changed nothing: a spent or unknown token,
/// a dead family, a grant bound to a resource; the full path then reads the family to
/// answer as it always does (a reuse revokes the family there).
async fn rotate_at_once(
    state: &AppState,
    client: &Client,
    hash: &[u8],
    now: UnixTime,
) -> Result<Option<TokenResponse>, TokenError> {
    // Everything that can fail is done before the spend, so a failure changes nothing.
    let audience = choose_audience(client, None, state.settings.default_audience())?;
    let successor_token = random_token().map_err(ServiceError::from)?;
    let successor_hash = hash_token(&successor_token);
    let sealed = seal_successor(state, client, &successor_token, hash)?;
    let bounds = bounds_at(state, now);
    let spend = RefreshSpend {
        presented_hash: hash,
        client_id: &client.id,
        successor_hash: &successor_hash,
        successor_sealed: sealed.as_deref(),
        now,
        created_after: bounds.created_after,
        used_after: bounds.used_after,
    };
    let Some(RefreshFamily { token, grant, user }) =
        state.store.spend_refresh_token(&spend).await?
    else {
        return Ok(None);
    };
    let checked = Checked {
        grant,
        user,
        scope: token.scope,
        audience,
    };
    issue(state, client, checked, successor_token, now).map(Some)
}

/// The successor sealed to the token it succeeds, kept only for a client with a refresh
/// grace window.
fn seal_successor(
    state: &AppState,
    client: &Client,
    successor_token: &str,
    hash: &[u8],
) -> Result<Option<Vec<u8>>, TokenError> {
    if client.refresh_grace_secs <= 0 {
        return Ok(None);
    }
    let sealed = state
        .refresh_successors
        .seal(successor_token.as_bytes(), hash)
        .map_err(ServiceError::from)?;
    Ok(Some(sealed))
}

/// The family bounds a rotation at `now` checks (absolute lifetime, idle timeout).
fn bounds_at(state: &AppState, now: UnixTime) -> FamilyBounds {
    let t = &state.settings.tokens;
    family_bounds(
        now,
        secs(t.refresh_absolute_ttl_secs),
        secs(t.refresh_idle_ttl_secs),
    )
}

/// The rotation changed nothing: the token was spent meanwhile by a concurrent request
/// (reuse, unless it was this client's own within its grace window), or the family or
/// user changed since the read: say which, as the checks would have.
async fn lost_rotation(
    state: &AppState,
    client: &Client,
    input: &RefreshInput<'_>,
    hash: &[u8],
    ip: &str,
    now: UnixTime,
) -> Result<TokenResponse, TokenError> {
    let Some(family) = state.store.get_refresh_family(hash).await? else {
        return Err(OAuthError::invalid_grant("unknown refresh token").into());
    };
    if family.token.spent_at.is_some() {
        return presented_again(state, client, input, family, ip, now).await;
    }
    check(state, client, input, family, now)?;
    Err(OAuthError::invalid_grant("refresh token can no longer be used").into())
}

/// A spent token presented again: the same successor within the client's grace window,
/// a reuse (the family is revoked) otherwise.
async fn presented_again(
    state: &AppState,
    client: &Client,
    input: &RefreshInput<'_>,
    family: RefreshFamily,
    ip: &str,
    now: UnixTime,
) -> Result<TokenResponse, TokenError> {
    match grace_successor(state, client, &family.token, now).await? {
        Some(successor) => {
            tracing::info!(client_id = %client.id, grant_id = %family.grant.id,
                "refresh token presented again within the client's grace window; same successor");
            let checked = check(state, client, input, family, now)?;
            issue(state, client, checked, successor, now)
        }
        None => Err(reuse(state, &family, ip, now).await),
    }
}

/// The checks every refresh passes: a live family, an enabled user whose credentials did
/// not change since the grant, a scope within the token's (RFC 6749 §6), a resource
/// within the grant (RFC 8707 §2.2). The rotation re-checks the first two atomically.
fn check(
    state: &AppState,
    client: &Client,
    input: &RefreshInput<'_>,
    family: RefreshFamily,
    now: UnixTime,
) -> Result<Checked, TokenError> {
    let RefreshFamily { token, grant, user } = family;
    check_live(state, &token, &grant, now)?;
    if !user.accepts_auth_under(grant.credentials_epoch) {
        return Err(OAuthError::invalid_grant(
            "the user is disabled, gone, or changed credentials",
        )
        .into());
    }
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
    Ok(Checked {
        grant,
        user,
        scope,
        audience,
    })
}

/// Freshly signed access and ID tokens, with `refresh_token` as the successor.
fn issue(
    state: &AppState,
    client: &Client,
    c: Checked,
    refresh_token: String,
    now: UnixTime,
) -> Result<TokenResponse, TokenError> {
    let mut response = user_tokens(
        state, client, &c.user, &c.grant, &c.scope, c.audience, None, now,
    )?;
    response.refresh_token = Some(refresh_token);
    Ok(response)
}

/// The successor of `spent`, if the client has a grace window, the token was first used
/// at most that many seconds ago, and the successor is unspent in the same family. `None`
/// means the presentation is a reuse.
async fn grace_successor(
    state: &AppState,
    client: &Client,
    spent: &RefreshToken,
    now: UnixTime,
) -> Result<Option<String>, TokenError> {
    let within = spent
        .spent_at
        .is_some_and(|at| client.refresh_grace_secs > 0 && now <= at + client.refresh_grace_secs);
    if !within || spent.client_id != client.id {
        return Ok(None);
    }
    let Some(sealed) = state.store.sealed_successor(&spent.token_hash).await? else {
        return Ok(None);
    };
    let Ok(raw) = state.refresh_successors.open(&sealed, &spent.token_hash) else {
        tracing::error!(grant_id = %spent.grant_id, "a sealed refresh successor does not open");
        return Ok(None);
    };
    let Ok(successor) = String::from_utf8(raw) else {
        return Ok(None);
    };
    let record = state
        .store
        .get_refresh_token(&hash_token(&successor))
        .await?;
    let usable = record.is_some_and(|r| {
        r.spent_at.is_none() && r.grant_id == spent.grant_id && r.client_id == client.id
    });
    Ok(usable.then_some(successor))
}

fn check_live(
    state: &AppState,
    token: &RefreshToken,
    grant: &Grant,
    now: UnixTime,
) -> Result<(), TokenError> {
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
    Ok(())
}

/// A spent token presented again: revoke the family and leave an audit record.
async fn reuse(state: &AppState, family: &RefreshFamily, ip: &str, now: UnixTime) -> TokenError {
    let reuse = Reuse {
        kind: "refresh_token_reuse",
        grant_id: &family.token.grant_id,
        client_id: family.token.client_id.as_str(),
        user_id: Some(family.user.id.to_string()),
        ip,
        detail: "a spent refresh token was presented; its family was revoked",
    };
    match revoke_and_audit(state, reuse, now).await {
        Ok(()) => OAuthError::invalid_grant("refresh token already used").into(),
        Err(e) => e,
    }
}
