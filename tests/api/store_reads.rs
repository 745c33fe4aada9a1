//! Reads that run together: PostgreSQL answers the access-token reads behind `/userinfo`
//! and `/introspect` (`get_token_grant`) that wait while others run with one statement
//! (`store::coalesce`, `store::sql::pg_batch`). Each read must get its own answer, as it
//! would alone: the grant and user it names, or nothing for an unknown or revoked grant
//! or a revoked `jti`, whatever else is in its batch. SQLite reads one at a time and must
//! give the same answers.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use latchkey::domain::{Client, User, UserId, Username};
use latchkey::store::{PgStore, Store};
use sqlx::Connection;

use crate::helpers::{fresh_database_url, fresh_store, postgres_available, Backend};
use crate::store_flows::{code, grant, seed};

crate::both_stores!(concurrent_access_token_reads_each_get_their_own_answer);

/// Grants g0..g5 of alice and h0..h1 of bob; g3 revoked, `jti` "revoked" revoked.
async fn with_grants(store: &dyn Store) -> (User, User) {
    let (alice, client) = seed(store).await;
    let mut bob = alice.clone();
    bob.id = UserId::generate();
    bob.username = Username::parse("bob").unwrap();
    bob.email = latchkey::domain::Email::parse("bob@example.com").unwrap();
    store.insert_user(&bob).await.unwrap();
    let families = (0..6)
        .map(|i| (&alice, format!("g{i}")))
        .chain((0..2).map(|i| (&bob, format!("h{i}"))));
    for (user, g) in families {
        grant_for(store, user, &client, &g).await;
    }
    assert!(store.revoke_grant("g3", 120).await.unwrap());
    store.revoke_jti("revoked", 10_000).await.unwrap();
    (alice, bob)
}

async fn grant_for(store: &dyn Store, user: &User, client: &Client, g: &str) {
    let c = format!("code-{g}");
    store
        .insert_code(&code(user, client, c.as_bytes(), g))
        .await
        .unwrap();
    let family = grant(user, client, g, "s1", "openid profile");
    assert!(store
        .redeem_code(c.as_bytes(), &family, None, 110)
        .await
        .unwrap());
}

/// The reads and what each must find: the grant's owner, or nothing.
fn reads(alice: &User, bob: &User) -> Vec<(String, String, Option<UserId>)> {
    let mut reads = Vec::new();
    for round in 0..3 {
        for i in 0..6 {
            let found = (i != 3).then(|| alice.id.clone());
            reads.push((format!("g{i}"), format!("j{round}-{i}"), found));
        }
        for i in 0..2 {
            reads.push((
                format!("h{i}"),
                format!("k{round}-{i}"),
                Some(bob.id.clone()),
            ));
        }
        reads.push(("g0".into(), "revoked".into(), None));
        reads.push(("h1".into(), "revoked".into(), None));
        reads.push(("nowhere".into(), format!("n{round}"), None));
    }
    reads
}

async fn read_all(
    store: &Arc<dyn Store>,
    reads: &[(String, String, Option<UserId>)],
) -> Vec<Option<(String, UserId)>> {
    join_all(reads.iter().map(|(g, j, _)| {
        let store = store.clone();
        let (g, j) = (g.clone(), j.clone());
        async move {
            tokio::spawn(async move { store.get_token_grant(&g, &j).await })
                .await
                .unwrap()
                .unwrap()
                .map(|(grant, user)| (grant.id, user.id))
        }
    }))
    .await
}

fn check(reads: &[(String, String, Option<UserId>)], answers: &[Option<(String, UserId)>]) {
    assert_eq!(reads.len(), answers.len());
    for ((g, j, owner), answer) in reads.iter().zip(answers) {
        let expected = owner.clone().map(|u| (g.clone(), u));
        assert_eq!(answer, &expected, "read of grant {g} with jti {j}");
    }
}

async fn concurrent_access_token_reads_each_get_their_own_answer(backend: Backend) {
    let (store, _dir) = fresh_store(backend).await;
    let (alice, bob) = with_grants(store.as_ref()).await;
    let reads = reads(&alice, &bob);
    for _ in 0..5 {
        let answers = read_all(&store, &reads).await;
        check(&reads, &answers);
    }
}

/// While PostgreSQL keeps the first reads waiting (the test holds a lock on `grants`),
/// the reads that arrive queue, and run as one batch when the lock goes; each gets its
/// own answer. Fails if the reads do not run together or an answer goes to another read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reads_that_wait_run_together() {
    if !postgres_available().await {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(Backend::Postgres, dir.path()).await;
    let pg = Arc::new(PgStore::connect(&url, 8).await.unwrap());
    let store: Arc<dyn Store> = pg.clone();
    let (alice, bob) = with_grants(store.as_ref()).await;
    let reads = reads(&alice, &bob);

    let mut side = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE grants IN ACCESS EXCLUSIVE MODE")
        .execute(&mut side)
        .await
        .unwrap();
    let waiting = tokio::spawn({
        let store = store.clone();
        let reads = reads.clone();
        async move { read_all(&store, &reads).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the reads wait for the lock");
    assert_eq!(pg.token_grant_reads_together(), 0);
    sqlx::raw_sql("COMMIT").execute(&mut side).await.unwrap();
    check(&reads, &waiting.await.unwrap());
    // At most two batches ran while the lock was held; the rest waited for them.
    let together = pg.token_grant_reads_together();
    assert!(
        together as usize >= reads.len() - 2,
        "{together} of {} reads answered together",
        reads.len()
    );
    // And a batch is one statement: the two that met the lock, then one for the rest.
    let statements = pg.token_grant_statements();
    assert!(
        statements <= 3,
        "{statements} statements for {} reads",
        reads.len()
    );
}
