//! RSA signing-key generation. The `rsa` crate is used only to generate keys and read
//! public components; signing happens in aws-lc-rs / ring (see `signer.rs`).

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rsa::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use rsa::traits::PublicKeyParts as _;
use rsa::RsaPrivateKey;

use super::jwk::rsa_thumbprint;
use super::CryptoError;

/// Key sizes Latchkey generates. RFC 7518 §3.3 requires at least 2048 bits for RS256.
pub const SUPPORTED_RSA_BITS: &[usize] = &[2048, 3072, 4096];

/// A freshly generated RSA key: the private key as PKCS#8 DER plus its public JWK members.
pub struct GeneratedRsaKey {
    /// The private key, PKCS#8 DER (RFC 5208). Seal it with the master key before storing.
    pub pkcs8_der: Vec<u8>,
    /// Modulus, base64url without padding.
    pub n: String,
    /// Public exponent, base64url without padding.
    pub e: String,
    /// Key id: the RFC 7638 thumbprint of the public key.
    pub kid: String,
}

impl fmt::Debug for GeneratedRsaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedRsaKey")
            .field("pkcs8_der", &"[redacted]")
            .field("n", &self.n)
            .field("e", &self.e)
            .field("kid", &self.kid)
            .finish()
    }
}

impl Drop for GeneratedRsaKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.pkcs8_der);
    }
}

/// Generates an RSA key of `bits` (2048, 3072 or 4096) with exponent 65537.
///
/// This is CPU-heavy (about 100 ms for 2048 bits, seconds for 4096): call it from
/// `spawn_blocking` in async code.
pub fn generate_rsa_key(bits: usize) -> Result<GeneratedRsaKey, CryptoError> {
    if !SUPPORTED_RSA_BITS.contains(&bits) {
        return Err(CryptoError::UnsupportedKeySize(bits));
    }
    let mut rng = rsa::rand_core::OsRng;
    let key =
        RsaPrivateKey::new(&mut rng, bits).map_err(|e| CryptoError::KeyRejected(e.to_string()))?;
    let pkcs8 = key
        .to_pkcs8_der()
        .map_err(|e| CryptoError::Encoding(e.to_string()))?;
    let (n, e) = components(&key);
    Ok(GeneratedRsaKey {
        pkcs8_der: pkcs8.as_bytes().to_vec(),
        kid: rsa_thumbprint(&n, &e),
        n,
        e,
    })
}

/// The public modulus and exponent (base64url, no padding) of a PKCS#8 DER RSA private key.
pub fn public_components(pkcs8_der: &[u8]) -> Result<(String, String), CryptoError> {
    let key = RsaPrivateKey::from_pkcs8_der(pkcs8_der)
        .map_err(|e| CryptoError::KeyRejected(e.to_string()))?;
    Ok(components(&key))
}

/// RFC 7518 §6.3.1: `n` and `e` are unsigned big-endian integers, base64url encoded, in
/// the minimum number of octets.
fn components(key: &RsaPrivateKey) -> (String, String) {
    (
        URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
        URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::jwt::{encode_jws, verify, Expected, VerifyingKeys};
    use crate::crypto::signer::{AwsLcRsaSigner, JwsSigner, RingRsaSigner};
    use crate::crypto::test_keys::primary;
    use crate::crypto::PublicJwk;

    #[test]
    fn rejects_unsupported_sizes() {
        for bits in [512, 1024, 2047, 8192] {
            assert!(matches!(
                generate_rsa_key(bits),
                Err(CryptoError::UnsupportedKeySize(b)) if b == bits
            ));
        }
    }

    #[test]
    fn generated_key_signs_with_both_signers_and_verifies() {
        let key = primary();
        assert_eq!(key.e, "AQAB");
        assert_eq!(URL_SAFE_NO_PAD.decode(&key.n).unwrap().len(), 256);
        assert_eq!(key.kid, rsa_thumbprint(&key.n, &key.e));
        assert_eq!(
            public_components(&key.pkcs8_der).unwrap(),
            (key.n.clone(), key.e.clone())
        );
        let keys =
            VerifyingKeys::from_jwks(&[PublicJwk::rsa(&key.kid, &key.n, &key.e, "RS256")]).unwrap();
        let claims = serde_json::json!({"iss": "https://issuer", "exp": 2000, "iat": 1000});
        let expected = Expected {
            issuer: "https://issuer",
            audience: None,
            typ: None,
            now: 1500,
            leeway_secs: 0,
        };
        let signers: [Box<dyn JwsSigner>; 2] = [
            Box::new(AwsLcRsaSigner::from_pkcs8(&key.pkcs8_der).unwrap()),
            Box::new(RingRsaSigner::from_pkcs8(&key.pkcs8_der).unwrap()),
        ];
        for signer in &signers {
            let token = encode_jws(signer.as_ref(), &key.kid, "JWT", &claims).unwrap();
            let back: serde_json::Value = verify(&token, &keys, &expected).unwrap();
            assert_eq!(back, claims);
        }
    }

    #[test]
    fn debug_redacts_private_key() {
        let shown = format!("{:?}", primary());
        assert!(shown.contains("[redacted]"));
        assert!(!shown.contains("pkcs8_der: ["));
    }

    #[test]
    fn public_components_rejects_garbage() {
        assert!(public_components(b"nope").is_err());
    }
}
