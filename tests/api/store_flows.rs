//! Contract suite for the flow records: sessions, consents, codes, grants, refresh
//! tokens, revocations, audit and housekeeping. Same tests on SQLite and PostgreSQL.

use std::sync::Arc;

use latchkey::domain::{
    AuditEvent, AuditFilter, AuthorizationCode, Client, ClientId, ClientKind, Email, Grant,
    GrantType, RefreshToken, Scope, Session, User, UserId, Username,
};
use latchkey::store::{RefreshRotation, Store};

use crate::helpers::{fresh_store, Backend};

crate::both_stores!(
    sessions_round_trip,
    consent_is_upserted,
    a_code_is_redeemed_once,
    a_code_is_read_with_its_session_and_user,
    thirty_two_concurrent_redemptions_have_one_winner,
    rotation_spends_once_and_keeps_the_family_scope,
    rotation_on_a_revoked_family_changes_nothing,
    thirty_two_concurrent_rotations_have_one_winner,
    logout_revokes_session_grants_optionally_keeping_offline,
    revoked_jtis_and_audit_events,
    housekeeping_deletes_only_expired_rows,
    logout_keeps_offline_only_for_the_exact_scope_token,
    a_users_sessions_and_grants_end_together,
);

pub(crate) async fn seeded(backend: Backend) -> (Arc<dyn Store>, tempfile::TempDir, User, Client) {
    let (store, dir) = fresh_store(backend).await;
    let (user, client) = seed(store.as_ref()).await;
    (store, dir, user, client)
}

/// Inserts user alice and client `web` into `store`.
pub(crate) async fn seed(store: &dyn Store) -> (User, Client) {
    let user = User {
        id: UserId::generate(),
        username: Username::parse("alice").unwrap(),
        email: Email::parse("alice@example.com").unwrap(),
        email_verified: false,
        password_hash: None,
        disabled: false,
        roles: vec![],
        created_at: 0,
        updated_at: 0,
        credentials_changed_at: 0,
        credentials_epoch: 1,
        must_enrol_factor: false,
    };
    let client = Client {
        id: ClientId::parse("web").unwrap(),
        name: "Web".into(),
        kind: ClientKind::Confidential,
        secret_hash: Some(vec![1]),
        redirect_uris: vec![],
        post_logout_redirect_uris: vec![],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scope: Scope::parse("openid offline_access").unwrap(),
        resources: vec![],
        access_token_ttl: None,
        first_party: false,
        require_mfa: false,
        end_offline_on_logout: false,
        introspect_any: false,
        tokens_revoked_at: 0,
        refresh_grace_secs: 0,
        created_at: 0,
    };
    store.insert_user(&user).await.unwrap();
    store.insert_client(&client).await.unwrap();
    (user, client)
}

pub(crate) fn session(user: &User, sid: &str) -> Session {
    Session {
        id_hash: sid.as_bytes().to_vec(),
        sid: sid.into(),
        user_id: user.id.clone(),
        user_agent: "test".into(),
        ip: "127.0.0.1".into(),
        auth_time: 100,
        credentials_epoch: 1,
        amr: vec!["pwd".into()],
        factors: vec![],
        created_at: 100,
        last_seen_at: 100,
        expires_at: 1000,
        ended_at: None,
    }
}

pub(crate) fn code(user: &User, client: &Client, hash: &[u8], grant: &str) -> AuthorizationCode {
    AuthorizationCode {
        code_hash: hash.to_vec(),
        grant_id: grant.into(),
        client_id: client.id.clone(),
        user_id: user.id.clone(),
        sid: "s1".into(),
        redirect_uri: "https://app.example/cb".into(),
        scope: Scope::parse("openid offline_access").unwrap(),
        nonce: Some("n".into()),
        code_challenge: "c".repeat(43),
        resource: None,
        auth_time: 100,
        credentials_epoch: 1,
        amr: vec!["pwd".into()],
        created_at: 100,
        expires_at: 160,
        consumed_at: None,
    }
}

