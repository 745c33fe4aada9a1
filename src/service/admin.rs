//! Admin use cases behind the CLI: clients and users. Key rotation is in `keys`.

use crate::clock::UnixTime;
use crate::config::Settings;
use crate::crypto::password::PasswordHasher;
use crate::crypto::token::{random_token, SecretHasher};
use crate::domain::{
    AuditEvent, AuditFilter, Client, ClientId, ClientKind, CredentialsEpoch, Email, GrantType,
    ParseError, Password, RedirectUri, ResourceUri, Role, Scope, SecretString, User, UserId,
    Username,
};
use crate::store::Store;

use super::ServiceError;

/// What an admin asks for when registering a client.
#[derive(Debug, Clone, Default)]
pub struct NewClient {
    /// Display name.
    pub name: String,
    /// Redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Post-logout redirect URIs.
    pub post_logout_redirect_uris: Vec<String>,
    /// Grant types; `authorization_code` when empty.
    pub grant_types: Vec<String>,
    /// Space-separated scope; a default from the grants when `None`.
    pub scope: Option<String>,
    /// RFC 8707 resources (audiences).
    pub resources: Vec<String>,
    /// Access-token lifetime override, in seconds.
    pub access_token_ttl: Option<u64>,
    /// A public client (no secret).
    pub public: bool,
    /// Skips the consent page.
    pub first_party: bool,
    /// Every sign-in for this client must be multi-factor.
    pub require_mfa: bool,
    /// Logout also revokes this client's `offline_access` refresh families.
    pub end_offline_on_logout: bool,
    /// A resource server: may introspect every access token (RFC 7662 §4).
    pub introspect: bool,
    /// Refresh grace window in seconds (0: strict rotation); at most
    /// [`MAX_REFRESH_GRACE_SECS`].
    pub refresh_grace_secs: u64,
}

/// The longest refresh grace window a client may be registered with: long enough for
/// browser tabs refreshing at once, short enough to keep the replay window small.
pub const MAX_REFRESH_GRACE_SECS: u64 = 60;

/// A registered client and, for confidential clients, its secret (shown once).
#[derive(Debug)]
pub struct CreatedClient {
    /// The stored client.
    pub client: Client,
    /// The plain secret; never stored.
    pub secret: Option<SecretString>,
}

/// Registers a client after checking every field.
pub async fn create_client(
    store: &dyn Store,
    hasher: &SecretHasher,
    settings: &Settings,
    now: UnixTime,
    input: NewClient,
) -> Result<CreatedClient, ServiceError> {
    let client = build_client(&input, settings, now)?;
    let (client, secret) = match client.kind {
        ClientKind::Public => (client, None),
        ClientKind::Confidential => {
            let secret = random_token()?;
            let hash = hasher.hash(&secret);
            (
                Client {
                    secret_hash: Some(hash),
                    ..client
                },
                Some(SecretString::new(secret)),
            )
        }
    };
    store.insert_client(&client).await?;
    Ok(CreatedClient { client, secret })
}

fn build_client(
    input: &NewClient,
    settings: &Settings,
    now: UnixTime,
) -> Result<Client, ParseError> {
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ParseError::new(
            "name",
            "must be 1-100 printable characters",
        ));
    }
    let grant_types = parse_grants(&input.grant_types)?;
    let kind = if input.public {
        ClientKind::Public
    } else {
        ClientKind::Confidential
    };
    check_grants(&grant_types, kind, input.redirect_uris.is_empty())?;
    let scope = match &input.scope {
        Some(s) => Scope::parse(s)?,
        None => default_scope(&grant_types),
    };
    let ttl = match input.access_token_ttl {
        None => None,
        Some(t) if t == 0 || t > settings.tokens.max_access_token_ttl_secs => {
            return Err(ParseError::new(
                "access-token-ttl",
                format!(
                    "must be 1..={} seconds",
                    settings.tokens.max_access_token_ttl_secs
                ),
            ))
        }
        Some(t) => Some(i64::try_from(t).unwrap_or(i64::MAX)),
    };
    if input.refresh_grace_secs > MAX_REFRESH_GRACE_SECS {
        return Err(ParseError::new(
            "refresh-grace-secs",
            format!("must be 0..={MAX_REFRESH_GRACE_SECS} seconds"),
        ));
    }
    Ok(Client {
        id: ClientId::parse(&uuid::Uuid::new_v4().simple().to_string())?,
        name: name.to_owned(),
        kind,
        secret_hash: None,
        redirect_uris: parse_uris("redirect-uri", &input.redirect_uris)?,
        post_logout_redirect_uris: parse_uris(
            "post-logout-redirect-uri",
            &input.post_logout_redirect_uris,
        )?,
        grant_types,
        scope,
        resources: input
            .resources
            .iter()
            .map(|r| ResourceUri::parse(r))
            .collect::<Result<_, _>>()?,
        access_token_ttl: ttl,
        first_party: input.first_party,
        require_mfa: input.require_mfa,
        end_offline_on_logout: input.end_offline_on_logout,
        introspect_any: input.introspect,
        tokens_revoked_at: 0,
        refresh_grace_secs: i64::try_from(input.refresh_grace_secs).unwrap_or(0),
        created_at: now,
    })
}

