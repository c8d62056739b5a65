//! An all-or-nothing run (`--single-transaction`, like Flyway's `group` and Atlas's
//! `--tx-mode all`): every step of the run in one transaction, committed once after the last,
//! so a deploy either reaches its target or leaves the database as it was. Each step's rows are
//! written in that transaction; the first failure rolls the whole run back, and only the
//! failing migration's `failed` row is written (after the rollback).

use super::*;

/// The run's one transaction, and the attempt of the step in progress in it (none between
/// steps: a failure there, loading the next component, is no migration's).
pub(super) struct Group {
    in_progress: Option<Attempt>,
}

impl Group {
    /// Begins the run's transaction.
    pub(super) fn begin(db: &Database) -> Result<Self> {
        begin(&db.connection())?;
        Ok(Self { in_progress: None })
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
            .in_progress
            .insert(begin_attempt(lock, component, direction, backup)?);
        let step = run_step(db, component, direction, schema)?;
        record_step(db, &db.connection(), component, attempt)?;
        self.in_progress = None;
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
        let error = with_completed(error, Vec::new(), None);
        let note = match steps {
            0 => "--single-transaction: nothing was changed".to_owned(),
            n => format!(
                "--single-transaction: the {n} migration(s) this run did before it were rolled \
                 back with it; the database is as it was"
            ),
        };
        let error = match &error {
            Error::MigrationFailed { .. } => with_cause_note(error, &format!(" ({note})")),
            // Not a migration's failure (a component that would not load, a check): its
            // message cannot carry the note, the log does.
            _ => {
                tracing::warn!("{note}");
                error
            }
        };
        match &self.in_progress {
            Some(attempt) => {
                if record_failure(db, attempt, &error) {
                    end_attempt(lock);
                }
            }
            // Between steps: every step's rows were rolled back with it, none failed.
            None => end_attempt(lock),
        }
        Err(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failure between steps (the next component would not load) is no migration's: the
    /// run is rolled back, no `failed` row names the step that succeeded, and the lock file
    /// holds no attempt for the next run to call interrupted.
    #[test]
    fn a_failure_between_steps_records_no_failed_row_and_leaves_no_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("group.db");
        let db = Database::open(&path).unwrap();
        db.tracking().ensure_tables(&db.connection()).unwrap();
        let runtime = Runtime::new().unwrap();
        let first = runtime
            .load_file(Path::new(hsm_test_artifacts::V001_INITIAL_SCHEMA))
            .unwrap();
        let mut lock = Some(lock::acquire(&path, Duration::from_secs(1)).unwrap());

        let mut group = Group::begin(&db).unwrap();
        let mut schema = None;
        group
            .run(&db, &mut lock, &first, Direction::Up, None, &mut schema)
            .unwrap();
        let between = Error::InvalidComponent {
            path: PathBuf::from("v002.wasm"),
            reason: "changed since it was read".to_owned(),
        };
        let error = group.finish(&db, &mut lock, Err(between), 1).unwrap_err();
        assert!(matches!(error, Error::InvalidComponent { .. }), "{error}");

        let conn = db.connection();
        let rows: i64 = conn
            .query_row(
                &format!("SELECT count(*) FROM {}", db.tracking().history_table()),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(rows, 0, "a row was written for a step that was rolled back");
        let users: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'users'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(users, 0, "the first step's table outlived the rollback");
        drop(conn);
        drop(lock);
        assert_eq!(lock::left_attempt(&path), None);
    }
}
