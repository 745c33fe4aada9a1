//! Resource use under abuse (issue 10, point 7): slow bodies, connection bounds.
//!
//! These tests use real time only to bound themselves: a server without the limit never
//! answers the slow body (the test fails at its bound), and serves the over-limit
//! connection at once (the test sees it finished while the first connection is held).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{spawn_app, spawn_app_with, Backend};
use crate::oauth::*;

crate::both_stores!(
    a_body_sent_one_byte_at_a_time_is_cut_off_at_its_deadline,
    connections_past_the_limit_wait_until_one_closes,
    a_database_outage_is_503_with_retry_after_never_500,
);

/// The longest any of these tests waits for the server.
const BOUND: Duration = Duration::from_secs(20);

async fn a_body_sent_one_byte_at_a_time_is_cut_off_at_its_deadline(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.server.body_timeout_secs = 1).await;
    for path in ["/token", "/authorize"] {
        let mut conn = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ng"
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        // One more byte now and then, never the whole body.
        let trickle = async {
            let mut answer = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                tokio::select! {
                    read = conn.read(&mut buf) => match read {
                        Ok(0) | Err(_) => break,
                        Ok(n) => answer.extend_from_slice(&buf[..n]),
                    },
                    () = tokio::time::sleep(Duration::from_millis(300)) => {
                        let _ = conn.write_all(b"r").await;
                    }
                }
            }
            answer
        };
        let answer = tokio::time::timeout(BOUND, trickle)
            .await
            .unwrap_or_else(|_| panic!("{path}: a trickled body held the connection"));
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
        assert!(answer.contains("invalid_request"), "{path}: {answer}");
    }
}

async fn connections_past_the_limit_wait_until_one_closes(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.server.workers = 1;
        s.server.max_connections = 1;
    })
    .await;
    // Let the first client's pooled connections go, so that only ours count.
    drop(app.http.clone());
    let held = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let url = app.url("/healthz");
    let waiting = tokio::spawn(async move {
        reqwest::Client::new()
            .get(url)
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "a connection past server.max_connections was served while the first was open"
    );
    drop(held);
    let status = tokio::time::timeout(BOUND, waiting)
        .await
        .expect("served once the first connection closed")
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
}

fn assert_retry_after(res: &reqwest::Response, what: &str) {
    assert_eq!(res.status().as_u16(), 503, "{what}");
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap());
    assert!(
        retry.is_some_and(|v| v.parse::<u32>().is_ok()),
        "{what}: Retry-After {retry:?}"
    );
}

async fn a_database_outage_is_503_with_retry_after_never_500(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (browser, req, tokens) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;

    // The database goes away under the running server.
    app.state.store.close().await;

    // A page: the session lookup of /authorize.
    let res = authorize(&app, &browser, &req).await;
    assert_retry_after(&res, "/authorize");
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("temporarily_unavailable"));

    // The token endpoint: an OAuth error body, never cached.
    let res = refresh(&app, &client, s(&tokens, "refresh_token")).await;
    assert_retry_after(&res, "/token");
    assert_no_store(res.headers());
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");

    // A bearer endpoint.
    let res = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(s(&tokens, "access_token"))
        .send()
        .await
        .unwrap();
    assert_retry_after(&res, "/userinfo");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
}
