//! E-mail change from the account page (confirmed from the new address, noticed at the
//! old one) and optional self-registration with its verification link (issue 8, item 5).

use latchkey::domain::Email;
use reqwest::Response;
use serde_json::Value;

use crate::accounts_support::*;
use crate::helpers::{spawn_app, spawn_app_with_mail, Backend, TestApp};
use crate::invitations::{assert_refused, foreign_token, invite, open, stored_token, submit, user};
use crate::oauth::*;

crate::both_stores!(
    an_email_change_needs_the_new_addresss_confirmation,
    an_email_change_needs_a_recent_sign_in,
    a_change_to_a_taken_address_reveals_nothing_and_changes_nothing,
    bad_confirmation_links_get_a_clear_page_and_change_nothing,
    registration_is_off_by_default,
    a_registration_is_confirmed_by_its_link,
    registration_does_not_reveal_taken_names_or_addresses,
    registration_is_throttled_per_client_and_per_mailbox,
    link_pages_are_strict_and_never_cached,
    an_address_that_names_another_mailbox_is_refused,
);

fn verify_prefix(app: &TestApp) -> String {
    format!("{}/verify-email?token=", app.address)
}

async fn userinfo_json(app: &TestApp, access_token: &str) -> Value {
    let res = userinfo(app, access_token).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Opens a confirmation link in a new browser and confirms it.
async fn confirm(app: &TestApp, link: &str) -> Response {
    let browser = Browser::new(app);
    let res = open(&browser, link).await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    submit(app, &browser, &page, "/verify-email", &[]).await
}

async fn signed_in(app: &TestApp, username: &str) -> Browser {
    let browser = Browser::new(app);
    sign_in_ok(app, &browser, username).await;
    browser
}

async fn an_email_change_needs_the_new_addresss_confirmation(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |_| {}).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (_, _, tokens) = full_flow(&app, &client, USERNAME, "openid email").await;
    let access = s(&tokens, "access_token").to_owned();
    let browser = signed_in(&app, USERNAME).await;
    let res = post_account(
        &app,
        &browser,
        "/account/email",
        &[("email", "alice@new.example")],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/account?done=email_change_sent");

    // The old address hears of it, naming the new one; the new one gets the link.
    let notice = sink
        .first_matching(EMAIL, |m| m.kind_is_notice_naming("alice@new.example"))
        .await;
    assert!(
        notice.text().contains("alice@new.example"),
        "{}",
        notice.text()
    );
    assert!(
        !notice.text().contains("/verify-email"),
        "{}",
        notice.text()
    );
    let mail = sink.nth("alice@new.example", 1).await;
    let link = mail.link(&verify_prefix(&app));

    // Until the link is confirmed, the old address stays (and stays unverified).
    let info = userinfo_json(&app, &access).await;
    assert_eq!(
        (info["email"].as_str(), info["email_verified"].as_bool()),
        (Some(EMAIL), Some(false))
    );
    // Opening the link only shows the question; a POST confirms.
    let b = Browser::new(&app);
    let page = open(&b, &link).await.text().await.unwrap();
    assert!(page.contains("alice@new.example"), "{page}");
    assert_eq!(user(&app, USERNAME).await.email.as_str(), EMAIL);
    let res = submit(&app, &b, &page, "/verify-email", &[]).await;
    assert_eq!(res.status(), 200);
    let info = userinfo_json(&app, &access).await;
    assert_eq!(info["email"], "alice@new.example");
    assert_eq!(info["email_verified"], true);
    let (_, _, tokens) = full_flow(&app, &client, USERNAME, "openid email").await;
    assert_eq!(claims(s(&tokens, "id_token"))["email_verified"], true);
    // Once only.
    assert_refused(submit(&app, &b, &page, "/verify-email", &[]).await, 410).await;
    assert!(account_page(&app, &browser)
        .await
        .contains("alice@new.example"));
}

async fn an_email_change_needs_a_recent_sign_in(backend: Backend) {
    let (app, _sink) = spawn_app_with_mail(backend, |_| {}).await;
    alice(&app).await;
    let browser = signed_in(&app, USERNAME).await;
    app.clock.advance(11 * 60);
    let res = post_account(
        &app,
        &browser,
        "/account/email",
        &[("email", "a@new.example")],
    )
    .await;
    assert_eq!(res.status(), 401);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("action=\"/account/reauth\""));
    // Not an address: the page again with the reason. Neither queued any mail.
    let browser = signed_in(&app, USERNAME).await;
    let res = post_account(
        &app,
        &browser,
        "/account/email",
        &[("email", "not-an-address")],
    )
    .await;
    assert_eq!(res.status(), 400);
    assert!(app
        .state
        .store
        .list_mail(false, 100)
        .await
        .unwrap()
        .iter()
        .all(|m| m.kind == "new_sign_in"));
}

