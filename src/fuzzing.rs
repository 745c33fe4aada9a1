//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz, libFuzzer). Each takes the raw
//! fuzzer input and drives one parser or check the way the server does; the fuzz targets
//! call them, and `tests/api/fuzz_corpus.rs` replays the committed corpus through the same
//! functions in an ordinary `cargo test`.
//!
//! Every function returns normally on every input. `Err` names a broken invariant (a
//! property that must hold whatever the input), which the fuzz target turns into a crash.
//! Not part of the server: hidden from the docs.

use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use url::form_urlencoded;

use crate::crypto::{verify, Expected, PublicJwk, VerifyingKeys};
use crate::domain::{
    Client, ClientId, ClientKind, GrantType, RedirectUri, ResourceUri, Scope, SecretString,
};
use crate::oidc::{
    check_client_and_redirect, check_request, parse_token_request, presented_credentials,
    AccessTokenClaims, IdTokenClaims, OAuthError, Params, PresentedCredentials, MAX_STATE_BYTES,
};

/// A broken invariant: what the fuzzer should report as a crash.
pub type Violation = &'static str;

/// The issuer the JWT target expects.
pub const ISSUER: &str = "https://issuer.example";
/// The `now` the JWT target judges tokens by (2027-01-15).
pub const NOW: i64 = 1_800_000_000;
/// The `kid` of the one key in the JWT target's key set (its RFC 7638 thumbprint).
pub const KID: &str = "2TD9hTK04SHqsS16gTvJAUufa8hKXFaR0k8JL4TNjyI";
/// The modulus of that key. The valid tokens in `fuzz/corpus/jwt/` were signed once with its
/// private half, which was then discarded: only verification is fuzzed.
const KEY_N: &str = "2LfcrcA-NapuR5Rgc_5BTGRmxRf2selBQEA0wEp2fwm6L7R6udRIXzQRMe-AStH8yF-xb81TaQICyKtnY2yb0UIkH9sYRQNCEZUW63lE8mewBRRFSTT2A_CdPSk5NexiaR-BaVSCWQRglaocZ56JCtsKGowA4O1XzQ6v5FLBTouF2mnOT3drPQ4cIrWlea5ctfn8zMRaNAst4Paqbywn-1WRSUZfdOEwn8o04HXajgutm1TFt3-bKSMCfGmZAEJmjTGYg355zFpISsOAs8fN09a0xZ4mdIBo5aeAzyYe6M5aU8TpblrikBjfsS3ub6iFmSnORsSxGi8P0WZjEDc_2Q";
const KEY_E: &str = "AQAB";

/// The decoded pairs of a query string or form body, exactly as `http::forms` reads them.
fn form_pairs(data: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(data).into_owned().collect()
}

/// RFC 6749 §5.2: an `error_description` carries only %x20-21 / %x23-5B / %x5D-7E.
fn check_description(error: &OAuthError) -> Result<(), Violation> {
    let ok = error
        .description
        .chars()
        .all(|c| matches!(c, '\x20'..='\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E'));
    ok.then_some(())
        .ok_or("error_description has a character RFC 6749 forbids")
}

/// The fixed clients the authorize and redirect targets check against: a confidential web
/// client and a public native client with loopback and private-use redirect URIs.
fn clients() -> &'static [Client] {
    static CLIENTS: OnceLock<Vec<Client>> = OnceLock::new();
    CLIENTS.get_or_init(|| {
        let web = client(
            "app",
            ClientKind::Confidential,
            &["https://app.example/cb", "https://app.example/cb?tenant=1"],
        );
        let native = client(
            "native",
            ClientKind::Public,
            &[
                "http://127.0.0.1:8000/cb",
                "http://[::1]/cb?x=1",
                "com.example.app:/oauth",
            ],
        );
        web.into_iter().chain(native).collect()
    })
}

