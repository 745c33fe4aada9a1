//! The scenarios: each builds its workers (sessions, tokens and chains obtained before the
//! clock starts) and measures them with [`measure::run`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use reqwest::StatusCode;

use crate::http::{self, AuthRequest, Browser, Creds, Endpoints, Target, User};
use crate::measure::{self, Stats, Window, Worker};

/// Scope of the code flow, userinfo and introspection (no refresh token).
const SCOPE: &str = "openid profile email";
/// Scope of the refresh chains.
const OFFLINE_SCOPE: &str = "openid profile email offline_access";

/// Everything a scenario needs to know about the server under test.
pub struct Ctx {
    pub target: Target,
    pub issuer: String,
    pub ep: Endpoints,
    /// The web app: authorization_code + refresh_token, first party (no consent page).
    pub web: Creds,
    /// The machine client: client_credentials for `resource`.
    pub cc: Creds,
    pub redirect_uri: String,
    pub resource: String,
    /// The user of the access token that userinfo and introspection present; its name
    /// and password are also those of the numbered users.
    pub user: User,
    /// The numbered users, `{user}-{i}` with the same password: one per code-flow worker,
    /// refresh chain and signing-in browser, as concurrent requests come from different
    /// people (on PostgreSQL each code or grant insert locks its user's row `KEY SHARE`
    /// for its foreign key; sixteen workers on one user made that a multixact that real
    /// traffic does not have, `docs/performance.md`, "Sixth round").
    pub sign_in_users: usize,
    pub concurrency: usize,
    pub window: Window,
}

impl Ctx {
    /// Numbered user `i` (see `sign_in_users`).
    fn numbered_user(&self, i: usize) -> User {
        User {
            username: format!("{}-{}", self.user.username, i % self.sign_in_users.max(1)),
            password: self.user.password.clone(),
        }
    }

    /// A code for `browser` (signing in as `user` first if it has no session yet).
    async fn code(
        &self,
        browser: &Browser,
        user: &User,
        scope: &str,
    ) -> anyhow::Result<(String, String)> {
        // node-oidc-provider drops offline_access unless the request has prompt=consent
        // (OIDC Core §11); Latchkey's first-party client needs no consent.
        let extra: &[(&str, &str)] = match self.target {
            Target::Peer if scope.contains("offline_access") => &[("prompt", "consent")],
            _ => &[],
        };
        let req = AuthRequest::new(
            &self.ep.authorize,
            &self.web.id,
            &self.redirect_uri,
            scope,
            extra,
        )?;
        let code = browser.code(&req.url, &self.redirect_uri, user).await?;
        Ok((code, req.verifier))
    }

    /// The token response for a code.
    async fn exchange(
        &self,
        browser: &Browser,
        code: &str,
        verifier: &str,
    ) -> anyhow::Result<String> {
        let pairs = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("code_verifier", verifier),
        ];
        let res = http::post_form(&browser.http, &self.ep.token, Some(&self.web), &pairs).await?;
        http::ok_text(res).await
    }

    /// A whole code flow in `browser`: the token response.
    async fn tokens(&self, browser: &Browser, user: &User, scope: &str) -> anyhow::Result<String> {
        let (code, verifier) = self.code(browser, user, scope).await?;
        self.exchange(browser, &code, &verifier).await
    }

    /// A browser signed in as `user`.
    async fn session(&self, user: &User) -> anyhow::Result<Browser> {
        let browser = Browser::new(&self.issuer)?;
        self.tokens(&browser, user, SCOPE).await?;
        Ok(browser)
    }

    fn workers<W>(&self, make: impl FnMut(usize) -> anyhow::Result<W>) -> anyhow::Result<Vec<W>> {
        (0..self.concurrency).map(make).collect()
    }
}

/// A GET that must answer 200 (discovery, JWKS).
struct Get {
    http: reqwest::Client,
    url: String,
}

impl Worker for Get {
    async fn step(&mut self) -> anyhow::Result<()> {
        http::ok_text(self.http.get(&self.url).send().await?)
            .await
            .map(drop)
    }
}

/// client_credentials for the registered resource (an RS256 JWT access token).
struct ClientCredentials {
    http: reqwest::Client,
    url: String,
    creds: Creds,
    resource: String,
}

impl Worker for ClientCredentials {
    async fn step(&mut self) -> anyhow::Result<()> {
        let pairs = [
            ("grant_type", "client_credentials"),
            ("scope", "api:read"),
            ("resource", self.resource.as_str()),
        ];
        let res = http::post_form(&self.http, &self.url, Some(&self.creds), &pairs).await?;
        http::json_str(&http::ok_text(res).await?, "access_token").map(drop)
    }
}

/// One refresh-token chain: each answer's refresh token is the next request's.
struct Refresh {
    ctx: Arc<Ctx>,
    browser: Browser,
    user: User,
    token: String,
}

