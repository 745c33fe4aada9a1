//! The PostgreSQL store: production. Migrations in `migrations/postgres/`.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

use super::lane::Lane;
use super::StoreError;

/// A pooled connection idle at least this long is pinged before use (see `connect_with`).
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);
/// How long a statement waits for a connection before the request gets 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// How many batches of one kind of read run at once (`store::coalesce`): reads that
/// arrive while this many run wait and go together in the next.
const BATCHES_RUNNING: usize = 2;

/// PostgreSQL implementation of every store trait.
#[derive(Debug, Clone)]
pub struct PgStore {
    /// Single statements, reads and writes: every hot path is one statement
    /// (`store::lane`: no round trip when a connection goes back).
    pub(super) pool: Lane<Postgres>,
    /// The same lane: PostgreSQL needs no separate readers (see `SqliteStore`).
    pub(super) reader: Lane<Postgres>,
    /// Transactions.
    transactions: PgPool,
    /// The hot reads that run in batches (`store::coalesce`).
    pub(super) batches: super::sql::PgBatches,
}

impl PgStore {
    /// Connects and migrates.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(super::sql::backend)?;
        Self::connect_with(options, max_connections).await
    }

    /// Connects with explicit options (tests use a per-test `search_path`) and migrates.
    /// `max_connections` is shared: a quarter (at least one) for transactions, the rest for
    /// single statements.
    pub async fn connect_with(
        options: PgConnectOptions,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        let for_transactions = (max_connections / 4).max(1);
        let for_statements = max_connections.saturating_sub(for_transactions).max(1);
        let transactions = PgPoolOptions::new()
            .max_connections(for_transactions)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // sqlx pings a connection (a `Sync` round trip) when it goes back to the pool,
            // and by default again before handing it out. The release ping stays (it
            // flushes the rollback of an abandoned transaction); the acquire ping is only
            // for a connection that sat idle long enough to have been cut (a restart, a
            // firewall). A connection that dies while busy fails its request with
            // `Unavailable` (503) and is then discarded.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_WHEN_IDLE_FOR {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options.clone())
            .await
            .map_err(super::sql::backend)?;
        sqlx::migrate!("./migrations/postgres")
            .run(&transactions)
            .await
            .map_err(super::sql::backend)?;
        let lane = Lane::new(options, for_statements, ACQUIRE_TIMEOUT);
        let batches = super::sql::PgBatches::new(&lane, BATCHES_RUNNING, ACQUIRE_TIMEOUT);
        Ok(Self {
            reader: lane.clone(),
            pool: lane,
            transactions,
            batches,
        })
    }

    /// Closes every connection.
    pub(super) async fn close_all(&self) {
        self.pool.close().await;
        self.transactions.close().await;
    }

    /// `BEGIN`: row locks and `UPDATE ... WHERE ... RETURNING` make single use atomic.
    pub(super) async fn begin(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        self.transactions.begin().await.map_err(super::sql::backend)
    }
}
