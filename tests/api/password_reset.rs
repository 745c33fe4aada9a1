//! Forgot password and password reset over real SMTP (the in-process listener): the link
//! works once and expires, a second request or a password change voids it, the answer is
//! the same for every name, requests are limited per account and per address, a reset
//! ends every session and family and mails a notice, and bad links change nothing.
//! The second factor on the reset form is in `password_reset_factors.rs`.

use latchkey::clock::Clock;
use latchkey::crypto::token::hash_token;
use latchkey::domain::{AccountToken, AuditFilter, TokenPurpose};
use latchkey::service::admin;

use crate::accounts_support::*;
use crate::helpers::{spawn_app_with_mail, Backend};
use crate::oauth::*;
use crate::reset_support::*;

crate::both_stores!(
    a_reset_link_works_once_and_expires,
    a_second_request_voids_the_first_link,
    a_password_change_voids_the_link,
    the_answer_is_the_same_for_every_name,
    requests_are_limited_per_account_and_per_address,
    a_reset_ends_every_session_and_family_and_mails_a_notice,
    bad_links_get_a_clear_page_and_change_nothing,
    forms_without_the_csrf_token_change_nothing,
);

async fn a_reset_link_works_once_and_expires(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |_| {}).await;
    alice(&app).await;
    let token = mailed_token(&app, &sink, USERNAME, 1).await;
    assert_eq!(token.len(), 43, "256 bits");
    assert_eq!(
        stored_token(&app, &token).await.expires_at - app.clock.now(),
        3600
    );
    let browser = Browser::new(&app);
    assert_done(reset_with(&app, &browser, &token, &[]).await).await;
    assert!(signs_in_with(&app, USERNAME, NEW_PASSWORD).await);
    assert!(!signs_in_with(&app, USERNAME, PASSWORD).await);
    // Used: the link and the form are refused.
    assert_invalid(open_link(&app, &browser, &token).await).await;
    let csrf = browser.cookie("latchkey_csrf").unwrap();
    let again = [
        ("token", token.as_str()),
        ("new", "yet another passphrase"),
        ("confirm", "yet another passphrase"),
        ("csrf", csrf.as_str()),
    ];
    let res = post_form(&browser.http, &app.url("/reset-password"), &again).await;
    assert_invalid(res).await;
    assert!(signs_in_with(&app, USERNAME, NEW_PASSWORD).await);
    // A new link, an hour and a second later, is void; nothing changes.
    let token = mailed_token(&app, &sink, USERNAME, 2).await;
    app.clock.advance(3601);
    let before = snapshot(&app, USERNAME, &token).await;
    assert_invalid(open_link(&app, &browser, &token).await).await;
    let fields = [
        ("token", token.as_str()),
        ("new", "yet another passphrase"),
        ("confirm", "yet another passphrase"),
        ("csrf", csrf.as_str()),
    ];
    let res = post_form(&browser.http, &app.url("/reset-password"), &fields).await;
    assert_invalid(res).await;
    assert_unchanged(&app, &before, &token).await;
}

async fn a_second_request_voids_the_first_link(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |_| {}).await;
    alice(&app).await;
    let first = mailed_token(&app, &sink, USERNAME, 1).await;
    let second = mailed_token(&app, &sink, USERNAME, 2).await;
    assert_ne!(first, second);
    let browser = Browser::new(&app);
    assert_invalid(open_link(&app, &browser, &first).await).await;
    assert_done(reset_with(&app, &browser, &second, &[]).await).await;
}

async fn a_password_change_voids_the_link(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |_| {}).await;
    alice(&app).await;
    let token = mailed_token(&app, &sink, USERNAME, 1).await;
    let changed = latchkey::domain::Password::parse("changed by the admin").unwrap();
    let store = app.state.store.as_ref();
    admin::set_password(
        store,
        &app.state.passwords,
        USERNAME,
        &changed,
        app.clock.now(),
    )
    .await
    .unwrap();
    let browser = Browser::new(&app);
    assert_invalid(open_link(&app, &browser, &token).await).await;
    // Posting the form anyway changes nothing.
    let before = snapshot(&app, USERNAME, &token).await;
    let page = browser
        .http
        .get(app.url("/forgot-password"))
        .send()
        .await
        .unwrap();
    let csrf = csrf_of(&page.text().await.unwrap(), "/forgot-password");
    let fields = [
        ("token", token.as_str()),
        ("new", NEW_PASSWORD),
        ("confirm", NEW_PASSWORD),
        ("csrf", csrf.as_str()),
    ];
    let res = post_form(&browser.http, &app.url("/reset-password"), &fields).await;
    assert_invalid(res).await;
    assert_unchanged(&app, &before, &token).await;
    assert!(signs_in_with(&app, USERNAME, "changed by the admin").await);
}

