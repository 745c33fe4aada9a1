//! The settings sections, one struct each, with their defaults.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

/// Storage settings.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://path/to/file.db` or `postgres://user:pass@host/db`.
    pub url: String,
    /// Connection pool size (SQLite: the read pool; it always writes through one).
    pub max_connections: u32,
    /// SQLite only: `normal` syncs the write-ahead log at checkpoints, `full` at every
    /// commit (see `docs/performance.md`, "Durability of SQLite").
    pub sqlite_synchronous: SqliteSynchronous,
}

/// When SQLite syncs its write-ahead log to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    /// At checkpoints (normally within a second of a write): commits survive a crash of
    /// the process; a crash of the machine may lose those not yet flushed.
    #[default]
    Normal,
    /// At every commit: commits survive a power loss too.
    Full,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://data/latchkey.db".into(),
            max_connections: 16,
            sqlite_synchronous: SqliteSynchronous::Normal,
        }
    }
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("sqlite_synchronous", &self.sqlite_synchronous)
            .finish()
    }
}

/// A database URL with any password (in the user-info or the query) replaced by
/// `[redacted]`, for logs.
pub fn redact_url(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return "[unparseable url]".into();
    };
    if u.password().is_some() {
        let _ = u.set_password(Some("[redacted]"));
    }
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let secret = k.to_ascii_lowercase().contains("password");
                (
                    k.into_owned(),
                    if secret {
                        "[redacted]".to_owned()
                    } else {
                        v.into_owned()
                    },
                )
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

/// Signing-key settings (see `docs/key-rotation.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeySettings {
    /// The key-encryption key file, used when `LATCHKEY_MASTER_KEY` is not set.
    pub master_key_file: PathBuf,
    /// RSA modulus size for new keys: 2048, 3072 or 4096.
    pub rsa_bits: usize,
    /// How often every node re-reads the key set, in seconds.
    pub refresh_interval_secs: u64,
    /// `Cache-Control: max-age` of the JWKS, in seconds.
    pub jwks_max_age_secs: u64,
}

impl Default for KeySettings {
    fn default() -> Self {
        Self {
            master_key_file: PathBuf::from("keys/master.key"),
            rsa_bits: 2048,
            refresh_interval_secs: 30,
            jwks_max_age_secs: 300,
        }
    }
}

impl KeySettings {
    /// How long a new key must have been published before it may sign: every node has
    /// published it (one refresh interval) and every cached JWKS has expired (max-age).
    pub fn publication_delay_secs(&self) -> i64 {
        secs(self.refresh_interval_secs) + secs(self.jwks_max_age_secs)
    }
}

/// Token lifetimes and audiences.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSettings {
    /// Default access-token lifetime (RFC 9068), in seconds.
    pub access_token_ttl_secs: u64,
    /// The longest access-token lifetime a client may be registered with.
    pub max_access_token_ttl_secs: u64,
    /// ID-token lifetime, in seconds.
    pub id_token_ttl_secs: u64,
    /// Authorization-code lifetime, in seconds (RFC 6749 §4.1.2 recommends at most 10 min).
    pub code_ttl_secs: u64,
    /// Absolute lifetime of a refresh-token family, in seconds.
    pub refresh_absolute_ttl_secs: u64,
    /// A refresh-token family unused this long expires, in seconds.
    pub refresh_idle_ttl_secs: u64,
    /// Default `aud` of access tokens; the issuer when unset.
    pub audience: Option<String>,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: 900,
            max_access_token_ttl_secs: 3600,
            id_token_ttl_secs: 3600,
            code_ttl_secs: 60,
            refresh_absolute_ttl_secs: 30 * 24 * 3600,
            refresh_idle_ttl_secs: 14 * 24 * 3600,
            audience: None,
        }
    }
}

impl TokenSettings {
    /// The longest lifetime any token signed by a key can have.
    pub fn longest_signed_ttl_secs(&self) -> i64 {
        secs(self.max_access_token_ttl_secs.max(self.id_token_ttl_secs))
    }
}

/// Browser-session settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    /// A session unused this long ends, in seconds.
    pub idle_timeout_secs: u64,
    /// A session ends this long after login whatever its use, in seconds.
    pub absolute_lifetime_secs: u64,
    /// Keep `offline_access` refresh families when the user logs out (OIDC Core §11: offline
    /// access outlives the login), except for clients registered with
    /// `--end-offline-on-logout`. `false` ends them on logout for every client.
    pub keep_offline_on_logout: bool,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            idle_timeout_secs: 1800,
            absolute_lifetime_secs: 10 * 3600,
            keep_offline_on_logout: true,
        }
    }
}

/// argon2id parameters (RFC 9106; OWASP password storage cheat sheet).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordSettings {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Time cost (passes).
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
    /// Hashes computed at once; a burst of logins waits instead of exhausting memory.
    pub max_concurrent: usize,
    /// Hashes that may wait for a free slot; beyond that a sign-in is answered at once
    /// with 503 and `Retry-After` instead of queueing without limit.
    pub max_queued: usize,
    /// Allow parameters below the OWASP minimum (m=19456, t=2). For tests only.
    pub insecure_fast_hashing: bool,
}

