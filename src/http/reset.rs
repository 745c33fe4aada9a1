//! `/forgot-password` and `/reset-password`: signed-out pages with double-submit CSRF
//! forms. Extract, call `service::reset`, render.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::extract::{CheckedForm, RequestBrowser};
use super::{cookies, error, forms, login, ui, AppState};
use crate::domain::FactorKind;
use crate::service::passkeys;
use crate::service::reset::{self, FactorRefusal, OpenLink, Outcome, Submission};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/forgot-password", web::get().to(forgot_get))
        .route("/forgot-password", web::post().to(forgot_post))
        .route("/reset-password", web::get().to(reset_get))
        .route("/reset-password", web::post().to(reset_post))
        .route(
            "/reset-password/passkey/start",
            web::post().to(passkey_start),
        );
}

fn valid_minutes(state: &AppState) -> u64 {
    state.settings.accounts.reset_link_secs / 60
}

/// The request form; after a request (`sent`), the same page for every name.
fn forgot_page(req: &HttpRequest, state: &AppState, sent: bool) -> HttpResponse {
    let (csrf, cookie) = cookies::csrf_token(req, state.settings.is_https());
    let ctx = minijinja::context! { csrf, sent, valid_minutes => valid_minutes(state) };
    let page = ui::page(StatusCode::OK, "forgot_password.html", ctx);
    cookies::with_cookie(page, cookie)
}

async fn forgot_get(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    forgot_page(&req, &state, false)
}

/// The same status and body whether the name is an account, unknown, disabled or
/// throttled (see `service::reset::request`).
async fn forgot_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    RequestBrowser(browser): RequestBrowser,
    CheckedForm(pairs): CheckedForm,
) -> HttpResponse {
    let identifier = forms::field(&pairs, "identifier").unwrap_or_default();
    match reset::request(&state, identifier, &browser, state.clock.now()).await {
        Ok(()) => forgot_page(&req, &state, true),
        Err(e) => error::service(&e),
    }
}

/// A link that is tampered with, expired, used, voided, of another purpose or of a
/// disabled account: one clear page, 400, and nothing changed.
fn invalid_link() -> HttpResponse {
    let ctx = minijinja::context! { view => "invalid" };
    ui::page(StatusCode::BAD_REQUEST, "reset_password.html", ctx)
}

/// The reset form for a valid link, with `error` (and its status) after a refusal.
fn reset_form(
    req: &HttpRequest,
    state: &AppState,
    token: &str,
    link: &OpenLink,
    failure: Option<(StatusCode, String)>,
) -> HttpResponse {
    let (csrf, cookie) = cookies::csrf_token(req, state.settings.is_https());
    let (status, error) = failure.map_or((StatusCode::OK, None), |(s, e)| (s, Some(e)));
    let has = |k| link.factors.contains(&k);
    let passkey = has(FactorKind::Passkey) && state.passkeys.available();
    let ctx = minijinja::context! {
        view => "form",
        csrf,
        token,
        error,
        username => link.user.username.as_str(),
        totp => has(FactorKind::Totp),
        backup_code => has(FactorKind::BackupCode),
        passkey,
        factors => !link.factors.is_empty(),
    };
    let page = ui::with_csp(ui::page(status, "reset_password.html", ctx), passkey, None);
    cookies::with_cookie(page, cookie)
}

async fn reset_get(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let query = forms::query_pairs(&req);
    let token = forms::field(&query, "token").unwrap_or_default();
    match reset::open(&state, token, state.clock.now()).await {
        Ok(Some(link)) => reset_form(&req, &state, token, &link, None),
        Ok(None) => invalid_link(),
        Err(e) => error::service(&e),
    }
}

fn refusal_status(refusal: &FactorRefusal) -> StatusCode {
    match refusal {
        FactorRefusal::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
        FactorRefusal::Wrong => StatusCode::UNAUTHORIZED,
        FactorRefusal::Missing | FactorRefusal::Malformed => StatusCode::BAD_REQUEST,
    }
}

async fn reset_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    RequestBrowser(browser): RequestBrowser,
    CheckedForm(pairs): CheckedForm,
) -> HttpResponse {
    let field = |name| forms::field(&pairs, name).unwrap_or_default();
    let form = Submission {
        token: field("token"),
        new: field("new"),
        confirm: field("confirm"),
        totp: field("totp"),
        backup_code: field("backup_code"),
        credential: field("credential"),
    };
    let https = state.settings.is_https();
    let res = match reset::complete(&state, &form, &browser, state.clock.now()).await {
        Ok(Outcome::Done) => ui::page(
            StatusCode::OK,
            "reset_password.html",
            minijinja::context! { view => "done" },
        ),
        Ok(Outcome::Invalid) => invalid_link(),
        Ok(Outcome::Rejected(link, message)) => {
            let failure = Some((StatusCode::BAD_REQUEST, message));
            reset_form(&req, &state, form.token, &link, failure)
        }
        Ok(Outcome::Factor(link, refusal)) => {
            let failure = Some((refusal_status(&refusal), refusal.message()));
            let mut res = reset_form(&req, &state, form.token, &link, failure);
            if let FactorRefusal::Throttled(secs) = refusal {
                if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&secs.to_string()) {
                    res.headers_mut()
                        .insert(actix_web::http::header::RETRY_AFTER, v);
                }
            }
            res
        }
        Err(e) => error::service(&e),
    };
    // A passkey ceremony is single use, whatever happened to it.
    if form.credential.is_empty() {
        res
    } else {
        cookies::with_cookie(res, Some(cookies::clear_ceremony(https)))
    }
}

/// Starts a passkey ceremony as the reset's second factor (the form's "Use a passkey").
async fn passkey_start(
    state: web::Data<AppState>,
    CheckedForm(pairs): CheckedForm,
) -> HttpResponse {
    let token = forms::field(&pairs, "token").unwrap_or_default();
    let https = state.settings.is_https();
    match reset::start_passkey(&state, token, state.clock.now()).await {
        Ok(Some(started)) => login::ceremony_json(started, https),
        Ok(None) => login::ceremony_json(Err(passkeys::Refusal::Expired), https),
        Err(e) => error::service(&e),
    }
}
