//! Databases another tool migrated: its history table read (never written), the versions it
//! applied matched against the migration set, so `hsm-host adopt` can record them as applied
//! without running them again. `baseline VERSION` covers a database with no history at all.

use std::collections::BTreeSet;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha384};

use crate::error::{Result, SqliteContext};

/// The tools whose history hsm-host reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tool {
    /// diesel (`__diesel_schema_migrations`).
    Diesel,
    /// sqlx (`_sqlx_migrations`).
    Sqlx,
    /// golang-migrate (`schema_migrations` with `dirty`).
    GolangMigrate,
    /// dbmate (`schema_migrations` with `version` only).
    Dbmate,
    /// goose (`goose_db_version`).
    Goose,
    /// Flyway (`flyway_schema_history`).
    Flyway,
    /// refinery (`refinery_schema_history`).
    Refinery,
    /// Prisma (`_prisma_migrations`).
    Prisma,
    /// Drizzle (`__drizzle_migrations`).
    Drizzle,
    /// gobuffalo/pop and Ory's popx (`schema_migration`).
    Pop,
}

impl Tool {
    /// The tool's name, as reports show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Tool::Diesel => "diesel",
            Tool::Sqlx => "sqlx",
            Tool::GolangMigrate => "golang-migrate",
            Tool::Dbmate => "dbmate",
            Tool::Goose => "goose",
            Tool::Flyway => "flyway",
            Tool::Refinery => "refinery",
            Tool::Prisma => "prisma",
            Tool::Drizzle => "drizzle",
            Tool::Pop => "pop",
        }
    }

    /// The table where the tool keeps its history.
    pub fn table(self) -> &'static str {
        match self {
            Tool::Diesel => "__diesel_schema_migrations",
            Tool::Sqlx => "_sqlx_migrations",
            Tool::GolangMigrate | Tool::Dbmate => "schema_migrations",
            Tool::Goose => "goose_db_version",
            Tool::Flyway => "flyway_schema_history",
            Tool::Refinery => "refinery_schema_history",
            Tool::Prisma => "_prisma_migrations",
            Tool::Drizzle => "__drizzle_migrations",
            Tool::Pop => "schema_migration",
        }
    }
}

/// What another tool's history says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Foreign {
    /// The tool whose table it is.
    pub tool: Tool,
    /// What the table says was applied.
    pub history: History,
}

impl Foreign {
    /// The history with each of the tool's versions as hsm-host numbers it in the set (`number`
    /// gives it: a set that starts at version 0 is numbered from 1).
    #[must_use]
    pub(crate) fn renumbered(self, number: impl Fn(u64) -> u64) -> Self {
        let history = match self.history {
            History::Versions {
                applied,
                unnumbered,
                unfinished,
            } => History::Versions {
                applied: applied
                    .into_iter()
                    .map(|(version, recorded)| (number(version), recorded))
                    .collect(),
                unnumbered,
                unfinished,
            },
            History::Current { version, dirty } => History::Current {
                version: number(version),
                dirty,
            },
        };
        Self { history, ..self }
    }
}

/// A checksum another tool recorded for a migration, compared with the file here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// sqlx: the SHA-384 of the file.
    Sqlx(Vec<u8>),
    /// Flyway: the CRC-32 of the file's lines (without their line breaks), as a signed number.
    Flyway(i64),
    /// refinery: SipHash-1-3 (zero keys) of the migration's name, version and SQL, in decimal.
    Refinery(String),
    /// Prisma and Drizzle: the SHA-256 of the file, in hex.
    Sha256(String),
}

/// The shapes of history the tools keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum History {
    /// Every applied version, with the checksum the tool keeps if it keeps one; `unnumbered`:
    /// versions it applied that hsm-host cannot number (each one stops adoption).
    Versions {
        /// Versions applied, each with the checksum the tool recorded (if any).
        applied: Vec<(u64, Option<Recorded>)>,
        /// Versions hsm-host cannot number, as the tool wrote them.
        unnumbered: Vec<String>,
        /// Migrations the tool started and never finished nor rolled back (Prisma's failed
        /// ones): they may have run in part, so adoption stops.
        unfinished: Vec<String>,
    },
    /// golang-migrate keeps only the current version, and whether a run failed half-way.
    Current {
        /// The version it is at.
        version: u64,
        /// Whether a run failed half-way there.
        dirty: bool,
    },
}

