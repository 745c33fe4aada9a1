//! Request checks written once, as extractors: the browser's session, a session-bound
//! CSRF-checked form, where the request came from. A handler's signature says what it
//! requires, so it cannot forget a check.

use actix_web::dev::Payload;
use actix_web::error::InternalError;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use futures_util::future::LocalBoxFuture;

use super::{cookies, error, forms, AppState};
use crate::oidc::OAuthError;
use crate::service::login::Browser;
use crate::service::session::{self, ActiveSession, ClientInfo};

fn app_state(req: &HttpRequest) -> Result<web::Data<AppState>, actix_web::Error> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| actix_web::error::ErrorInternalServerError("no app state"))
}

fn reject(page: HttpResponse) -> actix_web::Error {
    InternalError::from_response("request refused", page).into()
}

/// The app state and the decoded form body; a body that is not a bounded form is refused
/// with a page.
async fn read_form(
    req: &HttpRequest,
    payload: Payload,
) -> Result<(web::Data<AppState>, Vec<(String, String)>), actix_web::Error> {
    let state = app_state(req)?;
    let pairs = forms::form_pairs(req, payload)
        .await
        .map_err(|e| reject(error::page(StatusCode::BAD_REQUEST, &e)))?;
    Ok((state, pairs))
}

/// The browser's active session, if it has one.
pub struct MaybeSession(pub Option<ActiveSession>);

async fn resolve(
    req: &HttpRequest,
    state: &AppState,
) -> Result<Option<ActiveSession>, actix_web::Error> {
    let cookie = cookies::read(req, cookies::session_name(state.settings.is_https()));
    session::resolve(state, cookie.as_deref(), state.clock.now())
        .await
        .map_err(|e| reject(error::service(&e)))
}

impl FromRequest for MaybeSession {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = app_state(&req)?;
            Ok(Self(resolve(&req, &state).await?))
        })
    }
}

/// The session-bound CSRF token of the account pages: an HMAC of the session's public id,
/// so a token from another session (another user, another browser) never verifies.
pub fn account_csrf(state: &AppState, me: &ActiveSession) -> String {
    state.account_csrf.tag(&me.session.sid)
}

/// A form posted from an account page by the signed-in user: the session must be active
/// and the form's `csrf` must be the one bound to it. Anything else is refused with a
/// page, before the handler runs.
pub struct AccountForm {
    /// The signed-in session.
    pub me: ActiveSession,
    /// The form fields.
    pub pairs: Vec<(String, String)>,
}

impl AccountForm {
    /// The first value of `name`, or "".
    pub fn field(&self, name: &str) -> &str {
        forms::field(&self.pairs, name).unwrap_or_default()
    }
}

impl FromRequest for AccountForm {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move {
            let (state, pairs) = read_form(&req, payload).await?;
            let Some(me) = resolve(&req, &state).await? else {
                let e = OAuthError::access_denied("you are not signed in; sign in and try again");
                return Err(reject(error::page(StatusCode::UNAUTHORIZED, &e)));
            };
            let presented = forms::field(&pairs, "csrf").unwrap_or_default();
            if !state.account_csrf.verify_tag(&me.session.sid, presented) {
                let e = OAuthError::invalid_request(
                    "the form has expired or did not come from your account page; reload the page and try again",
                );
                return Err(reject(error::page(StatusCode::BAD_REQUEST, &e)));
            }
            Ok(Self { me, pairs })
        })
    }
}

/// An [`AccountForm`] for a change to the password or a factor: the sign-in must be
/// recent (`login.reauth_window_secs`), otherwise the user is shown the re-authentication
/// page instead and the handler does not run.
pub struct RecentForm(pub AccountForm);

impl FromRequest for RecentForm {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let form = AccountForm::from_request(&req, payload);
        Box::pin(async move {
            let form = form.await?;
            let state = app_state(&req)?;
            if crate::service::account::is_recent(&state, &form.me, state.clock.now()) {
                return Ok(Self(form));
            }
            let next = if req.path().starts_with("/account/totp") {
                "/account/totp"
            } else {
                "/account"
            };
            Err(reject(super::account::reauth_page(&state, &form.me, next)))
        })
    }
}

/// The form of a page rendered before there is a session (login, second factor, consent):
/// its `csrf` field must equal the CSRF cookie (double submit). Anything else is refused
/// with a page before the handler runs.
pub struct CheckedForm(pub Vec<(String, String)>);

impl FromRequest for CheckedForm {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move {
            let (state, pairs) = read_form(&req, payload).await?;
            let https = state.settings.is_https();
            if !cookies::csrf_ok(&req, https, forms::field(&pairs, "csrf")) {
                let e = OAuthError::invalid_request(
                    "the form has expired; go back to the application and try again",
                );
                return Err(reject(error::page(StatusCode::BAD_REQUEST, &e)));
            }
            Ok(Self(pairs))
        })
    }
}

/// Where the request came from: address, user agent, known-device cookie.
pub struct RequestBrowser(pub Browser);

impl FromRequest for RequestBrowser {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(app_state(req).map(|state| {
            let https = state.settings.is_https();
            Self(Browser {
                info: ClientInfo {
                    user_agent: forms::user_agent(req),
                    ip: forms::client_ip(req, &state.settings.proxy.trusted),
                },
                device_cookie: cookies::read(req, cookies::device_name(https)),
                ceremony_cookie: cookies::read(req, cookies::ceremony_name(https)),
                session_cookie: cookies::read(req, cookies::session_name(https)),
            })
        }))
    }
}
