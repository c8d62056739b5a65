//! `up` and `down` on a server: each step in its own transaction on its own session, a step
//! that could not get a lock in time run again.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use hsm_postgres::checks::Amcheck;
use hsm_postgres::{Recorded, Server};

use super::{LOCK_RETRIES, ServerProject, server_error, step_failed, step_report};
use crate::error::{Error, Result};
use crate::migrator::{Migrator, RunReport, StepReport};
use crate::plan::{Available, Direction, Plan, PlanError, plan_down, plan_up};
use crate::runtime::MigrationComponent;
use crate::tracking::RowStatus;

impl ServerProject {
    /// Loads the set, takes the lock, recovers interrupted attempts, refuses changed
    /// components, and plans the run.
    pub(super) fn planned(
        &self,
        migrator: &Migrator,
        direction: Direction,
        target: Option<u64>,
    ) -> Result<(Server, Plan, Vec<u64>)> {
        if migrator.migrations().is_empty() {
            return Err(Error::NoMigrations {
                path: self.migrations.clone(),
                seen: crate::pack::layout::unread_sql_files(&self.migrations),
                found: Vec::new(),
            });
        }
        let mut server = self.open()?;
        server.lock(self.lock_wait).map_err(server_error)?;
        let interrupted = server.recover_interrupted().map_err(server_error)?;
        let rows = server.migrations().map_err(server_error)?;
        if direction == Direction::Up {
            super::adopt::refuse_unadopted(&mut server, rows.len())?;
        }
        let assessment = crate::assess::assess(&rows, migrator.migrations());
        if let Some(changed) = assessment.changed.first() {
            return Err(Error::ComponentChanged {
                version: changed.row.version,
                name: changed.row.name.clone(),
                file: changed.file.path.clone(),
                recorded: changed.recorded.to_owned(),
                found: changed.file.checksum.clone(),
            });
        }
        let applied: BTreeSet<u64> = rows
            .iter()
            .filter(|row| row.status == RowStatus::Applied)
            .map(|row| row.version)
            .collect();
        let available: Vec<Available> = migrator
            .migrations()
            .iter()
            .map(|c| Available {
                version: c.version(),
                name: c.metadata.name.clone(),
                reversible: c.metadata.reversible,
            })
            .collect();
        let plan = match direction {
            Direction::Up => plan_up(&available, &applied, target)?,
            Direction::Down => plan_down(&available, &applied, target).map_err(|e| match e {
                // A server has no file hsm-host restores: say what stands in.
                PlanError::Irreversible { version, name, .. } => Error::Server {
                    usage: false,
                    message: format!(
                        "migration {version} ({name}) is irreversible, so the database cannot \
                         go below it: restore a dump taken before it was applied (`pg_restore \
                         --clean --if-exists --single-transaction \
                         --use-set-session-authorization --dbname URL FILE`; `up \
                         --backup pg_dump` takes one before each run), or recover to a point in \
                         time before it"
                    ),
                },
                other => other.into(),
            })?,
        };
        // A component written for SQLite alone is refused before anything runs.
        for &version in &plan.steps {
            let component = migrator.component(version)?;
            if !component.runs_on("postgresql")? {
                return Err(Error::InvalidComponent {
                    path: component.path().to_owned(),
                    reason: format!(
                        "{} is written for SQLite: it does not say it runs on PostgreSQL. \
                         Its author adds `dialects: [\"sqlite\", \"postgresql\"]` to its \
                         `migration!` (once its SQL runs on both), or ships a SQL file for \
                         PostgreSQL; nothing was run",
                        component.label()
                    ),
                });
            }
        }
        Ok((server, plan, interrupted))
    }

    /// `up` or `down` with the set already loaded (a fleet loads it once for every target).
    ///
    /// # Errors
    /// As [`ServerProject::up`].
    pub fn run_with(
        &self,
        migrator: &Migrator,
        direction: Direction,
        target: Option<u64>,
    ) -> Result<RunReport> {
        let (mut server, plan, interrupted) = self.planned(migrator, direction, target)?;
        let backup = match (&self.dump, plan.steps.is_empty()) {
            (Some(dump), false) => {
                let dumped = hsm_postgres::dump(&server, dump).map_err(server_error)?;
                tracing::info!("backup: {}", dumped.path.display());
                Some(dumped.path)
            }
            _ => None,
        };
        let mut steps = Vec::new();
        for &version in &plan.steps {
            let component = migrator.component(version)?;
            let started = Instant::now();
            self.run_step(&mut server, component, direction)
                .map_err(|failure| {
                    crate::migrator::with_completed(
                        failure,
                        steps.iter().map(|s: &StepReport| s.version).collect(),
                        backup.as_deref(),
                    )
                })?;
            steps.push(step_report(component, direction, started.elapsed()));
            tracing::info!(
                "{} {}",
                match direction {
                    Direction::Up => "applied",
                    Direction::Down => "rolled back",
                },
                component.label()
            );
        }
        if !steps.is_empty() {
            check_indexes(&mut server, steps.len())?;
        }
        Ok(RunReport {
            direction,
            from: plan.from,
            to: plan.to,
            steps,
            backup,
            interrupted,
        })
    }

