//! The known-device cookie: set at every successful sign-in, it proves that this browser
//! signed in to this account before, so an attacker's failures from elsewhere never slow
//! it down.
//!
//! Its value is `{device id}.{issued at}.{tag}`, where the tag is an HMAC, under a key
//! derived from the master key, of the device id, the issue time, the user's id and their
//! credentials epoch (bumped by every password change or disabling). So it cannot be forged,
//! it is worth nothing for another account (or a re-created one with the same name), it dies
//! with a password change (even one in the same second as the sign-in that issued it), and
//! it expires after `login.known_device_days` whatever the browser keeps.

use crate::clock::UnixTime;
use crate::crypto::kek::MasterKey;
use crate::crypto::{random_token, CryptoError, SecretHasher};
use crate::domain::User;

/// Issues and recognises known-device cookies.
#[derive(Debug)]
pub struct KnownDevices {
    hasher: SecretHasher,
    max_age: i64,
}

impl KnownDevices {
    /// With a key derived from the master key; cookies are honoured for `max_age_days`.
    pub fn new(master: &MasterKey, max_age_days: u64) -> Result<Self, CryptoError> {
        Ok(Self {
            hasher: SecretHasher::for_purpose(master, b"known-device")?,
            max_age: i64::try_from(max_age_days.saturating_mul(86_400)).unwrap_or(i64::MAX / 4),
        })
    }

    fn data(user: &User, device: &str, issued_at: UnixTime) -> String {
        format!(
            "{}|e{}|{device}|{issued_at}",
            user.id.as_str(),
            user.credentials_epoch
        )
    }

    /// The device id `cookie` proves for `user` at `now`, if it does.
    pub fn recognise(&self, user: &User, cookie: Option<&str>, now: UnixTime) -> Option<String> {
        let mut parts = cookie?.split('.');
        let (device, issued, tag) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || device.len() != 43 {
            return None;
        }
        let issued_at: UnixTime = issued.parse().ok()?;
        let fresh = issued_at <= now && now - issued_at < self.max_age;
        let ok = fresh
            && device
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && self
                .hasher
                .verify_tag(&Self::data(user, device, issued_at), tag);
        ok.then(|| device.to_owned())
    }

    /// The cookie to set after `user` signed in: the same device id when the browser
    /// already proved one for this account, a new one otherwise; issued now.
    pub fn issue(
        &self,
        user: &User,
        cookie: Option<&str>,
        now: UnixTime,
    ) -> Result<String, CryptoError> {
        let device = match self.recognise(user, cookie, now) {
            Some(d) => d,
            None => random_token()?,
        };
        let tag = self.hasher.tag(&Self::data(user, &device, now));
        Ok(format!("{device}.{now}.{tag}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Email, UserId, Username};

    const NOW: UnixTime = 1_000_000;

    fn devices(seed: u8) -> KnownDevices {
        KnownDevices::new(&MasterKey::from_bytes([seed; 32]), 30).unwrap()
    }

    fn user(id: &str, name: &str) -> User {
        User {
            id: UserId::from_stored(id.into()),
            username: Username::parse(name).unwrap(),
            email: Email::parse(&format!("{name}@example.com")).unwrap(),
            email_verified: false,
            password_hash: None,
            disabled: false,
            roles: Vec::new(),
            created_at: 0,
            updated_at: 0,
            credentials_changed_at: 0,
            credentials_epoch: 1,
            must_enrol_factor: false,
        }
    }

    #[test]
    fn a_cookie_is_recognised_for_its_account_only() {
        let d = devices(1);
        let alice = user("u-1", "alice");
        let cookie = d.issue(&alice, None, NOW).unwrap();
        let id = d.recognise(&alice, Some(&cookie), NOW + 5).unwrap();
        assert_eq!(id.len(), 43);
        let again = d.issue(&alice, Some(&cookie), NOW + 5).unwrap();
        assert!(again.starts_with(&id), "the same device keeps its id");
        assert_eq!(d.recognise(&user("u-2", "bob"), Some(&cookie), NOW), None);
        // A re-created account with the same name is another account.
        assert_eq!(d.recognise(&user("u-3", "alice"), Some(&cookie), NOW), None);
        assert_eq!(devices(2).recognise(&alice, Some(&cookie), NOW), None);
    }

    #[test]
    fn a_password_change_or_age_ends_it() {
        let d = devices(1);
        let mut alice = user("u-1", "alice");
        let cookie = d.issue(&alice, None, NOW).unwrap();
        assert!(d
            .recognise(&alice, Some(&cookie), NOW + 30 * 86_400 - 1)
            .is_some());
        assert_eq!(
            d.recognise(&alice, Some(&cookie), NOW + 30 * 86_400),
            None,
            "expired"
        );
        assert_eq!(
            d.recognise(&alice, Some(&cookie), NOW - 1),
            None,
            "from the future"
        );
        // A password change in the very second the cookie was issued: only the epoch moves.
        alice.credentials_epoch += 1;
        assert_eq!(
            d.recognise(&alice, Some(&cookie), NOW),
            None,
            "password changed"
        );
    }

    #[test]
    fn forged_and_malformed_cookies_are_not_recognised() {
        let d = devices(1);
        let alice = user("u-1", "alice");
        let cookie = d.issue(&alice, None, NOW).unwrap();
        let parts: Vec<&str> = cookie.split('.').collect();
        let (id, issued, tag) = (parts[0], parts[1], parts[2]);
        let other_id = random_token().unwrap();
        for bad in [
            String::new(),
            "nodot".to_owned(),
            format!("{other_id}.{issued}.{tag}"),
            format!("{id}.{}.{tag}", NOW + 1),
            format!("{id}.{issued}.{}", "A".repeat(43)),
            format!("{id}x.{issued}.{tag}"),
            format!("{id}.{issued}.{tag}.extra"),
            format!("{id}.-5.{tag}"),
        ] {
            assert_eq!(d.recognise(&alice, Some(&bad), NOW), None, "{bad}");
        }
        assert_eq!(d.recognise(&alice, None, NOW), None);
    }
}
