//! The ONLY place where errors become status codes and bodies.

use actix_web::HttpResponse;

/// An unexpected failure: log the whole cause chain, answer with an opaque message.
pub fn internal(e: &(dyn std::error::Error + 'static)) -> HttpResponse {
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
