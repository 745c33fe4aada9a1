//! Security properties beyond the happy paths: what ends when an account is disabled or
//! its password changes, codes that outlive a logout, logout hints from retired keys,
//! audiences, token confusion, cookies over https, headers on every page, and secrets at
//! rest.

use latchkey::clock::Clock;
use latchkey::service::admin;
use serde_json::Value;

use crate::helpers::{spawn_app, spawn_app_with, Backend};
use crate::oauth::*;

crate::both_stores!(
    disable_then_enable_does_not_revive_sessions_or_tokens,
    a_password_change_ends_sessions_and_tokens,
    a_code_issued_before_logout_cannot_be_redeemed_after,
    a_code_issued_before_a_disabling_or_password_change_cannot_be_redeemed_after,
    a_hint_signed_by_a_retired_key_asks_for_confirmation,
    refresh_tokens_are_introspected_only_by_their_client,
    userinfo_refuses_tokens_for_another_audience,
    code_flow_with_a_resource_sets_the_audience,
    an_id_token_typed_jwt_is_not_an_access_token,
    relogin_gets_a_new_session_id,
    https_issuer_uses_host_prefixed_secure_cookies_and_hsts,
    security_headers_on_pages_and_token_responses,
    basic_with_a_body_secret_is_a_400_not_a_401,
    housekeeping_run_removes_the_whole_backlog,
    a_password_change_outranks_a_login_that_raced_it,
    a_password_change_while_a_login_checks_the_old_password_ends_that_login,
    every_failed_login_costs_one_argon2_verification,
    rotated_secrets_and_deleted_clients_stop_working_within_the_refresh_interval,
);

async fn disable_then_enable_does_not_revive_sessions_or_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (browser, _, tokens) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let store = app.state.store.as_ref();
    admin::set_user_disabled(store, USERNAME, true, app.clock.now())
        .await
        .unwrap();
    admin::set_user_disabled(store, USERNAME, false, app.clock.now())
        .await
        .unwrap();
    assert_logged_out(&app, &browser, &client).await;
    assert_refresh_dead(&app, &client, s(&tokens, "refresh_token")).await;
    assert_inactive(&app, &client, s(&tokens, "access_token")).await;
    // The account itself works again.
    full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
}

async fn a_password_change_ends_sessions_and_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (browser, _, tokens) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let pw = latchkey::domain::Password::parse("a brand new password").unwrap();
    admin::set_password(
        app.state.store.as_ref(),
        &app.state.passwords,
        USERNAME,
        &pw,
        app.clock.now(),
    )
    .await
    .unwrap();
    assert_logged_out(&app, &browser, &client).await;
    assert_refresh_dead(&app, &client, s(&tokens, "refresh_token")).await;
}

async fn a_code_issued_before_logout_cannot_be_redeemed_after(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (browser, _, tokens) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let req = AuthRequest::new(&client, FULL_SCOPE);
    let code = code_with_session(&app, &browser, &req).await;
    let logout = format!(
        "/logout?id_token_hint={}&post_logout_redirect_uri={POST_LOGOUT_URI}",
        s(&tokens, "id_token")
    );
    assert_eq!(
        browser
            .http
            .get(app.url(&logout))
            .send()
            .await
            .unwrap()
            .status(),
        303
    );
    assert_error(
        exchange_code(&app, &client, &code, &req).await,
        400,
        "invalid_grant",
    )
    .await;
}

async fn a_code_issued_before_a_disabling_or_password_change_cannot_be_redeemed_after(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let store = app.state.store.as_ref();
    let req = AuthRequest::new(&client, FULL_SCOPE);

    let browser = Browser::new(&app);
    let code = login_and_get_code(&app, &browser, &req, USERNAME).await;
    admin::set_user_disabled(store, USERNAME, true, app.clock.now())
        .await
        .unwrap();
    admin::set_user_disabled(store, USERNAME, false, app.clock.now())
        .await
        .unwrap();
    assert_error(
        exchange_code(&app, &client, &code, &req).await,
        400,
        "invalid_grant",
    )
    .await;

    let browser = Browser::new(&app);
    let code = login_and_get_code(&app, &browser, &req, USERNAME).await;
    let pw = latchkey::domain::Password::parse("a brand new password").unwrap();
    admin::set_password(store, &app.state.passwords, USERNAME, &pw, app.clock.now())
        .await
        .unwrap();
    assert_error(
        exchange_code(&app, &client, &code, &req).await,
        400,
        "invalid_grant",
    )
    .await;
}

