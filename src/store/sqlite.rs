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
//! takes 12 % (`perf`; "Fourth round" in `docs/performance.md`).

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};

use super::lane::Lane;
use super::StoreError;

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
        let writer = options
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous);
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
            options.read_only(true),
            max_connections.max(1),
            Duration::from_secs(10),
        );
        Ok(Self {
            pool,
            reader,
            writer_thread: std::sync::Arc::new(WriterThread::start()?),
        })
    }

    /// Closes every connection.
    pub(super) async fn close_all(&self) {
        self.pool.close().await;
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
