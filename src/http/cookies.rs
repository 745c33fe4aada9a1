//! The session and CSRF cookies. `HttpOnly`, `SameSite=Lax`, `Path=/`; with an https issuer
//! also `Secure` and the `__Host-` prefix (RFC 6265bis §4.1.3.2), so no subdomain can set them.

use actix_web::cookie::{time::Duration, Cookie, SameSite};
use actix_web::{HttpRequest, HttpResponse};
use subtle::ConstantTimeEq;

/// Name of the session cookie.
pub fn session_name(https: bool) -> &'static str {
    if https {
        "__Host-latchkey_session"
    } else {
        "latchkey_session"
    }
}

/// Name of the CSRF cookie (double submit: the form must carry the same value).
pub fn csrf_name(https: bool) -> &'static str {
    if https {
        "__Host-latchkey_csrf"
    } else {
        "latchkey_csrf"
    }
}

/// Name of the pending-login cookie (a sign-in waiting for its second factor).
pub fn pending_name(https: bool) -> &'static str {
    if https {
        "__Host-latchkey_login"
    } else {
        "latchkey_login"
    }
}

/// Name of the known-device cookie.
pub fn device_name(https: bool) -> &'static str {
    if https {
        "__Host-latchkey_device"
    } else {
        "latchkey_device"
    }
}

/// Name of the WebAuthn ceremony cookie (binds a passkey ceremony to this browser).
pub fn ceremony_name(https: bool) -> &'static str {
    if https {
        "__Host-latchkey_webauthn"
    } else {
        "latchkey_webauthn"
    }
}

/// The ceremony cookie; it lives as long as a ceremony may.
pub fn ceremony(value: String, https: bool) -> Cookie<'static> {
    let mut c = build(ceremony_name(https), value, https);
    c.set_max_age(Duration::seconds(crate::service::passkeys::CEREMONY_TTL));
    c
}

/// Removes the ceremony cookie (a ceremony is single use).
pub fn clear_ceremony(https: bool) -> Cookie<'static> {
    let mut c = build(ceremony_name(https), String::new(), https);
    c.set_max_age(Duration::ZERO);
    c
}

/// The pending-login cookie; it lives as long as a pending login may.
pub fn pending(value: String, https: bool) -> Cookie<'static> {
    let mut c = build(pending_name(https), value, https);
    c.set_max_age(Duration::seconds(crate::authn::login::PENDING_TTL));
    c
}

/// Removes the pending-login cookie.
pub fn clear_pending(https: bool) -> Cookie<'static> {
    let mut c = build(pending_name(https), String::new(), https);
    c.set_max_age(Duration::ZERO);
    c
}

/// The known-device cookie.
pub fn device(value: String, https: bool, days: u64) -> Cookie<'static> {
    let mut c = build(device_name(https), value, https);
    let days = i64::try_from(days).unwrap_or(365);
    c.set_max_age(Duration::days(days));
    c
}

fn build(name: &'static str, value: String, https: bool) -> Cookie<'static> {
    Cookie::build(name, value)
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .secure(https)
        .finish()
}

/// A session cookie; it lives as long as the session's absolute lifetime.
pub fn session(value: String, https: bool, max_age_secs: i64) -> Cookie<'static> {
    let mut c = build(session_name(https), value, https);
    c.set_max_age(Duration::seconds(max_age_secs));
    c
}

/// Removes the session cookie.
pub fn clear_session(https: bool) -> Cookie<'static> {
    let mut c = build(session_name(https), String::new(), https);
    c.set_max_age(Duration::ZERO);
    c
}

/// The CSRF cookie.
pub fn csrf(value: String, https: bool) -> Cookie<'static> {
    build(csrf_name(https), value, https)
}

/// A cookie's value.
pub fn read(req: &HttpRequest, name: &str) -> Option<String> {
    req.cookie(name).map(|c| c.value().to_owned())
}

/// The CSRF check: the form's token equals the cookie's, compared in constant time.
pub fn csrf_ok(req: &HttpRequest, https: bool, form_value: Option<&str>) -> bool {
    match (read(req, csrf_name(https)), form_value) {
        (Some(cookie), Some(form)) if cookie.len() == 43 => {
            bool::from(cookie.as_bytes().ct_eq(form.as_bytes()))
        }
        _ => false,
    }
}

/// The CSRF token to put in a form: the browser's, or a new one to set.
pub fn csrf_token(req: &HttpRequest, https: bool) -> (String, Option<Cookie<'static>>) {
    match read(req, csrf_name(https)).filter(|v| v.len() == 43) {
        Some(v) => (v, None),
        None => {
            let v = crate::crypto::token::random_token().unwrap_or_default();
            (v.clone(), Some(csrf(v, https)))
        }
    }
}

/// Adds `cookie` (if any) to a response; a cookie that cannot be encoded is a 500.
pub fn with_cookie(res: HttpResponse, cookie: Option<Cookie<'static>>) -> HttpResponse {
    with_cookies(res, cookie)
}

/// Adds every cookie to a response; a cookie that cannot be encoded is a 500.
pub fn with_cookies(
    mut res: HttpResponse,
    cookies: impl IntoIterator<Item = Cookie<'static>>,
) -> HttpResponse {
    for c in cookies {
        if let Err(e) = res.add_cookie(&c) {
            return super::error::internal(&e);
        }
    }
    res
}
