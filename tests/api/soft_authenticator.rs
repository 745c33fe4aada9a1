//! A software WebAuthn authenticator for the server-side passkey tests.
//!
//! `webauthn-authenticator-rs`'s `SoftPasskey` cannot do what Latchkey's passkeys need, so this
//! one is written against the specification (WebAuthn Level 3) and checked against webauthn-rs
//! itself (the `soft_authenticator_*` tests below). It holds discoverable (resident) ES256
//! credentials, each with its user handle, RP id and signature counter, and it answers the
//! JSON that webauthn-rs sends (`CreationChallengeResponse`, `RequestChallengeResponse`) with
//! the JSON a browser script posts back (`RegisterPublicKeyCredential`,
//! `PublicKeyCredential`).
//!
//! It can also misbehave on purpose: sign for another origin or RP id, leave out user
//! verification, claim backup eligibility/state, or report a counter that went backwards.
//!
//! Keys, signatures and hashes come from `ring`; CBOR from `serde_cbor_2`. Binary fields in the
//! JSON are base64url without padding, as webauthn-rs writes them.

#![allow(dead_code)]

use std::collections::BTreeMap;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use ring::digest::{digest, SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use serde_cbor_2::Value as Cbor;
use serde_json::{json, Value};

/// Authenticator data flag: user present.
const FLAG_UP: u8 = 0x01;
/// Authenticator data flag: user verified.
const FLAG_UV: u8 = 0x04;
/// Authenticator data flag: backup eligible.
const FLAG_BE: u8 = 0x08;
/// Authenticator data flag: backed up (backup state).
const FLAG_BS: u8 = 0x10;
/// Authenticator data flag: attested credential data included.
const FLAG_AT: u8 = 0x40;

/// COSE algorithm identifier of ES256 (ECDSA P-256 with SHA-256).
const COSE_ES256: i64 = -7;

/// Length of the random credential ids this authenticator makes.
const CREDENTIAL_ID_LEN: usize = 32;

/// Decodes base64url with or without padding (webauthn-rs writes it without, and accepts both).
const B64URL_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One discoverable credential held by the authenticator.
struct Credential {
    /// The credential id (random, [`CREDENTIAL_ID_LEN`] bytes).
    id: Vec<u8>,
    /// The ES256 key pair.
    key: EcdsaKeyPair,
    /// The user handle (`user.id` of the creation options); for webauthn-rs, the user's
    /// Uuid as 16 bytes.
    user_handle: Vec<u8>,
    /// The RP id the credential was created for (the one its authenticator data was signed
    /// for, which for `create_for_rp` is the wrong one).
    rp_id: String,
    /// The signature counter; incremented before each assertion.
    counter: u32,
}

/// A software passkey authenticator plus the browser glue (clientDataJSON, base64url JSON).
///
/// Every credential is discoverable and ES256. New credentials are kept alongside older ones
/// for the same RP and user (a real platform authenticator would replace them), so the
/// indexes of [`SoftAuthenticator::credential_ids`] never shift.
pub struct SoftAuthenticator {
    /// The credentials, in creation order.
    credentials: Vec<Credential>,
    /// The randomness source for keys, credential ids and signatures.
    rng: SystemRandom,
    /// Whether the UV flag is set in authenticator data (`true` by default). Set to `false`
    /// for "user verification missing" tests.
    pub user_verified: bool,
    /// Whether the BE (backup eligible) flag is set (`false` by default).
    pub backup_eligible: bool,
    /// Whether the BS (backup state) flag is set (`false` by default).
    pub backed_up: bool,
}

impl Default for SoftAuthenticator {
    fn default() -> Self {
        Self::new()
    }
}

impl SoftAuthenticator {
    /// An authenticator holding no credentials, that verifies the user (UV set) and is not
    /// backup eligible (BE and BS clear).
    pub fn new() -> Self {
        Self {
            credentials: Vec::new(),
            rng: SystemRandom::new(),
            user_verified: true,
            backup_eligible: false,
            backed_up: false,
        }
    }

    /// Answers `navigator.credentials.create()`: `options` is the JSON the server sent
    /// (`{"publicKey": {...}}` as webauthn-rs serialises `CreationChallengeResponse`);
    /// `origin` like `"http://localhost:8080"`. Stores a discoverable credential for
    /// `options.publicKey.rp.id` with `options.publicKey.user.id` as its user handle. Returns
    /// the JSON a browser script posts (`RegisterPublicKeyCredential` shape: `id`, `rawId`,
    /// `type` `"public-key"`, `response {attestationObject, clientDataJSON}`,
    /// `extensions {}`), with "none" attestation.
    ///
    /// Panics if the options are malformed or do not offer ES256 (-7).
    pub fn create(&mut self, options: &Value, origin: &str) -> Value {
        let rp_id = str_at(options, "/publicKey/rp/id").to_owned();
        self.create_for_rp(options, origin, &rp_id)
    }

    /// Same as [`SoftAuthenticator::create`], but signs for `rp_id` instead of the options'
    /// RP id (a wrong-RP-id test). The credential is stored under `rp_id`.
    pub fn create_for_rp(&mut self, options: &Value, origin: &str, rp_id: &str) -> Value {
        let public_key = options
            .get("publicKey")
            .expect("creation options have no \"publicKey\"");
        let offers_es256 = public_key["pubKeyCredParams"]
            .as_array()
            .expect("creation options have no pubKeyCredParams")
            .iter()
            .any(|p| p["type"] == "public-key" && p["alg"].as_i64() == Some(COSE_ES256));
        assert!(offers_es256, "the server does not offer ES256 (-7)");

        let challenge = b64url_decode(str_at(options, "/publicKey/challenge"));
        let user_handle = b64url_decode(str_at(options, "/publicKey/user/id"));

        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &self.rng)
            .expect("generate a P-256 key");
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &self.rng)
                .expect("load the P-256 key");
        let mut id = vec![0u8; CREDENTIAL_ID_LEN];
        self.rng.fill(&mut id).expect("random credential id");

        let counter = 0;
        let mut auth_data = self.authenticator_data(rp_id, FLAG_AT, counter);
        // attestedCredentialData: aaguid (zero for "none" attestation) | credIdLength | credId |
        // credentialPublicKey.
        auth_data.extend_from_slice(&[0u8; 16]);
        auth_data.extend_from_slice(&(id.len() as u16).to_be_bytes());
        auth_data.extend_from_slice(&id);
        auth_data.extend_from_slice(&cose_es256_public_key(key.public_key().as_ref()));

        let attestation_object = serde_cbor_2::to_vec(&cbor_map(vec![
            (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
            (Cbor::Text("attStmt".into()), Cbor::Map(BTreeMap::new())),
            (Cbor::Text("authData".into()), Cbor::Bytes(auth_data)),
        ]))
        .expect("encode the attestation object");
        let client_data_json = client_data_json("webauthn.create", &challenge, origin);

        let id_b64 = URL_SAFE_NO_PAD.encode(&id);
        self.credentials.push(Credential {
            id,
            key,
            user_handle,
            rp_id: rp_id.to_owned(),
            counter,
        });

        json!({
            "id": id_b64,
            "rawId": id_b64,
            "type": "public-key",
            "response": {
                "attestationObject": URL_SAFE_NO_PAD.encode(attestation_object),
                "clientDataJSON": URL_SAFE_NO_PAD.encode(client_data_json),
            },
            "extensions": {},
        })
    }

    /// Answers `navigator.credentials.get()`: `options` is the JSON the server sent
    /// (`{"publicKey": {...}, "mediation": ...}` as webauthn-rs serialises
    /// `RequestChallengeResponse`). With an empty or absent `allowCredentials` it picks the
    /// newest credential for `options.publicKey.rpId` (discoverable sign-in); otherwise the
    /// first allowed credential it holds. Increments that credential's counter first (wrapping
    /// at `u32::MAX`). Returns `PublicKeyCredential` JSON (`id`, `rawId`, `type`,
    /// `response {authenticatorData, clientDataJSON, signature, userHandle}`, `extensions {}`);
    /// `userHandle` is always present, since every credential here is discoverable.
    ///
    /// Panics if it holds no suitable credential (where a browser would reject with
    /// `NotAllowedError`).
    pub fn get(&mut self, options: &Value, origin: &str) -> Value {
        let rp_id = str_at(options, "/publicKey/rpId").to_owned();
        self.get_for_rp(options, origin, &rp_id)
    }

    /// Same as [`SoftAuthenticator::get`], but the authenticator data carries the hash of
    /// `rp_id` instead of the options' RP id (a wrong-RP-id test). The credential is still
    /// chosen as `get` chooses it (by the options' `rpId` when discoverable).
    pub fn get_for_rp(&mut self, options: &Value, origin: &str, rp_id: &str) -> Value {
        let challenge = b64url_decode(str_at(options, "/publicKey/challenge"));
        let allowed: Vec<Vec<u8>> = options
            .pointer("/publicKey/allowCredentials")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .map(|c| b64url_decode(c["id"].as_str().expect("allowCredentials[].id")))
                    .collect()
            })
            .unwrap_or_default();

        let index = if allowed.is_empty() {
            let options_rp_id = str_at(options, "/publicKey/rpId");
            self.credentials
                .iter()
                .rposition(|c| c.rp_id == options_rp_id)
                .unwrap_or_else(|| panic!("no discoverable credential for RP id {options_rp_id:?}"))
        } else {
            allowed
                .iter()
                .find_map(|want| self.credentials.iter().position(|c| &c.id == want))
                .expect("none of allowCredentials is held by this authenticator")
        };

        self.credentials[index].counter = self.credentials[index].counter.wrapping_add(1);
        let counter = self.credentials[index].counter;
        let auth_data = self.authenticator_data(rp_id, 0, counter);
        let client_data_json = client_data_json("webauthn.get", &challenge, origin);

        // The signature covers authenticatorData || SHA-256(clientDataJSON).
        let mut signed = auth_data.clone();
        signed.extend_from_slice(digest(&SHA256, &client_data_json).as_ref());
        let credential = &self.credentials[index];
        let signature = credential
            .key
            .sign(&self.rng, &signed)
            .expect("sign the assertion");

        let id_b64 = URL_SAFE_NO_PAD.encode(&credential.id);
        json!({
            "id": id_b64,
            "rawId": id_b64,
            "type": "public-key",
            "response": {
                "authenticatorData": URL_SAFE_NO_PAD.encode(&auth_data),
                "clientDataJSON": URL_SAFE_NO_PAD.encode(&client_data_json),
                "signature": URL_SAFE_NO_PAD.encode(signature.as_ref()),
                "userHandle": URL_SAFE_NO_PAD.encode(&credential.user_handle),
            },
            "extensions": {},
        })
    }

    /// Sets the signature counter of the credential at `index` (in creation order), for
    /// counter-regression tests. The next assertion reports `counter + 1`.
    pub fn set_counter(&mut self, index: usize, counter: u32) {
        self.credentials[index].counter = counter;
    }

    /// The credential ids held, in creation order.
    pub fn credential_ids(&self) -> Vec<Vec<u8>> {
        self.credentials.iter().map(|c| c.id.clone()).collect()
    }

    /// The user handle stored with the credential at `index` (in creation order).
    pub fn user_handle(&self, index: usize) -> Vec<u8> {
        self.credentials[index].user_handle.clone()
    }

    /// The current signature counter of the credential at `index` (in creation order).
    pub fn counter(&self, index: usize) -> u32 {
        self.credentials[index].counter
    }

    /// rpIdHash | flags | signCount: the fixed 37-byte start of authenticator data. UP is
    /// always set; UV, BE and BS follow the fields; `extra_flags` adds AT on create.
    fn authenticator_data(&self, rp_id: &str, extra_flags: u8, counter: u32) -> Vec<u8> {
        let mut flags = FLAG_UP | extra_flags;
        if self.user_verified {
            flags |= FLAG_UV;
        }
        if self.backup_eligible {
            flags |= FLAG_BE;
        }
        if self.backed_up {
            flags |= FLAG_BS;
        }
        let mut data = Vec::with_capacity(37);
        data.extend_from_slice(digest(&SHA256, rp_id.as_bytes()).as_ref());
        data.push(flags);
        data.extend_from_slice(&counter.to_be_bytes());
        data
    }
}

