//! Reading request parameters: query strings and `application/x-www-form-urlencoded`
//! bodies of bounded size. Anything else is `invalid_request`, never a 500.

use std::net::IpAddr;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;

use crate::config::ServerSettings;
use crate::oidc::OAuthError;
use crate::service::token::ClientRequest;
use crate::service::AppState;

/// The largest form body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The decoded query string.
pub fn query_pairs(req: &HttpRequest) -> Vec<(String, String)> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect()
}

/// The decoded form body (RFC 6749 §3.2: `application/x-www-form-urlencoded`).
pub async fn form_pairs<S>(
    req: &HttpRequest,
    mut payload: S,
) -> Result<Vec<(String, String)>, OAuthError>
where
    S: futures_util::Stream<Item = Result<web::Bytes, actix_web::error::PayloadError>> + Unpin,
{
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
    // actix bounds the wait for the request head only; the body gets a deadline here, so a
    // client sending one byte a second cannot hold the socket and the buffer.
    let deadline = body_timeout(req);
    let body = tokio::time::timeout(deadline, read_body(&mut payload))
        .await
        .map_err(|_| OAuthError::invalid_request("the body did not arrive in time"))??;
    Ok(url::form_urlencoded::parse(&body).into_owned().collect())
}

/// `server.body_timeout_secs`, or its default when the app has no settings (unit tests).
fn body_timeout(req: &HttpRequest) -> Duration {
    let secs = req.app_data::<web::Data<AppState>>().map_or_else(
        || ServerSettings::default().body_timeout_secs,
        |state| state.settings.server.body_timeout_secs,
    );
    Duration::from_secs(secs)
}

async fn read_body<S>(payload: &mut S) -> Result<web::BytesMut, OAuthError>
where
    S: futures_util::Stream<Item = Result<web::Bytes, actix_web::error::PayloadError>> + Unpin,
{
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| OAuthError::invalid_request("the body could not be read"))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(OAuthError::invalid_request("the body is too large"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
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

/// The client's address: the peer, or, when the peer is a trusted proxy, the right-most
/// `X-Forwarded-For` entry that is not a trusted proxy. Anyone can send the header, so it
/// is believed only from the configured proxies.
///
/// Addresses are canonicalised first (an IPv4-mapped IPv6 address is its IPv4 address), so
/// a dual-stack listener cannot give one client two identities, neither for the throttle
/// nor for matching `proxy.trusted`.
pub fn client_ip(req: &HttpRequest, trusted: &[IpAddr]) -> String {
    let trusted: Vec<IpAddr> = trusted.iter().map(IpAddr::to_canonical).collect();
    let trusted = trusted.as_slice();
    let Some(mut client) = req.peer_addr().map(|a| a.ip().to_canonical()) else {
        return String::new();
    };
    if !trusted.contains(&client) {
        return client.to_string();
    }
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for hop in forwarded.iter().rev() {
        match hop.trim().parse::<IpAddr>().map(|ip| ip.to_canonical()) {
            Ok(ip) => {
                client = ip;
                if !trusted.contains(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client.to_string()
}

/// `User-Agent`, for the session list.
pub fn user_agent(req: &HttpRequest) -> String {
    req.headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// A client-authenticated form POST: the `Authorization` header, the form, the client IP.
pub async fn client_request(
    req: &HttpRequest,
    body: web::Payload,
    trusted: &[IpAddr],
) -> Result<ClientRequest, OAuthError> {
    Ok(ClientRequest {
        authorization: authorization(req),
        pairs: form_pairs(req, body).await?,
        ip: client_ip(req, trusted),
    })
}
