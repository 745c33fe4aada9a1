use super::*;

const SMALL: PasswordParams = PasswordParams {
    memory_kib: 1024,
    iterations: 1,
    parallelism: 1,
};

fn pw(s: &str) -> Password {
    Password::parse_any(s).unwrap()
}

#[tokio::test]
async fn hash_then_verify() {
    let hasher = PasswordHasher::new(SMALL, 2).unwrap();
    let stored = hasher.hash(&pw("correct horse")).await.unwrap();
    assert!(
        stored.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"),
        "{stored}"
    );
    assert!(hasher
        .verify(Some(&stored), &pw("correct horse"))
        .await
        .unwrap());
    assert!(!hasher
        .verify(Some(&stored), &pw("wrong horse"))
        .await
        .unwrap());
}

#[tokio::test]
async fn salts_differ() {
    let hasher = PasswordHasher::new(SMALL, 2).unwrap();
    let a = hasher.hash(&pw("same password")).await.unwrap();
    let b = hasher.hash(&pw("same password")).await.unwrap();
    assert_ne!(a, b);
}

#[tokio::test]
async fn unknown_user_is_false_after_the_same_work() {
    let hasher = PasswordHasher::new(
        PasswordParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        1,
    )
    .unwrap();
    let stored = hasher.hash(&pw("anything")).await.unwrap();
    let before = hasher.verifications();
    assert!(!hasher.verify(Some(&stored), &pw("wrong")).await.unwrap());
    assert_eq!(
        hasher.verifications(),
        before + 1,
        "a wrong password: one argon2 run"
    );
    assert!(!hasher.verify(None, &pw("anything")).await.unwrap());
    assert_eq!(
        hasher.verifications(),
        before + 2,
        "an unknown user: one argon2 run too"
    );
    assert!(!hasher
        .verify(Some("not a phc string"), &pw("anything"))
        .await
        .unwrap());
    assert_eq!(
        hasher.verifications(),
        before + 3,
        "a corrupt hash: one argon2 run too"
    );
}

#[tokio::test]
async fn other_params_still_verify() {
    let old = PasswordHasher::new(
        PasswordParams {
            memory_kib: 2048,
            iterations: 2,
            parallelism: 2,
        },
        1,
    )
    .unwrap();
    let stored = old.hash(&pw("legacy password")).await.unwrap();
    let current = PasswordHasher::new(SMALL, 1).unwrap();
    assert!(current
        .verify(Some(&stored), &pw("legacy password"))
        .await
        .unwrap());
    assert!(!current.verify(Some(&stored), &pw("other")).await.unwrap());
}

#[tokio::test]
async fn unparseable_hash_is_false() {
    let hasher = PasswordHasher::new(SMALL, 1).unwrap();
    for bad in ["", "not a phc string", "$argon2id$v=19$m=1024"] {
        assert!(!hasher.verify(Some(bad), &pw("whatever")).await.unwrap());
    }
}

