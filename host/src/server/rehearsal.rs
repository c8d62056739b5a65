//! Dry runs on a server: the plan's steps on one session, in one transaction rolled back at
//! the end (see `hsm_postgres::Rehearsal`).

use std::time::{Duration, Instant};

use hsm_postgres::Recorded;

use super::{ServerProject, server_error, step_failed, step_report};
use crate::error::{Error, Result};
use crate::migrator::DryRunReport;
use crate::plan::Direction;

impl ServerProject {
    /// What `up` (or `down`) to `target` would do, run and rolled back; nothing of it stays.
    ///
    /// # Errors
    /// As [`ServerProject::up`]; a step that fails is [`Error::MigrationFailed`].
    pub fn dry_run(&self, direction: Direction, target: Option<u64>) -> Result<DryRunReport> {
        let migrator = self.migrator()?;
        let (mut server, plan, _) = self.planned(&migrator, direction, target)?;
        let mut steps = Vec::new();
        if plan.steps.is_empty() {
            return Ok(DryRunReport {
                direction,
                from: plan.from,
                to: plan.to,
                steps,
            });
        }
        let whole = self.limits.timeout * u32::try_from(plan.steps.len()).unwrap_or(u32::MAX);
        let mut rehearsal = server
            .open_rehearsal(Instant::now() + whole)
            .map_err(server_error)?;
        for &version in &plan.steps {
            let outcome = (|| {
                let component = migrator.component(version)?;
                let started = Instant::now();
                if let Some(statement) = super::run::outside_transaction(component, direction) {
                    // It cannot run inside the dry run's transaction: checked, not run.
                    statement.map_err(|cause| step_failed(component, direction, cause, None))?;
                    tracing::info!(
                        "{}: runs outside a transaction, so the dry run checks it and does not \
                         run it",
                        component.label()
                    );
                    return Ok(step_report(component, direction, Duration::ZERO));
                }
                let deadline = started + self.limits.timeout;
                let guest = server
                    .rehearse_step(
                        &mut rehearsal,
                        version,
                        direction,
                        &component.label(),
                        deadline,
                    )
                    .map_err(server_error)?;
                let failed = |message: String, code: Option<i32>| {
                    step_failed(component, direction, message, code)
                };
                component
                    .run_on_server(direction, guest, deadline)
                    .map_err(|f| failed(rehearsal_limit(f.message), f.sqlite_code))?;
                let recorded = Recorded {
                    name: &component.metadata().name,
                    description: &component.metadata().description,
                    checksum: &component.checksum(),
                };
                server
                    .end_rehearsed_step(&mut rehearsal, &recorded)
                    .map_err(|message| failed(message, None))?;
                Ok(step_report(component, direction, started.elapsed()))
            })();
            match outcome {
                Ok(step) => steps.push(step),
                Err(error) => {
                    server.close_rehearsal(rehearsal);
                    return Err(error);
                }
            }
        }
        let checked = server.check_rehearsal(&mut rehearsal, Instant::now() + self.limits.timeout);
        server.close_rehearsal(rehearsal);
        if let (Err(cause), Some(last)) = (checked, steps.last()) {
            return Err(Error::MigrationFailed {
                version: last.version,
                name: last.name.clone(),
                direction,
                cause: format!("its deferred constraints fail at COMMIT: {cause}"),
                completed: Vec::new(),
                sqlite_code: None,
                backup: None,
            });
        }
        Ok(DryRunReport {
            direction,
            from: plan.from,
            to: plan.to,
            steps,
        })
    }
}

/// A failure only a dry run meets, said so: it runs every migration in one transaction, and
/// PostgreSQL lets a value an earlier migration added to an enum (`ALTER TYPE … ADD VALUE`) be
/// used only once that migration committed, as `up` does after each.
fn rehearsal_limit(message: String) -> String {
    match message.contains("[SQLSTATE 55P04]") {
        true => format!(
            "{message}; a dry run cannot go past this: it runs every migration in one \
             transaction, and PostgreSQL uses a value an earlier migration added to an enum \
             only once that migration committed, as up does (try up --dry-run up to the \
             version before it, then again after up)"
        ),
        false => message,
    }
}
