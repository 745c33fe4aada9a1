//! `spawn_app`, per-test databases, and the macro that runs a test on both stores.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::web;
use latchkey::clock::{Clock, ManualClock, SystemClock};
use latchkey::config::Settings;
use latchkey::crypto::kek::MasterKey;
use latchkey::domain::{KeyState, SigningKeyRecord};
use latchkey::http::AppState;
use latchkey::startup::Application;
use latchkey::store::{self, Store};

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn name(backend: Backend)` as `sqlite::name` and `postgres::name`.
/// `.ci/run` checks that the `postgres::` half ran.
#[macro_export]
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if $crate::helpers::postgres_available().await {
                        super::$name($crate::helpers::Backend::Postgres).await
                    }
                }
            )*
        }
    };
}

/// A fixed key-encryption key, so that signing keys generated once can be reused by every
/// test (RSA generation is the slowest thing a test would otherwise do).
pub const TEST_MASTER_KEY: &str = "bGF0Y2hrZXktdGVzdC1tYXN0ZXIta2V5LTMyYnl0ZXM";

pub fn test_master_key() -> MasterKey {
    MasterKey::load(Some(TEST_MASTER_KEY), std::path::Path::new("/nonexistent"))
        .expect("test master key")
}

/// The admin URL of the throw-away PostgreSQL database for this run.
fn pg_base_url() -> String {
    std::env::var("LATCHKEY_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/latchkey_test".into())
}

/// True when PostgreSQL is reachable. When LATCHKEY_REQUIRE_POSTGRES=1 (set by `.ci/run`)
/// an unreachable PostgreSQL fails the test instead of skipping it.
pub async fn postgres_available() -> bool {
    static AVAILABLE: tokio::sync::OnceCell<bool> = tokio::sync::OnceCell::const_new();
    let ok = *AVAILABLE
        .get_or_init(|| async { ensure_pg_database().await.is_ok() })
        .await;
    if !ok {
        let required = std::env::var("LATCHKEY_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "LATCHKEY_REQUIRE_POSTGRES=1 but PostgreSQL at {} is unreachable",
            pg_base_url()
        );
        eprintln!("skipping: PostgreSQL at {} is unreachable", pg_base_url());
    }
    ok
}

async fn ensure_pg_database() -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let url = pg_base_url();
    let opts: sqlx::postgres::PgConnectOptions = url.parse()?;
    let db = opts.get_database().unwrap_or("postgres").to_owned();
    let admin = opts.clone().database("postgres");
    let mut conn = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        sqlx::PgConnection::connect_with(&admin),
    )
    .await
    .map_err(|_| sqlx::Error::PoolTimedOut)??;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&db)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        let sql = format!("CREATE DATABASE \"{}\"", db.replace('"', ""));
        // Another test binary may race us; a duplicate is fine.
        let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await;
    }
    Ok(())
}

/// A database URL of its own for one test.
pub async fn fresh_database_url(backend: Backend, dir: &std::path::Path) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.join("latchkey.db").display()),
        Backend::Postgres => {
            use sqlx::Connection;
            let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(&pg_base_url())
                .await
                .expect("connect to PostgreSQL");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&mut conn)
                .await
                .expect("create schema");
            let sep = if pg_base_url().contains('?') {
                '&'
            } else {
                '?'
            };
            format!("{}{sep}options=-c%20search_path%3D{schema}", pg_base_url())
        }
    }
}

/// A migrated store of its own.
pub async fn fresh_store(backend: Backend) -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = fresh_database_url(backend, dir.path()).await;
    let store = store::connect(&url, 8).await.expect("connect store");
    (store, dir)
}

/// Two RSA keys generated once per test process, sealed under TEST_MASTER_KEY.
pub async fn fixture_keys() -> (SigningKeyRecord, SigningKeyRecord) {
    static KEYS: tokio::sync::OnceCell<(SigningKeyRecord, SigningKeyRecord)> =
        tokio::sync::OnceCell::const_new();
    KEYS.get_or_init(|| async {
        let master = test_master_key();
        let now = SystemClock.now() - 3600;
        let current =
            latchkey::service::keys::new_key_record(&master, 2048, KeyState::Current, now)
                .await
                .expect("generate key");
        let next = latchkey::service::keys::new_key_record(&master, 2048, KeyState::Next, now)
            .await
            .expect("generate key");
        (current, next)
    })
    .await
    .clone()
}

/// Settings for a test: cheap argon2, fast key refresh, a master key file in `dir`.
pub fn test_settings(dir: &std::path::Path, database_url: &str) -> Settings {
    let mut s = Settings::default();
    s.database.url = database_url.to_owned();
    s.database.max_connections = 8;
    s.keys.master_key_file = dir.join("master.key");
    s.keys.refresh_interval_secs = 1;
    s.keys.jwks_max_age_secs = 60;
    s.passwords.memory_kib = 1024;
    s.passwords.iterations = 1;
    s.passwords.insecure_fast_hashing = true;
    // Never write mail into the working tree; tests that read mail use `spawn_app_with_mail`.
    s.mail.dir = dir.join("mail");
    s.mail.poll_interval_secs = 1;
    s
}

/// Points `s` at an SMTP listener on 127.0.0.1:`port`, without TLS.
pub fn use_smtp_sink(s: &mut Settings, port: u16) {
    s.mail.transport = latchkey::config::MailTransportKind::Smtp;
    s.mail.smtp_host = "127.0.0.1".into();
    s.mail.smtp_port = port;
    s.mail.smtp_tls = latchkey::config::SmtpTls::None;
    s.mail.smtp_timeout_secs = 5;
}

/// Starts an SMTP listener and an app that mails through it.
pub async fn spawn_app_with_mail(
    backend: Backend,
    tweak: impl FnOnce(&mut Settings),
) -> (TestApp, crate::smtp::SmtpSink) {
    let sink = crate::smtp::SmtpSink::start().await;
    let port = sink.port;
    let app = spawn_app_with(backend, |s| {
        use_smtp_sink(s, port);
        tweak(s);
    })
    .await;
    (app, sink)
}

/// A running app of its own.
pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub http: reqwest::Client,
    pub state: web::Data<AppState>,
    pub clock: Arc<ManualClock>,
    pub backend: Backend,
    pub config_path: PathBuf,
    pub dir: tempfile::TempDir,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Starts an app whose settings `tweak` may adjust.
pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_on(backend, "127.0.0.1", tweak).await
}

fn set_mode_0600(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// The settings the CLI needs to reach the same database, as a TOML file.
fn write_config(dir: &std::path::Path, s: &Settings) -> PathBuf {
    let toml = format!(
        "issuer = {:?}\n[database]\nurl = {:?}\nmax_connections = 2\n[keys]\nmaster_key_file = {:?}\n\
         refresh_interval_secs = {}\njwks_max_age_secs = {}\n\
         [passwords]\nmemory_kib = 1024\niterations = 1\ninsecure_fast_hashing = true\n",
        s.issuer,
        s.database.url,
        s.keys.master_key_file.display().to_string(),
        s.keys.refresh_interval_secs,
        s.keys.jwks_max_age_secs,
    );
    let path = dir.join("latchkey.toml");
    std::fs::write(&path, toml).expect("write config");
    path
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Runs the real `latchkey` binary against this app's database.
    pub fn cli(&self, args: &[&str]) -> CliOutput {
        self.cli_with_stdin(args, None)
    }

    pub fn cli_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> CliOutput {
        let config = self.config_path.display().to_string();
        let mut full = vec!["--config", config.as_str()];
        full.extend_from_slice(args);
        run_cli(&full, &[], stdin, self.dir.path())
    }
}

pub struct CliOutput {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the binary in `cwd` with a clean LATCHKEY_* environment plus `env`.
pub fn run_cli(
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
    cwd: &std::path::Path,
) -> CliOutput {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    cmd.args(args)
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("LATCHKEY_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    let mut child = cmd.spawn().expect("spawn latchkey");
    if let Some(mut pipe) = child.stdin.take() {
        if let Some(input) = stdin {
            pipe.write_all(input.as_bytes()).expect("write stdin");
        }
    }
    let out = child.wait_with_output().expect("wait latchkey");
    CliOutput {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// Where an app listens, and a second node on the same database.

/// Starts an app listening on `host` (`"127.0.0.1"`, or `"[::]"` for a dual-stack socket
/// whose IPv4 peers appear as IPv4-mapped IPv6 addresses).
pub async fn spawn_app_on(
    backend: Backend,
    host: &str,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    spawn_app_seeded(backend, host, fixture_keys().await, tweak).await
}

/// Starts an app whose database holds `keys` (current, next) before it starts.
pub async fn spawn_app_seeded(
    backend: Backend,
    host: &str,
    keys: (SigningKeyRecord, SigningKeyRecord),
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = fresh_database_url(backend, dir.path()).await;
    write_master_key(dir.path());
    {
        let store = store::connect(&url, 2).await.expect("connect store");
        let (current, next) = keys;
        store
            .insert_initial_keys(&current, &next)
            .await
            .expect("seed keys");
    }
    start_node(backend, dir, &url, host, SystemClock.now(), tweak).await
}

/// A second server on `first`'s database: the same settings, master key and keys, its
/// own port, issuer and ManualClock (set to `first`'s now; the test keeps them in step).
pub async fn spawn_second_node(first: &TestApp) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    write_master_key(dir.path());
    let base = Settings::clone(&first.state.settings);
    let url = base.database.url.clone();
    start_node(
        first.backend,
        dir,
        &url,
        "127.0.0.1",
        first.clock.now(),
        |s| {
            let mut same = base;
            same.issuer = s.issuer.clone();
            same.listen = s.listen.clone();
            same.keys.master_key_file = s.keys.master_key_file.clone();
            *s = same;
        },
    )
    .await
}

fn write_master_key(dir: &std::path::Path) {
    std::fs::write(dir.join("master.key"), TEST_MASTER_KEY).expect("write master key");
    set_mode_0600(&dir.join("master.key"));
}

/// Starts a server on `url` (migrated and seeded with keys) listening on `host`, port 0.
async fn start_node(
    backend: Backend,
    dir: tempfile::TempDir,
    url: &str,
    host: &str,
    now: i64,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    let listener = TcpListener::bind(format!("{host}:0")).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut settings = test_settings(dir.path(), url);
    settings.issuer = format!("http://127.0.0.1:{port}");
    settings.listen = format!("{host}:{port}");
    tweak(&mut settings);
    let config_path = write_config(dir.path(), &settings);
    let clock = Arc::new(ManualClock::new(now));
    let app = Application::build_with_listener(settings, clock.clone(), listener)
        .await
        .expect("build app");
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .expect("client");
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        http,
        state,
        clock,
        backend,
        config_path,
        dir,
    }
}
