//! Passkeys over HTTP with a software authenticator: registration from the account page,
//! sign-in with a passkey alone, a passkey as the second factor, and every refusal the
//! ceremonies must make (wrong origin, wrong RP id, replayed challenge, expired ceremony,
//! another browser, counter regression, unknown credential, no user verification), each
//! leaving nothing stored.

use latchkey::clock::Clock;
use latchkey::domain::{AuditFilter, Username};
use reqwest::Response;
use serde_json::Value;

use crate::accounts_support::*;
use crate::helpers::{spawn_app_with, Backend, TestApp};
use crate::oauth::*;
use crate::soft_authenticator::SoftAuthenticator;

crate::both_stores!(
    register_then_sign_in_with_the_passkey_alone,
    a_passkey_is_a_second_factor_after_the_password,
    phishing_resistant_acr_needs_a_passkey,
    a_wrong_origin_or_rp_id_is_refused,
    a_replayed_or_expired_or_foreign_ceremony_is_refused,
    a_counter_regression_is_refused_audited_and_shown,
    an_unknown_credential_or_no_user_verification_is_refused,
    passkeys_are_renamed_and_deleted_by_their_owner_only,
    the_last_way_to_sign_in_cannot_be_deleted,
);

const PHR: &str = "urn:latchkey:acr:phishing-resistant";

/// An app whose issuer is `http://localhost:{port}`: WebAuthn needs a domain name.
async fn passkey_app(backend: Backend) -> TestApp {
    let mut app = spawn_app_with(backend, |s| {
        s.issuer = s.issuer.replace("127.0.0.1", "localhost");
    })
    .await;
    // Browsers talk to the issuer's host.
    app.address = format!("http://localhost:{}", app.port);
    app
}

pub(crate) fn origin(app: &TestApp) -> String {
    format!("http://localhost:{}", app.port)
}

/// Starts a registration from the account page; returns the options.
async fn start_registration(app: &TestApp, browser: &Browser, name: &str) -> Response {
    post_account(app, browser, "/account/passkeys/start", &[("name", name)]).await
}

/// Registers a passkey named `name` for the signed-in browser.
pub(crate) async fn register(
    app: &TestApp,
    browser: &Browser,
    soft: &mut SoftAuthenticator,
    name: &str,
) {
    let res = start_registration(app, browser, name).await;
    assert_eq!(res.status(), 200);
    let options: Value = res.json().await.unwrap();
    assert_eq!(
        options["publicKey"]["authenticatorSelection"]["residentKey"],
        "required"
    );
    assert_eq!(
        options["publicKey"]["authenticatorSelection"]["userVerification"],
        "required"
    );
    let credential = soft.create(&options, &origin(app)).to_string();
    let res = post_account(
        app,
        browser,
        "/account/passkeys",
        &[("credential", &credential)],
    )
    .await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    assert_eq!(res.headers()["location"], "/account?done=passkey_added");
}

/// The login page of a fresh authorization request: its CSRF token and request.
async fn login_page_of(app: &TestApp, browser: &Browser, req: &AuthRequest) -> (String, String) {
    let page = authorize(app, browser, req).await.text().await.unwrap();
    assert!(
        page.contains("autocomplete=\"username webauthn\""),
        "{page}"
    );
    assert!(page.contains("action=\"/login/passkey\""));
    login_form(&page)
}

/// Starts a passkey sign-in; the options.
async fn start_sign_in(app: &TestApp, browser: &Browser, csrf: &str, request: &str) -> Value {
    let res = post_form(
        &browser.http,
        &app.url("/login/passkey/start"),
        &[("csrf", csrf), ("request", request)],
    )
    .await;
    assert_eq!(res.status(), 200);
    let csp = res
        .headers()
        .get("content-security-policy")
        .map(|v| v.to_str().unwrap().to_owned());
    assert!(csp.is_none_or(|c| !c.contains("unsafe")));
    res.json().await.unwrap()
}