async fn a_hint_signed_by_a_retired_key_asks_for_confirmation(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (browser, _, tokens) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let (current, _) = crate::helpers::fixture_keys().await;
    assert!(app.cli(&["keys", "rotate", "--force"]).status.success());
    assert!(app
        .cli(&["keys", "retire", &current.kid, "--force"])
        .status
        .success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while app
        .state
        .keys
        .published()
        .verifying
        .kids()
        .contains(&current.kid.as_str())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "retirement not picked up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let logout = format!(
        "/logout?id_token_hint={}&post_logout_redirect_uri={POST_LOGOUT_URI}",
        s(&tokens, "id_token")
    );
    let res = browser.http.get(app.url(&logout)).send().await.unwrap();
    assert_eq!(
        res.status(),
        200,
        "a confirmation page, not an error and not a redirect"
    );
    assert!(res.headers().get("location").is_none());
    assert!(res.text().await.unwrap().contains("name=\"confirm\""));
    // Nothing ended yet.
    code_with_session(&app, &browser, &AuthRequest::new(&client, "openid")).await;
}

async fn refresh_tokens_are_introspected_only_by_their_client(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    let other = register(&app, confidential_input("Other App")).await;
    alice(&app).await;
    let (_, _, tokens) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    assert_active(&app, &client, s(&tokens, "refresh_token")).await;
    assert_inactive(&app, &other, s(&tokens, "refresh_token")).await;
}

async fn userinfo_refuses_tokens_for_another_audience(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = register(
        &app,
        latchkey::service::admin::NewClient {
            resources: vec!["https://api.example".into()],
            ..confidential_input("With API")
        },
    )
    .await;
    alice(&app).await;
    let browser = Browser::new(&app);
    let req = AuthRequest::new(&client, "openid").with("resource", Some("https://api.example"));
    let code = login_and_get_code(&app, &browser, &req, USERNAME).await;
    let tokens = assert_tokens(exchange_code(&app, &client, &code, &req).await).await;
    let res = userinfo(&app, s(&tokens, "access_token")).await;
    assert_eq!(
        res.status(),
        401,
        "a token for https://api.example is not good at userinfo"
    );
    // A token for the default audience is.
    let (_, _, tokens) = full_flow(&app, &client, USERNAME, "openid").await;
    let res = userinfo(&app, s(&tokens, "access_token")).await;
    assert_eq!(res.status(), 200);
}

async fn code_flow_with_a_resource_sets_the_audience(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = register(
        &app,
        latchkey::service::admin::NewClient {
            resources: vec!["https://api.example".into(), "https://other.example".into()],
            ..confidential_input("With APIs")
        },
    )
    .await;
    alice(&app).await;
    let browser = Browser::new(&app);
    let req = AuthRequest::new(&client, FULL_SCOPE).with("resource", Some("https://api.example"));
    let code = login_and_get_code(&app, &browser, &req, USERNAME).await;
    let tokens = assert_tokens(exchange_code(&app, &client, &code, &req).await).await;
    assert_eq!(
        claims(s(&tokens, "access_token"))["aud"],
        serde_json::json!(["https://api.example"])
    );
    // Refreshing keeps the audience; another registered resource is outside the grant.
    let rt = s(&tokens, "refresh_token").to_owned();
    let res = token(
        &app,
        &client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("resource", "https://other.example"),
        ],
    )
    .await;
    assert_error(res, 400, "invalid_target").await;
    let t = assert_tokens(refresh(&app, &client, &rt).await).await;
    assert_eq!(
        claims(s(&t, "access_token"))["aud"],
        serde_json::json!(["https://api.example"])
    );
    // A grant made without a resource cannot be turned into one for a resource.
    let (_, _, plain) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let rt = s(&plain, "refresh_token");
    let res = token(
        &app,
        &client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("resource", "https://api.example"),
        ],
    )
    .await;
    assert_error(res, 400, "invalid_target").await;
}

async fn an_id_token_typed_jwt_is_not_an_access_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (_, _, tokens) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    // Every access-token claim, signed by our key, but typed as a plain JWT (as ID tokens are).
    let at_claims = claims(s(&tokens, "access_token"));
    let forged = app.state.keys.sign("JWT", &at_claims).unwrap();
    let res = userinfo(&app, &forged).await;
    assert_eq!(res.status(), 401);
    assert_inactive(&app, &client, &forged).await;
    // The same claims typed at+jwt are accepted: only the type differs.
    let typed = app.state.keys.sign("at+jwt", &at_claims).unwrap();
    let res = userinfo(&app, &typed).await;
    assert_eq!(res.status(), 200);
}