/// The other tool's history in `conn`, if one is there. A table of a known name without the
/// tool's columns is an application's own and is not read.
pub fn find(conn: &Connection) -> Result<Option<Foreign>> {
    for tool in [
        Tool::Diesel,
        Tool::Sqlx,
        Tool::GolangMigrate,
        Tool::Dbmate,
        Tool::Goose,
        Tool::Flyway,
        Tool::Refinery,
        Tool::Prisma,
        Tool::Drizzle,
        Tool::Pop,
    ] {
        let columns = columns(conn, tool.table())?;
        let has = |names: &[&str]| names.iter().all(|n| columns.iter().any(|c| c == n));
        let history = match tool {
            // Numbered as the set's folders are (diesel's string order kept).
            Tool::Diesel if has(&["version", "run_on"]) => numbered(
                strings(conn, "SELECT version FROM main.__diesel_schema_migrations")?
                    .into_iter()
                    .map(|version| {
                        (
                            crate::pack::layout::diesel_number(&version).ok(),
                            version,
                            None,
                        )
                    }),
            ),
            Tool::Sqlx if has(&["version", "success", "checksum"]) => {
                let mut stmt = conn
                    .prepare(
                        "SELECT version, checksum FROM main._sqlx_migrations WHERE success = 1",
                    )
                    .context("cannot read _sqlx_migrations")?;
                let rows = stmt
                    .query_map([], |row| {
                        Ok((row.get::<_, i64>(0)?, row.get::<_, Option<Vec<u8>>>(1)?))
                    })
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                    .context("cannot read _sqlx_migrations")?;
                numbered(rows.into_iter().map(|(v, sum)| {
                    (
                        u64::try_from(v).ok(),
                        v.to_string(),
                        sum.map(Recorded::Sqlx),
                    )
                }))
            }
            Tool::GolangMigrate if has(&["version", "dirty"]) => {
                let row: Option<(i64, bool)> = conn
                    .query_row(
                        "SELECT version, dirty FROM main.schema_migrations",
                        [],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                    .optional()
                    .context("cannot read schema_migrations")?;
                match row {
                    Some((version, dirty)) => History::Current {
                        version: u64::try_from(version).unwrap_or(0),
                        dirty,
                    },
                    None => numbered(std::iter::empty()),
                }
            }
            Tool::Dbmate if columns == ["version"] => {
                digits(strings(conn, "SELECT version FROM main.schema_migrations")?)
            }
            Tool::Goose if has(&["version_id", "is_applied"]) => {
                // One row per up or down: a version's newest row says where it stands.
                let applied = strings(
                    conn,
                    "SELECT version_id FROM main.goose_db_version AS g
                     WHERE version_id > 0 AND is_applied
                       AND id = (SELECT max(id) FROM main.goose_db_version
                                 WHERE version_id = g.version_id)",
                )?;
                digits(applied)
            }
            Tool::Flyway if has(&["version", "success", "type", "checksum"]) => {
                let rows = with_checksums(
                    conn,
                    "SELECT version, checksum FROM main.flyway_schema_history
                     WHERE success AND version IS NOT NULL AND type = 'SQL'",
                )?;
                numbered(rows.into_iter().map(|(version, sum)| {
                    (
                        crate::pack::layout::flyway_version(&version).ok(),
                        version,
                        sum.and_then(|s| s.parse().ok()).map(Recorded::Flyway),
                    )
                }))
            }
            Tool::Refinery if has(&["version", "checksum"]) => {
                let rows = with_checksums(
                    conn,
                    "SELECT version, checksum FROM main.refinery_schema_history",
                )?;
                numbered(rows.into_iter().map(|(version, sum)| {
                    (
                        version.parse().ok().filter(|v| *v > 0),
                        version,
                        sum.map(Recorded::Refinery),
                    )
                }))
            }
            // A migration is applied when it finished and was not rolled back (a failed
            // attempt resolved with `migrate resolve --rolled-back` has both rows).
            Tool::Prisma
                if has(&[
                    "migration_name",
                    "checksum",
                    "finished_at",
                    "rolled_back_at",
                ]) =>
            {
                let rows = with_checksums(
                    conn,
                    "SELECT migration_name, checksum FROM main._prisma_migrations
                     WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL",
                )?;
                let mut history = numbered(rows.into_iter().map(|(name, sum)| {
                    let digits = name.split('_').next().unwrap_or_default();
                    let number = digits
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                        .then(|| crate::pack::layout::diesel_number(digits).ok())
                        .flatten();
                    (number, name, sum.map(Recorded::Sha256))
                }));
                // Started, never finished, never resolved: Prisma itself refuses to go on
                // (P3009) until `prisma migrate resolve` says how it ended.
                if let History::Versions { unfinished, .. } = &mut history {
                    *unfinished = strings(
                        conn,
                        "SELECT migration_name FROM main._prisma_migrations AS p
                         WHERE finished_at IS NULL AND rolled_back_at IS NULL
                           AND NOT EXISTS (SELECT 1 FROM main._prisma_migrations AS q
                                           WHERE q.migration_name = p.migration_name
                                             AND q.finished_at IS NOT NULL
                                             AND q.rolled_back_at IS NULL)",
                    )?
                    .iter()
                    .map(|name| crate::text::neutralize(name, 128))
                    .collect();
                }
                history
            }
            // Versions are the journal's `when` of each migration (its `created_at`): the set
            // renumbers them from its journal (see `Migrator::adopt`).
            Tool::Drizzle if has(&["hash", "created_at"]) => {
                let rows = with_checksums(
                    conn,
                    "SELECT created_at, hash FROM main.__drizzle_migrations",
                )?;
                numbered(
                    rows.into_iter()
                        .map(|(when, sum)| (when.parse().ok(), when, sum.map(Recorded::Sha256))),
                )
            }
            // Numbered as the set's files are (a 20-digit version without its leading `20`).
            Tool::Pop if has(&["version"]) => numbered(
                strings(conn, "SELECT version FROM main.schema_migration")?
                    .into_iter()
                    .map(|version| {
                        (
                            crate::pack::layout::pop_number(&version).ok(),
                            version,
                            None,
                        )
                    }),
            ),
            _ => continue,
        };
        return Ok(Some(Foreign { tool, history }));
    }
    Ok(None)
}

fn columns(conn: &Connection, table: &str) -> Result<Vec<String>> {
    crate::tracking::column_names(conn, table)
}

/// A column of text or numbers, as text.
fn strings(conn: &Connection, sql: &str) -> Result<Vec<String>> {
    conn.prepare(sql)
        .and_then(|mut stmt| {
            stmt.query_map([], |row| {
                Ok(match row.get_ref(0)? {
                    rusqlite::types::ValueRef::Integer(i) => i.to_string(),
                    other => {
                        String::from_utf8_lossy(other.as_bytes().unwrap_or_default()).into_owned()
                    }
                })
            })?
            .collect()
        })
        .context("cannot read the other tool's history")
}

/// A history of versions: those hsm-host could number, and the others by their text.
fn numbered(rows: impl Iterator<Item = (Option<u64>, String, Option<Recorded>)>) -> History {
    let mut applied = Vec::new();
    let mut unnumbered = Vec::new();
    for (number, text, recorded) in rows {
        match number {
            Some(number) => applied.push((number, recorded)),
            None => unnumbered.push(crate::text::neutralize(&text, 64)),
        }
    }
    History::Versions {
        applied,
        unnumbered,
        unfinished: Vec::new(),
    }
}

/// Versions as hsm-host numbers them: the digits of the tool's version (`2024-03-13-170000` is
/// 20240313170000), as the SQL set's file names are read.
fn digits(versions: Vec<String>) -> History {
    numbered(versions.into_iter().map(|v| {
        let digits: String = v.chars().filter(char::is_ascii_digit).collect();
        (digits.parse().ok(), v, None)
    }))
}

/// (version, checksum) pairs, both as text.
fn with_checksums(conn: &Connection, sql: &str) -> Result<Vec<(String, Option<String>)>> {
    let text = |value: rusqlite::types::ValueRef<'_>| match value {
        rusqlite::types::ValueRef::Null => None,
        rusqlite::types::ValueRef::Integer(i) => Some(i.to_string()),
        other => Some(String::from_utf8_lossy(other.as_bytes().unwrap_or_default()).into_owned()),
    };
    conn.prepare(sql)
        .and_then(|mut stmt| {
            stmt.query_map([], |row| {
                Ok((
                    text(row.get_ref(0)?).unwrap_or_default(),
                    text(row.get_ref(1)?),
                ))
            })?
            .collect()
        })
        .context("cannot read the other tool's history")
}

