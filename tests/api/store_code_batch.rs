//! Code-flow writes that run together: SQLite runs the code inserts, and the redemptions,
//! that wait for its one writer as one transaction per kind (`store::sql::code_batch`).
//! Each write must get its own answer, as if it had run alone after the ones before it: a
//! code is redeemed once however often it is presented in a batch (RFC 6749 §4.1.2), and
//! one write's failure stays its own. On SQLite the tests hold the write lock from a
//! connection of their own while the writes queue, so that they do run as a batch;
//! PostgreSQL runs the same writes one statement each, and must give the same answers.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use latchkey::domain::{Client, User};
use latchkey::store::{SqliteStore, Store, StoreError};
use sqlx::Connection;

use crate::helpers::{fresh_database_url, fresh_store, Backend};
use crate::store_flows::{code, grant, refresh, seed};

crate::both_stores!(
    queued_redemptions_each_get_their_own_answer,
    queued_redemptions_with_refresh_tokens,
    queued_code_inserts_each_get_their_own_answer,
    a_failing_code_insert_among_queued_ones_fails_alone,
);

/// A fresh store with user alice and client `web`; on SQLite also the store as itself,
/// which counts its batches.
pub(crate) async fn counted_store(
    backend: Backend,
) -> (
    Arc<dyn Store>,
    Option<Arc<SqliteStore>>,
    tempfile::TempDir,
    User,
    Client,
) {
    let (store, sqlite, dir) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = fresh_database_url(backend, dir.path()).await;
            let sqlite = Arc::new(SqliteStore::connect(&url, 8).await.unwrap());
            (sqlite.clone() as Arc<dyn Store>, Some(sqlite), dir)
        }
        Backend::Postgres => {
            let (store, dir) = fresh_store(backend).await;
            (store, None, dir)
        }
    };
    let (user, client) = seed(store.as_ref()).await;
    (store, sqlite, dir, user, client)
}

/// Runs `first`, then `rest` at once, as the store's writer allows: on SQLite, `first`
/// takes the writer and waits for the write lock, which a connection of the test's holds,
/// while the rest queue behind it and run together once the lock goes (a batch takes a
/// power of two of the writes that wait: give it 2, 4 or 8). Answers in order.
pub(crate) async fn while_locked<T: Send + 'static>(
    backend: Backend,
    dir: &tempfile::TempDir,
    first: impl Future<Output = T> + Send + 'static,
    rest: Vec<impl Future<Output = T>>,
) -> Vec<T> {
    let lock = match backend {
        Backend::Sqlite => {
            let url = format!("sqlite://{}", dir.path().join("latchkey.db").display());
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::raw_sql("BEGIN IMMEDIATE")
                .execute(&mut conn)
                .await
                .unwrap();
            Some(conn)
        }
        Backend::Postgres => None,
    };
    let first = tokio::spawn(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let release = async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Some(mut conn) = lock {
            sqlx::raw_sql("COMMIT").execute(&mut conn).await.unwrap();
        }
    };
    let (rest, ()) = tokio::join!(join_all(rest), release);
    let mut answers = vec![first.await.unwrap()];
    answers.extend(rest);
    answers
}