async fn finish_sign_in(
    app: &TestApp,
    browser: &Browser,
    csrf: &str,
    request: &str,
    credential: &str,
) -> Response {
    post_form(
        &browser.http,
        &app.url("/login/passkey"),
        &[
            ("csrf", csrf),
            ("request", request),
            ("credential", credential),
        ],
    )
    .await
}

/// A user `carol` with a password and one passkey held by the returned authenticator.
async fn carol_with_passkey(app: &TestApp) -> SoftAuthenticator {
    create_user(app, "carol", &[]).await;
    let browser = Browser::new(app);
    sign_in_ok(app, &browser, "carol").await;
    let mut soft = SoftAuthenticator::new();
    register(app, &browser, &mut soft, "Laptop").await;
    soft
}

/// Signs in to the account area with the passkey alone, in a new browser.
pub(crate) async fn sign_in_with_passkey(app: &TestApp, soft: &mut SoftAuthenticator) -> Browser {
    let browser = Browser::new(app);
    let page = browser
        .http
        .get(app.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&page, "/login/passkey");
    let options = start_sign_in(app, &browser, &csrf, "").await;
    let assertion = soft.get(&options, &origin(app)).to_string();
    let res = finish_sign_in(app, &browser, &csrf, "", &assertion).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    browser
}

async fn passkey_count(app: &TestApp, username: &str) -> usize {
    let user = app
        .state
        .store
        .get_user_by_username(&Username::parse(username).unwrap())
        .await
        .unwrap()
        .unwrap();
    app.state
        .store
        .list_passkeys(user.id.as_str())
        .await
        .unwrap()
        .len()
}

async fn events(app: &TestApp) -> Vec<String> {
    let filter = AuditFilter {
        limit: 100,
        ..Default::default()
    };
    let list = app.state.store.list_events(&filter).await.unwrap();
    list.into_iter()
        .map(|e| format!("{} {}", e.kind, e.detail))
        .collect()
}

async fn register_then_sign_in_with_the_passkey_alone(backend: Backend) {
    let app = passkey_app(backend).await;
    let client = confidential_client(&app).await;
    let mut soft = carol_with_passkey(&app).await;
    assert_eq!(passkey_count(&app, "carol").await, 1);
    // The user handle is random: neither the username nor the user id.
    let handle = soft.user_handle(0);
    assert_eq!(handle.len(), 16);
    assert!(!String::from_utf8_lossy(&handle).contains("carol"));
    // No username, no password: the passkey alone, through an authorization code flow.
    let browser = Browser::new(&app);
    let req = AuthRequest::new(&client, "openid");
    let (csrf, request) = login_page_of(&app, &browser, &req).await;
    let options = start_sign_in(&app, &browser, &csrf, &request).await;
    assert_eq!(
        options["publicKey"]["allowCredentials"],
        serde_json::json!([])
    );
    let assertion = soft.get(&options, &origin(&app)).to_string();
    let res = finish_sign_in(&app, &browser, &csrf, &request, &assertion).await;
    let code = assert_code(&app, &res, &req);
    let tokens = assert_tokens(exchange_code(&app, &client, &code, &req).await).await;
    let id = claims(s(&tokens, "id_token"));
    assert_eq!(id["amr"], serde_json::json!(["hwk", "mfa"]));
    assert_eq!(id["acr"], PHR);
    let page = account_page(&app, &browser).await;
    assert!(
        page.contains("Laptop") && !page.contains("Last used never"),
        "{page}"
    );
    let log = events(&app).await;
    assert!(
        log.iter().any(|e| e.starts_with("passkey_registered")),
        "{log:?}"
    );
    assert!(log.iter().any(|e| e.starts_with("passkey_used")), "{log:?}");
}

