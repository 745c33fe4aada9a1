//! Contract suite for refresh rotation (RFC 9700 §4.14.2): what the one rotation
//! transaction re-checks, and the one-query read of a token's family. Both stores.

use latchkey::domain::{ClientId, RefreshToken, Scope, Username};
use latchkey::store::{RefreshRotation, Store};

use crate::helpers::Backend;
use crate::store_flows::{code, grant, refresh, rotation, seeded};

crate::both_stores!(
    the_family_is_read_in_one_query,
    rotation_refuses_a_disabled_user_or_changed_credentials,
    rotation_refuses_an_idle_or_too_old_family,
    rotation_refuses_an_expired_token_another_client_or_family,
);

/// A store with user alice, client `web`, grant g1 and its refresh token rt1, at 110.
async fn with_family(backend: Backend) -> (std::sync::Arc<dyn Store>, tempfile::TempDir) {
    let (store, dir, user, client) = seeded(backend).await;
    store
        .insert_code(&code(&user, &client, b"c", "g1"))
        .await
        .unwrap();
    let g = grant(&user, &client, "g1", "s1", "openid offline_access");
    assert!(store
        .redeem_code(b"c", &g, Some(&refresh(&client, b"rt1", "g1")), 110)
        .await
        .unwrap());
    (store, dir)
}

/// A successor of rt1 for client `web` in g1, created at 200.
fn web_successor(hash: &[u8]) -> RefreshToken {
    RefreshToken {
        token_hash: hash.to_vec(),
        grant_id: "g1".into(),
        client_id: ClientId::parse("web").unwrap(),
        scope: Scope::parse("openid offline_access").unwrap(),
        created_at: 200,
        expires_at: 10_000,
        spent_at: None,
    }
}

/// Nothing changed: rt1 unspent, the successor absent, the grant untouched.
pub(crate) async fn assert_unchanged(store: &dyn Store, successor: &[u8]) {
    let rt1 = store.get_refresh_token(b"rt1").await.unwrap().unwrap();
    assert_eq!(rt1.spent_at, None, "the presented token stays unspent");
    assert_eq!(store.get_refresh_token(successor).await.unwrap(), None);
    let g = store.get_grant("g1").await.unwrap().unwrap();
    assert_eq!(g.last_used_at, 110, "the grant is not touched");
}

async fn the_family_is_read_in_one_query(backend: Backend) {
    let (store, _dir) = with_family(backend).await;
    let family = store.get_refresh_family(b"rt1").await.unwrap().unwrap();
    assert_eq!(
        Some(family.token),
        store.get_refresh_token(b"rt1").await.unwrap()
    );
    assert_eq!(Some(family.grant), store.get_grant("g1").await.unwrap());
    let alice = store
        .get_user_by_username(&Username::parse("alice").unwrap())
        .await
        .unwrap();
    assert_eq!(Some(family.user), alice);
    assert!(store.get_refresh_family(b"nope").await.unwrap().is_none());
}

async fn rotation_refuses_a_disabled_user_or_changed_credentials(backend: Backend) {
    let (store, _dir) = with_family(backend).await;
    let alice = Username::parse("alice").unwrap();
    let next = web_successor(b"rt2");
    assert!(store.set_user_disabled(&alice, true, 150).await.unwrap());
    assert!(!store
        .rotate_refresh_token(&rotation(b"rt1", &next, 200))
        .await
        .unwrap());
    assert_unchanged(store.as_ref(), b"rt2").await;
    // Enabled again, but the disabling moved the credentials epoch: the grant stays dead.
    assert!(store.set_user_disabled(&alice, false, 160).await.unwrap());
    assert!(!store
        .rotate_refresh_token(&rotation(b"rt1", &next, 200))
        .await
        .unwrap());
    assert_unchanged(store.as_ref(), b"rt2").await;

    let (store, _dir) = with_family(backend).await;
    store
        .set_password_hash(&alice, "$argon2id$x", 150)
        .await
        .unwrap();
    assert!(!store
        .rotate_refresh_token(&rotation(b"rt1", &next, 200))
        .await
        .unwrap());
    assert_unchanged(store.as_ref(), b"rt2").await;
}

async fn rotation_refuses_an_idle_or_too_old_family(backend: Backend) {
    let (store, _dir) = with_family(backend).await;
    let next = web_successor(b"rt2");
    // The grant was created and last used at 110.
    let idle = RefreshRotation {
        used_after: 110,
        ..rotation(b"rt1", &next, 200)
    };
    assert!(!store.rotate_refresh_token(&idle).await.unwrap());
    assert_unchanged(store.as_ref(), b"rt2").await;
    let too_old = RefreshRotation {
        created_after: 110,
        ..rotation(b"rt1", &next, 200)
    };
    assert!(!store.rotate_refresh_token(&too_old).await.unwrap());
    assert_unchanged(store.as_ref(), b"rt2").await;
    let alive = RefreshRotation {
        created_after: 109,
        used_after: 109,
        ..rotation(b"rt1", &next, 200)
    };
    assert!(store.rotate_refresh_token(&alive).await.unwrap());
    let g = store.get_grant("g1").await.unwrap().unwrap();
    assert_eq!(g.last_used_at, 200);
    assert_eq!(
        store.get_refresh_token(b"rt2").await.unwrap(),
        Some(next),
        "the successor is stored as given"
    );
}

async fn rotation_refuses_an_expired_token_another_client_or_family(backend: Backend) {
    let (store, _dir) = with_family(backend).await;
    let next = web_successor(b"rt2");
    // rt1 expires at 10,000.
    assert!(!store
        .rotate_refresh_token(&rotation(b"rt1", &next, 10_000))
        .await
        .unwrap());
    assert_unchanged(store.as_ref(), b"rt2").await;
    let mut foreign = web_successor(b"rt2");
    foreign.client_id = ClientId::parse("other").unwrap();
    assert!(!store
        .rotate_refresh_token(&rotation(b"rt1", &foreign, 200))
        .await
        .unwrap());
    assert_unchanged(store.as_ref(), b"rt2").await;
    let mut elsewhere = web_successor(b"rt2");
    elsewhere.grant_id = "g2".into();
    assert!(!store
        .rotate_refresh_token(&rotation(b"rt1", &elsewhere, 200))
        .await
        .unwrap());
    assert_unchanged(store.as_ref(), b"rt2").await;
}
