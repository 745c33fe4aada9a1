//! Shared helpers for the OAuth / OIDC flow tests: clients, users, a browser with its own
//! cookie jar, PKCE, HTML form scraping, token-endpoint calls and JWT verification.

#![allow(dead_code)]

use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use latchkey::clock::Clock;
use latchkey::domain::{Password, User, Username};
use latchkey::service::admin::{self, NewClient, NewUser};
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE, LOCATION, SET_COOKIE};
use reqwest::{Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use crate::helpers::TestApp;

pub const REDIRECT_URI: &str = "https://client.example/cb";
pub const OTHER_REDIRECT_URI: &str = "https://client.example/other-cb";
pub const POST_LOGOUT_URI: &str = "https://client.example/signed-out";
pub const PASSWORD: &str = "correct horse battery staple";
pub const USERNAME: &str = "alice";
pub const EMAIL: &str = "alice@example.com";
pub const FULL_SCOPE: &str = "openid offline_access profile email";
pub const FORM: &str = "application/x-www-form-urlencoded";

/// A registered client as the tests see it.
#[derive(Debug, Clone)]
pub struct TestClient {
    pub id: String,
    pub secret: Option<String>,
    pub name: String,
}

/// How a client authenticates at /token, /revoke and /introspect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    Basic,
    Post,
    None,
}

impl TestClient {
    /// The natural auth method: Basic for confidential clients, `none` for public ones.
    pub fn auth(&self) -> Auth {
        if self.secret.is_some() {
            Auth::Basic
        } else {
            Auth::None
        }
    }
}

/// Registers a client through the admin service.
pub async fn register(app: &TestApp, input: NewClient) -> TestClient {
    let name = input.name.clone();
    let created = admin::create_client(
        app.state.store.as_ref(),
        &app.state.secrets,
        &app.state.settings,
        app.clock.now(),
        input,
    )
    .await
    .expect("create client");
    TestClient {
        id: created.client.id.as_str().to_owned(),
        secret: created.secret.map(|s| s.expose().to_owned()),
        name,
    }
}

/// A confidential, first-party client with the code and refresh grants.
pub async fn confidential_client(app: &TestApp) -> TestClient {
    register(app, confidential_input("Acme Web")).await
}

pub fn confidential_input(name: &str) -> NewClient {
    NewClient {
        name: name.into(),
        redirect_uris: vec![REDIRECT_URI.into(), OTHER_REDIRECT_URI.into()],
        post_logout_redirect_uris: vec![POST_LOGOUT_URI.into()],
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        scope: Some("openid profile email offline_access roles".into()),
        first_party: true,
        ..NewClient::default()
    }
}

/// A confidential client that is NOT first-party: the user must consent.
pub async fn third_party_client(app: &TestApp) -> TestClient {
    register(
        app,
        NewClient {
            first_party: false,
            ..confidential_input("Partner Gadget")
        },
    )
    .await
}

/// A public (PKCE-only) first-party client with the code and refresh grants.
pub async fn public_client(app: &TestApp) -> TestClient {
    register(
        app,
        NewClient {
            public: true,
            ..confidential_input("Acme Mobile")
        },
    )
    .await
}

/// A machine client with only the client_credentials grant.
pub async fn cc_client(app: &TestApp, resources: &[&str]) -> TestClient {
    register(
        app,
        NewClient {
            name: "Batch Job".into(),
            grant_types: vec!["client_credentials".into()],
            scope: Some("reports.read reports.write".into()),
            resources: resources.iter().map(|r| (*r).to_owned()).collect(),
            ..NewClient::default()
        },
    )
    .await
}

