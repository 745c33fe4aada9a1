use super::*;
use crate::oidc::test_support::{scope, user};
use serde_json::json;

fn app() -> ClientId {
    ClientId::parse("app").unwrap()
}

#[test]
fn at_hash_is_left_half_of_sha256() {
    // Cross-checked with: printf %s TOKEN | openssl dgst -sha256 -binary | head -c 16 | base64
    assert_eq!(
        at_hash("jHkWEdUXMU1BwAsC4vtUsZwnoXKDg3WcxHYoRsZjnDA"),
        "vsi4HZ7WbgQwYMZ8dikhYg"
    );
    assert_eq!(at_hash("x").len(), 22);
}

#[test]
fn user_claims_follow_scope() {
    let u = user();
    assert!(user_claims(&u, &scope("openid")).is_empty());
    let profile = user_claims(&u, &scope("openid profile"));
    assert_eq!(
        Value::Object(profile),
        json!({"preferred_username": "alice", "updated_at": 200})
    );
    let email = user_claims(&u, &scope("email"));
    assert_eq!(
        Value::Object(email),
        json!({"email": "alice@example.com", "email_verified": true})
    );
    let roles = user_claims(&u, &scope("roles"));
    assert_eq!(Value::Object(roles), json!({"roles": ["admin", "dev"]}));
}

#[test]
fn userinfo_always_has_sub() {
    let c = userinfo_claims(&user(), &scope("openid"));
    assert_eq!(Value::Object(c), json!({"sub": "u-1"}));
}

fn at_input<'a>(u: Option<&'a User>, s: &'a Scope, id: &'a ClientId) -> AccessTokenInput<'a> {
    AccessTokenInput {
        issuer: "https://id.example",
        user: u,
        client_id: id,
        audience: vec!["https://api.example/".to_owned()],
        scope: s,
        jti: "jti-1",
        now: 1000,
        ttl: 300,
        auth_time: Some(900),
        sid: Some("sid-1"),
    }
}

#[test]
fn access_token_for_user() {
    let (u, s, id) = (user(), scope("openid roles"), app());
    let c = access_token_claims(at_input(Some(&u), &s, &id));
    assert_eq!(
        serde_json::to_value(&c).unwrap(),
        json!({
            "iss": "https://id.example",
            "sub": "u-1",
            "aud": ["https://api.example/"],
            "exp": 1300,
            "iat": 1000,
            "jti": "jti-1",
            "client_id": "app",
            "scope": "openid roles",
            "auth_time": 900,
            "sid": "sid-1",
            "roles": ["admin", "dev"],
        })
    );
}

#[test]
fn access_token_without_roles_scope_has_no_roles() {
    let (u, s, id) = (user(), scope("openid"), app());
    assert_eq!(access_token_claims(at_input(Some(&u), &s, &id)).roles, None);
}

#[test]
fn client_credentials_token_sub_is_client_id() {
    let (s, id) = (scope("api:read roles"), app());
    let c = access_token_claims(at_input(None, &s, &id));
    assert_eq!(c.sub, "app");
    assert_eq!(c.auth_time, None);
    assert_eq!(c.roles, None);
}

#[test]
fn access_token_aud_reads_string_or_array() {
    let (u, s, id) = (user(), scope("openid"), app());
    let c = access_token_claims(at_input(Some(&u), &s, &id));
    let mut v = serde_json::to_value(&c).unwrap();
    v["aud"] = json!("https://api.example/");
    let back: AccessTokenClaims = serde_json::from_value(v).unwrap();
    assert_eq!(back, c);
}

#[test]
fn id_token_claims_are_complete() {
    let (u, s, id) = (user(), scope("openid email"), app());
    let amr = vec!["pwd".to_owned()];
    let c = id_token_claims(IdTokenInput {
        issuer: "https://id.example",
        user: &u,
        client_id: &id,
        scope: &s,
        now: 1000,
        ttl: 600,
        auth_time: 990,
        nonce: Some("n-1"),
        access_token: Some("jHkWEdUXMU1BwAsC4vtUsZwnoXKDg3WcxHYoRsZjnDA"),
        amr: &amr,
        sid: None,
    });
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(
        v,
        json!({
            "iss": "https://id.example",
            "sub": "u-1",
            "aud": "app",
            "exp": 1600,
            "iat": 1000,
            "auth_time": 990,
            "nonce": "n-1",
            "at_hash": "vsi4HZ7WbgQwYMZ8dikhYg",
            "amr": ["pwd"],
            "acr": "urn:latchkey:acr:password",
            "email": "alice@example.com",
            "email_verified": true,
        })
    );
    let back: IdTokenClaims = serde_json::from_value(v).unwrap();
    assert_eq!(back, c);
}
