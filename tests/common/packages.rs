//! Where tests put the packages they write. `scripts/test.sh` checks every package under
//! `target/test-packages` with coremltools after the Rust tests, so each package a test writes
//! there is also checked for conformance.

use std::path::PathBuf;

/// A fresh, empty directory `target/test-packages/<test>` for one test's packages.
pub fn package_dir(test: &str) -> PathBuf {
    let dir = super::fixtures::materialised_root()
        .parent()
        .expect("target dir")
        .join("test-packages")
        .join(test);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("remove an earlier run's packages");
    }
    std::fs::create_dir_all(&dir).expect("create the package directory");
    dir
}