/// Creates a user with [`PASSWORD`].
pub async fn create_user(app: &TestApp, username: &str, roles: &[&str]) -> User {
    admin::create_user(
        app.state.store.as_ref(),
        &app.state.passwords,
        app.clock.now(),
        NewUser {
            username: username.into(),
            email: format!("{username}@example.com"),
            password: Password::parse(PASSWORD).unwrap(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        },
    )
    .await
    .expect("create user")
}

/// The default test user, `alice`.
pub async fn alice(app: &TestApp) -> User {
    create_user(app, USERNAME, &["admin", "staff"]).await
}

pub async fn disable_user(app: &TestApp, username: &str) {
    let changed = app
        .state
        .store
        .set_user_disabled(&Username::parse(username).unwrap(), true, app.clock.now())
        .await
        .expect("disable user");
    assert!(changed);
}

/// One simulated browser: its own cookie jar, no redirect following.
pub struct Browser {
    pub http: reqwest::Client,
    pub jar: Arc<Jar>,
    base: Url,
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar.clone())
            .build()
            .expect("client");
        Self {
            http,
            jar,
            base: Url::parse(&app.address).unwrap(),
        }
    }

    /// A browser whose connections come from the loopback address `ip` (e.g. `127.0.0.2`):
    /// the app sees it as another client address.
    pub fn with_local_address(app: &TestApp, ip: &str) -> Self {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar.clone())
            .local_address(ip.parse::<std::net::IpAddr>().expect("an IP address"))
            .build()
            .expect("client");
        Self {
            http,
            jar,
            base: Url::parse(&app.address).unwrap(),
        }
    }

    /// The value of a cookie the jar would send to the issuer.
    pub fn cookie(&self, name: &str) -> Option<String> {
        let header = self.jar.cookies(&self.base)?;
        let header = header.to_str().ok()?.to_owned();
        header.split(';').find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
    }

    /// Plants a cookie, e.g. an attacker-chosen session id.
    pub fn plant_cookie(&self, name: &str, value: &str) {
        self.jar
            .add_cookie_str(&format!("{name}={value}; Path=/"), &self.base);
    }
}

/// A PKCE pair (RFC 7636 §4.1, §4.2) with S256.
#[derive(Debug, Clone)]
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce() -> Pkce {
    // 43 characters of base64url: within [A-Za-z0-9-._~].
    let verifier = latchkey::crypto::random_token().unwrap();
    let challenge = URL_SAFE_NO_PAD.encode(latchkey::crypto::sha256(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

/// An authorization request.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub state: String,
    pub nonce: String,
    pub pkce: Pkce,
    /// Extra or overriding parameters; a value of `None` removes the parameter.
    pub extra: Vec<(String, Option<String>)>,
}

impl AuthRequest {
    pub fn new(client: &TestClient, scope: &str) -> Self {
        Self {
            client_id: client.id.clone(),
            redirect_uri: REDIRECT_URI.into(),
            scope: scope.into(),
            state: format!("st-{}", &latchkey::crypto::random_token().unwrap()[..12]),
            nonce: format!("n-{}", &latchkey::crypto::random_token().unwrap()[..12]),
            pkce: pkce(),
            extra: Vec::new(),
        }
    }

    /// Sets (or with `None` removes) one parameter.
    pub fn with(mut self, name: &str, value: Option<&str>) -> Self {
        self.extra.push((name.to_owned(), value.map(str::to_owned)));
        self
    }

    pub fn params(&self) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = vec![
            ("response_type".into(), "code".into()),
            ("client_id".into(), self.client_id.clone()),
            ("redirect_uri".into(), self.redirect_uri.clone()),
            ("scope".into(), self.scope.clone()),
            ("state".into(), self.state.clone()),
            ("nonce".into(), self.nonce.clone()),
            ("code_challenge".into(), self.pkce.challenge.clone()),
            ("code_challenge_method".into(), "S256".into()),
        ];
        for (name, value) in &self.extra {
            p.retain(|(k, _)| k != name);
            if let Some(v) = value {
                p.push((name.clone(), v.clone()));
            }
        }
        p
    }

    pub fn url(&self, app: &TestApp) -> String {
        let mut url = Url::parse(&app.url("/authorize")).unwrap();
        url.query_pairs_mut().extend_pairs(self.params());
        url.to_string()
    }
}

/// A form body from pairs; repeated names are kept.
pub fn form_body<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k.as_ref(), v.as_ref());
    }
    s.finish()
}

