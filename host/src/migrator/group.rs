//! An all-or-nothing run (`--single-transaction`, like Flyway's `group` and Atlas's
//! `--tx-mode all`): every step of the run in one transaction, committed once after the last,
//! so a deploy either reaches its target or leaves the database as it was. Each step's rows are
//! written in that transaction; the first failure rolls the whole run back, and only the
//! failing migration's `failed` row is written (after the rollback).

use super::*;

/// The run's one transaction, and the attempt in progress in it.
pub(super) struct Group {
    attempt: Option<Attempt>,
}

impl Group {
    /// Begins the run's transaction.
    pub(super) fn begin(db: &Database) -> Result<Self> {
        begin(&db.connection())?;
        Ok(Self { attempt: None })
    }

    /// Runs one step inside the run's transaction, with its rows; commits nothing.
    pub(super) fn run(
        &mut self,
        db: &Database,
        lock: &mut Option<MigrationLock>,
        component: &MigrationComponent,
        direction: Direction,
        backup: Option<&Path>,
        schema: &mut Option<KnownSchema>,
    ) -> Result<StepReport> {
        let attempt = self
            .attempt
            .insert(begin_attempt(lock, component, direction, backup)?);
        let step = run_step(db, component, direction, schema)?;
        record_step(db, &db.connection(), component, attempt)?;
        Ok(step)
    }

    /// Commits the run when every step succeeded (`run` is `Ok`); otherwise rolls all of it
    /// back and records the failing attempt. Returns the run's outcome, its error saying that
    /// nothing stays.
    pub(super) fn finish(
        self,
        db: &Database,
        lock: &mut Option<MigrationLock>,
        run: Result<()>,
        steps: usize,
    ) -> Result<()> {
        let run = run.and_then(|()| {
            kill_point("before-commit");
            db.connection()
                .execute_batch("COMMIT")
                .context("cannot commit the run's transaction")
        });
        let Err(error) = run else {
            kill_point("committed");
            end_attempt(lock);
            return Ok(());
        };
        let conn = db.connection();
        if !conn.is_autocommit()
            && let Err(rollback) = conn.execute_batch("ROLLBACK")
        {
            tracing::error!("cannot roll back the run's transaction: {rollback}");
        }
        drop(conn);
        kill_point("rolled-back");
        let error = with_completed(error, Vec::new());
        let error = with_cause_note(
            error,
            &match steps {
                0 => " (--single-transaction: nothing was changed)".to_owned(),
                n => format!(
                    " (--single-transaction: the {n} migration(s) this run did before it were \
                     rolled back with it; the database is as it was)"
                ),
            },
        );
        if let Some(attempt) = &self.attempt
            && record_failure(db, attempt, &error)
        {
            end_attempt(lock);
        }
        Err(error)
    }
}
