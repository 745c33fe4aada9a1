//! `MailStore` (the outbox) and `AccountTokenStore` (mailed links) for both backends.
//! Claiming differs: PostgreSQL skips rows another node holds locked (`FOR UPDATE SKIP
//! LOCKED`); SQLite has one writer at a time, so the same `UPDATE` without it is atomic.

use async_trait::async_trait;

use super::{backend, corrupt, write_error};
use crate::clock::UnixTime;
use crate::domain::{AccountToken, OutboxMail, TokenPurpose};
use crate::store::{AccountTokenStore, MailStore, PgStore, SqliteStore, StoreError};

#[derive(sqlx::FromRow)]
struct MailRow {
    id: String,
    kind: String,
    recipient: String,
    subject: String,
    body_sealed: Option<Vec<u8>>,
    created_at: i64,
    next_attempt_at: i64,
    attempts: i32,
    locked_until: Option<i64>,
    sent_at: Option<i64>,
    failed_at: Option<i64>,
    last_error: Option<String>,
}

impl From<MailRow> for OutboxMail {
    fn from(r: MailRow) -> Self {
        OutboxMail {
            id: r.id,
            kind: r.kind,
            recipient: r.recipient,
            subject: r.subject,
            body_sealed: r.body_sealed,
            created_at: r.created_at,
            next_attempt_at: r.next_attempt_at,
            attempts: u32::try_from(r.attempts).unwrap_or(0),
            locked_until: r.locked_until,
            sent_at: r.sent_at,
            failed_at: r.failed_at,
            last_error: r.last_error,
        }
    }
}

const MAIL_COLUMNS: &str = "id, kind, recipient, subject, body_sealed, created_at, \
     next_attempt_at, attempts, locked_until, sent_at, failed_at, last_error";

pub(super) const INSERT_MAIL: &str =
    "INSERT INTO mail_outbox (id, kind, recipient, subject, body_sealed, \
     created_at, next_attempt_at, attempts) VALUES ($1, $2, $3, $4, $5, $6, $7, 0)";

/// Due, undelivered, not leased; oldest first. `$1` lease end, `$2` now, `$3` batch.
const CLAIM_PG: &str = "UPDATE mail_outbox SET locked_until = $1, attempts = attempts + 1 \
     WHERE id IN (SELECT id FROM mail_outbox WHERE sent_at IS NULL AND failed_at IS NULL \
     AND next_attempt_at <= $2 AND (locked_until IS NULL OR locked_until <= $2) \
     ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
     RETURNING id, kind, recipient, subject, body_sealed, created_at, next_attempt_at, \
     attempts, locked_until, sent_at, failed_at, last_error";
const CLAIM_SQLITE: &str = "UPDATE mail_outbox SET locked_until = $1, attempts = attempts + 1 \
     WHERE id IN (SELECT id FROM mail_outbox WHERE sent_at IS NULL AND failed_at IS NULL \
     AND next_attempt_at <= $2 AND (locked_until IS NULL OR locked_until <= $2) \
     ORDER BY next_attempt_at LIMIT $3) \
     RETURNING id, kind, recipient, subject, body_sealed, created_at, next_attempt_at, \
     attempts, locked_until, sent_at, failed_at, last_error";

#[derive(sqlx::FromRow)]
struct TokenRow {
    token_hash: Vec<u8>,
    purpose: String,
    user_id: String,
    email: Option<String>,
    credentials_epoch: i64,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
}

impl TryFrom<TokenRow> for AccountToken {
    type Error = StoreError;
    fn try_from(r: TokenRow) -> Result<Self, StoreError> {
        Ok(AccountToken {
            token_hash: r.token_hash,
            purpose: TokenPurpose::parse(&r.purpose).map_err(corrupt)?,
            user_id: r.user_id,
            email: r.email,
            credentials_epoch: r.credentials_epoch,
            created_at: r.created_at,
            expires_at: r.expires_at,
            used_at: r.used_at,
        })
    }
}

const TOKEN_COLUMNS: &str =
    "token_hash, purpose, user_id, email, credentials_epoch, created_at, expires_at, used_at";

/// Writes one outbox row inside the caller's transaction (the state change that sends it).
macro_rules! insert_mail {
    ($tx:expr, $mail:expr) => {
        sqlx::query(INSERT_MAIL)
            .bind(&$mail.id)
            .bind(&$mail.kind)
            .bind(&$mail.recipient)
            .bind(&$mail.subject)
            .bind($mail.body_sealed.as_deref())
            .bind($mail.created_at)
            .bind($mail.next_attempt_at)
            .execute(&mut *$tx)
            .await
            .map_err(write_error("message"))
    };
}
// For the other aggregates' state changes that send mail in their own transaction.
#[allow(unused_imports)]
pub(crate) use insert_mail;

pub(super) const INSERT_TOKEN: &str = "INSERT INTO account_tokens (token_hash, purpose, \
     user_id, email, credentials_epoch, created_at, expires_at, used_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)";

