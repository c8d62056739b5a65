//! Files and directories that someone else may have shaped: a stranger's migration set, a cache
//! or backup directory on a path another local user can reach. Read only what is what it claims
//! to be: a regular file of bounded size inside the directory it was found in, and directories
//! that nobody but this user (or root) can change.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// Largest SQL migration file read: the SQL proxy's own limit on one call's SQL.
pub const MAX_SQL_FILE: u64 = 4 << 20;
/// Largest component file read (an interpreter with its standard library is tens of MiB).
pub const MAX_COMPONENT_FILE: u64 = 256 << 20;

/// The bytes of `path`, a file found in the directory `dir`, or why it is not read: it must be
/// a regular file or a symbolic link to one inside `dir` (never a device, FIFO or socket, never
/// a link out of the directory), of at most `cap` bytes. The reason reads after the path.
pub fn read_inside(path: &Path, dir: &Path, cap: u64) -> Result<Vec<u8>, String> {
    let target = resolve_inside(path, dir)?;
    read_regular(&target, cap)
}

/// `path` itself, or where its symbolic link leads when that is inside `dir`; refused if it
/// leads out of `dir` or is not a regular file.
pub fn resolve_inside(path: &Path, dir: &Path) -> Result<PathBuf, String> {
    let link = fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if !link.file_type().is_symlink() {
        return regular(&link).map(|()| path.to_owned());
    }
    let root = fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let target = fs::canonicalize(path).map_err(|e| format!("is a broken symbolic link: {e}"))?;
    if !target.starts_with(&root) {
        return Err(format!(
            "is a symbolic link out of the migrations directory (to {}); hsm-host reads only \
             files inside it: copy the file in if it is meant to be a migration",
            target.display()
        ));
    }
    regular(&fs::symlink_metadata(&target).map_err(|e| e.to_string())?)?;
    Ok(target)
}

/// Whether `path` is a directory inside `dir` (itself, or a symbolic link to one inside).
pub fn is_dir_inside(path: &Path, dir: &Path) -> bool {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => true,
        Ok(meta) if meta.file_type().is_symlink() => {
            match (fs::canonicalize(path), fs::canonicalize(dir)) {
                (Ok(target), Ok(root)) => target.starts_with(root) && target.is_dir(),
                _ => false,
            }
        }
        _ => false,
    }
}

/// The bytes of the regular file `path` (not following a final symbolic link), at most `cap`.
pub fn read_regular(path: &Path, cap: u64) -> Result<Vec<u8>, String> {
    let (file, meta) = open_regular(path, false)?;
    read_capped(file, &meta, cap)
}

/// The bytes of a file that decides what hsm-host does (a settings file, a fleet's targets),
/// if the operator controls it: a regular file, not a link, of this user or root, writable by
/// nobody else, at most `cap` bytes. A file another user planted (in a shared directory such
/// as /tmp) or could change would choose what runs.
pub fn read_owned(path: &Path, cap: u64) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::PermissionsExt;
    let (file, meta) = open_regular(path, false)?;
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me && meta.uid() != 0 {
        return Err(format!(
            "it belongs to another user (uid {}): hsm-host reads only such a file of its own \
             user or root, since the file chooses what runs",
            meta.uid()
        ));
    }
    let mode = meta.permissions().mode();
    if mode & 0o022 != 0 {
        return Err(format!(
            "others may write it (mode {:o}): make it writable by its owner alone (chmod go-w)",
            mode & 0o777
        ));
    }
    read_capped(file, &meta, cap)
}

/// Opens the regular file `path` without waiting (a FIFO would block the open), following a
/// final symbolic link only if `follow`, and checks what was opened.
pub fn open_regular(path: &Path, follow: bool) -> Result<(File, Metadata), String> {
    let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nofollow | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => "is a symbolic link; hsm-host reads only regular files".into(),
            _ => e.to_string(),
        })?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    regular(&meta)?;
    Ok((file, meta))
}

