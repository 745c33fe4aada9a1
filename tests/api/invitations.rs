//! Invitations (issue 8, item 5): `latchkey user invite` creates an account without a
//! password and mails a single-use link where the user sets one; the address it went to
//! becomes verified. Every mail is read from the in-process SMTP listener.

use latchkey::clock::{Clock, SystemClock};
use latchkey::crypto::token::hash_token;
use latchkey::domain::{AccountToken, User, Username};
use latchkey::service::invitations::{self, Invited, NewInvitation};
use reqwest::Response;

use crate::accounts_support::*;
use crate::helpers::{spawn_app_with_mail, Backend, TestApp};
use crate::oauth::*;

crate::both_stores!(
    an_invitation_sets_a_password_once,
    an_invitation_expires,
    an_invited_user_cannot_sign_in_before_accepting,
    email_verified_comes_from_the_accepted_invitation,
    the_cli_invites_and_a_new_invitation_voids_the_old_link,
    bad_invitation_links_get_a_clear_page_and_change_nothing,
    a_disabled_users_invitation_changes_nothing,
    the_store_spends_a_link_only_together_with_its_change,
);

/// Invites `username` at `{username}@example.com`, as the CLI does.
pub async fn invite(app: &TestApp, username: &str) -> Invited {
    invitations::invite(
        app.state.store.as_ref(),
        &app.state.mailer,
        &app.state.settings.accounts,
        app.clock.now(),
        NewInvitation {
            username: username.into(),
            email: Some(format!("{username}@example.com")),
            ..NewInvitation::default()
        },
    )
    .await
    .expect("invite")
}

/// GET a mailed link in `browser`.
pub async fn open(browser: &Browser, link: &str) -> Response {
    browser.http.get(link).send().await.unwrap()
}

/// Posts the form to `action` on `page` (its hidden csrf and token) with `fields`.
pub async fn submit(
    app: &TestApp,
    browser: &Browser,
    page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> Response {
    let mut all: Vec<(String, String)> = hidden_inputs(form_html(page, action).expect("form"));
    all.extend(
        fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    post_form(&browser.http, &app.url(action), &all).await
}

/// Asserts a refusal page: `status`, HTML, saying the link cannot be used.
pub async fn assert_refused(res: Response, status: u16) -> String {
    let got = res.status().as_u16();
    let page = res.text().await.unwrap();
    assert_eq!(got, status, "{page}");
    assert!(page.contains("cannot be used"), "{page}");
    page
}

/// The stored token behind a link's `token`.
pub async fn stored_token(app: &TestApp, token: &str) -> AccountToken {
    app.state
        .store
        .get_account_token(&hash_token(token))
        .await
        .unwrap()
        .expect("stored token")
}

pub async fn user(app: &TestApp, username: &str) -> User {
    app.state
        .store
        .get_user_by_username(&Username::parse(username).unwrap())
        .await
        .unwrap()
        .expect("user")
}

/// Accepts the invitation `link` with `password` in a new browser; returns the response.
async fn accept(app: &TestApp, link: &str, password: &str) -> Response {
    let browser = Browser::new(app);
    let res = open(&browser, link).await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    let fields = [("password", password), ("confirm_password", password)];
    submit(app, &browser, &page, "/invitation", &fields).await
}

fn invitation_prefix(app: &TestApp) -> String {
    format!("{}/invitation?token=", app.address)
}

async fn an_invitation_sets_a_password_once(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |_| {}).await;
    invite(&app, "bob").await;
    let mail = sink.nth("bob@example.com", 1).await;
    assert!(mail.subject().contains("invited"), "{}", mail.subject());
    assert!(mail.text().contains("72 hours"), "{}", mail.text());
    let link = mail.link(&invitation_prefix(&app));
    let token = mail.token(&invitation_prefix(&app));
    assert!(mail.part("text/html").contains(&token));

    let browser = Browser::new(&app);
    let page = open(&browser, &link).await.text().await.unwrap();
    assert!(page.contains("Welcome, bob"), "{page}");
    // Two different copies: the form again, the link still good.
    let res = submit(
        &app,
        &browser,
        &page,
        "/invitation",
        &[
            ("password", PASSWORD),
            ("confirm_password", "something else"),
        ],
    )
    .await;
    assert_eq!(res.status(), 400);
    assert!(user(&app, "bob").await.password_hash.is_none());
    let res = submit(
        &app,
        &browser,
        &page,
        "/invitation",
        &[("password", PASSWORD), ("confirm_password", PASSWORD)],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("Your account is ready"));
    let accepted = user(&app, "bob").await;
    assert!(accepted.password_hash.is_some());
    sign_in_ok(&app, &Browser::new(&app), "bob").await;

    // The same form again (a replay of the POST) and the link itself: a clear page,
    // nothing changed.
    let other = "a different password";
    let res = submit(
        &app,
        &browser,
        &page,
        "/invitation",
        &[("password", other), ("confirm_password", other)],
    )
    .await;
    assert_refused(res, 410).await;
    assert_refused(open(&browser, &link).await, 410).await;
    assert_eq!(user(&app, "bob").await, accepted);
    assert_eq!(
        sign_in(&app, &Browser::new(&app), "bob", other)
            .await
            .status(),
        401
    );
}

async fn an_invitation_expires(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |_| {}).await;
    invite(&app, "bob").await;
    let link = sink
        .nth("bob@example.com", 1)
        .await
        .link(&invitation_prefix(&app));
    let browser = Browser::new(&app);
    let page = open(&browser, &link).await.text().await.unwrap();
    app.clock.advance(72 * 3600);
    let page_now = assert_refused(open(&browser, &link).await, 410).await;
    assert!(page_now.contains("expired"), "{page_now}");
    let fields = [("password", PASSWORD), ("confirm_password", PASSWORD)];
    assert_refused(
        submit(&app, &browser, &page, "/invitation", &fields).await,
        410,
    )
    .await;
    let bob = user(&app, "bob").await;
    assert!(bob.password_hash.is_none());
    assert!(!bob.email_verified);
}

