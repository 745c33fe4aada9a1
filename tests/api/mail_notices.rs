//! Security notices by mail (issue 8, item 6): every change to how an account signs in,
//! and a sign-in from a device not seen before, mails the account's address; a refused
//! change and a sign-in from the known device mail nothing.

use crate::accounts_support::*;
use crate::helpers::{spawn_app_with_mail, Backend, TestApp};
use crate::mail_outbox::outbox_to;
use crate::oauth::*;
use crate::passkeys::{register, sign_in_with_passkey};
use crate::smtp::SmtpSink;
use crate::soft_authenticator::SoftAuthenticator;

crate::both_stores!(
    a_password_change_mails_a_notice_and_a_refused_one_none,
    totp_and_backup_code_changes_mail_notices,
    passkey_changes_mail_notices,
    a_sign_in_from_a_new_device_mails_a_notice_and_the_known_device_none,
);

const NEW_SIGN_IN: &str = "New sign-in to your account";

/// Waits until `to` has `seen + wanted.len()` messages and checks that the new ones are,
/// in some order, one per needle (matched against subject and text). Returns the count.
async fn expect_notices(sink: &SmtpSink, to: &str, seen: usize, wanted: &[&str]) -> usize {
    let all = sink.wait_for(to, seen + wanted.len()).await;
    assert_eq!(all.len(), seen + wanted.len(), "{all:#?}");
    let mut new: Vec<String> = all[seen..]
        .iter()
        .map(|m| format!("{}\n{}", m.subject(), m.text()))
        .collect();
    for needle in wanted {
        let at = new
            .iter()
            .position(|m| m.contains(needle))
            .unwrap_or_else(|| panic!("no notice with {needle:?} in {new:#?}"));
        new.remove(at);
    }
    seen + wanted.len()
}

async fn a_password_change_mails_a_notice_and_a_refused_one_none(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |_| {}).await;
    create_user(&app, "carol", &[]).await;
    let browser = Browser::new(&app);
    sign_in_ok(&app, &browser, "carol").await;
    let to = "carol@example.com";
    let seen = expect_notices(&sink, to, 0, &[NEW_SIGN_IN]).await;
    // Refused changes (a wrong current password, no CSRF token) mail nothing.
    let new = "an entirely new passphrase";
    let wrong = [
        ("current_password", "wrong"),
        ("new_password", new),
        ("confirm_password", new),
    ];
    let res = post_account(&app, &browser, "/account/password", &wrong).await;
    assert_eq!(res.status(), 401);
    let no_csrf = post_form(
        &browser.http,
        &app.url("/account/password"),
        &[
            ("current_password", PASSWORD),
            ("new_password", new),
            ("confirm_password", new),
        ],
    )
    .await;
    assert!(no_csrf.status().is_client_error(), "{}", no_csrf.status());
    assert_eq!(outbox_to(&app, to).await.len(), 1, "no notice queued");
    let fields = [
        ("current_password", PASSWORD),
        ("new_password", new),
        ("confirm_password", new),
    ];
    let res = post_account(&app, &browser, "/account/password", &fields).await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        outbox_to(&app, to).await.len(),
        2,
        "queued before the response"
    );
    expect_notices(
        &sink,
        to,
        seen,
        &["The password of your account was changed."],
    )
    .await;
    let got = sink.nth(to, 2).await;
    assert_eq!(got.subject(), "Security notice for your account");
    assert!(got.part("text/html").contains("was changed"));
    assert!(!got.text().contains(new), "never the password");
}

