//! `/account` and its sub-pages: the signed-in user's sessions, apps, password and second
//! factors. Every form is an [`AccountForm`] (session plus session-bound CSRF token);
//! changes to the password or a factor need a recent sign-in, otherwise the user is asked
//! to re-authenticate first (`/account/reauth`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::extract::{account_csrf, AccountForm, MaybeSession, RecentForm, RequestBrowser};
use super::login::{account_path, login_page, render_step, throttled, Form};
use super::{authorize::see_other, cookies, error, forms, ui, AppState};
use crate::authn::login::Resume;
use crate::service::account::{self, Confirmation, PasswordChange};
use crate::service::login::{self, Purpose};
use crate::service::mfa::TotpEnrolment;
use crate::service::session::ActiveSession;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/account", web::get().to(overview))
        .route("/account/sessions/end", web::post().to(end_session))
        .route("/account/sessions/end-others", web::post().to(end_others))
        .route("/account/apps/revoke", web::post().to(revoke_app))
        .route("/account/password", web::post().to(change_password))
        .route("/account/totp", web::get().to(totp_pending))
        .route("/account/totp/start", web::post().to(totp_start))
        .route("/account/totp", web::post().to(totp_confirm))
        .route("/account/totp/remove", web::post().to(totp_remove))
        .route("/account/backup-codes", web::post().to(backup_codes))
        .route("/account/reauth", web::get().to(reauth_get))
        .route("/account/reauth", web::post().to(reauth_post));
}

/// Notices shown after a change, by key (never text from the request).
fn notice(key: &str) -> Option<&'static str> {
    Some(match key {
        "session_ended" => "The session was signed out.",
        "others_ended" => "All other devices were signed out.",
        "app_revoked" => "The app's access was revoked.",
        "password_changed" => "Your password was changed. Every other device was signed out.",
        "totp_removed" => "Two-step verification is off.",
        "reauthenticated" => "Thanks. You can make the change now.",
        "passkey_added" => "Your passkey was added. You can sign in with it now.",
        "passkey_renamed" => "The passkey was renamed.",
        "passkey_deleted" => "The passkey was deleted.",
        "email_change_sent" => "We sent a link to the new address. Your address changes when you open it; until then it stays as it is.",
        "email_unchanged" => "That is already your address, and it is confirmed.",
        "recovery_cancelled" => "The recovery was cancelled. Your second factors stay.",
        _ => return None,
    })
}

async fn overview(
    req: HttpRequest,
    state: web::Data<AppState>,
    MaybeSession(me): MaybeSession,
) -> HttpResponse {
    let Some(me) = me else {
        return login_page(&req, &state, "", None, None, None);
    };
    let done = forms::query_pairs(&req)
        .into_iter()
        .find(|(k, _)| k == "done")
        .and_then(|(_, v)| notice(&v));
    account_page(&state, &me, StatusCode::OK, done, None).await
}

pub(super) async fn account_page(
    state: &AppState,
    me: &ActiveSession,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<&str>,
) -> HttpResponse {
    let now = state.clock.now();
    let o = match account::overview(state, me, now).await {
        Ok(o) => o,
        Err(e) => return error::service(&e),
    };
    let recovery =
        match crate::service::recovery::account_box(state, me.user.id.as_str(), now).await {
            Ok(r) => r,
            Err(e) => return error::service(&e),
        };
    let ctx = minijinja::context! {
        csrf => account_csrf(state, me),
        username => me.user.username.as_str(),
        email => me.user.email.as_str(),
        notice,
        error,
        sessions => o.sessions,
        apps => o.apps,
        totp_enabled => o.totp_enabled,
        backup_codes_left => o.backup_codes_left,
        passkeys => o.passkeys,
        passkeys_available => state.passkeys.available(),
        email_verified => me.user.email_verified,
        recovery,
    };
    let page = ui::page(status, "account.html", ctx);
    ui::with_csp(page, state.passkeys.available(), None)
}

/// A change the form asked for did not apply (not the user's, already gone): the page
/// again with the reason, nothing changed.
pub(super) async fn not_found(state: &AppState, me: &ActiveSession, what: &str) -> HttpResponse {
    account_page(state, me, StatusCode::NOT_FOUND, None, Some(what)).await
}

