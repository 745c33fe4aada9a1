//! `ThrottleStore` for both backends. Each call is one transaction that holds the rows of
//! its buckets: PostgreSQL inserts a placeholder for each missing key and locks every key
//! with `SELECT ... FOR UPDATE`, in sorted order so that two calls never deadlock; SQLite's
//! `BEGIN IMMEDIATE` already serialises writers. A placeholder is never committed: the
//! update either writes the bucket or deletes it.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::backend;
use crate::clock::UnixTime;
use crate::domain::ThrottleBucket;
use crate::store::{BucketUpdate, PgStore, SqliteStore, StoreError, ThrottleStore};

#[derive(sqlx::FromRow)]
struct BucketRow {
    count: i64,
    window_start: i64,
    blocked_until: i64,
}

impl From<BucketRow> for ThrottleBucket {
    fn from(r: BucketRow) -> Self {
        ThrottleBucket {
            count: r.count,
            window_start: r.window_start,
            blocked_until: r.blocked_until,
        }
    }
}

/// A key deleted by another call between our insert and our lock is inserted again; this
/// bounds how often, so that a pathological race ends in an error rather than a loop.
const LOCK_ATTEMPTS: usize = 8;

const INSERT_PLACEHOLDER: &str = "INSERT INTO throttle_buckets \
     (key, count, window_start, blocked_until, updated_at) VALUES ($1, 0, 0, 0, 0) \
     ON CONFLICT (key) DO NOTHING";

const WRITE: &str = "UPDATE throttle_buckets SET count = $1, window_start = $2, \
     blocked_until = $3, updated_at = $4 WHERE key = $5";

/// The update returned one bucket per key given (a broken caller otherwise).
fn check_len(keys: &[String], out: &[Option<ThrottleBucket>]) -> Result<(), StoreError> {
    if keys.len() == out.len() {
        return Ok(());
    }
    Err(StoreError::Backend(
        format!(
            "throttle update returned {} buckets for {} keys",
            out.len(),
            keys.len()
        )
        .into(),
    ))
}

macro_rules! throttle_store {
    ($store:ty, $db:ty, $lock:literal) => {
        impl $store {
            /// Makes sure `key` has a row and locks it; `None` if the row is our placeholder.
            async fn lock_bucket(
                tx: &mut sqlx::Transaction<'static, $db>,
                key: &str,
            ) -> Result<Option<ThrottleBucket>, StoreError> {
                for _ in 0..LOCK_ATTEMPTS {
                    let inserted = sqlx::query(INSERT_PLACEHOLDER)
                        .bind(key)
                        .execute(&mut **tx)
                        .await
                        .map_err(backend)?
                        .rows_affected()
                        == 1;
                    let sql = concat!(
                        "SELECT count, window_start, blocked_until FROM throttle_buckets \
                         WHERE key = $1",
                        $lock
                    );
                    let row: Option<BucketRow> = sqlx::query_as(sql)
                        .bind(key)
                        .fetch_optional(&mut **tx)
                        .await
                        .map_err(backend)?;
                    match row {
                        Some(_) if inserted => return Ok(None),
                        Some(row) => return Ok(Some(row.into())),
                        // Deleted by a call that held it while we inserted nothing: again.
                        None => continue,
                    }
                }
                Err(StoreError::Backend(
                    format!("throttle bucket {key:?} kept vanishing").into(),
                ))
            }

            /// Writes (or, for `None`, deletes) one bucket inside the transaction.
            async fn write_bucket(
                tx: &mut sqlx::Transaction<'static, $db>,
                key: &str,
                bucket: Option<ThrottleBucket>,
                now: UnixTime,
            ) -> Result<(), StoreError> {
                let query = match bucket {
                    Some(b) => sqlx::query(WRITE)
                        .bind(b.count)
                        .bind(b.window_start)
                        .bind(b.blocked_until)
                        .bind(now)
                        .bind(key),
                    None => sqlx::query("DELETE FROM throttle_buckets WHERE key = $1").bind(key),
                };
                query.execute(&mut **tx).await.map_err(backend)?;
                Ok(())
            }
        }

        #[async_trait]
        impl ThrottleStore for $store {
            async fn update_buckets(
                &self,
                keys: &[String],
                now: UnixTime,
                update: BucketUpdate<'_>,
            ) -> Result<Vec<Option<ThrottleBucket>>, StoreError> {
                let mut tx = self.begin().await?;
                // Sorted and once each: the lock order every call shares.
                let mut current = BTreeMap::new();
                for key in keys {
                    current.insert(key.as_str(), None);
                }
                for (key, bucket) in current.iter_mut() {
                    *bucket = Self::lock_bucket(&mut tx, key).await?;
                }
                let given: Vec<_> = keys
                    .iter()
                    .map(|k| current.get(k.as_str()).copied().flatten())
                    .collect();
                let out = update(&given);
                check_len(keys, &out)?;
                // A key given twice keeps its last result.
                let next: BTreeMap<_, _> = keys
                    .iter()
                    .map(String::as_str)
                    .zip(out.iter().copied())
                    .collect();
                for (key, bucket) in next {
                    Self::write_bucket(&mut tx, key, bucket, now).await?;
                }
                tx.commit().await.map_err(backend)?;
                Ok(out)
            }
        }
    };
}

throttle_store!(PgStore, sqlx::Postgres, " FOR UPDATE");
throttle_store!(SqliteStore, sqlx::Sqlite, "");
