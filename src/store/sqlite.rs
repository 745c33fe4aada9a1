//! The SQLite store: the embedded default, so `serve` works with nothing installed.
//! Migrations in `migrations/sqlite/`.
//!
//! SQLite has one writer at a time. Writes go through a pool of exactly one connection,
//! so concurrent writers wait in the pool's fair queue (microseconds each) instead of
//! each holding a connection and sleeping in SQLite's busy handler, whose back-off
//! (up to 100 ms a try) made the p99 of refresh rotation several hundred milliseconds.
//! Reads go through a pool of read-only connections that WAL lets run beside the writer.
//!
//! The hot write transactions (refresh rotation, code redemption) run as tasks on the
//! store's own thread, not on the HTTP worker that asked for them: between its statements
//! a transaction waits for its future to be polled again, and an HTTP worker signing
//! tokens (hundreds of microseconds each, on the same thread) made the one writer
//! connection sit idle under its lock for that long, several times per transaction. On
//! the store's thread, which does nothing else, the next statement follows at once. It is
//! one thread with a current-thread runtime, as SQLite has one writer: on the
//! multi-threaded runtime they ran on before, the idle workers woke each other at every
//! hop to and from the connection's thread: its threads took 19 % of the server's CPU
//! samples during refresh rotation, nearly all of it in the scheduler, where this thread
//! takes 12 % (`perf`; "Fourth round" in `docs/performance.md`). The hot writes (refresh
//! spends, code inserts, code redemptions) go one step further: those of a kind waiting
//! for the writer run together, in one transaction (`sql::write_batch`). The write-ahead
//! log is checkpointed by a task of its own, not by the writer (`checkpoint`).

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};

use super::lane::Lane;
use super::StoreError;

mod checkpoint;

/// SQLite implementation of every store trait.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// The single writer: every statement that changes something, and transactions.
    pub(super) pool: SqlitePool,
    /// Read-only connections for plain `SELECT`s (`store::lane`: no round trip to the
    /// connection's thread when it goes back).
    pub(super) reader: Lane<Sqlite>,
    /// The store's thread, where hot write transactions run.
    writer_thread: std::sync::Arc<WriterThread>,
    /// The queue of refresh spends, run in batches on the store's thread.
    pub(super) spends: super::sql::refresh_batch::Spends,
    /// The queues of code inserts and redemptions, run in batches on the store's thread.
    pub(super) codes: super::sql::code_batch::CodeWrites,
    /// Checkpoints the write-ahead log beside the writer (`checkpoint`); none when the
    /// database is not in WAL mode (in memory).
    checkpointer: Option<std::sync::Arc<checkpoint::Checkpointer>>,
}

/// A thread running a current-thread runtime until the last clone of the store is gone
/// (dropping `_stop` ends it; tasks still pending then are cancelled).
#[derive(Debug)]
struct WriterThread {
    runtime: tokio::runtime::Handle,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl WriterThread {
    fn start() -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(super::sql::backend)?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("latchkey-sqlite".into())
            .spawn(move || {
                // Ok when told to stop, Err when the sender is dropped: both mean stop.
                let _ = runtime.block_on(stopped);
            })
            .map_err(super::sql::backend)?;
        Ok(Self {
            runtime: handle,
            _stop: stop,
        })
    }
}