async fn the_answer_is_the_same_for_every_name(backend: Backend) {
    let (app, _sink) = spawn_app_with_mail(backend, |_| {}).await;
    alice(&app).await;
    create_user(&app, "bob", &[]).await;
    disable_user(&app, "bob").await;
    let browser = Browser::new(&app);
    let login = browser.http.get(app.url("/login")).send().await.unwrap();
    let login = login.text().await.unwrap();
    assert!(login.contains("href=\"/forgot-password\">Forgot your password?"));
    let known = request_reset(&app, &browser, USERNAME).await;
    assert_eq!(known.status(), 200);
    let known = known.text().await.unwrap();
    assert!(known.contains("If an account matches"), "{known}");
    for name in [
        EMAIL,
        "Alice@Example.com",
        "nobody",
        "nobody@example.com",
        "bob",
        "not a name!",
    ] {
        let res = request_reset(&app, &browser, name).await;
        assert_eq!(res.status(), 200, "{name}");
        assert_eq!(res.text().await.unwrap(), known, "{name}: the same body");
    }
    // Only the enabled account got mail: by name, by address, by address in another case.
    assert_eq!(reset_mails_to(&app, EMAIL).await, 3);
    assert_eq!(reset_mails_to(&app, "bob@example.com").await, 0);
    assert_eq!(reset_mails_to(&app, "nobody@example.com").await, 0);
}

async fn requests_are_limited_per_account_and_per_address(backend: Backend) {
    let (app, _sink) = spawn_app_with_mail(backend, |_| {}).await;
    alice(&app).await;
    create_user(&app, "bob", &[]).await;
    let here = Browser::new(&app);
    let first = request_reset(&app, &here, USERNAME)
        .await
        .text()
        .await
        .unwrap();
    for _ in 0..3 {
        let res = request_reset(&app, &here, USERNAME).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), first, "throttled: the same page");
    }
    assert_eq!(
        reset_mails_to(&app, EMAIL).await,
        3,
        "3 an hour per account"
    );
    // The account's limit holds from another address too.
    let elsewhere = Browser::with_local_address(&app, "127.0.0.2");
    assert_eq!(request_reset(&app, &elsewhere, EMAIL).await.status(), 200);
    assert_eq!(reset_mails_to(&app, EMAIL).await, 3);
    // One address spraying names: after 10 requests, even a real account gets nothing.
    let sprayer = Browser::with_local_address(&app, "127.0.0.3");
    let mut sprayed = String::new();
    for i in 0..10 {
        let res = request_reset(&app, &sprayer, &format!("ghost{i}")).await;
        assert_eq!(res.status(), 200);
        sprayed = res.text().await.unwrap();
    }
    let res = request_reset(&app, &sprayer, "bob").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), sprayed, "the same page");
    assert_eq!(reset_mails_to(&app, "bob@example.com").await, 0);
    // Another address is not held back by it.
    let other = Browser::with_local_address(&app, "127.0.0.4");
    request_reset(&app, &other, "bob").await;
    assert_eq!(reset_mails_to(&app, "bob@example.com").await, 1);
    // An hour later alice may ask again.
    app.clock.advance(3601);
    request_reset(&app, &here, USERNAME).await;
    assert_eq!(reset_mails_to(&app, EMAIL).await, 4);
    let events = app
        .state
        .store
        .list_events(&AuditFilter {
            user_id: None,
            since: None,
            limit: 1000,
        })
        .await
        .unwrap();
    assert!(events.iter().any(|e| e.kind == "password_reset_throttled"));
}