/// The versions of `set` the other tool applied; `Err` names every mismatch: a version it
/// applied that the set lacks, a checksum that differs, a half-failed golang-migrate run.
/// `source_of(version)` gives the SQL file a version came from, for sqlx's checksums.
pub fn applied_versions(
    foreign: &Foreign,
    set: &BTreeSet<u64>,
    source_of: impl Fn(u64) -> Option<std::path::PathBuf>,
) -> std::result::Result<BTreeSet<u64>, Vec<String>> {
    let tool = foreign.tool.as_str();
    let mut problems = Vec::new();
    let applied: BTreeSet<u64> = match &foreign.history {
        History::Current {
            dirty: true,
            version,
        } => {
            return Err(vec![format!(
                "golang-migrate marks version {version} dirty: a run failed half-way; fix the \
                 database and clear the flag with golang-migrate first"
            )]);
        }
        History::Current { version, .. } => {
            if *version > 0 && !set.contains(version) {
                problems.push(format!(
                    "{tool} applied version {version}, which is not in the migration set"
                ));
            }
            set.range(..=*version).copied().collect()
        }
        History::Versions {
            applied,
            unnumbered,
            unfinished,
        } => {
            for name in unfinished {
                problems.push(format!(
                    "{tool} started `{name}` and it never finished (it may have run in part): \
                     say how it ended with `prisma migrate resolve --rolled-back {name}` (or \
                     --applied) first"
                ));
            }
            for version in unnumbered {
                problems.push(format!(
                    "{tool} applied version `{version}`, which hsm-host cannot number as the \
                     migration set's files are numbered"
                ));
            }
            let mut unchecked = 0;
            for (version, recorded) in applied {
                if !set.contains(version) {
                    problems.push(format!(
                        "{tool} applied version {version}, which is not in the migration set"
                    ));
                    continue;
                }
                let Some(recorded) = recorded else {
                    continue;
                };
                let Some(file) = source_of(*version) else {
                    unchecked += 1;
                    continue;
                };
                if let Some(problem) = checksum_differs(recorded, &file) {
                    problems.push(format!("version {version}: {problem}"));
                }
            }
            if unchecked > 0 {
                tracing::warn!(
                    "{unchecked} checksum(s) {tool} recorded were not compared: those migrations \
                     are components here, not the SQL files {tool} ran"
                );
            }
            applied.iter().map(|(v, _)| *v).collect()
        }
    };
    if problems.is_empty() {
        Ok(applied)
    } else {
        Err(problems)
    }
}

