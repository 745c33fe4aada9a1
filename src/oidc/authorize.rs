//! The authorization request (RFC 6749 §4.1.1, OIDC Core §3.1.2.1, RFC 9700 §4.1), checked in
//! two stages with different error destinations, then the login/consent decision.

use serde::{Deserialize, Serialize};

use super::acr::{required_level, AcrLevel, MAX_ACR_VALUES_BYTES};
use super::{serde_domain, CodeChallenge, OAuthError, Params};

mod decide;
use crate::domain::{Client, ClientId, GrantType, ResourceUri, Scope};
pub use decide::{consent_covers, decide, ConsentState, Decision, SessionView};

/// Longest accepted `state`, in bytes.
pub const MAX_STATE_BYTES: usize = 2048;
/// Longest accepted `nonce`, in bytes.
pub const MAX_NONCE_BYTES: usize = 512;
/// Longest accepted `login_hint`, in bytes.
pub const MAX_LOGIN_HINT_BYTES: usize = 256;

/// An error shown to the user on an error page, never redirected: the client or its
/// redirect URI could not be trusted (RFC 6749 §4.1.2.1, RFC 9700 §4.1.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct PageError {
    /// What went wrong.
    pub error: OAuthError,
}

/// An error sent back to the client's redirect URI with `error`, `error_description`,
/// `state` and `iss` (RFC 6749 §4.1.2.1, RFC 9207 §2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct RedirectError {
    /// The validated redirect URI.
    pub redirect_uri: String,
    /// The client's `state`, echoed back when it was valid.
    pub state: Option<String>,
    /// What went wrong.
    pub error: OAuthError,
}

/// The `prompt` values (OIDC Core §3.1.2.1), a space-delimited set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    /// `none`: "The Authorization Server MUST NOT display any authentication or consent
    /// user interface pages."
    pub none: bool,
    /// `login`: "The Authorization Server SHOULD prompt the End-User for reauthentication."
    pub login: bool,
    /// `consent`: "The Authorization Server SHOULD prompt the End-User for consent before
    /// returning information to the Client."
    pub consent: bool,
    /// `select_account`: "The Authorization Server SHOULD prompt the End-User to select a
    /// user account."
    pub select_account: bool,
}

/// A checked authorization request, stored between the login and consent pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    /// The requesting client.
    #[serde(with = "serde_domain::client_id")]
    pub client_id: ClientId,
    /// The registered redirect URI the response goes to.
    pub redirect_uri: String,
    /// The requested scope, a subset of the client's.
    #[serde(with = "serde_domain::scope")]
    pub scope: Scope,
    /// Opaque client value, returned unchanged (RFC 6749 §4.1.1).
    pub state: Option<String>,
    /// Replay protection for the ID token (OIDC Core §3.1.2.1).
    pub nonce: Option<String>,
    /// The PKCE challenge (RFC 7636 §4.3).
    pub code_challenge: CodeChallenge,
    /// The `prompt` values.
    pub prompt: Prompt,
    /// Maximum authentication age in seconds (OIDC Core §3.1.2.1).
    pub max_age: Option<i64>,
    /// A hint for the login page.
    pub login_hint: Option<String>,
    /// The requested audience (RFC 8707 §2).
    #[serde(with = "serde_domain::opt_resource")]
    pub resource: Option<ResourceUri>,
    /// The requested `acr` values, in order of preference (OIDC Core §3.1.2.1).
    #[serde(default)]
    pub acr_values: Vec<String>,
    /// The authentication level this request needs: from `acr_values` and the client's
    /// `require_mfa` (see [`required_level`]).
    #[serde(default)]
    pub min_level: AcrLevel,
    /// A public client with a redirect URI that is not `https` (RFC 8252 §8.6): the user
    /// must sign in or consent in this request before a code is issued.
    #[serde(default)]
    pub requires_interaction: bool,
    /// The `sub` of a verified `id_token_hint` (OIDC Core §3.1.2.1): the user the client
    /// expects. Set by the caller, which verifies the token.
    #[serde(default)]
    pub hint_sub: Option<String>,
}

// ---- Stage 1: errors the user sees ------------------------------------------------------

/// Checks the client and its redirect URI; returns the redirect URI to use. Any failure is a
/// [`PageError`]: RFC 6749 §4.1.2.1 "the authorization server SHOULD inform the resource
/// owner of the error and MUST NOT automatically redirect the user-agent to the invalid
/// redirection URI."
pub fn check_client_and_redirect(
    client: Option<&Client>,
    client_id: Option<&str>,
    redirect_uri: Option<&str>,
) -> Result<String, PageError> {
    let client = check_client(client, client_id)?;
    let redirect_uri = check_redirect_uri(client, redirect_uri)?;
    check_client_uses_code(client)?;
    Ok(redirect_uri)
}

