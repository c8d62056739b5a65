//! `--backup pg_dump`: a logical copy of the database before migrating, made by PostgreSQL's
//! own `pg_dump` (a server has no file to copy). Opt-in: the step's transaction is what undoes
//! a failed migration; the dump is for the one that succeeded and was wrong.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{Error, Server};

/// Where dumps go and how many of this database's to keep.
#[derive(Debug, Clone)]
pub struct DumpPlan {
    /// The directory (made with mode 0700 when missing).
    pub dir: PathBuf,
    /// How many of this database's dumps to keep, the newest; the one just taken always stays.
    pub keep: usize,
}

/// A dump taken.
#[derive(Debug, Clone)]
pub struct Dumped {
    /// The dump file (`pg_dump --format=custom`; `pg_restore` reads it).
    pub path: PathBuf,
    /// The older dumps of this database removed to keep `keep`.
    pub removed: Vec<PathBuf>,
}

/// Dumps the database `server` is connected to into `plan.dir`, as `<database>-<UTC time>.dump`.
/// The connection reaches `pg_dump` through its environment (`PGPASSWORD`), never its
/// command line, which any user of the machine can read.
pub fn dump(server: &Server, plan: &DumpPlan) -> Result<Dumped, Error> {
    let pg_dump = find_pg_dump(server.version.max(0) as u32)?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&plan.dir)
        .map_err(|e| usage(format!("cannot make {}: {e}", plan.dir.display())))?;
    check_dir(&plan.dir)?;
    let prefix = file_prefix(server.target().database());
    let name = format!("{prefix}{}.dump", timestamp());
    let path = plan.dir.join(&name);
    let partial = plan.dir.join(format!(".{name}.partial"));
    // Made by us, mode 0600, and handed to pg_dump open as its output: a dump holds every
    // row, and pg_dump never opens a name someone could have swapped for a link.
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| usage(format!("cannot create {}: {e}", partial.display())))?;
    let output = pg_dump_command(&pg_dump, server)
        .stdout(file)
        .output()
        .map_err(|e| usage(format!("cannot run {}: {e}", pg_dump.display())));
    let failed = match &output {
        Ok(output) if output.status.success() => None,
        Ok(output) => Some(format!(
            "{} failed ({}): {}",
            pg_dump.display(),
            output.status,
            hsm_store::text::neutralize(String::from_utf8_lossy(&output.stderr).trim(), 1000)
        )),
        Err(e) => Some(e.to_string()),
    };
    if let Some(why) = failed {
        let _ = fs::remove_file(&partial);
        return Err(usage(format!(
            "the backup (pg_dump) failed, so nothing was migrated: {why}"
        )));
    }
    fs::rename(&partial, &path)
        .map_err(|e| usage(format!("cannot rename {}: {e}", partial.display())))?;
    let removed = rotate(&plan.dir, &prefix, &path, plan.keep);
    Ok(Dumped { path, removed })
}

/// Refuses a backup directory that is a link, is not the user's, or that others may write:
/// whoever can write it can swap or plant files there (the review's `.partial` race, and
/// decoys that steer rotation into deleting real dumps).
fn check_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::symlink_metadata(dir)
        .map_err(|e| usage(format!("cannot read {}: {e}", dir.display())))?;
    let euid = effective_uid();
    let why = if meta.file_type().is_symlink() {
        Some("is a symbolic link")
    } else if !meta.is_dir() {
        Some("is not a directory")
    } else if meta.uid() != euid {
        Some("belongs to another user")
    } else if meta.mode() & 0o022 != 0 {
        Some("may be written by other users (group or others)")
    } else {
        None
    };
    match why {
        Some(why) => Err(usage(format!(
            "the backup directory {} {why}: dumps go only where no one else can plant or swap \
             files (chmod 700, or choose another --backup-dir)",
            dir.display()
        ))),
        None => Ok(()),
    }
}

