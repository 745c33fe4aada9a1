//! Security headers on every response and one log line per request.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{DefaultHeaders, Next};
use tracing::Instrument;

/// Headers every response carries unless a handler set its own (RFC 9700 §4.16 on
/// clickjacking; `no-referrer` keeps codes and tokens out of Referer).
pub fn security_headers(https: bool) -> DefaultHeaders {
    let mut h = DefaultHeaders::new()
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("X-Frame-Options", "DENY"))
        // Pages that post to a client, run the passkey script or show a QR code set their
        // own (`csp.rs`).
        .add((
            "Content-Security-Policy",
            super::csp::policy(super::csp::Page::Plain, &[]),
        ))
        .add(("Cache-Control", "no-store"));
    if https {
        h = h.add((
            "Strict-Transport-Security",
            "max-age=63072000; includeSubDomains",
        ));
    }
    h
}

/// Logs method, path (never the query: it may carry codes), status and latency, under a
/// random request id that is also returned as `X-Request-Id`.
pub async fn log_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let method = req.method().to_string();
    let path = req.path().to_owned();
    let started = Instant::now();
    let span = tracing::info_span!("request", request_id = %request_id);
    let mut res = next.call(req).instrument(span.clone()).await?;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        res.headers_mut()
            .insert(HeaderName::from_static("x-request-id"), v);
    }
    let status = res.status().as_u16();
    let micros = started.elapsed().as_micros();
    span.in_scope(|| tracing::info!(%request_id, %method, %path, status, micros, "request"));
    Ok(res)
}
