//! The key-encryption key (KEK): a 256-bit master key that seals private signing keys and
//! other secrets at rest, and from which sub-keys are derived.

use std::fmt;
use std::io::Write as _;
use std::path::Path;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use super::CryptoError;

/// The environment variable that may hold the master key.
pub const MASTER_KEY_ENV: &str = "LATCHKEY_MASTER_KEY";

/// Fixed HKDF salt for sub-key derivation (RFC 5869 §3.1: a non-secret, application-chosen
/// salt is fine when the input keying material is already uniformly random).
const HKDF_SALT: &[u8] = b"latchkey-kek-v1";

const KEY_LEN: usize = 32;

/// The 256-bit master key. Never printed; wiped from memory on drop.
pub struct MasterKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    /// Wraps raw key bytes (tests and tooling; servers use [`MasterKey::load`]).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self {
            bytes: Zeroizing::new(bytes),
        }
    }

    /// Loads the master key: from `env_value` (the value of `LATCHKEY_MASTER_KEY`) if set,
    /// else from the file at `path`, else creates that file (mode 0600) with a fresh key.
    /// The value is base64 (standard or URL-safe alphabet, padded or not) of 32 bytes.
    pub fn load(env_value: Option<&str>, path: &Path) -> Result<Self, CryptoError> {
        if let Some(value) = env_value {
            return decode_key(value)
                .map_err(|why| CryptoError::MasterKey(format!("{MASTER_KEY_ENV} {why}")));
        }
        match std::fs::metadata(path) {
            Ok(_) => Self::read_file(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create_file(path),
            Err(e) => Err(io_error(path, &e)),
        }
    }

    fn read_file(path: &Path) -> Result<Self, CryptoError> {
        check_permissions(path)?;
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| io_error(path, &e))?);
        decode_key(&text).map_err(|why| CryptoError::MasterKey(format!("{} {why}", path.display())))
    }

    fn create_file(path: &Path) -> Result<Self, CryptoError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .map_err(|_| CryptoError::Random)?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_private_dir(parent).map_err(|e| io_error(parent, &e))?;
        }
        let mut file = match open_new_private(path) {
            Ok(file) => file,
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Self::read_file(path)
            }
            Err(e) => return Err(io_error(path, &e)),
        };
        let encoded = Zeroizing::new(format!("{}\n", STANDARD.encode(bytes.as_ref())));
        file.write_all(encoded.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error(path, &e))?;
        Ok(Self { bytes })
    }

    /// Encrypts with AES-256-GCM under a fresh random 96-bit nonce; returns
    /// `nonce || ciphertext || tag`. `aad` binds the ciphertext to its context (for example
    /// the key id), so a sealed value cannot be moved to another row.
    ///
    /// Random nonces are safe for up to 2^32 messages per key (NIST SP 800-38D §8.3), far
    /// beyond the handful of keys and secrets sealed here.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| CryptoError::Random)?;
        let mut in_out = plaintext.to_vec();
        self.aead_key()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut in_out,
            )
            .map_err(|_| CryptoError::Encrypt)?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + in_out.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    /// Decrypts the output of [`MasterKey::seal`]; fails if the key, `aad` or any byte differs.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let (nonce, ciphertext) = sealed
            .split_at_checked(NONCE_LEN)
            .ok_or(CryptoError::Decrypt)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Decrypt)?;
        let mut in_out = ciphertext.to_vec();
        let plaintext_len = self
            .aead_key()?
            .open_in_place(nonce, Aad::from(aad), &mut in_out)
            .map_err(|_| CryptoError::Decrypt)?
            .len();
        in_out.truncate(plaintext_len);
        Ok(in_out)
    }

    /// Derives an independent 256-bit sub-key for the purpose named by `info`
    /// (HKDF-SHA256, RFC 5869, salt `latchkey-kek-v1`).
    pub fn derive_key(&self, info: &[u8]) -> Result<[u8; KEY_LEN], CryptoError> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(self.bytes.as_ref());
        let info = [info];
        let mut out = [0u8; KEY_LEN];
        // HKDF_SHA256 as the output length is 32 bytes, within RFC 5869 §2.3's 255*HashLen,
        // so these cannot fail; the errors are mapped rather than unwrapped all the same.
        prk.expand(&info, hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut out))
            .map_err(|_| CryptoError::Encoding("HKDF expand failed".to_owned()))?;
        Ok(out)
    }

    fn aead_key(&self) -> Result<LessSafeKey, CryptoError> {
        UnboundKey::new(&AES_256_GCM, self.bytes.as_ref())
            .map(LessSafeKey::new)
            .map_err(|_| CryptoError::KeyRejected("AES-256-GCM key".to_owned()))
    }
}

/// Decodes base64 (either alphabet, padding optional) of exactly 32 bytes.
fn decode_key(value: &str) -> Result<MasterKey, String> {
    let value = value.trim();
    let indifferent =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let engines = [
        GeneralPurpose::new(&alphabet::STANDARD, indifferent),
        GeneralPurpose::new(&alphabet::URL_SAFE, indifferent),
    ];
    let decoded = engines
        .iter()
        .find_map(|engine| engine.decode(value).ok())
        .map(Zeroizing::new)
        .ok_or_else(|| "is not valid base64".to_owned())?;
    let bytes: [u8; KEY_LEN] = decoded.as_slice().try_into().map_err(|_| {
        format!(
            "must be base64 of exactly {KEY_LEN} bytes, got {} bytes",
            decoded.len()
        )
    })?;
    Ok(MasterKey::from_bytes(bytes))
}

fn io_error(path: &Path, e: &std::io::Error) -> CryptoError {
    CryptoError::MasterKey(format!("{}: {e}", path.display()))
}

#[cfg(unix)]
fn check_permissions(path: &Path) -> Result<(), CryptoError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)
        .map_err(|e| io_error(path, &e))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        let shown = path.display();
        return Err(CryptoError::MasterKey(format!(
            "{shown} has permissions {mode:04o}; run: chmod 600 {shown}"
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path) -> Result<(), CryptoError> {
    Ok(())
}

#[cfg(unix)]
fn open_new_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_new_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(all(test, unix))]
mod tests;
