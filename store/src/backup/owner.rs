//! Whose backups a directory holds. Backups are named after the database's file name only (as
//! the Node tool named them), so two databases called `app.db` sharing one `--backup-dir` would
//! list, recommend and prune each other's backups. The first backup of a database into a
//! directory writes `.<file name>.backups-of` there, naming the database file; a database of the
//! same name elsewhere is then refused there, with what to do.

use super::*;

/// The most a marker holds (a path).
const MAX_MARKER: u64 = 8192;

fn marker(database: &Path, dir: &Path) -> PathBuf {
    dir.join(format!(".{}.backups-of", file_name(database)))
}

/// The other database whose backups named like `database`'s are in `dir`, if another's are.
pub(super) fn other_owner(database: &Path, dir: &Path) -> Option<String> {
    let owner = crate::files::read_regular(&marker(database, dir), MAX_MARKER).ok()?;
    let owner = String::from_utf8_lossy(&owner)
        .trim_end_matches('\n')
        .to_owned();
    // Empty: another backup of this database is writing it at this moment.
    (!owner.is_empty() && owner != database.to_string_lossy()).then_some(owner)
}

/// Refuses `dir` when it holds the backups of another database of the same file name; marks
/// it as `database`'s when nobody's.
pub(super) fn claim(database: &Path, dir: &Path) -> Result<()> {
    if let Some(owner) = other_owner(database, dir) {
        return Err(Error::Backup {
            path: dir.to_owned(),
            reason: format!(
                "it holds the backups of {}, another database named {}: give this one its own \
                 --backup-dir (or, if that database was moved here, remove {})",
                crate::text::neutralize(&owner, 1024),
                file_name(database),
                marker(database, dir).display()
            ),
        });
    }
    let marker = marker(database, dir);
    if fs::symlink_metadata(&marker).is_err() {
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&marker)
            .and_then(|mut file| {
                use std::io::Write;
                writeln!(file, "{}", database.display())
            });
        if let Err(e) = written {
            tracing::debug!("cannot write {}: {e}", marker.display());
        }
    }
    Ok(())
}
