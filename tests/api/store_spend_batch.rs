//! Spends that run together: SQLite runs the refresh spends that wait for its one writer as
//! one transaction (`store::sql::refresh_batch`). Each spend must get its own answer, as if
//! it had run alone after the ones before it, and one spend's failure must stay its own.
//! On SQLite the tests hold the write lock from a connection of their own while the spends
//! queue, so that they do run as a batch; PostgreSQL runs the same spends one statement
//! each, and must give the same answers.

use std::sync::Arc;
use std::time::Duration;

use latchkey::domain::{ClientId, Scope};
use latchkey::store::{RefreshFamily, RefreshSpend, SqliteStore, Store, StoreError};
use sqlx::Connection;

use crate::helpers::Backend;
use crate::store_code_batch::{counted_store, while_locked};
use crate::store_flows::{code, grant, refresh};

crate::both_stores!(
    queued_spends_each_get_their_own_answer,
    a_failing_spend_among_queued_ones_fails_alone,
);

/// A spend whose family no longer parses is undone (`store_spend::
/// a_family_that_no_longer_parses_is_left_unspent`), also when its caller stopped waiting
/// before the queued spend ran: then no caller reads the row, and the store's thread must.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_family_is_left_unspent_when_its_caller_gave_up() {
    let (store, _, dir) = with_families(Backend::Sqlite, 2).await;
    let url = format!("sqlite://{}", dir.path().join("latchkey.db").display());
    let mut side = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("UPDATE refresh_tokens SET scope = 'openid \"x' WHERE token_hash = $1")
        .bind(&b"rt0"[..])
        .execute(&mut side)
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut side)
        .await
        .unwrap();
    let web = ClientId::parse("web").unwrap();
    let gave_up = tokio::time::timeout(
        Duration::from_millis(100),
        store.spend_refresh_token(&spend(b"rt0", &web, b"n0")),
    )
    .await;
    assert!(gave_up.is_err(), "the spend waits for the write lock");
    sqlx::raw_sql("COMMIT").execute(&mut side).await.unwrap();
    // Spends run in order on one task, so once this one is answered the one before it,
    // and its undo, are done.
    let next = store
        .spend_refresh_token(&spend(b"rt1", &web, b"n1"))
        .await
        .unwrap();
    assert!(next.is_some());
    let spent_at: Option<i64> =
        sqlx::query_scalar("SELECT spent_at FROM refresh_tokens WHERE token_hash = $1")
            .bind(&b"rt0"[..])
            .fetch_one(&mut side)
            .await
            .unwrap();
    assert_eq!(spent_at, None, "rt0 unspent");
    let successors: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM refresh_tokens WHERE token_hash = $1")
            .bind(&b"n0"[..])
            .fetch_one(&mut side)
            .await
            .unwrap();
    assert_eq!(successors, 0, "no successor");
}

/// A store with user alice, client `web` and families g0..g{n-1}, each with its unspent
/// refresh token `rt{i}`; on SQLite also the store as itself, which counts its batches.
async fn with_families(
    backend: Backend,
    n: usize,
) -> (Arc<dyn Store>, Option<Arc<SqliteStore>>, tempfile::TempDir) {
    let (store, sqlite, dir, user, client) = counted_store(backend).await;
    for i in 0..n {
        let (c, g, rt) = (format!("c{i}"), format!("g{i}"), format!("rt{i}"));
        store
            .insert_code(&code(&user, &client, c.as_bytes(), &g))
            .await
            .unwrap();
        let family = grant(&user, &client, &g, "s1", "openid offline_access");
        let token = refresh(&client, rt.as_bytes(), &g);
        assert!(store
            .redeem_code(c.as_bytes(), &family, Some(&token), 110)
            .await
            .unwrap());
    }
    (store, sqlite, dir)
}

fn spend<'a>(presented: &'a [u8], client: &'a ClientId, successor: &'a [u8]) -> RefreshSpend<'a> {
    RefreshSpend {
        presented_hash: presented,
        client_id: client,
        successor_hash: successor,
        successor_sealed: None,
        now: 200,
        created_after: 0,
        used_after: 0,
    }
}

