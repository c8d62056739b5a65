//! `hsm-host fleet`: one migration set, many databases. The set is loaded (scanned and
//! compiled) once and shared; each target keeps everything a single run has (its lock, backup,
//! checks and tracking tables) and its own outcome. No cross-target atomicity: a rerun goes on
//! from where each target stands.
//!
//! Targets run `parallel` at a time; the first `canary` ones run alone, one after another, and
//! any failure among them stops the fleet. After a failure, `OnError::Stop` starts no new
//! target (running ones finish); `OnError::Continue` runs them all. Each outcome is handed to
//! the caller as its target finishes and not kept: a fleet of thousands streams its report.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::migrator::{Migrator, RunReport};
use crate::plan::Direction;
use crate::project::Project;
use crate::server::ServerProject;

mod targets;
pub use targets::{from_lines, read_targets};

/// What to do after a target failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Start no new target; the running ones finish.
    #[default]
    Stop,
    /// Run every target.
    Continue,
}

/// How a fleet runs.
#[derive(Debug, Clone, Copy)]
pub struct FleetOptions {
    /// Targets migrating at once (at least 1).
    pub parallel: usize,
    /// After a failure.
    pub on_error: OnError,
    /// The first targets, run one by one before the rest; any failure among them stops the
    /// fleet whatever `on_error` says.
    pub canary: usize,
}

impl Default for FleetOptions {
    fn default() -> Self {
        Self {
            parallel: 1,
            on_error: OnError::Stop,
            canary: 0,
        }
    }
}

/// How one target ended.
#[derive(Debug)]
pub enum Outcome {
    /// Its run finished (perhaps with nothing to do).
    Done(RunReport),
    /// Its run failed: what a single run would have said.
    Failed(Error),
    /// Not started: an earlier failure stopped the fleet.
    NotStarted,
}

/// One target's outcome, handed over as it finishes.
#[derive(Debug)]
pub struct TargetOutcome {
    /// The database: its path, or its URL without the password.
    pub target: String,
    /// How it ended.
    pub outcome: Outcome,
    /// How long its run took.
    pub duration: Duration,
}

/// The counts of a fleet's outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FleetSummary {
    /// Targets in the fleet.
    pub targets: usize,
    /// Runs that finished.
    pub succeeded: usize,
    /// Runs that failed.
    pub failed: usize,
    /// Targets an earlier failure kept from starting.
    pub not_started: usize,
}

impl FleetSummary {
    fn count(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Done(_) => self.succeeded += 1,
            Outcome::Failed(_) => self.failed += 1,
            Outcome::NotStarted => self.not_started += 1,
        }
    }
}

