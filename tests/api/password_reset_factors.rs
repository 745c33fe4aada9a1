//! A reset never bypasses a second factor: a user with TOTP, backup codes or a passkey
//! presents one on the reset form before the new password takes effect. A missing, wrong,
//! malformed or throttled factor changes nothing and leaves the link usable.

use latchkey::clock::Clock;
use serde_json::Value;

use crate::accounts_support::*;
use crate::helpers::{spawn_app_with_mail, Backend, TestApp};
use crate::oauth::*;
use crate::reset_support::*;
use crate::smtp::SmtpSink;
use crate::soft_authenticator::SoftAuthenticator;

crate::both_stores!(
    a_reset_needs_the_totp_code_when_the_user_has_one,
    a_backup_code_serves_instead_of_the_totp_code,
    code_guessing_on_the_reset_form_is_throttled,
    a_passkey_serves_as_the_second_factor_of_a_reset,
);

/// The reset form asks for the factor and offers MFA recovery with the same token.
async fn assert_factor_form(app: &TestApp, token: &str, totp: bool) {
    let page = open_link(app, &Browser::new(app), token).await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert_eq!(page.contains("name=\"totp\""), totp, "{page}");
    let recovery = format!("href=\"/mfa-recovery/start?token={token}\"");
    assert!(page.contains(&recovery), "{page}");
    assert!(page.contains("Lost your second factor?"), "{page}");
}

async fn a_reset_needs_the_totp_code_when_the_user_has_one(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |_| {}).await;
    let (_, enrolled) = user_with_totp(&app, "carol").await;
    let token = mailed_token(&app, &sink, "carol", 1).await;
    assert_factor_form(&app, &token, true).await;
    let before = snapshot(&app, "carol", &token).await;
    let browser = Browser::new(&app);
    // No code, a malformed code, a wrong code: refused, nothing changed.
    let res = reset_with(&app, &browser, &token, &[]).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("two-step verification"));
    let res = reset_with(&app, &browser, &token, &[("totp", "12ab56")]).await;
    assert_eq!(res.status(), 400);
    let wrong = code(&enrolled.secret, app.clock.now() - 86_400);
    let res = reset_with(&app, &browser, &token, &[("totp", wrong.as_str())]).await;
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("That code is not right"));
    assert_unchanged(&app, &before, &token).await;
    // The right code: done, and the new password still asks for the second factor.
    let right = code_now(&app, &enrolled.secret);
    let res = reset_with(&app, &browser, &token, &[("totp", right.as_str())]).await;
    assert_done(res).await;
    let res = sign_in(&app, &Browser::new(&app), "carol", NEW_PASSWORD).await;
    assert_mfa_page(res).await;
    // The code's time step is spent: the same code cannot be replayed on a new link.
    let again = mailed_token(&app, &sink, "carol", 2).await;
    let before = snapshot(&app, "carol", &again).await;
    let res = reset_with(&app, &browser, &again, &[("totp", right.as_str())]).await;
    assert_eq!(res.status(), 401);
    assert_unchanged(&app, &before, &again).await;
}

async fn a_backup_code_serves_instead_of_the_totp_code(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |_| {}).await;
    let (_, enrolled) = user_with_totp(&app, "carol").await;
    let carol = user(&app, "carol").await;
    let store = app.state.store.as_ref();
    assert_eq!(
        store.backup_codes_left(carol.id.as_str()).await.unwrap(),
        10
    );
    let token = mailed_token(&app, &sink, "carol", 1).await;
    let browser = Browser::new(&app);
    let backup = enrolled.backup_codes[0].as_str();
    let res = reset_with(&app, &browser, &token, &[("backup_code", backup)]).await;
    assert_done(res).await;
    assert_eq!(store.backup_codes_left(carol.id.as_str()).await.unwrap(), 9);
    // A spent backup code does not serve twice.
    let again = mailed_token(&app, &sink, "carol", 2).await;
    let before = snapshot(&app, "carol", &again).await;
    let res = reset_with(&app, &browser, &again, &[("backup_code", backup)]).await;
    assert_eq!(res.status(), 401);
    assert_unchanged(&app, &before, &again).await;
}

