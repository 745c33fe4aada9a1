//! `GrantStore` for both backends: codes, grants (refresh families) and refresh tokens.
//! Single use is a storage primitive here: consumption is an `UPDATE ... WHERE <unused>`
//! whose row count decides, inside the same transaction as what it creates.

use async_trait::async_trait;

use super::sessions::{joined_session_columns, JoinedSessionRow};
use super::users::{joined_user_columns, JoinedUserRow};
use super::{backend, corrupt, write_error};
use crate::clock::UnixTime;
use crate::domain::{
    AuthorizationCode, ClientId, Grant, RefreshToken, Scope, Session, User, UserId,
};
use crate::store::{
    GrantStore, PgStore, RefreshFamily, RefreshRotation, RefreshSpend, SqliteStore, StoreError,
};

#[derive(sqlx::FromRow)]
struct CodeRow {
    code_hash: Vec<u8>,
    grant_id: String,
    client_id: String,
    user_id: String,
    sid: String,
    redirect_uri: String,
    scope: String,
    nonce: Option<String>,
    code_challenge: String,
    resource: Option<String>,
    auth_time: i64,
    credentials_epoch: i64,
    amr: String,
    created_at: i64,
    expires_at: i64,
    consumed_at: Option<i64>,
}

impl TryFrom<CodeRow> for AuthorizationCode {
    type Error = StoreError;
    fn try_from(r: CodeRow) -> Result<Self, StoreError> {
        Ok(AuthorizationCode {
            code_hash: r.code_hash,
            grant_id: r.grant_id,
            client_id: ClientId::parse(&r.client_id).map_err(corrupt)?,
            user_id: UserId::from_stored(r.user_id),
            sid: r.sid,
            redirect_uri: r.redirect_uri,
            scope: Scope::parse(&r.scope).map_err(corrupt)?,
            nonce: r.nonce,
            code_challenge: r.code_challenge,
            resource: r.resource,
            auth_time: r.auth_time,
            credentials_epoch: r.credentials_epoch,
            amr: split(&r.amr),
            created_at: r.created_at,
            expires_at: r.expires_at,
            consumed_at: r.consumed_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct GrantRow {
    id: String,
    client_id: String,
    user_id: String,
    sid: String,
    scope: String,
    resource: Option<String>,
    auth_time: i64,
    credentials_epoch: i64,
    amr: String,
    created_at: i64,
    last_used_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<GrantRow> for Grant {
    type Error = StoreError;
    fn try_from(r: GrantRow) -> Result<Self, StoreError> {
        Ok(Grant {
            id: r.id,
            client_id: ClientId::parse(&r.client_id).map_err(corrupt)?,
            user_id: UserId::from_stored(r.user_id),
            sid: r.sid,
            scope: Scope::parse(&r.scope).map_err(corrupt)?,
            resource: r.resource,
            auth_time: r.auth_time,
            credentials_epoch: r.credentials_epoch,
            amr: split(&r.amr),
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct RefreshRow {
    token_hash: Vec<u8>,
    grant_id: String,
    client_id: String,
    scope: String,
    created_at: i64,
    expires_at: i64,
    spent_at: Option<i64>,
}

impl TryFrom<RefreshRow> for RefreshToken {
    type Error = StoreError;
    fn try_from(r: RefreshRow) -> Result<Self, StoreError> {
        Ok(RefreshToken {
            token_hash: r.token_hash,
            grant_id: r.grant_id,
            client_id: ClientId::parse(&r.client_id).map_err(corrupt)?,
            scope: Scope::parse(&r.scope).map_err(corrupt)?,
            created_at: r.created_at,
            expires_at: r.expires_at,
            spent_at: r.spent_at,
        })
    }
}

/// A grant (`GrantRow`'s columns, unprefixed) joined with its user (`u_` prefixes).
#[derive(sqlx::FromRow)]
pub(super) struct GrantUserRow {
    #[sqlx(flatten)]
    grant: GrantRow,
    #[sqlx(flatten)]
    user: JoinedUserRow,
}

/// A refresh token (`rt_` prefixes) joined with its grant and the grant's user.
#[derive(sqlx::FromRow)]
struct FamilyRow {
    #[sqlx(flatten)]
    grant_user: GrantUserRow,
    rt_token_hash: Vec<u8>,
    rt_client_id: String,
    rt_scope: String,
    rt_created_at: i64,
    rt_expires_at: i64,
    rt_spent_at: Option<i64>,
}

impl TryFrom<FamilyRow> for RefreshFamily {
    type Error = StoreError;
    fn try_from(r: FamilyRow) -> Result<Self, StoreError> {
        let token = RefreshToken::try_from(RefreshRow {
            token_hash: r.rt_token_hash,
            grant_id: r.grant_user.grant.id.clone(),
            client_id: r.rt_client_id,
            scope: r.rt_scope,
            created_at: r.rt_created_at,
            expires_at: r.rt_expires_at,
            spent_at: r.rt_spent_at,
        })?;
        let (grant, user) = r.grant_user.try_into()?;
        Ok(RefreshFamily { token, grant, user })
    }
}

impl TryFrom<GrantUserRow> for (Grant, User) {
    type Error = StoreError;
    fn try_from(r: GrantUserRow) -> Result<Self, StoreError> {
        Ok((Grant::try_from(r.grant)?, User::try_from(r.user)?))
    }
}

fn split(v: &str) -> Vec<String> {
    v.split_whitespace().map(str::to_owned).collect()
}

const SELECT_CODE: &str =
    "SELECT code_hash, grant_id, client_id, user_id, sid, redirect_uri, scope, \
     nonce, code_challenge, resource, auth_time, credentials_epoch, amr, created_at, expires_at, \
     consumed_at FROM authorization_codes WHERE code_hash = $1";
/// A code with the session that authorized it and its user: the token exchange's one read.
const SELECT_CODE_IN_SESSION: &str = concat!(
    "SELECT c.code_hash, c.grant_id, c.client_id, c.user_id, c.sid, c.redirect_uri, c.scope, \
     c.nonce, c.code_challenge, c.resource, c.auth_time, c.credentials_epoch, c.amr, \
     c.created_at, c.expires_at, c.consumed_at, ",
    joined_session_columns!(),
    ", ",
    joined_user_columns!(),
    " FROM authorization_codes c JOIN sessions s ON s.sid = c.sid \
     JOIN users u ON u.id = c.user_id WHERE c.code_hash = $1"
);
#[derive(sqlx::FromRow)]
struct CodeSessionRow {
    #[sqlx(flatten)]
    code: CodeRow,
    #[sqlx(flatten)]
    session: JoinedSessionRow,
    #[sqlx(flatten)]
    user: JoinedUserRow,
}
const SELECT_GRANT: &str = "SELECT id, client_id, user_id, sid, scope, resource, auth_time, \
     credentials_epoch, amr, created_at, last_used_at, expires_at, revoked_at FROM grants WHERE id = $1";
const SELECT_USER_GRANTS: &str = "SELECT id, client_id, user_id, sid, scope, resource, auth_time, \
     credentials_epoch, amr, created_at, last_used_at, expires_at, revoked_at FROM grants \
     WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY last_used_at DESC, id";
const SELECT_REFRESH: &str =
    "SELECT token_hash, grant_id, client_id, scope, created_at, expires_at, \
     spent_at FROM refresh_tokens WHERE token_hash = $1";
/// The columns of `GrantUserRow`, from `grants g` and `users u`.
macro_rules! grant_user_columns {
    () => {
        concat!(
            "g.id, g.client_id, g.user_id, g.sid, g.scope, g.resource, \
     g.auth_time, g.credentials_epoch, g.amr, g.created_at, g.last_used_at, g.expires_at, g.revoked_at, ",
            joined_user_columns!()
        )
    };
}
pub(super) use grant_user_columns;
/// The columns of `FamilyRow` beyond `grant_user_columns!`: the token, from `refresh_tokens r`.
macro_rules! family_token_columns {
    () => {
        "r.token_hash AS rt_token_hash, r.client_id AS rt_client_id, r.scope AS rt_scope, \
         r.created_at AS rt_created_at, r.expires_at AS rt_expires_at, r.spent_at AS rt_spent_at"
    };
}
const SELECT_FAMILY: &str = concat!(
    "SELECT ",
    grant_user_columns!(),
    ", ",
    family_token_columns!(),
    " \
     FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id JOIN users u ON u.id = g.user_id \
     WHERE r.token_hash = $1"
);
/// An access token's grant and user, unless the grant or the token's `jti` was revoked.
pub(super) const SELECT_TOKEN_GRANT: &str = concat!(
    "SELECT ",
    grant_user_columns!(),
    " FROM grants g JOIN users u ON u.id = g.user_id WHERE g.id = $1 AND g.revoked_at IS NULL \
     AND NOT EXISTS (SELECT 1 FROM revoked_jtis j WHERE j.jti = $2)"
);
impl SqliteStore {
    /// SQLite's reads are calls into the process: no batches (PostgreSQL's are in
    /// `pg_batch`).
    pub(super) async fn token_grant(
        &self,
        grant_id: &str,
        jti: &str,
    ) -> Result<Option<GrantUserRow>, StoreError> {
        sqlx::query_as(SELECT_TOKEN_GRANT)
            .bind(grant_id)
            .bind(jti)
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)
    }
}

/// RFC 9700 §4.14.2: the presented token is spent once, and only by its own client.
const SPEND_REFRESH: &str = "UPDATE refresh_tokens SET spent_at = $1, successor_sealed = $2 \
     WHERE token_hash = $3 AND spent_at IS NULL AND grant_id = $4 AND client_id = $5 \
     AND expires_at > $1";
/// The family must still be alive, and its user enabled under the epoch the grant was
/// authenticated in (a disabling or password change stops the next refresh at once).
const TOUCH_LIVE_GRANT: &str = "UPDATE grants SET last_used_at = $1 WHERE id = $2 \
     AND revoked_at IS NULL AND created_at > $3 AND last_used_at > $4 \
     AND EXISTS (SELECT 1 FROM users u WHERE u.id = grants.user_id AND NOT u.disabled \
     AND u.credentials_epoch = grants.credentials_epoch)";
const INSERT_REFRESH: &str = "INSERT INTO refresh_tokens (token_hash, grant_id, client_id, scope, \
     created_at, expires_at, spent_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";

macro_rules! insert_refresh {
    ($t:expr, $conn:expr) => {
        sqlx::query(INSERT_REFRESH)
            .bind(&$t.token_hash)
            .bind(&$t.grant_id)
            .bind($t.client_id.as_str())
            .bind($t.scope.to_string())
            .bind($t.created_at)
            .bind($t.expires_at)
            .bind($t.spent_at)
            .execute($conn)
            .await
            .map_err(write_error("refresh token"))
    };
}

/// An authorization code's insert, `$1`-`$16` in `bind_code!`'s order.
pub(super) const INSERT_CODE: &str =
    "INSERT INTO authorization_codes (code_hash, grant_id, client_id, user_id, sid, \
     redirect_uri, scope, nonce, code_challenge, resource, auth_time, amr, created_at, \
     expires_at, consumed_at, credentials_epoch) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";

/// Binds an authorization code's sixteen columns (`$c`) in `INSERT_CODE`'s order.
macro_rules! bind_code {
    ($query:expr, $c:expr) => {
        $query
            .bind(&$c.code_hash)
            .bind(&$c.grant_id)
            .bind($c.client_id.as_str())
            .bind($c.user_id.as_str())
            .bind(&$c.sid)
            .bind(&$c.redirect_uri)
            .bind($c.scope.to_string())
            .bind($c.nonce.as_deref())
            .bind(&$c.code_challenge)
            .bind($c.resource.as_deref())
            .bind($c.auth_time)
            .bind($c.amr.join(" "))
            .bind($c.created_at)
            .bind($c.expires_at)
            .bind($c.consumed_at)
            .bind($c.credentials_epoch)
    };
}
pub(super) use bind_code;

macro_rules! grant_store {
    ($store:ty) => {
        #[async_trait]
        impl GrantStore for $store {
            async fn insert_code(&self, c: &AuthorizationCode) -> Result<(), StoreError> {
                self.write_code(c).await
            }

            async fn get_code(&self, code_hash: &[u8]) -> Result<Option<AuthorizationCode>, StoreError> {
                let row: Option<CodeRow> = sqlx::query_as(SELECT_CODE)
                    .bind(code_hash)
                    .fetch_optional(&self.reader)
                    .await
                    .map_err(backend)?;
                row.map(AuthorizationCode::try_from).transpose()
            }

            async fn get_code_in_session(
                &self,
                code_hash: &[u8],
            ) -> Result<Option<(AuthorizationCode, Session, User)>, StoreError> {
                let row: Option<CodeSessionRow> = sqlx::query_as(SELECT_CODE_IN_SESSION)
                    .bind(code_hash)
                    .fetch_optional(&self.reader)
                    .await
                    .map_err(backend)?;
                row.map(|r| {
                    Ok((
                        AuthorizationCode::try_from(r.code)?,
                        Session::try_from(r.session)?,
                        User::try_from(r.user)?,
                    ))
                })
                .transpose()
            }

            async fn redeem_code(
                &self,
                code_hash: &[u8],
                g: &Grant,
                refresh: Option<&RefreshToken>,
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                self.redeem(code_hash, g, refresh, now).await
            }

            async fn get_grant(&self, id: &str) -> Result<Option<Grant>, StoreError> {
                let row: Option<GrantRow> =
                    sqlx::query_as(SELECT_GRANT).bind(id).fetch_optional(&self.reader).await.map_err(backend)?;
                row.map(Grant::try_from).transpose()
            }

            async fn revoke_grant(&self, id: &str, now: UnixTime) -> Result<bool, StoreError> {
                stamp_once!(&self.pool, "UPDATE grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL", now, id).map(|n| n > 0)
            }

            async fn consume_session_codes(&self, sid: &str, now: UnixTime) -> Result<u64, StoreError> {
                stamp_once!(&self.pool, "UPDATE authorization_codes SET consumed_at = $1 WHERE sid = $2 AND consumed_at IS NULL", now, sid)
            }

            async fn consume_user_codes(&self, user_id: &str, now: UnixTime) -> Result<u64, StoreError> {
                stamp_once!(&self.pool, "UPDATE authorization_codes SET consumed_at = $1 WHERE user_id = $2 AND consumed_at IS NULL", now, user_id)
            }

            async fn revoke_user_grants(&self, user_id: &str, now: UnixTime) -> Result<u64, StoreError> {
                stamp_once!(&self.pool, "UPDATE grants SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL", now, user_id)
            }

            async fn list_user_grants(&self, user_id: &str, now: UnixTime) -> Result<Vec<Grant>, StoreError> {
                let rows: Vec<GrantRow> = sqlx::query_as(SELECT_USER_GRANTS)
                    .bind(user_id)
                    .bind(now)
                    .fetch_all(&self.reader)
                    .await
                    .map_err(backend)?;
                rows.into_iter().map(Grant::try_from).collect()
            }

            async fn revoke_session_grants(
                &self,
                sid: &str,
                keep_offline: bool,
                now: UnixTime,
            ) -> Result<u64, StoreError> {
                let done = sqlx::query(
                    "UPDATE grants SET revoked_at = $1 WHERE sid = $2 AND revoked_at IS NULL \
                     AND NOT ($3 AND (' ' || scope || ' ') LIKE '% offline\\_access %' ESCAPE '\\' \
                     AND NOT EXISTS (SELECT 1 FROM clients c WHERE c.id = grants.client_id \
                     AND c.end_offline_on_logout))",
                )
                .bind(now)
                .bind(sid)
                .bind(keep_offline)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
                Ok(done.rows_affected())
            }

            async fn sealed_successor(&self, token_hash: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
                let sealed: Option<Option<Vec<u8>>> =
                    sqlx::query_scalar("SELECT successor_sealed FROM refresh_tokens WHERE token_hash = $1")
                        .bind(token_hash)
                        .fetch_optional(&self.reader)
                        .await
                        .map_err(backend)?;
                Ok(sealed.flatten())
            }

            async fn get_refresh_token(&self, token_hash: &[u8]) -> Result<Option<RefreshToken>, StoreError> {
                let row: Option<RefreshRow> = sqlx::query_as(SELECT_REFRESH)
                    .bind(token_hash)
                    .fetch_optional(&self.reader)
                    .await
                    .map_err(backend)?;
                row.map(RefreshToken::try_from).transpose()
            }

            async fn get_refresh_family(&self, token_hash: &[u8]) -> Result<Option<RefreshFamily>, StoreError> {
                let row: Option<FamilyRow> = sqlx::query_as(SELECT_FAMILY)
                    .bind(token_hash)
                    .fetch_optional(&self.reader)
                    .await
                    .map_err(backend)?;
                row.map(RefreshFamily::try_from).transpose()
            }

            async fn get_token_grant(&self, grant_id: &str, jti: &str) -> Result<Option<(Grant, User)>, StoreError> {
                self.token_grant(grant_id, jti).await?.map(<(Grant, User)>::try_from).transpose()
            }

            async fn rotate_refresh_token(&self, r: &RefreshRotation<'_>) -> Result<bool, StoreError> {
                self.rotate_refresh(r).await
            }

            async fn spend_refresh_token(&self, s: &RefreshSpend<'_>) -> Result<Option<RefreshFamily>, StoreError> {
                self.spend_refresh(s).await
            }
        }
    };
}

/// PostgreSQL rotates in ONE statement, one round trip: the spend (only while the family
/// is alive and its user enabled under the grant's epoch), the grant's touch and the
/// successor's insert are data-modifying CTEs of a single `INSERT`, atomic like a
/// transaction (RFC 9700 §4.14.2: the presented token is invalidated together with the
/// issue of its successor). Every condition is checked in SQL, so nothing read earlier is
/// trusted. A concurrent second use finds `spent_at` set after the row lock and inserts
/// nothing. Each round trip costs both processes CPU on a busy machine; the transaction
/// form below took six.
const ROTATE_PG: &str = "WITH spent AS ( \
     UPDATE refresh_tokens SET spent_at = $1, successor_sealed = $2 \
     WHERE token_hash = $3 AND spent_at IS NULL AND grant_id = $4 AND client_id = $5 \
     AND expires_at > $1 AND EXISTS (SELECT 1 FROM grants g JOIN users u ON u.id = g.user_id \
     WHERE g.id = $4 AND g.revoked_at IS NULL AND g.created_at > $6 AND g.last_used_at > $7 \
     AND NOT u.disabled AND u.credentials_epoch = g.credentials_epoch) \
     RETURNING grant_id), \
     touched AS (UPDATE grants SET last_used_at = $1 \
     WHERE id IN (SELECT grant_id FROM spent) AND revoked_at IS NULL RETURNING id) \
     INSERT INTO refresh_tokens (token_hash, grant_id, client_id, scope, created_at, \
     expires_at, spent_at) SELECT $8, id, $5, $9, $10, $11, NULL FROM touched";

impl PgStore {
    async fn rotate_refresh(&self, r: &RefreshRotation<'_>) -> Result<bool, StoreError> {
        let next = r.successor;
        let done = sqlx::query(ROTATE_PG)
            .bind(r.now)
            .bind(r.successor_sealed)
            .bind(r.presented_hash)
            .bind(&next.grant_id)
            .bind(next.client_id.as_str())
            .bind(r.created_after)
            .bind(r.used_after)
            .bind(&next.token_hash)
            .bind(next.scope.to_string())
            .bind(next.created_at)
            .bind(next.expires_at)
            .execute(&self.pool)
            .await
            .map_err(write_error("refresh token"))?;
        Ok(done.rows_affected() == 1)
    }
}

/// The spend's conditions (`$1` the time, `$2` the sealed successor, `$3` the presented
/// hash, `$4` the client, `$5`/`$6` the family's bounds): `ROTATE_PG`'s, with the grant
/// found through the token instead of trusted from a read, and bound to no resource.
macro_rules! spend_at_once {
    () => {
        "UPDATE refresh_tokens SET spent_at = $1, successor_sealed = $2 \
     WHERE token_hash = $3 AND spent_at IS NULL AND client_id = $4 AND expires_at > $1 \
     AND EXISTS (SELECT 1 FROM grants g JOIN users u ON u.id = g.user_id \
     WHERE g.id = refresh_tokens.grant_id AND g.revoked_at IS NULL AND g.resource IS NULL \
     AND g.created_at > $5 AND g.last_used_at > $6 \
     AND NOT u.disabled AND u.credentials_epoch = g.credentials_epoch)"
    };
}

/// PostgreSQL's `spend_refresh_token`: the spend, the grant's touch and the successor's
/// insert (`$7`) as data-modifying CTEs of one statement that also returns the family, so
/// the common refresh is one round trip with no read before it. The final `SELECT` joins
/// only the CTEs' own rows (and the user), so a lost race returns nothing.
const SPEND_AND_READ_PG: &str = concat!(
    "WITH spent AS (",
    spend_at_once!(),
    " RETURNING token_hash, grant_id, client_id, scope, created_at, expires_at, spent_at), \
     touched AS (UPDATE grants SET last_used_at = $1 \
     WHERE id IN (SELECT grant_id FROM spent) AND revoked_at IS NULL \
     RETURNING id, client_id, user_id, sid, scope, resource, auth_time, credentials_epoch, amr, \
     created_at, last_used_at, expires_at, revoked_at), \
     successor AS (INSERT INTO refresh_tokens (token_hash, grant_id, client_id, scope, \
     created_at, expires_at, spent_at) SELECT $7, t.id, s.client_id, s.scope, $1, \
     t.expires_at, NULL FROM touched t JOIN spent s ON s.grant_id = t.id RETURNING grant_id) \
     SELECT ",
    grant_user_columns!(),
    ", ",
    family_token_columns!(),
    " \
     FROM successor n JOIN touched g ON g.id = n.grant_id JOIN spent r ON r.grant_id = g.id \
     JOIN users u ON u.id = g.user_id"
);

/// SQLite's `spend_refresh_token`: no data-modifying CTEs, so four statements, one write
/// of a batch (`refresh_batch`, `write_batch`): sent as one command with the spends that
/// wait beside it (sqlx runs them in order on the connection's thread, with `$n` naming
/// the same argument in each), inside the command's own `BEGIN IMMEDIATE` ... `COMMIT`
/// (`store::sqlite::own_transaction`). Each statement after the spend goes on only if the
/// one before it changed exactly one row: `changes()` is the row count of the most
/// recently completed `INSERT`/`UPDATE`/`DELETE`
/// (https://sqlite.org/lang_corefunc.html#changes), and the write lock keeps everything
/// else out between them. So a spend that matches nothing writes nothing; one that
/// matches writes all three rows; the last statement returns the family only if the
/// successor was inserted, its row tagged with the spend's place in the batch
/// (`{slot}`). Its parameters are `$1`..`$7` before the batch renumbers them.
pub(super) const SPEND_BATCH_ITEM_SQLITE: &str = concat!(
    spend_at_once!(),
    "; UPDATE grants SET last_used_at = $1 WHERE changes() = 1 \
     AND id = (SELECT grant_id FROM refresh_tokens WHERE token_hash = $3); \
     INSERT INTO refresh_tokens (token_hash, grant_id, client_id, scope, created_at, \
     expires_at, spent_at) SELECT $7, r.grant_id, r.client_id, r.scope, $1, g.expires_at, NULL \
     FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id \
     WHERE changes() = 1 AND r.token_hash = $3; \
     SELECT {slot} AS batch_slot, ",
    grant_user_columns!(),
    ", ",
    family_token_columns!(),
    " \
     FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id JOIN users u ON u.id = g.user_id \
     WHERE changes() = 1 AND r.token_hash = $3"
);

/// Undoes a spend whose family did not parse: the successor (`$1`) goes, the presented
/// token (`$2`, spent at `$3`) is unspent again.
const UNDO_SPEND_PG: &str = "WITH gone AS (DELETE FROM refresh_tokens WHERE token_hash = $1) \
     UPDATE refresh_tokens SET spent_at = NULL, successor_sealed = NULL \
     WHERE token_hash = $2 AND spent_at = $3";
/// `UNDO_SPEND_PG` for SQLite, in a transaction of its own.
pub(super) const UNDO_SPEND_SQLITE: &str =
    "BEGIN IMMEDIATE; DELETE FROM refresh_tokens WHERE token_hash = $1; \
     UPDATE refresh_tokens SET spent_at = NULL, successor_sealed = NULL \
     WHERE token_hash = $2 AND spent_at = $3; COMMIT";

/// Binds the six parameters of `spend_at_once!`.
macro_rules! bind_spend {
    ($query:expr, $s:expr) => {
        $query
            .bind($s.now)
            .bind($s.successor_sealed)
            .bind($s.presented_hash)
            .bind($s.client_id.as_str())
            .bind($s.created_after)
            .bind($s.used_after)
    };
}

/// A failed undo leaves the presented token spent (its client's retry is then taken for
/// reuse): logged here, as the caller answers with the family's own error.
pub(super) fn undo_failed(error: Option<sqlx::Error>) {
    if let Some(e) = error {
        tracing::error!(error = %e, "a spend whose family does not parse could not be undone");
    }
}

impl PgStore {
    async fn spend_refresh(
        &self,
        s: &RefreshSpend<'_>,
    ) -> Result<Option<RefreshFamily>, StoreError> {
        let row: Option<FamilyRow> = bind_spend!(sqlx::query_as(SPEND_AND_READ_PG), s)
            .bind(s.successor_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(write_error("refresh token"))?;
        let family = row.map(RefreshFamily::try_from).transpose();
        if family.is_err() {
            // The statement has committed, but a family that no longer parses cannot be
            // answered: put the token back as the full path would have left it (it reads,
            // fails and spends nothing), so a retry after a repair is not taken for reuse.
            let undone = sqlx::query(UNDO_SPEND_PG)
                .bind(s.successor_hash)
                .bind(s.presented_hash)
                .bind(s.now)
                .execute(&self.pool)
                .await;
            undo_failed(undone.err());
        }
        family
    }
}

/// A grant's thirteen columns as `$1`-`$13`, in `bind_grant!`'s order, inserted from
/// `$source`: `SELECT ... FROM consumed` inside PostgreSQL's one-statement redemption,
/// `SELECT ... WHERE changes() = 1` in SQLite's one command.
macro_rules! insert_grant {
    ($source:expr) => {
        concat!(
            "INSERT INTO grants (id, client_id, user_id, sid, scope, resource, auth_time, amr, \
             created_at, last_used_at, expires_at, revoked_at, credentials_epoch) ",
            $source
        )
    };
}
/// The first refresh token's insert (`$16`-`$21`, `bind_redemption!`'s order), from
/// `$grant_id`.
macro_rules! insert_first_refresh {
    ($grant_id:literal, $source:literal) => {
        concat!(
            "INSERT INTO refresh_tokens (token_hash, grant_id, client_id, scope, created_at, \
             expires_at, spent_at) SELECT $16, ",
            $grant_id,
            ", $17, $18, $19, $20, $21 ",
            $source
        )
    };
}

/// PostgreSQL redeems a code in ONE statement, as it rotates: the code's consumption, the
/// grant and (with `offline_access`) the first refresh token are data-modifying CTEs of
/// one `INSERT`, atomic like the transaction SQLite uses; a code already consumed inserts
/// nothing. `$1`-`$13` are the grant, `$14` the time, `$15` the code's hash.
macro_rules! redeem_pg {
    ($tail:expr) => {
        concat!(
            "WITH consumed AS (UPDATE authorization_codes SET consumed_at = $14 \
             WHERE code_hash = $15 AND consumed_at IS NULL RETURNING 1)",
            $tail
        )
    };
}
const REDEEM_PG: &str = redeem_pg!(concat!(
    " ",
    insert_grant!("SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 FROM consumed")
));
/// The same with the first refresh token (`$16`-`$21`) inserted for the new grant.
const REDEEM_PG_WITH_REFRESH: &str = redeem_pg!(concat!(
    ", granted AS (",
    insert_grant!(
        "SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 FROM consumed RETURNING id"
    ),
    ") ",
    insert_first_refresh!("id", "FROM granted")
));

/// SQLite has no data-modifying CTEs: the same as statements of one write of a batch
/// (`code_batch`, run in a transaction with the redemptions that wait beside it), each
/// after the consumption going on only if the one before it changed a row (`changes()`,
/// see `spend_and_read_sqlite!`); the last one answers `done` 1 if everything was
/// inserted, 0 if the code was consumed already and nothing was written.
macro_rules! redeem_sqlite {
    ($tail:expr) => {
        concat!(
            "UPDATE authorization_codes SET consumed_at = $14 \
             WHERE code_hash = $15 AND consumed_at IS NULL; ",
            insert_grant!(
                "SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 \
                 WHERE changes() = 1; "
            ),
            $tail,
            "SELECT {slot} AS batch_slot, changes() AS done"
        )
    };
}
pub(super) const REDEEM_ITEM_SQLITE: &str = redeem_sqlite!("");
pub(super) const REDEEM_WITH_REFRESH_ITEM_SQLITE: &str = redeem_sqlite!(concat!(
    insert_first_refresh!("$1", "WHERE changes() = 1"),
    "; "
));

/// Binds a grant's thirteen columns in `insert_grant!`'s order.
macro_rules! bind_grant {
    ($query:expr, $g:expr) => {
        $query
            .bind(&$g.id)
            .bind($g.client_id.as_str())
            .bind($g.user_id.as_str())
            .bind(&$g.sid)
            .bind($g.scope.to_string())
            .bind($g.resource.as_deref())
            .bind($g.auth_time)
            .bind($g.amr.join(" "))
            .bind($g.created_at)
            .bind($g.last_used_at)
            .bind($g.expires_at)
            .bind($g.revoked_at)
            .bind($g.credentials_epoch)
    };
}

/// Binds a redemption's parameters: the grant (`$1`-`$13`), the time, the code's hash, and
/// the first refresh token's (`$16`-`$21`) if there is one.
macro_rules! bind_redemption {
    ($query:expr, $g:expr, $now:expr, $code_hash:expr, $refresh:expr) => {{
        let mut query = bind_grant!($query, $g).bind($now).bind($code_hash);
        if let Some(t) = $refresh {
            query = query
                .bind(&t.token_hash)
                .bind(t.client_id.as_str())
                .bind(t.scope.to_string())
                .bind(t.created_at)
                .bind(t.expires_at)
                .bind(t.spent_at);
        }
        query
    }};
}
pub(super) use {bind_grant, bind_redemption};

/// What a redemption inserts (with the first refresh token or not), for a conflict's
/// message.
pub(super) const fn redemption_label(refresh: bool) -> &'static str {
    if refresh {
        "grant or refresh token"
    } else {
        "grant"
    }
}

impl PgStore {
    async fn write_code(&self, c: &AuthorizationCode) -> Result<(), StoreError> {
        bind_code!(sqlx::query(INSERT_CODE), c)
            .execute(&self.pool)
            .await
            .map_err(write_error("authorization code"))?;
        Ok(())
    }

    async fn redeem(
        &self,
        code_hash: &[u8],
        g: &Grant,
        refresh: Option<&RefreshToken>,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let sql = if refresh.is_some() {
            REDEEM_PG_WITH_REFRESH
        } else {
            REDEEM_PG
        };
        let query = bind_redemption!(sqlx::query(sql), g, now, code_hash, refresh);
        let what = redemption_label(refresh.is_some());
        let done = query.execute(&self.pool).await.map_err(write_error(what))?;
        Ok(done.rows_affected() == 1)
    }
}

impl SqliteStore {
    /// Through the store's batches of code inserts (`code_batch`).
    async fn write_code(&self, c: &AuthorizationCode) -> Result<(), StoreError> {
        self.codes.insert(c).await
    }

    /// Through the store's batches of redemptions (`code_batch`): in one transaction
    /// with the redemptions that wait beside it; a consumed code writes nothing.
    async fn redeem(
        &self,
        code_hash: &[u8],
        g: &Grant,
        refresh: Option<&RefreshToken>,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.codes.redeem(code_hash, g, refresh, now).await
    }

    async fn rotate_refresh(&self, r: &RefreshRotation<'_>) -> Result<bool, StoreError> {
        let store = self.clone();
        let presented = r.presented_hash.to_vec();
        let sealed = r.successor_sealed.map(<[u8]>::to_vec);
        let successor = r.successor.clone();
        let (now, created_after, used_after) = (r.now, r.created_after, r.used_after);
        self.on_store_runtime(async move {
            let r = RefreshRotation {
                presented_hash: &presented,
                successor: &successor,
                successor_sealed: sealed.as_deref(),
                now,
                created_after,
                used_after,
            };
            store.rotate_refresh_here(&r).await
        })
        .await
    }

    /// SQLite has no data-modifying CTEs: one `BEGIN IMMEDIATE` transaction on its single
    /// writer connection, which a failed check rolls back.
    async fn rotate_refresh_here(&self, r: &RefreshRotation<'_>) -> Result<bool, StoreError> {
        let next = r.successor;
        // Dropping `tx` before the commit rolls everything back.
        let mut tx = self.begin().await?;
        let spent = sqlx::query(SPEND_REFRESH)
            .bind(r.now)
            .bind(r.successor_sealed)
            .bind(r.presented_hash)
            .bind(&next.grant_id)
            .bind(next.client_id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if spent.rows_affected() != 1 {
            return Ok(false);
        }
        let touched = sqlx::query(TOUCH_LIVE_GRANT)
            .bind(r.now)
            .bind(&next.grant_id)
            .bind(r.created_after)
            .bind(r.used_after)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if touched.rows_affected() != 1 {
            return Ok(false);
        }
        insert_refresh!(next, &mut *tx)?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }
}

impl SqliteStore {
    /// One spend through the store's batches (`refresh_batch`): it runs in one
    /// transaction with the spends that wait beside it, as one command of the writer's;
    /// a spend that matches nothing writes nothing.
    async fn spend_refresh(
        &self,
        s: &RefreshSpend<'_>,
    ) -> Result<Option<RefreshFamily>, StoreError> {
        self.spends.spend(s).await
    }
}

/// The family in a row of `SPEND_BATCH_ITEM_SQLITE`'s final `SELECT`.
pub(super) fn family_from_sqlite_row(
    row: &sqlx::sqlite::SqliteRow,
) -> Result<RefreshFamily, StoreError> {
    <FamilyRow as sqlx::FromRow<_>>::from_row(row)
        .map_err(backend)
        .and_then(RefreshFamily::try_from)
}

grant_store!(PgStore);
grant_store!(SqliteStore);