    /// Runs one step; a step that failed because a lock was not free in time runs again, up
    /// to [`LOCK_RETRIES`] times with a growing pause, as long as its deadline allows.
    pub(super) fn run_step(
        &self,
        server: &mut Server,
        component: &MigrationComponent,
        direction: Direction,
    ) -> Result<()> {
        let label = component.label();
        let deadline = Instant::now() + self.limits.timeout;
        let failed = |cause: String, code| step_failed(component, direction, cause, code);
        if let Some(statement) = outside_transaction(component, direction) {
            let statement = statement.map_err(|cause| failed(cause, None))?;
            let recorded = Recorded {
                name: &component.metadata().name,
                description: &component.metadata().description,
                checksum: &component.checksum(),
            };
            return server
                .run_outside_transaction(
                    component.version(),
                    direction,
                    &statement,
                    deadline,
                    &recorded,
                )
                .map_err(|cause| failed(cause, None));
        }
        let mut pause = Duration::from_millis(250);
        for attempt in 0..=LOCK_RETRIES {
            let step = server
                .open_step(component.version(), direction, &label, deadline)
                .map_err(server_error)?;
            let outcome = component.run_on_server(direction, step.guest(), deadline);
            let failure = match outcome {
                Ok(()) => {
                    let recorded = Recorded {
                        name: &component.metadata().name,
                        description: &component.metadata().description,
                        checksum: &component.checksum(),
                    };
                    match server.finish_step(step, &recorded) {
                        Ok(()) => return Ok(()),
                        Err(message) => hsm_sandbox::runtime::Failure {
                            message,
                            sqlite_code: None,
                        },
                    }
                }
                Err(failure) => {
                    server.fail_step(step, &failure.message);
                    failure
                }
            };
            let lock_busy = failure.sqlite_code == Some(hsm_postgres::LOCK_NOT_AVAILABLE);
            if lock_busy && attempt < LOCK_RETRIES && Instant::now() + pause < deadline {
                tracing::warn!(
                    "{label}: a lock it needs is held by another session; trying again in {} ms",
                    pause.as_millis()
                );
                std::thread::sleep(pause);
                pause *= 2;
                continue;
            }
            return Err(failed(failure.message, failure.sqlite_code));
        }
        unreachable!("the last attempt returns")
    }
}

/// The statement a SQL migration runs outside a transaction in `direction`, when it asks to:
/// its up must then be one concurrent index statement (else the error says why); its down runs
/// outside a transaction only when it is one too, else in a transaction as usual.
pub(super) fn outside_transaction(
    component: &MigrationComponent,
    direction: Direction,
) -> Option<std::result::Result<hsm_postgres::Outside, String>> {
    let info = component.info();
    let origin: Option<&dyn std::any::Any> = info.sql.as_deref().map(|sql| sql as _);
    let sql = origin?.downcast_ref::<crate::pack::SqlMigration>()?;
    let text = match direction {
        Direction::Up => sql.up.as_str(),
        Direction::Down => sql.down.as_deref()?,
    };
    // Marked by its tool's no-transaction marker, or nothing but one concurrent index
    // statement (which no transaction can run).
    let concurrent = hsm_postgres::is_concurrent_index(text);
    match (sql.no_transaction.is_some(), direction) {
        (_, _) if concurrent => Some(hsm_postgres::outside_statement(text)),
        (true, Direction::Up) => Some(hsm_postgres::outside_statement(text)),
        _ => None,
    }
}

/// amcheck's verdict on the indexes after a run that ran `ran` steps (they are committed: a
/// corrupt index is reported for the operator to REINDEX, not undone).
fn check_indexes(server: &mut Server, ran: usize) -> Result<()> {
    match hsm_postgres::checks::amcheck(server).map_err(server_error)? {
        Amcheck::NotInstalled => {
            tracing::debug!("amcheck is not installed: the indexes were not verified")
        }
        Amcheck::Skipped(why) => tracing::warn!("{why}"),
        Amcheck::Checked { indexes, corrupt } if corrupt.is_empty() => {
            tracing::info!("amcheck: {indexes} B-tree indexes verified")
        }
        Amcheck::Checked { corrupt, .. } => {
            let found: Vec<String> = corrupt
                .iter()
                .map(|(index, why)| format!("{index} ({why})"))
                .collect();
            return Err(Error::Server {
                usage: false,
                message: format!(
                    "{ran} migration(s) were applied, but amcheck found corrupt indexes \
                     afterwards: {}. REINDEX them (or restore the backup taken before the run)",
                    found.join("; ")
                ),
            });
        }
    }
    Ok(())
}
