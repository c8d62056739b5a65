//! The two compilers (`--compiler`): Winch's code keeps every limit Cranelift's does, each
//! compiler's code has its own place in the cache, and `auto` gives interpreters Winch.

use std::path::Path;

use hsm_host::runtime::Compiler;
use hsm_host::{Error, Runtime};
use hsm_test_artifacts::{PY_V008_ADD_DISPLAY_NAMES, lang_guest};

use crate::sandbox::{FAST, timed_attack_in};
use crate::support::{Env, applied};

fn winch() -> Runtime {
    Runtime::with_limits(FAST)
        .unwrap()
        .with_compiler(Compiler::Winch)
}

#[test]
fn winch_code_is_stopped_at_the_time_and_memory_limits() {
    for (attack, expected) in [
        ("infinite_loop", "exceeded its time limit of 2 s"),
        ("memory_bomb", "exceeded its memory limit of 64.0 MiB"),
        ("stack_overflow", "call stack exhausted"),
    ] {
        let (cause, _) = timed_attack_in(winch(), attack);
        assert!(cause.contains(expected), "{attack}: {cause}");
    }
    // A loop in metadata() too: epoch interruption reaches Winch's code while it loads.
    match winch().load_file(Path::new(hsm_test_artifacts::GUEST_METADATA_LOOPS)) {
        Err(Error::InvalidComponent { reason, .. }) => {
            assert!(reason.contains("did not return within"), "{reason}")
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a looping metadata() loaded"),
    }
}

/// The compiled artifacts in a cache directory.
fn artifacts(cache: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".cwasm"))
        .collect();
    names.sort();
    names
}

#[test]
fn each_compiler_keeps_its_own_code_in_the_cache_and_auto_uses_cranelifts_for_small_components() {
    let cache = tempfile::tempdir().unwrap();
    let component = Path::new(hsm_test_artifacts::V001_INITIAL_SCHEMA);
    let load = |compiler| {
        let runtime = Runtime::new()
            .unwrap()
            .with_cache_dir(cache.path())
            .with_compiler(compiler);
        let loaded = runtime.load_file(component).unwrap();
        assert_eq!(loaded.metadata().version, 1);
        runtime.is_compiled(&loaded.info())
    };
    assert!(load(Compiler::Winch));
    let winch = artifacts(cache.path());
    assert_eq!(winch.len(), 1, "{winch:?}");
    assert!(load(Compiler::Cranelift));
    let both = artifacts(cache.path());
    assert_eq!(both.len(), 2, "Cranelift's code replaced Winch's: {both:?}");
    // A small component under auto: Cranelift's code, already there, nothing compiled.
    assert!(load(Compiler::Auto));
    assert_eq!(artifacts(cache.path()), both);
}

#[test]
fn the_compiler_is_chosen_on_the_command_line_or_in_the_settings_file_and_checked() {
    let env = Env::with_examples();
    let cache = env.dir.path().join("cache");
    let cache = cache.to_str().unwrap();
    env.hsm(&["up", "3", "--compiler", "winch", "--cache-dir", cache, "-v"])
        .assert_success();
    let log = std::fs::read_to_string(env.log_file()).unwrap();
    assert!(log.contains("compiling with Winch"), "{log}");
    assert_eq!(applied(&env.open()), vec![1, 2, 3]);

    let config = env.dir.path().join("hsm.toml");
    std::fs::write(&config, "compiler = \"cranelift\"\n").unwrap();
    let config = config.to_str().unwrap();
    env.hsm(&["up", "--cache-dir", cache, "--config", config])
        .assert_success();
    let log = std::fs::read_to_string(env.log_file()).unwrap();
    assert!(log.contains("compiling with Cranelift"), "{log}");
    assert_eq!(applied(&env.open()).len(), 7);

    let refused = env.hsm(&["status", "--compiler", "llvm"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("auto, cranelift, winch"),
        "{}",
        refused.stderr
    );
    std::fs::write(config, "compiler = \"gcc\"\n").unwrap();
    let refused = env.hsm(&["status", "--config", config]);
    assert!(
        refused
            .stderr
            .contains("compiler: unknown compiler \"gcc\""),
        "{}",
        refused.stderr
    );
}

#[test]
fn auto_compiles_an_interpreter_with_winch_and_its_migration_applies() {
    let env = Env::with_examples();
    env.add(lang_guest(PY_V008_ADD_DISPLAY_NAMES));
    let cache = env.dir.path().join("cache");
    let cache = cache.to_str().unwrap();
    env.hsm(&["up", "--cache-dir", cache]).assert_success();
    let log = std::fs::read_to_string(env.log_file()).unwrap();
    assert!(
        log.lines()
            .any(|l| l.to_lowercase().contains("v008_add_display_names")
                && l.contains("compiling with Winch")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("v001_initial_schema") && l.contains("with Cranelift")),
        "{log}"
    );
    assert_eq!(applied(&env.open()), (1..=8).collect::<Vec<_>>());
    // The next run loads Winch's code from the cache: nothing compiled.
    env.hsm(&["down", "7", "--cache-dir", cache])
        .assert_success();
    env.hsm(&["up", "--cache-dir", cache]).assert_success();
    let log = std::fs::read_to_string(env.log_file()).unwrap();
    assert_eq!(log.matches("compiling with").count(), 8, "{log}");
    assert_eq!(applied(&env.open()).len(), 8);
}

/// `auto` loads an interpreter with Winch's code and keeps it; once `--compiler cranelift` has
/// left Cranelift's code in the cache (for a long data migration, say), `auto` prefers it.
#[test]
fn auto_prefers_cranelifts_code_for_an_interpreter_once_the_cache_holds_it() {
    let cache = tempfile::tempdir().unwrap();
    let path = Path::new(lang_guest(PY_V008_ADD_DISPLAY_NAMES));
    let size = std::fs::metadata(path).unwrap().len();
    let runtime = |compiler| {
        Runtime::new()
            .unwrap()
            .with_cache_dir(cache.path())
            .with_compiler(compiler)
    };

    let auto = runtime(Compiler::Auto);
    let checksum = auto.load_file(path).unwrap().info().checksum;
    assert_eq!(auto.cached_compiler(&checksum, size), Some(Compiler::Winch));
    assert_eq!(artifacts(cache.path()).len(), 1);

    let cranelift = runtime(Compiler::Cranelift);
    assert_eq!(cranelift.cached_compiler(&checksum, size), None);
    assert_eq!(cranelift.load_file(path).unwrap().metadata().version, 8);
    assert_eq!(artifacts(cache.path()).len(), 2, "Winch's and Cranelift's");

    let auto = runtime(Compiler::Auto);
    assert_eq!(
        auto.cached_compiler(&checksum, size),
        Some(Compiler::Cranelift)
    );
    assert_eq!(auto.load_file(path).unwrap().metadata().version, 8);
    assert_eq!(artifacts(cache.path()).len(), 2, "nothing compiled again");
}