/// Stores a mailed link's token inside the caller's transaction (the change that mails it).
macro_rules! insert_token {
    ($tx:expr, $token:expr) => {
        sqlx::query(INSERT_TOKEN)
            .bind($token.token_hash.as_slice())
            .bind($token.purpose.as_str())
            .bind(&$token.user_id)
            .bind($token.email.as_deref())
            .bind($token.credentials_epoch)
            .bind($token.created_at)
            .bind($token.expires_at)
            .execute(&mut *$tx)
            .await
            .map_err(write_error("token"))
    };
}
pub(crate) use insert_token;

macro_rules! mail_store {
    ($store:ty, $claim:expr) => {
        #[async_trait]
        impl MailStore for $store {
            async fn enqueue_mail(&self, mail: &OutboxMail) -> Result<(), StoreError> {
                let mut tx = self.begin().await?;
                insert_mail!(tx, mail)?;
                tx.commit().await.map_err(backend)
            }

            async fn claim_mail(
                &self,
                now: UnixTime,
                lease_until: UnixTime,
                batch: u32,
            ) -> Result<Vec<OutboxMail>, StoreError> {
                let rows: Vec<MailRow> = sqlx::query_as($claim)
                    .bind(lease_until)
                    .bind(now)
                    .bind(i64::from(batch))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(rows.into_iter().map(OutboxMail::from).collect())
            }

            async fn mark_mail_sent(&self, id: &str, now: UnixTime) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE mail_outbox SET sent_at = $1, body_sealed = NULL, \
                     locked_until = NULL, last_error = NULL WHERE id = $2",
                )
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
                Ok(())
            }

            async fn mark_mail_failed(
                &self,
                id: &str,
                error: &str,
                retry_at: Option<UnixTime>,
                now: UnixTime,
            ) -> Result<(), StoreError> {
                let q = match retry_at {
                    Some(at) => sqlx::query(
                        "UPDATE mail_outbox SET next_attempt_at = $1, locked_until = NULL, \
                         last_error = $2 WHERE id = $3",
                    )
                    .bind(at),
                    None => sqlx::query(
                        "UPDATE mail_outbox SET failed_at = $1, locked_until = NULL, \
                         last_error = $2, body_sealed = NULL WHERE id = $3",
                    )
                    .bind(now),
                };
                q.bind(error)
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(())
            }

            async fn list_mail(
                &self,
                failed_only: bool,
                limit: u32,
            ) -> Result<Vec<OutboxMail>, StoreError> {
                let sql = format!(
                    "SELECT {MAIL_COLUMNS} FROM mail_outbox \
                     WHERE ($1 = FALSE OR failed_at IS NOT NULL) \
                     ORDER BY created_at DESC, id LIMIT $2"
                );
                let rows: Vec<MailRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(failed_only)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(rows.into_iter().map(OutboxMail::from).collect())
            }
        }

        #[async_trait]
        impl AccountTokenStore for $store {
            async fn issue_account_token(
                &self,
                token: &AccountToken,
                mail: &OutboxMail,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin().await?;
                // Serialises issuers per user: on PostgreSQL this takes the user's row
                // lock (SQLite's BEGIN IMMEDIATE already serialises), so of two
                // concurrent requests the second voids the first's token instead of both
                // staying valid.
                sqlx::query("UPDATE users SET updated_at = updated_at WHERE id = $1")
                    .bind(&token.user_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                sqlx::query(
                    "UPDATE account_tokens SET used_at = $1 \
                     WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL",
                )
                .bind(token.created_at)
                .bind(&token.user_id)
                .bind(token.purpose.as_str())
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
                insert_token!(tx, token)?;
                insert_mail!(tx, mail)?;
                tx.commit().await.map_err(backend)
            }

            async fn get_account_token(
                &self,
                token_hash: &[u8],
            ) -> Result<Option<AccountToken>, StoreError> {
                let sql =
                    format!("SELECT {TOKEN_COLUMNS} FROM account_tokens WHERE token_hash = $1");
                let row: Option<TokenRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(token_hash)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?;
                row.map(AccountToken::try_from).transpose()
            }

            async fn use_account_token(
                &self,
                token_hash: &[u8],
                purpose: TokenPurpose,
                now: UnixTime,
            ) -> Result<Option<AccountToken>, StoreError> {
                let sql = format!(
                    "UPDATE account_tokens SET used_at = $1 WHERE token_hash = $2 \
                     AND purpose = $3 AND used_at IS NULL AND expires_at > $1 \
                     RETURNING {TOKEN_COLUMNS}"
                );
                let row: Option<TokenRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(now)
                    .bind(token_hash)
                    .bind(purpose.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?;
                row.map(AccountToken::try_from).transpose()
            }
        }
    };
}

mail_store!(PgStore, CLAIM_PG);
mail_store!(SqliteStore, CLAIM_SQLITE);
