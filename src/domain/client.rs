use std::fmt;

use super::{ParseError, Scope};
use crate::clock::UnixTime;

/// A client identifier (RFC 6749 §2.2): 1 to 128 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(String);

impl ClientId {
    /// Parses a presented client id.
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        let ok = !value.is_empty()
            && value.len() <= 128
            && value.bytes().all(|b| (0x21..=0x7E).contains(&b));
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(ParseError::new(
                "client_id",
                "must be 1-128 visible ASCII characters",
            ))
        }
    }

    /// The id as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A registered redirect URI. Kept as the registered string: redirect URIs are compared by
/// exact string match (RFC 9700 §4.1.1, OIDC Core §3.1.2.1), never normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUri(String);

impl RedirectUri {
    /// Validates a URI at registration: absolute, no fragment (RFC 6749 §3.1.2), no
    /// user-info; `https`, or `http` only on a loopback host (RFC 8252 §7.3), or a
    /// private-use scheme with a dot in it for native apps (RFC 8252 §7.1).
    pub fn parse(field: &'static str, value: &str) -> Result<Self, ParseError> {
        // The URL parser silently drops tabs and newlines; a registered URI must be exactly
        // what is compared and redirected to, so they are refused.
        if value.chars().any(char::is_control) {
            return Err(ParseError::new(
                field,
                format!("{value:?} must not contain control characters"),
            ));
        }
        let url = url::Url::parse(value)
            .map_err(|_| ParseError::new(field, format!("{value:?} is not an absolute URI")))?;
        if url.fragment().is_some() || value.contains('#') {
            return Err(ParseError::new(
                field,
                format!("{value:?} must not contain a fragment"),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ParseError::new(
                field,
                format!("{value:?} must not contain user-info"),
            ));
        }
        match url.scheme() {
            "https" => Ok(Self(value.to_owned())),
            "http" if is_loopback_url(&url) => Ok(Self(value.to_owned())),
            "http" => Err(ParseError::new(
                field,
                format!("{value:?} uses http on a non-loopback host; use https"),
            )),
            s if s.contains('.') => Ok(Self(value.to_owned())),
            s => Err(ParseError::new(
                field,
                format!("{value:?} has unsupported scheme {s:?}"),
            )),
        }
    }

    /// The URI exactly as registered.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The extra rules for a new registration (stored URIs are not re-judged by them).
    /// RFC 8252 §8.3: "it is NOT RECOMMENDED to use localhost"; loopback redirects name the
    /// IP literal, so that a firewall or a hosts file cannot send the code elsewhere.
    pub fn check_registrable(&self, field: &'static str) -> Result<(), ParseError> {
        let url = url::Url::parse(&self.0)
            .map_err(|_| ParseError::new(field, format!("{:?} is not an absolute URI", self.0)))?;
        if matches!(url.host(), Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost")) {
            return Err(ParseError::new(
                field,
                format!(
                    "{:?} uses localhost; register the loopback IP literal instead, e.g. \
                     http://127.0.0.1:{{port}}/... or http://[::1]:{{port}}/... (RFC 8252 §8.3)",
                    self.0
                ),
            ));
        }
        Ok(())
    }

    /// True when `presented` is this redirect URI: the exact string (RFC 9700 §4.1.1), or, for
    /// an `http` loopback IP literal, the same URI on any port (RFC 8252 §7.3: "The
    /// authorization server MUST allow any port to be specified at the time of the request
    /// for loopback IP redirect URIs"). The presented URI must be in its canonical form, so
    /// that only the port may differ.
    pub fn matches(&self, presented: &str) -> bool {
        if self.0 == presented {
            return true;
        }
        let Some(mut registered) = loopback_ip_url(&self.0) else {
            return false;
        };
        let Ok(presented_url) = url::Url::parse(presented) else {
            return false;
        };
        if presented_url.as_str() != presented || registered.set_port(presented_url.port()).is_err()
        {
            return false;
        }
        registered == presented_url
    }
}

/// `value` parsed, when it is an `http` URI on the IP literal `127.0.0.1` or `[::1]`.
fn loopback_ip_url(value: &str) -> Option<url::Url> {
    let url = url::Url::parse(value).ok()?;
    let ip = match url.host()? {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(_) => false,
    };
    (url.scheme() == "http" && ip).then_some(url)
}

/// True for `localhost`, 127.0.0.0/8 and `[::1]`.
pub fn is_loopback_url(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A resource (audience) a client may request tokens for (RFC 8707 §2): an absolute URI
/// without a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceUri(String);

impl ResourceUri {
    /// Parses a resource indicator.
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        let url = url::Url::parse(value).map_err(|_| {
            ParseError::new("resource", format!("{value:?} is not an absolute URI"))
        })?;
        if url.fragment().is_some() || value.contains('#') {
            return Err(ParseError::new(
                "resource",
                format!("{value:?} must not contain a fragment"),
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The URI as registered.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The grants a client may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GrantType {
    /// RFC 6749 §4.1
    AuthorizationCode,
    /// RFC 6749 §6
    RefreshToken,
    /// RFC 6749 §4.4
    ClientCredentials,
}

impl GrantType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
        }
    }

    /// Parses a wire name.
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        match value {
            "authorization_code" => Ok(Self::AuthorizationCode),
            "refresh_token" => Ok(Self::RefreshToken),
            "client_credentials" => Ok(Self::ClientCredentials),
            other => Err(ParseError::new(
                "grant_type",
                format!("unsupported grant type {other:?}"),
            )),
        }
    }
}

/// Confidential clients hold a secret; public clients (SPAs, native apps) do not
/// (RFC 6749 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// Authenticates with a client secret.
    Confidential,
    /// Cannot keep a secret; authenticates with `none` and must use PKCE.
    Public,
}

impl ClientKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confidential => "confidential",
            Self::Public => "public",
        }
    }

    /// Parses a stored name.
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        match value {
            "confidential" => Ok(Self::Confidential),
            "public" => Ok(Self::Public),
            other => Err(ParseError::new(
                "kind",
                format!("unknown client kind {other:?}"),
            )),
        }
    }
}

