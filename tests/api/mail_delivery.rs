//! How mail leaves: STARTTLS and implicit TLS never fall back to plain text, and what
//! admins see of the outbox (`latchkey mail list`, the real binary) and of its failures
//! (the server's log), never a message body.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use latchkey::config::SmtpTls;
use serde_json::Value;

use crate::helpers::{run_cli, spawn_app_with_mail, Backend};
use crate::mail_outbox::{enqueue_notice, outbox_row, wait_for_attempts, wait_until_settled};
use crate::smtp::REJECTED_DOMAIN;

crate::both_stores!(
    starttls_is_required_and_never_falls_back_to_plain_text,
    implicit_tls_never_sends_in_clear,
    mail_list_shows_state_and_errors_but_never_bodies,
);

/// The listener speaks plain SMTP and offers no STARTTLS: with `smtp_tls = starttls` the
/// message must not go out in clear; it is retried, then given up.
async fn starttls_is_required_and_never_falls_back_to_plain_text(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |s| {
        s.mail.smtp_tls = SmtpTls::Starttls;
        s.mail.max_attempts = 2;
        s.mail.retry_base_secs = 30;
    })
    .await;
    let id = enqueue_notice(&app, "alice@example.com", "secret-ish body").await;
    let row = wait_for_attempts(&app, &id, 1).await;
    assert!(row.failed_at.is_none(), "retried: {row:?}");
    let error = row.last_error.clone().unwrap_or_default();
    assert!(error.contains("STARTTLS"), "{error}");
    assert!(
        sink.messages().is_empty(),
        "sent in clear: {:?}",
        sink.messages()
    );
    app.clock.advance(30);
    app.state.mailer.wake();
    let row = wait_until_settled(&app, &id).await;
    assert_eq!((row.attempts, row.sent_at), (2, None), "{row:?}");
    assert!(row.failed_at.is_some());
    assert!(
        sink.messages().is_empty(),
        "sent in clear: {:?}",
        sink.messages()
    );
}

/// With `smtp_tls = tls` the first bytes are a TLS handshake, which a plain-text server
/// cannot complete: nothing is delivered.
async fn implicit_tls_never_sends_in_clear(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |s| {
        s.mail.smtp_tls = SmtpTls::Tls;
        s.mail.max_attempts = 2;
        s.mail.retry_base_secs = 30;
    })
    .await;
    let id = enqueue_notice(&app, "alice@example.com", "secret-ish body").await;
    let row = wait_for_attempts(&app, &id, 1).await;
    assert!(
        row.failed_at.is_none() && row.last_error.is_some(),
        "{row:?}"
    );
    app.clock.advance(30);
    app.state.mailer.wake();
    let row = wait_until_settled(&app, &id).await;
    assert!(row.failed_at.is_some() && row.sent_at.is_none(), "{row:?}");
    assert!(
        sink.messages().is_empty(),
        "sent in clear: {:?}",
        sink.messages()
    );
}

async fn mail_list_shows_state_and_errors_but_never_bodies(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |s| s.mail.max_attempts = 3).await;
    let sent = enqueue_notice(&app, "alice@example.com", "BODY-SENT-1").await;
    sink.nth("alice@example.com", 1).await;
    wait_until_settled(&app, &sent).await;
    let failed = enqueue_notice(&app, &format!("bob{REJECTED_DOMAIN}"), "BODY-FAILED-2").await;
    wait_until_settled(&app, &failed).await;
    sink.stop();
    let queued = enqueue_notice(&app, "carol@example.com", "BODY-QUEUED-3").await;
    wait_for_attempts(&app, &queued, 1).await;

    let all = app.cli(&["mail", "list"]);
    assert!(all.status.success(), "{}", all.stderr);
    let lines: Vec<&str> = all.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", all.stdout);
    let line_of = |id: &str| *lines.iter().find(|l| l.starts_with(id)).expect(id);
    assert!(line_of(&sent).contains(" sent "), "{}", all.stdout);
    assert!(line_of(&sent).contains("to=alice@example.com"));
    assert!(line_of(&sent).contains("kind=security_notice"));
    assert!(line_of(&failed).contains(" failed ") && line_of(&failed).contains("550"));
    assert!(line_of(&queued).contains(" queued ") && line_of(&queued).contains("attempts=1"));

    let only_failed = app.cli(&["mail", "list", "--failed", "--json"]);
    assert!(only_failed.status.success(), "{}", only_failed.stderr);
    let rows: Vec<Value> = only_failed
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{}", only_failed.stdout);
    let row = &rows[0];
    assert_eq!(row["id"], failed.as_str());
    assert_eq!(row["state"], "failed");
    assert_eq!(row["kind"], "security_notice");
    assert_eq!(row["recipient"], format!("bob{REJECTED_DOMAIN}"));
    assert_eq!(row["attempts"], 1);
    assert!(row["created"].as_str().unwrap().ends_with('Z'));
    assert!(row["last_error"].as_str().unwrap().contains("550"));

    let newest = app.cli(&["mail", "list", "--limit", "1", "--json"]);
    assert_eq!(newest.stdout.lines().count(), 1, "{}", newest.stdout);
    // Neither bodies nor subjects are printed.
    for out in [&all, &only_failed, &newest] {
        assert!(!out.stdout.contains("BODY-"), "{}", out.stdout);
        assert!(!out.stdout.contains("Security notice"), "{}", out.stdout);
    }
    let bad = app.cli(&["mail", "list", "--limit", "many"]);
    assert!(!bad.status.success());
    assert!(!bad.stderr.contains("panicked"), "{}", bad.stderr);
    assert_eq!(
        outbox_row(&app, &queued).await.attempts,
        1,
        "listing changes nothing"
    );
}

