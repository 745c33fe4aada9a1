//! TOTP and backup codes through the pages, the second-factor step of a sign-in, step-up
//! for `acr_values` and `require_mfa`, and the `amr` / `acr` claims that record them.

use latchkey::authn::login::PENDING_TTL;
use latchkey::clock::Clock;
use latchkey::service::admin::NewClient;
use serde_json::Value;

use crate::accounts_support::*;
use crate::helpers::{spawn_app, Backend, TestApp};
use crate::oauth::*;

crate::both_stores!(
    totp_enrolment_then_sign_in_with_password_and_code,
    enrolment_needs_one_valid_code,
    a_replayed_code_is_refused,
    a_code_one_step_off_is_accepted_and_two_steps_off_refused,
    a_backup_code_works_once_and_the_page_counts_what_is_left,
    regenerating_backup_codes_voids_the_old_ones,
    acr_values_step_up_asks_only_for_the_second_factor,
    a_client_that_requires_mfa_steps_up_too,
    a_user_without_a_second_factor_gets_a_clear_answer,
    amr_and_acr_record_a_password_only_sign_in,
    malformed_and_foreign_codes_change_nothing,
    a_pending_login_is_single_use_and_expires,
    a_password_change_in_the_second_of_the_password_step_ends_the_pending_login,
);

const MFA: &str = "urn:latchkey:acr:mfa";

/// The second-factor page of an authorization request, after the password.
async fn mfa_page_for(
    app: &TestApp,
    browser: &Browser,
    req: &AuthRequest,
    username: &str,
) -> String {
    let page = authorize(app, browser, req).await.text().await.unwrap();
    assert_mfa_page(submit_login(app, browser, &page, username, PASSWORD).await).await
}

async fn tokens_for(
    app: &TestApp,
    client: &TestClient,
    req: &AuthRequest,
    res: reqwest::Response,
) -> Value {
    let code = assert_code(app, &res, req);
    assert_tokens(exchange_code(app, client, &code, req).await).await
}

async fn totp_enrolment_then_sign_in_with_password_and_code(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    let (_, enrolled) = user_with_totp(&app, "carol").await;
    let browser = Browser::new(&app);
    let req = AuthRequest::new(&client, "openid");
    let page = mfa_page_for(&app, &browser, &req, "carol").await;
    let res = submit_mfa(
        &app,
        &browser,
        &page,
        "totp",
        &code_now(&app, &enrolled.secret),
    )
    .await;
    let tokens = tokens_for(&app, &client, &req, res).await;
    let id = claims(s(&tokens, "id_token"));
    assert_eq!(id["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
    assert_eq!(id["acr"], MFA);
    // The session remembers the factors: the next request needs no sign-in at all.
    code_with_session(&app, &browser, &AuthRequest::new(&client, "openid")).await;
    let events = app.cli(&["audit", "list", "--user", "carol", "--json"]);
    assert!(events.stdout.contains("totp_enrolled"), "{}", events.stdout);
    assert!(
        events.stdout.contains("factors=password,totp"),
        "{}",
        events.stdout
    );
}

async fn enrolment_needs_one_valid_code(backend: Backend) {
    let app = spawn_app(backend).await;
    create_user(&app, "carol", &[]).await;
    let browser = Browser::new(&app);
    sign_in_ok(&app, &browser, "carol").await;
    // Starting needs the session's CSRF token; a plain GET changes nothing.
    let res = browser
        .http
        .get(app.url("/account/totp"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        303,
        "no enrolment in progress: back to the account page"
    );
    let setup = start_totp(&app, &browser).await;
    let csp = setup.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("img-src 'self' data:") && !csp.contains("script-src"),
        "{csp}"
    );
    let setup = setup.text().await.unwrap();
    assert!(
        unescape(&setup).contains("src=\"data:image/png;base64,"),
        "a server-rendered QR code"
    );
    let secret = secret_of(&setup);
    let csrf = csrf_of(&setup, "/account/totp");
    let wrong = code(&secret, app.clock.now() + 300);
    let res = post_form(
        &browser.http,
        &app.url("/account/totp"),
        &[("code", wrong.as_str()), ("csrf", csrf.as_str())],
    )
    .await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("not right"));
    // Not active yet: a sign-in asks for no code.
    sign_in_ok(&app, &Browser::new(&app), "carol").await;
    assert!(account_page(&app, &browser)
        .await
        .contains("Authenticator app: <strong>off</strong>"));
    // The same secret, still pending, is confirmed by a valid code.
    let right = code_now(&app, &secret);
    let res = post_form(
        &browser.http,
        &app.url("/account/totp"),
        &[("code", right.as_str()), ("csrf", csrf.as_str())],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(codes_of(&res.text().await.unwrap()).len(), 10);
    assert!(account_page(&app, &browser)
        .await
        .contains("Authenticator app: <strong>on</strong>"));
    app.clock.advance(30);
    assert_mfa_page(sign_in(&app, &Browser::new(&app), "carol", PASSWORD).await).await;
}

async fn a_replayed_code_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, enrolled) = user_with_totp(&app, "carol").await;
    let used = code_now(&app, &enrolled.secret);
    sign_in_with_totp(&app, "carol", &enrolled.secret).await;
    let browser = Browser::new(&app);
    let page = assert_mfa_page(sign_in(&app, &browser, "carol", PASSWORD).await).await;
    let res = submit_mfa(&app, &browser, &page, "totp", &used).await;
    assert_eq!(res.status(), 401, "the same time step twice");
    assert!(cookie_set(&res, "latchkey_session").is_none());
    let page = res.text().await.unwrap();
    app.clock.advance(30);
    let res = submit_mfa(
        &app,
        &browser,
        &page,
        "totp",
        &code_now(&app, &enrolled.secret),
    )
    .await;
    assert_eq!(res.status(), 303, "the next step's code works");
}