/// POSTs a form with a browser (or any client).
pub async fn post_form<K: AsRef<str>, V: AsRef<str>>(
    http: &reqwest::Client,
    url: &str,
    pairs: &[(K, V)],
) -> Response {
    http.post(url)
        .header(CONTENT_TYPE, FORM)
        .body(form_body(pairs))
        .send()
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// HTML scraping (no regex): forms and their inputs.

/// Undoes the HTML escaping the templates apply to attribute values.
pub fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#x2f;", "/")
        .replace("&#x2F;", "/")
        .replace("&#47;", "/")
        .replace("&amp;", "&")
}

/// The value of attribute `name` in one tag's text (`<input ...>`), unescaped.
pub fn attr(tag: &str, name: &str) -> Option<String> {
    let bytes = tag.as_bytes();
    let pattern = format!("{name}=");
    let mut from = 0;
    while let Some(pos) = tag[from..].find(&pattern) {
        let start = from + pos;
        from = start + pattern.len();
        // The attribute name must start after whitespace.
        if start == 0 || !bytes[start - 1].is_ascii_whitespace() {
            continue;
        }
        let rest = &tag[from..];
        let quote = rest.chars().next()?;
        if quote == '"' || quote == '\'' {
            let end = rest[1..].find(quote)?;
            return Some(unescape(&rest[1..1 + end]));
        }
        let end = rest
            .find(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/')
            .unwrap_or(rest.len());
        return Some(unescape(&rest[..end]));
    }
    None
}

/// The text of the first `<form ...>...</form>` whose action is `action`.
pub fn form_html<'a>(html: &'a str, action: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(pos) = html[from..].find("<form") {
        let start = from + pos;
        let tag_end = start + html[start..].find('>')?;
        let end = html[start..]
            .find("</form>")
            .map_or(html.len(), |e| start + e);
        if attr(&html[start..=tag_end], "action").as_deref() == Some(action) {
            return Some(&html[start..end]);
        }
        from = tag_end;
    }
    None
}

/// Every tag named `tag` (e.g. `input`, `button`) in `html`, as its `<...>` text.
pub fn tags<'a>(html: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag}");
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(pos) = html[from..].find(&open) {
        let start = from + pos;
        let Some(len) = html[start..].find('>') else {
            break;
        };
        out.push(&html[start..=start + len]);
        from = start + len;
    }
    out
}

/// The hidden inputs of a form, as (name, value).
pub fn hidden_inputs(form: &str) -> Vec<(String, String)> {
    tags(form, "input")
        .into_iter()
        .filter(|t| attr(t, "type").is_some_and(|ty| ty.eq_ignore_ascii_case("hidden")))
        .filter_map(|t| Some((attr(t, "name")?, attr(t, "value").unwrap_or_default())))
        .collect()
}

/// The value of the hidden input `name` in the form posting to `action`.
pub fn hidden(html: &str, action: &str, name: &str) -> Option<String> {
    hidden_inputs(form_html(html, action)?)
        .into_iter()
        .find_map(|(k, v)| (k == name).then_some(v))
}

/// True when the form posting to `action` has an input or button named `name`
/// (with `value`, when given).
pub fn has_control(html: &str, action: &str, name: &str, value: Option<&str>) -> bool {
    let Some(form) = form_html(html, action) else {
        return false;
    };
    tags(form, "input")
        .into_iter()
        .chain(tags(form, "button"))
        .any(|t| {
            attr(t, "name").as_deref() == Some(name)
                && value.is_none_or(|v| attr(t, "value").as_deref() == Some(v))
        })
}

