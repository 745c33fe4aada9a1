//! `/authorize`, `/login`, `/consent`: extract, call `service::authorize`, render.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use super::{cookies, error, forms, ui, AppState};
use crate::oidc::OAuthError;
use crate::service::authorize::{authorize, decode_request, Outcome, Step};
use crate::service::login::{self, LoginResult};
use crate::service::session::{self, ActiveSession, ClientInfo};
use crate::service::ServiceError;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/authorize", web::get().to(authorize_get))
        .route("/authorize", web::post().to(authorize_post))
        .route("/login", web::post().to(login_post))
        .route("/consent", web::post().to(consent_post));
}

async fn authorize_get(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let pairs = forms::query_pairs(&req);
    respond(&req, &state, pairs, Step::Start, None).await
}

async fn authorize_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Payload,
) -> HttpResponse {
    match forms::form_pairs(&req, body).await {
        Ok(pairs) => respond(&req, &state, pairs, Step::Start, None).await,
        Err(e) => error::page(StatusCode::BAD_REQUEST, &e),
    }
}

/// Runs the pipeline with the browser's session (or `fresh`, right after a login).
async fn respond(
    req: &HttpRequest,
    state: &AppState,
    pairs: Vec<(String, String)>,
    step: Step,
    fresh: Option<ActiveSession>,
) -> HttpResponse {
    let now = state.clock.now();
    let https = state.settings.is_https();
    let session = match fresh {
        Some(s) => Some(s),
        None => match session::resolve(
            state,
            cookies::read(req, cookies::session_name(https)).as_deref(),
            now,
        )
        .await
        {
            Ok(s) => s,
            Err(e) => return error::service(&e),
        },
    };
    match authorize(state, pairs, session.as_ref(), step, now).await {
        Ok(outcome) => render(req, https, outcome, None),
        Err(e) => error::service(&e),
    }
}

fn render(
    req: &HttpRequest,
    https: bool,
    outcome: Outcome,
    login_error: Option<(StatusCode, &str)>,
) -> HttpResponse {
    match outcome {
        Outcome::ErrorPage(e) => error::page(StatusCode::BAD_REQUEST, &e),
        Outcome::Redirect(url) => see_other(&url),
        Outcome::Login {
            request,
            login_hint,
        } => {
            let (csrf, cookie) = cookies::csrf_token(req, https);
            let (status, error) = login_error.unwrap_or((StatusCode::OK, ""));
            let error = (!error.is_empty()).then_some(error);
            let ctx = minijinja::context! { csrf, request, login_hint, error };
            cookies::with_cookie(ui::page(status, "login.html", ctx), cookie)
        }
        Outcome::Consent {
            request,
            client_name,
            scopes,
        } => {
            let (csrf, cookie) = cookies::csrf_token(req, https);
            let scopes: Vec<String> = scopes.iter().map(|s| ui::describe_scope(s)).collect();
            let ctx = minijinja::context! { csrf, request, client_name, scopes };
            cookies::with_cookie(ui::page(StatusCode::OK, "consent.html", ctx), cookie)
        }
    }
}

/// `303 See Other`: the browser follows with a GET, whatever the method was.
pub(super) fn see_other(url: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, url.to_owned()))
        .finish()
}

/// The form of a page we rendered: read it and check its CSRF token against the cookie
/// (double submit). Anything else is an error page.
async fn csrf_checked_form(
    req: &HttpRequest,
    state: &AppState,
    body: web::Payload,
) -> Result<Vec<(String, String)>, HttpResponse> {
    let pairs = forms::form_pairs(req, body)
        .await
        .map_err(|e| error::page(StatusCode::BAD_REQUEST, &e))?;
    if !cookies::csrf_ok(req, state.settings.is_https(), forms::field(&pairs, "csrf")) {
        return Err(error::page(StatusCode::BAD_REQUEST, &expired_form()));
    }
    Ok(pairs)
}

fn expired_form() -> OAuthError {
    OAuthError::invalid_request("the form has expired; go back to the application and try again")
}

async fn login_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Payload,
) -> HttpResponse {
    let pairs = match csrf_checked_form(&req, &state, body).await {
        Ok(p) => p,
        Err(page) => return page,
    };
    let request = forms::field(&pairs, "request")
        .unwrap_or_default()
        .to_owned();
    let username = forms::field(&pairs, "username").unwrap_or_default();
    let password = forms::field(&pairs, "password").unwrap_or_default();
    let now = state.clock.now();
    match login_then_authorize(&req, &state, username, password, &request, now).await {
        Ok(res) => res,
        Err(e) => error::service(&e),
    }
}

async fn login_then_authorize(
    req: &HttpRequest,
    state: &AppState,
    username: &str,
    password: &str,
    request: &str,
    now: i64,
) -> Result<HttpResponse, ServiceError> {
    let https = state.settings.is_https();
    let ip = forms::client_ip(req, &state.settings.proxy.trusted);
    let failure = |status, message| {
        let outcome = Outcome::Login {
            request: request.to_owned(),
            login_hint: None,
        };
        render(req, https, outcome, Some((status, message)))
    };
    let user = match login::attempt(state, username, password, &ip, now).await? {
        LoginResult::Success(user) => *user,
        // Same page and status for an unknown user, a wrong password and a disabled account.
        LoginResult::Failed => {
            return Ok(failure(
                StatusCode::UNAUTHORIZED,
                "Invalid username or password.",
            ))
        }
        LoginResult::Throttled => {
            return Ok(failure(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed attempts. Try again in a few minutes.",
            ))
        }
    };
    let info = ClientInfo {
        user_agent: forms::user_agent(req),
        ip,
    };
    let (cookie, stored) = session::create(state, &user, vec!["pwd".into()], &info, now).await?;
    let fresh = ActiveSession {
        session: stored,
        user,
    };
    let mut res = respond(
        req,
        state,
        decode_request(request),
        Step::AfterLogin,
        Some(fresh),
    )
    .await;
    let max_age = session::secs(state.settings.sessions.absolute_lifetime_secs);
    res.add_cookie(&cookies::session(cookie, https, max_age))
        .map_err(|e| ServiceError::Refused(e.to_string()))?;
    Ok(res)
}

async fn consent_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Payload,
) -> HttpResponse {
    let pairs = match csrf_checked_form(&req, &state, body).await {
        Ok(p) => p,
        Err(page) => return page,
    };
    let allow = match forms::field(&pairs, "decision") {
        Some("allow") => true,
        Some("deny") => false,
        _ => {
            return error::page(
                StatusCode::BAD_REQUEST,
                &OAuthError::invalid_request("decision must be allow or deny"),
            )
        }
    };
    let request = decode_request(forms::field(&pairs, "request").unwrap_or_default());
    respond(&req, &state, request, Step::Consented { allow }, None).await
}
