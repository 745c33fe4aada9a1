//! Cryptography for Latchkey: JWT signing and verification behind one algorithm allowlist,
//! JWKS, RSA key generation, encryption at rest under a key-encryption key, password hashing,
//! random tokens and their hashes.
//!
//! Nothing here implements a primitive by hand: signatures come from aws-lc-rs / ring,
//! verification from jsonwebtoken, key generation from `rsa`, AES-GCM and HKDF from ring,
//! password hashing from `argon2`.

pub mod alg;
pub mod jwk;
pub mod jwt;
pub mod kek;
pub mod password;
pub mod rsa_keys;
pub mod signer;
pub mod token;

pub use alg::{ALLOWED_ALGORITHMS, DEFAULT_ALGORITHM};
pub use jwk::{rsa_thumbprint, JwkSet, PublicJwk};
pub use jwt::{encode_jws, verify, Expected, VerifyError, VerifyingKeys};
pub use kek::MasterKey;
pub use password::{PasswordHasher, PasswordParams};
pub use rsa_keys::{generate_rsa_key, public_components, GeneratedRsaKey};
pub use signer::{default_signer, AwsLcRsaSigner, JwsSigner, RingRsaSigner};
pub use token::{hash_token, random_token, sha256, SecretHasher};

/// Everything that can go wrong in this module, apart from token verification
/// (which has its own [`VerifyError`]). Messages never contain secret material.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// A private or public key could not be parsed or failed its consistency checks.
    #[error("key rejected: {0}")]
    KeyRejected(String),
    /// The signature operation failed.
    #[error("signing failed")]
    Signing,
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// Serialising or encoding data failed.
    #[error("encoding failed: {0}")]
    Encoding(String),
    /// Authenticated decryption failed: wrong key, wrong associated data or tampered data.
    #[error("decryption failed: wrong key, wrong associated data or tampered ciphertext")]
    Decrypt,
    /// Encryption failed.
    #[error("encryption failed")]
    Encrypt,
    /// Only RSA keys of 2048, 3072 or 4096 bits are generated.
    #[error("unsupported RSA key size {0} bits; use 2048, 3072 or 4096")]
    UnsupportedKeySize(usize),
    /// An algorithm outside [`ALLOWED_ALGORITHMS`] was requested.
    #[error("algorithm {0} is not in the allowlist")]
    DisallowedAlgorithm(String),
    /// The key-encryption key could not be loaded or created.
    #[error("master key: {0}")]
    MasterKey(String),
    /// Password hashing failed (bad parameters or an internal argon2 error).
    #[error("password hashing: {0}")]
    PasswordHash(String),
    /// Too many password hashes are already waiting: answer "try again shortly" instead
    /// of queueing without limit.
    #[error("too many password checks are waiting")]
    Busy,
    /// A blocking task panicked or was cancelled, or the semaphore was closed.
    #[error("background task failed: {0}")]
    TaskJoin(String),
}

#[cfg(test)]
mod test_keys;