/// This process's effective user.
fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// A `pg_dump` at least as new as the server (an older one refuses to dump it): `HSM_PG_DUMP`,
/// then Debian's `/usr/lib/postgresql/<major>/bin/pg_dump`, then `pg_dump` on the PATH.
fn find_pg_dump(server_version: u32) -> Result<PathBuf, Error> {
    let major = server_version / 10_000;
    let mut candidates = Vec::new();
    if let Some(chosen) = std::env::var_os("HSM_PG_DUMP").filter(|v| !v.is_empty()) {
        candidates.push(PathBuf::from(chosen));
    } else {
        candidates.push(PathBuf::from(format!(
            "/usr/lib/postgresql/{major}/bin/pg_dump"
        )));
        candidates.push(PathBuf::from("pg_dump"));
    }
    let mut found = Vec::new();
    for candidate in candidates {
        match pg_dump_major(&candidate) {
            Some(version) if version >= major => return Ok(candidate),
            Some(version) => found.push(format!("{} is {version}", candidate.display())),
            None => {}
        }
    }
    Err(usage(format!(
        "--backup pg_dump needs pg_dump from PostgreSQL {major} or newer, as the server is{}: \
         install the client tools of {major} (Debian: postgresql-client-{major}) or set \
         HSM_PG_DUMP to one",
        match found.is_empty() {
            true => ", and none was found".to_owned(),
            false => format!(" ({})", found.join(", ")),
        }
    )))
}

/// The major version `pg_dump --version` reports (`pg_dump (PostgreSQL) 15.18 (Debian …)`).
fn pg_dump_major(program: &Path) -> Option<u32> {
    let output = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()
        .filter(|output| output.status.success())?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text
        .split_whitespace()
        .find(|word| word.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
    version.split('.').next()?.parse().ok()
}

/// `pg_dump` for `server`'s database, writing to its standard output: the connection in
/// libpq's variables (and no other PG* variable of ours, such as a PGSERVICE that would point
/// it elsewhere).
fn pg_dump_command(program: &Path, server: &Server) -> Command {
    let mut command = Command::new(program);
    command
        .args([
            "--format=custom",
            "--no-password",
            "--lock-wait-timeout=30s",
        ])
        .stdin(Stdio::null());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PG") {
            command.env_remove(name);
        }
    }
    command.envs(server.target().libpq_env());
    command.env("PGAPPNAME", "hsm-host backup");
    command
}

/// Removes this database's oldest dumps beyond `keep`, never `taken`: only regular files of
/// this user, mode 0600 as hsm-host makes them, named exactly as it names them
/// (`<prefix><timestamp>.dump`, a time not in the future), so a link, another's file or a
/// decoy dated ahead is never followed, removed or counted.
fn rotate(dir: &Path, prefix: &str, taken: &Path, keep: usize) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let euid = effective_uid();
    let now = timestamp();
    let mut ours: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|entry| {
            entry.metadata().is_ok_and(|m| {
                m.file_type().is_file() && m.uid() == euid && m.mode() & 0o777 == 0o600
            })
        })
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix(prefix))
                .and_then(|rest| rest.strip_suffix(".dump"))
                .is_some_and(|stamp| is_timestamp(stamp) && stamp <= now.as_str())
        })
        .filter(|path| path != taken)
        .collect();
    ours.sort();
    let excess = (ours.len() + 1).saturating_sub(keep.max(1));
    ours.into_iter()
        .take(excess)
        .filter(|path| fs::remove_file(path).is_ok())
        .collect()
}

/// `<name>-<hash>-`: the database's name made a file name, and 8 hex digits of its sha256, so
/// two databases whose names read alike (`app.db`, `app_db`) never share dumps.
fn file_prefix(database: &str) -> String {
    use sha2::{Digest, Sha256};
    let hash = hex::encode(&Sha256::digest(database.as_bytes())[..4]);
    format!("{}-{hash}-", file_stem(database))
}

