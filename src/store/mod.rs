//! Storage behind small role traits, with a PostgreSQL and a SQLite implementation.
//! Services see only these traits; `connect` picks the backend from the URL.

use std::sync::Arc;

use async_trait::async_trait;

use crate::clock::UnixTime;
use crate::domain::{
    AccountToken, AuditEvent, AuditFilter, AuthorizationCode, CeremonyRecord, Client, ClientId,
    CredentialsEpoch, Email, FactorUse, Grant, KeyState, OutboxMail, PasskeyRecord, PasskeyUse,
    PendingLoginRecord, RefreshToken, Scope, Session, SigningKeyRecord, ThrottleBucket,
    TokenPurpose, TotpCredential, User, Username,
};

mod coalesce;
mod lane;
mod postgres;
mod sql;
mod sqlite;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// A storage failure. `Conflict` and `NotFound` are expected outcomes; `Backend` is not.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was violated (the name is taken, the key already exists, ...).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A stored row no longer parses into its domain type.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error("database error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database cannot be reached (down, restarting, pool exhausted for its timeout):
    /// the same request may succeed in a moment.
    #[error("database unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Registered clients.
#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Registers a client; `Conflict` if the id exists.
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError>;
    /// Looks a client up by id.
    async fn get_client(&self, id: &ClientId) -> Result<Option<Client>, StoreError>;
    /// All clients, oldest first.
    async fn list_clients(&self) -> Result<Vec<Client>, StoreError>;
    /// Deletes a client; false if there was none.
    async fn delete_client(&self, id: &ClientId) -> Result<bool, StoreError>;
    /// Replaces a confidential client's secret hash; false if there was no such client. With
    /// `revoke_tokens_at`, also makes every token of the client issued at or before that
    /// time inactive (`tokens_revoked_at`) and revokes its grants, in the same transaction.
    async fn set_client_secret(
        &self,
        id: &ClientId,
        hash: &[u8],
        revoke_tokens_at: Option<i64>,
    ) -> Result<bool, StoreError>;
    /// A counter that every insert, delete and secret change above increments, in the same
    /// transaction: a cache holding clients is stale when it moved.
    async fn clients_generation(&self) -> Result<i64, StoreError>;
}

/// User accounts.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates a user; `Conflict` if the username or e-mail is taken.
    async fn insert_user(&self, user: &User) -> Result<(), StoreError>;
    /// Looks a user up by login name.
    async fn get_user_by_username(&self, name: &Username) -> Result<Option<User>, StoreError>;
    /// Looks a user up by id (the `sub`).
    async fn get_user(&self, id: &str) -> Result<Option<User>, StoreError>;
    /// All users, by username.
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;
    /// Enables or disables a user (disabling bumps the credentials epoch); false if there
    /// was none.
    async fn set_user_disabled(
        &self,
        name: &Username,
        disabled: bool,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Replaces a user's password hash and bumps their credentials epoch in the same
    /// `UPDATE`; the new epoch, or `None` if there was no such user.
    async fn set_password_hash(
        &self,
        name: &Username,
        hash: &str,
        now: UnixTime,
    ) -> Result<Option<CredentialsEpoch>, StoreError>;
}

/// What a key rotation changes, applied in one transaction.
#[derive(Debug)]
pub struct Rotation<'a> {
    /// The `next` key to promote; the rotation fails with `Conflict` if it is no longer next.
    pub promote_kid: &'a str,
    /// The new `next` key.
    pub new_next: &'a SigningKeyRecord,
    /// When the rotation happens.
    pub now: UnixTime,
    /// When the demoted `current` key may leave the JWKS.
    pub previous_retires_at: UnixTime,
}

