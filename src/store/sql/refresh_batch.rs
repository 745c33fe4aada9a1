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
//! spend, not even to one presenting the same token. If the batch's command fails, it is
//! rolled back (`own_transaction`) and each spend runs on its own, so one spend's failure
//! is only its own.

use std::sync::OnceLock;

use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Row, Sqlite, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::grants::{SPEND_AND_READ_SQLITE, SPEND_BATCH_ITEM_SQLITE};
use super::write_error;
use crate::clock::UnixTime;
use crate::store::sqlite::own_transaction;
use crate::store::{RefreshSpend, StoreError};

/// The most spends in one batch. A batch takes a power of two of them (`batch_size`), so
/// the writer connection keeps at most four prepared batch commands (2, 4, 8 and 16
/// spends: 120 statements).
const MAX_BATCH: usize = 16;
/// The parameters of one spend (`$1`..`$7` in `SPEND_AND_READ_SQLITE`).
const PARAMS: usize = 7;

/// The queue of refresh spends into the store's thread.
#[derive(Debug, Clone)]
pub(in crate::store) struct Spends {
    queue: mpsc::UnboundedSender<Job>,
}

/// A spend and where its answer goes: the row of the spend's final `SELECT` (the family)
/// if it spent the token, `None` if it spent nothing.
struct Job {
    spend: OwnedSpend,
    reply: oneshot::Sender<Result<Option<SqliteRow>, StoreError>>,
}

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
        runtime.spawn(run(jobs, pool));
        Self { queue }
    }

    /// Runs `s` in the next batch and returns the family's row if it spent the token. Once
    /// queued, the spend runs and commits even if the caller stops waiting, as a spend on
    /// the store's thread always did (`SqliteStore::on_store_runtime`).
    pub(in crate::store) async fn spend(
        &self,
        s: &RefreshSpend<'_>,
    ) -> Result<Option<SqliteRow>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            spend: s.into(),
            reply,
        };
        self.queue.send(job).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the SQLite store's thread has stopped".into())
}

/// Takes the spends that are waiting (`batch_size` of them) and runs them; again until
/// every `Spends` is gone.
async fn run(mut jobs: mpsc::UnboundedReceiver<Job>, pool: SqlitePool) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        let size = batch_size(jobs.len() + 1);
        while batch.len() < size {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&pool, batch).await;
    }
}

/// How many of `waiting` spends the next batch takes: as many as wait, up to `MAX_BATCH`,
/// rounded down to a power of two; the rest go in the next.
fn batch_size(waiting: usize) -> usize {
    1 << waiting.clamp(1, MAX_BATCH).ilog2()
}

/// Runs `batch` as one transaction, or each spend on its own if there is one or the
/// batch's command failed (rolled back: nothing of it stays).
async fn run_batch(pool: &SqlitePool, batch: Vec<Job>) {
    if batch.len() > 1 {
        let spends: Vec<&OwnedSpend> = batch.iter().map(|job| &job.spend).collect();
        match own_transaction(pool, batch_command(&spends)).await {
            Ok(rows) => {
                let mut answers = sort_rows(rows, batch.len()).into_iter();
                for job in batch {
                    let _ = job.reply.send(Ok(answers.next().flatten()));
                }
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, spends = batch.len(),
                    "a batch of refresh spends failed; running them one by one");
            }
        }
    }
    for job in batch {
        let command = bind(sqlx::query(SPEND_AND_READ_SQLITE), &job.spend);
        let answer = own_transaction(pool, command)
            .await
            .map(|rows| rows.into_iter().next())
            .map_err(write_error("refresh token"));
        let _ = job.reply.send(answer);
    }
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
