//! Contract suite for the one-call rotation (`spend_refresh_token`, RFC 9700 §4.14.2): it
//! spends under every condition the two-step rotation checks, returns the family, and
//! stores the successor with the spent token's scope and the grant's expiry. Both stores.

use std::sync::Arc;

use latchkey::domain::{ClientId, Scope, Username};
use latchkey::store::{RefreshSpend, Store, StoreError};

use crate::helpers::{fresh_database_url, Backend};
use crate::store_flows::{code, grant, refresh, seed, seeded};
use crate::store_rotation::assert_unchanged;

crate::both_stores!(
    a_spend_returns_the_family_and_stores_the_successor,
    a_spend_refuses_a_spent_unknown_expired_or_foreign_token,
    a_spend_refuses_a_dead_family_or_user,
    a_grant_bound_to_a_resource_is_left_to_the_full_path,
    racing_spends_spend_once,
    a_family_that_no_longer_parses_is_left_unspent,
);

/// A store with user alice, client `web`, grant g1 (created and used at 110, expiring at
/// 10,000, bound to `resource`) and its refresh token rt1 (expiring at 9,000).
async fn with_family(
    backend: Backend,
    resource: Option<&str>,
) -> (Arc<dyn Store>, tempfile::TempDir) {
    let (store, dir, user, client) = seeded(backend).await;
    store
        .insert_code(&code(&user, &client, b"c", "g1"))
        .await
        .unwrap();
    let mut g = grant(&user, &client, "g1", "s1", "openid profile offline_access");
    g.resource = resource.map(str::to_owned);
    let mut rt1 = refresh(&client, b"rt1", "g1");
    rt1.scope = Scope::parse("openid offline_access").unwrap();
    rt1.expires_at = 9_000;
    assert!(store.redeem_code(b"c", &g, Some(&rt1), 110).await.unwrap());
    (store, dir)
}

fn web() -> ClientId {
    ClientId::parse("web").unwrap()
}

/// A spend of `presented` by `client` to `successor` at `now`, with bounds no family here
/// is near.
fn spend<'a>(
    presented: &'a [u8],
    client: &'a ClientId,
    successor: &'a [u8],
    now: i64,
) -> RefreshSpend<'a> {
    RefreshSpend {
        presented_hash: presented,
        client_id: client,
        successor_hash: successor,
        successor_sealed: None,
        now,
        created_after: 0,
        used_after: 0,
    }
}

/// `spend` spends nothing and changes nothing: rt1 unspent, the successor absent, the grant
/// untouched.
async fn refused(store: &dyn Store, spend: &RefreshSpend<'_>) {
    assert!(store.spend_refresh_token(spend).await.unwrap().is_none());
    assert_unchanged(store, spend.successor_hash).await;
}

async fn a_spend_returns_the_family_and_stores_the_successor(backend: Backend) {
    let (store, _dir) = with_family(backend, None).await;
    let client = web();
    let sealed = b"sealed successor".to_vec();
    let with_seal = RefreshSpend {
        successor_sealed: Some(&sealed),
        ..spend(b"rt1", &client, b"rt2", 200)
    };
    let family = store
        .spend_refresh_token(&with_seal)
        .await
        .unwrap()
        .expect("an unspent token of a live family is spent");
    // The family as the full path would have read it, after the spend.
    let read = store.get_refresh_family(b"rt1").await.unwrap().unwrap();
    assert_eq!(family.token, read.token);
    assert_eq!(family.grant, read.grant);
    assert_eq!(family.user, read.user);
    assert_eq!(family.token.spent_at, Some(200));
    assert_eq!(family.grant.last_used_at, 200, "the grant is touched");
    assert_eq!(family.grant.id, "g1");
    assert_eq!(family.user.username, Username::parse("alice").unwrap());
    // The successor: same grant, client and the token's (narrower) scope; the grant's expiry.
    let rt2 = store.get_refresh_token(b"rt2").await.unwrap().unwrap();
    assert_eq!(rt2.grant_id, "g1");
    assert_eq!(rt2.client_id, client);
    assert_eq!(rt2.scope, Scope::parse("openid offline_access").unwrap());
    assert_eq!(
        (rt2.created_at, rt2.expires_at, rt2.spent_at),
        (200, 10_000, None)
    );
    assert_eq!(
        store.sealed_successor(b"rt1").await.unwrap(),
        Some(sealed),
        "the sealed successor is kept on the spent row"
    );
    // The spent token cannot be spent again; the successor can.
    assert!(store
        .spend_refresh_token(&spend(b"rt1", &client, b"rt3", 201))
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.get_refresh_token(b"rt3").await.unwrap(), None);
    let next = store
        .spend_refresh_token(&spend(b"rt2", &client, b"rt3", 202))
        .await
        .unwrap()
        .expect("the successor is usable");
    assert_eq!(next.token.token_hash, b"rt2");
    assert!(store.get_refresh_token(b"rt3").await.unwrap().is_some());
}

