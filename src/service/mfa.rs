//! Second factors: TOTP enrolment and verification (RFC 6238), backup codes.
//!
//! TOTP secrets are sealed at rest under the key-encryption key (AES-GCM, the user id as
//! associated data, so a sealed secret cannot be moved to another account). Each time
//! step is accepted at most once per user, on every node: the store advances
//! `last_used_step` only forward (`UPDATE ... WHERE last_used_step < $step`). Backup codes
//! are stored as keyed hashes (HMAC-SHA256 under a key derived from the master key): they
//! carry about 50 random bits and are single use, so a slow hash buys nothing.

use crate::authn::{backup_codes, totp};
use crate::clock::UnixTime;
use crate::crypto::kek::MasterKey;
use crate::crypto::SecretHasher;
use crate::domain::{FactorKind, User};
use crate::store::Store;

use super::ServiceError;

/// What the enrolment page shows.
#[derive(Debug)]
pub struct TotpEnrolment {
    /// The secret in base32, for typing by hand.
    pub secret: String,
    /// The `otpauth://` URI.
    pub otpauth_uri: String,
    /// The URI as a QR code, a PNG data URI rendered here.
    pub qr: String,
}

/// TOTP secrets and backup codes, with the keys they need.
pub struct Factors {
    master: std::sync::Arc<MasterKey>,
    codes: SecretHasher,
    issuer_label: String,
}

impl std::fmt::Debug for Factors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Factors([redacted])")
    }
}

fn aad(user_id: &str) -> Vec<u8> {
    format!("totp:{user_id}").into_bytes()
}

impl Factors {
    /// `issuer` names the account in authenticator apps.
    pub fn new(master: std::sync::Arc<MasterKey>, issuer: &str) -> Result<Self, ServiceError> {
        let codes = SecretHasher::for_purpose(&master, b"backup-code")?;
        let issuer_label = url::Url::parse(issuer)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .map_or_else(|| "Latchkey".to_owned(), |h| format!("Latchkey {h}"));
        Ok(Self {
            master,
            codes,
            issuer_label,
        })
    }

    /// The second factors `user_id` can use now.
    pub async fn enrolled(
        &self,
        store: &dyn Store,
        user_id: &str,
    ) -> Result<Vec<FactorKind>, ServiceError> {
        let mut kinds = Vec::new();
        if store
            .get_totp(user_id)
            .await?
            .is_some_and(|t| t.confirmed_at.is_some())
        {
            kinds.push(FactorKind::Totp);
        }
        if store.backup_codes_left(user_id).await? > 0 {
            kinds.push(FactorKind::BackupCode);
        }
        if !store.list_passkeys(user_id).await?.is_empty() {
            kinds.push(FactorKind::Passkey);
        }
        Ok(kinds)
    }

    fn enrolment(
        &self,
        user: &User,
        secret: &totp::TotpSecret,
    ) -> Result<TotpEnrolment, ServiceError> {
        let account = user.username.as_str();
        let uri = totp::otpauth_uri(secret, &self.issuer_label, account).map_err(refused)?;
        let qr = totp::qr_png_data_uri(secret, &self.issuer_label, account).map_err(refused)?;
        Ok(TotpEnrolment {
            secret: secret.to_base32(),
            otpauth_uri: uri,
            qr,
        })
    }

    /// Starts (or restarts) enrolment: a new secret, stored sealed and unconfirmed.
    /// `Conflict` when TOTP is already on.
    pub async fn begin_totp(
        &self,
        store: &dyn Store,
        user: &User,
        now: UnixTime,
    ) -> Result<TotpEnrolment, ServiceError> {
        let secret = totp::TotpSecret::generate().map_err(refused)?;
        let sealed = self
            .master
            .seal(secret.as_bytes(), &aad(user.id.as_str()))?;
        store
            .put_pending_totp(user.id.as_str(), &sealed, now)
            .await?;
        self.enrolment(user, &secret)
    }

