//! JWS compact signing and JWT verification (RFC 7515, RFC 7519), hardened per RFC 8725.
//!
//! Verification is driven by our own key set and our own allowlist, never by the token:
//! the header's `alg` must be allowlisted and equal to the algorithm stored with the key its
//! `kid` names; headers that would point at other keys (`jwk`, `jku`, `x5u`, `x5c`) or demand
//! extensions (`crit`) are refused outright; time is checked against an injected clock.

use std::collections::HashMap;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use super::alg::{is_allowed, name, parse_allowed};
use super::jwk::PublicJwk;
use super::signer::JwsSigner;
use super::CryptoError;

/// Header members we never honour: each would let the token pick its own verification key
/// (RFC 8725 §3.10: `jku`, `x5u`; RFC 7515 §4.1.3/§4.1.6: `jwk`, `x5c`) or require
/// extensions we do not implement (RFC 7515 §4.1.11: `crit` must then be rejected).
const FORBIDDEN_HEADERS: [&str; 5] = ["jwk", "jku", "x5u", "x5c", "crit"];

#[derive(Serialize)]
struct JwsHeader<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

/// Signs `claims` as a compact JWS: `BASE64URL(header) . BASE64URL(claims) .
/// BASE64URL(signature)` (RFC 7515 §7.1), header `{"alg","typ","kid"}`.
///
/// The key stays parsed inside `signer`; nothing is re-parsed per token.
pub fn encode_jws<C: Serialize>(
    signer: &dyn JwsSigner,
    kid: &str,
    typ: &str,
    claims: &C,
) -> Result<String, CryptoError> {
    let alg = signer.algorithm();
    if !is_allowed(alg) {
        return Err(CryptoError::DisallowedAlgorithm(name(alg).to_owned()));
    }
    let header = serde_json::to_vec(&JwsHeader {
        alg: name(alg),
        typ,
        kid,
    })
    .map_err(|e| CryptoError::Encoding(e.to_string()))?;
    let payload = serde_json::to_vec(claims).map_err(|e| CryptoError::Encoding(e.to_string()))?;
    let mut token = String::with_capacity((header.len() + payload.len()) * 4 / 3 + 350);
    URL_SAFE_NO_PAD.encode_string(&header, &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
    // RFC 7515 §5.1 step 5: the signing input is the ASCII of the first two parts.
    let signature = signer.sign(token.as_bytes())?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
    Ok(token)
}

/// Our own public keys, by `kid`, each bound to the one algorithm it may verify. Built once
/// (at start-up or key rotation), shared read-only.
pub struct VerifyingKeys {
    keys: HashMap<String, (Algorithm, DecodingKey)>,
}

impl VerifyingKeys {
    /// Builds the key set from our published JWKs. Every key must be an RSA signature key
    /// with an allowlisted `alg`; duplicate `kid`s are refused.
    pub fn from_jwks(jwks: &[PublicJwk]) -> Result<Self, CryptoError> {
        let mut keys = HashMap::with_capacity(jwks.len());
        for jwk in jwks {
            if jwk.kty != "RSA" || jwk.use_ != "sig" {
                return Err(CryptoError::KeyRejected(format!(
                    "key {} is not an RSA signature key",
                    jwk.kid
                )));
            }
            let alg = parse_allowed(&jwk.alg)
                .ok_or_else(|| CryptoError::DisallowedAlgorithm(jwk.alg.clone()))?;
            let key = DecodingKey::from_rsa_components(&jwk.n, &jwk.e)
                .map_err(|e| CryptoError::KeyRejected(format!("key {}: {e}", jwk.kid)))?;
            if keys.insert(jwk.kid.clone(), (alg, key)).is_some() {
                return Err(CryptoError::KeyRejected(format!(
                    "duplicate kid {}",
                    jwk.kid
                )));
            }
        }
        Ok(Self { keys })
    }

    /// The key ids in this set, sorted.
    pub fn kids(&self) -> Vec<&str> {
        let mut kids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        kids
    }

    fn get(&self, kid: &str) -> Option<&(Algorithm, DecodingKey)> {
        self.keys.get(kid)
    }
}

impl fmt::Debug for VerifyingKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKeys")
            .field("kids", &self.kids())
            .finish()
    }
}

