//! MFA recovery with a waiting period (issue 8, item 4), over real SMTP with the app's
//! ManualClock: nothing happens before the wait is over, the reminder goes out, the
//! recovery can be cancelled from the mail, the account page or by a second-factor sign-in,
//! it takes effect once (even with two nodes), and bad links change nothing.

use latchkey::authn::recovery::{apply, Event};
use latchkey::clock::Clock;
use latchkey::crypto::token::{hash_token, random_token};
use latchkey::domain::{AccountToken, AuditFilter, FactorKind, RecoveryState, TokenPurpose};
use latchkey::service::recovery::run_due;
use latchkey::store::RecoveryChange;

use crate::accounts_support::*;
use crate::helpers::{spawn_app_with_mail, spawn_second_node, Backend, TestApp};
use crate::oauth::*;
use crate::smtp::{Received, SmtpSink};

crate::both_stores!(
    nothing_happens_before_the_wait_and_everything_after,
    the_reminder_goes_out_once_before_the_effect_and_its_link_cancels,
    cancel_from_the_mail_link,
    cancel_from_the_account_page,
    a_sign_in_with_a_second_factor_cancels,
    bad_links_and_forms_change_nothing,
    two_nodes_apply_it_once,
    a_password_reset_link_starts_the_wait_at_once,
);

const WAIT: i64 = 1_200;
const REMIND: i64 = 300;
const CAROL: &str = "carol";
const MAIL: &str = "carol@example.com";
const CONFIRM_SUBJECT: &str = "Confirm your two-step verification recovery";
const NOTICE_SUBJECT: &str = "Your second factors will be removed";
const CANCELLED_SUBJECT: &str = "Your two-step verification recovery was cancelled";

struct Fx {
    app: TestApp,
    sink: SmtpSink,
    client: TestClient,
    /// A refresh token carol got before she had TOTP.
    refresh_token: String,
    /// Carol's own browser, signed in (password only, before enrolling TOTP).
    browser: Browser,
    enrolled: Enrolled,
    user_id: String,
}

/// Carol with a refresh family, a signed-in browser and TOTP (with backup codes).
async fn fixture(backend: Backend) -> Fx {
    let (app, sink) = spawn_app_with_mail(backend, |s| {
        s.accounts.mfa_recovery_wait_secs = WAIT as u64;
        s.accounts.mfa_recovery_reminder_secs = REMIND as u64;
    })
    .await;
    let client = confidential_client(&app).await;
    let user = create_user(&app, CAROL, &[]).await;
    let (_, _, tokens) = full_flow(&app, &client, CAROL, FULL_SCOPE).await;
    let browser = Browser::new(&app);
    sign_in_ok(&app, &browser, CAROL).await;
    let enrolled = enrol_totp(&app, &browser).await;
    Fx {
        refresh_token: s(&tokens, "refresh_token").to_owned(),
        user_id: user.id.as_str().to_owned(),
        app,
        sink,
        client,
        browser,
        enrolled,
    }
}

