use std::fmt;

use super::ParseError;

/// A string that must never be printed: `Debug` and `Display` show `[redacted]`.
#[derive(Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself; call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A user's password, as typed. Bounded so hashing cannot be used to exhaust the server.
#[derive(Clone)]
pub struct Password(SecretString);

impl Password {
    /// Shortest accepted password (NIST SP 800-63B §3.1.1.2).
    pub const MIN_CHARS: usize = 8;
    /// Longest accepted password, in bytes.
    pub const MAX_BYTES: usize = 1024;

    /// Parses a new password: at least 8 characters, at most 1024 bytes.
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        if value.chars().count() < Self::MIN_CHARS {
            return Err(ParseError::new("password", "must be at least 8 characters"));
        }
        Self::parse_any(value)
    }

    /// Accepts any presented password for verification (no minimum), still bounded.
    pub fn parse_any(value: &str) -> Result<Self, ParseError> {
        if value.len() > Self::MAX_BYTES {
            return Err(ParseError::new("password", "must be at most 1024 bytes"));
        }
        Ok(Self(SecretString::new(value)))
    }

    /// The password itself; only for hashing.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = SecretString::new("hunter2hunter2");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        let p = Password::parse("hunter2hunter2").map_err(|e| e.to_string());
        assert!(!format!("{p:?}").contains("hunter2"));
    }

    #[test]
    fn password_bounds() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse(&"x".repeat(1025)).is_err());
        assert!(Password::parse_any("short").is_ok());
        assert!(Password::parse("long enough").is_ok());
    }
}
