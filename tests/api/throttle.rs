//! Brute-force protection of the sign-in, end to end: identical answers for existing and
//! unknown accounts, per-address and per-account buckets, the known-device cookie, the
//! second-factor code bucket, the success gate, the argon2 queue and IPv4-mapped peers.
//! Delays are crossed by advancing the app's ManualClock, never by sleeping.

use latchkey::clock::Clock;
use latchkey::domain::{AuditFilter, Username};
use reqwest::Response;
use serde_json::Value;

use crate::accounts_support::*;
use crate::helpers::{spawn_app, spawn_app_on, spawn_app_with, Backend, TestApp};
use crate::oauth::*;

crate::both_stores!(
    throttled_answers_are_identical_for_existing_and_unknown_accounts,
    the_real_user_signs_in_from_another_address_while_an_attacker_keeps_failing,
    the_account_ceiling_slows_failing_addresses_but_never_new_or_known_devices,
    a_forged_device_cookie_does_not_bypass_the_throttle,
    code_guessing_is_held_to_its_bucket,
    parallel_code_guesses_are_held_to_the_limit,
    successful_sign_ins_are_rate_limited_per_account,
    a_full_argon2_queue_answers_503_with_retry_after,
    an_attempt_waiting_for_the_throttle_holds_its_hashing_place,
    one_address_waits_for_the_throttle_with_two_attempts_at_most,
    ipv4_mapped_addresses_are_one_client,
    an_unparseable_username_is_refused_like_a_wrong_password,
);

const WRONG: &str = "wrong password";
const DEVICE: &str = "latchkey_device";
const SESSION: &str = "latchkey_session";

/// The `Retry-After` seconds of a response (RFC 9110 §10.2.3); panics when absent.
fn retry_after(res: &Response) -> i64 {
    res.headers()
        .get("retry-after")
        .unwrap_or_else(|| panic!("{} without Retry-After", res.status()))
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds")
}

/// Asserts `res` is a 429 with a positive `Retry-After` and no session; returns the wait.
fn assert_throttled(res: &Response, what: &str) -> i64 {
    assert_eq!(res.status(), 429, "{what}");
    assert!(cookie_set(res, SESSION).is_none(), "{what}: no session");
    let wait = retry_after(res);
    assert!(wait >= 1, "{what}: Retry-After {wait}");
    wait
}

// ---------------------------------------------------------------------------------------
// Passwords.

async fn throttled_answers_are_identical_for_existing_and_unknown_accounts(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.login.free_failures_per_account_address = 3).await;
    alice(&app).await;
    let browser = Browser::new(&app);
    let mut answers = Vec::new();
    for name in [USERNAME, "nobody"] {
        for _ in 0..3 {
            assert_eq!(
                sign_in(&app, &browser, name, WRONG).await.status(),
                401,
                "{name}"
            );
        }
        // Even the right password is not checked now.
        let res = sign_in(&app, &browser, name, PASSWORD).await;
        let wait = assert_throttled(&res, name);
        answers.push((res.status(), wait, res.bytes().await.unwrap()));
    }
    assert_eq!(answers[0].0, answers[1].0, "the same status");
    assert_eq!(answers[0].1, answers[1].1, "the same Retry-After");
    assert_eq!(answers[0].2, answers[1].2, "byte-identical pages");
    assert!(
        browser.cookie(SESSION).is_none(),
        "no session cookie was set"
    );
    // The delay ends; the account was never locked.
    app.clock.advance(answers[0].1);
    sign_in_ok(&app, &browser, USERNAME).await;
}

