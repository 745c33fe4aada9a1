use super::*;
use crate::domain::{GrantType, UserId};
use crate::oidc::acr::AcrLevel;
use crate::oidc::test_support::{client, params, scope, REDIRECT, RESOURCE};
use crate::oidc::ErrorCode;

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

// ---- stage 1 ----

fn stage1(client_id: Option<&str>, uri: Option<&str>) -> Result<String, PageError> {
    check_client_and_redirect(Some(&client()), client_id, uri)
}

#[test]
fn stage1_accepts_registered_redirect() {
    assert_eq!(stage1(Some("app"), Some(REDIRECT)), Ok(REDIRECT.to_owned()));
}

#[test]
fn stage1_missing_client_id_is_page_error() {
    assert_eq!(
        stage1(None, Some(REDIRECT)).unwrap_err().error.code,
        ErrorCode::InvalidRequest
    );
}

#[test]
fn stage1_unknown_client_is_page_error() {
    let e = check_client_and_redirect(None, Some("nope"), Some(REDIRECT)).unwrap_err();
    assert_eq!(e.error.code, ErrorCode::InvalidClient);
    // A client record that is not the one asked for is not trusted either.
    assert!(stage1(Some("other"), Some(REDIRECT)).is_err());
}

#[test]
fn stage1_missing_redirect_uri_is_page_error() {
    assert_eq!(
        stage1(Some("app"), None).unwrap_err().error.code,
        ErrorCode::InvalidRequest
    );
}

#[test]
fn stage1_redirect_uri_must_match_exactly() {
    for uri in [
        "https://app.example/cb/",
        "https://APP.example/cb",
        "https://app.example/cb?x=1",
        "https://app.example/cb#f",
        "https://app.example/c",
        "https://app.example:443/cb",
        "https://evil.example/cb",
    ] {
        assert!(stage1(Some("app"), Some(uri)).is_err(), "{uri}");
    }
}

#[test]
fn stage1_client_must_use_code_grant() {
    let mut c = client();
    c.grant_types = vec![GrantType::ClientCredentials];
    let e = check_client_and_redirect(Some(&c), Some("app"), Some(REDIRECT)).unwrap_err();
    assert_eq!(e.error.code, ErrorCode::UnauthorizedClient);
}

// ---- stage 2 ----

const BASE: [(&str, &str); 6] = [
    ("response_type", "code"),
    ("client_id", "app"),
    ("redirect_uri", REDIRECT),
    ("scope", "openid profile"),
    ("code_challenge", CHALLENGE),
    ("code_challenge_method", "S256"),
];

/// The base request with `changes` applied: a pair replaces the same name, or is added; an
/// empty value removes the parameter.
fn with(changes: &[(&str, &str)]) -> Params {
    let mut list: Vec<(&str, &str)> = BASE.to_vec();
    for (k, v) in changes {
        list.retain(|(name, _)| name != k);
        if !v.is_empty() {
            list.push((k, v));
        }
    }
    list.push(("state", "xyz"));
    params(&list)
}

fn stage2(changes: &[(&str, &str)]) -> Result<AuthorizationRequest, RedirectError> {
    check_request(&with(changes), &client(), REDIRECT.to_owned())
}

fn code_of(changes: &[(&str, &str)]) -> ErrorCode {
    stage2(changes).unwrap_err().error.code
}

#[test]
fn stage2_accepts_full_request() {
    let r = stage2(&[
        ("nonce", "n-1"),
        ("prompt", "login consent"),
        ("max_age", "300"),
        ("login_hint", "alice"),
        ("resource", RESOURCE),
    ])
    .unwrap();
    assert_eq!(r.client_id.as_str(), "app");
    assert_eq!(r.redirect_uri, REDIRECT);
    assert_eq!(r.scope, scope("openid profile"));
    assert_eq!(r.state.as_deref(), Some("xyz"));
    assert_eq!(r.nonce.as_deref(), Some("n-1"));
    assert_eq!(r.code_challenge.as_str(), CHALLENGE);
    assert!(r.prompt.login && r.prompt.consent && !r.prompt.none);
    assert_eq!(r.max_age, Some(300));
    assert_eq!(r.login_hint.as_deref(), Some("alice"));
    assert_eq!(r.resource.as_ref().map(|u| u.as_str()), Some(RESOURCE));
}