/// Runs `spends` as the store's writer allows (`store_code_batch::while_locked`: on
/// SQLite the first alone, the rest together). Answers in order.
async fn queued(
    backend: Backend,
    dir: &tempfile::TempDir,
    store: &Arc<dyn Store>,
    spends: &[RefreshSpend<'_>],
) -> Vec<Result<Option<RefreshFamily>, StoreError>> {
    let first = {
        let store = store.clone();
        let (presented, client, successor) = (
            spends[0].presented_hash.to_vec(),
            spends[0].client_id.clone(),
            spends[0].successor_hash.to_vec(),
        );
        async move {
            store
                .spend_refresh_token(&spend(&presented, &client, &successor))
                .await
        }
    };
    let rest = spends[1..]
        .iter()
        .map(|s| store.spend_refresh_token(s))
        .collect();
    while_locked(backend, dir, first, rest).await
}

fn spent(answer: &Result<Option<RefreshFamily>, StoreError>) -> &RefreshFamily {
    answer
        .as_ref()
        .expect("no error")
        .as_ref()
        .expect("the token is spent")
}

async fn queued_spends_each_get_their_own_answer(backend: Backend) {
    let (store, sqlite, dir) = with_families(backend, 6).await;
    let web = ClientId::parse("web").unwrap();
    let other = ClientId::parse("other").unwrap();
    let spends = [
        spend(b"rt0", &web, b"n0"),
        spend(b"rt1", &web, b"n1"),
        // rt2 presented by a client it does not belong to, then by its own: the first
        // spends nothing, and the family goes to the second only.
        spend(b"rt2", &other, b"x2"),
        spend(b"rt2", &web, b"n2"),
        // rt3 twice by its own client: single use, one of them spends it (the first in a
        // batch; on PostgreSQL the two race).
        spend(b"rt3", &web, b"n3"),
        spend(b"rt3", &web, b"y3"),
        spend(b"unknown", &web, b"z"),
        spend(b"rt4", &web, b"n4"),
        spend(b"rt5", &web, b"n5"),
    ];
    let answers = queued(backend, &dir, &store, &spends).await;
    if let Some(sqlite) = sqlite {
        assert_eq!(
            sqlite.refresh_spends_batched(),
            8,
            "the eight spends that queued ran as one batch"
        );
    }
    let rt3_winner = if answers[4].as_ref().expect("no error").is_some() {
        4
    } else {
        5
    };
    for (i, (presented, grant_id)) in [
        (0, (b"rt0", "g0")),
        (1, (b"rt1", "g1")),
        (3, (b"rt2", "g2")),
        (rt3_winner, (b"rt3", "g3")),
        (7, (b"rt4", "g4")),
        (8, (b"rt5", "g5")),
    ] {
        let family = spent(&answers[i]);
        assert_eq!(family.token.token_hash, presented, "spend {i}");
        assert_eq!(family.grant.id, grant_id, "spend {i}");
        assert_eq!(family.token.spent_at, Some(200), "spend {i}");
        assert_eq!(family.grant.last_used_at, 200, "spend {i}");
        let successor = store
            .get_refresh_token(spends[i].successor_hash)
            .await
            .unwrap()
            .expect("the successor is stored");
        assert_eq!(successor.grant_id, grant_id, "spend {i}");
        assert_eq!(successor.client_id, web);
        assert_eq!(
            successor.scope,
            Scope::parse("openid offline_access").unwrap()
        );
    }
    for i in [2, 9 - rt3_winner, 6] {
        assert!(
            answers[i].as_ref().expect("no error").is_none(),
            "spend {i} spends nothing"
        );
        assert_eq!(
            store
                .get_refresh_token(spends[i].successor_hash)
                .await
                .unwrap(),
            None,
            "spend {i} stores no successor"
        );
    }
}

async fn a_failing_spend_among_queued_ones_fails_alone(backend: Backend) {
    let (store, sqlite, dir) = with_families(backend, 5).await;
    let web = ClientId::parse("web").unwrap();
    let spends = [
        spend(b"rt0", &web, b"n0"),
        spend(b"rt1", &web, b"n1"),
        // Its successor's hash is taken (rt3's): the insert breaks the primary key.
        spend(b"rt2", &web, b"rt3"),
        spend(b"rt3", &web, b"n3"),
        spend(b"rt4", &web, b"n4"),
    ];
    let answers = queued(backend, &dir, &store, &spends).await;
    if let Some(sqlite) = sqlite {
        assert_eq!(
            sqlite.refresh_spends_batched(),
            0,
            "the batch broke a constraint: every spend ran on its own"
        );
    }
    for i in [0, 1, 3, 4] {
        assert_eq!(
            spent(&answers[i]).token.token_hash,
            spends[i].presented_hash
        );
        assert!(store
            .get_refresh_token(spends[i].successor_hash)
            .await
            .unwrap()
            .is_some());
    }
    assert!(
        matches!(answers[2], Err(StoreError::Conflict(_))),
        "{:?}",
        answers[2].as_ref().err()
    );
    // Nothing of the failed spend stays: rt2 unspent, its grant untouched.
    let rt2 = store.get_refresh_token(b"rt2").await.unwrap().unwrap();
    assert_eq!(rt2.spent_at, None);
    let family = store.get_refresh_family(b"rt2").await.unwrap().unwrap();
    assert_eq!(family.grant.last_used_at, 110);
}
