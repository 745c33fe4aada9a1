//! SQLite's refresh spends, run in batches on the store's thread (`write_batch`, a group
//! commit): the spends that wait for the writer run together, each spend's four
//! statements (`SPEND_BATCH_ITEM_SQLITE`) after the ones before it, in one transaction.
//! Each spend's first statement does not depend on the one before it, and sets the
//! `changes()` its next three test.
//!
//! What is the refresh spend's own: the caller reads its family from the returned row,
//! off the store's thread (reading it there put the parse of every spend on the serial
//! stretch), and a spend whose family does not parse is undone, whoever sees the row:
//! the caller, the caller's future as it is dropped after the answer came (`Awaited`), or
//! the store's thread when the caller stopped waiting before (`Kind::unanswered`).

use sqlx::sqlite::SqliteRow;
use sqlx::SqlitePool;
use tokio::sync::oneshot;

use super::grants::{
    family_from_sqlite_row, undo_failed, SPEND_BATCH_ITEM_SQLITE, UNDO_SPEND_SQLITE,
};
use super::write_batch::{self, Answer, Batches, Command, Kind};
use crate::clock::UnixTime;
use crate::store::sqlite::own_transaction;
use crate::store::{RefreshFamily, RefreshSpend, StoreError};

/// The queue of refresh spends into the store's thread.
#[derive(Debug, Clone)]
pub(in crate::store) struct Spends {
    batches: Batches<Spend>,
    /// The store's thread and the writer, for the undo of a spend whose family does not
    /// parse.
    runtime: tokio::runtime::Handle,
    pool: SqlitePool,
}

/// The refresh spend as a kind of batched write: the family comes back in its row if it
/// spent the token, no row if it spent nothing.
struct Spend;

impl Kind for Spend {
    type Item = OwnedSpend;
    /// `$1`..`$7`.
    const PARAMS: usize = 7;
    const ITEM: &'static str = SPEND_BATCH_ITEM_SQLITE;
    const WHAT: &'static str = "refresh token";

    fn bind<'q>(query: Command<'q>, s: &'q OwnedSpend) -> Command<'q> {
        query
            .bind(s.now)
            .bind(s.successor_sealed.as_deref())
            .bind(s.presented_hash.as_slice())
            .bind(s.client_id.as_str())
            .bind(s.created_after)
            .bind(s.used_after)
            .bind(s.successor_hash.as_slice())
    }

    /// A caller that stopped waiting cannot read the family and undo the spend if the row
    /// does not parse (`Spends::spend`): that is done here.
    async fn unanswered(pool: &SqlitePool, spend: &OwnedSpend, row: SqliteRow) {
        if family_from_sqlite_row(&row).is_err() {
            undo(pool, spend).await;
        }
    }
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
        Self {
            batches: Batches::start(runtime, pool.clone()),
            runtime: runtime.clone(),
            pool,
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
        let answer = self.batches.submit(spend.clone())?;
        let mut awaited = Awaited {
            answer,
            taken: false,
            spend,
            spends: self,
        };
        let answer = (&mut awaited.answer).await;
        awaited.taken = true;
        let Some(row) = answer.map_err(|_| write_batch::stopped())?? else {
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
        self.batches.answered_together()
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

/// Undoes a committed spend whose family no longer parses, so it cannot be answered: the
/// successor is deleted and the token unspent, as on PostgreSQL (`PgStore::spend_refresh`).
async fn undo(pool: &SqlitePool, spend: &OwnedSpend) {
    let undo = sqlx::query(UNDO_SPEND_SQLITE)
        .bind(spend.successor_hash.as_slice())
        .bind(spend.presented_hash.as_slice())
        .bind(spend.now);
    undo_failed(own_transaction(pool, undo).await.err());
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
    fn each_spend_of_a_batch_binds_its_own_seven_parameters_and_tags_its_row() {
        write_batch::assert_each_item_has_its_own_parameters::<Spend>();
    }
}