pub(crate) fn grant(user: &User, client: &Client, id: &str, sid: &str, scope: &str) -> Grant {
    Grant {
        id: id.into(),
        client_id: client.id.clone(),
        user_id: user.id.clone(),
        sid: sid.into(),
        scope: Scope::parse(scope).unwrap(),
        resource: None,
        auth_time: 100,
        credentials_epoch: 1,
        amr: vec!["pwd".into()],
        created_at: 110,
        last_used_at: 110,
        expires_at: 10_000,
        revoked_at: None,
    }
}

pub(crate) fn refresh(client: &Client, hash: &[u8], grant: &str) -> RefreshToken {
    RefreshToken {
        token_hash: hash.to_vec(),
        grant_id: grant.into(),
        client_id: client.id.clone(),
        scope: Scope::parse("openid offline_access").unwrap(),
        created_at: 110,
        expires_at: 10_000,
        spent_at: None,
    }
}

/// A rotation of `presented` to `next` at `now`, with bounds no family here is near.
pub(crate) fn rotation<'a>(
    presented: &'a [u8],
    next: &'a RefreshToken,
    now: i64,
) -> RefreshRotation<'a> {
    RefreshRotation {
        presented_hash: presented,
        successor: next,
        successor_sealed: None,
        now,
        created_after: 0,
        used_after: 0,
    }
}

async fn sessions_round_trip(backend: Backend) {
    let (store, _dir, user, _) = seeded(backend).await;
    let s = session(&user, "s1");
    store.insert_session(&s).await.unwrap();
    assert_eq!(store.get_session(b"s1").await.unwrap(), Some(s.clone()));
    assert_eq!(
        store.get_session_by_sid("s1").await.unwrap(),
        Some(s.clone())
    );
    assert_eq!(
        store.get_session_with_user(b"s1").await.unwrap(),
        Some((s.clone(), user.clone())),
        "one read: the session and its user"
    );
    assert_eq!(store.get_session_with_user(b"nope").await.unwrap(), None);
    store.touch_session(b"s1", 150).await.unwrap();
    assert_eq!(
        store
            .get_session(b"s1")
            .await
            .unwrap()
            .unwrap()
            .last_seen_at,
        150
    );
    assert!(store.end_session("s1", 160).await.unwrap());
    assert!(
        !store.end_session("s1", 170).await.unwrap(),
        "ending twice changes nothing"
    );
    let ended = store.get_session(b"s1").await.unwrap().unwrap();
    assert_eq!(ended.ended_at, Some(160));
    assert!(!ended.is_active(161, 1800));
}

async fn a_code_is_read_with_its_session_and_user(backend: Backend) {
    let (store, _dir, user, client) = seeded(backend).await;
    let c = code(&user, &client, b"code1", "g1");
    store.insert_code(&c).await.unwrap();
    assert_eq!(
        store.get_code_in_session(b"code1").await.unwrap(),
        None,
        "no session s1 yet"
    );
    assert_eq!(store.get_code(b"code1").await.unwrap(), Some(c.clone()));
    let s = session(&user, "s1");
    store.insert_session(&s).await.unwrap();
    assert_eq!(
        store.get_code_in_session(b"code1").await.unwrap(),
        Some((c.clone(), s, user.clone()))
    );
    assert_eq!(store.get_code_in_session(b"other").await.unwrap(), None);
    // Redeemed without a refresh token: the grant alone (one statement on PostgreSQL).
    let g = grant(&user, &client, "g1", "s1", "openid");
    assert!(store.redeem_code(b"code1", &g, None, 120).await.unwrap());
    assert_eq!(store.get_grant("g1").await.unwrap(), Some(g));
    let (read, _, _) = store.get_code_in_session(b"code1").await.unwrap().unwrap();
    assert_eq!(read.consumed_at, Some(120), "a consumed code is still read");
}

