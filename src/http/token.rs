//! `POST /token` (RFC 6749 §3.2).

use actix_web::{web, HttpRequest, HttpResponse};

use super::{error, forms, no_store, AppState};
use crate::service::token::token;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/token", web::post().to(token_post));
}

async fn token_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Payload,
) -> HttpResponse {
    let request = match forms::client_request(&req, body, &state.settings.proxy.trusted).await {
        Ok(r) => r,
        Err(e) => return error::oauth_json(&e),
    };
    match token(&state, request, state.clock.now()).await {
        // RFC 6749 §5.1: no-store and no-cache on every token response.
        Ok(response) => no_store(HttpResponse::Ok()).json(response),
        Err(e) => error::token(&e),
    }
}