async fn a_passkey_is_a_second_factor_after_the_password(backend: Backend) {
    let app = passkey_app(backend).await;
    let mut soft = carol_with_passkey(&app).await;
    let browser = Browser::new(&app);
    let page = assert_mfa_page(sign_in(&app, &browser, "carol", PASSWORD).await).await;
    assert!(page.contains("id=\"passkey-mfa-form\""), "{page}");
    let csrf = csrf_of(&page, "/login/mfa");
    let res = post_form(
        &browser.http,
        &app.url("/login/mfa/passkey/start"),
        &[("csrf", csrf.as_str())],
    )
    .await;
    assert_eq!(res.status(), 200);
    let options: Value = res.json().await.unwrap();
    assert_eq!(
        options["publicKey"]["allowCredentials"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let assertion = soft.get(&options, &origin(&app)).to_string();
    let res = submit_mfa(&app, &browser, &page, "passkey", &assertion).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    account_page(&app, &browser).await;
}

async fn phishing_resistant_acr_needs_a_passkey(backend: Backend) {
    let app = passkey_app(backend).await;
    let client = confidential_client(&app).await;
    // TOTP is not enough for the phishing-resistant level.
    let (browser, enrolled) = user_with_totp(&app, "dave").await;
    let req = AuthRequest::new(&client, "openid").with("acr_values", Some(PHR));
    let res = authorize(&app, &browser, &req).await;
    assert_eq!(res.status(), 403, "no passkey: the clear page");
    let silent = AuthRequest::new(&client, "openid")
        .with("acr_values", Some(PHR))
        .with("prompt", Some("none"));
    assert_auth_error(
        &app,
        &authorize(&app, &browser, &silent).await,
        &silent,
        "unmet_authentication_requirements",
    );
    let _ = enrolled;
    // With a passkey, the step-up offers the passkey only.
    let mut soft = SoftAuthenticator::new();
    register(&app, &browser, &mut soft, "Phone").await;
    let page = assert_mfa_page(authorize(&app, &browser, &req).await).await;
    assert!(
        page.contains("passkey-mfa-form") && !page.contains("value=\"totp\""),
        "{page}"
    );
    let csrf = csrf_of(&page, "/login/mfa");
    let res = post_form(
        &browser.http,
        &app.url("/login/mfa/passkey/start"),
        &[("csrf", csrf.as_str())],
    )
    .await;
    let options: Value = res.json().await.unwrap();
    let assertion = soft.get(&options, &origin(&app)).to_string();
    let res = submit_mfa(&app, &browser, &page, "passkey", &assertion).await;
    let code = assert_code(&app, &res, &req);
    let tokens = assert_tokens(exchange_code(&app, &client, &code, &req).await).await;
    assert_eq!(claims(s(&tokens, "id_token"))["acr"], PHR);
}

async fn a_wrong_origin_or_rp_id_is_refused(backend: Backend) {
    let app = passkey_app(backend).await;
    create_user(&app, "carol", &[]).await;
    let browser = Browser::new(&app);
    sign_in_ok(&app, &browser, "carol").await;
    let mut soft = SoftAuthenticator::new();
    let evil_origin = format!("http://localhost:{}", app.port + 1);
    for attempt in 0..2 {
        let res = start_registration(&app, &browser, "Laptop").await;
        let options: Value = res.json().await.unwrap();
        let credential = if attempt == 0 {
            soft.create(&options, &evil_origin)
        } else {
            soft.create_for_rp(&options, &origin(&app), "evil.example")
        };
        let res = post_account(
            &app,
            &browser,
            "/account/passkeys",
            &[("credential", &credential.to_string())],
        )
        .await;
        assert_eq!(res.status(), 400, "attempt {attempt}");
        assert!(res.text().await.unwrap().contains("could not be verified"));
    }
    assert_eq!(passkey_count(&app, "carol").await, 0, "nothing stored");
    // The same at sign-in, with a properly registered passkey.
    let mut soft = SoftAuthenticator::new();
    register(&app, &browser, &mut soft, "Laptop").await;
    for attempt in 0..2 {
        let other = Browser::new(&app);
        let (csrf, request) = login_page_of(
            &app,
            &other,
            &AuthRequest::new(&confidential_client(&app).await, "openid"),
        )
        .await;
        let options = start_sign_in(&app, &other, &csrf, &request).await;
        let assertion = if attempt == 0 {
            soft.get(&options, &evil_origin)
        } else {
            soft.get_for_rp(&options, &origin(&app), "evil.example")
        };
        let res = finish_sign_in(&app, &other, &csrf, &request, &assertion.to_string()).await;
        assert_eq!(res.status(), 401, "attempt {attempt}");
        assert!(other.cookie("latchkey_session").is_none());
    }
}

async fn a_replayed_or_expired_or_foreign_ceremony_is_refused(backend: Backend) {
    let app = passkey_app(backend).await;
    let client = confidential_client(&app).await;
    let mut soft = carol_with_passkey(&app).await;
    let req = AuthRequest::new(&client, "openid");
    // Replayed: the same assertion twice; the ceremony was single use.
    let browser = Browser::new(&app);
    let (csrf, request) = login_page_of(&app, &browser, &req).await;
    let options = start_sign_in(&app, &browser, &csrf, &request).await;
    let assertion = soft.get(&options, &origin(&app)).to_string();
    let cookie = browser
        .cookie("latchkey_webauthn")
        .expect("ceremony cookie");
    assert_eq!(
        finish_sign_in(&app, &browser, &csrf, &request, &assertion)
            .await
            .status(),
        303
    );
    let replay = Browser::new(&app);
    let (csrf2, request2) = login_page_of(&app, &replay, &req).await;
    replay.plant_cookie("latchkey_webauthn", &cookie);
    let res = finish_sign_in(&app, &replay, &csrf2, &request2, &assertion).await;
    assert_eq!(res.status(), 401, "a replayed challenge");
    // From another browser: no ceremony cookie there.
    let starter = Browser::new(&app);
    let (csrf, request) = login_page_of(&app, &starter, &req).await;
    let options = start_sign_in(&app, &starter, &csrf, &request).await;
    let assertion = soft.get(&options, &origin(&app)).to_string();
    let thief = Browser::new(&app);
    let (csrf3, request3) = login_page_of(&app, &thief, &req).await;
    assert_eq!(
        finish_sign_in(&app, &thief, &csrf3, &request3, &assertion)
            .await
            .status(),
        401
    );
    // Expired: five minutes later the ceremony is gone.
    let late = Browser::new(&app);
    let (csrf, request) = login_page_of(&app, &late, &req).await;
    let options = start_sign_in(&app, &late, &csrf, &request).await;
    let assertion = soft.get(&options, &origin(&app)).to_string();
    app.clock.advance(300);
    let res = finish_sign_in(&app, &late, &csrf, &request, &assertion).await;
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("expired"));
    // Garbage is refused the same way, never a 500.
    let junk = Browser::new(&app);
    let (csrf, request) = login_page_of(&app, &junk, &req).await;
    start_sign_in(&app, &junk, &csrf, &request).await;
    for bad in ["", "{", "{\"id\":1}", &"x".repeat(20_000)] {
        let res = finish_sign_in(&app, &junk, &csrf, &request, bad).await;
        assert_eq!(res.status(), 401, "{bad:.10}");
    }
}

async fn a_counter_regression_is_refused_audited_and_shown(backend: Backend) {
    let app = passkey_app(backend).await;
    let client = confidential_client(&app).await;
    let mut soft = carol_with_passkey(&app).await;
    let req = AuthRequest::new(&client, "openid");
    for _ in 0..3 {
        let browser = Browser::new(&app);
        let (csrf, request) = login_page_of(&app, &browser, &req).await;
        let options = start_sign_in(&app, &browser, &csrf, &request).await;
        let assertion = soft.get(&options, &origin(&app)).to_string();
        assert_eq!(
            finish_sign_in(&app, &browser, &csrf, &request, &assertion)
                .await
                .status(),
            303
        );
    }
    // A clone whose counter is behind.
    soft.set_counter(0, 1);
    let browser = Browser::new(&app);
    let (csrf, request) = login_page_of(&app, &browser, &req).await;
    let options = start_sign_in(&app, &browser, &csrf, &request).await;
    let assertion = soft.get(&options, &origin(&app)).to_string();
    let res = finish_sign_in(&app, &browser, &csrf, &request, &assertion).await;
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("counter went backwards"));
    assert!(browser.cookie("latchkey_session").is_none());
    let log = events(&app).await;
    assert!(
        log.iter()
            .any(|e| e.starts_with("passkey_counter_regression")),
        "{log:?}"
    );
    let account = account_page(
        &app,
        &sign_in_with_password_and_passkey(&app, &mut soft).await,
    )
    .await;
    assert!(
        account.contains("a copy of this passkey may exist"),
        "{account}"
    );
}

