//! One contract suite, run against SQLite and PostgreSQL alike.

use latchkey::domain::{
    Client, ClientId, ClientKind, Email, GrantType, KeyState, RedirectUri, Role, Scope, User,
    UserId, Username,
};
use latchkey::store::{Rotation, StoreError};

use crate::helpers::{fixture_keys, fresh_store, Backend};

crate::both_stores!(
    clients_round_trip,
    duplicate_client_is_a_conflict,
    users_round_trip,
    usernames_and_emails_are_unique,
    initial_keys_are_inserted_once,
    rotation_is_atomic_and_checked,
    retire_only_from_the_expected_state,
    every_client_mutation_bumps_the_generation,
);

fn client(id: &str) -> Client {
    Client {
        id: ClientId::parse(id).unwrap(),
        name: "App".into(),
        kind: ClientKind::Confidential,
        secret_hash: Some(vec![1, 2, 3]),
        redirect_uris: vec![RedirectUri::parse("r", "https://app.example/cb").unwrap()],
        post_logout_redirect_uris: vec![RedirectUri::parse("p", "https://app.example/bye").unwrap()],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scope: Scope::parse("openid offline_access").unwrap(),
        resources: vec![latchkey::domain::ResourceUri::parse("https://api.example").unwrap()],
        access_token_ttl: Some(300),
        first_party: true,
        require_mfa: false,
        end_offline_on_logout: false,
        introspect_any: false,
        tokens_revoked_at: 0,
        refresh_grace_secs: 0,
        created_at: 1_700_000_000,
    }
}

fn user(name: &str, email: &str) -> User {
    User {
        id: UserId::generate(),
        username: Username::parse(name).unwrap(),
        email: Email::parse(email).unwrap(),
        email_verified: false,
        password_hash: Some("$argon2id$fake".into()),
        disabled: false,
        roles: vec![Role::parse("admin").unwrap()],
        created_at: 1,
        updated_at: 1,
        credentials_changed_at: 0,
        credentials_epoch: 1,
        must_enrol_factor: false,
    }
}

async fn clients_round_trip(backend: Backend) {
    let (store, _dir) = fresh_store(backend).await;
    let c = client("app-1");
    store.insert_client(&c).await.unwrap();
    assert_eq!(store.get_client(&c.id).await.unwrap(), Some(c.clone()));
    assert_eq!(store.list_clients().await.unwrap(), vec![c.clone()]);
    assert!(store.set_client_secret(&c.id, &[9, 9], None).await.unwrap());
    assert_eq!(
        store.get_client(&c.id).await.unwrap().unwrap().secret_hash,
        Some(vec![9, 9])
    );
    assert!(store.delete_client(&c.id).await.unwrap());
    assert!(!store.delete_client(&c.id).await.unwrap());
    assert_eq!(store.get_client(&c.id).await.unwrap(), None);
}

async fn duplicate_client_is_a_conflict(backend: Backend) {
    let (store, _dir) = fresh_store(backend).await;
    store.insert_client(&client("dup")).await.unwrap();
    let err = store.insert_client(&client("dup")).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
}

async fn users_round_trip(backend: Backend) {
    let (store, _dir) = fresh_store(backend).await;
    let u = user("alice", "alice@example.com");
    store.insert_user(&u).await.unwrap();
    assert_eq!(
        store.get_user_by_username(&u.username).await.unwrap(),
        Some(u.clone())
    );
    assert_eq!(
        store.get_user(u.id.as_str()).await.unwrap(),
        Some(u.clone())
    );
    assert!(store.set_user_disabled(&u.username, true, 5).await.unwrap());
    // Every credential change bumps the epoch in its own UPDATE, even within one second.
    let epoch = store
        .set_password_hash(&u.username, "$argon2id$new", 6)
        .await
        .unwrap();
    assert_eq!(
        epoch,
        Some(u.credentials_epoch + 2),
        "disabled, then a password"
    );
    assert_eq!(
        store
            .set_password_hash(&u.username, "$argon2id$new", 6)
            .await
            .unwrap(),
        Some(u.credentials_epoch + 3),
        "a second change in the same second still counts"
    );
    let got = store.get_user(u.id.as_str()).await.unwrap().unwrap();
    assert_eq!(got.credentials_epoch, u.credentials_epoch + 3);
    assert!(store
        .set_user_disabled(&u.username, false, 7)
        .await
        .unwrap());
    let enabled = store.get_user(u.id.as_str()).await.unwrap().unwrap();
    assert_eq!(
        enabled.credentials_epoch, got.credentials_epoch,
        "enabling revives nothing, so it changes no epoch"
    );
    let nobody_pw = Username::parse("nobody").unwrap();
    assert_eq!(
        store.set_password_hash(&nobody_pw, "x", 8).await.unwrap(),
        None
    );
    assert!(got.disabled);
    assert_eq!(got.password_hash.as_deref(), Some("$argon2id$new"));
    assert_eq!(got.updated_at, 6);
    assert_eq!(
        got.credentials_changed_at, 6,
        "a new password outdates older logins"
    );
    let nobody = Username::parse("nobody").unwrap();
    assert!(!store.set_user_disabled(&nobody, true, 5).await.unwrap());
    assert_eq!(store.list_users().await.unwrap().len(), 1);
}

