//! Bad configuration and bad command lines: one clear line, non-zero exit, never a panic.

use crate::helpers::run_cli;

fn assert_fails_with(args: &[&str], env: &[(&str, &str)], needle: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = run_cli(args, env, None, dir.path());
    assert!(
        !out.status.success(),
        "{args:?} {env:?} succeeded: {}",
        out.stdout
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?} {env:?}: {:?}", out.stderr);
    assert!(lines[0].contains(needle), "{args:?} {env:?}: {}", lines[0]);
}

#[test]
fn invalid_settings_stop_the_server_with_one_line() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("LATCHKEY_ISSUER", "not-a-url")], "`issuer`"),
        (&[("LATCHKEY_ISSUER", "http://id.example.com")], "`issuer`"),
        (&[("LATCHKEY_LISTEN", "nowhere")], "`listen`"),
        (
            &[("LATCHKEY_TOKENS__ACCESS_TOKEN_TTL_SECS", "0")],
            "`tokens.access_token_ttl_secs`",
        ),
        (&[("LATCHKEY_KEYS__RSA_BITS", "1024")], "`keys.rsa_bits`"),
        (
            &[("LATCHKEY_DATABASE_URL", "mysql://db/x")],
            "`database.url`",
        ),
        (&[("LATCHKEY_KEYS__NO_SUCH", "1")], "no_such"),
        (
            &[("LATCHKEY_MASTER_KEY", "too-short")],
            "LATCHKEY_MASTER_KEY",
        ),
    ];
    for (env, needle) in cases {
        assert_fails_with(&["serve"], env, needle);
    }
}

#[test]
fn missing_config_file_is_one_line() {
    assert_fails_with(
        &["--config", "/nonexistent/latchkey.toml", "serve"],
        &[],
        "not found",
    );
}

#[test]
fn master_key_with_wide_permissions_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    let key = dir.path().join("keys/master.key");
    std::fs::write(&key, crate::helpers::TEST_MASTER_KEY).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run_cli(&["migrate"], &[], None, dir.path());
    assert!(!out.status.success());
    assert!(out.stderr.contains("chmod 600"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
}

#[test]
fn first_start_creates_the_master_key_with_mode_0600_and_the_sqlite_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = run_cli(&["migrate"], &[], None, dir.path());
    assert!(out.status.success(), "{}", out.stderr);
    let mode = std::fs::metadata(dir.path().join("keys/master.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(dir.path().join("data/latchkey.db").exists());
}

#[test]
fn every_command_explains_itself() {
    let dir = tempfile::tempdir().unwrap();
    let commands: &[&[&str]] = &[
        &["--help"],
        &["serve", "--help"],
        &["migrate", "--help"],
        &["keys", "--help"],
        &["keys", "rotate", "--help"],
        &["keys", "retire", "--help"],
        &["keys", "list", "--help"],
        &["client", "--help"],
        &["client", "create", "--help"],
        &["client", "rotate-secret", "--help"],
        &["user", "--help"],
        &["audit", "list", "--help"],
        &["user", "create", "--help"],
        &["user", "set-password", "--help"],
    ];
    for args in commands {
        let out = run_cli(args, &[], None, dir.path());
        assert!(out.status.success(), "{args:?}");
        assert!(out.stdout.contains("Usage:"), "{args:?}: {}", out.stdout);
    }
}

#[test]
fn unknown_commands_and_flags_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["frobnicate"][..],
        &["client", "create"],
        &["keys", "rotate", "--bogus"],
    ] {
        let out = run_cli(args, &[], None, dir.path());
        assert!(!out.status.success(), "{args:?}");
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
}
