//! `latchkey keys ...`

use clap::Subcommand;

use crate::service::keys;
use crate::startup::Context;

/// Signing-key commands (see docs/key-rotation.md).
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List keys: kid, state, created, activated, retires-at.
    List,
    /// Rotate: next -> current, current -> previous, and a new next key.
    Rotate {
        /// Rotate even if the next key has not been published long enough for every
        /// cached JWKS to contain it.
        #[arg(long)]
        force: bool,
    },
    /// Retire a previous key (remove it from the JWKS and erase its private key).
    Retire {
        /// The key id.
        kid: String,
        /// Retire even if tokens it signed may still be valid.
        #[arg(long)]
        force: bool,
    },
}

pub(super) async fn run(cmd: KeysCommand, ctx: Context) -> anyhow::Result<()> {
    let store = ctx.store.as_ref();
    match cmd {
        KeysCommand::List => {
            println!(
                "{:<45} {:<9} {:<21} {:<21} RETIRES-AT",
                "KID", "STATE", "CREATED", "ACTIVATED"
            );
            for k in keys::list(store).await? {
                println!(
                    "{:<45} {:<9} {:<21} {:<21} {}",
                    k.kid,
                    k.state.as_str(),
                    super::time(Some(k.created_at)),
                    super::time(k.activated_at),
                    super::time(k.retires_at)
                );
            }
        }
        KeysCommand::Rotate { force } => {
            let r =
                keys::rotate(store, &ctx.master, &ctx.settings, ctx.clock.as_ref(), force).await?;
            println!("current:  {}", r.current);
            if let Some(p) = r.previous {
                println!(
                    "previous: {p} (retire after {})",
                    super::time(Some(r.previous_retires_at))
                );
            }
            println!("next:     {}", r.next);
            println!(
                "running servers sign with the new key within {}s",
                ctx.settings.keys.refresh_interval_secs
            );
        }
        KeysCommand::Retire { kid, force } => {
            keys::retire(store, &kid, ctx.clock.as_ref(), force).await?;
            println!("retired {kid}");
        }
    }
    Ok(())
}