/// Password, then the passkey as the second factor.
async fn sign_in_with_password_and_passkey(app: &TestApp, soft: &mut SoftAuthenticator) -> Browser {
    let browser = Browser::new(app);
    let page = assert_mfa_page(sign_in(app, &browser, "carol", PASSWORD).await).await;
    let csrf = csrf_of(&page, "/login/mfa");
    let res = post_form(
        &browser.http,
        &app.url("/login/mfa/passkey/start"),
        &[("csrf", csrf.as_str())],
    )
    .await;
    let options: Value = res.json().await.unwrap();
    soft.set_counter(0, soft.counter(0).max(100) + 1);
    let assertion = soft.get(&options, &origin(app)).to_string();
    let res = submit_mfa(app, &browser, &page, "passkey", &assertion).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    browser
}

async fn an_unknown_credential_or_no_user_verification_is_refused(backend: Backend) {
    let app = passkey_app(backend).await;
    let client = confidential_client(&app).await;
    let req = AuthRequest::new(&client, "openid");
    // No user verification at registration.
    create_user(&app, "carol", &[]).await;
    let browser = Browser::new(&app);
    sign_in_ok(&app, &browser, "carol").await;
    let mut lazy = SoftAuthenticator::new();
    lazy.user_verified = false;
    let options: Value = start_registration(&app, &browser, "Key")
        .await
        .json()
        .await
        .unwrap();
    let credential = lazy.create(&options, &origin(&app)).to_string();
    let res = post_account(
        &app,
        &browser,
        "/account/passkeys",
        &[("credential", &credential)],
    )
    .await;
    assert_eq!(res.status(), 400);
    assert_eq!(passkey_count(&app, "carol").await, 0);
    // No user verification at sign-in.
    let mut soft = SoftAuthenticator::new();
    register(&app, &browser, &mut soft, "Laptop").await;
    soft.user_verified = false;
    let other = Browser::new(&app);
    let (csrf, request) = login_page_of(&app, &other, &req).await;
    let options = start_sign_in(&app, &other, &csrf, &request).await;
    let assertion = soft.get(&options, &origin(&app)).to_string();
    assert_eq!(
        finish_sign_in(&app, &other, &csrf, &request, &assertion)
            .await
            .status(),
        401
    );
    // An unknown credential: a passkey this server never registered.
    let mut stranger = SoftAuthenticator::new();
    let foreign_options: Value = start_registration(&app, &browser, "Elsewhere")
        .await
        .json()
        .await
        .unwrap();
    stranger.create(&foreign_options, &origin(&app));
    let other = Browser::new(&app);
    let (csrf, request) = login_page_of(&app, &other, &req).await;
    let options = start_sign_in(&app, &other, &csrf, &request).await;
    let assertion = stranger.get(&options, &origin(&app)).to_string();
    let res = finish_sign_in(&app, &other, &csrf, &request, &assertion).await;
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("not registered here"));
}

