//! The `[mail]`, `[accounts]` and `[registration]` sections: how mail leaves the server,
//! and how long the links it carries stay valid.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

/// How messages leave the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransportKind {
    /// Each message is written as an `.eml` file into `mail.dir` (the default: a fresh
    /// `serve` needs nothing installed, and a developer can open the mails).
    File,
    /// SMTP to `mail.smtp_host`.
    Smtp,
}

/// TLS on the SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text (a relay on localhost only).
    None,
    /// Plain connect, then STARTTLS, which must succeed (RFC 3207).
    Starttls,
    /// TLS from the first byte (RFC 8314 "implicit TLS", usually port 465).
    Tls,
}

/// Outgoing mail.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailSettings {
    /// `file` (default) or `smtp`.
    pub transport: MailTransportKind,
    /// Folder for the `file` transport.
    pub dir: PathBuf,
    /// The sender, e.g. `Latchkey <login@example.com>`.
    pub from: String,
    /// SMTP server host name.
    pub smtp_host: String,
    /// SMTP port; 0 picks the usual one for `smtp_tls` (25, 587, 465).
    pub smtp_port: u16,
    /// `none`, `starttls` (default) or `tls`.
    pub smtp_tls: SmtpTls,
    /// SMTP user name, if the server wants credentials.
    pub smtp_username: Option<String>,
    /// SMTP password (never logged).
    pub smtp_password: Option<String>,
    /// Seconds for one SMTP conversation before it counts as failed.
    pub smtp_timeout_secs: u64,
    /// How often the outbox worker looks for due messages, in seconds.
    pub poll_interval_secs: u64,
    /// A message is given up (and listed by `latchkey mail list --failed`) after this many
    /// failed attempts.
    pub max_attempts: u32,
    /// The first retry waits this long; each later one twice as long, up to an hour.
    pub retry_base_secs: u64,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            transport: MailTransportKind::File,
            dir: PathBuf::from("data/mail"),
            from: "Latchkey <latchkey@localhost>".into(),
            smtp_host: "localhost".into(),
            smtp_port: 0,
            smtp_tls: SmtpTls::Starttls,
            smtp_username: None,
            smtp_password: None,
            smtp_timeout_secs: 30,
            poll_interval_secs: 2,
            max_attempts: 12,
            retry_base_secs: 30,
        }
    }
}

impl MailSettings {
    /// The configured port, or the usual one for the TLS mode.
    pub fn port(&self) -> u16 {
        match (self.smtp_port, self.smtp_tls) {
            (0, SmtpTls::None) => 25,
            (0, SmtpTls::Starttls) => 587,
            (0, SmtpTls::Tls) => 465,
            (p, _) => p,
        }
    }
}

impl fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailSettings")
            .field("transport", &self.transport)
            .field("dir", &self.dir)
            .field("from", &self.from)
            .field("smtp_host", &self.smtp_host)
            .field("smtp_port", &self.smtp_port)
            .field("smtp_tls", &self.smtp_tls)
            .field("smtp_username", &self.smtp_username)
            .field(
                "smtp_password",
                &self.smtp_password.as_ref().map(|_| "[redacted]"),
            )
            .field("smtp_timeout_secs", &self.smtp_timeout_secs)
            .field("poll_interval_secs", &self.poll_interval_secs)
            .field("max_attempts", &self.max_attempts)
            .field("retry_base_secs", &self.retry_base_secs)
            .finish()
    }
}

/// Self-service account recovery and the links mailed for it.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountSettings {
    /// A password-reset link is valid this long (seconds).
    pub reset_link_secs: u64,
    /// An invitation link is valid this long (seconds).
    pub invitation_link_secs: u64,
    /// An e-mail confirmation link is valid this long (seconds).
    pub email_link_secs: u64,
    /// MFA recovery takes effect this long after it is confirmed (seconds).
    pub mfa_recovery_wait_secs: u64,
    /// The reminder mail goes out this long before the recovery takes effect (seconds).
    pub mfa_recovery_reminder_secs: u64,
}

impl Default for AccountSettings {
    fn default() -> Self {
        Self {
            reset_link_secs: 3_600,
            invitation_link_secs: 72 * 3_600,
            email_link_secs: 24 * 3_600,
            mfa_recovery_wait_secs: 24 * 3_600,
            mfa_recovery_reminder_secs: 3 * 3_600,
        }
    }
}

/// Self-registration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrationSettings {
    /// Anyone may create an account (confirmed by e-mail). Off by default.
    pub enabled: bool,
}