async fn the_real_user_signs_in_from_another_address_while_an_attacker_keeps_failing(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    alice(&app).await;
    let attacker = Browser::new(&app);
    let free = i64::from(app.state.settings.login.free_failures_per_account_address);
    // The attacker keeps being checked: each delay is waited out, so each round trip is
    // either a checked failure (401) or a delay (429), and the delays grow.
    let mut checked = 0;
    let mut waits = Vec::new();
    let mut alice_signed_in = false;
    while checked < 12 {
        let res = sign_in(&app, &attacker, USERNAME, WRONG).await;
        match res.status().as_u16() {
            401 => checked += 1,
            429 => {
                let wait = assert_throttled(&res, "attacker");
                waits.push(wait);
                app.clock.advance(wait);
            }
            other => panic!("attacker got {other}"),
        }
        if checked == 8 && !alice_signed_in {
            // Mid-attack, with the attacker in a delay: alice, elsewhere, signs in at once.
            let res = sign_in(&app, &attacker, USERNAME, PASSWORD).await;
            assert_throttled(&res, "the attacker's address is slowed");
            let real = Browser::with_local_address(&app, "127.0.0.2");
            sign_in_ok(&app, &real, USERNAME).await;
            alice_signed_in = true;
        }
    }
    assert_eq!(
        i64::try_from(waits.len()).unwrap(),
        checked - free,
        "one delay per failure beyond the free ones: {waits:?}"
    );
    assert!(
        waits.windows(2).all(|w| w[1] >= w[0]),
        "growing delays: {waits:?}"
    );
    assert!(waits.last().unwrap() > waits.first().unwrap(), "{waits:?}");
    // The attacker is still slowed; alice still signs in from her address.
    assert_throttled(
        &sign_in(&app, &attacker, USERNAME, PASSWORD).await,
        "attacker",
    );
    sign_in_ok(
        &app,
        &Browser::with_local_address(&app, "127.0.0.2"),
        USERNAME,
    )
    .await;
}

/// The longest delay of the per-account ceiling in the known-device tests.
const ACCOUNT_CAP: i64 = 8;

async fn ceiling_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| {
        s.login.free_failures_per_account = 3;
        s.login.free_failures_per_account_address = 100;
        s.login.free_failures_per_address = 100;
        s.login.max_account_delay_secs = ACCOUNT_CAP.unsigned_abs();
    })
    .await
}

/// Signs `username` in once in a new browser; returns the known-device cookie it got.
async fn device_cookie_of(app: &TestApp, username: &str) -> String {
    let browser = Browser::new(app);
    sign_in_ok(app, &browser, username).await;
    browser.cookie(DEVICE).expect("a known-device cookie")
}

/// A new browser from 127.0.0.1 carrying only the `latchkey_device` cookie `value`.
fn browser_with_device(app: &TestApp, value: &str) -> Browser {
    let browser = Browser::new(app);
    browser.plant_cookie(DEVICE, value);
    browser
}

/// Attackers from 127.0.0.2-4 fail for alice, waiting out each delay, until the
/// per-account delay has reached its cap; it never goes beyond it. Ends inside a delay.
async fn attack_to_the_account_ceiling(app: &TestApp) {
    let mut longest = 0;
    let mut checked = 0;
    for round in 0..40 {
        let ip = format!("127.0.0.{}", 2 + round % 3);
        let res = sign_in(app, &Browser::with_local_address(app, &ip), USERNAME, WRONG).await;
        match res.status().as_u16() {
            401 => {
                checked += 1;
                if longest == ACCOUNT_CAP && checked > 8 {
                    return;
                }
            }
            429 => {
                let wait = assert_throttled(&res, &ip);
                assert!(wait <= ACCOUNT_CAP, "the account delay is capped: {wait}");
                longest = longest.max(wait);
                app.clock.advance(wait);
            }
            other => panic!("attacker {ip} got {other}"),
        }
    }
    panic!("the account delay never reached its cap ({longest} s after {checked} failures)");
}