/// The database's name as a file name: letters, digits, `_` and `-`; anything else `_`.
fn file_stem(database: &str) -> String {
    let stem: String = database
        .chars()
        .take(64)
        .map(
            |c| match c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                true => c,
                false => '_',
            },
        )
        .collect();
    match stem.is_empty() {
        true => "database".into(),
        false => stem,
    }
}

/// Now, UTC, as `20261207T170502.123Z` (sorts as it is ordered in time).
fn timestamp() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string()
}

/// Exactly `YYYYmmddTHHMMSS.mmmZ`, as [`timestamp`] writes it.
fn is_timestamp(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            8 => *c == b'T',
            15 => *c == b'.',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
        && chrono::NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%S%.3fZ").is_ok()
}

fn usage(message: String) -> Error {
    Error::Usage(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stems_are_plain() {
        assert_eq!(file_stem("app"), "app");
        assert_eq!(file_stem("../etc/passwd"), "___etc_passwd");
        assert_eq!(file_stem("a\u{1b}[2Jb"), "a__2Jb");
        assert_eq!(file_stem(""), "database");
    }

    #[test]
    fn rotation_keeps_the_newest_and_only_touches_our_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, mode: u32| {
            let path = dir.path().join(name);
            fs::write(&path, b"x").unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        };
        let ours = [
            "app-20261201T000000.000Z.dump",
            "app-20261202T000000.000Z.dump",
            "app-20261203T000000.000Z.dump",
        ];
        for name in ours {
            write(name, 0o600);
        }
        // Decoys (the review's): dated ahead, named almost alike, another mode, another
        // database, and a link.
        let decoys = [
            ("app-99990101T000000.000Z.dump", 0o600),
            ("app-20260101T000000Z.dump", 0o600),
            ("app- 20260101T000000.000Z.dump", 0o600),
            ("app-20260101T000000.000Z.dump", 0o644),
            ("app-notes.dump", 0o600),
            ("other-20261201T000000.000Z.dump", 0o600),
        ];
        for (name, mode) in decoys {
            write(name, mode);
        }
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::os::unix::fs::symlink(
            outside.path(),
            dir.path().join("app-20261130T000000.000Z.dump"),
        )
        .unwrap();
        let taken = dir.path().join("app-20261203T000000.000Z.dump");
        let removed = rotate(dir.path(), "app-", &taken, 2);
        assert_eq!(removed, [dir.path().join("app-20261201T000000.000Z.dump")]);
        for kept in ours[1..].iter().chain(decoys.iter().map(|(n, _)| n)) {
            assert!(dir.path().join(kept).exists(), "{kept}");
        }
        assert!(outside.path().exists());
        // keep 0 still keeps the one just taken.
        rotate(dir.path(), "app-", &taken, 0);
        assert!(taken.exists());
        assert!(!dir.path().join("app-20261202T000000.000Z.dump").exists());
        assert!(dir.path().join("app-99990101T000000.000Z.dump").exists());
    }

    #[test]
    fn names_that_read_alike_get_their_own_prefix() {
        assert_ne!(file_prefix("app.db"), file_prefix("app_db"));
        assert!(file_prefix("app.db").starts_with("app_db-"));
    }

    #[test]
    fn a_backup_directory_others_can_write_or_a_link_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(
            check_dir(&open)
                .unwrap_err()
                .to_string()
                .contains("other users")
        );
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&open, &link).unwrap();
        assert!(
            check_dir(&link)
                .unwrap_err()
                .to_string()
                .contains("symbolic link")
        );
        fs::set_permissions(&open, fs::Permissions::from_mode(0o700)).unwrap();
        check_dir(&open).unwrap();
    }

    #[test]
    fn pg_dump_versions_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("pg_dump");
        fs::write(
            &fake,
            "#!/bin/sh\necho 'pg_dump (PostgreSQL) 14.11 (Debian 14.11-1)'\n",
        )
        .unwrap();
        fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        assert_eq!(pg_dump_major(&fake), Some(14));
        assert_eq!(pg_dump_major(&dir.path().join("missing")), None);
    }
}
