//! `KeyStore` for both backends.

use async_trait::async_trait;

use super::{backend, write_error};
use crate::domain::{KeyState, SigningKeyRecord};
use crate::store::{KeyStore, PgStore, Rotation, SqliteStore, StoreError};

#[derive(sqlx::FromRow)]
struct KeyRow {
    kid: String,
    state: String,
    alg: String,
    bits: i64,
    private_key_sealed: Vec<u8>,
    public_n: String,
    public_e: String,
    created_at: i64,
    activated_at: Option<i64>,
    deactivated_at: Option<i64>,
    retires_at: Option<i64>,
}

impl TryFrom<KeyRow> for SigningKeyRecord {
    type Error = StoreError;

    fn try_from(r: KeyRow) -> Result<Self, StoreError> {
        let state = KeyState::parse(&r.state)
            .ok_or_else(|| StoreError::Corrupt(format!("key {} has state {:?}", r.kid, r.state)))?;
        Ok(SigningKeyRecord {
            kid: r.kid,
            state,
            alg: r.alg,
            bits: r.bits,
            private_key_sealed: r.private_key_sealed,
            public_n: r.public_n,
            public_e: r.public_e,
            created_at: r.created_at,
            activated_at: r.activated_at,
            deactivated_at: r.deactivated_at,
            retires_at: r.retires_at,
        })
    }
}

const SELECT: &str = "SELECT kid, state, alg, bits, private_key_sealed, public_n, public_e, \
     created_at, activated_at, deactivated_at, retires_at FROM signing_keys";

const INSERT: &str = "INSERT INTO signing_keys (kid, state, alg, bits, private_key_sealed, \
     public_n, public_e, created_at, activated_at, deactivated_at, retires_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

macro_rules! insert_key {
    ($k:expr, $conn:expr) => {
        sqlx::query(INSERT)
            .bind(&$k.kid)
            .bind($k.state.as_str())
            .bind(&$k.alg)
            .bind($k.bits)
            .bind(&$k.private_key_sealed)
            .bind(&$k.public_n)
            .bind(&$k.public_e)
            .bind($k.created_at)
            .bind($k.activated_at)
            .bind($k.deactivated_at)
            .bind($k.retires_at)
            .execute($conn)
            .await
            .map_err(write_error("signing key"))
    };
}

macro_rules! key_store {
    ($store:ty) => {
        #[async_trait]
        impl KeyStore for $store {
            async fn list_published_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
                let sql = sqlx::AssertSqlSafe(format!(
                    "{SELECT} WHERE state <> 'retired' ORDER BY created_at, kid"
                ));
                let rows: Vec<KeyRow> = sqlx::query_as(sql).fetch_all(&self.reader).await.map_err(backend)?;
                rows.into_iter().map(SigningKeyRecord::try_from).collect()
            }

            async fn list_all_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
                let sql = sqlx::AssertSqlSafe(format!("{SELECT} ORDER BY created_at, kid"));
                let rows: Vec<KeyRow> = sqlx::query_as(sql).fetch_all(&self.reader).await.map_err(backend)?;
                rows.into_iter().map(SigningKeyRecord::try_from).collect()
            }

            async fn insert_initial_keys(
                &self,
                current: &SigningKeyRecord,
                next: &SigningKeyRecord,
            ) -> Result<bool, StoreError> {
                let mut tx = self.begin().await?;
                let existing: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys WHERE state = 'current'")
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(backend)?;
                if existing > 0 {
                    return Ok(false);
                }
                // Another node racing us trips the one-current index: it won, we did not.
                for key in [current, next] {
                    match insert_key!(key, &mut *tx) {
                        Ok(_) => {}
                        Err(StoreError::Conflict(_)) => return Ok(false),
                        Err(e) => return Err(e),
                    }
                }
                match tx.commit().await.map_err(write_error("signing key")) {
                    Ok(()) => Ok(true),
                    Err(StoreError::Conflict(_)) => Ok(false),
                    Err(e) => Err(e),
                }
            }

            async fn rotate_keys(&self, r: &Rotation<'_>) -> Result<(), StoreError> {
                let mut tx = self.begin().await?;
                // 1. current -> previous, first, so the one-current index is free.
                sqlx::query(
                    "UPDATE signing_keys SET state = 'previous', deactivated_at = $1, retires_at = $2 \
                     WHERE state = 'current'",
                )
                .bind(r.now)
                .bind(r.previous_retires_at)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
                // 2. next -> current, only if the key we checked is still the next one.
                let promoted = sqlx::query(
                    "UPDATE signing_keys SET state = 'current', activated_at = $1 \
                     WHERE kid = $2 AND state = 'next'",
                )
                .bind(r.now)
                .bind(r.promote_kid)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
                if promoted.rows_affected() != 1 {
                    return Err(StoreError::Conflict(format!(
                        "key {} is no longer next: another rotation ran first",
                        r.promote_kid
                    )));
                }
                // 3. a new next.
                insert_key!(r.new_next, &mut *tx)?;
                tx.commit().await.map_err(backend)
            }

            async fn reseal_key(&self, kid: &str, old: &[u8], new: &[u8]) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE signing_keys SET private_key_sealed = $1 \
                     WHERE kid = $2 AND private_key_sealed = $3 AND state <> 'retired'",
                )
                .bind(new)
                .bind(kid)
                .bind(old)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
                Ok(done.rows_affected() > 0)
            }

            async fn retire_key(&self, kid: &str, from: KeyState) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE signing_keys SET state = 'retired', private_key_sealed = $1 \
                     WHERE kid = $2 AND state = $3",
                )
                .bind(Vec::<u8>::new())
                .bind(kid)
                .bind(from.as_str())
                .execute(&self.pool)
                .await
                .map_err(backend)?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}

key_store!(PgStore);
key_store!(SqliteStore);
