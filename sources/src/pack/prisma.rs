//! Prisma's SQLite migrations: `<timestamp>_<name>/migration.sql` (up only), ordered by folder
//! name, and `migration_lock.toml` naming the database provider the set was written for.

use std::path::Path;

use super::parts::{Layout, Parts, SetError, error};
use super::versions::{clean_name, diesel_number};
use crate::tool::Tool;

/// The lock file Prisma keeps beside its migration folders.
pub(super) const LOCK_FILE: &str = "migration_lock.toml";

/// Refuses a Prisma directory written for another database than SQLite (its lock file says
/// `provider = "postgresql"`, say): its SQL is another dialect.
pub(super) fn check_provider(dir: &Path) -> Result<(), SetError> {
    let lock = dir.join(LOCK_FILE);
    if std::fs::symlink_metadata(&lock).is_err() {
        return Ok(());
    }
    let bytes = crate::files::read_inside(&lock, dir, 64 << 10).map_err(|r| error(&lock, r))?;
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim_start_matches('\u{feff}');
    let provider = text.lines().find_map(|line| {
        // TOML: a `#` outside the quoted value starts a comment.
        let (key, value) = line.split_once('=')?;
        let value = value.trim();
        let value = match value.strip_prefix('"') {
            Some(quoted) => quoted.split('"').next().unwrap_or_default(),
            None => value.split('#').next().unwrap_or_default().trim(),
        };
        (key.trim() == "provider").then(|| value.to_owned())
    });
    match provider.as_deref() {
        None | Some("sqlite") => Ok(()),
        Some(other) => Err(error(
            &lock,
            format!(
                "says these Prisma migrations are for {}, not SQLite: hsm-host migrates SQLite \
                 databases (point --migrations at the set written for SQLite)",
                crate::text::neutralize(other, 64)
            ),
        )),
    }
}

/// Names `.sql` files in a Prisma migration folder besides `migration.sql` (a `down.sql`
/// written by hand): Prisma runs none of them, and neither does hsm-host.
pub(super) fn warn_unread(folder: &Path) {
    let others: Vec<String> = std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".sql") && name != "migration.sql")
        .map(|name| crate::text::neutralize(&name, 64))
        .collect();
    if !others.is_empty() {
        tracing::warn!(
            "{}: not read (Prisma runs only migration.sql, and has no down migrations): {}",
            folder.display(),
            others.join(", ")
        );
    }
}

/// A Prisma migration folder (`20240101120000_init/migration.sql`): Prisma runs them in the
/// order of their names, which this numbering keeps (the digits before the first `_`, as
/// diesel's: padded to 14, so a 14-digit timestamp is its own number).
pub(super) fn parts(folder: &Path, folder_name: &str) -> Result<(u64, Parts), SetError> {
    let (digits, name) = folder_name.split_once('_').unwrap_or((folder_name, ""));
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(error(
            folder,
            "is a Prisma migration folder whose name does not start with its timestamp \
             (`20240101120000_name`): hsm-host numbers migrations by it",
        ));
    }
    let version = diesel_number(digits).map_err(|reason| error(folder, reason))?;
    Ok((
        version,
        Parts {
            layout: Some(Layout::Tool(Tool::Prisma)),
            id: folder_name.to_owned(),
            name: clean_name(name, version),
            up: Some(folder.join("migration.sql")),
            down: None,
        },
    ))
}
