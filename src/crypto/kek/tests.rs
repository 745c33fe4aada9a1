use std::os::unix::fs::PermissionsExt as _;

use super::*;

fn key(byte: u8) -> MasterKey {
    MasterKey::from_bytes([byte; KEY_LEN])
}

#[test]
fn seal_open_round_trip() {
    let k = key(1);
    let sealed = k.seal(b"private key der", b"kid-1").unwrap();
    assert_eq!(sealed.len(), NONCE_LEN + 15 + 16);
    assert_eq!(k.open(&sealed, b"kid-1").unwrap(), b"private key der");
    // Fresh nonce every time.
    assert_ne!(sealed, k.seal(b"private key der", b"kid-1").unwrap());
}

#[test]
fn wrong_aad_fails() {
    let k = key(1);
    let sealed = k.seal(b"secret", b"kid-1").unwrap();
    assert!(matches!(
        k.open(&sealed, b"kid-2"),
        Err(CryptoError::Decrypt)
    ));
}

#[test]
fn tampered_byte_fails() {
    let k = key(1);
    let sealed = k.seal(b"secret", b"aad").unwrap();
    for i in [0, NONCE_LEN, sealed.len() - 1] {
        let mut bad = sealed.clone();
        bad[i] ^= 0x01;
        assert!(k.open(&bad, b"aad").is_err(), "byte {i}");
    }
    assert!(k.open(&sealed[..5], b"aad").is_err());
}

#[test]
fn different_master_key_fails() {
    let sealed = key(1).seal(b"secret", b"aad").unwrap();
    assert!(key(2).open(&sealed, b"aad").is_err());
}

#[test]
fn derive_key_depends_on_info_and_master() {
    let a = key(1).derive_key(b"client-secret").unwrap();
    assert_ne!(a, key(1).derive_key(b"other").unwrap());
    assert_ne!(a, key(2).derive_key(b"client-secret").unwrap());
    assert_eq!(a, key(1).derive_key(b"client-secret").unwrap());
}

#[test]
fn file_created_with_0600_and_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys").join("master.key");
    let created = MasterKey::load(None, &path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let loaded = MasterKey::load(None, &path).unwrap();
    let sealed = created.seal(b"x", b"").unwrap();
    assert_eq!(loaded.open(&sealed, b"").unwrap(), b"x");
}

#[test]
fn file_with_0644_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    std::fs::write(&path, STANDARD.encode([3u8; 32])).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = MasterKey::load(None, &path).unwrap_err().to_string();
    assert!(
        err.contains("has permissions 0644; run: chmod 600"),
        "{err}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(MasterKey::load(None, &path).is_ok());
}

#[test]
fn env_value_of_wrong_length_refused() {
    let path = Path::new("/nonexistent/never-created/master.key");
    let err = MasterKey::load(Some(&STANDARD.encode([1u8; 16])), path)
        .unwrap_err()
        .to_string();
    assert!(err.contains(MASTER_KEY_ENV), "{err}");
    assert!(err.contains("16 bytes"), "{err}");
    assert!(MasterKey::load(Some("!!not base64!!"), path).is_err());
    assert!(!path.exists());
}

#[test]
fn env_value_accepts_both_alphabets_with_or_without_padding() {
    let path = Path::new("/nonexistent/master.key");
    let raw = [0xfbu8; 32]; // encodes with '+' / '-' and '/' / '_'
    let reference = MasterKey::from_bytes(raw).seal(b"x", b"").unwrap();
    for engine in [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        let k = MasterKey::load(Some(&engine.encode(raw)), path).unwrap();
        assert_eq!(k.open(&reference, b"").unwrap(), b"x");
    }
}

#[test]
fn env_value_wins_over_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let from_file = MasterKey::load(None, &path).unwrap();
    let from_env = MasterKey::load(Some(&STANDARD.encode([9u8; 32])), &path).unwrap();
    let sealed = key(9).seal(b"x", b"").unwrap();
    assert_eq!(from_env.open(&sealed, b"").unwrap(), b"x");
    assert!(from_file.open(&sealed, b"").is_err());
}

#[test]
fn debug_is_redacted() {
    assert_eq!(format!("{:?}", key(1)), "MasterKey([redacted])");
}
