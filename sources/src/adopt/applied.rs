//! What another tool's history says was applied, matched against the migration set: every
//! version accounted for, and the checksums a tool recorded compared with the files here
//! (sqlx's SHA-384, Flyway's CRC-32 of lines, refinery's SipHash).

use std::collections::BTreeSet;
use std::path::Path;

use sha2::{Digest, Sha384};

use super::*;

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
    use rusqlite::Connection;

    use super::*;

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
