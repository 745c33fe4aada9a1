//! `/login` (the password form) and `/login/mfa` (the second factor): extract, call
//! `service::login`, render the step that comes back.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::extract::{CheckedForm, RequestBrowser};
use super::{authorize, cookies, error, forms, ui, AppState};
use crate::authn::login::Resume;
use crate::domain::FactorKind;
use crate::oidc::OAuthError;
use crate::service::authorize::{
    client_name_of, decode_request, redirect_uri_of, Step as AuthorizeStep,
};
use crate::service::login::{self, Purpose, SignedIn, Step};
use crate::service::passkeys;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/login", web::get().to(login_get))
        .route("/login", web::post().to(login_post))
        .route("/login/mfa", web::post().to(mfa_post))
        .route("/login/passkey/start", web::post().to(passkey_start))
        .route("/login/passkey", web::post().to(passkey_post))
        .route(
            "/login/mfa/passkey/start",
            web::post().to(mfa_passkey_start),
        );
}

/// The answer to a "start a passkey ceremony" request: the options as JSON with the
/// ceremony cookie, or `{"error": ...}` with 400. Never cached.
pub(super) fn ceremony_json(
    started: Result<passkeys::Started, passkeys::Refusal>,
    https: bool,
) -> HttpResponse {
    match started {
        Ok(s) => {
            let res = super::no_store(HttpResponse::Ok()).json(s.options);
            cookies::with_cookie(res, Some(cookies::ceremony(s.cookie, https)))
        }
        Err(refusal) => super::no_store(HttpResponse::BadRequest())
            .json(serde_json::json!({ "error": refusal.to_string() })),
    }
}

/// Starts a sign-in with a passkey alone (the button, or the browser's autofill).
async fn passkey_start(
    state: web::Data<AppState>,
    CheckedForm(pairs): CheckedForm,
) -> HttpResponse {
    let request = forms::field(&pairs, "request").unwrap_or_default();
    let resume = resume_of(request);
    let store = state.store.as_ref();
    match passkeys::start_sign_in(&state.passkeys, store, resume, state.clock.now()).await {
        Ok(started) => ceremony_json(started, state.settings.is_https()),
        Err(e) => error::service(&e),
    }
}

/// Finishes a passkey sign-in: the form the script submits with the assertion.
async fn passkey_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    RequestBrowser(browser): RequestBrowser,
    CheckedForm(pairs): CheckedForm,
) -> HttpResponse {
    let field = |name| forms::field(&pairs, name).unwrap_or_default();
    let now = state.clock.now();
    match login::passkey(&state, field("credential"), &browser, now).await {
        Ok(step) => {
            let request = field("request");
            let res = render_step(&req, &state, step, &browser, Form::Login { request }).await;
            cookies::with_cookie(
                res,
                Some(cookies::clear_ceremony(state.settings.is_https())),
            )
        }
        Err(e) => error::service(&e),
    }
}

/// Starts a passkey as the second factor of this browser's pending login.
async fn mfa_passkey_start(
    req: HttpRequest,
    state: web::Data<AppState>,
    CheckedForm(_): CheckedForm,
) -> HttpResponse {
    let https = state.settings.is_https();
    let pending = cookies::read(&req, cookies::pending_name(https));
    let now = state.clock.now();
    match login::start_passkey_second_factor(&state, pending.as_deref(), now).await {
        Ok(Some(started)) => ceremony_json(started, https),
        Ok(None) => ceremony_json(Err(passkeys::Refusal::Expired), https),
        Err(e) => error::service(&e),
    }
}

/// What a sign-in resumes: the authorization request, or (none) the account area.
fn resume_of(request: &str) -> Resume {
    if request.is_empty() {
        Resume::Account {
            next: "/account".into(),
        }
    } else {
        Resume::Authorize {
            request: request.to_owned(),
        }
    }
}

/// Which form a failed password goes back to.
pub(super) enum Form<'a> {
    /// The login page, carrying the authorization request (empty for the account area).
    Login {
        /// The original request.
        request: &'a str,
    },
    /// The re-authentication page.
    Reauth {
        /// The signed-in user.
        username: &'a str,
        /// Where to go afterwards.
        next: &'a str,
        /// The page's CSRF token (session-bound).
        csrf: &'a str,
    },
}