/// Reads `file` (whose metadata is `meta`) to its end, refusing more than `cap` bytes.
pub fn read_capped(file: File, meta: &Metadata, cap: u64) -> Result<Vec<u8>, String> {
    let too_big = || {
        format!(
            "is larger than hsm-host reads for this kind of file ({} bytes at most)",
            cap
        )
    };
    if meta.len() > cap {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > cap {
        return Err(too_big());
    }
    Ok(bytes)
}

fn regular(meta: &Metadata) -> Result<(), String> {
    let kind = meta.file_type();
    if kind.is_file() {
        return Ok(());
    }
    use std::os::unix::fs::FileTypeExt;
    let what = if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    };
    Err(format!("is {what}; hsm-host reads only regular files"))
}

/// `dir` with every symbolic link resolved, once it is checked that no other user can change
/// what it names: every directory on the way is owned by this user or root and writable by
/// nobody else (or sticky, like `/tmp`, where others cannot rename what is not theirs), every
/// symbolic link on the way is owned by this user or root, and `dir` itself belongs to this
/// user and is writable by nobody else. Later opens through the returned path therefore reach
/// what was checked. The reason names the path at fault and what to do.
pub fn trusted_dir(dir: &Path) -> Result<PathBuf, String> {
    let absolute = std::path::absolute(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    check_path(&absolute, 0)?;
    let canonical = fs::canonicalize(&absolute).map_err(|e| format!("{}: {e}", dir.display()))?;
    let meta = fs::metadata(&canonical).map_err(|e| format!("{}: {e}", canonical.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", canonical.display()));
    }
    if !owned_by_me(&meta) || meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{} must belong to this user and be writable by no one else (chmod go-w, or choose \
             another directory)",
            canonical.display()
        ));
    }
    Ok(canonical)
}

