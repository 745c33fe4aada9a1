//! Passkeys (WebAuthn L3) through webauthn-rs: registration from the account page, sign-in
//! with a discoverable credential alone, and passkeys as a second factor.
//!
//! Every ceremony's state is kept server-side (`webauthn_ceremonies`), bound to the browser
//! that started it by a random cookie (the table holds only its SHA-256), single use
//! (`DELETE ... RETURNING`) and valid for [`CEREMONY_TTL`] seconds. webauthn-rs checks the
//! origin, the RP id hash, the challenge, the signature and user verification (required for
//! every ceremony); the store accepts an assertion only if its signature counter moved
//! forward, in the same statement that records the new counter and backup state.

use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
    WebauthnError,
};

use crate::authn::login::Resume;
use crate::clock::UnixTime;
use crate::config::Settings;
use crate::crypto::token::{hash_token, random_token};
use crate::domain::{CeremonyRecord, PasskeyRecord, PasskeyUse, User};
use crate::store::Store;

use super::ServiceError;

/// How long a ceremony may take, in seconds.
pub const CEREMONY_TTL: i64 = 300;
/// The longest passkey name.
pub const MAX_NAME_CHARS: usize = 64;
/// The largest credential JSON accepted from a browser.
pub const MAX_CREDENTIAL_BYTES: usize = 16 * 1024;

/// A ceremony in progress, as stored.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Ceremony {
    /// Registering a passkey for a signed-in user.
    Register {
        user_id: String,
        sid: String,
        name: String,
        state: PasskeyRegistration,
    },
    /// Signing in with a passkey alone.
    SignIn {
        resume: Resume,
        state: DiscoverableAuthentication,
    },
    /// A passkey as the second factor of a pending login.
    SecondFactor {
        user_id: String,
        state: PasskeyAuthentication,
    },
}

/// A started ceremony: the options for `navigator.credentials.create/get`, and the cookie
/// that binds it to this browser.
pub struct Started {
    /// `{"publicKey": {...}}`, as the browser script expects.
    pub options: serde_json::Value,
    /// The ceremony cookie's value.
    pub cookie: String,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Started([redacted])")
    }
}

/// Why a passkey ceremony was refused. Nothing was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Passkeys need a domain name as the issuer's host.
    #[error("passkeys are not available on this server")]
    Unavailable,
    /// No ceremony for this browser: it expired, was used, or another browser started it.
    #[error("the passkey request has expired; try again")]
    Expired,
    /// The browser sent something that is not a credential.
    #[error("the browser sent an unreadable answer; try again")]
    Malformed,
    /// Verification failed (origin, RP id, challenge, signature, user verification).
    #[error("the passkey could not be verified")]
    Invalid,
    /// The credential is registered already (to this or another account).
    #[error("this passkey is registered already")]
    Taken,
    /// No such passkey here, or it belongs to someone else.
    #[error("this passkey is not registered here")]
    Unknown,
    /// The signature counter went backwards: the passkey may have been cloned.
    #[error("this passkey was refused: its signature counter went backwards")]
    CounterRegression,
    /// The name is empty, too long or holds control characters.
    #[error("give the passkey a name of 1 to 64 characters")]
    BadName,
}

/// A passkey sign-in that verified.
#[derive(Debug)]
pub struct SignedInWith {
    /// The user.
    pub user: User,
    /// What the sign-in resumes.
    pub resume: Resume,
}

/// The WebAuthn relying party, from the settings.
pub struct Passkeys {
    webauthn: Option<Webauthn>,
}

impl std::fmt::Debug for Passkeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passkeys")
            .field("available", &self.webauthn.is_some())
            .finish()
    }
}