/// `Some(problem)` when `file` is not the file the tool recorded.
fn checksum_differs(recorded: &Recorded, file: &Path) -> Option<String> {
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(e) => return Some(format!("cannot read {}: {e}", file.display())),
    };
    let (same, what) = match recorded {
        Recorded::Sqlx(sum) => (
            Sha384::digest(&bytes).as_slice() == sum.as_slice(),
            "its SHA-384 differs from the one in _sqlx_migrations",
        ),
        Recorded::Flyway(sum) => (
            i64::from(flyway_checksum(&bytes)) == *sum,
            "its checksum differs from the one in flyway_schema_history",
        ),
        Recorded::Refinery(sum) => (
            refinery_checksum(file, &bytes).is_some_and(|c| c.to_string() == *sum),
            "its checksum differs from the one in refinery_schema_history",
        ),
        Recorded::Sha256(sum) => (
            // The file as checked out here may have other line endings than where the tool
            // ran (git's autocrlf): either form is the same file.
            line_ending_forms(&bytes)
                .iter()
                .any(|form| sum.eq_ignore_ascii_case(&crate::runtime::sha256_hex(form))),
            "its SHA-256 differs from the one the tool recorded (with LF or CRLF line endings)",
        ),
    };
    (!same).then(|| {
        format!(
            "{} is not the file that was applied ({what})",
            file.display()
        )
    })
}

