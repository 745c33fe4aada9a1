//! Typed settings, loaded in layers: built-in defaults -> `config/latchkey.toml` (or
//! `--config FILE`) -> `LATCHKEY_<SECTION>__<KEY>` environment variables, plus the short
//! forms `LATCHKEY_ISSUER`, `LATCHKEY_LISTEN` and `LATCHKEY_DATABASE_URL`.
//! Every setting is documented in `docs/configuration.md`.

use std::net::SocketAddr;
use std::path::Path;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;

/// The default configuration file, read when it exists and no `--config` is given.
pub const DEFAULT_CONFIG_FILE: &str = "config/latchkey.toml";

/// A setting that is missing, malformed or unsafe. One line, naming the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The value does not satisfy the setting's rule.
    #[error("invalid setting `{setting}`: {reason}")]
    Invalid {
        /// Dotted name of the setting, as in the TOML file.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The file or environment could not be read or parsed.
    #[error("cannot load configuration: {0}")]
    Load(String),
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        reason: reason.into(),
    }
}

/// All settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The issuer identifier (OIDC Discovery §3): absolute URL, no query or fragment.
    pub issuer: String,
    /// Address the HTTP server binds to.
    pub listen: String,
    /// Allow an `http://` issuer on a non-loopback host. Never in production.
    pub insecure_http: bool,
    /// Storage.
    pub database: DatabaseSettings,
    /// Signing keys and their rotation.
    pub keys: KeySettings,
    /// Token lifetimes.
    pub tokens: TokenSettings,
    /// Browser sessions.
    pub sessions: SessionSettings,
    /// Password hashing.
    pub passwords: PasswordSettings,
    /// Logging.
    pub log: LogSettings,
    /// Background clean-up of expired records.
    pub housekeeping: HousekeepingSettings,
    /// The per-node client cache.
    pub clients: ClientSettings,
    /// Brute-force protection of the login form.
    pub login: LoginSettings,
    /// Trusted reverse proxies.
    pub proxy: ProxySettings,
    /// Passkeys (WebAuthn).
    pub webauthn: WebauthnSettings,
    /// Connection and request-body limits.
    pub server: ServerSettings,
    /// The audit trail's retention.
    pub audit: AuditSettings,
    /// Outgoing mail and its outbox.
    pub mail: MailSettings,
    /// Links mailed for recovery, invitations and e-mail confirmation.
    pub accounts: AccountSettings,
    /// Self-registration.
    pub registration: RegistrationSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            issuer: "http://localhost:8080".into(),
            listen: "127.0.0.1:8080".into(),
            insecure_http: false,
            database: DatabaseSettings::default(),
            keys: KeySettings::default(),
            tokens: TokenSettings::default(),
            sessions: SessionSettings::default(),
            passwords: PasswordSettings::default(),
            log: LogSettings::default(),
            housekeeping: HousekeepingSettings::default(),
            clients: ClientSettings::default(),
            login: LoginSettings::default(),
            proxy: ProxySettings::default(),
            webauthn: WebauthnSettings::default(),
            server: ServerSettings::default(),
            audit: AuditSettings::default(),
            mail: MailSettings::default(),
            accounts: AccountSettings::default(),
            registration: RegistrationSettings::default(),
        }
    }
}

/// The top-level settings that may be set as `LATCHKEY_<NAME>`.
const TOP_LEVEL_ENV: &[&str] = &["issuer", "listen", "insecure_http"];