async fn the_account_ceiling_slows_failing_addresses_but_never_new_or_known_devices(
    backend: Backend,
) {
    let app = ceiling_app(backend).await;
    let user = alice(&app).await;
    let bob = create_user(&app, "bob", &[]).await;
    let known = device_cookie_of(&app, USERNAME).await;
    device_cookie_of(&app, "bob").await;
    attack_to_the_account_ceiling(&app).await;

    // The ceiling holds back the addresses that failed for alice, even with the right
    // password; a device on an address that never failed, and the known device, get in.
    let attacker = Browser::with_local_address(&app, "127.0.0.2");
    let wait = assert_throttled(
        &sign_in(&app, &attacker, USERNAME, PASSWORD).await,
        "an address that failed",
    );
    assert!(wait <= ACCOUNT_CAP);
    let new_device = Browser::with_local_address(&app, "127.0.0.5");
    sign_in_ok(&app, &new_device, USERNAME).await;
    let device = browser_with_device(&app, &known);
    sign_in_ok(&app, &device, USERNAME).await;

    // The ceiling is audited for alice.
    let filter = AuditFilter {
        limit: 50,
        ..Default::default()
    };
    let events = app.state.store.list_events(&filter).await.unwrap();
    let throttled: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "login_throttled")
        .collect();
    assert!(!throttled.is_empty(), "{events:?}");
    assert!(throttled
        .iter()
        .all(|e| e.user_id.as_deref() == Some(user.id.as_str())));
    assert!(
        throttled.iter().any(|e| e.detail.contains("account")),
        "{throttled:?}"
    );
    // And admins find it by user with the CLI, without other users' events.
    let lines = |name: &str| -> Vec<Value> {
        let out = app.cli(&["audit", "list", "--user", name, "--json"]);
        assert!(out.status.success(), "{}", out.stderr);
        out.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let mine = lines(USERNAME);
    assert!(
        mine.iter().any(|l| l["kind"] == "login_throttled"),
        "{mine:?}"
    );
    assert!(
        mine.iter().all(|l| l["user_id"] == user.id.as_str()),
        "{mine:?}"
    );
    let bobs = lines("bob");
    assert!(
        bobs.iter().any(|l| l["kind"] == "login_succeeded"),
        "{bobs:?}"
    );
    assert!(bobs
        .iter()
        .all(|l| l["user_id"] == bob.id.as_str() && l["kind"] != "login_throttled"));

    // Never locked: once the capped delay has passed, even a failing address may try again.
    app.clock.advance(ACCOUNT_CAP);
    sign_in_ok(&app, &attacker, USERNAME).await;
}

async fn a_forged_device_cookie_does_not_bypass_the_throttle(backend: Backend) {
    let app = ceiling_app(backend).await;
    alice(&app).await;
    create_user(&app, "bob", &[]).await;
    let real = device_cookie_of(&app, USERNAME).await;
    let bobs = device_cookie_of(&app, "bob").await;
    attack_to_the_account_ceiling(&app).await;
    let split = |c: &str| -> (String, String, String) {
        let p: Vec<&str> = c.split('.').collect();
        (p[0].to_owned(), p[1].to_owned(), p[2].to_owned())
    };
    let (real_id, real_at, real_tag) = split(&real);
    let (bob_id, bob_at, bob_tag) = split(&bobs);
    let forged = [
        (
            "made up",
            format!("{}.{real_at}.{}", "A".repeat(43), "B".repeat(43)),
        ),
        ("bob's", bobs.clone()),
        (
            "alice's id with bob's tag",
            format!("{real_id}.{bob_at}.{bob_tag}"),
        ),
        (
            "bob's id with alice's tag",
            format!("{bob_id}.{real_at}.{real_tag}"),
        ),
        (
            "alice's, issued later",
            format!("{real_id}.{}.{real_tag}", app.clock.now()),
        ),
        ("not a cookie", "x".into()),
    ];
    // From an address that failed for alice, so the ceiling holds back all but her
    // genuine known device.
    for (what, value) in forged {
        let browser = Browser::with_local_address(&app, "127.0.0.2");
        browser.plant_cookie(DEVICE, &value);
        assert_throttled(&sign_in(&app, &browser, USERNAME, PASSWORD).await, what);
    }
    // The genuine cookie still gets through: the refusals were the forgeries'.
    let genuine = Browser::with_local_address(&app, "127.0.0.2");
    genuine.plant_cookie(DEVICE, &real);
    sign_in_ok(&app, &genuine, USERNAME).await;
}

// ---------------------------------------------------------------------------------------
// Second-factor codes.

/// A six-digit code that is not valid anywhere near the app's current time.
fn wrong_code(app: &TestApp, secret: &latchkey::authn::totp::TotpSecret) -> String {
    let now = app.clock.now();
    let near: Vec<String> = (-4..=4).map(|k| code(secret, now + 30 * k)).collect();
    (0..10)
        .map(|d| d.to_string().repeat(6))
        .find(|c| !near.contains(c))
        .unwrap()
}

/// Password in a new browser; returns the browser and its second-factor page.
async fn password_step(app: &TestApp, username: &str) -> (Browser, String) {
    let browser = Browser::new(app);
    let res = sign_in(app, &browser, username, PASSWORD).await;
    assert_eq!(res.status(), 200, "the second-factor page, not a delay");
    let page = assert_mfa_page(res).await;
    (browser, page)
}

