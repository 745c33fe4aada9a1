//! The mail outbox: messages written by a request are delivered by the worker over real
//! SMTP (an in-process listener), or written as `.eml` files by the default transport.
//! Reliability: an SMTP outage or a crash loses nothing, failures are retried with backoff
//! and given up after `mail.max_attempts`, and two nodes deliver each message once.

use latchkey::clock::Clock;
use latchkey::domain::OutboxMail;

use crate::accounts_support::*;
use crate::helpers::{spawn_app, spawn_app_with_mail, spawn_second_node, Backend, TestApp};
use crate::oauth::*;
use crate::smtp::REJECTED_DOMAIN;

crate::both_stores!(
    a_queued_message_is_delivered_over_smtp_with_text_and_html_parts,
    the_file_transport_writes_eml_files,
    a_request_succeeds_while_smtp_is_down_and_its_mail_arrives_later,
    failures_back_off_and_are_given_up_after_max_attempts,
    a_permanent_refusal_is_given_up_at_once_and_blocks_nothing,
    concurrent_link_requests_leave_one_valid_link,
);

mod two_nodes {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_nodes_deliver_each_message_once() {
        if crate::helpers::postgres_available().await {
            super::two_nodes_deliver_each_message_once().await
        }
    }
}

/// Writes a security notice to the outbox, as a request would, and wakes the worker.
pub async fn enqueue_notice(app: &TestApp, to: &str, what: &str) -> String {
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

/// The outbox row `id`.
pub async fn outbox_row(app: &TestApp, id: &str) -> OutboxMail {
    let listed = app.state.store.list_mail(false, 10_000).await.unwrap();
    listed
        .into_iter()
        .find(|m| m.id == id)
        .expect("in the outbox")
}

/// Waits (up to 10 s) until the worker has made `attempts` attempts at `id` and recorded
/// the last outcome (the row is no longer leased).
pub async fn wait_for_attempts(app: &TestApp, id: &str, attempts: u32) -> OutboxMail {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let row = outbox_row(app, id).await;
        if row.attempts >= attempts && row.locked_until.is_none() {
            assert_eq!(row.attempts, attempts, "{row:?}");
            return row;
        }
        assert!(std::time::Instant::now() < deadline, "not tried: {row:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Every outbox row addressed to `to`.
pub async fn outbox_to(app: &TestApp, to: &str) -> Vec<OutboxMail> {
    let listed = app.state.store.list_mail(false, 10_000).await.unwrap();
    listed.into_iter().filter(|m| m.recipient == to).collect()
}

async fn a_request_succeeds_while_smtp_is_down_and_its_mail_arrives_later(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |s| s.mail.retry_base_secs = 60).await;
    create_user(&app, "carol", &[]).await;
    sink.stop();
    // A sign-in from a new browser mails a notice: it succeeds with SMTP down.
    let browser = Browser::new(&app);
    sign_in_ok(&app, &browser, "carol").await;
    // Before the response the message was in the outbox table, sealed: a crash from here
    // on loses nothing.
    let queued = outbox_to(&app, "carol@example.com").await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    let id = queued[0].id.clone();
    assert!(queued[0].body_sealed.is_some() && queued[0].sent_at.is_none());
    // The worker tried, failed, and set a retry one backoff step later.
    let row = wait_for_attempts(&app, &id, 1).await;
    assert!(row.sent_at.is_none() && row.failed_at.is_none(), "{row:?}");
    assert!(row.last_error.is_some(), "{row:?}");
    assert_eq!(row.next_attempt_at, app.clock.now() + 60);
    assert!(row.body_sealed.is_some(), "kept for the retry");
    // SMTP is back; once the backoff has passed, the message arrives, once.
    sink.resume().await;
    app.clock.advance(60);
    app.state.mailer.wake();
    let got = sink.nth("carol@example.com", 1).await;
    assert_eq!(got.subject(), "New sign-in to your account");
    let row = wait_until_settled(&app, &id).await;
    assert_eq!((row.attempts, row.failed_at), (2, None));
    assert!(row.body_sealed.is_none(), "erased after delivery");
    assert_eq!(sink.messages_to("carol@example.com").len(), 1);
}

async fn failures_back_off_and_are_given_up_after_max_attempts(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |s| {
        s.mail.max_attempts = 3;
        s.mail.retry_base_secs = 30;
    })
    .await;
    sink.stop();
    let id = enqueue_notice(&app, "dave@example.com", "Your password was changed.").await;
    let first = wait_for_attempts(&app, &id, 1).await;
    assert_eq!(first.next_attempt_at, app.clock.now() + 30, "first backoff");
    app.clock.advance(30);
    app.state.mailer.wake();
    let second = wait_for_attempts(&app, &id, 2).await;
    assert_eq!(
        second.next_attempt_at,
        app.clock.now() + 60,
        "twice as long"
    );
    assert!(second.failed_at.is_none());
    app.clock.advance(60);
    app.state.mailer.wake();
    let row = wait_until_settled(&app, &id).await;
    assert_eq!(row.attempts, 3);
    assert_eq!(row.failed_at, Some(app.clock.now()), "given up: {row:?}");
    assert!(row.sent_at.is_none());
    assert!(row.body_sealed.is_none(), "a given-up body is erased too");
    assert!(row.last_error.as_deref().is_some_and(|e| !e.is_empty()));
    // Listed as failed, for admins (the CLI is tested in mail_delivery).
    let failed = latchkey::service::mail::outbox::list(app.state.store.as_ref(), true, 50)
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].id, id);
    assert_eq!(failed[0].state.as_str(), "failed");
    // Given up means given up: SMTP coming back later sends nothing for it.
    sink.resume().await;
    let marker = enqueue_notice(&app, "dave@example.com", "marker").await;
    app.clock.advance(3_600);
    app.state.mailer.wake();
    let got = sink.wait_for("dave@example.com", 1).await;
    assert_eq!(got.len(), 1);
    assert!(got[0].text().contains("marker"));
    wait_until_settled(&app, &marker).await;
    assert_eq!(outbox_row(&app, &id).await.attempts, 3);
}

