//! The self-service account page: sessions, apps, password change, re-authentication
//! before sensitive changes, and the refusals that protect it (CSRF bound to the session,
//! forms naming someone else's records).

use latchkey::clock::Clock;

use crate::accounts_support::*;
use crate::helpers::{spawn_app, Backend, TestApp};
use crate::oauth::*;

crate::both_stores!(
    the_page_needs_a_session,
    the_page_lists_sessions_and_signs_one_out,
    sign_out_all_other_devices,
    apps_are_listed_and_revoked,
    a_password_change_ends_the_other_sessions_and_families,
    a_password_change_needs_the_current_password_and_matching_copies,
    changing_a_factor_without_a_recent_sign_in_asks_for_one,
    removing_totp_needs_a_fresh_second_factor,
    forms_without_the_sessions_csrf_token_change_nothing,
    a_form_naming_another_users_session_or_app_changes_nothing,
    pages_have_no_inline_script_or_style,
);

/// The `value` of the hidden `name` input of the first form posting to `action` whose
/// hidden inputs include `name`.
fn sids(page: &str) -> Vec<String> {
    page.match_indices("name=\"sid\" value=\"")
        .map(|(i, m)| {
            let rest = &page[i + m.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

fn grant_ids(page: &str) -> Vec<String> {
    page.match_indices("name=\"grant_id\" value=\"")
        .map(|(i, m)| {
            let rest = &page[i + m.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

async fn signed_in(app: &TestApp, username: &str) -> Browser {
    let b = Browser::new(app);
    sign_in_ok(app, &b, username).await;
    b
}

async fn assert_signed_out(app: &TestApp, browser: &Browser) {
    let res = browser.http.get(app.url("/account")).send().await.unwrap();
    let page = res.text().await.unwrap();
    assert!(
        page.contains("action=\"/login\""),
        "expected the login page: {page}"
    );
}

async fn the_page_needs_a_session(backend: Backend) {
    let app = spawn_app(backend).await;
    alice(&app).await;
    let browser = Browser::new(&app);
    assert_signed_out(&app, &browser).await;
    sign_in_ok(&app, &browser, USERNAME).await;
    let page = account_page(&app, &browser).await;
    assert!(page.contains(USERNAME) && page.contains(EMAIL));
}

async fn the_page_lists_sessions_and_signs_one_out(backend: Backend) {
    let app = spawn_app(backend).await;
    alice(&app).await;
    let me = signed_in(&app, USERNAME).await;
    let phone = Browser::new(&app);
    let res = phone
        .http
        .get(app.url("/login"))
        .header("user-agent", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36")
        .send()
        .await
        .unwrap();
    let csrf = csrf_of(&res.text().await.unwrap(), "/login");
    let res = phone
        .http
        .post(app.url("/login"))
        .header("content-type", FORM)
        .header("user-agent", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36")
        .body(form_body(&[("username", USERNAME), ("password", PASSWORD), ("csrf", &csrf), ("request", "")]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let page = account_page(&app, &me).await;
    assert!(page.contains("Chrome on Android"), "{page}");
    assert!(page.contains("This device"));
    assert!(page.contains("127.0.0.1"));
    // Only the other session has a sign-out button; the current one is marked instead.
    let others = sids(&page);
    assert_eq!(others.len(), 1, "{page}");
    let res = post_account(&app, &me, "/account/sessions/end", &[("sid", &others[0])]).await;
    assert_eq!(res.status(), 303);
    assert_signed_out(&app, &phone).await;
    account_page(&app, &me).await;
    let events = app
        .cli(&["audit", "list", "--user", USERNAME, "--json"])
        .stdout;
    assert!(events.contains("session_revoked"), "{events}");
}

async fn sign_out_all_other_devices(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let me = signed_in(&app, USERNAME).await;
    let (laptop, _, tokens) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let tablet = signed_in(&app, USERNAME).await;
    assert_eq!(sids(&account_page(&app, &me).await).len(), 2);
    let res = post_account(&app, &me, "/account/sessions/end-others", &[]).await;
    assert_eq!(res.status(), 303);
    assert_signed_out(&app, &laptop).await;
    assert_signed_out(&app, &tablet).await;
    assert_refresh_dead(&app, &client, s(&tokens, "refresh_token")).await;
    let page = account_page(&app, &me).await;
    assert!(sids(&page).is_empty() && page.contains("This device"));
}

async fn apps_are_listed_and_revoked(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (browser, _, tokens) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let page = account_page(&app, &browser).await;
    assert!(
        page.contains("Acme Web") && page.contains("offline_access"),
        "{page}"
    );
    let grants = grant_ids(&page);
    assert_eq!(grants.len(), 1);
    let res = post_account(
        &app,
        &browser,
        "/account/apps/revoke",
        &[("grant_id", &grants[0])],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_error(
        refresh(&app, &client, s(&tokens, "refresh_token")).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_inactive(&app, &client, s(&tokens, "access_token")).await;
    assert!(grant_ids(&account_page(&app, &browser).await).is_empty());
}

async fn change_password(
    app: &TestApp,
    browser: &Browser,
    current: &str,
    new: &str,
    confirm: &str,
) -> reqwest::Response {
    post_account(
        app,
        browser,
        "/account/password",
        &[
            ("current_password", current),
            ("new_password", new),
            ("confirm_password", confirm),
        ],
    )
    .await
}

async fn a_password_change_ends_the_other_sessions_and_families(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let me = signed_in(&app, USERNAME).await;
    let (other, _, tokens) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let new = "a much longer new passphrase";
    let res = change_password(&app, &me, PASSWORD, new, new).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/account?done=password_changed");
    assert!(
        cookie_set(&res, "latchkey_session").is_some(),
        "this browser gets a new session"
    );
    // This browser carries on; the other is signed out and its family is dead.
    let page = me
        .http
        .get(app.url("/account?done=password_changed"))
        .send()
        .await
        .unwrap();
    assert!(page.text().await.unwrap().contains("password was changed"));
    assert_signed_out(&app, &other).await;
    assert_refresh_dead(&app, &client, s(&tokens, "refresh_token")).await;
    // The new password signs in; the old one does not.
    assert_eq!(
        sign_in(&app, &Browser::new(&app), USERNAME, PASSWORD)
            .await
            .status(),
        401
    );
    assert_eq!(
        sign_in(&app, &Browser::new(&app), USERNAME, new)
            .await
            .status(),
        303
    );
    let events = app
        .cli(&["audit", "list", "--user", USERNAME, "--json"])
        .stdout;
    assert!(events.contains("password_changed"), "{events}");
}

async fn a_password_change_needs_the_current_password_and_matching_copies(backend: Backend) {
    let app = spawn_app(backend).await;
    alice(&app).await;
    let me = signed_in(&app, USERNAME).await;
    let new = "a much longer new passphrase";
    assert_eq!(
        change_password(&app, &me, "not my password", new, new)
            .await
            .status(),
        401
    );
    assert_eq!(
        change_password(&app, &me, PASSWORD, new, "something else entirely")
            .await
            .status(),
        400
    );
    assert_eq!(
        change_password(&app, &me, PASSWORD, "short", "short")
            .await
            .status(),
        400
    );
    // Nothing changed: the old password still works, this session too.
    assert_eq!(
        sign_in(&app, &Browser::new(&app), USERNAME, PASSWORD)
            .await
            .status(),
        303
    );
    account_page(&app, &me).await;
}

async fn changing_a_factor_without_a_recent_sign_in_asks_for_one(backend: Backend) {
    let app = spawn_app(backend).await;
    alice(&app).await;
    let me = signed_in(&app, USERNAME).await;
    app.clock.advance(11 * 60);
    // The account page itself is fine; changes ask for the password first.
    account_page(&app, &me).await;
    let res = start_totp(&app, &me).await;
    assert_eq!(res.status(), 401);
    let reauth = res.text().await.unwrap();
    assert!(reauth.contains("action=\"/account/reauth\""), "{reauth}");
    let new = "a much longer new passphrase";
    let res = change_password(&app, &me, PASSWORD, new, new).await;
    assert_eq!(res.status(), 401, "asked to re-authenticate");
    assert_eq!(
        sign_in(&app, &Browser::new(&app), USERNAME, PASSWORD)
            .await
            .status(),
        303,
        "unchanged"
    );
    // Re-authenticate: a wrong password is refused, the right one goes back to the page.
    let csrf = csrf_of(&reauth, "/account/reauth");
    let wrong = post_form(
        &me.http,
        &app.url("/account/reauth"),
        &[
            ("password", "wrong password"),
            ("next", "/account/totp"),
            ("csrf", &csrf),
        ],
    )
    .await;
    assert_eq!(wrong.status(), 401);
    let res = post_form(
        &me.http,
        &app.url("/account/reauth"),
        &[
            ("password", PASSWORD),
            ("next", "/account/totp"),
            ("csrf", &csrf),
        ],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/account/totp");
    assert_eq!(start_totp(&app, &me).await.status(), 200);
    // An off-site `next` is never followed.
    let csrf = csrf_of(&account_page(&app, &me).await, "/account/password");
    let res = post_form(
        &me.http,
        &app.url("/account/reauth"),
        &[
            ("password", PASSWORD),
            ("next", "https://evil.example/"),
            ("csrf", &csrf),
        ],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert!(res.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/account"));
}

async fn removing_totp_needs_a_fresh_second_factor(backend: Backend) {
    let app = spawn_app(backend).await;
    // Enrolled in a password-only session: no second factor presented yet.
    let (browser, enrolled) = user_with_totp(&app, "carol").await;
    let res = post_account(&app, &browser, "/account/totp/remove", &[]).await;
    assert_eq!(res.status(), 401, "asked to re-authenticate");
    let reauth = res.text().await.unwrap();
    assert!(account_page(&app, &browser)
        .await
        .contains("Authenticator app: <strong>on</strong>"));
    // Re-authentication asks for the password and then the code.
    let csrf = csrf_of(&reauth, "/account/reauth");
    let res = post_form(
        &browser.http,
        &app.url("/account/reauth"),
        &[
            ("password", PASSWORD),
            ("next", "/account"),
            ("csrf", &csrf),
        ],
    )
    .await;
    let page = assert_mfa_page(res).await;
    let res = submit_mfa(
        &app,
        &browser,
        &page,
        "totp",
        &code_now(&app, &enrolled.secret),
    )
    .await;
    assert_eq!(res.status(), 303);
    let res = post_account(&app, &browser, "/account/totp/remove", &[]).await;
    assert_eq!(res.status(), 303);
    assert!(account_page(&app, &browser)
        .await
        .contains("Authenticator app: <strong>off</strong>"));
    sign_in_ok(&app, &Browser::new(&app), "carol").await;
    let events = app
        .cli(&["audit", "list", "--user", "carol", "--json"])
        .stdout;
    assert!(
        events.contains("totp_removed") && events.contains("reauthenticated"),
        "{events}"
    );
}

async fn forms_without_the_sessions_csrf_token_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    alice(&app).await;
    let me = signed_in(&app, USERNAME).await;
    let other = signed_in(&app, USERNAME).await;
    let page = account_page(&app, &me).await;
    let sid = sids(&page)[0].clone();
    // Missing, wrong, and another session's (valid for that session only).
    let foreign = csrf_of(&account_page(&app, &other).await, "/account/password");
    for csrf in [None, Some("x".repeat(43)), Some(foreign)] {
        let mut fields = vec![("sid", sid.clone())];
        if let Some(c) = csrf {
            fields.push(("csrf", c));
        }
        let res = post_form(&me.http, &app.url("/account/sessions/end"), &fields).await;
        assert_eq!(res.status(), 400);
        account_page(&app, &other).await;
    }
    // Without a session at all.
    let res = post_form(
        &Browser::new(&app).http,
        &app.url("/account/sessions/end-others"),
        &[("csrf", "x")],
    )
    .await;
    assert_eq!(res.status(), 401);
    account_page(&app, &other).await;
}

async fn a_form_naming_another_users_session_or_app_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    create_user(&app, "bob", &[]).await;
    let (bob, _, bob_tokens) = full_flow(&app, &client, "bob", FULL_SCOPE).await;
    let bob_page = account_page(&app, &bob).await;
    let bob_grant = grant_ids(&bob_page)[0].clone();
    let bob_sid = app
        .state
        .store
        .list_user_sessions(
            app.state
                .store
                .get_user_by_username(&latchkey::domain::Username::parse("bob").unwrap())
                .await
                .unwrap()
                .unwrap()
                .id
                .as_str(),
            app.clock.now(),
        )
        .await
        .unwrap()[0]
        .sid
        .clone();
    let me = signed_in(&app, USERNAME).await;
    let res = post_account(&app, &me, "/account/sessions/end", &[("sid", &bob_sid)]).await;
    assert_eq!(res.status(), 404);
    let res = post_account(
        &app,
        &me,
        "/account/apps/revoke",
        &[("grant_id", &bob_grant)],
    )
    .await;
    assert_eq!(res.status(), 404);
    for junk in ["", "nope", &"x".repeat(3000)] {
        assert_eq!(
            post_account(&app, &me, "/account/sessions/end", &[("sid", junk)])
                .await
                .status(),
            404
        );
        assert_eq!(
            post_account(&app, &me, "/account/apps/revoke", &[("grant_id", junk)])
                .await
                .status(),
            404
        );
    }
    account_page(&app, &bob).await;
    assert_tokens(refresh(&app, &client, s(&bob_tokens, "refresh_token")).await).await;
}

async fn pages_have_no_inline_script_or_style(backend: Backend) {
    let app = spawn_app(backend).await;
    alice(&app).await;
    let me = signed_in(&app, USERNAME).await;
    let setup = start_totp(&app, &me).await;
    let account = me.http.get(app.url("/account")).send().await.unwrap();
    let login = Browser::new(&app)
        .http
        .get(app.url("/login"))
        .send()
        .await
        .unwrap();
    for res in [setup, account, login] {
        let csp = res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.starts_with("default-src 'none'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        let page = res.text().await.unwrap();
        assert!(
            !page.contains("<script") && !page.contains("style=") && !page.contains("<style"),
            "{page}"
        );
        assert!(
            page.contains("name=\"viewport\" content=\"width=device-width"),
            "usable on a phone"
        );
    }
}