fn client(id: &str, kind: ClientKind, redirects: &[&str]) -> Option<Client> {
    Some(Client {
        id: ClientId::parse(id).ok()?,
        name: id.to_owned(),
        kind,
        secret_hash: (kind == ClientKind::Confidential).then(|| b"hash".to_vec()),
        redirect_uris: redirects
            .iter()
            .map(|u| RedirectUri::parse("redirect_uri", u))
            .collect::<Result<_, _>>()
            .ok()?,
        post_logout_redirect_uris: Vec::new(),
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scope: Scope::parse("openid profile email offline_access api:read").ok()?,
        resources: vec![ResourceUri::parse("https://api.example/").ok()?],
        access_token_ttl: None,
        first_party: false,
        require_mfa: kind == ClientKind::Public,
        end_offline_on_logout: false,
        introspect_any: false,
        tokens_revoked_at: 0,
        refresh_grace_secs: 0,
        created_at: 0,
    })
}

/// Target `authorize`: `data` is an authorization request's query string. Decoded as the
/// server decodes it, then `Params::from_pairs`, the stage-1 checks against the client the
/// `client_id` names (if any of the fixed ones), and the stage-2 checks.
pub fn authorize(data: &[u8]) -> Result<(), Violation> {
    let params = match Params::from_pairs(form_pairs(data)) {
        Ok(params) => params,
        Err(e) => return check_description(&e),
    };
    let client_id = params.get("client_id");
    let client = clients().iter().find(|c| Some(c.id.as_str()) == client_id);
    let redirect_uri =
        match check_client_and_redirect(client, client_id, params.get("redirect_uri")) {
            Ok(uri) => uri,
            Err(e) => return check_description(&e.error),
        };
    let client = client.ok_or("stage 1 passed without a client")?;
    if !client.has_redirect_uri(&redirect_uri) {
        return Err("stage 1 passed an unregistered redirect_uri");
    }
    match check_request(&params, client, redirect_uri) {
        Ok(request) => check_authorization_request(&request, client),
        Err(e) if !client.has_redirect_uri(&e.redirect_uri) => {
            Err("an error is redirected to an unregistered redirect_uri")
        }
        Err(e) => check_description(&e.error),
    }
}

fn check_authorization_request(
    request: &crate::oidc::AuthorizationRequest,
    client: &Client,
) -> Result<(), Violation> {
    if request.scope.is_empty() || !request.scope.is_subset_of(&client.scope) {
        return Err("an accepted scope is empty or exceeds the client's");
    }
    if request
        .state
        .as_ref()
        .is_some_and(|s| s.len() > MAX_STATE_BYTES)
    {
        return Err("an accepted state is too long");
    }
    if request
        .resource
        .as_ref()
        .is_some_and(|r| !client.resources.contains(r))
    {
        return Err("an accepted resource is not registered");
    }
    let public_not_https =
        client.kind == ClientKind::Public && !request.redirect_uri.starts_with("https://");
    if request.requires_interaction != public_not_https {
        return Err("requires_interaction disagrees with RFC 8252 §8.6");
    }
    // The checked request is stored between the login and consent pages.
    let stored = serde_json::to_string(request).map_err(|_| "a request does not serialise")?;
    match serde_json::from_str::<crate::oidc::AuthorizationRequest>(&stored) {
        Ok(back) if back == *request => Ok(()),
        _ => Err("a stored request does not read back the same"),
    }
}

/// Target `token`: `data` is a token request body (`application/x-www-form-urlencoded`),
/// through `Params::from_pairs` and `parse_token_request`.
pub fn token(data: &[u8]) -> Result<(), Violation> {
    let params = match Params::from_pairs(form_pairs(data)) {
        Ok(params) => params,
        Err(e) => return check_description(&e),
    };
    match parse_token_request(&params) {
        Ok(request) => {
            if request.grant_type().as_str() != params.get("grant_type").unwrap_or_default() {
                return Err("the parsed grant differs from grant_type");
            }
            Ok(())
        }
        Err(e) => check_description(&e),
    }
}

