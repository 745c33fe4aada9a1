//! RP-Initiated Logout 1.0: end the session of the browser that asked (and the refresh
//! families bound to it), and send the user back only to a registered post-logout redirect
//! URI. The `id_token_hint` identifies; it never authorizes (§2, §3): it cannot end a
//! session other than the one whose cookie came with the request.

use crate::clock::UnixTime;
use crate::crypto::jwt::{verify, Expected};
use crate::oidc::{hint_matches_client, post_logout_redirect, IdTokenClaims, OAuthError, Params};

use super::session::{self, ActiveSession};
use super::{AppState, ServiceError};

/// An expired ID token is still a good hint (RP-Initiated Logout §2: "the OP SHOULD accept
/// ID Tokens ... when the ID Token's exp ... has already passed"): accept ones expired up to
/// this long ago. One day covers an RP that logs out a session opened this morning with the
/// ID token it got then; since the hint only spares the browser's own user a confirmation
/// click, and a session lives at most `sessions.absolute_lifetime_secs` (10 h by default),
/// an older hint vouches for nothing worth skipping that click for.
pub const HINT_MAX_AGE_SECS: i64 = 24 * 3600;

/// What the browser gets.
pub enum LogoutOutcome {
    /// No trustworthy hint: ask the user to confirm (protects against logout CSRF).
    Confirm {
        /// The registered post-logout redirect URI the request names, once validated: the
        /// confirmation ends there (for the page's CSP).
        redirect_uri: Option<String>,
    },
    /// Logged out; back to the client.
    Redirect(String),
    /// Logged out; no (valid) redirect target, so a page says so.
    SignedOut,
    /// The request is malformed (a page, never a redirect).
    Invalid(OAuthError),
}

impl std::fmt::Debug for LogoutOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Confirm { .. } => f.write_str("Confirm"),
            Self::Redirect(_) => f.write_str("Redirect([redacted])"),
            Self::SignedOut => f.write_str("SignedOut"),
            Self::Invalid(e) => f.debug_tuple("Invalid").field(e).finish(),
        }
    }
}

/// Handles a logout request. `confirmed` is true when the user posted the confirmation
/// form with a valid CSRF token.
pub async fn logout(
    state: &AppState,
    pairs: Vec<(String, String)>,
    session: Option<&ActiveSession>,
    confirmed: bool,
    now: UnixTime,
) -> Result<LogoutOutcome, ServiceError> {
    let params = match Params::from_pairs(pairs) {
        Ok(p) => p,
        Err(e) => return Ok(LogoutOutcome::Invalid(e)),
    };
    // A hint that does not verify (unknown or retired key, tampered) is treated as absent:
    // the user is asked to confirm, and the hint vouches for nothing.
    let hint = params
        .get("id_token_hint")
        .and_then(|h| check_hint(state, h, now));
    let client_id = params.get("client_id");
    if let Some(h) = &hint {
        if !hint_matches_client(std::slice::from_ref(&h.aud), client_id) {
            return Ok(LogoutOutcome::Invalid(OAuthError::invalid_request(
                "client_id does not match id_token_hint",
            )));
        }
    }
    // The hint vouches only for the session of its own user in this browser (§2: the OP
    // confirms "that the End-User wants to be logged out" unless the hint names the
    // logged-in user). Without a session here there is nothing to end.
    let Some(current) = session else {
        return finish(state, &params, client_id, hint.as_ref()).await;
    };
    let vouched = hint
        .as_ref()
        .is_some_and(|h| h.sub == current.user.id.as_str());
    if !vouched && !confirmed {
        let redirect_uri = match finish(state, &params, client_id, hint.as_ref()).await? {
            // The same check, without `state`: the registered URI itself.
            LogoutOutcome::Redirect(_) => params.get("post_logout_redirect_uri").map(str::to_owned),
            _ => None,
        };
        return Ok(LogoutOutcome::Confirm { redirect_uri });
    }
    session::logout(state, &current.session.sid, now).await?;
    finish(state, &params, client_id, hint.as_ref()).await
}

/// Where the browser goes once the logout is done (or there was nothing to end): the
/// registered post-logout redirect URI, or the signed-out page.
async fn finish(
    state: &AppState,
    params: &Params,
    client_id: Option<&str>,
    hint: Option<&IdTokenClaims>,
) -> Result<LogoutOutcome, ServiceError> {
    let client = super::clients::named(state, client_id.or(hint.map(|h| h.aud.as_str()))).await?;
    let target = post_logout_redirect(
        client.as_ref(),
        params.get("post_logout_redirect_uri"),
        params.get("state"),
    );
    Ok(target.map_or(LogoutOutcome::SignedOut, LogoutOutcome::Redirect))
}

/// The `sub` of an `id_token_hint` at /authorize (OIDC Core §3.1.2.1): `None` without one;
/// `invalid_request` when it is not an ID token we issued (expired ones within
/// `HINT_MAX_AGE_SECS` are fine: the hint names a user, it grants nothing).
pub(crate) fn verified_hint_sub(
    state: &AppState,
    hint: Option<&str>,
    now: UnixTime,
) -> Result<Option<String>, OAuthError> {
    let Some(token) = hint else { return Ok(None) };
    match check_hint(state, token, now) {
        Some(claims) => Ok(Some(claims.sub)),
        None => Err(OAuthError::invalid_request(
            "id_token_hint is not a valid ID token from this issuer",
        )),
    }
}

/// Verifies an ID token we issued (signature via the allowlist, issuer), accepting expired
/// ones within `HINT_MAX_AGE_SECS`.
fn check_hint(state: &AppState, token: &str, now: UnixTime) -> Option<IdTokenClaims> {
    let published = state.keys.published();
    let expected = Expected {
        issuer: &state.settings.issuer,
        audience: None,
        // Only an ID token (`typ: JWT`), never an access token (`at+jwt`): RFC 8725 §3.11.
        typ: Some("JWT"),
        now,
        leeway_secs: HINT_MAX_AGE_SECS,
    };
    verify::<IdTokenClaims>(token, &published.verifying, &expected).ok()
}
