//! Issue 10: the OpenID certification behaviours and the review's hardening points
//! (request objects, error descriptions, logout that ends only the asking browser,
//! native apps, need-to-know introspection, `id_token_hint` at /authorize, CSP, re-login).

use latchkey::clock::Clock;
use latchkey::service::admin::{self, NewClient};
use serde_json::Value;

use crate::helpers::{spawn_app, Backend, TestApp};
use crate::oauth::*;

crate::both_stores!(
    error_descriptions_stay_in_the_rfc6749_set,
    introspection_is_need_to_know,
    tokens_of_a_deleted_client_are_inactive,
    rotate_secret_with_revoke_tokens_ends_every_token,
    client_policy_flags_are_stored,
    loopback_redirects_accept_any_port_and_always_ask_the_user,
    localhost_redirect_uris_are_refused_at_registration,
    an_id_token_hint_for_another_user_needs_a_login,
    a_new_login_ends_the_browsers_previous_session,
);

/// RFC 6749 §5.2: `error_description` is %x20-21 / %x23-5B / %x5D-7E; a repeated parameter
/// used to quote its name with `"`.
async fn error_descriptions_stay_in_the_rfc6749_set(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    let body = "grant_type=client_credentials&scope=a&scope=b";
    let res = reqwest::Client::new()
        .post(app.url("/token"))
        .header("content-type", FORM)
        .header(
            "authorization",
            basic(&client.id, client.secret.as_deref().unwrap()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"], "invalid_request");
    let d = v["error_description"].as_str().unwrap();
    assert!(d.contains("scope"), "{d}");
    assert!(
        d.bytes()
            .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E)),
        "{d:?}"
    );
}

/// Polls introspection (as `caller`) until `token` is inactive: client changes reach the
/// client cache within `clients.cache_refresh_secs` (1 s in tests).
async fn wait_inactive(app: &TestApp, caller: &TestClient, token: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while introspect(app, caller, token).await["active"] == true {
        assert!(std::time::Instant::now() < deadline, "still active");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn resource_server() -> NewClient {
    NewClient {
        name: "Reports API".into(),
        grant_types: vec!["client_credentials".into()],
        scope: Some("reports.read".into()),
        introspect: true,
        ..NewClient::default()
    }
}

/// RFC 7662 §4: a client learns only about its own tokens, unless it is a registered
/// resource server.
async fn introspection_is_need_to_know(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    let nosy = register(&app, confidential_input("Nosy App")).await;
    let rs = register(&app, resource_server()).await;
    alice(&app).await;
    let (_, _, t) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let at = s(&t, "access_token");
    assert_active(&app, &client, at).await;
    assert_inactive(&app, &nosy, at).await;
    let v = introspect(&app, &rs, at).await;
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["client_id"], client.id.as_str());
    // Refresh tokens stay with their own client, resource server or not.
    assert_inactive(&app, &rs, s(&t, "refresh_token")).await;
    // A client_credentials token of the nosy client is its own business.
    let cc = register(
        &app,
        NewClient {
            name: "Batch".into(),
            grant_types: vec!["client_credentials".into()],
            scope: Some("reports.read".into()),
            ..NewClient::default()
        },
    )
    .await;
    let ct = assert_tokens(token(&app, &cc, &[("grant_type", "client_credentials")]).await).await;
    assert_active(&app, &cc, s(&ct, "access_token")).await;
    assert_inactive(&app, &nosy, s(&ct, "access_token")).await;
    assert_active(&app, &rs, s(&ct, "access_token")).await;
}

async fn tokens_of_a_deleted_client_are_inactive(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    let rs = register(&app, resource_server()).await;
    alice(&app).await;
    let (_, _, t) = full_flow(&app, &client, USERNAME, "openid profile").await;
    let at = s(&t, "access_token");
    assert_active(&app, &rs, at).await;
    admin::delete_client(app.state.store.as_ref(), &client.id)
        .await
        .unwrap();
    wait_inactive(&app, &rs, at).await;
    assert_eq!(userinfo(&app, at).await.status(), 401);
}

async fn rotate(app: &TestApp, client: TestClient, revoke_tokens: bool) -> TestClient {
    let secret = admin::rotate_client_secret(
        app.state.store.as_ref(),
        &app.state.secrets,
        &client.id,
        revoke_tokens,
        app.clock.now(),
    )
    .await
    .unwrap();
    // Let the client cache see the new secret (clients.cache_refresh_secs = 1).
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    TestClient {
        secret: Some(secret.expose().to_owned()),
        ..client
    }
}

async fn rotate_secret_with_revoke_tokens_ends_every_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    let machine = cc_client(&app, &[]).await;
    let rs = register(&app, resource_server()).await;
    alice(&app).await;
    let cc = [("grant_type", "client_credentials")];
    let (_, _, t) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let ct = assert_tokens(token(&app, &machine, &cc).await).await;
    // Without --revoke-tokens a rotation leaves the tokens alone.
    let client = rotate(&app, client, false).await;
    let machine = rotate(&app, machine, false).await;
    assert_active(&app, &rs, s(&ct, "access_token")).await;
    let t = assert_tokens(refresh(&app, &client, s(&t, "refresh_token")).await).await;
    assert_active(&app, &rs, s(&t, "access_token")).await;

    let client = rotate(&app, client, true).await;
    let machine = rotate(&app, machine, true).await;
    // A client_credentials token has no grant: only its iat tells it from a new one.
    assert_inactive(&app, &rs, s(&ct, "access_token")).await;
    assert_inactive(&app, &rs, s(&t, "access_token")).await;
    assert_eq!(userinfo(&app, s(&t, "access_token")).await.status(), 401);
    assert_refresh_dead(&app, &client, s(&t, "refresh_token")).await;
    // Tokens issued after the rotation work.
    app.clock.advance(1);
    let ct = assert_tokens(token(&app, &machine, &cc).await).await;
    assert_active(&app, &rs, s(&ct, "access_token")).await;
    let (_, _, fresh) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    assert_active(&app, &rs, s(&fresh, "access_token")).await;
}