#[test]
fn stage2_minimal_request_has_defaults() {
    let r = stage2(&[]).unwrap();
    assert_eq!(r.prompt, Prompt::default());
    assert_eq!(
        (r.nonce, r.max_age, r.login_hint, r.resource),
        (None, None, None, None)
    );
}

#[test]
fn stage2_errors_carry_redirect_and_state() {
    let e = stage2(&[("response_type", "token")]).unwrap_err();
    assert_eq!(e.redirect_uri, REDIRECT);
    assert_eq!(e.state.as_deref(), Some("xyz"));
}

#[test]
fn stage2_overlong_state_is_not_echoed() {
    let long = "s".repeat(MAX_STATE_BYTES + 1);
    let p = params(&[("response_type", "code"), ("state", &long)]);
    let e = check_request(&p, &client(), REDIRECT.to_owned()).unwrap_err();
    assert_eq!(e.error.code, ErrorCode::InvalidRequest);
    assert_eq!(e.state, None);
}

#[test]
fn stage2_request_objects_rejected() {
    assert_eq!(
        code_of(&[("request", "eyJ...")]),
        ErrorCode::RequestNotSupported
    );
    assert_eq!(
        code_of(&[("request_uri", "https://x.example/r")]),
        ErrorCode::RequestUriNotSupported
    );
}

#[test]
fn stage2_missing_response_type() {
    assert_eq!(code_of(&[("response_type", "")]), ErrorCode::InvalidRequest);
}

#[test]
fn stage2_only_code_response_type() {
    for rt in [
        "token",
        "id_token",
        "code id_token",
        "id_token code",
        "code token",
        "none",
    ] {
        assert_eq!(
            code_of(&[("response_type", rt)]),
            ErrorCode::UnsupportedResponseType,
            "{rt}"
        );
    }
}

#[test]
fn stage2_only_query_response_mode() {
    assert!(stage2(&[("response_mode", "query")]).is_ok());
    for m in ["fragment", "form_post", "jwt"] {
        assert_eq!(
            code_of(&[("response_mode", m)]),
            ErrorCode::InvalidRequest,
            "{m}"
        );
    }
}

#[test]
fn stage2_scope_rules() {
    assert_eq!(code_of(&[("scope", "")]), ErrorCode::InvalidScope);
    assert_eq!(code_of(&[("scope", "   ")]), ErrorCode::InvalidScope);
    assert_eq!(code_of(&[("scope", "open\"id")]), ErrorCode::InvalidScope);
    assert_eq!(
        code_of(&[("scope", "openid admin")]),
        ErrorCode::InvalidScope
    );
}

#[test]
fn stage2_pkce_required() {
    assert_eq!(
        code_of(&[("code_challenge", "")]),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        code_of(&[("code_challenge_method", "")]),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        code_of(&[("code_challenge_method", "plain")]),
        ErrorCode::InvalidRequest
    );
}

#[test]
fn stage2_prompt_rules() {
    assert!(stage2(&[("prompt", "none")]).unwrap().prompt.none);
    assert!(
        stage2(&[("prompt", "select_account")])
            .unwrap()
            .prompt
            .select_account
    );
    assert_eq!(
        code_of(&[("prompt", "none login")]),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        code_of(&[("prompt", "consent none")]),
        ErrorCode::InvalidRequest
    );
    assert_eq!(code_of(&[("prompt", "create")]), ErrorCode::InvalidRequest);
}

#[test]
fn stage2_max_age_rules() {
    assert_eq!(stage2(&[("max_age", "0")]).unwrap().max_age, Some(0));
    for bad in ["-1", "abc", "1.5", "+5", "99999999999999999999"] {
        assert_eq!(
            code_of(&[("max_age", bad)]),
            ErrorCode::InvalidRequest,
            "{bad}"
        );
    }
}

#[test]
fn stage2_bounded_nonce_and_login_hint() {
    let nonce = "n".repeat(MAX_NONCE_BYTES + 1);
    assert_eq!(code_of(&[("nonce", &nonce)]), ErrorCode::InvalidRequest);
    let hint = "h".repeat(MAX_LOGIN_HINT_BYTES + 1);
    assert_eq!(code_of(&[("login_hint", &hint)]), ErrorCode::InvalidRequest);
}

#[test]
fn stage2_resource_rules() {
    for bad in [
        "https://other.example/",
        "/relative",
        "https://api.example/#f",
    ] {
        assert_eq!(
            code_of(&[("resource", bad)]),
            ErrorCode::InvalidTarget,
            "{bad}"
        );
    }
}

