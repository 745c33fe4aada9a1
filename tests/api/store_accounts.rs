//! Contract suite for accounts: second factors, pending logins, shared throttle buckets,
//! session upgrade and listing, a user's grants, the audit filter and `require_mfa`.
//! Same tests on SQLite and PostgreSQL.

use std::sync::Arc;

use latchkey::domain::{
    AuditEvent, AuditFilter, Client, ClientId, ClientKind, Email, FactorKind, FactorUse, Grant,
    GrantType, PendingLoginRecord, Scope, Session, ThrottleBucket, User, UserId, Username,
};
use latchkey::store::{BucketUpdate, SessionUpgrade, Store, StoreError};

use crate::helpers::{fresh_store, Backend};

crate::both_stores!(
    a_totp_step_is_accepted_once,
    an_unconfirmed_totp_never_accepts_a_step,
    a_backup_code_spends_once,
    replacing_backup_codes_voids_the_old_set,
    deleting_totp_removes_its_backup_codes,
    a_pending_login_is_taken_once,
    expired_pending_logins_are_returned_then_purged,
    concurrent_bucket_updates_lose_nothing,
    buckets_deleted_and_recreated_concurrently_lose_nothing,
    a_call_waits_while_another_holds_its_bucket,
    bucket_updates_see_none_and_delete_with_none,
    old_buckets_and_abandoned_enrolments_are_purged,
    other_sessions_end_and_their_sids_return,
    an_upgrade_replaces_the_session_hash,
    a_users_live_sessions_are_listed_with_their_factors,
    a_users_live_grants_are_listed,
    audit_events_filter_by_user_and_since,
    require_mfa_round_trips,
);

pub(crate) async fn seeded(backend: Backend) -> (Arc<dyn Store>, tempfile::TempDir, User, User) {
    let (store, dir) = fresh_store(backend).await;
    let alice = user("alice");
    let bob = user("bob");
    store.insert_user(&alice).await.unwrap();
    store.insert_user(&bob).await.unwrap();
    (store, dir, alice, bob)
}

fn user(name: &str) -> User {
    User {
        id: UserId::generate(),
        username: Username::parse(name).unwrap(),
        email: Email::parse(&format!("{name}@example.com")).unwrap(),
        email_verified: false,
        password_hash: None,
        disabled: false,
        roles: vec![],
        created_at: 0,
        updated_at: 0,
        credentials_changed_at: 0,
        credentials_epoch: 1,
        must_enrol_factor: false,
    }
}

fn client(id: &str, require_mfa: bool) -> Client {
    Client {
        id: ClientId::parse(id).unwrap(),
        name: "Web".into(),
        kind: ClientKind::Confidential,
        secret_hash: Some(vec![1]),
        redirect_uris: vec![],
        post_logout_redirect_uris: vec![],
        grant_types: vec![GrantType::AuthorizationCode],
        scope: Scope::parse("openid").unwrap(),
        resources: vec![],
        access_token_ttl: None,
        first_party: false,
        require_mfa,
        end_offline_on_logout: false,
        introspect_any: false,
        tokens_revoked_at: 0,
        refresh_grace_secs: 0,
        created_at: 0,
    }
}

fn session(user: &User, sid: &str, last_seen_at: i64) -> Session {
    Session {
        id_hash: format!("hash-{sid}").into_bytes(),
        sid: sid.into(),
        user_id: user.id.clone(),
        user_agent: "test".into(),
        ip: "127.0.0.1".into(),
        auth_time: 100,
        credentials_epoch: 1,
        amr: vec!["pwd".into()],
        factors: vec![FactorUse {
            kind: FactorKind::Password,
            at: 100,
        }],
        created_at: 100,
        last_seen_at,
        expires_at: 1000,
        ended_at: None,
    }
}

fn grant(user: &User, id: &str, last_used_at: i64) -> Grant {
    Grant {
        id: id.into(),
        client_id: ClientId::parse("web").unwrap(),
        user_id: user.id.clone(),
        sid: "s1".into(),
        scope: Scope::parse("openid").unwrap(),
        resource: None,
        auth_time: 100,
        credentials_epoch: 1,
        amr: vec!["pwd".into()],
        created_at: 100,
        last_used_at,
        expires_at: 1000,
        revoked_at: None,
    }
}

