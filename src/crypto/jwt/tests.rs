//! Each test names the check it exercises; each fails if that check is removed (where a
//! later layer would also refuse the token, the asserted error variant tells them apart).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rsa::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _, LineEnding};
use serde_json::{json, Value};

use super::*;
use crate::crypto::rsa_keys::GeneratedRsaKey;
use crate::crypto::signer::AwsLcRsaSigner;
use crate::crypto::test_keys::{other, primary};

const ISS: &str = "https://id.example.com";
const NOW: i64 = 1_700_000_000;

fn keys() -> VerifyingKeys {
    let k = primary();
    VerifyingKeys::from_jwks(&[PublicJwk::rsa(&k.kid, &k.n, &k.e, "RS256")]).unwrap()
}

fn expected() -> Expected<'static> {
    Expected {
        issuer: ISS,
        audience: Some("client-1"),
        typ: Some("at+jwt"),
        now: NOW,
        leeway_secs: 30,
    }
}

fn claims() -> Value {
    json!({
        "iss": ISS, "sub": "user-1", "aud": "client-1", "client_id": "client-1",
        "exp": NOW + 300, "iat": NOW, "jti": "j1", "scope": "openid"
    })
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// A token with an arbitrary header, signed by `sign` over the RFC 7515 signing input.
fn forge(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let sig = sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn rsa_sign(key: &GeneratedRsaKey) -> impl Fn(&[u8]) -> Vec<u8> + '_ {
    move |input| {
        AwsLcRsaSigner::from_pkcs8(&key.pkcs8_der)
            .unwrap()
            .sign(input)
            .unwrap()
    }
}

fn hmac_sign(secret: Vec<u8>) -> impl Fn(&[u8]) -> Vec<u8> {
    move |input| {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
        ring::hmac::sign(&key, input).as_ref().to_vec()
    }
}

fn valid_token(claims: &Value) -> String {
    let signer = AwsLcRsaSigner::from_pkcs8(&primary().pkcs8_der).unwrap();
    encode_jws(&signer, &primary().kid, "at+jwt", claims).unwrap()
}

fn check(token: &str) -> Result<Value, VerifyError> {
    verify(token, &keys(), &expected())
}

#[test]
fn valid_token_round_trips() {
    let token = valid_token(&claims());
    assert_eq!(token.split('.').count(), 3);
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        header,
        json!({"alg": "RS256", "typ": "at+jwt", "kid": primary().kid})
    );
    assert_eq!(check(&token), Ok(claims()));
}

#[test]
fn typed_claims_deserialise() {
    #[derive(serde::Deserialize)]
    struct AccessClaims {
        sub: String,
        scope: String,
    }
    let got: AccessClaims = verify(&valid_token(&claims()), &keys(), &expected()).unwrap();
    assert_eq!((got.sub.as_str(), got.scope.as_str()), ("user-1", "openid"));
}

#[test]
fn alg_none_rejected() {
    let header = json!({"alg": "none", "kid": primary().kid});
    let token = forge(&header, &claims(), |_| Vec::new());
    assert!(token.ends_with('.'));
    assert_eq!(check(&token), Err(VerifyError::DisallowedAlgorithm));
}

#[test]
fn hs256_with_public_key_pem_as_secret_rejected() {
    let public = rsa::RsaPrivateKey::from_pkcs8_der(&primary().pkcs8_der)
        .unwrap()
        .to_public_key();
    let pem = public.to_public_key_pem(LineEnding::LF).unwrap();
    let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": primary().kid});
    let token = forge(&header, &claims(), hmac_sign(pem.into_bytes()));
    assert_eq!(check(&token), Err(VerifyError::DisallowedAlgorithm));
}

#[test]
fn hs256_with_public_key_der_or_modulus_as_secret_rejected() {
    let public = rsa::RsaPrivateKey::from_pkcs8_der(&primary().pkcs8_der)
        .unwrap()
        .to_public_key();
    let der = public.to_public_key_der().unwrap().as_bytes().to_vec();
    let modulus = URL_SAFE_NO_PAD.decode(&primary().n).unwrap();
    let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": primary().kid});
    for secret in [der, modulus] {
        let token = forge(&header, &claims(), hmac_sign(secret));
        assert_eq!(check(&token), Err(VerifyError::DisallowedAlgorithm));
    }
}

