#![allow(clippy::result_large_err, clippy::type_complexity)]

use figment::Jail;

use super::*;

fn load_in(jail: &mut Jail, toml: Option<&str>) -> Result<Settings, ConfigError> {
    if let Some(t) = toml {
        jail.create_dir("config")
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        jail.create_file("config/latchkey.toml", t)
            .map_err(|e| ConfigError::Load(e.to_string()))?;
    }
    Settings::load(None)
}

fn err_of(toml: Option<&str>, env: &[(&str, &str)]) -> String {
    let mut out = String::new();
    Jail::expect_with(|jail| {
        for (k, v) in env {
            jail.set_env(k, v);
        }
        out = match load_in(jail, toml) {
            Ok(s) => format!("loaded: {s:?}"),
            Err(e) => e.to_string(),
        };
        Ok(())
    });
    out
}

#[test]
fn defaults_are_valid() {
    Jail::expect_with(|jail| {
        let s = load_in(jail, None).map_err(|e| e.to_string())?;
        assert_eq!(s.issuer, "http://localhost:8080");
        assert_eq!(s.listen, "127.0.0.1:8080");
        assert_eq!(s.database.url, "sqlite://data/latchkey.db");
        assert_eq!(s.tokens.access_token_ttl_secs, 900);
        Ok(())
    });
}

#[test]
fn layers_file_then_env_then_short_forms() {
    Jail::expect_with(|jail| {
        jail.set_env("LATCHKEY_KEYS__RSA_BITS", "3072");
        jail.set_env("LATCHKEY_ISSUER", "https://id.example.com");
        jail.set_env("LATCHKEY_DATABASE_URL", "postgres://u:p@db/latchkey");
        jail.set_env("LATCHKEY_MASTER_KEY", "not a setting, ignored here");
        let toml = "listen = \"0.0.0.0:9000\"\n[keys]\nrsa_bits = 4096\n[tokens]\naccess_token_ttl_secs = 600\n";
        let s = load_in(jail, Some(toml)).map_err(|e| e.to_string())?;
        assert_eq!(s.listen, "0.0.0.0:9000");
        assert_eq!(s.keys.rsa_bits, 3072, "env beats file");
        assert_eq!(s.tokens.access_token_ttl_secs, 600);
        assert_eq!(s.issuer, "https://id.example.com");
        assert_eq!(s.database.url, "postgres://u:p@db/latchkey");
        Ok(())
    });
}

#[test]
fn explicit_config_path_must_exist() {
    Jail::expect_with(|_| {
        let e = Settings::load(Some(Path::new("nope.toml")))
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(
            e,
            Err("cannot load configuration: config file nope.toml not found".into())
        );
        Ok(())
    });
}