impl Default for PasswordSettings {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
            max_concurrent: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_queued: 32,
            insecure_fast_hashing: false,
        }
    }
}

/// Log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `latchkey=debug,info`; `RUST_LOG` wins.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// Clean-up of expired records.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HousekeepingSettings {
    /// Seconds between runs.
    pub interval_secs: u64,
    /// Rows deleted per statement, so no run holds long locks.
    pub batch_size: u32,
}

impl Default for HousekeepingSettings {
    fn default() -> Self {
        Self {
            interval_secs: 300,
            batch_size: 1000,
        }
    }
}

/// The per-node client cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientSettings {
    /// How often each node checks whether any client changed; a deleted client or a rotated
    /// secret stops working everywhere within this time.
    pub cache_refresh_secs: u64,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            cache_refresh_secs: 1,
        }
    }
}

/// Sign-in protection, shared by every node through the database (see
/// `docs/authentication.md`). Failures never lock an account: past the free attempts, each
/// further attempt waits a delay that doubles from 1 s up to the maximum.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginSettings {
    /// Failed passwords for one account from one client address (IPv6: per /64), or from
    /// one known-device browser, before delays start.
    pub free_failures_per_account_address: u32,
    /// Failed passwords from one client address across all accounts before delays start
    /// (password spraying).
    pub free_failures_per_address: u32,
    /// Failed passwords for one account from all unknown devices before those are slowed
    /// too; known-device browsers are never slowed by it.
    pub free_failures_per_account: u32,
    /// The longest delay, in seconds.
    pub max_delay_secs: u64,
    /// The longest delay of the per-account ceiling, in seconds (it slows, never locks).
    pub max_account_delay_secs: u64,
    /// Successful sign-ins per account per `success_window_secs`, so that a valid password
    /// cannot be used to keep argon2 busy.
    pub max_successes_per_account: u32,
    /// The window of `max_successes_per_account`, in seconds.
    pub success_window_secs: u64,
    /// TOTP and backup-code attempts per account per `code_window_secs`.
    pub max_code_attempts: u32,
    /// The window of `max_code_attempts`, in seconds.
    pub code_window_secs: u64,
    /// Changing a password or a second factor needs a sign-in at most this old, in seconds.
    pub reauth_window_secs: u64,
    /// How long a browser that signed in stays a known device, in days.
    pub known_device_days: u64,
}

impl Default for LoginSettings {
    fn default() -> Self {
        Self {
            free_failures_per_account_address: 5,
            free_failures_per_address: 30,
            free_failures_per_account: 50,
            max_delay_secs: 900,
            max_account_delay_secs: 300,
            max_successes_per_account: 20,
            success_window_secs: 300,
            max_code_attempts: 5,
            code_window_secs: 300,
            reauth_window_secs: 600,
            known_device_days: 365,
        }
    }
}

/// Passkeys (WebAuthn L3). The relying party's origin is the issuer's; its id is the
/// issuer's host unless `rp_id` names a parent domain (so that passkeys work on several
/// subdomains). Passkeys need a domain name: with an IP-address issuer they are off.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebauthnSettings {
    /// The relying party id: the issuer's host, or a registrable parent domain of it.
    pub rp_id: Option<String>,
    /// The name authenticators show.
    pub rp_name: String,
}

impl Default for WebauthnSettings {
    fn default() -> Self {
        Self {
            rp_id: None,
            rp_name: "Latchkey".into(),
        }
    }
}

/// Reverse proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxySettings {
    /// Addresses of the proxies in front of Latchkey. A request from one of them is
    /// attributed to the address it forwarded for (the right-most untrusted entry of
    /// `X-Forwarded-For`); from anyone else, the header is ignored.
    pub trusted: Vec<std::net::IpAddr>,
}

/// Bounds on what one client can hold: connections, and time to send a body.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// HTTP worker threads; 0 means one per CPU core.
    pub workers: usize,
    /// Open connections per worker; past it the server stops accepting until one closes
    /// (the total is `workers x max_connections`).
    pub max_connections: usize,
    /// Connections the kernel queues while every worker is full (`listen(2)` backlog).
    pub backlog: u32,
    /// A request body must arrive completely within this many seconds of the request
    /// head, so that a client sending one byte a second cannot hold a socket and a buffer.
    pub body_timeout_secs: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            workers: 0,
            max_connections: 4096,
            backlog: 1024,
            body_timeout_secs: 10,
        }
    }
}

/// The audit trail.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    /// Events older than this many days are deleted by housekeeping.
    pub retention_days: u64,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            retention_days: 365,
        }
    }
}

impl AuditSettings {
    /// The retention in seconds.
    pub fn retention_secs(&self) -> i64 {
        secs(self.retention_days.saturating_mul(86_400))
    }
}

fn secs(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
