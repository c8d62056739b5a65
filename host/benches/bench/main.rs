//! Benchmarks: hsm-host next to native baselines measured in the same run, reported as
//! medians and ratios (this machine is noisy; ratios are what BENCHMARKS.md quotes).
//!
//! `cargo bench -p hsm-host` runs everything; `HSM_BENCH_SCALE=small` shrinks the data sets
//! for a quick look. Inputs are generated here: 100 DDL components (one build, patched
//! versions), a 1M-row table, a 1 GiB database.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hsm_host::backup::BackupConfig;
use hsm_host::runtime::Compiler;
use hsm_host::{Database, Migrator, Runtime, Safety};
use rusqlite::{Connection, params};

mod data;
mod fleet;
mod measure;
mod native;
mod on_postgres;
mod peers;
mod runs;
mod setup;

use data::*;
use fleet::fleet;
use measure::*;
use native::*;
use on_postgres::postgres;
use peers::*;
use runs::*;
use setup::*;

/// What every section shares.
struct Bench {
    scale: Scale,
    dir: PathBuf,
    migrations: PathBuf,
    /// A compile cache holding every DDL component.
    cache: PathBuf,
    hsm: &'static str,
}

/// One part of the benchmark, printing its rows.
type Section = fn(&Bench, &mut Report);

/// `HSM_BENCH_ONLY=status,function` runs only those sections.
fn selected(section: &str) -> bool {
    std::env::var("HSM_BENCH_ONLY")
        .map_or(true, |only| only.split(',').any(|s| s.trim() == section))
}

fn main() {
    let scale = scale();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().to_owned();
    // HSM_BENCH_KEEP=1 keeps the inputs (the 100 components, their compile cache) for a
    // profiler: `perf record hsm-host up --migrations <dir>/ddl --cache-dir <dir>/cache …`.
    let _work = match std::env::var_os("HSM_BENCH_KEEP") {
        Some(_) => {
            eprintln!("bench inputs kept in {}", dir.display());
            let _ = work.keep();
            None
        }
        None => Some(work),
    };
    let migrations = ddl_components(&dir, scale.migrations);
    let cache = dir.join("cache");
    migrator(&migrations, &cache, Safety::default());
    let bench = Bench {
        scale,
        dir,
        migrations,
        cache,
        hsm: env!("CARGO_BIN_EXE_hsm-host"),
    };
    let mut report = Report;
    println!(
        "| bench | hsm-host (median of {}) | native baseline | ratio | target |",
        bench.scale.runs
    );
    println!("|---|---|---|---|---|");
    let sections: [(&str, Section); 14] = [
        ("compile", compile),
        ("up", up),
        ("group", group),
        ("sql", sql),
        ("rss", rss),
        ("status", status),
        ("cold-status", cold_status),
        ("data", data),
        ("function", function),
        ("backup", backup),
        ("languages", languages),
        ("languages-data", languages_data),
        ("postgres", postgres),
        ("fleet", fleet),
    ];
    for (name, section) in sections {
        if selected(name) {
            section(&bench, &mut report);
        }
    }
}