#[test]
fn other_allowlist_outsiders_rejected() {
    // RS512 with our own key: a real RSA signature, but not an allowlisted algorithm.
    let header = json!({"alg": "RS512", "typ": "at+jwt", "kid": primary().kid});
    let token = forge(&header, &claims(), |input| {
        let key = ring::signature::RsaKeyPair::from_pkcs8(&primary().pkcs8_der).unwrap();
        let mut sig = vec![0; key.public().modulus_len()];
        key.sign(
            &ring::signature::RSA_PKCS1_SHA512,
            &ring::rand::SystemRandom::new(),
            input,
            &mut sig,
        )
        .unwrap();
        sig
    });
    assert_eq!(check(&token), Err(VerifyError::DisallowedAlgorithm));
}

#[test]
fn embedded_jwk_rejected() {
    let attacker = other();
    let header = json!({
        "alg": "RS256", "typ": "at+jwt", "kid": primary().kid,
        "jwk": {"kty": "RSA", "n": attacker.n, "e": attacker.e, "kid": primary().kid}
    });
    let token = forge(&header, &claims(), rsa_sign(attacker));
    assert_eq!(check(&token), Err(VerifyError::ForbiddenHeader("jwk")));
}

#[test]
fn jku_and_x5u_rejected() {
    for (member, url) in [
        ("jku", "https://attacker.example/jwks.json"),
        ("x5u", "https://attacker.example/cert.pem"),
    ] {
        let mut header = json!({"alg": "RS256", "typ": "at+jwt", "kid": primary().kid});
        header[member] = json!(url);
        let token = forge(&header, &claims(), rsa_sign(other()));
        assert_eq!(check(&token), Err(VerifyError::ForbiddenHeader(member)));
    }
}

#[test]
fn x5c_and_crit_rejected() {
    let mut header = json!({"alg": "RS256", "typ": "at+jwt", "kid": primary().kid});
    header["x5c"] = json!(["MIIB"]);
    let token = forge(&header, &claims(), rsa_sign(primary()));
    assert_eq!(check(&token), Err(VerifyError::ForbiddenHeader("x5c")));

    let mut header = json!({"alg": "RS256", "typ": "at+jwt", "kid": primary().kid});
    header["crit"] = json!(["exp"]);
    let token = forge(&header, &claims(), rsa_sign(primary()));
    assert_eq!(check(&token), Err(VerifyError::ForbiddenHeader("crit")));
}

#[test]
fn unknown_kid_rejected() {
    let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": "not-ours"});
    let token = forge(&header, &claims(), rsa_sign(primary()));
    assert_eq!(check(&token), Err(VerifyError::UnknownKid));
}

#[test]
fn missing_kid_rejected() {
    let header = json!({"alg": "RS256", "typ": "at+jwt"});
    let token = forge(&header, &claims(), rsa_sign(primary()));
    assert_eq!(check(&token), Err(VerifyError::MissingKid));
}

#[test]
fn tampered_payload_rejected() {
    let token = valid_token(&claims());
    let parts: Vec<&str> = token.split('.').collect();
    let mut evil = claims();
    evil["sub"] = json!("admin");
    let tampered = format!("{}.{}.{}", parts[0], b64(&evil), parts[2]);
    assert_eq!(check(&tampered), Err(VerifyError::BadSignature));
}

#[test]
fn second_key_not_in_set_rejected() {
    // A perfectly valid RS256 token from another key, under its own kid...
    let stranger = other();
    let signer = AwsLcRsaSigner::from_pkcs8(&stranger.pkcs8_der).unwrap();
    let token = encode_jws(&signer, &stranger.kid, "at+jwt", &claims()).unwrap();
    assert_eq!(check(&token), Err(VerifyError::UnknownKid));
    // ...and claiming our kid.
    let token = encode_jws(&signer, &primary().kid, "at+jwt", &claims()).unwrap();
    assert_eq!(check(&token), Err(VerifyError::BadSignature));
}

