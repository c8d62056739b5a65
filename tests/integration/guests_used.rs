//! Every guest under `tests/guests/` is there for a test: one that no test or bench names is
//! dead weight in every build (and a sign a test was lost).

use std::path::Path;

#[test]
fn every_test_guest_is_used_by_a_test_or_a_bench() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let sources: String = ["tests/integration", "tests/peak_memory", "host/benches"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(root.join(dir)).unwrap())
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .filter(|path| !path.ends_with("guests_used.rs"))
        .map(|path| std::fs::read_to_string(path).unwrap())
        .collect();
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
