//! `UserStore` for both backends.

use async_trait::async_trait;

use super::{backend, corrupt, from_json_list, to_json_list, write_error};
use crate::clock::UnixTime;
use crate::domain::{CredentialsEpoch, Email, Role, User, UserId, Username};
use crate::store::{PgStore, SqliteStore, StoreError, UserStore};

/// A `users` row as `COLUMNS` selects it; `passkeys.rs` looks users up by handle with it.
#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    pub(super) id: String,
    pub(super) username: String,
    pub(super) email: String,
    pub(super) email_verified: bool,
    pub(super) password_hash: Option<String>,
    pub(super) disabled: bool,
    pub(super) roles: String,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    pub(super) credentials_changed_at: i64,
    pub(super) credentials_epoch: i64,
    pub(super) must_enrol_factor: bool,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(r: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            id: UserId::from_stored(r.id),
            username: Username::parse(&r.username).map_err(corrupt)?,
            email: Email::parse(&r.email).map_err(corrupt)?,
            email_verified: r.email_verified,
            password_hash: r.password_hash,
            disabled: r.disabled,
            roles: from_json_list("roles", &r.roles)?
                .iter()
                .map(|x| Role::parse(x).map_err(corrupt))
                .collect::<Result<_, _>>()?,
            created_at: r.created_at,
            updated_at: r.updated_at,
            credentials_changed_at: r.credentials_changed_at,
            credentials_epoch: r.credentials_epoch,
            must_enrol_factor: r.must_enrol_factor,
        })
    }
}

/// A user joined to another table: `UserRow`'s columns with `u_` prefixes, as
/// `joined_user_columns!()` selects them from `users u`.
#[derive(sqlx::FromRow)]
pub(super) struct JoinedUserRow {
    u_id: String,
    u_username: String,
    u_email: String,
    u_email_verified: bool,
    u_password_hash: Option<String>,
    u_disabled: bool,
    u_roles: String,
    u_created_at: i64,
    u_updated_at: i64,
    u_credentials_changed_at: i64,
    u_credentials_epoch: i64,
    u_must_enrol_factor: bool,
}

impl TryFrom<JoinedUserRow> for User {
    type Error = StoreError;

    fn try_from(r: JoinedUserRow) -> Result<Self, StoreError> {
        User::try_from(UserRow {
            id: r.u_id,
            username: r.u_username,
            email: r.u_email,
            email_verified: r.u_email_verified,
            password_hash: r.u_password_hash,
            disabled: r.u_disabled,
            roles: r.u_roles,
            created_at: r.u_created_at,
            updated_at: r.u_updated_at,
            credentials_changed_at: r.u_credentials_changed_at,
            credentials_epoch: r.u_credentials_epoch,
            must_enrol_factor: r.u_must_enrol_factor,
        })
    }
}

/// The columns of `JoinedUserRow`, from `users u`.
macro_rules! joined_user_columns {
    () => {
        "u.id AS u_id, u.username AS u_username, u.email AS u_email, \
         u.email_verified AS u_email_verified, u.password_hash AS u_password_hash, \
         u.disabled AS u_disabled, u.roles AS u_roles, u.created_at AS u_created_at, \
         u.updated_at AS u_updated_at, u.credentials_changed_at AS u_credentials_changed_at, \
         u.credentials_epoch AS u_credentials_epoch, \
         u.must_enrol_factor AS u_must_enrol_factor"
    };
}
pub(super) use joined_user_columns;

/// The columns `UserRow` reads, in its order.
pub(super) const COLUMNS: &str =
    "id, username, email, email_verified, password_hash, disabled, roles, created_at, updated_at, \
     credentials_changed_at, credentials_epoch, must_enrol_factor";

macro_rules! user_store {
    ($store:ty) => {
        #[async_trait]
        impl UserStore for $store {
            async fn insert_user(&self, u: &User) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO users (id, username, email, email_verified, password_hash, \
                     disabled, roles, created_at, updated_at, credentials_changed_at, \
                     credentials_epoch, must_enrol_factor) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(u.id.as_str())
                .bind(u.username.as_str())
                .bind(u.email.as_str())
                .bind(u.email_verified)
                .bind(u.password_hash.as_deref())
                .bind(u.disabled)
                .bind(to_json_list(u.roles.iter().map(|r| r.as_str())))
                .bind(u.created_at)
                .bind(u.updated_at)
                .bind(u.credentials_changed_at)
                .bind(u.credentials_epoch)
                .bind(u.must_enrol_factor)
                .execute(&self.pool)
                .await
                .map_err(write_error("a user with this username or e-mail"))?;
                Ok(())
            }

            async fn get_user_by_username(
                &self,
                name: &Username,
            ) -> Result<Option<User>, StoreError> {
                self.user_where("username", name.as_str()).await
            }

            async fn get_user(&self, id: &str) -> Result<Option<User>, StoreError> {
                self.user_where("id", id).await
            }

            async fn list_users(&self) -> Result<Vec<User>, StoreError> {
                let sql =
                    sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM users ORDER BY username"));
                let rows: Vec<UserRow> = sqlx::query_as(sql)
                    .fetch_all(&self.reader)
                    .await
                    .map_err(backend)?;
                rows.into_iter().map(User::try_from).collect()
            }

            async fn set_user_disabled(
                &self,
                name: &Username,
                disabled: bool,
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE users SET disabled = $1, updated_at = $2, credentials_changed_at = \
                     CASE WHEN $1 THEN $2 ELSE credentials_changed_at END, credentials_epoch = \
                     credentials_epoch + CASE WHEN $1 THEN 1 ELSE 0 END WHERE username = $3",
                )
                .bind(disabled)
                .bind(now)
                .bind(name.as_str())
                .execute(&self.pool)
                .await
                .map_err(backend)?;
                Ok(done.rows_affected() > 0)
            }

            async fn set_password_hash(
                &self,
                name: &Username,
                hash: &str,
                now: UnixTime,
            ) -> Result<Option<CredentialsEpoch>, StoreError> {
                // One statement: whoever read the old hash read the old epoch too.
                sqlx::query_scalar(
                    "UPDATE users SET password_hash = $1, updated_at = $2, credentials_changed_at = $2, \
                     credentials_epoch = credentials_epoch + 1 WHERE username = $3 \
                     RETURNING credentials_epoch",
                )
                .bind(hash)
                .bind(now)
                .bind(name.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)
            }
        }

        impl $store {
            async fn user_where(
                &self,
                column: &'static str,
                value: &str,
            ) -> Result<Option<User>, StoreError> {
                // `column` is one of two literals above, never input.
                let sql =
                    sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM users WHERE {column} = $1"));
                let row: Option<UserRow> = sqlx::query_as(sql)
                    .bind(value)
                    .fetch_optional(&self.reader)
                    .await
                    .map_err(backend)?;
                row.map(User::try_from).transpose()
            }
        }
    };
}

user_store!(PgStore);
user_store!(SqliteStore);