fn codes(names: &[&str]) -> Vec<Vec<u8>> {
    names.iter().map(|n| n.as_bytes().to_vec()).collect()
}

/// Runs `n` copies of `f` at once; counts the ones that returned true. (Also used by
/// `store_passkeys`.)
pub(crate) async fn winners<F, Fut>(n: usize, f: F) -> usize
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|_| tokio::spawn(f())).collect();
    futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count()
}

/// Alice with a confirmed TOTP credential (step 10) and backup codes a, b, c.
async fn enrolled(backend: Backend) -> (Arc<dyn Store>, tempfile::TempDir, User) {
    let (store, dir, alice, _) = seeded(backend).await;
    let id = alice.id.as_str();
    store.put_pending_totp(id, b"sealed", 50).await.unwrap();
    assert!(store
        .confirm_totp(id, 10, &codes(&["a", "b", "c"]), 60)
        .await
        .unwrap());
    (store, dir, alice)
}

async fn a_totp_step_is_accepted_once(backend: Backend) {
    let (store, _dir, alice) = enrolled(backend).await;
    let id = alice.id.as_str().to_owned();
    let totp = store.get_totp(&id).await.unwrap().unwrap();
    assert_eq!(totp.confirmed_at, Some(60));
    assert_eq!(
        totp.last_used_step, 10,
        "the confirming code's step is used"
    );
    assert!(!store.confirm_totp(&id, 11, &[], 61).await.unwrap());
    let err = store.put_pending_totp(&id, b"other", 62).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(
        store.get_totp(&id).await.unwrap().unwrap().secret_sealed,
        b"sealed"
    );

    let wins = winners(32, || {
        let (store, id) = (store.clone(), id.clone());
        async move { store.use_totp_step(&id, 11).await.unwrap() }
    })
    .await;
    assert_eq!(wins, 1, "one of 32 concurrent uses of a step wins");
    assert!(!store.use_totp_step(&id, 11).await.unwrap(), "same step");
    assert!(!store.use_totp_step(&id, 10).await.unwrap(), "earlier step");
    assert!(store.use_totp_step(&id, 13).await.unwrap());
    assert!(
        !store.use_totp_step(&id, 12).await.unwrap(),
        "after a later one"
    );
    assert_eq!(
        store.get_totp(&id).await.unwrap().unwrap().last_used_step,
        13
    );
    assert!(!store.use_totp_step("nobody", 99).await.unwrap());
}

async fn an_unconfirmed_totp_never_accepts_a_step(backend: Backend) {
    let (store, _dir, alice, _) = seeded(backend).await;
    let id = alice.id.as_str();
    assert_eq!(store.get_totp(id).await.unwrap(), None);
    store.put_pending_totp(id, b"first", 50).await.unwrap();
    assert!(!store.use_totp_step(id, 1).await.unwrap());
    // A second enrolment replaces a pending one.
    store.put_pending_totp(id, b"second", 55).await.unwrap();
    let totp = store.get_totp(id).await.unwrap().unwrap();
    assert_eq!(totp.secret_sealed, b"second");
    assert_eq!((totp.created_at, totp.confirmed_at), (55, None));
    assert!(!store.use_totp_step(id, 1_000_000).await.unwrap());
    assert!(!store.confirm_totp("nobody", 1, &[], 60).await.unwrap());
}

async fn a_backup_code_spends_once(backend: Backend) {
    let (store, _dir, alice) = enrolled(backend).await;
    let id = alice.id.as_str().to_owned();
    assert_eq!(store.backup_codes_left(&id).await.unwrap(), 3);
    let wins = winners(32, || {
        let (store, id) = (store.clone(), id.clone());
        async move { store.use_backup_code(&id, b"a", 70).await.unwrap() }
    })
    .await;
    assert_eq!(wins, 1, "one of 32 concurrent uses of a code wins");
    assert!(!store.use_backup_code(&id, b"a", 71).await.unwrap());
    assert!(
        !store.use_backup_code(&id, b"zzz", 71).await.unwrap(),
        "unknown"
    );
    assert_eq!(store.backup_codes_left(&id).await.unwrap(), 2);
    assert!(store.use_backup_code(&id, b"b", 72).await.unwrap());
    assert_eq!(store.backup_codes_left(&id).await.unwrap(), 1);
}