/// The check of [`trusted_dir`] on the part of `dir`'s path that exists, before the rest is
/// made: nothing is created in a place another user controls.
pub fn check_existing_path(dir: &Path) -> Result<(), String> {
    let absolute = std::path::absolute(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    check_path(&absolute, 0)
}

/// Checks every prefix of the absolute `path` (the last component too, if it is a link).
fn check_path(path: &Path, depth: u32) -> Result<(), String> {
    if depth > 40 {
        return Err(format!(
            "{}: too many levels of symbolic links",
            path.display()
        ));
    }
    let mut prefix = PathBuf::new();
    let components: Vec<Component<'_>> = path.components().collect();
    for (index, component) in components.iter().enumerate() {
        prefix.push(component);
        if matches!(component, Component::RootDir | Component::Prefix(_)) {
            continue;
        }
        if matches!(component, Component::ParentDir) {
            // `..` after a link means the link's parent, not the text's: resolve what is known.
            prefix = fs::canonicalize(&prefix).map_err(|e| format!("{}: {e}", prefix.display()))?;
            continue;
        }
        let meta = match fs::symlink_metadata(&prefix) {
            Ok(meta) => meta,
            // What does not exist yet is made by this user (in a directory checked so far).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("{}: {e}", prefix.display())),
        };
        if !owned_by_me(&meta) && meta.uid() != 0 {
            return Err(format!(
                "{} belongs to another user, who could swap what hsm-host reads or writes \
                 there; use a directory whose every parent belongs to you or root",
                prefix.display()
            ));
        }
        let last = index + 1 == components.len();
        if meta.file_type().is_symlink() {
            let target =
                fs::read_link(&prefix).map_err(|e| format!("{}: {e}", prefix.display()))?;
            let resolved = prefix.parent().unwrap_or(Path::new("/")).join(target);
            check_path(&resolved, depth + 1)?;
            prefix = fs::canonicalize(&resolved).unwrap_or(resolved);
            continue;
        }
        let sticky = meta.mode() & 0o1000 != 0;
        if meta.is_dir() && !last && meta.mode() & 0o022 != 0 && !sticky {
            return Err(format!(
                "{} is writable by other users, who could swap what hsm-host reads or writes \
                 below it; use a directory whose parents only you or root can write",
                prefix.display()
            ));
        }
    }
    Ok(())
}

fn owned_by_me(meta: &Metadata) -> bool {
    meta.uid() == rustix::process::geteuid().as_raw()
}

/// The database file `path` names, as its lock, backups and restore must see it: a link
/// followed to the file it points at (a `current/app.db` link to `shared/app.db` must not get
/// a lock of its own) and a relative path made absolute. A file not made yet is its directory's
/// real path joined with its name.
pub fn real_file(path: &Path) -> PathBuf {
    if let Ok(real) = std::fs::canonicalize(path) {
        return real;
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match (std::fs::canonicalize(parent), path.file_name()) {
        (Ok(parent), Some(name)) => parent.join(name),
        _ => std::path::absolute(path).unwrap_or_else(|_| path.to_owned()),
    }
}

/// Writes `bytes` to `path` (mode `mode`, before the umask) through a new file beside it
/// renamed over it: a reader never sees half a file, and a link already at `path` is
/// replaced, never written through (it could point at any of the user's files). An entry
/// already at the partial name is not ours: refused, and left alone.
pub fn write_replacing(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    let mut partial = path.as_os_str().to_owned();
    partial.push(format!(".partial-{}", std::process::id()));
    let partial = PathBuf::from(partial);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(mode)
        .open(&partial)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", partial.display())))?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&partial, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    #[test]
    fn only_regular_files_inside_the_directory_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("set");
        fs::create_dir(&root).unwrap();
        fs::write(root.join("1_a.sql"), "SELECT 1").unwrap();
        symlink(root.join("1_a.sql"), root.join("2_b.sql")).unwrap();
        let secret = dir.path().join("secret.txt");
        fs::write(&secret, "token").unwrap();
        symlink(&secret, root.join("3_c.sql")).unwrap();
        symlink("/dev/zero", root.join("4_d.sql")).unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            root.join("5_e.sql"),
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        fs::write(root.join("6_f.sql"), vec![b' '; 11]).unwrap();

        assert_eq!(
            read_inside(&root.join("1_a.sql"), &root, 10).unwrap(),
            b"SELECT 1"
        );
        assert_eq!(
            read_inside(&root.join("2_b.sql"), &root, 10).unwrap(),
            b"SELECT 1"
        );
        let out = read_inside(&root.join("3_c.sql"), &root, 10).unwrap_err();
        assert!(
            out.contains("symbolic link out of the migrations directory"),
            "{out}"
        );
        let device = read_inside(&root.join("4_d.sql"), &root, 10).unwrap_err();
        assert!(
            device.contains("out of the migrations directory"),
            "{device}"
        );
        let fifo = read_inside(&root.join("5_e.sql"), &root, 10).unwrap_err();
        assert!(fifo.contains("is a FIFO"), "{fifo}");
        let big = read_inside(&root.join("6_f.sql"), &root, 10).unwrap_err();
        assert!(big.contains("10 bytes at most"), "{big}");
        let link = read_regular(&root.join("2_b.sql"), 10).unwrap_err();
        assert!(link.contains("symbolic link"), "{link}");
        let zero = read_regular(Path::new("/dev/zero"), 10).unwrap_err();
        assert!(zero.contains("is a device"), "{zero}");
    }

    #[test]
    fn a_directory_others_can_change_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("private");
        fs::create_dir(&private).unwrap();
        fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(
            trusted_dir(&private).unwrap(),
            fs::canonicalize(&private).unwrap()
        );
        // A directory below one anyone may write (without the sticky bit) can be swapped.
        let open = dir.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
        let below = open.join("cache");
        fs::create_dir(&below).unwrap();
        let error = trusted_dir(&below).unwrap_err();
        assert!(error.contains("writable by other users"), "{error}");
        // ...also when reached through a link.
        let link = dir.path().join("link");
        symlink(&below, &link).unwrap();
        assert!(trusted_dir(&link).is_err());
        // The directory itself must be private.
        fs::set_permissions(&below, fs::Permissions::from_mode(0o777)).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
        let error = trusted_dir(&below).unwrap_err();
        assert!(error.contains("writable by no one else"), "{error}");
        // Sticky (like /tmp) is fine.
        fs::set_permissions(&below, fs::Permissions::from_mode(0o700)).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(trusted_dir(&below).is_ok());
    }
}