impl Refresh {
    /// Chain `i`, of numbered user `i`.
    async fn new(ctx: Arc<Ctx>, i: usize) -> anyhow::Result<Self> {
        let user = ctx.numbered_user(i);
        let browser = ctx.session(&user).await?;
        let body = ctx.tokens(&browser, &user, OFFLINE_SCOPE).await?;
        let token = http::json_str(&body, "refresh_token")?;
        Ok(Self {
            ctx,
            browser,
            user,
            token,
        })
    }
}

impl Worker for Refresh {
    async fn step(&mut self) -> anyhow::Result<()> {
        let pairs = [
            ("grant_type", "refresh_token"),
            ("refresh_token", self.token.as_str()),
        ];
        let res = http::post_form(
            &self.browser.http,
            &self.ctx.ep.token,
            Some(&self.ctx.web),
            &pairs,
        )
        .await?;
        match http::ok_text(res)
            .await
            .and_then(|b| http::json_str(&b, "refresh_token"))
        {
            Ok(next) => {
                self.token = next;
                Ok(())
            }
            Err(e) => {
                // A broken chain is an error; start a new one so the worker goes on.
                let body = self
                    .ctx
                    .tokens(&self.browser, &self.user, OFFLINE_SCOPE)
                    .await?;
                self.token = http::json_str(&body, "refresh_token")?;
                Err(e)
            }
        }
    }
}

/// authorize (existing session and grant) -> code -> token exchange with PKCE.
struct CodeFlow {
    ctx: Arc<Ctx>,
    browser: Browser,
    user: User,
}

impl Worker for CodeFlow {
    async fn step(&mut self) -> anyhow::Result<()> {
        let body = self.ctx.tokens(&self.browser, &self.user, SCOPE).await?;
        http::json_str(&body, "id_token").map(drop)
    }
}

