//! The real binary's log: one JSON line per request with a request id, and no secret in
//! any line, whatever the requests carried.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::run_cli;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_json_line_per_request_and_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let db = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let listen = format!("127.0.0.1:{port}");
    let env: Vec<(&str, &str)> = vec![
        ("LATCHKEY_ISSUER", &base),
        ("LATCHKEY_LISTEN", &listen),
        ("LATCHKEY_DATABASE_URL", &db),
        ("LATCHKEY_LOG__FORMAT", "json"),
        ("LATCHKEY_PASSWORDS__MEMORY_KIB", "1024"),
        ("LATCHKEY_PASSWORDS__ITERATIONS", "1"),
        ("LATCHKEY_PASSWORDS__INSECURE_FAST_HASHING", "true"),
    ];
    let out = run_cli(
        &[
            "client",
            "create",
            "--name",
            "Logged",
            "--grant-type",
            "client_credentials",
            "--json",
        ],
        &env,
        None,
        dir.path(),
    );
    assert!(out.status.success(), "{}", out.stderr);
    let created: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let (id, secret) = (
        created["client_id"].as_str().unwrap(),
        created["client_secret"].as_str().unwrap(),
    );
    let password = "leak-me-password-123";
    let out = run_cli(
        &[
            "user",
            "create",
            "--username",
            "carol",
            "--email",
            "c@example.com",
            "--password-stdin",
        ],
        &env,
        Some(password),
        dir.path(),
    );
    assert!(out.status.success(), "{}", out.stderr);

    let log_path = dir.path().join("serve.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    cmd.arg("serve")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap());
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("LATCHKEY_") || k == "RUST_LOG") {
        cmd.env_remove(k);
    }
    let mut server = cmd.envs(env.iter().copied()).spawn().unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let res = http
        .post(format!("{base}/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let token: serde_json::Value = res.json().await.unwrap();
    let access_token = token["access_token"].as_str().unwrap().to_owned();
    http.post(format!("{base}/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap();
    http.get(format!(
        "{base}/authorize?client_id={id}&state=leak-me-state&code_challenge=leak-me-challenge"
    ))
    .send()
    .await
    .unwrap();
    // A real login: the browser's CSRF cookie and form, so the password passes all the way
    // through the login code (and a wrong one too).
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let page = browser
        .get(format!("{base}/authorize?client_id={id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        page.status(),
        400,
        "the cc client has no redirect URI: an error page, and no login form"
    );
    let out = run_cli(
        &[
            "client",
            "create",
            "--name",
            "Web",
            "--redirect-uri",
            "https://rp.example/cb",
            "--first-party",
            "--json",
        ],
        &env,
        None,
        dir.path(),
    );
    let web: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let web_id = web["client_id"].as_str().unwrap();
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let url = format!("{base}/authorize?response_type=code&client_id={web_id}&redirect_uri=https://rp.example/cb&scope=openid&state=leak-me-state&code_challenge={challenge}&code_challenge_method=S256");
    let page = browser.get(url).send().await.unwrap().text().await.unwrap();
    let (csrf, request) = crate::oauth::login_form(&page);
    for pw in ["wrong-but-leak-me-too", password] {
        let res = browser
            .post(format!("{base}/login"))
            .form(&[
                ("username", "carol"),
                ("password", pw),
                ("csrf", &csrf),
                ("request", &request),
            ])
            .send()
            .await
            .unwrap();
        assert!(
            res.status() == 401 || res.status() == 303,
            "{}",
            res.status()
        );
    }
    http.get(format!("{base}/userinfo"))
        .bearer_auth(&access_token)
        .send()
        .await
        .unwrap();
    let requests = 6; // healthz (at least once), two token requests, authorize, login, userinfo

    server.kill().unwrap();
    server.wait().unwrap();
    let mut log = String::new();
    std::fs::File::open(&log_path)
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let request_lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|_| panic!("not JSON: {l}"))
        })
        .filter(|v| v["message"] == "request")
        .collect();
    assert!(request_lines.len() >= requests, "{log}");
    for line in &request_lines {
        assert!(
            line["request_id"].as_str().is_some_and(|r| r.len() >= 32),
            "{line}"
        );
        assert!(
            line["path"]
                .as_str()
                .is_some_and(|p| p.starts_with('/') && !p.contains('?')),
            "{line}"
        );
        assert!(line["status"].as_u64().is_some(), "{line}");
    }
    assert!(
        log.contains("\"path\":\"/login\""),
        "the logins were logged"
    );
    for secret in [
        secret,
        password,
        "wrong-but-leak-me-too",
        access_token.as_str(),
        "leak-me-state",
        "leak-me-challenge",
        challenge,
    ] {
        assert!(!log.contains(secret), "a secret reached the log: {secret}");
    }
}
