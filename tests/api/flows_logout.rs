//! OpenID Connect RP-Initiated Logout 1.0.

use reqwest::header::LOCATION;

use crate::helpers::{spawn_app, spawn_app_with, Backend, TestApp};
use crate::oauth::*;

crate::both_stores!(
    logout_with_hint_redirects_to_a_registered_uri,
    logout_to_an_unregistered_uri_shows_a_page,
    logout_accepts_an_expired_id_token_hint,
    logout_without_hint_needs_confirmation,
    offline_families_survive_logout_by_default,
    a_client_registered_to_end_offline_access_loses_it_at_logout,
    keep_offline_on_logout_false_ends_offline_families,
    session_bound_grants_end_with_the_session,
    a_cookieless_logout_with_a_users_id_token_ends_nothing,
    a_hint_for_another_user_does_not_end_this_browsers_session,
    a_hint_older_than_the_leeway_asks_for_confirmation,
);

/// Asserts a session cookie value no longer opens a session, even replayed from a new
/// browser (the server ended it; clearing the cookie is not enough).
async fn assert_session_dead(app: &TestApp, client: &TestClient, session: &str) {
    let replay = Browser::new(app);
    replay.plant_cookie("latchkey_session", session);
    assert_logged_out(app, &replay, client).await;
}

async fn session_of(browser: &Browser) -> String {
    browser
        .cookie("latchkey_session")
        .expect("logged-in browser has a session cookie")
}

fn logout_url(app: &TestApp, params: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&app.url("/logout")).unwrap();
    url.query_pairs_mut().extend_pairs(params);
    url.to_string()
}

async fn logout_with_hint_redirects_to_a_registered_uri(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (browser, _, t) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let session = session_of(&browser).await;
    let rt = s(&t, "refresh_token");

    let res = browser
        .http
        .get(logout_url(
            &app,
            &[
                ("id_token_hint", s(&t, "id_token")),
                ("client_id", &client.id),
                ("post_logout_redirect_uri", POST_LOGOUT_URI),
                ("state", "bye state/1"),
            ],
        ))
        .send()
        .await
        .unwrap();
    let to = location(&res);
    assert_eq!(target(&to), POST_LOGOUT_URI);
    assert_eq!(query(&to, "state").as_deref(), Some("bye state/1"));

    assert_logged_out(&app, &browser, &client).await;
    assert_session_dead(&app, &client, &session).await;
    // OIDC Core §11: the offline_access family outlives the login.
    assert_tokens(refresh(&app, &client, rt).await).await;
}

async fn logout_to_an_unregistered_uri_shows_a_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (browser, _, t) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let session = session_of(&browser).await;

    // POST form this time; the hint is valid, the URI is not registered.
    let res = post_form(
        &browser.http,
        &app.url("/logout"),
        &[
            ("id_token_hint", s(&t, "id_token")),
            ("post_logout_redirect_uri", "https://evil.example/phish"),
            ("state", "s1"),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers().get(LOCATION).is_none(),
        "never an open redirect"
    );
    let body = res.text().await.unwrap();
    assert!(!body.contains("https://evil.example/phish"), "{body}");
    assert!(body.to_lowercase().contains("signed out"), "{body}");

    assert_logged_out(&app, &browser, &client).await;
    assert_session_dead(&app, &client, &session).await;
}

async fn logout_accepts_an_expired_id_token_hint(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.tokens.id_token_ttl_secs = 60).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (browser, _, t) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let session = session_of(&browser).await;
    let expired_hint = s(&t, "id_token").to_owned();

    app.clock.advance(120);
    // The session and the refresh family outlive the ID token.
    code_with_session(&app, &browser, &AuthRequest::new(&client, "openid")).await;
    let t1 = assert_tokens(refresh(&app, &client, s(&t, "refresh_token")).await).await;
    let rt1 = s(&t1, "refresh_token");

    let res = browser
        .http
        .get(logout_url(
            &app,
            &[
                ("id_token_hint", expired_hint.as_str()),
                ("post_logout_redirect_uri", POST_LOGOUT_URI),
                ("state", "xyz"),
            ],
        ))
        .send()
        .await
        .unwrap();
    let to = location(&res);
    assert_eq!(target(&to), POST_LOGOUT_URI);
    assert_eq!(query(&to, "state").as_deref(), Some("xyz"));

    assert_logged_out(&app, &browser, &client).await;
    assert_session_dead(&app, &client, &session).await;
    assert_tokens(refresh(&app, &client, rt1).await).await;
}

