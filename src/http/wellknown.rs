//! Discovery (OIDC Discovery 1.0 §4, RFC 8414 §3) and the JWKS: built once per key change
//! by the key ring, served from memory with an ETag.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::AppState;
use crate::service::Document;

/// Where the JWKS is served; advertised as `jwks_uri`.
pub const JWKS_PATH: &str = "/jwks.json";

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/.well-known/openid-configuration",
        web::get().to(openid_configuration),
    )
    .route(
        "/.well-known/oauth-authorization-server",
        web::get().to(oauth_metadata),
    )
    .route(JWKS_PATH, web::get().to(jwks));
}

async fn openid_configuration(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    serve(&req, &state, &state.keys.published().openid_configuration)
}

async fn oauth_metadata(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    serve(&req, &state, &state.keys.published().oauth_metadata)
}

async fn jwks(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    // RFC 7517 §8.5.1: application/jwk-set+json; plain JSON parsers accept it too.
    serve(&req, &state, &state.keys.published().jwks)
}

/// 304 when the client's `If-None-Match` names the current ETag (RFC 9110 §13.1.2).
fn serve(req: &HttpRequest, state: &AppState, doc: &Document) -> HttpResponse {
    let max_age = state.settings.keys.jwks_max_age_secs;
    let cache = format!("public, max-age={max_age}");
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == doc.etag || t.trim() == "*")
        });
    let mut res = if matches {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, doc.etag.clone()))
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"));
    if matches {
        res.finish()
    } else {
        res.content_type("application/json").body(doc.bytes.clone())
    }
}
