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
/// it as `database`'s when nobody's. Claiming is one step (`create_new`): two databases of the
/// same name backed up at once (a fleet's `--parallel`) cannot both take the directory.
pub(super) fn claim(database: &Path, dir: &Path) -> Result<()> {
    let marker = marker(database, dir);
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&marker)
        .and_then(|mut file| {
            use std::io::Write;
            writeln!(file, "{}", database.display())
        });
    match written {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            tracing::debug!("cannot write {}: {e}", marker.display());
            return Ok(());
        }
    }
    // Someone's marker; an empty one is being written this moment: wait for its name.
    for _ in 0..100 {
        let owner = crate::files::read_regular(&marker, MAX_MARKER)
            .map(|bytes| {
                String::from_utf8_lossy(&bytes)
                    .trim_end_matches('\n')
                    .to_owned()
            })
            .unwrap_or_default();
        if owner.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(10));
            continue;
        }
        if owner == database.to_string_lossy() {
            return Ok(());
        }
        return Err(Error::Backup {
            path: dir.to_owned(),
            reason: format!(
                "it holds the backups of {}, another database named {}: give this one its own \
                 --backup-dir (or, if that database was moved here, remove {})",
                crate::text::neutralize(&owner, 1024),
                file_name(database),
                marker.display()
            ),
        });
    }
    Ok(())
}
