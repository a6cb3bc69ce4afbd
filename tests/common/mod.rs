//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod agreement;

use std::path::PathBuf;

/// The root of the repository (for `tests/fixtures/...`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file under `tests/fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    repo_root().join("tests").join("fixtures").join(rel)
}

/// The path of a real test model (see `scripts/fetch-models.sh`).
///
/// Under CI (`CI` set) a missing model is a failure, never a skip. Elsewhere the test prints why
/// it skipped and returns `None`, so a developer without the downloads can still run the rest.
pub fn require_model(file: &str) -> Option<PathBuf> {
    let dir = hearth::store::model_dir().expect("no model folder: set HEARTH_MODELS");
    let path = dir.join(file);
    if path.is_file() {
        return Some(path);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "test model {} is missing (run scripts/fetch-models.sh)",
            path.display()
        );
    }
    eprintln!(
        "skipping: test model {} is missing (run scripts/fetch-models.sh)",
        path.display()
    );
    None
}
