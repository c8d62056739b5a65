//! The compile cache: unchanged components compile once; corrupt, foreign or unsafely stored
//! entries are recompiled, never loaded.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::{Env, Run};

/// Loads every component (a dry run on a database that does not exist changes nothing).
fn load_with_cache(env: &Env, cache: &Path) -> Run {
    let run = env.hsm(&[
        "up",
        "--dry-run",
        "-v",
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    run.assert_success();
    run
}

fn count(run: &Run, needle: &str) -> usize {
    run.stderr.matches(needle).count()
}

/// Report lines without their `(12 ms)` timings, which vary from run to run.
fn without_timings(report: &str) -> Vec<String> {
    report
        .lines()
        .map(|line| match (line.find(" ("), line.find(" ms)")) {
            (Some(start), Some(end)) if start < end => {
                format!("{}{}", &line[..start], &line[end + 4..])
            }
            _ => line.to_owned(),
        })
        .collect()
}

fn artifacts(cache: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(cache)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    files.sort();
    files
}

#[test]
fn unchanged_components_compile_once() {
    let env = Env::with_examples();
    let cache = env.dir.path().join("cache");
    let first = load_with_cache(&env, &cache);
    assert_eq!(count(&first, ": compiling"), 7, "{}", first.stderr);
    assert_eq!(
        std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(artifacts(&cache).len(), 7);

    let second = load_with_cache(&env, &cache);
    assert_eq!(count(&second, ": compiling"), 0, "{}", second.stderr);
    assert_eq!(count(&second, "loaded from the compile cache"), 7);
    assert_eq!(
        without_timings(&first.stdout),
        without_timings(&second.stdout),
        "the cached metadata says the same"
    );

    // Migrations run from cached components just the same.
    env.hsm(&["up", "--cache-dir", cache.to_str().unwrap()])
        .assert_success();
}

#[test]
fn corrupt_and_foreign_entries_are_recompiled_not_loaded() {
    let env = Env::with_examples();
    let cache = env.dir.path().join("cache");
    load_with_cache(&env, &cache);
    let files = artifacts(&cache);
    // Garbage in one entry, a truncated artifact in another, and two valid artifacts swapped.
    std::fs::write(&files[0], b"garbage").unwrap();
    let whole = std::fs::read(&files[1]).unwrap();
    std::fs::write(&files[1], &whole[..whole.len() / 2]).unwrap();
    let (a, b) = (
        std::fs::read(&files[2]).unwrap(),
        std::fs::read(&files[3]).unwrap(),
    );
    std::fs::write(&files[2], &b).unwrap();
    std::fs::write(&files[3], &a).unwrap();

    let run = load_with_cache(&env, &cache);
    assert_eq!(count(&run, ": compiling"), 4, "{}", run.stderr);
    assert_eq!(count(&run, "loaded from the compile cache"), 3);
    // The entries were rewritten: next time everything comes from the cache.
    let again = load_with_cache(&env, &cache);
    assert_eq!(count(&again, ": compiling"), 0, "{}", again.stderr);
}

#[test]
fn a_cache_directory_others_can_write_is_not_used() {
    let env = Env::with_examples();
    let cache = env.dir.path().join("shared-cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let run = load_with_cache(&env, &cache);
    assert!(
        run.stderr.contains("compile cache disabled"),
        "{}",
        run.stderr
    );
    assert_eq!(count(&run, ": compiling"), 7);
    assert!(artifacts(&cache).is_empty(), "nothing may be written there");
}

#[test]
fn status_reads_metadata_from_the_cache_without_loading_any_component() {
    let env = Env::with_examples();
    let cache = env.dir.path().join("cache");
    let cache_arg = cache.to_str().unwrap();
    // The cache trusts a file's identity only once it has not changed for a second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.hsm(&["up", "3", "--cache-dir", cache_arg])
        .assert_success();

    let status = env.hsm(&["status", "-v", "--json", "--cache-dir", cache_arg]);
    status.assert_success();
    assert_eq!(count(&status, ": compiling"), 0, "{}", status.stderr);
    assert_eq!(count(&status, "loaded from the compile cache"), 0);
    let parsed: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(parsed["current_version"], 3);
    assert_eq!(parsed["pending"].as_array().unwrap().len(), 4);
    assert_eq!(parsed["pending"][0]["name"], "add_sessions_table");

    // A file replaced under the same name is not described from memory (it is also too new to
    // be trusted by identity), and not compiled either: it is listed as not read yet, and its
    // applied version as without its file, until a run reads it.
    let replaced = env.migrations.join("v002_add_email_column.wasm");
    std::fs::copy(hsm_test_artifacts::GUEST_V2_CHANGED, &replaced).unwrap();
    let changed = env.hsm(&["status", "-v", "--json", "--cache-dir", cache_arg]);
    changed.assert_success();
    assert_eq!(count(&changed, ": compiling"), 0, "{}", changed.stderr);
    assert_eq!(count(&changed, "loaded from the compile cache"), 0);
    let parsed: serde_json::Value = serde_json::from_str(&changed.stdout).unwrap();
    assert_eq!(
        parsed["unread_components"],
        serde_json::json!([replaced.to_str().unwrap()])
    );
    assert_eq!(parsed["missing_components"], serde_json::json!([2]));
    // `up` reads it, and refuses it as changed; `status` then knows it.
    env.hsm(&["up", "--cache-dir", cache_arg])
        .assert_code(1)
        .assert_stderr_contains("now has sha256");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.hsm(&["up", "--dry-run", "--cache-dir", cache_arg]);
    let parsed: serde_json::Value = serde_json::from_str(
        &env.hsm(&["status", "--json", "--cache-dir", cache_arg])
            .stdout,
    )
    .unwrap();
    assert_eq!(parsed["changed_components"], serde_json::json!([2]));
}

/// A migrator over `env`'s migrations whose files the cache `cache` has compiled and
/// remembered (settled: a file younger than a second is always read and hashed).
fn migrator_with_compiled_files(env: &Env, cache: &Path) -> hsm_host::Migrator {
    let load = || {
        let runtime = hsm_host::Runtime::new().unwrap().with_cache_dir(cache);
        hsm_host::Migrator::load_dir_with(runtime, &env.migrations).unwrap()
    };
    load();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    load();
    load()
}

#[test]
fn components_loaded_a_step_ahead_apply_and_are_stored_as_they_are() {
    let env = Env::with_examples();
    let cache = env.dir.path().join("cache");
    let migrator = migrator_with_compiled_files(&env, &cache);
    std::fs::create_dir_all(env.db.parent().unwrap()).unwrap();
    let db = hsm_host::Database::open(&env.db).unwrap();
    let report = migrator.up(&db, None).unwrap();
    assert_eq!(report.steps.len(), 7);
    // What each row keeps is the file's exact bytes (stored deflated, read back whole).
    let conn = env.open();
    for info in migrator.migrations() {
        let stored = db
            .tracking()
            .stored_component(&conn, &info.checksum)
            .unwrap()
            .unwrap();
        assert_eq!(stored, std::fs::read(&info.path).unwrap(), "{info:?}");
    }
    let stored_size: i64 = conn
        .query_row("SELECT sum(length(bytes)) FROM hsm_components", [], |r| {
            r.get(0)
        })
        .unwrap();
    let file_size: u64 = migrator
        .migrations()
        .iter()
        .map(|info| std::fs::metadata(&info.path).unwrap().len())
        .sum();
    assert!(
        (stored_size as u64) * 2 < file_size,
        "{stored_size} of {file_size}"
    );
}

#[test]
fn damaged_stored_forms_in_the_cache_are_made_again_from_the_components() {
    let env = Env::with_examples();
    let cache = env.dir.path().join("cache");
    let migrator = migrator_with_compiled_files(&env, &cache);
    // Every kept deflated form is damaged: truncated, flipped, or not one at all.
    let forms: Vec<PathBuf> = std::fs::read_dir(cache.join("stored"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(forms.len(), 7);
    for (i, form) in forms.iter().enumerate() {
        let mut bytes = std::fs::read(form).unwrap();
        match i % 3 {
            0 => bytes.truncate(bytes.len() / 2),
            1 => *bytes.last_mut().unwrap() ^= 0xff,
            _ => bytes = b"not a stored form".to_vec(),
        }
        std::fs::write(form, bytes).unwrap();
    }
    std::fs::create_dir_all(env.db.parent().unwrap()).unwrap();
    let db = hsm_host::Database::open(&env.db).unwrap();
    migrator.up(&db, None).unwrap();
    let conn = env.open();
    for info in migrator.migrations() {
        let stored = db
            .tracking()
            .stored_component(&conn, &info.checksum)
            .unwrap();
        assert_eq!(
            stored.unwrap(),
            std::fs::read(&info.path).unwrap(),
            "{info:?}"
        );
    }
}

/// Only a file the cache knows, unchanged, is loaded when its step comes; any other is loaded
/// before the first step, so a replaced one stops the run before anything changes.
#[test]
fn a_file_replaced_after_it_was_described_stops_the_run_before_anything_changes() {
    let env = Env::with_examples();
    let cache = env.dir.path().join("cache");
    let migrator = migrator_with_compiled_files(&env, &cache);
    // The fourth migration's file becomes another component after it was described.
    let fourth = migrator.migrations()[3].path.clone();
    std::fs::copy(hsm_test_artifacts::GUEST_FAILS_UP, &fourth).unwrap();
    std::fs::create_dir_all(env.db.parent().unwrap()).unwrap();
    let db = hsm_host::Database::open(&env.db).unwrap();
    let error = migrator.up(&db, None).unwrap_err().to_string();
    assert!(
        error.contains("changed while hsm-host was running"),
        "{error}"
    );
    assert!(
        error.contains(fourth.file_name().unwrap().to_str().unwrap()),
        "{error}"
    );
    assert!(crate::support::applied(&env.open()).is_empty());
}

/// Bytes of every regular file under `dir`.
fn size_of(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        // The cache's note of its own size, not an entry.
        if entry.file_name() == "usage" {
            continue;
        }
        let meta = entry.path().symlink_metadata().unwrap();
        total += match meta.is_dir() {
            true => size_of(&entry.path()),
            false => meta.len(),
        };
    }
    total
}

/// One cap holds everything the cache keeps: a run past it keeps the newest entries and drops
/// the least recently used; `gc` applies a lowered cap to what is there; nothing that loads is
/// lost (a dropped component is compiled again).
#[test]
fn the_compile_cache_stays_under_one_size_cap() {
    let env = Env::with_examples();
    let cache = env.dir.path().join("cache");
    load_with_cache(&env, &cache);
    let full = size_of(&cache);
    let largest = artifacts(&cache)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .max()
        .unwrap();
    assert!(full > 2 * largest, "seven components, {full} bytes");

    // The smallest cap (1 MiB), under what the seven take: what stays fits under it.
    let cap: u64 = 1 << 20;
    assert!(full > cap + largest, "{full} bytes");
    let cap_arg = "1MiB".to_owned();
    let capped = env.dir.path().join("capped");
    let c = capped.to_str().unwrap();
    env.hsm(&["up", "--dry-run", "--cache-dir", c, "--cache-max", &cap_arg])
        .assert_success();
    let kept = size_of(&capped);
    assert!(kept <= cap, "{kept} > cap {cap}");
    assert!(artifacts(&capped).len() < 7, "{:?}", artifacts(&capped));
    // The newest compile is the last one loaded: it stays.
    assert!(!artifacts(&capped).is_empty());
    // Still everything loads and runs.
    env.hsm(&["up", "--cache-dir", c, "--cache-max", &cap_arg])
        .assert_success();

    // `gc` holds the full cache to a lowered cap and says so.
    let gc = env.hsm(&[
        "gc",
        "--json",
        "--cache-dir",
        cache.to_str().unwrap(),
        "--cache-max",
        &cap_arg,
    ]);
    gc.assert_success();
    let report: serde_json::Value = serde_json::from_str(&gc.stdout).unwrap();
    let trimmed = &report["compile_cache"];
    assert_eq!(trimmed["bytes_before"], full, "{}", gc.stdout);
    assert!(
        trimmed["entries_removed"].as_u64().unwrap() > 0,
        "{}",
        gc.stdout
    );
    assert_eq!(trimmed["bytes_after"], size_of(&cache), "{}", gc.stdout);
    assert!(size_of(&cache) <= cap);
}

/// `--cache-dir` naming the project's own directory by mistake, with the smallest cap: the run
/// works and the database, its backups and the migrations are all still there afterwards (the
/// trim takes only files the cache named).
#[test]
fn a_cache_dir_that_holds_the_project_loses_nothing_of_it() {
    let env = Env::with_examples();
    let project = env.dir.path();
    env.hsm(&["up", "3"]).assert_success();
    let mut before: Vec<PathBuf> = Vec::new();
    let mut walk = vec![project.to_path_buf()];
    while let Some(dir) = walk.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            match path.is_dir() {
                true => walk.push(path),
                false => before.push(path),
            }
        }
    }
    let here = project.to_str().unwrap();
    env.hsm(&["up", "--cache-dir", here, "--cache-max", "1MiB"])
        .assert_success();
    env.hsm(&["gc", "--cache-dir", here, "--cache-max", "1MiB"])
        .assert_success();
    for path in &before {
        assert!(path.exists(), "{} was removed", path.display());
    }
    assert_eq!(crate::support::applied(&env.open()), [1, 2, 3, 4, 5, 6, 7]);
}
