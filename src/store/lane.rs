//! A pool for single statements (autocommit reads and writes) that takes a connection back
//! without a round trip. sqlx's `Pool` pings every connection it takes back (a `Sync` to
//! PostgreSQL, a message to a SQLite connection's thread), which on the hot paths doubled
//! the round trips per query and cost PostgreSQL as much CPU as the query (issue 9,
//! `docs/performance.md`). The ping exists to flush what an abandoned statement or
//! transaction left behind. Here there are no transactions (they go through a `Pool`),
//! and a connection comes back only from a statement that ran to its end: one whose
//! future was dropped half-way, or that failed other than with the database's own error
//! for the statement, is closed instead. The next statement on a connection reads any rows
//! the previous one left unread before it starts, as with any sqlx connection.
//!
//! A connection idle for at least `PING_WHEN_IDLE_FOR` is pinged before use (it may have
//! been cut: a restart, a firewall), and one idle for `IDLE_LIMIT` is closed and replaced.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream};
use futures_util::{StreamExt, TryStreamExt};
use sqlx::{ConnectOptions, Connection, Database, Describe, Either, Execute, Executor, SqlStr};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A connection idle at least this long is pinged before use.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);
/// A connection idle this long is closed and replaced (sqlx's `Pool` default).
const IDLE_LIMIT: Duration = Duration::from_secs(600);

/// Up to `size` connections for single statements; see the module comment.
pub(super) struct Lane<DB: Database> {
    inner: Arc<Inner<DB>>,
}

struct Inner<DB: Database> {
    options: <DB::Connection as Connection>::Options,
    idle: Mutex<Vec<(DB::Connection, Instant)>>,
    permits: Arc<Semaphore>,
    acquire_timeout: Duration,
}

impl<DB: Database> Clone for Lane<DB> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<DB: Database> std::fmt::Debug for Lane<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane")
            .field("available", &self.inner.permits.available_permits())
            .finish_non_exhaustive()
    }
}

impl<DB: Database> Lane<DB> {
    /// Connects lazily, with `options`, at most `size` connections at a time.
    pub(super) fn new(
        options: <DB::Connection as Connection>::Options,
        size: u32,
        acquire_timeout: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                options,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(size.max(1) as usize)),
                acquire_timeout,
            }),
        }
    }

    /// Closes the idle connections; later statements fail with `PoolClosed`.
    pub(super) async fn close(&self) {
        self.inner.permits.close();
        let idle = std::mem::take(&mut *self.inner.lock_idle());
        for (conn, _) in idle {
            let _ = conn.close().await;
        }
    }

    /// A connection and the permit that holds its place. If the caller's future is dropped
    /// before `give_back`, both are dropped: the connection closes, the place frees.
    async fn lease(&self) -> Result<(DB::Connection, OwnedSemaphorePermit), sqlx::Error> {
        let inner = &self.inner;
        let permit =
            tokio::time::timeout(inner.acquire_timeout, inner.permits.clone().acquire_owned())
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)?
                .map_err(|_| sqlx::Error::PoolClosed)?;
        loop {
            let Some((mut conn, since)) = inner.lock_idle().pop() else {
                break;
            };
            let idle_for = since.elapsed();
            if idle_for >= IDLE_LIMIT {
                let _ = conn.close().await;
            } else if idle_for < PING_WHEN_IDLE_FOR || conn.ping().await.is_ok() {
                return Ok((conn, permit));
            }
        }
        Ok((inner.options.connect().await?, permit))
    }

    /// Takes `conn` back if its statement ended: with success, or with the database's own
    /// error for the statement (the connection answered and is ready for the next; not an
    /// error that says the connection itself is gone, such as PostgreSQL's 57P01 when an
    /// administrator or a shutdown ends it). Anything else closes it. The permit is
    /// released after, so a waiter finds the connection.
    fn give_back<T>(
        &self,
        conn: DB::Connection,
        outcome: &Result<T, sqlx::Error>,
        permit: OwnedSemaphorePermit,
    ) {
        let reusable = match outcome {
            Ok(_) => true,
            Err(e @ sqlx::Error::Database(db)) => {
                !super::sql::connection_lost(e) && !ends_session(&**db)
            }
            Err(_) => false,
        };
        if reusable && !self.inner.permits.is_closed() {
            let mut idle = self.inner.lock_idle();
            // The oldest sit at the bottom of the stack, where `lease` does not look.
            let stale = idle
                .iter()
                .take_while(|(_, since)| since.elapsed() >= IDLE_LIMIT)
                .count();
            idle.drain(..stale);
            idle.push((conn, Instant::now()));
        }
        drop(permit);
    }
}

