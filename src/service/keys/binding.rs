//! The binding between a stored signing key's public half and its sealed private half, so
//! that someone who can write the database but has no key-encryption key cannot publish a
//! key of their own (issue 10, point 5). A row is usable only when:
//!
//! 1. its `kid` is the RFC 7638 thumbprint of its stored public key (`n`, `e`);
//! 2. its private key opens under the key-encryption key with that `kid`, algorithm and
//!    public key as AES-GCM associated data ([`key_aad`]); and
//! 3. the private key's own public half is the stored public key.
//!
//! Keys sealed before the public key was bound (associated data: the `kid` alone) still
//! open, pass checks 1 and 3, and are re-sealed under [`key_aad`] on load.

use zeroize::Zeroizing;

use crate::crypto::jwk::rsa_thumbprint;
use crate::crypto::kek::MasterKey;
use crate::crypto::rsa_keys::public_components;
use crate::domain::SigningKeyRecord;

/// Names this version of the associated data, so it can never equal a bare `kid`.
const AAD_PREFIX: &[u8] = b"latchkey-signing-key-v2";

/// The associated data a private signing key is sealed with: a version tag, the `kid`, the
/// algorithm and the public key. The parts are base64url or algorithm names, which hold no
/// NUL, so NUL separators keep the encoding unambiguous.
pub fn key_aad(kid: &str, alg: &str, n: &str, e: &str) -> Vec<u8> {
    let mut aad = AAD_PREFIX.to_vec();
    for part in [kid, alg, n, e] {
        aad.push(0);
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

/// A stored key that passed every check.
pub(super) struct Opened {
    /// The private key, PKCS#8 DER.
    pub(super) der: Zeroizing<Vec<u8>>,
    /// Sealed with the `kid` alone (before the public key was bound): re-seal it.
    pub(super) legacy: bool,
}

/// Opens `record`'s private key if, and only if, the row is bound as described above; the
/// error says which check failed (never any key material).
pub(super) fn open_checked(
    record: &SigningKeyRecord,
    master: &MasterKey,
) -> Result<Opened, String> {
    let r = record;
    // 1. RFC 7638 §3: the kid is the thumbprint of the public key it names.
    if rsa_thumbprint(&r.public_n, &r.public_e) != r.kid {
        return Err("its kid is not the RFC 7638 thumbprint of its public key".into());
    }
    // 2. The public key is the associated data of the sealed private key.
    let aad = key_aad(&r.kid, &r.alg, &r.public_n, &r.public_e);
    let (der, legacy) = match master.open(&r.private_key_sealed, &aad) {
        Ok(der) => (der, false),
        Err(_) => match master.open(&r.private_key_sealed, r.kid.as_bytes()) {
            Ok(der) => (der, true),
            Err(_) => {
                return Err(
                    "its sealed private key does not open with its kid and public key as \
                     associated data"
                        .into(),
                )
            }
        },
    };
    let der = Zeroizing::new(der);
    // 3. The private key's own public half is the one published.
    let (n, e) = public_components(&der).map_err(|_| "its private key does not parse")?;
    if n != r.public_n || e != r.public_e {
        return Err("its private key belongs to another public key".into());
    }
    Ok(Opened { der, legacy })
}
