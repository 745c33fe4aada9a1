//! The outbox worker: claims due messages, delivers them, and records the outcome. A
//! failure is retried with exponential backoff (`mail.retry_base_secs`, doubling, at most an
//! hour) until `mail.max_attempts`, then given up and listed by `latchkey mail list
//! --failed`. Several nodes may run it: a claimed message is leased to one of them.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;

use crate::clock::UnixTime;
use crate::config::MailSettings;
use crate::domain::OutboxMail;

use super::transport::{SendError, Transport};
use crate::service::AppState;

/// Messages claimed at a time. One: each is leased for one SMTP conversation
/// ([`lease_secs`]) right before it is sent, so a slow server cannot let the lease of a
/// message further down a batch run out while it waits, and another node send it too.
const BATCH: u32 = 1;

/// When a message that failed its `attempts`-th attempt is tried again; `None` when it is
/// given up.
pub fn retry_at(settings: &MailSettings, attempts: u32, now: UnixTime) -> Option<UnixTime> {
    if attempts >= settings.max_attempts {
        return None;
    }
    let base = i64::try_from(settings.retry_base_secs).unwrap_or(i64::MAX);
    let exp = attempts.saturating_sub(1).min(20);
    let wait = base.saturating_mul(1_i64 << exp).min(3_600);
    Some(now.saturating_add(wait))
}

/// How long a claimed message is leased: long enough for one SMTP conversation.
fn lease_secs(settings: &MailSettings) -> i64 {
    i64::try_from(settings.smtp_timeout_secs.saturating_mul(2)).unwrap_or(i64::MAX)
}

/// Delivers every message due now; returns how many were delivered.
pub async fn deliver_due(
    state: &AppState,
    transport: &Transport,
    from: &Mailbox,
) -> Result<usize, crate::store::StoreError> {
    let settings = &state.settings.mail;
    let mut delivered = 0;
    loop {
        let now = state.clock.now();
        let claimed = state
            .store
            .claim_mail(now, now.saturating_add(lease_secs(settings)), BATCH)
            .await?;
        if claimed.is_empty() {
            return Ok(delivered);
        }
        for mail in &claimed {
            if deliver_one(state, transport, from, mail).await? {
                delivered += 1;
            }
        }
    }
}

async fn deliver_one(
    state: &AppState,
    transport: &Transport,
    from: &Mailbox,
    mail: &OutboxMail,
) -> Result<bool, crate::store::StoreError> {
    let settings = &state.settings.mail;
    let outcome = match state.mailer.open(mail) {
        Ok(Some(body)) => transport.send(from, &mail.recipient, &body).await,
        Ok(None) => Err(SendError::Permanent("the message body was erased".into())),
        Err(e) => Err(SendError::Permanent(format!(
            "cannot open the message: {e}"
        ))),
    };
    let now = state.clock.now();
    match outcome {
        Ok(()) => {
            state.store.mark_mail_sent(&mail.id, now).await?;
            tracing::info!(mail_id = %mail.id, kind = %mail.kind, "mail delivered");
            Ok(true)
        }
        Err(e) => {
            let retry = match e {
                SendError::Permanent(_) => None,
                SendError::Transient(_) => retry_at(settings, mail.attempts, now),
            };
            let error = e.to_string();
            tracing::warn!(
                mail_id = %mail.id, kind = %mail.kind, attempts = mail.attempts,
                given_up = retry.is_none(), error = %error, "mail delivery failed"
            );
            state
                .store
                .mark_mail_failed(&mail.id, &error, retry, now)
                .await?;
            Ok(false)
        }
    }
}

/// Runs the worker until the task is aborted: a round every `mail.poll_interval_secs`, or
/// at once when a request wakes it.
pub fn spawn(state: Arc<AppState>) -> Result<tokio::task::JoinHandle<()>, String> {
    let transport = Transport::from_settings(&state.settings.mail)?;
    let from: Mailbox = state
        .settings
        .mail
        .from
        .parse()
        .map_err(|e| format!("mail.from: {e}"))?;
    let wake = state.mailer.wake_handle();
    let every = Duration::from_secs(state.settings.mail.poll_interval_secs);
    Ok(tokio::spawn(async move {
        loop {
            if let Err(e) = deliver_due(&state, &transport, &from).await {
                tracing::warn!(error = %e, "outbox round failed; will retry");
            }
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(every) => {}
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_and_give_up_after_max_attempts() {
        let s = MailSettings {
            max_attempts: 4,
            retry_base_secs: 30,
            ..MailSettings::default()
        };
        assert_eq!(retry_at(&s, 1, 1000), Some(1030));
        assert_eq!(retry_at(&s, 2, 1000), Some(1060));
        assert_eq!(retry_at(&s, 3, 1000), Some(1120));
        assert_eq!(retry_at(&s, 4, 1000), None);
        let long = MailSettings {
            max_attempts: 100,
            ..s
        };
        assert_eq!(retry_at(&long, 60, 0), Some(3_600));
    }
}
