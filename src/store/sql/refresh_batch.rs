//! SQLite's refresh spends, run in batches on the store's thread (group commit).
//!
//! SQLite has one writer, so every spend passes through one connection in turn, and what
//! each costs there besides its statements (the store's thread taking the connection, a
//! message to the connection's thread and its answer, the pool's release ping, a commit)
//! is time during which no other spend can run. With the signatures on a fast host that
//! serial stretch, not the CPU, bounded the refresh rate: the cores sat partly idle while
//! every chain waited for the writer (`docs/performance.md`, "Sixth round"). So the spends
//! that are waiting when the writer frees up run together, as one command in one
//! transaction: `BEGIN IMMEDIATE`, each spend's statements in the order the spends arrived
//! (`SPEND_BATCH_ITEM_SQLITE`: the same statements as a spend on its own, each spend's
//! first statement not depending on the one before it), `COMMIT`. No spend waits for a
//! batch to fill: a batch is whatever queued while the one before it ran, often one.
//!
//! What a spend sees is what it would see on its own, run after the spends before it in
//! its batch: the statements run one after another under the write lock. Each spend's row
//! carries its place in the batch (`batch_slot`), so an answer never goes to another
//! spend, not even to one presenting the same token. If the batch's command fails on a
//! constraint (something about one spend, such as a successor's hash that is taken), it
//! is rolled back (`own_transaction`) and each spend runs on its own, so one spend's
//! failure is only its own; any other failure (the writer cannot be had, the disk) is
//! every spend's of the batch, as it would have been each one's alone. A spend that waited
//! in the queue longer than a writer may be waited for is answered `Unavailable` without
//! running, so a stuck writer does not collect spends that commit after their clients
//! gave up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Row, Sqlite, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::grants::{
    family_from_sqlite_row, undo_failed, SPEND_AND_READ_SQLITE, SPEND_BATCH_ITEM_SQLITE,
    UNDO_SPEND_SQLITE,
};
use super::{is_outage, write_error};
use crate::clock::UnixTime;
use crate::store::sqlite::own_transaction;
use crate::store::{RefreshFamily, RefreshSpend, StoreError};

/// The most spends in one batch. A batch takes a power of two of them (`batch_size`), so
/// the writer connection keeps four prepared batch commands (2, 4, 8 and 16 spends: 120
/// statements), and another size only once spends that waited too long were dropped from
/// a batch (`QUEUE_LIMIT`), which leaves it a size of its own.
const MAX_BATCH: usize = 16;
/// The parameters of one spend (`$1`..`$7` in `SPEND_AND_READ_SQLITE`).
const PARAMS: usize = 7;
/// A spend that waited this long is not run: as long as a statement waits for the writer
/// pool (`SqliteStore::connect_with`'s acquire timeout).
const QUEUE_LIMIT: Duration = Duration::from_secs(10);

/// The queue of refresh spends into the store's thread.
#[derive(Debug, Clone)]
pub(in crate::store) struct Spends {
    queue: mpsc::UnboundedSender<Job>,
    /// The store's thread and the writer, for the undo of a spend whose family does not
    /// parse.
    runtime: tokio::runtime::Handle,
    pool: SqlitePool,
    /// How many spends were answered by a batch of more than one.
    together: Arc<AtomicU64>,
}

/// A spend and where its answer goes: the row of its final `SELECT` (the family) if it
/// spent the token, `None` if it spent nothing. The caller reads the family from the row,
/// off the store's thread, which is the serial stretch.
struct Job {
    spend: OwnedSpend,
    queued_at: Instant,
    reply: oneshot::Sender<Answer>,
}

type Answer = Result<Option<SqliteRow>, StoreError>;

/// `RefreshSpend` with owned values, to cross into the store's thread.
#[derive(Debug, Clone)]
struct OwnedSpend {
    now: UnixTime,
    successor_sealed: Option<Vec<u8>>,
    presented_hash: Vec<u8>,
    client_id: String,
    created_after: UnixTime,
    used_after: UnixTime,
    successor_hash: Vec<u8>,
}