async fn consent_is_upserted(backend: Backend) {
    let (store, _dir, user, client) = seeded(backend).await;
    assert_eq!(
        store
            .get_consent(user.id.as_str(), &client.id)
            .await
            .unwrap(),
        None
    );
    let first = Scope::parse("openid").unwrap();
    let second = Scope::parse("openid email").unwrap();
    store
        .save_consent(user.id.as_str(), &client.id, &first, 1)
        .await
        .unwrap();
    store
        .save_consent(user.id.as_str(), &client.id, &second, 2)
        .await
        .unwrap();
    assert_eq!(
        store
            .get_consent(user.id.as_str(), &client.id)
            .await
            .unwrap(),
        Some(second)
    );
}

async fn a_code_is_redeemed_once(backend: Backend) {
    let (store, _dir, user, client) = seeded(backend).await;
    store
        .insert_code(&code(&user, &client, b"code1", "g1"))
        .await
        .unwrap();
    let g = grant(&user, &client, "g1", "s1", "openid offline_access");
    let r = refresh(&client, b"rt1", "g1");
    assert!(store
        .redeem_code(b"code1", &g, Some(&r), 120)
        .await
        .unwrap());
    assert_eq!(
        store.get_code(b"code1").await.unwrap().unwrap().consumed_at,
        Some(120)
    );
    assert_eq!(store.get_grant("g1").await.unwrap(), Some(g.clone()));
    assert_eq!(store.get_refresh_token(b"rt1").await.unwrap(), Some(r));
    let mut g2 = g.clone();
    g2.id = "g-other".into();
    assert!(
        !store.redeem_code(b"code1", &g2, None, 121).await.unwrap(),
        "second redemption fails"
    );
    assert_eq!(
        store.get_grant("g-other").await.unwrap(),
        None,
        "and stores nothing"
    );
}

async fn thirty_two_concurrent_redemptions_have_one_winner(backend: Backend) {
    let (store, _dir, user, client) = seeded(backend).await;
    store
        .insert_code(&code(&user, &client, b"code1", "g1"))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = store.clone();
            let mut g = grant(&user, &client, &format!("g{i}"), "s1", "openid");
            g.id = format!("race-{i}");
            tokio::spawn(async move { store.redeem_code(b"code1", &g, None, 120).await.unwrap() })
        })
        .collect();
    let wins = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(wins, 1);
}

async fn rotation_spends_once_and_keeps_the_family_scope(backend: Backend) {
    let (store, _dir, user, client) = seeded(backend).await;
    store
        .insert_code(&code(&user, &client, b"c", "g1"))
        .await
        .unwrap();
    let g = grant(&user, &client, "g1", "s1", "openid offline_access");
    store
        .redeem_code(b"c", &g, Some(&refresh(&client, b"rt1", "g1")), 110)
        .await
        .unwrap();
    let next = refresh(&client, b"rt2", "g1");
    assert!(store
        .rotate_refresh_token(&rotation(b"rt1", &next, 200))
        .await
        .unwrap());
    assert_eq!(
        store
            .get_refresh_token(b"rt1")
            .await
            .unwrap()
            .unwrap()
            .spent_at,
        Some(200)
    );
    assert_eq!(
        store.get_grant("g1").await.unwrap().unwrap().last_used_at,
        200
    );
    let again = refresh(&client, b"rt3", "g1");
    assert!(
        !store
            .rotate_refresh_token(&rotation(b"rt1", &again, 201))
            .await
            .unwrap(),
        "a spent token never rotates"
    );
    assert_eq!(store.get_refresh_token(b"rt3").await.unwrap(), None);
}