async fn an_invited_user_cannot_sign_in_before_accepting(backend: Backend) {
    let (app, _sink) = spawn_app_with_mail(backend, |_| {}).await;
    invite(&app, "bob").await;
    create_user(&app, "carol", &[]).await;
    let passwords = &app.state.passwords;
    // A user without a password answers like a wrong password, after the same argon2
    // work (the dummy hash): neither the status, the page nor the time tells them apart.
    let mut answers = Vec::new();
    for name in ["bob", "carol"] {
        let browser = Browser::new(&app);
        let before = passwords.verifications();
        let res = sign_in(&app, &browser, name, "any password at all").await;
        assert_eq!(passwords.verifications(), before + 1, "{name}");
        let status = res.status();
        let page = res.text().await.unwrap();
        let csrf = csrf_of(&page, "/login");
        answers.push((status, page.replace(&csrf, "CSRF").replace(name, "NAME")));
    }
    assert_eq!(answers[0].0, 401);
    assert_eq!(answers[0], answers[1]);
    // Nor with an empty password.
    let res = sign_in(&app, &Browser::new(&app), "bob", "").await;
    assert_eq!(res.status(), 401);
}

async fn email_verified_comes_from_the_accepted_invitation(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |_| {}).await;
    let client = confidential_client(&app).await;
    // A user an admin created with a password keeps an unverified address.
    create_user(&app, "carol", &[]).await;
    let (_, _, tokens) = full_flow(&app, &client, "carol", "openid email").await;
    assert_eq!(claims(s(&tokens, "id_token"))["email_verified"], false);

    invite(&app, "bob").await;
    assert!(!user(&app, "bob").await.email_verified);
    let link = sink
        .nth("bob@example.com", 1)
        .await
        .link(&invitation_prefix(&app));
    assert_eq!(accept(&app, &link, PASSWORD).await.status(), 200);
    let (_, _, tokens) = full_flow(&app, &client, "bob", "openid email").await;
    let id = claims(s(&tokens, "id_token"));
    assert_eq!(id["email"], "bob@example.com");
    assert_eq!(id["email_verified"], true);
    let info: serde_json::Value = userinfo(&app, s(&tokens, "access_token"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["email_verified"], true, "{info}");
}

/// The CLI stamps its rows with the wall clock; the app's worker runs on its manual clock,
/// which must reach that time before the message is due.
fn catch_up(app: &TestApp) {
    let lag = SystemClock.now() - app.clock.now();
    if lag >= 0 {
        app.clock.advance(lag + 1);
    }
}