/// Signing keys.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Every key not yet retired, in creation order.
    async fn list_published_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;
    /// Every key, retired ones included.
    async fn list_all_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;
    /// Stores the first `current` and `next` keys if there is no current key yet.
    /// Returns false (and stores nothing) when another node got there first.
    async fn insert_initial_keys(
        &self,
        current: &SigningKeyRecord,
        next: &SigningKeyRecord,
    ) -> Result<bool, StoreError>;
    /// next -> current, current -> previous, new next; atomically.
    async fn rotate_keys(&self, rotation: &Rotation<'_>) -> Result<(), StoreError>;
    /// Replaces a key's sealed private key, only if it is still `old`; false otherwise.
    async fn reseal_key(&self, kid: &str, old: &[u8], new: &[u8]) -> Result<bool, StoreError>;
    /// Moves a key to `retired` and erases its private key; false if it was not in `from`.
    async fn retire_key(&self, kid: &str, from: KeyState) -> Result<bool, StoreError>;
}

/// Browser sessions.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session.
    async fn insert_session(&self, session: &Session) -> Result<(), StoreError>;
    /// Looks a session up by the hash of its cookie value.
    async fn get_session(&self, id_hash: &[u8]) -> Result<Option<Session>, StoreError>;
    /// The same with the session's user, in one read (`None` also when the user is gone).
    async fn get_session_with_user(
        &self,
        id_hash: &[u8],
    ) -> Result<Option<(Session, User)>, StoreError>;
    /// Looks a session up by its public id.
    async fn get_session_by_sid(&self, sid: &str) -> Result<Option<Session>, StoreError>;
    /// Records use, for the idle timeout.
    async fn touch_session(&self, id_hash: &[u8], now: UnixTime) -> Result<(), StoreError>;
    /// Ends a session (logout); false if it was already ended or unknown.
    async fn end_session(&self, sid: &str, now: UnixTime) -> Result<bool, StoreError>;
    /// Ends every session of a user (disabled, password changed); returns how many.
    async fn end_user_sessions(&self, user_id: &str, now: UnixTime) -> Result<u64, StoreError>;
    /// The user's sessions that are neither ended nor past `expires_at` at `now`, most
    /// recently used first (the account page).
    async fn list_user_sessions(
        &self,
        user_id: &str,
        now: UnixTime,
    ) -> Result<Vec<Session>, StoreError>;
    /// Ends every live session of `user_id` except `keep_sid` ("sign out all other
    /// devices"); returns the `sid`s it ended.
    async fn end_other_sessions(
        &self,
        user_id: &str,
        keep_sid: &str,
        now: UnixTime,
    ) -> Result<Vec<String>, StoreError>;
    /// A step-up or re-authentication of a session that is not ended: replaces the cookie
    /// hash (a new session id after every privilege change), the factors, `amr` and
    /// `auth_time`. False (nothing changed) if the session is ended or unknown.
    async fn upgrade_session(
        &self,
        sid: &str,
        upgrade: &SessionUpgrade<'_>,
    ) -> Result<bool, StoreError>;
}

/// What [`SessionStore::upgrade_session`] writes.
#[derive(Debug)]
pub struct SessionUpgrade<'a> {
    /// SHA-256 of the new cookie value.
    pub new_id_hash: &'a [u8],
    /// Every factor presented, with its time.
    pub factors: &'a [FactorUse],
    /// The `amr` values they make.
    pub amr: &'a [String],
    /// The new `auth_time`.
    pub auth_time: UnixTime,
    /// The credentials epoch the upgrade's factors were checked under.
    pub credentials_epoch: CredentialsEpoch,
}

