//! SQLite's write-ahead log is checkpointed beside the writer, not by it.
//!
//! In WAL mode a commit appends its pages to the log; a checkpoint copies them back into
//! the database file, syncing the log before and the file after (with `synchronous =
//! NORMAL` a commit syncs nothing; the log is synced by checkpoints, and its header when
//! a writer starts it over after a complete one). By default the connection whose commit
//! takes the log past 1,000 pages runs the checkpoint itself, right after that commit:
//! with our single writer, every write queued behind it waited for the copy and two
//! `fsync`s, about ten times a second during the code flow ("Eighth round" in
//! `docs/performance.md`).
//!
//! Here a task on the store's thread checkpoints on a connection of its own, every
//! [`BUSY_INTERVAL`] while the log grows and every [`IDLE_INTERVAL`] otherwise. `PASSIVE`
//! (<https://sqlite.org/c3ref/wal_checkpoint_v2.html>) takes no lock the writer needs
//! and never waits for readers; it copies what no reader's snapshot still needs. The
//! writer keeps SQLite's automatic checkpoint only as a backstop ([`BACKSTOP_PAGES`]),
//! which the log reaches only if this task stalls. So a commit normally reaches the disk
//! within about a second, where before, on a quiet server, it waited for a thousand
//! pages or the kernel's write-back; later while a long read holds an older snapshot,
//! while another process is checkpointing, or while checkpoints fail (logged). Closing
//! the store runs a last checkpoint after the writer has closed.

use std::sync::Mutex;
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The writer's own `wal_autocheckpoint`, in pages (SQLite's default is 1,000).
pub(super) const BACKSTOP_PAGES: u32 = 10_000;
/// How soon after a checkpoint that found new pages the next one runs.
pub(super) const BUSY_INTERVAL: Duration = Duration::from_millis(100);
/// How soon after a checkpoint that found nothing new the next one runs.
pub(super) const IDLE_INTERVAL: Duration = Duration::from_secs(1);

/// The checkpointing task; [`Checkpointer::stop`] ends it and closes its connection.
#[derive(Debug)]
pub(super) struct Checkpointer {
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// What one `PRAGMA wal_checkpoint(PASSIVE)` reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub(super) struct Checkpoint {
    /// 1 when the checkpoint could not run (another checkpoint held its lock).
    pub busy: i64,
    /// Pages in the log (-1 when the database is not in WAL mode).
    pub log: i64,
    /// Pages of the log now in the database file.
    pub checkpointed: i64,
}

impl Checkpointer {
    /// Starts the task on `runtime` (the store's thread), connecting with `options`
    /// (with the writer's `synchronous`, which decides how a checkpoint syncs).
    pub(super) fn start(runtime: &tokio::runtime::Handle, options: SqliteConnectOptions) -> Self {
        let (stop, stopped) = watch::channel(false);
        let task = runtime.spawn(run(options, stopped));
        Self {
            stop,
            task: Mutex::new(Some(task)),
        }
    }