impl SqliteStore {
    /// Opens (creating the file and its folder if needed) and migrates. `max_connections`
    /// sizes the read pool; the write pool always has one connection.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = super::ConnectOptions {
            max_connections,
            sqlite_sync_every_commit: false,
        };
        Self::connect_with(url, options).await
    }

    /// [`SqliteStore::connect`] with every option.
    pub async fn connect_with(url: &str, opts: super::ConnectOptions) -> Result<Self, StoreError> {
        let max_connections = opts.max_connections;
        let options = SqliteConnectOptions::from_str(url)
            .map_err(super::sql::backend)?
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        if let Some(dir) = options.get_filename().parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(super::sql::backend)?;
            }
        }
        // WAL with synchronous = NORMAL (the default): a commit is durable against a crash
        // of the process (the WAL is in the OS page cache), but the last transactions
        // before a power loss or kernel crash may roll back; the WAL is synced at
        // checkpoints. FULL syncs it at every commit. See `docs/performance.md`
        // ("Durability of SQLite") for what that means for refresh rotation.
        let synchronous = if opts.sqlite_sync_every_commit {
            SqliteSynchronous::Full
        } else {
            SqliteSynchronous::Normal
        };
        // The log is checkpointed by its own task, not by the commit that fills it; the
        // writer's automatic checkpoint stays as a backstop (see `checkpoint`).
        let writer = options
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .pragma("wal_autocheckpoint", checkpoint::BACKSTOP_PAGES.to_string());
        // A local file cannot drop a connection: skip the liveness ping before each use,
        // a round trip to the connection's worker thread on the token hot path.
        let pool = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(writer)
            .await
            .map_err(super::sql::backend)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(super::sql::backend)?;
        // Opened after the writer made the file a WAL database (the mode is persistent).
        let reader = Lane::new(
            options.clone().read_only(true),
            max_connections.max(1),
            Duration::from_secs(10),
        );
        let writer_thread = WriterThread::start()?;
        let spends = super::sql::refresh_batch::Spends::start(&writer_thread.runtime, pool.clone());
        let codes = super::sql::code_batch::CodeWrites::start(&writer_thread.runtime, &pool);
        // Only a WAL database has a log to checkpoint (one in memory has none).
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&pool)
            .await
            .map_err(super::sql::backend)?;
        let checkpointer = journal.eq_ignore_ascii_case("wal").then(|| {
            // Its own connection: the writer's sync setting, but it never creates the file
            // (should it reconnect after the file was moved) nor sets the journal mode.
            let own = options.clone().synchronous(synchronous);
            std::sync::Arc::new(checkpoint::Checkpointer::start(&writer_thread.runtime, own))
        });
        Ok(Self {
            pool,
            reader,
            writer_thread: std::sync::Arc::new(writer_thread),
            spends,
            codes,
            checkpointer,
        })
    }

    /// How many refresh spends so far were answered by a batch of more than one
    /// (`sql::refresh_batch`); for tests and diagnostics.
    pub fn refresh_spends_batched(&self) -> u64 {
        self.spends.answered_together()
    }

    /// How many code inserts and redemptions so far were answered by a batch of more
    /// than one (`sql::code_batch`); for tests and diagnostics.
    pub fn code_writes_batched(&self) -> u64 {
        self.codes.answered_together()
    }

    /// Closes every connection.
    pub(super) async fn close_all(&self) {
        self.pool.close().await;
        // After the writer, before the readers: the last checkpoint sees every write.
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.stop().await;
        }
        self.reader.close().await;
    }

    /// Runs `write` to completion as a task on the store's thread (see the module
    /// comment). It finishes even if the caller stops waiting: a redemption or rotation
    /// whose client went away is committed, as one that commits just before the client
    /// disconnects always was. Never await this from a task on the store's thread. A
    /// thread that has stopped answers `Unavailable`.
    pub(super) async fn on_store_runtime<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        self.writer_thread.runtime.spawn(write).await.map_err(|e| {
            if e.is_cancelled() {
                StoreError::Unavailable(Box::new(e))
            } else {
                StoreError::Backend(Box::new(e))
            }
        })?
    }

    /// `BEGIN IMMEDIATE` takes the write lock up front, so two writers never deadlock on a
    /// lock upgrade and single use stays atomic (SQLite serialises writers). With the
    /// single-connection write pool the lock is free by the time a transaction begins
    /// (unless another process, such as an admin command, holds it).
    pub(super) async fn begin(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(super::sql::backend)
    }
}

/// Runs `command`, which opens and commits its own transaction (`BEGIN IMMEDIATE; ...;
/// COMMIT`), on the single writer and returns its rows once the `COMMIT` ran: one
/// message to the connection's thread, where a sqlx transaction takes three (begin,
/// statement, commit), plus the pool's release ping either way. sqlx stops a command at its first failing statement, which
/// leaves the transaction open: it is rolled back before the connection goes back, and
/// a connection that cannot roll back, or whose command was abandoned half-way, is
/// closed instead (SQLite rolls back what a closing connection left open). Run it on
/// the store's runtime (`on_store_runtime`, or a task there such as `write_batch`'s), which
/// finishes every task it starts.
pub(super) async fn own_transaction<'q>(
    pool: &SqlitePool,
    command: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>,
) -> Result<Vec<sqlx::sqlite::SqliteRow>, sqlx::Error> {
    let mut writer = Writer::acquire(pool).await?;
    let rows = command.fetch_all(&mut *writer.conn).await;
    writer.settle(rows.is_ok()).await;
    rows
}