/// Second factors: TOTP and backup codes.
#[async_trait]
pub trait FactorStore: Send + Sync {
    /// Stores a TOTP secret awaiting confirmation, replacing an unconfirmed one. `Conflict`
    /// if the user already has a confirmed credential.
    async fn put_pending_totp(
        &self,
        user_id: &str,
        secret_sealed: &[u8],
        now: UnixTime,
    ) -> Result<(), StoreError>;
    /// The user's TOTP credential, confirmed or not.
    async fn get_totp(&self, user_id: &str) -> Result<Option<TotpCredential>, StoreError>;
    /// In one transaction: confirms the pending credential (only if unconfirmed), records
    /// `step` as its last used step, and replaces the user's backup codes with `codes`.
    /// False (nothing changed) if there was no unconfirmed credential.
    async fn confirm_totp(
        &self,
        user_id: &str,
        step: i64,
        codes: &[Vec<u8>],
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Accepts `step` for a confirmed credential only if it is later than the last used
    /// step (`UPDATE ... WHERE last_used_step < $step`), atomically on every node. False
    /// means the step (or a later one) was already used: a replay.
    async fn use_totp_step(&self, user_id: &str, step: i64) -> Result<bool, StoreError>;
    /// Deletes the TOTP credential and every backup code of the user; false if there was
    /// no credential.
    async fn delete_totp(&self, user_id: &str) -> Result<bool, StoreError>;
    /// Replaces the user's backup codes (their keyed hashes): the old set is void.
    async fn replace_backup_codes(
        &self,
        user_id: &str,
        codes: &[Vec<u8>],
        now: UnixTime,
    ) -> Result<(), StoreError>;
    /// Spends one backup code (`UPDATE ... WHERE used_at IS NULL`); false if it is unknown
    /// or already used.
    async fn use_backup_code(
        &self,
        user_id: &str,
        code_hash: &[u8],
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// How many unused backup codes the user has.
    async fn backup_codes_left(&self, user_id: &str) -> Result<u32, StoreError>;
}

/// Passkeys (WebAuthn credentials) and each user's random WebAuthn user handle.
#[async_trait]
pub trait PasskeyStore: Send + Sync {
    /// The user's WebAuthn user handle, creating it from `candidate` on first use
    /// (`UPDATE users SET webauthn_handle = $2 WHERE id = $1 AND webauthn_handle IS NULL`,
    /// then read back): every node agrees on one handle per user. `None` for an unknown
    /// user.
    async fn webauthn_handle(
        &self,
        user_id: &str,
        candidate: &str,
    ) -> Result<Option<String>, StoreError>;
    /// The user whose WebAuthn user handle this is.
    async fn user_by_webauthn_handle(&self, handle: &str) -> Result<Option<User>, StoreError>;
    /// Stores a new passkey; `Conflict` if its credential id is registered to anyone.
    async fn insert_passkey(&self, passkey: &PasskeyRecord) -> Result<(), StoreError>;
    /// The user's passkeys, oldest first.
    async fn list_passkeys(&self, user_id: &str) -> Result<Vec<PasskeyRecord>, StoreError>;
    /// The passkey with this credential id, whoever owns it.
    async fn get_passkey(&self, credential_id: &[u8]) -> Result<Option<PasskeyRecord>, StoreError>;
    /// Renames one of the user's passkeys; false if it is not theirs.
    async fn rename_passkey(&self, user_id: &str, id: &str, name: &str)
        -> Result<bool, StoreError>;
    /// Deletes one of the user's passkeys; false if it is not theirs.
    async fn delete_passkey(&self, user_id: &str, id: &str) -> Result<bool, StoreError>;
    /// Accepts an assertion: in one statement, stores the new counter, credential JSON,
    /// backup state and last use, only if the counter moved forward (`counter < $new`) or
    /// the authenticator does not count (both 0). False means the counter went backwards
    /// (or a concurrent assertion won): the assertion must be refused.
    async fn record_passkey_use(&self, used: &PasskeyUse) -> Result<bool, StoreError>;
    /// Marks a counter regression on the passkey (shown on the account page).
    async fn mark_counter_regression(
        &self,
        credential_id: &[u8],
        now: UnixTime,
    ) -> Result<(), StoreError>;
    /// Stores a WebAuthn ceremony in progress.
    async fn insert_ceremony(&self, ceremony: &CeremonyRecord) -> Result<(), StoreError>;
    /// Deletes and returns the ceremony (`DELETE ... RETURNING`): single use. Expired ones
    /// are returned too; the caller checks `expires_at`.
    async fn take_ceremony(&self, id_hash: &[u8]) -> Result<Option<CeremonyRecord>, StoreError>;
}

/// Logins in progress, single use.
#[async_trait]
pub trait PendingLoginStore: Send + Sync {
    /// Stores a pending login.
    async fn insert_pending_login(&self, login: &PendingLoginRecord) -> Result<(), StoreError>;
    /// Deletes and returns the pending login (`DELETE ... RETURNING`): of two requests
    /// presenting the same cookie, exactly one gets it. Expired ones are returned too; the
    /// caller checks `expires_at`.
    async fn take_pending_login(
        &self,
        id_hash: &[u8],
    ) -> Result<Option<PendingLoginRecord>, StoreError>;
}

/// How a throttle decision changes its buckets: gets the current buckets (in the order
/// of the keys given, `None` where a key has none) and returns the new ones (`None`
/// deletes). Owned, so that SQLite can run it on the store's thread, inside the
/// transaction, with nothing else between the read and the write.
pub type BucketUpdate =
    Box<dyn FnOnce(&[Option<ThrottleBucket>]) -> Vec<Option<ThrottleBucket>> + Send>;

/// Throttle buckets shared by every node.
#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// In one transaction that holds the buckets' rows locked (PostgreSQL: a placeholder
    /// row for each missing key and a lock on every row, in sorted key order, in one
    /// statement; SQLite: `BEGIN IMMEDIATE`): reads the buckets of `keys`, applies
    /// `update`, writes the result back in one statement (stamped with `now`, for
    /// housekeeping). Returns what `update` returned. Concurrent calls on the same keys
    /// are serialised, so a burst cannot slip past a limit.
    async fn update_buckets(
        &self,
        keys: &[String],
        now: UnixTime,
        update: BucketUpdate,
    ) -> Result<Vec<Option<ThrottleBucket>>, StoreError>;
}

/// `ThrottleStore::update_buckets` with a decision that says more than its buckets:
/// `decide` returns the new buckets and an answer (a verdict, say), and this returns the
/// answer.
pub async fn decide_on_buckets<T, F>(
    store: &dyn ThrottleStore,
    keys: &[String],
    now: UnixTime,
    decide: F,
) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&[Option<ThrottleBucket>]) -> (Vec<Option<ThrottleBucket>>, T) + Send + 'static,
{
    let answer = Arc::new(std::sync::Mutex::new(None));
    let slot = answer.clone();
    let update: BucketUpdate = Box::new(move |current: &[Option<ThrottleBucket>]| {
        let (buckets, said) = decide(current);
        if let Ok(mut slot) = slot.lock() {
            *slot = Some(said);
        }
        buckets
    });
    store.update_buckets(keys, now, update).await?;
    let said = answer.lock().ok().and_then(|mut a| a.take());
    said.ok_or_else(|| StoreError::Corrupt("throttle update did not run".into()))
}

