//! Token introspection responses (RFC 7662 §2.2).

use serde_json::{json, Value};

use super::AccessTokenClaims;
use crate::clock::UnixTime;
use crate::domain::Client;

/// RFC 7662 §4: "the authorization server SHOULD ... determine whether the protected resource
/// is allowed to introspect this particular token" (need-to-know). `caller` may see an access
/// token issued to it (`client_id`) or naming it in `aud`, or any token when an admin
/// registered it as a resource server (`introspect_any`).
pub fn may_introspect(caller: &Client, token_client_id: &str, token_aud: &[String]) -> bool {
    let id = caller.id.as_str();
    caller.introspect_any || token_client_id == id || token_aud.iter().any(|a| a == id)
}

/// A token stays good only while the client it was issued to exists and has not revoked
/// its tokens since (`client rotate-secret --revoke-tokens`): tokens issued at or before
/// `tokens_revoked_at` are inactive.
pub fn issued_to_live_client(owner: Option<&Client>, iat: UnixTime) -> bool {
    owner.is_some_and(|c| iat > c.tokens_revoked_at)
}

/// RFC 7662 §2.2: the response for an active token. `username` is the user's login name,
/// when there is a user; `token_type` is the RFC 7662 hint value (e.g. `Bearer`,
/// `refresh_token`). Optional members without a value are omitted.
pub fn active_response(
    claims: &AccessTokenClaims,
    token_type: &str,
    username: Option<&str>,
) -> Value {
    let mut body = json!({
        "active": true,
        "scope": claims.scope,
        "client_id": claims.client_id,
        "token_type": token_type,
        "exp": claims.exp,
        "iat": claims.iat,
        "sub": claims.sub,
        "aud": claims.aud,
        "iss": claims.iss,
        "jti": claims.jti,
    });
    if let Some(obj) = body.as_object_mut() {
        if let Some(name) = username {
            obj.insert("username".into(), name.into());
        }
        if let Some(nbf) = claims.nbf {
            obj.insert("nbf".into(), nbf.into());
        }
    }
    body
}

/// RFC 7662 §2.2: "If the introspection call is properly authorized but the token is not
/// active, does not exist on this server, or the protected resource is not allowed to
/// introspect this particular token, then the authorization server MUST return an
/// introspection response with the 'active' field set to 'false'" — and nothing else, so
/// nothing leaks about the token.
pub fn inactive_response() -> Value {
    json!({ "active": false })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "https://id.example".into(),
            sub: "u-1".into(),
            aud: vec!["https://api.example/".into()],
            exp: 1300,
            iat: 1000,
            nbf: None,
            jti: "jti-1".into(),
            client_id: "app".into(),
            scope: "openid".into(),
            auth_time: Some(900),
            sid: Some("sid".into()),
            roles: None,
        }
    }

    #[test]
    fn active_response_fields() {
        assert_eq!(
            active_response(&claims(), "Bearer", Some("alice")),
            json!({
                "active": true,
                "scope": "openid",
                "client_id": "app",
                "username": "alice",
                "token_type": "Bearer",
                "exp": 1300,
                "iat": 1000,
                "sub": "u-1",
                "aud": ["https://api.example/"],
                "iss": "https://id.example",
                "jti": "jti-1",
            })
        );
    }

    #[test]
    fn username_omitted_without_user() {
        let v = active_response(&claims(), "Bearer", None);
        assert!(v.get("username").is_none());
        assert_eq!(v["active"], true);
    }

    #[test]
    fn need_to_know() {
        let mut rs = crate::oidc::test_support::client();
        let id = rs.id.as_str().to_owned();
        let aud = vec!["https://api.example/".to_owned()];
        assert!(may_introspect(&rs, &id, &aud), "issued to it");
        assert!(!may_introspect(&rs, "other", &aud), "someone else's");
        assert!(
            may_introspect(&rs, "other", std::slice::from_ref(&id)),
            "names it in aud"
        );
        assert!(!may_introspect(&rs, "other", &[]));
        rs.introspect_any = true;
        assert!(
            may_introspect(&rs, "other", &aud),
            "registered resource server"
        );
    }

    #[test]
    fn tokens_of_deleted_or_revoking_clients_are_dead() {
        let mut c = crate::oidc::test_support::client();
        assert!(issued_to_live_client(Some(&c), 1000));
        assert!(!issued_to_live_client(None, 1000));
        c.tokens_revoked_at = 1000;
        assert!(!issued_to_live_client(Some(&c), 999));
        assert!(
            !issued_to_live_client(Some(&c), 1000),
            "the rotation second counts"
        );
        assert!(issued_to_live_client(Some(&c), 1001));
    }

    #[test]
    fn inactive_is_only_active_false() {
        assert_eq!(inactive_response().to_string(), r#"{"active":false}"#);
    }
}