impl Passkeys {
    /// The relying party: origin = the issuer's origin, id = `webauthn.rp_id` or the
    /// issuer's host (WebAuthn L3 §5.1.3: it must be a registrable suffix of the origin's
    /// host). Unavailable, not an error, when the issuer's host is an IP address.
    pub fn new(settings: &Settings) -> Result<Self, ServiceError> {
        let bad = |why: String| ServiceError::Refused(format!("webauthn.rp_id: {why}"));
        let origin = Url::parse(&settings.issuer).map_err(|e| bad(e.to_string()))?;
        let Some(host) = origin.domain().map(str::to_owned) else {
            return Ok(Self { webauthn: None });
        };
        let rp_id = settings.webauthn.rp_id.clone().unwrap_or(host);
        let builder = WebauthnBuilder::new(&rp_id, &origin).map_err(|_| {
            bad(format!(
                "{rp_id:?} must be the issuer's host or a parent domain of it"
            ))
        })?;
        let webauthn = builder
            .rp_name(&settings.webauthn.rp_name)
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            webauthn: Some(webauthn),
        })
    }

    /// True when passkeys can be used here.
    pub fn available(&self) -> bool {
        self.webauthn.is_some()
    }

    fn rp(&self) -> Result<&Webauthn, Refusal> {
        self.webauthn.as_ref().ok_or(Refusal::Unavailable)
    }
}

type Outcome<T> = Result<Result<T, Refusal>, ServiceError>;

fn encode<T: Serialize>(value: &T) -> Result<String, ServiceError> {
    serde_json::to_string(value).map_err(|e| ServiceError::Refused(e.to_string()))
}

async fn store_ceremony(
    store: &dyn Store,
    ceremony: &Ceremony,
    now: UnixTime,
) -> Result<String, ServiceError> {
    let cookie = random_token()?;
    let record = CeremonyRecord {
        id_hash: hash_token(&cookie),
        state: encode(ceremony)?,
        created_at: now,
        expires_at: now + CEREMONY_TTL,
    };
    store.insert_ceremony(&record).await?;
    Ok(cookie)
}

/// Takes (single use) the ceremony this browser's cookie names, if it has not expired.
async fn take_ceremony(
    store: &dyn Store,
    cookie: Option<&str>,
    now: UnixTime,
) -> Result<Option<Ceremony>, ServiceError> {
    let Some(cookie) = cookie.filter(|c| c.len() == 43) else {
        return Ok(None);
    };
    let Some(record) = store.take_ceremony(&hash_token(cookie)).await? else {
        return Ok(None);
    };
    if now >= record.expires_at || now < record.created_at {
        return Ok(None);
    }
    Ok(serde_json::from_str(&record.state).ok())
}

fn parse_json<T: for<'de> Deserialize<'de>>(json: &str) -> Result<T, Refusal> {
    if json.len() > MAX_CREDENTIAL_BYTES {
        return Err(Refusal::Malformed);
    }
    serde_json::from_str(json).map_err(|_| Refusal::Malformed)
}

/// A passkey's name as the user typed it, trimmed.
pub fn parse_name(name: &str) -> Result<String, Refusal> {
    let name = name.trim();
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && !name.chars().any(char::is_control);
    if ok {
        Ok(name.to_owned())
    } else {
        Err(Refusal::BadName)
    }
}

/// The user's WebAuthn user handle: random, created on first use, never the username or
/// the internal id, so a credential reveals nothing about the account.
async fn user_handle(store: &dyn Store, user: &User) -> Result<Uuid, ServiceError> {
    let candidate = Uuid::new_v4().to_string();
    let stored = store
        .webauthn_handle(user.id.as_str(), &candidate)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("user {}", user.username)))?;
    Uuid::parse_str(&stored).map_err(|e| ServiceError::Refused(e.to_string()))
}

fn passkey_of(record: &PasskeyRecord) -> Result<Passkey, ServiceError> {
    serde_json::from_str(&record.credential).map_err(|e| ServiceError::Refused(e.to_string()))
}

