//! What admins see of the outbox (`latchkey mail list`): each message's envelope and
//! delivery state, never its body (which is sealed, and erased once delivered or given up).

use serde::Serialize;

use crate::clock::UnixTime;
use crate::domain::OutboxMail;
use crate::store::MailStore;

use super::ServiceError;

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// Waiting for its first attempt or a retry.
    Queued,
    /// Delivered.
    Sent,
    /// Given up (a permanent refusal, or `mail.max_attempts` failed attempts).
    Failed,
}

impl Delivery {
    /// The listed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Failed => "failed",
        }
    }
}

/// One listed message: no subject, no body.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The outbox id (named in the worker's log lines and the audit trail).
    pub id: String,
    /// The template it came from.
    pub kind: String,
    /// The address it goes to.
    pub recipient: String,
    /// When it was written.
    pub created_at: UnixTime,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Queued, sent or failed.
    pub state: Delivery,
    /// When it is tried next (queued messages only).
    pub next_attempt_at: Option<UnixTime>,
    /// When it was delivered or given up.
    pub settled_at: Option<UnixTime>,
    /// What the last failed attempt said.
    pub last_error: Option<String>,
}

impl From<OutboxMail> for Entry {
    fn from(m: OutboxMail) -> Self {
        let state = match (m.sent_at, m.failed_at) {
            (Some(_), _) => Delivery::Sent,
            (None, Some(_)) => Delivery::Failed,
            (None, None) => Delivery::Queued,
        };
        Self {
            id: m.id,
            kind: m.kind,
            recipient: m.recipient,
            created_at: m.created_at,
            attempts: m.attempts,
            state,
            next_attempt_at: (state == Delivery::Queued).then_some(m.next_attempt_at),
            settled_at: m.sent_at.or(m.failed_at),
            last_error: m.last_error,
        }
    }
}

/// The newest `limit` messages (at most 10,000), or only those given up.
pub async fn list(
    store: &dyn MailStore,
    failed_only: bool,
    limit: u32,
) -> Result<Vec<Entry>, ServiceError> {
    let rows = store.list_mail(failed_only, limit.clamp(1, 10_000)).await?;
    Ok(rows.into_iter().map(Entry::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_follows_the_row() {
        let mut m = OutboxMail::new("security_notice", "a@example.com", "s", vec![1], 10);
        assert_eq!(Entry::from(m.clone()).state, Delivery::Queued);
        assert_eq!(Entry::from(m.clone()).next_attempt_at, Some(10));
        m.failed_at = Some(20);
        let e = Entry::from(m.clone());
        assert_eq!(
            (e.state, e.settled_at, e.next_attempt_at),
            (Delivery::Failed, Some(20), None)
        );
        m.sent_at = Some(15);
        assert_eq!(Entry::from(m).state, Delivery::Sent);
    }
}
