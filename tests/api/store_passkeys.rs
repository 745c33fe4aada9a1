//! Contract suite for passkeys: the WebAuthn user handle, passkeys owned by one user, the
//! signature counter decided in one statement, and single-use ceremonies.
//! Same tests on SQLite and PostgreSQL.

use std::sync::Arc;

use latchkey::domain::{CeremonyRecord, PasskeyRecord, PasskeyUse, User};
use latchkey::store::{Store, StoreError};

use crate::helpers::Backend;
use crate::store_accounts::{seeded, winners};

crate::both_stores!(
    a_handle_is_created_once_and_finds_its_user,
    concurrent_first_handles_agree,
    an_unknown_user_has_no_handle,
    a_credential_id_is_registered_once,
    passkeys_are_listed_in_registration_order,
    only_the_owner_renames_or_deletes_a_passkey,
    a_forward_counter_is_accepted_and_stored,
    an_equal_or_lower_counter_changes_nothing,
    a_non_counting_authenticator_is_accepted,
    one_of_concurrent_uses_with_one_counter_wins,
    a_counter_regression_is_visible,
    a_ceremony_is_taken_once,
    expired_ceremonies_are_returned_then_purged,
);

fn passkey(owner: &User, id: &str, credential_id: &[u8], created_at: i64) -> PasskeyRecord {
    PasskeyRecord {
        id: id.into(),
        user_id: owner.id.as_str().into(),
        credential_id: credential_id.to_vec(),
        name: format!("key {id}"),
        credential: format!(r#"{{"cred":"{id}","counter":5}}"#),
        counter: 5,
        backup_eligible: true,
        backed_up: false,
        created_at,
        last_used_at: None,
        counter_regressed_at: None,
    }
}

fn use_of(credential_id: &[u8], counter: i64, at: i64) -> PasskeyUse {
    PasskeyUse {
        credential_id: credential_id.to_vec(),
        counter,
        credential: format!(r#"{{"counter":{counter},"at":{at}}}"#),
        backed_up: true,
        at,
    }
}

fn ceremony(id: &[u8], expires_at: i64) -> CeremonyRecord {
    CeremonyRecord {
        id_hash: id.to_vec(),
        state: r#"{"purpose":"register"}"#.into(),
        created_at: 100,
        expires_at,
    }
}

/// Alice with passkey `pa` (credential `ca`), Bob with `pb` (credential `cb`).
async fn with_passkeys(backend: Backend) -> (Arc<dyn Store>, tempfile::TempDir, User, User) {
    let (store, dir, alice, bob) = seeded(backend).await;
    store
        .insert_passkey(&passkey(&alice, "pa", b"ca", 100))
        .await
        .unwrap();
    store
        .insert_passkey(&passkey(&bob, "pb", b"cb", 100))
        .await
        .unwrap();
    (store, dir, alice, bob)
}

async fn a_handle_is_created_once_and_finds_its_user(backend: Backend) {
    let (store, _dir, alice, bob) = seeded(backend).await;
    let id = alice.id.as_str();
    let first = store.webauthn_handle(id, "handle-1").await.unwrap();
    assert_eq!(first.as_deref(), Some("handle-1"));
    let second = store.webauthn_handle(id, "handle-2").await.unwrap();
    assert_eq!(
        second.as_deref(),
        Some("handle-1"),
        "the first candidate stays"
    );
    assert_eq!(
        store.user_by_webauthn_handle("handle-1").await.unwrap(),
        Some(alice)
    );
    assert_eq!(
        store.user_by_webauthn_handle("handle-2").await.unwrap(),
        None,
        "a losing candidate is nobody's"
    );
    let bobs = store.webauthn_handle(bob.id.as_str(), "handle-b").await;
    assert_eq!(bobs.unwrap().as_deref(), Some("handle-b"));
    assert_eq!(
        store.user_by_webauthn_handle("handle-b").await.unwrap(),
        Some(bob)
    );
}

async fn concurrent_first_handles_agree(backend: Backend) {
    let (store, _dir, alice, _) = seeded(backend).await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (store, id) = (store.clone(), alice.id.as_str().to_owned());
            tokio::spawn(async move {
                store
                    .webauthn_handle(&id, &format!("candidate-{i}"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut handles: Vec<_> = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    handles.dedup();
    assert_eq!(
        handles.len(),
        1,
        "16 concurrent first calls agree: {handles:?}"
    );
    assert!(handles[0].starts_with("candidate-"));
    let found = store.user_by_webauthn_handle(&handles[0]).await.unwrap();
    assert_eq!(found.map(|u| u.id), Some(alice.id));
}

async fn an_unknown_user_has_no_handle(backend: Backend) {
    let (store, _dir, _, _) = seeded(backend).await;
    assert_eq!(store.webauthn_handle("nobody", "h").await.unwrap(), None);
    assert_eq!(store.user_by_webauthn_handle("h").await.unwrap(), None);
}

async fn a_credential_id_is_registered_once(backend: Backend) {
    let (store, _dir, alice, bob) = with_passkeys(backend).await;
    let again = passkey(&alice, "pa-2", b"ca", 110);
    let err = store.insert_passkey(&again).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let other_user = passkey(&bob, "pb-2", b"ca", 110);
    let err = store.insert_passkey(&other_user).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(
        store.get_passkey(b"ca").await.unwrap(),
        Some(passkey(&alice, "pa", b"ca", 100))
    );
    assert_eq!(store.list_passkeys(bob.id.as_str()).await.unwrap().len(), 1);
    assert_eq!(store.get_passkey(b"unknown").await.unwrap(), None);
}

async fn passkeys_are_listed_in_registration_order(backend: Backend) {
    let (store, _dir, alice, bob) = with_passkeys(backend).await;
    let later = passkey(&alice, "pa-later", b"ca-later", 300);
    let between = passkey(&alice, "pa-between", b"ca-between", 200);
    store.insert_passkey(&later).await.unwrap();
    store.insert_passkey(&between).await.unwrap();
    assert_eq!(
        store.list_passkeys(alice.id.as_str()).await.unwrap(),
        vec![passkey(&alice, "pa", b"ca", 100), between, later]
    );
    assert_eq!(
        store.list_passkeys(bob.id.as_str()).await.unwrap(),
        vec![passkey(&bob, "pb", b"cb", 100)]
    );
    assert_eq!(store.list_passkeys("nobody").await.unwrap(), vec![]);
}

async fn only_the_owner_renames_or_deletes_a_passkey(backend: Backend) {
    let (store, _dir, alice, bob) = with_passkeys(backend).await;
    let (a, b) = (alice.id.as_str(), bob.id.as_str());
    assert!(!store.rename_passkey(b, "pa", "mine now").await.unwrap());
    assert!(!store.delete_passkey(b, "pa").await.unwrap());
    assert!(!store.rename_passkey(a, "nope", "x").await.unwrap());
    assert_eq!(
        store.get_passkey(b"ca").await.unwrap(),
        Some(passkey(&alice, "pa", b"ca", 100)),
        "nothing changed"
    );

    assert!(store.rename_passkey(a, "pa", "Laptop").await.unwrap());
    let renamed = store.get_passkey(b"ca").await.unwrap().unwrap();
    assert_eq!(renamed.name, "Laptop");
    assert_eq!(
        store.get_passkey(b"cb").await.unwrap().unwrap().name,
        "key pb"
    );

    assert!(store.delete_passkey(a, "pa").await.unwrap());
    assert!(
        !store.delete_passkey(a, "pa").await.unwrap(),
        "already gone"
    );
    assert_eq!(store.get_passkey(b"ca").await.unwrap(), None);
    assert_eq!(store.list_passkeys(a).await.unwrap(), vec![]);
    assert_eq!(store.list_passkeys(b).await.unwrap().len(), 1);
}

async fn a_forward_counter_is_accepted_and_stored(backend: Backend) {
    let (store, _dir, alice, _) = with_passkeys(backend).await;
    assert!(store
        .record_passkey_use(&use_of(b"ca", 6, 300))
        .await
        .unwrap());
    let mut want = passkey(&alice, "pa", b"ca", 100);
    want.counter = 6;
    want.credential = use_of(b"ca", 6, 300).credential;
    want.backed_up = true;
    want.last_used_at = Some(300);
    assert_eq!(store.get_passkey(b"ca").await.unwrap(), Some(want));
    assert!(store
        .record_passkey_use(&use_of(b"ca", 900, 310))
        .await
        .unwrap());
    assert_eq!(
        store.get_passkey(b"ca").await.unwrap().unwrap().counter,
        900
    );
    assert_eq!(
        store.get_passkey(b"cb").await.unwrap().unwrap().counter,
        5,
        "only that credential"
    );
    assert!(!store
        .record_passkey_use(&use_of(b"unknown", 7, 300))
        .await
        .unwrap());
}

async fn an_equal_or_lower_counter_changes_nothing(backend: Backend) {
    let (store, _dir, alice, _) = with_passkeys(backend).await;
    assert!(!store
        .record_passkey_use(&use_of(b"ca", 5, 300))
        .await
        .unwrap());
    assert!(!store
        .record_passkey_use(&use_of(b"ca", 4, 301))
        .await
        .unwrap());
    assert!(!store
        .record_passkey_use(&use_of(b"ca", 0, 302))
        .await
        .unwrap());
    assert_eq!(
        store.get_passkey(b"ca").await.unwrap(),
        Some(passkey(&alice, "pa", b"ca", 100)),
        "nothing changed"
    );
}

async fn a_non_counting_authenticator_is_accepted(backend: Backend) {
    let (store, _dir, alice, _) = seeded(backend).await;
    let mut zero = passkey(&alice, "pz", b"cz", 100);
    zero.counter = 0;
    store.insert_passkey(&zero).await.unwrap();
    assert!(store
        .record_passkey_use(&use_of(b"cz", 0, 300))
        .await
        .unwrap());
    assert!(store
        .record_passkey_use(&use_of(b"cz", 0, 310))
        .await
        .unwrap());
    let stored = store.get_passkey(b"cz").await.unwrap().unwrap();
    assert_eq!((stored.counter, stored.last_used_at), (0, Some(310)));
    // Once it counts, 0 is a regression.
    assert!(store
        .record_passkey_use(&use_of(b"cz", 3, 320))
        .await
        .unwrap());
    assert!(!store
        .record_passkey_use(&use_of(b"cz", 0, 330))
        .await
        .unwrap());
    assert_eq!(store.get_passkey(b"cz").await.unwrap().unwrap().counter, 3);
}

async fn one_of_concurrent_uses_with_one_counter_wins(backend: Backend) {
    let (store, _dir, _, _) = with_passkeys(backend).await;
    let wins = winners(16, || {
        let store = store.clone();
        async move {
            store
                .record_passkey_use(&use_of(b"ca", 9, 300))
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(wins, 1, "one of 16 concurrent uses of counter 9 wins");
    assert_eq!(store.get_passkey(b"ca").await.unwrap().unwrap().counter, 9);
}

async fn a_counter_regression_is_visible(backend: Backend) {
    let (store, _dir, alice, _) = with_passkeys(backend).await;
    store.mark_counter_regression(b"ca", 400).await.unwrap();
    store
        .mark_counter_regression(b"unknown", 400)
        .await
        .unwrap();
    let mut want = passkey(&alice, "pa", b"ca", 100);
    want.counter_regressed_at = Some(400);
    assert_eq!(store.get_passkey(b"ca").await.unwrap(), Some(want.clone()));
    assert_eq!(
        store.list_passkeys(alice.id.as_str()).await.unwrap(),
        vec![want]
    );
    let bobs = store.get_passkey(b"cb").await.unwrap().unwrap();
    assert_eq!(bobs.counter_regressed_at, None);
}

async fn a_ceremony_is_taken_once(backend: Backend) {
    let (store, _dir, _, _) = seeded(backend).await;
    let record = ceremony(b"c1", 400);
    store.insert_ceremony(&record).await.unwrap();
    let err = store.insert_ceremony(&record).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.take_ceremony(b"c1").await.unwrap() })
        })
        .collect();
    let taken: Vec<_> = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .filter_map(|r| r.unwrap())
        .collect();
    assert_eq!(taken, vec![record], "one of 32 concurrent takes gets it");
    assert_eq!(store.take_ceremony(b"c1").await.unwrap(), None);
}

async fn expired_ceremonies_are_returned_then_purged(backend: Backend) {
    let (store, _dir, _, _) = seeded(backend).await;
    for (id, expires_at) in [(b"old-1", 200), (b"old-2", 200), (b"fresh", 900)] {
        store
            .insert_ceremony(&ceremony(id, expires_at))
            .await
            .unwrap();
    }
    // The caller checks expiry: the store returns what it holds.
    assert_eq!(
        store.take_ceremony(b"old-1").await.unwrap(),
        Some(ceremony(b"old-1", 200))
    );
    assert_eq!(store.purge_expired(500, 100).await.unwrap(), 1);
    assert_eq!(store.take_ceremony(b"old-2").await.unwrap(), None);
    assert_eq!(
        store.take_ceremony(b"fresh").await.unwrap(),
        Some(ceremony(b"fresh", 900))
    );
}