    /// Ends the task: after the checkpoint under way if any, it runs a last one (for what
    /// was written since) and closes its connection.
    pub(super) async fn stop(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().map(|mut t| t.take()).unwrap_or(None);
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

async fn run(options: SqliteConnectOptions, mut stopped: watch::Receiver<bool>) {
    let mut conn: Option<SqliteConnection> = None;
    let mut last: Option<Checkpoint> = None;
    let mut failing = false;
    loop {
        let wait = match checkpoint(&mut conn, &options).await {
            Ok(done) => {
                failing = false;
                let wait = next_wait(last, done);
                last = Some(done);
                wait
            }
            Err(e) => {
                // Reconnect next time; the writer's backstop keeps the log bounded.
                conn = None;
                if !failing {
                    tracing::warn!(error = %e, "SQLite checkpoint failed; retrying");
                }
                failing = true;
                IDLE_INTERVAL
            }
        };
        tokio::select! {
            _ = stopped.changed() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    if let Err(e) = checkpoint(&mut conn, &options).await {
        tracing::warn!(error = %e, "SQLite's last checkpoint failed");
    }
    if let Some(conn) = conn {
        let _ = conn.close().await;
    }
}

async fn checkpoint(
    conn: &mut Option<SqliteConnection>,
    options: &SqliteConnectOptions,
) -> Result<Checkpoint, sqlx::Error> {
    let conn = match conn {
        Some(conn) => conn,
        None => conn.insert(options.connect().await?),
    };
    sqlx::query_as::<_, Checkpoint>("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(conn)
        .await
}

/// Soon again while the log grows, rarely while it does not. After a complete checkpoint
/// the next commit starts the log over, so any change of its size means new writes.
pub(super) fn next_wait(last: Option<Checkpoint>, now: Checkpoint) -> Duration {
    match last {
        Some(last) if last.log == now.log && now.checkpointed == now.log && now.busy == 0 => {
            IDLE_INTERVAL
        }
        _ => BUSY_INTERVAL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;
    use std::str::FromStr;

    /// What the database file itself holds, without its log (`immutable=1` reads the
    /// file as it is on disk and ignores the WAL): what a checkpoint has copied there.
    /// No table yet counts as no rows. Such a read takes no lock, so while a checkpoint
    /// copies pages into the file it may see them half-copied (`SQLITE_CORRUPT`,
    /// `SQLITE_NOTADB`): `Err` then, for the caller to read again; any other error fails
    /// the test.
    async fn in_file_alone(path: &std::path::Path) -> Result<Vec<i64>, String> {
        let url = format!("sqlite://{}?immutable=1", path.display());
        let mut conn = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .read_only(true)
            .connect()
            .await
            .unwrap();
        let ids = match sqlx::query_scalar("SELECT id FROM t ORDER BY id")
            .fetch_all(&mut conn)
            .await
        {
            Ok(ids) => Ok(ids),
            Err(e) if e.to_string().contains("no such table") => Ok(Vec::new()),
            Err(sqlx::Error::Database(db)) if torn(db.code().as_deref()) => Err(db.to_string()),
            Err(e) => panic!("reading the database file: {e}"),
        };
        conn.close().await.unwrap();
        ids
    }

    /// SQLITE_CORRUPT or SQLITE_NOTADB, extended codes included (their low byte).
    fn torn(code: Option<&str>) -> bool {
        code.and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| matches!(c & 0xff, 11 | 26))
    }

    async fn store_at(path: &std::path::Path) -> SqliteStore {
        SqliteStore::connect(&format!("sqlite://{}", path.display()), 2)
            .await
            .unwrap()
    }

    /// Creates the table `t` holding the one row `id`, through the writer.
    async fn write_row(store: &SqliteStore, id: i64) {
        let sql = format!("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES ({id})");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&store.pool)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_few_writes_reach_the_database_file_without_filling_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ckpt.db");
        let store = store_at(&path).await;
        // The writer's own checkpoint waits for thousands of pages; these are a handful.
        let backstop: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(backstop, i64::from(BACKSTOP_PAGES));
        write_row(&store, 7).await;
        // Polled, not timed: the task checkpoints within about BUSY_INTERVAL; without
        // it the rows would stay in the log until the last connection closes.
        // The task may be copying pages as we read: a torn read is read again.
        let mut seen = Ok(Vec::new());
        for _ in 0..200 {
            seen = in_file_alone(&path).await;
            if seen.as_ref().is_ok_and(|ids| !ids.is_empty()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(seen, Ok(vec![7]));
        store.close_all().await;
    }

    #[tokio::test]
    async fn closing_the_store_checkpoints_what_was_written_last() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("close.db");
        let store = store_at(&path).await;
        // A read leaves a read-only connection open: closed last, it cannot checkpoint,
        // and it keeps the task's connection from being the last one (whose closing would
        // checkpoint by itself).
        let one: i64 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&store.reader)
            .await
            .unwrap();
        assert_eq!(one, 1);
        // Past the task's first checkpoints (of the migrations), into its idle interval.
        tokio::time::sleep(3 * BUSY_INTERVAL).await;
        write_row(&store, 1).await;
        // At once, before the next periodic checkpoint: only the last one can copy it.
        tokio::time::timeout(Duration::from_secs(30), store.close_all())
            .await
            .expect("closing the store ends the checkpointer");
        // Closed: nothing copies pages any more, so the read cannot be torn.
        assert_eq!(in_file_alone(&path).await, Ok(vec![1]));
        // Stopping again is harmless.
        store.checkpointer.as_ref().unwrap().stop().await;
    }

    #[tokio::test]
    async fn an_in_memory_database_has_no_checkpointer() {
        let store = SqliteStore::connect("sqlite::memory:", 1).await.unwrap();
        assert!(store.checkpointer.is_none());
    }
}
