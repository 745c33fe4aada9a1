//! `ThrottleStore` for both backends: one transaction per call, which reads every bucket
//! of the call in one statement and writes them all back in one more. During a storm of
//! sign-ins each attempt runs one of these, so its round trips are what the attempts
//! queue behind (a call took fourteen, one statement per bucket and step, before
//! `docs/performance.md`'s ninth round).
//!
//! - **PostgreSQL** (`BEGIN`, hold, write, `COMMIT`): the hold is one upsert that inserts
//!   a placeholder row for each missing key and, for each existing one, takes its row
//!   lock (`ON CONFLICT ... DO UPDATE` locks the row it conflicts with), in sorted key
//!   order, so that two calls never deadlock; it returns every row. A placeholder is
//!   never committed: the write either fills the bucket or deletes it.
//! - **SQLite**: `BEGIN IMMEDIATE` already serialises writers, so the hold is a plain
//!   read, and the write an upsert. The whole call runs on the store's thread, the
//!   decision too, in two commands to the writer (`BEGIN IMMEDIATE` and the read; the
//!   writes and `COMMIT`): no token is signed between them while the writer is held.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;

use super::backend;
use crate::clock::UnixTime;
use crate::domain::ThrottleBucket;
use crate::store::sqlite::transaction_of_two;
use crate::store::{BucketUpdate, PgStore, SqliteStore, StoreError, ThrottleStore};

/// `updated_at` of a placeholder row (PostgreSQL): no stored bucket has it, as every
/// write stamps the time of the call.
const PLACEHOLDER: i64 = -1;

/// One bucket row, with its key.
#[derive(sqlx::FromRow)]
struct HeldRow {
    key: String,
    count: i64,
    window_start: i64,
    blocked_until: i64,
    updated_at: i64,
}

impl HeldRow {
    /// The stored bucket; `None` for our own placeholder.
    fn bucket(&self) -> Option<ThrottleBucket> {
        (self.updated_at != PLACEHOLDER).then_some(ThrottleBucket {
            count: self.count,
            window_start: self.window_start,
            blocked_until: self.blocked_until,
        })
    }
}

/// What one call writes back, and what its update returned.
#[derive(Debug, Default, PartialEq)]
struct Plan {
    out: Vec<Option<ThrottleBucket>>,
    /// Buckets to store, by key.
    keep: Vec<(String, ThrottleBucket)>,
    /// Keys whose bucket is deleted.
    delete: Vec<String>,
}

