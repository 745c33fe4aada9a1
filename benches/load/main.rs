//! The load driver of `benches/load.sh` (issue 9): fixed concurrency, fixed duration, real
//! HTTP against a running server, one results file per server, one table at the end.
//!
//!   cargo bench --bench load -- run --issuer http://127.0.0.1:PORT --pid PID --out FILE
//!   cargo bench --bench load -- table --column latchkey-sqlite=FILE ...
//!
//! `benches/load.sh` provisions the servers and calls these; see docs/performance.md.

mod http;
mod measure;
mod scenarios;
mod table;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};

use http::{Creds, Endpoints, Target, User};
use measure::{Stats, Window};
use scenarios::Ctx;

#[derive(Debug, Parser)]
#[command(name = "load", about = "Latchkey's load driver (see benches/load.sh)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a free TCP port on 127.0.0.1.
    FreePort,
    /// Wait for URL to answer 200; record the time since --since-ns and, a second later,
    /// the idle RSS of --pid.
    Ready(ReadyArgs),
    /// Run every scenario against a server and append the cells to --out.
    Run(Box<RunArgs>),
    /// Print the table of several results files (label=FILE each).
    Table {
        /// A column: `label=results-file` (repeatable, in order).
        #[arg(long = "column", value_parser = parse_column)]
        columns: Vec<(String, PathBuf)>,
        /// A footnote under the table (repeatable).
        #[arg(long = "note")]
        notes: Vec<String>,
        /// Some scenarios were left out on purpose (`run --only`): their cells read
        /// "not run" instead of failing the table.
        #[arg(long)]
        partial: bool,
    },
}

#[derive(Debug, Args)]
struct ReadyArgs {
    #[arg(long)]
    url: String,
    /// When the server was spawned, in nanoseconds since the Unix epoch (`date +%s%N`).
    #[arg(long)]
    since_ns: u128,
    #[arg(long)]
    pid: u32,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The server's issuer, e.g. http://127.0.0.1:18181.
    #[arg(long)]
    issuer: String,
    #[arg(long, value_enum, default_value = "latchkey")]
    target: Target,
    /// The server's process, for RSS (VmRSS, VmHWM in /proc/PID/status).
    #[arg(long)]
    pid: u32,
    /// The results file the cells are appended to.
    #[arg(long)]
    out: PathBuf,
    /// Measured seconds per scenario.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Unrecorded warm-up seconds before each scenario's measurement.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Workers (each with its own connection) per scenario.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Browsers signing in without pause during the storm.
    #[arg(long, default_value_t = 64)]
    storm_clients: usize,
    /// Only these scenarios (comma-separated keys, as in the table); default all.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Measured seconds of the short client_credentials runs that bracket refresh and the
    /// code flow, for their signing bound (`Bound`).
    #[arg(long, default_value_t = 4)]
    bound_seconds: u64,
    #[command(flatten)]
    setup: Setup,
}

/// What the provisioning created (from the environment, so secrets stay off `ps`).
#[derive(Debug, Args)]
struct Setup {
    #[arg(long, env = "BENCH_WEB_CLIENT_ID")]
    web_client_id: String,
    #[arg(long, env = "BENCH_WEB_CLIENT_SECRET", hide_env_values = true)]
    web_client_secret: String,
    #[arg(long, env = "BENCH_CC_CLIENT_ID")]
    cc_client_id: String,
    #[arg(long, env = "BENCH_CC_CLIENT_SECRET", hide_env_values = true)]
    cc_client_secret: String,
    #[arg(long, env = "BENCH_REDIRECT_URI")]
    redirect_uri: String,
    #[arg(long, env = "BENCH_RESOURCE")]
    resource: String,
    /// The user of the code flows; the sign-in scenarios use USERNAME-0 ... USERNAME-(N-1).
    #[arg(long, env = "BENCH_USERNAME")]
    username: String,
    /// How many sign-in users (USERNAME-i) exist.
    #[arg(long, env = "BENCH_SIGN_IN_USERS", default_value_t = 64)]
    sign_in_users: usize,
    #[arg(long, env = "BENCH_PASSWORD", hide_env_values = true)]
    password: String,
}

fn parse_column(s: &str) -> Result<(String, PathBuf), String> {
    let (label, file) = s.split_once('=').ok_or("expected label=FILE")?;
    Ok((label.to_owned(), PathBuf::from(file)))
}

