//! SQLite's hot writes, run in batches on the store's thread (group commit).
//!
//! SQLite has one writer, so every write passes through one connection in turn, and what
//! each costs there besides its statements (the store's thread taking the connection, a
//! message to the connection's thread and its answer, the pool's release ping, a commit)
//! is time during which no other write can run. With the signatures on a fast host that
//! serial stretch, not the CPU, bounded the refresh rate and the code flow's: the cores
//! sat partly idle while every request waited for the writer (`docs/performance.md`,
//! "Sixth round" and "Seventh round"). So the writes of one kind (a [`Kind`]: the refresh
//! spends, the code inserts, the code redemptions) that are waiting when the writer frees
//! up run together, as one command in one transaction: `BEGIN IMMEDIATE`, each write's
//! statements in the order the writes arrived (`Kind::ITEM`, its parameters renumbered),
//! `COMMIT`. No write waits for a batch to fill: a batch is whatever queued while the one
//! before it ran, often one. A write on its own runs the same command with one item.
//!
//! What a write sees is what it would see on its own, run after the writes before it in
//! its batch: the statements run one after another under the write lock. Each write's
//! row carries its place in the batch (`batch_slot`), so an answer never goes to another
//! write, not even to one presenting the same token or code. If the batch's command fails
//! on a constraint (something about one write, such as a hash that is taken), it is
//! rolled back (`own_transaction`) and each write runs on its own, so one write's failure
//! is only its own; any other failure (the writer cannot be had, the disk) is every
//! write's of the batch, as it would have been each one's alone. A write that waited in
//! the queue longer than a writer may be waited for is answered `Unavailable` without
//! running, so a stuck writer does not collect writes that commit after their clients
//! gave up.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Row, Sqlite, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::{is_outage, write_error};
use crate::store::sqlite::own_transaction;
use crate::store::StoreError;

/// The most writes in one batch. A batch takes a power of two of them (`batch_size`), so
/// the writer connection keeps four prepared batch commands per kind (2, 4, 8 and 16
/// writes), and another size only once writes that waited too long were dropped from a
/// batch (`QUEUE_LIMIT`), which leaves it a size of its own.
const MAX_BATCH: usize = 16;
/// A write that waited this long is not run: as long as a statement waits for the writer
/// pool (`SqliteStore::connect_with`'s acquire timeout).
const QUEUE_LIMIT: Duration = Duration::from_secs(10);

/// A command of the writer, with its arguments.
pub(super) type Command<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments>;

/// The answer to one write: the row its statements returned (tagged `batch_slot`), if
/// they return one.
pub(super) type Answer = Result<Option<SqliteRow>, StoreError>;

/// One kind of write that runs in batches.
pub(super) trait Kind: Send + Sync + 'static {
    /// One write's values, owned to cross into the store's thread.
    type Item: Send + Sync + 'static;
    /// How many parameters one write binds: `$1`..`$PARAMS` in `ITEM`.
    const PARAMS: usize;
    /// One write's statements, without the transaction; a row it returns opens with
    /// `SELECT {slot} AS batch_slot`, `{slot}` being its place in the batch. The batch
    /// renumbers its parameters as text (`shift_parameters`), so it holds no `$` but
    /// its parameters' and no `{slot}` but the tag: no string literals or comments with
    /// either (values are bound, never written into the statements).
    const ITEM: &'static str;
    /// What the write inserts, for a conflict's message (`write_error`).
    const WHAT: &'static str;

    /// Binds one write's `PARAMS` parameters, in `ITEM`'s order.
    fn bind<'q>(query: Command<'q>, item: &'q Self::Item) -> Command<'q>;

    /// What is done with the row of a write whose caller stopped waiting before its
    /// answer came (the write committed): nothing, unless the kind says otherwise.
    fn unanswered(
        _pool: &SqlitePool,
        _item: &Self::Item,
        _row: SqliteRow,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// The queue of one kind's writes into the store's thread.
pub(in crate::store) struct Batches<K: Kind> {
    queue: mpsc::UnboundedSender<Job<K>>,
    /// How many writes were answered by a batch of more than one.
    together: Arc<AtomicU64>,
}

impl<K: Kind> Clone for Batches<K> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            together: self.together.clone(),
        }
    }
}

