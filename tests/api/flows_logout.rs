//! OpenID Connect RP-Initiated Logout 1.0.

use reqwest::header::LOCATION;

use crate::helpers::{spawn_app, spawn_app_with, Backend, TestApp};
use crate::oauth::*;

crate::both_stores!(
    logout_with_hint_redirects_to_a_registered_uri,
    logout_to_an_unregistered_uri_shows_a_page,
    logout_accepts_an_expired_id_token_hint,
    logout_without_hint_needs_confirmation,
    keep_offline_on_logout_spares_offline_families,
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
    // Default settings: even offline_access families end with the session.
    assert_refresh_dead(&app, &client, rt).await;
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
    assert_refresh_dead(&app, &client, s(&t, "refresh_token")).await;
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
    assert_refresh_dead(&app, &client, rt1).await;
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

async fn keep_offline_on_logout_spares_offline_families(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.sessions.keep_offline_on_logout = true).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (browser, _, t) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let res = browser
        .http
        .get(logout_url(
            &app,
            &[
                ("id_token_hint", s(&t, "id_token")),
                ("post_logout_redirect_uri", POST_LOGOUT_URI),
            ],
        ))
        .send()
        .await
        .unwrap();
    let to = location(&res);
    assert_eq!(target(&to), POST_LOGOUT_URI);
    assert!(query(&to, "state").is_none());
    assert_logged_out(&app, &browser, &client).await;
    assert_tokens(refresh(&app, &client, s(&t, "refresh_token")).await).await;
}