fn page(error: OAuthError) -> PageError {
    PageError { error }
}

/// RFC 6749 §4.1.1: `client_id` is REQUIRED; an unknown client is never redirected to.
fn check_client<'c>(
    client: Option<&'c Client>,
    client_id: Option<&str>,
) -> Result<&'c Client, PageError> {
    let id = client_id.ok_or_else(|| page(OAuthError::invalid_request("client_id is required")))?;
    match client {
        Some(c) if c.id.as_str() == id => Ok(c),
        _ => Err(page(OAuthError::invalid_client("unknown client"))),
    }
}

/// OIDC Core §3.1.2.1: `redirect_uri` is REQUIRED and "MUST exactly match one of the
/// Redirection URI values for the Client pre-registered at the OpenID Provider"; RFC 9700
/// §4.1.1: exact string matching, no patterns; the one exception is the port of a loopback
/// IP redirect URI (RFC 8252 §7.3).
fn check_redirect_uri(client: &Client, redirect_uri: Option<&str>) -> Result<String, PageError> {
    let uri = redirect_uri
        .ok_or_else(|| page(OAuthError::invalid_request("redirect_uri is required")))?;
    if !client.has_redirect_uri(uri) {
        return Err(page(OAuthError::invalid_request(
            "redirect_uri is not registered for this client",
        )));
    }
    Ok(uri.to_owned())
}

/// RFC 6749 §4.1.2.1 `unauthorized_client`: the client must be registered for the
/// authorization_code grant.
fn check_client_uses_code(client: &Client) -> Result<(), PageError> {
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(page(OAuthError::unauthorized_client(
            "client is not registered for the authorization_code grant",
        )));
    }
    Ok(())
}

// ---- Stage 2: errors the client receives ------------------------------------------------

/// Checks the rest of the request once the redirect URI is trusted; every failure goes back
/// to the client (RFC 6749 §4.1.2.1).
pub fn check_request(
    params: &Params,
    client: &Client,
    redirect_uri: String,
) -> Result<AuthorizationRequest, RedirectError> {
    // The state is checked first so that later errors can carry it back.
    let state = match check_state(params.get("state")) {
        Ok(state) => state,
        Err(error) => return Err(redirect(redirect_uri, None, error)),
    };
    match check_fields(params, client, &redirect_uri, state.as_deref()) {
        Ok(request) => Ok(request),
        Err(error) => Err(redirect(redirect_uri, state, error)),
    }
}

fn redirect(redirect_uri: String, state: Option<String>, error: OAuthError) -> RedirectError {
    RedirectError {
        redirect_uri,
        state,
        error,
    }
}

/// The stage-2 pipeline, in the order of OIDC Core §3.1.2.2.
fn check_fields(
    params: &Params,
    client: &Client,
    redirect_uri: &str,
    state: Option<&str>,
) -> Result<AuthorizationRequest, OAuthError> {
    check_no_request_object(params)?;
    check_response_type(params.get("response_type"))?;
    check_response_mode(params.get("response_mode"))?;
    let scope = check_scope(params.get("scope"), client)?;
    let acr_values = check_acr_values(params.get("acr_values"))?;
    let code_challenge = CodeChallenge::parse(
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    )?;
    Ok(AuthorizationRequest {
        client_id: client.id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        scope,
        state: state.map(str::to_owned),
        nonce: check_bounded("nonce", params.get("nonce"), MAX_NONCE_BYTES)?,
        code_challenge,
        prompt: check_prompt(params.get("prompt"))?,
        max_age: check_max_age(params.get("max_age"))?,
        login_hint: check_bounded("login_hint", params.get("login_hint"), MAX_LOGIN_HINT_BYTES)?,
        resource: check_resource(params.get("resource"), client)?,
        min_level: required_level(&acr_values, client.require_mfa),
        acr_values,
        requires_interaction: client.needs_interaction_for(redirect_uri),
        hint_sub: None,
    })
}

/// OIDC Core §3.1.2.1 `acr_values`: "Space-separated string that specifies the acr values
/// that the Authorization Server is being requested to use for processing this
/// Authentication Request, with the values appearing in order of preference."
fn check_acr_values(acr_values: Option<&str>) -> Result<Vec<String>, OAuthError> {
    let raw = check_bounded("acr_values", acr_values, MAX_ACR_VALUES_BYTES)?;
    Ok(raw
        .unwrap_or_default()
        .split(' ')
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect())
}

/// RFC 6749 §4.1.1: `state` is RECOMMENDED and opaque; bounded so it cannot bloat storage.
fn check_state(state: Option<&str>) -> Result<Option<String>, OAuthError> {
    check_bounded("state", state, MAX_STATE_BYTES)
}

