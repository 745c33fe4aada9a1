//! `latchkey audit ...`

use anyhow::Context as _;
use clap::Subcommand;

use crate::clock::UnixTime;
use crate::domain::AuditEvent;
use crate::service::admin;
use crate::startup::Context;

/// Audit-trail commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The newest security events (refresh-token reuse, authorization-code replay), newest first.
    List {
        /// How many events.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only this user's events (a username).
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// Only events at or after this time (RFC 3339, e.g. 2026-01-01T00:00:00Z).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn run(cmd: AuditCommand, ctx: Context) -> anyhow::Result<()> {
    let AuditCommand::List {
        limit,
        user,
        since,
        json,
    } = cmd;
    let since = since.as_deref().map(parse_since).transpose()?;
    let events = admin::list_audit_events(
        ctx.store.as_ref(),
        user.as_deref(),
        since,
        limit.min(10_000),
    )
    .await?;
    for e in events {
        if json {
            println!("{}", event_json(&e));
        } else {
            print_line(&e);
        }
    }
    Ok(())
}

/// `--since`: an RFC 3339 time, as unix seconds.
fn parse_since(value: &str) -> anyhow::Result<UnixTime> {
    let t = chrono::DateTime::parse_from_rfc3339(value)
        .with_context(|| format!("--since {value:?} is not an RFC 3339 time"))?;
    Ok(t.timestamp())
}

fn event_json(e: &AuditEvent) -> serde_json::Value {
    serde_json::json!({
        "kind": e.kind, "at": super::time(Some(e.at)), "client_id": e.client_id,
        "user_id": e.user_id, "grant_id": e.grant_id, "ip": e.ip, "user_agent": e.user_agent,
        "detail": e.detail,
    })
}

fn print_line(e: &AuditEvent) {
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    // Quoted: a User-Agent has spaces.
    let user_agent = e.user_agent.as_ref().map(|ua| format!("{ua:?}"));
    println!(
        "{}  {:<26} client={} user={} grant={} ip={} user_agent={}  {}",
        super::time(Some(e.at)),
        e.kind,
        or_dash(&e.client_id),
        or_dash(&e.user_id),
        or_dash(&e.grant_id),
        or_dash(&e.ip),
        or_dash(&user_agent),
        e.detail
    );
}