async fn a_spend_refuses_a_spent_unknown_expired_or_foreign_token(backend: Backend) {
    let (store, _dir) = with_family(backend, None).await;
    let client = web();
    // rt1 expires at 9,000.
    refused(store.as_ref(), &spend(b"rt1", &client, b"rt2", 9_000)).await;
    let other = ClientId::parse("other").unwrap();
    refused(store.as_ref(), &spend(b"rt1", &other, b"rt2", 200)).await;
    refused(store.as_ref(), &spend(b"nope", &client, b"rt2", 200)).await;
}

async fn a_spend_refuses_a_dead_family_or_user(backend: Backend) {
    let alice = Username::parse("alice").unwrap();
    let client = web();
    // Idle and too old: the grant was created and last used at 110.
    let (store, _dir) = with_family(backend, None).await;
    let idle = RefreshSpend {
        used_after: 110,
        ..spend(b"rt1", &client, b"rt2", 200)
    };
    refused(store.as_ref(), &idle).await;
    let too_old = RefreshSpend {
        created_after: 110,
        ..spend(b"rt1", &client, b"rt2", 200)
    };
    refused(store.as_ref(), &too_old).await;
    // Revoked.
    assert!(store.revoke_grant("g1", 150).await.unwrap());
    refused(store.as_ref(), &spend(b"rt1", &client, b"rt2", 200)).await;
    // A disabled user; enabled again, the moved credentials epoch keeps the grant dead.
    let (store, _dir) = with_family(backend, None).await;
    assert!(store.set_user_disabled(&alice, true, 150).await.unwrap());
    refused(store.as_ref(), &spend(b"rt1", &client, b"rt2", 200)).await;
    assert!(store.set_user_disabled(&alice, false, 160).await.unwrap());
    refused(store.as_ref(), &spend(b"rt1", &client, b"rt2", 200)).await;
    // A password change.
    let (store, _dir) = with_family(backend, None).await;
    store
        .set_password_hash(&alice, "$argon2id$x", 150)
        .await
        .unwrap();
    refused(store.as_ref(), &spend(b"rt1", &client, b"rt2", 200)).await;
}

/// The audience of a resource-bound grant depends on the client's registration, which the
/// full path checks before it spends (RFC 8707 §2.2); the one-call spend leaves it alone.
async fn a_grant_bound_to_a_resource_is_left_to_the_full_path(backend: Backend) {
    let (store, _dir) = with_family(backend, Some("https://api.example/")).await;
    let client = web();
    refused(store.as_ref(), &spend(b"rt1", &client, b"rt2", 200)).await;
}

async fn racing_spends_spend_once(backend: Backend) {
    let (store, _dir) = with_family(backend, None).await;
    let tasks: Vec<_> = (0..32u8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let client = web();
                let successor = [b's', i];
                store
                    .spend_refresh_token(&spend(b"rt1", &client, &successor, 200))
                    .await
                    .unwrap()
                    .is_some()
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1, "exactly one racing spend wins");
    let mut successors = 0;
    for i in 0..32u8 {
        successors += usize::from(store.get_refresh_token(&[b's', i]).await.unwrap().is_some());
    }
    assert_eq!(successors, 1, "exactly one successor is stored");
}

/// Runs `sql` with `hash` as `$1` on the database at `url`, outside the store; the first
/// column of the first row, if any.
async fn raw(backend: Backend, url: &str, sql: &'static str, hash: &[u8]) -> Option<i64> {
    use sqlx::Connection;
    match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::query_scalar(sql)
                .bind(hash)
                .fetch_optional(&mut c)
                .await
                .unwrap()
                .flatten()
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query_scalar(sql)
                .bind(hash)
                .fetch_optional(&mut c)
                .await
                .unwrap()
                .flatten()
        }
    }
}

/// A stored value that no longer parses (a scope written before a stricter rule) makes
/// the spend fail as corrupt, and leaves the token unspent and no successor, as the full
/// path does (it reads, fails and spends nothing); otherwise a retry after the repair
/// would be taken for a reuse and revoke the family.
async fn a_family_that_no_longer_parses_is_left_unspent(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(backend, dir.path()).await;
    let store = latchkey::store::connect(&url, 8).await.unwrap();
    let (user, client) = seed(store.as_ref()).await;
    store
        .insert_code(&code(&user, &client, b"c", "g1"))
        .await
        .unwrap();
    let g = grant(&user, &client, "g1", "s1", "openid offline_access");
    let rt1 = refresh(&client, b"rt1", "g1");
    assert!(store.redeem_code(b"c", &g, Some(&rt1), 110).await.unwrap());
    raw(
        backend,
        &url,
        "UPDATE refresh_tokens SET scope = 'openid \"x' WHERE token_hash = $1 RETURNING CAST(1 AS BIGINT)",
        b"rt1",
    )
    .await
    .expect("the scope is overwritten");
    let e = store
        .spend_refresh_token(&spend(b"rt1", &web(), b"rt2", 200))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Corrupt(_)), "{e}");
    let spent_at = "SELECT spent_at FROM refresh_tokens WHERE token_hash = $1";
    assert_eq!(
        raw(backend, &url, spent_at, b"rt1").await,
        None,
        "rt1 unspent"
    );
    let count = "SELECT COUNT(*) FROM refresh_tokens WHERE token_hash = $1";
    assert_eq!(
        raw(backend, &url, count, b"rt2").await,
        Some(0),
        "no successor"
    );
}
