//! Single use under concurrency: one refresh token or one code, 32 requests at once.

use futures_util::future::join_all;
use serde_json::Value;

use crate::helpers::{spawn_app, Backend};
use crate::oauth::*;

crate::both_stores!(
    concurrent_refreshes_have_one_winner_and_revoke_the_family,
    concurrent_code_redemptions_have_one_winner,
);

const N: usize = 32;

/// Splits responses into the successful bodies and the error codes; panics on anything
/// other than 200 or 400.
async fn outcomes(responses: Vec<reqwest::Response>) -> (Vec<Value>, Vec<String>) {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for res in responses {
        let status = res.status().as_u16();
        let body: Value = res.json().await.expect("JSON body");
        match status {
            200 => ok.push(body),
            400 => errors.push(body["error"].as_str().unwrap_or_default().to_owned()),
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    (ok, errors)
}

async fn concurrent_refreshes_have_one_winner_and_revoke_the_family(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (_, _, t) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let rt = s(&t, "refresh_token").to_owned();

    let responses = join_all((0..N).map(|_| refresh(&app, &client, &rt))).await;
    let (ok, errors) = outcomes(responses).await;
    assert_eq!(ok.len(), 1, "exactly one winner; errors {errors:?}");
    assert_eq!(errors.len(), N - 1);
    assert!(errors.iter().all(|e| e == "invalid_grant"), "{errors:?}");

    // The losers were replays: the winner's new token is revoked with the family.
    assert_refresh_dead(&app, &client, s(&ok[0], "refresh_token")).await;
    assert_refresh_dead(&app, &client, &rt).await;
}

async fn concurrent_code_redemptions_have_one_winner(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let browser = Browser::new(&app);
    let req = AuthRequest::new(&client, FULL_SCOPE);
    let code = login_and_get_code(&app, &browser, &req, USERNAME).await;

    let responses = join_all((0..N).map(|_| exchange_code(&app, &client, &code, &req))).await;
    let (ok, errors) = outcomes(responses).await;
    assert_eq!(ok.len(), 1, "exactly one winner; errors {errors:?}");
    assert_eq!(errors.len(), N - 1);
    assert!(errors.iter().all(|e| e == "invalid_grant"), "{errors:?}");
    assert!(ok[0]["access_token"].is_string());
}