/// The login page; `redirect_uri` is the validated redirect URI of `request`, where a
/// successful sign-in ends (its CSP lets the form's redirect go there).
pub(super) fn login_page(
    req: &HttpRequest,
    state: &AppState,
    request: &str,
    redirect_uri: Option<&str>,
    login_hint: Option<&str>,
    failure: Option<(StatusCode, &str)>,
) -> HttpResponse {
    let (csrf, cookie) = cookies::csrf_token(req, state.settings.is_https());
    let (status, error) = failure.unwrap_or((StatusCode::OK, ""));
    let error = (!error.is_empty()).then_some(error);
    let passkeys = state.passkeys.available();
    let registration = state.settings.registration.enabled;
    let ctx = minijinja::context! { csrf, request, login_hint, error, passkeys, registration };
    let page = ui::with_csp(ui::page(status, "login.html", ctx), passkeys, redirect_uri);
    cookies::with_cookie(page, cookie)
}

/// The account area's own sign-in page.
async fn login_get(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    login_page(&req, &state, "", None, None, None)
}

async fn login_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    RequestBrowser(browser): RequestBrowser,
    CheckedForm(pairs): CheckedForm,
) -> HttpResponse {
    let field = |name| forms::field(&pairs, name).unwrap_or_default();
    let request = field("request");
    // An empty request is a sign-in to the account area itself.
    let resume = resume_of(request);
    let now = state.clock.now();
    let purpose = Purpose::SignIn(resume);
    match login::password(
        &state,
        field("username"),
        field("password"),
        purpose,
        &browser,
        now,
    )
    .await
    {
        Ok(step) => render_step(&req, &state, step, &browser, Form::Login { request }).await,
        Err(e) => error::service(&e),
    }
}

async fn mfa_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    RequestBrowser(browser): RequestBrowser,
    CheckedForm(pairs): CheckedForm,
) -> HttpResponse {
    let field = |name| forms::field(&pairs, name).unwrap_or_default();
    let https = state.settings.is_https();
    let pending = cookies::read(&req, cookies::pending_name(https));
    let now = state.clock.now();
    let step = login::second_factor(
        &state,
        pending.as_deref(),
        field("method"),
        field("code"),
        &browser,
        now,
    )
    .await;
    match step {
        Ok(step) => render_step(&req, &state, step, &browser, Form::Login { request: "" }).await,
        Err(e) => error::service(&e),
    }
}

/// Renders whatever the login use case says comes next.
pub(super) async fn render_step(
    req: &HttpRequest,
    state: &AppState,
    step: Step,
    browser: &login::Browser,
    form: Form<'_>,
) -> HttpResponse {
    let https = state.settings.is_https();
    match step {
        Step::Done(signed_in) => signed_in_response(req, state, *signed_in, browser).await,
        Step::SecondFactor(p) => {
            let (csrf, csrf_cookie) = cookies::csrf_token(req, https);
            let status = if p.error.is_some() {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::OK
            };
            let passkey = p.offered.contains(&FactorKind::Passkey) && state.passkeys.available();
            let ctx = minijinja::context! {
                csrf,
                error => p.error,
                username => p.username,
                totp => p.offered.contains(&FactorKind::Totp),
                backup_code => p.offered.contains(&FactorKind::BackupCode),
                passkey,
            };
            let pending = p.pending_cookie.map(|c| cookies::pending(c, https));
            let redirect_uri = match &p.resume {
                Resume::Authorize { request } => validated_redirect(state, request).await,
                Resume::Account { .. } => None,
            };
            let page = ui::page(status, "mfa.html", ctx);
            let page = ui::with_csp(page, passkey, redirect_uri.as_deref());
            cookies::with_cookies(page, csrf_cookie.into_iter().chain(pending))
        }
        Step::MfaUnavailable { resume } => {
            let client_name = match &resume {
                Resume::Authorize { request } => {
                    client_name_of(state, request).await.unwrap_or_default()
                }
                Resume::Account { .. } => String::new(),
            };
            let page = ui::page(
                StatusCode::FORBIDDEN,
                "mfa_required.html",
                minijinja::context! { client_name },
            );
            cookies::with_cookie(page, Some(cookies::clear_pending(https)))
        }
        Step::Failed => failed(req, state, form).await,
        Step::Throttled { retry_after } => throttled(retry_after),
        Step::PasskeyRefused(refusal) => {
            let message = refusal.to_string();
            let res = match form {
                Form::Login { request } => login_page(
                    req,
                    state,
                    request,
                    validated_redirect(state, request).await.as_deref(),
                    None,
                    Some((StatusCode::UNAUTHORIZED, &message)),
                ),
                Form::Reauth { .. } => error::page(
                    StatusCode::UNAUTHORIZED,
                    &OAuthError::access_denied(message.clone()),
                ),
            };
            cookies::with_cookie(res, Some(cookies::clear_ceremony(https)))
        }
        Step::Restart(reason) => {
            let page = error::page(
                StatusCode::BAD_REQUEST,
                &OAuthError::invalid_request(reason),
            );
            cookies::with_cookie(page, Some(cookies::clear_pending(https)))
        }
    }
}

