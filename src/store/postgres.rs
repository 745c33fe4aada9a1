//! The PostgreSQL store: production. Migrations in `migrations/postgres/`.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use super::StoreError;

/// A pooled connection idle at least this long is pinged before use (see `connect_with`).
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// PostgreSQL implementation of every store trait.
#[derive(Debug, Clone)]
pub struct PgStore {
    pub(super) pool: PgPool,
    /// The same pool: PostgreSQL needs no separate readers (see `SqliteStore`).
    pub(super) reader: PgPool,
}

impl PgStore {
    /// Connects and migrates.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(super::sql::backend)?;
        Self::connect_with(options, max_connections).await
    }

    /// Connects with explicit options (tests use a per-test `search_path`) and migrates.
    pub async fn connect_with(
        options: PgConnectOptions,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            // sqlx pings a connection (a `Sync` round trip) when it goes back to the pool,
            // and by default again before handing it out: two round trips around every
            // query. The release ping stays; the acquire ping is only for a connection that
            // sat idle long enough to have been cut (a restart, a firewall), so one in
            // steady use costs a single round trip per query. A connection that dies while
            // busy fails its request with `Unavailable` (503) and is then discarded.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_WHEN_IDLE_FOR {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options)
            .await
            .map_err(super::sql::backend)?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(super::sql::backend)?;
        Ok(Self {
            reader: pool.clone(),
            pool,
        })
    }

    /// `BEGIN`: row locks and `UPDATE ... WHERE ... RETURNING` make single use atomic.
    pub(super) async fn begin(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        self.pool.begin().await.map_err(super::sql::backend)
    }
}
