//! THE algorithm allowlist. Every signer and every verifier in Latchkey goes through it.
//!
//! The token never chooses how it is verified (RFC 8725 §2.1, §3.1): the `alg` header is only
//! compared against this list and against the algorithm stored with the key that `kid` names
//! in our own key set. `none`, the HMAC family (which would let a public key act as a shared
//! secret) and everything else not listed here is rejected before any key is touched.

use jsonwebtoken::Algorithm;

/// The JWS algorithms Latchkey signs with and accepts. RS256 is the one algorithm every
/// OpenID Connect relying party must support (OIDC Core §15.1, OIDC Discovery §3).
pub const ALLOWED_ALGORITHMS: &[Algorithm] = &[Algorithm::RS256];

/// The algorithm new signing keys are made for.
pub const DEFAULT_ALGORITHM: Algorithm = Algorithm::RS256;

/// Whether `alg` is in [`ALLOWED_ALGORITHMS`].
pub fn is_allowed(alg: Algorithm) -> bool {
    ALLOWED_ALGORITHMS.contains(&alg)
}

/// The JOSE name of an algorithm (`"RS256"`), as used in JWS headers and JWKs.
pub fn name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        // `Algorithm` is non-exhaustive; anything newer is not allowlisted anyway.
        _ => "unknown",
    }
}

/// Parses a JOSE algorithm name, accepting only allowlisted algorithms.
pub fn parse_allowed(value: &str) -> Option<Algorithm> {
    ALLOWED_ALGORITHMS
        .iter()
        .copied()
        .find(|alg| name(*alg) == value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_is_rs256_only() {
        assert_eq!(ALLOWED_ALGORITHMS, &[Algorithm::RS256]);
        assert!(is_allowed(DEFAULT_ALGORITHM));
        assert!(!is_allowed(Algorithm::HS256));
        assert_eq!(parse_allowed("RS256"), Some(Algorithm::RS256));
        assert_eq!(parse_allowed("none"), None);
        assert_eq!(parse_allowed("HS256"), None);
    }
}
