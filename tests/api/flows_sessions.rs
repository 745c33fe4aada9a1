//! Session lifetimes, disabled users, `max_age` / `prompt=login` / `login_hint`, the
//! refresh-family lifetimes, and the audit record of a refresh-token reuse.

use serde_json::Value;

use latchkey::domain::AuditFilter;

use crate::helpers::{spawn_app, spawn_app_with, Backend};
use crate::oauth::*;

crate::both_stores!(
    idle_session_ends_after_the_idle_timeout,
    session_ends_after_its_absolute_lifetime,
    a_disabled_users_session_and_tokens_stop_working,
    max_age_forces_a_fresh_login,
    prompt_login_forces_a_login_once,
    login_hint_prefills_the_username_escaped,
    refresh_reuse_is_audited_with_family_client_user_and_ip,
    refresh_families_expire_when_idle_and_at_their_absolute_end,
    repeated_failures_lock_a_username_whether_or_not_it_exists,
    repeated_failures_block_an_ip,
    a_burst_of_parallel_guesses_is_held_to_the_limit,
    forwarded_addresses_count_only_from_trusted_proxies,
);

async fn idle_session_ends_after_the_idle_timeout(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (browser, _, _) = full_flow(&app, &client, USERNAME, "openid").await;
    app.clock.advance(1799);
    code_with_session(&app, &browser, &AuthRequest::new(&client, "openid")).await;
    app.clock.advance(1800);
    assert_logged_out(&app, &browser, &client).await;
}

async fn session_ends_after_its_absolute_lifetime(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.sessions.absolute_lifetime_secs = 3000).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (browser, _, _) = full_flow(&app, &client, USERNAME, "openid").await;
    // Used every 25 minutes, the session never idles out, but ends at 3000 s all the same.
    app.clock.advance(1500);
    code_with_session(&app, &browser, &AuthRequest::new(&client, "openid")).await;
    app.clock.advance(1499);
    code_with_session(&app, &browser, &AuthRequest::new(&client, "openid")).await;
    app.clock.advance(1);
    assert_logged_out(&app, &browser, &client).await;
}

async fn a_disabled_users_session_and_tokens_stop_working(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (browser, _, tokens) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    disable_user(&app, USERNAME).await;
    assert_logged_out(&app, &browser, &client).await;
    let res = userinfo(&app, s(&tokens, "access_token")).await;
    assert_eq!(res.status(), 401);
    assert_inactive(&app, &client, s(&tokens, "access_token")).await;
    assert_refresh_dead(&app, &client, s(&tokens, "refresh_token")).await;
}

async fn max_age_forces_a_fresh_login(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (browser, _, first) = full_flow(&app, &client, USERNAME, "openid").await;
    let first_auth = claims(s(&first, "id_token"))["auth_time"].as_i64().unwrap();
    app.clock.advance(120);
    // Within max_age: no login.
    let req = AuthRequest::new(&client, "openid").with("max_age", Some("600"));
    code_with_session(&app, &browser, &req).await;
    // Older than max_age: the login page, then a code whose ID token has the new auth_time.
    let req = AuthRequest::new(&client, "openid").with("max_age", Some("60"));
    let code = login_and_get_code(&app, &browser, &req, USERNAME).await;
    let tokens = assert_tokens(exchange_code(&app, &client, &code, &req).await).await;
    let auth_time = claims(s(&tokens, "id_token"))["auth_time"]
        .as_i64()
        .unwrap();
    assert_eq!(auth_time, first_auth + 120);
    // prompt=none with an old session is login_required, not a login page.
    app.clock.advance(120);
    let req = AuthRequest::new(&client, "openid")
        .with("max_age", Some("60"))
        .with("prompt", Some("none"));
    let res = authorize(&app, &browser, &req).await;
    assert_auth_error(&app, &res, &req, "login_required");
}

