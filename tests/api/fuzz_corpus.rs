//! Replays every committed fuzz input (the seed corpus in `fuzz/corpus/<target>/` and the
//! found inputs in `fuzz/artifacts/<target>/`) through the same function its fuzz target
//! calls, so an ordinary `cargo test` keeps them fixed. See docs/fuzzing.md.

use std::path::{Path, PathBuf};

use latchkey::fuzzing;

/// The files of `fuzz/<kind>/<target>/`, sorted; none when the folder does not exist.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Feeds every input of `target` to `entry`; fails on a panic or a broken invariant,
/// naming the file.
fn replay(target: &str, entry: fn(&[u8]) -> Result<(), fuzzing::Violation>) {
    let corpus = inputs("corpus", target);
    assert!(!corpus.is_empty(), "no seed corpus for {target}");
    for path in corpus.iter().chain(&inputs("artifacts", target)) {
        let data = std::fs::read(path).unwrap();
        let outcome = std::panic::catch_unwind(|| entry(&data));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(violation)) => panic!("{}: {violation}", path.display()),
            Err(_) => panic!("{}: panicked", path.display()),
        }
    }
}

#[test]
fn authorize_inputs_replay() {
    replay("authorize", fuzzing::authorize);
}

#[test]
fn token_inputs_replay() {
    replay("token", fuzzing::token);
}

#[test]
fn basic_inputs_replay() {
    replay("basic", fuzzing::basic);
}

#[test]
fn redirect_uri_inputs_replay() {
    replay("redirect_uri", fuzzing::redirect_uri);
}

#[test]
fn jwt_inputs_replay() {
    replay("jwt", fuzzing::jwt);
}