impl From<&RefreshSpend<'_>> for OwnedSpend {
    fn from(s: &RefreshSpend<'_>) -> Self {
        Self {
            now: s.now,
            successor_sealed: s.successor_sealed.map(<[u8]>::to_vec),
            presented_hash: s.presented_hash.to_vec(),
            client_id: s.client_id.as_str().to_owned(),
            created_after: s.created_after,
            used_after: s.used_after,
            successor_hash: s.successor_hash.to_vec(),
        }
    }
}

impl Spends {
    /// Starts the task that runs the spends on `runtime` (the store's thread) through
    /// `pool` (the single writer). It ends when the last `Spends` is dropped, or with the
    /// runtime.
    pub(in crate::store) fn start(runtime: &tokio::runtime::Handle, pool: SqlitePool) -> Self {
        let (queue, jobs) = mpsc::unbounded_channel();
        let together = Arc::new(AtomicU64::new(0));
        runtime.spawn(run(jobs, pool.clone(), together.clone()));
        Self {
            queue,
            runtime: runtime.clone(),
            pool,
            together,
        }
    }

    /// Runs `s` in the next batch and returns the family if it spent the token. Once
    /// queued, the spend runs and commits even if the caller stops waiting, as a spend on
    /// the store's thread always did (`SqliteStore::on_store_runtime`), and so does the
    /// undo of a spend whose family does not parse (`Awaited`).
    pub(in crate::store) async fn spend(
        &self,
        s: &RefreshSpend<'_>,
    ) -> Result<Option<RefreshFamily>, StoreError> {
        let spend = OwnedSpend::from(s);
        let (reply, answer) = oneshot::channel();
        let job = Job {
            spend: spend.clone(),
            queued_at: Instant::now(),
            reply,
        };
        self.queue.send(job).map_err(|_| stopped())?;
        let mut awaited = Awaited {
            answer,
            taken: false,
            spend,
            spends: self,
        };
        let answer = (&mut awaited.answer).await;
        awaited.taken = true;
        let Some(row) = answer.map_err(|_| stopped())?? else {
            return Ok(None);
        };
        let (family, undone) = awaited.settle(&row);
        if let Some(undone) = undone {
            let _ = undone.await;
        }
        family.map(Some)
    }

    /// How many spends so far were answered by a batch of more than one.
    pub(in crate::store) fn answered_together(&self) -> u64 {
        self.together.load(Ordering::Relaxed)
    }
}

/// A queued spend's answer as its caller waits for it. A caller that stops waiting drops
/// this: if the answer has come, the row is read here (`settle`); if not, the receiver is
/// closed first, so the task's send fails and the task reads it (`deliver`). Either way
/// a spend whose family does not parse is undone.
struct Awaited<'a> {
    answer: oneshot::Receiver<Answer>,
    taken: bool,
    spend: OwnedSpend,
    spends: &'a Spends,
}

impl Awaited<'_> {
    /// The family in `row`; if it does not parse, the spend's undo, spawned on the store's
    /// thread, where it runs to its end whatever becomes of the caller.
    fn settle(
        &self,
        row: &SqliteRow,
    ) -> (
        Result<RefreshFamily, StoreError>,
        Option<tokio::task::JoinHandle<()>>,
    ) {
        let family = family_from_sqlite_row(row);
        let undone = family.is_err().then(|| {
            let (pool, spend) = (self.spends.pool.clone(), self.spend.clone());
            self.spends
                .runtime
                .spawn(async move { undo(&pool, &spend).await })
        });
        (family, undone)
    }
}

impl Drop for Awaited<'_> {
    fn drop(&mut self) {
        if self.taken {
            return;
        }
        self.answer.close();
        if let Ok(Ok(Some(row))) = self.answer.try_recv() {
            let _ = self.settle(&row);
        }
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the SQLite store's thread has stopped".into())
}

