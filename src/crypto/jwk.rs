//! Public JSON Web Keys (RFC 7517) for the JWKS endpoint, and RFC 7638 thumbprints.
//!
//! Only public members exist on these types, so a private key can never be serialised into
//! the JWKS by mistake (RFC 7517 §9.3, RFC 7518 §6.3.2).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::token::sha256;

/// A public RSA signing key as published in the JWKS (RFC 7517 §4, RFC 7518 §6.3.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    /// Key type, always `"RSA"` (RFC 7517 §4.1).
    pub kty: String,
    /// Key ID: the RFC 7638 thumbprint (RFC 7517 §4.5).
    pub kid: String,
    /// Public key use, always `"sig"` (RFC 7517 §4.2).
    #[serde(rename = "use")]
    pub use_: String,
    /// The one algorithm this key is used with (RFC 7517 §4.4).
    pub alg: String,
    /// Modulus, base64url without padding (RFC 7518 §6.3.1.1).
    pub n: String,
    /// Public exponent, base64url without padding (RFC 7518 §6.3.1.2).
    pub e: String,
}

impl PublicJwk {
    /// A public RSA signature key.
    pub fn rsa(
        kid: impl Into<String>,
        n: impl Into<String>,
        e: impl Into<String>,
        alg: impl Into<String>,
    ) -> Self {
        Self {
            kty: "RSA".to_owned(),
            kid: kid.into(),
            use_: "sig".to_owned(),
            alg: alg.into(),
            n: n.into(),
            e: e.into(),
        }
    }
}

/// A JWK Set document (RFC 7517 §5), served at `jwks_uri`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    /// The published keys.
    pub keys: Vec<PublicJwk>,
}

/// The RFC 7638 JWK thumbprint of an RSA public key, base64url without padding.
///
/// RFC 7638 §3.2: the required members of an RSA key are `e`, `kty`, `n`, in lexicographic
/// order, with no whitespace; §3 hashes that UTF-8 JSON with SHA-256. `n` and `e` are
/// base64url strings and so need no JSON escaping.
pub fn rsa_thumbprint(n_b64url: &str, e_b64url: &str) -> String {
    let canonical = format!(r#"{{"e":"{e_b64url}","kty":"RSA","n":"{n_b64url}"}}"#);
    URL_SAFE_NO_PAD.encode(sha256(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 §3.1.
    const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    const RFC7638_THUMBPRINT: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        assert_eq!(rsa_thumbprint(RFC7638_N, "AQAB"), RFC7638_THUMBPRINT);
    }

    #[test]
    fn jwk_serialises_with_use_and_no_private_members() {
        let set = JwkSet {
            keys: vec![PublicJwk::rsa("k1", RFC7638_N, "AQAB", "RS256")],
        };
        let value = serde_json::to_value(&set).unwrap();
        let key = value["keys"][0].as_object().unwrap();
        assert_eq!(key["use"], "sig");
        assert_eq!(key["kty"], "RSA");
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            assert!(
                !key.contains_key(private),
                "private member {private} leaked"
            );
        }
        let back: JwkSet = serde_json::from_value(value).unwrap();
        assert_eq!(back, set);
    }
}