async fn logout_without_hint_needs_confirmation(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (browser, _, t) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let session = session_of(&browser).await;

    let res = browser
        .http
        .get(logout_url(
            &app,
            &[
                ("client_id", client.id.as_str()),
                ("post_logout_redirect_uri", POST_LOGOUT_URI),
                ("state", "st8"),
            ],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "confirmation page, not a logout");
    let page = res.text().await.unwrap();
    let form = form_html(&page, "/logout").unwrap_or_else(|| panic!("no logout form: {page}"));
    assert!(attr(&form[..=form.find('>').unwrap()], "method")
        .is_some_and(|m| m.eq_ignore_ascii_case("post")));
    assert!(has_control(&page, "/logout", "confirm", Some("yes")));
    let fields = hidden_inputs(form);
    let csrf = hidden(&page, "/logout", "csrf").expect("csrf input");
    assert!(!csrf.is_empty());
    for (name, value) in [
        ("client_id", client.id.as_str()),
        ("post_logout_redirect_uri", POST_LOGOUT_URI),
        ("state", "st8"),
    ] {
        assert!(
            fields.iter().any(|(k, v)| k == name && v == value),
            "hidden {name} carries the request: {fields:?}"
        );
    }

    // Showing the page ended nothing.
    code_with_session(&app, &browser, &AuthRequest::new(&client, "openid")).await;

    // A forged confirmation (no csrf, wrong csrf) ends nothing either.
    let without: Vec<(String, String)> = fields
        .iter()
        .filter(|(k, _)| k != "csrf")
        .cloned()
        .chain([("confirm".to_owned(), "yes".to_owned())])
        .collect();
    let mut forged = without.clone();
    forged.push(("csrf".into(), "forged-csrf".into()));
    for attempt in [without, forged] {
        let res = post_form(&browser.http, &app.url("/logout"), &attempt).await;
        assert!(res.status().is_client_error(), "refused: {}", res.status());
        assert!(res.headers().get(LOCATION).is_none());
    }
    code_with_session(&app, &browser, &AuthRequest::new(&client, "openid")).await;
    assert_tokens(refresh(&app, &client, s(&t, "refresh_token")).await).await;

    // The real confirmation ends the session and returns to the registered URI.
    let mut confirm = fields.clone();
    confirm.push(("confirm".into(), "yes".into()));
    let res = post_form(&browser.http, &app.url("/logout"), &confirm).await;
    let to = location(&res);
    assert_eq!(target(&to), POST_LOGOUT_URI);
    assert_eq!(query(&to, "state").as_deref(), Some("st8"));
    assert_logged_out(&app, &browser, &client).await;
    assert_session_dead(&app, &client, &session).await;
}

/// A logout with a valid hint from the browser that holds the session.
async fn logout_with_hint(app: &TestApp, browser: &Browser, id_token: &str) {
    let res = browser
        .http
        .get(logout_url(
            app,
            &[
                ("id_token_hint", id_token),
                ("post_logout_redirect_uri", POST_LOGOUT_URI),
            ],
        ))
        .send()
        .await
        .unwrap();
    let to = location(&res);
    assert_eq!(target(&to), POST_LOGOUT_URI);
    assert!(query(&to, "state").is_none());
}

/// OIDC Core §11: refresh tokens granted with `offline_access` are for when the user is not
/// logged in; logging out does not end them.
async fn offline_families_survive_logout_by_default(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (browser, _, t) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    logout_with_hint(&app, &browser, s(&t, "id_token")).await;
    assert_logged_out(&app, &browser, &client).await;
    let t1 = assert_tokens(refresh(&app, &client, s(&t, "refresh_token")).await).await;
    assert_active(&app, &client, s(&t1, "access_token")).await;
}

async fn a_client_registered_to_end_offline_access_loses_it_at_logout(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = register(
        &app,
        latchkey::service::admin::NewClient {
            end_offline_on_logout: true,
            ..confidential_input("Kiosk")
        },
    )
    .await;
    let other = confidential_client(&app).await;
    alice(&app).await;
    let (browser, _, t) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    // The same browser session also serves a client that keeps its offline access.
    let req = AuthRequest::new(&other, FULL_SCOPE);
    let code = code_with_session(&app, &browser, &req).await;
    let t_other = assert_tokens(exchange_code(&app, &other, &code, &req).await).await;
    logout_with_hint(&app, &browser, s(&t, "id_token")).await;
    assert_refresh_dead(&app, &client, s(&t, "refresh_token")).await;
    assert_inactive(&app, &client, s(&t, "access_token")).await;
    assert_tokens(refresh(&app, &other, s(&t_other, "refresh_token")).await).await;
}

async fn keep_offline_on_logout_false_ends_offline_families(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.sessions.keep_offline_on_logout = false).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (browser, _, t) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    logout_with_hint(&app, &browser, s(&t, "id_token")).await;
    assert_logged_out(&app, &browser, &client).await;
    assert_refresh_dead(&app, &client, s(&t, "refresh_token")).await;
}