/// Takes the spends that are waiting (`batch_size` of them) and runs them; again until
/// every `Spends` is gone.
async fn run(mut jobs: mpsc::UnboundedReceiver<Job>, pool: SqlitePool, together: Arc<AtomicU64>) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        let size = batch_size(jobs.len() + 1);
        while batch.len() < size {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (stale, mut batch): (Vec<Job>, Vec<Job>) = batch
            .into_iter()
            .partition(|job| job.queued_at.elapsed() >= QUEUE_LIMIT);
        for job in stale {
            let _ = job.reply.send(Err(StoreError::Unavailable(
                "the SQLite writer was busy for too long".into(),
            )));
        }
        let size = batch.len() as u64;
        if size > 1 && run_together(&pool, &mut batch).await {
            together.fetch_add(size, Ordering::Relaxed);
        }
        for job in batch {
            let answer = run_alone(&pool, &job.spend).await;
            deliver(&pool, job, answer).await;
        }
    }
}

/// How many of `waiting` spends the next batch takes: as many as wait, up to `MAX_BATCH`,
/// rounded down to a power of two; the rest go in the next.
fn batch_size(waiting: usize) -> usize {
    1 << waiting.clamp(1, MAX_BATCH).ilog2()
}

/// Runs `batch` as one transaction and answers its spends, leaving `batch` empty; or
/// answers them all with the batch's error; or, when the batch failed on a constraint
/// (one spend's doing, and rolled back), leaves them in `batch` to run one by one. True
/// if the batch committed.
async fn run_together(pool: &SqlitePool, batch: &mut Vec<Job>) -> bool {
    let spends: Vec<&OwnedSpend> = batch.iter().map(|job| &job.spend).collect();
    match own_transaction(pool, batch_command(&spends)).await {
        Ok(rows) => {
            let mut rows = sort_rows(rows, batch.len()).into_iter();
            for job in std::mem::take(batch) {
                deliver(pool, job, Ok(rows.next().flatten())).await;
            }
            true
        }
        Err(e) if one_spends_doing(&e) => {
            tracing::debug!(error = %e, spends = batch.len(),
                "a batch of refresh spends broke a constraint; running them one by one");
            false
        }
        Err(e) => {
            let (outage, message) = (is_outage(&e), e.to_string());
            for job in std::mem::take(batch) {
                let message = message.clone().into();
                let _ = job.reply.send(Err(if outage {
                    StoreError::Unavailable(message)
                } else {
                    StoreError::Backend(message)
                }));
            }
            false
        }
    }
}

/// Whether a batch's failure may be one spend's doing (a constraint it broke), so that
/// its spends run again one by one; any other failure would be every one's.
fn one_spends_doing(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() != sqlx::error::ErrorKind::Other)
}

/// Runs one spend in its own transaction.
async fn run_alone(pool: &SqlitePool, spend: &OwnedSpend) -> Answer {
    let command = bind(sqlx::query(SPEND_AND_READ_SQLITE), spend);
    let rows = own_transaction(pool, command)
        .await
        .map_err(write_error("refresh token"))?;
    Ok(rows.into_iter().next())
}

/// Sends `answer` to its spend's caller. A caller that stopped waiting cannot read the
/// family and undo the spend if the row does not parse (`Spends::spend`): that is done
/// here.
async fn deliver(pool: &SqlitePool, job: Job, answer: Answer) {
    if let Err(Ok(Some(row))) = job.reply.send(answer) {
        if family_from_sqlite_row(&row).is_err() {
            undo(pool, &job.spend).await;
        }
    }
}

/// Undoes a committed spend whose family no longer parses, so it cannot be answered: the
/// successor is deleted and the token unspent, as on PostgreSQL (`PgStore::spend_refresh`).
async fn undo(pool: &SqlitePool, spend: &OwnedSpend) {
    let undo = sqlx::query(UNDO_SPEND_SQLITE)
        .bind(spend.successor_hash.as_slice())
        .bind(spend.presented_hash.as_slice())
        .bind(spend.now);
    undo_failed(own_transaction(pool, undo).await.err());
}

