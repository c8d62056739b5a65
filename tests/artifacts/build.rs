//! Builds every guest component from source, so `cargo test` on a fresh clone needs nothing
//! else: the example migrations (`migrations-wasm/`) and the test guests (`tests/guests/`).
//!
//! Each is a workspace of its own, built by a nested cargo for `wasm32-wasip2` with its target
//! dir inside OUT_DIR (no contention for the outer build's lock). The generated `artifacts.rs`
//! holds one `pub const NAME: &str = "<path of the .wasm>"` per guest, plus `EXAMPLES`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.join("../..").canonicalize().unwrap();
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let target_dir = out_dir.join("guests");

    // The guest workspaces themselves (so a new guest crate is built), and below, every file
    // the guests were compiled from as cargo's dep-info lists it (the SDK, the WIT).
    for watched in ["migrations-wasm", "tests/guests"] {
        watch(&root.join(watched));
    }

    let examples = build_workspace(&root.join("migrations-wasm"), &target_dir);
    let test_guests = build_workspace(&root.join("tests/guests"), &target_dir);

    let wasm_dir = target_dir.join(TARGET).join("release");
    for name in examples.iter().chain(&test_guests) {
        watch_dep_info(&wasm_dir.join(format!("{name}.d")));
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("guest-sdk/Cargo.toml").display()
    );
    let mut code = String::new();
    for name in examples.iter().chain(&test_guests) {
        let path = wasm_dir.join(format!("{name}.wasm"));
        assert!(
            path.is_file(),
            "cargo built {name} but {} is missing",
            path.display()
        );
        writeln!(
            code,
            "/// `{name}` built for {TARGET}.\npub const {}: &str = {:?};",
            name.to_uppercase(),
            path.display().to_string()
        )
        .unwrap();
    }
    lang_guests(&root, &out_dir, &mut code);
    let list: Vec<String> = examples.iter().map(|n| n.to_uppercase()).collect();
    writeln!(
        code,
        "/// The example migrations, in version order.\npub const EXAMPLES: &[&str] = &[{}];",
        list.join(", ")
    )
    .unwrap();
    std::fs::write(out_dir.join("artifacts.rs"), code).unwrap();
}

/// Python and JavaScript guests, built with the tools `scripts/guest-tools.sh` installs in
/// `target/guest-tools/`: `PY_<NAME>` / `JS_<NAME>` constants, `None` when the tool is missing
/// (the tests that need them then fail and say how to install it).
fn lang_guests(root: &Path, out_dir: &Path, code: &mut String) {
    let tools = std::env::var_os("HSM_GUEST_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/guest-tools"));
    let python = Lang {
        prefix: "PY",
        tool: tools.join("python/bin/componentize-py"),
        app: "app.py",
        helper: root.join("guest-sdk/python/hsm_guest.py"),
        dirs: [
            root.join("migrations-wasm/python"),
            root.join("tests/lang-guests/python"),
        ],
    };
    let js = Lang {
        prefix: "JS",
        tool: tools.join("js/node_modules/.bin/componentize-js"),
        app: "app.js",
        helper: root.join("guest-sdk/js/hsm-guest.js"),
        dirs: [
            root.join("migrations-wasm/js"),
            root.join("tests/lang-guests/js"),
        ],
    };
    let wit = root.join("wit");
    println!(
        "cargo:rerun-if-changed={}",
        wit.join("migration.wit").display()
    );
    println!("cargo:rerun-if-env-changed=HSM_GUEST_TOOLS");
    let mut builds = Vec::new();
    for lang in [&python, &js] {
        println!("cargo:rerun-if-changed={}", lang.tool.display());
        println!("cargo:rerun-if-changed={}", lang.helper.display());
        for dir in &lang.dirs {
            watch(dir);
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let source = entry.path();
                if !source.join(lang.app).is_file() {
                    continue;
                }
                let name = format!(
                    "{}_{}",
                    lang.prefix,
                    source.file_name().unwrap().to_str().unwrap().to_uppercase()
                );
                if !lang.tool.is_file() {
                    writeln!(code, "/// Not built: its tool is missing.\npub const {name}: Option<&str> = None;").unwrap();
                    continue;
                }
                let stage = out_dir.join("lang").join(&name);
                let _ = std::fs::remove_dir_all(&stage);
                std::fs::create_dir_all(&stage).unwrap();
                std::fs::copy(source.join(lang.app), stage.join(lang.app)).unwrap();
                std::fs::copy(&lang.helper, stage.join(lang.helper.file_name().unwrap())).unwrap();
                let wasm = out_dir.join("lang").join(format!("{name}.wasm"));
                let mut cmd = Command::new(&lang.tool);
                cmd.current_dir(&stage);
                if lang.prefix == "PY" {
                    cmd.arg("-d")
                        .arg(&wit)
                        .args(["-w", "migration-with-functions"]);
                    cmd.args(["componentize", "app", "-o"]).arg(&wasm);
                } else {
                    cmd.arg(lang.app).arg("-w").arg(&wit);
                    cmd.args([
                        "-n",
                        "migration-with-functions",
                        "-d",
                        "http",
                        "fetch-event",
                        "-o",
                    ]);
                    cmd.arg(&wasm);
                }
                let child = cmd
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot run {}: {e}", lang.tool.display()));
                builds.push((name, wasm, child));
            }
        }
    }
    for (name, wasm, child) in builds {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success() && wasm.is_file(),
            "building {name} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        writeln!(
            code,
            "/// `{name}`, built from source.\npub const {name}: Option<&str> = Some({:?});",
            wasm.display().to_string()
        )
        .unwrap();
    }
}

