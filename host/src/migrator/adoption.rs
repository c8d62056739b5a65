//! Taking over a database another tool migrated (`adopt`), or one with no history at all
//! (`baseline`): tracking rows recorded without running anything.

use super::*;

/// What `adopt` or `baseline` recorded, or would record.
#[derive(Debug, Clone, Serialize)]
pub struct AdoptReport {
    /// The tool whose history was read (`None` for a baseline).
    pub tool: Option<&'static str>,
    /// Versions recorded as applied, without running them.
    pub recorded: Vec<u64>,
    /// Versions already recorded by hsm-host, left as they were.
    pub already: Vec<u64>,
    /// Whether this only says what would be recorded.
    pub dry_run: bool,
}

impl Migrator {
    /// Records as applied, without running them, the migrations another tool (diesel, sqlx,
    /// golang-migrate, dbmate, goose, Flyway, refinery, Prisma, Drizzle) applied to `db`, read from its history
    /// table, which is left untouched. Stops, recording nothing, when that history names a
    /// version the set lacks, a sqlx checksum differs, or golang-migrate is dirty.
    ///
    /// # Errors
    /// [`Error::Adopt`] with every mismatch; [`Error::Locked`], [`Error::Sqlite`].
    pub fn adopt(&self, db: &Database, dry_run: bool) -> Result<AdoptReport> {
        let _lock = self.lock(db)?;
        let foreign = crate::adopt::find(&db.connection())?.ok_or_else(|| {
            Error::Adopt(
                "no history table of diesel, sqlx, golang-migrate, dbmate, goose, Flyway, \
                 refinery, Prisma, Drizzle or pop was found (for a database without any history, use \
                 `baseline VERSION`)"
                    .into(),
            )
        })?;
        let applied = adopted_versions(&self.migrations, foreign.clone())?;
        self.record_without_running(db, &applied, Some(foreign.tool.as_str()), dry_run)
    }

    /// Records every migration up to `version` as applied without running it: for a database
    /// whose schema is already there and that has no history at all.
    ///
    /// # Errors
    /// [`Error::Adopt`] when no migration has that version; [`Error::Locked`], [`Error::Sqlite`].
    pub fn baseline(&self, db: &Database, version: u64, dry_run: bool) -> Result<AdoptReport> {
        let _lock = self.lock(db)?;
        if self.file_component(version).is_none() {
            return Err(Error::Adopt(format!(
                "no migration has version {version}; a baseline names the last migration the \
                 database already has"
            )));
        }
        let versions: BTreeSet<u64> = self
            .migrations
            .iter()
            .map(ComponentInfo::version)
            .filter(|v| *v <= version)
            .collect();
        self.record_without_running(db, &versions, None, dry_run)
    }

    fn record_without_running(
        &self,
        db: &Database,
        versions: &BTreeSet<u64>,
        tool: Option<&'static str>,
        dry_run: bool,
    ) -> Result<AdoptReport> {
        let conn = db.connection();
        // Every version hsm-host has a row for, applied or rolled back: once hsm-host has run a
        // version (a `down` after an adoption, say), its own history is the truth, and the
        // other tool's older word must not mark it applied again (`adopt && up` in a deploy
        // script would then skip tables that are gone).
        let ours: BTreeSet<u64> = if db.tracking().exists(&conn)? {
            db.tracking().check(&conn)?;
            db.tracking()
                .migrations(&conn)?
                .iter()
                .map(|row| row.version)
                .collect()
        } else {
            BTreeSet::new()
        };
        let (already, recorded): (Vec<u64>, Vec<u64>) =
            versions.iter().partition(|v| ours.contains(v));
        let report = AdoptReport {
            tool,
            recorded,
            already,
            dry_run,
        };
        if dry_run || report.recorded.is_empty() {
            return Ok(report);
        }
        drop(conn);
        self.preload(&report.recorded)?;
        let conn = db.connection();
        db.tracking().ensure_tables(&conn)?;
        begin(&conn)?;
        let recorded = report.recorded.iter().try_for_each(|version| {
            record_applied(db.tracking(), &conn, self.component(*version)?, None)?;
            db.tracking()
                .record_adopted(&conn, *version, &time::now_iso())
        });
        match recorded.and_then(|()| {
            conn.execute_batch("COMMIT")
                .context("cannot commit the adopted migrations")
        }) {
            Ok(()) => Ok(report),
            Err(error) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(error)
            }
        }
    }
}

