//! The admin CLI, run as the real binary against a test app's database.

use serde_json::Value;

use crate::helpers::{run_cli, spawn_app, Backend};

crate::both_stores!(
    client_create_prints_a_secret_once_and_stores_a_hash,
    public_clients_have_no_secret,
    client_lifecycle,
    bad_client_input_is_one_line_and_nonzero,
    user_lifecycle,
    bad_user_input_is_one_line_and_nonzero,
    require_mfa_is_stored_and_shown,
    audit_list_filters_by_user_and_since,
);

fn assert_one_line_error(out: &crate::helpers::CliOutput) {
    assert!(
        !out.status.success(),
        "expected failure, got: {}",
        out.stdout
    );
    assert_eq!(out.stderr.lines().count(), 1, "one line: {:?}", out.stderr);
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

async fn client_create_prints_a_secret_once_and_stores_a_hash(backend: Backend) {
    let app = spawn_app(backend).await;
    let out = app.cli(&[
        "client",
        "create",
        "--name",
        "Web",
        "--redirect-uri",
        "https://app.example/cb",
        "--grant-type",
        "authorization_code",
        "--grant-type",
        "refresh_token",
        "--json",
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let id = v["client_id"].as_str().unwrap();
    let secret = v["client_secret"].as_str().unwrap();
    assert_eq!(secret.len(), 43, "256-bit secret, base64url");
    let stored = app
        .state
        .store
        .get_client(&latchkey::domain::ClientId::parse(id).unwrap())
        .await
        .unwrap()
        .unwrap();
    let hash = stored.secret_hash.unwrap();
    assert_ne!(hash, secret.as_bytes(), "secret stored only as a hash");
    assert!(app.state.secrets.verify(secret, &hash));
    assert!(!app.state.secrets.verify("wrong", &hash));
    let shown = app.cli(&["client", "show", id, "--json"]);
    assert!(shown.status.success());
    assert!(
        !shown.stdout.contains(secret),
        "show never prints the secret"
    );
    let v: Value = serde_json::from_str(shown.stdout.trim()).unwrap();
    assert_eq!(v["scope"], "email offline_access openid profile");
}

async fn public_clients_have_no_secret(backend: Backend) {
    let app = spawn_app(backend).await;
    let out = app.cli(&[
        "client",
        "create",
        "--name",
        "SPA",
        "--public",
        "--redirect-uri",
        "http://127.0.0.1:3000/cb",
        "--json",
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert!(v.get("client_secret").is_none());
    let id = v["client_id"].as_str().unwrap();
    assert_one_line_error(&app.cli(&["client", "rotate-secret", id]));
}

async fn client_lifecycle(backend: Backend) {
    let app = spawn_app(backend).await;
    let out = app.cli(&[
        "client",
        "create",
        "--name",
        "Svc",
        "--grant-type",
        "client_credentials",
        "--scope",
        "api:read",
        "--resource",
        "https://api.example",
        "--access-token-ttl",
        "300",
        "--json",
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let id = v["client_id"].as_str().unwrap().to_owned();
    let old = v["client_secret"].as_str().unwrap().to_owned();
    let list = app.cli(&["client", "list"]);
    assert!(list.stdout.contains(&id) && list.stdout.contains("Svc"));
    let rotated = app.cli(&["client", "rotate-secret", &id, "--json"]);
    assert!(rotated.status.success(), "{}", rotated.stderr);
    let new: Value = serde_json::from_str(rotated.stdout.trim()).unwrap();
    let new = new["client_secret"].as_str().unwrap();
    assert_ne!(new, old);
    let stored = app
        .state
        .store
        .get_client(&latchkey::domain::ClientId::parse(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    let hash = stored.secret_hash.unwrap();
    assert!(app.state.secrets.verify(new, &hash) && !app.state.secrets.verify(&old, &hash));
    assert_eq!(stored.access_token_ttl, Some(300));
    assert!(app.cli(&["client", "delete", &id]).status.success());
    assert_one_line_error(&app.cli(&["client", "show", &id]));
    assert_one_line_error(&app.cli(&["client", "delete", &id]));
}

async fn bad_client_input_is_one_line_and_nonzero(backend: Backend) {
    let app = spawn_app(backend).await;
    let cases: &[&[&str]] = &[
        &[
            "client",
            "create",
            "--name",
            "X",
            "--redirect-uri",
            "http://evil.example/cb",
        ],
        &[
            "client",
            "create",
            "--name",
            "X",
            "--redirect-uri",
            "https://a.example/cb#frag",
        ],
        &[
            "client",
            "create",
            "--name",
            "X",
            "--redirect-uri",
            "not a uri",
        ],
        &["client", "create", "--name", "X"],
        &[
            "client",
            "create",
            "--name",
            "X",
            "--public",
            "--grant-type",
            "client_credentials",
        ],
        &[
            "client",
            "create",
            "--name",
            "X",
            "--grant-type",
            "password",
        ],
        &[
            "client",
            "create",
            "--name",
            "X",
            "--redirect-uri",
            "https://a.example/cb",
            "--scope",
            "bad\"scope",
        ],
        &[
            "client",
            "create",
            "--name",
            "X",
            "--grant-type",
            "client_credentials",
            "--access-token-ttl",
            "999999",
        ],
        &["client", "show", "has space"],
    ];
    for args in cases {
        let out = app.cli(args);
        assert_one_line_error(&out);
    }
    assert!(
        app.state.store.list_clients().await.unwrap().is_empty(),
        "nothing stored"
    );
}

async fn user_lifecycle(backend: Backend) {
    let app = spawn_app(backend).await;
    let out = app.cli_with_stdin(
        &[
            "user",
            "create",
            "--username",
            "Alice",
            "--email",
            "alice@example.com",
            "--password-stdin",
            "--role",
            "admin",
        ],
        Some("correct horse battery\n"),
    );
    assert!(out.status.success(), "{}", out.stderr);
    let name = latchkey::domain::Username::parse("alice").unwrap();
    let user = app
        .state
        .store
        .get_user_by_username(&name)
        .await
        .unwrap()
        .unwrap();
    let hash = user.password_hash.clone().unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let pw = latchkey::domain::Password::parse_any("correct horse battery").unwrap();
    assert!(app.state.passwords.verify(Some(&hash), &pw).await.unwrap());
    assert_eq!(
        user.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        ["admin"]
    );

    assert!(app.cli(&["user", "disable", "alice"]).status.success());
    assert!(
        app.state
            .store
            .get_user_by_username(&name)
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    assert!(app.cli(&["user", "enable", "alice"]).status.success());
    assert!(
        !app.state
            .store
            .get_user_by_username(&name)
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    let out = app.cli_with_stdin(
        &["user", "set-password", "alice", "--password-stdin"],
        Some("another long one\n"),
    );
    assert!(out.status.success(), "{}", out.stderr);
    let user = app
        .state
        .store
        .get_user_by_username(&name)
        .await
        .unwrap()
        .unwrap();
    assert!(!app
        .state
        .passwords
        .verify(user.password_hash.as_deref(), &pw)
        .await
        .unwrap());
    let list = app.cli(&["user", "list"]);
    assert!(list.stdout.contains("alice") && list.stdout.contains("active"));
}

async fn bad_user_input_is_one_line_and_nonzero(backend: Backend) {
    let app = spawn_app(backend).await;
    let create = |user: &str, email: &str, pw: &str| {
        app.cli_with_stdin(
            &[
                "user",
                "create",
                "--username",
                user,
                "--email",
                email,
                "--password-stdin",
            ],
            Some(pw),
        )
    };
    assert!(create("bob", "bob@example.com", "long enough pw\n")
        .status
        .success());
    assert_one_line_error(&create("bob", "bob2@example.com", "long enough pw\n"));
    assert_one_line_error(&create("carol", "BOB@example.com", "long enough pw\n"));
    assert_one_line_error(&create("dave", "dave@example.com", "short\n"));
    assert_one_line_error(&create("bad name", "e@example.com", "long enough pw\n"));
    assert_one_line_error(&create("erin", "not-an-email", "long enough pw\n"));
    assert_one_line_error(&app.cli(&["user", "disable", "nobody"]));
    assert_eq!(app.state.store.list_users().await.unwrap().len(), 1);
    // Passwords never go on the command line.
    let out = app.cli(&[
        "user",
        "create",
        "--username",
        "x",
        "--email",
        "x@example.com",
    ]);
    assert!(!out.status.success());
    let _ = run_cli;
}

async fn require_mfa_is_stored_and_shown(backend: Backend) {
    let app = spawn_app(backend).await;
    let create = |extra: &[&str]| {
        let mut args = vec!["client", "create", "--name", "Web"];
        args.extend_from_slice(&["--redirect-uri", "https://app.example/cb", "--json"]);
        args.extend_from_slice(extra);
        let out = app.cli(&args);
        assert!(out.status.success(), "{}", out.stderr);
        let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
        v["client_id"].as_str().unwrap().to_owned()
    };
    let strict = create(&["--require-mfa"]);
    let lax = create(&[]);
    for (id, want) in [(&strict, true), (&lax, false)] {
        let client_id = latchkey::domain::ClientId::parse(id).unwrap();
        let stored = app.state.store.get_client(&client_id).await.unwrap();
        assert_eq!(stored.unwrap().require_mfa, want);
        let shown = app.cli(&["client", "show", id, "--json"]);
        let v: Value = serde_json::from_str(shown.stdout.trim()).unwrap();
        assert_eq!(v["require_mfa"], want);
    }
    let list = app.cli(&["client", "list", "--json"]);
    let all: Value = serde_json::from_str(list.stdout.trim()).unwrap();
    let strict_listed = all
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_id"] == strict.as_str())
        .unwrap();
    assert_eq!(strict_listed["require_mfa"], true);
}

async fn audit_list_filters_by_user_and_since(backend: Backend) {
    use latchkey::domain::AuditEvent;

    let app = spawn_app(backend).await;
    let out = app.cli_with_stdin(
        &[
            "user",
            "create",
            "--username",
            "carol",
            "--email",
            "carol@example.com",
            "--password-stdin",
        ],
        Some("correct horse battery\n"),
    );
    assert!(out.status.success(), "{}", out.stderr);
    let carol = app
        .state
        .store
        .get_user_by_username(&latchkey::domain::Username::parse("carol").unwrap())
        .await
        .unwrap()
        .unwrap();
    // 2025-12-31T23:59:59Z, 2026-01-01T00:00:00Z, 2026-01-02T00:00:00Z
    for (at, user) in [
        (1_767_225_599, carol.id.as_str()),
        (1_767_225_600, carol.id.as_str()),
        (1_767_312_000, "someone-else"),
    ] {
        let event = AuditEvent {
            kind: "refresh_token_reuse".into(),
            at,
            client_id: None,
            user_id: Some(user.into()),
            grant_id: None,
            ip: Some("10.0.0.1".into()),
            user_agent: Some("Agent/1.0 (X)".into()),
            detail: String::new(),
        };
        app.state.store.record_event(&event).await.unwrap();
    }
    let list = |extra: &[&str]| {
        let mut args = vec!["audit", "list", "--json"];
        args.extend_from_slice(extra);
        let out = app.cli(&args);
        assert!(out.status.success(), "{}", out.stderr);
        out.stdout
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    let ats = |events: &[Value]| {
        events
            .iter()
            .map(|e| e["at"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let all = list(&[]);
    assert_eq!(all.len(), 3);
    assert_eq!(all[0]["user_agent"], "Agent/1.0 (X)");
    assert_eq!(
        ats(&list(&["--user", "carol"])),
        ["2026-01-01T00:00:00Z", "2025-12-31T23:59:59Z"]
    );
    assert_eq!(
        ats(&list(&[
            "--user",
            "carol",
            "--since",
            "2026-01-01T00:00:00Z"
        ])),
        ["2026-01-01T00:00:00Z"]
    );
    assert_eq!(list(&["--since", "2026-01-01T01:00:00+01:00"]).len(), 2);
    let plain = app.cli(&["audit", "list", "--user", "carol"]);
    assert!(
        plain.stdout.contains("user_agent=\"Agent/1.0 (X)\""),
        "{}",
        plain.stdout
    );
    assert_one_line_error(&app.cli(&["audit", "list", "--user", "nobody"]));
    assert_one_line_error(&app.cli(&["audit", "list", "--since", "yesterday"]));
}
