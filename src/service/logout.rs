//! RP-Initiated Logout 1.0: end the session, revoke its refresh families, and send the
//! user back only to a registered post-logout redirect URI.

use crate::clock::UnixTime;
use crate::crypto::jwt::{verify, Expected};
use crate::oidc::{hint_matches_client, post_logout_redirect, IdTokenClaims, OAuthError, Params};

use super::session::{self, ActiveSession};
use super::{AppState, ServiceError};

/// An expired ID token is still a good hint (RP-Initiated Logout §2): accept ones up to
/// this old.
const HINT_MAX_AGE_SECS: i64 = 30 * 24 * 3600;

/// What the browser gets.
pub enum LogoutOutcome {
    /// No trustworthy hint: ask the user to confirm (protects against logout CSRF).
    Confirm,
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
            Self::Confirm => f.write_str("Confirm"),
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
    // The hint vouches only for its own user's session.
    let vouched = match (&hint, session) {
        (Some(h), Some(s)) => h.sub == s.user.id.as_str(),
        (Some(_), None) => true,
        (None, _) => false,
    };
    if session.is_some() && !vouched && !confirmed {
        return Ok(LogoutOutcome::Confirm);
    }
    end_sessions(state, hint.as_ref(), session, now).await?;
    let client =
        super::clients::named(state, client_id.or(hint.as_ref().map(|h| h.aud.as_str()))).await?;
    let target = post_logout_redirect(
        client.as_ref(),
        params.get("post_logout_redirect_uri"),
        params.get("state"),
    );
    Ok(target.map_or(LogoutOutcome::SignedOut, LogoutOutcome::Redirect))
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

async fn end_sessions(
    state: &AppState,
    hint: Option<&IdTokenClaims>,
    session: Option<&ActiveSession>,
    now: UnixTime,
) -> Result<(), ServiceError> {
    if let Some(s) = session {
        session::end(state, &s.session.sid, now).await?;
    }
    // The session the hint names, if it is another one of the same user (another browser).
    if let Some(sid) = hint.and_then(|h| h.sid.as_deref()) {
        let other = state.store.get_session_by_sid(sid).await?;
        if let Some(other) = other.filter(|o| hint.is_some_and(|h| h.sub == o.user_id.as_str())) {
            session::end(state, &other.sid, now).await?;
        }
    }
    Ok(())
}