/// The string at a JSON pointer, or a panic naming it.
fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {value}"))
}

/// Decodes base64url (padded or not).
fn b64url_decode(text: &str) -> Vec<u8> {
    B64URL_ANY_PAD
        .decode(text)
        .unwrap_or_else(|e| panic!("not base64url: {text:?}: {e}"))
}

/// The clientDataJSON bytes a browser would make, members in a browser's order.
fn client_data_json(kind: &str, challenge: &[u8], origin: &str) -> Vec<u8> {
    let text = |s: &str| serde_json::to_string(s).expect("JSON string");
    format!(
        r#"{{"type":{},"challenge":{},"origin":{},"crossOrigin":false}}"#,
        text(kind),
        text(&URL_SAFE_NO_PAD.encode(challenge)),
        text(origin),
    )
    .into_bytes()
}

/// A CBOR map from its entries.
fn cbor_map(entries: Vec<(Cbor, Cbor)>) -> Cbor {
    Cbor::Map(entries.into_iter().collect())
}

/// The COSE_Key of an uncompressed P-256 public key (`0x04 | x | y`):
/// `{1: 2 (EC2), 3: -7 (ES256), -1: 1 (P-256), -2: x, -3: y}`.
fn cose_es256_public_key(uncompressed: &[u8]) -> Vec<u8> {
    assert_eq!(uncompressed.len(), 65, "P-256 public key length");
    assert_eq!(uncompressed[0], 0x04, "uncompressed point");
    serde_cbor_2::to_vec(&cbor_map(vec![
        (Cbor::Integer(1), Cbor::Integer(2)),
        (Cbor::Integer(3), Cbor::Integer(COSE_ES256.into())),
        (Cbor::Integer(-1), Cbor::Integer(1)),
        (Cbor::Integer(-2), Cbor::Bytes(uncompressed[1..33].to_vec())),
        (
            Cbor::Integer(-3),
            Cbor::Bytes(uncompressed[33..65].to_vec()),
        ),
    ]))
    .expect("encode the COSE key")
}