#[test]
fn request_round_trips_through_serde() {
    let r = stage2(&[("nonce", "n"), ("prompt", "login"), ("resource", RESOURCE)]).unwrap();
    let json = serde_json::to_string(&r).unwrap();
    let back: AuthorizationRequest = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r);
}

#[test]
fn stored_request_is_revalidated() {
    let r = stage2(&[]).unwrap();
    let mut v = serde_json::to_value(&r).unwrap();
    v["code_challenge"] = "short".into();
    assert!(serde_json::from_value::<AuthorizationRequest>(v).is_err());
}

// ---- decide ----

const NOW: i64 = 10_000;

fn req(changes: &[(&str, &str)]) -> AuthorizationRequest {
    stage2(changes).unwrap()
}

fn session(auth_time: i64) -> SessionView {
    SessionView {
        user_id: UserId::from_stored("u-1".to_owned()),
        auth_time,
        level: AcrLevel::Password,
    }
}

fn mfa_session(auth_time: i64) -> SessionView {
    SessionView {
        level: AcrLevel::Mfa,
        ..session(auth_time)
    }
}

#[test]
fn acr_values_are_parsed_and_set_the_required_level() {
    let r = req(&[("acr_values", "urn:latchkey:acr:mfa  urn:other")]);
    assert_eq!(r.acr_values, ["urn:latchkey:acr:mfa", "urn:other"]);
    assert_eq!(r.min_level, AcrLevel::Mfa);
    assert_eq!(req(&[]).min_level, AcrLevel::Password);
    let too_long = "x".repeat(513);
    assert_eq!(
        code_of(&[("acr_values", &too_long)]),
        ErrorCode::InvalidRequest
    );
}

#[test]
fn a_client_that_requires_mfa_raises_the_level() {
    let mut c = client();
    c.require_mfa = true;
    let r = check_request(&with(&[]), &c, REDIRECT.to_owned()).unwrap();
    assert_eq!(r.min_level, AcrLevel::Mfa);
}

#[test]
fn a_single_factor_session_steps_up_when_mfa_is_required() {
    let r = req(&[("acr_values", "urn:latchkey:acr:mfa")]);
    let s = session(NOW - 5);
    assert_eq!(
        d(&r, Some(&s), ConsentState::Granted, false),
        Decision::StepUp
    );
    // A fresh password login does not satisfy it either.
    assert_eq!(
        d(&r, Some(&s), ConsentState::Granted, true),
        Decision::StepUp
    );
    let m = mfa_session(NOW - 5);
    assert_eq!(
        d(&r, Some(&m), ConsentState::Granted, false),
        Decision::Issue
    );
    // Without a session the user signs in first (then steps up if needed).
    assert_eq!(d(&r, None, ConsentState::Granted, false), Decision::Login);
    // An expired max_age asks for the full login, not only the second factor.
    let r = req(&[("acr_values", "urn:latchkey:acr:mfa"), ("max_age", "1")]);
    assert_eq!(
        d(&r, Some(&s), ConsentState::Granted, false),
        Decision::Login
    );
}

#[test]
fn prompt_none_with_a_weak_session_is_a_step_up_for_the_caller_to_refuse() {
    let r = req(&[("acr_values", "urn:latchkey:acr:mfa"), ("prompt", "none")]);
    assert_eq!(
        d(&r, Some(&session(NOW - 5)), ConsentState::Granted, false),
        Decision::StepUp
    );
    assert_eq!(
        d(
            &r,
            Some(&mfa_session(NOW - 5)),
            ConsentState::Granted,
            false
        ),
        Decision::Issue
    );
}

#[test]
fn a_password_request_is_met_by_an_mfa_session() {
    let r = req(&[("acr_values", "urn:latchkey:acr:password")]);
    assert_eq!(
        d(
            &r,
            Some(&mfa_session(NOW - 5)),
            ConsentState::Granted,
            false
        ),
        Decision::Issue
    );
}

fn d(r: &AuthorizationRequest, s: Option<&SessionView>, c: ConsentState, fresh: bool) -> Decision {
    decide(r, s, c, fresh, NOW)
}

fn err_code(decision: Decision) -> Option<ErrorCode> {
    match decision {
        Decision::Error(e) => Some(e.code),
        _ => None,
    }
}

#[test]
fn decide_without_session_asks_login() {
    assert_eq!(
        d(&req(&[]), None, ConsentState::Granted, false),
        Decision::Login
    );
}