async fn totp_and_backup_code_changes_mail_notices(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |_| {}).await;
    let to = "dave@example.com";
    let (browser, enrolled) = user_with_totp(&app, "dave").await;
    let seen = expect_notices(
        &sink,
        to,
        0,
        &[NEW_SIGN_IN, "An authenticator app (TOTP) was added"],
    )
    .await;
    let res = post_account(&app, &browser, "/account/backup-codes", &[]).await;
    assert_eq!(res.status(), 200);
    let seen = expect_notices(&sink, to, seen, &["New backup codes were generated"]).await;
    // Removing TOTP needs it presented recently: a sign-in with it, in a new browser.
    let fresh = sign_in_with_totp(&app, "dave", &enrolled.secret).await;
    let res = post_account(&app, &fresh, "/account/totp/remove", &[]).await;
    assert_eq!(res.status(), 303);
    expect_notices(
        &sink,
        to,
        seen,
        &[NEW_SIGN_IN, "(TOTP) and its backup codes were removed"],
    )
    .await;
    assert!(sink.messages().iter().all(|m| m.to == [to]), "only to dave");
}

/// An app whose issuer is `http://localhost:{port}` (WebAuthn needs a domain name).
async fn passkey_app_with_mail(backend: Backend) -> (TestApp, SmtpSink) {
    let (mut app, sink) = spawn_app_with_mail(backend, |s| {
        s.issuer = s.issuer.replace("127.0.0.1", "localhost");
    })
    .await;
    app.address = format!("http://localhost:{}", app.port);
    (app, sink)
}

async fn passkey_changes_mail_notices(backend: Backend) {
    let (app, sink) = passkey_app_with_mail(backend).await;
    let to = "carol@example.com";
    create_user(&app, "carol", &[]).await;
    let browser = Browser::new(&app);
    sign_in_ok(&app, &browser, "carol").await;
    let seen = expect_notices(&sink, to, 0, &[NEW_SIGN_IN]).await;
    let mut soft = SoftAuthenticator::new();
    register(&app, &browser, &mut soft, "Laptop").await;
    let seen = expect_notices(&sink, to, seen, &["A passkey named \"Laptop\" was added"]).await;
    // A passkey sign-in from a new browser is a new device too.
    let fresh = sign_in_with_passkey(&app, &mut soft).await;
    let seen = expect_notices(&sink, to, seen, &[NEW_SIGN_IN]).await;
    let page = account_page(&app, &fresh).await;
    let start = page.find("name=\"id\" value=\"").unwrap() + "name=\"id\" value=\"".len();
    let id = page[start..start + page[start..].find('"').unwrap()].to_owned();
    let res = post_account(&app, &fresh, "/account/passkeys/delete", &[("id", &id)]).await;
    assert_eq!(res.status(), 303);
    expect_notices(&sink, to, seen, &["A passkey was removed"]).await;
}

async fn a_sign_in_from_a_new_device_mails_a_notice_and_the_known_device_none(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |_| {}).await;
    create_user(&app, "erin", &[]).await;
    let to = "erin@example.com";
    let browser = Browser::new(&app);
    sign_in_ok(&app, &browser, "erin").await;
    assert_eq!(outbox_to(&app, to).await.len(), 1);
    let got = sink.nth(to, 1).await;
    assert_eq!(got.subject(), NEW_SIGN_IN);
    assert!(got.text().contains("Address: 127.0.0.1"), "{}", got.text());
    assert!(got
        .text()
        .contains(&format!("{}/forgot-password", app.address)));
    // The same browser again: it carries the known-device cookie; no notice is queued.
    assert!(browser.cookie("latchkey_device").is_some());
    sign_in_ok(&app, &browser, "erin").await;
    assert_eq!(
        outbox_to(&app, to).await.len(),
        1,
        "none from the known device"
    );
    // A wrong password from a new browser queues nothing either.
    let other = Browser::with_local_address(&app, "127.0.0.2");
    let res = sign_in(&app, &other, "erin", "wrong password").await;
    assert_eq!(res.status(), 401);
    assert_eq!(outbox_to(&app, to).await.len(), 1);
    // Another browser, from another address, signing in: a second notice naming it.
    sign_in_ok(&app, &other, "erin").await;
    assert_eq!(outbox_to(&app, to).await.len(), 2);
    let got = sink.nth(to, 2).await;
    assert!(got.text().contains("Address: 127.0.0.2"), "{}", got.text());
    assert_eq!(sink.messages_to(to).len(), 2);
}