async fn client_policy_flags_are_stored(backend: Backend) {
    let app = spawn_app(backend).await;
    let out = app.cli(&[
        "client",
        "create",
        "--name",
        "API",
        "--grant-type",
        "client_credentials",
        "--scope",
        "reports.read",
        "--introspect",
        "--end-offline-on-logout",
        "--json",
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    let id = serde_json::from_str::<Value>(out.stdout.trim()).unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = app.cli(&["client", "show", &id, "--json"]);
    let shown: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(shown["introspect"], true);
    assert_eq!(shown["end_offline_on_logout"], true);
    let out = app.cli(&["client", "rotate-secret", &id, "--revoke-tokens", "--json"]);
    assert!(out.status.success(), "{}", out.stderr);
    let out = app.cli(&["client", "show", &id, "--json"]);
    let shown: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert!(shown["tokens_revoked_at"].is_string(), "{shown}");
}

/// RFC 8252 §7.3 (any port on a loopback IP literal) and §8.6 (no silent code for a public
/// client whose redirect URI is not https).
async fn loopback_redirects_accept_any_port_and_always_ask_the_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let native = register(
        &app,
        NewClient {
            public: true,
            redirect_uris: vec!["http://127.0.0.1/callback".into(), REDIRECT_URI.into()],
            ..confidential_input("Desktop App")
        },
    )
    .await;
    alice(&app).await;
    let browser = Browser::new(&app);
    let port_uri = "http://127.0.0.1:49152/callback";
    let mut req = AuthRequest::new(&native, "openid");
    req.redirect_uri = port_uri.into();
    let code = login_and_get_code(&app, &browser, &req, USERNAME).await;
    assert_tokens(exchange_code(&app, &native, &code, &req).await).await;

    // The same browser, session and (first-party) consent: still a page, never a code.
    let mut again = AuthRequest::new(&native, "openid");
    again.redirect_uri = "http://127.0.0.1:50000/callback".into();
    let res = authorize(&app, &browser, &again).await;
    assert_eq!(res.status(), 200, "consent page, not a silent redirect");
    let page = res.text().await.unwrap();
    let res = submit_consent(&app, &browser, &page, "allow").await;
    let code = assert_code(&app, &res, &again);
    assert_tokens(exchange_code(&app, &native, &code, &again).await).await;
    // prompt=none cannot be honoured.
    let mut silent = AuthRequest::new(&native, "openid").with("prompt", Some("none"));
    silent.redirect_uri = port_uri.into();
    let res = authorize(&app, &browser, &silent).await;
    assert_auth_error(&app, &res, &silent, "interaction_required");
    // An https redirect URI of the same client is not claimable: silent as before.
    code_with_session(&app, &browser, &AuthRequest::new(&native, "openid")).await;
    // Only the port may differ.
    let mut other_path = AuthRequest::new(&native, "openid");
    other_path.redirect_uri = "http://127.0.0.1:49152/elsewhere".into();
    let res = authorize(&app, &browser, &other_path).await;
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none());
}