/// Waits for the `n`-th message to carol whose subject starts with `prefix`.
async fn mail(sink: &SmtpSink, prefix: &str, n: usize) -> Received {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got: Vec<Received> = sink
            .messages_to(MAIL)
            .into_iter()
            .filter(|m| m.subject().starts_with(prefix))
            .collect();
        if got.len() >= n {
            return got[n - 1].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no message {n} starting {prefix:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// "Lost your second factor?" on the second-factor page, after the password.
async fn request_with_password(app: &TestApp) -> (u16, String) {
    let b = Browser::new(app);
    let page = assert_mfa_page(sign_in(app, &b, CAROL, PASSWORD).await).await;
    let csrf = csrf_of(&page, "/login/mfa/lost");
    let res = post_form(&b.http, &app.url("/login/mfa/lost"), &[("csrf", csrf)]).await;
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn get(app: &TestApp, link: &str) -> (u16, String) {
    let res = Browser::new(app).http.get(link).send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// Opens a mailed link (its GET shows a button) and presses the button.
async fn follow(app: &TestApp, link: &str) -> (u16, String) {
    let b = Browser::new(app);
    let res = b.http.get(link).send().await.unwrap();
    let page = res.text().await.unwrap();
    let path = url::Url::parse(link).unwrap().path().to_owned();
    let csrf = csrf_of(&page, &path);
    let token = hidden(&page, &path, "token").expect("token field");
    let fields = [("csrf", csrf.as_str()), ("token", token.as_str())];
    let res = post_form(&b.http, &app.url(&path), &fields).await;
    (res.status().as_u16(), res.text().await.unwrap())
}

/// POSTs `token` to `path` with a valid CSRF pair (taken from the login page).
async fn post_token(app: &TestApp, path: &str, token: &str) -> (u16, String) {
    let b = Browser::new(app);
    let page = b.http.get(app.url("/login")).send().await.unwrap();
    let csrf = csrf_of(&page.text().await.unwrap(), "/login");
    let fields = [("csrf", csrf.as_str()), ("token", token)];
    let res = post_form(&b.http, &app.url(path), &fields).await;
    (res.status().as_u16(), res.text().await.unwrap())
}

/// Requests with the password and confirms from the mail; returns the notice mail.
async fn confirmed(fx: &Fx) -> Received {
    let (status, page) = request_with_password(&fx.app).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Check your e-mail"), "{page}");
    let n = count(fx, CONFIRM_SUBJECT);
    let m = mail(&fx.sink, CONFIRM_SUBJECT, n.max(1)).await;
    let (status, page) = follow(&fx.app, &m.link(&fx.app.url("/mfa-recovery/confirm"))).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Recovery confirmed"), "{page}");
    mail(&fx.sink, NOTICE_SUBJECT, count(fx, NOTICE_SUBJECT) + 1).await
}

fn count(fx: &Fx, prefix: &str) -> usize {
    fx.sink
        .messages_to(MAIL)
        .iter()
        .filter(|m| m.subject().starts_with(prefix))
        .count()
}

async fn state_of(fx: &Fx) -> Option<RecoveryState> {
    let open = fx.app.state.store.open_recovery(&fx.user_id).await.unwrap();
    open.map(|r| r.state)
}

async fn factors(fx: &Fx) -> Vec<FactorKind> {
    let state = &fx.app.state;
    state
        .factors
        .enrolled(state.store.as_ref(), &fx.user_id)
        .await
        .unwrap()
}

async fn events(fx: &Fx, kind: &str) -> Vec<String> {
    let filter = AuditFilter {
        user_id: Some(fx.user_id.clone()),
        since: None,
        limit: 1_000,
    };
    let all = fx.app.state.store.list_events(&filter).await.unwrap();
    all.into_iter()
        .filter(|e| e.kind == kind)
        .map(|e| e.detail)
        .collect()
}

/// The events of `kind`, once there is one: the due work may have been done by the
/// background task, which audits right after its commit.
async fn audited(fx: &Fx, kind: &str) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got = events(fx, kind).await;
        if !got.is_empty() {
            return got;
        }
        assert!(std::time::Instant::now() < deadline, "no {kind} event");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn due(fx: &Fx) {
    run_due(&fx.app.state, fx.app.clock.now()).await.unwrap();
}

fn is_waiting(state: Option<RecoveryState>) -> bool {
    matches!(state, Some(RecoveryState::Waiting { .. }))
}

/// The notice and the reminder carry a cancel link; cancelling keeps the factors past the
/// wait.
async fn assert_kept_after_the_wait(fx: &Fx) {
    assert_eq!(state_of(fx).await, None);
    fx.app.clock.advance(WAIT + 1);
    due(fx).await;
    assert!(factors(fx).await.contains(&FactorKind::Totp));
    assert!(events(fx, "mfa_recovery_effective").await.is_empty());
}

async fn nothing_happens_before_the_wait_and_everything_after(backend: Backend) {
    let fx = fixture(backend).await;
    let notice = confirmed(&fx).await;
    assert!(notice.text().contains("/mfa-recovery/cancel?token="));
    assert_eq!(
        events(&fx, "mfa_recovery_requested").await,
        ["via=password"]
    );
    assert_eq!(events(&fx, "mfa_recovery_confirmed").await.len(), 1);
    // Just before the end of the wait: nothing changed.
    fx.app.clock.advance(WAIT - 1);
    due(&fx).await;
    assert_eq!(
        factors(&fx).await,
        [FactorKind::Totp, FactorKind::BackupCode]
    );
    assert!(is_waiting(state_of(&fx).await));
    account_page(&fx.app, &fx.browser).await;
    let rotated = assert_tokens(refresh(&fx.app, &fx.client, &fx.refresh_token).await).await;
    let refresh_token = s(&rotated, "refresh_token");
    // The wait is over.
    fx.app.clock.advance(1);
    due(&fx).await;
    assert!(factors(&fx).await.is_empty(), "every second factor removed");
    assert_eq!(state_of(&fx).await, None);
    let res = fx.browser.http.get(fx.app.url("/account")).send().await;
    let page = res.unwrap().text().await.unwrap();
    assert!(!page.contains("/account/password"), "session ended: {page}");
    assert_refresh_dead(&fx.app, &fx.client, refresh_token).await;
    let effective = mail(&fx.sink, "Your second factors were removed", 1).await;
    assert!(effective.text().contains("set up a new second factor"));
    assert_eq!(audited(&fx, "mfa_recovery_effective").await.len(), 1);
    // The next sign-in reaches the account page only, which asks for a new factor...
    let b = Browser::new(&fx.app);
    sign_in_ok(&fx.app, &b, CAROL).await;
    assert!(account_page(&fx.app, &b).await.contains("Set up a new one"));
    let req = AuthRequest::new(&fx.client, "openid");
    let res = authorize(&fx.app, &b, &req).await;
    assert_eq!(res.status(), 403, "no code for a client before enrolling");
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("Two-step verification required"));
    let silent = req.clone().with("prompt", Some("none"));
    let res = authorize(&fx.app, &b, &silent).await;
    assert_auth_error(&fx.app, &res, &silent, "unmet_authentication_requirements");
    // ...and once a new one is enrolled, clients are reachable again.
    enrol_totp(&fx.app, &b).await;
    code_with_session(&fx.app, &b, &req).await;
}

async fn the_reminder_goes_out_once_before_the_effect_and_its_link_cancels(backend: Backend) {
    let fx = fixture(backend).await;
    confirmed(&fx).await;
    fx.app.clock.advance(WAIT - REMIND - 1);
    due(&fx).await;
    assert!(events(&fx, "mfa_recovery_reminded").await.is_empty());
    fx.app.clock.advance(1);
    due(&fx).await;
    let reminder = mail(&fx.sink, "Reminder: your second factors", 1).await;
    due(&fx).await;
    assert_eq!(audited(&fx, "mfa_recovery_reminded").await.len(), 1, "once");
    assert!(is_waiting(state_of(&fx).await));
    let link = reminder.link(&fx.app.url("/mfa-recovery/cancel"));
    let (status, page) = follow(&fx.app, &link).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Recovery cancelled"), "{page}");
    assert_kept_after_the_wait(&fx).await;
}

async fn cancel_from_the_mail_link(backend: Backend) {
    let fx = fixture(backend).await;
    let notice = confirmed(&fx).await;
    let link = notice.link(&fx.app.url("/mfa-recovery/cancel"));
    // Opening the link (a mail scanner would) only shows the button.
    let (status, page) = get(&fx.app, &link).await;
    assert_eq!(status, 200);
    assert!(page.contains("Cancel the recovery"), "{page}");
    assert!(is_waiting(state_of(&fx).await));
    // Without the CSRF pair: refused, nothing changed.
    let token = notice.token(&fx.app.url("/mfa-recovery/cancel"));
    let res = post_form(
        &Browser::new(&fx.app).http,
        &fx.app.url("/mfa-recovery/cancel"),
        &[("token", token.as_str())],
    )
    .await;
    assert_eq!(res.status(), 400);
    assert!(is_waiting(state_of(&fx).await));
    let (status, page) = follow(&fx.app, &link).await;
    assert_eq!(status, 200, "{page}");
    let cancelled = mail(&fx.sink, CANCELLED_SUBJECT, 1).await;
    assert!(cancelled.text().contains("with the link in our e-mail"));
    assert_eq!(
        events(&fx, "mfa_recovery_cancelled").await,
        ["by=mail_link"]
    );
    let (status, page) = get(&fx.app, &link).await;
    assert_eq!(status, 400, "used: {page}");
    assert!(page.contains("already used"), "{page}");
    assert_kept_after_the_wait(&fx).await;
}

async fn cancel_from_the_account_page(backend: Backend) {
    let fx = fixture(backend).await;
    confirmed(&fx).await;
    let page = account_page(&fx.app, &fx.browser).await;
    assert!(page.contains("A recovery is pending"), "{page}");
    // A forged form (no session-bound token) changes nothing.
    let url = fx.app.url("/account/recovery/cancel");
    let res = post_form(&fx.browser.http, &url, &[("csrf", "forged")]).await;
    assert_eq!(res.status(), 400);
    assert!(is_waiting(state_of(&fx).await));
    let res = post_account(&fx.app, &fx.browser, "/account/recovery/cancel", &[]).await;
    assert_eq!(res.status(), 303);
    let to = res.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(to, "/account?done=recovery_cancelled");
    let cancelled = mail(&fx.sink, CANCELLED_SUBJECT, 1).await;
    assert!(cancelled.text().contains("from your account page"));
    assert_eq!(
        events(&fx, "mfa_recovery_cancelled").await,
        ["by=account_page"]
    );
    assert!(!account_page(&fx.app, &fx.browser)
        .await
        .contains("A recovery is pending"));
    assert_kept_after_the_wait(&fx).await;
}

async fn a_sign_in_with_a_second_factor_cancels(backend: Backend) {
    let fx = fixture(backend).await;
    confirmed(&fx).await;
    sign_in_with_totp(&fx.app, CAROL, &fx.enrolled.secret).await;
    let cancelled = mail(&fx.sink, CANCELLED_SUBJECT, 1).await;
    assert!(cancelled.text().contains("signed in with a second factor"));
    assert_eq!(
        events(&fx, "mfa_recovery_cancelled").await,
        ["by=second_factor"]
    );
    assert_kept_after_the_wait(&fx).await;
}

/// Asserts the confirmation token is unspent and the request still awaits it.
async fn assert_untouched(fx: &Fx, token: &str) {
    let stored = fx
        .app
        .state
        .store
        .get_account_token(&hash_token(token))
        .await;
    assert_eq!(stored.unwrap().expect("stored").used_at, None);
    assert_eq!(state_of(fx).await, Some(RecoveryState::Requested));
}

async fn bad_links_and_forms_change_nothing(backend: Backend) {
    let fx = fixture(backend).await;
    let app = &fx.app;
    request_with_password(app).await;
    let m = mail(&fx.sink, CONFIRM_SUBJECT, 1).await;
    let token = m.token(&app.url("/mfa-recovery/confirm"));
    // Tampered.
    let mut tampered = token.clone();
    let last = if tampered.ends_with('A') { "B" } else { "A" };
    tampered.replace_range(42.., last);
    let (status, page) = get(
        app,
        &app.url(&format!("/mfa-recovery/confirm?token={tampered}")),
    )
    .await;
    assert_eq!(status, 400, "{page}");
    assert_eq!(
        post_token(app, "/mfa-recovery/confirm", &tampered).await.0,
        400
    );
    // Foreign: a confirmation token where a cancel or a reset token belongs.
    for path in ["/mfa-recovery/cancel", "/mfa-recovery/start"] {
        let (status, page) = post_token(app, path, &token).await;
        assert_eq!(status, 400, "{path}: {page}");
        assert!(page.contains("not for this page"), "{page}");
    }
    // No CSRF pair.
    let res = post_form(
        &Browser::new(app).http,
        &app.url("/mfa-recovery/confirm"),
        &[("token", token.as_str())],
    )
    .await;
    assert_eq!(res.status(), 400);
    assert_untouched(&fx, &token).await;
    // Expired: a day later (accounts.email_link_secs).
    app.clock.advance(86_400);
    let (status, page) = post_token(app, "/mfa-recovery/confirm", &token).await;
    assert_eq!(status, 400);
    assert!(page.contains("expired"), "{page}");
    assert_untouched(&fx, &token).await;
    // A new request supersedes the lapsed one; a disabled account cannot use its link.
    request_with_password(app).await;
    let token = mail(&fx.sink, CONFIRM_SUBJECT, 2)
        .await
        .token(&app.url("/mfa-recovery/confirm"));
    disable_user(app, CAROL).await;
    let (status, _) = get(
        app,
        &app.url(&format!("/mfa-recovery/confirm?token={token}")),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        post_token(app, "/mfa-recovery/confirm", &token).await.0,
        400
    );
    assert_untouched(&fx, &token).await;
    // Used: once re-enabled (the link was voided by disabling: credentials changed), a
    // fresh link works once.
    let name = latchkey::domain::Username::parse(CAROL).unwrap();
    app.state
        .store
        .set_user_disabled(&name, false, app.clock.now())
        .await
        .unwrap();
    assert_eq!(
        post_token(app, "/mfa-recovery/confirm", &token).await.0,
        400
    );
    request_with_password(app).await;
    let token = mail(&fx.sink, CONFIRM_SUBJECT, 3)
        .await
        .token(&app.url("/mfa-recovery/confirm"));
    assert_eq!(
        post_token(app, "/mfa-recovery/confirm", &token).await.0,
        200
    );
    let before = state_of(&fx).await;
    assert!(is_waiting(before));
    let (status, page) = post_token(app, "/mfa-recovery/confirm", &token).await;
    assert_eq!(status, 400);
    assert!(page.contains("already used"), "{page}");
    assert_eq!(state_of(&fx).await, before);
    assert_eq!(events(&fx, "mfa_recovery_confirmed").await.len(), 1);
}

async fn two_nodes_apply_it_once(backend: Backend) {
    let fx = fixture(backend).await;
    confirmed(&fx).await;
    let store = fx.app.state.store.as_ref();
    // What a node read before the wait ended (the background task may apply it any time
    // after).
    let stale = store
        .open_recovery(&fx.user_id)
        .await
        .unwrap()
        .expect("waiting");
    fx.app.clock.advance(WAIT);
    let other = spawn_second_node(&fx.app).await;
    let now = fx.app.clock.now();
    let (a, b) = tokio::join!(run_due(&fx.app.state, now), run_due(&other.state, now));
    assert!(a.unwrap() + b.unwrap() <= 1);
    assert_eq!(run_due(&fx.app.state, now).await.unwrap(), 0);
    // A node that read the row before another applied it changes nothing (conditional UPDATE).
    let epoch = store
        .get_user(&fx.user_id)
        .await
        .unwrap()
        .unwrap()
        .credentials_epoch;
    let policy = latchkey::service::recovery::policy(&fx.app.state);
    let next = apply(stale.clone(), Event::TakeEffect, &policy, now).unwrap();
    let change = RecoveryChange {
        from: Some(&stale),
        to: &next,
        spend: None,
        void: &[],
        issue: None,
        remove_factors: true,
        mails: &[],
        now,
    };
    assert!(!store.write_recovery(&change).await.unwrap());
    let after = store
        .get_user(&fx.user_id)
        .await
        .unwrap()
        .unwrap()
        .credentials_epoch;
    assert_eq!(after, epoch, "applied once");
    assert!(factors(&fx).await.is_empty());
    assert_eq!(audited(&fx, "mfa_recovery_effective").await.len(), 1);
    let outbox = fx.app.state.store.list_mail(false, 1_000).await.unwrap();
    let notices = outbox.iter().filter(|m| m.kind == "mfa_recovery_effective");
    assert_eq!(notices.count(), 1);
}

async fn a_password_reset_link_starts_the_wait_at_once(backend: Backend) {
    let fx = fixture(backend).await;
    let app = &fx.app;
    let user = app
        .state
        .store
        .get_user(&fx.user_id)
        .await
        .unwrap()
        .unwrap();
    let now = app.clock.now();
    let value = random_token().unwrap();
    let reset = AccountToken {
        token_hash: hash_token(&value),
        purpose: TokenPurpose::PasswordReset,
        user_id: fx.user_id.clone(),
        email: None,
        credentials_epoch: user.credentials_epoch,
        created_at: now,
        expires_at: now + 3_600,
        used_at: None,
    };
    let ctx = minijinja::context! { username => CAROL, what => "A reset was asked for." };
    let mail_out = app
        .state
        .mailer
        .compose("security_notice", MAIL, ctx, now)
        .unwrap();
    app.state
        .store
        .issue_account_token(&reset, &mail_out)
        .await
        .unwrap();
    let link = app.url(&format!("/mfa-recovery/start?token={value}"));
    let (status, page) = follow(app, &link).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Recovery confirmed"), "{page}");
    assert!(
        is_waiting(state_of(&fx).await),
        "no confirmation mail needed"
    );
    let notice = mail(&fx.sink, NOTICE_SUBJECT, 1).await;
    assert!(notice.text().contains("/mfa-recovery/cancel?token="));
    let stored = app.state.store.get_account_token(&reset.token_hash).await;
    assert!(
        stored.unwrap().unwrap().used_at.is_some(),
        "the reset link is spent"
    );
    assert_eq!(
        events(&fx, "mfa_recovery_requested").await,
        ["via=password_reset"]
    );
    assert_eq!(get(app, &link).await.0, 400);
    assert_eq!(count(&fx, CONFIRM_SUBJECT), 0);
}
