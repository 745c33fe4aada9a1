//! Records of the login and token flows, as stored. Secrets (session ids, codes, refresh
//! tokens) appear here only as SHA-256 hashes.

use super::{ClientId, CredentialsEpoch, FactorUse, Scope, UserId};
use crate::clock::UnixTime;

/// A browser session at Latchkey (the cookie holds the secret whose hash is `id_hash`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 of the cookie value.
    pub id_hash: Vec<u8>,
    /// Public identifier, the `sid` claim (OIDC Front-Channel Logout §3); not the secret.
    pub sid: String,
    /// Who logged in.
    pub user_id: UserId,
    /// `User-Agent` at login, for the user's session list.
    pub user_agent: String,
    /// Client IP at login.
    pub ip: String,
    /// When the user authenticated (`auth_time`).
    pub auth_time: UnixTime,
    /// The user's credentials epoch that authentication was made under.
    pub credentials_epoch: CredentialsEpoch,
    /// Authentication methods used (`amr`, RFC 8176).
    pub amr: Vec<String>,
    /// The factors presented, each with its time (the newest sign-in or step-up).
    pub factors: Vec<FactorUse>,
    /// Creation time.
    pub created_at: UnixTime,
    /// Last use, for the idle timeout.
    pub last_seen_at: UnixTime,
    /// End of the absolute lifetime.
    pub expires_at: UnixTime,
    /// Set at logout.
    pub ended_at: Option<UnixTime>,
}

impl Session {
    /// True when the session can still be used at `now`.
    pub fn is_active(&self, now: UnixTime, idle_timeout: i64) -> bool {
        self.ended_at.is_none() && now < self.expires_at && now - self.last_seen_at < idle_timeout
    }
}

/// An authorization code, bound to everything the token request must match
/// (RFC 6749 §4.1.3, RFC 7636 §4.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    /// SHA-256 of the code.
    pub code_hash: Vec<u8>,
    /// The grant its redemption creates; tokens from it carry this id.
    pub grant_id: String,
    /// The client it was issued to.
    pub client_id: ClientId,
    /// The user who authorized it.
    pub user_id: UserId,
    /// The session it was issued under.
    pub sid: String,
    /// The redirect URI of the authorization request.
    pub redirect_uri: String,
    /// Granted scope.
    pub scope: Scope,
    /// The request's nonce, for the ID token.
    pub nonce: Option<String>,
    /// The S256 code challenge.
    pub code_challenge: String,
    /// The RFC 8707 resource requested at authorization.
    pub resource: Option<String>,
    /// When the user authenticated.
    pub auth_time: UnixTime,
    /// The user's credentials epoch that authentication was made under.
    pub credentials_epoch: CredentialsEpoch,
    /// Authentication methods.
    pub amr: Vec<String>,
    /// Issue time.
    pub created_at: UnixTime,
    /// Expiry (60 s by default).
    pub expires_at: UnixTime,
    /// Set on redemption; a second redemption revokes the grant.
    pub consumed_at: Option<UnixTime>,
}

/// What a code redemption created: the refresh-token family and the access tokens issued
/// under it share its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Random id.
    pub id: String,
    /// The client.
    pub client_id: ClientId,
    /// The user.
    pub user_id: UserId,
    /// The browser session it came from.
    pub sid: String,
    /// Granted scope; refreshes may narrow it.
    pub scope: Scope,
    /// RFC 8707 resource.
    pub resource: Option<String>,
    /// When the user authenticated.
    pub auth_time: UnixTime,
    /// The user's credentials epoch that authentication was made under.
    pub credentials_epoch: CredentialsEpoch,
    /// Authentication methods.
    pub amr: Vec<String>,
    /// Creation (the code redemption).
    pub created_at: UnixTime,
    /// Last refresh, for the idle timeout.
    pub last_used_at: UnixTime,
    /// End of the family's absolute lifetime.
    pub expires_at: UnixTime,
    /// Set when the family is revoked (reuse, logout, revocation, code replay).
    pub revoked_at: Option<UnixTime>,
}

/// A refresh token, stored only as its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// SHA-256 of the token.
    pub token_hash: Vec<u8>,
    /// Its family.
    pub grant_id: String,
    /// The client it was issued to.
    pub client_id: ClientId,
    /// Its scope (at most the grant's).
    pub scope: Scope,
    /// Issue time.
    pub created_at: UnixTime,
    /// Expiry (the family's absolute end).
    pub expires_at: UnixTime,
    /// Set when it is exchanged; presenting it again revokes the family.
    pub spent_at: Option<UnixTime>,
}

/// A security-relevant event, kept for investigation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// What happened, e.g. `refresh_token_reuse`.
    pub kind: String,
    /// When.
    pub at: UnixTime,
    /// The client involved.
    pub client_id: Option<String>,
    /// The user involved.
    pub user_id: Option<String>,
    /// The grant (family) involved.
    pub grant_id: Option<String>,
    /// The requester's IP.
    pub ip: Option<String>,
    /// The requester's `User-Agent`.
    pub user_agent: Option<String>,
    /// Free text; never a secret.
    pub detail: String,
}