/// The versions of `migrations` another tool's history says are applied: its versions as the
/// set numbers them (the same, but for a set that starts at version 0, numbered from 1, read
/// from the SQL files' names; Drizzle's by its journal), matched against the set (a version the
/// set lacks, a checksum that differs or a dirty golang-migrate stop it).
pub(crate) fn adopted_versions(
    migrations: &[ComponentInfo],
    foreign: crate::adopt::Foreign,
) -> Result<BTreeSet<u64>> {
    let renumbered: BTreeMap<u64, u64> = match foreign.tool {
        // Drizzle records each migration by its journal's `when`.
        crate::tool::Tool::Drizzle => drizzle_versions(migrations)?,
        _ => migrations
            .iter()
            .filter(|info| info.path.extension().is_some_and(|ext| ext == "sql"))
            .filter_map(|info| {
                let name = info.path.file_name()?.to_str()?;
                let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
                let tool: u64 = digits.parse().ok()?;
                (tool != info.version()).then_some((tool, info.version()))
            })
            .collect(),
    };
    let foreign = foreign.renumbered(|v| renumbered.get(&v).copied().unwrap_or(v));
    let set: BTreeSet<u64> = migrations.iter().map(ComponentInfo::version).collect();
    let sql_file = |version: u64| {
        migrations
            .iter()
            .find(|info| info.version() == version)
            .map(|info| info.path.clone())
            .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
    };
    crate::adopt::applied_versions(&foreign, &set, sql_file)
        .map_err(|problems| Error::Adopt(integrity::summarize(&problems)))
}

/// `up` must not start from nothing on a database another tool migrated: with no hsm-host
/// history but the other tool's, every migration would run again over tables that are there.
/// Refused before anything is written, naming the tool and the way forward.
pub(super) fn refuse_unadopted(db: &Database, conn: &Connection) -> Result<()> {
    let ours = db.tracking().exists(conn)? && !db.tracking().migrations(conn)?.is_empty();
    if ours {
        return Ok(());
    }
    let Some(foreign) = crate::adopt::find(conn)? else {
        return Ok(());
    };
    match unadopted(&foreign) {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Why `up` must not start from nothing on a database whose history `foreign` is, if it has
/// applied anything: nothing was changed, and `adopt` is the way forward.
pub(crate) fn unadopted(foreign: &crate::adopt::Foreign) -> Option<Error> {
    let versions = match &foreign.history {
        crate::adopt::History::Versions {
            applied,
            unnumbered,
            ..
        } => applied.len() + unnumbered.len(),
        crate::adopt::History::Current { version, .. } => usize::from(*version > 0),
    };
    (versions > 0).then(|| {
        Error::Adopt(format!(
            "this database was migrated by {tool} ({table} has its history) and hsm-host has \
             no history of it yet: `up` would run every migration again. See what would be \
             taken over with `hsm-host adopt --dry-run`, then run `hsm-host adopt`; nothing \
             was changed",
            tool = foreign.tool.as_str(),
            table = foreign.tool.table(),
        ))
    })
}

/// Drizzle's version of each of the set's Drizzle migrations (its journal's `when`, which
/// Drizzle records as `created_at`), to the set's.
fn drizzle_versions(migrations: &[ComponentInfo]) -> Result<BTreeMap<u64, u64>> {
    let mut versions = BTreeMap::new();
    let mut journals: BTreeMap<PathBuf, Vec<crate::pack::drizzle::Entry>> = BTreeMap::new();
    for info in migrations {
        let origin: Option<&dyn std::any::Any> = info.sql.as_deref().map(|sql| sql as _);
        let Some(sql) = origin.and_then(|any| any.downcast_ref::<crate::pack::SqlMigration>())
        else {
            continue;
        };
        let Some(dir) = info.path.parent() else {
            continue;
        };
        if sql.layout != crate::pack::Layout::Tool(crate::tool::Tool::Drizzle) {
            continue;
        }
        if !journals.contains_key(dir) {
            let entries = crate::pack::drizzle::journal(dir)
                .map_err(|e| Error::SqlSet {
                    path: e.path,
                    reason: e.reason,
                })?
                .unwrap_or_default();
            journals.insert(dir.to_owned(), entries);
        }
        if let Some(entry) = journals[dir].iter().find(|e| e.tag == sql.id) {
            versions.insert(u64::try_from(entry.when).unwrap_or(0), info.version());
        }
    }
    Ok(versions)
}