fn parse_grants(names: &[String]) -> Result<Vec<GrantType>, ParseError> {
    if names.is_empty() {
        return Ok(vec![GrantType::AuthorizationCode]);
    }
    let mut grants: Vec<GrantType> = names
        .iter()
        .map(|g| GrantType::parse(g))
        .collect::<Result<_, _>>()?;
    grants.sort();
    grants.dedup();
    Ok(grants)
}

fn check_grants(
    grants: &[GrantType],
    kind: ClientKind,
    no_redirects: bool,
) -> Result<(), ParseError> {
    let has = |g| grants.contains(&g);
    // RFC 6749 §4.4: the client credentials grant MUST only be used by confidential clients.
    if kind == ClientKind::Public && has(GrantType::ClientCredentials) {
        return Err(ParseError::new(
            "grant-type",
            "client_credentials needs a confidential client",
        ));
    }
    if has(GrantType::RefreshToken) && !has(GrantType::AuthorizationCode) {
        return Err(ParseError::new(
            "grant-type",
            "refresh_token needs authorization_code",
        ));
    }
    if has(GrantType::AuthorizationCode) && no_redirects {
        return Err(ParseError::new(
            "redirect-uri",
            "authorization_code needs at least one --redirect-uri",
        ));
    }
    Ok(())
}

fn default_scope(grants: &[GrantType]) -> Scope {
    let mut s = Vec::new();
    if grants.contains(&GrantType::AuthorizationCode) {
        s.extend(["openid", "profile", "email"]);
    }
    if grants.contains(&GrantType::RefreshToken) {
        s.push("offline_access");
    }
    s.into_iter().map(str::to_owned).collect()
}

fn parse_uris(field: &'static str, uris: &[String]) -> Result<Vec<RedirectUri>, ParseError> {
    let mut out: Vec<RedirectUri> = Vec::with_capacity(uris.len());
    for u in uris {
        let uri = RedirectUri::parse(field, u)?;
        uri.check_registrable(field)?;
        if !out.contains(&uri) {
            out.push(uri);
        }
    }
    Ok(out)
}

/// A client by id.
pub async fn get_client(store: &dyn Store, id: &str) -> Result<Client, ServiceError> {
    let id = ClientId::parse(id)?;
    store
        .get_client(&id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("client {id}")))
}

/// Deletes a client.
pub async fn delete_client(store: &dyn Store, id: &str) -> Result<(), ServiceError> {
    let id = ClientId::parse(id)?;
    if store.delete_client(&id).await? {
        Ok(())
    } else {
        Err(ServiceError::NotFound(format!("client {id}")))
    }
}

/// Issues a new secret for a confidential client; running servers drop the old one
/// within `clients.cache_refresh_secs`. With `revoke_tokens`, every token issued to the
/// client until now becomes inactive and its refresh families are revoked.
pub async fn rotate_client_secret(
    store: &dyn Store,
    hasher: &SecretHasher,
    id: &str,
    revoke_tokens: bool,
    now: UnixTime,
) -> Result<SecretString, ServiceError> {
    let client = get_client(store, id).await?;
    if client.kind == ClientKind::Public {
        return Err(ServiceError::Refused(format!(
            "client {} is public and has no secret",
            client.id
        )));
    }
    let secret = random_token()?;
    if !store
        .set_client_secret(
            &client.id,
            &hasher.hash(&secret),
            revoke_tokens.then_some(now),
        )
        .await?
    {
        return Err(ServiceError::NotFound(format!("client {}", client.id)));
    }
    Ok(SecretString::new(secret))
}

/// What an admin gives to create a user.
#[derive(Debug)]
pub struct NewUser {
    /// Login name.
    pub username: String,
    /// E-mail address.
    pub email: String,
    /// Initial password.
    pub password: Password,
    /// Roles.
    pub roles: Vec<String>,
}

/// Creates a user with an argon2id password hash.
pub async fn create_user(
    store: &dyn Store,
    hasher: &PasswordHasher,
    now: UnixTime,
    input: NewUser,
) -> Result<User, ServiceError> {
    let mut roles: Vec<Role> = input
        .roles
        .iter()
        .map(|r| Role::parse(r))
        .collect::<Result<_, _>>()?;
    roles.sort();
    roles.dedup();
    let user = User {
        id: UserId::generate(),
        username: Username::parse(&input.username)?,
        email: Email::parse(&input.email)?,
        email_verified: false,
        password_hash: Some(hasher.hash(&input.password).await?),
        disabled: false,
        roles,
        created_at: now,
        updated_at: now,
        credentials_changed_at: now,
        credentials_epoch: 1,
        must_enrol_factor: false,
    };
    store.insert_user(&user).await?;
    Ok(user)
}