impl<K: Kind> std::fmt::Debug for Batches<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batches")
            .field("kind", &K::WHAT)
            .field("together", &self.together)
            .finish_non_exhaustive()
    }
}

/// A write and where its answer goes.
pub(super) struct Job<K: Kind> {
    item: K::Item,
    queued_at: Instant,
    reply: oneshot::Sender<Answer>,
}

impl<K: Kind> Batches<K> {
    /// Starts the task that runs the writes on `runtime` (the store's thread) through
    /// `pool` (the single writer). It ends when the last `Batches` is dropped, or with
    /// the runtime.
    pub(in crate::store) fn start(runtime: &tokio::runtime::Handle, pool: SqlitePool) -> Self {
        let (queue, jobs) = mpsc::unbounded_channel();
        let together = Arc::new(AtomicU64::new(0));
        runtime.spawn(run::<K>(jobs, pool, together.clone()));
        Self { queue, together }
    }

    /// Queues `item` for the next batch; the receiver gets its answer. Once queued, the
    /// write runs and commits even if the receiver is dropped, as a write on the store's
    /// thread always did (`SqliteStore::on_store_runtime`).
    pub(super) fn submit(&self, item: K::Item) -> Result<oneshot::Receiver<Answer>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            item,
            queued_at: Instant::now(),
            reply,
        };
        self.queue.send(job).map_err(|_| stopped())?;
        Ok(answer)
    }

    /// Runs `item` in the next batch and waits for its answer.
    pub(super) async fn write(&self, item: K::Item) -> Answer {
        self.submit(item)?.await.map_err(|_| stopped())?
    }

    /// How many writes so far were answered by a batch of more than one.
    pub(in crate::store) fn answered_together(&self) -> u64 {
        self.together.load(Ordering::Relaxed)
    }
}

pub(super) fn stopped() -> StoreError {
    StoreError::Unavailable("the SQLite store's thread has stopped".into())
}

/// Takes the writes that are waiting (`batch_size` of them) and runs them; again until
/// every `Batches` of the queue is gone.
async fn run<K: Kind>(
    mut jobs: mpsc::UnboundedReceiver<Job<K>>,
    pool: SqlitePool,
    together: Arc<AtomicU64>,
) {
    let commands: Vec<Arc<str>> = (0..=MAX_BATCH)
        .map(|size| build_batch_sql::<K>(size).into())
        .collect();
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        let size = batch_size(jobs.len() + 1);
        while batch.len() < size {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (stale, mut batch): (Vec<Job<K>>, Vec<Job<K>>) = batch
            .into_iter()
            .partition(|job| job.queued_at.elapsed() >= QUEUE_LIMIT);
        for job in stale {
            let _ = job.reply.send(Err(StoreError::Unavailable(
                "the SQLite writer was busy for too long".into(),
            )));
        }
        if batch.len() > 1 {
            run_together(&pool, &commands, &mut batch, &together).await;
        }
        for job in batch {
            let answer = run_alone::<K>(&pool, &commands[1], &job.item).await;
            deliver(&pool, job, answer).await;
        }
    }
}

/// How many of `waiting` writes the next batch takes: as many as wait, up to
/// `MAX_BATCH`, rounded down to a power of two; the rest go in the next.
fn batch_size(waiting: usize) -> usize {
    1 << waiting.clamp(1, MAX_BATCH).ilog2()
}

/// Runs `batch` as one transaction and answers its writes, leaving `batch` empty and
/// counting them in `together` (before any is answered, so a caller that has its answer
/// sees it counted); or answers them all with the batch's error; or, when the batch
/// failed on a constraint (one write's doing, and rolled back), leaves them in `batch` to
/// run one by one.
async fn run_together<K: Kind>(
    pool: &SqlitePool,
    commands: &[Arc<str>],
    batch: &mut Vec<Job<K>>,
    together: &AtomicU64,
) {
    // `batch_size` keeps a batch within `MAX_BATCH`; a larger one runs one by one.
    let Some(sql) = commands.get(batch.len()) else {
        return;
    };
    let command = batch
        .iter()
        .fold(sqlx::query(command_sql(sql)), |query, job| {
            K::bind(query, &job.item)
        });
    match own_transaction(pool, command).await {
        Ok(rows) => {
            together.fetch_add(batch.len() as u64, Ordering::Relaxed);
            let mut rows = sort_rows::<K>(rows, batch.len()).into_iter();
            for job in std::mem::take(batch) {
                deliver(pool, job, Ok(rows.next().flatten())).await;
            }
        }
        Err(e) if one_writes_doing(&e) => {
            tracing::debug!(error = %e, writes = batch.len(), kind = K::WHAT,
                "a batch of writes broke a constraint; running them one by one");
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
        }
    }
}