/// `own_transaction` in two commands, with a decision between them: `open` begins the
/// transaction (`BEGIN IMMEDIATE; ...`) and reads, `close` turns what it read into the
/// command that ends it (`...; COMMIT`) and an answer, which this returns once the
/// command ran. Should `open`, `close` or the command fail, the transaction is rolled
/// back (or the connection closed) as in `own_transaction`. `close`'s command must end
/// with `COMMIT`: a command that succeeds is taken to have ended the transaction. Run it
/// on the store's runtime, so that the writer never waits for a busy HTTP worker between
/// the two.
pub(super) async fn transaction_of_two<T>(
    pool: &SqlitePool,
    open: WriterCommand,
    close: impl FnOnce(Vec<sqlx::sqlite::SqliteRow>) -> Result<(WriterCommand, T), StoreError>,
) -> Result<T, StoreError> {
    use super::sql::backend;
    let mut writer = Writer::acquire(pool).await.map_err(backend)?;
    let answer = async {
        let rows = open.fetch_all(&mut *writer.conn).await.map_err(backend)?;
        let (command, answer) = close(rows)?;
        command.execute(&mut *writer.conn).await.map_err(backend)?;
        Ok(answer)
    }
    .await;
    writer.settle(answer.is_ok()).await;
    answer
}

/// A command of `transaction_of_two`, with its (owned) arguments.
pub(super) type WriterCommand = sqlx::query::Query<'static, Sqlite, sqlx::sqlite::SqliteArguments>;

/// The writer connection of `own_transaction` and `transaction_of_two`: closed when it
/// goes back unless its commands ended with nothing left open.
struct Writer {
    conn: sqlx::pool::PoolConnection<Sqlite>,
    settled: bool,
}

impl Writer {
    async fn acquire(pool: &SqlitePool) -> Result<Self, sqlx::Error> {
        Ok(Self {
            conn: pool.acquire().await?,
            settled: false,
        })
    }

    /// Fit to go back after commands that succeeded (and committed), or after a
    /// `ROLLBACK` of what failed; otherwise it is closed on drop.
    async fn settle(&mut self, succeeded: bool) {
        self.settled = succeeded
            || sqlx::raw_sql("ROLLBACK")
                .execute(&mut *self.conn)
                .await
                .is_ok();
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if !self.settled {
            self.conn.close_on_drop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store(dir: &tempfile::TempDir) -> SqliteStore {
        let url = format!("sqlite://{}", dir.path().join("own.db").display());
        let store = SqliteStore::connect(&url, 2).await.unwrap();
        sqlx::raw_sql("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .execute(&store.pool)
            .await
            .unwrap();
        store
    }

    async fn ids(store: &SqliteStore) -> Vec<i64> {
        sqlx::query_scalar("SELECT id FROM t ORDER BY id")
            .fetch_all(&store.pool)
            .await
            .unwrap()
    }

    fn insert(ids: &str) -> sqlx::query::Query<'static, Sqlite, sqlx::sqlite::SqliteArguments> {
        let inserts: String = ids
            .split(',')
            .map(|id| format!("INSERT INTO t VALUES ({id}); "))
            .collect();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "BEGIN IMMEDIATE; {inserts}SELECT COUNT(*) FROM t; COMMIT"
        )))
    }

    #[tokio::test]
    async fn a_command_commits_its_own_transaction_and_returns_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let rows = own_transaction(&store.pool, insert("1,2")).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(sqlx::Row::get::<i64, _>(&rows[0], 0), 2);
        assert_eq!(ids(&store).await, [1, 2]);
    }

    #[tokio::test]
    async fn a_command_failing_half_way_leaves_nothing_and_the_writer_usable() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        // A temporary table lives only in its own connection: it shows that the writer was
        // rolled back and kept, not closed (closing would also undo the transaction).
        sqlx::raw_sql("CREATE TEMP TABLE mark (x)")
            .execute(&store.pool)
            .await
            .unwrap();
        // The second insert breaks the primary key: the first must not survive, and the
        // transaction must not stay open (the next BEGIN would fail inside it).
        let e = own_transaction(&store.pool, insert("1,1"))
            .await
            .unwrap_err();
        assert!(e.as_database_error().is_some(), "{e}");
        assert_eq!(ids(&store).await, Vec::<i64>::new());
        own_transaction(&store.pool, insert("3")).await.unwrap();
        assert_eq!(ids(&store).await, [3]);
        sqlx::raw_sql("SELECT COUNT(*) FROM temp.mark")
            .execute(&store.pool)
            .await
            .expect("the same writer connection");
    }

    #[tokio::test]
    async fn a_command_abandoned_half_way_leaves_nothing_and_the_writer_usable() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        // Dropped while its long insert runs: the connection's thread stops before the
        // COMMIT, as no one takes its results, and leaves the transaction open.
        let long = sqlx::query(
            "BEGIN IMMEDIATE; WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n \
             WHERE x < 300000) INSERT INTO t SELECT x FROM n; COMMIT",
        );
        tokio::select! {
            biased;
            done = own_transaction(&store.pool, long) => panic!("finished first: {done:?}"),
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
        own_transaction(&store.pool, insert("-1")).await.unwrap();
        assert_eq!(ids(&store).await, [-1]);
    }
}