/// Submits `n` wrong codes on `page`, each answered 401 with the page again.
async fn wrong_codes(
    app: &TestApp,
    browser: &Browser,
    mut page: String,
    n: usize,
    secret: &latchkey::authn::totp::TotpSecret,
) {
    for _ in 0..n {
        let res = submit_mfa(app, browser, &page, "totp", &wrong_code(app, secret)).await;
        assert_eq!(res.status(), 401);
        page = assert_mfa_page(res).await;
    }
}

async fn code_guessing_is_held_to_its_bucket(backend: Backend) {
    let app = spawn_app(backend).await;
    let secret = &user_with_totp(&app, "carol").await.1.secret;
    assert_eq!(app.state.settings.login.max_code_attempts, 5);
    let (first, page) = password_step(&app, "carol").await;
    wrong_codes(&app, &first, page, 3, secret).await;
    // A new pending login does not start a new count.
    let (second, page) = password_step(&app, "carol").await;
    let res = submit_mfa(&app, &second, &page, "totp", &wrong_code(&app, secret)).await;
    assert_eq!(res.status(), 401);
    let page = assert_mfa_page(res).await;
    let res = submit_mfa(&app, &second, &page, "totp", &wrong_code(&app, secret)).await;
    assert_eq!(res.status(), 401);
    let page = assert_mfa_page(res).await;
    // The sixth, even the right code, is refused.
    let res = submit_mfa(&app, &second, &page, "totp", &code_now(&app, secret)).await;
    let wait = assert_throttled(&res, "sixth code");
    assert!(wait <= 300, "within the code window: {wait}");
    // Guessing codes does not lock the password step, but its codes are held too.
    let (third, page) = password_step(&app, "carol").await;
    assert_throttled(
        &submit_mfa(&app, &third, &page, "totp", &code_now(&app, secret)).await,
        "a new pending login",
    );
    // After the code window, a right code on a new pending login signs in.
    app.clock.advance(300);
    let (fourth, page) = password_step(&app, "carol").await;
    let res = submit_mfa(&app, &fourth, &page, "totp", &code_now(&app, secret)).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    account_page(&app, &fourth).await;
}

async fn parallel_code_guesses_are_held_to_the_limit(backend: Backend) {
    // Enough successful passwords for 20 pending logins.
    let app = spawn_app_with(backend, |s| s.login.max_successes_per_account = 100).await;
    let secret = user_with_totp(&app, "carol").await.1.secret;
    let wrong = wrong_code(&app, &secret);
    let mut pending = Vec::new();
    for _ in 0..20 {
        pending.push(password_step(&app, "carol").await);
    }
    let guesses = pending.iter().map(|(browser, page)| {
        let (app, wrong) = (&app, &wrong);
        async move {
            submit_mfa(app, browser, page, "totp", wrong)
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((checked, refused), (5, 15), "{statuses:?}");
}

// ---------------------------------------------------------------------------------------
// Successes and the argon2 queue.

async fn successful_sign_ins_are_rate_limited_per_account(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.login.max_successes_per_account = 3).await;
    alice(&app).await;
    let start = app.state.passwords.verifications();
    for _ in 0..3 {
        sign_in_ok(&app, &Browser::new(&app), USERNAME).await;
    }
    assert_eq!(
        app.state.passwords.verifications(),
        start + 3,
        "each success is checked"
    );
    let res = sign_in(&app, &Browser::new(&app), USERNAME, PASSWORD).await;
    assert_throttled(&res, "the fourth success");
    assert_eq!(
        app.state.passwords.verifications(),
        start + 3,
        "refused before any argon2 work"
    );
    // Other accounts are not affected.
    create_user(&app, "bob", &[]).await;
    sign_in_ok(&app, &Browser::new(&app), "bob").await;
}

/// Passes over 1 MiB that keep one verification busy for a while (seconds).
const SLOW_PASSES: u32 = 8000;

/// Every throttle bucket's key, count and last write, read from the app's database.
async fn throttle_buckets(app: &TestApp) -> Vec<(String, i64, i64)> {
    use sqlx::Connection;
    const SQL: &str = "SELECT key, count, updated_at FROM throttle_buckets ORDER BY key";
    let url = &app.state.settings.database.url;
    match app.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::query_as(SQL).fetch_all(&mut conn).await.unwrap()
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query_as(SQL).fetch_all(&mut conn).await.unwrap()
        }
    }
}