/// Runs `up` (or `down`) to `version` on every target with the set `project` names, loaded
/// once (once for SQLite files, once for servers: they read SQL sets' markers differently).
/// `server` makes the project of a server target. `on_done` receives each target's outcome as
/// it finishes (from the worker that ran it), `NotStarted` ones at the end.
///
/// # Errors
/// Loading the set (as [`Project::migrator`]); a target's failure is its outcome, not an error.
pub fn run(
    project: &Project,
    server: &(dyn Fn(&str) -> Result<ServerProject> + Sync),
    targets: &[PathBuf],
    direction: Direction,
    version: Option<u64>,
    options: FleetOptions,
    on_done: &(dyn Fn(TargetOutcome) + Sync),
) -> Result<FleetSummary> {
    let is_url = |t: &PathBuf| t.to_str().is_some_and(crate::server::is_server_url);
    let local = match targets.iter().any(|t| !is_url(t)) {
        false => None,
        true => Some(match direction {
            Direction::Up => project.migrator_with_migrations()?,
            Direction::Down => project.migrator()?,
        }),
    };
    let remote = match targets
        .iter()
        .find_map(|t| t.to_str().filter(|_| is_url(t)))
    {
        Some(url) => Some(server(url)?.migrator()?),
        None => None,
    };
    // A version the set does not have is the command line's mistake, not every target's.
    if let (Direction::Up, Some(target)) = (direction, version) {
        let known = [local.as_ref(), remote.as_ref()]
            .into_iter()
            .flatten()
            .any(|m| m.migrations().iter().any(|c| c.version() == target));
        if !known {
            return Err(Error::Fleet(format!(
                "there is no migration with version {target} in {}",
                project.migrations().display()
            )));
        }
    }
    let sets = Sets {
        project,
        server,
        local: local.as_ref(),
        remote: remote.as_ref(),
    };
    let summary = Mutex::new(FleetSummary {
        targets: targets.len(),
        ..FleetSummary::default()
    });
    let stop = AtomicBool::new(false);
    let report = |outcome: TargetOutcome| {
        let failed = matches!(outcome.outcome, Outcome::Failed(_));
        lock(&summary).count(&outcome.outcome);
        on_done(outcome);
        failed
    };
    let one = |target: &PathBuf| -> TargetOutcome {
        let started = Instant::now();
        let shown_target = shown(target);
        // Every log line of the run names its target (runs interleave under --parallel).
        let span = tracing::info_span!("target", target = %shown_target);
        let _entered = span.enter();
        let outcome = match sets.run_one(target, direction, version) {
            Ok(run) => Outcome::Done(run),
            Err(error) => {
                tracing::error!("{shown_target} failed: {error}");
                Outcome::Failed(error)
            }
        };
        TargetOutcome {
            target: shown_target,
            outcome,
            duration: started.elapsed(),
        }
    };
    // Which targets started (a byte each): the others are reported not started at the end.
    let started: Vec<AtomicBool> = targets.iter().map(|_| AtomicBool::new(false)).collect();
    let canary = options.canary.min(targets.len());
    for (i, target) in targets[..canary].iter().enumerate() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        started[i].store(true, Ordering::SeqCst);
        if report(one(target)) {
            stop.store(true, Ordering::SeqCst);
        }
    }
    let next = AtomicUsize::new(canary);
    let workers = options.parallel.clamp(1, (targets.len() - canary).max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(target) = targets.get(i) else {
                        return;
                    };
                    started[i].store(true, Ordering::SeqCst);
                    if report(one(target)) && options.on_error == OnError::Stop {
                        stop.store(true, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    for (target, started) in targets.iter().zip(&started) {
        if !started.load(Ordering::SeqCst) {
            report(TargetOutcome {
                target: shown(target),
                outcome: Outcome::NotStarted,
                duration: Duration::ZERO,
            });
        }
    }
    let summary = *lock(&summary);
    Ok(summary)
}

/// The sets a fleet loaded, and how to reach a server target.
struct Sets<'a> {
    project: &'a Project,
    server: &'a (dyn Fn(&str) -> Result<ServerProject> + Sync),
    local: Option<&'a Migrator>,
    remote: Option<&'a Migrator>,
}

impl Sets<'_> {
    /// One target's run, as `hsm-host --database TARGET up|down` would do it with the set
    /// loaded.
    fn run_one(
        &self,
        target: &Path,
        direction: Direction,
        version: Option<u64>,
    ) -> Result<RunReport> {
        if let (Some(url), Some(migrator)) = (
            target.to_str().filter(|t| crate::server::is_server_url(t)),
            self.remote,
        ) {
            return (self.server)(url)?.run_with(migrator, direction, version);
        }
        let migrator = self.local.expect("loaded when a target is a file");
        let target_project = self.project.clone().with_database(target);
        match direction {
            Direction::Up => migrator.up(&target_project.open()?, version),
            Direction::Down => {
                if !target.exists() {
                    return Err(Error::NoDatabase {
                        path: target.to_owned(),
                        action: "there is nothing to roll back",
                    });
                }
                migrator.down(&target_project.open()?, version)
            }
        }
    }
}

/// A target as output shows it: a path, or a URL without its password.
pub fn shown(target: &Path) -> String {
    match target.to_str() {
        Some(url) if crate::server::is_server_url(url) => hsm_postgres::Target::parse(url)
            .map(|t| t.to_string())
            .unwrap_or_else(|_| "postgresql://(a URL that does not parse)".into()),
        _ => target.display().to_string(),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
