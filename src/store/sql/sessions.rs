//! `SessionStore` and `ConsentStore` for both backends.

use async_trait::async_trait;

use super::users::{joined_user_columns, JoinedUserRow};
use super::{backend, corrupt, write_error};
use crate::clock::UnixTime;
use crate::domain::{ClientId, FactorUse, Scope, Session, User, UserId};
use crate::store::{ConsentStore, PgStore, SessionStore, SessionUpgrade, SqliteStore, StoreError};

#[derive(sqlx::FromRow)]
struct SessionRow {
    id_hash: Vec<u8>,
    sid: String,
    user_id: String,
    user_agent: String,
    ip: String,
    auth_time: i64,
    credentials_epoch: i64,
    amr: String,
    factors: String,
    created_at: i64,
    last_seen_at: i64,
    expires_at: i64,
    ended_at: Option<i64>,
}

impl TryFrom<SessionRow> for Session {
    type Error = StoreError;

    fn try_from(r: SessionRow) -> Result<Self, StoreError> {
        Ok(Session {
            id_hash: r.id_hash,
            sid: r.sid,
            user_id: UserId::from_stored(r.user_id),
            user_agent: r.user_agent,
            ip: r.ip,
            auth_time: r.auth_time,
            credentials_epoch: r.credentials_epoch,
            amr: r.amr.split_whitespace().map(str::to_owned).collect(),
            factors: serde_json::from_str(&r.factors)
                .map_err(|e| StoreError::Corrupt(format!("factors: {e}")))?,
            created_at: r.created_at,
            last_seen_at: r.last_seen_at,
            expires_at: r.expires_at,
            ended_at: r.ended_at,
        })
    }
}

/// A session joined to other tables: `SessionRow`'s columns with `s_` prefixes, as
/// `joined_session_columns!()` selects them from `sessions s`.
#[derive(sqlx::FromRow)]
pub(super) struct JoinedSessionRow {
    s_id_hash: Vec<u8>,
    s_sid: String,
    s_user_id: String,
    s_user_agent: String,
    s_ip: String,
    s_auth_time: i64,
    s_credentials_epoch: i64,
    s_amr: String,
    s_factors: String,
    s_created_at: i64,
    s_last_seen_at: i64,
    s_expires_at: i64,
    s_ended_at: Option<i64>,
}

impl TryFrom<JoinedSessionRow> for Session {
    type Error = StoreError;

    fn try_from(r: JoinedSessionRow) -> Result<Self, StoreError> {
        Session::try_from(SessionRow {
            id_hash: r.s_id_hash,
            sid: r.s_sid,
            user_id: r.s_user_id,
            user_agent: r.s_user_agent,
            ip: r.s_ip,
            auth_time: r.s_auth_time,
            credentials_epoch: r.s_credentials_epoch,
            amr: r.s_amr,
            factors: r.s_factors,
            created_at: r.s_created_at,
            last_seen_at: r.s_last_seen_at,
            expires_at: r.s_expires_at,
            ended_at: r.s_ended_at,
        })
    }
}

/// The columns of `JoinedSessionRow`, from `sessions s`.
macro_rules! joined_session_columns {
    () => {
        "s.id_hash AS s_id_hash, s.sid AS s_sid, s.user_id AS s_user_id, \
         s.user_agent AS s_user_agent, s.ip AS s_ip, s.auth_time AS s_auth_time, \
         s.credentials_epoch AS s_credentials_epoch, s.amr AS s_amr, s.factors AS s_factors, \
         s.created_at AS s_created_at, s.last_seen_at AS s_last_seen_at, \
         s.expires_at AS s_expires_at, s.ended_at AS s_ended_at"
    };
}
pub(super) use joined_session_columns;

/// A session with its user.
#[derive(sqlx::FromRow)]
struct SessionUserRow {
    #[sqlx(flatten)]
    session: JoinedSessionRow,
    #[sqlx(flatten)]
    user: JoinedUserRow,
}

/// A session by its cookie's hash, with its user: one read for every request that
/// carries a session cookie.
const SELECT_WITH_USER: &str = concat!(
    "SELECT ",
    joined_session_columns!(),
    ", ",
    joined_user_columns!(),
    " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1"
);

/// The stored form of a session's factors: a JSON array of `{"kind", "at"}`.
fn factors_json(factors: &[FactorUse]) -> Result<String, StoreError> {
    serde_json::to_string(factors).map_err(backend)
}

const SELECT: &str = "SELECT id_hash, sid, user_id, user_agent, ip, auth_time, credentials_epoch, \
     amr, factors, created_at, last_seen_at, expires_at, ended_at FROM sessions";

