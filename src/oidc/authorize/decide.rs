//! The decision after the request checks: login, consent, issue or error (OIDC Core
//! §3.1.2.1, §3.1.2.3).

use super::AuthorizationRequest;
use crate::clock::UnixTime;
use crate::domain::{Scope, UserId};
use crate::oidc::acr::AcrLevel;
use crate::oidc::OAuthError;

/// What the caller knows about the user's browser session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    /// The logged-in user.
    pub user_id: UserId,
    /// When the user last authenticated (OIDC Core §2 `auth_time`).
    pub auth_time: UnixTime,
    /// How strongly the session authenticated.
    pub level: AcrLevel,
}

/// Whether the user has consented to this client for the requested scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentState {
    /// A stored consent covers the requested scope (see [`consent_covers`]).
    Granted,
    /// The user approved on the consent page during this very request; this also satisfies
    /// `prompt=consent`, so deciding again cannot loop.
    GrantedNow,
    /// No stored consent covers the request.
    Missing,
    /// The client is first-party: no consent page.
    NotRequired,
}

/// What the authorization endpoint does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Show the login page, then decide again with `fresh_login = true`.
    Login,
    /// The session is weaker than the request demands (`acr_values`, the client's
    /// `require_mfa`): ask for a second factor only, not the password again, then decide
    /// again with the upgraded session.
    StepUp,
    /// Show the consent page, then decide again with [`ConsentState::GrantedNow`].
    Consent,
    /// Issue the authorization code.
    Issue,
    /// Redirect this error to the client (OIDC Core §3.1.2.6).
    Error(OAuthError),
}

/// Decides between login, consent, issuing and an error (OIDC Core §3.1.2.1, §3.1.2.3).
///
/// `fresh_login` is true when the user authenticated on the login page during this request;
/// it satisfies `prompt=login`, `prompt=select_account` and `max_age`, so that deciding again
/// after the login page issues instead of looping back to it.
pub fn decide(
    request: &AuthorizationRequest,
    session: Option<&SessionView>,
    consent: ConsentState,
    fresh_login: bool,
    now: UnixTime,
) -> Decision {
    if request.prompt.none {
        return decide_silently(request, session, consent, now);
    }
    let Some(session) = session else {
        // §3.1.2.3: "If the End-User is not already authenticated ... the Authorization
        // Server MUST attempt to authenticate the End-User."
        return Decision::Login;
    };
    if (needs_login(request, session, now) || hint_names_another_user(request, session))
        && !fresh_login
    {
        return Decision::Login;
    }
    if session.level < request.min_level {
        return Decision::StepUp;
    }
    if needs_consent(request, consent) || needs_interaction(request, consent, fresh_login) {
        return Decision::Consent;
    }
    Decision::Issue
}

/// RFC 8252 §8.6: "the authorization server SHOULD NOT process authorization requests
/// automatically without user consent or interaction" for a public client whose redirect
/// URI another app could claim; RFC 6749 §10.2 likewise. Like `prompt=consent`, unless the
/// user just signed in or consented.
fn needs_interaction(request: &AuthorizationRequest, consent: ConsentState, fresh: bool) -> bool {
    request.requires_interaction && !fresh && consent != ConsentState::GrantedNow
}

/// `prompt=none`: "The Authorization Server MUST NOT display any authentication or consent
/// user interface pages. An error is returned if an End-User is not already authenticated or
/// the Client does not have pre-configured consent for the requested Claims" (§3.1.2.1).
fn decide_silently(
    request: &AuthorizationRequest,
    session: Option<&SessionView>,
    consent: ConsentState,
    now: UnixTime,
) -> Decision {
    match session {
        None => Decision::Error(OAuthError::login_required("the user is not logged in")),
        Some(s) if max_age_exceeded(request, s, now) => Decision::Error(
            OAuthError::login_required("the authentication is older than max_age"),
        ),
        Some(s) if hint_names_another_user(request, s) => Decision::Error(
            OAuthError::login_required("the user in id_token_hint is not logged in"),
        ),
        // The caller turns this into `interaction_required`, or into
        // `unmet_authentication_requirements` when the user has no second factor.
        Some(s) if s.level < request.min_level => Decision::StepUp,
        Some(_) if consent == ConsentState::Missing => Decision::Error(
            OAuthError::consent_required("the user has not consented to this client"),
        ),
        // RFC 8252 §8.6: never a silent code for a redirect URI another app could claim.
        Some(_) if request.requires_interaction => {
            Decision::Error(OAuthError::interaction_required(
                "this client's redirect URI needs the user to confirm each sign-in",
            ))
        }
        Some(_) => Decision::Issue,
    }
}

/// `prompt=login` and `prompt=select_account` ask for the login page (with one session per
/// browser, selecting an account means logging in as it); so does an expired `max_age`.
fn needs_login(request: &AuthorizationRequest, session: &SessionView, now: UnixTime) -> bool {
    request.prompt.login || request.prompt.select_account || max_age_exceeded(request, session, now)
}

/// OIDC Core §3.1.2.1 `id_token_hint`: "If the End-User identified by the ID Token is not
/// logged in or is logged in as a different user, the Authorization Server MUST return an
/// error" with `prompt=none`; otherwise the user signs in again (as the expected user).
fn hint_names_another_user(request: &AuthorizationRequest, session: &SessionView) -> bool {
    request
        .hint_sub
        .as_deref()
        .is_some_and(|sub| sub != session.user_id.as_str())
}

/// OIDC Core §3.1.2.1 `max_age`: "If the elapsed time is greater than this value, the OP MUST
/// attempt to actively re-authenticate the End-User."
fn max_age_exceeded(request: &AuthorizationRequest, session: &SessionView, now: UnixTime) -> bool {
    request
        .max_age
        .is_some_and(|max| now.saturating_sub(session.auth_time) > max)
}

/// Consent is asked when none is stored, and when `prompt=consent` asks for it even for a
/// first-party client ("SHOULD prompt the End-User for consent"), unless it was just given.
fn needs_consent(request: &AuthorizationRequest, consent: ConsentState) -> bool {
    match consent {
        ConsentState::GrantedNow => false,
        ConsentState::Missing => true,
        ConsentState::Granted | ConsentState::NotRequired => request.prompt.consent,
    }
}

/// True when a stored consent for `granted` covers `requested`: a narrower or equal request
/// does not ask again.
pub fn consent_covers(granted: &Scope, requested: &Scope) -> bool {
    requested.is_subset_of(granted)
}