async fn code_guessing_on_the_reset_form_is_throttled(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |_| {}).await;
    let (_, enrolled) = user_with_totp(&app, "carol").await;
    let token = mailed_token(&app, &sink, "carol", 1).await;
    let before = snapshot(&app, "carol", &token).await;
    let browser = Browser::new(&app);
    let max = app.state.settings.login.max_code_attempts;
    for i in 0..max {
        let wrong = code(
            &enrolled.secret,
            app.clock.now() - 86_400 - i64::from(i) * 30,
        );
        let res = reset_with(&app, &browser, &token, &[("totp", wrong.as_str())]).await;
        assert_eq!(res.status(), 401, "attempt {i}");
    }
    // Even the right code waits now; nothing changed, the link still works afterwards.
    let right = code_now(&app, &enrolled.secret);
    let res = reset_with(&app, &browser, &token, &[("totp", right.as_str())]).await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    assert_unchanged(&app, &before, &token).await;
    app.clock
        .advance(i64::try_from(app.state.settings.login.code_window_secs).unwrap() + 1);
    let right = code_now(&app, &enrolled.secret);
    let res = reset_with(&app, &browser, &token, &[("totp", right.as_str())]).await;
    assert_done(res).await;
}

/// An app whose issuer is `http://localhost:{port}` (WebAuthn needs a domain name) and
/// that mails through the SMTP listener.
async fn passkey_mail_app(backend: Backend) -> (TestApp, SmtpSink) {
    let (mut app, sink) = spawn_app_with_mail(backend, |s| {
        s.issuer = s.issuer.replace("127.0.0.1", "localhost");
    })
    .await;
    app.address = format!("http://localhost:{}", app.port);
    (app, sink)
}

/// Registers a passkey for the signed-in `browser` from the account page.
async fn register(app: &TestApp, browser: &Browser, soft: &mut SoftAuthenticator) {
    let res = post_account(
        app,
        browser,
        "/account/passkeys/start",
        &[("name", "Phone")],
    )
    .await;
    assert_eq!(res.status(), 200);
    let options: Value = res.json().await.unwrap();
    let credential = soft.create(&options, &app.address).to_string();
    let fields = [("credential", credential.as_str())];
    let res = post_account(app, browser, "/account/passkeys", &fields).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
}

/// Starts the reset's passkey ceremony in `browser`; the options.
async fn start_passkey(app: &TestApp, browser: &Browser, token: &str) -> Value {
    let page = open_link(app, browser, token).await.text().await.unwrap();
    assert!(page.contains("id=\"passkey-reset\""), "{page}");
    assert!(page.contains("/static/passkey.js"), "{page}");
    let csrf = csrf_of(&page, "/reset-password");
    let res = post_form(
        &browser.http,
        &app.url("/reset-password/passkey/start"),
        &[("csrf", csrf.as_str()), ("token", token)],
    )
    .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn a_passkey_serves_as_the_second_factor_of_a_reset(backend: Backend) {
    let (app, sink) = passkey_mail_app(backend).await;
    create_user(&app, "erin", &[]).await;
    let browser = Browser::new(&app);
    sign_in_ok(&app, &browser, "erin").await;
    let mut soft = SoftAuthenticator::new();
    register(&app, &browser, &mut soft).await;
    let token = mailed_token(&app, &sink, "erin", 1).await;
    assert_factor_form(&app, &token, false).await;
    let before = snapshot(&app, "erin", &token).await;
    let reset = Browser::new(&app);
    // Without the passkey: refused.
    let res = reset_with(&app, &reset, &token, &[]).await;
    assert_eq!(res.status(), 400);
    // An assertion for a ceremony another browser started: refused, nothing changed.
    let options = start_passkey(&app, &Browser::new(&app), &token).await;
    let foreign = soft.get(&options, &app.address).to_string();
    let res = reset_with(&app, &reset, &token, &[("credential", foreign.as_str())]).await;
    assert_eq!(res.status(), 401);
    assert_unchanged(&app, &before, &token).await;
    // This browser's ceremony: done.
    let options = start_passkey(&app, &reset, &token).await;
    let assertion = soft.get(&options, &app.address).to_string();
    let res = reset_with(&app, &reset, &token, &[("credential", assertion.as_str())]).await;
    assert_done(res).await;
    let res = sign_in(&app, &Browser::new(&app), "erin", NEW_PASSWORD).await;
    assert_mfa_page(res).await;
}
