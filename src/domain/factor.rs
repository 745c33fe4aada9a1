//! Authentication factors and the records that second factors and logins leave in storage.

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;

/// A way the user proved who they are. The wire names are Latchkey's own; the `amr` values
/// an ID token carries (RFC 8176) are derived from them in `authn::acr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactorKind {
    /// The account password.
    Password,
    /// A TOTP code (RFC 6238).
    Totp,
    /// A single-use backup (recovery) code.
    BackupCode,
    /// A passkey (WebAuthn, user verification required): on its own it is multi-factor.
    Passkey,
}

impl FactorKind {
    /// True for the factors that can serve as a second factor.
    pub fn is_second_factor(self) -> bool {
        matches!(self, Self::Totp | Self::BackupCode | Self::Passkey)
    }

    /// The stable name used in audit events and forms.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Totp => "totp",
            Self::BackupCode => "backup_code",
            Self::Passkey => "passkey",
        }
    }

    /// Parses [`FactorKind::as_str`].
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "password" => Some(Self::Password),
            "totp" => Some(Self::Totp),
            "backup_code" => Some(Self::BackupCode),
            "passkey" => Some(Self::Passkey),
            _ => None,
        }
    }
}

/// One factor used in a session, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactorUse {
    /// Which factor.
    pub kind: FactorKind,
    /// When it was presented.
    pub at: UnixTime,
}

/// A user's TOTP credential. The secret is sealed under the key-encryption key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpCredential {
    /// Whose.
    pub user_id: String,
    /// AES-GCM sealed secret (associated data: `totp:` + user id).
    pub secret_sealed: Vec<u8>,
    /// When enrolment started.
    pub created_at: UnixTime,
    /// Set when the user entered a first valid code; only a confirmed credential counts.
    pub confirmed_at: Option<UnixTime>,
    /// The last time step accepted (RFC 6238 §5.2): a code of this step or an earlier one
    /// is refused, on every node.
    pub last_used_step: i64,
}

/// A throttle bucket, stored so that every node shares it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThrottleBucket {
    /// Attempts (or failures) counted in the current window.
    pub count: i64,
    /// Start of the current window.
    pub window_start: UnixTime,
    /// No attempt is allowed before this time.
    pub blocked_until: UnixTime,
}

/// A login in progress (password done, second factor pending, ...), stored server-side
/// and bound to the browser by a cookie whose SHA-256 is `id_hash`. Single use: every
/// step takes it (deleting it) and stores its successor under a new id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLoginRecord {
    /// SHA-256 of the cookie value.
    pub id_hash: Vec<u8>,
    /// The state machine's state, as JSON (`authn::login::PendingLogin`).
    pub state: String,
    /// Creation time.
    pub created_at: UnixTime,
    /// After this the login must start again.
    pub expires_at: UnixTime,
}

/// Which audit events to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this user's.
    pub user_id: Option<String>,
    /// Only events at or after this time.
    pub since: Option<UnixTime>,
    /// At most this many, newest first.
    pub limit: u32,
}

/// A registered passkey (WebAuthn discoverable credential). The credential itself (public
/// key, counter, flags) is webauthn-rs's `Passkey`, stored as JSON: it holds no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyRecord {
    /// Random public id, for the account page's forms.
    pub id: String,
    /// Whose.
    pub user_id: String,
    /// The WebAuthn credential id; unique across all users.
    pub credential_id: Vec<u8>,
    /// The name the user gave it.
    pub name: String,
    /// webauthn-rs `Passkey` as JSON.
    pub credential: String,
    /// The signature counter last seen (0 when the authenticator does not count).
    pub counter: i64,
    /// The authenticator may sync this credential (backup eligible).
    pub backup_eligible: bool,
    /// The credential is backed up (synced) as of its last use.
    pub backed_up: bool,
    /// Registration time.
    pub created_at: UnixTime,
    /// Last successful use.
    pub last_used_at: Option<UnixTime>,
    /// When an assertion with a counter that went backwards was refused (a possible clone).
    pub counter_regressed_at: Option<UnixTime>,
}

/// What an accepted assertion changes on its passkey, applied only if the counter still
/// allows it (WebAuthn L3 §7.2 step 22).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyUse {
    /// The credential used.
    pub credential_id: Vec<u8>,
    /// The counter the authenticator reported.
    pub counter: i64,
    /// The updated `Passkey` JSON.
    pub credential: String,
    /// The backup state the authenticator reported.
    pub backed_up: bool,
    /// When.
    pub at: UnixTime,
}

/// A WebAuthn ceremony in progress (registration or authentication), stored server-side,
/// bound to the browser by a cookie whose SHA-256 is `id_hash`, single use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CeremonyRecord {
    /// SHA-256 of the cookie value.
    pub id_hash: Vec<u8>,
    /// webauthn-rs state and what the ceremony is for, as JSON.
    pub state: String,
    /// Creation time.
    pub created_at: UnixTime,
    /// After this the ceremony is refused.
    pub expires_at: UnixTime,
}