/// Whether a batch's failure may be one write's doing (a constraint it broke), so that
/// its writes run again one by one; any other failure would be every one's.
fn one_writes_doing(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() != sqlx::error::ErrorKind::Other)
}

/// Runs one write in its own transaction: `single` is the command of a batch of one.
async fn run_alone<K: Kind>(pool: &SqlitePool, single: &Arc<str>, item: &K::Item) -> Answer {
    let rows = own_transaction(pool, K::bind(sqlx::query(command_sql(single)), item))
        .await
        .map_err(write_error(K::WHAT))?;
    Ok(rows.into_iter().next())
}

/// Sends `answer` to its write's caller; the row of a caller that stopped waiting goes
/// to `Kind::unanswered`.
async fn deliver<K: Kind>(pool: &SqlitePool, job: Job<K>, answer: Answer) {
    if let Err(Ok(Some(row))) = job.reply.send(answer) {
        K::unanswered(pool, &job.item, row).await;
    }
}

/// A batch command for sqlx: built by `build_batch_sql` from a kind's constant statements
/// and the batch's slot and parameter numbers only, never from a value (those are bound).
fn command_sql(sql: &Arc<str>) -> sqlx::AssertSqlSafe<Arc<str>> {
    sqlx::AssertSqlSafe(sql.clone())
}

/// Each row in the place its `batch_slot` names; a place with no row returned nothing.
fn sort_rows<K: Kind>(rows: Vec<SqliteRow>, size: usize) -> Vec<Option<SqliteRow>> {
    let mut places: Vec<Option<SqliteRow>> = (0..size).map(|_| None).collect();
    for row in rows {
        let slot = row.try_get::<i64, _>("batch_slot").ok();
        match slot.and_then(|slot| places.get_mut(usize::try_from(slot).ok()?)) {
            Some(place) => *place = Some(row),
            // Cannot happen with `build_batch_sql`'s slots; the write's caller then gets
            // no row, which every kind whose write answers a row takes as "nothing
            // written": a refresh client finds its token spent (taken as reuse, the family
            // ends), a code is not redeemed. (A code insert answers no row either way.)
            None => tracing::error!(?slot, kind = K::WHAT, "a batched write's row has no place"),
        }
    }
    places
}

/// The command for a batch of `size` writes of kind `K`: `BEGIN IMMEDIATE`, the writes'
/// statements in order with their parameters renumbered, `COMMIT`.
fn build_batch_sql<K: Kind>(size: usize) -> String {
    let mut sql = String::from("BEGIN IMMEDIATE; ");
    for slot in 0..size {
        let item = K::ITEM.replace("{slot}", &slot.to_string());
        sql.push_str(&shift_parameters(&item, slot * K::PARAMS));
        sql.push_str("; ");
    }
    sql.push_str("COMMIT");
    sql
}

/// `sql` with every `$n` renamed `$(n + by)`: sqlx binds `$n` to the n-th argument of the
/// whole command (`SqliteArguments::bind`), so each write of a batch gets its own.
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