/// Each row in the place its `batch_slot` names; a place with no row spent nothing.
fn sort_rows(rows: Vec<SqliteRow>, size: usize) -> Vec<Option<SqliteRow>> {
    let mut places: Vec<Option<SqliteRow>> = (0..size).map(|_| None).collect();
    for row in rows {
        let slot = row.try_get::<i64, _>("batch_slot").ok();
        match slot.and_then(|slot| places.get_mut(usize::try_from(slot).ok()?)) {
            Some(place) => *place = Some(row),
            // Cannot happen with `batch_command`'s slots; the spend's client then finds its
            // token spent, which is taken as reuse: the family ends, nothing leaks.
            None => tracing::error!(?slot, "a batched refresh spend's row has no place"),
        }
    }
    places
}

/// `BEGIN IMMEDIATE`, the spends' statements in order, `COMMIT`, with their arguments.
fn batch_command<'q>(spends: &[&'q OwnedSpend]) -> sqlx::query::Query<'q, Sqlite, SqliteArguments> {
    spends
        .iter()
        .fold(sqlx::query(batch_sql(spends.len())), |query, spend| {
            bind(query, spend)
        })
}

/// Binds the seven parameters of one spend, in `SPEND_AND_READ_SQLITE`'s order.
fn bind<'q>(
    query: sqlx::query::Query<'q, Sqlite, SqliteArguments>,
    s: &'q OwnedSpend,
) -> sqlx::query::Query<'q, Sqlite, SqliteArguments> {
    query
        .bind(s.now)
        .bind(s.successor_sealed.as_deref())
        .bind(s.presented_hash.as_slice())
        .bind(s.client_id.as_str())
        .bind(s.created_after)
        .bind(s.used_after)
        .bind(s.successor_hash.as_slice())
}

/// The command for a batch of `size` spends (2..=`MAX_BATCH`), built once per size (and
/// prepared by the writer connection for the sizes `batch_size` gives).
fn batch_sql(size: usize) -> &'static str {
    static COMMANDS: OnceLock<Vec<String>> = OnceLock::new();
    let commands = COMMANDS.get_or_init(|| (0..=MAX_BATCH).map(build_batch_sql).collect());
    &commands[size.min(MAX_BATCH)]
}

fn build_batch_sql(size: usize) -> String {
    let mut sql = String::from("BEGIN IMMEDIATE; ");
    for slot in 0..size {
        let item = SPEND_BATCH_ITEM_SQLITE.replace("{slot}", &slot.to_string());
        sql.push_str(&shift_parameters(&item, slot * PARAMS));
        sql.push_str("; ");
    }
    sql.push_str("COMMIT");
    sql
}