async fn the_cli_invites_and_a_new_invitation_voids_the_old_link(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |_| {}).await;
    let out = app.cli(&[
        "user",
        "invite",
        "--username",
        "dave",
        "--email",
        "dave@example.com",
        "--role",
        "staff",
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    let dave = user(&app, "dave").await;
    assert!(
        out.stdout
            .contains(&format!("invited dave (sub {})", dave.id)),
        "{}",
        out.stdout
    );
    assert!(dave.password_hash.is_none());
    assert_eq!(dave.roles[0].as_str(), "staff");
    catch_up(&app);
    let first = sink.nth("dave@example.com", 1).await;
    let old_token = first.token(&invitation_prefix(&app));
    assert!(!out.stdout.contains(&old_token) && !out.stderr.contains(&old_token));

    // Running it again for a user still invited: a new link, the old one void.
    let out = app.cli(&["user", "invite", "--username", "dave", "--resend"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stdout.contains("new invitation for dave"),
        "{}",
        out.stdout
    );
    catch_up(&app);
    let second = sink.nth("dave@example.com", 2).await;
    let new_link = second.link(&invitation_prefix(&app));
    assert!(stored_token(&app, &old_token).await.used_at.is_some());
    let browser = Browser::new(&app);
    assert_refused(
        open(&browser, &first.link(&invitation_prefix(&app))).await,
        410,
    )
    .await;
    assert_eq!(accept(&app, &new_link, PASSWORD).await.status(), 200);

    // Once the user has a password there is nothing to invite.
    let out = app.cli(&["user", "invite", "--username", "dave", "--resend"]);
    assert!(!out.status.success());
    assert!(out.stderr.contains("has a password"), "{}", out.stderr);
    let out = app.cli(&["user", "invite", "--username", "nobody", "--resend"]);
    assert!(!out.status.success(), "{}", out.stdout);
}

async fn bad_invitation_links_get_a_clear_page_and_change_nothing(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |_| {}).await;
    invite(&app, "bob").await;
    let link = sink
        .nth("bob@example.com", 1)
        .await
        .link(&invitation_prefix(&app));
    let token = link.rsplit('=').next().unwrap().to_owned();
    let browser = Browser::new(&app);
    let page = open(&browser, &link).await.text().await.unwrap();

    // Tampered: one character changed, cut short, or missing.
    let flipped = if token.starts_with('A') { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", invitation_prefix(&app), &token[1..]);
    assert_refused(open(&browser, &tampered).await, 404).await;
    assert_refused(open(&browser, &link[..link.len() - 1]).await, 404).await;
    assert_refused(open(&browser, &app.url("/invitation")).await, 404).await;
    // A token for something else (a password reset) is unknown here.
    let bob = user(&app, "bob").await;
    let reset = foreign_token(&app, &bob).await;
    let foreign = format!("{}{reset}", invitation_prefix(&app));
    assert_refused(open(&browser, &foreign).await, 404).await;
    let page_with_reset = page.replace(&token, &reset);
    let fields = [("password", PASSWORD), ("confirm_password", PASSWORD)];
    let res = submit(&app, &browser, &page_with_reset, "/invitation", &fields).await;
    assert_refused(res, 404).await;
    assert!(stored_token(&app, &reset).await.used_at.is_none());
    // No CSRF token (or another browser's): refused before anything is looked at.
    let res = post_form(
        &Browser::new(&app).http,
        &app.url("/invitation"),
        &[
            ("token", token.as_str()),
            ("password", PASSWORD),
            ("confirm_password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(res.status(), 400);
    // A password the policy refuses: the form again.
    let short = [("password", "short"), ("confirm_password", "short")];
    let res = submit(&app, &browser, &page, "/invitation", &short).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("at least 8 characters"));

    assert_eq!(user(&app, "bob").await, bob);
    assert!(stored_token(&app, &token).await.used_at.is_none());
    // The genuine link still works after all that.
    let res = submit(&app, &browser, &page, "/invitation", &fields).await;
    assert_eq!(res.status(), 200);
}

/// A live token of another purpose for `user`, as another part of the server would issue.
pub async fn foreign_token(app: &TestApp, user: &User) -> String {
    let token = latchkey::crypto::token::random_token().unwrap();
    let now = app.clock.now();
    let stored = AccountToken {
        token_hash: hash_token(&token),
        purpose: latchkey::domain::TokenPurpose::PasswordReset,
        user_id: user.id.as_str().to_owned(),
        email: Some(user.email.as_str().to_owned()),
        credentials_epoch: user.credentials_epoch,
        created_at: now,
        expires_at: now + 3600,
        used_at: None,
    };
    let ctx = minijinja::context! { username => "x", what => "x" };
    let mail = app
        .state
        .mailer
        .compose("security_notice", "nobody@example.com", ctx, now)
        .unwrap();
    app.state
        .store
        .issue_account_token(&stored, &mail)
        .await
        .unwrap();
    token
}

async fn a_disabled_users_invitation_changes_nothing(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |_| {}).await;
    invite(&app, "bob").await;
    let link = sink
        .nth("bob@example.com", 1)
        .await
        .link(&invitation_prefix(&app));
    let token = link.rsplit('=').next().unwrap().to_owned();
    let browser = Browser::new(&app);
    let page = open(&browser, &link).await.text().await.unwrap();
    disable_user(&app, "bob").await;
    let bob = user(&app, "bob").await;
    assert_refused(open(&browser, &link).await, 403).await;
    let fields = [("password", PASSWORD), ("confirm_password", PASSWORD)];
    let res = submit(&app, &browser, &page, "/invitation", &fields).await;
    let page = assert_refused(res, 403).await;
    assert!(page.contains("disabled"), "{page}");
    assert_eq!(user(&app, "bob").await, bob);
    assert!(bob.password_hash.is_none());
    assert!(stored_token(&app, &token).await.used_at.is_none());
}

/// The store's own guard, under the service's checks: a link whose change no longer
/// applies when the transaction runs stays unspent and changes nothing.
async fn the_store_spends_a_link_only_together_with_its_change(backend: Backend) {
    use latchkey::domain::TokenPurpose;
    use latchkey::store::StoreError;
    let (app, sink) = spawn_app_with_mail(backend, |_| {}).await;
    let store = app.state.store.as_ref();
    let now = app.clock.now();
    invite(&app, "bob").await;
    let token = sink
        .nth("bob@example.com", 1)
        .await
        .token(&invitation_prefix(&app));
    let hash = hash_token(&token);
    // Disabled after the page was shown: nothing set, the link unspent.
    disable_user(&app, "bob").await;
    assert!(!store
        .accept_invitation(&hash, "$argon2id$x", now)
        .await
        .unwrap());
    assert!(user(&app, "bob").await.password_hash.is_none());
    assert!(stored_token(&app, &token).await.used_at.is_none());
    // A token of another purpose is not confirmed as an address.
    assert!(!store
        .confirm_address(&hash, TokenPurpose::Invitation, now)
        .await
        .unwrap());
    assert!(!store
        .confirm_address(&hash, TokenPurpose::VerifyEmail, now)
        .await
        .unwrap());
    assert!(stored_token(&app, &token).await.used_at.is_none());

    // An address change to an address someone took meanwhile: `Conflict`, rolled back.
    let carol = create_user(&app, "carol", &[]).await;
    create_user(&app, "dave", &[]).await;
    let change = |email: &str| AccountToken {
        token_hash: hash_token(email),
        purpose: TokenPurpose::ChangeEmail,
        user_id: carol.id.as_str().to_owned(),
        email: Some(email.to_owned()),
        credentials_epoch: carol.credentials_epoch,
        created_at: now,
        expires_at: now + 60,
        used_at: None,
    };
    let mail = || {
        let ctx = minijinja::context! { username => "x", what => "x" };
        let mailer = &app.state.mailer;
        mailer
            .compose("security_notice", "x@example.com", ctx, now)
            .unwrap()
    };
    let taken = change("DAVE@example.com");
    store.issue_account_token(&taken, &mail()).await.unwrap();
    let res = store
        .confirm_address(&taken.token_hash, TokenPurpose::ChangeEmail, now)
        .await;
    assert!(matches!(res, Err(StoreError::Conflict(_))), "{res:?}");
    assert_eq!(user(&app, "carol").await, carol);
    let row = store
        .get_account_token(&taken.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert!(row.used_at.is_none());
    // A free one applies once.
    let free = change("carol@new.example");
    store.issue_account_token(&free, &mail()).await.unwrap();
    let kind = TokenPurpose::ChangeEmail;
    assert!(store
        .confirm_address(&free.token_hash, kind, now)
        .await
        .unwrap());
    assert!(!store
        .confirm_address(&free.token_hash, kind, now)
        .await
        .unwrap());
    let moved = user(&app, "carol").await;
    assert_eq!(moved.email.as_str(), "carol@new.example");
    assert!(moved.email_verified);
}
