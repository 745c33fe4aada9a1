//! `latchkey client ...`

use clap::{Args, Subcommand};

use crate::domain::Client;
use crate::service::admin::{self, NewClient};
use crate::startup::Context;

/// Client commands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints its id and, for confidential clients, a secret shown once.
    Create(CreateArgs),
    /// List clients.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one client.
    Show {
        /// The client id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a client; running servers refuse it within clients.cache_refresh_secs.
    Delete {
        /// The client id.
        id: String,
    },
    /// Issue a new secret; the old one stops working within clients.cache_refresh_secs.
    RotateSecret {
        /// The client id.
        id: String,
        /// Also make every token issued to the client so far inactive (access tokens at
        /// introspection and userinfo, refresh tokens everywhere).
        #[arg(long)]
        revoke_tokens: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `client create` arguments.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Display name, shown on the consent page.
    #[arg(long)]
    name: String,
    /// A redirect URI (repeatable); https, or http on loopback only.
    #[arg(long = "redirect-uri", value_name = "URI")]
    redirect_uris: Vec<String>,
    /// A post-logout redirect URI (repeatable).
    #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
    post_logout_redirect_uris: Vec<String>,
    /// A grant type (repeatable): authorization_code, refresh_token, client_credentials.
    #[arg(long = "grant-type", value_name = "GRANT")]
    grant_types: Vec<String>,
    /// The most this client may ask for, e.g. "openid profile email offline_access".
    #[arg(long)]
    scope: Option<String>,
    /// An audience (RFC 8707 resource) the client may ask tokens for (repeatable).
    #[arg(long = "resource", value_name = "URI")]
    resources: Vec<String>,
    /// Access-token lifetime for this client, in seconds.
    #[arg(long, value_name = "SECONDS")]
    access_token_ttl: Option<u64>,
    /// A public client (SPA, native app): no secret, PKCE only.
    #[arg(long)]
    public: bool,
    /// A first-party client: users are not asked for consent.
    #[arg(long)]
    first_party: bool,
    /// Every sign-in for this client must be multi-factor, whatever `acr_values` says.
    #[arg(long)]
    require_mfa: bool,
    /// Logout also revokes this client's offline_access refresh tokens (by default they
    /// survive logout, OIDC Core §11).
    #[arg(long)]
    end_offline_on_logout: bool,
    /// A resource server: may introspect every access token, not only those issued to it
    /// or naming it in their audience (RFC 7662 §4).
    #[arg(long)]
    introspect: bool,
    /// Seconds after a refresh token's first use during which presenting it again returns
    /// the same successor instead of revoking the family (browser tabs refreshing at once;
    /// RFC 9700 §4.14.2). 0, the default, is strict rotation; at most 60.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    refresh_grace_secs: u64,
    /// Print {"client_id": ..., "client_secret": ...} as JSON.
    #[arg(long)]
    json: bool,
}

pub(super) async fn run(cmd: ClientCommand, ctx: Context) -> anyhow::Result<()> {
    let store = ctx.store.as_ref();
    match cmd {
        ClientCommand::Create(a) => create(a, &ctx).await?,
        ClientCommand::List { json } => {
            let clients = store.list_clients().await?;
            if json {
                let all: Vec<_> = clients.iter().map(client_json).collect();
                println!("{}", serde_json::Value::Array(all));
            } else {
                for c in clients {
                    let mfa = if c.require_mfa { "mfa" } else { "-" };
                    println!("{}  {:<12}  {:<3}  {}", c.id, c.kind.as_str(), mfa, c.name);
                }
            }
        }
        ClientCommand::Show { id, json } => {
            let v = client_json(&admin::get_client(store, &id).await?);
            println!(
                "{}",
                if json {
                    v.to_string()
                } else {
                    serde_json::to_string_pretty(&v)?
                }
            );
        }
        ClientCommand::Delete { id } => {
            admin::delete_client(store, &id).await?;
            println!("deleted {id}");
        }
        ClientCommand::RotateSecret {
            id,
            revoke_tokens,
            json,
        } => {
            let now = ctx.clock.now();
            let secret =
                admin::rotate_client_secret(store, &ctx.secrets, &id, revoke_tokens, now).await?;
            print_credentials(&id, Some(secret.expose()), json);
        }
    }
    Ok(())
}

async fn create(a: CreateArgs, ctx: &Context) -> anyhow::Result<()> {
    let json = a.json;
    let input = NewClient {
        name: a.name,
        redirect_uris: a.redirect_uris,
        post_logout_redirect_uris: a.post_logout_redirect_uris,
        grant_types: a.grant_types,
        scope: a.scope,
        resources: a.resources,
        access_token_ttl: a.access_token_ttl,
        public: a.public,
        first_party: a.first_party,
        require_mfa: a.require_mfa,
        end_offline_on_logout: a.end_offline_on_logout,
        introspect: a.introspect,
        refresh_grace_secs: a.refresh_grace_secs,
    };
    let now = ctx.clock.now();
    let created =
        admin::create_client(ctx.store.as_ref(), &ctx.secrets, &ctx.settings, now, input).await?;
    let secret = created.secret.as_ref().map(|s| s.expose());
    print_credentials(created.client.id.as_str(), secret, json);
    if secret.is_some() && !json {
        println!("(the secret is shown only now; it is stored hashed)");
    }
    Ok(())
}

/// `{"client_id": ..., "client_secret": ...}` with `--json`, else one line each.
fn print_credentials(id: &str, secret: Option<&str>, json: bool) {
    if json {
        let mut out = serde_json::json!({ "client_id": id });
        if let Some(s) = secret {
            out["client_secret"] = s.into();
        }
        println!("{out}");
    } else {
        println!("client_id:     {id}");
        if let Some(s) = secret {
            println!("client_secret: {s}");
        }
    }
}

/// A client as JSON, without its secret hash.
fn client_json(c: &Client) -> serde_json::Value {
    serde_json::json!({
        "client_id": c.id.as_str(),
        "name": c.name,
        "kind": c.kind.as_str(),
        "redirect_uris": c.redirect_uris.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
        "post_logout_redirect_uris": c.post_logout_redirect_uris.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
        "grant_types": c.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "scope": c.scope.to_string(),
        "resources": c.resources.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
        "access_token_ttl": c.access_token_ttl,
        "first_party": c.first_party,
        "require_mfa": c.require_mfa,
        "end_offline_on_logout": c.end_offline_on_logout,
        "introspect": c.introspect_any,
        "tokens_revoked_at": (c.tokens_revoked_at > 0).then(|| super::time(Some(c.tokens_revoked_at))),
        "refresh_grace_secs": c.refresh_grace_secs,
        "created_at": super::time(Some(c.created_at)),
    })
}
