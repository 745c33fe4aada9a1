//! The command line: `serve`, `migrate` and the admin commands. Each command parses its
//! input, calls a service, and prints; errors end as one line on stderr and exit code 1.

mod audit;
mod clients;
mod keys;
mod mail;
mod users;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::clock::SystemClock;
use crate::config::Settings;
use crate::startup::{Application, Context};

/// Latchkey: an OpenID Connect / OAuth 2.0 identity provider.
#[derive(Debug, Parser)]
#[command(name = "latchkey", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file [default: config/latchkey.toml if it exists]. Environment
    /// variables LATCHKEY_<SECTION>__<KEY> override it; see docs/configuration.md.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (migrates the database and creates signing keys on first start).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage signing keys: list, rotate, retire.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Manage OAuth clients.
    #[command(subcommand)]
    Client(clients::ClientCommand),
    /// Manage users.
    #[command(subcommand)]
    User(users::UserCommand),
    /// Read the audit trail.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Inspect the mail outbox.
    #[command(subcommand)]
    Mail(mail::MailCommand),
}

/// Parses the process arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    run(cli)
}

/// Runs a parsed command; prints any error as one line.
pub fn run(cli: Cli) -> ExitCode {
    // The system runtime is multi-threaded: the database connections, the outbox worker and
    // the other background tasks live on it, and a single-threaded one made its one thread
    // the bottleneck of every PostgreSQL round trip (each HTTP worker waited for it to
    // turn). The HTTP workers keep their own single-threaded runtimes (actix-web).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("latchkey-rt")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = actix_web::rt::System::with_tokio_rt(move || runtime).block_on(dispatch(cli));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => serve(settings).await,
        Command::Migrate => {
            let ctx = Context::open(settings, Arc::new(SystemClock)).await?;
            println!("database migrated ({})", ctx.store.backend());
            Ok(())
        }
        Command::Keys(cmd) => keys::run(cmd, open(settings).await?).await,
        Command::Client(cmd) => clients::run(cmd, open(settings).await?).await,
        Command::User(cmd) => users::run(cmd, open(settings).await?).await,
        Command::Audit(cmd) => audit::run(cmd, open(settings).await?).await,
        Command::Mail(cmd) => mail::run(cmd, open(settings).await?).await,
    }
}

async fn open(settings: Settings) -> anyhow::Result<Context> {
    Context::open(settings, Arc::new(SystemClock)).await
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    crate::telemetry::init(&settings.log);
    let app = Application::build(settings.clone()).await?;
    tracing::info!(
        issuer = %settings.issuer,
        database = %crate::config::redact_url(&settings.database.url),
        "listening on {}",
        settings.listen
    );
    app.run_until_stopped().await?;
    Ok(())
}

/// Formats unix seconds as RFC 3339, or `-`.
pub(crate) fn time(t: Option<i64>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map_or_else(
            || "-".into(),
            |d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
}