/// An optional free-text parameter, at most `max` bytes.
fn check_bounded(
    name: &'static str,
    value: Option<&str>,
    max: usize,
) -> Result<Option<String>, OAuthError> {
    match value {
        Some(v) if v.len() > max => Err(OAuthError::invalid_request(format!("{name} is too long"))),
        other => Ok(other.map(str::to_owned)),
    }
}

/// OIDC Core §6: request objects are not supported (`request_parameter_supported` and
/// `request_uri_parameter_supported` are false in discovery); §3.1.2.6 names the errors:
/// `request_not_supported` and `request_uri_not_supported`.
fn check_no_request_object(params: &Params) -> Result<(), OAuthError> {
    if params.contains("request") {
        return Err(OAuthError::request_not_supported(
            "the request parameter is not supported",
        ));
    }
    if params.contains("request_uri") {
        return Err(OAuthError::request_uri_not_supported(
            "the request_uri parameter is not supported",
        ));
    }
    Ok(())
}

/// RFC 6749 §4.1.1: `response_type` is REQUIRED and MUST be `code`; the implicit and hybrid
/// flows are not offered (RFC 9700 §2.1.2).
fn check_response_type(response_type: Option<&str>) -> Result<(), OAuthError> {
    match response_type {
        None => Err(OAuthError::invalid_request("response_type is required")),
        Some("code") => Ok(()),
        Some(_) => Err(OAuthError::unsupported_response_type(
            "only response_type=code is supported",
        )),
    }
}

/// OAuth 2.0 Multiple Response Type Encoding Practices §2.1: the default mode for `code` is
/// `query`, the only mode offered.
fn check_response_mode(response_mode: Option<&str>) -> Result<(), OAuthError> {
    match response_mode {
        None | Some("query") => Ok(()),
        Some(_) => Err(OAuthError::invalid_request(
            "only response_mode=query is supported",
        )),
    }
}

/// RFC 6749 §3.3: the scope must be well-formed and within the client's registered scope,
/// else `invalid_scope`. An absent scope fails too (§3.3 lets the server "fail the request
/// indicating an invalid scope" rather than guess a default).
fn check_scope(scope: Option<&str>, client: &Client) -> Result<Scope, OAuthError> {
    let raw = scope.ok_or_else(|| OAuthError::invalid_scope("scope is required"))?;
    let scope = Scope::parse(raw).map_err(|_| OAuthError::invalid_scope("malformed scope"))?;
    if scope.is_empty() {
        return Err(OAuthError::invalid_scope("scope is required"));
    }
    if !scope.is_subset_of(&client.scope) {
        return Err(OAuthError::invalid_scope(
            "scope exceeds what the client may request",
        ));
    }
    Ok(scope)
}

/// OIDC Core §3.1.2.1: `prompt` is a space-delimited list of `none`, `login`, `consent`,
/// `select_account`; "If this parameter contains none with any other value, an error is
/// returned." Unknown values are refused rather than ignored.
fn check_prompt(prompt: Option<&str>) -> Result<Prompt, OAuthError> {
    let mut p = Prompt::default();
    let mut count = 0;
    for value in prompt
        .unwrap_or_default()
        .split(' ')
        .filter(|v| !v.is_empty())
    {
        let flag = match value {
            "none" => &mut p.none,
            "login" => &mut p.login,
            "consent" => &mut p.consent,
            "select_account" => &mut p.select_account,
            _ => return Err(OAuthError::invalid_request("unsupported prompt value")),
        };
        *flag = true;
        count += 1;
    }
    if p.none && count > 1 {
        return Err(OAuthError::invalid_request(
            "prompt=none cannot be combined with other values",
        ));
    }
    Ok(p)
}

/// OIDC Core §3.1.2.1: `max_age` is a number of seconds, a non-negative integer.
fn check_max_age(max_age: Option<&str>) -> Result<Option<i64>, OAuthError> {
    let Some(raw) = max_age else { return Ok(None) };
    let digits = !raw.is_empty() && raw.len() <= 18 && raw.bytes().all(|b| b.is_ascii_digit());
    match raw.parse::<i64>() {
        Ok(secs) if digits => Ok(Some(secs)),
        _ => Err(OAuthError::invalid_request(
            "max_age must be a non-negative integer",
        )),
    }
}

/// RFC 8707 §2: `resource` is an absolute URI without a fragment, and must be one the client
/// is registered for; otherwise `invalid_target`.
fn check_resource(
    resource: Option<&str>,
    client: &Client,
) -> Result<Option<ResourceUri>, OAuthError> {
    let Some(raw) = resource else { return Ok(None) };
    let uri =
        ResourceUri::parse(raw).map_err(|_| OAuthError::invalid_target("malformed resource"))?;
    if !client.resources.contains(&uri) {
        return Err(OAuthError::invalid_target(
            "resource is not registered for this client",
        ));
    }
    Ok(Some(uri))
}

#[cfg(test)]
mod tests;