/// The keys of a call, once each and sorted.
fn distinct(keys: &[String]) -> Vec<String> {
    keys.iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Runs `update` on the buckets `held` (the rows the hold returned; PostgreSQL returns
/// one for every key, SQLite only those that exist) and says what to write back.
fn plan(keys: &[String], held: Vec<HeldRow>, update: BucketUpdate) -> Result<Plan, StoreError> {
    let held: HashMap<String, Option<ThrottleBucket>> = held
        .into_iter()
        .map(|row| {
            let bucket = row.bucket();
            (row.key, bucket)
        })
        .collect();
    let given: Vec<_> = keys
        .iter()
        .map(|k| held.get(k).copied().flatten())
        .collect();
    let out = update(&given);
    if out.len() != keys.len() {
        return Err(StoreError::Backend(
            format!(
                "throttle update returned {} buckets for {} keys",
                out.len(),
                keys.len()
            )
            .into(),
        ));
    }
    // A key given twice keeps its last result.
    let next: BTreeMap<&str, Option<ThrottleBucket>> = keys
        .iter()
        .map(String::as_str)
        .zip(out.iter().copied())
        .collect();
    let mut plan = Plan {
        out,
        ..Plan::default()
    };
    for (key, bucket) in next {
        match bucket {
            Some(b) => plan.keep.push((key.to_owned(), b)),
            None => plan.delete.push(key.to_owned()),
        }
    }
    Ok(plan)
}

/// Every key of a PostgreSQL call held: a missing row would mean a call that is not
/// serialised with the others.
fn all_held(keys: &[String], held: &[HeldRow]) -> Result<(), StoreError> {
    let missing = keys.iter().find(|k| !held.iter().any(|r| &r.key == *k));
    match missing {
        None => Ok(()),
        Some(key) => Err(StoreError::Backend(
            format!("throttle bucket {key:?} was not held").into(),
        )),
    }
}

/// Inserts a placeholder for each missing key and locks each existing row, in key order,
/// and returns every row: `DO UPDATE` (a write that changes nothing) locks the row it
/// conflicts with and returns it, where `DO NOTHING` would do neither. A row deleted by
/// another call while we waited for it is inserted instead (PostgreSQL retries the
/// insert). The order is the keys' bytes (`COLLATE "C"`), the same for every call
/// whatever the database's locale, and the order the calls before this form locked in.
const PG_HOLD: &str = "INSERT INTO throttle_buckets \
     (key, count, window_start, blocked_until, updated_at) \
     SELECT k, 0, 0, 0, -1 FROM unnest($1::text[]) AS k ORDER BY k COLLATE \"C\" \
     ON CONFLICT (key) DO UPDATE SET count = throttle_buckets.count \
     RETURNING key, count, window_start, blocked_until, updated_at";

/// Writes the kept buckets and deletes the others, in one statement.
const PG_WRITE: &str = "WITH gone AS (DELETE FROM throttle_buckets WHERE key = ANY($6::text[])) \
     UPDATE throttle_buckets AS t SET count = v.count, window_start = v.window_start, \
     blocked_until = v.blocked_until, updated_at = $5 \
     FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[]) \
     AS v(key, count, window_start, blocked_until) WHERE t.key = v.key";

#[async_trait]
impl ThrottleStore for PgStore {
    async fn update_buckets(
        &self,
        keys: &[String],
        now: UnixTime,
        update: BucketUpdate,
    ) -> Result<Vec<Option<ThrottleBucket>>, StoreError> {
        let distinct = distinct(keys);
        let mut tx = self.begin().await?;
        let held: Vec<HeldRow> = sqlx::query_as(PG_HOLD)
            .bind(&distinct)
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?;
        all_held(&distinct, &held)?;
        let plan = plan(keys, held, update)?;
        let (kept, buckets): (Vec<String>, Vec<ThrottleBucket>) = plan.keep.into_iter().unzip();
        sqlx::query(PG_WRITE)
            .bind(&kept)
            .bind(buckets.iter().map(|b| b.count).collect::<Vec<_>>())
            .bind(buckets.iter().map(|b| b.window_start).collect::<Vec<_>>())
            .bind(buckets.iter().map(|b| b.blocked_until).collect::<Vec<_>>())
            .bind(now)
            .bind(&plan.delete)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(plan.out)
    }
}

/// Takes the write lock and reads the buckets that exist (keys as a JSON array).
const SQLITE_HOLD: &str = "BEGIN IMMEDIATE; \
     SELECT key, count, window_start, blocked_until, updated_at FROM throttle_buckets \
     WHERE key IN (SELECT value FROM json_each($1))";

/// Writes the kept buckets (`[key, count, window_start, blocked_until]` each, as JSON),
/// deletes the others (keys as JSON) and commits.
const SQLITE_WRITE: &str = "INSERT INTO throttle_buckets \
     (key, count, window_start, blocked_until, updated_at) \
     SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), \
     json_extract(value, '$[2]'), json_extract(value, '$[3]'), $2 \
     FROM json_each($1) WHERE true \
     ON CONFLICT (key) DO UPDATE SET count = excluded.count, \
     window_start = excluded.window_start, blocked_until = excluded.blocked_until, \
     updated_at = excluded.updated_at; \
     DELETE FROM throttle_buckets WHERE key IN (SELECT value FROM json_each($3)); \
     COMMIT";

fn json(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(Box::new(e)))
}

#[async_trait]
impl ThrottleStore for SqliteStore {
    async fn update_buckets(
        &self,
        keys: &[String],
        now: UnixTime,
        update: BucketUpdate,
    ) -> Result<Vec<Option<ThrottleBucket>>, StoreError> {
        let keys = keys.to_vec();
        let pool = self.pool.clone();
        let hold = sqlx::query(SQLITE_HOLD).bind(json(&distinct(&keys))?);
        self.on_store_runtime(async move {
            transaction_of_two(&pool, hold, move |rows| {
                let held = rows
                    .iter()
                    .map(sqlx::FromRow::from_row)
                    .collect::<Result<Vec<HeldRow>, sqlx::Error>>()
                    .map_err(backend)?;
                let plan = plan(&keys, held, update)?;
                let kept: Vec<_> = plan
                    .keep
                    .iter()
                    .map(|(k, b)| (k, b.count, b.window_start, b.blocked_until))
                    .collect();
                let write = sqlx::query(SQLITE_WRITE)
                    .bind(json(&kept)?)
                    .bind(now)
                    .bind(json(&plan.delete)?);
                Ok((write, plan.out))
            })
            .await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, count: i64, updated_at: i64) -> HeldRow {
        HeldRow {
            key: key.into(),
            count,
            window_start: 10,
            blocked_until: 0,
            updated_at,
        }
    }

    fn bucket(count: i64) -> ThrottleBucket {
        ThrottleBucket {
            count,
            window_start: 10,
            blocked_until: 0,
        }
    }

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn keys_are_held_once_each_in_sorted_order() {
        assert_eq!(
            distinct(&keys(&["b", "a", "b", "c"])),
            keys(&["a", "b", "c"])
        );
    }

    #[test]
    fn a_placeholder_is_no_bucket_and_a_missing_row_neither() {
        let held = vec![row("a", 3, 100), row("b", 0, PLACEHOLDER)];
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        let update: BucketUpdate = Box::new(move |current| {
            record.lock().unwrap().extend_from_slice(current);
            current.to_vec()
        });
        plan(&keys(&["a", "b", "c"]), held, update).unwrap();
        assert_eq!(*seen.lock().unwrap(), [Some(bucket(3)), None, None]);
    }

    #[test]
    fn kept_and_deleted_buckets_are_split_and_a_repeated_key_keeps_its_last() {
        let update: BucketUpdate = Box::new(|_| vec![Some(bucket(1)), None, Some(bucket(2)), None]);
        let plan = plan(&keys(&["x", "y", "z", "x"]), vec![], update).unwrap();
        assert_eq!(plan.keep, [("z".to_owned(), bucket(2))]);
        assert_eq!(plan.delete, keys(&["x", "y"]));
        assert_eq!(plan.out.len(), 4);
    }

    #[test]
    fn an_update_of_the_wrong_length_is_an_error() {
        let update: BucketUpdate = Box::new(|_| vec![None]);
        assert!(plan(&keys(&["a", "b"]), vec![], update).is_err());
    }

    #[test]
    fn a_key_the_hold_did_not_return_is_an_error() {
        let held = [row("a", 1, 100)];
        assert!(all_held(&keys(&["a"]), &held).is_ok());
        assert!(all_held(&keys(&["a", "b"]), &held).is_err());
    }
}
