//! A migration attempt in progress, as the lock file holds it: one commit per migration writes
//! its history row inside the migration's own transaction, so until that commit the attempt is
//! known only here. A process that dies mid-migration leaves it in the lock file, and the next
//! holder of the lock records it as the interrupted attempt the seed protocol's `running` row
//! would have become.

use serde::{Deserialize, Serialize};

use crate::plan::Direction;

/// One attempt to run one migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attempt {
    /// The migration's version.
    pub version: u64,
    /// Which way it runs.
    pub direction: Direction,
    /// When it started, as `migration_history.started_at` records it.
    pub started_at: String,
    /// The backup taken before the run, as `migration_history.backup_path` records it.
    pub backup_path: Option<String>,
}

/// The longest backup path an attempt carries (Linux's `PATH_MAX`).
const MAX_PATH: usize = 4096;

/// The longest line an attempt takes in the lock file (a path's quotes and backslashes are
/// escaped, doubling them).
pub const MAX_ATTEMPT_LINE: usize = 2 * MAX_PATH + 256;

impl Attempt {
    /// The attempt as one line of the lock file.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("an attempt always serializes")
    }

    /// The attempt a lock file's line holds; `None` for anything else. The lock file is the
    /// user's own (private, checked when the lock is taken), but lies in the database's
    /// directory: a line is taken only when it is exactly what a holder writes (a version of
    /// at least 1, a time as [`crate::time::now_iso`] writes it, a bounded path without
    /// control characters), and even then it adds only a `failed` history row.
    pub fn from_line(line: &str) -> Option<Attempt> {
        if line.len() > MAX_ATTEMPT_LINE {
            return None;
        }
        let attempt: Attempt = serde_json::from_str(line).ok()?;
        let path_ok = attempt
            .backup_path
            .as_ref()
            .is_none_or(|p| p.len() <= MAX_PATH && !p.chars().any(char::is_control));
        let version_ok = attempt.version >= 1 && i64::try_from(attempt.version).is_ok();
        // Byte for byte as a holder writes it: no spaces, carriage returns or reordered fields.
        let canonical = attempt.to_line() == line;
        (canonical && written_stamp(&attempt.started_at) && path_ok && version_ok)
            .then_some(attempt)
    }
}

/// Whether `stamp` is a time as [`crate::time::now_iso`] writes it (`2026-12-07T06:00:00.123Z`,
/// nothing more or less) and not more than a day ahead of this machine's clock (a clock set
/// back since may put a real attempt a little ahead).
fn written_stamp(stamp: &str) -> bool {
    let Ok(at) = chrono::DateTime::parse_from_rfc3339(stamp) else {
        return false;
    };
    let at = at.with_timezone(&chrono::Utc);
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true) == stamp
        && at <= chrono::Utc::now() + chrono::Duration::days(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt() -> Attempt {
        Attempt {
            version: 7,
            direction: Direction::Down,
            started_at: "2026-12-07T06:00:00.123Z".into(),
            backup_path: Some("/srv/data/backups/db.backup-1 with space\u{e9}".into()),
        }
    }

    #[test]
    fn an_attempt_reads_back_as_written() {
        let line = attempt().to_line();
        assert!(!line.contains('\n'));
        assert_eq!(Attempt::from_line(&line), Some(attempt()));
    }

    #[test]
    fn anything_but_what_a_holder_writes_is_no_attempt() {
        let forged = [
            String::new(),
            "pid 12 on host x".into(),
            attempt().to_line().replace("06:00", "06;00"),
            attempt()
                .to_line()
                .replace("db.backup", &"b".repeat(MAX_PATH)),
            attempt()
                .to_line()
                .replace("\"version\":7", "\"version\":18446744073709551615"),
            attempt().to_line().replace("}", ",\"extra\":1}"),
            format!(
                "{{\"version\":1,\"direction\":\"up\",\"started_at\":\"{}\",\"backup_path\":null}}",
                "1".repeat(41)
            ),
            "x".repeat(MAX_ATTEMPT_LINE + 1),
            // Shaped like a time but not one, or not as a holder writes it.
            attempt().to_line().replace("2026-12-07", "2026-13-45"),
            attempt().to_line().replace(".123Z", "Z"),
            attempt().to_line().replace(".123Z", ".123+00:00"),
            attempt().to_line().replace("2026-12-07", "2999-12-07"),
            attempt()
                .to_line()
                .replace("\"version\":7", "\"version\":0"),
            attempt()
                .to_line()
                .replace("with space", "with\\u001b[2Jescape"),
            format!("  {}  \r", attempt().to_line()),
            attempt().to_line().replace(",", ", "),
        ];
        for line in forged {
            assert_eq!(Attempt::from_line(&line), None, "{line}");
        }
    }
}
