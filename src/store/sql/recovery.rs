//! `RecoveryStore` for both backends: each step of an MFA recovery is one transaction that
//! spends its token, moves the row from the state it was read in (a conditional `UPDATE`:
//! of two nodes, one wins and the other changes nothing), issues the next token and writes
//! the mail.

use async_trait::async_trait;

use super::mail::{insert_mail, insert_token, INSERT_MAIL, INSERT_TOKEN};
use super::{backend, corrupt, write_error};
use crate::clock::UnixTime;
use crate::domain::{CancelledBy, MfaRecovery, RecoveryState, RecoveryVia};
use crate::store::{PgStore, RecoveryChange, RecoveryStore, SqliteStore, StoreError};

#[derive(sqlx::FromRow)]
struct RecoveryRow {
    id: String,
    user_id: String,
    via: String,
    state: String,
    requested_at: i64,
    confirm_by: i64,
    confirmed_at: Option<i64>,
    effective_at: Option<i64>,
    reminded_at: Option<i64>,
    closed_at: Option<i64>,
    cancelled_by: Option<String>,
}

impl TryFrom<RecoveryRow> for MfaRecovery {
    type Error = StoreError;
    fn try_from(r: RecoveryRow) -> Result<Self, StoreError> {
        let missing = |c: &str| StoreError::Corrupt(format!("mfa_recoveries.{c} is NULL"));
        let state = match r.state.as_str() {
            "requested" => RecoveryState::Requested,
            "waiting" => RecoveryState::Waiting {
                effective_at: r.effective_at.ok_or_else(|| missing("effective_at"))?,
                reminded_at: r.reminded_at,
            },
            "effective" => RecoveryState::Effective {
                at: r.closed_at.ok_or_else(|| missing("closed_at"))?,
            },
            "cancelled" => RecoveryState::Cancelled {
                at: r.closed_at.ok_or_else(|| missing("closed_at"))?,
                by: CancelledBy::parse(r.cancelled_by.as_deref().unwrap_or_default())
                    .map_err(corrupt)?,
            },
            other => return Err(corrupt(format!("unknown recovery state {other}"))),
        };
        Ok(MfaRecovery {
            id: r.id,
            user_id: r.user_id,
            via: RecoveryVia::parse(&r.via).map_err(corrupt)?,
            requested_at: r.requested_at,
            confirm_by: r.confirm_by,
            confirmed_at: r.confirmed_at,
            state,
        })
    }
}

/// The state-dependent columns of a record: effective_at, reminded_at, closed_at,
/// cancelled_by.
fn columns(r: &MfaRecovery) -> (Option<i64>, Option<i64>, Option<i64>, Option<&'static str>) {
    match r.state {
        RecoveryState::Requested => (None, None, None, None),
        RecoveryState::Waiting {
            effective_at,
            reminded_at,
        } => (Some(effective_at), reminded_at, None, None),
        RecoveryState::Effective { at } => (None, None, Some(at), None),
        RecoveryState::Cancelled { at, by } => (None, None, Some(at), Some(by.as_str())),
    }
}

/// The waiting state's effect time, kept when the record closes.
fn effective_at(from: Option<&MfaRecovery>, to: &MfaRecovery) -> Option<i64> {
    let of = |r: &MfaRecovery| match r.state {
        RecoveryState::Waiting { effective_at, .. } => Some(effective_at),
        _ => None,
    };
    of(to).or_else(|| from.and_then(of))
}

const RECOVERY_COLUMNS: &str = "id, user_id, via, state, requested_at, confirm_by, \
     confirmed_at, effective_at, reminded_at, closed_at, cancelled_by";

const INSERT: &str = "INSERT INTO mfa_recoveries (id, user_id, via, state, requested_at, \
     confirm_by, confirmed_at, effective_at, reminded_at, closed_at, cancelled_by) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// Moves a row on only from the state it was read in (state name and whether reminded).
const ADVANCE: &str = "UPDATE mfa_recoveries SET state = $1, confirmed_at = $2, \
     effective_at = $3, reminded_at = $4, closed_at = $5, cancelled_by = $6 \
     WHERE id = $7 AND state = $8 AND (reminded_at IS NULL) = $9";

const SUPERSEDE: &str = "UPDATE mfa_recoveries SET state = 'cancelled', closed_at = $1, \
     cancelled_by = 'superseded' WHERE user_id = $2 AND state = 'requested'";

const SPEND_TOKEN: &str = "UPDATE account_tokens SET used_at = $1 WHERE token_hash = $2 \
     AND purpose = $3 AND used_at IS NULL AND expires_at > $1";

const VOID_TOKENS: &str = "UPDATE account_tokens SET used_at = $1 \
     WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL";

/// The recovery took effect: the second factors go, every authentication made under the
/// old credentials epoch ends (sessions, pending logins, codes and refresh tokens check it).
const DELETE_FACTORS: [&str; 3] = [
    "DELETE FROM totp_credentials WHERE user_id = $1",
    "DELETE FROM backup_codes WHERE user_id = $1",
    "DELETE FROM passkeys WHERE user_id = $1",
];
const MUST_ENROL: &str = "UPDATE users SET must_enrol_factor = TRUE, \
     credentials_epoch = credentials_epoch + 1, credentials_changed_at = $2, updated_at = $2 \
     WHERE id = $1";