async fn replacing_backup_codes_voids_the_old_set(backend: Backend) {
    let (store, _dir, alice) = enrolled(backend).await;
    let id = alice.id.as_str();
    store
        .replace_backup_codes(id, &codes(&["d", "e"]), 80)
        .await
        .unwrap();
    assert_eq!(store.backup_codes_left(id).await.unwrap(), 2);
    assert!(
        !store.use_backup_code(id, b"a", 81).await.unwrap(),
        "old set is void"
    );
    assert!(store.use_backup_code(id, b"d", 81).await.unwrap());
    assert_eq!(store.backup_codes_left(id).await.unwrap(), 1);
    // A used code of the old set does not survive a replacement either.
    store
        .replace_backup_codes(id, &codes(&["d"]), 90)
        .await
        .unwrap();
    assert!(store.use_backup_code(id, b"d", 91).await.unwrap());
}

async fn deleting_totp_removes_its_backup_codes(backend: Backend) {
    let (store, _dir, alice) = enrolled(backend).await;
    let id = alice.id.as_str();
    assert!(store.delete_totp(id).await.unwrap());
    assert_eq!(store.get_totp(id).await.unwrap(), None);
    assert_eq!(store.backup_codes_left(id).await.unwrap(), 0);
    assert!(!store.use_backup_code(id, b"c", 90).await.unwrap());
    assert!(!store.delete_totp(id).await.unwrap());
    // Enrolment can start again.
    store.put_pending_totp(id, b"again", 95).await.unwrap();
}

fn pending(id: &[u8], expires_at: i64) -> PendingLoginRecord {
    PendingLoginRecord {
        id_hash: id.to_vec(),
        state: r#"{"step":"second_factor"}"#.into(),
        created_at: 100,
        expires_at,
    }
}

async fn a_pending_login_is_taken_once(backend: Backend) {
    let (store, _dir, _, _) = seeded(backend).await;
    let record = pending(b"p1", 400);
    store.insert_pending_login(&record).await.unwrap();
    let err = store.insert_pending_login(&record).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.take_pending_login(b"p1").await.unwrap() })
        })
        .collect();
    let taken: Vec<_> = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .filter_map(|r| r.unwrap())
        .collect();
    assert_eq!(taken, vec![record], "one of 32 concurrent takes gets it");
    assert_eq!(store.take_pending_login(b"p1").await.unwrap(), None);
}

async fn expired_pending_logins_are_returned_then_purged(backend: Backend) {
    let (store, _dir, _, _) = seeded(backend).await;
    for (id, expires_at) in [(b"old-1", 200), (b"old-2", 200), (b"fresh", 900)] {
        store
            .insert_pending_login(&pending(id, expires_at))
            .await
            .unwrap();
    }
    // The caller checks expiry: the store returns what it holds.
    assert_eq!(
        store.take_pending_login(b"old-1").await.unwrap(),
        Some(pending(b"old-1", 200))
    );
    assert_eq!(store.purge_expired(500, 100).await.unwrap(), 1);
    assert_eq!(store.take_pending_login(b"old-2").await.unwrap(), None);
    assert!(store.take_pending_login(b"fresh").await.unwrap().is_some());
}

/// One more attempt, while fewer than five were counted.
fn count_to_five(current: &[Option<ThrottleBucket>]) -> Vec<Option<ThrottleBucket>> {
    current
        .iter()
        .map(|b| {
            let mut b = b.unwrap_or_default();
            if b.count < 5 {
                b.count += 1;
            }
            Some(b)
        })
        .collect()
}

fn keep(current: &[Option<ThrottleBucket>]) -> Vec<Option<ThrottleBucket>> {
    current.to_vec()
}

fn keys(names: &[&str]) -> Vec<String> {
    names.iter().map(|k| (*k).to_owned()).collect()
}

