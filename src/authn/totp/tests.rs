use base64::Engine as _;

use super::*;

/// RFC 6238 Appendix B's SHA-1 seed.
fn rfc_secret() -> TotpSecret {
    TotpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap()
}

/// RFC 6238 Appendix B, SHA-1 rows: time and the 8-digit TOTP.
const RFC_VECTORS: [(i64, &str); 6] = [
    (59, "94287082"),
    (1_111_111_109, "07081804"),
    (1_111_111_111, "14050471"),
    (1_234_567_890, "89005924"),
    (2_000_000_000, "69279037"),
    (20_000_000_000, "65353130"),
];

/// Never used: every step is eligible.
const FRESH: i64 = i64::MIN;

#[test]
fn six_digit_codes_are_the_last_six_digits_of_the_rfc_vectors() {
    let secret = rfc_secret();
    for (time, eight) in RFC_VECTORS {
        assert_eq!(code_at(&secret, time).unwrap(), eight[2..], "T = {time}");
    }
}

#[test]
fn rfc_vectors_verify_at_their_own_step() {
    let secret = rfc_secret();
    for (time, eight) in RFC_VECTORS {
        assert_eq!(verify(&secret, &eight[2..], time, FRESH), Some(step(time)));
    }
}

#[test]
fn step_is_floored_including_before_the_epoch() {
    assert_eq!(step(0), 0);
    assert_eq!(step(29), 0);
    assert_eq!(step(30), 1);
    assert_eq!(step(59), 1);
    assert_eq!(step(-1), -1);
    assert_eq!(step(-30), -1);
    assert_eq!(step(-31), -2);
    assert_eq!(step(i64::MIN), i64::MIN.div_euclid(30));
}

#[test]
fn one_step_either_side_is_accepted() {
    let secret = TotpSecret::generate().unwrap();
    let now = 1_700_000_015;
    let previous = code_at(&secret, now - 30).unwrap();
    let next = code_at(&secret, now + 30).unwrap();
    assert_eq!(verify(&secret, &previous, now, FRESH), Some(step(now) - 1));
    assert_eq!(verify(&secret, &next, now, FRESH), Some(step(now) + 1));
}

#[test]
fn two_steps_off_is_refused() {
    let secret = rfc_secret();
    let now = 1_111_111_109;
    let early = code_at(&secret, now - 60).unwrap();
    let late = code_at(&secret, now + 60).unwrap();
    // Guard against a coincidental collision with an in-window code.
    for offset in [-30, 0, 30] {
        assert_ne!(early, code_at(&secret, now + offset).unwrap());
        assert_ne!(late, code_at(&secret, now + offset).unwrap());
    }
    assert_eq!(verify(&secret, &early, now, FRESH), None);
    assert_eq!(verify(&secret, &late, now, FRESH), None);
}

#[test]
fn a_step_is_accepted_at_most_once() {
    let secret = rfc_secret();
    let now = 1_234_567_890;
    let code = code_at(&secret, now).unwrap();
    let used = verify(&secret, &code, now, FRESH).unwrap();
    assert_eq!(verify(&secret, &code, now, used), None);
    assert_eq!(verify(&secret, &code, now + 30, used), None);
    assert_eq!(verify(&secret, &code, now, used + 1), None);
    assert_eq!(verify(&secret, &code, now, used - 1), Some(used));
}

#[test]
fn an_older_code_is_refused_once_a_newer_step_was_used() {
    let secret = rfc_secret();
    let now = 2_000_000_000;
    let previous = code_at(&secret, now - 30).unwrap();
    assert_eq!(verify(&secret, &previous, now, step(now)), None);
}

#[test]
fn whitespace_around_and_inside_is_ignored() {
    let secret = rfc_secret();
    let now = 59;
    for typed in ["287082", " 287082\n", "287 082", "\t287 082 ", "28 70 82"] {
        assert_eq!(verify(&secret, typed, now, FRESH), Some(1), "{typed:?}");
    }
}

#[test]
fn malformed_codes_are_refused_without_panic() {
    let secret = rfc_secret();
    let long = "1".repeat(100_000);
    let long_digits_then_code = format!("{}287082", " ".repeat(10_000));
    for typed in [
        "",
        "   ",
        "12345",
        "1234567",
        "94287082",
        "12a456",
        "+87082",
        "-87082",
        "２８７０８２",
        "２87082",
        "287082\u{0}",
        long.as_str(),
        long_digits_then_code.as_str(),
    ] {
        assert_eq!(verify(&secret, typed, 59, FRESH), None, "{typed:?}");
    }
}

#[test]
fn times_before_the_epoch_verify_nothing() {
    let secret = rfc_secret();
    assert_eq!(verify(&secret, "000000", -100, FRESH), None);
    assert_eq!(code_at(&secret, -1), None);
    assert_eq!(verify(&secret, "000000", i64::MIN, FRESH), None);
    assert_eq!(verify(&secret, "000000", i64::MAX, FRESH), None);
}

