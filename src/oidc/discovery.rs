//! Discovery documents: OpenID Provider Metadata (OIDC Discovery 1.0 §3) and OAuth 2.0
//! Authorization Server Metadata (RFC 8414 §2).

use serde_json::{json, Map, Value};

/// Scopes offered.
pub const SCOPES_SUPPORTED: [&str; 5] = ["openid", "profile", "email", "offline_access", "roles"];
/// Claims that can appear in ID tokens and UserInfo responses.
pub const CLAIMS_SUPPORTED: [&str; 16] = [
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "at_hash",
    "amr",
    "acr",
    "sid",
    "preferred_username",
    "updated_at",
    "email",
    "email_verified",
    "roles",
];
/// `prompt` values understood (OIDC Core §3.1.2.1).
pub const PROMPT_VALUES_SUPPORTED: [&str; 4] = ["none", "login", "consent", "select_account"];

/// OIDC Discovery 1.0 §3: the document served at `/.well-known/openid-configuration`.
/// `algs` are the ID-token signing algorithms of the crypto allowlist.
pub fn openid_configuration(issuer: &str, algs: &[&str]) -> Value {
    let base = base(issuer);
    let mut doc = common(issuer);
    let oidc = json!({
        "userinfo_endpoint": format!("{base}/userinfo"),
        "end_session_endpoint": format!("{base}/logout"),
        // §3: subject_types_supported and id_token_signing_alg_values_supported are REQUIRED.
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
        "claims_supported": CLAIMS_SUPPORTED,
        "prompt_values_supported": PROMPT_VALUES_SUPPORTED,
        "acr_values_supported": super::acr::ACR_VALUES_SUPPORTED,
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        // §3: the default for request_uri_parameter_supported is true, so say false.
        "request_uri_parameter_supported": false,
    });
    merge(&mut doc, oidc);
    Value::Object(doc)
}

/// RFC 8414 §2: the document served at `/.well-known/oauth-authorization-server`.
pub fn authorization_server_metadata(issuer: &str) -> Value {
    Value::Object(common(issuer))
}

/// The issuer without a trailing slash, for joining endpoint paths.
fn base(issuer: &str) -> &str {
    issuer.trim_end_matches('/')
}

/// The fields both documents share (RFC 8414 §2; OIDC Discovery 1.0 §3).
fn common(issuer: &str) -> Map<String, Value> {
    let base = base(issuer);
    let doc = json!({
        // RFC 8414 §2 / Discovery §3: the issuer MUST be identical to the `iss` value, so
        // it is echoed exactly as configured.
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks.json"),
        "revocation_endpoint": format!("{base}/revoke"),
        "introspection_endpoint": format!("{base}/introspect"),
        "scopes_supported": SCOPES_SUPPORTED,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        // RFC 7636 §4.2, RFC 8414 §2: only S256.
        "code_challenge_methods_supported": ["S256"],
        // RFC 9207 §3: the authorization response carries `iss`.
        "authorization_response_iss_parameter_supported": true,
    });
    match doc {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn merge(into: &mut Map<String, Value>, extra: Value) {
    if let Value::Object(extra) = extra {
        into.extend(extra);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://id.example";
    const ALGS: [&str; 2] = ["RS256", "ES256"];

    fn strings(v: &Value) -> Vec<&str> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect()
    }

    #[test]
    fn openid_configuration_has_required_fields() {
        // OIDC Discovery 1.0 §3 REQUIRED metadata.
        let doc = openid_configuration(ISSUER, &ALGS);
        for field in [
            "issuer",
            "authorization_endpoint",
            "token_endpoint",
            "jwks_uri",
            "response_types_supported",
            "subject_types_supported",
            "id_token_signing_alg_values_supported",
        ] {
            assert!(doc.get(field).is_some(), "{field}");
        }
        assert_eq!(doc["issuer"], ISSUER);
        assert_eq!(
            doc["authorization_endpoint"],
            "https://id.example/authorize"
        );
        assert_eq!(doc["token_endpoint"], "https://id.example/token");
        assert_eq!(doc["userinfo_endpoint"], "https://id.example/userinfo");
        assert_eq!(doc["jwks_uri"], "https://id.example/jwks.json");
        assert_eq!(doc["revocation_endpoint"], "https://id.example/revoke");
        assert_eq!(
            doc["introspection_endpoint"],
            "https://id.example/introspect"
        );
        assert_eq!(doc["end_session_endpoint"], "https://id.example/logout");
        assert_eq!(strings(&doc["id_token_signing_alg_values_supported"]), ALGS);
        assert_eq!(strings(&doc["subject_types_supported"]), ["public"]);
    }

    #[test]
    fn advertises_exactly_what_is_implemented() {
        let doc = openid_configuration(ISSUER, &ALGS);
        assert_eq!(strings(&doc["response_types_supported"]), ["code"]);
        assert_eq!(strings(&doc["response_modes_supported"]), ["query"]);
        assert_eq!(strings(&doc["code_challenge_methods_supported"]), ["S256"]);
        assert_eq!(
            strings(&doc["grant_types_supported"]),
            ["authorization_code", "refresh_token", "client_credentials"]
        );
        assert_eq!(
            strings(&doc["token_endpoint_auth_methods_supported"]),
            ["client_secret_basic", "client_secret_post", "none"]
        );
        for f in [
            "revocation_endpoint_auth_methods_supported",
            "introspection_endpoint_auth_methods_supported",
        ] {
            assert_eq!(
                strings(&doc[f]),
                ["client_secret_basic", "client_secret_post"]
            );
        }
        assert_eq!(strings(&doc["scopes_supported"]), SCOPES_SUPPORTED);
        assert_eq!(
            strings(&doc["prompt_values_supported"]),
            PROMPT_VALUES_SUPPORTED
        );
        assert!(strings(&doc["claims_supported"]).contains(&"sub"));
        assert_eq!(doc["request_parameter_supported"], false);
        assert_eq!(doc["request_uri_parameter_supported"], false);
        assert_eq!(doc["claims_parameter_supported"], false);
        assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    }

    #[test]
    fn trailing_slash_is_stripped_when_joining() {
        let doc = openid_configuration("https://id.example/tenant/", &ALGS);
        assert_eq!(doc["issuer"], "https://id.example/tenant/");
        assert_eq!(doc["token_endpoint"], "https://id.example/tenant/token");
        assert_eq!(doc["jwks_uri"], "https://id.example/tenant/jwks.json");
    }

    #[test]
    fn oauth_metadata_has_rfc8414_fields_and_no_oidc_endpoints() {
        // RFC 8414 §2: issuer and response_types_supported are REQUIRED; authorization and
        // token endpoints are required when those grants are supported.
        let doc = authorization_server_metadata(ISSUER);
        for field in [
            "issuer",
            "authorization_endpoint",
            "token_endpoint",
            "jwks_uri",
            "response_types_supported",
            "code_challenge_methods_supported",
        ] {
            assert!(doc.get(field).is_some(), "{field}");
        }
        assert!(doc.get("userinfo_endpoint").is_none());
        assert!(doc.get("end_session_endpoint").is_none());
    }
}