/// Disables or enables a user. Disabling also ends every session and revokes every grant
/// of the user, so re-enabling later does not bring an attacker's session back.
pub async fn set_user_disabled(
    store: &dyn Store,
    username: &str,
    disabled: bool,
    now: UnixTime,
) -> Result<(), ServiceError> {
    let user = user_by_name(store, username).await?;
    store
        .set_user_disabled(&user.username, disabled, now)
        .await?;
    if disabled {
        cut_off(store, &user, now).await?;
    }
    Ok(())
}

async fn user_by_name(store: &dyn Store, username: &str) -> Result<User, ServiceError> {
    let name = Username::parse(username)?;
    store
        .get_user_by_username(&name)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("user {name}")))
}

/// The audit trail for `latchkey audit list`, newest first: only `username`'s events when
/// given (`NotFound` if there is no such user), only those at or after `since`.
pub async fn list_audit_events(
    store: &dyn Store,
    username: Option<&str>,
    since: Option<UnixTime>,
    limit: u32,
) -> Result<Vec<AuditEvent>, ServiceError> {
    let user_id = match username {
        Some(name) => Some(user_by_name(store, name).await?.id.as_str().to_owned()),
        None => None,
    };
    let filter = AuditFilter {
        user_id,
        since,
        limit,
    };
    Ok(store.list_events(&filter).await?)
}

/// Ends the user's sessions and revokes their grants (refresh families and the access
/// tokens issued under them).
pub(crate) async fn cut_off(
    store: &dyn Store,
    user: &User,
    now: UnixTime,
) -> Result<(), ServiceError> {
    // Sessions, then their codes, then grants: see `session::end`.
    store.end_user_sessions(user.id.as_str(), now).await?;
    store.consume_user_codes(user.id.as_str(), now).await?;
    store.revoke_user_grants(user.id.as_str(), now).await?;
    Ok(())
}

/// Replaces a user's password, and ends everything the old password let anyone start.
/// Returns the user's new credentials epoch (a session created under it survives).
pub async fn set_password(
    store: &dyn Store,
    hasher: &PasswordHasher,
    username: &str,
    password: &Password,
    now: UnixTime,
) -> Result<CredentialsEpoch, ServiceError> {
    let user = user_by_name(store, username).await?;
    let hash = hasher.hash(password).await?;
    let Some(epoch) = store.set_password_hash(&user.username, &hash, now).await? else {
        return Err(ServiceError::NotFound(format!("user {}", user.username)));
    };
    cut_off(store, &user, now).await?;
    Ok(epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> NewClient {
        NewClient {
            name: "App".into(),
            redirect_uris: vec!["https://app.example/cb".into()],
            ..NewClient::default()
        }
    }

    fn build(i: &NewClient) -> Result<Client, ParseError> {
        build_client(i, &Settings::default(), 0)
    }

    #[test]
    fn defaults_to_code_flow_with_openid_scopes() {
        let c = build(&input()).map_err(|e| e.to_string());
        let c = c
            .as_ref()
            .map(|c| (c.grant_types.clone(), c.scope.to_string(), c.kind));
        assert_eq!(
            c,
            Ok((
                vec![GrantType::AuthorizationCode],
                "email openid profile".into(),
                ClientKind::Confidential
            ))
        );
    }

    #[test]
    fn refuses_unsafe_registrations() {
        let cases = [
            NewClient {
                public: true,
                grant_types: vec!["client_credentials".into()],
                ..input()
            },
            NewClient {
                grant_types: vec!["refresh_token".into()],
                ..input()
            },
            NewClient {
                redirect_uris: vec![],
                ..input()
            },
            NewClient {
                redirect_uris: vec!["http://evil.example/cb".into()],
                ..input()
            },
            NewClient {
                redirect_uris: vec!["https://a.example/cb#x".into()],
                ..input()
            },
            NewClient {
                grant_types: vec!["implicit".into()],
                ..input()
            },
            NewClient {
                access_token_ttl: Some(0),
                ..input()
            },
            NewClient {
                access_token_ttl: Some(86_400),
                ..input()
            },
            NewClient {
                name: " ".into(),
                ..input()
            },
            NewClient {
                resources: vec!["not a uri".into()],
                ..input()
            },
        ];
        for c in cases {
            assert!(build(&c).is_err(), "{c:?}");
        }
    }

    #[test]
    fn client_credentials_needs_no_redirect() {
        let c = NewClient {
            redirect_uris: vec![],
            grant_types: vec!["client_credentials".into()],
            ..input()
        };
        assert!(build(&c).is_ok());
    }
}
