//! The one composition root: store, clock, keys, hashers, background tasks, HTTP server.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{middleware, web, App, HttpServer};

use crate::clock::{Clock, SystemClock};
use crate::config::{Settings, SqliteSynchronous};
use crate::crypto::kek::{MasterKey, MASTER_KEY_ENV};
use crate::crypto::password::{PasswordHasher, PasswordParams};
use crate::crypto::token::SecretHasher;
use crate::http::{self, AppState};
use crate::service::clients::ClientCache;
use crate::service::login::device::KnownDevices;
use crate::service::login::throttle::LoginThrottle;
use crate::service::mfa::Factors;
use crate::service::KeyRing;
use crate::store::{self, Store};

/// What both the server and the admin CLI need: storage and secrets, opened once.
pub struct Context {
    /// Validated settings.
    pub settings: Arc<Settings>,
    /// Storage, migrated.
    pub store: Arc<dyn Store>,
    /// The key-encryption key.
    pub master: Arc<MasterKey>,
    /// argon2id, bounded.
    pub passwords: Arc<PasswordHasher>,
    /// Keyed hash for client secrets.
    pub secrets: Arc<SecretHasher>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

impl Context {
    /// Connects and migrates the store, loads (or creates) the key-encryption key.
    pub async fn open(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let master = MasterKey::load(
            std::env::var(MASTER_KEY_ENV).ok().as_deref(),
            &settings.keys.master_key_file,
        )?;
        let db = &settings.database;
        let options = store::ConnectOptions {
            max_connections: db.max_connections,
            sqlite_sync_every_commit: db.sqlite_synchronous == SqliteSynchronous::Full,
        };
        let store = store::connect_with(&db.url, options).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot open database {}: {}",
                crate::config::redact_url(&settings.database.url),
                http::error::chain(&e)
            )
        })?;
        let p = &settings.passwords;
        let passwords = PasswordHasher::with_queue(
            PasswordParams {
                memory_kib: p.memory_kib,
                iterations: p.iterations,
                parallelism: p.parallelism,
            },
            p.max_concurrent,
            p.max_queued,
        )?;
        Ok(Self {
            secrets: Arc::new(SecretHasher::new(&master)?),
            master: Arc::new(master),
            passwords: Arc::new(passwords),
            settings: Arc::new(settings),
            store,
            clock,
        })
    }
}

/// A running server.
pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Application {
    /// Builds the app with the wall clock.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// Builds the app: opens storage, ensures signing keys, binds `listen`.
    pub async fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let ctx = Context::open(settings, clock).await?;
        let listener = TcpListener::bind(ctx.settings.listen_addr()?)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", ctx.settings.listen))?;
        Self::start(ctx, listener).await
    }

    /// Builds the app on an already bound listener (tests bind port 0 first, so the
    /// issuer can name the port).
    pub async fn build_with_listener(
        settings: Settings,
        clock: Arc<dyn Clock>,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        Self::start(Context::open(settings, clock).await?, listener).await
    }

    async fn start(ctx: Context, listener: TcpListener) -> anyhow::Result<Self> {
        let keys = KeyRing::init(
            ctx.store.clone(),
            ctx.master.clone(),
            &ctx.settings,
            ctx.clock.now(),
        )
        .await?;
        let refresh = Duration::from_secs(ctx.settings.keys.refresh_interval_secs);
        let clients = Arc::new(ClientCache::new(ctx.store.as_ref()).await?);
        let clients_every = Duration::from_secs(ctx.settings.clients.cache_refresh_secs);
        let mut background = vec![
            keys.spawn_refresher(refresh),
            clients.spawn_refresher(ctx.store.clone(), clients_every),
        ];
        let state = web::Data::new(AppState {
            settings: ctx.settings.clone(),
            store: ctx.store,
            keys,
            clock: ctx.clock,
            passwords: ctx.passwords,
            secrets: ctx.secrets,
            clients,
            login_throttle: LoginThrottle::new(&ctx.settings.login),
            devices: KnownDevices::new(&ctx.master, ctx.settings.login.known_device_days)?,
            factors: Factors::new(ctx.master.clone(), &ctx.settings.issuer)?,
            passkeys: crate::service::passkeys::Passkeys::new(&ctx.settings)?,
            account_csrf: SecretHasher::for_purpose(&ctx.master, b"account-csrf")?,
            refresh_successors: MasterKey::from_bytes(ctx.master.derive_key(b"refresh-successor")?),
            mailer: crate::service::mail::Mailer::new(&ctx.master, &ctx.settings.issuer)?,
        });
        background.push(crate::service::housekeeping::spawn(
            state.clone().into_inner(),
        ));
        background.push(
            crate::service::mail::worker::spawn(state.clone().into_inner())
                .map_err(|e| anyhow::anyhow!("cannot start the mail outbox: {e}"))?,
        );
        background.push(crate::service::recovery::spawn(state.clone().into_inner()));
        let port = listener.local_addr()?.port();
        let https = ctx.settings.is_https();
        let data = state.clone();
        let limits = &ctx.settings.server;
        // The kernel queue in front of a full server: `listen(2)` again on the bound
        // socket sets its backlog (the std listener was created with 128).
        socket2::SockRef::from(&listener)
            .listen(i32::try_from(limits.backlog).unwrap_or(i32::MAX))?;
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .wrap(http::security_headers(https))
                .wrap(middleware::from_fn(http::log_requests))
                .configure(http::configure)
        })
        // Past this many open connections a worker stops accepting until one closes.
        .max_connections(limits.max_connections)
        .backlog(limits.backlog);
        if limits.workers > 0 {
            server = server.workers(limits.workers);
        }
        let server = server.listen(listener)?.run();
        Ok(Self {
            port,
            server,
            state,
            background,
        })
    }

    /// The bound port (tests bind port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Shared state, for tests that need to look inside.
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until the process is stopped.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        for task in self.background {
            task.abort();
        }
        result
    }
}