async fn end_session(
    state: web::Data<AppState>,
    form: AccountForm,
    RequestBrowser(browser): RequestBrowser,
) -> HttpResponse {
    let now = state.clock.now();
    match account::end_session(&state, &form.me, form.field("sid"), &browser, now).await {
        Ok(true) if form.field("sid") == form.me.session.sid => see_other("/account"),
        Ok(true) => see_other("/account?done=session_ended"),
        Ok(false) => not_found(&state, &form.me, "That session was not found.").await,
        Err(e) => error::service(&e),
    }
}

async fn end_others(
    state: web::Data<AppState>,
    form: AccountForm,
    RequestBrowser(browser): RequestBrowser,
) -> HttpResponse {
    match account::end_other_sessions(&state, &form.me, &browser, state.clock.now()).await {
        Ok(_) => see_other("/account?done=others_ended"),
        Err(e) => error::service(&e),
    }
}

async fn revoke_app(
    state: web::Data<AppState>,
    form: AccountForm,
    RequestBrowser(browser): RequestBrowser,
) -> HttpResponse {
    let now = state.clock.now();
    match account::revoke_app(&state, &form.me, form.field("grant_id"), &browser, now).await {
        Ok(true) => see_other("/account?done=app_revoked"),
        Ok(false) => not_found(&state, &form.me, "That app was not found.").await,
        Err(e) => error::service(&e),
    }
}

/// The re-authentication page, when a change needs a recent sign-in.
pub(super) fn reauth_page(state: &AppState, me: &ActiveSession, next: &str) -> HttpResponse {
    let ctx = minijinja::context! {
        csrf => account_csrf(state, me),
        username => me.user.username.as_str(),
        next => account_path(next),
    };
    ui::page(StatusCode::UNAUTHORIZED, "reauth.html", ctx)
}

async fn change_password(
    state: web::Data<AppState>,
    RecentForm(form): RecentForm,
    RequestBrowser(browser): RequestBrowser,
) -> HttpResponse {
    let now = state.clock.now();
    let (current, new, confirm) = (
        form.field("current_password"),
        form.field("new_password"),
        form.field("confirm_password"),
    );
    match account::change_password(&state, &form.me, current, new, confirm, &browser, now).await {
        Ok(PasswordChange::Changed(cookie)) => {
            let https = state.settings.is_https();
            let max_age =
                crate::service::session::secs(state.settings.sessions.absolute_lifetime_secs);
            let res = see_other("/account?done=password_changed");
            cookies::with_cookie(res, Some(cookies::session(cookie, https, max_age)))
        }
        Ok(PasswordChange::WrongCurrent) => {
            account_page(
                &state,
                &form.me,
                StatusCode::UNAUTHORIZED,
                None,
                Some("Your current password is not right."),
            )
            .await
        }
        Ok(PasswordChange::Rejected(why)) => {
            account_page(&state, &form.me, StatusCode::BAD_REQUEST, None, Some(&why)).await
        }
        Ok(PasswordChange::Throttled(retry_after)) => throttled(retry_after),
        Err(e) => error::service(&e),
    }
}

/// The TOTP page embeds its QR code as a `data:` PNG: only this page's CSP allows that.
fn totp_page(
    state: &AppState,
    me: &ActiveSession,
    enrolment: TotpEnrolment,
    error: Option<&str>,
) -> HttpResponse {
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let ctx = minijinja::context! {
        csrf => account_csrf(state, me),
        qr => enrolment.qr,
        otpauth_uri => enrolment.otpauth_uri,
        secret => enrolment.secret,
        error,
    };
    let res = ui::page(status, "totp_setup.html", ctx);
    super::csp::with_policy(res, super::csp::Page::DataImages, &[])
}

/// Starts (or restarts) enrolment: a new secret, shown once on the page that answers. A
/// POST with the session's CSRF token, so no other site can replace an enrolment in
/// progress.
async fn totp_start(state: web::Data<AppState>, RecentForm(form): RecentForm) -> HttpResponse {
    let now = state.clock.now();
    match state
        .factors
        .begin_totp(state.store.as_ref(), &form.me.user, now)
        .await
    {
        Ok(e) => totp_page(&state, &form.me, e, None),
        // TOTP is on already.
        Err(crate::service::ServiceError::Conflict(_)) => see_other("/account"),
        Err(e) => error::service(&e),
    }
}