async fn a_change_to_a_taken_address_reveals_nothing_and_changes_nothing(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |_| {}).await;
    alice(&app).await;
    create_user(&app, "bob", &[]).await;
    let browser = signed_in(&app, USERNAME).await;
    // Taken already: the same answer; bob's address hears of the attempt, no link anywhere.
    let res = post_account(
        &app,
        &browser,
        "/account/email",
        &[("email", "bob@example.com")],
    )
    .await;
    assert_eq!(res.headers()["location"], "/account?done=email_change_sent");
    let notice = sink.nth("bob@example.com", 1).await;
    assert!(notice.text().contains("already"), "{}", notice.text());
    sink.nth(EMAIL, 1).await;
    let kinds: Vec<String> = app
        .state
        .store
        .list_mail(false, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.kind)
        .collect();
    assert!(!kinds.iter().any(|k| k == "change_email"), "{kinds:?}");

    // Free when asked, taken before it is confirmed: a clear page, nothing changed.
    let res = post_account(
        &app,
        &browser,
        "/account/email",
        &[("email", "carol@example.com")],
    )
    .await;
    assert_eq!(res.status(), 303);
    let link = sink
        .nth("carol@example.com", 1)
        .await
        .link(&verify_prefix(&app));
    let b = Browser::new(&app);
    let page = open(&b, &link).await.text().await.unwrap();
    create_user(&app, "carol", &[]).await;
    let res = submit(&app, &b, &page, "/verify-email", &[]).await;
    assert_eq!(res.status(), 409);
    assert!(res.text().await.unwrap().contains("another account"));
    assert_eq!(user(&app, USERNAME).await.email.as_str(), EMAIL);
    let token = link.rsplit('=').next().unwrap();
    assert!(stored_token(&app, token).await.used_at.is_none());
}

async fn bad_confirmation_links_get_a_clear_page_and_change_nothing(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |s| s.registration.enabled = true).await;
    alice(&app).await;
    let browser = signed_in(&app, USERNAME).await;
    let res = post_account(
        &app,
        &browser,
        "/account/email",
        &[("email", "alice@new.example")],
    )
    .await;
    assert_eq!(res.status(), 303);
    let link = sink
        .nth("alice@new.example", 1)
        .await
        .link(&verify_prefix(&app));
    let token = link.rsplit('=').next().unwrap().to_owned();
    let b = Browser::new(&app);
    let page = open(&b, &link).await.text().await.unwrap();
    let before = user(&app, USERNAME).await;

    // Tampered, or of another purpose (a password reset, an invitation).
    let flipped = if token.starts_with('A') { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", verify_prefix(&app), &token[1..]);
    assert_refused(open(&b, &tampered).await, 404).await;
    let reset = foreign_token(&app, &before).await;
    assert_refused(
        submit(
            &app,
            &b,
            &page.replace(&token, &reset),
            "/verify-email",
            &[],
        )
        .await,
        404,
    )
    .await;
    invite(&app, "bob").await;
    let invitation = sink
        .nth("bob@example.com", 1)
        .await
        .token(&format!("{}/invitation?token=", app.address));
    assert_refused(
        open(&b, &format!("{}{invitation}", verify_prefix(&app))).await,
        404,
    )
    .await;
    // No CSRF token.
    let res = post_form(
        &Browser::new(&app).http,
        &app.url("/verify-email"),
        &[("token", token.as_str())],
    )
    .await;
    assert_eq!(res.status(), 400);
    // Disabled: refused while disabled (and the credentials change voids the link).
    disable_user(&app, USERNAME).await;
    assert_refused(submit(&app, &b, &page, "/verify-email", &[]).await, 403).await;
    assert_eq!(user(&app, USERNAME).await.email, before.email);
    assert!(stored_token(&app, &token).await.used_at.is_none());
    assert!(stored_token(&app, &reset).await.used_at.is_none());

    // Expired: a registration's link after `accounts.email_link_secs`.
    let (status, _) = register(&app, &Browser::new(&app), "dora", "dora@example.com").await;
    assert_eq!(status, 200);
    let link = sink
        .nth("dora@example.com", 1)
        .await
        .link(&verify_prefix(&app));
    app.clock.advance(24 * 3600);
    let page = assert_refused(open(&b, &link).await, 410).await;
    assert!(page.contains("expired"), "{page}");
    assert!(!user(&app, "dora").await.email_verified);
}