async fn rotation_on_a_revoked_family_changes_nothing(backend: Backend) {
    let (store, _dir, user, client) = seeded(backend).await;
    store
        .insert_code(&code(&user, &client, b"c", "g1"))
        .await
        .unwrap();
    let g = grant(&user, &client, "g1", "s1", "openid offline_access");
    store
        .redeem_code(b"c", &g, Some(&refresh(&client, b"rt1", "g1")), 110)
        .await
        .unwrap();
    assert!(store.revoke_grant("g1", 150).await.unwrap());
    assert!(!store.revoke_grant("g1", 151).await.unwrap());
    assert!(!store
        .rotate_refresh_token(&rotation(b"rt1", &refresh(&client, b"rt2", "g1"), 200))
        .await
        .unwrap());
    assert_eq!(
        store
            .get_refresh_token(b"rt1")
            .await
            .unwrap()
            .unwrap()
            .spent_at,
        None,
        "rolled back"
    );
    assert_eq!(store.get_refresh_token(b"rt2").await.unwrap(), None);
}

async fn thirty_two_concurrent_rotations_have_one_winner(backend: Backend) {
    let (store, _dir, user, client) = seeded(backend).await;
    store
        .insert_code(&code(&user, &client, b"c", "g1"))
        .await
        .unwrap();
    let g = grant(&user, &client, "g1", "s1", "openid offline_access");
    store
        .redeem_code(b"c", &g, Some(&refresh(&client, b"rt1", "g1")), 110)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = store.clone();
            let next = refresh(&client, format!("next-{i}").as_bytes(), "g1");
            tokio::spawn(async move {
                store
                    .rotate_refresh_token(&rotation(b"rt1", &next, 200))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let wins = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(wins, 1);
}

async fn logout_revokes_session_grants_optionally_keeping_offline(backend: Backend) {
    let (store, _dir, user, client) = seeded(backend).await;
    for (i, scope) in ["openid", "openid offline_access"].iter().enumerate() {
        store
            .insert_code(&code(
                &user,
                &client,
                format!("c{i}").as_bytes(),
                &format!("g{i}"),
            ))
            .await
            .unwrap();
        let g = grant(&user, &client, &format!("g{i}"), "s1", scope);
        store
            .redeem_code(format!("c{i}").as_bytes(), &g, None, 110)
            .await
            .unwrap();
    }
    assert_eq!(
        store.revoke_session_grants("s1", true, 200).await.unwrap(),
        1
    );
    assert!(store
        .get_grant("g0")
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_some());
    assert!(
        store
            .get_grant("g1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none(),
        "offline kept"
    );
    assert_eq!(
        store.revoke_session_grants("s1", false, 201).await.unwrap(),
        1
    );
    assert!(store
        .get_grant("g1")
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_some());
    assert_eq!(
        store
            .revoke_session_grants("other", false, 202)
            .await
            .unwrap(),
        0
    );
}

async fn revoked_jtis_and_audit_events(backend: Backend) {
    let (store, _dir, _, _) = seeded(backend).await;
    assert!(!store.is_jti_revoked("j1").await.unwrap());
    store.revoke_jti("j1", 500).await.unwrap();
    store.revoke_jti("j1", 500).await.unwrap();
    assert!(store.is_jti_revoked("j1").await.unwrap());
    let event = AuditEvent {
        kind: "refresh_token_reuse".into(),
        at: 42,
        client_id: Some("web".into()),
        user_id: Some("u".into()),
        grant_id: Some("g1".into()),
        ip: Some("10.0.0.1".into()),
        user_agent: Some("curl/8".into()),
        detail: "d".into(),
    };
    store.record_event(&event).await.unwrap();
    let all = AuditFilter {
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.list_events(&all).await.unwrap(), vec![event]);
}

async fn housekeeping_deletes_only_expired_rows(backend: Backend) {
    let (store, _dir, user, client) = seeded(backend).await;
    store
        .insert_code(&code(&user, &client, b"old-1", "g-old-1"))
        .await
        .unwrap();
    store
        .insert_code(&code(&user, &client, b"old-2", "g-old-2"))
        .await
        .unwrap();
    let mut fresh = code(&user, &client, b"new", "g-new");
    fresh.expires_at = 5000;
    store.insert_code(&fresh).await.unwrap();
    store.revoke_jti("old", 100).await.unwrap();
    store.revoke_jti("new", 5000).await.unwrap();
    let mut s = session(&user, "s-old");
    s.expires_at = 100;
    store.insert_session(&s).await.unwrap();
    store
        .insert_session(&session(&user, "s-new"))
        .await
        .unwrap();
    // Batches of one: one expired code, one jti and one session go; the second code waits.
    assert_eq!(store.purge_expired(500, 1).await.unwrap(), 3);
    let gone = [
        store.get_code(b"old-1").await.unwrap(),
        store.get_code(b"old-2").await.unwrap(),
    ]
    .iter()
    .filter(|c| c.is_none())
    .count();
    assert_eq!(gone, 1, "the batch size bounds each statement");
    assert_eq!(store.purge_expired(500, 1).await.unwrap(), 1);
    assert_eq!(store.purge_expired(500, 1).await.unwrap(), 0);
    assert_eq!(store.get_code(b"old-1").await.unwrap(), None);
    assert_eq!(store.get_code(b"old-2").await.unwrap(), None);
    assert!(store.get_code(b"new").await.unwrap().is_some());
    assert!(!store.is_jti_revoked("old").await.unwrap());
    assert!(store.is_jti_revoked("new").await.unwrap());
    assert_eq!(store.get_session_by_sid("s-old").await.unwrap(), None);
    assert!(store.get_session_by_sid("s-new").await.unwrap().is_some());
}

async fn logout_keeps_offline_only_for_the_exact_scope_token(backend: Backend) {
    let (store, _dir, user, client) = seeded(backend).await;
    // `_` must not act as a LIKE wildcard: `offlineXaccess` is not `offline_access`.
    store
        .insert_code(&code(&user, &client, b"c", "g"))
        .await
        .unwrap();
    let g = grant(&user, &client, "g", "s1", "openid offlineXaccess");
    store.redeem_code(b"c", &g, None, 110).await.unwrap();
    assert_eq!(
        store.revoke_session_grants("s1", true, 200).await.unwrap(),
        1
    );
}

async fn a_users_sessions_and_grants_end_together(backend: Backend) {
    let (store, _dir, user, client) = seeded(backend).await;
    store.insert_session(&session(&user, "s1")).await.unwrap();
    store.insert_session(&session(&user, "s2")).await.unwrap();
    store
        .insert_code(&code(&user, &client, b"c", "g"))
        .await
        .unwrap();
    store
        .redeem_code(b"c", &grant(&user, &client, "g", "s1", "openid"), None, 110)
        .await
        .unwrap();
    assert_eq!(
        store
            .end_user_sessions(user.id.as_str(), 300)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .revoke_user_grants(user.id.as_str(), 300)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .end_user_sessions(user.id.as_str(), 301)
            .await
            .unwrap(),
        0
    );
    assert!(store
        .get_grant("g")
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_some());
    // Outstanding codes are spent too, so an in-flight redemption cannot make a new grant.
    store
        .insert_code(&code(&user, &client, b"c2", "g2"))
        .await
        .unwrap();
    store
        .insert_code(&code(&user, &client, b"c3", "g3"))
        .await
        .unwrap();
    assert_eq!(
        store.consume_session_codes("s1", 302).await.unwrap(),
        2,
        "both are under s1"
    );
    assert_eq!(
        store
            .consume_user_codes(user.id.as_str(), 303)
            .await
            .unwrap(),
        0,
        "already spent"
    );
    let g2 = grant(&user, &client, "g2", "s1", "openid");
    assert!(!store.redeem_code(b"c2", &g2, None, 304).await.unwrap());
    store
        .insert_code(&code(&user, &client, b"c4", "g4"))
        .await
        .unwrap();
    assert_eq!(
        store
            .consume_user_codes(user.id.as_str(), 305)
            .await
            .unwrap(),
        1
    );
}