/// What a verified token must say, and the clock to judge it by.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// Required `iss` (exact match).
    pub issuer: &'a str,
    /// Required member of `aud`, when checked.
    pub audience: Option<&'a str>,
    /// Required `typ` header, when checked (`at+jwt` for access tokens, RFC 9068 §4).
    pub typ: Option<&'a str>,
    /// The current time, seconds since the Unix epoch (injected, never read here).
    pub now: i64,
    /// Allowed clock skew in seconds for `exp` and `nbf`.
    pub leeway_secs: i64,
}

/// Why a token was refused. Shown to no one but logs; never contains token content.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not a well-formed compact JWS / JWT.
    #[error("malformed token")]
    Malformed,
    /// The header's `alg` is not allowlisted or not the algorithm of the named key.
    #[error("token algorithm not allowed")]
    DisallowedAlgorithm,
    /// The header carries a member we never honour.
    #[error("token header carries forbidden member {0}")]
    ForbiddenHeader(&'static str),
    /// The header has no `kid`.
    #[error("token header has no kid")]
    MissingKid,
    /// The `kid` is not one of our keys.
    #[error("token kid is not one of our keys")]
    UnknownKid,
    /// The signature does not verify under the named key.
    #[error("token signature is invalid")]
    BadSignature,
    /// `exp` has passed.
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token is not yet valid")]
    NotYetValid,
    /// `iss` is not the expected issuer.
    #[error("token issuer does not match")]
    WrongIssuer,
    /// `aud` does not contain the expected audience.
    #[error("token audience does not match")]
    WrongAudience,
    /// The `typ` header is not the expected type.
    #[error("token type does not match")]
    WrongType,
    /// A required claim is absent.
    #[error("token lacks required claim {0}")]
    MissingClaim(&'static str),
}

/// Verifies a compact JWS JWT against our keys and `expected`, then deserialises its claims.
///
/// Steps, in order: header checks (forbidden members, allowlisted `alg`, `kid` lookup, `alg`
/// equal to the key's), signature (jsonwebtoken, restricted to the key's algorithm),
/// `typ`, then the registered claims `exp`, `nbf`, `iat`, `iss`, `aud` (RFC 7519 §4.1).
pub fn verify<C: DeserializeOwned>(
    token: &str,
    keys: &VerifyingKeys,
    expected: &Expected<'_>,
) -> Result<C, VerifyError> {
    let (header, key) = select_key(token, keys)?;
    let claims = verify_signature(token, header.alg, key)?;
    check_typ(header.typ.as_deref(), expected.typ)?;
    check_claims(&claims, expected)?;
    serde_json::from_value(claims).map_err(|_| VerifyError::Malformed)
}

/// RFC 8725 §2.1, §3.1: the header may only name one of our keys; it never chooses the
/// algorithm or supplies a key.
fn select_key<'k>(
    token: &str,
    keys: &'k VerifyingKeys,
) -> Result<(jsonwebtoken::Header, &'k DecodingKey), VerifyError> {
    let raw = raw_header(token)?;
    if let Some(member) = FORBIDDEN_HEADERS.iter().find(|m| raw.contains_key(**m)) {
        return Err(VerifyError::ForbiddenHeader(member));
    }
    let alg = raw
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(VerifyError::Malformed)?;
    let alg = parse_allowed(alg).ok_or(VerifyError::DisallowedAlgorithm)?;
    let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
    if header.alg != alg {
        return Err(VerifyError::Malformed);
    }
    let kid = header.kid.as_deref().ok_or(VerifyError::MissingKid)?;
    let (key_alg, key) = keys.get(kid).ok_or(VerifyError::UnknownKid)?;
    if *key_alg != alg {
        return Err(VerifyError::DisallowedAlgorithm);
    }
    Ok((header, key))
}