/// `bytes` as they are, with CRLF line endings made LF, and with LF made CRLF.
fn line_ending_forms(bytes: &[u8]) -> [Vec<u8>; 3] {
    let lf: Vec<u8> = bytes
        .iter()
        .enumerate()
        .filter(|&(i, b)| !(*b == b'\r' && bytes.get(i + 1) == Some(&b'\n')))
        .map(|(_, b)| *b)
        .collect();
    let mut crlf = Vec::with_capacity(lf.len() + lf.len() / 16);
    for b in &lf {
        if *b == b'\n' {
            crlf.push(b'\r');
        }
        crlf.push(*b);
    }
    [bytes.to_vec(), lf, crlf]
}

/// Flyway's checksum: CRC-32 over the file's lines, each without its line break (`\n`,
/// `\r\n` or `\r`), a leading byte-order mark dropped; stored as a signed 32-bit number.
pub fn flyway_checksum(bytes: &[u8]) -> i32 {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let mut crc = crc32fast::Hasher::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|b| *b == b'\n' || *b == b'\r')
            .unwrap_or(rest.len());
        crc.update(&rest[..end]);
        rest = &rest[end..];
        if rest.starts_with(b"\r\n") {
            rest = &rest[2..];
        } else if !rest.is_empty() {
            rest = &rest[1..];
        }
    }
    // The same 32 bits Java's `(int) crc32.getValue()` gives.
    crc.finalize() as i32
}

