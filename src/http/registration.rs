//! `/register`: optional self-registration. Off by default (`[registration] enabled`):
//! then the route does not match at all, and the answer is the 404 of a path that does
//! not exist (before any CSRF check could tell them apart).

use actix_web::guard::{self, GuardContext};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::extract::{CheckedForm, RequestBrowser};
use super::invitations::{message, private};
use super::login::throttled;
use super::{cookies, error, forms, ui, AppState};
use crate::service::registration::{self, NewRegistration, Registration};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    let on = || guard::fn_guard(enabled);
    cfg.route("/register", web::get().guard(on()).to(register_get))
        .route("/register", web::post().guard(on()).to(register_post));
}

fn enabled(ctx: &GuardContext<'_>) -> bool {
    ctx.app_data::<web::Data<AppState>>()
        .is_some_and(|state| state.settings.registration.enabled)
}

fn form(
    req: &HttpRequest,
    state: &AppState,
    status: StatusCode,
    username: &str,
    email: &str,
    error: Option<&str>,
) -> HttpResponse {
    let (csrf, cookie) = cookies::csrf_token(req, state.settings.is_https());
    let ctx = minijinja::context! { csrf, username, email, error };
    let page = private(ui::page(status, "register.html", ctx));
    cookies::with_cookie(page, cookie)
}

async fn register_get(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    form(&req, &state, StatusCode::OK, "", "", None)
}

async fn register_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    RequestBrowser(browser): RequestBrowser,
    CheckedForm(pairs): CheckedForm,
) -> HttpResponse {
    let field = |name| forms::field(&pairs, name).unwrap_or_default();
    let input = NewRegistration {
        username: field("username"),
        email: field("email"),
        password: field("password"),
        confirm: field("confirm_password"),
    };
    match registration::register(&state, &input, &browser, state.clock.now()).await {
        // The same page whether the name or the address was taken or not.
        Ok(Registration::Sent) => message(
            StatusCode::OK,
            "Check your e-mail",
            "We sent a message to the address you gave. Open the link in it to finish \
             creating your account; if nothing arrives in a few minutes, look in your spam \
             folder.",
            None,
        ),
        Ok(Registration::Rejected(why)) => {
            let status = StatusCode::BAD_REQUEST;
            form(
                &req,
                &state,
                status,
                input.username,
                input.email,
                Some(&why),
            )
        }
        Ok(Registration::Throttled(wait)) => throttled(wait),
        Err(e) => error::service(&e),
    }
}