async fn queued_redemptions_each_get_their_own_answer(backend: Backend) {
    let (store, sqlite, dir, user, client) = counted_store(backend).await;
    for i in 0..6 {
        let (c, g) = (format!("c{i}"), format!("code-grant{i}"));
        store
            .insert_code(&code(&user, &client, c.as_bytes(), &g))
            .await
            .unwrap();
    }
    // (code, grant): c2 twice and c0 again (after its first redemption alone): single
    // use, one redemption each; an unknown code redeems nothing.
    let redemptions = [
        ("c0", "g0"),
        ("c1", "g1"),
        ("c2", "g2a"),
        ("c2", "g2b"),
        ("unknown", "gx"),
        ("c3", "g3"),
        ("c4", "g4"),
        ("c5", "g5"),
        ("c0", "g0b"),
    ];
    let redeem = |(c, g): (&'static str, &'static str)| {
        let (store, family) = (
            store.clone(),
            grant(&user, &client, g, "s1", "openid profile"),
        );
        async move { store.redeem_code(c.as_bytes(), &family, None, 120).await }
    };
    let first = redeem(redemptions[0]);
    let rest = redemptions[1..].iter().map(|r| redeem(*r)).collect();
    let answers: Vec<bool> = while_locked(backend, &dir, first, rest)
        .await
        .into_iter()
        .map(|a| a.expect("no error"))
        .collect();
    if let Some(sqlite) = sqlite {
        assert_eq!(
            sqlite.code_writes_batched(),
            8,
            "the eight redemptions that queued ran as one batch"
        );
    }
    // c2: the first in a batch redeems it; on PostgreSQL the two race.
    assert!(answers[2] != answers[3], "c2 redeemed once: {answers:?}");
    let c2_loser = if answers[2] { 3 } else { 2 };
    for (i, redeemed) in answers.iter().enumerate() {
        let expected = !matches!(i, 4 | 8) && i != c2_loser;
        assert_eq!(*redeemed, expected, "redemption {i}");
        let stored = store.get_grant(redemptions[i].1).await.unwrap();
        assert_eq!(stored.is_some(), expected, "grant of redemption {i}");
    }
    for i in 0..6 {
        let c = store
            .get_code(format!("c{i}").as_bytes())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.consumed_at, Some(120), "c{i}");
    }
}

async fn queued_code_inserts_each_get_their_own_answer(backend: Backend) {
    let (store, sqlite, dir, user, client) = counted_store(backend).await;
    let insert = |i: usize| {
        let (store, c) = (
            store.clone(),
            code(&user, &client, format!("c{i}").as_bytes(), &format!("g{i}")),
        );
        async move { store.insert_code(&c).await }
    };
    let answers = while_locked(backend, &dir, insert(0), (1..5).map(insert).collect()).await;
    if let Some(sqlite) = sqlite {
        assert_eq!(
            sqlite.code_writes_batched(),
            4,
            "the four that queued ran together: {answers:?}"
        );
    }
    for (i, answer) in answers.into_iter().enumerate() {
        answer.expect("inserted");
        let c = store
            .get_code(format!("c{i}").as_bytes())
            .await
            .unwrap()
            .expect("stored");
        assert_eq!(c.grant_id, format!("g{i}"));
        assert_eq!(c.consumed_at, None);
    }
    // A queued redemption with the first refresh token (its own queue) works alike.
    let family = grant(&user, &client, "g3", "s1", "openid offline_access");
    let token = refresh(&client, b"rt3", "g3");
    assert!(store
        .redeem_code(b"c3", &family, Some(&token), 120)
        .await
        .unwrap());
    assert!(store.get_refresh_token(b"rt3").await.unwrap().is_some());
    assert!(!store
        .redeem_code(b"c3", &family, Some(&refresh(&client, b"rt3b", "g3")), 121)
        .await
        .unwrap());
    assert_eq!(store.get_refresh_token(b"rt3b").await.unwrap(), None);
}