/// refinery's checksum of `V<version>__<name>.sql`: SipHash-1-3 with zero keys over the name,
/// the version (a 32-bit integer) and the SQL, as Rust's `Hash` feeds them.
pub fn refinery_checksum(file: &Path, bytes: &[u8]) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let stem = file.file_stem()?.to_str()?;
    let (version, name) = stem.get(1..)?.split_once("__")?;
    let version: i32 = version.parse().ok()?;
    let sql = std::str::from_utf8(bytes).ok()?;
    let mut hasher = siphasher::sip::SipHasher13::new();
    name.hash(&mut hasher);
    version.hash(&mut hasher);
    sql.hash(&mut hasher);
    Some(hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tools_history_is_read() {
        let conn = Connection::open_in_memory().unwrap();
        assert_eq!(find(&conn).unwrap(), None);
        conn.execute_batch(
            "CREATE TABLE goose_db_version (id INTEGER PRIMARY KEY, version_id INTEGER,
                                            is_applied INTEGER, tstamp TEXT);
             INSERT INTO goose_db_version (version_id, is_applied) VALUES
               (0, 1), (1, 1), (2, 1), (3, 1), (3, 0);",
        )
        .unwrap();
        let found = find(&conn).unwrap().unwrap();
        assert_eq!(found.tool, Tool::Goose);
        assert_eq!(
            found.history,
            History::Versions {
                applied: vec![(1, None), (2, None)],
                unnumbered: vec![],
                unfinished: vec![],
            }
        );

        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER, dirty INTEGER);
             INSERT INTO schema_migrations VALUES (3, 1);",
        )
        .unwrap();
        let found = find(&conn).unwrap().unwrap();
        let set = BTreeSet::from([1, 2, 3, 4]);
        let refused = applied_versions(&found, &set, |_| None).unwrap_err();
        assert!(refused[0].contains("dirty"), "{refused:?}");
        conn.execute_batch("UPDATE schema_migrations SET dirty = 0")
            .unwrap();
        let found = find(&conn).unwrap().unwrap();
        assert_eq!(
            applied_versions(&found, &set, |_| None).unwrap(),
            BTreeSet::from([1, 2, 3])
        );
    }

    #[test]
    fn an_application_table_with_a_tools_name_is_not_history() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE schema_migrations (id INTEGER, note TEXT)")
            .unwrap();
        assert_eq!(find(&conn).unwrap(), None);
    }

    #[test]
    fn flyway_checksums_are_crc32_of_lines() {
        // Line breaks of any kind, and a byte-order mark, do not change it.
        let unix = flyway_checksum(b"CREATE TABLE a (x);\nINSERT INTO a VALUES (1);\n");
        assert_eq!(
            flyway_checksum(b"\xef\xbb\xbfCREATE TABLE a (x);\r\nINSERT INTO a VALUES (1);"),
            unix
        );
        // CRC-32 of the concatenated lines, as a signed number.
        let whole = crc32fast::hash(b"CREATE TABLE a (x);INSERT INTO a VALUES (1);");
        assert_eq!(unix, whole as i32);
        assert_ne!(flyway_checksum(b"CREATE TABLE a (y);\n"), unix);
    }

    #[test]
    fn flyway_and_refinery_checksums_are_checked_and_dotted_versions_numbered() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = dir.path().join("V1.1__users.sql");
        std::fs::write(&v1, "CREATE TABLE users (id);\n").unwrap();
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE flyway_schema_history (installed_rank INT, version TEXT, type TEXT,
                                                 checksum INT, success BOOL)",
        )
        .unwrap();
        let sum = flyway_checksum(&std::fs::read(&v1).unwrap());
        conn.execute(
            "INSERT INTO flyway_schema_history VALUES (1, '1.1', 'SQL', ?1, 1)",
            [sum],
        )
        .unwrap();
        let found = find(&conn).unwrap().unwrap();
        let set = BTreeSet::from([1_000_001_000_000]);
        let source = |_| Some(v1.clone());
        assert_eq!(applied_versions(&found, &set, source).unwrap(), set);
        std::fs::write(&v1, "CREATE TABLE users (id, name);\n").unwrap();
        let refused = applied_versions(&found, &set, source).unwrap_err();
        assert!(refused[0].contains("flyway_schema_history"), "{refused:?}");

        let r1 = dir.path().join("V3__add_posts.sql");
        std::fs::write(&r1, "CREATE TABLE posts (id);").unwrap();
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE refinery_schema_history (version INT4 PRIMARY KEY, name VARCHAR(255),
                                                   applied_on VARCHAR(255), checksum VARCHAR(255))",
        )
        .unwrap();
        let sum = refinery_checksum(&r1, &std::fs::read(&r1).unwrap()).unwrap();
        // What refinery-core 0.8's own `Migration::unapplied(..).checksum()` gives for it.
        assert_eq!(sum, 10008399813597373881);
        conn.execute(
            "INSERT INTO refinery_schema_history VALUES (3, 'add_posts', 'now', ?1)",
            [sum.to_string()],
        )
        .unwrap();
        let found = find(&conn).unwrap().unwrap();
        let set = BTreeSet::from([3]);
        assert_eq!(
            applied_versions(&found, &set, |_| Some(r1.clone())).unwrap(),
            set
        );
        std::fs::write(&r1, "CREATE TABLE posts (id, title);").unwrap();
        assert!(applied_versions(&found, &set, |_| Some(r1.clone())).is_err());

        // A version hsm-host cannot number stops adoption instead of being left out.
        conn.execute_batch("INSERT INTO refinery_schema_history VALUES ('x', 'n', 'now', '1')")
            .unwrap();
        let found = find(&conn).unwrap().unwrap();
        let refused = applied_versions(&found, &set, |_| None).unwrap_err();
        assert!(
            refused.iter().any(|p| p.contains("cannot number")),
            "{refused:?}"
        );
    }
}
