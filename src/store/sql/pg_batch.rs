//! PostgreSQL's access-token reads in batches (`store::coalesce`): the grant and user
//! behind `/userinfo` and `/introspect` (`get_token_grant`). A batch of one runs the
//! single read, as on a quiet server; a larger batch runs one statement over arrays of
//! the reads' keys (`unnest ... WITH ORDINALITY`), each row tagged with its read's place
//! (`slot`, from 1), so an answer never goes to another read. Each row is decoded on its
//! own, so a row that does not decode fails its own read only, as it would alone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgRow;
use sqlx::{FromRow, Row};

use super::backend;
use super::grants::{grant_user_columns, GrantUserRow, SELECT_TOKEN_GRANT};
use super::users::joined_user_columns;
use crate::store::coalesce::{place, Answer, Coalescer};
use crate::store::lane::Lane;
use crate::store::{PgStore, StoreError};

/// `SELECT_TOKEN_GRANT` for a batch: `$1` the grants' ids, `$2` the tokens' `jti`s. A read
/// that finds nothing (an unknown or revoked grant, a revoked `jti`) has no row. With the
/// tables of a running server the plan is the single read's, once per key: a nested loop
/// over the keys probing `revoked_jtis`, `grants` and `users` by their primary keys
/// (`EXPLAIN` on 200,000 grants and 50,000 revoked `jti`s, generic plan).
const SELECT_TOKEN_GRANTS: &str = concat!(
    "SELECT k.slot, ",
    grant_user_columns!(),
    " FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(grant_id, jti, slot) \
     JOIN grants g ON g.id = k.grant_id JOIN users u ON u.id = g.user_id \
     WHERE g.revoked_at IS NULL \
     AND NOT EXISTS (SELECT 1 FROM revoked_jtis j WHERE j.jti = k.jti)"
);

/// The reads of access tokens' grants, in batches: (grant id, `jti`).
pub(in crate::store) type TokenGrantReads = Coalescer<(String, String), GrantUserRow>;

/// The batches of one `PgStore`.
#[derive(Debug, Clone)]
pub(in crate::store) struct PgBatches {
    token_grants: TokenGrantReads,
    /// How many statements the token-grant batches sent.
    token_grant_statements: Arc<AtomicU64>,
}

impl PgBatches {
    /// Batches through `lane`, at most `max_running` of each kind at a time; a read that
    /// waited `queue_limit` is answered `Unavailable`.
    pub(in crate::store) fn new(
        lane: &Lane<sqlx::Postgres>,
        max_running: usize,
        queue_limit: Duration,
    ) -> Self {
        let lane = lane.clone();
        let statements = Arc::new(AtomicU64::new(0));
        let counted = statements.clone();
        Self {
            token_grants: Coalescer::new(
                max_running,
                queue_limit,
                Arc::new(move |keys| {
                    Box::pin(read_token_grants(lane.clone(), counted.clone(), keys))
                }),
            ),
            token_grant_statements: statements,
        }
    }
}

/// One batch of reads, in one statement. Each statement is counted in `statements` where
/// it is sent.
async fn read_token_grants(
    lane: Lane<sqlx::Postgres>,
    statements: Arc<AtomicU64>,
    keys: Vec<(String, String)>,
) -> Result<Vec<Answer<GrantUserRow>>, StoreError> {
    if let [(grant_id, jti)] = keys.as_slice() {
        statements.fetch_add(1, Ordering::Relaxed);
        let row = sqlx::query_as(SELECT_TOKEN_GRANT)
            .bind(grant_id)
            .bind(jti)
            .fetch_optional(&lane)
            .await
            .map_err(backend)?;
        return Ok(vec![Ok(row)]);
    }
    let reads = keys.len();
    let (grants, jtis): (Vec<String>, Vec<String>) = keys.into_iter().unzip();
    statements.fetch_add(1, Ordering::Relaxed);
    let rows: Vec<PgRow> = sqlx::query(SELECT_TOKEN_GRANTS)
        .bind(grants)
        .bind(jtis)
        .fetch_all(&lane)
        .await
        .map_err(backend)?;
    let slotted = rows
        .iter()
        .map(|row| {
            let slot: i64 = row.try_get("slot").map_err(backend)?;
            Ok((slot, GrantUserRow::from_row(row).map_err(backend)))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    place(slotted, reads)
}

impl PgStore {
    pub(super) async fn token_grant(
        &self,
        grant_id: &str,
        jti: &str,
    ) -> Result<Option<GrantUserRow>, StoreError> {
        self.batches
            .token_grants
            .call((grant_id.to_owned(), jti.to_owned()))
            .await
    }

    /// How many access-token reads so far were answered by a batch of more than one.
    pub fn token_grant_reads_together(&self) -> u64 {
        self.batches.token_grants.answered_together()
    }

    /// How many statements the access-token reads sent so far (one per batch).
    pub fn token_grant_statements(&self) -> u64 {
        self.batches.token_grant_statements.load(Ordering::Relaxed)
    }
}
