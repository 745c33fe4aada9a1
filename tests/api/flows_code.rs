//! The authorization code flow: /authorize, /login, /consent and the code grant at /token.

use latchkey::oidc::{AccessTokenClaims, IdTokenClaims};
use reqwest::header::LOCATION;
use serde_json::Value;

use crate::helpers::{spawn_app, Backend};
use crate::oauth::*;

crate::both_stores!(
    code_flow_issues_verified_tokens,
    authorize_accepts_a_post_form,
    login_sets_a_fresh_http_only_session_cookie,
    unknown_client_gets_an_error_page_not_a_redirect,
    bad_redirect_uri_gets_an_error_page_not_a_redirect,
    authorize_errors_redirect_with_state_and_iss,
    prompt_none_without_session_is_login_required,
    prompt_none_without_consent_is_consent_required,
    login_without_the_csrf_cookie_value_is_refused,
    failed_logins_look_the_same,
    consent_allow_is_remembered_for_narrower_scopes,
    consent_deny_returns_access_denied,
    code_bound_to_verifier_redirect_uri_and_client,
    expired_and_unknown_codes_are_invalid_grant,
    code_replay_revokes_the_tokens_it_issued,
    public_client_redeems_with_pkce_only,
    client_secret_post_and_bad_secrets,
    scope_controls_refresh_id_token_and_roles,
    client_access_token_ttl_is_honoured,
);

async fn code_flow_issues_verified_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    let user = alice(&app).await;
    let (_, req, tokens) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;

    assert_eq!(
        scope_set(s(&tokens, "scope")),
        scope_set(FULL_SCOPE),
        "granted scope"
    );
    assert!(
        tokens["refresh_token"].is_string(),
        "offline_access + refresh grant"
    );
    assert_eq!(tokens["expires_in"], 900);

    // ID token: RS256 against the JWKS, iss / aud (= client_id, a string) pinned.
    let id_token = s(&tokens, "id_token");
    let raw = claims(id_token);
    assert!(raw["aud"].is_string(), "ID token aud is a string: {raw}");
    let id: IdTokenClaims = verify_jwt(&app, id_token, &client.id, None).await;
    assert_eq!(id.iss, app.address);
    assert_eq!(id.sub, user.id.as_str());
    assert_eq!(id.aud, client.id);
    assert_eq!(id.nonce.as_deref(), Some(req.nonce.as_str()));
    let at = s(&tokens, "access_token");
    assert_eq!(
        id.at_hash.as_deref(),
        Some(latchkey::oidc::at_hash(at).as_str())
    );
    assert_eq!(id.amr, ["pwd"]);
    assert!(id.sid.as_deref().is_some_and(|s| !s.is_empty()));
    assert!(id.exp > id.iat && id.auth_time <= id.iat);
    assert_eq!(id.user["preferred_username"], USERNAME);
    assert_eq!(id.user["email"], EMAIL);
    assert!(id.user["email_verified"].is_boolean());

    // Access token: RFC 9068, typ at+jwt, kid from the JWKS, aud = [issuer].
    let atc: AccessTokenClaims = verify_jwt(&app, at, &app.address, Some("at+jwt")).await;
    assert_eq!(atc.iss, app.address);
    assert_eq!(atc.sub, user.id.as_str());
    assert_eq!(atc.aud, vec![app.address.clone()]);
    assert!(claims(at)["aud"].is_array(), "aud serialised as an array");
    assert_eq!(atc.client_id, client.id);
    assert_eq!(scope_set(&atc.scope), scope_set(FULL_SCOPE));
    assert_eq!(atc.exp - atc.iat, 900);
    assert!(!atc.jti.is_empty());
    assert_eq!(atc.auth_time, Some(id.auth_time));
    assert_eq!(atc.sid, id.sid);
    assert!(atc.roles.is_none(), "no roles scope, no roles claim");
}

