//! Test-only RSA keys, generated once per test process.

use std::sync::OnceLock;

use super::rsa_keys::{generate_rsa_key, GeneratedRsaKey};

/// The legitimate signing key (its public half is in the test `VerifyingKeys`).
pub(crate) fn primary() -> &'static GeneratedRsaKey {
    static KEY: OnceLock<GeneratedRsaKey> = OnceLock::new();
    KEY.get_or_init(|| generate_rsa_key(2048).unwrap())
}

/// A second, equally well-formed key that is NOT in the test `VerifyingKeys`.
pub(crate) fn other() -> &'static GeneratedRsaKey {
    static KEY: OnceLock<GeneratedRsaKey> = OnceLock::new();
    KEY.get_or_init(|| generate_rsa_key(2048).unwrap())
}