/// The backup flags of a credential (not exposed by `Passkey` without the crate's
/// "danger" features; read from its serialised form).
fn backup_flags(passkey: &Passkey) -> (bool, bool) {
    let v = serde_json::to_value(passkey).unwrap_or_default();
    let flag = |name: &str| v["cred"][name].as_bool().unwrap_or(false);
    (flag("backup_eligible"), flag("backup_state"))
}

/// Starts registering a passkey named `name` for the signed-in `user` (session `sid`):
/// a discoverable credential (resident key) with user verification required; the user's
/// existing credentials are excluded.
pub async fn start_registration(
    passkeys: &Passkeys,
    store: &dyn Store,
    user: &User,
    sid: &str,
    name: &str,
    now: UnixTime,
) -> Outcome<Started> {
    let rp = match passkeys.rp() {
        Ok(rp) => rp,
        Err(r) => return Ok(Err(r)),
    };
    let name = match parse_name(name) {
        Ok(n) => n,
        Err(r) => return Ok(Err(r)),
    };
    let handle = user_handle(store, user).await?;
    let exclude = store
        .list_passkeys(user.id.as_str())
        .await?
        .into_iter()
        .map(|p| p.credential_id)
        .collect();
    let username = user.username.as_str();
    let (ccr, state) = rp
        .start_passkey_registration(handle, username, username, Some(exclude))
        .map_err(|e| ServiceError::Refused(e.to_string()))?;
    let mut options =
        serde_json::to_value(&ccr).map_err(|e| ServiceError::Refused(e.to_string()))?;
    // WebAuthn L3 §5.4.4: ask for a discoverable credential, so that it can sign in without
    // a username (webauthn-rs leaves this to the authenticator).
    if let Some(sel) = options["publicKey"]["authenticatorSelection"].as_object_mut() {
        sel.insert("residentKey".into(), "required".into());
        sel.insert("requireResidentKey".into(), true.into());
    }
    let ceremony = Ceremony::Register {
        user_id: user.id.as_str().to_owned(),
        sid: sid.to_owned(),
        name,
        state,
    };
    let cookie = store_ceremony(store, &ceremony, now).await?;
    Ok(Ok(Started { options, cookie }))
}

/// Finishes a registration started by this browser for this session; stores the passkey.
pub async fn finish_registration(
    passkeys: &Passkeys,
    store: &dyn Store,
    user: &User,
    sid: &str,
    cookie: Option<&str>,
    credential: &str,
    now: UnixTime,
) -> Outcome<PasskeyRecord> {
    let rp = match passkeys.rp() {
        Ok(rp) => rp,
        Err(r) => return Ok(Err(r)),
    };
    let Some(Ceremony::Register {
        user_id,
        sid: started_in,
        name,
        state,
    }) = take_ceremony(store, cookie, now).await?
    else {
        return Ok(Err(Refusal::Expired));
    };
    if user_id != user.id.as_str() || started_in != sid {
        return Ok(Err(Refusal::Expired));
    }
    let reg: RegisterPublicKeyCredential = match parse_json(credential) {
        Ok(r) => r,
        Err(r) => return Ok(Err(r)),
    };
    let Ok(passkey) = rp.finish_passkey_registration(&reg, &state) else {
        return Ok(Err(Refusal::Invalid));
    };
    let (backup_eligible, backed_up) = backup_flags(&passkey);
    let record = PasskeyRecord {
        id: uuid::Uuid::new_v4().simple().to_string(),
        user_id,
        credential_id: passkey.cred_id().to_vec(),
        name,
        credential: encode(&passkey)?,
        counter: 0,
        backup_eligible,
        backed_up,
        created_at: now,
        last_used_at: None,
        counter_regressed_at: None,
    };
    match store.insert_passkey(&record).await {
        Ok(()) => Ok(Ok(record)),
        // WebAuthn L3 §7.1 step 26: a credential id registered to anyone is refused.
        Err(crate::store::StoreError::Conflict(_)) => Ok(Err(Refusal::Taken)),
        Err(e) => Err(e.into()),
    }
}

