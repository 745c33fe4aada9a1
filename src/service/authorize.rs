//! The authorization endpoint as one pipeline (RFC 6749 §4.1.1, OIDC Core §3.1.2): the
//! rules live in `oidc::authorize`; this module looks things up, stores the code, and
//! says what the browser should see next. The login and consent forms carry the original
//! request and send it back through the same pipeline, so every step is re-validated.

use url::Url;

use crate::clock::UnixTime;
use crate::crypto::token::{hash_token, random_token};
use crate::domain::{AuthorizationCode, Client, Scope};
use crate::oidc::{
    check_client_and_redirect, check_request, decide, AuthorizationRequest, ConsentState, Decision,
    OAuthError, Params, RedirectError, SessionView,
};

use super::session::{secs, ActiveSession};
use super::{AppState, ServiceError};
use crate::oidc::acr::{level_of, AcrLevel};

/// What the browser gets. `Debug` hides redirect URLs: they carry codes.
pub enum Outcome {
    /// The client or redirect URI cannot be trusted: an error page, never a redirect
    /// (RFC 6749 §4.1.2.1, RFC 9700 §4.1.1).
    ErrorPage(OAuthError),
    /// Back to the client: a code, or an error (with `state` and `iss`, RFC 9207).
    Redirect(String),
    /// The login form; `request` is the original request, to be posted back.
    Login {
        /// The original request as a query string.
        request: String,
        /// Its validated redirect URI, where the sign-in ends (for the page's CSP).
        redirect_uri: String,
        /// A username to pre-fill (`login_hint`).
        login_hint: Option<String>,
    },
    /// The session must step up to multi-factor: ask for the second factor only, then run
    /// `request` again.
    StepUp {
        /// The request to resume, as a query string.
        request: String,
        /// The level it demands.
        level: AcrLevel,
    },
    /// The consent form.
    Consent {
        /// The original request as a query string.
        request: String,
        /// Its validated redirect URI, where the answer goes (for the page's CSP).
        redirect_uri: String,
        /// The client's display name.
        client_name: String,
        /// The scopes asked for.
        scopes: Vec<String>,
    },
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ErrorPage(e) => f.debug_tuple("ErrorPage").field(e).finish(),
            Self::Redirect(_) => f.write_str("Redirect([redacted])"),
            Self::Login { .. } => f.write_str("Login"),
            Self::StepUp { .. } => f.write_str("StepUp"),
            Self::Consent { client_name, .. } => f
                .debug_struct("Consent")
                .field("client_name", client_name)
                .finish(),
        }
    }
}

/// How the request reached the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `/authorize` itself.
    Start,
    /// Right after a successful login: the login satisfies `prompt=login` and `max_age`.
    AfterLogin,
    /// The consent form was answered.
    Consented {
        /// `allow` (true) or `deny` (false).
        allow: bool,
    },
}

/// Runs the authorization pipeline for `pairs` (query or form parameters).
pub async fn authorize(
    state: &AppState,
    pairs: Vec<(String, String)>,
    session: Option<&ActiveSession>,
    step: Step,
    now: UnixTime,
) -> Result<Outcome, ServiceError> {
    let (params, client, mut request) = match validate(state, pairs).await? {
        Ok(valid) => valid,
        Err(outcome) => return Ok(outcome),
    };
    match super::logout::verified_hint_sub(state, params.get("id_token_hint"), now) {
        Ok(sub) => request.hint_sub = sub,
        Err(e) => return Ok(Outcome::Redirect(deny(state, &request, e))),
    }
    if step == (Step::Consented { allow: false }) {
        let denied = OAuthError::access_denied("the user denied the request");
        return Ok(Outcome::Redirect(deny(state, &request, denied)));
    }
    let consent = consent_state(state, &client, &request, session, step, now).await?;
    // A user whose MFA recovery took effect reaches no client until they enrol a new
    // second factor: their password-only session must step up, which they cannot yet.
    if let Some(s) = session.filter(|s| level_of(&s.session.factors) < AcrLevel::Mfa) {
        if super::recovery::user_must_enrol(state, &s.user).await? {
            request.min_level = AcrLevel::Mfa.max(request.min_level);
        }
    }
    let view = session.map(|s| SessionView {
        user_id: s.user.id.clone(),
        auth_time: s.session.auth_time,
        level: level_of(&s.session.factors),
    });
    match decide(
        &request,
        view.as_ref(),
        consent,
        step == Step::AfterLogin,
        now,
    ) {
        Decision::Login => Ok(Outcome::Login {
            request: encode(&params_pairs(&params)),
            redirect_uri: request.redirect_uri.clone(),
            login_hint: request.login_hint.clone(),
        }),
        Decision::Consent => Ok(Outcome::Consent {
            request: encode(&carried_pairs(&params, step)),
            redirect_uri: request.redirect_uri.clone(),
            client_name: client.name.clone(),
            scopes: request.scope.iter().map(str::to_owned).collect(),
        }),
        Decision::Error(e) => Ok(Outcome::Redirect(deny(state, &request, e))),
        Decision::StepUp => step_up(state, &params, &request, session, step).await,
        Decision::Issue => match session {
            Some(s) => issue_code(state, &request, s, now)
                .await
                .map(Outcome::Redirect),
            None => Ok(Outcome::Redirect(deny(
                state,
                &request,
                OAuthError::login_required("no session"),
            ))),
        },
    }
}

