//! `RevocationStore` and `Housekeeping` for both backends.

use async_trait::async_trait;

use super::backend;
use crate::clock::UnixTime;
use crate::domain::{AuditEvent, AuditFilter};
use crate::store::{Housekeeping, PgStore, RevocationStore, SqliteStore, StoreError};

#[derive(sqlx::FromRow)]
struct EventRow {
    kind: String,
    at: i64,
    client_id: Option<String>,
    user_id: Option<String>,
    grant_id: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    detail: String,
}

impl From<EventRow> for AuditEvent {
    fn from(r: EventRow) -> Self {
        AuditEvent {
            kind: r.kind,
            at: r.at,
            client_id: r.client_id,
            user_id: r.user_id,
            grant_id: r.grant_id,
            ip: r.ip,
            user_agent: r.user_agent,
            detail: r.detail,
        }
    }
}

/// Expired rows per table: `(table, key column, condition)`. Spent refresh tokens are kept
/// until their family's absolute end, so that a replay is still recognised as reuse.
const PURGES: &[(&str, &str, &str)] = &[
    ("authorization_codes", "code_hash", "expires_at < $1"),
    ("refresh_tokens", "token_hash", "expires_at < $1"),
    ("grants", "id", "expires_at < $1"),
    (
        "sessions",
        "id_hash",
        "expires_at < $1 OR ended_at < $1 - 86400",
    ),
    ("revoked_jtis", "jti", "expires_at < $1"),
    ("pending_logins", "id_hash", "expires_at < $1"),
    ("webauthn_ceremonies", "id_hash", "expires_at < $1"),
    (
        "throttle_buckets",
        "key",
        "updated_at < $1 - 86400 AND blocked_until < $1",
    ),
    // Enrolment abandoned for a day: the user starts again.
    (
        "totp_credentials",
        "user_id",
        "confirmed_at IS NULL AND created_at < $1 - 86400",
    ),
    // Mailed links a week past their expiry (kept a while so a late click is told the link
    // expired rather than that it never existed).
    ("account_tokens", "token_hash", "expires_at < $1 - 604800"),
    // Delivered or given-up mail, after 30 days (their bodies are already erased).
    (
        "mail_outbox",
        "id",
        "(sent_at IS NOT NULL OR failed_at IS NOT NULL) AND created_at < $1 - 2592000",
    ),
];

/// Audit events past their retention (`audit.retention_days`): `$1` is the cut-off.
const AUDIT_EXPIRED: &str = "at < $1";

/// The audit query for `filter`: only constant fragments, numbered in bind order
/// (user id, since, limit).
fn events_sql(filter: &AuditFilter) -> String {
    let mut conditions = Vec::new();
    if filter.user_id.is_some() {
        conditions.push(format!("user_id = ${}", conditions.len() + 1));
    }
    if filter.since.is_some() {
        conditions.push(format!("at >= ${}", conditions.len() + 1));
    }
    let limit = conditions.len() + 1;
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    format!(
        "SELECT kind, at, client_id, user_id, grant_id, ip, user_agent, detail FROM audit_events\
         {filter} ORDER BY at DESC, id DESC LIMIT ${limit}"
    )
}

/// One bounded batch: delete by key from a `LIMIT`ed sub-select. `lock` is the backend's
/// row-claiming clause, so that nodes running this at once split the rows between them.
fn purge_sql(table: &str, key: &str, condition: &str, lock: &str) -> String {
    format!("DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE {condition} LIMIT $2{lock})")
}

macro_rules! revocation_store {
    ($store:ty, $lock:literal) => {
        #[async_trait]
        impl RevocationStore for $store {
            async fn revoke_jti(&self, jti: &str, expires_at: UnixTime) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO revoked_jtis (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
                )
                .bind(jti)
                .bind(expires_at)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
                Ok(())
            }

            async fn list_events(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
                // Every part of the statement is a constant fragment of `events_sql`.
                let sql = sqlx::AssertSqlSafe(events_sql(filter));
                let mut query = sqlx::query_as(sql);
                if let Some(user_id) = &filter.user_id {
                    query = query.bind(user_id);
                }
                if let Some(since) = filter.since {
                    query = query.bind(since);
                }
                let rows: Vec<EventRow> = query
                    .bind(i64::from(filter.limit))
                    .fetch_all(&self.reader)
                    .await
                    .map_err(backend)?;
                Ok(rows.into_iter().map(AuditEvent::from).collect())
            }

            async fn is_jti_revoked(&self, jti: &str) -> Result<bool, StoreError> {
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM revoked_jtis WHERE jti = $1")
                    .bind(jti)
                    .fetch_one(&self.reader)
                    .await
                    .map_err(backend)?;
                Ok(n > 0)
            }

            async fn record_event(&self, e: &AuditEvent) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO audit_events (id, kind, at, client_id, user_id, grant_id, ip, user_agent, \
                     detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(&e.kind)
                .bind(e.at)
                .bind(e.client_id.as_deref())
                .bind(e.user_id.as_deref())
                .bind(e.grant_id.as_deref())
                .bind(e.ip.as_deref())
                .bind(e.user_agent.as_deref())
                .bind(&e.detail)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
                Ok(())
            }
        }

        #[async_trait]
        impl Housekeeping for $store {
            async fn purge_expired(&self, now: UnixTime, batch: u32) -> Result<u64, StoreError> {
                let mut total = 0;
                for (table, key, condition) in PURGES {
                    // Every part of the statement is one of the constants above.
                    let sql = sqlx::AssertSqlSafe(purge_sql(table, key, condition, $lock));
                    let done = sqlx::query(sql)
                        .bind(now)
                        .bind(i64::from(batch))
                        .execute(&self.pool)
                        .await
                        .map_err(backend)?;
                    total += done.rows_affected();
                }
                Ok(total)
            }

            async fn purge_audit_events(&self, before: UnixTime, batch: u32) -> Result<u64, StoreError> {
                // `audit_events_at` serves the sub-select; the cut-off is the retention's.
                let sql = sqlx::AssertSqlSafe(purge_sql("audit_events", "id", AUDIT_EXPIRED, $lock));
                let done = sqlx::query(sql)
                    .bind(before)
                    .bind(i64::from(batch))
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(done.rows_affected())
            }
        }
    };
}

// PostgreSQL: concurrent nodes skip the rows another node is deleting.
revocation_store!(PgStore, " FOR UPDATE SKIP LOCKED");
// SQLite serialises writers; there is nothing to skip.
revocation_store!(SqliteStore, "");
