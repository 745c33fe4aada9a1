//! `ClientStore` for both backends.

use async_trait::async_trait;

use super::{backend, corrupt, from_json_list, to_json_list, write_error};
use crate::domain::{Client, ClientId, ClientKind, GrantType, RedirectUri, ResourceUri, Scope};
use crate::store::{ClientStore, PgStore, SqliteStore, StoreError};

#[derive(sqlx::FromRow)]
struct ClientRow {
    id: String,
    name: String,
    kind: String,
    secret_hash: Option<Vec<u8>>,
    redirect_uris: String,
    post_logout_redirect_uris: String,
    grant_types: String,
    scope: String,
    resources: String,
    access_token_ttl: Option<i64>,
    first_party: bool,
    require_mfa: bool,
    end_offline_on_logout: bool,
    introspect_any: bool,
    tokens_revoked_at: i64,
    refresh_grace_secs: i64,
    created_at: i64,
}

impl TryFrom<ClientRow> for Client {
    type Error = StoreError;

    fn try_from(r: ClientRow) -> Result<Self, StoreError> {
        let uris = |col: &'static str, v: &str| -> Result<Vec<RedirectUri>, StoreError> {
            from_json_list(col, v)?
                .iter()
                .map(|u| RedirectUri::parse(col, u).map_err(corrupt))
                .collect()
        };
        Ok(Client {
            id: ClientId::parse(&r.id).map_err(corrupt)?,
            name: r.name,
            kind: ClientKind::parse(&r.kind).map_err(corrupt)?,
            secret_hash: r.secret_hash,
            redirect_uris: uris("redirect_uris", &r.redirect_uris)?,
            post_logout_redirect_uris: uris(
                "post_logout_redirect_uris",
                &r.post_logout_redirect_uris,
            )?,
            grant_types: r
                .grant_types
                .split_whitespace()
                .map(|g| GrantType::parse(g).map_err(corrupt))
                .collect::<Result<_, _>>()?,
            scope: Scope::parse(&r.scope).map_err(corrupt)?,
            resources: from_json_list("resources", &r.resources)?
                .iter()
                .map(|u| ResourceUri::parse(u).map_err(corrupt))
                .collect::<Result<_, _>>()?,
            access_token_ttl: r.access_token_ttl,
            first_party: r.first_party,
            require_mfa: r.require_mfa,
            end_offline_on_logout: r.end_offline_on_logout,
            introspect_any: r.introspect_any,
            tokens_revoked_at: r.tokens_revoked_at,
            refresh_grace_secs: r.refresh_grace_secs,
            created_at: r.created_at,
        })
    }
}

const COLUMNS: &str = "id, name, kind, secret_hash, redirect_uris, post_logout_redirect_uris, \
     grant_types, scope, resources, access_token_ttl, first_party, require_mfa, \
     end_offline_on_logout, introspect_any, tokens_revoked_at, refresh_grace_secs, created_at";

const INSERT: &str = "INSERT INTO clients (id, name, kind, secret_hash, redirect_uris, \
     post_logout_redirect_uris, grant_types, scope, resources, access_token_ttl, first_party, \
     require_mfa, end_offline_on_logout, introspect_any, tokens_revoked_at, created_at, \
     refresh_grace_secs) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)";

fn grant_list(c: &Client) -> String {
    c.grant_types
        .iter()
        .map(|g| g.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every client mutation bumps the `clients` generation in its own transaction, so nodes
/// that cache clients drop their copies (see `service::clients`).
macro_rules! bump_generation {
    ($conn:expr) => {
        sqlx::query("UPDATE generations SET value = value + 1 WHERE name = 'clients'")
            .execute($conn)
            .await
            .map_err(backend)?
    };
}

macro_rules! client_store {
    ($store:ty) => {
        #[async_trait]
        impl ClientStore for $store {
            async fn insert_client(&self, c: &Client) -> Result<(), StoreError> {
                let mut tx = self.begin().await?;
                sqlx::query(INSERT)
                    .bind(c.id.as_str())
                    .bind(&c.name)
                    .bind(c.kind.as_str())
                    .bind(c.secret_hash.as_deref())
                    .bind(to_json_list(c.redirect_uris.iter().map(|u| u.as_str())))
                    .bind(to_json_list(
                        c.post_logout_redirect_uris.iter().map(|u| u.as_str()),
                    ))
                    .bind(grant_list(c))
                    .bind(c.scope.to_string())
                    .bind(to_json_list(c.resources.iter().map(|u| u.as_str())))
                    .bind(c.access_token_ttl)
                    .bind(c.first_party)
                    .bind(c.require_mfa)
                    .bind(c.end_offline_on_logout)
                    .bind(c.introspect_any)
                    .bind(c.tokens_revoked_at)
                    .bind(c.created_at)
                    .bind(c.refresh_grace_secs)
                    .execute(&mut *tx)
                    .await
                    .map_err(write_error("client"))?;
                bump_generation!(&mut *tx);
                tx.commit().await.map_err(backend)
            }

            async fn get_client(&self, id: &ClientId) -> Result<Option<Client>, StoreError> {
                let sql =
                    sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM clients WHERE id = $1"));
                let row: Option<ClientRow> = sqlx::query_as(sql)
                    .bind(id.as_str())
                    .fetch_optional(&self.reader)
                    .await
                    .map_err(backend)?;
                row.map(Client::try_from).transpose()
            }

            async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM clients ORDER BY created_at, id"
                ));
                let rows: Vec<ClientRow> = sqlx::query_as(sql)
                    .fetch_all(&self.reader)
                    .await
                    .map_err(backend)?;
                rows.into_iter().map(Client::try_from).collect()
            }

            async fn delete_client(&self, id: &ClientId) -> Result<bool, StoreError> {
                let mut tx = self.begin().await?;
                let done = sqlx::query("DELETE FROM clients WHERE id = $1")
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                bump_generation!(&mut *tx);
                tx.commit().await.map_err(backend)?;
                Ok(done.rows_affected() > 0)
            }

            async fn clients_generation(&self) -> Result<i64, StoreError> {
                sqlx::query_scalar("SELECT value FROM generations WHERE name = 'clients'")
                    .fetch_one(&self.reader)
                    .await
                    .map_err(backend)
            }

            async fn set_client_secret(
                &self,
                id: &ClientId,
                hash: &[u8],
                revoke_tokens_at: Option<i64>,
            ) -> Result<bool, StoreError> {
                let mut tx = self.begin().await?;
                let done = sqlx::query(
                    "UPDATE clients SET secret_hash = $1, \
                     tokens_revoked_at = COALESCE($3, tokens_revoked_at) \
                     WHERE id = $2 AND kind = 'confidential'",
                )
                .bind(hash)
                .bind(id.as_str())
                .bind(revoke_tokens_at)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
                if let Some(at) = revoke_tokens_at.filter(|_| done.rows_affected() > 0) {
                    // The refresh families too: their tokens were issued before `at`.
                    sqlx::query(
                        "UPDATE grants SET revoked_at = $1 WHERE client_id = $2 \
                         AND revoked_at IS NULL",
                    )
                    .bind(at)
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                }
                bump_generation!(&mut *tx);
                tx.commit().await.map_err(backend)?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}

client_store!(PgStore);
client_store!(SqliteStore);