/// Asserts the page is the login page and returns its `(csrf, request)`.
pub fn login_form(html: &str) -> (String, String) {
    let form = form_html(html, "/login").unwrap_or_else(|| panic!("no login form in {html}"));
    assert!(
        attr(&form[..=form.find('>').unwrap()], "method")
            .is_some_and(|m| m.eq_ignore_ascii_case("post")),
        "login form must POST"
    );
    assert!(has_control(html, "/login", "username", None));
    assert!(has_control(html, "/login", "password", None));
    let csrf = hidden(html, "/login", "csrf").expect("csrf input");
    let request = hidden(html, "/login", "request").expect("request input");
    assert!(!csrf.is_empty() && !request.is_empty());
    (csrf, request)
}

/// Asserts the page is the consent page and returns its `(csrf, request)`.
pub fn consent_form(html: &str) -> (String, String) {
    let form = form_html(html, "/consent").unwrap_or_else(|| panic!("no consent form in {html}"));
    assert!(attr(&form[..=form.find('>').unwrap()], "method")
        .is_some_and(|m| m.eq_ignore_ascii_case("post")));
    assert!(has_control(html, "/consent", "decision", Some("allow")));
    assert!(has_control(html, "/consent", "decision", Some("deny")));
    let csrf = hidden(html, "/consent", "csrf").expect("csrf input");
    let request = hidden(html, "/consent", "request").expect("request input");
    (csrf, request)
}

// ---------------------------------------------------------------------------------------
// Redirects.

/// The `Location` of a 303, parsed.
pub fn location(res: &Response) -> Url {
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "expected a 303");
    let loc = res
        .headers()
        .get(LOCATION)
        .expect("Location header")
        .to_str()
        .unwrap();
    Url::parse(loc).unwrap_or_else(|e| panic!("Location {loc:?}: {e}"))
}

pub fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find_map(|(k, v)| (k == name).then(|| v.into_owned()))
}

/// The URL without query: where a redirect goes.
pub fn target(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// Asserts an authorization-error redirect (RFC 6749 §4.1.2.1, RFC 9207) and returns it.
pub fn assert_auth_error(app: &TestApp, res: &Response, req: &AuthRequest, error: &str) {
    let url = location(res);
    assert_eq!(target(&url), req.redirect_uri);
    assert_eq!(query(&url, "error").as_deref(), Some(error), "{url}");
    assert_eq!(query(&url, "state").as_deref(), Some(req.state.as_str()));
    assert_eq!(query(&url, "iss").as_deref(), Some(app.address.as_str()));
    assert!(query(&url, "code").is_none());
}

/// Asserts a successful authorization redirect and returns the code.
pub fn assert_code(app: &TestApp, res: &Response, req: &AuthRequest) -> String {
    let url = location(res);
    assert_eq!(target(&url), req.redirect_uri, "{url}");
    assert!(query(&url, "error").is_none(), "{url}");
    assert_eq!(query(&url, "state").as_deref(), Some(req.state.as_str()));
    assert_eq!(query(&url, "iss").as_deref(), Some(app.address.as_str()));
    query(&url, "code").expect("code")
}

/// GET /authorize in `browser`.
pub async fn authorize(app: &TestApp, browser: &Browser, req: &AuthRequest) -> Response {
    browser.http.get(req.url(app)).send().await.unwrap()
}

/// Posts the login form of `page` with `username` / `password`.
pub async fn submit_login(
    app: &TestApp,
    browser: &Browser,
    page: &str,
    username: &str,
    password: &str,
) -> Response {
    let (csrf, request) = login_form(page);
    post_form(
        &browser.http,
        &app.url("/login"),
        &[
            ("username", username),
            ("password", password),
            ("csrf", &csrf),
            ("request", &request),
        ],
    )
    .await
}

/// Posts the consent form of `page` with `decision`.
pub async fn submit_consent(
    app: &TestApp,
    browser: &Browser,
    page: &str,
    decision: &str,
) -> Response {
    let (csrf, request) = consent_form(page);
    post_form(
        &browser.http,
        &app.url("/consent"),
        &[
            ("csrf", csrf.as_str()),
            ("request", request.as_str()),
            ("decision", decision),
        ],
    )
    .await
}

/// Drives the browser part: /authorize, the login page, and the consent page if shown
/// (allowing). Returns the code.
pub async fn login_and_get_code(
    app: &TestApp,
    browser: &Browser,
    req: &AuthRequest,
    username: &str,
) -> String {
    let res = authorize(app, browser, req).await;
    assert_eq!(res.status(), 200, "login page expected");
    let page = res.text().await.unwrap();
    let res = submit_login(app, browser, &page, username, PASSWORD).await;
    let res = if res.status() == 200 {
        let page = res.text().await.unwrap();
        submit_consent(app, browser, &page, "allow").await
    } else {
        res
    };
    assert_code(app, &res, req)
}

/// /authorize with an existing session and consent: straight to a code.
pub async fn code_with_session(app: &TestApp, browser: &Browser, req: &AuthRequest) -> String {
    let res = authorize(app, browser, req).await;
    assert_code(app, &res, req)
}

/// Asserts that `browser` has no live session: /authorize shows the login page.
pub async fn assert_logged_out(app: &TestApp, browser: &Browser, client: &TestClient) {
    let req = AuthRequest::new(client, "openid");
    let res = authorize(app, browser, &req).await;
    assert_eq!(
        res.status(),
        200,
        "login page expected, session must be gone"
    );
    let page = res.text().await.unwrap();
    login_form(&page);
}

// ---------------------------------------------------------------------------------------
// Token endpoint and friends.

pub fn basic(client_id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", enc(client_id), enc(secret)))
    )
}