async fn authorize_accepts_a_post_form(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let browser = Browser::new(&app);
    let req = AuthRequest::new(&client, "openid");
    let res = post_form(&browser.http, &app.url("/authorize"), &req.params()).await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    let res = submit_login(&app, &browser, &page, USERNAME, PASSWORD).await;
    let code = assert_code(&app, &res, &req);
    assert_tokens(exchange_code(&app, &client, &code, &req).await).await;
}

fn cookie_attrs(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect()
}

fn cookie_value(set_cookie: &str) -> String {
    let first = set_cookie.split(';').next().unwrap();
    first.split_once('=').unwrap().1.to_owned()
}

async fn login_sets_a_fresh_http_only_session_cookie(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;

    // Session fixation: an attacker-planted session id is never adopted.
    let browser = Browser::new(&app);
    browser.plant_cookie("latchkey_session", "attacker-chosen-session-id");
    let req = AuthRequest::new(&client, "openid");
    let res = authorize(&app, &browser, &req).await;
    assert_eq!(res.status(), 200, "a planted cookie is not a session");
    assert!(
        set_cookie(res.headers(), "latchkey_csrf").is_some(),
        "login page sets the csrf cookie"
    );
    let page = res.text().await.unwrap();
    let res = submit_login(&app, &browser, &page, USERNAME, PASSWORD).await;
    let header = set_cookie(res.headers(), "latchkey_session").expect("session cookie set");
    let attrs = cookie_attrs(&header);
    assert!(attrs.contains(&"httponly".to_owned()), "{header}");
    assert!(attrs.contains(&"samesite=lax".to_owned()), "{header}");
    assert!(attrs.contains(&"path=/".to_owned()), "{header}");
    assert!(
        !attrs.contains(&"secure".to_owned()),
        "http issuer: {header}"
    );
    let first = cookie_value(&header);
    assert_ne!(first, "attacker-chosen-session-id");
    assert!(first.len() >= 22, "a random session id: {first}");
    assert_code(&app, &res, &req);
    assert_eq!(browser.cookie("latchkey_session"), Some(first.clone()));

    // The new session works.
    code_with_session(&app, &browser, &AuthRequest::new(&client, "openid")).await;

    // Another login gets another value.
    let fresh = Browser::new(&app);
    let page = authorize(&app, &fresh, &AuthRequest::new(&client, "openid"))
        .await
        .text()
        .await
        .unwrap();
    let res = submit_login(&app, &fresh, &page, USERNAME, PASSWORD).await;
    let second = cookie_value(&set_cookie(res.headers(), "latchkey_session").unwrap());
    assert_ne!(first, second, "every login gets a new session id");
}

async fn unknown_client_gets_an_error_page_not_a_redirect(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    let mut req = AuthRequest::new(&client, "openid");
    req.client_id = "no-such-client".into();
    let res = authorize(&app, &Browser::new(&app), &req).await;
    assert_eq!(res.status(), 400);
    assert!(res.headers().get(LOCATION).is_none());
    assert!(res.text().await.unwrap().contains("invalid_client"));
}

async fn bad_redirect_uri_gets_an_error_page_not_a_redirect(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    let cases: [Option<&str>; 5] = [
        None,
        Some("https://evil.example/cb"),
        Some("https://client.example/cb/"),
        Some("https://client.example/cb?x=1"),
        Some("https://CLIENT.example/cb"),
    ];
    for uri in cases {
        let req = AuthRequest::new(&client, "openid").with("redirect_uri", uri);
        let res = authorize(&app, &Browser::new(&app), &req).await;
        assert_eq!(res.status(), 400, "{uri:?}");
        assert!(res.headers().get(LOCATION).is_none(), "{uri:?}");
        assert!(
            res.text().await.unwrap().contains("invalid_request"),
            "{uri:?}"
        );
    }
}

