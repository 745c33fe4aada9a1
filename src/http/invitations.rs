//! The pages mailed links open: `/invitation` (an invited user sets a password) and
//! `/verify-email` (confirms an address: self-registration, or an e-mail change), plus the
//! account page's e-mail change form (`/account/email`). A link's GET only shows a form;
//! the change is a POST carrying the double-submit CSRF token, so a mail scanner that
//! fetches links changes nothing. Every refusal is a page saying why, nothing changed.

use actix_web::http::header::{HeaderValue, CACHE_CONTROL};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::account::account_page;
use super::authorize::see_other;
use super::extract::{CheckedForm, RecentForm, RequestBrowser};
use super::{cookies, error, forms, ui, AppState};
use crate::domain::TokenPurpose;
use crate::service::email_address::{self, AddressConfirmation, EmailChange};
use crate::service::invitations::{self, Acceptance, LinkRefusal};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/invitation", web::get().to(invitation_get))
        .route("/invitation", web::post().to(invitation_post))
        .route("/verify-email", web::get().to(verify_get))
        .route("/verify-email", web::post().to(verify_post))
        .route("/account/email", web::post().to(change_email));
}

/// Pages that hold a link's token are never cached.
pub(super) fn private(mut res: HttpResponse) -> HttpResponse {
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// A page with a heading, a sentence and an optional link onwards.
pub(super) fn message(
    status: StatusCode,
    heading: &str,
    text: &str,
    link: Option<(&str, &str)>,
) -> HttpResponse {
    let ctx = minijinja::context! {
        heading,
        text,
        failed => status.is_client_error(),
        link => link.map(|(href, _)| href),
        link_label => link.map(|(_, label)| label),
    };
    private(ui::page(status, "link_message.html", ctx))
}

/// The page for a link that cannot be used.
fn refused(refusal: LinkRefusal) -> HttpResponse {
    let status = match refusal {
        LinkRefusal::Unknown => StatusCode::NOT_FOUND,
        LinkRefusal::Used | LinkRefusal::Expired => StatusCode::GONE,
        LinkRefusal::Disabled => StatusCode::FORBIDDEN,
        LinkRefusal::Stale => StatusCode::CONFLICT,
    };
    message(status, "This link cannot be used", refusal.message(), None)
}

fn token_of(req: &HttpRequest) -> String {
    forms::query_pairs(req)
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v)
        .unwrap_or_default()
}

fn invitation_form(
    req: &HttpRequest,
    state: &AppState,
    status: StatusCode,
    username: &str,
    token: &str,
    error: Option<&str>,
) -> HttpResponse {
    let (csrf, cookie) = cookies::csrf_token(req, state.settings.is_https());
    let ctx = minijinja::context! { csrf, token, username, error };
    let page = private(ui::page(status, "invitation.html", ctx));
    cookies::with_cookie(page, cookie)
}

async fn invitation_get(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let token = token_of(&req);
    let store = state.store.as_ref();
    let kinds = [TokenPurpose::Invitation];
    match invitations::open_link(store, &token, &kinds, state.clock.now()).await {
        Ok(Ok(link)) => {
            let name = link.user.username.as_str();
            invitation_form(&req, &state, StatusCode::OK, name, &token, None)
        }
        Ok(Err(refusal)) => refused(refusal),
        Err(e) => error::service(&e),
    }
}

async fn invitation_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    RequestBrowser(browser): RequestBrowser,
    CheckedForm(pairs): CheckedForm,
) -> HttpResponse {
    let field = |name| forms::field(&pairs, name).unwrap_or_default();
    let token = field("token");
    let now = state.clock.now();
    let outcome = invitations::accept(
        &state,
        token,
        field("password"),
        field("confirm_password"),
        &browser,
        now,
    )
    .await;
    match outcome {
        Ok(Acceptance::Accepted(user)) => message(
            StatusCode::OK,
            "Your account is ready",
            &format!(
                "Your password is set and your e-mail address is confirmed. Sign in as {} \
                 to use your account; you can add a passkey on your account page.",
                user.username
            ),
            Some(("/account", "Sign in")),
        ),
        Ok(Acceptance::Rejected { username, why }) => {
            let status = StatusCode::BAD_REQUEST;
            invitation_form(&req, &state, status, &username, token, Some(&why))
        }
        Ok(Acceptance::Refused(refusal)) => refused(refusal),
        Err(e) => error::service(&e),
    }
}

async fn verify_get(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let token = token_of(&req);
    match email_address::view(&state, &token, state.clock.now()).await {
        Ok(Ok(link)) => {
            let (csrf, cookie) = cookies::csrf_token(&req, state.settings.is_https());
            let ctx = minijinja::context! {
                csrf,
                token,
                username => link.user.username.as_str(),
                address => link.token.email.as_deref().unwrap_or_default(),
                change => link.token.purpose == TokenPurpose::ChangeEmail,
            };
            let page = private(ui::page(StatusCode::OK, "verify_email.html", ctx));
            cookies::with_cookie(page, cookie)
        }
        Ok(Err(refusal)) => refused(refusal),
        Err(e) => error::service(&e),
    }
}

async fn verify_post(
    state: web::Data<AppState>,
    RequestBrowser(browser): RequestBrowser,
    CheckedForm(pairs): CheckedForm,
) -> HttpResponse {
    let token = forms::field(&pairs, "token").unwrap_or_default();
    match email_address::confirm(&state, token, &browser, state.clock.now()).await {
        Ok(AddressConfirmation::Confirmed { address, changed }) => {
            let text = if changed {
                format!("{address} is now the e-mail address of your account.")
            } else {
                format!("{address} is confirmed as the e-mail address of your account.")
            };
            let link = Some(("/account", "Go to your account"));
            message(StatusCode::OK, "E-mail address confirmed", &text, link)
        }
        Ok(AddressConfirmation::Taken) => message(
            StatusCode::CONFLICT,
            "This address is not available",
            "This e-mail address now belongs to another account, so your address was not \
             changed.",
            None,
        ),
        Ok(AddressConfirmation::Refused(refusal)) => refused(refusal),
        Err(e) => error::service(&e),
    }
}

async fn change_email(
    state: web::Data<AppState>,
    RecentForm(form): RecentForm,
    RequestBrowser(browser): RequestBrowser,
) -> HttpResponse {
    let now = state.clock.now();
    let new = form.field("email");
    match email_address::request_change(&state, &form.me, new, &browser, now).await {
        Ok(EmailChange::Sent) => see_other("/account?done=email_change_sent"),
        Ok(EmailChange::Unchanged) => see_other("/account?done=email_unchanged"),
        Ok(EmailChange::Rejected(why)) => {
            account_page(&state, &form.me, StatusCode::BAD_REQUEST, None, Some(&why)).await
        }
        Err(e) => error::service(&e),
    }
}
