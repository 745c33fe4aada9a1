//! Helpers for the password reset tests: asking for a link through the page, reading the
//! token from the mail, posting the reset form, checking that nothing changed.

#![allow(dead_code)]

use latchkey::crypto::token::hash_token;
use latchkey::domain::{AccountToken, User, Username};
use reqwest::Response;

use crate::accounts_support::*;
use crate::helpers::TestApp;
use crate::oauth::*;
use crate::smtp::SmtpSink;

pub const NEW_PASSWORD: &str = "a brand new passphrase";

/// Posts the forgot-password form from `browser` (its CSRF token from the page).
pub async fn request_reset(app: &TestApp, browser: &Browser, identifier: &str) -> Response {
    let page = browser
        .http
        .get(app.url("/forgot-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csrf = csrf_of(&page.text().await.unwrap(), "/forgot-password");
    post_form(
        &browser.http,
        &app.url("/forgot-password"),
        &[("identifier", identifier), ("csrf", csrf.as_str())],
    )
    .await
}

/// Requests a link for `username` and returns the token of the `n`-th reset mail to them
/// (notices may arrive in between).
pub async fn mailed_token(app: &TestApp, sink: &SmtpSink, username: &str, n: usize) -> String {
    let res = request_reset(app, &Browser::new(app), username).await;
    assert_eq!(res.status(), 200);
    nth_reset_token(app, sink, &format!("{username}@example.com"), n).await
}

/// The token of the `n`-th reset mail to `to`, waiting for it.
pub async fn nth_reset_token(app: &TestApp, sink: &SmtpSink, to: &str, n: usize) -> String {
    let mut total = n;
    loop {
        let got = sink.wait_for(to, total).await;
        let resets: Vec<_> = got
            .iter()
            .filter(|m| m.subject() == "Reset your password")
            .collect();
        if let Some(m) = resets.get(n - 1) {
            return m.token(&app.url("/reset-password"));
        }
        total = got.len() + 1;
    }
}

/// GET the link in `browser`.
pub async fn open_link(app: &TestApp, browser: &Browser, token: &str) -> Response {
    let url = format!("{}?token={token}", app.url("/reset-password"));
    browser.http.get(url).send().await.unwrap()
}

/// Opens the link and posts the reset form with `extra` fields (a second factor).
pub async fn reset_with(
    app: &TestApp,
    browser: &Browser,
    token: &str,
    extra: &[(&str, &str)],
) -> Response {
    let page = open_link(app, browser, token).await;
    assert_eq!(page.status(), 200, "the link opens the form");
    let csrf = csrf_of(&page.text().await.unwrap(), "/reset-password");
    let mut fields = vec![
        ("token", token),
        ("new", NEW_PASSWORD),
        ("confirm", NEW_PASSWORD),
        ("csrf", csrf.as_str()),
    ];
    fields.extend_from_slice(extra);
    post_form(&browser.http, &app.url("/reset-password"), &fields).await
}

pub async fn assert_done(res: Response) {
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    assert!(page.contains("Your password was reset"), "{page}");
}

pub async fn assert_invalid(res: Response) {
    assert_eq!(res.status(), 400);
    let page = res.text().await.unwrap();
    assert!(page.contains("This link cannot be used"), "{page}");
    assert!(page.contains("href=\"/forgot-password\""), "{page}");
}

pub async fn user(app: &TestApp, username: &str) -> User {
    let name = Username::parse(username).unwrap();
    app.state
        .store
        .get_user_by_username(&name)
        .await
        .unwrap()
        .unwrap()
}

pub async fn stored_token(app: &TestApp, token: &str) -> AccountToken {
    let hash = hash_token(token);
    app.state
        .store
        .get_account_token(&hash)
        .await
        .unwrap()
        .expect("stored token")
}

/// The password hash, epoch and token row before something that must change nothing.
pub async fn snapshot(app: &TestApp, username: &str, token: &str) -> (User, AccountToken) {
    (user(app, username).await, stored_token(app, token).await)
}

pub async fn assert_unchanged(app: &TestApp, before: &(User, AccountToken), token: &str) {
    let now = snapshot(app, before.0.username.as_str(), token).await;
    assert_eq!(now.0.password_hash, before.0.password_hash, "password kept");
    assert_eq!(now.0.credentials_epoch, before.0.credentials_epoch);
    assert_eq!(now.1, before.1, "token untouched");
}

/// Reset mails queued to `to`.
pub async fn reset_mails_to(app: &TestApp, to: &str) -> usize {
    let all = app.state.store.list_mail(false, 1000).await.unwrap();
    all.iter()
        .filter(|m| m.kind == "password_reset" && m.recipient == to)
        .count()
}

pub async fn signs_in_with(app: &TestApp, username: &str, password: &str) -> bool {
    let res = sign_in(app, &Browser::new(app), username, password).await;
    res.status() == 303
}