#[tokio::test]
async fn concurrency_is_bounded() {
    let hasher = PasswordHasher::new(SMALL, 2).unwrap();
    let stored = hasher.hash(&pw("burst password")).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let hasher = hasher.clone();
            let stored = stored.clone();
            tokio::spawn(async move {
                hasher
                    .verify(Some(&stored), &pw("burst password"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap());
    }
    assert_eq!(hasher.permits.available_permits(), 2);
}

#[test]
fn bad_params_rejected() {
    let zero_mem = PasswordParams {
        memory_kib: 1,
        iterations: 1,
        parallelism: 1,
    };
    assert!(PasswordHasher::new(zero_mem, 1).is_err());
    assert!(PasswordHasher::new(SMALL, 0).is_err());
}

#[test]
fn debug_shows_no_hash() {
    let hasher = PasswordHasher::new(SMALL, 1).unwrap();
    assert!(!format!("{hasher:?}").contains("$argon2"));
}

#[tokio::test]
async fn a_full_queue_answers_busy_at_once_and_frees_its_places() {
    let hasher = PasswordHasher::with_queue(SMALL, 1, 1).unwrap();
    let stored = hasher.hash(&pw("queued password")).await.unwrap();
    // Hold the only permit, so admitted checks wait.
    let held = hasher.permits.clone().acquire_owned().await.unwrap();
    let waiting: Vec<_> = (0..2)
        .map(|_| {
            let (hasher, stored) = (hasher.clone(), stored.clone());
            tokio::spawn(async move { hasher.verify(Some(&stored), &pw("queued password")).await })
        })
        .collect();
    while hasher.admitted.load(Ordering::Acquire) < 2 {
        tokio::task::yield_now().await;
    }
    assert!(!hasher.has_room(), "the queue is full");
    let refused = hasher.verify(Some(&stored), &pw("queued password")).await;
    assert!(matches!(refused, Err(CryptoError::Busy)), "{refused:?}");
    drop(held);
    for task in waiting {
        assert!(task.await.unwrap().unwrap());
    }
    assert_eq!(hasher.admitted.load(Ordering::Acquire), 0);
    assert!(hasher.has_room());
    assert!(hasher
        .verify(Some(&stored), &pw("queued password"))
        .await
        .unwrap());
}

/// A PHC string made by the argon2 crate's own allocating hasher, with `params`.
fn reference_hash(password: &str, params: Params) -> String {
    use argon2::PasswordHasher as _;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_with_salt(password.as_bytes(), b"0123456789abcdef")
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn pooled_hashes_interoperate_with_the_argon2_crate() {
    use argon2::PasswordVerifier as _;
    let hasher = PasswordHasher::new(SMALL, 2).unwrap();
    // Ours verify with the crate's verifier...
    let ours = hasher.hash(&pw("correct horse")).await.unwrap();
    let parsed = PasswordHash::new(&ours).unwrap();
    assert!(Argon2::default()
        .verify_password(b"correct horse", &parsed)
        .is_ok());
    // ...and the crate's verify with ours: the same cost, a smaller one, and a larger one
    // than the pool's buffers (hashes stored before a cost change).
    for (m, t) in [(1024, 1), (512, 2), (4096, 1)] {
        let stored = reference_hash("correct horse", Params::new(m, t, 1, None).unwrap());
        assert!(
            hasher
                .verify(Some(&stored), &pw("correct horse"))
                .await
                .unwrap(),
            "{stored}"
        );
        assert!(!hasher
            .verify(Some(&stored), &pw("correct horsf"))
            .await
            .unwrap());
    }
}

#[tokio::test]
async fn working_memory_is_reused_not_reallocated() {
    let hasher = PasswordHasher::new(SMALL, 2).unwrap();
    let stored = hasher.hash(&pw("p")).await.unwrap();
    let runs: Vec<_> = (0..16)
        .map(|_| {
            let h = hasher.clone();
            let s = stored.clone();
            tokio::spawn(async move { h.verify(Some(&s), &pw("p")).await })
        })
        .collect();
    for r in futures_util::future::join_all(runs).await {
        let _ = r.unwrap();
    }
    assert!(
        hasher.memory.pooled() <= 2,
        "at most one buffer per permitted concurrent hash"
    );
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn idle_hashing_threads_give_the_working_memory_back() {
    let hasher = PasswordHasher::build(SMALL, 1, 4, std::time::Duration::from_millis(50)).unwrap();
    let stored = hasher.hash(&pw("p")).await.unwrap();
    assert_eq!(hasher.memory.pooled(), 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while hasher.memory.given_back() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the idle threads never gave the memory back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // A buffer given back still hashes, and is pooled again.
    assert!(hasher.verify(Some(&stored), &pw("p")).await.unwrap());
    assert!(!hasher.verify(Some(&stored), &pw("q")).await.unwrap());
    assert_eq!(hasher.memory.pooled(), 1);
}
