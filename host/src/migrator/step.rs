//! One migration step: its transaction, the guest's call on a thread of its own under the
//! watchdog, the checks after it (foreign keys, `sqlite_sequence`, traps) and its tracking rows.

use super::*;

/// `BEGIN IMMEDIATE`: takes the write lock now, so a concurrent writer makes us wait (up to
/// the busy timeout) here rather than fail in the middle of a migration.
pub(super) fn begin(conn: &Connection) -> Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .context("cannot begin a transaction")
}

pub(super) fn record_applied(
    tracking: &Tracking,
    conn: &Connection,
    component: &MigrationComponent,
    backup: Option<&str>,
) -> Result<()> {
    let now = time::now_iso();
    let metadata = component.metadata();
    let checksum = component.checksum();
    store_component(tracking, conn, component, &now)?;
    tracking.record_applied(
        conn,
        &hsm_store::tracking::Applied {
            version: metadata.version,
            name: &metadata.name,
            description: &metadata.description,
            backup_path: backup,
            checksum: &checksum,
        },
        &now,
    )
}

/// Keeps the component's exact bytes under their sha256, findable by what tracking records
/// for it (a SQL migration's file digests).
pub(super) fn store_component(
    tracking: &Tracking,
    conn: &Connection,
    component: &MigrationComponent,
    now: &str,
) -> Result<()> {
    let recorded = component.checksum();
    let sha256 = component.component_sha256();
    let recorded_as = (recorded != sha256).then_some(recorded.as_str());
    tracking.store_component(conn, sha256, recorded_as, component.stored_form()?, now)?;
    if let Some(signed) = component.signed() {
        tracking.record_signers(conn, sha256, &signed.recorded(), signed.detached.as_deref())?;
    }
    Ok(())
}

/// Runs one migration in its own transaction, with its history row: one commit per migration.
/// The attempt is written into the lock file first (where a crash leaves it for the next run
/// to record as interrupted); its `success` row is written inside the migration's transaction,
/// a `failed` one after the rollback. The tables end as the seed protocol (a `running` row
/// committed first, closed after) leaves them, with one commit instead of two.
pub(super) fn run_tracked(
    db: &Database,
    lock: &mut Option<MigrationLock>,
    component: &MigrationComponent,
    direction: Direction,
    backup: Option<&Path>,
    schema: &mut Option<KnownSchema>,
) -> Result<StepReport> {
    let attempt = begin_attempt(lock, component, direction, backup)?;
    let result = run_in_transaction(db, component, direction, schema, |conn| {
        record_step(db, conn, component, &attempt)?;
        kill_point("before-commit");
        Ok(())
    });
    match &result {
        Ok(_) => kill_point("committed"),
        Err(error) => {
            kill_point("rolled-back");
            if !record_failure(db, &attempt, error) {
                // Left in the lock file: the next run records it as interrupted.
                return result;
            }
        }
    }
    end_attempt(lock);
    result
}

/// The attempt at `component`, written into the lock file before anything runs.
pub(super) fn begin_attempt(
    lock: &mut Option<MigrationLock>,
    component: &MigrationComponent,
    direction: Direction,
    backup: Option<&Path>,
) -> Result<Attempt> {
    let attempt = Attempt {
        version: component.version(),
        direction,
        started_at: time::now_iso(),
        backup_path: backup.map(|p| p.display().to_string()),
    };
    if let Some(lock) = lock {
        lock.begin_attempt(&attempt)?;
    }
    kill_point("attempt-written");
    Ok(attempt)
}

/// The attempt's outcome is in the database: clears it from the lock file.
pub(super) fn end_attempt(lock: &mut Option<MigrationLock>) {
    if let Some(lock) = lock
        && let Err(error) = lock.end_attempt()
    {
        // The next run finds the attempt's row and records nothing more.
        tracing::warn!("cannot clear the attempt from the lock file: {error}");
    }
}

/// A step's tracking rows, in the transaction it ran in: the migration applied or rolled back,
/// its stored component, and the attempt's `success` row.
pub(super) fn record_step(
    db: &Database,
    conn: &Connection,
    component: &MigrationComponent,
    attempt: &Attempt,
) -> Result<()> {
    let backup = attempt.backup_path.as_deref();
    // One stored component per applied version: the one this step replaced goes with it. A
    // first apply replaces none (and up-100 would otherwise look through them 100 times).
    let replaces = match attempt.direction {
        Direction::Up => {
            let before = db.tracking().recorded_checksum(conn, component.version())?;
            record_applied(db.tracking(), conn, component, backup)?;
            before.is_some_and(|before| before != component.checksum())
        }
        Direction::Down => {
            db.tracking().record_rolled_back(
                conn,
                component.version(),
                backup,
                &time::now_iso(),
            )?;
            true
        }
    };
    if replaces {
        db.tracking().drop_unused_components(conn)?;
    }
    db.tracking()
        .record_attempt(conn, attempt, None, &time::now_iso())
}