/// POSTs `params` to `path` authenticated as `client` with `auth`.
pub async fn client_post(
    app: &TestApp,
    path: &str,
    client: &TestClient,
    auth: Auth,
    params: &[(&str, &str)],
) -> Response {
    let mut pairs: Vec<(&str, &str)> = params.to_vec();
    let mut req = reqwest::Client::new()
        .post(app.url(path))
        .header(CONTENT_TYPE, FORM);
    match auth {
        Auth::Basic => {
            req = req.header(
                AUTHORIZATION,
                basic(&client.id, client.secret.as_deref().expect("secret")),
            );
        }
        Auth::Post => {
            pairs.push(("client_id", &client.id));
            pairs.push(("client_secret", client.secret.as_deref().expect("secret")));
        }
        Auth::None => pairs.push(("client_id", &client.id)),
    }
    req.body(form_body(&pairs)).send().await.unwrap()
}

pub async fn token(app: &TestApp, client: &TestClient, params: &[(&str, &str)]) -> Response {
    client_post(app, "/token", client, client.auth(), params).await
}

/// Asserts the no-store headers of RFC 6749 §5.1.
pub fn assert_no_store(headers: &HeaderMap) {
    assert_eq!(
        headers.get("cache-control").map(|v| v.to_str().unwrap()),
        Some("no-store")
    );
    assert_eq!(
        headers.get("pragma").map(|v| v.to_str().unwrap()),
        Some("no-cache")
    );
}

/// Asserts a JSON error response with `status` and `error`, never a 5xx.
pub async fn assert_error(res: Response, status: u16, error: &str) -> HeaderMap {
    let headers = res.headers().clone();
    let got = res.status().as_u16();
    let body = res.text().await.unwrap();
    assert_eq!(got, status, "status; body {body}");
    let json: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("JSON: {body}"));
    assert_eq!(json["error"], error, "{body}");
    headers
}

/// Asserts a 200 JSON token response (with the no-store headers) and returns it.
pub async fn assert_tokens(res: Response) -> Value {
    let status = res.status();
    assert_no_store(res.headers());
    let body = res.text().await.unwrap();
    assert_eq!(status, 200, "{body}");
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["token_type"], "Bearer");
    assert!(json["access_token"].is_string());
    assert!(json["expires_in"].as_i64().is_some_and(|e| e > 0));
    json
}

pub async fn exchange_code(
    app: &TestApp,
    client: &TestClient,
    code: &str,
    req: &AuthRequest,
) -> Response {
    token(
        app,
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &req.redirect_uri),
            ("code_verifier", &req.pkce.verifier),
        ],
    )
    .await
}

