//! Dry runs: every step run inside one transaction that is always rolled back.

use super::*;

impl Migrator {
    /// Runs the pending migrations up to `target` in one transaction that is always rolled
    /// back, and reports what each would change. The database is left exactly as it was.
    ///
    /// # Errors
    /// As [`Migrator::up`]; a failing migration is reported as [`Error::MigrationFailed`].
    pub fn dry_run(&self, db: &Database, target: Option<u64>) -> Result<DryRunReport> {
        self.rehearse(db, Direction::Up, target)
    }

    /// Rehearses `down` to `target` (the newest migration when `None`) in one transaction that
    /// is always rolled back: every step's `down` runs, with the host's checks, so a broken one
    /// is found before anything is touched. The database is left exactly as it was.
    ///
    /// # Errors
    /// As [`Migrator::down`]; a failing step is reported as [`Error::MigrationFailed`].
    pub fn dry_run_down(&self, db: &Database, target: Option<u64>) -> Result<DryRunReport> {
        self.rehearse(db, Direction::Down, target)
    }

    fn rehearse(
        &self,
        db: &Database,
        direction: Direction,
        target: Option<u64>,
    ) -> Result<DryRunReport> {
        if direction == Direction::Up {
            refuse_unadopted(db, &db.connection())?;
        }
        self.preflight(db, &db.connection())?;
        begin(&db.connection())?;
        let result = self.rehearse_inside(db, direction, target);
        let conn = db.connection();
        if !conn.is_autocommit() {
            conn.execute_batch("ROLLBACK")
                .context("cannot roll back the dry run")?;
        }
        result
    }

    fn rehearse_inside(
        &self,
        db: &Database,
        direction: Direction,
        target: Option<u64>,
    ) -> Result<DryRunReport> {
        let (plan, stored) = {
            let conn = db.connection();
            db.tracking().ensure_tables(&conn)?;
            self.plan(db, &conn, direction, target)?
        };
        let components = self.components_of(&plan, &stored)?;
        let mut steps = Vec::with_capacity(plan.steps.len());
        let mut schema = None;
        self.each_component(components, |component| {
            // (A failure here keeps no list of steps done: none of them stays.)
            let step = run_step(db, component, direction, &mut schema)?;
            // Later steps may look at the tracking table; let them see this one done.
            match direction {
                Direction::Up => record_applied(db.tracking(), &db.connection(), component, None)?,
                Direction::Down => db.tracking().record_rolled_back(
                    &db.connection(),
                    component.version(),
                    None,
                    &time::now_iso(),
                )?,
            }
            steps.push(step);
            Ok(())
        })?;
        Ok(DryRunReport {
            direction,
            from: plan.from,
            to: plan.to,
            steps,
        })
    }
}
