use super::*;
use crate::oidc::test_support::{client, params, public_client};
use crate::oidc::ErrorCode;

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

fn secret_is_s3cret(secret: &str, hash: &[u8]) -> bool {
    secret == "s3cret" && hash == b"hash"
}

#[test]
fn parses_basic() {
    let p = presented_credentials(Some(&basic("app", "s3cret")), &params(&[])).unwrap();
    assert_eq!(
        p,
        PresentedCredentials::Basic {
            client_id: ClientId::parse("app").unwrap(),
            secret: SecretString::new("s3cret"),
        }
    );
}

#[test]
fn basic_parts_are_form_urldecoded() {
    // RFC 6749 §2.3.1: id and secret are form-urlencoded before base64.
    let header = basic("my%3Aapp", "p%40ss+w%2Brd%3A");
    let p = presented_credentials(Some(&header), &params(&[])).unwrap();
    let PresentedCredentials::Basic { client_id, secret } = p else {
        panic!("not basic")
    };
    assert_eq!(client_id.as_str(), "my:app");
    assert_eq!(secret.expose(), "p@ss w+rd:");
}

#[test]
fn basic_scheme_is_case_insensitive() {
    let header = basic("app", "s3cret").replacen("Basic", "bAsIc", 1);
    assert!(presented_credentials(Some(&header), &params(&[])).is_ok());
}

#[test]
fn malformed_basic_is_invalid_client_with_basic_flag() {
    for header in [
        basic("app", "s3cret").replacen("Basic", "Bearer", 1),
        "Basic !!!notbase64".to_owned(),
        format!("Basic {}", STANDARD.encode("no-colon")),
        format!("Basic {}", STANDARD.encode("app:bad%zz")),
        // A sign is not a hex digit (the `basic` fuzz target's oracle flags it).
        format!("Basic {}", STANDARD.encode("app:bad%+1")),
        format!("Basic {}", STANDARD.encode(":secret")),
        "Basic".to_owned(),
    ] {
        let e = presented_credentials(Some(&header), &params(&[])).unwrap_err();
        assert_eq!(e.error.code, ErrorCode::InvalidClient, "{header}");
        assert!(e.basic_used, "{header}");
    }
}

#[test]
fn basic_plus_body_secret_is_invalid_request() {
    let e = presented_credentials(
        Some(&basic("app", "s3cret")),
        &params(&[("client_secret", "s3cret")]),
    )
    .unwrap_err();
    assert_eq!(e.error.code, ErrorCode::InvalidRequest);
    assert!(e.basic_used);
}

#[test]
fn basic_with_different_body_client_id_is_invalid_request() {
    let header = basic("app", "s3cret");
    let e = presented_credentials(Some(&header), &params(&[("client_id", "other")])).unwrap_err();
    assert_eq!(e.error.code, ErrorCode::InvalidRequest);
    assert!(presented_credentials(Some(&header), &params(&[("client_id", "app")])).is_ok());
}

#[test]
fn parses_post_and_none() {
    let post = presented_credentials(
        None,
        &params(&[("client_id", "app"), ("client_secret", "s3cret")]),
    )
    .unwrap();
    assert!(matches!(post, PresentedCredentials::Post { .. }));
    let none = presented_credentials(None, &params(&[("client_id", "spa")])).unwrap();
    assert!(matches!(none, PresentedCredentials::None { .. }));
}

#[test]
fn no_credentials_is_invalid_client() {
    let e = presented_credentials(None, &params(&[("client_secret", "s3cret")])).unwrap_err();
    assert_eq!(e.error.code, ErrorCode::InvalidClient);
    assert!(!e.basic_used);
}

#[test]
fn client_assertions_are_refused() {
    let p = params(&[
        ("client_id", "app"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", "eyJ..."),
    ]);
    assert_eq!(
        presented_credentials(None, &p).unwrap_err().error.code,
        ErrorCode::InvalidClient
    );
}

#[test]
fn secrets_are_redacted_in_debug() {
    let p = presented_credentials(Some(&basic("app", "s3cret")), &params(&[])).unwrap();
    assert!(!format!("{p:?}").contains("s3cret"));
}

fn post(id: &str, secret: &str) -> PresentedCredentials {
    PresentedCredentials::Post {
        client_id: ClientId::parse(id).unwrap(),
        secret: SecretString::new(secret),
    }
}

fn none(id: &str) -> PresentedCredentials {
    PresentedCredentials::None {
        client_id: ClientId::parse(id).unwrap(),
    }
}

#[test]
fn confidential_client_with_right_secret() {
    let c = client();
    assert_eq!(
        authenticate(&post("app", "s3cret"), Some(&c), secret_is_s3cret),
        Ok(c.id.clone())
    );
    let basic = presented_credentials(Some(&basic("app", "s3cret")), &params(&[])).unwrap();
    assert_eq!(authenticate(&basic, Some(&c), secret_is_s3cret), Ok(c.id));
}

#[test]
fn wrong_secret_is_invalid_client() {
    let e = authenticate(&post("app", "wrong"), Some(&client()), secret_is_s3cret).unwrap_err();
    assert_eq!(e.error.code, ErrorCode::InvalidClient);
    assert_eq!(e.error.description, FAILED);
}

#[test]
fn wrong_basic_secret_sets_basic_flag() {
    let p = presented_credentials(Some(&basic("app", "wrong")), &params(&[])).unwrap();
    let e = authenticate(&p, Some(&client()), secret_is_s3cret).unwrap_err();
    assert!(e.basic_used);
}

#[test]
fn unknown_client_is_invalid_client() {
    let e = authenticate(&post("app", "s3cret"), None, secret_is_s3cret).unwrap_err();
    assert_eq!(e.error.code, ErrorCode::InvalidClient);
    assert_eq!(e.error.description, FAILED);
    // A looked-up record for another id is not accepted either.
    assert!(authenticate(&post("zzz", "s3cret"), Some(&client()), secret_is_s3cret).is_err());
}

#[test]
fn confidential_client_without_secret_is_invalid_client() {
    let e = authenticate(&none("app"), Some(&client()), |_, _| true).unwrap_err();
    assert_eq!(e.error.code, ErrorCode::InvalidClient);
}

#[test]
fn confidential_client_with_no_stored_hash_is_refused() {
    let mut c = client();
    c.secret_hash = None;
    assert!(authenticate(&post("app", "s3cret"), Some(&c), |_, _| true).is_err());
}

#[test]
fn public_client_with_none_is_accepted() {
    let c = public_client();
    assert_eq!(
        authenticate(&none("spa"), Some(&c), |_, _| true),
        Ok(c.id.clone())
    );
}

#[test]
fn public_client_presenting_secret_is_invalid_client() {
    let c = public_client();
    let e = authenticate(&post("spa", "s3cret"), Some(&c), |_, _| true).unwrap_err();
    assert_eq!(e.error.code, ErrorCode::InvalidClient);
}