#[test]
fn decide_with_session_and_consent_issues() {
    let s = session(NOW - 5);
    assert_eq!(
        d(&req(&[]), Some(&s), ConsentState::Granted, false),
        Decision::Issue
    );
    assert_eq!(
        d(&req(&[]), Some(&s), ConsentState::NotRequired, false),
        Decision::Issue
    );
    assert_eq!(
        d(&req(&[]), Some(&s), ConsentState::GrantedNow, false),
        Decision::Issue
    );
}

#[test]
fn decide_missing_consent_asks_consent() {
    let s = session(NOW - 5);
    assert_eq!(
        d(&req(&[]), Some(&s), ConsentState::Missing, false),
        Decision::Consent
    );
}

#[test]
fn decide_prompt_login_forces_login_once() {
    let r = req(&[("prompt", "login")]);
    let s = session(NOW - 5);
    assert_eq!(
        d(&r, Some(&s), ConsentState::Granted, false),
        Decision::Login
    );
    assert_eq!(
        d(&r, Some(&s), ConsentState::Granted, true),
        Decision::Issue
    );
}

#[test]
fn decide_select_account_forces_login_once() {
    let r = req(&[("prompt", "select_account")]);
    let s = session(NOW - 5);
    assert_eq!(
        d(&r, Some(&s), ConsentState::Granted, false),
        Decision::Login
    );
    assert_eq!(
        d(&r, Some(&s), ConsentState::Granted, true),
        Decision::Issue
    );
}

#[test]
fn decide_max_age() {
    let r = req(&[("max_age", "60")]);
    let old = session(NOW - 61);
    let edge = session(NOW - 60);
    assert_eq!(
        d(&r, Some(&old), ConsentState::Granted, false),
        Decision::Login
    );
    assert_eq!(
        d(&r, Some(&edge), ConsentState::Granted, false),
        Decision::Issue
    );
    assert_eq!(
        d(&r, Some(&old), ConsentState::Granted, true),
        Decision::Issue
    );
}

#[test]
fn decide_max_age_zero_does_not_loop_after_login() {
    let r = req(&[("max_age", "0")]);
    let s = session(NOW - 1);
    assert_eq!(
        d(&r, Some(&s), ConsentState::Granted, false),
        Decision::Login
    );
    assert_eq!(
        d(&r, Some(&s), ConsentState::Granted, true),
        Decision::Issue
    );
}

#[test]
fn decide_prompt_none_without_session_is_login_required() {
    let r = req(&[("prompt", "none")]);
    assert_eq!(
        err_code(d(&r, None, ConsentState::Granted, false)),
        Some(ErrorCode::LoginRequired)
    );
}

#[test]
fn decide_prompt_none_with_old_session_is_login_required() {
    let r = req(&[("prompt", "none"), ("max_age", "10")]);
    let s = session(NOW - 11);
    assert_eq!(
        err_code(d(&r, Some(&s), ConsentState::Granted, false)),
        Some(ErrorCode::LoginRequired)
    );
}

#[test]
fn decide_prompt_none_without_consent_is_consent_required() {
    let r = req(&[("prompt", "none")]);
    let s = session(NOW - 5);
    assert_eq!(
        err_code(d(&r, Some(&s), ConsentState::Missing, false)),
        Some(ErrorCode::ConsentRequired)
    );
}

#[test]
fn decide_prompt_none_issues_silently() {
    let r = req(&[("prompt", "none")]);
    let s = session(NOW - 5);
    assert_eq!(
        d(&r, Some(&s), ConsentState::Granted, false),
        Decision::Issue
    );
    assert_eq!(
        d(&r, Some(&s), ConsentState::NotRequired, false),
        Decision::Issue
    );
}

#[test]
fn decide_prompt_consent_asks_until_granted_now() {
    let r = req(&[("prompt", "consent")]);
    let s = session(NOW - 5);
    assert_eq!(
        d(&r, Some(&s), ConsentState::Granted, false),
        Decision::Consent
    );
    assert_eq!(
        d(&r, Some(&s), ConsentState::NotRequired, false),
        Decision::Consent
    );
    assert_eq!(
        d(&r, Some(&s), ConsentState::GrantedNow, false),
        Decision::Issue
    );
}

#[test]
fn decide_login_comes_before_consent() {
    let r = req(&[("prompt", "login")]);
    let s = session(NOW - 5);
    assert_eq!(
        d(&r, Some(&s), ConsentState::Missing, false),
        Decision::Login
    );
    assert_eq!(
        d(&r, Some(&s), ConsentState::Missing, true),
        Decision::Consent
    );
}