#[test]
fn bad_settings_name_the_setting() {
    let cases: &[(Option<&str>, &[(&str, &str)], &str)] = &[
        (None, &[("LATCHKEY_ISSUER", "not a url")], "`issuer`"),
        (
            None,
            &[("LATCHKEY_ISSUER", "http://id.example.com")],
            "loopback",
        ),
        (
            None,
            &[("LATCHKEY_ISSUER", "https://id.example.com/")],
            "`issuer`",
        ),
        (
            None,
            &[("LATCHKEY_ISSUER", "https://id.example.com?x=1")],
            "`issuer`",
        ),
        (None, &[("LATCHKEY_LISTEN", "localhost")], "`listen`"),
        (
            None,
            &[("LATCHKEY_TOKENS__ACCESS_TOKEN_TTL_SECS", "0")],
            "`tokens.access_token_ttl_secs`",
        ),
        (
            Some("[tokens]\nid_token_ttl_secs = 0\n"),
            &[],
            "`tokens.id_token_ttl_secs`",
        ),
        (Some("[keys]\nrsa_bits = 1024\n"), &[], "`keys.rsa_bits`"),
        (
            Some("[passwords]\nmemory_kib = 1024\n"),
            &[],
            "`passwords.memory_kib`",
        ),
        (
            Some("[database]\nurl = \"mysql://x\"\n"),
            &[],
            "`database.url`",
        ),
        (
            Some("[keys]\nrefresh_interval_secs = 0\n"),
            &[],
            "`keys.refresh_interval_secs`",
        ),
        (
            Some("[tokens]\ncode_ttl_secs = 3600\n"),
            &[],
            "`tokens.code_ttl_secs`",
        ),
        (Some("[keys]\nrsa_bits = \"big\"\n"), &[], "rsa_bits"),
        (Some("[kees]\nrsa_bits = 2048\n"), &[], "kees"),
        (None, &[("LATCHKEY_KEYS__RSA_BTIS", "2048")], "rsa_btis"),
        (Some("[log]\nformat = \"xml\"\n"), &[], "xml"),
        (
            Some("[clients]\ncache_refresh_secs = 0\n"),
            &[],
            "`clients.cache_refresh_secs`",
        ),
        (
            Some("[clients]\ncache_refresh_secs = 3600\n"),
            &[],
            "`clients.cache_refresh_secs`",
        ),
        (
            Some("[login]\ncode_window_secs = 0\n"),
            &[],
            "`login.code_window_secs`",
        ),
        (
            Some("[login]\nmax_delay_secs = 9000000000000000000\n"),
            &[],
            "`login.max_delay_secs`",
        ),
        (
            Some("[login]\nfree_failures_per_account_address = 0\n"),
            &[],
            "`login.free_failures_per_account_address`",
        ),
        (
            Some("[login]\nmax_code_attempts = 0\n"),
            &[],
            "`login.max_code_attempts`",
        ),
        (
            Some("[server]\nmax_connections = 0\n"),
            &[],
            "`server.max_connections`",
        ),
        (
            Some("[server]\nbody_timeout_secs = 0\n"),
            &[],
            "`server.body_timeout_secs`",
        ),
        (
            Some("[audit]\nretention_days = 0\n"),
            &[],
            "`audit.retention_days`",
        ),
        (
            Some("[housekeeping]\ninterval_secs = 0\n"),
            &[],
            "`housekeeping.interval_secs`",
        ),
        (
            Some("[tokens]\nrefresh_idle_ttl_secs = 9000000000000000000\n"),
            &[],
            "`tokens.refresh_idle_ttl_secs`",
        ),
        (
            Some("[sessions]\nidle_timeout_secs = 400000000\n"),
            &[],
            "`sessions.idle_timeout_secs`",
        ),
    ];
    for (toml, env, needle) in cases {
        let msg = err_of(*toml, env);
        assert!(msg.contains(needle), "{toml:?} {env:?}: {msg}");
        assert!(!msg.starts_with("loaded"), "{toml:?} {env:?} loaded");
        assert_eq!(msg.lines().count(), 1, "one line: {msg}");
    }
}

#[test]
fn insecure_http_is_an_explicit_opt_in() {
    Jail::expect_with(|jail| {
        jail.set_env("LATCHKEY_ISSUER", "http://id.internal:8080");
        jail.set_env("LATCHKEY_INSECURE_HTTP", "true");
        let s = load_in(jail, None).map_err(|e| e.to_string())?;
        assert!(!s.is_https());
        Ok(())
    });
}

#[test]
fn database_password_is_redacted_in_debug() {
    let mut s = Settings::default();
    s.database.url = "postgres://admin:s3cr3t-pw@db.example.com/latchkey".into();
    let shown = format!("{s:?}");
    assert!(!shown.contains("s3cr3t-pw"), "{shown}");
    assert!(shown.contains("db.example.com"));
    let q = redact_url("postgres://u@db/x?sslmode=require&password=q-s3cr3t&sslpassword=k-s3cr3t");
    assert!(
        !q.contains("s3cr3t") && q.contains("sslmode=require"),
        "{q}"
    );
}