/// Target `basic`: `data` is `Authorization header value` `\n` `form body`; an input without
/// a newline has no body, an empty header line means no header. The header goes through
/// `presented_credentials` as actix hands it over (only when it is visible ASCII).
///
/// A second property: the header value read as `client_id` TAB `secret` is encoded the way
/// RFC 6749 §2.3.1 says a client must, and must decode back to the same two strings.
pub fn basic(data: &[u8]) -> Result<(), Violation> {
    let mut lines = data.splitn(2, |&b| b == b'\n');
    let header = lines.next().unwrap_or_default();
    let body = lines.next().unwrap_or_default();
    let params = match Params::from_pairs(form_pairs(body)) {
        Ok(params) => params,
        Err(e) => return check_description(&e),
    };
    let header = std::str::from_utf8(header).ok();
    if let Some(value) = header.filter(|h| is_header_value(h)) {
        let presented = if value.is_empty() { None } else { Some(value) };
        match presented_credentials(presented, &params) {
            Ok(PresentedCredentials::Basic { client_id, secret }) => {
                let decoded = presented.and_then(reference_basic_decoding);
                if decoded != Some((client_id.as_str().to_owned(), secret.expose().to_owned())) {
                    return Err("Basic decoded otherwise than application/x-www-form-urlencoded");
                }
            }
            Ok(_) => {}
            Err(e) if e.basic_used != presented.is_some() => {
                return Err("basic_used disagrees with the header's presence")
            }
            Err(e) => check_description(&e.error)?,
        }
    }
    match header.and_then(|h| h.split_once('\t')) {
        Some((id, secret)) => basic_round_trip(id, secret),
        None => Ok(()),
    }
}

/// The oracle for Basic decoding: RFC 7617 §2 base64 of `id:secret`, each half decoded by
/// the `url` crate's application/x-www-form-urlencoded parser (RFC 6749 §2.3.1).
fn reference_basic_decoding(header: &str) -> Option<(String, String)> {
    let (_, encoded) = header.trim().split_once(' ')?;
    let text = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = text.split_once(':')?;
    let decode = |s: &str| {
        let pair = format!("x={}", s.replace('&', "%26").replace('=', "%3D"));
        form_urlencoded::parse(pair.as_bytes())
            .next()
            .map_or_else(String::new, |(_, v)| v.into_owned())
    };
    Some((decode(id), decode(secret)))
}

/// What `HeaderValue::to_str` accepts: visible ASCII, space and tab.
fn is_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7F).contains(&b))
}

/// RFC 6749 §2.3.1: `Basic base64(urlencode(id) ":" urlencode(secret))` decodes to `id` and
/// `secret`, for every valid client id and any secret.
fn basic_round_trip(id: &str, secret: &str) -> Result<(), Violation> {
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let header = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(id), encode(secret)))
    );
    let result = presented_credentials(Some(&header), &Params::default());
    match (ClientId::parse(id), result) {
        (
            Ok(want),
            Ok(PresentedCredentials::Basic {
                client_id,
                secret: got,
            }),
        ) if client_id == want && got == SecretString::new(secret) => Ok(()),
        (Ok(_), _) => Err("a well-encoded Basic header did not decode to its id and secret"),
        (Err(_), Ok(_)) => Err("Basic accepted an invalid client_id"),
        (Err(_), Err(_)) => Ok(()),
    }
}

/// Target `redirect_uri`: `data` is `registered` `\n` `presented`. The registered URI goes
/// through `RedirectUri::parse` and `check_registrable`; the presented one through the
/// matching the authorize endpoint uses (`check_client_and_redirect`).
///
/// Properties: a URI always matches itself; a match that is not the exact string is a
/// loopback IP `http` URI on another port only (RFC 8252 §7.3); anything matched is itself
/// a URI that registration would accept.
pub fn redirect_uri(data: &[u8]) -> Result<(), Violation> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let (registered, presented) = text.split_once('\n').unwrap_or((text, text));
    let Ok(uri) = RedirectUri::parse("redirect_uri", registered) else {
        return Ok(());
    };
    let _ = uri.check_registrable("redirect_uri");
    if !uri.matches(registered) {
        return Err("a redirect URI does not match itself");
    }
    let Some(mut client) = client("fuzz", ClientKind::Public, &[]) else {
        return Ok(());
    };
    client.redirect_uris = vec![uri];
    let checked = check_client_and_redirect(Some(&client), Some("fuzz"), Some(presented));
    match checked {
        Ok(got) if got == registered => Ok(()),
        Ok(got) => check_port_only_difference(registered, &got),
        Err(e) => check_description(&e.error),
    }
}