async fn authorize_errors_redirect_with_state_and_iss(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    let cases: [(&str, Option<&str>, &str); 7] = [
        ("response_type", Some("token"), "unsupported_response_type"),
        // OIDC Core §3.1.2.6, §6: request objects are not supported, and say so.
        (
            "request",
            Some("eyJhbGciOiJub25lIn0.e30."),
            "request_not_supported",
        ),
        (
            "request_uri",
            Some("https://client.example/request.jwt"),
            "request_uri_not_supported",
        ),
        ("code_challenge", None, "invalid_request"),
        ("code_challenge_method", Some("plain"), "invalid_request"),
        ("scope", Some("openid admin.everything"), "invalid_scope"),
        ("code_challenge_method", None, "invalid_request"),
    ];
    for (name, value, error) in cases {
        let req = AuthRequest::new(&client, "openid").with(name, value);
        let res = authorize(&app, &Browser::new(&app), &req).await;
        assert_auth_error(&app, &res, &req, error);
    }
}

async fn prompt_none_without_session_is_login_required(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    let req = AuthRequest::new(&client, "openid").with("prompt", Some("none"));
    let res = authorize(&app, &Browser::new(&app), &req).await;
    assert_auth_error(&app, &res, &req, "login_required");
}

async fn prompt_none_without_consent_is_consent_required(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = third_party_client(&app).await;
    alice(&app).await;
    let browser = Browser::new(&app);
    let req = AuthRequest::new(&client, "openid profile");
    let page = authorize(&app, &browser, &req).await.text().await.unwrap();
    let res = submit_login(&app, &browser, &page, USERNAME, PASSWORD).await;
    assert_eq!(res.status(), 200, "consent page expected");
    consent_form(&res.text().await.unwrap());

    // Logged in, never consented.
    let req = AuthRequest::new(&client, "openid profile").with("prompt", Some("none"));
    let res = authorize(&app, &browser, &req).await;
    assert_auth_error(&app, &res, &req, "consent_required");
}

async fn login_without_the_csrf_cookie_value_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let browser = Browser::new(&app);
    let req = AuthRequest::new(&client, "openid");
    let page = authorize(&app, &browser, &req).await.text().await.unwrap();
    let (csrf, request) = login_form(&page);
    assert_eq!(
        browser.cookie("latchkey_csrf").as_deref(),
        Some(csrf.as_str())
    );

    let attempts: [Vec<(&str, &str)>; 3] = [
        vec![
            ("username", USERNAME),
            ("password", PASSWORD),
            ("request", &request),
        ],
        vec![
            ("username", USERNAME),
            ("password", PASSWORD),
            ("csrf", "forged-csrf-value"),
            ("request", &request),
        ],
        vec![
            ("username", USERNAME),
            ("password", PASSWORD),
            ("csrf", ""),
            ("request", &request),
        ],
    ];
    for form in attempts {
        let res = post_form(&browser.http, &app.url("/login"), &form).await;
        assert_eq!(res.status(), 400, "{form:?}");
        assert!(set_cookie(res.headers(), "latchkey_session").is_none());
        assert!(res.headers().get(LOCATION).is_none());
    }
    // The right csrf value, but from a browser without the cookie.
    let other = Browser::new(&app);
    let res = post_form(
        &other.http,
        &app.url("/login"),
        &[
            ("username", USERNAME),
            ("password", PASSWORD),
            ("csrf", csrf.as_str()),
            ("request", request.as_str()),
        ],
    )
    .await;
    assert_eq!(res.status(), 400);
    assert!(set_cookie(res.headers(), "latchkey_session").is_none());

    // Still not logged in; the real form still works.
    assert_logged_out(&app, &browser, &client).await;
    let res = submit_login(&app, &browser, &page, USERNAME, PASSWORD).await;
    assert_code(&app, &res, &req);
}

