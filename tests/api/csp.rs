//! The Content-Security-Policy of each page kind: `form-action 'self'` everywhere, plus the
//! origin of the validated redirect URI on the pages whose forms end in a redirect to a
//! client (login, its re-display, second factor, consent, logout confirmation), because
//! browsers apply `form-action` to that redirect too.

use latchkey::service::admin::NewClient;
use reqwest::Response;

use crate::accounts_support::*;
use crate::helpers::{spawn_app, spawn_app_with, Backend, TestApp};
use crate::oauth::*;

crate::both_stores!(
    the_login_page_and_its_redisplay_allow_the_clients_origin,
    the_second_factor_page_allows_the_clients_origin,
    the_consent_page_allows_the_clients_origin,
    the_logout_confirmation_allows_the_validated_post_logout_origin,
    pages_that_post_only_to_latchkey_allow_self_only,
    native_redirects_get_scheme_and_loopback_sources,
    a_forged_redirect_in_a_posted_request_is_not_allowed,
    script_pages_keep_their_script_sources_and_gain_form_action,
);

const CLIENT_ORIGIN: &str = "form-action 'self' https://client.example";

fn csp(res: &Response) -> String {
    res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned()
}

fn assert_form_action(res: &Response, expected: &str) {
    let policy = csp(res);
    assert!(
        policy.ends_with(&format!("; {expected}")),
        "expected `{expected}` in {policy}"
    );
    assert_eq!(policy.matches("form-action").count(), 1, "{policy}");
}

async fn login_page_of(app: &TestApp, browser: &Browser, req: &AuthRequest) -> Response {
    let res = authorize(app, browser, req).await;
    assert_eq!(res.status(), 200);
    res
}

async fn the_login_page_and_its_redisplay_allow_the_clients_origin(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let browser = Browser::new(&app);
    let req = AuthRequest::new(&client, "openid");
    let res = login_page_of(&app, &browser, &req).await;
    assert_form_action(&res, CLIENT_ORIGIN);
    let page = res.text().await.unwrap();
    let res = submit_login(&app, &browser, &page, USERNAME, "wrong password").await;
    assert_eq!(res.status(), 401);
    assert_form_action(&res, CLIENT_ORIGIN);
}

async fn the_second_factor_page_allows_the_clients_origin(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    let (_, _enrolled) = user_with_totp(&app, "carol").await;
    let browser = Browser::new(&app);
    let req = AuthRequest::new(&client, "openid");
    let page = login_page_of(&app, &browser, &req).await.text().await;
    let res = submit_login(&app, &browser, &page.unwrap(), "carol", PASSWORD).await;
    assert_form_action(&res, CLIENT_ORIGIN);
    // Re-displayed after a wrong code: the request comes from the stored pending login.
    let page = assert_mfa_page(res).await;
    let res = submit_mfa(&app, &browser, &page, "totp", "000000").await;
    assert_eq!(res.status(), 401);
    assert_form_action(&res, CLIENT_ORIGIN);
}

async fn the_consent_page_allows_the_clients_origin(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = third_party_client(&app).await;
    alice(&app).await;
    let browser = Browser::new(&app);
    let req = AuthRequest::new(&client, "openid").with("redirect_uri", Some(OTHER_REDIRECT_URI));
    let page = login_page_of(&app, &browser, &req).await.text().await;
    let res = submit_login(&app, &browser, &page.unwrap(), USERNAME, PASSWORD).await;
    assert_eq!(res.status(), 200, "the consent page");
    assert_form_action(&res, CLIENT_ORIGIN);
    let page = res.text().await.unwrap();
    consent_form(&page);
}

async fn the_logout_confirmation_allows_the_validated_post_logout_origin(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (browser, _, _) = full_flow(&app, &client, USERNAME, "openid").await;
    let ask = |uri: &str| {
        let url = format!(
            "/logout?client_id={}&post_logout_redirect_uri={uri}",
            client.id
        );
        browser.http.get(app.url(&url)).send()
    };
    let res = ask(POST_LOGOUT_URI).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_form_action(&res, CLIENT_ORIGIN);
    assert!(res.text().await.unwrap().contains("Sign out?"));
    // An unregistered target is not redirected to, so not allowed either.
    let res = ask("https://evil.example/out").await.unwrap();
    assert_eq!(res.status(), 200);
    assert_form_action(&res, "form-action 'self'");
}

