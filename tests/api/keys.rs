//! Key rotation through the CLI, seen by a running server.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{spawn_app, spawn_app_with, Backend, TestApp};

crate::both_stores!(
    rotation_is_published_and_signs_within_the_refresh_interval,
    rotation_is_refused_until_the_next_key_is_published_long_enough,
    retire_needs_a_previous_key_whose_tokens_expired,
);

async fn jwks_states(app: &TestApp) -> Vec<String> {
    let jwks: Value = app
        .http
        .get(app.url("/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// The `kid` of a client_credentials access token from the running server.
async fn signing_kid(app: &TestApp, client: &crate::oauth::TestClient) -> String {
    let res = crate::oauth::token(app, client, &[("grant_type", "client_credentials")]).await;
    let tokens = crate::oauth::assert_tokens(res).await;
    let token = tokens["access_token"].as_str().unwrap();
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

fn key_lines(app: &TestApp) -> Vec<(String, String)> {
    let out = app.cli(&["keys", "list"]);
    assert!(out.status.success(), "{}", out.stderr);
    out.stdout
        .lines()
        .skip(1)
        .map(|l| {
            let mut parts = l.split_whitespace();
            (
                parts.next().unwrap().to_owned(),
                parts.next().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn rotation_is_published_and_signs_within_the_refresh_interval(backend: Backend) {
    let app = spawn_app(backend).await;
    let (current, next) = crate::helpers::fixture_keys().await;
    let client = crate::oauth::cc_client(&app, &[]).await;
    assert_eq!(signing_kid(&app, &client).await, current.kid);

    let out = app.cli(&["keys", "rotate", "--force"]);
    assert!(out.status.success(), "{}", out.stderr);
    let states = key_lines(&app);
    let state_of = |kid: &str| {
        states
            .iter()
            .find(|(k, _)| k == kid)
            .map(|(_, s)| s.as_str())
    };
    assert_eq!(state_of(&current.kid), Some("previous"));
    assert_eq!(state_of(&next.kid), Some("current"));
    let new_next = states.iter().find(|(_, s)| s == "next").unwrap().0.clone();

    // The running server picks the rotation up within keys.refresh_interval_secs (1 s here).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while signing_kid(&app, &client).await != next.kid {
        assert!(
            std::time::Instant::now() < deadline,
            "server still signs with the old key"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let published = jwks_states(&app).await;
    assert_eq!(
        published.len(),
        3,
        "previous, current and next are all published"
    );
    for kid in [&current.kid, &next.kid, &new_next] {
        assert!(published.contains(kid), "{kid} not in JWKS");
    }
}

async fn rotation_is_refused_until_the_next_key_is_published_long_enough(backend: Backend) {
    // The fixture's next key is an hour old; a max-age of two hours makes it too young.
    let app = spawn_app_with(backend, |s| s.keys.jwks_max_age_secs = 7200).await;
    let before = key_lines(&app);
    let out = app.cli(&["keys", "rotate"]);
    assert!(!out.status.success());
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert_eq!(key_lines(&app), before, "nothing changed");
}

async fn retire_needs_a_previous_key_whose_tokens_expired(backend: Backend) {
    let app = spawn_app(backend).await;
    let (current, next) = crate::helpers::fixture_keys().await;
    // Only a previous key may be retired.
    let out = app.cli(&["keys", "retire", &current.kid]);
    assert!(
        !out.status.success() && out.stderr.contains("only a previous key"),
        "{}",
        out.stderr
    );
    assert!(app.cli(&["keys", "rotate", "--force"]).status.success());
    // Its tokens may still be valid: refused without --force.
    let out = app.cli(&["keys", "retire", &current.kid]);
    assert!(
        !out.status.success() && out.stderr.contains("--force"),
        "{}",
        out.stderr
    );
    let out = app.cli(&["keys", "retire", &current.kid, "--force"]);
    assert!(out.status.success(), "{}", out.stderr);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while jwks_states(&app).await.contains(&current.kid) {
        assert!(
            std::time::Instant::now() < deadline,
            "retired key still published"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(jwks_states(&app).await.contains(&next.kid));
    let out = app.cli(&["keys", "retire", "no-such-kid"]);
    assert!(
        !out.status.success() && out.stderr.starts_with("error: "),
        "{}",
        out.stderr
    );
}