async fn usernames_and_emails_are_unique(backend: Backend) {
    let (store, _dir) = fresh_store(backend).await;
    store
        .insert_user(&user("bob", "bob@example.com"))
        .await
        .unwrap();
    for dup in [
        user("bob", "other@example.com"),
        user("bobby", "BOB@example.com"),
    ] {
        let err = store.insert_user(&dup).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    }
}

async fn initial_keys_are_inserted_once(backend: Backend) {
    let (store, _dir) = fresh_store(backend).await;
    let (current, next) = fixture_keys().await;
    assert!(store.insert_initial_keys(&current, &next).await.unwrap());
    assert!(!store.insert_initial_keys(&current, &next).await.unwrap());
    let keys = store.list_published_keys().await.unwrap();
    let states: Vec<_> = keys.iter().map(|k| (k.kid.clone(), k.state)).collect();
    assert_eq!(states.len(), 2);
    assert!(states.contains(&(current.kid.clone(), KeyState::Current)));
    assert!(states.contains(&(next.kid.clone(), KeyState::Next)));
}

async fn rotation_is_atomic_and_checked(backend: Backend) {
    let (store, _dir) = fresh_store(backend).await;
    let (current, next) = fixture_keys().await;
    store.insert_initial_keys(&current, &next).await.unwrap();
    let mut newer = next.clone();
    newer.kid = "third-key".into();
    // Promoting a key that is not `next` fails and changes nothing.
    let wrong = Rotation {
        promote_kid: &current.kid,
        new_next: &newer,
        now: 10,
        previous_retires_at: 20,
    };
    assert!(matches!(
        store.rotate_keys(&wrong).await,
        Err(StoreError::Conflict(_))
    ));
    let unchanged: Vec<_> = store
        .list_published_keys()
        .await
        .unwrap()
        .iter()
        .map(|k| k.state)
        .collect();
    assert_eq!(
        unchanged
            .iter()
            .filter(|s| **s == KeyState::Current)
            .count(),
        1
    );
    assert_eq!(unchanged.len(), 2);

    let ok = Rotation {
        promote_kid: &next.kid,
        new_next: &newer,
        now: 10,
        previous_retires_at: 20,
    };
    store.rotate_keys(&ok).await.unwrap();
    let keys = store.list_published_keys().await.unwrap();
    let state_of = |kid: &str| keys.iter().find(|k| k.kid == kid).map(|k| k.state);
    assert_eq!(state_of(&current.kid), Some(KeyState::Previous));
    assert_eq!(state_of(&next.kid), Some(KeyState::Current));
    assert_eq!(state_of("third-key"), Some(KeyState::Next));
    let prev = keys.iter().find(|k| k.kid == current.kid).unwrap();
    assert_eq!((prev.deactivated_at, prev.retires_at), (Some(10), Some(20)));
    // The same rotation again: the promoted key is no longer next.
    assert!(matches!(
        store.rotate_keys(&ok).await,
        Err(StoreError::Conflict(_))
    ));
}

async fn retire_only_from_the_expected_state(backend: Backend) {
    let (store, _dir) = fresh_store(backend).await;
    let (current, next) = fixture_keys().await;
    store.insert_initial_keys(&current, &next).await.unwrap();
    assert!(!store
        .retire_key(&current.kid, KeyState::Previous)
        .await
        .unwrap());
    assert!(store.retire_key(&next.kid, KeyState::Next).await.unwrap());
    let all = store.list_all_keys().await.unwrap();
    let retired = all.iter().find(|k| k.kid == next.kid).unwrap();
    assert_eq!(retired.state, KeyState::Retired);
    assert!(retired.private_key_sealed.is_empty(), "private key erased");
    assert_eq!(store.list_published_keys().await.unwrap().len(), 1);
}

async fn every_client_mutation_bumps_the_generation(backend: Backend) {
    let (store, _dir) = fresh_store(backend).await;
    let g0 = store.clients_generation().await.unwrap();
    let c = client("gen");
    store.insert_client(&c).await.unwrap();
    let g1 = store.clients_generation().await.unwrap();
    assert!(g1 > g0);
    store.set_client_secret(&c.id, &[7], None).await.unwrap();
    let g2 = store.clients_generation().await.unwrap();
    assert!(g2 > g1);
    store.delete_client(&c.id).await.unwrap();
    assert!(store.clients_generation().await.unwrap() > g2);
    // A failed insert changes nothing, the generation included.
    store.insert_client(&c).await.unwrap();
    let g3 = store.clients_generation().await.unwrap();
    assert!(store.insert_client(&c).await.is_err());
    assert_eq!(store.clients_generation().await.unwrap(), g3);
}
