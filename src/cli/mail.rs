//! `latchkey mail ...`: the outbox, for admins. Lists envelopes and delivery state only;
//! a message's body is sealed and never printed.

use clap::Subcommand;

use crate::service::mail::outbox::{self, Entry};
use crate::startup::Context;

/// Outbox commands.
#[derive(Debug, Subcommand)]
pub enum MailCommand {
    /// The newest messages in the outbox, newest first: id, kind, recipient, created,
    /// attempts, state (queued, sent, failed) and the last error.
    List {
        /// Only messages that were given up.
        #[arg(long)]
        failed: bool,
        /// How many messages (at most 10000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn run(cmd: MailCommand, ctx: Context) -> anyhow::Result<()> {
    let MailCommand::List {
        failed,
        limit,
        json,
    } = cmd;
    let entries = outbox::list(ctx.store.as_ref(), failed, limit).await?;
    for e in entries {
        if json {
            println!("{}", entry_json(&e));
        } else {
            print_line(&e);
        }
    }
    Ok(())
}

fn entry_json(e: &Entry) -> serde_json::Value {
    serde_json::json!({
        "id": e.id, "kind": e.kind, "recipient": e.recipient,
        "created": super::time(Some(e.created_at)), "attempts": e.attempts,
        "state": e.state.as_str(), "next_attempt": e.next_attempt_at.map(|t| super::time(Some(t))),
        "settled": e.settled_at.map(|t| super::time(Some(t))), "last_error": e.last_error,
    })
}

fn print_line(e: &Entry) {
    // Quoted: an SMTP reply has spaces.
    let error = e
        .last_error
        .as_ref()
        .map_or_else(|| "-".to_owned(), |m| format!("{m:?}"));
    println!(
        "{}  {}  {:<7} attempts={} kind={} to={} next={} error={}",
        e.id,
        super::time(Some(e.created_at)),
        e.state.as_str(),
        e.attempts,
        e.kind,
        e.recipient,
        super::time(e.next_attempt_at),
        error
    );
}
