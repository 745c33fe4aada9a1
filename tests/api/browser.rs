//! The passkey journey in a real browser: `tests/browser/passkey_journey.mjs` drives
//! Debian's headless Chromium (with a virtual authenticator) against an app of its own,
//! and saves the screenshots that `docs/passkeys.md` shows. Skipped when node's
//! playwright-core or Chromium is missing, unless LATCHKEY_REQUIRE_BROWSER=1 (set by
//! `.ci/run`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::helpers::{spawn_app_with, Backend};
use crate::oauth::{confidential_client, create_user, PASSWORD, REDIRECT_URI};

const CHROMIUM: &str = "/usr/bin/chromium";
const JOURNEY_TIMEOUT: Duration = Duration::from_secs(120);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// True when the browser test can run; panics instead of skipping when
/// LATCHKEY_REQUIRE_BROWSER=1.
fn browser_available() -> bool {
    let playwright = repo().join("tests/browser/node_modules/playwright-core");
    let missing: Vec<String> = [playwright.as_path(), Path::new(CHROMIUM)]
        .iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let required = std::env::var("LATCHKEY_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "LATCHKEY_REQUIRE_BROWSER=1 but {} is missing (apt-get install chromium; \
         cd tests/browser && npm ci)",
        missing.join(" and ")
    );
    eprintln!(
        "skipping: {} is missing (apt-get install chromium; cd tests/browser && npm ci)",
        missing.join(" and ")
    );
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkey_journey_in_chromium() {
    if !browser_available() {
        return;
    }
    // WebAuthn needs a domain name: the issuer (and so the RP id) is localhost.
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.issuer = s.issuer.replace("127.0.0.1", "localhost");
    })
    .await;
    let base_url = format!("http://localhost:{}", app.port);
    assert_eq!(app.state.settings.issuer, base_url);
    create_user(&app, "erin", &[]).await;
    let client = confidential_client(&app).await;
    let secret = client.secret.expect("a confidential client has a secret");
    let screenshots = repo().join("docs/images");

    let mut node = tokio::process::Command::new("node");
    node.current_dir(repo().join("tests/browser"))
        .arg("passkey_journey.mjs")
        .args(["--base-url", &base_url])
        .args(["--client-id", &client.id])
        .args(["--redirect-uri", REDIRECT_URI])
        .args(["--username", "erin"])
        .arg("--out")
        .arg(&screenshots)
        .args(["--chromium", CHROMIUM])
        // Secrets through the environment, not the command line that `ps` shows.
        .env("LATCHKEY_CLIENT_SECRET", &secret)
        .env("LATCHKEY_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(JOURNEY_TIMEOUT, node.output())
        .await
        .expect("the browser journey finished within its time")
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(out.status.success(), "the browser journey failed: {stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.ends_with(" passed, 0 failed") && !last.starts_with("0 "),
        "the journey's closing line is {last:?}"
    );
}