/// Writes the `failed` row of an attempt whose transaction was rolled back; says whether it
/// could (if not, the lock file keeps the attempt for the next run).
pub(super) fn record_failure(db: &Database, attempt: &Attempt, error: &Error) -> bool {
    // What a guest said is escaped and capped already; this bounds the whole row.
    let message = text::neutralize(&error.to_string(), 2 * text::MAX_MESSAGE);
    let recorded =
        db.tracking()
            .record_attempt(&db.connection(), attempt, Some(&message), &time::now_iso());
    if let Err(record_error) = &recorded {
        tracing::error!(
            "cannot record the failure in {}: {record_error}",
            db.tracking().history_table()
        );
    }
    recorded.is_ok()
}

/// Tests stop the process here, as `kill -9` would, when `HSM_KILL_AT` names the point (debug
/// builds only: a release binary has no such hook).
pub(super) fn kill_point(point: &str) {
    #[cfg(debug_assertions)]
    if std::env::var_os("HSM_KILL_AT").is_some_and(|at| at == point) {
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
    let _ = point;
}

/// Runs a migration inside a new transaction (foreign keys are off: see [`ForeignKeysOff`]);
/// `record` writes the tracking rows in that same transaction before COMMIT. On any failure
/// everything is rolled back.
pub(super) fn run_in_transaction(
    db: &Database,
    component: &MigrationComponent,
    direction: Direction,
    schema: &mut Option<KnownSchema>,
    record: impl FnOnce(&Connection) -> Result<()>,
) -> Result<StepReport> {
    begin(&db.connection())?;
    let result = run_step(db, component, direction, schema).and_then(|step| {
        let conn = db.connection();
        record(&conn)?;
        conn.execute_batch("COMMIT")
            .context(format!("cannot commit {}", component.label()))?;
        Ok(step)
    });
    if result.is_err() {
        // Rolled back: the schema is the one before this step, not the one it reported.
        *schema = None;
    }
    let conn = db.connection();
    if result.is_err()
        && !conn.is_autocommit()
        && let Err(error) = conn.execute_batch("ROLLBACK")
    {
        tracing::error!("cannot roll back {}: {error}", component.label());
    }
    result
}

/// Runs the guest inside the caller's transaction, refuses foreign-key violations and schema
/// traps it left, and measures what it changed, all within the migration's deadline. `schema`
/// is the schema before (read here when `None`); on success it is left holding the schema after.
pub(super) fn run_step(
    db: &Database,
    component: &MigrationComponent,
    direction: Direction,
    schema: &mut Option<KnownSchema>,
) -> Result<StepReport> {
    let deadline = Instant::now() + component.limits().timeout;
    // On a thread with room for SQLite's recursion, and a hard stop past the deadline.
    crate::runtime::watchdog::within(deadline, &component.label(), || {
        run_step_until(db, component, direction, schema, deadline)
    })
}

/// [`run_step`] on the step's own thread.
pub(super) fn run_step_until(
    db: &Database,
    component: &MigrationComponent,
    direction: Direction,
    schema: &mut Option<KnownSchema>,
    deadline: Instant,
) -> Result<StepReport> {
    let timeout = component.limits().timeout;
    // At the deadline the connection is interrupted: the guest's SQL and the host's own.
    let watch = component.interrupt_from(db, deadline);
    // A migration packed from a SQL file names the file, so the statement's line:column in
    // the cause points into it.
    let file_of_step = match direction {
        Direction::Up => component.path(),
        Direction::Down => component.down_path(),
    };
    let file = file_of_step
        .extension()
        .is_some_and(|ext| ext == "sql")
        .then(|| file_of_step.display().to_string());
    let failed_with = |cause: String, sqlite_code: Option<i32>| Error::MigrationFailed {
        version: component.version(),
        name: component.metadata().name.clone(),
        direction,
        completed: Vec::new(),
        sqlite_code,
        backup: None,
        cause: match &file {
            Some(file) => format!("{file}: {cause}"),
            None => cause,
        },
    };
    let failed = |cause: String| failed_with(cause, None);
    // Past the deadline, whatever the host's own SQL reports, the cause is the time limit.
    let in_time = |error: Error| {
        if Instant::now() >= deadline {
            failed(format!(
                "it exceeded its time limit of {} (raise it with --timeout); hsm-host's checks \
                 after it could not finish in time",
                describe_duration(timeout)
            ))
        } else {
            error
        }
    };
    let (mut before, changes_before, sequences_before, version_before) = {
        let conn = db.connection();
        // The schema and its count as the last step left them (the host's own writes since
        // change no schema); read when this is a run's first step.
        let (before, version_before) = match schema.take() {
            Some(known) => known,
            None => (
                schema::snapshot(&conn, db.tracking()).map_err(in_time)?,
                schema::version(&conn).map_err(in_time)?,
            ),
        };
        let sequences = traps::host_sequences(&conn, db.tracking())
            .context("cannot read sqlite_sequence")
            .map_err(in_time)?;
        (before, conn.total_changes(), sequences, version_before)
    };
    // `down` reports what dropping a table takes with it: the rows are counted before (a
    // `down` is rare and follows a backup that reads the whole file anyway).
    let row_counts = match direction {
        Direction::Down => schema::row_counts(&db.connection(), &before).map_err(in_time)?,
        Direction::Up => Default::default(),
    };
    let started = Instant::now();
    let outcome = component.run(direction, db, deadline);
    let duration_ms = started.elapsed().as_millis() as u64;
    let touch = outcome.map_err(|failure| failed_with(failure.message, failure.sqlite_code))?;

    let conn = db.connection();
    if conn.is_autocommit() {
        return Err(failed(
            "it ended the host's transaction (COMMIT or ROLLBACK); migrations must leave \
             transaction control to hsm-host"
                .into(),
        ));
    }
    let violations = integrity::foreign_key_violations(&conn).map_err(in_time)?;
    if !violations.is_empty() {
        return Err(failed(format!(
            "it left {} foreign-key violation(s), so it was rolled back: {}",
            violations.len(),
            integrity::summarize(&violations)
        )));
    }
    // Only a statement that writes sqlite_sequence can change the host's rows there (the
    // host's tables are the policy's to refuse, and so is dropping them).
    if touch.sequences || touch.anywhere {
        let sequences = traps::host_sequences(&conn, db.tracking())
            .context("cannot read sqlite_sequence")
            .map_err(in_time)?;
        if sequences != sequences_before {
            return Err(failed(
                "it changed sqlite_sequence's rows of hsm-host's tables (the next history row \
                 would fail or reuse an id); migrations may not touch them"
                    .into(),
            ));
        }
    }
    let rows_changed = conn.total_changes() - changes_before;
    let (changed_before, changed_after, version_after) =
        schema_change(&conn, db, &mut before, &touch, version_before).map_err(in_time)?;
    traps::check(&conn, &changed_before, &changed_after, db.shared_tracking())
        .map_err(|reason| in_time(failed(reason)))?;
    let after = before;
    let rows_dropped =
        schema::rows_dropped(&conn, &row_counts, &touch.dropped, &after).map_err(in_time)?;
    drop(watch);
    let change = schema::diff(&changed_before, &changed_after);
    *schema = Some((after, version_after));
    Ok(StepReport {
        version: component.version(),
        name: component.metadata().name.clone(),
        direction,
        schema: change,
        rows_changed,
        rows_dropped,
        duration_ms,
    })
}

/// Brings `snapshot` (the schema before a step) up to what the step left, and returns the part
/// that changed, before and after. SQLite counts every schema change (and guests may not set
/// the count): an unchanged count is an unchanged schema. Otherwise only the tables the step's
/// DDL named are reread, unless it could have changed objects elsewhere; a count of the objects
/// confirms nothing else appeared or went, and a whole read is the fallback.
pub(super) fn schema_change(
    conn: &Connection,
    db: &Database,
    snapshot: &mut schema::Snapshot,
    touch: &crate::policy::SchemaTouch,
    version_before: i64,
) -> Result<(schema::Snapshot, schema::Snapshot, i64)> {
    let version = schema::version(conn)?;
    if version == version_before {
        return Ok((Default::default(), Default::default(), version));
    }
    if !touch.anywhere && !touch.tables.is_empty() {
        let (before, after) = schema::refresh(conn, db.tracking(), snapshot, &touch.tables)?;
        if schema::count(conn, db.tracking())? == snapshot.len() {
            return Ok((before, after, version));
        }
        tracing::debug!("the schema changed beyond the tables the step named: reading all of it");
        for key in after.keys() {
            snapshot.remove(key);
        }
        snapshot.extend(before);
    }
    let after = schema::snapshot(conn, db.tracking())?;
    let before = std::mem::replace(snapshot, after.clone());
    Ok((before, after, version))
}

/// Foreign keys off while a run's steps last, as SQLite's table-rebuild procedure requires (it
/// can only be switched outside a transaction), and back as they were afterwards: switched
/// once per run, not per step. Guests cannot switch them (the proxy skips it), and the host's
/// own writes between steps touch no table with foreign keys.
pub(super) struct ForeignKeysOff<'a> {
    db: &'a Database,
    were_on: bool,
}

impl<'a> ForeignKeysOff<'a> {
    pub(super) fn start(db: &'a Database) -> Result<Self> {
        let conn = db.connection();
        let were_on = conn
            .query_row("PRAGMA foreign_keys", [], |row| row.get(0))
            .context("cannot read PRAGMA foreign_keys")?;
        conn.execute_batch("PRAGMA foreign_keys = OFF")
            .context("cannot turn foreign keys off")?;
        Ok(Self { db, were_on })
    }
}

impl Drop for ForeignKeysOff<'_> {
    fn drop(&mut self) {
        let conn = self.db.connection();
        if self.were_on
            && let Err(error) = conn.execute_batch("PRAGMA foreign_keys = ON")
        {
            tracing::error!("cannot turn foreign keys back on: {error}");
        }
    }
}