async fn pages_that_post_only_to_latchkey_allow_self_only(backend: Backend) {
    let app = spawn_app(backend).await;
    alice(&app).await;
    let browser = Browser::new(&app);
    let res = browser.http.get(app.url("/login")).send().await.unwrap();
    assert_form_action(&res, "form-action 'self'");
    let res = sign_in(&app, &browser, USERNAME, "wrong password").await;
    assert_form_action(&res, "form-action 'self'");
    sign_in_ok(&app, &browser, USERNAME).await;
    let res = browser.http.get(app.url("/account")).send().await.unwrap();
    assert_form_action(&res, "form-action 'self'");
    let res = start_totp(&app, &browser).await;
    assert_eq!(res.status(), 200);
    let policy = csp(&res);
    assert!(policy.contains("img-src 'self' data:"), "{policy}");
    assert_form_action(&res, "form-action 'self'");
    for path in ["/authorize?client_id=nope", "/logout"] {
        let res = app.http.get(app.url(path)).send().await.unwrap();
        assert_form_action(&res, "form-action 'self'");
    }
}

async fn native_redirects_get_scheme_and_loopback_sources(backend: Backend) {
    let app = spawn_app(backend).await;
    let native = register(
        &app,
        NewClient {
            public: true,
            redirect_uris: vec![
                "com.example.app:/oauth2redirect".into(),
                "http://127.0.0.1/callback".into(),
                "http://[::1]/callback".into(),
            ],
            ..confidential_input("Acme Desktop")
        },
    )
    .await;
    let browser = Browser::new(&app);
    let cases = [
        ("com.example.app:/oauth2redirect", Some("com.example.app:")),
        (
            "http://127.0.0.1:51004/callback",
            Some("http://127.0.0.1:*"),
        ),
        // CSP has no syntax for IPv6 literals: no form-action rather than a broken flow.
        ("http://[::1]:51004/callback", None),
    ];
    for (uri, source) in cases {
        let req = AuthRequest::new(&native, "openid").with("redirect_uri", Some(uri));
        let res = login_page_of(&app, &browser, &req).await;
        match source {
            Some(s) => assert_form_action(&res, &format!("form-action 'self' {s}")),
            None => assert!(!csp(&res).contains("form-action"), "{}", csp(&res)),
        }
    }
}

async fn a_forged_redirect_in_a_posted_request_is_not_allowed(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let browser = Browser::new(&app);
    let req = AuthRequest::new(&client, "openid");
    let page = login_page_of(&app, &browser, &req)
        .await
        .text()
        .await
        .unwrap();
    let (csrf, _) = login_form(&page);
    let forged = AuthRequest::new(&client, "openid")
        .with("redirect_uri", Some("https://evil.example/cb"))
        .params();
    let forged = form_body(&forged);
    let res = post_form(
        &browser.http,
        &app.url("/login"),
        &[
            ("username", USERNAME),
            ("password", "wrong password"),
            ("csrf", &csrf),
            ("request", &forged),
        ],
    )
    .await;
    assert_eq!(res.status(), 401);
    assert_form_action(&res, "form-action 'self'");
}

async fn script_pages_keep_their_script_sources_and_gain_form_action(backend: Backend) {
    let mut app = spawn_app_with(backend, |s| {
        s.issuer = s.issuer.replace("127.0.0.1", "localhost");
    })
    .await;
    app.address = format!("http://localhost:{}", app.port);
    let client = confidential_client(&app).await;
    alice(&app).await;
    let browser = Browser::new(&app);
    let res = login_page_of(&app, &browser, &AuthRequest::new(&client, "openid")).await;
    let policy = csp(&res);
    assert!(
        policy.contains("script-src 'self'; connect-src 'self'"),
        "{policy}"
    );
    assert_form_action(&res, CLIENT_ORIGIN);
    sign_in_ok(&app, &browser, USERNAME).await;
    let res = browser.http.get(app.url("/account")).send().await.unwrap();
    assert!(csp(&res).contains("script-src 'self'"), "{}", csp(&res));
    assert_form_action(&res, "form-action 'self'");
}
