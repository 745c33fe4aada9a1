//! Time-based one-time passwords (RFC 6238) as second factor, with the parameters every
//! authenticator app assumes: HMAC-SHA-1, 6 digits, 30-second steps, one step of skew.
//! Pure: the only I/O is OS randomness for new secrets; time comes in as `now`.
//!
//! totp-rs computes the codes (RFC 4226 §5.3 dynamic truncation); this module decides
//! which codes are acceptable: the window, single use, input format and constant-time
//! comparison.

use std::fmt;

use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use totp_rs::{Algorithm, Builder, Totp};
use zeroize::Zeroizing;

/// Bytes in a new secret: 160 bits, the length RFC 4226 §4 recommends.
pub const SECRET_LEN: usize = 20;
/// Shortest secret accepted: RFC 4226 §4 requires at least 128 bits.
pub const MIN_SECRET_LEN: usize = 16;
/// Digits in a code (RFC 4226 §5.3; the apps' default).
pub const DIGITS: u8 = 6;
/// Length of a time step in seconds (RFC 6238 §4 "X", 30 s recommended in §5.2).
pub const STEP_SECONDS: i64 = 30;
/// Steps accepted either side of the current one: RFC 6238 §5.2 recommends "at most one
/// time step is allowed as the network delay".
pub const SKEW: u16 = 1;

/// Longest input `verify` looks at; anything longer cannot be a code.
const MAX_INPUT_LEN: usize = 64;

/// Why a TOTP secret, URI or QR code could not be produced.
///
/// No variant carries totp-rs's own error: some of those hold the otpauth URI, which
/// contains the secret, and errors end up in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// The secret is shorter than the 128 bits RFC 4226 §4 requires.
    #[error("a TOTP secret must be at least 128 bits (RFC 4226 §4)")]
    SecretTooShort,
    /// The account name is empty (after sanitising), so there is no otpauth label.
    #[error("the account name for the otpauth URI is empty")]
    EmptyAccountName,
    /// The otpauth URI is too long to be drawn as a QR code.
    #[error("the otpauth URI is too long for a QR code")]
    QrTooLarge,
    /// totp-rs refused the parameters for another reason.
    #[error("totp-rs refused the TOTP parameters")]
    Rejected,
}

impl From<totp_rs::TotpError> for TotpError {
    fn from(error: totp_rs::TotpError) -> Self {
        match error {
            totp_rs::TotpError::SecretTooShort { .. } => Self::SecretTooShort,
            totp_rs::TotpError::AccountNameNotSet => Self::EmptyAccountName,
            totp_rs::TotpError::UrlTooLong { .. } => Self::QrTooLarge,
            _ => Self::Rejected,
        }
    }
}

/// The shared secret of one TOTP enrolment; zeroed when dropped, never printed.
pub struct TotpSecret {
    bytes: Zeroizing<Vec<u8>>,
}

impl TotpSecret {
    /// A new 160-bit secret from the OS CSPRNG (RFC 4226 §4: "strong" random, 160 bits
    /// recommended).
    pub fn generate() -> Result<Self, TotpError> {
        let mut bytes = Zeroizing::new(vec![0u8; SECRET_LEN]);
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| TotpError::Random)?;
        Ok(Self { bytes })
    }

    /// A stored secret; refuses one shorter than 128 bits (RFC 4226 §4).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, TotpError> {
        let bytes = Zeroizing::new(bytes);
        if bytes.len() < MIN_SECRET_LEN {
            return Err(TotpError::SecretTooShort);
        }
        Ok(Self { bytes })
    }

    /// The raw secret, for encrypting at rest.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Unpadded RFC 4648 base32, the form users type into an authenticator app.
    pub fn to_base32(&self) -> String {
        totp_rs::Secret::from(self.as_bytes()).to_base32()
    }

    /// totp-rs's generator with the fixed parameters and no label.
    fn totp(&self) -> Result<Totp, TotpError> {
        Ok(builder(self).build()?)
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret([redacted])")
    }
}

/// Builder with the parameters the apps expect (SHA-1, 6 digits, 30 s, skew 1).
fn builder(secret: &TotpSecret) -> Builder {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_step_duration(STEP_SECONDS.unsigned_abs())
        .with_skew(SKEW)
        .with_secret(secret.as_bytes())
}

/// The time step containing `now`: RFC 6238 §4.2, T = floor((now - T0) / X) with T0 = 0,
/// floored for times before the epoch too.
pub fn step(now: i64) -> i64 {
    now.div_euclid(STEP_SECONDS)
}

/// The code an authenticator app shows at `now` (for the enrolment check and for tests);
/// `None` before the epoch or for a step too far away to compute.
pub fn code_at(secret: &TotpSecret, now: i64) -> Option<String> {
    let totp = secret.totp().ok()?;
    code_for_step(&totp, step(now)).map(|code| code.to_string())
}

/// The code of time step `step`, if that step is representable in totp-rs's `u64` time.
fn code_for_step(totp: &Totp, step: i64) -> Option<Zeroizing<String>> {
    let time = u64::try_from(step.checked_mul(STEP_SECONDS)?).ok()?;
    Some(Zeroizing::new(totp.generate(time).to_string()))
}

