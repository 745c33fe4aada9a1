//! The known-device cookie: set at every successful sign-in, it proves that this browser
//! signed in to this account before, so an attacker's failures from elsewhere never slow
//! it down. Its value is `{device id}.{HMAC(account|device id)}` under a key derived from
//! the master key: it cannot be forged, and it is worth nothing for another account.

use crate::crypto::kek::MasterKey;
use crate::crypto::{random_token, CryptoError, SecretHasher};

use super::throttle::account_key;

/// Issues and recognises known-device cookies.
#[derive(Debug)]
pub struct KnownDevices {
    hasher: SecretHasher,
}

impl KnownDevices {
    /// With a key derived from the master key.
    pub fn new(master: &MasterKey) -> Result<Self, CryptoError> {
        Ok(Self {
            hasher: SecretHasher::for_purpose(master, b"known-device")?,
        })
    }

    fn signed(&self, username: &str, device: &str) -> String {
        let tag = self
            .hasher
            .tag(&format!("{}|{device}", account_key(username)));
        format!("{device}.{tag}")
    }

    /// The device id `cookie` proves for `username`, if it does.
    pub fn recognise(&self, username: &str, cookie: Option<&str>) -> Option<String> {
        let (device, tag) = cookie?.split_once('.')?;
        let well_formed = device.len() == 43
            && device
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let ok = well_formed
            && self
                .hasher
                .verify_tag(&format!("{}|{device}", account_key(username)), tag);
        ok.then(|| device.to_owned())
    }

    /// The cookie to set after `username` signed in: the same device id when the browser
    /// already had one for this account, a new one otherwise.
    pub fn issue(&self, username: &str, cookie: Option<&str>) -> Result<String, CryptoError> {
        let device = match self.recognise(username, cookie) {
            Some(d) => d,
            None => random_token()?,
        };
        Ok(self.signed(username, &device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devices(seed: u8) -> KnownDevices {
        KnownDevices::new(&MasterKey::from_bytes([seed; 32])).unwrap()
    }

    #[test]
    fn a_cookie_is_recognised_for_its_account_only() {
        let d = devices(1);
        let cookie = d.issue("Alice", None).unwrap();
        let id = d.recognise("alice", Some(&cookie)).unwrap();
        assert_eq!(d.issue("alice", Some(&cookie)).unwrap(), cookie, "kept");
        assert_eq!(id.len(), 43);
        assert_eq!(d.recognise("bob", Some(&cookie)), None);
        assert_eq!(devices(2).recognise("alice", Some(&cookie)), None);
    }

    #[test]
    fn forged_and_malformed_cookies_are_not_recognised() {
        let d = devices(1);
        let cookie = d.issue("alice", None).unwrap();
        let (id, tag) = cookie.split_once('.').unwrap();
        let other_id = random_token().unwrap();
        for bad in [
            String::new(),
            "nodot".to_owned(),
            format!("{other_id}.{tag}"),
            format!("{id}.{}", "A".repeat(43)),
            format!("{id}x.{tag}"),
            format!("{id}.{tag}.extra"),
        ] {
            assert_eq!(d.recognise("alice", Some(&bad)), None, "{bad}");
        }
        assert_eq!(d.recognise("alice", None), None);
    }
}
