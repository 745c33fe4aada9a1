//! Discovery documents, JWKS, health and security headers.

use serde_json::Value;

use crate::helpers::{spawn_app, Backend};

crate::both_stores!(
    discovery_document_follows_the_spec,
    oauth_metadata_follows_rfc_8414,
    jwks_publishes_public_keys_only,
    jwks_is_cacheable_with_an_etag,
    health_and_readiness,
    security_headers_on_every_response,
);

async fn get_json(
    app: &crate::helpers::TestApp,
    path: &str,
) -> (reqwest::header::HeaderMap, Value) {
    let res = app.http.get(app.url(path)).send().await.unwrap();
    assert_eq!(res.status(), 200, "{path}");
    let headers = res.headers().clone();
    (headers, res.json().await.unwrap())
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect()
}

async fn discovery_document_follows_the_spec(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, d) = get_json(&app, "/.well-known/openid-configuration").await;
    // OIDC Discovery §3: REQUIRED members, and issuer identical to the one we serve from.
    assert_eq!(d["issuer"], app.address);
    for field in [
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "userinfo_endpoint",
    ] {
        let url = d[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} missing"));
        assert!(url.starts_with(&app.address), "{field}: {url}");
    }
    assert_eq!(d["jwks_uri"], format!("{}/jwks.json", app.address));
    assert_eq!(strings(&d["response_types_supported"]), ["code"]);
    assert_eq!(strings(&d["subject_types_supported"]), ["public"]);
    assert_eq!(
        strings(&d["id_token_signing_alg_values_supported"]),
        ["RS256"]
    );
    assert_eq!(strings(&d["code_challenge_methods_supported"]), ["S256"]);
    assert!(strings(&d["scopes_supported"]).contains(&"openid"));
    let grants = strings(&d["grant_types_supported"]);
    assert!(!grants.contains(&"implicit") && !grants.contains(&"password"));
    assert!(!strings(&d["token_endpoint_auth_methods_supported"]).contains(&"client_secret_jwt"));
}

async fn oauth_metadata_follows_rfc_8414(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, d) = get_json(&app, "/.well-known/oauth-authorization-server").await;
    // RFC 8414 §2: issuer, endpoints, response_types_supported are REQUIRED.
    assert_eq!(d["issuer"], app.address);
    assert_eq!(d["token_endpoint"], format!("{}/token", app.address));
    assert_eq!(d["jwks_uri"], format!("{}/jwks.json", app.address));
    assert_eq!(strings(&d["response_types_supported"]), ["code"]);
    assert_eq!(strings(&d["code_challenge_methods_supported"]), ["S256"]);
}

async fn jwks_publishes_public_keys_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let (current, next) = crate::helpers::fixture_keys().await;
    let (_, jwks) = get_json(&app, "/jwks.json").await;
    let keys = jwks["keys"].as_array().unwrap();
    let kids: Vec<&str> = keys.iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids.len(), 2);
    assert!(kids.contains(&current.kid.as_str()) && kids.contains(&next.kid.as_str()));
    for k in keys {
        assert_eq!(k["kty"], "RSA");
        assert_eq!(k["use"], "sig");
        assert_eq!(k["alg"], "RS256");
        assert!(k["n"].as_str().unwrap().len() > 300, "2048-bit modulus");
        assert_eq!(k["e"], "AQAB");
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            assert!(
                k.get(private).is_none(),
                "private member {private} published"
            );
        }
    }
}

async fn jwks_is_cacheable_with_an_etag(backend: Backend) {
    let app = spawn_app(backend).await;
    let res = app.http.get(app.url("/jwks.json")).send().await.unwrap();
    assert_eq!(res.headers()["cache-control"], "public, max-age=60");
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'));
    let again = app
        .http
        .get(app.url("/jwks.json"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let other = app
        .http
        .get(app.url("/jwks.json"))
        .header("If-None-Match", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
}

async fn health_and_readiness(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in ["/healthz", "/readyz"] {
        let res = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
}

async fn security_headers_on_every_response(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in [
        "/healthz",
        "/jwks.json",
        "/.well-known/openid-configuration",
        "/no-such-page",
    ] {
        let res = app.http.get(app.url(path)).send().await.unwrap();
        let h = res.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert!(h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'"));
        assert!(h.get("x-request-id").is_some(), "{path}");
        // The issuer is http on loopback here: no HSTS.
        assert!(h.get("strict-transport-security").is_none(), "{path}");
    }
}
