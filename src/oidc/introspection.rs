//! Token introspection responses (RFC 7662 §2.2).

use serde_json::{json, Value};

use super::AccessTokenClaims;

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
    fn inactive_is_only_active_false() {
        assert_eq!(inactive_response().to_string(), r#"{"active":false}"#);
    }
}
