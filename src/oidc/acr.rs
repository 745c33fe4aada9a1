//! Authentication context: the `acr` values Latchkey defines, the `amr` values (RFC 8176)
//! that factors map to, and what an authorization request's `acr_values` demands
//! (OIDC Core §3.1.2.1, §2).
//!
//! Three levels are defined (see `docs/authentication.md`):
//! - [`ACR_PASSWORD`]: the user presented a password.
//! - [`ACR_MFA`]: multi-factor: a password and a second factor (TOTP, a backup code or a
//!   passkey), or a passkey alone (possession plus user verification).
//! - [`ACR_PHISHING_RESISTANT`]: a passkey was used: origin-bound, so a phishing site cannot
//!   relay it.

use serde::{Deserialize, Serialize};

use crate::domain::{FactorKind, FactorUse};

/// `acr` of a single-factor (password) sign-in.
pub const ACR_PASSWORD: &str = "urn:latchkey:acr:password";
/// `acr` of a multi-factor sign-in.
pub const ACR_MFA: &str = "urn:latchkey:acr:mfa";
/// `acr` of a sign-in that used a passkey.
pub const ACR_PHISHING_RESISTANT: &str = "urn:latchkey:acr:phishing-resistant";
/// Advertised as `acr_values_supported` (OIDC Discovery §3), weakest first.
pub const ACR_VALUES_SUPPORTED: [&str; 3] = [ACR_PASSWORD, ACR_MFA, ACR_PHISHING_RESISTANT];

/// Longest accepted `acr_values`, in bytes.
pub const MAX_ACR_VALUES_BYTES: usize = 512;

/// How strongly a user authenticated, weakest first.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum AcrLevel {
    /// A password (or nothing asked).
    #[default]
    Password,
    /// A password and a second factor, or a passkey.
    Mfa,
    /// A passkey.
    PhishingResistant,
}

impl AcrLevel {
    /// The `acr` value of this level.
    pub fn as_acr(self) -> &'static str {
        match self {
            Self::Password => ACR_PASSWORD,
            Self::Mfa => ACR_MFA,
            Self::PhishingResistant => ACR_PHISHING_RESISTANT,
        }
    }

    fn from_acr(value: &str) -> Option<Self> {
        match value {
            ACR_PASSWORD => Some(Self::Password),
            ACR_MFA => Some(Self::Mfa),
            ACR_PHISHING_RESISTANT => Some(Self::PhishingResistant),
            _ => None,
        }
    }
}

/// The level the factors reach: phishing-resistant with a passkey (which is multi-factor
/// on its own: possession plus user verification, WebAuthn L3 §6.2.3); multi-factor when a
/// second factor accompanies another factor.
pub fn level_of(factors: &[FactorUse]) -> AcrLevel {
    if factors.iter().any(|f| f.kind == FactorKind::Passkey) {
        return AcrLevel::PhishingResistant;
    }
    let second = factors.iter().any(|f| f.kind.is_second_factor());
    let first = factors.iter().any(|f| !f.kind.is_second_factor());
    if first && second {
        AcrLevel::Mfa
    } else {
        AcrLevel::Password
    }
}

/// The `amr` values (RFC 8176 §2) for the factors: `pwd` for a password, `otp` for a TOTP
/// code, and `mfa` whenever more than one factor was used. A backup code is a one-time
/// secret but not an RFC 4226/6238 OTP, so it contributes only to `mfa`.
pub fn amr_of(factors: &[FactorUse]) -> Vec<String> {
    let mut amr: Vec<String> = Vec::new();
    let mut push = |v: &str| {
        if !amr.iter().any(|a| a == v) {
            amr.push(v.to_owned());
        }
    };
    for f in factors {
        match f.kind {
            FactorKind::Password => push("pwd"),
            FactorKind::Totp => push("otp"),
            FactorKind::BackupCode => {}
            // RFC 8176 §2 `hwk`: proof of possession of a hardware-secured key.
            FactorKind::Passkey => push("hwk"),
        }
    }
    if level_of(factors) >= AcrLevel::Mfa {
        push("mfa");
    }
    amr
}

