//! The SQL both backends share. Each aggregate's file holds its row type, its SQL, and a
//! macro that implements the role trait for `PgStore` and `SqliteStore` from the same
//! text (sqlx accepts `$1` placeholders on both). Where the dialects differ, the
//! difference lives in the backend's own file (`begin` for transactions).

/// Runs `UPDATE <table> SET <column> = $1 WHERE <key> = $2 AND <column> IS NULL`: stamps
/// (ends, revokes, consumes) every matching row not stamped yet, once; yields how many.
macro_rules! stamp_once {
    ($pool:expr, $sql:literal, $now:expr, $key:expr) => {
        sqlx::query($sql)
            .bind($now)
            .bind($key)
            .execute($pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(backend)
    };
}

mod clients;
pub(super) mod code_batch;
mod enrolment;
mod factors;
mod grants;
mod keys;
mod mail;
mod passkeys;
mod pg_batch;
pub(super) use pg_batch::PgBatches;
mod recovery;
pub(super) mod refresh_batch;
mod reset;
mod revocation;
mod sessions;
mod throttle;
mod users;
mod write_batch;

use async_trait::async_trait;

use super::{PgStore, SqliteStore, StoreError};

/// Wraps a driver error: `Unavailable` when the database cannot be reached, `Backend`
/// otherwise.
pub(super) fn backend<E: std::error::Error + Send + Sync + 'static>(e: E) -> StoreError {
    if is_outage(&e) {
        StoreError::Unavailable(Box::new(e))
    } else {
        StoreError::Backend(Box::new(e))
    }
}

/// The database is down, restarting, unreachable, saturated or locked by someone else, as
/// opposed to a statement that failed: the request may succeed if repeated in a moment.
pub(super) fn is_outage(e: &(dyn std::error::Error + 'static)) -> bool {
    connection_lost(e) || sqlite_busy(e)
}

/// The connection, or the server behind it, is gone or refuses it: the connection must not
/// be used again.
pub(super) fn connection_lost(e: &(dyn std::error::Error + 'static)) -> bool {
    match e.downcast_ref::<sqlx::Error>() {
        Some(
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed,
        ) => true,
        // PostgreSQL SQLSTATE class 08 (connection exception), 57P01-57P03 (the server is
        // shutting down, crashed or starting), 53300 (too many connections).
        Some(sqlx::Error::Database(db))
            if db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some() =>
        {
            db.code().is_some_and(|code| {
                code.starts_with("08")
                    || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
            })
        }
        _ => false,
    }
}

/// SQLite: the database is locked by another connection or process for longer than the
/// busy timeout (`SQLITE_BUSY` and its extended codes, whose low byte is the primary
/// code: https://sqlite.org/rescode.html). The connection itself is fine. `SQLITE_LOCKED`
/// is a conflict within one connection, a bug rather than an outage.
fn sqlite_busy(e: &(dyn std::error::Error + 'static)) -> bool {
    match e.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Database(db))
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() =>
        {
            db.code()
                .and_then(|code| code.parse::<i32>().ok())
                .is_some_and(|code| code & 0xff == 5)
        }
        _ => false,
    }
}

/// Maps a unique-constraint violation to `Conflict`, anything else to `Backend`.
pub(super) fn write_error(what: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(format!("{what} already exists"))
        }
        _ => backend(e),
    }
}

/// A JSON array of strings, as stored in TEXT columns.
pub(super) fn to_json_list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    serde_json::to_string(&items.collect::<Vec<_>>()).unwrap_or_else(|_| "[]".into())
}

/// Parses a stored JSON array of strings.
pub(super) fn from_json_list(column: &str, value: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(value).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

/// A stored value that no longer parses.
pub(super) fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

macro_rules! store_impl {
    ($store:ty, $name:literal) => {
        #[async_trait]
        impl crate::store::Store for $store {
            fn backend(&self) -> &'static str {
                $name
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1")
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(())
            }

            async fn close(&self) {
                self.close_all().await;
            }
        }
    };
}

store_impl!(PgStore, "postgres");
store_impl!(SqliteStore, "sqlite");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_outages_and_statement_failures_are_not() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        for e in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(refused),
        ] {
            assert!(matches!(backend(e), StoreError::Unavailable(_)));
        }
        for e in [
            sqlx::Error::RowNotFound,
            sqlx::Error::ColumnNotFound("x".into()),
        ] {
            assert!(matches!(backend(e), StoreError::Backend(_)));
        }
    }

    /// A write lock held elsewhere past the busy timeout is an outage (503: try again),
    /// not a failed statement (500), and leaves the connection usable; a statement's own
    /// failure is not an outage.
    #[tokio::test]
    async fn a_sqlite_database_locked_elsewhere_is_an_outage() {
        use sqlx::sqlite::SqliteConnectOptions;
        use sqlx::{ConnectOptions, Executor};
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("locked.db"))
            .create_if_missing(true)
            .busy_timeout(std::time::Duration::ZERO);
        let mut holder = options.connect().await.unwrap();
        let mut other = options.connect().await.unwrap();
        holder
            .execute("CREATE TABLE t (x INTEGER NOT NULL); BEGIN IMMEDIATE")
            .await
            .unwrap();
        let busy = other.execute("BEGIN IMMEDIATE").await.unwrap_err();
        // The connection itself is fine: `store::lane` keeps it.
        assert!(!connection_lost(&busy));
        assert!(matches!(backend(busy), StoreError::Unavailable(_)));
        let failed = holder
            .execute("INSERT INTO t VALUES (NULL)")
            .await
            .unwrap_err();
        assert!(matches!(backend(failed), StoreError::Backend(_)));
    }
}