async fn a_code_one_step_off_is_accepted_and_two_steps_off_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, enrolled) = user_with_totp(&app, "carol").await;
    app.clock.advance(300);
    let now = app.clock.now();
    let attempt = |at: i64| {
        let (app, secret) = (&app, &enrolled.secret);
        async move {
            let browser = Browser::new(app);
            let page = assert_mfa_page(sign_in(app, &browser, "carol", PASSWORD).await).await;
            submit_mfa(app, &browser, &page, "totp", &code(secret, at))
                .await
                .status()
                .as_u16()
        }
    };
    // One step behind, then one step ahead (steps must keep increasing: each is used once).
    assert_eq!(attempt(now - 30).await, 303);
    assert_eq!(attempt(now + 30).await, 303);
    app.clock.advance(300);
    let now = app.clock.now();
    assert_eq!(attempt(now - 60).await, 401, "two steps behind");
    assert_eq!(attempt(now + 60).await, 401, "two steps ahead");
    assert_eq!(attempt(now).await, 303);
}

async fn a_backup_code_works_once_and_the_page_counts_what_is_left(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, enrolled) = user_with_totp(&app, "carol").await;
    let backup = enrolled.backup_codes[3].to_uppercase().replace('-', " ");
    let browser = Browser::new(&app);
    let page = assert_mfa_page(sign_in(&app, &browser, "carol", PASSWORD).await).await;
    let res = submit_mfa(&app, &browser, &page, "backup_code", &backup).await;
    assert_eq!(
        res.status(),
        303,
        "typed in upper case with a space: still the code"
    );
    let account = account_page(&app, &browser).await;
    assert!(account.contains("9 backup codes left"), "{account}");
    let other = Browser::new(&app);
    let page = assert_mfa_page(sign_in(&app, &other, "carol", PASSWORD).await).await;
    let res = submit_mfa(
        &app,
        &other,
        &page,
        "backup_code",
        &enrolled.backup_codes[3],
    )
    .await;
    assert_eq!(res.status(), 401, "a backup code works once");
    let events = app
        .cli(&["audit", "list", "--user", "carol", "--json"])
        .stdout;
    assert!(events.contains("backup_code_used"), "{events}");
}

async fn regenerating_backup_codes_voids_the_old_ones(backend: Backend) {
    let app = spawn_app(backend).await;
    let (browser, enrolled) = user_with_totp(&app, "carol").await;
    let res = post_account(&app, &browser, "/account/backup-codes", &[]).await;
    assert_eq!(res.status(), 200);
    let fresh = codes_of(&res.text().await.unwrap());
    assert_eq!(fresh.len(), 10);
    assert!(fresh.iter().all(|c| !enrolled.backup_codes.contains(c)));
    let other = Browser::new(&app);
    let page = assert_mfa_page(sign_in(&app, &other, "carol", PASSWORD).await).await;
    let res = submit_mfa(
        &app,
        &other,
        &page,
        "backup_code",
        &enrolled.backup_codes[0],
    )
    .await;
    assert_eq!(res.status(), 401, "the old set is void");
    let page = res.text().await.unwrap();
    assert_eq!(
        submit_mfa(&app, &other, &page, "backup_code", &fresh[0])
            .await
            .status(),
        303
    );
}

