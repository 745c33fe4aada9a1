//! Recording security events: who, from where, with what browser, when.

use crate::clock::UnixTime;
use crate::domain::AuditEvent;
use crate::store::RevocationStore;

use super::session::ClientInfo;
use super::ServiceError;

/// Appends an audit event about `user_id` (if known) from the requester `info`. `detail`
/// never carries a secret.
pub async fn record(
    store: &dyn RevocationStore,
    kind: &str,
    user_id: Option<&str>,
    info: &ClientInfo,
    detail: impl Into<String>,
    now: UnixTime,
) -> Result<(), ServiceError> {
    let event = AuditEvent {
        kind: kind.to_owned(),
        at: now,
        client_id: None,
        user_id: user_id.map(str::to_owned),
        grant_id: None,
        ip: Some(info.ip.clone()),
        user_agent: Some(info.user_agent.chars().take(256).collect()),
        detail: detail.into(),
    };
    store.record_event(&event).await?;
    Ok(())
}