async fn failed_logins_look_the_same(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    create_user(&app, "mallory", &[]).await;
    disable_user(&app, "mallory").await;
    let browser = Browser::new(&app);
    let req = AuthRequest::new(&client, "openid");
    let page = authorize(&app, &browser, &req).await.text().await.unwrap();

    let mut bodies = Vec::new();
    for (username, password) in [
        (USERNAME, "wrong password!"),
        ("nobody", PASSWORD),
        ("mallory", PASSWORD),
    ] {
        let res = submit_login(&app, &browser, &page, username, password).await;
        assert_eq!(res.status(), 401, "{username}");
        assert!(set_cookie(res.headers(), "latchkey_session").is_none());
        let body = res.text().await.unwrap();
        assert!(body.contains("Invalid username or password"), "{body}");
        // The page offers the login form again.
        login_form(&body);
        // A page may echo the username back; that is the only allowed difference.
        bodies.push(body.replace(username, "USERNAME"));
    }
    assert_eq!(bodies[0], bodies[1], "wrong password vs unknown user");
    assert_eq!(bodies[0], bodies[2], "wrong password vs disabled user");
    assert_logged_out(&app, &browser, &client).await;
}

async fn consent_allow_is_remembered_for_narrower_scopes(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = third_party_client(&app).await;
    alice(&app).await;
    let browser = Browser::new(&app);
    let req = AuthRequest::new(&client, "openid profile email");
    let page = authorize(&app, &browser, &req).await.text().await.unwrap();
    let res = submit_login(&app, &browser, &page, USERNAME, PASSWORD).await;
    assert_eq!(res.status(), 200);
    let consent = res.text().await.unwrap();
    consent_form(&consent);
    assert!(consent.contains("Partner Gadget"), "names the client");
    for scope in ["profile", "email"] {
        assert!(consent.contains(scope), "lists {scope}");
    }
    let res = submit_consent(&app, &browser, &consent, "allow").await;
    let code = assert_code(&app, &res, &req);
    let tokens = assert_tokens(exchange_code(&app, &client, &code, &req).await).await;
    assert_eq!(
        scope_set(s(&tokens, "scope")),
        scope_set("openid profile email")
    );

    for scope in ["openid profile email", "openid email"] {
        let req = AuthRequest::new(&client, scope);
        let code = code_with_session(&app, &browser, &req).await;
        let tokens = assert_tokens(exchange_code(&app, &client, &code, &req).await).await;
        assert_eq!(scope_set(s(&tokens, "scope")), scope_set(scope));
    }

    // A wider scope than consented asks again.
    let req = AuthRequest::new(&client, "openid profile email offline_access");
    let res = authorize(&app, &browser, &req).await;
    assert_eq!(res.status(), 200);
    consent_form(&res.text().await.unwrap());
}

async fn consent_deny_returns_access_denied(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = third_party_client(&app).await;
    alice(&app).await;
    let browser = Browser::new(&app);
    let req = AuthRequest::new(&client, "openid profile");
    let page = authorize(&app, &browser, &req).await.text().await.unwrap();
    let res = submit_login(&app, &browser, &page, USERNAME, PASSWORD).await;
    let consent = res.text().await.unwrap();
    let res = submit_consent(&app, &browser, &consent, "deny").await;
    assert_auth_error(&app, &res, &req, "access_denied");

    // Denial is not remembered as consent.
    let req = AuthRequest::new(&client, "openid profile");
    let res = authorize(&app, &browser, &req).await;
    assert_eq!(res.status(), 200);
    consent_form(&res.text().await.unwrap());
}