async fn concurrent_bucket_updates_lose_nothing(backend: Backend) {
    let (store, _dir, _, _) = seeded(backend).await;
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = store.clone();
            // Both key orders, so that lock ordering matters.
            let ks = if i % 2 == 0 {
                keys(&["user:alice", "ip:10.0.0.1"])
            } else {
                keys(&["ip:10.0.0.1", "user:alice"])
            };
            tokio::spawn(async move {
                store
                    .update_buckets(&ks, 1000, Box::new(count_to_five))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut returned: [Vec<i64>; 2] = Default::default();
    for r in futures_util::future::join_all(tasks).await {
        let out = r.unwrap();
        assert_eq!(out.len(), 2);
        for (counts, bucket) in returned.iter_mut().zip(out) {
            counts.push(bucket.unwrap().count);
        }
    }
    // Serialised, each call saw its predecessor's count: one call each made it 1, 2, 3, 4
    // and 5, and every later one found the limit reached. (Key orders differ per call, but
    // every count list is the same multiset.)
    let mut want = vec![1, 2, 3, 4];
    want.extend([5; 28]);
    for mut counts in returned {
        counts.sort_unstable();
        assert_eq!(
            counts, want,
            "an update was lost or a burst slipped past the limit"
        );
    }
    let now = store
        .update_buckets(&keys(&["user:alice", "ip:10.0.0.1"]), 1001, Box::new(keep))
        .await
        .unwrap();
    let counts: Vec<_> = now.iter().map(|b| b.unwrap().count).collect();
    assert_eq!(counts, vec![5, 5], "no lost update, no slip past the limit");
}

/// Calls that delete a bucket and calls that find it gone and create it again, all at
/// once, in both key orders: on PostgreSQL a call may be waiting for the row another call
/// deletes (it must then insert it, not lose it or fail). Each call moves each bucket
/// one step along none, 1, 2, none, ...; serialised, the steps seen are each seen as
/// often as the others.
async fn buckets_deleted_and_recreated_concurrently_lose_nothing(backend: Backend) {
    let (store, _dir, _, _) = seeded(backend).await;
    let step = |current: &[Option<ThrottleBucket>]| -> Vec<Option<ThrottleBucket>> {
        current
            .iter()
            .map(|b| match b {
                None => Some(ThrottleBucket {
                    count: 1,
                    window_start: 1000,
                    blocked_until: 0,
                }),
                Some(b) if b.count < 2 => Some(ThrottleBucket {
                    count: b.count + 1,
                    ..*b
                }),
                Some(_) => None,
            })
            .collect()
    };
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let store = store.clone();
            let ks = if i % 2 == 0 {
                keys(&["del:a", "del:b", "del:c"])
            } else {
                keys(&["del:c", "del:b", "del:a"])
            };
            tokio::spawn(async move {
                let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
                let record = seen.clone();
                let update: BucketUpdate = Box::new(move |current| {
                    record
                        .lock()
                        .unwrap()
                        .extend(current.iter().map(|b| b.map(|b| b.count)));
                    step(current)
                });
                store.update_buckets(&ks, 1000, update).await.unwrap();
                let seen = seen.lock().unwrap().clone();
                seen
            })
        })
        .collect();
    let mut seen = Vec::new();
    for r in futures_util::future::join_all(tasks).await {
        seen.extend(r.unwrap());
    }
    // 30 calls x 3 buckets, each bucket seen 10 times at each step.
    for (value, want) in [(None, 30), (Some(1), 30), (Some(2), 30)] {
        let got = seen.iter().filter(|v| **v == value).count();
        assert_eq!(got, want, "step {value:?} seen {got} times: {seen:?}");
    }
}

/// Every bucket counted one more.
fn counted_on(current: &[Option<ThrottleBucket>]) -> Vec<Option<ThrottleBucket>> {
    current
        .iter()
        .map(|b| {
            b.map(|b| ThrottleBucket {
                count: b.count + 1,
                ..b
            })
        })
        .collect()
}