async fn prompt_login_forces_a_login_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = third_party_client(&app).await;
    alice(&app).await;
    let (browser, _, _) = full_flow(&app, &client, USERNAME, "openid").await;
    let req = AuthRequest::new(&client, "openid email").with("prompt", Some("login"));
    // Consent is needed for the wider scope too: login, then consent, then the code.
    let code = login_and_get_code(&app, &browser, &req, USERNAME).await;
    assert!(!code.is_empty());
}

async fn login_hint_prefills_the_username_escaped(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    let hint = "\"><script>alert(1)</script>";
    let req = AuthRequest::new(&client, "openid").with("login_hint", Some(hint));
    let res = authorize(&app, &Browser::new(&app), &req).await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    assert!(!page.contains("<script>alert(1)"), "hint must be escaped");
    assert!(page.contains("&lt;script&gt;alert(1)"), "{page}");
}

fn audit_filter() -> AuditFilter {
    AuditFilter {
        limit: 10,
        ..Default::default()
    }
}

async fn refresh_reuse_is_audited_with_family_client_user_and_ip(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    let user = alice(&app).await;
    let (_, _, tokens) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let first = s(&tokens, "refresh_token").to_owned();
    assert_tokens(refresh(&app, &client, &first).await).await;
    let before = app.state.store.list_events(&audit_filter()).await.unwrap();
    assert_eq!(
        before.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["login_succeeded"],
        "no reuse event before reuse"
    );
    assert_error(refresh(&app, &client, &first).await, 400, "invalid_grant").await;
    let events = app.state.store.list_events(&audit_filter()).await.unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    let e = &events[0];
    assert_eq!(e.kind, "refresh_token_reuse");
    assert_eq!(e.client_id.as_deref(), Some(client.id.as_str()));
    assert_eq!(e.user_id.as_deref(), Some(user.id.as_str()));
    assert_eq!(e.ip.as_deref(), Some("127.0.0.1"));
    // Admins read it with the CLI.
    let out = app.cli(&["audit", "list", "--json"]);
    assert!(out.status.success(), "{}", out.stderr);
    let line: Value = serde_json::from_str(out.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(line["kind"], "refresh_token_reuse");
    assert_eq!(line["ip"], "127.0.0.1");
    assert_eq!(line["client_id"], client.id.as_str());
    let family = e.grant_id.clone().unwrap();
    let grant = app.state.store.get_grant(&family).await.unwrap().unwrap();
    assert!(
        grant.revoked_at.is_some(),
        "the audited family is the revoked one"
    );
}

async fn refresh_families_expire_when_idle_and_at_their_absolute_end(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.tokens.refresh_idle_ttl_secs = 1000;
        s.tokens.refresh_absolute_ttl_secs = 2500;
    })
    .await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    // Idle: unused for the idle timeout, the family ends.
    let (_, _, tokens) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    app.clock.advance(1000);
    assert_refresh_dead(&app, &client, s(&tokens, "refresh_token")).await;
    // Absolute: used every 900 s, it still ends 2500 s after the code was redeemed.
    let (_, _, tokens) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let mut rt = s(&tokens, "refresh_token").to_owned();
    for _ in 0..2 {
        app.clock.advance(900);
        let t = assert_tokens(refresh(&app, &client, &rt).await).await;
        rt = s(&t, "refresh_token").to_owned();
    }
    app.clock.advance(700);
    assert_refresh_dead(&app, &client, &rt).await;
}

/// Posts the login form for `username` on a fresh login page of `browser`.
async fn try_login(
    app: &crate::helpers::TestApp,
    browser: &Browser,
    client: &TestClient,
    username: &str,
    password: &str,
) -> reqwest::Response {
    let res = authorize(app, browser, &AuthRequest::new(client, "openid")).await;
    let page = res.text().await.unwrap();
    submit_login(app, browser, &page, username, password).await
}