/// A registered client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The client id.
    pub id: ClientId,
    /// A display name, shown on the consent page.
    pub name: String,
    /// Confidential or public.
    pub kind: ClientKind,
    /// Keyed hash of the secret; `None` for public clients.
    pub secret_hash: Option<Vec<u8>>,
    /// Redirect URIs, matched exactly.
    pub redirect_uris: Vec<RedirectUri>,
    /// Post-logout redirect URIs (RP-initiated logout 1.0 §3), matched exactly.
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    /// The grants this client may use.
    pub grant_types: Vec<GrantType>,
    /// The most the client may ask for.
    pub scope: Scope,
    /// Audiences the client may ask tokens for (RFC 8707).
    pub resources: Vec<ResourceUri>,
    /// Overrides the default access-token lifetime, in seconds.
    pub access_token_ttl: Option<i64>,
    /// First-party clients skip the consent page.
    pub first_party: bool,
    /// Every sign-in for this client must be multi-factor, whatever `acr_values` says.
    pub require_mfa: bool,
    /// RP-initiated logout also revokes this client's `offline_access` refresh families
    /// (by default they survive logout: OIDC Core §11).
    pub end_offline_on_logout: bool,
    /// A resource server that may introspect every access token (RFC 7662 §4); other
    /// clients see only their own tokens and those naming them in `aud`.
    pub introspect_any: bool,
    /// Tokens of this client issued at or before this time are inactive (a secret rotation
    /// with `--revoke-tokens`); 0 when none were revoked.
    pub tokens_revoked_at: UnixTime,
    /// Seconds after a refresh token's first use during which presenting it again (by this
    /// client) returns the same successor instead of revoking the family; 0 is strict
    /// rotation (RFC 9700 §4.14.2).
    pub refresh_grace_secs: i64,
    /// When the client was registered.
    pub created_at: UnixTime,
}