/// Remembered consent, per user and client.
#[async_trait]
pub trait ConsentStore: Send + Sync {
    /// The scope the user has granted the client, if any.
    async fn get_consent(
        &self,
        user_id: &str,
        client_id: &ClientId,
    ) -> Result<Option<Scope>, StoreError>;
    /// Records consent to `scope` (replacing what was there).
    async fn save_consent(
        &self,
        user_id: &str,
        client_id: &ClientId,
        scope: &Scope,
        now: UnixTime,
    ) -> Result<(), StoreError>;
}

/// Authorization codes, grants (refresh families) and refresh tokens.
#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Stores a new authorization code.
    async fn insert_code(&self, code: &AuthorizationCode) -> Result<(), StoreError>;
    /// Looks a code up by its hash, consumed or not.
    async fn get_code(&self, code_hash: &[u8]) -> Result<Option<AuthorizationCode>, StoreError>;
    /// A code with the session that authorized it and the code's user, in one read;
    /// `None` when any of the three is missing (then [`GrantStore::get_code`] tells which).
    async fn get_code_in_session(
        &self,
        code_hash: &[u8],
    ) -> Result<Option<(AuthorizationCode, Session, User)>, StoreError>;
    /// In one transaction: marks the code consumed only if it was not
    /// (`UPDATE ... WHERE consumed_at IS NULL`), then stores the grant and its first
    /// refresh token. False (and nothing stored) if the code was already consumed.
    async fn redeem_code(
        &self,
        code_hash: &[u8],
        grant: &Grant,
        refresh: Option<&RefreshToken>,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Looks a grant up.
    async fn get_grant(&self, id: &str) -> Result<Option<Grant>, StoreError>;
    /// Revokes a grant: every refresh token in the family, and every access token whose
    /// `jti` names it, stops working. False if already revoked or unknown.
    async fn revoke_grant(&self, id: &str, now: UnixTime) -> Result<bool, StoreError>;
    /// Revokes the grants issued under a browser session (logout); with `keep_offline`,
    /// grants whose scope holds `offline_access` survive unless their client was registered
    /// with `end_offline_on_logout`. Returns how many were revoked.
    async fn revoke_session_grants(
        &self,
        sid: &str,
        keep_offline: bool,
        now: UnixTime,
    ) -> Result<u64, StoreError>;
    /// Marks every unconsumed code issued under the session `sid` consumed (logout), so a
    /// redemption in flight cannot create a grant after the session's grants are revoked.
    async fn consume_session_codes(&self, sid: &str, now: UnixTime) -> Result<u64, StoreError>;
    /// The same for every code of a user (disabled, password changed).
    async fn consume_user_codes(&self, user_id: &str, now: UnixTime) -> Result<u64, StoreError>;
    /// Revokes every grant of a user (disabled, password changed); returns how many.
    async fn revoke_user_grants(&self, user_id: &str, now: UnixTime) -> Result<u64, StoreError>;
    /// The user's grants that are neither revoked nor expired at `now`, most recently used
    /// first (the account page's list of apps).
    async fn list_user_grants(
        &self,
        user_id: &str,
        now: UnixTime,
    ) -> Result<Vec<Grant>, StoreError>;
    /// Looks a refresh token up by its hash, spent or not.
    async fn get_refresh_token(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<RefreshToken>, StoreError>;
    /// A refresh token with its grant and the grant's user, in one query; `None` if the
    /// token is unknown (or, impossibly with the foreign keys, its grant or user).
    async fn get_refresh_family(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<RefreshFamily>, StoreError>;
    /// For an access token whose `jti` names grant `grant_id`: the grant and its user, in
    /// one query, unless the grant is revoked or the `jti` is (`None` then).
    async fn get_token_grant(
        &self,
        grant_id: &str,
        jti: &str,
    ) -> Result<Option<(Grant, User)>, StoreError>;
    /// In one short transaction (RFC 9700 §4.14.2): spends the presented token
    /// (`UPDATE ... WHERE spent_at IS NULL`, and only if it is unexpired and belongs to the
    /// successor's client and grant), touches the grant only if it is still alive (not
    /// revoked, within `created_after`/`used_after`) and its user enabled under the
    /// grant's credentials epoch, and inserts the successor. False (and nothing changed)
    /// if any of that does not hold. `successor_sealed` (the successor, sealed) is kept on
    /// the spent token's row for a client with a refresh grace window.
    async fn rotate_refresh_token(
        &self,
        rotation: &RefreshRotation<'_>,
    ) -> Result<bool, StoreError>;
    /// The common rotation with nothing read first (RFC 9700 §4.14.2), atomically: spends
    /// the presented token under the same conditions as `rotate_refresh_token` (unspent,
    /// unexpired, `client_id`'s, its family alive and its user enabled under the grant's
    /// credentials epoch) and only if its grant is bound to no resource (RFC 8707), touches
    /// the grant, and inserts `successor_hash` with the spent token's scope and the grant's
    /// expiry. Returns the spent token with the touched grant and its user; `None` (and
    /// nothing changed) if any condition does not hold, and the caller reads the family to
    /// find out which.
    async fn spend_refresh_token(
        &self,
        spend: &RefreshSpend<'_>,
    ) -> Result<Option<RefreshFamily>, StoreError>;
    /// The sealed successor kept on a spent token's row, if any.
    async fn sealed_successor(&self, token_hash: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
}

/// A refresh token, its grant and the grant's user (see
/// [`GrantStore::get_refresh_family`]).
#[derive(Debug, Clone)]
pub struct RefreshFamily {
    /// The token.
    pub token: RefreshToken,
    /// Its grant.
    pub grant: Grant,
    /// The grant's user.
    pub user: User,
}

/// What [`GrantStore::spend_refresh_token`] writes, and what must still hold when it does.
#[derive(Debug)]
pub struct RefreshSpend<'a> {
    /// The hash of the presented token.
    pub presented_hash: &'a [u8],
    /// The client presenting it: the token must be this client's.
    pub client_id: &'a ClientId,
    /// The hash of its successor (same grant, client and scope; the grant's expiry).
    pub successor_hash: &'a [u8],
    /// The successor's value sealed (clients with a refresh grace window only).
    pub successor_sealed: Option<&'a [u8]>,
    /// When the rotation happens.
    pub now: UnixTime,
    /// The grant's `created_at` must be later than this (absolute lifetime).
    pub created_after: UnixTime,
    /// The grant's `last_used_at` must be later than this (idle timeout).
    pub used_after: UnixTime,
}

/// What [`GrantStore::rotate_refresh_token`] writes, and what must still hold when it does.
#[derive(Debug)]
pub struct RefreshRotation<'a> {
    /// The hash of the presented token.
    pub presented_hash: &'a [u8],
    /// Its successor: same grant, client and scope.
    pub successor: &'a RefreshToken,
    /// The successor's value sealed (clients with a refresh grace window only).
    pub successor_sealed: Option<&'a [u8]>,
    /// When the rotation happens.
    pub now: UnixTime,
    /// The grant's `created_at` must be later than this (absolute lifetime).
    pub created_after: UnixTime,
    /// The grant's `last_used_at` must be later than this (idle timeout).
    pub used_after: UnixTime,
}

/// Revoked access-token ids and the audit trail.
#[async_trait]
pub trait RevocationStore: Send + Sync {
    /// Records an access token's `jti` as revoked until `expires_at`.
    async fn revoke_jti(&self, jti: &str, expires_at: UnixTime) -> Result<(), StoreError>;
    /// True if the `jti` was revoked.
    async fn is_jti_revoked(&self, jti: &str) -> Result<bool, StoreError>;
    /// Appends an audit event.
    async fn record_event(&self, event: &AuditEvent) -> Result<(), StoreError>;
    /// Audit events matching `filter`, newest first.
    async fn list_events(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError>;
}

/// The mail outbox. Messages are written by the state change that sends them (see
/// [`AccountTokenStore::issue_account_token`]) or by [`MailStore::enqueue_mail`], and
/// delivered by the outbox worker; several nodes share the work.
#[async_trait]
pub trait MailStore: Send + Sync {
    /// Writes one message to the outbox.
    async fn enqueue_mail(&self, mail: &OutboxMail) -> Result<(), StoreError>;
    /// Claims up to `batch` messages that are due at `now` and not leased by another node
    /// (PostgreSQL: `FOR UPDATE SKIP LOCKED`): leases them until `lease_until` and counts
    /// the attempt. A node that dies mid-delivery releases its messages when the lease ends.
    async fn claim_mail(
        &self,
        now: UnixTime,
        lease_until: UnixTime,
        batch: u32,
    ) -> Result<Vec<OutboxMail>, StoreError>;
    /// Marks a message delivered and erases its sealed body.
    async fn mark_mail_sent(&self, id: &str, now: UnixTime) -> Result<(), StoreError>;
    /// Records a failed attempt: retried from `retry_at`, or, with `None`, given up (the
    /// body is erased and the message is listed as failed).
    async fn mark_mail_failed(
        &self,
        id: &str,
        error: &str,
        retry_at: Option<UnixTime>,
        now: UnixTime,
    ) -> Result<(), StoreError>;
    /// The newest `limit` messages, or only the given-up ones.
    async fn list_mail(&self, failed_only: bool, limit: u32)
        -> Result<Vec<OutboxMail>, StoreError>;
}

/// The single-use tokens of mailed links.
#[async_trait]
pub trait AccountTokenStore: Send + Sync {
    /// In one transaction: voids the user's unspent tokens of the same purpose (a second
    /// request voids the first link), stores `token`, and writes `mail` to the outbox.
    async fn issue_account_token(
        &self,
        token: &AccountToken,
        mail: &OutboxMail,
    ) -> Result<(), StoreError>;
    /// Looks a token up by its hash, spent or not (to show the form a link opens).
    async fn get_account_token(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<AccountToken>, StoreError>;
    /// Spends a token of `purpose` that is unspent and unexpired at `now`
    /// (`UPDATE ... WHERE used_at IS NULL AND expires_at > $now RETURNING`): of two requests
    /// presenting it, exactly one gets it.
    async fn use_account_token(
        &self,
        token_hash: &[u8],
        purpose: TokenPurpose,
        now: UnixTime,
    ) -> Result<Option<AccountToken>, StoreError>;
}

/// What [`PasswordResetStore::reset_password`] writes, in one transaction.
#[derive(Debug)]
pub struct PasswordReset<'a> {
    /// SHA-256 of the reset link's token.
    pub token_hash: &'a [u8],
    /// The new argon2id hash.
    pub password_hash: &'a str,
    /// The security notice to write to the outbox ("Your password was reset").
    pub notice: &'a OutboxMail,
    /// When.
    pub now: UnixTime,
}

/// Forgot password: the account a request names, and completing a reset.
#[async_trait]
pub trait PasswordResetStore: Send + Sync {
    /// Looks a user up by e-mail address, ignoring case (addresses are unique ignoring
    /// case).
    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError>;
    /// In one transaction: spends the `password_reset` token (unspent and unexpired at
    /// `now`), sets the new hash and bumps the credentials epoch of its user only if that
    /// user is enabled and still at the epoch the token was issued under
    /// (`WHERE credentials_epoch = $token_epoch`), and writes the notice to the outbox.
    /// Returns the user's id and new epoch; `None` (nothing changed) otherwise.
    async fn reset_password(
        &self,
        reset: &PasswordReset<'_>,
    ) -> Result<Option<(String, CredentialsEpoch)>, StoreError>;
}

/// Deletion of expired records, in bounded batches; safe to run on several nodes at once.
#[async_trait]
pub trait Housekeeping: Send + Sync {
    /// Deletes up to `batch` expired rows from each table; returns how many went.
    async fn purge_expired(&self, now: UnixTime, batch: u32) -> Result<u64, StoreError>;
    /// Deletes up to `batch` audit events recorded before `before`; returns how many went.
    async fn purge_audit_events(&self, before: UnixTime, batch: u32) -> Result<u64, StoreError>;
}

/// Accounts that begin with a mailed link (invitations, self-registration) and the
/// confirmation of addresses. The links' tokens are [`AccountTokenStore`]'s.
#[async_trait]
pub trait EnrolmentStore: Send + Sync {
    /// The user whose e-mail address this is, compared without case like the unique index
    /// `users_email_lower`.
    async fn find_user_by_address(&self, email: &str) -> Result<Option<User>, StoreError>;
    /// In one transaction: creates `user`, stores `token` (the link that completes the
    /// account) and writes `mail` to the outbox. `Conflict` (and nothing stored) if the
    /// username or the address is taken.
    async fn insert_user_with_token(
        &self,
        user: &User,
        token: &AccountToken,
        mail: &OutboxMail,
    ) -> Result<(), StoreError>;
    /// In one transaction: spends the unexpired, unspent `Invitation` token, then sets the
    /// first password of its user, only if the user is enabled, still has no password and
    /// is still at the credentials epoch the token was issued under (bumping it), and marks
    /// the address verified when it is the one the invitation was mailed to. False (and
    /// nothing changed) otherwise.
    async fn accept_invitation(
        &self,
        token_hash: &[u8],
        password_hash: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// In one transaction: spends the unexpired, unspent token of `purpose` and confirms
    /// the address on it: `VerifyEmail` marks the user's address verified (only if it is
    /// still that address); `ChangeEmail` makes it the user's address, verified (only if
    /// the credentials epoch is the token's). Only for an enabled user. False (nothing
    /// changed) otherwise, or for another purpose; `Conflict` (nothing changed) if the new
    /// address belongs to another user by now.
    async fn confirm_address(
        &self,
        token_hash: &[u8],
        purpose: TokenPurpose,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
}

/// A change to an MFA recovery, written by [`RecoveryStore::write_recovery`] in one
/// transaction with the tokens and mail that go with it.
#[derive(Debug)]
pub struct RecoveryChange<'a> {
    /// The record as read: the row is updated only if it is still in this state (a
    /// conditional `UPDATE`, so two nodes never apply a step twice). `None` inserts `to`
    /// as a new request, superseding the user's unconfirmed one.
    pub from: Option<&'a crate::domain::MfaRecovery>,
    /// The record to write.
    pub to: &'a crate::domain::MfaRecovery,
    /// A token to spend first (hash and purpose; unspent and unexpired at `now`).
    pub spend: Option<(&'a [u8], TokenPurpose)>,
    /// The user's unspent tokens of these purposes are voided.
    pub void: &'a [TokenPurpose],
    /// A token to store (after the voiding).
    pub issue: Option<&'a AccountToken>,
    /// The recovery takes effect: delete every TOTP credential, backup code and passkey of
    /// the user, bump their credentials epoch and set `must_enrol_factor`.
    pub remove_factors: bool,
    /// Messages for the outbox.
    pub mails: &'a [OutboxMail],
    /// When.
    pub now: UnixTime,
}

/// MFA recoveries (at most one open per user) and the flag a recovery leaves behind.
#[async_trait]
pub trait RecoveryStore: Send + Sync {
    /// Applies `change` in one transaction. False (and nothing changed) when the token was
    /// not spendable, the row was no longer in the `from` state, or (insert) the user has a
    /// recovery already waiting.
    async fn write_recovery(&self, change: &RecoveryChange<'_>) -> Result<bool, StoreError>;
    /// The user's open (requested or waiting) recovery.
    async fn open_recovery(
        &self,
        user_id: &str,
    ) -> Result<Option<crate::domain::MfaRecovery>, StoreError>;
    /// Waiting recoveries whose effect (at or before `now`) or reminder (effect at or before
    /// `remind_until`, not reminded yet) is due; soonest first, at most `limit`.
    async fn due_recoveries(
        &self,
        now: UnixTime,
        remind_until: UnixTime,
        limit: u32,
    ) -> Result<Vec<crate::domain::MfaRecovery>, StoreError>;
    /// True when a recovery took effect and the user has not been cleared since.
    async fn must_enrol_factor(&self, user_id: &str) -> Result<bool, StoreError>;
    /// Clears the flag (the user has a second factor again).
    async fn clear_must_enrol_factor(&self, user_id: &str) -> Result<(), StoreError>;
}

/// Everything the services need from storage.
#[async_trait]
pub trait Store:
    ClientStore
    + UserStore
    + KeyStore
    + SessionStore
    + ConsentStore
    + GrantStore
    + RevocationStore
    + FactorStore
    + PasskeyStore
    + PendingLoginStore
    + ThrottleStore
    + MailStore
    + AccountTokenStore
    + Housekeeping
    + PasswordResetStore
    + EnrolmentStore
    + RecoveryStore
{
    /// `postgres` or `sqlite`.
    fn backend(&self) -> &'static str;
    /// Round-trips to the database (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;
    /// Closes the connection pool: every later call fails as `Unavailable` (shutdown, and
    /// tests of a database outage).
    async fn close(&self);
}

/// How to open a store.
#[derive(Debug, Clone, Copy)]
pub struct ConnectOptions {
    /// Pool size (SQLite: the read pool; writes always go through one connection).
    pub max_connections: u32,
    /// SQLite: sync the write-ahead log at every commit (`synchronous = FULL`) instead of
    /// at checkpoints (`NORMAL`). Ignored by PostgreSQL, whose commits are always synced.
    pub sqlite_sync_every_commit: bool,
}

/// Connects to the database named by `url` and applies pending migrations.
pub async fn connect(url: &str, max_connections: u32) -> Result<Arc<dyn Store>, StoreError> {
    let options = ConnectOptions {
        max_connections,
        sqlite_sync_every_commit: false,
    };
    connect_with(url, options).await
}

/// [`connect`] with every option.
pub async fn connect_with(
    url: &str,
    options: ConnectOptions,
) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect_with(url, options).await?))
    } else {
        Ok(Arc::new(
            PgStore::connect(url, options.max_connections).await?,
        ))
    }
}
