//! Client authentication at the token, revocation and introspection endpoints
//! (RFC 6749 §2.3): `client_secret_basic`, `client_secret_post`, or `none` for public
//! clients.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::{OAuthError, Params};
use crate::domain::{Client, ClientId, ClientKind, SecretString};

/// The one description for every authentication failure, so the response does not tell
/// which check failed.
const FAILED: &str = "client authentication failed";

/// A client-authentication failure. `basic_used` tells the HTTP layer to answer 401 with
/// `WWW-Authenticate: Basic` (RFC 6749 §5.2: "If the client attempted to authenticate via
/// the Authorization request header field, the authorization server MUST respond with an
/// HTTP 401 (Unauthorized) status code and include the WWW-Authenticate response header").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct ClientAuthError {
    /// The OAuth error.
    pub error: OAuthError,
    /// True when the client tried the `Authorization` header.
    pub basic_used: bool,
}

/// The credentials a request carried. Secrets print as `[redacted]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresentedCredentials {
    /// `client_secret_basic` (RFC 6749 §2.3.1, HTTP Basic).
    Basic {
        /// The client id from the header.
        client_id: ClientId,
        /// The secret from the header.
        secret: SecretString,
    },
    /// `client_secret_post` (RFC 6749 §2.3.1, in the form body).
    Post {
        /// The `client_id` parameter.
        client_id: ClientId,
        /// The `client_secret` parameter.
        secret: SecretString,
    },
    /// `none`: a public client sends only its id (RFC 6749 §2.1, §3.2.1).
    None {
        /// The `client_id` parameter.
        client_id: ClientId,
    },
}

impl PresentedCredentials {
    /// The presented client id, to look the client up by.
    pub fn client_id(&self) -> &ClientId {
        match self {
            Self::Basic { client_id, .. }
            | Self::Post { client_id, .. }
            | Self::None { client_id } => client_id,
        }
    }

    /// True for HTTP Basic.
    pub fn is_basic(&self) -> bool {
        matches!(self, Self::Basic { .. })
    }
}

fn fail(error: OAuthError, basic_used: bool) -> ClientAuthError {
    ClientAuthError { error, basic_used }
}

/// Reads the credentials from the `Authorization` header and the body. RFC 6749 §2.3: "The
/// client MUST NOT use more than one authentication method in each request."
pub fn presented_credentials(
    authorization_header: Option<&str>,
    params: &Params,
) -> Result<PresentedCredentials, ClientAuthError> {
    check_no_assertion(params, authorization_header.is_some())?;
    match authorization_header {
        Some(header) => {
            let (client_id, secret) = parse_basic(header)?;
            check_single_method(params, &client_id)?;
            Ok(PresentedCredentials::Basic { client_id, secret })
        }
        None => from_body(params),
    }
}

/// Only the methods advertised in discovery are accepted; JWT client assertions
/// (RFC 7523) are not among them.
fn check_no_assertion(params: &Params, basic_used: bool) -> Result<(), ClientAuthError> {
    if params.contains("client_assertion") || params.contains("client_assertion_type") {
        return Err(fail(
            OAuthError::invalid_client("unsupported client authentication method"),
            basic_used,
        ));
    }
    Ok(())
}

/// RFC 6749 §2.3.1 and RFC 7617 §2: `Basic base64(urlencode(id) ":" urlencode(secret))`,
/// where both parts are first encoded with application/x-www-form-urlencoded.
fn parse_basic(header: &str) -> Result<(ClientId, SecretString), ClientAuthError> {
    let bad = || fail(OAuthError::invalid_client(FAILED), true);
    let (scheme, encoded) = header.trim().split_once(' ').ok_or_else(bad)?;
    // RFC 7235 §2.1: the auth-scheme is case-insensitive.
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad());
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    let id = form_urldecode(id).ok_or_else(bad)?;
    let secret = form_urldecode(secret).ok_or_else(bad)?;
    let client_id = ClientId::parse(&id).map_err(|_| bad())?;
    Ok((client_id, SecretString::new(secret)))
}

/// RFC 6749 §2.3: Basic plus a `client_secret` in the body is two methods; a body
/// `client_id` that names another client is contradictory. Both are `invalid_request`.
fn check_single_method(params: &Params, basic_id: &ClientId) -> Result<(), ClientAuthError> {
    if params.contains("client_secret") {
        return Err(fail(
            OAuthError::invalid_request("use one client authentication method, not two"),
            true,
        ));
    }
    match params.get("client_id") {
        Some(id) if id != basic_id.as_str() => Err(fail(
            OAuthError::invalid_request("client_id does not match the Authorization header"),
            true,
        )),
        _ => Ok(()),
    }
}

/// `client_secret_post` or `none`, from the form body (RFC 6749 §2.3.1, §3.2.1).
fn from_body(params: &Params) -> Result<PresentedCredentials, ClientAuthError> {
    let Some(raw_id) = params.get("client_id") else {
        // §5.2 invalid_client: "no client authentication included".
        return Err(fail(OAuthError::invalid_client(FAILED), false));
    };
    let client_id =
        ClientId::parse(raw_id).map_err(|_| fail(OAuthError::invalid_client(FAILED), false))?;
    Ok(match params.get("client_secret") {
        Some(secret) => PresentedCredentials::Post {
            client_id,
            secret: SecretString::new(secret),
        },
        None => PresentedCredentials::None { client_id },
    })
}

/// Decodes one application/x-www-form-urlencoded component: `+` is a space, `%XX` a byte.
/// `None` for a broken escape or invalid UTF-8.
fn form_urldecode(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                // Two hex digits exactly: `from_str_radix` alone would take "%+1" as 0x01.
                let hex = bytes.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Authenticates the presented credentials against the registered client.
/// `secret_ok(presented_secret, stored_hash)` is the caller's constant-time keyed-hash
/// check. Every failure is `invalid_client` with the same description (RFC 6749 §5.2).
pub fn authenticate(
    presented: &PresentedCredentials,
    client: Option<&Client>,
    secret_ok: impl Fn(&str, &[u8]) -> bool,
) -> Result<ClientId, ClientAuthError> {
    let refused = || fail(OAuthError::invalid_client(FAILED), presented.is_basic());
    let client = client
        .filter(|c| &c.id == presented.client_id())
        .ok_or_else(refused)?;
    let ok = match (client.kind, presented) {
        // RFC 6749 §2.3.1: confidential clients authenticate with their secret.
        (ClientKind::Confidential, PresentedCredentials::Basic { secret, .. })
        | (ClientKind::Confidential, PresentedCredentials::Post { secret, .. }) => client
            .secret_hash
            .as_deref()
            .is_some_and(|hash| secret_ok(secret.expose(), hash)),
        // RFC 6749 §3.2.1: a confidential client MUST authenticate.
        (ClientKind::Confidential, PresentedCredentials::None { .. }) => false,
        // A public client has no secret (§2.1); one presenting a secret is misconfigured
        // and refused rather than silently accepted.
        (ClientKind::Public, PresentedCredentials::None { .. }) => true,
        (ClientKind::Public, _) => false,
    };
    if ok {
        Ok(client.id.clone())
    } else {
        Err(refused())
    }
}

#[cfg(test)]
mod tests;