/// The real server, mailing through an SMTP port where nothing listens: the sign-in that
/// queues a notice succeeds, the failed delivery is logged (id, kind, error, and no body),
/// and after `mail.max_attempts` it is listed by `latchkey mail list --failed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_failures_are_logged_without_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (port, dead_smtp) = (free_port(), free_port().to_string());
    let base = format!("http://127.0.0.1:{port}");
    let db = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let listen = format!("127.0.0.1:{port}");
    let env: Vec<(&str, &str)> = vec![
        ("LATCHKEY_ISSUER", &base),
        ("LATCHKEY_LISTEN", &listen),
        ("LATCHKEY_DATABASE_URL", &db),
        ("LATCHKEY_LOG__FORMAT", "json"),
        ("LATCHKEY_PASSWORDS__MEMORY_KIB", "1024"),
        ("LATCHKEY_PASSWORDS__ITERATIONS", "1"),
        ("LATCHKEY_PASSWORDS__INSECURE_FAST_HASHING", "true"),
        ("LATCHKEY_MAIL__TRANSPORT", "smtp"),
        ("LATCHKEY_MAIL__SMTP_HOST", "127.0.0.1"),
        ("LATCHKEY_MAIL__SMTP_PORT", &dead_smtp),
        ("LATCHKEY_MAIL__SMTP_TLS", "none"),
        ("LATCHKEY_MAIL__SMTP_PASSWORD", "smtp-leak-me"),
        ("LATCHKEY_MAIL__SMTP_USERNAME", "mailer"),
        ("LATCHKEY_MAIL__MAX_ATTEMPTS", "1"),
    ];
    let password = "leak-me-password-123";
    let out = run_cli(
        &[
            "user",
            "create",
            "--username",
            "carol",
            "--email",
            "carol@example.com",
            "--password-stdin",
        ],
        &env,
        Some(password),
        dir.path(),
    );
    assert!(out.status.success(), "{}", out.stderr);
    let log_path = dir.path().join("serve.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    cmd.arg("serve")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap());
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("LATCHKEY_") || k == "RUST_LOG") {
        cmd.env_remove(k);
    }
    let mut server = cmd.envs(env.iter().copied()).spawn().unwrap();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while browser.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page = browser.get(format!("{base}/login")).send().await.unwrap();
    let page = page.text().await.unwrap();
    let csrf = crate::accounts_support::csrf_of(&page, "/login");
    let res = browser
        .post(format!("{base}/login"))
        .form(&[
            ("username", "carol"),
            ("password", password),
            ("csrf", &csrf),
            ("request", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "the sign-in succeeds with SMTP down");

    // Given up after its one attempt, and listed.
    let failed = loop {
        let out = run_cli(
            &["mail", "list", "--failed", "--json"],
            &env,
            None,
            dir.path(),
        );
        assert!(out.status.success(), "{}", out.stderr);
        if let Some(line) = out.stdout.lines().next() {
            break serde_json::from_str::<Value>(line).unwrap();
        }
        assert!(Instant::now() < deadline, "never given up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(failed["recipient"], "carol@example.com");
    assert_eq!(failed["kind"], "new_sign_in");
    server.kill().unwrap();
    server.wait().unwrap();
    let mut log = String::new();
    std::fs::File::open(&log_path)
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let id = failed["id"].as_str().unwrap();
    let line = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .find(|v| v["message"] == "mail delivery failed")
        .unwrap_or_else(|| panic!("no failure logged:\n{log}"));
    assert_eq!(line["mail_id"], id, "{line}");
    assert_eq!(line["kind"], "new_sign_in", "{line}");
    assert_eq!(line["given_up"], true, "{line}");
    assert!(
        line["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{line}"
    );
    assert_eq!(line["level"], "WARN", "{line}");
    for secret in [password, "smtp-leak-me", "Someone signed in", "New sign-in"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}