async fn a_reset_ends_every_session_and_family_and_mails_a_notice(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |_| {}).await;
    let client = confidential_client(&app).await;
    let alice = alice(&app).await;
    let (signed_in, _, tokens) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    account_page(&app, &signed_in).await;
    let token = mailed_token(&app, &sink, USERNAME, 1).await;
    assert_done(reset_with(&app, &Browser::new(&app), &token, &[]).await).await;
    assert_refresh_dead(&app, &client, s(&tokens, "refresh_token")).await;
    let res = signed_in
        .http
        .get(app.url("/account"))
        .send()
        .await
        .unwrap();
    let page = res.text().await.unwrap();
    assert!(page.contains("action=\"/login\""), "signed out: {page}");
    let sessions = app
        .state
        .store
        .list_user_sessions(alice.id.as_str(), app.clock.now())
        .await
        .unwrap();
    assert!(sessions.is_empty(), "{sessions:?}");
    // The notice.
    // The notice (after the sign-in notice of the first session and the reset link).
    let notice = sink
        .first_matching(EMAIL, |m| m.text().contains("Your password was reset."))
        .await;
    assert_eq!(notice.subject(), "Security notice for your account");
    let events = app
        .state
        .store
        .list_events(&AuditFilter {
            user_id: Some(alice.id.as_str().to_owned()),
            since: None,
            limit: 100,
        })
        .await
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert!(kinds.contains(&"password_reset_requested"), "{kinds:?}");
    assert!(kinds.contains(&"password_reset"), "{kinds:?}");
}

/// Every kind of bad link: the same clear page, 400, and nothing changes.
async fn bad_links_get_a_clear_page_and_change_nothing(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |_| {}).await;
    let alice = alice(&app).await;
    create_user(&app, "dave", &[]).await;
    let token = mailed_token(&app, &sink, USERNAME, 1).await;
    let before = snapshot(&app, USERNAME, &token).await;
    let browser = Browser::new(&app);
    let mut tampered = token.clone().into_bytes();
    tampered[10] = if tampered[10] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    // A token of another purpose, for the same user.
    let foreign = latchkey::crypto::token::random_token().unwrap();
    let now = app.clock.now();
    let record = AccountToken {
        token_hash: hash_token(&foreign),
        purpose: TokenPurpose::Invitation,
        user_id: alice.id.as_str().to_owned(),
        email: None,
        credentials_epoch: alice.credentials_epoch,
        created_at: now,
        expires_at: now + 3600,
        used_at: None,
    };
    let ctx = minijinja::context! { username => "alice", what => "x" };
    let mail = app
        .state
        .mailer
        .compose("security_notice", EMAIL, ctx, now)
        .unwrap();
    app.state
        .store
        .issue_account_token(&record, &mail)
        .await
        .unwrap();
    // A link of a user disabled since.
    let dave = mailed_token(&app, &sink, "dave", 1).await;
    disable_user(&app, "dave").await;
    let dave_before = snapshot(&app, "dave", &dave).await;
    let csrf = {
        let page = browser
            .http
            .get(app.url("/forgot-password"))
            .send()
            .await
            .unwrap();
        csrf_of(&page.text().await.unwrap(), "/forgot-password")
    };
    for bad in [
        tampered.as_str(),
        "short",
        "",
        "%00%00",
        foreign.as_str(),
        dave.as_str(),
    ] {
        assert_invalid(open_link(&app, &browser, bad).await).await;
        let fields = [
            ("token", bad),
            ("new", NEW_PASSWORD),
            ("confirm", NEW_PASSWORD),
            ("csrf", csrf.as_str()),
        ];
        let res = post_form(&browser.http, &app.url("/reset-password"), &fields).await;
        assert_invalid(res).await;
    }
    assert_unchanged(&app, &before, &token).await;
    assert_unchanged(&app, &dave_before, &dave).await;
    let foreign_row = stored_token(&app, &foreign).await;
    assert_eq!(foreign_row.used_at, None, "the invitation is not spent");
    // The real link still works.
    assert_done(reset_with(&app, &browser, &token, &[]).await).await;
}

async fn forms_without_the_csrf_token_change_nothing(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |_| {}).await;
    alice(&app).await;
    let token = mailed_token(&app, &sink, USERNAME, 1).await;
    let before = snapshot(&app, USERNAME, &token).await;
    let browser = Browser::new(&app);
    assert_eq!(open_link(&app, &browser, &token).await.status(), 200);
    for csrf in [None, Some("x".repeat(43))] {
        let mut fields = vec![
            ("token", token.clone()),
            ("new", NEW_PASSWORD.to_owned()),
            ("confirm", NEW_PASSWORD.to_owned()),
        ];
        let mut ask = vec![("identifier", USERNAME.to_owned())];
        if let Some(c) = csrf {
            fields.push(("csrf", c.clone()));
            ask.push(("csrf", c));
        }
        let res = post_form(&browser.http, &app.url("/reset-password"), &fields).await;
        assert_eq!(res.status(), 400);
        let res = post_form(&browser.http, &app.url("/forgot-password"), &ask).await;
        assert_eq!(res.status(), 400);
    }
    assert_unchanged(&app, &before, &token).await;
    assert_eq!(reset_mails_to(&app, EMAIL).await, 1, "no second mail");
}