/// GET /userinfo with a Bearer access token.
struct Userinfo {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Worker for Userinfo {
    async fn step(&mut self) -> anyhow::Result<()> {
        let res = self
            .http
            .get(&self.url)
            .bearer_auth(&self.token)
            .send()
            .await?;
        http::json_str(&http::ok_text(res).await?, "sub").map(drop)
    }
}

/// The client introspects its own access token (RFC 7662).
struct Introspect {
    http: reqwest::Client,
    url: String,
    creds: Creds,
    token: String,
}

impl Worker for Introspect {
    async fn step(&mut self) -> anyhow::Result<()> {
        let pairs = [("token", self.token.as_str())];
        let res = http::post_form(&self.http, &self.url, Some(&self.creds), &pairs).await?;
        let body = http::ok_text(res).await?;
        let v: serde_json::Value = serde_json::from_str(&body)?;
        if v["active"] != true {
            bail!("inactive: {body}");
        }
        Ok(())
    }
}

/// Password sign-ins through the login form (CSRF double submit), each a new session.
struct Login {
    browser: Browser,
    url: String,
    csrf: String,
    user: User,
}

impl Login {
    /// Browser `i`: user `{user}-{i}` from its own address, 127.0.1.(i+1), as many people
    /// signing in from their own machines would (one account from one address is what
    /// the login throttle is for).
    async fn new(ctx: &Ctx, i: usize) -> anyhow::Result<Self> {
        let last = u8::try_from(i % 250 + 1)?;
        let ip = std::net::Ipv4Addr::new(127, 0, 1, last).into();
        let browser = Browser::from_address(&ctx.issuer, Some(ip))?;
        let csrf = browser.login_csrf(&ctx.ep.login).await?;
        let user = ctx.numbered_user(i);
        Ok(Self {
            browser,
            url: ctx.ep.login.clone(),
            csrf,
            user,
        })
    }
}

impl Worker for Login {
    async fn step(&mut self) -> anyhow::Result<()> {
        let res = self
            .browser
            .password_login(&self.url, &self.csrf, &self.user)
            .await?;
        match res.status() {
            StatusCode::SEE_OTHER => Ok(()),
            s => Err(anyhow!("login answered {s}")),
        }
    }
}

async fn setup<W, F, Fut>(n: usize, make: F) -> anyhow::Result<Vec<W>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<W>>,
{
    let mut workers = Vec::with_capacity(n);
    for i in 0..n {
        workers.push(make(i).await?);
    }
    Ok(workers)
}

pub async fn discovery(ctx: &Ctx) -> anyhow::Result<Stats> {
    let url = ctx.ep.discovery.clone();
    let w = ctx.workers(|_| {
        Ok(Get {
            http: http::client(None, None)?,
            url: url.clone(),
        })
    })?;
    Ok(measure::run(w, ctx.window).await)
}

pub async fn jwks(ctx: &Ctx) -> anyhow::Result<Stats> {
    let url = ctx.ep.jwks.clone();
    let w = ctx.workers(|_| {
        Ok(Get {
            http: http::client(None, None)?,
            url: url.clone(),
        })
    })?;
    Ok(measure::run(w, ctx.window).await)
}

fn cc_workers(ctx: &Ctx) -> anyhow::Result<Vec<ClientCredentials>> {
    ctx.workers(|_| {
        Ok(ClientCredentials {
            http: http::client(None, None)?,
            url: ctx.ep.token.clone(),
            creds: ctx.cc.clone(),
            resource: ctx.resource.clone(),
        })
    })
}

pub async fn client_credentials(ctx: &Ctx) -> anyhow::Result<Stats> {
    client_credentials_within(ctx, ctx.window).await
}

/// client_credentials over another window (the short runs of the signing bound).
pub async fn client_credentials_within(ctx: &Ctx, window: Window) -> anyhow::Result<Stats> {
    Ok(measure::run(cc_workers(ctx)?, window).await)
}

pub async fn refresh(ctx: &Arc<Ctx>) -> anyhow::Result<Stats> {
    let w = setup(ctx.concurrency, |i| Refresh::new(ctx.clone(), i)).await?;
    Ok(measure::run(w, ctx.window).await)
}

pub async fn code_flow(ctx: &Arc<Ctx>) -> anyhow::Result<Stats> {
    let w = setup(ctx.concurrency, |i| async move {
        let user = ctx.numbered_user(i);
        Ok(CodeFlow {
            ctx: ctx.clone(),
            browser: ctx.session(&user).await?,
            user,
        })
    })
    .await?;
    Ok(measure::run(w, ctx.window).await)
}

/// An access token from a fresh code flow.
async fn access_token(ctx: &Ctx) -> anyhow::Result<String> {
    let browser = Browser::new(&ctx.issuer)?;
    http::json_str(
        &ctx.tokens(&browser, &ctx.user, SCOPE).await?,
        "access_token",
    )
}

pub async fn userinfo(ctx: &Ctx) -> anyhow::Result<Stats> {
    let token = access_token(ctx).await?;
    let w = ctx.workers(|_| {
        Ok(Userinfo {
            http: http::client(None, None)?,
            url: ctx.ep.userinfo.clone(),
            token: token.clone(),
        })
    })?;
    Ok(measure::run(w, ctx.window).await)
}

pub async fn introspection(ctx: &Ctx) -> anyhow::Result<Stats> {
    let token = access_token(ctx).await?;
    let w = ctx.workers(|_| {
        Ok(Introspect {
            http: http::client(None, None)?,
            url: ctx.ep.introspect.clone(),
            creds: ctx.web.clone(),
            token: token.clone(),
        })
    })?;
    Ok(measure::run(w, ctx.window).await)
}

pub async fn password_login(ctx: &Ctx) -> anyhow::Result<Stats> {
    let w = setup(ctx.concurrency, |i| Login::new(ctx, i)).await?;
    Ok(measure::run(w, ctx.window).await)
}

/// What the storm's sign-ins got, and how long each answer took (in microseconds):
/// the accepted ones include their wait in the hashing queue, the refused ones (429 and
/// 503) show whether the excess is answered at once.
#[derive(Debug, Default, Clone)]
pub struct Logins {
    pub ok: u64,
    pub throttled: u64,
    pub busy: u64,
    pub other: u64,
    pub ok_us: Vec<u32>,
    pub refused_us: Vec<u32>,
}

/// client_credentials at the usual concurrency while `clients` browsers sign in without
/// pause. A browser told 429 or 503 waits `Retry-After` (at most 1 s), as a person would.
pub async fn storm(ctx: &Ctx, clients: usize) -> anyhow::Result<(Stats, Logins)> {
    let logins = setup(clients, |i| Login::new(ctx, i)).await?;
    let end = Instant::now() + ctx.window.warmup + ctx.window.measured;
    let storm: Vec<_> = logins
        .into_iter()
        .map(|l| tokio::spawn(sign_in_until(l, end)))
        .collect();
    let stats = measure::run(cc_workers(ctx)?, ctx.window).await;
    let mut total = Logins::default();
    for t in storm {
        let l = t.await?;
        total.ok += l.ok;
        total.throttled += l.throttled;
        total.busy += l.busy;
        total.other += l.other;
        total.ok_us.extend(l.ok_us);
        total.refused_us.extend(l.refused_us);
    }
    Ok((stats, total))
}

async fn sign_in_until(mut l: Login, end: Instant) -> Logins {
    let mut n = Logins::default();
    while Instant::now() < end {
        let sent = Instant::now();
        let res = l.browser.password_login(&l.url, &l.csrf, &l.user).await;
        let took = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
        let wait = match &res {
            Ok(r) if r.status() == StatusCode::SEE_OTHER => {
                n.ok += 1;
                n.ok_us.push(took);
                None
            }
            Ok(r) if r.status() == StatusCode::TOO_MANY_REQUESTS => {
                n.throttled += 1;
                n.refused_us.push(took);
                http::retry_after(r)
            }
            Ok(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE => {
                n.busy += 1;
                n.refused_us.push(took);
                http::retry_after(r)
            }
            _ => {
                n.other += 1;
                Some(1)
            }
        };
        if let Some(secs) = wait {
            tokio::time::sleep(Duration::from_secs(secs.min(1))).await;
        }
        if res.is_err() {
            // Reconnect with a new page (and CSRF cookie) after a transport error.
            if let Ok(csrf) = l.browser.login_csrf(&l.url).await {
                l.csrf = csrf;
            }
        }
    }
    n
}
