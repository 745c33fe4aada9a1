//! Deletes expired codes, sessions, refresh tokens, grants and revoked `jti` records, and
//! audit events older than `audit.retention_days`, in bounded batches. Each statement deletes by primary key from a bounded sub-select
//! (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so several nodes running it at once split
//! the rows between them.

use std::sync::Arc;
use std::time::Duration;

use super::AppState;
use crate::store::StoreError;

/// Most batches per run, so a huge backlog is worked off over several runs, not in one.
const MAX_BATCHES_PER_RUN: u32 = 100;

/// Runs [`run_once`] every `housekeeping.interval_secs` until the process ends.
pub fn spawn(state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = Duration::from_secs(state.settings.housekeeping.interval_secs);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match run_once(&state).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "housekeeping removed expired records"),
                Err(e) => tracing::warn!(error = %e, "housekeeping failed; will retry"),
            }
        }
    })
}

/// Deletes expired rows batch after batch until a pass deletes nothing (or the cap).
pub async fn run_once(state: &AppState) -> Result<u64, StoreError> {
    let now = state.clock.now();
    let batch = state.settings.housekeeping.batch_size;
    let audit_before = now - state.settings.audit.retention_secs();
    let mut total = 0;
    for _ in 0..MAX_BATCHES_PER_RUN {
        let deleted = state.store.purge_expired(now, batch).await?
            + state.store.purge_audit_events(audit_before, batch).await?;
        total += deleted;
        if deleted == 0 {
            break;
        }
    }
    Ok(total)
}
