//! Opt-in refresh grace (issue 10, point 8): within a client's window a refresh token
//! presented again returns the same successor and the family lives; after it, or with no
//! window, a replay revokes the family (flows_concurrency.rs proves the strict default
//! under 32 concurrent requests).

use futures_util::future::join_all;
use latchkey::service::admin::NewClient;

use crate::helpers::{spawn_app, Backend, TestApp};
use crate::oauth::*;

crate::both_stores!(
    within_the_window_the_same_successor_comes_back_and_the_family_lives,
    after_the_window_a_replay_revokes_the_family,
    without_a_window_a_replay_revokes_the_family_at_once,
    concurrent_refreshes_within_the_window_all_get_the_one_successor,
    a_spent_successor_ends_the_grace,
    the_window_is_registered_with_the_cli_and_bounded,
);

const GRACE: i64 = 10;

async fn grace_client(app: &TestApp, secs: u64) -> TestClient {
    register(
        app,
        NewClient {
            refresh_grace_secs: secs,
            ..confidential_input("Tabs")
        },
    )
    .await
}

/// A family for `client`: its first refresh token.
async fn first_refresh_token(app: &TestApp, client: &TestClient) -> String {
    alice(app).await;
    let (_, _, t) = full_flow(app, client, USERNAME, FULL_SCOPE).await;
    s(&t, "refresh_token").to_owned()
}

async fn within_the_window_the_same_successor_comes_back_and_the_family_lives(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = grace_client(&app, 10).await;
    let rt0 = first_refresh_token(&app, &client).await;
    let first = assert_tokens(refresh(&app, &client, &rt0).await).await;
    let rt1 = s(&first, "refresh_token").to_owned();

    app.clock.advance(GRACE);
    let again = assert_tokens(refresh(&app, &client, &rt0).await).await;
    assert_eq!(s(&again, "refresh_token"), rt1, "the same successor");
    let at = s(&again, "access_token");
    let info = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 200, "the access token works");

    // The family lives on: the successor refreshes as usual.
    let next = assert_tokens(refresh(&app, &client, &rt1).await).await;
    assert_ne!(s(&next, "refresh_token"), rt1);
    // Another client presenting the token gets nothing and changes nothing.
    let other = grace_client(&app, 10).await;
    let res = refresh(&app, &other, s(&next, "refresh_token")).await;
    assert_error(res, 400, "invalid_grant").await;
    assert_tokens(refresh(&app, &client, s(&next, "refresh_token")).await).await;
}

async fn after_the_window_a_replay_revokes_the_family(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = grace_client(&app, 10).await;
    let rt0 = first_refresh_token(&app, &client).await;
    let first = assert_tokens(refresh(&app, &client, &rt0).await).await;
    let rt1 = s(&first, "refresh_token").to_owned();

    app.clock.advance(GRACE + 1);
    assert_error(refresh(&app, &client, &rt0).await, 400, "invalid_grant").await;
    assert_refresh_dead(&app, &client, &rt1).await;
}

async fn without_a_window_a_replay_revokes_the_family_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    let rt0 = first_refresh_token(&app, &client).await;
    let first = assert_tokens(refresh(&app, &client, &rt0).await).await;
    let rt1 = s(&first, "refresh_token").to_owned();

    assert_error(refresh(&app, &client, &rt0).await, 400, "invalid_grant").await;
    assert_refresh_dead(&app, &client, &rt1).await;
}

async fn concurrent_refreshes_within_the_window_all_get_the_one_successor(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = grace_client(&app, 10).await;
    let rt0 = first_refresh_token(&app, &client).await;

    let responses = join_all((0..8).map(|_| refresh(&app, &client, &rt0))).await;
    let mut successors = Vec::new();
    for res in responses {
        let body = assert_tokens(res).await;
        successors.push(s(&body, "refresh_token").to_owned());
    }
    successors.dedup();
    assert_eq!(successors.len(), 1, "one successor for every tab");
    assert_tokens(refresh(&app, &client, &successors[0]).await).await;
}

async fn a_spent_successor_ends_the_grace(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = grace_client(&app, 10).await;
    let rt0 = first_refresh_token(&app, &client).await;
    let first = assert_tokens(refresh(&app, &client, &rt0).await).await;
    let rt1 = s(&first, "refresh_token").to_owned();
    let second = assert_tokens(refresh(&app, &client, &rt1).await).await;

    // rt0's successor is spent: handing it out again would only postpone the reuse.
    assert_error(refresh(&app, &client, &rt0).await, 400, "invalid_grant").await;
    assert_refresh_dead(&app, &client, s(&second, "refresh_token")).await;
}

async fn the_window_is_registered_with_the_cli_and_bounded(backend: Backend) {
    let app = spawn_app(backend).await;
    let create = |grace: &str| {
        app.cli(&[
            "client",
            "create",
            "--name",
            "Tabs",
            "--redirect-uri",
            "https://app.example/cb",
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--refresh-grace-secs",
            grace,
            "--json",
        ])
    };
    let out = create("5");
    assert!(out.status.success(), "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let id = latchkey::domain::ClientId::parse(v["client_id"].as_str().unwrap()).unwrap();
    let stored = app.state.store.get_client(&id).await.unwrap().unwrap();
    assert_eq!(stored.refresh_grace_secs, 5);

    let out = create("3600");
    assert!(!out.status.success());
    assert!(out.stderr.contains("refresh-grace-secs"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
}