#[test]
fn expired_rejected_with_leeway() {
    let mut c = claims();
    c["exp"] = json!(NOW - 31);
    assert_eq!(check(&valid_token(&c)), Err(VerifyError::Expired));
    c["exp"] = json!(NOW - 29);
    assert!(check(&valid_token(&c)).is_ok());
}

#[test]
fn nbf_in_future_rejected() {
    let mut c = claims();
    c["nbf"] = json!(NOW + 31);
    assert_eq!(check(&valid_token(&c)), Err(VerifyError::NotYetValid));
    c["nbf"] = json!(NOW + 29);
    assert!(check(&valid_token(&c)).is_ok());
}

#[test]
fn wrong_issuer_rejected() {
    let mut c = claims();
    c["iss"] = json!("https://evil.example.com");
    assert_eq!(check(&valid_token(&c)), Err(VerifyError::WrongIssuer));
}

#[test]
fn wrong_audience_rejected() {
    let mut c = claims();
    c["aud"] = json!("client-2");
    assert_eq!(check(&valid_token(&c)), Err(VerifyError::WrongAudience));
    c["aud"] = json!(["client-2", "client-3"]);
    assert_eq!(check(&valid_token(&c)), Err(VerifyError::WrongAudience));
    c["aud"] = json!(["client-2", "client-1"]);
    assert!(check(&valid_token(&c)).is_ok());
}

#[test]
fn wrong_typ_rejected() {
    let signer = AwsLcRsaSigner::from_pkcs8(&primary().pkcs8_der).unwrap();
    let token = encode_jws(&signer, &primary().kid, "JWT", &claims()).unwrap();
    assert_eq!(check(&token), Err(VerifyError::WrongType));
    // RFC 7515 §4.1.9: "application/at+jwt" is the same type.
    let token = encode_jws(&signer, &primary().kid, "application/at+jwt", &claims()).unwrap();
    assert!(check(&token).is_ok());
}

#[test]
fn required_claims_enforced() {
    for claim in ["exp", "iat", "iss", "aud"] {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(claim);
        assert_eq!(
            check(&valid_token(&c)),
            Err(VerifyError::MissingClaim(claim)),
            "{claim}"
        );
    }
}

#[test]
fn malformed_tokens_rejected() {
    let token = valid_token(&claims());
    for bad in ["", "a.b", "a.b.c.d", "!!!.e30.", &format!("{token}.extra")] {
        assert_eq!(check(bad), Err(VerifyError::Malformed), "{bad}");
    }
}

#[test]
fn verifying_keys_refuse_bad_jwks() {
    let k = primary();
    let hs = PublicJwk::rsa("k", &k.n, &k.e, "HS256");
    assert!(VerifyingKeys::from_jwks(&[hs]).is_err());
    let good = PublicJwk::rsa("k", &k.n, &k.e, "RS256");
    assert!(VerifyingKeys::from_jwks(&[good.clone(), good.clone()]).is_err());
    let keys = VerifyingKeys::from_jwks(&[good]).unwrap();
    assert_eq!(keys.kids(), vec!["k"]);
}

#[test]
fn allowlist_applies_even_to_a_misconfigured_key_set() {
    // `from_jwks` refuses HMAC keys; build the set by hand so that the allowlist check in
    // `verify` is the only thing standing between this forged token and acceptance.
    let secret = b"shared secret".to_vec();
    let mut map = HashMap::new();
    map.insert(
        "hs".to_owned(),
        (Algorithm::HS256, DecodingKey::from_secret(&secret)),
    );
    let keys = VerifyingKeys { keys: map };
    let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": "hs"});
    let token = forge(&header, &claims(), hmac_sign(secret));
    assert_eq!(
        verify::<Value>(&token, &keys, &expected()),
        Err(VerifyError::DisallowedAlgorithm)
    );
}