macro_rules! session_store {
    ($store:ty) => {
        #[async_trait]
        impl SessionStore for $store {
            async fn insert_session(&self, s: &Session) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO sessions (id_hash, sid, user_id, user_agent, ip, auth_time, amr, \
                     factors, created_at, last_seen_at, expires_at, ended_at, credentials_epoch) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                )
                .bind(&s.id_hash)
                .bind(&s.sid)
                .bind(s.user_id.as_str())
                .bind(&s.user_agent)
                .bind(&s.ip)
                .bind(s.auth_time)
                .bind(s.amr.join(" "))
                .bind(factors_json(&s.factors)?)
                .bind(s.created_at)
                .bind(s.last_seen_at)
                .bind(s.expires_at)
                .bind(s.ended_at)
                .bind(s.credentials_epoch)
                .execute(&self.pool)
                .await
                .map_err(write_error("session"))?;
                Ok(())
            }

            async fn get_session(&self, id_hash: &[u8]) -> Result<Option<Session>, StoreError> {
                let sql = sqlx::AssertSqlSafe(format!("{SELECT} WHERE id_hash = $1"));
                let row: Option<SessionRow> =
                    sqlx::query_as(sql).bind(id_hash).fetch_optional(&self.reader).await.map_err(backend)?;
                row.map(Session::try_from).transpose()
            }

            async fn get_session_with_user(&self, id_hash: &[u8]) -> Result<Option<(Session, User)>, StoreError> {
                let row: Option<SessionUserRow> = sqlx::query_as(SELECT_WITH_USER)
                    .bind(id_hash)
                    .fetch_optional(&self.reader)
                    .await
                    .map_err(backend)?;
                row.map(|r| Ok((Session::try_from(r.session)?, User::try_from(r.user)?)))
                    .transpose()
            }

            async fn get_session_by_sid(&self, sid: &str) -> Result<Option<Session>, StoreError> {
                let sql = sqlx::AssertSqlSafe(format!("{SELECT} WHERE sid = $1"));
                let row: Option<SessionRow> =
                    sqlx::query_as(sql).bind(sid).fetch_optional(&self.reader).await.map_err(backend)?;
                row.map(Session::try_from).transpose()
            }

            async fn touch_session(&self, id_hash: &[u8], now: UnixTime) -> Result<(), StoreError> {
                sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2 AND last_seen_at < $1")
                    .bind(now)
                    .bind(id_hash)
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(())
            }

            async fn end_user_sessions(&self, user_id: &str, now: UnixTime) -> Result<u64, StoreError> {
                stamp_once!(&self.pool, "UPDATE sessions SET ended_at = $1 WHERE user_id = $2 AND ended_at IS NULL", now, user_id)
            }

            async fn end_session(&self, sid: &str, now: UnixTime) -> Result<bool, StoreError> {
                stamp_once!(&self.pool, "UPDATE sessions SET ended_at = $1 WHERE sid = $2 AND ended_at IS NULL", now, sid).map(|n| n > 0)
            }

            async fn list_user_sessions(&self, user_id: &str, now: UnixTime) -> Result<Vec<Session>, StoreError> {
                let sql = sqlx::AssertSqlSafe(format!(
                    "{SELECT} WHERE user_id = $1 AND ended_at IS NULL AND expires_at > $2 \
                     ORDER BY last_seen_at DESC, sid"
                ));
                let rows: Vec<SessionRow> = sqlx::query_as(sql)
                    .bind(user_id)
                    .bind(now)
                    .fetch_all(&self.reader)
                    .await
                    .map_err(backend)?;
                rows.into_iter().map(Session::try_from).collect()
            }

            async fn end_other_sessions(
                &self,
                user_id: &str,
                keep_sid: &str,
                now: UnixTime,
            ) -> Result<Vec<String>, StoreError> {
                sqlx::query_scalar(
                    "UPDATE sessions SET ended_at = $1 \
                     WHERE user_id = $2 AND sid <> $3 AND ended_at IS NULL AND expires_at > $1 \
                     RETURNING sid",
                )
                .bind(now)
                .bind(user_id)
                .bind(keep_sid)
                .fetch_all(&self.pool)
                .await
                .map_err(backend)
            }

            async fn upgrade_session(&self, sid: &str, u: &SessionUpgrade<'_>) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE sessions SET id_hash = $1, factors = $2, amr = $3, auth_time = $4, \
                     credentials_epoch = $5 WHERE sid = $6 AND ended_at IS NULL",
                )
                .bind(u.new_id_hash)
                .bind(factors_json(u.factors)?)
                .bind(u.amr.join(" "))
                .bind(u.auth_time)
                .bind(u.credentials_epoch)
                .bind(sid)
                .execute(&self.pool)
                .await
                .map_err(write_error("session"))?;
                Ok(done.rows_affected() > 0)
            }
        }

        #[async_trait]
        impl ConsentStore for $store {
            async fn get_consent(&self, user_id: &str, client_id: &ClientId) -> Result<Option<Scope>, StoreError> {
                let scope: Option<String> =
                    sqlx::query_scalar("SELECT scope FROM consents WHERE user_id = $1 AND client_id = $2")
                        .bind(user_id)
                        .bind(client_id.as_str())
                        .fetch_optional(&self.reader)
                        .await
                        .map_err(backend)?;
                scope.map(|s| Scope::parse(&s).map_err(corrupt)).transpose()
            }

            async fn save_consent(
                &self,
                user_id: &str,
                client_id: &ClientId,
                scope: &Scope,
                now: UnixTime,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO consents (user_id, client_id, scope, granted_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, \
                     granted_at = excluded.granted_at",
                )
                .bind(user_id)
                .bind(client_id.as_str())
                .bind(scope.to_string())
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(write_error("consent"))?;
                Ok(())
            }
        }
    };
}

session_store!(PgStore);
session_store!(SqliteStore);
