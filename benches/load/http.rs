//! What every scenario needs from the server: its endpoints (from discovery), HTTP clients
//! that each keep one connection, sign-in through the HTML form, and the code flow.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use reqwest::cookie::Jar;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::{Response, StatusCode};
use url::Url;

pub const FORM: &str = "application/x-www-form-urlencoded";

/// Which server is measured: a few steps differ (sign-in, the offline_access rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// Latchkey: sign-in through its login form.
    Latchkey,
    /// node-oidc-provider with benches/peer/provider.mjs (sign-in without a form).
    Peer,
}

/// The endpoints, as the discovery document names them.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub discovery: String,
    pub authorize: String,
    pub token: String,
    pub userinfo: String,
    pub introspect: String,
    pub jwks: String,
    /// Latchkey's sign-in form (not in discovery).
    pub login: String,
}

impl Endpoints {
    pub async fn discover(issuer: &str) -> anyhow::Result<Self> {
        let discovery = format!("{issuer}/.well-known/openid-configuration");
        let doc: serde_json::Value = reqwest::get(&discovery)
            .await
            .context("discovery")?
            .error_for_status()?
            .json()
            .await?;
        let field = |name: &str| {
            doc[name]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("{name} missing from the discovery document"))
        };
        Ok(Self {
            authorize: field("authorization_endpoint")?,
            token: field("token_endpoint")?,
            userinfo: field("userinfo_endpoint")?,
            introspect: field("introspection_endpoint")?,
            jwks: field("jwks_uri")?,
            login: format!("{issuer}/login"),
            discovery,
        })
    }
}

/// A confidential client's credentials, ready as a Basic header (RFC 6749 §2.3.1).
#[derive(Debug, Clone)]
pub struct Creds {
    pub id: String,
    pub basic: HeaderValue,
}

impl Creds {
    pub fn new(id: &str, secret: &str) -> anyhow::Result<Self> {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let pair = format!("{}:{}", enc(id), enc(secret));
        let basic = HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(pair)))?;
        Ok(Self {
            id: id.to_owned(),
            basic,
        })
    }
}

/// An HTTP client that keeps at most one connection (the workers send one request at a
/// time), follows no redirects and, for browsers, has its own cookie jar.
pub fn client(
    jar: Option<Arc<Jar>>,
    local: Option<std::net::IpAddr>,
) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(1)
        .local_address(local)
        .timeout(Duration::from_secs(30));
    if let Some(jar) = jar {
        b = b.cookie_provider(jar);
    }
    Ok(b.build()?)
}

/// POSTs a form, authenticated as `creds` when given.
pub async fn post_form(
    http: &reqwest::Client,
    url: &str,
    creds: Option<&Creds>,
    pairs: &[(&str, &str)],
) -> reqwest::Result<Response> {
    let mut req = http
        .post(url)
        .header(CONTENT_TYPE, FORM)
        .body(form_body(pairs));
    if let Some(c) = creds {
        req = req.header(AUTHORIZATION, c.basic.clone());
    }
    req.send().await
}

pub fn form_body(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// The body of a 200 answer, or an error naming the status and the start of the body.
pub async fn ok_text(res: Response) -> anyhow::Result<String> {
    let status = res.status();
    let body = res.text().await?;
    if status != StatusCode::OK {
        bail!("{status}: {}", body.chars().take(120).collect::<String>());
    }
    Ok(body)
}

/// A string field of a JSON object.
pub fn json_str(body: &str, field: &str) -> anyhow::Result<String> {
    let v: serde_json::Value = serde_json::from_str(body)?;
    v[field].as_str().map(str::to_owned).ok_or_else(|| {
        anyhow!(
            "no {field} in {}",
            body.chars().take(120).collect::<String>()
        )
    })
}

/// Seconds in a `Retry-After` header (RFC 9110 §10.2.3), if it gives seconds.
pub fn retry_after(res: &Response) -> Option<u64> {
    res.headers().get(RETRY_AFTER)?.to_str().ok()?.parse().ok()
}

/// A PKCE pair (RFC 7636 §4.1, §4.2): (verifier, S256 challenge).
pub fn pkce() -> anyhow::Result<(String, String)> {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| anyhow!("no randomness"))?;
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    Ok((verifier, URL_SAFE_NO_PAD.encode(digest.as_ref())))
}