/// `presented` matched `registered` without being the same string: both must be `http` on
/// the same loopback IP literal, equal but for the port, and `presented` registrable.
fn check_port_only_difference(registered: &str, presented: &str) -> Result<(), Violation> {
    let (Ok(mut r), Ok(p)) = (url::Url::parse(registered), url::Url::parse(presented)) else {
        return Err("a matched redirect URI does not parse");
    };
    let loopback_ip = matches!(
        p.host(),
        Some(url::Host::Ipv4(ip)) if ip.is_loopback()
    ) || matches!(p.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback());
    if p.scheme() != "http" || !loopback_ip {
        return Err("a non-exact redirect match is not a loopback IP http URI");
    }
    if r.set_port(p.port()).is_err() || r != p {
        return Err("a non-exact redirect match differs in more than the port");
    }
    if RedirectUri::parse("redirect_uri", presented).is_err() {
        return Err("a matched redirect URI would not be accepted at registration");
    }
    Ok(())
}

/// The JWT target's key set: one RS256 key.
fn keys() -> Option<&'static VerifyingKeys> {
    static KEYS: OnceLock<Option<VerifyingKeys>> = OnceLock::new();
    KEYS.get_or_init(|| {
        VerifyingKeys::from_jwks(&[PublicJwk::rsa(KID, KEY_N, KEY_E, "RS256")]).ok()
    })
    .as_ref()
}

/// Target `jwt`: `data` is a compact JWS, verified by `crypto::jwt::verify` against the
/// fixed key set the three ways the server does: as an `id_token_hint` (typ `JWT`, a long
/// leeway), as an access token (typ `at+jwt`, an audience) and as untyped claims. Only
/// `Ok` or `Err` may come back.
pub fn jwt(data: &[u8]) -> Result<(), Violation> {
    let Some(keys) = keys() else {
        return Err("the fixed key set does not load");
    };
    let token = String::from_utf8_lossy(data);
    let id_hint = Expected {
        issuer: ISSUER,
        audience: None,
        typ: Some("JWT"),
        now: NOW,
        leeway_secs: 30 * 24 * 3600,
    };
    let access = Expected {
        issuer: ISSUER,
        audience: Some("https://api.example/"),
        typ: Some("at+jwt"),
        now: NOW,
        leeway_secs: 0,
    };
    let untyped = Expected {
        issuer: ISSUER,
        audience: Some("app"),
        typ: None,
        now: NOW,
        leeway_secs: 60,
    };
    let _ = verify::<IdTokenClaims>(&token, keys, &id_hint);
    let _ = verify::<AccessTokenClaims>(&token, keys, &access);
    let _ = verify::<serde_json::Value>(&token, keys, &untyped);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The valid seeds reach the end of `verify`: the fuzzer starts from tokens whose
    /// signature holds, not only from ones refused at the header.
    #[test]
    fn valid_seeds_verify() {
        let keys = keys().unwrap();
        let id = include_str!("../fuzz/corpus/jwt/valid-id-token");
        let expected = Expected {
            issuer: ISSUER,
            audience: Some("app"),
            typ: Some("JWT"),
            now: NOW,
            leeway_secs: 0,
        };
        verify::<IdTokenClaims>(id, keys, &expected).unwrap();
        let at = include_str!("../fuzz/corpus/jwt/valid-access-token");
        let expected = Expected {
            audience: Some("https://api.example/"),
            typ: Some("at+jwt"),
            ..expected
        };
        verify::<AccessTokenClaims>(at, keys, &expected).unwrap();
    }

    #[test]
    fn fixed_clients_load() {
        assert_eq!(clients().len(), 2);
    }

    #[test]
    fn round_trip_holds_for_awkward_secrets() {
        for (id, secret) in [("app", "a:b+c%d e"), ("a%3Ab", ""), ("x", "ü\u{0}")] {
            basic_round_trip(id, secret).unwrap();
        }
    }
}
