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
// Beyond the journey's own watchdog (170 s), which names the step it stopped in.
const JOURNEY_TIMEOUT: Duration = Duration::from_secs(200);

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
        .stdin(Stdio::null());
    let out = run_journey(node).await;
    let stdout = &out.stdout;
    assert!(
        out.status.is_some_and(|s| s.success()),
        "the browser journey failed ({:?}): {stdout}\n{}",
        out.status,
        out.stderr
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.ends_with(" passed, 0 failed") && !last.starts_with("0 "),
        "the journey's closing line is {last:?}"
    );
}

/// What the journey printed, and how it ended (`None`: it outlived JOURNEY_TIMEOUT).
struct Journey {
    status: Option<std::process::ExitStatus>,
    stdout: String,
    stderr: String,
}

/// Runs node in a process group of its own and waits for node itself, not for the end of
/// its output: Chromium inherits node's pipes and, when node's watchdog exits without
/// closing the browser, keeps them open. Whatever happens, the group (Chromium too) is
/// killed afterwards and the output read so far is kept, so that a failure shows the steps
/// that passed and the one that did not.
async fn run_journey(mut node: tokio::process::Command) -> Journey {
    use tokio::io::AsyncReadExt;

    node.process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = node.spawn().expect("run node");
    let group = child.id().expect("node has a pid") as libc::pid_t;
    let collect = |pipe: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>| {
        let text = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = text.clone();
        let task = tokio::spawn(async move {
            let Some(mut pipe) = pipe else { return };
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        (text, task)
    };
    let (out_text, out_task) = collect(child.stdout.take().map(|p| Box::new(p) as _));
    let (err_text, err_task) = collect(child.stderr.take().map(|p| Box::new(p) as _));

    let status = tokio::time::timeout(JOURNEY_TIMEOUT, child.wait())
        .await
        .ok()
        .map(|s| s.expect("wait for node"));
    // SAFETY: kill(2) with a negative pid signals the process group node leads; the
    // group is ours (process_group(0) above) and its leader has not been reaped yet
    // when the timeout fired, or was just reaped by us: no other group has this id.
    unsafe {
        libc::kill(-group, libc::SIGKILL);
    }
    let _ = child.kill().await;
    // With the group gone the pipes close; a moment is enough to drain them.
    for task in [out_task, err_task] {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    let text = |t: std::sync::Arc<std::sync::Mutex<Vec<u8>>>| {
        String::from_utf8_lossy(&t.lock().unwrap()).into_owned()
    };
    let journey = Journey {
        status,
        stdout: text(out_text),
        stderr: text(err_text),
    };
    println!("{}", journey.stdout);
    eprintln!("{}", journey.stderr);
    journey
}
