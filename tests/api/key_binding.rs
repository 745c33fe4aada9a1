//! Signing keys cannot be swapped through the database alone (issue 10, point 5): a row
//! whose public key was replaced is neither published nor accepted, and keys sealed before
//! the public key was bound keep working.

use latchkey::clock::Clock as _;
use latchkey::crypto::{default_signer, encode_jws, generate_rsa_key, GeneratedRsaKey};
use latchkey::domain::SigningKeyRecord;
use latchkey::service::keys::key_aad;
use latchkey::startup::Application;
use serde_json::Value;

use crate::helpers::{fixture_keys, spawn_app, test_master_key, Backend, TestApp};
use crate::oauth::*;

crate::both_stores!(
    a_public_key_replaced_in_the_database_is_neither_published_nor_accepted,
    a_replaced_current_key_stops_the_start_with_one_line,
    keys_sealed_before_the_binding_still_sign_and_are_resealed,
);

/// Runs one statement on the app's database, outside the app.
async fn sql(app: &TestApp, statement: &'static str, binds: &[&str]) {
    use sqlx::Connection as _;
    let url = &app.state.settings.database.url;
    macro_rules! run {
        ($conn:ty) => {{
            let mut conn = <$conn>::connect(url).await.unwrap();
            let mut q = sqlx::query(statement);
            for b in binds {
                q = q.bind(*b);
            }
            let done = q.execute(&mut conn).await.unwrap();
            assert_eq!(done.rows_affected(), 1, "{statement}");
        }};
    }
    match app.backend {
        Backend::Sqlite => run!(sqlx::SqliteConnection),
        Backend::Postgres => run!(sqlx::PgConnection),
    }
}

/// Swaps in `key`'s public key (and its thumbprint as kid) on the row of `kid`.
async fn replace_public_key(app: &TestApp, kid: &str, key: &GeneratedRsaKey) {
    sql(
        app,
        "UPDATE signing_keys SET kid = $1, public_n = $2, public_e = $3 WHERE kid = $4",
        &[&key.kid, &key.n, &key.e, kid],
    )
    .await;
}

async fn attacker_key() -> GeneratedRsaKey {
    tokio::task::spawn_blocking(|| generate_rsa_key(2048))
        .await
        .unwrap()
        .unwrap()
}

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let jwks: Value = app
        .http
        .get(app.url("/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// `token`'s claims and `typ`, signed again with `key` under its own kid.
fn forge(token: &str, key: &GeneratedRsaKey) -> String {
    use base64::Engine as _;
    let header = jsonwebtoken::decode_header(token).unwrap();
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    let signer = default_signer(&key.pkcs8_der).unwrap();
    encode_jws(signer.as_ref(), &key.kid, &header.typ.unwrap(), &claims).unwrap()
}

async fn userinfo_status(app: &TestApp, token: &str) -> u16 {
    app.http
        .get(app.url("/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn a_public_key_replaced_in_the_database_is_neither_published_nor_accepted(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (_, _, tokens) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let genuine = s(&tokens, "access_token");
    let (current, next) = fixture_keys().await;
    let attacker = attacker_key().await;
    let forged = forge(genuine, &attacker);

    // Someone with write access to the database, but not the key-encryption key, puts
    // their public key on the `next` row (with its thumbprint as kid), and on another
    // occasion only the modulus (keeping the kid).
    replace_public_key(&app, &next.kid, &attacker).await;
    app.state.keys.reload().await.unwrap();
    let kids = jwks_kids(&app).await;
    assert_eq!(
        kids,
        vec![current.kid.clone()],
        "only the intact key is published"
    );
    assert_eq!(
        userinfo_status(&app, &forged).await,
        401,
        "forged token accepted"
    );
    assert_eq!(userinfo_status(&app, genuine).await, 200);

    sql(
        &app,
        "UPDATE signing_keys SET kid = $1, public_n = $2 WHERE kid = $3",
        &[&next.kid, &attacker.n, &attacker.kid],
    )
    .await;
    app.state.keys.reload().await.unwrap();
    assert_eq!(jwks_kids(&app).await, vec![current.kid.clone()]);
    let forged_same_kid = {
        let mut k = attacker_key().await;
        k.kid.clone_from(&next.kid);
        k
    };
    assert_eq!(
        userinfo_status(&app, &forge(genuine, &forged_same_kid)).await,
        401
    );
    // A rotation does not promote it either.
    let out = app.cli(&["keys", "rotate", "--force"]);
    assert!(!out.status.success(), "{}", out.stdout);
    assert!(out.stderr.contains("cannot be promoted"), "{}", out.stderr);
}

async fn a_replaced_current_key_stops_the_start_with_one_line(backend: Backend) {
    let app = spawn_app(backend).await;
    let (current, _) = fixture_keys().await;
    let attacker = attacker_key().await;
    replace_public_key(&app, &current.kid, &attacker).await;

    // A running node keeps the set it verified.
    assert!(app.state.keys.reload().await.is_err());
    let kids = jwks_kids(&app).await;
    assert!(kids.contains(&current.kid) && !kids.contains(&attacker.kid));

    // A new node refuses to start: no usable current key.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let settings = latchkey::config::Settings::clone(&app.state.settings);
    let clock = std::sync::Arc::new(latchkey::clock::ManualClock::new(app.clock.now()));
    let Err(e) = Application::build_with_listener(settings, clock, listener).await else {
        panic!("started without a usable current key");
    };
    let shown = format!("{e:#}");
    assert!(shown.contains("no usable current signing key"), "{shown}");
    assert_eq!(shown.lines().count(), 1, "{shown}");
}

/// A fixture key sealed the old way: the kid alone as associated data.
fn legacy(record: &SigningKeyRecord) -> SigningKeyRecord {
    let master = test_master_key();
    let aad = key_aad(&record.kid, &record.alg, &record.public_n, &record.public_e);
    let der = master.open(&record.private_key_sealed, &aad).unwrap();
    let mut old = record.clone();
    old.private_key_sealed = master.seal(&der, record.kid.as_bytes()).unwrap();
    old
}

async fn keys_sealed_before_the_binding_still_sign_and_are_resealed(backend: Backend) {
    let (current, next) = fixture_keys().await;
    let app = crate::helpers::spawn_app_seeded(
        backend,
        "127.0.0.1",
        (legacy(&current), legacy(&next)),
        |_| {},
    )
    .await;
    let kids = jwks_kids(&app).await;
    assert_eq!(kids.len(), 2, "{kids:?}");
    let client = cc_client(&app, &[]).await;
    let res = token(&app, &client, &[("grant_type", "client_credentials")]).await;
    let tokens = assert_tokens(res).await;
    let header = jsonwebtoken::decode_header(s(&tokens, "access_token")).unwrap();
    assert_eq!(header.kid.as_deref(), Some(current.kid.as_str()));

    // Both rows are sealed with their public key bound now.
    let master = test_master_key();
    for k in app.state.store.list_published_keys().await.unwrap() {
        let aad = key_aad(&k.kid, &k.alg, &k.public_n, &k.public_e);
        assert!(
            master.open(&k.private_key_sealed, &aad).is_ok(),
            "{} not re-sealed",
            k.kid
        );
    }
}