async fn repeated_failures_lock_a_username_whether_or_not_it_exists(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.login.free_failures_per_account_address = 3).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    create_user(&app, "bob", &[]).await;
    let browser = Browser::new(&app);
    for name in [USERNAME, "nobody"] {
        for _ in 0..3 {
            assert_eq!(
                try_login(&app, &browser, &client, name, "wrong password")
                    .await
                    .status(),
                401
            );
        }
        // Locked now, even with the right password, and the same for a name that does not exist.
        let res = try_login(&app, &browser, &client, name, PASSWORD).await;
        assert_eq!(res.status(), 429, "{name}");
        assert!(res
            .headers()
            .get("set-cookie")
            .is_none_or(|c| !c.to_str().unwrap().contains("latchkey_session")));
        assert!(res.text().await.unwrap().contains("Too many attempts"));
    }
    // Others are not affected.
    assert_eq!(
        try_login(&app, &browser, &client, "bob", PASSWORD)
            .await
            .status(),
        303
    );
    // The lock ends with its window (15 minutes from the first failure).
    app.clock.advance(900);
    assert_eq!(
        try_login(&app, &Browser::new(&app), &client, USERNAME, PASSWORD)
            .await
            .status(),
        303
    );
}

async fn repeated_failures_block_an_ip(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.login.free_failures_per_address = 4).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let browser = Browser::new(&app);
    for name in ["u1", "u2", "u3", "u4"] {
        assert_eq!(
            try_login(&app, &browser, &client, name, "wrong password")
                .await
                .status(),
            401
        );
    }
    assert_eq!(
        try_login(&app, &browser, &client, USERNAME, PASSWORD)
            .await
            .status(),
        429
    );
}

async fn a_burst_of_parallel_guesses_is_held_to_the_limit(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.login.free_failures_per_account_address = 3).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let browser = Browser::new(&app);
    let page = authorize(&app, &browser, &AuthRequest::new(&client, "openid"))
        .await
        .text()
        .await
        .unwrap();
    let guesses = (0..20).map(|i| {
        let password = format!("guess number {i}");
        let (app, browser, page) = (&app, &browser, &page);
        async move {
            submit_login(app, browser, page, USERNAME, &password)
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((checked, refused), (3, 17), "{statuses:?}");
}

async fn login_from(
    app: &crate::helpers::TestApp,
    client: &TestClient,
    user: &str,
    forwarded_for: &str,
) -> u16 {
    let browser = Browser::new(app);
    let page = authorize(app, &browser, &AuthRequest::new(client, "openid"))
        .await
        .text()
        .await
        .unwrap();
    let (csrf, request) = login_form(&page);
    let res = browser
        .http
        .post(app.url("/login"))
        .header("content-type", FORM)
        .header("x-forwarded-for", forwarded_for)
        .body(form_body(&[
            ("username", user),
            ("password", "wrong password"),
            ("csrf", &csrf),
            ("request", &request),
        ]))
        .send()
        .await
        .unwrap();
    res.status().as_u16()
}

async fn forwarded_addresses_count_only_from_trusted_proxies(backend: Backend) {
    // Behind a trusted proxy, each forwarded address has its own count.
    let app = spawn_app_with(backend, |s| {
        s.login.free_failures_per_address = 2;
        s.proxy.trusted = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let client = confidential_client(&app).await;
    assert_eq!(login_from(&app, &client, "u1", "10.0.0.1").await, 401);
    assert_eq!(login_from(&app, &client, "u2", "10.0.0.1").await, 401);
    assert_eq!(login_from(&app, &client, "u3", "10.0.0.1").await, 429);
    assert_eq!(
        login_from(&app, &client, "u4", "10.0.0.2").await,
        401,
        "another client behind the proxy"
    );
    // A forged hop in front of the real one does not help: the right-most untrusted entry counts.
    assert_eq!(
        login_from(&app, &client, "u5", "6.6.6.6, 10.0.0.1").await,
        429
    );

    // From an untrusted peer the header is ignored: every request is the peer's.
    let app = spawn_app_with(backend, |s| s.login.free_failures_per_address = 2).await;
    let client = confidential_client(&app).await;
    assert_eq!(login_from(&app, &client, "u1", "10.0.0.1").await, 401);
    assert_eq!(login_from(&app, &client, "u2", "10.0.0.2").await, 401);
    assert_eq!(login_from(&app, &client, "u3", "10.0.0.3").await, 429);
}