// ---------------------------------------------------------------------------------------------
// The authenticator checked against webauthn-rs itself.

use url::Url;
use uuid::Uuid;
use webauthn_rs::prelude::{
    CreationChallengeResponse, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, RequestChallengeResponse, WebauthnError,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};

const ORIGIN: &str = "http://localhost:8080";

fn webauthn() -> Webauthn {
    WebauthnBuilder::new("localhost", &Url::parse(ORIGIN).unwrap())
        .unwrap()
        .rp_name("Latchkey test")
        .build()
        .unwrap()
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

fn as_registration(value: Value) -> RegisterPublicKeyCredential {
    serde_json::from_value(value).unwrap()
}

fn as_assertion(value: Value) -> PublicKeyCredential {
    serde_json::from_value(value).unwrap()
}

/// A fresh registration ceremony for `user`: the options as JSON, and the server state.
fn start_registration(wa: &Webauthn, user: Uuid) -> (Value, PasskeyRegistration) {
    let (ccr, state): (CreationChallengeResponse, _) = wa
        .start_passkey_registration(user, "alice", "Alice", None)
        .unwrap();
    (to_json(&ccr), state)
}

/// Registers a passkey for `user` on `authn`.
fn register(wa: &Webauthn, authn: &mut SoftAuthenticator, user: Uuid) -> Passkey {
    let (options, state) = start_registration(wa, user);
    let response = authn.create(&options, ORIGIN);
    wa.finish_passkey_registration(&as_registration(response), &state)
        .unwrap()
}

/// Runs a discoverable sign-in with `origin`, returning the finish result.
fn discoverable_sign_in(
    wa: &Webauthn,
    authn: &mut SoftAuthenticator,
    passkey: &Passkey,
    origin: &str,
) -> Result<webauthn_rs::prelude::AuthenticationResult, WebauthnError> {
    let (rcr, state): (RequestChallengeResponse, _) =
        wa.start_discoverable_authentication().unwrap();
    let cred = as_assertion(authn.get(&to_json(&rcr), origin));
    wa.finish_discoverable_authentication_v2(&cred, state, passkey)
}

#[test]
fn soft_authenticator_registers_and_signs_in_discoverably() {
    let wa = webauthn();
    let mut authn = SoftAuthenticator::new();
    let user = Uuid::new_v4();

    let (options, state) = start_registration(&wa, user);
    assert_eq!(options["publicKey"]["rp"]["id"], "localhost");
    let response = authn.create(&options, ORIGIN);
    assert_eq!(response["type"], "public-key");
    assert_eq!(response["id"], response["rawId"]);
    let mut passkey = wa
        .finish_passkey_registration(&as_registration(response), &state)
        .unwrap();
    assert_eq!(
        passkey.cred_id().as_slice(),
        authn.credential_ids()[0].as_slice()
    );
    assert_eq!(authn.user_handle(0), user.as_bytes().to_vec());

    let (rcr, state) = wa.start_discoverable_authentication().unwrap();
    let rcr_json = to_json(&rcr);
    assert_eq!(rcr_json["publicKey"]["allowCredentials"], json!([]));
    let cred = as_assertion(authn.get(&rcr_json, ORIGIN));
    let (found_user, found_cred_id) = wa.identify_discoverable_authentication(&cred).unwrap();
    assert_eq!(found_user, user);
    assert_eq!(found_cred_id, authn.credential_ids()[0].as_slice());
    let result = wa
        .finish_discoverable_authentication_v2(&cred, state, &passkey)
        .unwrap();
    assert!(result.user_verified());
    assert_eq!(result.counter(), 1);
    assert!(result.needs_update());
    assert_eq!(passkey.update_credential(&result), Some(true));

    // And again: the counter keeps going up.
    let result = discoverable_sign_in(&wa, &mut authn, &passkey, ORIGIN).unwrap();
    assert_eq!(result.counter(), 2);
}

#[test]
fn soft_authenticator_signs_in_with_allow_credentials() {
    let wa = webauthn();
    let mut authn = SoftAuthenticator::new();
    // Two credentials; the allow list names only the first.
    let first = register(&wa, &mut authn, Uuid::new_v4());
    let _second = register(&wa, &mut authn, Uuid::new_v4());

    let (rcr, state) = wa
        .start_passkey_authentication(std::slice::from_ref(&first))
        .unwrap();
    let cred = as_assertion(authn.get(&to_json(&rcr), ORIGIN));
    assert_eq!(cred.raw_id.as_slice(), authn.credential_ids()[0].as_slice());
    let result = wa.finish_passkey_authentication(&cred, &state).unwrap();
    assert_eq!(result.cred_id(), first.cred_id());
    assert_eq!(result.counter(), 1);
    assert_eq!(authn.counter(0), 1);
    assert_eq!(authn.counter(1), 0);
}

#[test]
fn soft_authenticator_discoverable_picks_the_newest_credential_for_the_rp() {
    let wa = webauthn();
    let mut authn = SoftAuthenticator::new();
    let _old = register(&wa, &mut authn, Uuid::new_v4());
    let newer_user = Uuid::new_v4();
    let newer = register(&wa, &mut authn, newer_user);

    let (rcr, state) = wa.start_discoverable_authentication().unwrap();
    let cred = as_assertion(authn.get(&to_json(&rcr), ORIGIN));
    assert_eq!(
        wa.identify_discoverable_authentication(&cred).unwrap().0,
        newer_user
    );
    wa.finish_discoverable_authentication_v2(&cred, state, &newer)
        .unwrap();
}

#[test]
fn soft_authenticator_wrong_origin_is_refused() {
    let wa = webauthn();
    let mut authn = SoftAuthenticator::new();
    let user = Uuid::new_v4();

    for origin in [
        "http://localhost:9999",
        "http://evil.localhost:8080",
        "https://localhost:8080",
    ] {
        let (options, state) = start_registration(&wa, user);
        let response = as_registration(authn.create(&options, origin));
        assert!(
            matches!(
                wa.finish_passkey_registration(&response, &state),
                Err(WebauthnError::InvalidRPOrigin)
            ),
            "registration from {origin}"
        );
    }

    let passkey = register(&wa, &mut authn, user);
    for origin in ["http://localhost:9999", "http://evil.localhost:8080"] {
        assert!(
            matches!(
                discoverable_sign_in(&wa, &mut authn, &passkey, origin),
                Err(WebauthnError::InvalidRPOrigin)
            ),
            "sign-in from {origin}"
        );
    }
}

#[test]
fn soft_authenticator_wrong_rp_id_is_refused() {
    let wa = webauthn();
    let mut authn = SoftAuthenticator::new();
    let user = Uuid::new_v4();

    let (options, state) = start_registration(&wa, user);
    let response = as_registration(authn.create_for_rp(&options, ORIGIN, "evil.example"));
    assert!(matches!(
        wa.finish_passkey_registration(&response, &state),
        Err(WebauthnError::InvalidRPIDHash)
    ));

    let passkey = register(&wa, &mut authn, user);
    let (rcr, state) = wa.start_discoverable_authentication().unwrap();
    let cred = as_assertion(authn.get_for_rp(&to_json(&rcr), ORIGIN, "evil.example"));
    assert!(matches!(
        wa.finish_discoverable_authentication_v2(&cred, state, &passkey),
        Err(WebauthnError::InvalidRPIDHash)
    ));
}

#[test]
fn soft_authenticator_missing_user_verification_is_refused() {
    let wa = webauthn();
    let mut authn = SoftAuthenticator::new();
    let user = Uuid::new_v4();

    authn.user_verified = false;
    let (options, state) = start_registration(&wa, user);
    let response = as_registration(authn.create(&options, ORIGIN));
    assert!(matches!(
        wa.finish_passkey_registration(&response, &state),
        Err(WebauthnError::UserNotVerified)
    ));

    authn.user_verified = true;
    let passkey = register(&wa, &mut authn, user);
    authn.user_verified = false;
    assert!(matches!(
        discoverable_sign_in(&wa, &mut authn, &passkey, ORIGIN),
        Err(WebauthnError::UserNotVerified)
    ));
    let (rcr, state) = wa.start_passkey_authentication(&[passkey]).unwrap();
    let cred = as_assertion(authn.get(&to_json(&rcr), ORIGIN));
    assert!(matches!(
        wa.finish_passkey_authentication(&cred, &state),
        Err(WebauthnError::UserNotVerified)
    ));
}

#[test]
fn soft_authenticator_counter_regression_is_refused() {
    let wa = webauthn();
    let mut authn = SoftAuthenticator::new();
    let mut passkey = register(&wa, &mut authn, Uuid::new_v4());
    for _ in 0..3 {
        let result = discoverable_sign_in(&wa, &mut authn, &passkey, ORIGIN).unwrap();
        passkey.update_credential(&result);
    }
    assert_eq!(authn.counter(0), 3);

    // The next assertion reports 3 again: not greater than the stored 3.
    authn.set_counter(0, 2);
    assert!(matches!(
        discoverable_sign_in(&wa, &mut authn, &passkey, ORIGIN),
        Err(WebauthnError::CredentialPossibleCompromise)
    ));
    // Further back still.
    authn.set_counter(0, 0);
    let (rcr, state) = wa
        .start_passkey_authentication(std::slice::from_ref(&passkey))
        .unwrap();
    let cred = as_assertion(authn.get(&to_json(&rcr), ORIGIN));
    assert!(matches!(
        wa.finish_passkey_authentication(&cred, &state),
        Err(WebauthnError::CredentialPossibleCompromise)
    ));
    // Forward again: accepted.
    authn.set_counter(0, 10);
    let result = discoverable_sign_in(&wa, &mut authn, &passkey, ORIGIN).unwrap();
    assert_eq!(result.counter(), 11);
}

#[test]
fn soft_authenticator_replayed_assertion_is_refused() {
    let wa = webauthn();
    let mut authn = SoftAuthenticator::new();
    let passkey = register(&wa, &mut authn, Uuid::new_v4());

    let (rcr, state) = wa.start_discoverable_authentication().unwrap();
    let cred = as_assertion(authn.get(&to_json(&rcr), ORIGIN));
    wa.finish_discoverable_authentication_v2(&cred, state, &passkey)
        .unwrap();
    let (_, fresh_state) = wa.start_discoverable_authentication().unwrap();
    assert!(matches!(
        wa.finish_discoverable_authentication_v2(&cred, fresh_state, &passkey),
        Err(WebauthnError::MismatchedChallenge)
    ));

    let (rcr, state) = wa
        .start_passkey_authentication(std::slice::from_ref(&passkey))
        .unwrap();
    let cred = as_assertion(authn.get(&to_json(&rcr), ORIGIN));
    wa.finish_passkey_authentication(&cred, &state).unwrap();
    let (_, fresh_state) = wa.start_passkey_authentication(&[passkey]).unwrap();
    assert!(matches!(
        wa.finish_passkey_authentication(&cred, &fresh_state),
        Err(WebauthnError::MismatchedChallenge)
    ));
}

/// webauthn-rs does not make an authentication state single-use: finishing the same
/// assertion twice against the *same* `PasskeyAuthentication` succeeds both times (the
/// state carries a copy of the credential with the counter as it was at start). The server
/// must delete the state when it is first used, and check the counter against the stored
/// passkey. This test pins that behaviour so a change in webauthn-rs is noticed.
#[test]
fn soft_authenticator_same_state_twice_is_not_refused_by_webauthn_rs() {
    let wa = webauthn();
    let mut authn = SoftAuthenticator::new();
    let passkey = register(&wa, &mut authn, Uuid::new_v4());

    let (rcr, state) = wa.start_passkey_authentication(&[passkey]).unwrap();
    let cred = as_assertion(authn.get(&to_json(&rcr), ORIGIN));
    assert!(wa.finish_passkey_authentication(&cred, &state).is_ok());
    assert!(wa.finish_passkey_authentication(&cred, &state).is_ok());
}

#[test]
fn soft_authenticator_tampered_signature_is_refused() {
    let wa = webauthn();
    let mut authn = SoftAuthenticator::new();
    let passkey = register(&wa, &mut authn, Uuid::new_v4());

    let (rcr, state) = wa.start_discoverable_authentication().unwrap();
    let mut response = authn.get(&to_json(&rcr), ORIGIN);
    // Flip one bit of the authenticator data's counter after signing.
    let mut auth_data = b64url_decode(response["response"]["authenticatorData"].as_str().unwrap());
    auth_data[36] ^= 0x01;
    response["response"]["authenticatorData"] = json!(URL_SAFE_NO_PAD.encode(&auth_data));
    assert!(matches!(
        wa.finish_discoverable_authentication_v2(&as_assertion(response), state, &passkey),
        Err(WebauthnError::AuthenticationFailure)
    ));
}

#[test]
fn soft_authenticator_backup_flags() {
    let wa = webauthn();

    // BS without BE is refused at registration.
    let mut authn = SoftAuthenticator::new();
    authn.backed_up = true;
    let (options, state) = start_registration(&wa, Uuid::new_v4());
    assert!(matches!(
        wa.finish_passkey_registration(&as_registration(authn.create(&options, ORIGIN)), &state),
        Err(WebauthnError::CredentialMayNotBeHardwareBound)
    ));

    // A synced passkey (BE and BS) registers and signs in; the passkey records BE.
    let mut synced = SoftAuthenticator::new();
    synced.backup_eligible = true;
    synced.backed_up = true;
    let passkey = register(&wa, &mut synced, Uuid::new_v4());
    let result = discoverable_sign_in(&wa, &mut synced, &passkey, ORIGIN).unwrap();
    assert!(result.backup_eligible());
    assert!(result.backup_state());

    // A passkey registered without BE that later claims BE: discoverable sign-in refuses it,
    // while start_passkey_authentication allows the upgrade (and the result needs storing).
    let mut device = SoftAuthenticator::new();
    let passkey = register(&wa, &mut device, Uuid::new_v4());
    device.backup_eligible = true;
    assert!(matches!(
        discoverable_sign_in(&wa, &mut device, &passkey, ORIGIN),
        Err(WebauthnError::CredentialBackupEligibilityInconsistent)
    ));
    let (rcr, state) = wa.start_passkey_authentication(&[passkey]).unwrap();
    let cred = as_assertion(device.get(&to_json(&rcr), ORIGIN));
    let result = wa.finish_passkey_authentication(&cred, &state).unwrap();
    assert!(result.backup_eligible());
    assert!(result.needs_update());
}

#[test]
fn soft_authenticator_json_shapes() {
    let wa = webauthn();
    let mut authn = SoftAuthenticator::new();
    let (options, _) = start_registration(&wa, Uuid::new_v4());
    let created = authn.create(&options, ORIGIN);
    for field in ["attestationObject", "clientDataJSON"] {
        let text = created["response"][field].as_str().unwrap();
        assert!(
            !text.contains(['=', '+', '/']),
            "{field} is unpadded base64url"
        );
    }
    let client_data: Value = serde_json::from_slice(&b64url_decode(
        created["response"]["clientDataJSON"].as_str().unwrap(),
    ))
    .unwrap();
    assert_eq!(client_data["type"], "webauthn.create");
    assert_eq!(client_data["challenge"], options["publicKey"]["challenge"]);
    assert_eq!(client_data["origin"], ORIGIN);
    assert_eq!(client_data["crossOrigin"], false);

    let auth_data = {
        let object = b64url_decode(created["response"]["attestationObject"].as_str().unwrap());
        let object: Cbor = serde_cbor_2::from_slice(&object).unwrap();
        let Cbor::Map(map) = object else {
            panic!("attestation object is a map")
        };
        assert_eq!(map[&Cbor::Text("fmt".into())], Cbor::Text("none".into()));
        assert_eq!(
            map[&Cbor::Text("attStmt".into())],
            Cbor::Map(BTreeMap::new())
        );
        let Cbor::Bytes(auth_data) = &map[&Cbor::Text("authData".into())] else {
            panic!("authData is a byte string")
        };
        auth_data.clone()
    };
    assert_eq!(&auth_data[..32], digest(&SHA256, b"localhost").as_ref());
    assert_eq!(auth_data[32], FLAG_UP | FLAG_UV | FLAG_AT);
    assert_eq!(&auth_data[33..37], &[0, 0, 0, 0]);
    assert_eq!(&auth_data[53..55], &[0, CREDENTIAL_ID_LEN as u8]);
}

/// webauthn-rs's `start_passkey_registration` asks for `residentKey: "discouraged"`, so a real
/// security key may make a non-discoverable credential that discoverable sign-in can never
/// find, and webauthn-rs does not check. A server that wants discoverable passkeys must set
/// `authenticatorSelection.residentKey` to `"required"` (and `requireResidentKey` to `true`)
/// in the JSON it sends. This test pins the library's default so a change is noticed.
#[test]
fn soft_authenticator_webauthn_rs_passkey_options_discourage_resident_keys() {
    let wa = webauthn();
    let (mut options, state) = start_registration(&wa, Uuid::new_v4());
    let selection = &options["publicKey"]["authenticatorSelection"];
    assert_eq!(selection["residentKey"], "discouraged");
    assert_eq!(selection["requireResidentKey"], false);
    assert_eq!(selection["userVerification"], "required");
    // Overriding it in the JSON sent is harmless: the registration still finishes.
    options["publicKey"]["authenticatorSelection"]["residentKey"] = json!("required");
    options["publicKey"]["authenticatorSelection"]["requireResidentKey"] = json!(true);
    let mut authn = SoftAuthenticator::new();
    let response = as_registration(authn.create(&options, ORIGIN));
    wa.finish_passkey_registration(&response, &state).unwrap();
}
