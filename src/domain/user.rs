use std::fmt;

use super::ParseError;
use crate::clock::UnixTime;

/// A user's stable identifier; the `sub` claim (OIDC Core §2: never reassigned).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(String);

impl UserId {
    /// A new random id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }
    /// Wraps a stored id.
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }
    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A login name: 1-64 characters of `a-z 0-9 . _ @ -`, stored lower-case so that
/// `Alice` and `alice` are one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// Parses and lower-cases a username.
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        let v = value.trim().to_ascii_lowercase();
        let ok = !v.is_empty()
            && v.len() <= 64
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b));
        if ok {
            Ok(Self(v))
        } else {
            Err(ParseError::new(
                "username",
                "must be 1-64 characters of a-z, 0-9, '.', '_', '@', '-'",
            ))
        }
    }
    /// The normalised name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An e-mail address: a pragmatic check (one `@`, a dotted domain, no spaces, at most 254
/// bytes), lower-cased domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Parses an address.
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        let v = value.trim();
        let bad = || ParseError::new("email", format!("{v:?} is not an e-mail address"));
        // RFC 5322 specials are refused too: a mailer reads `x<bob@example.com>` or
        // `bob@example.com(x)` as another mailbox than the string that is stored.
        let special = |c: char| c.is_whitespace() || c.is_control() || "\"(),:;<>[\\]".contains(c);
        if v.len() > 254 || v.chars().any(special) {
            return Err(bad());
        }
        let (local, domain) = v.rsplit_once('@').ok_or_else(bad)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && domain.split('.').all(|l| !l.is_empty());
        if local.is_empty() || local.contains('@') || !domain_ok {
            return Err(bad());
        }
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }
    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A role name: 1-64 characters of `a-z 0-9 _ - : .`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Role(String);

impl Role {
    /// Parses a role name.
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        let ok = !value.is_empty()
            && value.len() <= 64
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-:.".contains(&b));
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(ParseError::new(
                "role",
                "must be 1-64 characters of a-z, 0-9, '_', '-', ':', '.'",
            ))
        }
    }
    /// The role name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable id, the `sub` claim.
    pub id: UserId,
    /// Login name.
    pub username: Username,
    /// E-mail address.
    pub email: Email,
    /// Whether the address was verified.
    pub email_verified: bool,
    /// argon2id PHC string; `None` when the user has no password.
    pub password_hash: Option<String>,
    /// Disabled users cannot log in and their sessions and tokens stop working.
    pub disabled: bool,
    /// Roles, for the `roles` claim.
    pub roles: Vec<Role>,
    /// Creation time.
    pub created_at: UnixTime,
    /// Last change.
    pub updated_at: UnixTime,
    /// When the password last changed or the account was last disabled (unix seconds, for
    /// information: what decides is `credentials_epoch`).
    pub credentials_changed_at: UnixTime,
    /// Bumped by the same `UPDATE` that changes the password or disables the account.
    /// Sessions, codes and grants record the epoch they were authenticated under.
    pub credentials_epoch: CredentialsEpoch,
    /// An MFA recovery took effect and the user has not enrolled a second factor since:
    /// no client may be signed in to until they do. Set and cleared by its own
    /// statements; carried here so that the session read brings it along.
    pub must_enrol_factor: bool,
}

/// A count of a user's credential changes. Unlike a timestamp it orders a login and a
/// password change that happen within the same second (or millisecond): a login that read
/// the user before the change carries the old epoch, whenever it finishes.
pub type CredentialsEpoch = i64;

impl User {
    /// True when an authentication made under `epoch` (read together with the password
    /// hash it verified) still stands: the account is enabled and its credentials have not
    /// changed since.
    pub fn accepts_auth_under(&self, epoch: CredentialsEpoch) -> bool {
        !self.disabled && epoch == self.credentials_epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_authentication_stands_only_under_the_current_epoch_of_an_enabled_user() {
        let mut u = User {
            id: UserId::from_stored("u-1".into()),
            username: Username::parse("alice").unwrap(),
            email: Email::parse("alice@example.com").unwrap(),
            email_verified: false,
            password_hash: None,
            disabled: false,
            roles: Vec::new(),
            created_at: 5,
            updated_at: 5,
            credentials_changed_at: 5,
            credentials_epoch: 2,
            must_enrol_factor: false,
        };
        assert!(u.accepts_auth_under(2));
        assert!(!u.accepts_auth_under(1), "made before the change");
        assert!(!u.accepts_auth_under(3), "an epoch the user never had");
        u.disabled = true;
        assert!(!u.accepts_auth_under(2));
    }

    #[test]
    fn usernames() {
        assert_eq!(
            Username::parse(" Alice ").map(|u| u.0),
            Ok("alice".to_owned())
        );
        assert!(Username::parse("").is_err());
        assert!(Username::parse("al ice").is_err());
        assert!(Username::parse("<script>").is_err());
    }

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse("Bob@Example.COM").map(|e| e.0),
            Ok("Bob@example.com".to_owned())
        );
        for bad in [
            "bob",
            "bob@",
            "@x.io",
            "bob@localhost",
            "a b@x.io",
            "bob@x..io",
            "x<bob@x.io>",
            "bob@x.io(x)",
            "a,b@x.io",
            "\"b\"@x.io",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn roles() {
        assert!(Role::parse("admin").is_ok());
        assert!(Role::parse("Admin").is_err());
    }
}