async fn relogin_gets_a_new_session_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (browser, _, _) = full_flow(&app, &client, USERNAME, "openid").await;
    let first = browser.cookie("latchkey_session").unwrap();
    let req = AuthRequest::new(&client, "openid").with("prompt", Some("login"));
    login_and_get_code(&app, &browser, &req, USERNAME).await;
    let second = browser.cookie("latchkey_session").unwrap();
    assert_ne!(
        first, second,
        "a login never keeps the session id the browser had"
    );
    assert_eq!(second.len(), 43, "256-bit random id");
}

async fn https_issuer_uses_host_prefixed_secure_cookies_and_hsts(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.issuer = s.issuer.replace("http://", "https://")
    })
    .await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let req = AuthRequest::new(&client, "openid");
    let res = http.get(req.url(&app)).send().await.unwrap();
    let hsts = res.headers()["strict-transport-security"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(hsts.starts_with("max-age="), "{hsts}");
    let csrf_cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        csrf_cookie.starts_with("__Host-latchkey_csrf="),
        "{csrf_cookie}"
    );
    for attr in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(csrf_cookie.contains(attr), "{csrf_cookie}");
    }
    assert!(!csrf_cookie.contains("Domain="));
    let page = res.text().await.unwrap();
    let (csrf, request) = login_form(&page);
    let res = http
        .post(app.url("/login"))
        .header("cookie", format!("__Host-latchkey_csrf={csrf}"))
        .header("content-type", FORM)
        .body(form_body(&[
            ("username", USERNAME),
            ("password", PASSWORD),
            ("csrf", &csrf),
            ("request", &request),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let session_cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        session_cookie.starts_with("__Host-latchkey_session="),
        "{session_cookie}"
    );
    for attr in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(session_cookie.contains(attr), "{session_cookie}");
    }
}

async fn security_headers_on_pages_and_token_responses(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    let pages = [
        app.http
            .get(AuthRequest::new(&client, "openid").url(&app))
            .send()
            .await
            .unwrap(),
        app.http
            .get(app.url("/authorize?client_id=nope"))
            .send()
            .await
            .unwrap(),
        app.http.get(app.url("/logout")).send().await.unwrap(),
        token(&app, &client, &[("grant_type", "password")]).await,
    ];
    for res in pages {
        let h = res.headers();
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["x-frame-options"], "DENY");
        assert!(h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'"));
        assert_eq!(h["cache-control"], "no-store");
    }
}

async fn basic_with_a_body_secret_is_a_400_not_a_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    let secret = client.secret.clone().unwrap();
    let res = reqwest::Client::new()
        .post(app.url("/token"))
        .header("authorization", basic(&client.id, &secret))
        .header("content-type", FORM)
        .body(form_body(&[
            ("grant_type", "client_credentials"),
            ("client_secret", secret.as_str()),
        ]))
        .send()
        .await
        .unwrap();
    let headers = assert_error(res, 400, "invalid_request").await;
    assert!(headers.get("www-authenticate").is_none());
}

async fn housekeeping_run_removes_the_whole_backlog(backend: Backend) {
    // The scheduled task itself, every 2 s, in batches of one row per table.
    let app = spawn_app_with(backend, |s| {
        s.housekeeping.batch_size = 1;
        s.housekeeping.interval_secs = 2;
    })
    .await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let browser = Browser::new(&app);
    let mut hashes = Vec::new();
    for i in 0..5 {
        let req = AuthRequest::new(&client, "openid");
        let code = if i == 0 {
            login_and_get_code(&app, &browser, &req, USERNAME).await
        } else {
            code_with_session(&app, &browser, &req).await
        };
        hashes.push(latchkey::crypto::hash_token(&code));
    }
    app.clock.advance(3600);
    let store = app.state.store.clone();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.get_code(&hashes[0]).await.unwrap().is_some()
        && store.get_code(&hashes[4]).await.unwrap().is_some()
    {
        assert!(std::time::Instant::now() < deadline, "the task never ran");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // One run drains the backlog batch after batch: well before the next tick (2 s), all
    // five are gone. One batch per run would leave four.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    for hash in &hashes {
        assert_eq!(
            store.get_code(hash).await.unwrap(),
            None,
            "the whole backlog goes in one run"
        );
    }
}

