//! `latchkey user ...`

use std::io::BufRead;

use clap::Subcommand;

use crate::domain::Password;
use crate::service::admin::{self, NewUser};
use crate::service::invitations::{self, NewInvitation};
use crate::service::mail::Mailer;
use crate::startup::Context;

/// User commands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from the first line of standard input.
    Create {
        /// Login name (a-z, 0-9, . _ @ -).
        #[arg(long)]
        username: String,
        /// E-mail address.
        #[arg(long)]
        email: String,
        /// Read the password from stdin (required: passwords never go on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// A role (repeatable), for the `roles` claim.
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
    },
    /// List users.
    List,
    /// Disable a user: no login, and their sessions and tokens stop working.
    Disable {
        /// The username.
        username: String,
    },
    /// Enable a disabled user.
    Enable {
        /// The username.
        username: String,
    },
    /// Set a user's password, read from the first line of standard input.
    SetPassword {
        /// The username.
        username: String,
        /// Read the password from stdin.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Invite a user: creates the account without a password and mails a single-use link
    /// where they set one (valid `accounts.invitation_link_secs`). Re-running it for a user
    /// who has not accepted yet sends a new link and voids the old one.
    Invite {
        /// Login name (a-z, 0-9, . _ @ -).
        #[arg(long)]
        username: String,
        /// E-mail address the link goes to (optional with `--resend`).
        #[arg(long, required_unless_present = "resend")]
        email: Option<String>,
        /// A role (repeatable), for the `roles` claim.
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// Only send a new link to a user invited before.
        #[arg(long)]
        resend: bool,
    },
}

pub(super) async fn run(cmd: UserCommand, ctx: Context) -> anyhow::Result<()> {
    let store = ctx.store.as_ref();
    let now = ctx.clock.now();
    match cmd {
        UserCommand::Create {
            username,
            email,
            password_stdin: _,
            roles,
        } => {
            let password = read_password()?;
            let input = NewUser {
                username,
                email,
                password,
                roles,
            };
            let user = admin::create_user(store, &ctx.passwords, now, input).await?;
            println!("created user {} (sub {})", user.username, user.id);
        }
        UserCommand::List => {
            for u in store.list_users().await? {
                let roles: Vec<&str> = u.roles.iter().map(|r| r.as_str()).collect();
                let status = if u.disabled { "disabled" } else { "active" };
                println!(
                    "{}  {:<8}  {}  {}  [{}]",
                    u.id,
                    status,
                    u.username,
                    u.email.as_str(),
                    roles.join(",")
                );
            }
        }
        UserCommand::Disable { username } => {
            admin::set_user_disabled(store, &username, true, now).await?;
            println!("disabled {username}");
        }
        UserCommand::Enable { username } => {
            admin::set_user_disabled(store, &username, false, now).await?;
            println!("enabled {username}");
        }
        UserCommand::SetPassword {
            username,
            password_stdin: _,
        } => {
            let password = read_password()?;
            admin::set_password(store, &ctx.passwords, &username, &password, now).await?;
            println!("password set for {username}");
        }
        UserCommand::Invite {
            username,
            email,
            roles,
            resend,
        } => {
            // The link's token goes into the sealed outbox only, never to the terminal.
            let mailer = Mailer::new(&ctx.master, &ctx.settings.issuer)?;
            let input = NewInvitation {
                username,
                email,
                roles,
                resend,
            };
            let accounts = &ctx.settings.accounts;
            let done = invitations::invite(store, &mailer, accounts, now, input).await?;
            let what = if done.resent {
                "new invitation for"
            } else {
                "invited"
            };
            println!(
                "{what} {} (sub {}); the mail to {} is in the outbox",
                done.user.username,
                done.user.id,
                done.user.email.as_str()
            );
        }
    }
    Ok(())
}

fn read_password() -> anyhow::Result<Password> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let pw = line.strip_suffix('\n').unwrap_or(&line);
    let pw = pw.strip_suffix('\r').unwrap_or(pw);
    Ok(Password::parse(pw)?)
}