async fn passkeys_are_renamed_and_deleted_by_their_owner_only(backend: Backend) {
    let app = passkey_app(backend).await;
    let mut soft = carol_with_passkey(&app).await;
    create_user(&app, "mallory", &[]).await;
    let mallory = Browser::new(&app);
    sign_in_ok(&app, &mallory, "mallory").await;
    let carol = sign_in_with_passkey(&app, &mut soft).await;
    let page = account_page(&app, &carol).await;
    let start = page.find("name=\"id\" value=\"").unwrap() + "name=\"id\" value=\"".len();
    let id = page[start..start + page[start..].find('"').unwrap()].to_owned();
    // Another user's forms change nothing.
    let res = post_account(
        &app,
        &mallory,
        "/account/passkeys/rename",
        &[("id", &id), ("name", "Mine now")],
    )
    .await;
    assert_eq!(res.status(), 404);
    let res = post_account(&app, &mallory, "/account/passkeys/delete", &[("id", &id)]).await;
    assert_eq!(res.status(), 404);
    assert_eq!(passkey_count(&app, "carol").await, 1);
    // The owner renames (a bad name is refused) and deletes.
    let res = post_account(
        &app,
        &carol,
        "/account/passkeys/rename",
        &[("id", &id), ("name", "   ")],
    )
    .await;
    assert_eq!(res.status(), 400);
    let res = post_account(
        &app,
        &carol,
        "/account/passkeys/rename",
        &[("id", &id), ("name", "Work laptop")],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert!(account_page(&app, &carol).await.contains("Work laptop"));
    app.clock.advance(11 * 60);
    let res = post_account(&app, &carol, "/account/passkeys/delete", &[("id", &id)]).await;
    assert_eq!(res.status(), 401, "deleting needs a recent sign-in");
    let fresh = sign_in_with_passkey(&app, &mut soft).await;
    let res = post_account(&app, &fresh, "/account/passkeys/delete", &[("id", &id)]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(passkey_count(&app, "carol").await, 0);
    let log = events(&app).await;
    assert!(
        log.iter().any(|e| e.starts_with("passkey_renamed"))
            && log.iter().any(|e| e.starts_with("passkey_deleted")),
        "{log:?}"
    );
}

async fn the_last_way_to_sign_in_cannot_be_deleted(backend: Backend) {
    use latchkey::domain::{Email, PasskeyRecord, User, UserId};
    use latchkey::service::account_passkeys::{delete, Deletion};
    use latchkey::service::login::Browser as Requester;
    use latchkey::service::session::ActiveSession;
    let app = passkey_app(backend).await;
    // A user with no password (e.g. invited, signed up with a passkey) and one passkey.
    let now = app.clock.now();
    let user = User {
        id: UserId::generate(),
        username: Username::parse("erin").unwrap(),
        email: Email::parse("erin@example.com").unwrap(),
        email_verified: true,
        password_hash: None,
        disabled: false,
        roles: Vec::new(),
        created_at: now,
        updated_at: now,
        credentials_changed_at: 0,
        credentials_epoch: 1,
        must_enrol_factor: false,
    };
    app.state.store.insert_user(&user).await.unwrap();
    let passkey = |id: &str, cred: u8| PasskeyRecord {
        id: id.into(),
        user_id: user.id.as_str().into(),
        credential_id: vec![cred; 16],
        name: id.into(),
        credential: "{}".into(),
        counter: 0,
        backup_eligible: false,
        backed_up: false,
        created_at: now,
        last_used_at: None,
        counter_regressed_at: None,
    };
    app.state
        .store
        .insert_passkey(&passkey("one", 1))
        .await
        .unwrap();
    let me = ActiveSession {
        session: crate::store_flows::session(&user, "sid-erin"),
        user: user.clone(),
    };
    let requester = Requester::default();
    let refused = delete(&app.state, &me, "one", &requester, now)
        .await
        .unwrap();
    assert_eq!(refused, Deletion::LastWayToSignIn);
    assert_eq!(passkey_count(&app, "erin").await, 1);
    // With a second passkey, either may go.
    app.state
        .store
        .insert_passkey(&passkey("two", 2))
        .await
        .unwrap();
    assert_eq!(
        delete(&app.state, &me, "one", &requester, now)
            .await
            .unwrap(),
        Deletion::Deleted
    );
    assert_eq!(
        delete(&app.state, &me, "two", &requester, now)
            .await
            .unwrap(),
        Deletion::LastWayToSignIn
    );
}
