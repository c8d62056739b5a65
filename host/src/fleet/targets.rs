//! A fleet's targets: the lines of a targets file (or the `targets` list of the settings
//! file), each a SQLite path, a glob of them or a PostgreSQL URL.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The largest targets file read (a million lines of paths is ~64 MiB).
const MAX_TARGETS_FILE: u64 = 64 << 20;

/// The targets a file lists: one SQLite path (relative to the file's directory) or
/// PostgreSQL URL a line, `#` comments (whole lines, or after a space) and blank lines left
/// out, and a line with `*`, `?` or `[` a glob whose matches are taken in name order. A
/// target named twice runs once.
///
/// # Errors
/// [`Error::Fleet`] when the file cannot be read, a glob matches nothing or matches a file
/// that is not a SQLite database.
pub fn read_targets(file: &Path) -> Result<Vec<PathBuf>> {
    let cannot = |why: String| Error::Fleet(format!("the targets file {}: {why}", file.display()));
    // It chooses what is migrated: read as the settings file is (a regular file of this user
    // or root that no one else may write, not a link; not a FIFO that never ends, nor a link
    // to /dev/zero), of a sane size.
    let bytes = hsm_store::files::read_owned(file, MAX_TARGETS_FILE).map_err(cannot)?;
    let text = String::from_utf8(bytes).map_err(|_| cannot("is not UTF-8 text".into()))?;
    // `targets.txt`'s parent is "", which a glob would read as the root (`/sites/*.db`).
    let base = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let origin = format!("the targets file {}", file.display());
    from_lines(text.lines(), base, &origin, "line")
}

/// The targets `lines` name, as [`read_targets`] reads a file's lines: relative paths are
/// taken from `base`, and errors name `origin` and the `item` (`line`, `entry`) and its number.
///
/// # Errors
/// As [`read_targets`].
pub fn from_lines<'a>(
    lines: impl IntoIterator<Item = &'a str>,
    base: &Path,
    origin: &str,
    item: &str,
) -> Result<Vec<PathBuf>> {
    let mut targets: Vec<PathBuf> = Vec::new();
    for (number, line) in lines.into_iter().enumerate() {
        let line = without_comment(line.trim_start_matches('\u{feff}'));
        if line.is_empty() {
            continue;
        }
        let at = || format!("{origin} {item} {}", number + 1);
        if crate::server::is_server_url(line) {
            targets.push(PathBuf::from(line));
        } else if let Some(why) = not_a_path(line) {
            return Err(Error::Fleet(format!("{}: {why}", at())));
        } else if line.contains(['*', '?', '[']) && !base.join(line).exists() {
            // (A file whose name has `[` in it, named as it is, is that file.)
            targets.extend(glob_databases(line, base, &at)?);
        } else if base == Path::new(".") {
            // As a glob's matches are shown: `sites/a.db`, not `./sites/a.db`.
            targets.push(PathBuf::from(line));
        } else {
            targets.push(base.join(line));
        }
    }
    let targets = distinct(targets);
    if targets.is_empty() {
        return Err(Error::Fleet(format!("{origin} names no database")));
    }
    Ok(targets)
}

/// Why a line that is not a server URL cannot be a path either: a URL mistyped (its scheme
/// in capitals, one slash) would otherwise become a new SQLite file named after it, password
/// and all; `~` is not expanded (no shell reads the file). The line is not quoted: it may
/// hold a password.
fn not_a_path(line: &str) -> Option<&'static str> {
    let scheme = line.split_once(':').map(|(scheme, _)| scheme);
    let looks_like_url = line.contains("://")
        || scheme.is_some_and(|s| s.to_ascii_lowercase().starts_with("postgres"));
    if looks_like_url {
        return Some(
            "it looks like a URL but is not a server URL hsm-host reads: write \
             postgresql://user@host/database (or postgres://), in lower case",
        );
    }
    if line.starts_with('~') {
        return Some("`~` is not expanded in a targets file: write the path out");
    }
    None
}

/// A line without its comment: a `#` that starts it, or follows a space or tab, begins one
/// (`a.db  # the first site`); a `#` inside a name (`site#2.db`) does not.
fn without_comment(line: &str) -> &str {
    let line = line.trim();
    if line.starts_with('#') {
        return "";
    }
    let cut = line
        .char_indices()
        .find(|&(i, c)| c == '#' && line[..i].ends_with([' ', '\t']))
        .map_or(line.len(), |(i, _)| i);
    line[..cut].trim_end()
}