/// Logs `username` in with a new browser and redeems the code: the whole flow.
pub async fn full_flow(
    app: &TestApp,
    client: &TestClient,
    username: &str,
    scope: &str,
) -> (Browser, AuthRequest, Value) {
    let browser = Browser::new(app);
    let req = AuthRequest::new(client, scope);
    let code = login_and_get_code(app, &browser, &req, username).await;
    let tokens = assert_tokens(exchange_code(app, client, &code, &req).await).await;
    (browser, req, tokens)
}

pub fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} missing in {v}"))
}

pub async fn refresh(app: &TestApp, client: &TestClient, refresh_token: &str) -> Response {
    token(
        app,
        client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// Asserts `refresh_token` is dead: `invalid_grant`.
pub async fn assert_refresh_dead(app: &TestApp, client: &TestClient, refresh_token: &str) {
    assert_error(
        refresh(app, client, refresh_token).await,
        400,
        "invalid_grant",
    )
    .await;
}

pub async fn introspect(app: &TestApp, client: &TestClient, token: &str) -> Value {
    let res = client_post(
        app,
        "/introspect",
        client,
        client.auth(),
        &[("token", token)],
    )
    .await;
    let status = res.status();
    let body = res.text().await.unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Asserts introspection reports exactly `{"active": false}`.
pub async fn assert_inactive(app: &TestApp, client: &TestClient, token: &str) {
    assert_eq!(
        introspect(app, client, token).await,
        serde_json::json!({"active": false})
    );
}

pub async fn assert_active(app: &TestApp, client: &TestClient, token: &str) {
    let v = introspect(app, client, token).await;
    assert_eq!(v["active"], true, "{v}");
}

pub async fn revoke(app: &TestApp, client: &TestClient, token: &str) -> Response {
    client_post(app, "/revoke", client, client.auth(), &[("token", token)]).await
}

pub async fn userinfo(app: &TestApp, access_token: &str) -> Response {
    reqwest::Client::new()
        .get(app.url("/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap()
}

/// Asserts /userinfo refuses the token: 401 with a Bearer `invalid_token` challenge.
pub async fn assert_userinfo_refused(app: &TestApp, access_token: &str) {
    let res = userinfo(app, access_token).await;
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
}

// ---------------------------------------------------------------------------------------
// JWTs.

pub async fn jwks(app: &TestApp) -> Vec<Value> {
    let v: Value = reqwest::get(app.url("/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["keys"].as_array().unwrap().clone()
}

/// Verifies an RS256 JWT against the published JWKS (kid lookup), pinning the algorithm,
/// issuer and audience, and checks the header `typ` when given. Returns the claims.
pub async fn verify_jwt<T: DeserializeOwned>(
    app: &TestApp,
    token: &str,
    audience: &str,
    typ: Option<&str>,
) -> T {
    let header = jsonwebtoken::decode_header(token).expect("JWT header");
    assert_eq!(header.alg, Algorithm::RS256);
    if let Some(typ) = typ {
        assert_eq!(header.typ.as_deref(), Some(typ));
    }
    let kid = header.kid.expect("kid");
    let keys = jwks(app).await;
    let jwk = keys
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("kid {kid} not in the JWKS"));
    let key = DecodingKey::from_rsa_components(s(jwk, "n"), s(jwk, "e")).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[&app.address]);
    validation.set_audience(&[audience]);
    validation.leeway = 0;
    jsonwebtoken::decode::<T>(token, &key, &validation)
        .expect("valid JWT")
        .claims
}

/// The claims of a JWT without verification (for tokens already verified elsewhere).
pub fn claims(token: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode::<Value>(token)
        .expect("JWT")
        .claims
}

/// The `Set-Cookie` header for `name`, if any.
pub fn set_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// Order-free comparison of space-delimited scopes.
pub fn scope_set(s: &str) -> std::collections::BTreeSet<String> {
    s.split(' ')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}
