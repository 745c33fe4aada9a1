//! The ONLY place where errors become status codes and bodies.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use crate::crypto::CryptoError;
use crate::oidc::{ClientAuthError, ErrorCode, OAuthError};
use crate::service::resource::BearerError;
use crate::service::token::TokenError;
use crate::service::ServiceError;
use crate::store::StoreError;

/// Seconds a client is asked to wait when the database is unreachable.
const OUTAGE_RETRY_AFTER: &str = "5";

/// True when `e` or one of its causes is a database outage (`StoreError::Unavailable`).
fn is_outage(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if matches!(
            c.downcast_ref::<StoreError>(),
            Some(StoreError::Unavailable(_))
        ) {
            return true;
        }
        cause = c.source();
    }
    false
}

fn retry_after(mut res: HttpResponse, secs: &'static str) -> HttpResponse {
    res.headers_mut().insert(
        actix_web::http::header::RETRY_AFTER,
        actix_web::http::header::HeaderValue::from_static(secs),
    );
    res
}

/// An unexpected failure: log the whole cause chain, answer with an opaque message. A
/// database outage is `503 temporarily_unavailable` with `Retry-After` (RFC 9110 §15.6.4),
/// still an OAuth error body: nothing was changed, and the client may try again.
pub fn internal(e: &(dyn std::error::Error + 'static)) -> HttpResponse {
    if is_outage(e) {
        tracing::warn!(error = %chain(e), "database unavailable");
        let res = oauth_json(&OAuthError::temporarily_unavailable(
            "the service is temporarily unavailable; try again shortly",
        ));
        return retry_after(res, OUTAGE_RETRY_AFTER);
    }
    tracing::error!(error = %chain(e), "request failed");
    HttpResponse::InternalServerError()
        .json(serde_json::json!({"error": "server_error", "error_description": "internal error"}))
}

/// A dependency is down (`/readyz`).
pub fn unavailable(e: &(dyn std::error::Error + 'static)) -> HttpResponse {
    tracing::warn!(error = %chain(e), "not ready");
    HttpResponse::ServiceUnavailable()
        .content_type("text/plain")
        .body("not ready")
}

/// `error: cause: cause ...`
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The status for an OAuth error code (RFC 6749 §5.2, RFC 6750 §3.1, RFC 7009 §2.2.1).
fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
        ErrorCode::InsufficientScope => StatusCode::FORBIDDEN,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

fn error_body(e: &OAuthError) -> serde_json::Value {
    serde_json::json!({ "error": e.code.as_str(), "error_description": e.description })
}

/// A JSON error from the token, revocation or introspection endpoint (RFC 6749 §5.2),
/// never cached.
pub fn oauth_json(e: &OAuthError) -> HttpResponse {
    super::no_store(HttpResponse::build(status_of(e.code))).json(error_body(e))
}

/// Failed client authentication: 401, with `WWW-Authenticate: Basic` when the client used
/// Basic (RFC 6749 §5.2). A malformed request that happened to use Basic (two methods at
/// once, mismatched ids) is `invalid_request` and stays a 400.
pub fn client_auth(e: &ClientAuthError) -> HttpResponse {
    if e.error.code != ErrorCode::InvalidClient {
        return oauth_json(&e.error);
    }
    let mut res = super::no_store(HttpResponse::Unauthorized());
    if e.basic_used {
        res.insert_header((
            "WWW-Authenticate",
            "Basic realm=\"latchkey\", charset=\"UTF-8\"",
        ));
    }
    res.json(error_body(&e.error))
}

/// Maps a token-endpoint failure.
pub fn token(e: &TokenError) -> HttpResponse {
    match e {
        TokenError::Client(c) => client_auth(c),
        TokenError::OAuth(o) => oauth_json(o),
        TokenError::Internal(i) => internal(i),
    }
}

/// A bearer-token failure (RFC 6750 §3).
pub fn bearer(e: &BearerError) -> HttpResponse {
    let challenge = match e {
        BearerError::Missing => "Bearer realm=\"latchkey\"".to_owned(),
        BearerError::OAuth(o) => format!(
            "Bearer realm=\"latchkey\", error=\"{}\", error_description=\"{}\"",
            o.code.as_str(),
            // Already inside RFC 6749's set (no `"`, no `\`): see `OAuthError::new`.
            o.description
        ),
        BearerError::Internal(i) => return internal(i),
    };
    let status = match e {
        BearerError::OAuth(o) => status_of(o.code),
        _ => StatusCode::UNAUTHORIZED,
    };
    let mut res = HttpResponse::build(status);
    res.insert_header(("WWW-Authenticate", challenge))
        .insert_header(("Cache-Control", "no-store"));
    match e {
        BearerError::OAuth(o) => res.json(error_body(o)),
        _ => res.finish(),
    }
}

/// An error the user sees as a page, never a redirect.
pub fn page(status: StatusCode, e: &OAuthError) -> HttpResponse {
    let ctx =
        minijinja::context! { code => e.code.as_str(), description => e.description.as_ref() };
    super::ui::page(status, "error.html", ctx)
}

/// A use case failed unexpectedly.
pub fn service(e: &ServiceError) -> HttpResponse {
    match e {
        ServiceError::Invalid(p) => page(
            StatusCode::BAD_REQUEST,
            &OAuthError::invalid_request(p.to_string()),
        ),
        // The password-hashing queue is full: come back in a moment (RFC 9110 §15.6.4).
        ServiceError::Crypto(CryptoError::Busy) => retry_after(
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                &OAuthError::temporarily_unavailable(
                    "too many sign-ins at once; try again in a moment",
                ),
            ),
            "1",
        ),
        other if is_outage(other) => {
            tracing::warn!(error = %chain(other), "database unavailable");
            retry_after(
                page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &OAuthError::temporarily_unavailable(
                        "the service is temporarily unavailable; try again shortly",
                    ),
                ),
                OUTAGE_RETRY_AFTER,
            )
        }
        other => internal(other),
    }
}