/// A language whose guests a tool builds from one source file and the SDK's helper module.
struct Lang {
    prefix: &'static str,
    tool: PathBuf,
    app: &'static str,
    helper: PathBuf,
    dirs: [PathBuf; 2],
}

/// Builds a guest workspace and returns its members' crate names (sorted).
fn build_workspace(workspace: &Path, target_dir: &Path) -> Vec<String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["build", "--release", "--target", TARGET])
        .env("CARGO_TARGET_DIR", target_dir);
    // Flags meant for the host build (coverage, sanitizers, clippy) must not reach the guests.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let output = cmd.output().expect("cannot run cargo to build the guests");
    if !output.status.success() {
        panic!(
            "building the guest components in {} failed.\n\
             If the error says the wasm32-wasip2 target is not installed, run\n    \
             rustup target add wasm32-wasip2\n\n{}",
            workspace.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut members: Vec<String> = std::fs::read_dir(workspace)
        .unwrap()
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_name()?.to_str()?.to_owned();
            (path.join("Cargo.toml").is_file()).then_some(name.replace('-', "_"))
        })
        .collect();
    members.sort();
    members
}

/// Asks cargo to rerun this script when a file below `dir` changes or is added. Cargo scans a
/// watched directory recursively, so a `target/` left by building guests by hand counts too:
/// that costs one rebuild here, while not watching directories missed new guest crates.
fn watch(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    println!("cargo:rerun-if-changed={}", dir.display());
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            watch(&path);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// Asks cargo to rerun this script when any file a guest was built from changes: the files
/// listed in the guest's dep-info (`<output>: <input> <input> ...`, spaces in paths escaped).
fn watch_dep_info(dep_info: &Path) {
    let text = std::fs::read_to_string(dep_info)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dep_info.display()));
    for line in text.lines() {
        let Some((_, inputs)) = line.split_once(": ") else {
            continue;
        };
        let mut path = String::new();
        let mut chars = inputs.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&' ') => path.push(chars.next().unwrap()),
                ' ' => {
                    if !path.is_empty() {
                        println!("cargo:rerun-if-changed={path}");
                    }
                    path.clear();
                }
                _ => path.push(c),
            }
        }
        if !path.is_empty() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