/// While one call holds a bucket (its update runs, and waits half a second), a second
/// call on the same bucket and another key must not read it: its update runs only after
/// the first one's has returned and been written. Without the lock the second call would
/// read the bucket during that half second and both would count from the same value.
async fn a_call_waits_while_another_holds_its_bucket(backend: Backend) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (store, _dir, _, _) = seeded(backend).await;
    // The bucket exists before: the second call must wait for a lock, not for an insert.
    let first_count: BucketUpdate = Box::new(|_| {
        vec![Some(ThrottleBucket {
            count: 1,
            window_start: 1000,
            blocked_until: 0,
        })]
    });
    store
        .update_buckets(&keys(&["held"]), 1000, first_count)
        .await
        .unwrap();
    let first_inside = Arc::new(tokio::sync::Notify::new());
    let first_done = Arc::new(AtomicBool::new(false));
    let (inside, done) = (first_inside.clone(), first_done.clone());
    let first: BucketUpdate = Box::new(move |current| {
        inside.notify_one();
        std::thread::sleep(std::time::Duration::from_millis(500));
        done.store(true, Ordering::SeqCst);
        counted_on(current)
    });
    let holder = {
        let store = store.clone();
        tokio::spawn(async move { store.update_buckets(&keys(&["held"]), 1001, first).await })
    };
    first_inside.notified().await;
    let seen_after_first = Arc::new(AtomicBool::new(false));
    let flag = seen_after_first.clone();
    let second: BucketUpdate = Box::new(move |current| {
        flag.store(first_done.load(Ordering::SeqCst), Ordering::SeqCst);
        counted_on(current)
    });
    let out = store
        .update_buckets(&keys(&["other", "held"]), 1002, second)
        .await
        .unwrap();
    holder.await.unwrap().unwrap();
    assert!(
        seen_after_first.load(Ordering::SeqCst),
        "the second call read the bucket while the first held it"
    );
    assert_eq!(
        out[1].map(|b| b.count),
        Some(3),
        "it counted on from the first call's write"
    );
}

async fn bucket_updates_see_none_and_delete_with_none(backend: Backend) {
    let (store, _dir, _, _) = seeded(backend).await;
    let ks = keys(&["a", "b"]);
    let bucket = ThrottleBucket {
        count: 3,
        window_start: 90,
        blocked_until: 150,
    };
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record_then = |out: Vec<Option<ThrottleBucket>>| -> BucketUpdate {
        let seen = seen.clone();
        Box::new(move |cur: &[Option<ThrottleBucket>]| {
            seen.lock().unwrap().push(cur.to_vec());
            out
        })
    };
    let first = record_then(vec![Some(bucket), None]);
    let out = store.update_buckets(&ks, 100, first).await.unwrap();
    assert_eq!(out, vec![Some(bucket), None], "returns the update's output");
    let second = record_then(vec![None, None]);
    store.update_buckets(&ks, 101, second).await.unwrap();
    let third = record_then(vec![None, None]);
    store.update_buckets(&ks, 102, third).await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![vec![None, None], vec![Some(bucket), None], vec![None, None],],
        "keys without a bucket come in as None; None deletes"
    );
}

async fn old_buckets_and_abandoned_enrolments_are_purged(backend: Backend) {
    let (store, _dir, alice, bob) = seeded(backend).await;
    let set = |b: ThrottleBucket| -> BucketUpdate { Box::new(move |_| vec![Some(b)]) };
    let idle = ThrottleBucket {
        count: 1,
        window_start: 1000,
        blocked_until: 0,
    };
    let blocked = ThrottleBucket {
        count: 9,
        window_start: 1000,
        blocked_until: 200_000,
    };
    store
        .update_buckets(&keys(&["idle"]), 1000, set(idle))
        .await
        .unwrap();
    store
        .update_buckets(&keys(&["blocked"]), 1000, set(blocked))
        .await
        .unwrap();
    store
        .update_buckets(&keys(&["recent"]), 80_000, set(idle))
        .await
        .unwrap();
    // Alice abandoned her enrolment; Bob confirmed his.
    store
        .put_pending_totp(alice.id.as_str(), b"s", 1000)
        .await
        .unwrap();
    store
        .put_pending_totp(bob.id.as_str(), b"s", 1000)
        .await
        .unwrap();
    assert!(store
        .confirm_totp(bob.id.as_str(), 1, &[], 1000)
        .await
        .unwrap());

    let now = 1000 + 86_400 + 1;
    assert_eq!(store.purge_expired(now, 100).await.unwrap(), 2);
    let all = keys(&["blocked", "idle", "recent"]);
    let left = store
        .update_buckets(&all, now, Box::new(keep))
        .await
        .unwrap();
    assert_eq!(left, vec![Some(blocked), None, Some(idle)]);
    assert_eq!(store.get_totp(alice.id.as_str()).await.unwrap(), None);
    assert!(store.get_totp(bob.id.as_str()).await.unwrap().is_some());
}