async fn acr_values_step_up_asks_only_for_the_second_factor(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    // Signed in with a password before TOTP was on: a single-factor session.
    let (browser, enrolled) = user_with_totp(&app, "carol").await;
    let plain = AuthRequest::new(&client, "openid");
    let tokens = tokens_for(
        &app,
        &client,
        &plain,
        authorize(&app, &browser, &plain).await,
    )
    .await;
    assert_eq!(
        claims(s(&tokens, "id_token"))["acr"],
        "urn:latchkey:acr:password"
    );
    let req = AuthRequest::new(&client, "openid").with("acr_values", Some(MFA));
    let page = assert_mfa_page(authorize(&app, &browser, &req).await).await;
    let res = submit_mfa(
        &app,
        &browser,
        &page,
        "totp",
        &code_now(&app, &enrolled.secret),
    )
    .await;
    let tokens = tokens_for(&app, &client, &req, res).await;
    let id = claims(s(&tokens, "id_token"));
    assert_eq!(id["acr"], MFA);
    assert_eq!(id["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
    // The stepped-up session now satisfies the request silently.
    let again = AuthRequest::new(&client, "openid")
        .with("acr_values", Some(MFA))
        .with("prompt", Some("none"));
    code_with_session(&app, &browser, &again).await;
}

async fn a_client_that_requires_mfa_steps_up_too(backend: Backend) {
    let app = spawn_app(backend).await;
    let strict = register(
        &app,
        NewClient {
            require_mfa: true,
            ..confidential_input("Payroll")
        },
    )
    .await;
    let (browser, enrolled) = user_with_totp(&app, "carol").await;
    let req = AuthRequest::new(&strict, "openid");
    // No acr_values at all: the client's setting demands the second factor.
    let page = assert_mfa_page(authorize(&app, &browser, &req).await).await;
    let res = submit_mfa(
        &app,
        &browser,
        &page,
        "totp",
        &code_now(&app, &enrolled.secret),
    )
    .await;
    let tokens = tokens_for(&app, &strict, &req, res).await;
    assert_eq!(claims(s(&tokens, "id_token"))["acr"], MFA);
    // prompt=none with a single-factor session of a user who has a factor: interaction_required.
    let other = Browser::new(&app);
    create_user(&app, "dave", &[]).await;
    sign_in_ok(&app, &other, "dave").await;
    enrol_totp(&app, &other).await;
    let silent = AuthRequest::new(&strict, "openid").with("prompt", Some("none"));
    assert_auth_error(
        &app,
        &authorize(&app, &other, &silent).await,
        &silent,
        "interaction_required",
    );
}

async fn a_user_without_a_second_factor_gets_a_clear_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let browser = Browser::new(&app);
    let req = AuthRequest::new(&client, "openid").with("acr_values", Some(MFA));
    let page = authorize(&app, &browser, &req).await.text().await.unwrap();
    let res = submit_login(&app, &browser, &page, USERNAME, PASSWORD).await;
    assert_eq!(res.status(), 403);
    let body = res.text().await.unwrap();
    assert!(
        body.contains("Two-step verification required") && body.contains("Acme Web"),
        "{body}"
    );
    assert!(body.contains("href=\"/account\""));
    // The same request with prompt=none (the password session exists now).
    let silent = AuthRequest::new(&client, "openid")
        .with("acr_values", Some(MFA))
        .with("prompt", Some("none"));
    assert_auth_error(
        &app,
        &authorize(&app, &browser, &silent).await,
        &silent,
        "unmet_authentication_requirements",
    );
    // Asking for the password level is fine.
    let pwd =
        AuthRequest::new(&client, "openid").with("acr_values", Some("urn:latchkey:acr:password"));
    code_with_session(&app, &browser, &pwd).await;
}

async fn amr_and_acr_record_a_password_only_sign_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (_, _, tokens) = full_flow(&app, &client, USERNAME, "openid").await;
    let id = claims(s(&tokens, "id_token"));
    assert_eq!(id["amr"], serde_json::json!(["pwd"]));
    assert_eq!(id["acr"], "urn:latchkey:acr:password");
    let discovery: Value = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        discovery["acr_values_supported"],
        serde_json::json!([
            "urn:latchkey:acr:password",
            MFA,
            "urn:latchkey:acr:phishing-resistant"
        ])
    );
}