#[test]
fn generated_secrets_are_160_bits_and_differ() {
    let a = TotpSecret::generate().unwrap();
    let b = TotpSecret::generate().unwrap();
    assert_eq!(a.as_bytes().len(), 20);
    assert_ne!(a.as_bytes(), b.as_bytes());
    assert_eq!(a.to_base32().len(), 32);
}

#[test]
fn short_secrets_are_refused() {
    assert_eq!(
        TotpSecret::from_bytes(vec![7; 15]).unwrap_err(),
        TotpError::SecretTooShort
    );
    assert!(TotpSecret::from_bytes(vec![7; 16]).is_ok());
}

#[test]
fn base32_matches_rfc_4648() {
    // RFC 4648 §10: BASE32("fooba") = "MZXW6YTB".
    let secret = TotpSecret::from_bytes(b"fooba".repeat(4)).unwrap();
    assert_eq!(secret.to_base32(), "MZXW6YTB".repeat(4));
    // Unpadded: 17 bytes would need "===" after 28 characters.
    let secret = TotpSecret::from_bytes(vec![0; 17]).unwrap();
    assert_eq!(secret.to_base32(), "A".repeat(28));
}

#[test]
fn debug_shows_no_bytes() {
    let secret = rfc_secret();
    let debug = format!("{secret:?}");
    assert_eq!(debug, "TotpSecret([redacted])");
    assert!(!debug.contains("49"));
    assert!(!debug.contains(&secret.to_base32()));
}

#[test]
fn otpauth_uri_has_secret_issuer_and_label() {
    let secret = rfc_secret();
    let uri = otpauth_uri(&secret, "Latchkey", "alice@example.com").unwrap();
    assert_eq!(
        uri,
        format!(
            "otpauth://totp/Latchkey:alice%40example.com?secret={}&issuer=Latchkey",
            secret.to_base32()
        )
    );
}

#[test]
fn otpauth_uri_parses_back_with_the_fixed_parameters() {
    let secret = rfc_secret();
    let uri = otpauth_uri(&secret, "Latchkey (127.0.0.1:8080)", "alice").unwrap();
    let parsed = Totp::from_url(&uri).unwrap();
    assert_eq!(parsed.algorithm(), Algorithm::SHA1);
    assert_eq!(parsed.digits(), 6);
    assert_eq!(parsed.step(), 30);
    assert_eq!(parsed.issuer(), Some("Latchkey (127.0.0.1 8080)"));
    assert_eq!(parsed.account_name(), "alice");
    assert_eq!(parsed.secret().as_bytes(), secret.as_bytes());
}

#[test]
fn hostile_names_cannot_break_the_uri() {
    let secret = rfc_secret();
    let uri = otpauth_uri(
        &secret,
        "https://id.example.com:8443/",
        "eve:x?secret=AAAA&issuer=Evil#frag/..",
    )
    .unwrap();
    let (label, query) = uri.split_once('?').unwrap();
    assert_eq!(
        label.matches(':').count(),
        2,
        "scheme and separator only: {uri}"
    );
    assert_eq!(query.matches('&').count(), 1, "{uri}");
    assert!(!uri.contains('#'));
    let parsed = Totp::from_url(&uri).unwrap();
    assert_eq!(parsed.issuer(), Some("id.example.com 8443"));
    assert_eq!(
        parsed.account_name(),
        "eve x?secret=AAAA&issuer=Evil#frag/.."
    );
    assert_eq!(parsed.secret().as_bytes(), secret.as_bytes());
}

#[test]
fn labels_are_sanitised() {
    assert_eq!(
        sanitize_label("Latchkey (127.0.0.1:8080)"),
        "Latchkey (127.0.0.1 8080)"
    );
    assert_eq!(sanitize_label("https://id.example.com/"), "id.example.com");
    assert_eq!(sanitize_label("HTTP://a:b//"), "a b");
    assert_eq!(sanitize_label("  two\n\tlines :: here "), "two lines here");
    assert_eq!(sanitize_label("héllo wörld"), "héllo wörld");
    assert_eq!(sanitize_label(":::"), "");
}

#[test]
fn empty_names() {
    let secret = rfc_secret();
    assert_eq!(
        otpauth_uri(&secret, "Latchkey", " : ").unwrap_err(),
        TotpError::EmptyAccountName
    );
    let uri = otpauth_uri(&secret, ":", "alice").unwrap();
    assert_eq!(
        uri,
        format!("otpauth://totp/alice?secret={}", secret.to_base32())
    );
}

#[test]
fn qr_is_a_png_data_uri() {
    let secret = rfc_secret();
    let uri = qr_png_data_uri(&secret, "Latchkey (127.0.0.1:8080)", "alice").unwrap();
    let encoded = uri.strip_prefix("data:image/png;base64,").unwrap();
    let png = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn too_long_for_a_qr_code_is_an_error_without_the_secret() {
    let secret = rfc_secret();
    let account = "a".repeat(5_000);
    let error = qr_png_data_uri(&secret, "Latchkey", &account).unwrap_err();
    assert_eq!(error, TotpError::QrTooLarge);
    assert!(!format!("{error} {error:?}").contains(&secret.to_base32()));
}