/// Starts a sign-in with a passkey alone (no username: the credential is discoverable).
pub async fn start_sign_in(
    passkeys: &Passkeys,
    store: &dyn Store,
    resume: Resume,
    now: UnixTime,
) -> Outcome<Started> {
    let rp = match passkeys.rp() {
        Ok(rp) => rp,
        Err(r) => return Ok(Err(r)),
    };
    let (rcr, state) = rp
        .start_discoverable_authentication()
        .map_err(|e| ServiceError::Refused(e.to_string()))?;
    let mut options =
        serde_json::to_value(&rcr).map_err(|e| ServiceError::Refused(e.to_string()))?;
    // The script chooses between a button press and autofill (conditional mediation).
    if let Some(o) = options.as_object_mut() {
        o.remove("mediation");
    }
    let cookie = store_ceremony(store, &Ceremony::SignIn { resume, state }, now).await?;
    Ok(Ok(Started { options, cookie }))
}

/// Finishes a passkey sign-in: the user is found from the credential's user handle.
pub async fn finish_sign_in(
    passkeys: &Passkeys,
    store: &dyn Store,
    cookie: Option<&str>,
    credential: &str,
    now: UnixTime,
) -> Outcome<SignedInWith> {
    let rp = match passkeys.rp() {
        Ok(rp) => rp,
        Err(r) => return Ok(Err(r)),
    };
    let Some(Ceremony::SignIn { resume, state }) = take_ceremony(store, cookie, now).await? else {
        return Ok(Err(Refusal::Expired));
    };
    let assertion: PublicKeyCredential = match parse_json(credential) {
        Ok(a) => a,
        Err(r) => return Ok(Err(r)),
    };
    let Ok((handle, credential_id)) = rp.identify_discoverable_authentication(&assertion) else {
        return Ok(Err(Refusal::Unknown));
    };
    let Some(user) = store.user_by_webauthn_handle(&handle.to_string()).await? else {
        return Ok(Err(Refusal::Unknown));
    };
    let Some(record) = store.get_passkey(credential_id).await? else {
        return Ok(Err(Refusal::Unknown));
    };
    if record.user_id != user.id.as_str() || user.disabled {
        return Ok(Err(Refusal::Unknown));
    }
    let mut passkey = passkey_of(&record)?;
    let result = rp.finish_discoverable_authentication_v2(&assertion, state, &passkey);
    match accept(store, &record, &mut passkey, result, now).await? {
        Ok(()) => Ok(Ok(SignedInWith { user, resume })),
        Err(r) => Ok(Err(r)),
    }
}

/// Starts a passkey as the second factor of `user`'s pending login.
pub async fn start_second_factor(
    passkeys: &Passkeys,
    store: &dyn Store,
    user_id: &str,
    now: UnixTime,
) -> Outcome<Started> {
    let rp = match passkeys.rp() {
        Ok(rp) => rp,
        Err(r) => return Ok(Err(r)),
    };
    let mut keys = Vec::new();
    for record in store.list_passkeys(user_id).await? {
        keys.push(passkey_of(&record)?);
    }
    if keys.is_empty() {
        return Ok(Err(Refusal::Unknown));
    }
    let (rcr, state) = rp
        .start_passkey_authentication(&keys)
        .map_err(|e| ServiceError::Refused(e.to_string()))?;
    let options = serde_json::to_value(&rcr).map_err(|e| ServiceError::Refused(e.to_string()))?;
    let ceremony = Ceremony::SecondFactor {
        user_id: user_id.to_owned(),
        state,
    };
    let cookie = store_ceremony(store, &ceremony, now).await?;
    Ok(Ok(Started { options, cookie }))
}

