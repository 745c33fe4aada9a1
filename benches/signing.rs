//! RS256 signing cost, to pick `crypto::default_signer`.
//!
//! Run with `cargo bench --bench signing` (quick pass:
//! `cargo bench --bench signing -- --warm-up-time 1 --measurement-time 3`).
//!
//! Compares, for one RSA-2048 key generated once:
//! (a) aws-lc-rs with the key parsed once, (b) ring with the key parsed once,
//! (c) `jsonwebtoken::encode` with `EncodingKey::from_rsa_der`, which re-parses the key on
//! every call (the baseline we avoid), and (d) a full `encode_jws` of RFC 9068-shaped access
//! token claims with the default signer. The fastest constant-time implementation measured
//! here is the one `default_signer` returns.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use latchkey::crypto::{
    default_signer, encode_jws, generate_rsa_key, AwsLcRsaSigner, JwsSigner, RingRsaSigner,
};
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::pkcs8::DecodePrivateKey as _;
use serde::Serialize;

/// RFC 9068 §2.2 access token claims.
#[derive(Serialize)]
struct AccessTokenClaims<'a> {
    iss: &'a str,
    exp: i64,
    aud: &'a str,
    sub: &'a str,
    client_id: &'a str,
    iat: i64,
    jti: &'a str,
    scope: &'a str,
}

fn claims() -> AccessTokenClaims<'static> {
    AccessTokenClaims {
        iss: "https://id.example.com",
        exp: 1_700_000_300,
        aud: "https://api.example.com",
        sub: "018f2b5e-7c3a-7d4e-9a1b-2c3d4e5f6a7b",
        client_id: "s6BhdRkqt3",
        iat: 1_700_000_000,
        jti: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        scope: "openid profile email offline_access",
    }
}

fn signing(c: &mut Criterion) {
    let Ok(key) = generate_rsa_key(2048) else {
        return;
    };
    let claims = claims();
    // A realistic signing input: header + RFC 9068 claims, ~300 bytes.
    let Ok(aws) = AwsLcRsaSigner::from_pkcs8(&key.pkcs8_der) else {
        return;
    };
    let Ok(token) = encode_jws(&aws, &key.kid, "at+jwt", &claims) else {
        return;
    };
    let signing_input = token.rsplit_once('.').map(|(input, _)| input.to_owned());
    let signing_input = signing_input.unwrap_or_default().into_bytes();
    println!("signing input: {} bytes", signing_input.len());

    let mut group = c.benchmark_group("rs256_2048");
    group.bench_function("aws_lc_rs_sign_parsed_once", |b| {
        b.iter(|| aws.sign(black_box(&signing_input)))
    });
    if let Ok(ring) = RingRsaSigner::from_pkcs8(&key.pkcs8_der) {
        group.bench_function("ring_sign_parsed_once", |b| {
            b.iter(|| ring.sign(black_box(&signing_input)))
        });
    }
    let header = jsonwebtoken::Header {
        kid: Some(key.kid.clone()),
        typ: Some("at+jwt".to_owned()),
        ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256)
    };
    // jsonwebtoken's aws-lc backend wants PKCS#1 (RFC 8017) DER, not PKCS#8.
    let pkcs1 = rsa::RsaPrivateKey::from_pkcs8_der(&key.pkcs8_der)
        .and_then(|k| k.to_pkcs1_der().map_err(Into::into))
        .map(|der| der.as_bytes().to_vec());
    if let Ok(pkcs1) = pkcs1 {
        let probe = jsonwebtoken::EncodingKey::from_rsa_der(&pkcs1);
        // Only measure the baseline if it really signs (not a fast error path).
        if jsonwebtoken::encode(&header, &claims, &probe).is_ok() {
            group.bench_function("jsonwebtoken_encode_reparse_each_call", |b| {
                b.iter(|| {
                    let encoding_key = jsonwebtoken::EncodingKey::from_rsa_der(&pkcs1);
                    jsonwebtoken::encode(black_box(&header), black_box(&claims), &encoding_key)
                })
            });
        } else {
            println!("jsonwebtoken baseline skipped: encode failed");
        }
    }
    if let Ok(signer) = default_signer(&key.pkcs8_der) {
        group.bench_function("encode_jws_default_signer", |b| {
            b.iter(|| encode_jws(signer.as_ref(), &key.kid, "at+jwt", black_box(&claims)))
        });
    }
    group.finish();
}

criterion_group!(benches, signing);
criterion_main!(benches);
