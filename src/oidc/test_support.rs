//! Fixtures shared by the oidc unit tests.

use crate::domain::{
    Client, ClientId, ClientKind, Email, GrantType, RedirectUri, ResourceUri, Role, Scope, User,
    UserId, Username,
};

use super::Params;

pub(crate) const REDIRECT: &str = "https://app.example/cb";
pub(crate) const RESOURCE: &str = "https://api.example/";
pub(crate) const LOGOUT_REDIRECT: &str = "https://app.example/bye";

/// A confidential client allowed every grant, scope `openid profile email offline_access
/// roles api:read`.
pub(crate) fn client() -> Client {
    Client {
        id: ClientId::parse("app").unwrap(),
        name: "App".to_owned(),
        kind: ClientKind::Confidential,
        secret_hash: Some(b"hash".to_vec()),
        redirect_uris: vec![RedirectUri::parse("redirect_uri", REDIRECT).unwrap()],
        post_logout_redirect_uris: vec![RedirectUri::parse(
            "post_logout_redirect_uri",
            LOGOUT_REDIRECT,
        )
        .unwrap()],
        grant_types: vec![
            GrantType::AuthorizationCode,
            GrantType::RefreshToken,
            GrantType::ClientCredentials,
        ],
        scope: scope("openid profile email offline_access roles api:read"),
        resources: vec![ResourceUri::parse(RESOURCE).unwrap()],
        access_token_ttl: None,
        first_party: false,
        require_mfa: false,
        end_offline_on_logout: false,
        introspect_any: false,
        tokens_revoked_at: 0,
        refresh_grace_secs: 0,
        created_at: 0,
    }
}

/// A public client (no secret) allowed the code and refresh grants.
pub(crate) fn public_client() -> Client {
    Client {
        id: ClientId::parse("spa").unwrap(),
        kind: ClientKind::Public,
        secret_hash: None,
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        ..client()
    }
}

pub(crate) fn scope(s: &str) -> Scope {
    Scope::parse(s).unwrap()
}

pub(crate) fn params(list: &[(&str, &str)]) -> Params {
    Params::from_pairs(
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
    .unwrap()
}

pub(crate) fn user() -> User {
    User {
        id: UserId::from_stored("u-1".to_owned()),
        username: Username::parse("alice").unwrap(),
        email: Email::parse("alice@example.com").unwrap(),
        email_verified: true,
        password_hash: None,
        disabled: false,
        roles: vec![Role::parse("admin").unwrap(), Role::parse("dev").unwrap()],
        created_at: 100,
        updated_at: 200,
        credentials_changed_at: 0,
        credentials_epoch: 1,
        must_enrol_factor: false,
    }
}