async fn registration_is_off_by_default(backend: Backend) {
    let app = spawn_app(backend).await;
    assert!(!app.state.settings.registration.enabled);
    let browser = Browser::new(&app);
    let res = browser.http.get(app.url("/register")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let login = browser
        .http
        .get(app.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!login.contains("/register"), "{login}");
    let csrf = csrf_of(&login, "/login");
    let fields = [
        ("csrf", csrf.as_str()),
        ("username", "eve"),
        ("email", "eve@example.com"),
        ("password", PASSWORD),
        ("confirm_password", PASSWORD),
    ];
    let res = post_form(&browser.http, &app.url("/register"), &fields).await;
    assert_eq!(res.status(), 404);
    // Like a path that does not exist: no CSRF check runs first.
    let bare = post_form(
        &Browser::new(&app).http,
        &app.url("/register"),
        &fields[1..],
    )
    .await;
    assert_eq!(bare.status(), 404);
    assert!(app
        .state
        .store
        .get_user_by_username(&latchkey::domain::Username::parse("eve").unwrap())
        .await
        .unwrap()
        .is_none());
}

/// Registers through the page in `browser` with [`PASSWORD`]; the status and the body.
async fn register(app: &TestApp, browser: &Browser, username: &str, email: &str) -> (u16, String) {
    let res = browser.http.get(app.url("/register")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    let fields = [
        ("username", username),
        ("email", email),
        ("password", PASSWORD),
        ("confirm_password", PASSWORD),
    ];
    let res = submit(app, browser, &page, "/register", &fields).await;
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn a_registration_is_confirmed_by_its_link(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |s| s.registration.enabled = true).await;
    let client = confidential_client(&app).await;
    let browser = Browser::new(&app);
    let login = browser
        .http
        .get(app.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(login.contains("href=\"/register\""), "{login}");
    let (status, page) = register(&app, &browser, "erin", "Erin@Example.com").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Check your e-mail"), "{page}");
    let erin = user(&app, "erin").await;
    assert_eq!(erin.email, Email::parse("Erin@example.com").unwrap());
    assert!(!erin.email_verified);
    let mail = sink.nth("Erin@example.com", 1).await;
    assert_eq!(mail.subject(), "Confirm your e-mail address");
    let link = mail.link(&verify_prefix(&app));
    assert_eq!(confirm(&app, &link).await.status(), 200);
    assert!(user(&app, "erin").await.email_verified);
    let (_, _, tokens) = full_flow(&app, &client, "erin", "openid email").await;
    assert_eq!(
        userinfo_json(&app, s(&tokens, "access_token")).await["email_verified"],
        true
    );
}

async fn registration_does_not_reveal_taken_names_or_addresses(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |s| s.registration.enabled = true).await;
    alice(&app).await;
    let fresh = register(&app, &Browser::new(&app), "frank", "frank@example.com").await;
    let taken_address = register(&app, &Browser::new(&app), "mallory", EMAIL).await;
    let taken_name = register(&app, &Browser::new(&app), USERNAME, "grace@example.com").await;
    assert_eq!(fresh.0, 200);
    assert_eq!(fresh, taken_address);
    assert_eq!(fresh, taken_name);
    // The address's owner hears of the attempt; the address with a taken name is told so.
    let notice = sink.nth(EMAIL, 1).await;
    assert!(
        notice.text().contains("belongs to your account alice"),
        "{}",
        notice.text()
    );
    let retry = sink.nth("grace@example.com", 1).await;
    assert!(retry.text().contains("taken"), "{}", retry.text());
    assert!(!retry.text().contains("/verify-email") && !notice.text().contains("/verify-email"));
    for name in ["mallory"] {
        let parsed = latchkey::domain::Username::parse(name).unwrap();
        assert!(app
            .state
            .store
            .get_user_by_username(&parsed)
            .await
            .unwrap()
            .is_none());
    }
    assert_eq!(user(&app, USERNAME).await.email.as_str(), EMAIL);
    // A form that is not acceptable says why (it depends on nothing stored).
    let browser = Browser::new(&app);
    let page = browser
        .http
        .get(app.url("/register"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let fields = [
        ("username", "henry"),
        ("email", "henry@example.com"),
        ("password", "short"),
        ("confirm_password", "short"),
    ];
    let res = submit(&app, &browser, &page, "/register", &fields).await;
    assert_eq!(res.status(), 400);
}

async fn registration_is_throttled_per_client_and_per_mailbox(backend: Backend) {
    let (app, _sink) = spawn_app_with_mail(backend, |s| s.registration.enabled = true).await;
    // One mailbox: three an hour, from any client address.
    for i in 0..3 {
        let (status, _) = register(
            &app,
            &Browser::new(&app),
            &format!("m{i}"),
            "box@example.com",
        )
        .await;
        assert_eq!(status, 200);
    }
    let other = Browser::with_local_address(&app, "127.0.0.2");
    let (status, page) = register(&app, &other, "m3", "box@example.com").await;
    assert_eq!(status, 429, "{page}");
    // One client address: ten an hour, whatever the mailbox.
    for i in 3..10 {
        let (status, _) = register(
            &app,
            &Browser::new(&app),
            &format!("c{i}"),
            &format!("c{i}@example.com"),
        )
        .await;
        assert_eq!(status, 200);
    }
    let (status, _) = register(&app, &Browser::new(&app), "c10", "c10@example.com").await;
    assert_eq!(status, 429);
    assert_eq!(register(&app, &other, "d1", "d1@example.com").await.0, 200);
    app.clock.advance(3600);
    assert_eq!(
        register(&app, &Browser::new(&app), "c11", "c11@example.com")
            .await
            .0,
        200
    );
}

async fn link_pages_are_strict_and_never_cached(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |s| s.registration.enabled = true).await;
    invite(&app, "bob").await;
    let invitation = sink
        .nth("bob@example.com", 1)
        .await
        .link(&format!("{}/invitation?token=", app.address));
    let browser = Browser::new(&app);
    register(&app, &browser, "erin", "erin@example.com").await;
    let verify = sink
        .nth("erin@example.com", 1)
        .await
        .link(&verify_prefix(&app));
    let pages = [
        open(&browser, &invitation).await,
        open(&browser, &verify).await,
        browser.http.get(app.url("/register")).send().await.unwrap(),
        open(&browser, &app.url("/verify-email?token=nope")).await,
    ];
    for res in pages {
        let headers = res.headers().clone();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.starts_with("default-src 'none'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(headers["cache-control"], "no-store");
        let page = res.text().await.unwrap();
        assert!(
            !page.contains("<script") && !page.contains("style=") && !page.contains("<style"),
            "{page}"
        );
        assert!(
            page.contains("name=\"referrer\" content=\"no-referrer\""),
            "the token stays out of Referer"
        );
    }
}

/// `x<alice@example.com>` is stored as one string but mailed (as a display name and an
/// address) to alice@example.com: it would get past the taken-address check, send a
/// verification link for mallory's account to alice's mailbox, and leave mallory with
/// `email_verified` for a string that is not the mailbox that confirmed it.
async fn an_address_that_names_another_mailbox_is_refused(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |s| s.registration.enabled = true).await;
    alice(&app).await;
    for address in [
        "x<alice@example.com>",
        "alice@example.com(x)",
        "a,b@example.com",
    ] {
        let (status, page) = register(&app, &Browser::new(&app), "mallory", address).await;
        assert_eq!(status, 400, "{address}: {page}");
        assert!(page.contains("not an e-mail address"), "{page}");
    }
    let browser = signed_in(&app, USERNAME).await;
    let page = browser
        .http
        .get(app.url("/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let res = submit(
        &app,
        &browser,
        &page,
        "/account/email",
        &[("email", "y<bob@example.com>")],
    )
    .await;
    assert_eq!(res.status(), 400);
    let parsed = latchkey::domain::Username::parse("mallory").unwrap();
    assert!(app
        .state
        .store
        .get_user_by_username(&parsed)
        .await
        .unwrap()
        .is_none());
    let queued = app.state.store.list_mail(false, 100).await.unwrap();
    assert!(
        queued.iter().all(|m| !m.recipient.contains('<')),
        "{queued:?}"
    );
    assert!(sink.messages_to("bob@example.com").is_empty());
}
