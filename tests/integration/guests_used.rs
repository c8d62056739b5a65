//! Every guest under `tests/guests/` is there for a test: one that no test or bench names is
//! dead weight in every build (and a sign a test was lost).

use std::path::Path;

#[test]
fn every_test_guest_is_used_by_a_test_or_a_bench() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // Every Rust file of the tests, the bench and the crates' own unit tests.
    let mut sources = String::new();
    let mut dirs: Vec<_> = [
        "tests/integration",
        "tests/peak_memory",
        "tests/postgres",
        "host",
        "sandbox",
        "sources",
    ]
    .iter()
    .map(|dir| root.join(dir))
    .collect();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && !path.ends_with("guests_used.rs")
            {
                sources.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut unused = Vec::new();
    for entry in std::fs::read_dir(root.join("tests/guests")).unwrap() {
        let path = entry.unwrap().path();
        if !path.join("Cargo.toml").is_file() {
            continue;
        }
        let constant = path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .replace('-', "_")
            .to_uppercase();
        if !sources.contains(&constant) {
            unused.push(constant);
        }
    }
    assert!(
        unused.is_empty(),
        "guests no test or bench uses (remove them, or add the test): {unused:?}"
    );
}