macro_rules! recovery_store {
    ($store:ty) => {
        #[async_trait]
        impl RecoveryStore for $store {
            async fn write_recovery(&self, c: &RecoveryChange<'_>) -> Result<bool, StoreError> {
                let mut tx = self.begin().await?;
                let to = c.to;
                if let Some((hash, purpose)) = c.spend {
                    let spent = sqlx::query(SPEND_TOKEN)
                        .bind(c.now)
                        .bind(hash)
                        .bind(purpose.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(backend)?;
                    if spent.rows_affected() != 1 {
                        return Ok(false);
                    }
                }
                let (_, reminded_at, closed_at, cancelled_by) = columns(to);
                let effective_at = effective_at(c.from, to);
                let written = match c.from {
                    Some(from) => sqlx::query(ADVANCE)
                        .bind(to.state.name())
                        .bind(to.confirmed_at)
                        .bind(effective_at)
                        .bind(reminded_at)
                        .bind(closed_at)
                        .bind(cancelled_by)
                        .bind(&to.id)
                        .bind(from.state.name())
                        .bind(columns(from).1.is_none())
                        .execute(&mut *tx)
                        .await
                        .map_err(backend)?
                        .rows_affected(),
                    None => {
                        sqlx::query(SUPERSEDE)
                            .bind(c.now)
                            .bind(&to.user_id)
                            .execute(&mut *tx)
                            .await
                            .map_err(backend)?;
                        let inserted = sqlx::query(INSERT)
                            .bind(&to.id)
                            .bind(&to.user_id)
                            .bind(to.via.as_str())
                            .bind(to.state.name())
                            .bind(to.requested_at)
                            .bind(to.confirm_by)
                            .bind(to.confirmed_at)
                            .bind(effective_at)
                            .bind(reminded_at)
                            .bind(closed_at)
                            .bind(cancelled_by)
                            .execute(&mut *tx)
                            .await;
                        match inserted {
                            Ok(done) => done.rows_affected(),
                            // A recovery is already waiting (the partial unique index).
                            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => 0,
                            Err(e) => return Err(backend(e)),
                        }
                    }
                };
                if written != 1 {
                    return Ok(false);
                }
                if c.remove_factors {
                    for sql in DELETE_FACTORS {
                        sqlx::query(sql)
                            .bind(&to.user_id)
                            .execute(&mut *tx)
                            .await
                            .map_err(backend)?;
                    }
                    sqlx::query(MUST_ENROL)
                        .bind(&to.user_id)
                        .bind(c.now)
                        .execute(&mut *tx)
                        .await
                        .map_err(backend)?;
                }
                for purpose in c.void {
                    sqlx::query(VOID_TOKENS)
                        .bind(c.now)
                        .bind(&to.user_id)
                        .bind(purpose.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(backend)?;
                }
                if let Some(t) = c.issue {
                    insert_token!(tx, t)?;
                }
                for mail in c.mails {
                    insert_mail!(tx, mail)?;
                }
                tx.commit().await.map_err(backend)?;
                Ok(true)
            }

            async fn open_recovery(
                &self,
                user_id: &str,
            ) -> Result<Option<MfaRecovery>, StoreError> {
                let sql = format!(
                    "SELECT {RECOVERY_COLUMNS} FROM mfa_recoveries \
                     WHERE user_id = $1 AND state IN ('requested', 'waiting')"
                );
                let row: Option<RecoveryRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(user_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?;
                row.map(MfaRecovery::try_from).transpose()
            }

            async fn due_recoveries(
                &self,
                now: UnixTime,
                remind_until: UnixTime,
                limit: u32,
            ) -> Result<Vec<MfaRecovery>, StoreError> {
                let sql = format!(
                    "SELECT {RECOVERY_COLUMNS} FROM mfa_recoveries WHERE state = 'waiting' \
                     AND (effective_at <= $1 OR (reminded_at IS NULL AND effective_at <= $2)) \
                     ORDER BY effective_at, id LIMIT $3"
                );
                let rows: Vec<RecoveryRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(now)
                    .bind(remind_until)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(backend)?;
                rows.into_iter().map(MfaRecovery::try_from).collect()
            }

            async fn must_enrol_factor(&self, user_id: &str) -> Result<bool, StoreError> {
                let flag: Option<bool> =
                    sqlx::query_scalar("SELECT must_enrol_factor FROM users WHERE id = $1")
                        .bind(user_id)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(backend)?;
                Ok(flag.unwrap_or(false))
            }

            async fn clear_must_enrol_factor(&self, user_id: &str) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE users SET must_enrol_factor = FALSE \
                     WHERE id = $1 AND must_enrol_factor = TRUE",
                )
                .bind(user_id)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
                Ok(())
            }
        }
    };
}

recovery_store!(PgStore);
recovery_store!(SqliteStore);
