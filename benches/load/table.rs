//! Results files (one `key<TAB>cell` line per measurement, one file per server) and the
//! one table that puts them side by side.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;

/// The rows, in order: key and label.
pub const ROWS: &[(&str, &str)] = &[
    ("startup", "start to ready (spawn -> `/readyz` 200)"),
    ("rss_idle", "RSS idle, after start"),
    ("discovery", "discovery document"),
    ("jwks", "JWKS"),
    ("client_credentials", "client_credentials token"),
    ("refresh", "refresh rotation (a chain per connection)"),
    (
        "refresh_bound",
        "refresh / its signing bound (half the client_credentials rate around it)",
    ),
    ("code_flow", "code flow with a session (authorize + token)"),
    (
        "code_flow_bound",
        "code flow / its signing bound (the same)",
    ),
    ("userinfo", "userinfo"),
    ("introspection", "introspection"),
    ("password_login", "password login (form POST, argon2id)"),
    ("storm_cc", "client_credentials during a login storm"),
    ("storm_logins", "storm sign-ins: ok / 429 / 503"),
    ("rss_storm", "RSS after the login storm"),
    ("rss_storm_later", "RSS 15 s after the login storm"),
    ("rss_peak", "peak RSS over the suite (VmHWM)"),
];

/// Appends one cell to a results file.
pub fn record(path: &Path, key: &str, cell: &str) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("open {}", path.display()))?;
    writeln!(f, "{key}\t{cell}")?;
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

/// The markdown table of `columns` (label, results file). Returns it and the number of
/// empty cells (a measurement that did not happen; "not run" when `partial`).
pub fn render(
    columns: &[(String, std::path::PathBuf)],
    notes: &[String],
    partial: bool,
) -> anyhow::Result<(String, usize)> {
    let data: Vec<_> = columns
        .iter()
        .map(|(_, p)| read(p))
        .collect::<Result<_, _>>()?;
    let mut out = String::from("| measurement |");
    for (label, _) in columns {
        out.push_str(&format!(" {label} |"));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(columns.len()));
    out.push('\n');
    let mut missing = 0;
    for (key, label) in ROWS {
        out.push_str(&format!("| {label} |"));
        for d in &data {
            let cell = d.get(*key).map_or_else(
                || {
                    missing += 1;
                    if partial {
                        "not run"
                    } else {
                        "**missing**"
                    }
                },
                String::as_str,
            );
            out.push_str(&format!(" {cell} |"));
        }
        out.push('\n');
    }
    for note in notes {
        out.push_str(&format!("\n{note}\n"));
    }
    Ok((out, missing))
}
