//! `/logout`: OIDC RP-Initiated Logout 1.0 (`end_session_endpoint`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::authorize::see_other;
use super::{cookies, error, forms, ui, AppState};
use crate::oidc::OAuthError;
use crate::service::logout::{logout, LogoutOutcome};
use crate::service::session;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/logout", web::get().to(logout_get))
        .route("/logout", web::post().to(logout_post));
}

async fn logout_get(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    respond(&req, &state, forms::query_pairs(&req), false).await
}

async fn logout_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Payload,
) -> HttpResponse {
    let mut pairs = match forms::form_pairs(&req, body).await {
        Ok(p) => p,
        Err(e) => return error::page(StatusCode::BAD_REQUEST, &e),
    };
    let https = state.settings.is_https();
    let confirmed = forms::field(&pairs, "confirm") == Some("yes");
    if confirmed && !cookies::csrf_ok(&req, https, forms::field(&pairs, "csrf")) {
        // A confirmation without the matching CSRF token is forged or stale: end nothing.
        let e = OAuthError::invalid_request(
            "the form has expired; go back to the application and try again",
        );
        return error::page(StatusCode::BAD_REQUEST, &e);
    }
    pairs.retain(|(k, _)| k != "confirm" && k != "csrf");
    respond(&req, &state, pairs, confirmed).await
}

async fn respond(
    req: &HttpRequest,
    state: &AppState,
    pairs: Vec<(String, String)>,
    confirmed: bool,
) -> HttpResponse {
    let https = state.settings.is_https();
    let now = state.clock.now();
    let cookie = cookies::read(req, cookies::session_name(https));
    let current = match session::resolve(state, cookie.as_deref(), now).await {
        Ok(s) => s,
        Err(e) => return error::service(&e),
    };
    let outcome = match logout(state, pairs.clone(), current.as_ref(), confirmed, now).await {
        Ok(o) => o,
        Err(e) => return error::service(&e),
    };
    let res = match outcome {
        LogoutOutcome::Invalid(e) => return error::page(StatusCode::BAD_REQUEST, &e),
        LogoutOutcome::Confirm { redirect_uri } => {
            let (csrf, cookie) = cookies::csrf_token(req, https);
            let ctx = minijinja::context! { csrf, params => pairs };
            let page = ui::page(StatusCode::OK, "logout_confirm.html", ctx);
            // The confirmation posts here and is redirected to the client's URI.
            let page = ui::with_csp(page, false, redirect_uri.as_deref());
            return cookies::with_cookie(page, cookie);
        }
        LogoutOutcome::Redirect(url) => see_other(&url),
        LogoutOutcome::SignedOut => {
            ui::page(StatusCode::OK, "signed_out.html", minijinja::context! {})
        }
    };
    cookies::with_cookie(res, Some(cookies::clear_session(https)))
}