async fn localhost_redirect_uris_are_refused_at_registration(backend: Backend) {
    let app = spawn_app(backend).await;
    let e = admin::create_client(
        app.state.store.as_ref(),
        &app.state.secrets,
        &app.state.settings,
        app.clock.now(),
        NewClient {
            public: true,
            redirect_uris: vec!["http://localhost:8080/cb".into()],
            ..confidential_input("Desktop App")
        },
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("127.0.0.1"), "{e}");
    let out = app.cli(&[
        "client",
        "create",
        "--name",
        "CLI",
        "--public",
        "--redirect-uri",
        "http://localhost/cb",
    ]);
    assert!(!out.status.success());
    assert!(out.stderr.contains("127.0.0.1"), "{}", out.stderr);
}

/// OIDC Core §3.1.2.1 `id_token_hint`: another user than the session's means
/// `login_required` with `prompt=none`, a fresh login otherwise.
async fn an_id_token_hint_for_another_user_needs_a_login(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    crate::oauth::create_user(&app, "bob", &[]).await;
    let (_, _, bob_tokens) = full_flow(&app, &client, "bob", "openid").await;
    let (browser, _, alice_tokens) = full_flow(&app, &client, USERNAME, "openid").await;
    let bob_hint = s(&bob_tokens, "id_token");

    let own = AuthRequest::new(&client, "openid")
        .with("prompt", Some("none"))
        .with("id_token_hint", Some(s(&alice_tokens, "id_token")));
    code_with_session(&app, &browser, &own).await;

    let silent = AuthRequest::new(&client, "openid")
        .with("prompt", Some("none"))
        .with("id_token_hint", Some(bob_hint));
    let res = authorize(&app, &browser, &silent).await;
    assert_auth_error(&app, &res, &silent, "login_required");

    let req = AuthRequest::new(&client, "openid").with("id_token_hint", Some(bob_hint));
    let res = authorize(&app, &browser, &req).await;
    assert_eq!(res.status(), 200, "the login page, not alice's code");
    let page = res.text().await.unwrap();
    let res = submit_login(&app, &browser, &page, "bob", PASSWORD).await;
    let code = assert_code(&app, &res, &req);
    let tokens = assert_tokens(exchange_code(&app, &client, &code, &req).await).await;
    let sub = |t: &Value| {
        let claims = s(t, "id_token").split('.').nth(1).unwrap().to_owned();
        use base64::Engine;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .unwrap();
        serde_json::from_slice::<Value>(&raw).unwrap()["sub"].clone()
    };
    assert_eq!(sub(&tokens), sub(&bob_tokens));

    // A hint that is not our ID token is refused, back to the client.
    let bad = AuthRequest::new(&client, "openid").with("id_token_hint", Some("not.a.jwt"));
    let res = authorize(&app, &browser, &bad).await;
    assert_auth_error(&app, &res, &bad, "invalid_request");
}

async fn a_new_login_ends_the_browsers_previous_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (browser, _, t) = full_flow(&app, &client, USERNAME, "openid").await;
    let first = browser.cookie("latchkey_session").unwrap();
    let req = AuthRequest::new(&client, "openid").with("prompt", Some("login"));
    login_and_get_code(&app, &browser, &req, USERNAME).await;
    // The old cookie, replayed, opens nothing; its session-bound grant ended with it.
    let replay = Browser::new(&app);
    replay.plant_cookie("latchkey_session", &first);
    assert_logged_out(&app, &replay, &client).await;
    assert_inactive(&app, &client, s(&t, "access_token")).await;
    code_with_session(&app, &browser, &AuthRequest::new(&client, "openid")).await;
}