/// For a kind's tests: a batch of three has its `BEGIN IMMEDIATE` and `COMMIT`, each
/// item its own slot, and the items' parameters are exactly `$1`..`$(3 x PARAMS)`.
#[cfg(test)]
pub(super) fn assert_each_item_has_its_own_parameters<K: Kind>() {
    let sql = build_batch_sql::<K>(3);
    assert!(sql.starts_with("BEGIN IMMEDIATE; ") && sql.ends_with("; COMMIT"));
    for slot in 0..3 {
        let tag = format!("SELECT {slot} AS batch_slot");
        assert_eq!(K::ITEM.contains("{slot}"), sql.contains(&tag), "{slot}");
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
    assert_eq!(numbers, (1..=3 * K::PARAMS).collect::<Vec<_>>());
    assert!(!sql.contains("{slot}"));
}

/// For a kind's tests: how many arguments `K::bind` binds for `item`.
#[cfg(test)]
pub(super) fn bound_arguments<K: Kind>(item: &K::Item) -> usize {
    use sqlx::{Arguments, Execute};
    let mut query = K::bind(sqlx::query("SELECT 1"), item);
    query
        .take_arguments()
        .ok()
        .flatten()
        .map_or(0, |arguments| arguments.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test kind: inserts `$1` into `t`, and answers with its row.
    struct Put;

    impl Kind for Put {
        type Item = i64;
        const PARAMS: usize = 1;
        const ITEM: &'static str =
            "INSERT INTO t (id) VALUES ($1); SELECT {slot} AS batch_slot, $1 AS id";
        const WHAT: &'static str = "test row";

        fn bind<'q>(query: Command<'q>, item: &'q i64) -> Command<'q> {
            query.bind(*item)
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
        let again: Vec<bool> = failures.iter().map(one_writes_doing).collect();
        assert_eq!(again, [true, true, false, false, false]);
    }

    /// A write queued longer than `QUEUE_LIMIT` is answered `Unavailable` and not run: the
    /// pool's database has no tables, so running it would answer `Backend`.
    #[tokio::test]
    async fn a_write_that_waited_too_long_is_not_run() {
        let pool = SqlitePool::connect("sqlite::memory:").await.unwrap();
        let (queue, jobs) = mpsc::unbounded_channel::<Job<Put>>();
        let (reply, answer) = oneshot::channel();
        let queued_at = Instant::now()
            .checked_sub(QUEUE_LIMIT + Duration::from_millis(1))
            .unwrap();
        queue
            .send(Job {
                item: 1,
                queued_at,
                reply,
            })
            .unwrap();
        let (reply, fresh_answer) = oneshot::channel();
        queue
            .send(Job {
                item: 2,
                queued_at: Instant::now(),
                reply,
            })
            .unwrap();
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

    /// Writes queued together run as one batch, each answered with its own row; in a
    /// batch where one breaks a constraint, that one fails alone and the others commit.
    /// (The test's runtime has one thread: every write is queued before the task runs.)
    #[tokio::test]
    async fn writes_that_wait_run_together_and_a_broken_one_fails_alone() {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::raw_sql("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (7)")
            .execute(&pool)
            .await
            .unwrap();
        let batches = Batches::<Put>::start(&tokio::runtime::Handle::current(), pool.clone());
        async fn answers(batches: &Batches<Put>, ids: [i64; 4]) -> Vec<i64> {
            let queued: Vec<_> = ids.map(|id| batches.submit(id).unwrap()).into();
            let mut got = Vec::new();
            for answer in queued {
                got.push(match answer.await.unwrap() {
                    Ok(Some(row)) => row.get::<i64, _>("id"),
                    Ok(None) => -1,
                    Err(StoreError::Conflict(_)) => 0,
                    Err(e) => panic!("{e}"),
                });
            }
            got
        }
        assert_eq!(answers(&batches, [1, 2, 3, 4]).await, [1, 2, 3, 4]);
        assert_eq!(batches.answered_together(), 4);
        // 7 is taken: that batch rolls back and its writes run one by one.
        assert_eq!(answers(&batches, [5, 7, 6, 8]).await, [5, 0, 6, 8]);
        assert_eq!(batches.answered_together(), 4);
        let stored: Vec<i64> = sqlx::query_scalar("SELECT id FROM t ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(stored, [1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn a_batch_takes_a_power_of_two_of_the_waiting_writes_up_to_the_most() {
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
    fn each_write_of_a_batch_binds_its_own_parameters_and_tags_its_row() {
        struct Three;
        impl Kind for Three {
            type Item = ();
            const PARAMS: usize = 3;
            const ITEM: &'static str = "UPDATE t SET a = $1 WHERE b = $2 AND c = $3 AND d = $1; \
                                        SELECT {slot} AS batch_slot";
            const WHAT: &'static str = "test";
            fn bind<'q>(query: Command<'q>, _: &'q ()) -> Command<'q> {
                query
            }
        }
        assert_each_item_has_its_own_parameters::<Three>();
        let sql = build_batch_sql::<Three>(3);
        assert!(sql.contains("d = $7"));
    }
}