/// A session weaker than the request demands. With `prompt=none` nothing may be shown:
/// `interaction_required` when a second factor would do, `unmet_authentication_requirements`
/// (OpenID Connect Unmet Authentication Requirements 1.0 §2) when the user has none.
async fn step_up(
    state: &AppState,
    params: &Params,
    request: &AuthorizationRequest,
    session: Option<&ActiveSession>,
    step: Step,
) -> Result<Outcome, ServiceError> {
    let Some(session) = session else {
        let e = OAuthError::login_required("no session");
        return Ok(Outcome::Redirect(deny(state, request, e)));
    };
    if !request.prompt.none {
        return Ok(Outcome::StepUp {
            request: encode(&carried_pairs(params, step)),
            level: request.min_level,
        });
    }
    let user_id = session.user.id.as_str();
    let e = if super::login::can_reach(state, user_id, request.min_level).await? {
        OAuthError::interaction_required("a second factor is required")
    } else {
        OAuthError::unmet_authentication_requirements(
            "multi-factor authentication is required and the user has no second factor",
        )
    };
    Ok(Outcome::Redirect(deny(state, request, e)))
}

/// The name of the client a stored request is for (for pages shown mid-login).
pub async fn client_name_of(state: &AppState, request: &str) -> Result<String, ServiceError> {
    let pairs = decode_request(request);
    let id = pairs
        .iter()
        .find(|(k, _)| k == "client_id")
        .map(|(_, v)| v.as_str());
    Ok(super::clients::named(state, id)
        .await?
        .map(|c| c.name)
        .unwrap_or_default())
}

/// The redirect URI of a stored request, if its client and redirect URI pass the same
/// checks as at `/authorize` (for the CSP of pages shown mid-login; never an unchecked
/// parameter).
pub async fn redirect_uri_of(
    state: &AppState,
    request: &str,
) -> Result<Option<String>, ServiceError> {
    let Ok(params) = Params::from_pairs(decode_request(request)) else {
        return Ok(None);
    };
    let client = super::clients::named(state, params.get("client_id")).await?;
    let checked = check_client_and_redirect(
        client.as_ref(),
        params.get("client_id"),
        params.get("redirect_uri"),
    );
    Ok(checked.ok())
}

/// The two validation stages: the client and redirect URI first (an error page when they
/// fail, RFC 6749 §4.1.2.1), then everything else (an error redirect).
async fn validate(
    state: &AppState,
    pairs: Vec<(String, String)>,
) -> Result<Result<(Params, Client, AuthorizationRequest), Outcome>, ServiceError> {
    let params = match Params::from_pairs(pairs) {
        Ok(p) => p,
        Err(e) => return Ok(Err(Outcome::ErrorPage(e))),
    };
    let client = super::clients::named(state, params.get("client_id")).await?;
    let checked = check_client_and_redirect(
        client.as_ref(),
        params.get("client_id"),
        params.get("redirect_uri"),
    );
    let (redirect_uri, client) = match (checked, client) {
        (Ok(uri), Some(client)) => (uri, client),
        (Err(page), _) => return Ok(Err(Outcome::ErrorPage(page.error))),
        (Ok(_), None) => {
            return Ok(Err(Outcome::ErrorPage(OAuthError::invalid_client(
                "unknown client",
            ))))
        }
    };
    match check_request(&params, &client, redirect_uri) {
        Ok(request) => Ok(Ok((params, client, request))),
        Err(e) => Ok(Err(Outcome::Redirect(error_redirect(
            &state.settings.issuer,
            &e,
        )))),
    }
}

