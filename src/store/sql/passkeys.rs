//! `PasskeyStore` for both backends. Races are decided in SQL: the user handle by
//! `webauthn_handle IS NULL`, an assertion by its counter (WebAuthn L3 §7.2 step 22) in a
//! single `UPDATE`, a ceremony by `DELETE ... RETURNING`.

use async_trait::async_trait;

use super::users::{UserRow, COLUMNS as USER_COLUMNS};
use super::{backend, write_error};
use crate::clock::UnixTime;
use crate::domain::{CeremonyRecord, PasskeyRecord, PasskeyUse, User};
use crate::store::{PasskeyStore, PgStore, SqliteStore, StoreError};

#[derive(sqlx::FromRow)]
struct PasskeyRow {
    id: String,
    user_id: String,
    credential_id: Vec<u8>,
    name: String,
    credential: String,
    counter: i64,
    backup_eligible: bool,
    backed_up: bool,
    created_at: i64,
    last_used_at: Option<i64>,
    counter_regressed_at: Option<i64>,
}

impl From<PasskeyRow> for PasskeyRecord {
    fn from(r: PasskeyRow) -> Self {
        PasskeyRecord {
            id: r.id,
            user_id: r.user_id,
            credential_id: r.credential_id,
            name: r.name,
            credential: r.credential,
            counter: r.counter,
            backup_eligible: r.backup_eligible,
            backed_up: r.backed_up,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            counter_regressed_at: r.counter_regressed_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct CeremonyRow {
    id_hash: Vec<u8>,
    state: String,
    created_at: i64,
    expires_at: i64,
}

impl From<CeremonyRow> for CeremonyRecord {
    fn from(r: CeremonyRow) -> Self {
        CeremonyRecord {
            id_hash: r.id_hash,
            state: r.state,
            created_at: r.created_at,
            expires_at: r.expires_at,
        }
    }
}

/// Selects every `PasskeyRow` column.
const SELECT_PASSKEY: &str =
    "SELECT id, user_id, credential_id, name, credential, counter, backup_eligible, backed_up, \
     created_at, last_used_at, counter_regressed_at FROM passkeys";

/// WebAuthn L3 §7.2 step 22: a counter that does not move forward is refused, unless the
/// authenticator does not count (stored and reported both 0). Concurrent assertions with
/// the same counter re-check the row once the winner's write is visible: one wins.
const USE_PASSKEY: &str =
    "UPDATE passkeys SET counter = $1, credential = $2, backed_up = $3, last_used_at = $4 \
     WHERE credential_id = $5 AND (counter < $1 OR ($1 = 0 AND counter = 0))";

macro_rules! passkey_store {
    ($store:ty) => {
        #[async_trait]
        impl PasskeyStore for $store {
            async fn webauthn_handle(
                &self,
                user_id: &str,
                candidate: &str,
            ) -> Result<Option<String>, StoreError> {
                sqlx::query(
                    "UPDATE users SET webauthn_handle = $2 \
                     WHERE id = $1 AND webauthn_handle IS NULL",
                )
                .bind(user_id)
                .bind(candidate)
                .execute(&self.pool)
                .await
                .map_err(write_error("this WebAuthn user handle"))?;
                // Whoever set it first, this node or another, that is the handle.
                let stored: Option<Option<String>> =
                    sqlx::query_scalar("SELECT webauthn_handle FROM users WHERE id = $1")
                        .bind(user_id)
                        .fetch_optional(&self.reader)
                        .await
                        .map_err(backend)?;
                Ok(stored.flatten())
            }

            async fn user_by_webauthn_handle(
                &self,
                handle: &str,
            ) -> Result<Option<User>, StoreError> {
                // Every part of the statement is a constant.
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE webauthn_handle = $1"
                ));
                let row: Option<UserRow> = sqlx::query_as(sql)
                    .bind(handle)
                    .fetch_optional(&self.reader)
                    .await
                    .map_err(backend)?;
                row.map(User::try_from).transpose()
            }

            async fn insert_passkey(&self, p: &PasskeyRecord) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO passkeys (id, user_id, credential_id, name, credential, counter, \
                     backup_eligible, backed_up, created_at, last_used_at, counter_regressed_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(&p.id)
                .bind(&p.user_id)
                .bind(&p.credential_id)
                .bind(&p.name)
                .bind(&p.credential)
                .bind(p.counter)
                .bind(p.backup_eligible)
                .bind(p.backed_up)
                .bind(p.created_at)
                .bind(p.last_used_at)
                .bind(p.counter_regressed_at)
                .execute(&self.pool)
                .await
                .map_err(write_error("a passkey with this credential id"))?;
                Ok(())
            }

            async fn list_passkeys(&self, user_id: &str) -> Result<Vec<PasskeyRecord>, StoreError> {
                let sql = sqlx::AssertSqlSafe(format!(
                    "{SELECT_PASSKEY} WHERE user_id = $1 ORDER BY created_at, id"
                ));
                let rows: Vec<PasskeyRow> = sqlx::query_as(sql)
                    .bind(user_id)
                    .fetch_all(&self.reader)
                    .await
                    .map_err(backend)?;
                Ok(rows.into_iter().map(PasskeyRecord::from).collect())
            }

            async fn get_passkey(
                &self,
                credential_id: &[u8],
            ) -> Result<Option<PasskeyRecord>, StoreError> {
                let sql =
                    sqlx::AssertSqlSafe(format!("{SELECT_PASSKEY} WHERE credential_id = $1"));
                let row: Option<PasskeyRow> = sqlx::query_as(sql)
                    .bind(credential_id)
                    .fetch_optional(&self.reader)
                    .await
                    .map_err(backend)?;
                Ok(row.map(PasskeyRecord::from))
            }

            async fn rename_passkey(
                &self,
                user_id: &str,
                id: &str,
                name: &str,
            ) -> Result<bool, StoreError> {
                let done =
                    sqlx::query("UPDATE passkeys SET name = $1 WHERE user_id = $2 AND id = $3")
                        .bind(name)
                        .bind(user_id)
                        .bind(id)
                        .execute(&self.pool)
                        .await
                        .map_err(backend)?;
                Ok(done.rows_affected() > 0)
            }

            async fn delete_passkey(&self, user_id: &str, id: &str) -> Result<bool, StoreError> {
                let done = sqlx::query("DELETE FROM passkeys WHERE user_id = $1 AND id = $2")
                    .bind(user_id)
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(done.rows_affected() > 0)
            }

            async fn record_passkey_use(&self, used: &PasskeyUse) -> Result<bool, StoreError> {
                let done = sqlx::query(USE_PASSKEY)
                    .bind(used.counter)
                    .bind(&used.credential)
                    .bind(used.backed_up)
                    .bind(used.at)
                    .bind(&used.credential_id)
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(done.rows_affected() == 1)
            }

            async fn mark_counter_regression(
                &self,
                credential_id: &[u8],
                now: UnixTime,
            ) -> Result<(), StoreError> {
                sqlx::query("UPDATE passkeys SET counter_regressed_at = $1 WHERE credential_id = $2")
                    .bind(now)
                    .bind(credential_id)
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(())
            }

            async fn insert_ceremony(&self, c: &CeremonyRecord) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO webauthn_ceremonies (id_hash, state, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&c.id_hash)
                .bind(&c.state)
                .bind(c.created_at)
                .bind(c.expires_at)
                .execute(&self.pool)
                .await
                .map_err(write_error("WebAuthn ceremony"))?;
                Ok(())
            }

            async fn take_ceremony(
                &self,
                id_hash: &[u8],
            ) -> Result<Option<CeremonyRecord>, StoreError> {
                let row: Option<CeremonyRow> = sqlx::query_as(
                    "DELETE FROM webauthn_ceremonies WHERE id_hash = $1 \
                     RETURNING id_hash, state, created_at, expires_at",
                )
                .bind(id_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
                Ok(row.map(CeremonyRecord::from))
            }
        }
    };
}

passkey_store!(PgStore);
passkey_store!(SqliteStore);
