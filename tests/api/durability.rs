//! A rotation committed just before a crash is still spent after a restart (RFC 9700
//! §4.14.2 depends on it: a spent token that came back unspent could be used once more
//! without the reuse being detected). A child `latchkey serve` rotates a refresh token
//! and is killed with SIGKILL right after answering; a node opened afresh on the same
//! database must refuse the spent token and revoke the family as reuse.

use std::process::{Child, Command, Stdio};

use latchkey::domain::AuditFilter;
use serde_json::Value;

use crate::helpers::{spawn_app, spawn_second_node, Backend, TestApp};
use crate::oauth::{
    alice, assert_error, assert_tokens, basic, confidential_client, full_flow, refresh, s,
    TestClient, FULL_SCOPE, USERNAME,
};

crate::both_stores!(a_rotation_committed_before_a_crash_stays_spent);

/// `latchkey serve` on this app's database and settings, on a port of its own.
fn serve_child(app: &TestApp) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    for (k, _) in std::env::vars() {
        if k.starts_with("LATCHKEY_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    let child = cmd
        .args(["--config", &app.config_path.display().to_string(), "serve"])
        .env("LATCHKEY_LISTEN", format!("127.0.0.1:{port}"))
        .current_dir(app.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn latchkey serve");
    (child, format!("http://127.0.0.1:{port}"))
}

/// Waits until the child answers /healthz (it migrates and loads keys first).
async fn wait_ready(http: &reqwest::Client, base: &str) {
    for _ in 0..300 {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("latchkey serve did not become ready at {base}");
}

async fn refresh_at(base: &str, client: &TestClient, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/token"))
        .header(
            "authorization",
            basic(&client.id, client.secret.as_deref().unwrap_or_default()),
        )
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
        .send()
        .await
        .expect("POST /token")
}

async fn a_rotation_committed_before_a_crash_stays_spent(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (_, _, tokens) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let rt0 = s(&tokens, "refresh_token").to_owned();

    let (mut child, base) = serve_child(&app);
    wait_ready(&reqwest::Client::new(), &base).await;
    let rotated: Value = assert_tokens(refresh_at(&base, &client, &rt0).await).await;
    // The answer means the rotation committed; no clean shutdown follows.
    child.kill().expect("SIGKILL latchkey serve");
    child.wait().expect("reap latchkey serve");
    let rt1 = s(&rotated, "refresh_token").to_owned();

    // A node opened afresh on the same SQLite file or PostgreSQL database.
    let reopened = spawn_second_node(&app).await;
    assert_error(
        refresh(&reopened, &client, &rt0).await,
        400,
        "invalid_grant",
    )
    .await;
    // Presenting the spent token was reuse: the successor died with the family.
    assert_error(
        refresh(&reopened, &client, &rt1).await,
        400,
        "invalid_grant",
    )
    .await;
    let filter = AuditFilter {
        limit: 10,
        ..Default::default()
    };
    let events = reopened.state.store.list_events(&filter).await.unwrap();
    assert!(
        events.iter().any(|e| e.kind == "refresh_token_reuse"),
        "{events:?}"
    );
}
