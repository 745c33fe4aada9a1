//! MFA recovery pages: "Lost your second factor?" on the second-factor page, the mailed
//! links (start with a password-reset link, confirm, cancel), and the account page's cancel
//! button. A link's GET only shows a button (mail scanners follow links); the POST acts,
//! with the double-submit CSRF cookie of the signed-out pages.

use actix_web::http::header::{HeaderValue, CACHE_CONTROL};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::extract::{AccountForm, CheckedForm, RequestBrowser};
use super::{account, authorize::see_other, cookies, error, forms, ui, AppState};
use crate::domain::User;
use crate::service::recovery::{self, Outcome};
use crate::service::ServiceError;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/login/mfa/lost", web::post().to(lost))
        .route("/mfa-recovery/start", web::get().to(start_get))
        .route("/mfa-recovery/start", web::post().to(start_post))
        .route("/mfa-recovery/confirm", web::get().to(confirm_get))
        .route("/mfa-recovery/confirm", web::post().to(confirm_post))
        .route("/mfa-recovery/cancel", web::get().to(cancel_get))
        .route("/mfa-recovery/cancel", web::post().to(cancel_post))
        .route("/account/recovery/cancel", web::post().to(account_cancel));
}

/// What a link's page offers: its heading, explanation, form target and button.
struct Offer {
    heading: &'static str,
    text: &'static str,
    action: &'static str,
    button: &'static str,
}

const START: Offer = Offer {
    heading: "Lost your second factor?",
    text: "If you lost every second factor (authenticator app, backup codes, passkeys), you \
           can have them removed. For your safety this takes effect only after a waiting \
           period, during which we mail you and you can cancel.",
    action: "/mfa-recovery/start",
    button: "Start the recovery",
};

const CONFIRM: Offer = Offer {
    heading: "Confirm the recovery",
    text: "Confirm that you lost every second factor. They are removed after the waiting \
           period unless you cancel before; signing in with a second factor also cancels.",
    action: "/mfa-recovery/confirm",
    button: "Confirm the recovery",
};

const CANCEL: Offer = Offer {
    heading: "Cancel the recovery",
    text: "Cancel the pending removal of your account's second factors. They stay as they are.",
    action: "/mfa-recovery/cancel",
    button: "Cancel the recovery",
};

/// `mfa_recovery.html` with no-store (a link's page carries its token).
fn page(status: StatusCode, ctx: minijinja::Value) -> HttpResponse {
    let mut res = ui::page(status, "mfa_recovery.html", ctx);
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Renders what the use case said.
fn outcome_page(result: Result<Outcome, ServiceError>) -> HttpResponse {
    let outcome = match result {
        Ok(o) => o,
        Err(e) => return error::service(&e),
    };
    let (status, heading, text) = match outcome {
        Outcome::ConfirmationSent => (
            StatusCode::OK,
            "Check your e-mail",
            "We sent a confirmation link to your account's e-mail address. The waiting \
             period starts when you follow it."
                .to_owned(),
        ),
        Outcome::Waiting { effective_at } => (
            StatusCode::OK,
            "Recovery confirmed",
            format!(
                "Your second factors will be removed on {effective_at}. We mailed you a \
                 link to cancel, and will remind you before then."
            ),
        ),
        Outcome::AlreadyWaiting { effective_at } => (
            StatusCode::OK,
            "A recovery is already pending",
            format!("Your second factors will be removed on {effective_at}."),
        ),
        Outcome::Cancelled => (
            StatusCode::OK,
            "Recovery cancelled",
            "Your second factors stay as they are.".to_owned(),
        ),
        Outcome::BadLink(reason) => (
            StatusCode::BAD_REQUEST,
            "This link cannot be used",
            reason.to_owned(),
        ),
        Outcome::Refused(reason) => (
            StatusCode::BAD_REQUEST,
            "Recovery not started",
            reason.to_owned(),
        ),
    };
    page(status, minijinja::context! { heading, text })
}

/// The token of a link's query string.
fn token_of(req: &HttpRequest) -> String {
    forms::query_pairs(req)
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v)
        .unwrap_or_default()
}

