//! `EnrolmentStore` for both backends: accounts created with their first link, and the
//! confirmation of addresses. A link is spent and its change applied in one transaction;
//! if the change no longer applies (the user was disabled, changed their password, or the
//! address went to someone else) the transaction rolls back and the link stays unspent.

use async_trait::async_trait;

use super::mail::{insert_mail, insert_token, INSERT_MAIL, INSERT_TOKEN};
use super::users::{UserRow, COLUMNS};
use super::{backend, write_error};
use crate::clock::UnixTime;
use crate::domain::{AccountToken, OutboxMail, TokenPurpose, User};
use crate::store::{EnrolmentStore, PgStore, SqliteStore, StoreError};

/// Spends a token of purpose `$3` (single use, unexpired at `$1`): the user, address and
/// epoch it was issued for.
const SPEND: &str = "UPDATE account_tokens SET used_at = $1 WHERE token_hash = $2 \
     AND purpose = $3 AND used_at IS NULL AND expires_at > $1 \
     RETURNING user_id, email, credentials_epoch";

/// The first password; `$2` the invited address (verified if it is still the user's).
const SET_FIRST_PASSWORD: &str = "UPDATE users SET password_hash = $1, \
     email_verified = CASE WHEN LOWER(email) = LOWER($2) THEN TRUE ELSE email_verified END, \
     updated_at = $3, credentials_changed_at = $3, credentials_epoch = credentials_epoch + 1 \
     WHERE id = $4 AND credentials_epoch = $5 AND disabled = FALSE AND password_hash IS NULL";

const VERIFY_ADDRESS: &str = "UPDATE users SET email_verified = TRUE, updated_at = $1 \
     WHERE id = $2 AND disabled = FALSE AND LOWER(email) = LOWER($3)";

const CHANGE_ADDRESS: &str = "UPDATE users SET email = $1, email_verified = TRUE, updated_at = $2 \
     WHERE id = $3 AND disabled = FALSE AND credentials_epoch = $4";

const INSERT_USER: &str = "INSERT INTO users (id, username, email, email_verified, \
     password_hash, disabled, roles, created_at, updated_at, credentials_changed_at, \
     credentials_epoch) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// What a spent token was issued for: user id, address, credentials epoch.
type Spent = (String, Option<String>, i64);

macro_rules! enrolment_store {
    ($store:ty) => {
        #[async_trait]
        impl EnrolmentStore for $store {
            async fn find_user_by_address(&self, email: &str) -> Result<Option<User>, StoreError> {
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM users WHERE LOWER(email) = LOWER($1)"
                ));
                let row: Option<UserRow> = sqlx::query_as(sql)
                    .bind(email)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?;
                row.map(User::try_from).transpose()
            }

            async fn insert_user_with_token(
                &self,
                u: &User,
                token: &AccountToken,
                mail: &OutboxMail,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin().await?;
                sqlx::query(INSERT_USER)
                    .bind(u.id.as_str())
                    .bind(u.username.as_str())
                    .bind(u.email.as_str())
                    .bind(u.email_verified)
                    .bind(u.password_hash.as_deref())
                    .bind(u.disabled)
                    .bind(super::to_json_list(u.roles.iter().map(|r| r.as_str())))
                    .bind(u.created_at)
                    .bind(u.updated_at)
                    .bind(u.credentials_changed_at)
                    .bind(u.credentials_epoch)
                    .execute(&mut *tx)
                    .await
                    .map_err(write_error("a user with this username or e-mail"))?;
                insert_token!(tx, token)?;
                insert_mail!(tx, mail)?;
                tx.commit().await.map_err(backend)
            }

            async fn accept_invitation(
                &self,
                token_hash: &[u8],
                password_hash: &str,
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                let mut tx = self.begin().await?;
                let spent: Option<Spent> = sqlx::query_as(SPEND)
                    .bind(now)
                    .bind(token_hash)
                    .bind(TokenPurpose::Invitation.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend)?;
                let Some((user_id, email, epoch)) = spent else {
                    return Ok(false);
                };
                let done = sqlx::query(SET_FIRST_PASSWORD)
                    .bind(password_hash)
                    .bind(email)
                    .bind(now)
                    .bind(&user_id)
                    .bind(epoch)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                if done.rows_affected() == 0 {
                    // Dropping the transaction rolls the spent token back.
                    return Ok(false);
                }
                tx.commit().await.map_err(backend)?;
                Ok(true)
            }

            async fn confirm_address(
                &self,
                token_hash: &[u8],
                purpose: TokenPurpose,
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                if !matches!(
                    purpose,
                    TokenPurpose::VerifyEmail | TokenPurpose::ChangeEmail
                ) {
                    return Ok(false);
                }
                let mut tx = self.begin().await?;
                let spent: Option<Spent> = sqlx::query_as(SPEND)
                    .bind(now)
                    .bind(token_hash)
                    .bind(purpose.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend)?;
                let Some((user_id, Some(email), epoch)) = spent else {
                    return Ok(false);
                };
                let done = if purpose == TokenPurpose::VerifyEmail {
                    sqlx::query(VERIFY_ADDRESS)
                        .bind(now)
                        .bind(&user_id)
                        .bind(&email)
                        .execute(&mut *tx)
                        .await
                        .map_err(backend)?
                } else {
                    // The unique index decides whether the address is still free.
                    sqlx::query(CHANGE_ADDRESS)
                        .bind(&email)
                        .bind(now)
                        .bind(&user_id)
                        .bind(epoch)
                        .execute(&mut *tx)
                        .await
                        .map_err(write_error("a user with this e-mail address"))?
                };
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                tx.commit().await.map_err(backend)?;
                Ok(true)
            }
        }
    };
}

enrolment_store!(PgStore);
enrolment_store!(SqliteStore);
