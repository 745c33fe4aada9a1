//! `latchkey audit ...`

use clap::Subcommand;

use crate::startup::Context;

/// Audit-trail commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The newest security events (refresh-token reuse, authorization-code replay), newest first.
    List {
        /// How many events.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn run(cmd: AuditCommand, ctx: Context) -> anyhow::Result<()> {
    let AuditCommand::List { limit, json } = cmd;
    for e in ctx.store.recent_events(limit.min(10_000)).await? {
        if json {
            let line = serde_json::json!({
                "kind": e.kind, "at": super::time(Some(e.at)), "client_id": e.client_id,
                "user_id": e.user_id, "grant_id": e.grant_id, "ip": e.ip, "detail": e.detail,
            });
            println!("{line}");
        } else {
            let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            println!(
                "{}  {:<26} client={} user={} grant={} ip={}  {}",
                super::time(Some(e.at)),
                e.kind,
                or_dash(&e.client_id),
                or_dash(&e.user_id),
                or_dash(&e.grant_id),
                or_dash(&e.ip),
                e.detail
            );
        }
    }
    Ok(())
}