async fn a_failing_code_insert_among_queued_ones_fails_alone(backend: Backend) {
    let (store, sqlite, dir, user, client) = counted_store(backend).await;
    store
        .insert_code(&code(&user, &client, b"taken", "g-old"))
        .await
        .unwrap();
    let hashes: [&'static [u8]; 5] = [b"c0", b"c1", b"taken", b"c3", b"c4"];
    let insert = |i: usize| {
        let (store, c) = (
            store.clone(),
            code(&user, &client, hashes[i], &format!("g{i}")),
        );
        async move { store.insert_code(&c).await }
    };
    let answers = while_locked(backend, &dir, insert(0), (1..5).map(insert).collect()).await;
    if let Some(sqlite) = sqlite {
        assert_eq!(
            sqlite.code_writes_batched(),
            0,
            "the batch broke a constraint: every insert ran on its own"
        );
    }
    for i in [0, 1, 3, 4] {
        assert!(answers[i].is_ok(), "insert {i}: {:?}", answers[i]);
        let c = store.get_code(hashes[i]).await.unwrap().expect("stored");
        assert_eq!(c.grant_id, format!("g{i}"));
    }
    assert!(
        matches!(answers[2], Err(StoreError::Conflict(_))),
        "{:?}",
        answers[2]
    );
    let kept = store.get_code(b"taken").await.unwrap().unwrap();
    assert_eq!(kept.grant_id, "g-old", "the taken code is untouched");
}

/// Redemptions with the first refresh token (`offline_access`, their own queue): a code
/// presented twice in a batch is redeemed once; a batch in which one refresh token's hash
/// is taken rolls back, and then that redemption alone fails, its code left unconsumed.
async fn queued_redemptions_with_refresh_tokens(backend: Backend) {
    let (store, sqlite, dir, user, client) = counted_store(backend).await;
    for i in 0..8 {
        let c = format!("c{i}");
        store
            .insert_code(&code(&user, &client, c.as_bytes(), &format!("g{i}")))
            .await
            .unwrap();
    }
    let batched_before = sqlite.as_ref().map(|s| s.code_writes_batched());
    let redeem = |(c, g, rt): (&'static str, &'static str, &'static str)| {
        let store = store.clone();
        let family = grant(&user, &client, g, "s1", "openid offline_access");
        let token = refresh(&client, rt.as_bytes(), g);
        async move {
            store
                .redeem_code(c.as_bytes(), &family, Some(&token), 120)
                .await
        }
    };
    let run = |list: [(&'static str, &'static str, &'static str); 5]| {
        let first = redeem(list[0]);
        let rest = list[1..].iter().map(|r| redeem(*r)).collect();
        while_locked(backend, &dir, first, rest)
    };

    // rt0 is taken by the first: the batch of the other four breaks the primary key.
    let failing = [
        ("c0", "g0", "rt0"),
        ("c1", "g1", "rt1"),
        ("c2", "g2", "rt0"),
        ("c3", "g3a", "rt3a"),
        ("c3", "g3b", "rt3b"),
    ];
    let answers = run(failing).await;
    if let (Some(sqlite), Some(before)) = (&sqlite, batched_before) {
        assert_eq!(
            sqlite.code_writes_batched(),
            before,
            "that batch ran one by one"
        );
    }
    assert!(
        matches!(answers[2], Err(StoreError::Conflict(_))),
        "{:?}",
        answers[2]
    );
    let c2 = store.get_code(b"c2").await.unwrap().unwrap();
    assert_eq!(
        c2.consumed_at, None,
        "the failed redemption left its code unused"
    );
    assert_eq!(store.get_grant("g2").await.unwrap(), None);
    let redeemed: Vec<Option<bool>> = answers.iter().map(|a| a.as_ref().ok().copied()).collect();
    assert_eq!(redeemed[..2], [Some(true), Some(true)]);
    assert!(
        redeemed[3..] == [Some(true), Some(false)] || redeemed[3..] == [Some(false), Some(true)],
        "c3 redeemed once: {redeemed:?}"
    );

    // Without the taken hash the batch commits: c5 twice, an unknown code.
    let passing = [
        ("c4", "g4", "rt4"),
        ("c5", "g5a", "rt5a"),
        ("c5", "g5b", "rt5b"),
        ("c6", "g6", "rt6"),
        ("unknown", "gu", "rtu"),
    ];
    let answers: Vec<bool> = run(passing)
        .await
        .into_iter()
        .map(|a| a.expect("no error"))
        .collect();
    if let (Some(sqlite), Some(before)) = (&sqlite, batched_before) {
        assert_eq!(
            sqlite.code_writes_batched(),
            before + 4,
            "the four ran together"
        );
    }
    assert!(answers[1] != answers[2], "c5 redeemed once: {answers:?}");
    assert_eq!([answers[0], answers[3], answers[4]], [true, true, false]);
    for (i, (_, g, rt)) in passing.iter().enumerate() {
        let token = store.get_refresh_token(rt.as_bytes()).await.unwrap();
        assert_eq!(
            token.is_some(),
            answers[i],
            "refresh token of redemption {i}"
        );
        assert_eq!(
            store.get_grant(g).await.unwrap().is_some(),
            answers[i],
            "grant {i}"
        );
    }
}