/// True while the app's argon2 permit is taken.
fn hasher_busy(app: &TestApp) -> bool {
    format!("{:?}", app.state.passwords).contains("available_permits: 0")
}

async fn a_full_argon2_queue_answers_503_with_retry_after(backend: Backend) {
    // One free failure: if the refused attempt were counted, alice's next sign-in from
    // this address would be held back.
    let app = spawn_app_with(backend, |s| {
        s.passwords.max_concurrent = 1;
        s.passwords.max_queued = 0;
        s.login.free_failures_per_account_address = 1;
    })
    .await;
    alice(&app).await;
    // A stored hash with costly parameters (verification follows the stored string):
    // signing in as slowpoke holds the only argon2 place for seconds.
    create_user(&app, "slowpoke", &[]).await;
    let slow_hash = format!(
        "$argon2id$v=19$m=1024,t={SLOW_PASSES},p=1$c2FsdHNhbHRzYWx0c2FsdA${}",
        "A".repeat(43)
    );
    let name = Username::parse("slowpoke").unwrap();
    assert!(app
        .state
        .store
        .set_password_hash(&name, &slow_hash, app.clock.now())
        .await
        .unwrap()
        .is_some());
    // Alice, signed in to her account area, will also try to change her password.
    let me = Browser::new(&app);
    sign_in_ok(&app, &me, USERNAME).await;
    let slow = Browser::new(&app);
    let held = sign_in(&app, &slow, "slowpoke", PASSWORD);
    let meanwhile = async {
        while !hasher_busy(&app) {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // Later than every write so far: a write of a refused attempt would show.
        app.clock.advance(60);
        let buckets = throttle_buckets(&app).await;
        let res = sign_in(&app, &Browser::new(&app), USERNAME, PASSWORD).await;
        let new = "a much longer new passphrase";
        let fields = [
            ("current_password", PASSWORD),
            ("new_password", new),
            ("confirm_password", new),
        ];
        let change = post_account(&app, &me, "/account/password", &fields).await;
        // Only meaningful if the slow verification still held its place throughout.
        (res, change.status(), hasher_busy(&app), buckets)
    };
    let (held, (res, change, still_busy, buckets)) = tokio::join!(held, meanwhile);
    assert_eq!(change, 503, "the password change is refused too");
    assert_eq!(
        throttle_buckets(&app).await,
        buckets,
        "the refused attempts wrote no throttle bucket"
    );
    assert!(
        still_busy,
        "the slow verification ended too soon; raise SLOW_PASSES"
    );
    assert_eq!(res.status(), 503, "{}", res.text().await.unwrap());
    assert!(retry_after(&res) >= 1);
    assert!(cookie_set(&res, SESSION).is_none());
    assert_eq!(
        held.status(),
        401,
        "the slow hash was checked (and does not match)"
    );
    // The place is given back, and the refused attempt was not charged to alice.
    sign_in_ok(&app, &Browser::new(&app), USERNAME).await;
}

/// A transaction of another connection holding alice's success bucket (PostgreSQL: its
/// row lock) or the whole database (SQLite: the write lock): her sign-ins wait in the
/// throttle until it is released (rolled back).
enum ThrottleBlock {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl ThrottleBlock {
    async fn release(self) {
        let rollback = sqlx::raw_sql("ROLLBACK");
        match self {
            Self::Sqlite(mut c) => rollback.execute(&mut c).await.map(drop),
            Self::Postgres(mut c) => rollback.execute(&mut c).await.map(drop),
        }
        .unwrap();
    }
}

async fn block_alices_throttle(app: &TestApp) -> ThrottleBlock {
    use sqlx::Connection;
    let url = &app.state.settings.database.url;
    match app.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::raw_sql("BEGIN IMMEDIATE")
                .execute(&mut conn)
                .await
                .unwrap();
            ThrottleBlock::Sqlite(conn)
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            let now = app.clock.now();
            sqlx::query(
                "INSERT INTO throttle_buckets (key, count, window_start, blocked_until, \
                 updated_at) VALUES ('ok:alice', 0, $1, 0, $1) ON CONFLICT (key) DO NOTHING",
            )
            .bind(now)
            .execute(&mut conn)
            .await
            .unwrap();
            sqlx::raw_sql(
                "BEGIN; SELECT key FROM throttle_buckets WHERE key = 'ok:alice' FOR UPDATE",
            )
            .execute(&mut conn)
            .await
            .unwrap();
            ThrottleBlock::Postgres(conn)
        }
    }
}