impl Settings {
    /// Loads defaults, then the file (`path`, or `config/latchkey.toml` if it exists), then
    /// the environment, and validates the result.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(path, Env::prefixed("LATCHKEY_"), Env::raw())
    }

    fn load_from(path: Option<&Path>, prefixed: Env, raw: Env) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        match path {
            Some(p) if !p.is_file() => {
                return Err(ConfigError::Load(format!(
                    "config file {} not found",
                    p.display()
                )))
            }
            Some(p) => figment = figment.merge(Toml::file_exact(p)),
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
                figment = figment.merge(Toml::file_exact(DEFAULT_CONFIG_FILE))
            }
            None => {}
        }
        let sections = prefixed
            .clone()
            .filter(|k| {
                let k = k.as_str().to_ascii_lowercase();
                k.contains("__") || TOP_LEVEL_ENV.contains(&k.as_str())
            })
            .split("__");
        let short_db = raw
            .only(&["LATCHKEY_DATABASE_URL"])
            .map(|_| "database.url".into());
        let settings: Settings = figment
            .merge(sections)
            .merge(short_db)
            .extract()
            .map_err(|e| ConfigError::Load(first_line(&e)))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks every rule that the types alone do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_issuer()?;
        self.listen_addr()?;
        self.validate_database()?;
        self.validate_keys()?;
        self.validate_tokens()?;
        self.validate_sessions()?;
        self.validate_passwords()?;
        positive(
            "housekeeping.interval_secs",
            self.housekeeping.interval_secs,
        )?;
        if self.housekeeping.batch_size == 0 {
            return Err(invalid("housekeeping.batch_size", "must be greater than 0"));
        }
        self.validate_server_and_audit()?;
        self.validate_mail()?;
        self.validate_clients_and_login()
    }

    fn validate_mail(&self) -> Result<(), ConfigError> {
        let m = &self.mail;
        if m.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(invalid(
                "mail.from",
                "must be an address such as `Latchkey <login@example.com>`",
            ));
        }
        if m.transport == MailTransportKind::Smtp && m.smtp_host.trim().is_empty() {
            return Err(invalid("mail.smtp_host", "must name the SMTP server"));
        }
        if m.smtp_username.is_some() != m.smtp_password.is_some() {
            return Err(invalid(
                "mail.smtp_password",
                "smtp_username and smtp_password must be set together",
            ));
        }
        positive("mail.smtp_timeout_secs", m.smtp_timeout_secs)?;
        positive("mail.poll_interval_secs", m.poll_interval_secs)?;
        positive("mail.max_attempts", u64::from(m.max_attempts))?;
        positive("mail.retry_base_secs", m.retry_base_secs)?;
        let a = &self.accounts;
        positive("accounts.reset_link_secs", a.reset_link_secs)?;
        positive("accounts.invitation_link_secs", a.invitation_link_secs)?;
        positive("accounts.email_link_secs", a.email_link_secs)?;
        positive("accounts.mfa_recovery_wait_secs", a.mfa_recovery_wait_secs)?;
        if a.mfa_recovery_reminder_secs >= a.mfa_recovery_wait_secs {
            return Err(invalid(
                "accounts.mfa_recovery_reminder_secs",
                "must be less than accounts.mfa_recovery_wait_secs",
            ));
        }
        Ok(())
    }

    fn validate_server_and_audit(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if s.max_connections == 0 {
            return Err(invalid("server.max_connections", "must be greater than 0"));
        }
        if s.backlog == 0 {
            return Err(invalid("server.backlog", "must be greater than 0"));
        }
        positive("server.body_timeout_secs", s.body_timeout_secs)?;
        if s.body_timeout_secs > 300 {
            return Err(invalid("server.body_timeout_secs", "must be at most 300"));
        }
        positive(
            "audit.retention_days",
            self.audit.retention_days.saturating_mul(86_400),
        )
        .map_err(|_| invalid("audit.retention_days", "must be between 1 and 3650"))
    }

    fn validate_clients_and_login(&self) -> Result<(), ConfigError> {
        let refresh = self.clients.cache_refresh_secs;
        positive("clients.cache_refresh_secs", refresh)?;
        if refresh > 60 {
            return Err(invalid("clients.cache_refresh_secs", "must be at most 60"));
        }
        let l = &self.login;
        for (name, value) in [
            (
                "login.free_failures_per_account_address",
                u64::from(l.free_failures_per_account_address),
            ),
            (
                "login.free_failures_per_address",
                u64::from(l.free_failures_per_address),
            ),
            (
                "login.free_failures_per_account",
                u64::from(l.free_failures_per_account),
            ),
            (
                "login.max_successes_per_account",
                u64::from(l.max_successes_per_account),
            ),
            ("login.max_code_attempts", u64::from(l.max_code_attempts)),
            ("login.max_delay_secs", l.max_delay_secs),
            ("login.max_account_delay_secs", l.max_account_delay_secs),
            ("login.success_window_secs", l.success_window_secs),
            ("login.code_window_secs", l.code_window_secs),
            ("login.reauth_window_secs", l.reauth_window_secs),
            ("login.known_device_days", l.known_device_days),
        ] {
            positive(name, value)?;
        }
        Ok(())
    }

    fn validate_issuer(&self) -> Result<(), ConfigError> {
        let url = url::Url::parse(&self.issuer).map_err(|_| {
            invalid(
                "issuer",
                format!("{:?} is not an absolute URL", self.issuer),
            )
        })?;
        // OIDC Discovery §3 / RFC 8414 §2: https, no query, no fragment.
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("issuer", "must not have a query or fragment"));
        }
        if self.issuer.ends_with('/') {
            return Err(invalid("issuer", "must not end with '/'"));
        }
        match url.scheme() {
            "https" => Ok(()),
            "http" if crate::domain::is_loopback_url(&url) || self.insecure_http => Ok(()),
            "http" => Err(invalid(
                "issuer",
                "http:// is only allowed on a loopback host; use https or set insecure_http = true",
            )),
            other => Err(invalid(
                "issuer",
                format!("scheme {other:?} is not http or https"),
            )),
        }
    }

    /// The address to bind.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|_| {
            invalid(
                "listen",
                format!("{:?} is not an address such as 127.0.0.1:8080", self.listen),
            )
        })
    }

    fn validate_database(&self) -> Result<(), ConfigError> {
        let url = &self.database.url;
        let known = ["sqlite:", "postgres://", "postgresql://"];
        if !known.iter().any(|p| url.starts_with(p)) {
            return Err(invalid(
                "database.url",
                "must start with sqlite:, postgres:// or postgresql://",
            ));
        }
        if self.database.max_connections == 0 {
            return Err(invalid(
                "database.max_connections",
                "must be greater than 0",
            ));
        }
        Ok(())
    }

    fn validate_keys(&self) -> Result<(), ConfigError> {
        if ![2048, 3072, 4096].contains(&self.keys.rsa_bits) {
            return Err(invalid("keys.rsa_bits", "must be 2048, 3072 or 4096"));
        }
        positive(
            "keys.refresh_interval_secs",
            self.keys.refresh_interval_secs,
        )?;
        positive("keys.jwks_max_age_secs", self.keys.jwks_max_age_secs)
    }

    fn validate_tokens(&self) -> Result<(), ConfigError> {
        let t = &self.tokens;
        positive("tokens.access_token_ttl_secs", t.access_token_ttl_secs)?;
        positive(
            "tokens.max_access_token_ttl_secs",
            t.max_access_token_ttl_secs,
        )?;
        positive("tokens.id_token_ttl_secs", t.id_token_ttl_secs)?;
        positive("tokens.code_ttl_secs", t.code_ttl_secs)?;
        positive(
            "tokens.refresh_absolute_ttl_secs",
            t.refresh_absolute_ttl_secs,
        )?;
        positive("tokens.refresh_idle_ttl_secs", t.refresh_idle_ttl_secs)?;
        if t.access_token_ttl_secs > t.max_access_token_ttl_secs {
            return Err(invalid(
                "tokens.access_token_ttl_secs",
                "must not exceed tokens.max_access_token_ttl_secs",
            ));
        }
        if t.code_ttl_secs > 600 {
            return Err(invalid(
                "tokens.code_ttl_secs",
                "must be at most 600 (RFC 6749 §4.1.2)",
            ));
        }
        if let Some(aud) = &t.audience {
            url::Url::parse(aud).map_err(|_| {
                invalid("tokens.audience", format!("{aud:?} is not an absolute URI"))
            })?;
        }
        Ok(())
    }

    fn validate_sessions(&self) -> Result<(), ConfigError> {
        positive(
            "sessions.idle_timeout_secs",
            self.sessions.idle_timeout_secs,
        )?;
        positive(
            "sessions.absolute_lifetime_secs",
            self.sessions.absolute_lifetime_secs,
        )
    }

    fn validate_passwords(&self) -> Result<(), ConfigError> {
        let p = &self.passwords;
        if p.max_concurrent == 0 {
            return Err(invalid(
                "passwords.max_concurrent",
                "must be greater than 0",
            ));
        }
        if p.iterations == 0 || p.parallelism == 0 || p.memory_kib < 8 * p.parallelism {
            return Err(invalid(
                "passwords",
                "argon2 needs iterations >= 1, parallelism >= 1, memory_kib >= 8 x parallelism",
            ));
        }
        let weak = p.memory_kib < 19_456 || (p.memory_kib < 47_104 && p.iterations < 2);
        if weak && !p.insecure_fast_hashing {
            return Err(invalid(
                "passwords.memory_kib",
                "below the OWASP minimum (memory_kib >= 19456 with iterations >= 2)",
            ));
        }
        Ok(())
    }

    /// The default `aud` of access tokens.
    pub fn default_audience(&self) -> &str {
        self.tokens.audience.as_deref().unwrap_or(&self.issuer)
    }

    /// True when the issuer is served over TLS (enables HSTS and `__Host-` cookies).
    pub fn is_https(&self) -> bool {
        self.issuer.starts_with("https://")
    }
}

/// Ten years: no lifetime or interval is longer, so `now + ttl` can never overflow.
const MAX_SECS: u64 = 10 * 365 * 24 * 3600;

fn positive(setting: &'static str, v: u64) -> Result<(), ConfigError> {
    if v == 0 {
        Err(invalid(setting, "must be greater than 0"))
    } else if v > MAX_SECS {
        Err(invalid(
            setting,
            format!("must be at most {MAX_SECS} (ten years)"),
        ))
    } else {
        Ok(())
    }
}

fn first_line(e: &figment::Error) -> String {
    e.to_string()
        .lines()
        .next()
        .unwrap_or("invalid configuration")
        .to_owned()
}

mod mail;
mod sections;

pub use mail::*;
pub use sections::*;

#[cfg(test)]
mod tests;