/// `sql` with every `$n` renamed `$(n + by)`: sqlx binds `$n` to the n-th argument of the
/// whole command (`SqliteArguments::bind`), so each spend of a batch gets its own.
fn shift_parameters(sql: &str, by: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + by).to_string()),
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spend of `rt` to `next` by `web` at 200.
    fn rt_to_next() -> OwnedSpend {
        OwnedSpend {
            now: 200,
            successor_sealed: None,
            presented_hash: b"rt".to_vec(),
            client_id: "web".into(),
            created_after: 0,
            used_after: 0,
            successor_hash: b"next".to_vec(),
        }
    }

    #[tokio::test]
    async fn only_a_broken_constraint_runs_a_batch_again_one_by_one() {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::raw_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            .execute(&mut conn)
            .await
            .unwrap();
        let mut failures = Vec::new();
        for sql in [
            "INSERT INTO t VALUES (1, 'a'); INSERT INTO t VALUES (1, 'b')",
            "INSERT INTO t VALUES (2, NULL)",
            "INSERT INTO missing VALUES (1)",
        ] {
            failures.push(sqlx::raw_sql(sql).execute(&mut conn).await.unwrap_err());
        }
        failures.extend([sqlx::Error::PoolTimedOut, sqlx::Error::PoolClosed]);
        let again: Vec<bool> = failures.iter().map(one_spends_doing).collect();
        assert_eq!(again, [true, true, false, false, false]);
    }

    /// A spend queued longer than `QUEUE_LIMIT` is answered `Unavailable` and not run: the
    /// pool's database has no tables, so running it would answer `Backend`.
    #[tokio::test]
    async fn a_spend_that_waited_too_long_is_not_run() {
        let pool = SqlitePool::connect("sqlite::memory:").await.unwrap();
        let (queue, jobs) = mpsc::unbounded_channel();
        let (reply, answer) = oneshot::channel();
        let spend = rt_to_next();
        let fresh = |spend: &OwnedSpend| {
            let (reply, answer) = oneshot::channel();
            let job = Job {
                spend: spend.clone(),
                queued_at: Instant::now(),
                reply,
            };
            (job, answer)
        };
        let queued_at = Instant::now()
            .checked_sub(QUEUE_LIMIT + Duration::from_millis(1))
            .unwrap();
        queue
            .send(Job {
                spend: spend.clone(),
                queued_at,
                reply,
            })
            .unwrap();
        let (job, fresh_answer) = fresh(&spend);
        queue.send(job).unwrap();
        drop(queue);
        run(jobs, pool, Arc::new(AtomicU64::new(0))).await;
        assert!(matches!(
            answer.await.unwrap(),
            Err(StoreError::Unavailable(_))
        ));
        // The fresh one beside it did run (and failed on the missing table).
        assert!(matches!(
            fresh_answer.await.unwrap(),
            Err(StoreError::Backend(_))
        ));
    }

    /// A caller dropped after its answer came but before it took it: the row is read
    /// as it is dropped, and a family that does not parse is undone.
    #[tokio::test]
    async fn a_caller_gone_after_its_answer_came_still_undoes_a_corrupt_spend() {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE refresh_tokens (token_hash BLOB PRIMARY KEY, spent_at INTEGER, \
             successor_sealed BLOB); \
             INSERT INTO refresh_tokens VALUES (x'7274', 200, NULL), (x'6e657874', NULL, NULL)",
        )
        .execute(&pool)
        .await
        .unwrap();
        let spends = Spends::start(&tokio::runtime::Handle::current(), pool.clone());
        // Not a family: it does not parse.
        let row = sqlx::query("SELECT 1 AS x").fetch_one(&pool).await.unwrap();
        let (reply, answer) = oneshot::channel();
        reply.send(Ok(Some(row))).unwrap();
        let spend = rt_to_next();
        drop(Awaited {
            answer,
            taken: false,
            spend,
            spends: &spends,
        });
        let state = "SELECT (SELECT spent_at FROM refresh_tokens WHERE token_hash = x'7274'), \
                     (SELECT COUNT(*) FROM refresh_tokens WHERE token_hash = x'6e657874')";
        for _ in 0..100 {
            let (spent_at, successors): (Option<i64>, i64) =
                sqlx::query_as(state).fetch_one(&pool).await.unwrap();
            if (spent_at, successors) == (None, 0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the spend was not undone");
    }

    #[test]
    fn a_batch_takes_a_power_of_two_of_the_waiting_spends_up_to_the_most() {
        let sizes: Vec<usize> = [1, 2, 3, 4, 7, 8, 15, 16, 17, 100]
            .into_iter()
            .map(batch_size)
            .collect();
        assert_eq!(sizes, [1, 2, 2, 4, 4, 8, 8, 16, 16, 16]);
    }

    #[test]
    fn parameters_are_shifted_and_nothing_else_changes() {
        assert_eq!(
            shift_parameters("a = $1 AND b = $12, $", 7),
            "a = $8 AND b = $19, $"
        );
        assert_eq!(shift_parameters("no parameters", 7), "no parameters");
    }

    #[test]
    fn each_spend_of_a_batch_binds_its_own_seven_parameters_and_tags_its_row() {
        let sql = build_batch_sql(3);
        assert!(sql.starts_with("BEGIN IMMEDIATE; ") && sql.ends_with("; COMMIT"));
        for slot in 0..3 {
            assert!(
                sql.contains(&format!("SELECT {slot} AS batch_slot")),
                "{slot}"
            );
        }
        let mut numbers: Vec<usize> = sql
            .split('$')
            .skip(1)
            .filter_map(|s| {
                let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers, (1..=3 * PARAMS).collect::<Vec<_>>());
        assert!(!sql.contains("{slot}"));
    }
}