#[test]
fn bad_mail_settings_name_the_setting() {
    let cases: &[(&str, &str)] = &[
        ("[mail]\nfrom = \"not an address\"\n", "`mail.from`"),
        ("[mail]\nfrom = \"\"\n", "`mail.from`"),
        (
            "[mail]\ntransport = \"smtp\"\nsmtp_host = \"  \"\n",
            "`mail.smtp_host`",
        ),
        (
            "[mail]\nsmtp_username = \"mailer\"\n",
            "`mail.smtp_password`",
        ),
        (
            "[mail]\nsmtp_password = \"pw-only\"\n",
            "`mail.smtp_password`",
        ),
        (
            "[mail]\npoll_interval_secs = 0\n",
            "`mail.poll_interval_secs`",
        ),
        ("[mail]\nretry_base_secs = 0\n", "`mail.retry_base_secs`"),
        ("[mail]\nmax_attempts = 0\n", "`mail.max_attempts`"),
        (
            "[mail]\nsmtp_timeout_secs = 0\n",
            "`mail.smtp_timeout_secs`",
        ),
        ("[mail]\nsmtp_tls = \"ssl\"\n", "ssl"),
        ("[mail]\ntransport = \"pigeon\"\n", "pigeon"),
        (
            "[accounts]\nreset_link_secs = 0\n",
            "`accounts.reset_link_secs`",
        ),
        (
            "[accounts]\nmfa_recovery_wait_secs = 60\nmfa_recovery_reminder_secs = 60\n",
            "`accounts.mfa_recovery_reminder_secs`",
        ),
        ("[registration]\nenabled = \"maybe\"\n", "enabled"),
    ];
    for (toml, needle) in cases {
        let msg = err_of(Some(toml), &[]);
        assert!(msg.contains(needle), "{toml:?}: {msg}");
        assert!(!msg.starts_with("loaded"), "{toml:?} loaded");
        assert_eq!(msg.lines().count(), 1, "one line: {msg}");
        assert!(!msg.contains("pw-only"), "{msg}");
    }
    // SMTP with a host and both credentials is fine; the default transport needs no host.
    let ok = "[mail]\ntransport = \"smtp\"\nsmtp_host = \"mail.example.com\"\n\
              smtp_username = \"u\"\nsmtp_password = \"p\"\nsmtp_tls = \"tls\"\n";
    assert!(err_of(Some(ok), &[]).starts_with("loaded"));
    assert!(err_of(Some("[mail]\nsmtp_host = \"\"\n"), &[]).starts_with("loaded"));
}

#[test]
fn smtp_password_is_redacted_in_debug() {
    let mut s = Settings::default();
    s.mail.smtp_username = Some("mailer".into());
    s.mail.smtp_password = Some("smtp-s3cr3t".into());
    let shown = format!("{s:?}");
    assert!(!shown.contains("smtp-s3cr3t"), "{shown}");
    assert!(
        shown.contains("[redacted]") && shown.contains("mailer"),
        "{shown}"
    );
    let shown = format!("{:?}", s.mail);
    assert!(!shown.contains("smtp-s3cr3t"), "{shown}");
    // Loaded from the environment, the same.
    let loaded = err_of(
        None,
        &[
            ("LATCHKEY_MAIL__SMTP_USERNAME", "mailer"),
            ("LATCHKEY_MAIL__SMTP_PASSWORD", "env-s3cr3t"),
        ],
    );
    assert!(loaded.starts_with("loaded"), "{loaded}");
    assert!(!loaded.contains("env-s3cr3t"), "{loaded}");
}

#[test]
fn the_smtp_port_follows_the_tls_mode_unless_set() {
    let mut m = MailSettings::default();
    assert_eq!((m.smtp_tls, m.port()), (SmtpTls::Starttls, 587));
    m.smtp_tls = SmtpTls::Tls;
    assert_eq!(m.port(), 465);
    m.smtp_tls = SmtpTls::None;
    assert_eq!(m.port(), 25);
    m.smtp_port = 2525;
    assert_eq!(m.port(), 2525);
}