    /// The enrolment in progress, to show again after a wrong code.
    pub async fn pending_totp(
        &self,
        store: &dyn Store,
        user: &User,
    ) -> Result<Option<TotpEnrolment>, ServiceError> {
        match store.get_totp(user.id.as_str()).await? {
            Some(t) if t.confirmed_at.is_none() => {
                let secret = self.open(user.id.as_str(), &t.secret_sealed)?;
                self.enrolment(user, &secret).map(Some)
            }
            _ => Ok(None),
        }
    }

    fn open(&self, user_id: &str, sealed: &[u8]) -> Result<totp::TotpSecret, ServiceError> {
        let raw = self.master.open(sealed, &aad(user_id))?;
        totp::TotpSecret::from_bytes(raw).map_err(refused)
    }

    /// Confirms enrolment with a first valid code; returns the ten new backup codes (shown
    /// once), or `None` when the code is wrong or there is no enrolment in progress.
    pub async fn confirm_totp(
        &self,
        store: &dyn Store,
        user_id: &str,
        code: &str,
        now: UnixTime,
    ) -> Result<Option<Vec<String>>, ServiceError> {
        let Some(pending) = store.get_totp(user_id).await? else {
            return Ok(None);
        };
        if pending.confirmed_at.is_some() {
            return Ok(None);
        }
        let secret = self.open(user_id, &pending.secret_sealed)?;
        let Some(step) = totp::verify(&secret, code, now, pending.last_used_step) else {
            return Ok(None);
        };
        let codes = backup_codes::generate().map_err(refused)?;
        let hashes = self.hash_codes(&codes);
        if !store.confirm_totp(user_id, step, &hashes, now).await? {
            return Ok(None);
        }
        Ok(Some(codes))
    }

    fn hash_codes(&self, codes: &[String]) -> Vec<Vec<u8>> {
        codes
            .iter()
            .filter_map(|c| backup_codes::normalize(c))
            .map(|c| self.codes.hash(&c))
            .collect()
    }

    /// Checks a TOTP code; true only for a valid code of a time step not used before (by
    /// this user, on any node).
    pub async fn verify_totp(
        &self,
        store: &dyn Store,
        user_id: &str,
        code: &str,
        now: UnixTime,
    ) -> Result<bool, ServiceError> {
        let Some(cred) = store.get_totp(user_id).await? else {
            return Ok(false);
        };
        if cred.confirmed_at.is_none() {
            return Ok(false);
        }
        let secret = self.open(user_id, &cred.secret_sealed)?;
        match totp::verify(&secret, code, now, cred.last_used_step) {
            // The store decides: of two nodes accepting the same step, one wins.
            Some(step) => Ok(store.use_totp_step(user_id, step).await?),
            None => Ok(false),
        }
    }

    /// Spends a backup code; true if it was valid and unused.
    pub async fn use_backup_code(
        &self,
        store: &dyn Store,
        user_id: &str,
        code: &str,
        now: UnixTime,
    ) -> Result<bool, ServiceError> {
        let Some(canonical) = backup_codes::normalize(code) else {
            return Ok(false);
        };
        Ok(store
            .use_backup_code(user_id, &self.codes.hash(&canonical), now)
            .await?)
    }

    /// A new set of backup codes, voiding the old one.
    pub async fn regenerate_backup_codes(
        &self,
        store: &dyn Store,
        user_id: &str,
        now: UnixTime,
    ) -> Result<Vec<String>, ServiceError> {
        let codes = backup_codes::generate().map_err(refused)?;
        store
            .replace_backup_codes(user_id, &self.hash_codes(&codes), now)
            .await?;
        Ok(codes)
    }
}

/// True when `code` has the shape of a TOTP code or a backup code for `kind`; a malformed
/// code is refused before anything is counted or spent.
pub fn well_formed(kind: FactorKind, code: &str) -> bool {
    match kind {
        FactorKind::Totp => {
            let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
            digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit())
        }
        FactorKind::BackupCode => backup_codes::normalize(code).is_some(),
        // The browser's assertion, JSON; webauthn-rs reads it.
        FactorKind::Passkey => {
            code.starts_with('{') && code.len() <= super::passkeys::MAX_CREDENTIAL_BYTES
        }
        FactorKind::Password => false,
    }
}

fn refused(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Refused(e.to_string())
}
