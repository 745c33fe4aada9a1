//! Request parameters, already decoded from a query string or a form body.

use std::collections::BTreeMap;
use std::fmt;

use super::OAuthError;

/// The most parameters one request may carry.
pub const MAX_PARAMS: usize = 64;
/// The longest parameter name or value, in bytes.
pub const MAX_VALUE_BYTES: usize = 4096;

/// The parameters of one request, each given at most once, with empty values dropped.
/// `Debug` prints the names only: values may be secrets, codes or tokens.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// Builds the parameter set from decoded `(name, value)` pairs.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Result<Params, OAuthError> {
        check_count(&pairs)?;
        let mut map = BTreeMap::new();
        let mut seen = std::collections::BTreeSet::new();
        for (name, value) in pairs {
            check_length(&name, &value)?;
            check_once(&mut seen, &name)?;
            // RFC 6749 §3.1: "Parameters sent without a value MUST be treated as if they
            // were omitted from the request."
            if !value.is_empty() {
                map.insert(name, value);
            }
        }
        Ok(Params(map))
    }

    /// The value of `name`, if present and non-empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// True when `name` is present with a non-empty value.
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Every `(name, value)` pair, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Bounds the number of parameters, so one request cannot make the server do unbounded work.
fn check_count(pairs: &[(String, String)]) -> Result<(), OAuthError> {
    if pairs.len() > MAX_PARAMS {
        return Err(OAuthError::invalid_request("too many parameters"));
    }
    Ok(())
}

/// Bounds the length of each name and value.
fn check_length(name: &str, value: &str) -> Result<(), OAuthError> {
    if name.len() > MAX_VALUE_BYTES || value.len() > MAX_VALUE_BYTES {
        return Err(OAuthError::invalid_request("parameter too long"));
    }
    Ok(())
}

/// RFC 6749 §3.1, §3.2: "Request and response parameters MUST NOT be included more than
/// once." A repeat is refused even when one of the copies is empty.
fn check_once(seen: &mut std::collections::BTreeSet<String>, name: &str) -> Result<(), OAuthError> {
    if !seen.insert(name.to_owned()) {
        return Err(OAuthError::invalid_request(format!(
            "parameter {name:?} given more than once"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::ErrorCode;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn reads_values() {
        let p = Params::from_pairs(pairs(&[("a", "1"), ("b", "2")])).unwrap();
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), Some("2"));
        assert_eq!(p.get("c"), None);
    }

    #[test]
    fn rejects_repeated_parameter() {
        let e = Params::from_pairs(pairs(&[("scope", "a"), ("scope", "b")])).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn rejects_repeat_even_when_one_is_empty() {
        assert!(Params::from_pairs(pairs(&[("state", ""), ("state", "x")])).is_err());
    }

    #[test]
    fn empty_value_is_absent() {
        let p = Params::from_pairs(pairs(&[("state", "")])).unwrap();
        assert_eq!(p.get("state"), None);
        assert!(!p.contains("state"));
    }

    #[test]
    fn bounds_count() {
        let many: Vec<(String, String)> = (0..=MAX_PARAMS)
            .map(|i| (format!("p{i}"), "v".to_owned()))
            .collect();
        assert_eq!(
            Params::from_pairs(many).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        let ok: Vec<(String, String)> = (0..MAX_PARAMS)
            .map(|i| (format!("p{i}"), "v".to_owned()))
            .collect();
        assert!(Params::from_pairs(ok).is_ok());
    }

    #[test]
    fn bounds_value_length() {
        let long = "x".repeat(MAX_VALUE_BYTES + 1);
        assert!(Params::from_pairs(pairs(&[("state", &long)])).is_err());
        assert!(Params::from_pairs(pairs(&[(&long, "v")])).is_err());
        let max = "x".repeat(MAX_VALUE_BYTES);
        assert!(Params::from_pairs(pairs(&[("state", &max)])).is_ok());
    }

    #[test]
    fn debug_hides_values() {
        let p = Params::from_pairs(pairs(&[("client_secret", "hunter2")])).unwrap();
        let shown = format!("{p:?}");
        assert!(shown.contains("client_secret"));
        assert!(!shown.contains("hunter2"));
    }
}