async fn code_bound_to_verifier_redirect_uri_and_client(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    let other = register(&app, confidential_input("Other App")).await;
    alice(&app).await;
    let browser = Browser::new(&app);
    let first = AuthRequest::new(&client, "openid");
    let code = login_and_get_code(&app, &browser, &first, USERNAME).await;
    assert_tokens(exchange_code(&app, &client, &code, &first).await).await;

    // Wrong verifier (a valid one from another pair).
    let req = AuthRequest::new(&client, "openid");
    let code = code_with_session(&app, &browser, &req).await;
    let mut wrong = req.clone();
    wrong.pkce = pkce();
    assert_error(
        exchange_code(&app, &client, &code, &wrong).await,
        400,
        "invalid_grant",
    )
    .await;

    // No verifier at all.
    let req = AuthRequest::new(&client, "openid");
    let code = code_with_session(&app, &browser, &req).await;
    let res = token(
        &app,
        &client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
        ],
    )
    .await;
    // RFC 7636 §4.5: the verifier is a required parameter.
    assert_error(res, 400, "invalid_request").await;

    // Wrong redirect_uri (another registered one).
    let req = AuthRequest::new(&client, "openid");
    let code = code_with_session(&app, &browser, &req).await;
    let mut wrong = req.clone();
    wrong.redirect_uri = OTHER_REDIRECT_URI.into();
    assert_error(
        exchange_code(&app, &client, &code, &wrong).await,
        400,
        "invalid_grant",
    )
    .await;

    // Issued to another client.
    let req = AuthRequest::new(&client, "openid");
    let code = code_with_session(&app, &browser, &req).await;
    assert_error(
        exchange_code(&app, &other, &code, &req).await,
        400,
        "invalid_grant",
    )
    .await;

    // Issued for OTHER_REDIRECT_URI, redeemed with it: fine.
    let mut req = AuthRequest::new(&client, "openid");
    req.redirect_uri = OTHER_REDIRECT_URI.into();
    let code = code_with_session(&app, &browser, &req).await;
    assert_tokens(exchange_code(&app, &client, &code, &req).await).await;
}

async fn expired_and_unknown_codes_are_invalid_grant(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let browser = Browser::new(&app);
    let req = AuthRequest::new(&client, "openid");
    let code = login_and_get_code(&app, &browser, &req, USERNAME).await;
    app.clock.advance(61);
    assert_error(
        exchange_code(&app, &client, &code, &req).await,
        400,
        "invalid_grant",
    )
    .await;

    let headers = assert_error(
        exchange_code(&app, &client, "no-such-code-at-all", &req).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_no_store(&headers);

    // A code issued now (session still alive) and redeemed within its lifetime works.
    let req = AuthRequest::new(&client, "openid");
    let code = code_with_session(&app, &browser, &req).await;
    app.clock.advance(59);
    assert_tokens(exchange_code(&app, &client, &code, &req).await).await;
}

async fn code_replay_revokes_the_tokens_it_issued(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let browser = Browser::new(&app);
    let req = AuthRequest::new(&client, FULL_SCOPE);
    let code = login_and_get_code(&app, &browser, &req, USERNAME).await;
    let tokens = assert_tokens(exchange_code(&app, &client, &code, &req).await).await;
    let at = s(&tokens, "access_token");
    let rt = s(&tokens, "refresh_token");
    assert_active(&app, &client, at).await;
    assert_eq!(userinfo(&app, at).await.status(), 200);

    assert_error(
        exchange_code(&app, &client, &code, &req).await,
        400,
        "invalid_grant",
    )
    .await;

    // RFC 6749 §4.1.2 / OAuth 2.0 Security BCP: tokens from a replayed code are revoked.
    assert_refresh_dead(&app, &client, rt).await;
    assert_inactive(&app, &client, at).await;
    assert_userinfo_refused(&app, at).await;
}

async fn public_client_redeems_with_pkce_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = public_client(&app).await;
    assert!(client.secret.is_none());
    alice(&app).await;
    let (browser, _, tokens) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    assert!(tokens["id_token"].is_string());
    let rt = s(&tokens, "refresh_token");
    assert_tokens(refresh(&app, &client, rt).await).await;

    // Without the right verifier a public client has nothing else to prove.
    let req = AuthRequest::new(&client, "openid");
    let code = code_with_session(&app, &browser, &req).await;
    let mut wrong = req.clone();
    wrong.pkce = pkce();
    assert_error(
        exchange_code(&app, &client, &code, &wrong).await,
        400,
        "invalid_grant",
    )
    .await;
}