/// PostgreSQL ends the session after an error of severity FATAL or PANIC (whatever its
/// code: an administrator, a shutdown, a recovery conflict, an idle timeout).
fn ends_session(db: &dyn sqlx::error::DatabaseError) -> bool {
    db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some_and(|pg| {
            matches!(
                pg.severity(),
                sqlx::postgres::PgSeverity::Fatal | sqlx::postgres::PgSeverity::Panic
            )
        })
}

impl<DB: Database> Inner<DB> {
    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<(DB::Connection, Instant)>> {
        // The list stays valid if a holder panicked: push and pop only.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<'p, DB: Database> Executor<'p> for &'_ Lane<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, sqlx::Error>>
    where
        E: 'q + Execute<'q, DB>,
    {
        let lane = self.clone();
        // Collected before they are yielded, so the connection goes back only after its
        // statement ended; the store reads small results.
        let all = async move {
            let (mut conn, permit) = lane.lease().await?;
            let all: Result<Vec<_>, sqlx::Error> = conn.fetch_many(query).try_collect().await;
            lane.give_back(conn, &all, permit);
            all
        };
        stream::once(all)
            .map_ok(|items| stream::iter(items.into_iter().map(Ok)))
            .try_flatten()
            .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
    where
        E: 'q + Execute<'q, DB>,
    {
        let lane = self.clone();
        Box::pin(async move {
            let (mut conn, permit) = lane.lease().await?;
            let row = conn.fetch_optional(query).await;
            lane.give_back(conn, &row, permit);
            row
        })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement, sqlx::Error>>
    where
        'p: 'e,
    {
        let lane = self.clone();
        Box::pin(async move {
            let (mut conn, permit) = lane.lease().await?;
            let statement = conn.prepare_with(sql, parameters).await;
            lane.give_back(conn, &statement, permit);
            statement
        })
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<DB>, sqlx::Error>>
    where
        'p: 'e,
    {
        let lane = self.clone();
        Box::pin(async move {
            let (mut conn, permit) = lane.lease().await?;
            let described = conn.describe(sql).await;
            lane.give_back(conn, &described, permit);
            described
        })
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::postgres::PgConnectOptions;
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{Postgres, Sqlite};

    use super::*;

    /// A lane of one connection to a fresh SQLite file.
    fn sqlite_lane(dir: &tempfile::TempDir) -> Lane<Sqlite> {
        sqlite_lane_of(dir, 1, Duration::from_secs(5))
    }

    /// A lane of `size` connections to a fresh SQLite file, waiting at most `wait`.
    fn sqlite_lane_of(dir: &tempfile::TempDir, size: u32, wait: Duration) -> Lane<Sqlite> {
        let options = SqliteConnectOptions::from_str(&format!(
            "sqlite://{}",
            dir.path().join("lane.db").display()
        ))
        .unwrap()
        .create_if_missing(true);
        Lane::new(options, size, wait)
    }

    /// A lane of one connection whose connection holds `temp.mark` (see `same_connection`).
    async fn marked_lane(dir: &tempfile::TempDir) -> Lane<Sqlite> {
        let lane = sqlite_lane(dir);
        sqlx::query("CREATE TEMP TABLE mark (x)")
            .execute(&lane)
            .await
            .unwrap();
        lane
    }

    /// Whether the lane's next statement runs on the connection that made `temp.mark`
    /// (a temporary table lives only in its own connection).
    async fn same_connection(lane: &Lane<Sqlite>) -> bool {
        sqlx::query("SELECT COUNT(*) FROM temp.mark")
            .fetch_optional(lane)
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_connection_goes_back_after_its_statement_or_its_error() {
        let dir = tempfile::tempdir().unwrap();
        let lane = marked_lane(&dir).await;
        assert!(same_connection(&lane).await, "reused after a statement");
        let rows = sqlx::query("SELECT 1 UNION ALL SELECT 2")
            .fetch_all(&lane)
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert!(same_connection(&lane).await, "reused after fetch_all");
        let e = sqlx::query("SELECT * FROM no_such_table")
            .fetch_optional(&lane)
            .await
            .unwrap_err();
        assert!(matches!(e, sqlx::Error::Database(_)), "{e}");
        assert!(
            same_connection(&lane).await,
            "reused after the database's error"
        );
    }

    #[tokio::test]
    async fn a_statement_dropped_half_way_does_not_give_its_connection_back() {
        let dir = tempfile::tempdir().unwrap();
        let lane = marked_lane(&dir).await;
        // A statement that runs for seconds, abandoned after 20 ms.
        let slow = sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000) \
             SELECT COUNT(*) FROM n",
        )
        .fetch_optional(&lane);
        assert!(tokio::time::timeout(Duration::from_millis(20), slow)
            .await
            .is_err());
        assert!(
            !same_connection(&lane).await,
            "the next statement runs on a new connection"
        );
        // And the lane still works: the abandoned one's place was freed.
        sqlx::query("SELECT 1").execute(&lane).await.unwrap();
    }

    #[tokio::test]
    async fn a_closed_lane_refuses_statements() {
        let dir = tempfile::tempdir().unwrap();
        let lane = sqlite_lane(&dir);
        sqlx::query("SELECT 1").execute(&lane).await.unwrap();
        lane.close().await;
        let e = sqlx::query("SELECT 1").execute(&lane).await.unwrap_err();
        assert!(matches!(e, sqlx::Error::PoolClosed), "{e}");
    }

    #[tokio::test]
    async fn a_connection_given_back_after_close_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let lane = sqlite_lane(&dir);
        let (conn, permit) = lane.lease().await.unwrap();
        lane.close().await;
        lane.give_back(conn, &Ok::<(), sqlx::Error>(()), permit);
        assert!(lane.inner.lock_idle().is_empty());
    }

    #[tokio::test]
    async fn connections_idle_past_the_limit_are_closed_when_another_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let lane = sqlite_lane_of(&dir, 2, Duration::from_secs(5));
        let (old, old_permit) = lane.lease().await.unwrap();
        let (fresh, fresh_permit) = lane.lease().await.unwrap();
        lane.give_back(old, &Ok::<(), sqlx::Error>(()), old_permit);
        // As if it had sat at the bottom of the stack for the whole limit.
        let long_ago = Instant::now().checked_sub(IDLE_LIMIT).unwrap();
        lane.inner.lock_idle()[0].1 = long_ago;
        lane.give_back(fresh, &Ok::<(), sqlx::Error>(()), fresh_permit);
        let idle = lane.inner.lock_idle();
        assert_eq!(idle.len(), 1, "the stale one is gone");
        assert!(idle[0].1 > long_ago, "the fresh one stays");
    }

    #[tokio::test]
    async fn a_full_lane_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let lane = sqlite_lane_of(&dir, 1, Duration::from_millis(50));
        let (_held, _permit) = lane.lease().await.unwrap();
        let e = sqlx::query("SELECT 1").execute(&lane).await.unwrap_err();
        assert!(matches!(e, sqlx::Error::PoolTimedOut), "{e}");
    }

    /// PostgreSQL cuts the lane's connection (a restart, a firewall): the next statement
    /// fails as an outage or succeeds on a new connection, and the one after succeeds on
    /// a new connection; a dead connection never comes back. Runs where `.ci/run` gives a
    /// database (`LATCHKEY_TEST_DATABASE_URL`).
    #[tokio::test]
    async fn a_connection_cut_by_postgres_is_replaced() {
        let Ok(url) = std::env::var("LATCHKEY_TEST_DATABASE_URL") else {
            assert!(
                std::env::var_os("LATCHKEY_REQUIRE_POSTGRES").is_none(),
                "LATCHKEY_REQUIRE_POSTGRES is set but LATCHKEY_TEST_DATABASE_URL is not"
            );
            return;
        };
        let options = PgConnectOptions::from_str(&url).unwrap();
        let lane: Lane<Postgres> = Lane::new(options.clone(), 1, Duration::from_secs(5));
        let pid = |lane: Lane<Postgres>| async move {
            sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
                .fetch_one(&lane)
                .await
        };
        let first = pid(lane.clone()).await.unwrap();
        assert_eq!(pid(lane.clone()).await.unwrap(), first, "reused");
        let mut admin = options.connect().await.unwrap();
        let cut: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(first)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        assert!(cut);
        // Until PostgreSQL has closed it, the connection may still look alive.
        tokio::time::sleep(Duration::from_millis(200)).await;
        match pid(lane.clone()).await {
            Ok(p) => assert_ne!(p, first, "a dead connection was used"),
            Err(e) => assert!(
                matches!(
                    e,
                    sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Database(_)
                ),
                "{e}"
            ),
        }
        let next = pid(lane.clone()).await.unwrap();
        assert_ne!(next, first, "replaced");
    }
}
