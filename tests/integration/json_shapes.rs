//! The `--json` output of every command keeps its documented shape: each command's output is
//! reduced to its shape (keys, and the type of each value) and compared with the snapshot in
//! `tests/fixtures/json/`. A change of shape must change the snapshot (and the README's JSON
//! section) on purpose: run with `HSM_UPDATE_SNAPSHOTS=1` to rewrite them.

use serde_json::{Map, Value};

use crate::support::Env;

/// Keys kept, values replaced by their type; a list by the shape of its first item.
fn shape(value: &Value) -> Value {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(_) => "number".into(),
        Value::String(_) => "string".into(),
        Value::Array(items) => Value::Array(items.first().map(shape).into_iter().collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), shape(v)))
                .collect::<Map<_, _>>(),
        ),
    }
}

fn check(name: &str, stdout: &str) {
    let value: Value =
        serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{name}: {e}: {stdout}"));
    assert_eq!(
        value["shape_version"], 2,
        "{name}: every document says the version of its shape"
    );
    let found = serde_json::to_string_pretty(&shape(&value)).unwrap() + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/json")
        .join(format!("{name}.json"));
    if std::env::var_os("HSM_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &found).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (HSM_UPDATE_SNAPSHOTS=1 writes it)", path.display()));
    assert_eq!(found, expected, "the --json shape of `{name}` changed");
}

#[test]
fn every_commands_json_keeps_its_shape() {
    let env = Env::with_examples();
    // The compile cache describes a file (for `status`) once it has been settled a second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let json = |args: &[&str]| {
        let run = env.hsm(&[args, &["--json"]].concat());
        (run.code, run.stdout)
    };
    let (_, out) = json(&["up", "--dry-run"]);
    check("up-dry-run", &out);
    let (_, out) = json(&["up", "6"]);
    check("up", &out);
    let (_, out) = json(&["redo"]);
    check("redo", &out);
    let (_, out) = json(&["status"]);
    check("status", &out);
    let (_, out) = json(&["down", "--dry-run"]);
    check("down-dry-run", &out);
    let (_, out) = json(&["down"]);
    check("down", &out);
    let (_, out) = json(&["backup"]);
    check("backup", &out);
    let (_, out) = json(&["restore"]);
    check("restore-list", &out);
    let (_, out) = json(&["test"]);
    check("test", &out);
    let wasm = env.migrations.join("v001_initial_schema.wasm");
    let (_, out) = json(&["inspect", wasm.to_str().unwrap()]);
    check("inspect", &out);
    let (code, out) = json(&["up", "99"]);
    assert_eq!(code, 2);
    check("error", &out);
}
