//! Proof Key for Code Exchange (RFC 7636), `S256` only, required for every client
//! (RFC 9700 §2.1.1).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use subtle::ConstantTimeEq;

use super::OAuthError;

/// Length of a SHA-256 output; an `S256` challenge is its unpadded BASE64URL form.
const SHA256_BYTES: usize = 32;

/// A validated `S256` code challenge (RFC 7636 §4.2). Deserialising validates again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CodeChallenge(String);

impl CodeChallenge {
    /// Parses the `code_challenge` and `code_challenge_method` of an authorization request.
    /// Every failure is `invalid_request` (RFC 7636 §4.4.1).
    pub fn parse(
        challenge: Option<&str>,
        method: Option<&str>,
    ) -> Result<CodeChallenge, OAuthError> {
        let challenge = challenge.ok_or_else(|| {
            // RFC 7636 §4.4.1: a server that requires PKCE answers a request without a
            // challenge with invalid_request.
            OAuthError::invalid_request("code_challenge is required (PKCE)")
        })?;
        check_method(method)?;
        Self::from_wire(challenge)
    }

    /// The challenge as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks the S256 output shape (RFC 7636 §4.2): unpadded base64url that decodes to
    /// exactly 32 bytes, which is the same as 43 base64url characters whose last one carries
    /// no stray bits.
    fn from_wire(challenge: &str) -> Result<CodeChallenge, OAuthError> {
        let decoded = URL_SAFE_NO_PAD.decode(challenge);
        if !decoded.is_ok_and(|d| d.len() == SHA256_BYTES) {
            return Err(OAuthError::invalid_request(
                "code_challenge must be 43 characters of base64url (S256)",
            ));
        }
        Ok(CodeChallenge(challenge.to_owned()))
    }
}

impl TryFrom<String> for CodeChallenge {
    type Error = OAuthError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::from_wire(&value)
    }
}

impl From<CodeChallenge> for String {
    fn from(value: CodeChallenge) -> Self {
        value.0
    }
}

/// RFC 7636 §4.3: "Defaults to 'plain' if not present in the request." `plain` offers no
/// protection if the challenge leaks, so only `S256` is accepted (RFC 9700 §2.1.1).
fn check_method(method: Option<&str>) -> Result<(), OAuthError> {
    match method {
        Some("S256") => Ok(()),
        None | Some("plain") => Err(OAuthError::invalid_request(
            "code_challenge_method must be S256; plain is not supported",
        )),
        Some(_) => Err(OAuthError::invalid_request(
            "unsupported code_challenge_method; use S256",
        )),
    }
}

/// Checks the `code_verifier` of a token request against the stored challenge.
///
/// A missing verifier is `invalid_request` (a required parameter is missing, RFC 6749 §5.2);
/// a malformed or mismatching one is `invalid_grant` (RFC 7636 §4.6: "If the values are not
/// equal, an error response indicating invalid_grant ... MUST be returned").
pub fn verify_code_verifier(
    challenge: &CodeChallenge,
    verifier: Option<&str>,
) -> Result<(), OAuthError> {
    let verifier =
        verifier.ok_or_else(|| OAuthError::invalid_request("code_verifier is required"))?;
    check_verifier_shape(verifier)?;
    // RFC 7636 §4.6: BASE64URL-ENCODE(SHA256(ASCII(code_verifier))) == code_challenge,
    // compared in constant time.
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    let computed = URL_SAFE_NO_PAD.encode(digest.as_ref());
    if bool::from(computed.as_bytes().ct_eq(challenge.0.as_bytes())) {
        Ok(())
    } else {
        Err(OAuthError::invalid_grant("code_verifier does not match"))
    }
}

/// RFC 7636 §4.1: code-verifier = 43*128unreserved, unreserved = ALPHA / DIGIT / "-" / "." /
/// "_" / "~".
fn check_verifier_shape(verifier: &str) -> Result<(), OAuthError> {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    if !(43..=128).contains(&verifier.len()) || !verifier.bytes().all(unreserved) {
        return Err(OAuthError::invalid_grant("malformed code_verifier"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::ErrorCode;

    // RFC 7636 Appendix B. (BASE64URL(SHA256(verifier)) of this verifier really is this
    // challenge; the string "E9Melhoa2OwvFrEXGXTLsUYmK9GpYUtUJ9_NpCS3gcQ" is not.)
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn challenge() -> CodeChallenge {
        CodeChallenge::parse(Some(CHALLENGE), Some("S256")).unwrap()
    }

    #[test]
    fn rfc7636_appendix_b_vector() {
        assert_eq!(verify_code_verifier(&challenge(), Some(VERIFIER)), Ok(()));
    }

    #[test]
    fn missing_challenge_rejected() {
        let e = CodeChallenge::parse(None, Some("S256")).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn missing_method_means_plain_and_is_rejected() {
        let e = CodeChallenge::parse(Some(CHALLENGE), None).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn plain_and_unknown_methods_rejected() {
        for m in ["plain", "s256", "S512"] {
            let e = CodeChallenge::parse(Some(CHALLENGE), Some(m)).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{m}");
        }
    }

    #[test]
    fn challenge_must_be_s256_shaped() {
        let bad = [
            &CHALLENGE[..42],
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cMM",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c=",
            // 43 characters, but non-zero trailing bits: not a 32-byte encoding.
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN",
            VERIFIER.get(..42).unwrap_or_default(),
        ];
        for c in bad {
            let e = CodeChallenge::parse(Some(c), Some("S256")).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{c}");
        }
    }

    #[test]
    fn missing_verifier_is_invalid_request() {
        let e = verify_code_verifier(&challenge(), None).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn wrong_verifier_is_invalid_grant() {
        let other = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK";
        let e = verify_code_verifier(&challenge(), Some(other)).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidGrant);
    }

    /// The S256 challenge of any string, so that only the shape rule can refuse it.
    fn challenge_of(verifier: &str) -> CodeChallenge {
        let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
        CodeChallenge(URL_SAFE_NO_PAD.encode(digest.as_ref()))
    }

    #[test]
    fn malformed_verifier_is_invalid_grant_even_if_hash_matches() {
        let short = &VERIFIER[..42];
        let long = "a".repeat(129);
        let bad_char = format!("{}+", &VERIFIER[..42]);
        for v in [short, long.as_str(), bad_char.as_str()] {
            let e = verify_code_verifier(&challenge_of(v), Some(v)).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidGrant, "{v}");
        }
        let longest = "a".repeat(128);
        assert_eq!(
            verify_code_verifier(&challenge_of(&longest), Some(&longest)),
            Ok(())
        );
    }

    #[test]
    fn verifier_equal_to_challenge_is_not_plain() {
        // A `plain` client would send the challenge itself as the verifier.
        let e = verify_code_verifier(&challenge(), Some(CHALLENGE)).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidGrant);
    }

    #[test]
    fn serde_validates() {
        let json = serde_json::to_string(&challenge()).unwrap();
        assert_eq!(json, format!("\"{CHALLENGE}\""));
        let back: CodeChallenge = serde_json::from_str(&json).unwrap();
        assert_eq!(back, challenge());
        assert!(serde_json::from_str::<CodeChallenge>("\"short\"").is_err());
    }
}