/// A link's GET: its button (with the token and a CSRF cookie), or why it cannot be used.
fn offer_page(
    req: &HttpRequest,
    state: &AppState,
    checked: Result<Result<User, &'static str>, ServiceError>,
    offer: &Offer,
    token: &str,
) -> HttpResponse {
    match checked {
        Ok(Ok(user)) => {
            let (csrf, cookie) = cookies::csrf_token(req, state.settings.is_https());
            let ctx = minijinja::context! {
                heading => offer.heading,
                text => offer.text,
                username => user.username.as_str(),
                action => offer.action,
                button => offer.button,
                csrf,
                token,
            };
            cookies::with_cookie(page(StatusCode::OK, ctx), cookie)
        }
        Ok(Err(reason)) => outcome_page(Ok(Outcome::BadLink(reason))),
        Err(e) => error::service(&e),
    }
}

async fn lost(
    req: HttpRequest,
    state: web::Data<AppState>,
    RequestBrowser(browser): RequestBrowser,
    CheckedForm(_): CheckedForm,
) -> HttpResponse {
    let https = state.settings.is_https();
    let pending = cookies::read(&req, cookies::pending_name(https));
    let now = state.clock.now();
    let result = recovery::request_from_login(&state, pending.as_deref(), &browser.info, now).await;
    cookies::with_cookie(outcome_page(result), Some(cookies::clear_pending(https)))
}

async fn start_get(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let token = token_of(&req);
    let checked = recovery::check_reset_link(&state, &token, state.clock.now()).await;
    offer_page(&req, &state, checked, &START, &token)
}

async fn start_post(
    state: web::Data<AppState>,
    RequestBrowser(browser): RequestBrowser,
    CheckedForm(pairs): CheckedForm,
) -> HttpResponse {
    let token = forms::field(&pairs, "token").unwrap_or_default();
    let now = state.clock.now();
    outcome_page(recovery::request_from_reset(&state, token, &browser.info, now).await)
}

async fn confirm_get(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let token = token_of(&req);
    let checked = recovery::check_confirm_link(&state, &token, state.clock.now()).await;
    offer_page(&req, &state, checked, &CONFIRM, &token)
}

async fn confirm_post(
    state: web::Data<AppState>,
    RequestBrowser(browser): RequestBrowser,
    CheckedForm(pairs): CheckedForm,
) -> HttpResponse {
    let token = forms::field(&pairs, "token").unwrap_or_default();
    let now = state.clock.now();
    outcome_page(recovery::confirm(&state, token, &browser.info, now).await)
}

async fn cancel_get(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let token = token_of(&req);
    let checked = recovery::check_cancel_link(&state, &token, state.clock.now()).await;
    offer_page(&req, &state, checked, &CANCEL, &token)
}

async fn cancel_post(
    state: web::Data<AppState>,
    RequestBrowser(browser): RequestBrowser,
    CheckedForm(pairs): CheckedForm,
) -> HttpResponse {
    let token = forms::field(&pairs, "token").unwrap_or_default();
    let now = state.clock.now();
    outcome_page(recovery::cancel_by_link(&state, token, &browser.info, now).await)
}

async fn account_cancel(
    state: web::Data<AppState>,
    form: AccountForm,
    RequestBrowser(browser): RequestBrowser,
) -> HttpResponse {
    let now = state.clock.now();
    match recovery::cancel_by_account(&state, &form.me, &browser.info, now).await {
        Ok(Outcome::Cancelled) => see_other("/account?done=recovery_cancelled"),
        Ok(_) => account::not_found(&state, &form.me, "There is no recovery pending.").await,
        Err(e) => error::service(&e),
    }
}
