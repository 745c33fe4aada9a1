//! The mail outbox: messages written by a request are delivered by the worker over real
//! SMTP (an in-process listener), or written as `.eml` files by the default transport.

use latchkey::clock::Clock;

use crate::helpers::{spawn_app, spawn_app_with_mail, Backend, TestApp};

crate::both_stores!(
    a_queued_message_is_delivered_over_smtp_with_text_and_html_parts,
    the_file_transport_writes_eml_files,
);

/// Writes a security notice to the outbox, as a request would, and wakes the worker.
async fn enqueue_notice(app: &TestApp, to: &str, what: &str) -> String {
    let state = &app.state;
    let ctx = minijinja::context! { username => "alice", what => what };
    let mail = state
        .mailer
        .compose("security_notice", to, ctx, app.clock.now())
        .unwrap();
    state.store.enqueue_mail(&mail).await.unwrap();
    state.mailer.wake();
    mail.id
}

async fn a_queued_message_is_delivered_over_smtp_with_text_and_html_parts(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |_| {}).await;
    let id = enqueue_notice(
        &app,
        "alice@example.com",
        "Your <b>password</b> was changed.",
    )
    .await;
    let got = sink.nth("alice@example.com", 1).await;
    assert_eq!(got.subject(), "Security notice for your account");
    assert!(got.text().contains("Your <b>password</b> was changed."));
    let html = got.part("text/html");
    assert!(html.contains("Your &lt;b&gt;password&lt;"), "{html}");
    assert!(!html.contains("<b>password"), "{html}");
    assert!(got.text().contains(&format!("{}/account", app.address)));
    // Delivered: marked sent (right after the SMTP conversation), its sealed body erased.
    let row = wait_until_settled(&app, &id).await;
    assert!(row.sent_at.is_some());
    assert!(row.body_sealed.is_none());
}

/// Waits (up to 10 s) until the worker recorded the message as sent or given up.
pub async fn wait_until_settled(app: &TestApp, id: &str) -> latchkey::domain::OutboxMail {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let listed = app.state.store.list_mail(false, 1000).await.unwrap();
        let row = listed.into_iter().find(|m| m.id == id).expect("queued");
        if row.sent_at.is_some() || row.failed_at.is_some() {
            return row;
        }
        assert!(std::time::Instant::now() < deadline, "not settled: {row:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn the_file_transport_writes_eml_files(backend: Backend) {
    let app = spawn_app(backend).await;
    enqueue_notice(&app, "bob@example.com", "A passkey was added.").await;
    let dir = app.dir.path().join("mail");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let files: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        if let Some(eml) = files
            .iter()
            .find(|p| p.extension().is_some_and(|e| e == "eml"))
        {
            let raw = std::fs::read_to_string(eml).unwrap();
            assert!(raw.contains("To: bob@example.com"), "{raw}");
            assert!(raw.contains("A passkey was added."), "{raw}");
            return;
        }
        assert!(std::time::Instant::now() < deadline, "no .eml in {dir:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
