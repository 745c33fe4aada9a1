//! `/authorize` and `/consent`: extract, call `service::authorize`, render.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use super::extract::{CheckedForm, MaybeSession, RequestBrowser};
use super::login::{login_page, render_step, Form};
use super::{cookies, error, forms, ui, AppState};
use crate::authn::login::Resume;
use crate::oidc::OAuthError;
use crate::service::authorize::{authorize, decode_request, Outcome, Step};
use crate::service::login::{self, Browser};
use crate::service::session::ActiveSession;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/authorize", web::get().to(authorize_get))
        .route("/authorize", web::post().to(authorize_post))
        .route("/consent", web::post().to(consent_post));
}

async fn authorize_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    MaybeSession(session): MaybeSession,
    RequestBrowser(browser): RequestBrowser,
) -> HttpResponse {
    let pairs = forms::query_pairs(&req);
    respond(&req, &state, pairs, Step::Start, session, &browser).await
}

async fn authorize_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    MaybeSession(session): MaybeSession,
    RequestBrowser(browser): RequestBrowser,
    body: web::Payload,
) -> HttpResponse {
    match forms::form_pairs(&req, body).await {
        Ok(pairs) => respond(&req, &state, pairs, Step::Start, session, &browser).await,
        Err(e) => error::page(StatusCode::BAD_REQUEST, &e),
    }
}

/// Runs the pipeline with the browser's session (or the one just signed in).
pub(super) async fn respond(
    req: &HttpRequest,
    state: &AppState,
    pairs: Vec<(String, String)>,
    step: Step,
    session: Option<ActiveSession>,
    browser: &Browser,
) -> HttpResponse {
    let now = state.clock.now();
    let outcome = match authorize(state, pairs, session.as_ref(), step, now).await {
        Ok(outcome) => outcome,
        Err(e) => return error::service(&e),
    };
    match (outcome, session) {
        (Outcome::StepUp { request, level }, Some(session)) => {
            let resume = Resume::Authorize { request };
            match login::step_up(state, &session, resume, level, browser, now).await {
                Ok(step) => {
                    render_step(req, state, step, browser, Form::Login { request: "" }).await
                }
                Err(e) => error::service(&e),
            }
        }
        (outcome, _) => render(req, state, outcome),
    }
}

fn render(req: &HttpRequest, state: &AppState, outcome: Outcome) -> HttpResponse {
    let https = state.settings.is_https();
    match outcome {
        Outcome::ErrorPage(e) => error::page(StatusCode::BAD_REQUEST, &e),
        Outcome::Redirect(url) => see_other(&url),
        Outcome::Login {
            request,
            redirect_uri,
            login_hint,
        } => login_page(
            req,
            state,
            &request,
            Some(&redirect_uri),
            login_hint.as_deref(),
            None,
        ),
        // Handled by `respond`, which has the session; without one there is nothing to
        // step up.
        Outcome::StepUp { .. } => error::page(
            StatusCode::BAD_REQUEST,
            &OAuthError::login_required("sign in first"),
        ),
        Outcome::Consent {
            request,
            redirect_uri,
            client_name,
            scopes,
        } => {
            let (csrf, cookie) = cookies::csrf_token(req, https);
            let scopes: Vec<String> = scopes.iter().map(|s| ui::describe_scope(s)).collect();
            let ctx = minijinja::context! { csrf, request, client_name, scopes };
            let page = ui::page(StatusCode::OK, "consent.html", ctx);
            let page = ui::with_csp(page, false, Some(&redirect_uri));
            cookies::with_cookie(page, cookie)
        }
    }
}

/// `303 See Other`: the browser follows with a GET, whatever the method was.
pub(super) fn see_other(url: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, url.to_owned()))
        .finish()
}

async fn consent_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    MaybeSession(session): MaybeSession,
    RequestBrowser(browser): RequestBrowser,
    CheckedForm(pairs): CheckedForm,
) -> HttpResponse {
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
    respond(
        &req,
        &state,
        request,
        Step::Consented { allow },
        session,
        &browser,
    )
    .await
}