async fn malformed_and_foreign_codes_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, enrolled) = user_with_totp(&app, "carol").await;
    let browser = Browser::new(&app);
    let page = assert_mfa_page(sign_in(&app, &browser, "carol", PASSWORD).await).await;
    let pending = browser
        .cookie("latchkey_login")
        .expect("pending-login cookie");
    for (method, bad) in [
        ("totp", "12ab56"),
        ("totp", ""),
        ("totp", &"9".repeat(5000)),
        ("password", PASSWORD),
        ("sms", "123456"),
    ] {
        let res = submit_mfa(&app, &browser, &page, method, bad).await;
        assert_eq!(res.status(), 401, "{method} {bad:.20}");
        assert!(cookie_set(&res, "latchkey_session").is_none());
        assert_eq!(
            browser.cookie("latchkey_login").as_deref(),
            Some(pending.as_str()),
            "the pending login is unchanged"
        );
    }
    // None of that touched the code bucket or the pending login.
    let res = submit_mfa(
        &app,
        &browser,
        &page,
        "totp",
        &code_now(&app, &enrolled.secret),
    )
    .await;
    assert_eq!(res.status(), 303, "the malformed attempts cost nothing");
    // Without the CSRF cookie value the form is refused before anything happens.
    let res = post_form(
        &Browser::new(&app).http,
        &app.url("/login/mfa"),
        &[("method", "totp"), ("code", "123456"), ("csrf", "x")],
    )
    .await;
    assert_eq!(res.status(), 400);
}

async fn a_password_change_in_the_second_of_the_password_step_ends_the_pending_login(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (_, enrolled) = user_with_totp(&app, "carol").await;
    let browser = Browser::new(&app);
    let page = assert_mfa_page(sign_in(&app, &browser, "carol", PASSWORD).await).await;
    // Between the password and the code, within the same clock second.
    let new = latchkey::domain::Password::parse("a brand new password").unwrap();
    let store = app.state.store.as_ref();
    let now = app.clock.now();
    latchkey::service::admin::set_password(store, &app.state.passwords, "carol", &new, now)
        .await
        .unwrap();
    let code = code_now(&app, &enrolled.secret);
    let res = submit_mfa(&app, &browser, &page, "totp", &code).await;
    assert_eq!(res.status(), 400);
    assert!(cookie_set(&res, "latchkey_session").is_none());
    // The new password and the same code (still unused) sign in.
    let page =
        assert_mfa_page(sign_in(&app, &browser, "carol", "a brand new password").await).await;
    let res = submit_mfa(&app, &browser, &page, "totp", &code).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
}

async fn a_pending_login_is_single_use_and_expires(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, enrolled) = user_with_totp(&app, "carol").await;
    let browser = Browser::new(&app);
    let page = assert_mfa_page(sign_in(&app, &browser, "carol", PASSWORD).await).await;
    let pending = browser.cookie("latchkey_login").unwrap();
    let res = submit_mfa(
        &app,
        &browser,
        &page,
        "totp",
        &code_now(&app, &enrolled.secret),
    )
    .await;
    assert_eq!(res.status(), 303);
    // Replaying the used pending login (its cookie put back) gets nothing.
    browser.plant_cookie("latchkey_login", &pending);
    app.clock.advance(30);
    let res = submit_mfa(
        &app,
        &browser,
        &page,
        "totp",
        &code_now(&app, &enrolled.secret),
    )
    .await;
    assert_eq!(res.status(), 400);
    assert!(cookie_set(&res, "latchkey_session").is_none());
    // An expired one neither.
    let late = Browser::new(&app);
    let page = assert_mfa_page(sign_in(&app, &late, "carol", PASSWORD).await).await;
    app.clock.advance(PENDING_TTL);
    let res = submit_mfa(
        &app,
        &late,
        &page,
        "totp",
        &code_now(&app, &enrolled.secret),
    )
    .await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("expired"));
}
