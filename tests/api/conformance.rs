//! Issue 10: the OpenID certification behaviours and the review's hardening points
//! (request objects, error descriptions, logout that ends only the asking browser,
//! native apps, need-to-know introspection, `id_token_hint` at /authorize, CSP, re-login).

use serde_json::Value;

use crate::helpers::{spawn_app, Backend};
use crate::oauth::*;

crate::both_stores!(error_descriptions_stay_in_the_rfc6749_set,);

/// RFC 6749 §5.2: `error_description` is %x20-21 / %x23-5B / %x5D-7E; a repeated parameter
/// used to quote its name with `"`.
async fn error_descriptions_stay_in_the_rfc6749_set(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    let body = "grant_type=client_credentials&scope=a&scope=b";
    let res = reqwest::Client::new()
        .post(app.url("/token"))
        .header("content-type", FORM)
        .header(
            "authorization",
            basic(&client.id, client.secret.as_deref().unwrap()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"], "invalid_request");
    let d = v["error_description"].as_str().unwrap();
    assert!(d.contains("scope"), "{d}");
    assert!(
        d.bytes()
            .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E)),
        "{d:?}"
    );
}
