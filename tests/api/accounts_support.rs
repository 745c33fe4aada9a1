//! Helpers for the account, MFA, throttle and two-node tests: signing in through the
//! account area, enrolling TOTP through the pages, computing codes, posting account forms.

#![allow(dead_code)]

use latchkey::authn::totp::{code_at, TotpSecret};
use latchkey::clock::Clock;
use reqwest::Response;

use crate::helpers::TestApp;
use crate::oauth::*;

/// The TOTP secret an enrolment showed, and the backup codes it gave.
pub struct Enrolled {
    pub secret: TotpSecret,
    pub backup_codes: Vec<String>,
}

/// The TOTP code for `at` (unix seconds).
pub fn code(secret: &TotpSecret, at: i64) -> String {
    code_at(secret, at).expect("totp code")
}

/// The code for the app clock's current time.
pub fn code_now(app: &TestApp, secret: &TotpSecret) -> String {
    code(secret, app.clock.now())
}

/// The CSRF token of the form posting to `action` on `page`.
pub fn csrf_of(page: &str, action: &str) -> String {
    hidden(page, action, "csrf").unwrap_or_else(|| panic!("no csrf for {action} in {page}"))
}

/// Signs in through the account area's own login page (`GET /login`, no OAuth request).
pub async fn sign_in(app: &TestApp, browser: &Browser, username: &str, password: &str) -> Response {
    let page = browser
        .http
        .get(app.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&page, "/login");
    post_form(
        &browser.http,
        &app.url("/login"),
        &[
            ("username", username),
            ("password", password),
            ("csrf", csrf.as_str()),
            ("request", ""),
        ],
    )
    .await
}

/// Signs in a user without a second factor; asserts it lands on the account page.
pub async fn sign_in_ok(app: &TestApp, browser: &Browser, username: &str) {
    let res = sign_in(app, browser, username, PASSWORD).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    assert_eq!(
        res.headers()["location"].to_str().unwrap(),
        "/account",
        "a sign-in to the account area goes to /account"
    );
}

/// Posts a code on the second-factor page `page`.
pub async fn submit_mfa(
    app: &TestApp,
    browser: &Browser,
    page: &str,
    method: &str,
    code: &str,
) -> Response {
    let csrf = csrf_of(page, "/login/mfa");
    post_form(
        &browser.http,
        &app.url("/login/mfa"),
        &[("method", method), ("code", code), ("csrf", csrf.as_str())],
    )
    .await
}

/// Asserts `res` is the second-factor page (no password field) and returns it.
pub async fn assert_mfa_page(res: Response) -> String {
    let status = res.status();
    let page = res.text().await.unwrap();
    assert!(status == 200 || status == 401, "{status}: {page}");
    assert!(page.contains("action=\"/login/mfa\""), "{page}");
    assert!(
        !page.contains("name=\"password\""),
        "no password prompt: {page}"
    );
    page
}

/// GET /account in `browser`.
pub async fn account_page(app: &TestApp, browser: &Browser) -> String {
    let res = browser.http.get(app.url("/account")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    assert!(
        page.contains("action=\"/account/password\""),
        "not the account page: {page}"
    );
    page
}

/// Posts an account form (`path`, with the session-bound CSRF token from the account page).
pub async fn post_account(
    app: &TestApp,
    browser: &Browser,
    path: &str,
    fields: &[(&str, &str)],
) -> Response {
    let page = account_page(app, browser).await;
    let csrf = csrf_of(&page, "/account/password");
    let mut all: Vec<(&str, &str)> = fields.to_vec();
    all.push(("csrf", csrf.as_str()));
    post_form(&browser.http, &app.url(path), &all).await
}

/// The base32 secret of a TOTP setup page, from its `otpauth://` link.
pub fn secret_of(page: &str) -> TotpSecret {
    let start = page
        .find("otpauth:")
        .unwrap_or_else(|| panic!("otpauth link in {page}"));
    let uri = unescape(&page[start..start + page[start..].find('"').unwrap()]);
    let url = url::Url::parse(&uri).unwrap();
    let b32 = query(&url, "secret").expect("secret parameter");
    let bytes = totp_rs::Secret::try_from_base32(&b32)
        .expect("base32")
        .as_bytes()
        .to_vec();
    TotpSecret::from_bytes(bytes).unwrap()
}

/// The backup codes a page shows: every `xxxxx-xxxxx` text between tags.
pub fn codes_of(page: &str) -> Vec<String> {
    page.split(['<', '>'])
        .map(str::trim)
        .filter(|t| {
            t.len() == 11
                && t.as_bytes()[5] == b'-'
                && t.bytes().all(|b| b == b'-' || b.is_ascii_alphanumeric())
        })
        .map(str::to_owned)
        .collect()
}

/// Starts TOTP enrolment from the account page (a POST with its CSRF token).
pub async fn start_totp(app: &TestApp, browser: &Browser) -> Response {
    post_account(app, browser, "/account/totp/start", &[]).await
}

/// Enrols TOTP for the signed-in `browser` (recent sign-in needed) and moves the app
/// clock one step on, so the enrolment's code is not the next login's.
pub async fn enrol_totp(app: &TestApp, browser: &Browser) -> Enrolled {
    let res = start_totp(app, browser).await;
    assert_eq!(res.status(), 200);
    let setup = res.text().await.unwrap();
    let secret = secret_of(&setup);
    let csrf = csrf_of(&setup, "/account/totp");
    let code = code_now(app, &secret);
    let res = post_form(
        &browser.http,
        &app.url("/account/totp"),
        &[("code", code.as_str()), ("csrf", csrf.as_str())],
    )
    .await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    let backup_codes = codes_of(&page);
    assert_eq!(backup_codes.len(), 10, "{page}");
    app.clock.advance(30);
    Enrolled {
        secret,
        backup_codes,
    }
}

/// A user with TOTP: created, signed in once, enrolled; the browser used is returned.
pub async fn user_with_totp(app: &TestApp, username: &str) -> (Browser, Enrolled) {
    create_user(app, username, &[]).await;
    let browser = Browser::new(app);
    sign_in_ok(app, &browser, username).await;
    let enrolled = enrol_totp(app, &browser).await;
    (browser, enrolled)
}

/// Password then TOTP through the account login page in a new browser; asserts success.
pub async fn sign_in_with_totp(app: &TestApp, username: &str, secret: &TotpSecret) -> Browser {
    let browser = Browser::new(app);
    let res = sign_in(app, &browser, username, PASSWORD).await;
    let page = assert_mfa_page(res).await;
    let res = submit_mfa(app, &browser, &page, "totp", &code_now(app, secret)).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    browser
}

/// The value of the named cookie a response sets.
pub fn cookie_set(res: &Response, name: &str) -> Option<String> {
    set_cookie(res.headers(), name)
}
