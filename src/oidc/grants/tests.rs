use super::*;
use crate::oidc::test_support::{client, params, scope, REDIRECT, RESOURCE};
use crate::oidc::ErrorCode;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const NOW: i64 = 1_000;

// ---- parse_token_request ----

#[test]
fn parses_code_request() {
    let r = parse_token_request(&params(&[
        ("grant_type", "authorization_code"),
        ("code", "c0de"),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("resource", RESOURCE),
    ]))
    .unwrap();
    assert_eq!(r.grant_type(), GrantType::AuthorizationCode);
    let TokenRequest::AuthorizationCode {
        code,
        redirect_uri,
        code_verifier,
        resource,
    } = r
    else {
        panic!("wrong variant")
    };
    assert_eq!(code.expose(), "c0de");
    assert_eq!(redirect_uri.as_deref(), Some(REDIRECT));
    assert_eq!(code_verifier.as_ref().map(|v| v.expose()), Some(VERIFIER));
    assert_eq!(resource.as_deref(), Some(RESOURCE));
}

#[test]
fn parses_refresh_and_client_credentials() {
    let r = parse_token_request(&params(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", "rt"),
        ("scope", "openid"),
    ]))
    .unwrap();
    assert!(matches!(
        r,
        TokenRequest::RefreshToken { scope: Some(_), .. }
    ));
    let r = parse_token_request(&params(&[("grant_type", "client_credentials")])).unwrap();
    assert_eq!(
        r,
        TokenRequest::ClientCredentials {
            scope: None,
            resource: None
        }
    );
}

#[test]
fn missing_grant_type_is_invalid_request() {
    let e = parse_token_request(&params(&[("code", "c")])).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidRequest);
}

#[test]
fn unknown_grant_type_is_unsupported() {
    for g in [
        "password",
        "implicit",
        "urn:ietf:params:oauth:grant-type:device_code",
    ] {
        let e = parse_token_request(&params(&[("grant_type", g)])).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsupportedGrantType, "{g}");
    }
}

#[test]
fn missing_code_or_refresh_token_is_invalid_request() {
    let e = parse_token_request(&params(&[("grant_type", "authorization_code")])).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidRequest);
    let e = parse_token_request(&params(&[("grant_type", "refresh_token")])).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidRequest);
}

#[test]
fn malformed_scope_is_invalid_scope() {
    let e = parse_token_request(&params(&[
        ("grant_type", "client_credentials"),
        ("scope", "a\\b"),
    ]))
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidScope);
}

#[test]
fn debug_redacts_secrets() {
    let r = parse_token_request(&params(&[
        ("grant_type", "authorization_code"),
        ("code", "c0de-secret"),
        ("code_verifier", VERIFIER),
    ]))
    .unwrap();
    let shown = format!("{r:?}");
    assert!(
        !shown.contains("c0de-secret") && !shown.contains(VERIFIER),
        "{shown}"
    );
    let r = parse_token_request(&params(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", "rt-secret"),
    ]))
    .unwrap();
    assert!(!format!("{r:?}").contains("rt-secret"));
}

// ---- check_grant_allowed ----

#[test]
fn grant_must_be_registered() {
    let mut c = client();
    assert_eq!(
        check_grant_allowed(&c, GrantType::ClientCredentials),
        Ok(())
    );
    c.grant_types = vec![GrantType::AuthorizationCode];
    let e = check_grant_allowed(&c, GrantType::ClientCredentials).unwrap_err();
    assert_eq!(e.code, ErrorCode::UnauthorizedClient);
}

// ---- check_code_redemption ----

fn code() -> CodeGrantView {
    CodeGrantView {
        client_id: ClientId::parse("app").unwrap(),
        redirect_uri: REDIRECT.to_owned(),
        code_challenge: CodeChallenge::parse(Some(CHALLENGE), Some("S256")).unwrap(),
        expires_at: NOW + CODE_TTL,
        scope: scope("openid"),
        resource: None,
        user_id: UserId::from_stored("u-1".to_owned()),
        auth_time: NOW - 10,
        nonce: None,
    }
}

fn redeem(
    client_id: &str,
    uri: Option<&str>,
    verifier: Option<&str>,
    now: i64,
) -> Result<(), OAuthError> {
    check_code_redemption(
        &code(),
        &ClientId::parse(client_id).unwrap(),
        uri,
        verifier,
        now,
    )
}

#[test]
fn valid_redemption() {
    assert_eq!(redeem("app", Some(REDIRECT), Some(VERIFIER), NOW), Ok(()));
    assert_eq!(
        redeem("app", Some(REDIRECT), Some(VERIFIER), NOW + CODE_TTL - 1),
        Ok(())
    );
}

#[test]
fn code_for_another_client_is_invalid_grant() {
    let e = redeem("other", Some(REDIRECT), Some(VERIFIER), NOW).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidGrant);
}

#[test]
fn expired_code_is_invalid_grant() {
    let e = redeem("app", Some(REDIRECT), Some(VERIFIER), NOW + CODE_TTL).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidGrant);
}

#[test]
fn redirect_uri_must_be_identical() {
    for uri in [
        None,
        Some("https://app.example/cb/"),
        Some("https://app.example/other"),
    ] {
        let e = redeem("app", uri, Some(VERIFIER), NOW).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidGrant, "{uri:?}");
    }
}

