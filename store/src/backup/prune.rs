//! Pruning: a database's old backups beyond the count and age kept, their sidecars, and what
//! a killed copy left.

use super::*;

/// Files SQLite keeps beside a database.
pub(super) const SIDECARS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Deletes all but the newest `keep` backups of `database` in `dir`, never `current` (the
/// backup just taken) nor those named in `kept_also` (on top of `keep`). Only this database's
/// backups are candidates: regular files (not links)
/// of this user, named for this database, dated no later than now; a planted file dated in
/// the future or another user's file counts for nothing and is left alone. Other files are
/// never touched.
pub fn prune(
    database: &Path,
    dir: &Path,
    keep: usize,
    current: Option<&str>,
    kept_also: &[String],
) -> Result<()> {
    let database = &crate::files::real_file(database);
    if owner::other_owner(database, dir).is_some() {
        return Ok(());
    }
    prune_older(database, dir, keep, current, kept_also, None)
}

/// [`prune`], also dropping backups named before `oldest` (the name a backup taken at the age
/// bound would have: names sort in time order).
pub(super) fn prune_older(
    database: &Path,
    dir: &Path,
    keep: usize,
    current: Option<&str>,
    kept_also: &[String],
    oldest: Option<&str>,
) -> Result<()> {
    let latest = latest_name(database);
    let me = rustix::process::geteuid().as_raw();
    let mut names: Vec<String> = fs::read_dir(dir)
        .map_err(|e| Error::Backup {
            path: dir.to_owned(),
            reason: format!("cannot list backups: {e}"),
        })?
        .flatten()
        .filter(|entry| own_file(&entry.path()).is_some())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| parse_backup_time(database, name).is_some() && *name <= latest)
        .collect();
    // The time stamp sorts lexicographically in time order.
    names.sort_unstable_by(|a, b| b.cmp(a));
    let mut kept = 0;
    for old in &names {
        if kept_also.contains(old) {
            continue;
        }
        let too_old = oldest.is_some_and(|oldest| old.as_str() < oldest);
        if Some(old.as_str()) == current || (kept < keep && !too_old) {
            kept += 1;
            continue;
        }
        let path = dir.join(old);
        match fs::remove_file(&path) {
            Ok(()) => tracing::info!("old backup removed: {}", path.display()),
            Err(e) => tracing::warn!("cannot remove old backup {}: {e}", path.display()),
        }
        // Sidecars an older hsm-host (or another program) left beside it go with it.
        for suffix in SIDECARS {
            remove_own_file(&dir.join(format!("{old}{suffix}")), me);
        }
    }
    // And sidecars whose backup is gone already.
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let orphan = SIDECARS.iter().any(|suffix| {
            name.strip_suffix(suffix).is_some_and(|base| {
                parse_backup_time(database, base).is_some()
                    && fs::symlink_metadata(dir.join(base)).is_err()
            })
        });
        if orphan {
            remove_own_file(&entry.path(), me);
        }
    }
    remove_stale_partials(database, dir, me);
    Ok(())
}

/// How long a backup's hidden `.partial` file (and its sidecars) must have gone unwritten to
/// be taken for a copy whose process was killed: a copy in progress writes it continuously.
pub(super) const STALE_PARTIAL: Duration = Duration::from_secs(60 * 60);

/// Removes what copies of `database` killed mid-way left in `dir`: `.<backup name>.partial`
/// and its `-wal`/`-journal`/`-shm`, this user's regular files, untouched for an hour. Nothing
/// else is touched (other databases' partials, younger ones, other users' files).
pub(super) fn remove_stale_partials(database: &Path, dir: &Path, me: u32) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let backup = name.strip_prefix('.').and_then(|rest| {
            ["", "-wal", "-journal", "-shm"]
                .iter()
                .find_map(|suffix| rest.strip_suffix(&format!(".partial{suffix}")))
        });
        let ours = backup.is_some_and(|backup| parse_backup_time(database, backup).is_some());
        let stale = fs::symlink_metadata(entry.path())
            .and_then(|meta| meta.modified())
            .is_ok_and(|at| at.elapsed().is_ok_and(|age| age >= STALE_PARTIAL));
        if ours && stale {
            tracing::info!(
                "removing what a killed backup left: {}",
                entry.path().display()
            );
            remove_own_file(&entry.path(), me);
        }
    }
}

/// The name a backup taken a minute from now would have: no backup of ours is named later (a
/// file dated in the future was planted, and counts for nothing).
pub(super) fn latest_name(database: &Path) -> String {
    backup_file_name(database, chrono::Utc::now() + chrono::Duration::minutes(1))
}

/// The metadata of `path` if it is a regular file (not a link: the entry's own metadata) of
/// this user: the only files listed, read or pruned as backups.
pub(super) fn own_file(path: &Path) -> Option<fs::Metadata> {
    let meta = fs::symlink_metadata(path).ok()?;
    (meta.is_file() && meta.uid() == rustix::process::geteuid().as_raw()).then_some(meta)
}

/// Removes `path` if it is a regular file of the user `me`.
pub(super) fn remove_own_file(path: &Path, me: u32) {
    if fs::symlink_metadata(path).is_ok_and(|meta| meta.is_file() && meta.uid() == me) {
        let _ = fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a backup killed mid-copy leaves (its hidden partial file and the copy's WAL or
    /// journal) goes at the next prune once it is an hour old; a copy in progress, another
    /// database's partial and other files stay.
    #[test]
    fn a_killed_backups_partial_files_are_removed_once_stale() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("monitor.db");
        let backups = dir.path().join("backups");
        fs::create_dir(&backups).unwrap();
        let stamp = "2024-01-01T12-00-00-000Z";
        let write = |name: &str, age: Duration| {
            let path = backups.join(name);
            fs::write(&path, b"partial copy").unwrap();
            let file = fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(std::time::SystemTime::now() - age)
                .unwrap();
            path
        };
        let two_hours = Duration::from_secs(2 * 60 * 60);
        let stale = [
            write(&format!(".monitor.db.backup-{stamp}.partial"), two_hours),
            write(
                &format!(".monitor.db.backup-{stamp}.partial-wal"),
                two_hours,
            ),
            write(
                &format!(".monitor.db.backup-{stamp}.partial-journal"),
                two_hours,
            ),
        ];
        let kept = [
            write(
                ".monitor.db.backup-2024-01-02T12-00-00-000Z.partial",
                Duration::ZERO,
            ),
            write(&format!(".other.db.backup-{stamp}.partial"), two_hours),
            write(".monitor.db.partial", two_hours),
            write("notes.partial", two_hours),
        ];
        prune(&db, &backups, 10, None, &[]).unwrap();
        for path in stale {
            assert!(!path.exists(), "{} stayed", path.display());
        }
        for path in kept {
            assert!(path.exists(), "{} was removed", path.display());
        }
    }
}
