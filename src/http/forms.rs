//! Reading request parameters: query strings and `application/x-www-form-urlencoded`
//! bodies of bounded size. Anything else is `invalid_request`, never a 500.

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;

use crate::oidc::OAuthError;
use crate::service::token::ClientRequest;

/// The largest form body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The decoded query string.
pub fn query_pairs(req: &HttpRequest) -> Vec<(String, String)> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect()
}

/// The decoded form body (RFC 6749 §3.2: `application/x-www-form-urlencoded`).
pub async fn form_pairs(
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<Vec<(String, String)>, OAuthError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| OAuthError::invalid_request("the body could not be read"))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(OAuthError::invalid_request("the body is too large"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(url::form_urlencoded::parse(&body).into_owned().collect())
}

/// The first value of `name`.
pub fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The `Authorization` header, if it is valid text.
pub fn authorization(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The peer address (not `X-Forwarded-For`, which anyone can send).
pub fn peer_ip(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default()
}

/// `User-Agent`, for the session list.
pub fn user_agent(req: &HttpRequest) -> String {
    req.headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// A client-authenticated form POST: the `Authorization` header, the form, the peer IP.
pub async fn client_request(
    req: &HttpRequest,
    body: web::Payload,
) -> Result<ClientRequest, OAuthError> {
    Ok(ClientRequest {
        authorization: authorization(req),
        pairs: form_pairs(req, body).await?,
        ip: peer_ip(req),
    })
}
