use crate::clock::UnixTime;

/// The life of a signing key (see `docs/key-rotation.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published in the JWKS, not yet signing.
    Next,
    /// The one key that signs.
    Current,
    /// Published, no longer signing, until every token it signed has expired.
    Previous,
    /// Gone from the JWKS; private material erased.
    Retired,
}

impl KeyState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Current => "current",
            Self::Previous => "previous",
            Self::Retired => "retired",
        }
    }

    /// Parses a stored name.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "next" => Some(Self::Next),
            "current" => Some(Self::Current),
            "previous" => Some(Self::Previous),
            "retired" => Some(Self::Retired),
            _ => None,
        }
    }

    /// Whether keys in this state appear in the JWKS.
    pub fn is_published(self) -> bool {
        !matches!(self, Self::Retired)
    }
}

/// A signing key as stored: the private key only ever encrypted (AES-256-GCM under the
/// key-encryption key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// Lifecycle state.
    pub state: KeyState,
    /// JWS algorithm, one of the allowlist.
    pub alg: String,
    /// Modulus size in bits.
    pub bits: i64,
    /// PKCS#8 DER, sealed with the key-encryption key; empty once retired.
    pub private_key_sealed: Vec<u8>,
    /// Public modulus, base64url.
    pub public_n: String,
    /// Public exponent, base64url.
    pub public_e: String,
    /// When the key was generated (and published as `next`).
    pub created_at: UnixTime,
    /// When it became `current`.
    pub activated_at: Option<UnixTime>,
    /// When it stopped signing.
    pub deactivated_at: Option<UnixTime>,
    /// When it may leave the JWKS: every token it signed has expired by then.
    pub retires_at: Option<UnixTime>,
}
