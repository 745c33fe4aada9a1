use std::collections::BTreeSet;
use std::fmt;

use super::ParseError;

/// A set of scope tokens (RFC 6749 §3.3): space-delimited, case-sensitive, order-free.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope(BTreeSet<String>);

impl Scope {
    /// Parses a space-delimited scope string. Each token is 1*( %x21 / %x23-5B / %x5D-7E ).
    /// Empty input gives the empty set.
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        let mut set = BTreeSet::new();
        for token in value.split(' ').filter(|t| !t.is_empty()) {
            if token.len() > 128 || !token.bytes().all(is_scope_char) {
                return Err(ParseError::new(
                    "scope",
                    format!("invalid scope token {token:?}"),
                ));
            }
            set.insert(token.to_owned());
        }
        if set.len() > 64 {
            return Err(ParseError::new("scope", "too many scope tokens"));
        }
        Ok(Self(set))
    }

    /// True when `token` is in the set.
    pub fn contains(&self, token: &str) -> bool {
        self.0.contains(token)
    }

    /// True when every token of `self` is also in `other`.
    pub fn is_subset_of(&self, other: &Scope) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The tokens present in both.
    pub fn intersection(&self, other: &Scope) -> Scope {
        Scope(self.0.intersection(&other.0).cloned().collect())
    }

    /// True for the empty set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The tokens in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

fn is_scope_char(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let joined: Vec<&str> = self.iter().collect();
        f.write_str(&joined.join(" "))
    }
}

impl FromIterator<String> for Scope {
    fn from_iter<I: IntoIterator<Item = String>>(iter: I) -> Self {
        Scope(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let s = Scope::parse("openid  profile openid").map_err(|e| e.to_string());
        assert_eq!(s.map(|s| s.to_string()), Ok("openid profile".to_owned()));
    }

    #[test]
    fn rejects_bad_tokens() {
        assert!(Scope::parse("open\"id").is_err());
        assert!(Scope::parse("a\\b").is_err());
        assert!(Scope::parse("caf\u{e9}").is_err());
    }

    #[test]
    fn subset() {
        let (a, b) = (Scope::parse("openid"), Scope::parse("openid email"));
        let (Ok(a), Ok(b)) = (a, b) else {
            unreachable!()
        };
        assert!(a.is_subset_of(&b));
        assert!(!b.is_subset_of(&a));
    }
}
