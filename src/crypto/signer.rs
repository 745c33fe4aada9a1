//! JWS signers that hold a parsed private key in memory.
//!
//! `jsonwebtoken::encode` re-parses and re-checks the PKCS#8 key on every call (about 0.14 ms
//! with aws-lc, more than half the cost of an RSA-2048 signature), so Latchkey parses each
//! key once here and signs the JWS signing input itself (see `jwt::encode_jws`).

use std::fmt;
use std::sync::Arc;

use jsonwebtoken::Algorithm;

use super::alg::is_allowed;
use super::CryptoError;

/// Produces the JWS signature over a signing input (RFC 7515 §5.1 step 5).
pub trait JwsSigner: Send + Sync {
    /// The JWS `alg` this signer produces; always one of `ALLOWED_ALGORITHMS`.
    fn algorithm(&self) -> Algorithm;
    /// Signs `BASE64URL(header) || '.' || BASE64URL(payload)` and returns the raw signature.
    fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, CryptoError>;
}

/// The signer Latchkey uses: RS256 through aws-lc-rs.
///
/// Chosen by measurement (`cargo bench --bench signing`, see `benches/signing.rs`): about
/// 3,370 RSA-2048 signatures/s per core with aws-lc-rs against 1,860/s with ring
/// (`/work/shared/DEPENDENCIES.md`); the bench run on 2026-11-25 on a loaded machine gave
/// 261 µs vs 668 µs a signature. Both are constant-time implementations.
pub fn default_signer(pkcs8: &[u8]) -> Result<Arc<dyn JwsSigner>, CryptoError> {
    Ok(Arc::new(AwsLcRsaSigner::from_pkcs8(pkcs8)?))
}

/// RS256 (RSASSA-PKCS1-v1_5 with SHA-256, RFC 7518 §3.3) with an aws-lc-rs key pair.
pub struct AwsLcRsaSigner {
    key: aws_lc_rs::signature::RsaKeyPair,
    rng: aws_lc_rs::rand::SystemRandom,
}

impl AwsLcRsaSigner {
    /// Parses and checks a PKCS#8 DER RSA private key once.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, CryptoError> {
        let key = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(der)
            .map_err(|e| CryptoError::KeyRejected(e.to_string()))?;
        ensure_allowed(Algorithm::RS256)?;
        Ok(Self {
            key,
            rng: aws_lc_rs::rand::SystemRandom::new(),
        })
    }
}

impl JwsSigner for AwsLcRsaSigner {
    fn algorithm(&self) -> Algorithm {
        Algorithm::RS256
    }

    fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, CryptoError> {
        // aws-lc-rs requires the buffer to be exactly the modulus length.
        let mut signature = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &self.rng,
                signing_input,
                &mut signature,
            )
            .map_err(|_| CryptoError::Signing)?;
        Ok(signature)
    }
}

impl fmt::Debug for AwsLcRsaSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AwsLcRsaSigner([redacted])")
    }
}

/// RS256 (RFC 7518 §3.3) with a ring key pair; kept for comparison and as a fallback.
pub struct RingRsaSigner {
    key: ring::signature::RsaKeyPair,
    rng: ring::rand::SystemRandom,
}

impl RingRsaSigner {
    /// Parses and checks a PKCS#8 DER RSA private key once.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, CryptoError> {
        let key = ring::signature::RsaKeyPair::from_pkcs8(der)
            .map_err(|e| CryptoError::KeyRejected(e.to_string()))?;
        ensure_allowed(Algorithm::RS256)?;
        Ok(Self {
            key,
            rng: ring::rand::SystemRandom::new(),
        })
    }
}

impl JwsSigner for RingRsaSigner {
    fn algorithm(&self) -> Algorithm {
        Algorithm::RS256
    }

    fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &self.rng,
                signing_input,
                &mut signature,
            )
            .map_err(|_| CryptoError::Signing)?;
        Ok(signature)
    }
}

impl fmt::Debug for RingRsaSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RingRsaSigner([redacted])")
    }
}

fn ensure_allowed(alg: Algorithm) -> Result<(), CryptoError> {
    if is_allowed(alg) {
        Ok(())
    } else {
        Err(CryptoError::DisallowedAlgorithm(
            super::alg::name(alg).to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::alg::ALLOWED_ALGORITHMS;
    use crate::crypto::test_keys::primary;

    #[test]
    fn signers_use_an_allowlisted_algorithm() {
        let key = primary();
        let aws = AwsLcRsaSigner::from_pkcs8(&key.pkcs8_der).unwrap();
        let ring = RingRsaSigner::from_pkcs8(&key.pkcs8_der).unwrap();
        let default = default_signer(&key.pkcs8_der).unwrap();
        for alg in [aws.algorithm(), ring.algorithm(), default.algorithm()] {
            assert!(ALLOWED_ALGORITHMS.contains(&alg));
        }
    }

    #[test]
    fn both_signers_agree() {
        // RSASSA-PKCS1-v1_5 is deterministic: same key and input give the same signature.
        let key = primary();
        let aws = AwsLcRsaSigner::from_pkcs8(&key.pkcs8_der).unwrap();
        let ring = RingRsaSigner::from_pkcs8(&key.pkcs8_der).unwrap();
        let a = aws.sign(b"header.payload").unwrap();
        assert_eq!(a.len(), 256);
        assert_eq!(a, ring.sign(b"header.payload").unwrap());
    }

    #[test]
    fn garbage_key_rejected_and_debug_redacted() {
        assert!(matches!(
            AwsLcRsaSigner::from_pkcs8(b"not a key"),
            Err(CryptoError::KeyRejected(_))
        ));
        assert!(RingRsaSigner::from_pkcs8(b"not a key").is_err());
        let aws = AwsLcRsaSigner::from_pkcs8(&primary().pkcs8_der).unwrap();
        assert_eq!(format!("{aws:?}"), "AwsLcRsaSigner([redacted])");
    }
}