/// How long an answer that must not wait for the blocked throttle may take: below
/// SQLite's busy timeout (10 s), after which a waiting attempt would be answered too.
const AT_ONCE: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits until `n` hashing places are taken; panics with `what` after 20 s.
async fn until_places_taken(app: &TestApp, n: usize, what: &str) {
    tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while app.state.passwords.places_taken() != n {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "{what}: {} places taken, not {n}",
            app.state.passwords.places_taken()
        )
    });
}

/// A sign-in takes its place in the hashing queue before it waits for the throttle, so
/// that no more attempts wait there than can be hashed: with the only place taken by an
/// attempt stuck in the throttle, the next attempt (from another address) is refused at
/// once (503, `Retry-After: 1`), without waiting for the throttle itself. (When places
/// were only looked at before the throttle, every attempt went on to wait there, and got
/// its 503 after that wait.)
async fn an_attempt_waiting_for_the_throttle_holds_its_hashing_place(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.passwords.max_concurrent = 1;
        s.passwords.max_queued = 0;
    })
    .await;
    alice(&app).await;
    create_user(&app, "bob", &[]).await;
    let block = block_alices_throttle(&app).await;
    let waiting = Browser::new(&app);
    let stuck = sign_in(&app, &waiting, USERNAME, PASSWORD);
    let meanwhile = async {
        until_places_taken(&app, 1, "the attempt waiting for the throttle took a place").await;
        let bob = Browser::with_local_address(&app, "127.0.0.2");
        let refused = tokio::time::timeout(AT_ONCE, sign_in(&app, &bob, "bob", PASSWORD))
            .await
            .expect("the refusal did not wait for the blocked throttle");
        let taken = app.state.passwords.places_taken();
        block.release().await;
        (refused, taken)
    };
    let (stuck, (refused, taken)) = tokio::join!(stuck, meanwhile);
    assert_eq!(refused.status(), 503);
    assert_eq!(retry_after(&refused), 1, "the hashing queue's refusal");
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("too many sign-ins at once"));
    assert_eq!(
        taken, 1,
        "the waiting attempt kept its place; bob took none"
    );
    assert_eq!(
        stuck.status(),
        303,
        "alice signed in once the throttle was free"
    );
    assert_eq!(
        app.state.passwords.places_taken(),
        0,
        "her place was given back"
    );
    sign_in_ok(&app, &Browser::with_local_address(&app, "127.0.0.2"), "bob").await;
}

/// Places are held while attempts wait for the throttle, so one address may have only
/// two attempts waiting there (`service::login::turns`): a third is refused at once with
/// 429 and takes no place, even for another account, while attempts from another address
/// go on. Otherwise one client could hold every place of the queue with attempts waiting
/// for a bucket lock, and every other sign-in would be refused.
async fn one_address_waits_for_the_throttle_with_two_attempts_at_most(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.passwords.max_concurrent = 1;
        s.passwords.max_queued = 3;
    })
    .await;
    alice(&app).await;
    create_user(&app, "bob", &[]).await;
    let block = block_alices_throttle(&app).await;
    let (first, second) = (Browser::new(&app), Browser::new(&app));
    let stuck = futures_util::future::join(
        sign_in(&app, &first, USERNAME, PASSWORD),
        sign_in(&app, &second, USERNAME, PASSWORD),
    );
    let elsewhere = Browser::with_local_address(&app, "127.0.0.2");
    let meanwhile = async {
        until_places_taken(&app, 2, "two attempts wait for the throttle").await;
        let third = Browser::new(&app);
        let refused = tokio::time::timeout(AT_ONCE, sign_in(&app, &third, "bob", PASSWORD))
            .await
            .expect("the third attempt from the address did not wait");
        let taken = app.state.passwords.places_taken();
        // Another address is not held back: its attempt takes a place (on SQLite it then
        // waits for the write lock, as every attempt does).
        let other = sign_in(&app, &elsewhere, "bob", PASSWORD);
        let watch = async {
            until_places_taken(&app, 3, "an attempt from another address took a place").await;
            block.release().await;
        };
        let (other, ()) = tokio::join!(other, watch);
        (refused, taken, other)
    };
    let ((a, b), (refused, taken, other)) = tokio::join!(stuck, meanwhile);
    assert_eq!(refused.status(), 429, "{}", refused.text().await.unwrap());
    assert_eq!(retry_after(&refused), 1);
    assert_eq!(taken, 2, "the refused attempt took no place");
    assert_eq!(
        (a.status().as_u16(), b.status().as_u16()),
        (303, 303),
        "alice's attempts went on"
    );
    assert_eq!(other.status(), 303, "bob signed in from another address");
    assert_eq!(
        app.state.passwords.places_taken(),
        0,
        "every place was given back"
    );
    sign_in_ok(&app, &Browser::new(&app), "bob").await;
}