#[test]
fn pkce_mismatch_is_invalid_grant() {
    let wrong = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK";
    let e = redeem("app", Some(REDIRECT), Some(wrong), NOW).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidGrant);
    let e = redeem("app", Some(REDIRECT), None, NOW).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidRequest);
}

// ---- scopes ----

#[test]
fn narrow_scope_rules() {
    let granted = scope("openid profile offline_access");
    assert_eq!(narrow_scope(&granted, None), Ok(granted.clone()));
    assert_eq!(
        narrow_scope(&granted, Some(&scope("openid"))),
        Ok(scope("openid"))
    );
    let e = narrow_scope(&granted, Some(&scope("openid email"))).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidScope);
    let e = narrow_scope(&granted, Some(&scope(""))).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidScope);
}

#[test]
fn client_credentials_default_scope_drops_user_scopes() {
    let s = client_credentials_scope(&client(), None).unwrap();
    assert_eq!(s, scope("profile email roles api:read"));
}

#[test]
fn client_credentials_requested_scope_rules() {
    let c = client();
    assert_eq!(
        client_credentials_scope(&c, Some(&scope("api:read"))),
        Ok(scope("api:read"))
    );
    for bad in ["openid", "offline_access api:read", "api:write", ""] {
        let e = client_credentials_scope(&c, Some(&scope(bad))).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidScope, "{bad}");
    }
    // The user-only tokens are refused by name, not merely as outside the client's scope.
    let e = client_credentials_scope(&c, Some(&scope("openid"))).unwrap_err();
    assert!(e.description.contains("client_credentials"));
}

// ---- audience ----

#[test]
fn audience_defaults_and_registered_resource() {
    let c = client();
    assert_eq!(
        choose_audience(&c, None, "https://id.example"),
        Ok(vec!["https://id.example".to_owned()])
    );
    assert_eq!(
        choose_audience(&c, Some(RESOURCE), "https://id.example"),
        Ok(vec![RESOURCE.to_owned()])
    );
}

#[test]
fn unregistered_or_malformed_resource_is_invalid_target() {
    for bad in [
        "https://other.example/",
        "relative/path",
        "https://api.example/#x",
    ] {
        let e = choose_audience(&client(), Some(bad), "https://id.example").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidTarget, "{bad}");
    }
}

#[test]
fn resource_must_stay_within_grant() {
    let granted = ResourceUri::parse(RESOURCE).unwrap();
    assert_eq!(
        check_resource_within_grant(Some(&granted), Some(RESOURCE)),
        Ok(())
    );
    assert_eq!(check_resource_within_grant(Some(&granted), None), Ok(()));
    assert_eq!(check_resource_within_grant(None, None), Ok(()));
    let e = check_resource_within_grant(None, Some(RESOURCE)).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidTarget);
    let e =
        check_resource_within_grant(Some(&granted), Some("https://other.example/")).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidTarget);
}

// ---- refresh families ----

fn family(created_at: i64, last_used_at: i64, revoked: bool) -> FamilyView {
    FamilyView {
        created_at,
        last_used_at,
        revoked,
    }
}

#[test]
fn live_family() {
    assert_eq!(
        check_family_alive(&family(0, 50, false), 100, 1000, 100),
        Ok(())
    );
}

#[test]
fn revoked_family_is_invalid_grant() {
    let e = check_family_alive(&family(0, 50, true), 100, 1000, 100).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidGrant);
}

#[test]
fn family_past_absolute_ttl_is_invalid_grant() {
    let e = check_family_alive(&family(0, 990, false), 1000, 1000, 100).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidGrant);
    assert!(check_family_alive(&family(0, 990, false), 999, 1000, 100).is_ok());
}

#[test]
fn idle_family_is_invalid_grant() {
    let e = check_family_alive(&family(0, 100, false), 200, 1000, 100).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidGrant);
    assert!(check_family_alive(&family(0, 100, false), 199, 1000, 100).is_ok());
}

#[test]
fn family_bounds_agree_with_check_family_alive() {
    for (created, used, now) in [(0, 100, 199), (0, 100, 200), (0, 990, 999), (0, 990, 1000)] {
        let b = family_bounds(now, 1000, 100);
        let by_bounds = created > b.created_after && used > b.used_after;
        let by_check = check_family_alive(&family(created, used, false), now, 1000, 100).is_ok();
        assert_eq!(
            by_bounds, by_check,
            "created {created} used {used} now {now}"
        );
    }
    let huge = family_bounds(NOW, i64::MAX / 4, i64::MAX / 4);
    assert!(huge.created_after < 0 && huge.used_after < 0);
}

#[test]
fn refresh_token_needs_grant_and_offline_access() {
    let c = client();
    assert!(issues_refresh_token(&c, &scope("openid offline_access")));
    assert!(!issues_refresh_token(&c, &scope("openid")));
    let mut no_refresh = client();
    no_refresh.grant_types = vec![GrantType::AuthorizationCode];
    assert!(!issues_refresh_token(
        &no_refresh,
        &scope("openid offline_access")
    ));
}