/// Without `offline_access` the grant lives with the session: its access tokens stop
/// working at logout.
async fn session_bound_grants_end_with_the_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (browser, _, t) = full_flow(&app, &client, USERNAME, "openid profile").await;
    assert!(t.get("refresh_token").is_none());
    let at = s(&t, "access_token");
    assert_active(&app, &client, at).await;
    logout_with_hint(&app, &browser, s(&t, "id_token")).await;
    assert_inactive(&app, &client, at).await;
}

/// RP-Initiated Logout §2-3: the hint identifies, it does not authorize. Anyone holding a
/// user's ID token (any RP, a log line) used to sign them out everywhere with one GET.
async fn a_cookieless_logout_with_a_users_id_token_ends_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (browser, _, t) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    // A session-bound grant too: it would die with the session.
    let req = AuthRequest::new(&client, "openid");
    let code = code_with_session(&app, &browser, &req).await;
    let bound = assert_tokens(exchange_code(&app, &client, &code, &req).await).await;
    let session = session_of(&browser).await;

    let stranger = Browser::new(&app);
    let res = stranger
        .http
        .get(logout_url(
            &app,
            &[
                ("id_token_hint", s(&t, "id_token")),
                ("post_logout_redirect_uri", POST_LOGOUT_URI),
                ("state", "s"),
            ],
        ))
        .send()
        .await
        .unwrap();
    // The redirect to the registered URI may still happen; nothing ended.
    let to = location(&res);
    assert_eq!(target(&to), POST_LOGOUT_URI);
    // Without a redirect target: the signed-out page, still ending nothing.
    let res = stranger
        .http
        .get(logout_url(&app, &[("id_token_hint", s(&t, "id_token"))]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    code_with_session(&app, &browser, &AuthRequest::new(&client, "openid")).await;
    let replay = Browser::new(&app);
    replay.plant_cookie("latchkey_session", &session);
    code_with_session(&app, &replay, &AuthRequest::new(&client, "openid")).await;
    assert_active(&app, &client, s(&bound, "access_token")).await;
    assert_tokens(refresh(&app, &client, s(&t, "refresh_token")).await).await;
}

async fn a_hint_for_another_user_does_not_end_this_browsers_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    crate::oauth::create_user(&app, "bob", &[]).await;
    let (_, _, alice_tokens) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let (bob_browser, _, bob_tokens) = full_flow(&app, &client, "bob", "openid").await;

    let res = bob_browser
        .http
        .get(logout_url(
            &app,
            &[
                ("id_token_hint", s(&alice_tokens, "id_token")),
                ("post_logout_redirect_uri", POST_LOGOUT_URI),
            ],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "a confirmation page, not a logout");
    assert!(res.headers().get(LOCATION).is_none());
    assert!(res.text().await.unwrap().contains("name=\"confirm\""));
    code_with_session(&app, &bob_browser, &AuthRequest::new(&client, "openid")).await;
    assert_active(&app, &client, s(&bob_tokens, "access_token")).await;
    assert_tokens(refresh(&app, &client, s(&alice_tokens, "refresh_token")).await).await;
}

/// The leeway for expired hints is one day (`HINT_MAX_AGE_SECS`), no longer 30: an older
/// hint vouches for nothing and the user is asked.
async fn a_hint_older_than_the_leeway_asks_for_confirmation(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.tokens.id_token_ttl_secs = 60;
        s.sessions.idle_timeout_secs = 3 * 24 * 3600;
        s.sessions.absolute_lifetime_secs = 3 * 24 * 3600;
    })
    .await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (browser, _, t) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    app.clock
        .advance(60 + latchkey::service::logout::HINT_MAX_AGE_SECS + 1);
    let res = browser
        .http
        .get(logout_url(&app, &[("id_token_hint", s(&t, "id_token"))]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("name=\"confirm\""));
    code_with_session(&app, &browser, &AuthRequest::new(&client, "openid")).await;
}