// ---------------------------------------------------------------------------------------
// Addresses.

/// Signs in from `browser` with an `X-Forwarded-For` header.
async fn sign_in_forwarded(
    app: &TestApp,
    browser: &Browser,
    username: &str,
    forwarded: &str,
) -> u16 {
    let page = browser
        .http
        .get(app.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&page, "/login");
    browser
        .http
        .post(app.url("/login"))
        .header("content-type", FORM)
        .header("x-forwarded-for", forwarded)
        .body(form_body(&[
            ("username", username),
            ("password", WRONG),
            ("csrf", &csrf),
            ("request", ""),
        ]))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A dual-stack socket on this machine shows an IPv4 peer as `::ffff:a.b.c.d`.
fn dual_stack_sees_mapped_peers() -> bool {
    let listener = std::net::TcpListener::bind("[::]:0").expect("bind [::]");
    let port = listener.local_addr().unwrap().port();
    let _client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (_, peer) = listener.accept().unwrap();
    matches!(peer.ip(), std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some())
}

async fn ipv4_mapped_addresses_are_one_client(backend: Backend) {
    assert!(
        dual_stack_sees_mapped_peers(),
        "the test needs IPv4-mapped peers"
    );
    // The app listens on [::], so every peer it sees is IPv4-mapped.
    let app = spawn_app_on(backend, "[::]", |s| {
        s.login.free_failures_per_address = 2;
        s.proxy.trusted = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    // Peer ::ffff:127.0.0.2 fails twice; its address is now slowed.
    let direct = Browser::with_local_address(&app, "127.0.0.2");
    for name in ["u1", "u2"] {
        assert_eq!(sign_in(&app, &direct, name, WRONG).await.status(), 401);
    }
    assert_throttled(&sign_in(&app, &direct, "u3", WRONG).await, "direct");
    // Through the proxy at ::ffff:127.0.0.1 (trusted as 127.0.0.1), the same client in
    // either spelling is slowed too; another client is not.
    let proxy = Browser::new(&app);
    assert_eq!(
        sign_in_forwarded(&app, &proxy, "u4", "127.0.0.2").await,
        429
    );
    assert_eq!(
        sign_in_forwarded(&app, &proxy, "u5", "::ffff:127.0.0.2").await,
        429
    );
    assert_eq!(
        sign_in_forwarded(&app, &proxy, "u6", "127.0.0.3").await,
        401
    );
    // The audit trail names the client in its IPv4 form.
    let filter = AuditFilter {
        limit: 10,
        ..Default::default()
    };
    let events = app.state.store.list_events(&filter).await.unwrap();
    let ips: Vec<_> = events.iter().filter_map(|e| e.ip.as_deref()).collect();
    assert!(
        ips.contains(&"127.0.0.2") && ips.contains(&"127.0.0.3"),
        "{events:?}"
    );
    assert!(
        ips.iter().all(|ip| ["127.0.0.2", "127.0.0.3"].contains(ip)),
        "{ips:?}"
    );
}

async fn an_unparseable_username_is_refused_like_a_wrong_password(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.login.free_failures_per_account_address = 2).await;
    alice(&app).await;
    let browser = Browser::new(&app);
    for name in ["not a name", "", "x y", "<script>", &"z".repeat(5000)] {
        let res = sign_in(&app, &browser, name, PASSWORD).await;
        assert!(
            matches!(res.status().as_u16(), 401 | 429),
            "{name:.20}: {}",
            res.status()
        );
    }
    // They share one bucket, apart from every real account's.
    let res = sign_in(&app, &browser, "still not a name", PASSWORD).await;
    assert_eq!(res.status(), 429);
    sign_in_ok(&app, &browser, USERNAME).await;
}