/// The header as a JSON object; a compact JWS has exactly three parts (RFC 7515 §7.1).
fn raw_header(token: &str) -> Result<Map<String, Value>, VerifyError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| VerifyError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| VerifyError::Malformed)
}

/// Signature check through jsonwebtoken with `algorithms` = exactly the key's algorithm and
/// its own time and audience checks off (we check those against the injected clock).
fn verify_signature(token: &str, alg: Algorithm, key: &DecodingKey) -> Result<Value, VerifyError> {
    let mut validation = Validation::new(alg);
    validation.algorithms = vec![alg];
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.leeway = 0;
    jsonwebtoken::decode::<Value>(token, key, &validation)
        .map(|data| data.claims)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidAlgorithm => VerifyError::DisallowedAlgorithm,
            ErrorKind::InvalidToken
            | ErrorKind::Base64(_)
            | ErrorKind::Json(_)
            | ErrorKind::Utf8(_) => VerifyError::Malformed,
            _ => VerifyError::BadSignature,
        })
}

/// RFC 8725 §3.11 explicit typing; RFC 9068 §4 access tokens carry `at+jwt`. RFC 7515
/// §4.1.9: the `application/` prefix may be omitted and the comparison is case-insensitive.
fn check_typ(actual: Option<&str>, expected: Option<&str>) -> Result<(), VerifyError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let normalise = |t: &str| {
        let lower = t.to_ascii_lowercase();
        lower
            .strip_prefix("application/")
            .map(str::to_owned)
            .unwrap_or(lower)
    };
    match actual {
        Some(actual) if normalise(actual) == normalise(expected) => Ok(()),
        _ => Err(VerifyError::WrongType),
    }
}

/// RFC 7519 §4.1: `exp` (required, §4.1.4), `nbf` (§4.1.5), `iat` (required, §4.1.6),
/// `iss` (§4.1.1, exact), `aud` (§4.1.3, string or array).
fn check_claims(claims: &Value, expected: &Expected<'_>) -> Result<(), VerifyError> {
    let claims = claims.as_object().ok_or(VerifyError::Malformed)?;
    let exp = numeric_date(claims, "exp")?.ok_or(VerifyError::MissingClaim("exp"))?;
    if exp <= expected.now.saturating_sub(expected.leeway_secs) {
        return Err(VerifyError::Expired);
    }
    if let Some(nbf) = numeric_date(claims, "nbf")? {
        if nbf > expected.now.saturating_add(expected.leeway_secs) {
            return Err(VerifyError::NotYetValid);
        }
    }
    numeric_date(claims, "iat")?.ok_or(VerifyError::MissingClaim("iat"))?;
    match claims.get("iss") {
        None => return Err(VerifyError::MissingClaim("iss")),
        Some(iss) if iss.as_str() != Some(expected.issuer) => return Err(VerifyError::WrongIssuer),
        Some(_) => {}
    }
    if let Some(audience) = expected.audience {
        check_audience(claims.get("aud"), audience)?;
    }
    Ok(())
}

fn check_audience(aud: Option<&Value>, audience: &str) -> Result<(), VerifyError> {
    let found = match aud {
        None => return Err(VerifyError::MissingClaim("aud")),
        Some(Value::String(one)) => one == audience,
        Some(Value::Array(many)) => many.iter().any(|a| a.as_str() == Some(audience)),
        Some(_) => return Err(VerifyError::Malformed),
    };
    if found {
        Ok(())
    } else {
        Err(VerifyError::WrongAudience)
    }
}

/// A NumericDate (RFC 7519 §2): seconds, possibly fractional; fractions are truncated.
fn numeric_date(claims: &Map<String, Value>, claim: &str) -> Result<Option<i64>, VerifyError> {
    match claims.get(claim) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or(VerifyError::Malformed),
        Some(_) => Err(VerifyError::Malformed),
    }
}

#[cfg(test)]
mod tests;