#[test]
fn consent_covers_narrower_or_equal() {
    let granted = scope("openid profile email");
    assert!(consent_covers(&granted, &scope("openid profile")));
    assert!(consent_covers(&granted, &granted));
    assert!(!consent_covers(&granted, &scope("openid offline_access")));
}

// ---- RFC 8252: native apps -----------------------------------------------------------------

const LOOPBACK: &str = "http://127.0.0.1:8000/cb";

fn native_client() -> crate::domain::Client {
    let mut c = crate::oidc::test_support::public_client();
    c.redirect_uris = vec![
        crate::domain::RedirectUri::parse("redirect_uri", LOOPBACK).unwrap(),
        crate::domain::RedirectUri::parse("redirect_uri", REDIRECT).unwrap(),
    ];
    c
}

fn native_req(redirect_uri: &str, changes: &[(&str, &str)]) -> AuthorizationRequest {
    let c = native_client();
    let uri = check_client_and_redirect(Some(&c), Some("spa"), Some(redirect_uri)).unwrap();
    check_request(&with(changes), &c, uri).unwrap()
}

#[test]
fn stage1_loopback_ip_redirect_accepts_any_port() {
    let c = native_client();
    assert_eq!(
        check_client_and_redirect(Some(&c), Some("spa"), Some("http://127.0.0.1:49152/cb")),
        Ok("http://127.0.0.1:49152/cb".to_owned())
    );
    assert!(
        check_client_and_redirect(Some(&c), Some("spa"), Some("http://127.0.0.1:49152/other"))
            .is_err()
    );
    assert!(
        check_client_and_redirect(Some(&c), Some("spa"), Some("https://app.example:444/cb"))
            .is_err()
    );
}

#[test]
fn a_public_client_on_a_loopback_redirect_never_gets_a_silent_code() {
    let r = native_req("http://127.0.0.1:49152/cb", &[]);
    assert!(r.requires_interaction);
    let s = session(NOW - 5);
    for consent in [ConsentState::Granted, ConsentState::NotRequired] {
        assert_eq!(d(&r, Some(&s), consent, false), Decision::Consent);
        // Signing in or consenting in this request is the interaction.
        assert_eq!(d(&r, Some(&s), consent, true), Decision::Issue);
    }
    assert_eq!(
        d(&r, Some(&s), ConsentState::GrantedNow, false),
        Decision::Issue
    );
    let silent = native_req("http://127.0.0.1:49152/cb", &[("prompt", "none")]);
    assert_eq!(
        err_code(d(&silent, Some(&s), ConsentState::Granted, false)),
        Some(ErrorCode::InteractionRequired)
    );
}

#[test]
fn https_redirects_and_confidential_clients_stay_silent() {
    let s = session(NOW - 5);
    let r = native_req(REDIRECT, &[]);
    assert!(!r.requires_interaction);
    assert_eq!(
        d(&r, Some(&s), ConsentState::Granted, false),
        Decision::Issue
    );
    let mut c = native_client();
    c.kind = crate::domain::ClientKind::Confidential;
    let uri = check_client_and_redirect(Some(&c), Some("spa"), Some(LOOPBACK)).unwrap();
    assert!(
        !check_request(&with(&[]), &c, uri)
            .unwrap()
            .requires_interaction
    );
}

// ---- OIDC Core §3.1.2.1: id_token_hint ------------------------------------------------------

#[test]
fn a_hint_for_another_user_needs_a_login() {
    let s = session(NOW - 5);
    let mut r = req(&[]);
    r.hint_sub = Some(s.user_id.as_str().to_owned());
    assert_eq!(
        d(&r, Some(&s), ConsentState::Granted, false),
        Decision::Issue
    );
    r.hint_sub = Some("someone-else".to_owned());
    assert_eq!(
        d(&r, Some(&s), ConsentState::Granted, false),
        Decision::Login
    );
    assert_eq!(
        d(&r, Some(&s), ConsentState::Granted, true),
        Decision::Issue
    );
    let mut silent = req(&[("prompt", "none")]);
    silent.hint_sub = Some("someone-else".to_owned());
    assert_eq!(
        err_code(d(&silent, Some(&s), ConsentState::Granted, false)),
        Some(ErrorCode::LoginRequired)
    );
}
