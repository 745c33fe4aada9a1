//! `/userinfo` (OIDC Core §5.3), `/introspect` (RFC 7662), `/revoke` (RFC 7009).

use actix_web::{web, HttpRequest, HttpResponse};

use super::{error, forms, no_store, AppState};
use crate::oidc::OAuthError;
use crate::service::resource::{introspect, revoke, userinfo, BearerError};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/userinfo", web::get().to(userinfo_get))
        .route("/userinfo", web::post().to(userinfo_post))
        .route("/introspect", web::post().to(introspect_post))
        .route("/revoke", web::post().to(revoke_post));
}

/// The token from `Authorization: Bearer` (RFC 6750 §2.1).
fn bearer_header(req: &HttpRequest) -> Result<Option<String>, BearerError> {
    let Some(value) = forms::authorization(req) else {
        return Ok(None);
    };
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim().to_owned()))
        }
        _ => Err(BearerError::OAuth(OAuthError::invalid_request(
            "the Authorization header is not a Bearer token",
        ))),
    }
}

async fn userinfo_get(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match bearer_header(&req) {
        Ok(token) => answer_userinfo(&state, token.as_deref()).await,
        Err(e) => error::bearer(&e),
    }
}

/// POST may carry the token in the form body instead (RFC 6750 §2.2), never both (§2).
async fn userinfo_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Payload,
) -> HttpResponse {
    let header = match bearer_header(&req) {
        Ok(t) => t,
        Err(e) => return error::bearer(&e),
    };
    let is_form = req.headers().get("content-type").is_some();
    let body_token = if is_form {
        match forms::form_pairs(&req, body).await {
            Ok(pairs) => forms::field(&pairs, "access_token").map(str::to_owned),
            Err(e) => return error::bearer(&BearerError::OAuth(e)),
        }
    } else {
        None
    };
    match (header, body_token) {
        (Some(_), Some(_)) => error::bearer(&BearerError::OAuth(OAuthError::invalid_request(
            "more than one way of sending the token",
        ))),
        (h, b) => answer_userinfo(&state, h.or(b).as_deref()).await,
    }
}

async fn answer_userinfo(state: &AppState, token: Option<&str>) -> HttpResponse {
    match userinfo(state, token, state.clock.now()).await {
        Ok(claims) => no_store(HttpResponse::Ok()).json(claims),
        Err(e) => error::bearer(&e),
    }
}

async fn introspect_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Payload,
) -> HttpResponse {
    let request = match forms::client_request(&req, body, &state.settings.proxy.trusted).await {
        Ok(r) => r,
        Err(e) => return error::oauth_json(&e),
    };
    match introspect(&state, request, state.clock.now()).await {
        Ok(v) => no_store(HttpResponse::Ok()).json(v),
        Err(e) => error::token(&e),
    }
}

async fn revoke_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Payload,
) -> HttpResponse {
    let request = match forms::client_request(&req, body, &state.settings.proxy.trusted).await {
        Ok(r) => r,
        Err(e) => return error::oauth_json(&e),
    };
    match revoke(&state, request, state.clock.now()).await {
        Ok(()) => no_store(HttpResponse::Ok()).finish(),
        Err(e) => error::token(&e),
    }
}
