//! Storage upkeep (issue 10, point 7): audit retention, indexes behind logout and password
//! changes, and grants that live no longer than what they protect.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use latchkey::clock::Clock as _;
use latchkey::domain::{AuditEvent, AuditFilter};
use serde_json::Value;

use crate::helpers::{spawn_app, spawn_app_with, Backend, TestApp};
use crate::oauth::*;

crate::both_stores!(
    housekeeping_deletes_audit_events_past_their_retention_in_batches,
    logout_and_password_change_queries_use_indexes,
    a_grant_without_a_refresh_token_expires_with_its_access_token,
);

fn event(at: i64, kind: &str) -> AuditEvent {
    AuditEvent {
        kind: kind.into(),
        at,
        client_id: None,
        user_id: None,
        grant_id: None,
        ip: None,
        user_agent: None,
        detail: String::new(),
    }
}

async fn housekeeping_deletes_audit_events_past_their_retention_in_batches(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.audit.retention_days = 30;
        s.housekeeping.batch_size = 2;
    })
    .await;
    let now = app.clock.now();
    let store = app.state.store.as_ref();
    let day = 86_400;
    for i in 0..5 {
        store
            .record_event(&event(now - 31 * day - i, "old"))
            .await
            .unwrap();
    }
    store
        .record_event(&event(now - 29 * day, "kept"))
        .await
        .unwrap();
    store.record_event(&event(now, "new")).await.unwrap();

    // The server's own housekeeping may run meanwhile; either way the old ones go.
    latchkey::service::housekeeping::run_once(&app.state)
        .await
        .unwrap();
    let left = store
        .list_events(&AuditFilter {
            user_id: None,
            since: None,
            limit: 100,
        })
        .await
        .unwrap();
    let kinds: Vec<&str> = left.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["new", "kept"]);
}

/// What logout and a password change run, with literals for the parameters (as in
/// `src/store/sql/sessions.rs` and `grants.rs`), plus the audit purge.
const QUERIES: &[(&str, &str)] = &[
    ("end_user_sessions", "UPDATE sessions SET ended_at = 1 WHERE user_id = 'u' AND ended_at IS NULL"),
    (
        "end_other_sessions",
        "UPDATE sessions SET ended_at = 1 WHERE user_id = 'u' AND sid <> 's' AND ended_at IS NULL \
         AND expires_at > 1 RETURNING sid",
    ),
    (
        "list_user_sessions",
        "SELECT sid FROM sessions WHERE user_id = 'u' AND ended_at IS NULL AND expires_at > 1 \
         ORDER BY last_seen_at DESC, sid",
    ),
    (
        "consume_session_codes",
        "UPDATE authorization_codes SET consumed_at = 1 WHERE sid = 's' AND consumed_at IS NULL",
    ),
    (
        "consume_user_codes",
        "UPDATE authorization_codes SET consumed_at = 1 WHERE user_id = 'u' AND consumed_at IS NULL",
    ),
    (
        "revoke_session_grants",
        "UPDATE grants SET revoked_at = 1 WHERE sid = 's' AND revoked_at IS NULL \
         AND NOT (TRUE AND (' ' || scope || ' ') LIKE '% offline\\_access %' ESCAPE '\\')",
    ),
    ("revoke_user_grants", "UPDATE grants SET revoked_at = 1 WHERE user_id = 'u' AND revoked_at IS NULL"),
    (
        "list_user_grants",
        "SELECT id FROM grants WHERE user_id = 'u' AND revoked_at IS NULL AND expires_at > 1 \
         ORDER BY last_used_at DESC, id",
    ),
    (
        "purge_audit_events",
        "DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events WHERE at < 1 LIMIT 10)",
    ),
];

const TABLES: &[&str] = &["sessions", "authorization_codes", "grants", "audit_events"];

async fn logout_and_password_change_queries_use_indexes(backend: Backend) {
    use sqlx::Connection as _;
    let app = spawn_app(backend).await;
    let url = app.state.settings.database.url.clone();
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            for (name, sql) in QUERIES {
                let rows: Vec<(i64, i64, i64, String)> =
                    sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                        .fetch_all(&mut conn)
                        .await
                        .unwrap_or_else(|e| panic!("{name}: {e}"));
                let plan: Vec<String> = rows.into_iter().map(|r| r.3).collect();
                // A step on one of our tables must SEARCH an index, never SCAN the table.
                for step in &plan {
                    if TABLES.iter().any(|t| step.contains(t)) {
                        assert!(step.starts_with("SEARCH"), "{name} scans: {plan:?}");
                    }
                }
            }
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            // With sequential scans priced out, a plan still shows one only when no index
            // can serve the statement.
            sqlx::query("SET enable_seqscan = off")
                .execute(&mut conn)
                .await
                .unwrap();
            for (name, sql) in QUERIES {
                let plan: Vec<String> =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
                        .fetch_all(&mut conn)
                        .await
                        .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(
                    !plan.iter().any(|l| l.contains("Seq Scan")),
                    "{name} scans: {plan:#?}"
                );
            }
        }
    }
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn grant_id(access_token: &str) -> String {
    let jti = claims(access_token)["jti"].as_str().unwrap().to_owned();
    let rest = jti.strip_prefix("g.").unwrap();
    rest.split_once('.').unwrap().0.to_owned()
}

async fn grant_expiry(app: &TestApp, tokens: &Value) -> (i64, i64) {
    let at = s(tokens, "access_token");
    let grant = app
        .state
        .store
        .get_grant(&grant_id(at))
        .await
        .unwrap()
        .unwrap();
    (grant.expires_at, claims(at)["exp"].as_i64().unwrap())
}

async fn a_grant_without_a_refresh_token_expires_with_its_access_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;

    let (_, _, tokens) = full_flow(&app, &client, USERNAME, "openid profile").await;
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");
    let (expires_at, exp) = grant_expiry(&app, &tokens).await;
    assert_eq!(expires_at, exp, "the grant ends with its only access token");

    // With a refresh token the family keeps its absolute lifetime.
    let (_, _, tokens) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let (expires_at, exp) = grant_expiry(&app, &tokens).await;
    let absolute = i64::try_from(app.state.settings.tokens.refresh_absolute_ttl_secs).unwrap();
    assert_eq!(expires_at, app.clock.now() + absolute);
    assert!(expires_at > exp);
}