/// The databases a glob matches, in name order. Hidden files (`.gitkeep`) and the files
/// SQLite and hsm-host keep beside a database (`-wal`, `-shm`, `-journal`, `.lock`) are left
/// out; anything else that is not a SQLite database (an empty file too: a glob takes the
/// databases that exist) is refused, since `*` in a directory of mixed files is more likely a
/// slip than a wish to make a log file a database.
fn glob_databases(line: &str, base: &Path, at: &dyn Fn() -> String) -> Result<Vec<PathBuf>> {
    let refuse = |why: String| Error::Fleet(format!("{}: {why}", at()));
    if line.contains("**") {
        return Err(refuse(
            "`**` is not supported (it follows links into loops): name each directory's pattern"
                .into(),
        ));
    }
    // The base directory is a path, not a pattern (`d[x]/` stays itself); an absolute
    // pattern is its own.
    let pattern = match Path::new(line).is_absolute() {
        true => line.to_owned(),
        false => format!("{}/{line}", glob::Pattern::escape(&base.to_string_lossy())),
    };
    let shown = crate::text::neutralize(line, 200);
    let mut matched = Vec::new();
    let options = glob::MatchOptions {
        require_literal_leading_dot: true,
        ..glob::MatchOptions::new()
    };
    for entry in
        glob::glob_with(&pattern, options).map_err(|e| refuse(format!("not a glob: {e}")))?
    {
        // A directory it cannot read would hide databases: said, not skipped.
        let path = entry.map_err(|e| refuse(format!("`{shown}`: {e}")))?;
        if !path.is_file() || is_companion(&path) {
            continue;
        }
        if !is_sqlite(&path) {
            return Err(refuse(format!(
                "`{shown}` matches {}, which is not a SQLite database: narrow the pattern \
                 (or name the databases one a line)",
                crate::text::neutralize(&path.display().to_string(), 200)
            )));
        }
        matched.push(path);
    }
    if matched.is_empty() {
        return Err(refuse(format!("`{shown}` matches no database")));
    }
    matched.sort();
    Ok(matched)
}

/// A file SQLite or hsm-host keeps beside a database.
fn is_companion(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    ["-wal", "-shm", "-journal", ".lock"]
        .iter()
        .any(|suffix| name.ends_with(suffix))
}

/// Whether a file starts with SQLite's header.
fn is_sqlite(path: &Path) -> bool {
    use std::io::Read;
    let Ok((file, _)) = hsm_store::files::open_regular(path, true) else {
        return false;
    };
    let mut header = [0u8; 16];
    file.take(16).read_exact(&mut header).is_ok() && &header == b"SQLite format 3\0"
}