/// The redirect URI of a stored (or posted) request, only if it passes the `/authorize`
/// checks; `None` for the account area's own sign-in (an empty request) and on any error.
async fn validated_redirect(state: &AppState, request: &str) -> Option<String> {
    if request.is_empty() {
        return None;
    }
    redirect_uri_of(state, request).await.ok().flatten()
}

/// The same page and status for an unknown user, a wrong password and a disabled account.
async fn failed(req: &HttpRequest, state: &AppState, form: Form<'_>) -> HttpResponse {
    const MESSAGE: &str = "Invalid username or password.";
    match form {
        Form::Login { request } => login_page(
            req,
            state,
            request,
            validated_redirect(state, request).await.as_deref(),
            None,
            Some((StatusCode::UNAUTHORIZED, MESSAGE)),
        ),
        Form::Reauth {
            username,
            next,
            csrf,
        } => {
            let ctx = minijinja::context! { csrf, username, next, error => "That password is not right." };
            ui::page(StatusCode::UNAUTHORIZED, "reauth.html", ctx)
        }
    }
}

/// 429 with `Retry-After` (RFC 6585 §4); the same for every account name.
pub(super) fn throttled(retry_after: i64) -> HttpResponse {
    let secs = retry_after.max(1);
    let words = if secs < 120 {
        format!("{secs} seconds")
    } else {
        format!("{} minutes", (secs + 59) / 60)
    };
    let mut res = ui::page(
        StatusCode::TOO_MANY_REQUESTS,
        "throttled.html",
        minijinja::context! { retry_after => words },
    );
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&secs.to_string()) {
        res.headers_mut()
            .insert(actix_web::http::header::RETRY_AFTER, v);
    }
    res
}

async fn signed_in_response(
    req: &HttpRequest,
    state: &AppState,
    signed_in: SignedIn,
    browser: &login::Browser,
) -> HttpResponse {
    let https = state.settings.is_https();
    let max_age = crate::service::session::secs(state.settings.sessions.absolute_lifetime_secs);
    let cookies = [
        cookies::session(signed_in.session_cookie, https, max_age),
        cookies::device(
            signed_in.device_cookie,
            https,
            state.settings.login.known_device_days,
        ),
        cookies::clear_pending(https),
    ];
    let res = match signed_in.resume {
        Resume::Authorize { request } => {
            let pairs = decode_request(&request);
            let fresh = Some(signed_in.session);
            Box::pin(authorize::respond(
                req,
                state,
                pairs,
                AuthorizeStep::AfterLogin,
                fresh,
                browser,
            ))
            .await
        }
        // Only this crate builds `Resume::Account`, from a path that passed
        // `account_path` (plus a notice key of its own), never from raw input.
        Resume::Account { next } => authorize::see_other(&next),
    };
    cookies::with_cookies(res, cookies)
}

/// Only paths of the account area are followed after a sign-in: never an open redirect.
pub(super) fn account_path(next: &str) -> &str {
    let ok = next.starts_with("/account")
        && next
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_".contains(&b));
    if ok {
        next
    } else {
        "/account"
    }
}

#[cfg(test)]
mod tests {
    use super::account_path;

    #[test]
    fn only_account_paths_are_followed() {
        assert_eq!(account_path("/account/totp"), "/account/totp");
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/account/../x",
            "/accounts?x=1",
            "/account\\@x",
            "/logout",
        ] {
            assert_eq!(account_path(bad), "/account", "{bad}");
        }
    }
}
