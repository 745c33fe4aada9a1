//! `FactorStore` (TOTP, backup codes) and `PendingLoginStore` for both backends. Single use
//! is decided in SQL: a TOTP step by `last_used_step < $step`, a backup code by
//! `used_at IS NULL`, a pending login by `DELETE ... RETURNING`.

use async_trait::async_trait;

use super::{backend, corrupt, write_error};
use crate::clock::UnixTime;
use crate::domain::{PendingLoginRecord, TotpCredential};
use crate::store::{FactorStore, PendingLoginStore, PgStore, SqliteStore, StoreError};

#[derive(sqlx::FromRow)]
struct TotpRow {
    user_id: String,
    secret_sealed: Vec<u8>,
    created_at: i64,
    confirmed_at: Option<i64>,
    last_used_step: i64,
}

impl From<TotpRow> for TotpCredential {
    fn from(r: TotpRow) -> Self {
        TotpCredential {
            user_id: r.user_id,
            secret_sealed: r.secret_sealed,
            created_at: r.created_at,
            confirmed_at: r.confirmed_at,
            last_used_step: r.last_used_step,
        }
    }
}

#[derive(sqlx::FromRow)]
struct PendingRow {
    id_hash: Vec<u8>,
    state: String,
    created_at: i64,
    expires_at: i64,
}

impl From<PendingRow> for PendingLoginRecord {
    fn from(r: PendingRow) -> Self {
        PendingLoginRecord {
            id_hash: r.id_hash,
            state: r.state,
            created_at: r.created_at,
            expires_at: r.expires_at,
        }
    }
}

/// A new pending credential, or one replacing a pending (never a confirmed) one: the
/// upsert's `WHERE` leaves a confirmed row alone, and its row count then says so.
const PUT_PENDING_TOTP: &str =
    "INSERT INTO totp_credentials (user_id, secret_sealed, created_at, confirmed_at, \
     last_used_step) VALUES ($1, $2, $3, NULL, 0) \
     ON CONFLICT (user_id) DO UPDATE SET secret_sealed = excluded.secret_sealed, \
     created_at = excluded.created_at, last_used_step = 0 \
     WHERE totp_credentials.confirmed_at IS NULL";

/// RFC 6238 §5.2: a step is accepted once, and never after a later one.
const USE_TOTP_STEP: &str = "UPDATE totp_credentials SET last_used_step = $1 \
     WHERE user_id = $2 AND confirmed_at IS NOT NULL AND last_used_step < $1";

/// Replaces a user's backup codes inside the caller's transaction: the old set is void.
macro_rules! replace_codes {
    ($tx:expr, $user_id:expr, $codes:expr, $now:expr) => {{
        sqlx::query("DELETE FROM backup_codes WHERE user_id = $1")
            .bind($user_id)
            .execute(&mut *$tx)
            .await
            .map_err(backend)?;
        for code in $codes {
            sqlx::query(
                "INSERT INTO backup_codes (user_id, code_hash, created_at, used_at) \
                 VALUES ($1, $2, $3, NULL)",
            )
            .bind($user_id)
            .bind(code.as_slice())
            .bind($now)
            .execute(&mut *$tx)
            .await
            .map_err(write_error("backup code"))?;
        }
    }};
}

macro_rules! factor_store {
    ($store:ty) => {
        #[async_trait]
        impl FactorStore for $store {
            async fn put_pending_totp(
                &self,
                user_id: &str,
                secret_sealed: &[u8],
                now: UnixTime,
            ) -> Result<(), StoreError> {
                let done = sqlx::query(PUT_PENDING_TOTP)
                    .bind(user_id)
                    .bind(secret_sealed)
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Conflict(
                        "a confirmed TOTP credential already exists".into(),
                    ));
                }
                Ok(())
            }

            async fn get_totp(&self, user_id: &str) -> Result<Option<TotpCredential>, StoreError> {
                let row: Option<TotpRow> = sqlx::query_as(
                    "SELECT user_id, secret_sealed, created_at, confirmed_at, last_used_step \
                     FROM totp_credentials WHERE user_id = $1",
                )
                .bind(user_id)
                .fetch_optional(&self.reader)
                .await
                .map_err(backend)?;
                Ok(row.map(TotpCredential::from))
            }

            async fn confirm_totp(
                &self,
                user_id: &str,
                step: i64,
                codes: &[Vec<u8>],
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                let mut tx = self.begin().await?;
                let confirmed = sqlx::query(
                    "UPDATE totp_credentials SET confirmed_at = $1, last_used_step = $2 \
                     WHERE user_id = $3 AND confirmed_at IS NULL",
                )
                .bind(now)
                .bind(step)
                .bind(user_id)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
                if confirmed.rows_affected() != 1 {
                    return Ok(false);
                }
                replace_codes!(tx, user_id, codes, now);
                tx.commit().await.map_err(backend)?;
                Ok(true)
            }

            async fn use_totp_step(&self, user_id: &str, step: i64) -> Result<bool, StoreError> {
                let done = sqlx::query(USE_TOTP_STEP)
                    .bind(step)
                    .bind(user_id)
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_totp(&self, user_id: &str) -> Result<bool, StoreError> {
                let mut tx = self.begin().await?;
                sqlx::query("DELETE FROM backup_codes WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                let done = sqlx::query("DELETE FROM totp_credentials WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                tx.commit().await.map_err(backend)?;
                Ok(done.rows_affected() > 0)
            }

            async fn replace_backup_codes(
                &self,
                user_id: &str,
                codes: &[Vec<u8>],
                now: UnixTime,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin().await?;
                replace_codes!(tx, user_id, codes, now);
                tx.commit().await.map_err(backend)
            }

            async fn use_backup_code(
                &self,
                user_id: &str,
                code_hash: &[u8],
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE backup_codes SET used_at = $1 \
                     WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL",
                )
                .bind(now)
                .bind(user_id)
                .bind(code_hash)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
                Ok(done.rows_affected() == 1)
            }

            async fn backup_codes_left(&self, user_id: &str) -> Result<u32, StoreError> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM backup_codes WHERE user_id = $1 AND used_at IS NULL",
                )
                .bind(user_id)
                .fetch_one(&self.reader)
                .await
                .map_err(backend)?;
                u32::try_from(n).map_err(corrupt)
            }
        }

        #[async_trait]
        impl PendingLoginStore for $store {
            async fn insert_pending_login(&self, p: &PendingLoginRecord) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO pending_logins (id_hash, state, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&p.id_hash)
                .bind(&p.state)
                .bind(p.created_at)
                .bind(p.expires_at)
                .execute(&self.pool)
                .await
                .map_err(write_error("pending login"))?;
                Ok(())
            }

            async fn take_pending_login(
                &self,
                id_hash: &[u8],
            ) -> Result<Option<PendingLoginRecord>, StoreError> {
                let row: Option<PendingRow> = sqlx::query_as(
                    "DELETE FROM pending_logins WHERE id_hash = $1 \
                     RETURNING id_hash, state, created_at, expires_at",
                )
                .bind(id_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
                Ok(row.map(PendingLoginRecord::from))
            }
        }
    };
}

factor_store!(PgStore);
factor_store!(SqliteStore);