/// SQLite only: the whole database is a few files we can read byte by byte. The SQL is the
/// same text on PostgreSQL, so what is stored is the same there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_stored_only_hashed_or_sealed() {
    let app = spawn_app(Backend::Sqlite).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let browser = Browser::new(&app);
    let req = AuthRequest::new(&client, FULL_SCOPE);
    let code = login_and_get_code(&app, &browser, &req, USERNAME).await;
    let tokens = assert_tokens(exchange_code(&app, &client, &code, &req).await).await;
    let rotated = assert_tokens(refresh(&app, &client, s(&tokens, "refresh_token")).await).await;
    let session = browser.cookie("latchkey_session").unwrap();
    let mut secrets: Vec<(String, Vec<u8>)> = vec![
        (
            "client secret".into(),
            client.secret.clone().unwrap().into_bytes(),
        ),
        ("session id".into(), session.into_bytes()),
        ("authorization code".into(), code.into_bytes()),
        (
            "spent refresh token".into(),
            s(&tokens, "refresh_token").as_bytes().to_vec(),
        ),
        (
            "refresh token".into(),
            s(&rotated, "refresh_token").as_bytes().to_vec(),
        ),
        ("password".into(), PASSWORD.as_bytes().to_vec()),
    ];
    // A TOTP secret (raw and base32) and backup codes (as shown and as typed).
    let (_, enrolled) = crate::accounts_support::user_with_totp(&app, "carol").await;
    secrets.push(("TOTP secret".into(), enrolled.secret.as_bytes().to_vec()));
    secrets.push((
        "TOTP secret in base32".into(),
        enrolled.secret.to_base32().into_bytes(),
    ));
    for code in &enrolled.backup_codes {
        secrets.push(("backup code".into(), code.clone().into_bytes()));
        secrets.push(("backup code".into(), code.replace('-', "").into_bytes()));
    }
    let (current, _) = crate::helpers::fixture_keys().await;
    let master = latchkey::crypto::MasterKey::load(
        Some(crate::helpers::TEST_MASTER_KEY),
        std::path::Path::new("/x"),
    )
    .unwrap();
    let aad = latchkey::service::keys::key_aad(
        &current.kid,
        &current.alg,
        &current.public_n,
        &current.public_e,
    );
    let der = master.open(&current.private_key_sealed, &aad).unwrap();
    secrets.push(("private key".into(), der[der.len() - 64..].to_vec()));
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(app.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("latchkey.db")
        {
            stored.extend(std::fs::read(&path).unwrap());
        }
    }
    assert!(stored.len() > 10_000, "read the database files");
    for (what, secret) in &secrets {
        let found = stored.windows(secret.len()).any(|w| w == secret.as_slice());
        assert!(!found, "the {what} is stored in clear");
    }
    // The sealed TOTP secret opens only with the key-encryption key and its own user id
    // as associated data.
    let carol = app
        .state
        .store
        .get_user_by_username(&latchkey::domain::Username::parse("carol").unwrap())
        .await
        .unwrap()
        .unwrap();
    let sealed = app
        .state
        .store
        .get_totp(carol.id.as_str())
        .await
        .unwrap()
        .unwrap();
    let aad = format!("totp:{}", carol.id.as_str());
    let opened = master.open(&sealed.secret_sealed, aad.as_bytes()).unwrap();
    assert_eq!(opened, enrolled.secret.as_bytes());
    assert!(master
        .open(&sealed.secret_sealed, b"totp:someone-else")
        .is_err());
    // And the hashes are what is there: the refresh token's SHA-256 is findable.
    let hash = latchkey::crypto::hash_token(s(&rotated, "refresh_token"));
    assert!(
        stored.windows(hash.len()).any(|w| w == hash.as_slice()),
        "hash stored"
    );
}