async fn other_sessions_end_and_their_sids_return(backend: Backend) {
    let (store, _dir, alice, bob) = seeded(backend).await;
    for sid in ["s1", "s2", "s3"] {
        store
            .insert_session(&session(&alice, sid, 100))
            .await
            .unwrap();
    }
    let mut ended = session(&alice, "s4", 100);
    ended.ended_at = Some(50);
    store.insert_session(&ended).await.unwrap();
    store
        .insert_session(&session(&bob, "b1", 100))
        .await
        .unwrap();

    let mut sids = store
        .end_other_sessions(alice.id.as_str(), "s2", 200)
        .await
        .unwrap();
    sids.sort();
    assert_eq!(sids, vec!["s1".to_owned(), "s3".to_owned()]);
    let live: Vec<_> = store
        .list_user_sessions(alice.id.as_str(), 200)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.sid)
        .collect();
    assert_eq!(live, vec!["s2".to_owned()]);
    let s1 = store.get_session_by_sid("s1").await.unwrap().unwrap();
    assert_eq!(s1.ended_at, Some(200));
    let s4 = store.get_session_by_sid("s4").await.unwrap().unwrap();
    assert_eq!(s4.ended_at, Some(50), "an ended session keeps its end");
    assert!(store
        .get_session_by_sid("b1")
        .await
        .unwrap()
        .unwrap()
        .ended_at
        .is_none());
    assert!(store
        .end_other_sessions(alice.id.as_str(), "s2", 300)
        .await
        .unwrap()
        .is_empty());
}

async fn an_upgrade_replaces_the_session_hash(backend: Backend) {
    let (store, _dir, alice, _) = seeded(backend).await;
    let s = session(&alice, "s1", 100);
    store.insert_session(&s).await.unwrap();
    let factors = [
        FactorUse {
            kind: FactorKind::Password,
            at: 100,
        },
        FactorUse {
            kind: FactorKind::Totp,
            at: 150,
        },
    ];
    let amr = ["pwd".to_owned(), "otp".to_owned(), "mfa".to_owned()];
    let upgrade = SessionUpgrade {
        new_id_hash: b"new-hash",
        factors: &factors,
        amr: &amr,
        auth_time: 150,
        credentials_epoch: 1,
    };
    assert!(store.upgrade_session("s1", &upgrade).await.unwrap());
    assert_eq!(store.get_session(&s.id_hash).await.unwrap(), None);
    let got = store.get_session(b"new-hash").await.unwrap().unwrap();
    assert_eq!(got.sid, "s1");
    assert_eq!(got.factors, factors.to_vec());
    assert_eq!(got.amr, amr.to_vec());
    assert_eq!(got.auth_time, 150);
    assert_eq!(got.created_at, 100, "the rest stays");

    assert!(!store.upgrade_session("unknown", &upgrade).await.unwrap());
    assert!(store.end_session("s1", 160).await.unwrap());
    let again = SessionUpgrade {
        new_id_hash: b"newer-hash",
        ..upgrade
    };
    assert!(!store.upgrade_session("s1", &again).await.unwrap());
    assert_eq!(store.get_session(b"newer-hash").await.unwrap(), None);
}

async fn a_users_live_sessions_are_listed_with_their_factors(backend: Backend) {
    let (store, _dir, alice, bob) = seeded(backend).await;
    let mut older = session(&alice, "older", 200);
    older.factors.push(FactorUse {
        kind: FactorKind::BackupCode,
        at: 120,
    });
    store.insert_session(&older).await.unwrap();
    store
        .insert_session(&session(&alice, "newer", 300))
        .await
        .unwrap();
    let mut expired = session(&alice, "expired", 400);
    expired.expires_at = 500;
    store.insert_session(&expired).await.unwrap();
    let mut ended = session(&alice, "ended", 400);
    ended.ended_at = Some(450);
    store.insert_session(&ended).await.unwrap();
    store
        .insert_session(&session(&bob, "bobs", 400))
        .await
        .unwrap();

    let listed = store
        .list_user_sessions(alice.id.as_str(), 500)
        .await
        .unwrap();
    let sids: Vec<_> = listed.iter().map(|s| s.sid.as_str()).collect();
    assert_eq!(sids, vec!["newer", "older"], "most recently used first");
    assert_eq!(listed[1], older, "factors round-trip");
    assert_eq!(
        store.get_session_by_sid("older").await.unwrap(),
        Some(older)
    );
    assert!(store
        .list_user_sessions("nobody", 500)
        .await
        .unwrap()
        .is_empty());
}