/// The value of the first hidden input `name` in an HTML page, unescaped.
pub fn hidden(html: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\" value=\"");
    let start = html.find(&needle)? + needle.len();
    let end = start + html[start..].find('"')?;
    Some(unescape(&html[start..end]))
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#x2f;", "/")
        .replace("&#x2F;", "/")
        .replace("&amp;", "&")
}

/// A user's sign-in.
#[derive(Debug, Clone)]
pub struct User {
    pub username: String,
    pub password: String,
}

/// A simulated browser: its own cookie jar and connection.
pub struct Browser {
    pub http: reqwest::Client,
    issuer: Url,
}

impl Browser {
    pub fn new(issuer: &str) -> anyhow::Result<Self> {
        Self::from_address(issuer, None)
    }

    /// A browser whose connection comes from the loopback address `ip` (127.0.0.0/8), so
    /// that the server sees another client address.
    pub fn from_address(issuer: &str, ip: Option<std::net::IpAddr>) -> anyhow::Result<Self> {
        Ok(Self {
            http: client(Some(Arc::new(Jar::default())), ip)?,
            issuer: Url::parse(issuer)?,
        })
    }

    /// The CSRF token of Latchkey's login page (the double-submit cookie is now in the jar).
    pub async fn login_csrf(&self, login_url: &str) -> anyhow::Result<String> {
        let page = ok_text(self.http.get(login_url).send().await?).await?;
        hidden(&page, "csrf").ok_or_else(|| anyhow!("no csrf input on the login page"))
    }

    /// One password sign-in to the account area with a CSRF token from [`Self::login_csrf`].
    pub async fn password_login(
        &self,
        login_url: &str,
        csrf: &str,
        user: &User,
    ) -> reqwest::Result<Response> {
        let pairs = [
            ("username", user.username.as_str()),
            ("password", user.password.as_str()),
            ("csrf", csrf),
            ("request", ""),
        ];
        post_form(&self.http, login_url, None, &pairs).await
    }

    /// Runs /authorize until the redirect URI gets a code; signs in on Latchkey's login page
    /// if it appears, and follows the peer's interaction redirects. Returns the code.
    pub async fn code(
        &self,
        auth_url: &str,
        redirect_uri: &str,
        user: &User,
    ) -> anyhow::Result<String> {
        let mut res = self.http.get(auth_url).send().await?;
        for _ in 0..12 {
            if res.status().is_redirection() {
                let loc = res
                    .headers()
                    .get(LOCATION)
                    .ok_or_else(|| anyhow!("redirect without Location"))?
                    .to_str()?;
                let next = self.issuer.join(loc)?;
                if next.as_str().starts_with(redirect_uri) {
                    return code_of(&next);
                }
                res = self.http.get(next).send().await?;
            } else if res.status() == StatusCode::OK {
                let page = res.text().await?;
                let (Some(csrf), Some(request)) = (hidden(&page, "csrf"), hidden(&page, "request"))
                else {
                    bail!("a page without a login form on the way to a code");
                };
                let login = self.issuer.join("/login")?;
                let pairs = [
                    ("username", user.username.as_str()),
                    ("password", user.password.as_str()),
                    ("csrf", csrf.as_str()),
                    ("request", request.as_str()),
                ];
                res = post_form(&self.http, login.as_str(), None, &pairs).await?;
            } else {
                let status = res.status();
                let body = res.text().await.unwrap_or_default();
                bail!(
                    "{status} on the way to a code: {}",
                    body.chars().take(160).collect::<String>()
                );
            }
        }
        bail!("too many redirects on the way to a code")
    }
}

/// The `code` of an authorization response, or its `error`.
fn code_of(url: &Url) -> anyhow::Result<String> {
    let param = |name: &str| {
        url.query_pairs()
            .find_map(|(k, v)| (k == name).then(|| v.into_owned()))
    };
    match (param("code"), param("error")) {
        (Some(code), _) => Ok(code),
        (None, Some(e)) => bail!("authorization error {e}: {:?}", param("error_description")),
        (None, None) => bail!("no code in {url}"),
    }
}

/// An authorization request (code flow, PKCE S256) and its verifier.
pub struct AuthRequest {
    pub url: String,
    pub verifier: String,
}

impl AuthRequest {
    pub fn new(
        authorize: &str,
        client_id: &str,
        redirect_uri: &str,
        scope: &str,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let (verifier, challenge) = pkce()?;
        let mut url = Url::parse(authorize)?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", scope)
            .append_pair("state", "bench-state")
            .append_pair("nonce", "bench-nonce")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .extend_pairs(extra);
        Ok(Self {
            url: url.into(),
            verifier,
        })
    }
}