/// Finishes a passkey second factor for `user_id`.
pub async fn finish_second_factor(
    passkeys: &Passkeys,
    store: &dyn Store,
    user_id: &str,
    cookie: Option<&str>,
    credential: &str,
    now: UnixTime,
) -> Outcome<()> {
    let rp = match passkeys.rp() {
        Ok(rp) => rp,
        Err(r) => return Ok(Err(r)),
    };
    let Some(Ceremony::SecondFactor {
        user_id: started_for,
        state,
    }) = take_ceremony(store, cookie, now).await?
    else {
        return Ok(Err(Refusal::Expired));
    };
    if started_for != user_id {
        return Ok(Err(Refusal::Expired));
    }
    let assertion: PublicKeyCredential = match parse_json(credential) {
        Ok(a) => a,
        Err(r) => return Ok(Err(r)),
    };
    let Some(record) = store.get_passkey(assertion.get_credential_id()).await? else {
        return Ok(Err(Refusal::Unknown));
    };
    if record.user_id != user_id {
        return Ok(Err(Refusal::Unknown));
    }
    let mut passkey = passkey_of(&record)?;
    let result = rp.finish_passkey_authentication(&assertion, &state);
    accept(store, &record, &mut passkey, result, now).await
}

/// Accepts a verified assertion: the new counter and backup state are stored only if the
/// counter moved forward (WebAuthn L3 §7.2 step 22), in the statement that accepts it; a
/// counter that went backwards is refused and marked on the passkey.
async fn accept(
    store: &dyn Store,
    record: &PasskeyRecord,
    passkey: &mut Passkey,
    result: Result<webauthn_rs::prelude::AuthenticationResult, WebauthnError>,
    now: UnixTime,
) -> Outcome<()> {
    let result = match result {
        Ok(r) => r,
        Err(WebauthnError::CredentialPossibleCompromise) => {
            store
                .mark_counter_regression(&record.credential_id, now)
                .await?;
            return Ok(Err(Refusal::CounterRegression));
        }
        Err(_) => return Ok(Err(Refusal::Invalid)),
    };
    // User verification is required by every ceremony's options; check the result too.
    if !result.user_verified() {
        return Ok(Err(Refusal::Invalid));
    }
    passkey.update_credential(&result);
    let used = PasskeyUse {
        credential_id: record.credential_id.clone(),
        counter: i64::from(result.counter()),
        credential: encode(passkey)?,
        backed_up: result.backup_state(),
        at: now,
    };
    if !store.record_passkey_use(&used).await? {
        store
            .mark_counter_regression(&record.credential_id, now)
            .await?;
        return Ok(Err(Refusal::CounterRegression));
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(parse_name("  Phone "), Ok("Phone".to_owned()));
        assert_eq!(parse_name(""), Err(Refusal::BadName));
        assert_eq!(parse_name("   "), Err(Refusal::BadName));
        assert_eq!(parse_name("a\u{0}b"), Err(Refusal::BadName));
        assert_eq!(parse_name(&"x".repeat(65)), Err(Refusal::BadName));
        assert!(parse_name(&"é".repeat(64)).is_ok());
    }

    #[test]
    fn an_ip_address_issuer_has_no_passkeys_and_a_foreign_rp_id_is_refused() {
        let mut s = Settings {
            issuer: "http://127.0.0.1:8080".into(),
            ..Settings::default()
        };
        assert!(!Passkeys::new(&s).unwrap().available());
        s.issuer = "https://id.example.com".into();
        assert!(Passkeys::new(&s).unwrap().available());
        s.webauthn.rp_id = Some("example.com".into());
        assert!(Passkeys::new(&s).unwrap().available());
        s.webauthn.rp_id = Some("evil.example".into());
        assert!(Passkeys::new(&s).is_err());
    }

    #[test]
    fn oversized_or_malformed_credentials_are_refused_before_parsing() {
        let big = format!("{{\"x\":\"{}\"}}", "a".repeat(MAX_CREDENTIAL_BYTES));
        assert_eq!(
            parse_json::<PublicKeyCredential>(&big).err(),
            Some(Refusal::Malformed)
        );
        assert_eq!(
            parse_json::<PublicKeyCredential>("{").err(),
            Some(Refusal::Malformed)
        );
    }
}