async fn client_secret_post_and_bad_secrets(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let browser = Browser::new(&app);
    let req = AuthRequest::new(&client, "openid");
    let code = login_and_get_code(&app, &browser, &req, USERNAME).await;
    let params = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", req.pkce.verifier.as_str()),
    ];
    let bad = TestClient {
        secret: Some("not-the-secret".into()),
        ..client.clone()
    };
    let headers = assert_error(
        client_post(&app, "/token", &bad, Auth::Basic, &params).await,
        401,
        "invalid_client",
    )
    .await;
    let challenge = headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Basic"), "{challenge}");
    assert_no_store(&headers);
    assert_error(
        client_post(&app, "/token", &bad, Auth::Post, &params).await,
        401,
        "invalid_client",
    )
    .await;
    // A confidential client may not pretend to be public.
    assert_error(
        client_post(&app, "/token", &client, Auth::None, &params).await,
        401,
        "invalid_client",
    )
    .await;
    // Unknown client id.
    let ghost = TestClient {
        id: "ghost".into(),
        ..client.clone()
    };
    assert_error(
        client_post(&app, "/token", &ghost, Auth::Basic, &params).await,
        401,
        "invalid_client",
    )
    .await;

    // client_secret_post with a fresh code works.
    let req = AuthRequest::new(&client, "openid");
    let code = code_with_session(&app, &browser, &req).await;
    let res = client_post(
        &app,
        "/token",
        &client,
        Auth::Post,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &req.pkce.verifier),
        ],
    )
    .await;
    assert_tokens(res).await;
}

async fn scope_controls_refresh_id_token_and_roles(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    create_user(&app, USERNAME, &["admin", "staff"]).await;
    let browser = Browser::new(&app);

    // openid without offline_access: an ID token, no refresh token.
    let req = AuthRequest::new(&client, "openid profile");
    let code = login_and_get_code(&app, &browser, &req, USERNAME).await;
    let t = assert_tokens(exchange_code(&app, &client, &code, &req).await).await;
    assert!(t["id_token"].is_string());
    assert!(t.get("refresh_token").is_none_or(Value::is_null), "{t}");

    // No openid: no ID token.
    let req = AuthRequest::new(&client, "profile");
    let code = code_with_session(&app, &browser, &req).await;
    let t = assert_tokens(exchange_code(&app, &client, &code, &req).await).await;
    assert!(t.get("id_token").is_none_or(Value::is_null), "{t}");

    // roles scope: roles in the access token.
    let req = AuthRequest::new(&client, "openid roles");
    let code = code_with_session(&app, &browser, &req).await;
    let t = assert_tokens(exchange_code(&app, &client, &code, &req).await).await;
    let at: AccessTokenClaims =
        verify_jwt(&app, s(&t, "access_token"), &app.address, Some("at+jwt")).await;
    let mut roles = at.roles.expect("roles claim");
    roles.sort();
    assert_eq!(roles, ["admin", "staff"]);

    // offline_access for a client without the refresh_token grant: no refresh token.
    let no_refresh = register(
        &app,
        latchkey::service::admin::NewClient {
            grant_types: vec!["authorization_code".into()],
            scope: Some("openid offline_access".into()),
            ..confidential_input("No Refresh")
        },
    )
    .await;
    let req = AuthRequest::new(&no_refresh, "openid offline_access");
    let code = code_with_session(&app, &browser, &req).await;
    let t = assert_tokens(exchange_code(&app, &no_refresh, &code, &req).await).await;
    assert!(t.get("refresh_token").is_none_or(Value::is_null), "{t}");
}

async fn client_access_token_ttl_is_honoured(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = register(
        &app,
        latchkey::service::admin::NewClient {
            access_token_ttl: Some(300),
            ..confidential_input("Short Lived")
        },
    )
    .await;
    alice(&app).await;
    let (_, _, t) = full_flow(&app, &client, USERNAME, "openid").await;
    assert_eq!(t["expires_in"], 300);
    let at: AccessTokenClaims =
        verify_jwt(&app, s(&t, "access_token"), &app.address, Some("at+jwt")).await;
    assert_eq!(at.exp - at.iat, 300);
}