/// Each database once, however it is spelled (`a.db`, `./a.db`, a link to it, an absolute
/// path; a URL with another spelling of the same server, port and database): run twice, a
/// `down` would roll one database back twice as far (found by the review).
fn distinct(targets: Vec<PathBuf>) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    targets
        .into_iter()
        .filter(|target| {
            let key = match target.to_str().filter(|t| crate::server::is_server_url(t)) {
                Some(url) => hsm_postgres::Target::parse(url)
                    .map(|t| format!("url:{}", t.identity()))
                    .unwrap_or_else(|_| format!("text:{url}")),
                None => match std::fs::metadata(target) {
                    Ok(meta) => format!("file:{}:{}", meta.dev(), meta.ino()),
                    // Not made yet: its directory's identity and its name.
                    Err(_) => match (
                        target.parent().map(std::fs::canonicalize),
                        target.file_name(),
                    ) {
                        (Some(Ok(dir)), Some(name)) => {
                            format!("new:{}", dir.join(name).display())
                        }
                        // `new/./x.db` and `new//x.db` are `new/x.db`.
                        _ => format!(
                            "path:{}",
                            target.components().collect::<PathBuf>().display()
                        ),
                    },
                },
            };
            seen.insert(key)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path, targets: &[PathBuf]) -> Vec<String> {
        targets
            .iter()
            .map(|t| t.strip_prefix(dir).unwrap().to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn a_targets_file_lists_paths_globs_and_comments() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.db", "a.db", ".hidden.db"] {
            sqlite_file(&dir.path().join(name));
        }
        for name in ["c.sqlite", "a.db-wal", "a.db.lock", "b.db-journal"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let file = dir.path().join("targets");
        std::fs::write(
            &file,
            "# the installations\n\n  c.sqlite  # the old one\n*.db*\na.db\nnew/site#2.db\n",
        )
        .unwrap();
        let targets = read_targets(&file).unwrap();
        assert_eq!(
            names(dir.path(), &targets),
            ["c.sqlite", "a.db", "b.db", "new/site#2.db"]
        );
        std::fs::write(&file, "*.nothing\n").unwrap();
        let error = read_targets(&file).unwrap_err().to_string();
        assert!(error.contains("matches no database"), "{error}");
        std::fs::write(&file, "# nothing\n").unwrap();
        assert!(read_targets(&file).is_err());
        std::fs::write(&file, "postgresql://u:secret@h/db  # tenant 7\n").unwrap();
        let targets = read_targets(&file).unwrap();
        assert_eq!(targets, [PathBuf::from("postgresql://u:secret@h/db")]);
        // (The port may come from PGPORT.)
        let shown = super::super::shown(&targets[0]);
        assert!(shown.starts_with("postgresql://u:***@h"), "{shown}");
        assert!(!shown.contains("secret"), "{shown}");
    }

    fn sqlite_file(path: &Path) {
        rusqlite::Connection::open(path)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
    }

    #[test]
    fn a_line_is_a_named_file_a_glob_or_refused_and_the_file_must_be_the_operators() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        sqlite_file(&dir.path().join("tenant[eu].db"));
        sqlite_file(&dir.path().join("tenante.db"));
        let lines = |lines: &[&str]| from_lines(lines.iter().copied(), dir.path(), "t", "line");
        // Named as it is, a file with `[` in its name is that file, not a pattern.
        let named = lines(&["tenant[eu].db"]).unwrap();
        assert_eq!(named, [dir.path().join("tenant[eu].db")]);
        assert_eq!(
            lines(&["tenant[xe].db"]).unwrap(),
            [dir.path().join("tenante.db")]
        );
        // A URL mistyped is not a new SQLite file named after it; the error keeps its secret.
        for url in [
            "Postgresql://owner:Sup3rSecret@db1/t7",
            "postgresql:/owner:Sup3rSecret@db1/t7",
            "mysql://owner:Sup3rSecret@db1/t7",
        ] {
            let error = lines(&[url]).unwrap_err().to_string();
            assert!(error.contains("looks like a URL"), "{error}");
            assert!(!error.contains("Sup3rSecret"), "{error}");
        }
        let error = lines(&["~/x.db"]).unwrap_err().to_string();
        assert!(error.contains("not expanded"), "{error}");
        // New spellings of one new database are one target.
        assert_eq!(
            lines(&["new/x.db", "new/./x.db", "new//x.db"])
                .unwrap()
                .len(),
            1
        );
        // An empty file is not taken by a glob.
        std::fs::write(dir.path().join("NOTES"), b"").unwrap();
        let error = lines(&["*"]).unwrap_err().to_string();
        assert!(error.contains("NOTES"), "{error}");
        // A targets file others may write, or a link, is refused.
        let file = dir.path().join("targets.txt");
        std::fs::write(&file, "tenante.db\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o664)).unwrap();
        let error = read_targets(&file).unwrap_err().to_string();
        assert!(error.contains("others may write it"), "{error}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let error = read_targets(&link).unwrap_err().to_string();
        assert!(error.contains("symbolic link"), "{error}");
        assert_eq!(read_targets(&file).unwrap().len(), 1);
    }

    #[test]
    fn a_glob_that_takes_in_a_file_that_is_not_a_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let made = dir.path().join("made.db");
        sqlite_file(&made);
        std::fs::write(dir.path().join("notes.txt"), b"not a database").unwrap();
        let lines = ["*.db"];
        let targets = from_lines(lines, dir.path(), "the settings", "entry").unwrap();
        assert_eq!(targets, std::slice::from_ref(&made));
        // An absolute pattern is its own; a file in the working directory globs beside it.
        let absolute = format!("{}/*.db", dir.path().display());
        let elsewhere = tempfile::tempdir().unwrap();
        let targets = from_lines([absolute.as_str()], elsewhere.path(), "x", "entry").unwrap();
        assert_eq!(targets, std::slice::from_ref(&made));
        let error = from_lines(["*"], dir.path(), "the settings", "entry")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("the settings entry 1") && error.contains("notes.txt"),
            "{error}"
        );
    }
}
