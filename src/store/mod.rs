//! Storage behind small role traits, with a PostgreSQL and a SQLite implementation.
//! Services see only these traits; `connect` picks the backend from the URL.

use std::sync::Arc;

use async_trait::async_trait;

use crate::clock::UnixTime;
use crate::domain::{Client, ClientId, KeyState, SigningKeyRecord, User, Username};

mod postgres;
mod sql;
mod sqlite;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// A storage failure. `Conflict` and `NotFound` are expected outcomes; `Backend` is not.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was violated (the name is taken, the key already exists, ...).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A stored row no longer parses into its domain type.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error("database error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Registered clients.
#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Registers a client; `Conflict` if the id exists.
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError>;
    /// Looks a client up by id.
    async fn get_client(&self, id: &ClientId) -> Result<Option<Client>, StoreError>;
    /// All clients, oldest first.
    async fn list_clients(&self) -> Result<Vec<Client>, StoreError>;
    /// Deletes a client; false if there was none.
    async fn delete_client(&self, id: &ClientId) -> Result<bool, StoreError>;
    /// Replaces a confidential client's secret hash; false if there was no such client.
    async fn set_client_secret(&self, id: &ClientId, hash: &[u8]) -> Result<bool, StoreError>;
}

/// User accounts.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates a user; `Conflict` if the username or e-mail is taken.
    async fn insert_user(&self, user: &User) -> Result<(), StoreError>;
    /// Looks a user up by login name.
    async fn get_user_by_username(&self, name: &Username) -> Result<Option<User>, StoreError>;
    /// Looks a user up by id (the `sub`).
    async fn get_user(&self, id: &str) -> Result<Option<User>, StoreError>;
    /// All users, by username.
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;
    /// Enables or disables a user; false if there was none.
    async fn set_user_disabled(
        &self,
        name: &Username,
        disabled: bool,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Replaces a user's password hash; false if there was none.
    async fn set_password_hash(
        &self,
        name: &Username,
        hash: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
}

/// What a key rotation changes, applied in one transaction.
#[derive(Debug)]
pub struct Rotation<'a> {
    /// The `next` key to promote; the rotation fails with `Conflict` if it is no longer next.
    pub promote_kid: &'a str,
    /// The new `next` key.
    pub new_next: &'a SigningKeyRecord,
    /// When the rotation happens.
    pub now: UnixTime,
    /// When the demoted `current` key may leave the JWKS.
    pub previous_retires_at: UnixTime,
}

/// Signing keys.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Every key not yet retired, in creation order.
    async fn list_published_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;
    /// Every key, retired ones included.
    async fn list_all_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;
    /// Stores the first `current` and `next` keys if there is no current key yet.
    /// Returns false (and stores nothing) when another node got there first.
    async fn insert_initial_keys(
        &self,
        current: &SigningKeyRecord,
        next: &SigningKeyRecord,
    ) -> Result<bool, StoreError>;
    /// next -> current, current -> previous, new next; atomically.
    async fn rotate_keys(&self, rotation: &Rotation<'_>) -> Result<(), StoreError>;
    /// Moves a key to `retired` and erases its private key; false if it was not in `from`.
    async fn retire_key(&self, kid: &str, from: KeyState) -> Result<bool, StoreError>;
}

/// Everything the services need from storage.
#[async_trait]
pub trait Store: ClientStore + UserStore + KeyStore {
    /// `postgres` or `sqlite`.
    fn backend(&self) -> &'static str;
    /// Round-trips to the database (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Connects to the database named by `url` and applies pending migrations.
pub async fn connect(url: &str, max_connections: u32) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url, max_connections).await?))
    } else {
        Ok(Arc::new(PgStore::connect(url, max_connections).await?))
    }
}
