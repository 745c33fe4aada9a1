//! `PasswordResetStore` for both backends: the account a forgot-password request names,
//! and the one transaction that completes a reset.

use async_trait::async_trait;

use super::mail::{insert_mail, INSERT_MAIL};
use super::users::{UserRow, COLUMNS};
use super::{backend, write_error};
use crate::domain::{CredentialsEpoch, Email, TokenPurpose, User};
use crate::store::{PasswordReset, PasswordResetStore, PgStore, SqliteStore, StoreError};

/// Spends an unspent, unexpired reset token. `$1` now, `$2` hash, `$3` purpose.
const SPEND_TOKEN: &str = "UPDATE account_tokens SET used_at = $1 WHERE token_hash = $2 \
     AND purpose = $3 AND used_at IS NULL AND expires_at > $1 \
     RETURNING user_id, credentials_epoch";

/// The new hash, only under the epoch the token was issued with, only for an enabled user:
/// a password change (or a disabling) since the link was mailed voids it, even within the
/// same second. `$1` hash, `$2` now, `$3` user, `$4` the token's epoch.
const SET_HASH: &str = "UPDATE users SET password_hash = $1, updated_at = $2, \
     credentials_changed_at = $2, credentials_epoch = credentials_epoch + 1 \
     WHERE id = $3 AND credentials_epoch = $4 AND disabled = FALSE \
     RETURNING credentials_epoch";

macro_rules! reset_store {
    ($store:ty) => {
        #[async_trait]
        impl PasswordResetStore for $store {
            async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM users WHERE LOWER(email) = LOWER($1)"
                ));
                let row: Option<UserRow> = sqlx::query_as(sql)
                    .bind(email.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?;
                row.map(User::try_from).transpose()
            }

            async fn reset_password(
                &self,
                reset: &PasswordReset<'_>,
            ) -> Result<Option<(String, CredentialsEpoch)>, StoreError> {
                let mut tx = self.begin().await?;
                let spent: Option<(String, i64)> = sqlx::query_as(SPEND_TOKEN)
                    .bind(reset.now)
                    .bind(reset.token_hash)
                    .bind(TokenPurpose::PasswordReset.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend)?;
                let Some((user_id, epoch)) = spent else {
                    return Ok(None);
                };
                let new_epoch: Option<i64> = sqlx::query_scalar(SET_HASH)
                    .bind(reset.password_hash)
                    .bind(reset.now)
                    .bind(&user_id)
                    .bind(epoch)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend)?;
                // Dropping the transaction rolls the spent token back: nothing changed.
                let Some(new_epoch) = new_epoch else {
                    return Ok(None);
                };
                insert_mail!(tx, reset.notice)?;
                tx.commit().await.map_err(backend)?;
                Ok(Some((user_id, new_epoch)))
            }
        }
    };
}

reset_store!(PgStore);
reset_store!(SqliteStore);