/// Consent is remembered per user and client; a narrower or equal request does not ask
/// again. First-party clients are not asked (unless `prompt=consent`).
async fn consent_state(
    state: &AppState,
    client: &Client,
    request: &AuthorizationRequest,
    session: Option<&ActiveSession>,
    step: Step,
    now: UnixTime,
) -> Result<ConsentState, ServiceError> {
    let Some(session) = session else {
        return Ok(if client.first_party {
            ConsentState::NotRequired
        } else {
            ConsentState::Missing
        });
    };
    let user_id = session.user.id.as_str();
    let consenting = step == (Step::Consented { allow: true });
    // First-party clients are not asked: their remembered consent is not needed either.
    if client.first_party && !consenting {
        return Ok(ConsentState::NotRequired);
    }
    let granted = state.store.get_consent(user_id, &client.id).await?;
    if consenting {
        let mut all: Vec<String> = request.scope.iter().map(str::to_owned).collect();
        if let Some(g) = &granted {
            all.extend(g.iter().map(str::to_owned));
        }
        let merged: Scope = all.into_iter().collect();
        state
            .store
            .save_consent(user_id, &client.id, &merged, now)
            .await?;
        return Ok(ConsentState::GrantedNow);
    }
    Ok(match granted {
        Some(g) if crate::oidc::consent_covers(&g, &request.scope) => ConsentState::Granted,
        _ => ConsentState::Missing,
    })
}

/// Stores a single-use code bound to everything the token request must match, and
/// returns the redirect that carries it (RFC 6749 §4.1.2).
async fn issue_code(
    state: &AppState,
    request: &AuthorizationRequest,
    session: &ActiveSession,
    now: UnixTime,
) -> Result<String, ServiceError> {
    let code = random_token()?;
    let record = AuthorizationCode {
        code_hash: hash_token(&code),
        grant_id: uuid::Uuid::new_v4().simple().to_string(),
        client_id: request.client_id.clone(),
        user_id: session.user.id.clone(),
        sid: session.session.sid.clone(),
        redirect_uri: request.redirect_uri.clone(),
        scope: request.scope.clone(),
        nonce: request.nonce.clone(),
        code_challenge: request.code_challenge.as_str().to_owned(),
        resource: request.resource.as_ref().map(|r| r.as_str().to_owned()),
        auth_time: session.session.auth_time,
        credentials_epoch: session.session.credentials_epoch,
        amr: session.session.amr.clone(),
        created_at: now,
        expires_at: now + secs(state.settings.tokens.code_ttl_secs),
        consumed_at: None,
    };
    state.store.insert_code(&record).await?;
    let mut pairs = vec![("code", code.as_str())];
    if let Some(s) = &request.state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", &state.settings.issuer));
    Ok(with_query(&request.redirect_uri, &pairs))
}

fn deny(state: &AppState, request: &AuthorizationRequest, error: OAuthError) -> String {
    let e = RedirectError {
        redirect_uri: request.redirect_uri.clone(),
        state: request.state.clone(),
        error,
    };
    error_redirect(&state.settings.issuer, &e)
}

/// `redirect_uri?error=...&error_description=...&state=...&iss=...` (RFC 6749 §4.1.2.1,
/// RFC 9207 §2).
fn error_redirect(issuer: &str, e: &RedirectError) -> String {
    let mut pairs = vec![
        ("error", e.error.code.as_str()),
        ("error_description", e.error.description.as_ref()),
    ];
    if let Some(s) = &e.state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", issuer));
    with_query(&e.redirect_uri, &pairs)
}

/// Appends query parameters, keeping any the registered URI already has (RFC 6749 §3.1.2).
pub(crate) fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    match Url::parse(uri) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(pairs);
            url.to_string()
        }
        // Registered URIs always parse; fall back to appending by hand.
        Err(_) => format!("{uri}?{}", encode_refs(pairs)),
    }
}

fn params_pairs(params: &Params) -> Vec<(String, String)> {
    params
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The request the consent form carries. Right after a login, the login has satisfied
/// `prompt=login`, `prompt=select_account` and `max_age` (OIDC Core §3.1.2.1), so they are
/// dropped: the consent step must not send the user back to the login page.
fn carried_pairs(params: &Params, step: Step) -> Vec<(String, String)> {
    let mut pairs = params_pairs(params);
    if step != Step::AfterLogin {
        return pairs;
    }
    // The login also answered `id_token_hint`: the user chose whom to sign in as.
    pairs.retain(|(k, _)| k != "max_age" && k != "id_token_hint");
    for (k, v) in &mut pairs {
        if k == "prompt" {
            *v = v
                .split(' ')
                .filter(|p| *p == "consent")
                .collect::<Vec<_>>()
                .join(" ");
        }
    }
    pairs
}

fn encode(pairs: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn encode_refs(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// Parses a form-encoded request string (the hidden `request` field) back into pairs.
pub fn decode_request(request: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(request.as_bytes())
        .into_owned()
        .collect()
}