/// Checks `code` against the steps `step(now) - 1 ..= step(now) + 1` (RFC 6238 §5.2,
/// one step of network delay) and returns the step it matched, the highest if several do.
///
/// - Input: surrounding and inner whitespace are removed; what is left must be exactly
///   six ASCII digits (full-width digits and other characters are refused).
/// - Single use: only steps greater than `last_used_step` are eligible, so an accepted
///   code (or an earlier one) cannot be replayed: RFC 6238 §5.2, "the verifier MUST NOT
///   accept the second attempt of the OTP after the successful validation". The caller
///   stores the returned step as the new `last_used_step`.
/// - Every eligible candidate is compared in constant time, without early exit.
pub fn verify(secret: &TotpSecret, code: &str, now: i64, last_used_step: i64) -> Option<i64> {
    let code = normalize_code(code)?;
    let totp = secret.totp().ok()?;
    let current = step(now);
    let mut found = Choice::from(0);
    let mut accepted = 0_i64;
    let skew = i64::from(SKEW);
    for offset in -skew..=skew {
        let Some(candidate) = current.checked_add(offset) else {
            continue;
        };
        if candidate <= last_used_step {
            continue;
        }
        let Some(expected) = code_for_step(&totp, candidate) else {
            continue;
        };
        let matched = expected.as_bytes().ct_eq(code.as_bytes());
        // Ascending steps: a later match overwrites an earlier one.
        accepted = i64::conditional_select(&accepted, &candidate, matched);
        found |= matched;
    }
    bool::from(found).then_some(accepted)
}

/// What the user typed -> six ASCII digits, or `None`.
fn normalize_code(input: &str) -> Option<Zeroizing<String>> {
    if input.len() > MAX_INPUT_LEN {
        return None;
    }
    let code: Zeroizing<String> =
        Zeroizing::new(input.chars().filter(|c| !c.is_whitespace()).collect());
    let well_formed = code.len() == usize::from(DIGITS) && code.bytes().all(|b| b.is_ascii_digit());
    well_formed.then_some(code)
}

/// The Key Uri Format URI for enrolment,
/// `otpauth://totp/Issuer:account?secret=BASE32&issuer=Issuer`.
///
/// The format forbids ':' inside the issuer and the account name (it separates them in
/// the label), and totp-rs refuses it, so both are sanitised instead (see
/// [`sanitize_label`]): "Latchkey (127.0.0.1:8080)" appears as "Latchkey (127.0.0.1 8080)",
/// "https://id.example.com/" as "id.example.com". totp-rs then percent-encodes everything
/// but ASCII letters, digits and `-._~`, so no input can add a path segment or parameter.
/// Digits, period and algorithm are the format's defaults (6, 30, SHA1), so totp-rs leaves
/// them out; the QR code from [`qr_png_data_uri`] encodes this same URI.
pub fn otpauth_uri(secret: &TotpSecret, issuer: &str, account: &str) -> Result<String, TotpError> {
    Ok(labelled(secret, issuer, account)?.to_url()?)
}

/// The QR code of [`otpauth_uri`] as `data:image/png;base64,...`, drawn locally (the
/// secret never leaves the server for a QR service).
pub fn qr_png_data_uri(
    secret: &TotpSecret,
    issuer: &str,
    account: &str,
) -> Result<String, TotpError> {
    let png = labelled(secret, issuer, account)?.to_qr_png()?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(png);
    Ok(format!("data:image/png;base64,{encoded}"))
}

/// totp-rs's generator carrying the sanitised issuer and account name.
fn labelled(secret: &TotpSecret, issuer: &str, account: &str) -> Result<Totp, TotpError> {
    let account = sanitize_label(account);
    if account.is_empty() {
        return Err(TotpError::EmptyAccountName);
    }
    let issuer = Some(sanitize_label(issuer)).filter(|issuer| !issuer.is_empty());
    Ok(builder(secret)
        .with_account_name(account)
        .with_issuer(issuer)
        .build()?)
}

/// Makes `name` usable as half of an otpauth label: removes `http://` and `https://`
/// wherever they appear and trailing slashes, turns every ':' and control character into a
/// space, collapses runs of whitespace and trims. The result never contains ':'.
pub fn sanitize_label(name: &str) -> String {
    let without_schemes = remove_schemes(name);
    let spaced: String = without_schemes
        .trim_end_matches('/')
        .chars()
        .map(|c| if c == ':' || c.is_control() { ' ' } else { c })
        .collect();
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `name` without any `http://` or `https://` (ASCII case-insensitive).
fn remove_schemes(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while !rest.is_empty() {
        let skip = ["https://", "http://"].iter().find_map(|scheme| {
            let head = rest.get(..scheme.len())?;
            head.eq_ignore_ascii_case(scheme).then_some(scheme.len())
        });
        match skip {
            Some(len) => rest = &rest[len..],
            None => {
                let mut chars = rest.chars();
                if let Some(c) = chars.next() {
                    out.push(c);
                }
                rest = chars.as_str();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
