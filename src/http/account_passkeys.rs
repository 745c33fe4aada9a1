//! `/account/passkeys...`: register, rename and delete passkeys. Registering and deleting
//! change how the user signs in, so they need a recent sign-in like the other factor
//! changes; the ceremony itself is bound to this browser and this session.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::account::{account_page, not_found};
use super::authorize::see_other;
use super::extract::{AccountForm, RecentForm, RequestBrowser};
use super::login::ceremony_json;
use super::{cookies, error, AppState};
use crate::service::account;
use crate::service::account_passkeys::{self, Deletion};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/account/passkeys/start", web::post().to(start))
        .route("/account/passkeys", web::post().to(finish))
        .route("/account/passkeys/rename", web::post().to(rename))
        .route("/account/passkeys/delete", web::post().to(delete));
}

/// Starts a registration: the options as JSON for the script, or `{"error", "reauth"}`
/// when the sign-in is not recent enough.
async fn start(state: web::Data<AppState>, form: AccountForm) -> HttpResponse {
    let now = state.clock.now();
    if !account::is_recent(&state, &form.me, now) {
        return super::no_store(HttpResponse::Unauthorized()).json(serde_json::json!({
            "error": "for your security, confirm it's you first",
            "reauth": "/account/reauth?next=/account",
        }));
    }
    match account_passkeys::start(&state, &form.me, form.field("name"), now).await {
        Ok(started) => ceremony_json(started, state.settings.is_https()),
        Err(e) => error::service(&e),
    }
}

/// The form the script submits with the new credential.
async fn finish(
    state: web::Data<AppState>,
    RecentForm(form): RecentForm,
    RequestBrowser(browser): RequestBrowser,
) -> HttpResponse {
    let now = state.clock.now();
    let https = state.settings.is_https();
    let credential = form.field("credential");
    let res = match account_passkeys::finish(&state, &form.me, credential, &browser, now).await {
        Ok(Ok(())) => see_other("/account?done=passkey_added"),
        Ok(Err(refusal)) => {
            let message = refusal.to_string();
            account_page(
                &state,
                &form.me,
                StatusCode::BAD_REQUEST,
                None,
                Some(&message),
            )
            .await
        }
        Err(e) => error::service(&e),
    };
    cookies::with_cookie(res, Some(cookies::clear_ceremony(https)))
}

async fn rename(
    state: web::Data<AppState>,
    form: AccountForm,
    RequestBrowser(browser): RequestBrowser,
) -> HttpResponse {
    let now = state.clock.now();
    let (id, name) = (form.field("id"), form.field("name"));
    match account_passkeys::rename(&state, &form.me, id, name, &browser, now).await {
        Ok(Ok(true)) => see_other("/account?done=passkey_renamed"),
        Ok(Ok(false)) => not_found(&state, &form.me, "That passkey was not found.").await,
        Ok(Err(refusal)) => {
            let message = refusal.to_string();
            account_page(
                &state,
                &form.me,
                StatusCode::BAD_REQUEST,
                None,
                Some(&message),
            )
            .await
        }
        Err(e) => error::service(&e),
    }
}

async fn delete(
    state: web::Data<AppState>,
    RecentForm(form): RecentForm,
    RequestBrowser(browser): RequestBrowser,
) -> HttpResponse {
    let now = state.clock.now();
    match account_passkeys::delete(&state, &form.me, form.field("id"), &browser, now).await {
        Ok(Deletion::Deleted) => see_other("/account?done=passkey_deleted"),
        Ok(Deletion::NotFound) => not_found(&state, &form.me, "That passkey was not found.").await,
        Ok(Deletion::LastWayToSignIn) => {
            let message =
                "This is your only way to sign in: add another passkey or set a password first.";
            account_page(&state, &form.me, StatusCode::CONFLICT, None, Some(message)).await
        }
        Err(e) => error::service(&e),
    }
}