fn main() -> std::process::ExitCode {
    // `cargo bench` passes `--bench` to every bench binary.
    let args = std::env::args().filter(|a| a != "--bench");
    let cli = Cli::parse_from(args);
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(dispatch(cli)));
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::FreePort => {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            println!("{}", l.local_addr()?.port());
            Ok(())
        }
        Command::Ready(a) => ready(a).await,
        Command::Run(a) => run(*a).await,
        Command::Table {
            columns,
            notes,
            partial,
        } => {
            let (text, missing) = table::render(&columns, &notes, partial)?;
            print!("{text}");
            if missing > 0 && !partial {
                bail!("{missing} cells of the table are missing");
            }
            Ok(())
        }
    }
}

async fn ready(a: ReadyArgs) -> anyhow::Result<()> {
    let http = http::client(None, None)?;
    let deadline = Instant::now() + Duration::from_secs(a.timeout_secs);
    loop {
        let ok = http
            .get(&a.url)
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            break;
        }
        if Instant::now() > deadline || rss_kib(a.pid, "VmRSS").is_err() {
            bail!("{} did not answer 200 (is the server running?)", a.url);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let ms = now.saturating_sub(a.since_ns) as f64 / 1e6;
    eprintln!("ready after {ms:.0} ms");
    table::record(&a.out, "startup", &measure::ms(ms))?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    table::record(&a.out, "rss_idle", &mib(rss_kib(a.pid, "VmRSS")?))
}

/// A `/proc/PID/status` memory line (VmRSS, VmHWM) in KiB.
fn rss_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("process {pid} is gone"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} for process {pid}"))
}

/// How long after the login storm its second RSS is read.
const AFTER_STORM: Duration = Duration::from_secs(15);

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

async fn run(a: RunArgs) -> anyhow::Result<()> {
    let s = &a.setup;
    let ctx = Arc::new(Ctx {
        target: a.target,
        ep: Endpoints::discover(&a.issuer).await?,
        issuer: a.issuer.clone(),
        web: Creds::new(&s.web_client_id, &s.web_client_secret)?,
        cc: Creds::new(&s.cc_client_id, &s.cc_client_secret)?,
        redirect_uri: s.redirect_uri.clone(),
        resource: s.resource.clone(),
        user: User {
            username: s.username.clone(),
            password: s.password.clone(),
        },
        sign_in_users: s.sign_in_users,
        concurrency: a.concurrency,
        window: Window {
            warmup: Duration::from_secs(a.warmup),
            measured: Duration::from_secs(a.duration),
            server_pid: a.pid,
        },
    });
    let wanted = |key: &str| a.only.is_empty() || a.only.iter().any(|k| k == key);
    let out = &a.out;
    let cell = |key: &str, stats: Stats| -> anyhow::Result<()> {
        eprintln!("{key:<20} {}", stats.line());
        table::record(out, key, &stats.cell())
    };
    eprintln!(
        "{} workers, {} s each (+{} s warm-up), against {}",
        a.concurrency, a.duration, a.warmup, a.issuer
    );
    if wanted("discovery") {
        cell("discovery", scenarios::discovery(&ctx).await?)?;
    }
    if wanted("jwks") {
        cell("jwks", scenarios::jwks(&ctx).await?)?;
    }
    let mut bound = Bound::new(&ctx, &a);
    if wanted("client_credentials") {
        let stats = scenarios::client_credentials(&ctx).await?;
        bound.last = Some(stats.rate());
        cell("client_credentials", stats)?;
    }
    if wanted("refresh") {
        let before = bound.before().await?;
        let stats = scenarios::refresh(&ctx).await?;
        bound.record(out, "refresh_bound", &stats, before).await?;
        cell("refresh", stats)?;
    }
    if wanted("code_flow") {
        let before = bound.before().await?;
        let stats = scenarios::code_flow(&ctx).await?;
        bound.record(out, "code_flow_bound", &stats, before).await?;
        cell("code_flow", stats)?;
    }
    if wanted("userinfo") {
        cell("userinfo", scenarios::userinfo(&ctx).await?)?;
    }
    if wanted("introspection") {
        cell("introspection", scenarios::introspection(&ctx).await?)?;
    }
    let sign_in = a.target == Target::Latchkey;
    if !sign_in {
        // node-oidc-provider has no users or passwords: sign-in is the application's.
        for key in [
            "password_login",
            "storm_cc",
            "storm_logins",
            "rss_storm",
            "rss_storm_later",
        ] {
            table::record(out, key, "n/a ¹")?;
        }
    }
    if sign_in && wanted("password_login") {
        cell("password_login", scenarios::password_login(&ctx).await?)?;
    }
    if sign_in && wanted("storm") {
        let (stats, logins) = scenarios::storm(&ctx, a.storm_clients).await?;
        cell("storm_cc", stats)?;
        let counts = format!(
            "{} / {} / {}{}",
            logins.ok,
            logins.throttled,
            logins.busy,
            if logins.other > 0 {
                format!(" ({} other)", logins.other)
            } else {
                String::new()
            }
        );
        let waits = format!(
            "p99 {} ok, {} refused",
            p99_ms(logins.ok_us),
            p99_ms(logins.refused_us)
        );
        eprintln!(
            "{:<20} {} clients: ok / 429 / 503 = {counts}; {waits}",
            "storm_logins", a.storm_clients
        );
        table::record(
            out,
            "storm_logins",
            &format!("{counts} ({} clients; {waits})", a.storm_clients),
        )?;
        table::record(out, "rss_storm", &mib(rss_kib(a.pid, "VmRSS")?))?;
        // The hashing threads give their working memory back after 10 s without a hash
        // (`crypto::password`'s IDLE_RELEASE); the issue asks that RSS return near idle.
        tokio::time::sleep(AFTER_STORM).await;
        let later = mib(rss_kib(a.pid, "VmRSS")?);
        eprintln!("{:<20} {later}", "rss_storm_later");
        table::record(out, "rss_storm_later", &later)?;
    }
    table::record(out, "rss_peak", &mib(rss_kib(a.pid, "VmHWM")?))
}