/// The `acr` an ID token carries, from the `amr` stored with the code or grant.
pub fn acr_of_amr(amr: &[String]) -> &'static str {
    if amr.iter().any(|a| a == "hwk") {
        ACR_PHISHING_RESISTANT
    } else if amr.iter().any(|a| a == "mfa") {
        ACR_MFA
    } else {
        ACR_PASSWORD
    }
}

/// The level an authorization request demands. `acr_values` lists the acceptable values
/// in order of preference (OIDC Core §3.1.2.1), so the weakest one we know is enough;
/// unknown values are ignored (the parameter is a voluntary request, §5.5.1.1). A client
/// registered with `require_mfa` always demands multi-factor.
pub fn required_level(acr_values: &[String], client_requires_mfa: bool) -> AcrLevel {
    let requested = acr_values
        .iter()
        .filter_map(|v| AcrLevel::from_acr(v))
        .min()
        .unwrap_or_default();
    if client_requires_mfa {
        requested.max(AcrLevel::Mfa)
    } else {
        requested
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uses(kinds: &[FactorKind]) -> Vec<FactorUse> {
        kinds
            .iter()
            .map(|&kind| FactorUse { kind, at: 1 })
            .collect()
    }

    #[test]
    fn password_alone_is_single_factor() {
        let f = uses(&[FactorKind::Password]);
        assert_eq!(level_of(&f), AcrLevel::Password);
        assert_eq!(amr_of(&f), ["pwd"]);
        assert_eq!(acr_of_amr(&amr_of(&f)), ACR_PASSWORD);
    }

    #[test]
    fn password_and_totp_is_mfa() {
        let f = uses(&[FactorKind::Password, FactorKind::Totp]);
        assert_eq!(level_of(&f), AcrLevel::Mfa);
        assert_eq!(amr_of(&f), ["pwd", "otp", "mfa"]);
        assert_eq!(acr_of_amr(&amr_of(&f)), ACR_MFA);
    }

    #[test]
    fn a_backup_code_counts_as_a_second_factor_but_not_as_otp() {
        let f = uses(&[FactorKind::Password, FactorKind::BackupCode]);
        assert_eq!(level_of(&f), AcrLevel::Mfa);
        assert_eq!(amr_of(&f), ["pwd", "mfa"]);
    }

    #[test]
    fn a_second_factor_alone_is_not_mfa() {
        assert_eq!(level_of(&uses(&[FactorKind::Totp])), AcrLevel::Password);
        assert_eq!(amr_of(&uses(&[FactorKind::Totp])), ["otp"]);
    }

    #[test]
    fn a_passkey_alone_is_phishing_resistant_multi_factor() {
        let f = uses(&[FactorKind::Passkey]);
        assert_eq!(level_of(&f), AcrLevel::PhishingResistant);
        assert_eq!(amr_of(&f), ["hwk", "mfa"]);
        assert_eq!(acr_of_amr(&amr_of(&f)), ACR_PHISHING_RESISTANT);
        let f = uses(&[FactorKind::Password, FactorKind::Passkey]);
        assert_eq!(amr_of(&f), ["pwd", "hwk", "mfa"]);
        assert_eq!(level_of(&f), AcrLevel::PhishingResistant);
        let v = vec![ACR_PHISHING_RESISTANT.to_owned()];
        assert_eq!(required_level(&v, true), AcrLevel::PhishingResistant);
    }

    #[test]
    fn repeated_factors_appear_once() {
        let f = uses(&[FactorKind::Password, FactorKind::Password]);
        assert_eq!(amr_of(&f), ["pwd"]);
    }

    #[test]
    fn acr_values_ask_for_the_weakest_known_value() {
        let v = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(required_level(&v(&[ACR_MFA]), false), AcrLevel::Mfa);
        assert_eq!(
            required_level(&v(&[ACR_MFA, ACR_PASSWORD]), false),
            AcrLevel::Password
        );
        assert_eq!(
            required_level(&v(&["urn:other", ACR_MFA]), false),
            AcrLevel::Mfa
        );
        assert_eq!(
            required_level(&v(&["urn:other"]), false),
            AcrLevel::Password
        );
        assert_eq!(required_level(&[], false), AcrLevel::Password);
        assert_eq!(required_level(&[], true), AcrLevel::Mfa);
        assert_eq!(required_level(&v(&[ACR_PASSWORD]), true), AcrLevel::Mfa);
    }
}