impl Client {
    /// True when the client is registered for `grant`.
    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// True when `uri` is registered as a redirect URI: by exact string match, any port for
    /// loopback IP literals (see [`RedirectUri::matches`]).
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r.matches(uri))
    }

    /// RFC 8252 §8.6, RFC 6749 §10.2: a public client cannot prove who it is, and a redirect
    /// URI that is not `https` (a private-use scheme, a loopback port) can be claimed by
    /// another app on the device; so a code for it is never issued without the user
    /// interacting (signing in or consenting) in this very request.
    pub fn needs_interaction_for(&self, redirect_uri: &str) -> bool {
        self.kind == ClientKind::Public && !redirect_uri.starts_with("https://")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uri_rules() {
        let ok = [
            "https://app.example/cb",
            "http://127.0.0.1:8000/cb",
            "http://localhost/cb",
            "http://[::1]/cb",
            "com.example.app:/oauth",
        ];
        for u in ok {
            assert!(RedirectUri::parse("redirect_uri", u).is_ok(), "{u}");
        }
        let bad = [
            "/relative",
            "https://app.example/c\tb",
            "http://127.0.0.1:8000/cb\n",
            "https://app.example/cb#frag",
            "http://app.example/cb",
            "javascript:alert(1)",
            "https://user:pw@app.example/cb",
            "data:text/html,hi",
        ];
        for u in bad {
            assert!(RedirectUri::parse("redirect_uri", u).is_err(), "{u}");
        }
    }

    fn uri(u: &str) -> RedirectUri {
        RedirectUri::parse("redirect_uri", u).unwrap()
    }

    #[test]
    fn loopback_ip_redirects_match_any_port() {
        let v4 = uri("http://127.0.0.1:8000/cb");
        assert!(v4.matches("http://127.0.0.1:8000/cb"));
        assert!(v4.matches("http://127.0.0.1:51234/cb"));
        assert!(v4.matches("http://127.0.0.1/cb"), "no port is a port too");
        let v6 = uri("http://[::1]/cb?x=1");
        assert!(v6.matches("http://[::1]:4000/cb?x=1"));
        for other in [
            "http://127.0.0.1:51234/cb/",
            "http://127.0.0.1:51234/other",
            "http://127.0.0.1:51234/cb?x=1",
            "http://127.0.0.2:51234/cb",
            "http://127.1:51234/cb",
            "http://127.0.0.1:51234/cb#f",
            "http://u@127.0.0.1:51234/cb",
            "https://127.0.0.1:51234/cb",
            "http://localhost:51234/cb",
            "http://127.0.0.1:51234/x/../cb",
            "http://127.0.0.1:080/cb",
            "http://127.0.0.1:99999/cb",
            "not a uri",
        ] {
            assert!(!v4.matches(other), "{other}");
        }
        assert!(!v6.matches("http://[::1]:4000/cb"));
    }

    #[test]
    fn everything_else_matches_exactly() {
        for (registered, presented) in [
            ("https://app.example/cb", "https://app.example:8443/cb"),
            ("https://app.example:8443/cb", "https://app.example/cb"),
            ("http://localhost:8000/cb", "http://localhost:9000/cb"),
            ("com.example.app:/oauth", "com.example.app:/oauth/"),
        ] {
            assert!(uri(registered).matches(registered));
            assert!(!uri(registered).matches(presented), "{presented}");
        }
    }

    #[test]
    fn localhost_is_not_registrable() {
        for u in [
            "http://localhost/cb",
            "http://LOCALHOST:8000/cb",
            "https://localhost/cb",
        ] {
            let e = uri(u).check_registrable("redirect-uri").unwrap_err();
            assert!(e.to_string().contains("127.0.0.1"), "{e}");
        }
        for u in [
            "http://127.0.0.1:8000/cb",
            "http://[::1]/cb",
            "https://app.example/cb",
        ] {
            assert!(uri(u).check_registrable("redirect-uri").is_ok(), "{u}");
        }
    }

    #[test]
    fn client_id_rules() {
        assert!(ClientId::parse("abc_DEF-123").is_ok());
        assert!(ClientId::parse("").is_err());
        assert!(ClientId::parse("has space").is_err());
        assert!(ClientId::parse(&"a".repeat(129)).is_err());
    }

    #[test]
    fn grant_types_round_trip() {
        for g in [
            GrantType::AuthorizationCode,
            GrantType::RefreshToken,
            GrantType::ClientCredentials,
        ] {
            assert_eq!(GrantType::parse(g.as_str()), Ok(g));
        }
        assert!(GrantType::parse("password").is_err());
        assert!(GrantType::parse("implicit").is_err());
    }
}