/// The signing bound of refresh and the code flow (issue 9's targets): each signs two
/// JWTs where a client_credentials token signs one, so their bound is half the
/// client_credentials rate. The host's speed drifts by a tenth and more within minutes
/// (`docs/performance.md`, "Eleventh round"), so the rate is taken right before and right
/// after each of them, and the bound is half their mean. A scenario right after
/// client_credentials (or after the other bracketed one) starts from the rate that run
/// just measured.
struct Bound {
    ctx: Arc<Ctx>,
    window: Window,
    /// Applies to Latchkey only: the peer's code-flow and refresh access tokens are
    /// opaque, so they sign one JWT, not two.
    applies: bool,
    /// The client_credentials rate measured last, if the scenario that ran last was one.
    last: Option<f64>,
}

impl Bound {
    fn new(ctx: &Arc<Ctx>, a: &RunArgs) -> Self {
        Self {
            ctx: ctx.clone(),
            window: Window {
                measured: Duration::from_secs(a.bound_seconds),
                ..ctx.window
            },
            applies: a.target == Target::Latchkey,
            last: None,
        }
    }

    async fn rate_now(&self) -> anyhow::Result<f64> {
        Ok(scenarios::client_credentials_within(&self.ctx, self.window)
            .await?
            .rate())
    }

    /// The client_credentials rate just before the next scenario.
    async fn before(&mut self) -> anyhow::Result<f64> {
        match self.last.take() {
            Some(rate) => Ok(rate),
            None if self.applies => self.rate_now().await,
            None => Ok(f64::NAN),
        }
    }

    /// Measures the rate after `stats`' scenario and records its share of the bound.
    async fn record(
        &mut self,
        out: &std::path::Path,
        key: &str,
        stats: &Stats,
        before: f64,
    ) -> anyhow::Result<()> {
        if !self.applies {
            return table::record(out, key, "n/a ¹");
        }
        let after = self.rate_now().await?;
        self.last = Some(after);
        let share = 100.0 * stats.rate() / ((before + after) / 4.0);
        let cell = format!(
            "{share:.0} % (client_credentials {}/s before, {}/s after)",
            measure::thousands(before),
            measure::thousands(after)
        );
        eprintln!("{key:<20} {cell}");
        table::record(out, key, &cell)
    }
}

/// The p99 of some latencies in microseconds, as a table's milliseconds ("-" for none).
fn p99_ms(mut latencies_us: Vec<u32>) -> String {
    latencies_us.sort_unstable();
    let stats = measure::Stats {
        latencies_us,
        ..Default::default()
    };
    match stats.quantile_ms(0.99) {
        x if x.is_nan() => "-".to_string(),
        x => measure::ms(x),
    }
}