/// The enrolment in progress, if any (a reload of the setup page); nothing changes.
async fn totp_pending(
    req: HttpRequest,
    state: web::Data<AppState>,
    MaybeSession(me): MaybeSession,
) -> HttpResponse {
    let Some(me) = me else {
        return login_page(&req, &state, "", None, None, None);
    };
    match state
        .factors
        .pending_totp(state.store.as_ref(), &me.user)
        .await
    {
        Ok(Some(e)) => totp_page(&state, &me, e, None),
        Ok(None) => see_other("/account"),
        Err(e) => error::service(&e),
    }
}

async fn totp_confirm(
    state: web::Data<AppState>,
    RecentForm(form): RecentForm,
    RequestBrowser(browser): RequestBrowser,
) -> HttpResponse {
    let now = state.clock.now();
    match account::confirm_totp(&state, &form.me, form.field("code"), &browser, now).await {
        Ok(Confirmation::Confirmed(codes)) => ui::page(
            StatusCode::OK,
            "backup_codes.html",
            minijinja::context! { codes },
        ),
        Ok(Confirmation::Throttled(retry_after)) => throttled(retry_after),
        Ok(Confirmation::Wrong) => match state
            .factors
            .pending_totp(state.store.as_ref(), &form.me.user)
            .await
        {
            Ok(Some(e)) => {
                let error = "That code is not right. Check the time on your phone and try again.";
                totp_page(&state, &form.me, e, Some(error))
            }
            Ok(None) => see_other("/account"),
            Err(e) => error::service(&e),
        },
        Err(e) => error::service(&e),
    }
}

async fn totp_remove(
    state: web::Data<AppState>,
    RecentForm(form): RecentForm,
    RequestBrowser(browser): RequestBrowser,
) -> HttpResponse {
    let now = state.clock.now();
    // Removing a second factor needs that factor (or a backup code) presented recently.
    if !account::has_recent_second_factor(&state, &form.me, now) {
        return reauth_page(&state, &form.me, "/account");
    }
    match account::remove_totp(&state, &form.me, &browser, now).await {
        Ok(_) => see_other("/account?done=totp_removed"),
        Err(e) => error::service(&e),
    }
}

async fn backup_codes(
    state: web::Data<AppState>,
    RecentForm(form): RecentForm,
    RequestBrowser(browser): RequestBrowser,
) -> HttpResponse {
    let now = state.clock.now();
    if !account::has_totp(&state, &form.me).await.unwrap_or(false) {
        return see_other("/account");
    }
    match account::regenerate_backup_codes(&state, &form.me, &browser, now).await {
        Ok(codes) => ui::page(
            StatusCode::OK,
            "backup_codes.html",
            minijinja::context! { codes },
        ),
        Err(e) => error::service(&e),
    }
}

async fn reauth_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    MaybeSession(me): MaybeSession,
) -> HttpResponse {
    let Some(me) = me else {
        return login_page(&req, &state, "", None, None, None);
    };
    let next = forms::query_pairs(&req)
        .into_iter()
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v)
        .unwrap_or_default();
    let mut res = reauth_page(&state, &me, &next);
    *res.status_mut() = StatusCode::OK;
    res
}

async fn reauth_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: AccountForm,
    RequestBrowser(browser): RequestBrowser,
) -> HttpResponse {
    let now = state.clock.now();
    let next = account_path(form.field("next")).to_owned();
    let next_with_notice = if next == "/account" {
        "/account?done=reauthenticated".to_owned()
    } else {
        next.clone()
    };
    let resume = Resume::Account {
        next: next_with_notice,
    };
    let username = form.me.user.username.as_str();
    let purpose = Purpose::Reauthenticate(&form.me, resume);
    let step = login::password(
        &state,
        username,
        form.field("password"),
        purpose,
        &browser,
        now,
    )
    .await;
    let csrf = account_csrf(&state, &form.me);
    match step {
        Ok(step) => {
            render_step(
                &req,
                &state,
                step,
                &browser,
                Form::Reauth {
                    username,
                    next: &next,
                    csrf: &csrf,
                },
            )
            .await
        }
        Err(e) => error::service(&e),
    }
}