async fn a_users_live_grants_are_listed(backend: Backend) {
    let (store, _dir, alice, bob) = seeded(backend).await;
    store.insert_client(&client("web", false)).await.unwrap();
    let rows = [
        grant(&alice, "g-old", 200),
        grant(&alice, "g-new", 300),
        Grant {
            expires_at: 500,
            ..grant(&alice, "g-expired", 400)
        },
        grant(&alice, "g-revoked", 400),
        grant(&bob, "g-bob", 400),
    ];
    for (i, g) in rows.iter().enumerate() {
        let hash = format!("code-{i}").into_bytes();
        store.insert_code(&code_for(g, &hash)).await.unwrap();
        assert!(store.redeem_code(&hash, g, None, 110).await.unwrap());
    }
    assert!(store.revoke_grant("g-revoked", 450).await.unwrap());
    let listed = store
        .list_user_grants(alice.id.as_str(), 500)
        .await
        .unwrap();
    let ids: Vec<_> = listed.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(ids, vec!["g-new", "g-old"], "most recently used first");
    assert_eq!(listed[1], rows[0]);
}

fn code_for(g: &Grant, hash: &[u8]) -> latchkey::domain::AuthorizationCode {
    latchkey::domain::AuthorizationCode {
        code_hash: hash.to_vec(),
        grant_id: g.id.clone(),
        client_id: g.client_id.clone(),
        user_id: g.user_id.clone(),
        sid: g.sid.clone(),
        redirect_uri: "https://app.example/cb".into(),
        scope: g.scope.clone(),
        nonce: None,
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

fn event(at: i64, user_id: &str) -> AuditEvent {
    AuditEvent {
        kind: "login_failed".into(),
        at,
        client_id: None,
        user_id: Some(user_id.into()),
        grant_id: None,
        ip: Some("10.0.0.1".into()),
        user_agent: Some(format!("agent/{at}")),
        detail: String::new(),
    }
}

async fn audit_events_filter_by_user_and_since(backend: Backend) {
    let (store, _dir, _, _) = seeded(backend).await;
    for e in [
        event(10, "u1"),
        event(20, "u2"),
        event(30, "u1"),
        event(40, "u2"),
    ] {
        store.record_event(&e).await.unwrap();
    }
    let ats = |events: Vec<AuditEvent>| events.iter().map(|e| e.at).collect::<Vec<_>>();
    let filter = |user: Option<&str>, since: Option<i64>, limit: u32| AuditFilter {
        user_id: user.map(str::to_owned),
        since,
        limit,
    };
    let all = store.list_events(&filter(None, None, 10)).await.unwrap();
    assert_eq!(all[0], event(40, "u2"), "user_agent round-trips");
    assert_eq!(ats(all), vec![40, 30, 20, 10]);
    let cases = [
        (filter(Some("u1"), None, 10), vec![30, 10]),
        (filter(None, Some(20), 10), vec![40, 30, 20]),
        (filter(Some("u1"), Some(20), 10), vec![30]),
        (filter(Some("u2"), None, 1), vec![40]),
        (filter(Some("nobody"), None, 10), vec![]),
    ];
    for (f, want) in cases {
        assert_eq!(ats(store.list_events(&f).await.unwrap()), want, "{f:?}");
    }
}

async fn require_mfa_round_trips(backend: Backend) {
    let (store, _dir, _, _) = seeded(backend).await;
    for (id, mfa) in [("strict", true), ("lax", false)] {
        let c = client(id, mfa);
        store.insert_client(&c).await.unwrap();
        assert_eq!(store.get_client(&c.id).await.unwrap(), Some(c));
    }
    let listed: Vec<_> = store
        .list_clients()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.id.as_str().to_owned(), c.require_mfa))
        .collect();
    assert!(listed.contains(&("strict".to_owned(), true)));
    assert!(listed.contains(&("lax".to_owned(), false)));
}