async fn rotated_secrets_and_deleted_clients_stop_working_within_the_refresh_interval(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let client = cc_client(&app, &[]).await;
    let cc = [("grant_type", "client_credentials")];
    // Warm the cache.
    assert_tokens(token(&app, &client, &cc).await).await;
    let out = app.cli(&["client", "rotate-secret", &client.id, "--json"]);
    assert!(out.status.success(), "{}", out.stderr);
    let new: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let rotated = TestClient {
        secret: Some(new["client_secret"].as_str().unwrap().to_owned()),
        ..client.clone()
    };
    // clients.cache_refresh_secs is 1 s: the old secret is refused within a few polls.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while token(&app, &client, &cc).await.status() == 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "old secret still accepted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_error(token(&app, &client, &cc).await, 401, "invalid_client").await;
    assert_tokens(token(&app, &rotated, &cc).await).await;
    assert!(app.cli(&["client", "delete", &client.id]).status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while token(&app, &rotated, &cc).await.status() == 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "deleted client still accepted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_error(token(&app, &rotated, &cc).await, 401, "invalid_client").await;
}

async fn a_password_change_outranks_a_login_that_raced_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (browser, _, tokens) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    // Only the stored password changes, as when a login in flight created its session and
    // grant just after the admin's cut-off ran: nothing was ended or revoked explicitly.
    // And it changes in the very second of the login (the clock has not moved).
    let name = latchkey::domain::Username::parse(USERNAME).unwrap();
    assert!(app
        .state
        .store
        .set_password_hash(&name, "$argon2id$v=19$m=8,t=1,p=1$x$y", app.clock.now())
        .await
        .unwrap()
        .is_some());
    assert_logged_out(&app, &browser, &client).await;
    assert_refresh_dead(&app, &client, s(&tokens, "refresh_token")).await;
    assert_inactive(&app, &client, s(&tokens, "access_token")).await;
    let res = userinfo(&app, s(&tokens, "access_token")).await;
    assert_eq!(res.status(), 401);
}

/// A real argon2id hash of `password`, slow enough to verify that a password change can
/// land while a sign-in is checking it.
async fn slow_hash_of(password: &str) -> String {
    let params = latchkey::crypto::PasswordParams {
        memory_kib: 1024,
        iterations: 3000,
        parallelism: 1,
    };
    let hasher = latchkey::crypto::PasswordHasher::new(params, 1).unwrap();
    let password = latchkey::domain::Password::parse(password).unwrap();
    hasher.hash(&password).await.unwrap()
}

/// True while the app's only argon2 place is taken.
fn hasher_busy(app: &crate::helpers::TestApp) -> bool {
    format!("{:?}", app.state.passwords).contains("available_permits: 0")
}

async fn a_password_change_while_a_login_checks_the_old_password_ends_that_login(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.passwords.max_concurrent = 1).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let store = app.state.store.as_ref();
    let name = latchkey::domain::Username::parse(USERNAME).unwrap();
    let slow = slow_hash_of(PASSWORD).await;
    assert!(store
        .set_password_hash(&name, &slow, app.clock.now())
        .await
        .unwrap()
        .is_some());
    let browser = Browser::new(&app);
    let req = AuthRequest::new(&client, FULL_SCOPE);
    let page = authorize(&app, &browser, &req).await.text().await.unwrap();
    let login = submit_login(&app, &browser, &page, USERNAME, PASSWORD);
    // The change lands while the login verifies the old password, in the same clock second.
    let change = async {
        while !hasher_busy(&app) {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        let new = "$argon2id$v=19$m=8,t=1,p=1$x$y";
        let changed = store.set_password_hash(&name, new, app.clock.now()).await;
        assert!(changed.unwrap().is_some());
        hasher_busy(&app)
    };
    let (res, still_busy) = tokio::join!(login, change);
    assert!(
        still_busy,
        "the verification ended too soon; raise the iterations"
    );
    // The old password matched when it was read, so the login goes on; nothing it made stands.
    if res.status() == 200 {
        let page = res.text().await.unwrap();
        let res = submit_consent(&app, &browser, &page, "allow").await;
        assert_eq!(res.status(), 200, "the consent post finds no session");
        login_form(&res.text().await.unwrap());
    } else {
        let code = assert_code(&app, &res, &req);
        let res = exchange_code(&app, &client, &code, &req).await;
        assert_error(res, 400, "invalid_grant").await;
    }
    assert_logged_out(&app, &browser, &client).await;
}

async fn every_failed_login_costs_one_argon2_verification(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    create_user(&app, "dora", &[]).await;
    disable_user(&app, "dora").await;
    for (user, password) in [
        (USERNAME, "wrong password"),
        ("nobody", PASSWORD),
        ("dora", PASSWORD),
    ] {
        let browser = Browser::new(&app);
        let page = authorize(&app, &browser, &AuthRequest::new(&client, "openid"))
            .await
            .text()
            .await
            .unwrap();
        let before = app.state.passwords.verifications();
        let res = submit_login(&app, &browser, &page, user, password).await;
        assert_eq!(res.status(), 401, "{user}");
        assert_eq!(
            app.state.passwords.verifications(),
            before + 1,
            "{user}: the same argon2 work"
        );
    }
}