async fn a_permanent_refusal_is_given_up_at_once_and_blocks_nothing(backend: Backend) {
    let (app, sink) = spawn_app_with_mail(backend, |s| s.mail.max_attempts = 5).await;
    let refused = format!("nobody{REJECTED_DOMAIN}");
    let bounced = enqueue_notice(&app, &refused, "x").await;
    let malformed = enqueue_notice(&app, "not an address", "x").await;
    let fine = enqueue_notice(&app, "erin@example.com", "y").await;
    sink.nth("erin@example.com", 1).await;
    assert!(wait_until_settled(&app, &fine).await.sent_at.is_some());
    // A 5xx reply (RFC 5321 §4.2.1: permanent) is not retried.
    let row = wait_until_settled(&app, &bounced).await;
    assert_eq!((row.attempts, row.sent_at.is_none()), (1, true), "{row:?}");
    assert!(row.failed_at.is_some());
    let error = row.last_error.unwrap_or_default();
    assert!(error.contains("550"), "{error}");
    // An address that does not parse is refused before any connection.
    let row = wait_until_settled(&app, &malformed).await;
    assert_eq!(row.attempts, 1);
    assert!(row.failed_at.is_some() && row.body_sealed.is_none());
    assert!(row.last_error.unwrap_or_default().contains("recipient"));
    assert!(sink.messages_to(&refused).is_empty());
}

async fn two_nodes_deliver_each_message_once() {
    let (a, sink) = spawn_app_with_mail(Backend::Postgres, |_| {}).await;
    let b = spawn_second_node(&a).await;
    assert_eq!(
        b.state.settings.mail.smtp_port, sink.port,
        "one SMTP server"
    );
    // Queued without waking anyone, then both workers woken at once: they race to claim.
    let mut ids = Vec::new();
    for i in 0..40 {
        let ctx = minijinja::context! { username => "u", what => format!("message {i}") };
        let to = format!("user{i}@example.com");
        let mail = a
            .state
            .mailer
            .compose("security_notice", &to, ctx, a.clock.now())
            .unwrap();
        a.state.store.enqueue_mail(&mail).await.unwrap();
        ids.push(mail.id);
    }
    b.state.mailer.wake();
    a.state.mailer.wake();
    for id in &ids {
        let row = wait_until_settled(&a, id).await;
        assert!(row.sent_at.is_some(), "{row:?}");
        assert_eq!(row.attempts, 1, "claimed once: {row:?}");
    }
    // Every row is settled, so nothing more can be sent: exactly 40 arrived, one each.
    let got = sink.messages();
    assert_eq!(got.len(), 40, "{got:#?}");
    let mut to: Vec<String> = got.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), 40, "each once");
}

/// Sixteen links issued for one user at once (forgot-password pressed on several devices):
/// each issue voids the user's earlier links of its purpose, and the issues are serialised
/// per user, so exactly one stays valid.
async fn concurrent_link_requests_leave_one_valid_link(backend: Backend) {
    use latchkey::domain::{AccountToken, TokenPurpose};
    let app = spawn_app(backend).await;
    let user = alice(&app).await;
    let now = app.clock.now();
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let store = app.state.store.clone();
        let user_id = user.id.as_str().to_owned();
        let mail = app
            .state
            .mailer
            .compose(
                "security_notice",
                "alice@example.com",
                minijinja::context! { username => "alice", what => "x" },
                now,
            )
            .unwrap();
        tasks.push(tokio::spawn(async move {
            let token = AccountToken {
                token_hash: vec![i; 32],
                purpose: TokenPurpose::PasswordReset,
                user_id,
                email: None,
                credentials_epoch: 1,
                created_at: now,
                expires_at: now + 3600,
                used_at: None,
            };
            store.issue_account_token(&token, &mail).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut valid = 0;
    for i in 0..16u8 {
        let t = app
            .state
            .store
            .get_account_token(&[i; 32])
            .await
            .unwrap()
            .unwrap();
        if t.used_at.is_none() {
            valid += 1;
        }
    }
    assert_eq!(valid, 1, "exactly one link may stay valid");
}
