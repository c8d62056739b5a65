//! SQL migration sets as the common tools lay them out, read into [`SqlMigration`]s:
//!
//! | layout | files | down |
//! |---|---|---|
//! | diesel | `<version>_<name>/up.sql` | `down.sql` beside it |
//! | golang-migrate, sqlx (reversible) | `<version>_<name>.up.sql` | `<version>_<name>.down.sql` |
//! | sqlx (simple) | `<version>_<name>.sql` | none: irreversible |
//! | dbmate | `<version>_<name>.sql` with `-- migrate:up` | its `-- migrate:down` section |
//! | goose | `<version>_<name>.sql` with `-- +goose Up` | its `-- +goose Down` section |
//! | Flyway | `V<version>__<name>.sql` | `U<version>__<name>.sql` (an undo file) |
//! | refinery | `V<version>__<name>.sql`, `U<version>__<name>.sql` (unversioned) | none |
//!
//! The layout is recognised from the file names; `--layout` names it where they are ambiguous
//! (refinery's `U` files are migrations of their own, Flyway's undo their `V` file) or to hold
//! a directory to one layout. A missing down makes a migration irreversible; an empty or
//! comment-only one is a reversible no-op. Versions keep the tools' order: digits only, so
//! `2024-03-13-170000` is 20240313170000; Flyway's dotted versions are numbered part by part
//! (see [`flyway_version`]). The original id stays in the description.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::SqlMigration;
pub use super::pattern::Pattern;

/// The layouts hsm-host reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layout {
    /// `<version>_<name>/up.sql` and `down.sql`.
    Diesel,
    /// `.up.sql`/`.down.sql` pairs: golang-migrate, and sqlx's reversible migrations.
    UpDown,
    /// sqlx's single `<version>_<name>.sql`.
    Sqlx,
    /// One file with `-- migrate:up` / `-- migrate:down`.
    Dbmate,
    /// One file with `-- +goose Up` / `-- +goose Down`.
    Goose,
    /// `V<version>__<name>.sql`, with `U` undo files.
    Flyway,
    /// `V<version>__<name>.sql`, with `U` unversioned (up-only) migrations.
    Refinery,
    /// A project's own naming, described by a pattern (`V{version}.{name}.{direction}.sql`).
    Pattern(&'static Pattern),
}

impl Layout {
    /// Every layout, as `--layout` names them.
    pub const ALL: [Layout; 7] = [
        Layout::Diesel,
        Layout::UpDown,
        Layout::Sqlx,
        Layout::Dbmate,
        Layout::Goose,
        Layout::Flyway,
        Layout::Refinery,
    ];

    /// The name `--layout` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Diesel => "diesel",
            Layout::UpDown => "golang-migrate",
            Layout::Sqlx => "sqlx",
            Layout::Dbmate => "dbmate",
            Layout::Goose => "goose",
            Layout::Flyway => "flyway",
            Layout::Refinery => "refinery",
            Layout::Pattern(pattern) => pattern.as_str(),
        }
    }

    /// The layout `--layout NAME` means.
    pub fn from_name(name: &str) -> Option<Layout> {
        Layout::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(name))
    }

    /// The layout `--layout VALUE` means: a tool's name, or a pattern (a value with
    /// `{version}` in it; see [`Pattern`]). The reason says what is wrong.
    pub fn parse(value: &str) -> Result<Layout, String> {
        if value.contains("{version}") {
            // A process reads a handful of patterns at most (the command line, the config).
            let pattern: &'static Pattern = Box::leak(Box::new(Pattern::parse(value)?));
            return Ok(Layout::Pattern(pattern));
        }
        Layout::from_name(value).ok_or_else(|| {
            let names: Vec<&str> = Layout::ALL.iter().map(|l| l.as_str()).collect();
            format!(
                "unknown layout `{value}`: one of {}, or a pattern such as \
                 'V{{version}}.{{name}}.{{direction}}.sql'",
                names.join(", ")
            )
        })
    }

    /// Whether files this layout was recognised as (`found`) belong to a directory named as
    /// `self`: sqlx also has `.up.sql`/`.down.sql` pairs, refinery Flyway's `V` files.
    fn admits(self, found: Layout) -> bool {
        self == found
            || matches!(
                (self, found),
                (Layout::Sqlx, Layout::UpDown) | (Layout::Refinery, Layout::Flyway)
            )
    }

    /// What a file of this layout looks like, for errors.
    fn expects(self) -> &'static str {
        match self {
            Layout::Diesel => "<version>_<name>/up.sql directories",
            Layout::UpDown => "<version>_<name>.up.sql / .down.sql files",
            Layout::Sqlx => "<version>_<name>.sql or .up.sql / .down.sql files",
            Layout::Dbmate => "<version>_<name>.sql files with -- migrate:up",
            Layout::Goose => "<version>_<name>.sql files with -- +goose Up",
            Layout::Flyway => "V<version>__<name>.sql and U<version>__<name>.sql (undo) files",
            Layout::Refinery => "V<version>__<name>.sql and U<version>__<name>.sql files",
            Layout::Pattern(_) => "files named by the pattern",
        }
    }
}

/// What is wrong with a SQL set: the file, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetError {
    /// The file (or directory) at fault.
    pub path: PathBuf,
    /// What is wrong with it, and what to do.
    pub reason: String,
}

fn error(path: &Path, reason: impl Into<String>) -> SetError {
    SetError {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// One migration's files as found, before they are read.
#[derive(Default)]
struct Parts {
    layout: Option<Layout>,
    id: String,
    name: String,
    up: Option<PathBuf>,
    down: Option<PathBuf>,
}

/// The SQL migrations of `dir` in the layout named (`None`: recognised from the file names), by
/// version (empty when it holds none). `.wasm` files and anything that is not a SQL migration
/// file are left alone; with a layout named, a SQL migration file of another layout is an
/// error.
pub fn read(dir: &Path, named: Option<Layout>) -> Result<Vec<SqlMigration>, SetError> {
    let mut by_version: BTreeMap<u64, Parts> = BTreeMap::new();
    // Flyway versions with parts (`1.1`) and without (`2`) cannot share one numbering.
    let mut flyway_kinds: [Option<PathBuf>; 2] = [None, None];
    let entries = std::fs::read_dir(dir).map_err(|e| error(dir, e.to_string()))?;
    let mut paths: Vec<PathBuf> = entries
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(|e| error(dir, e.to_string()))?;
    paths.sort();
    let fits = |path: &Path, found: Layout| match named {
        Some(named) if !named.admits(found) => Err(error(
            path,
            format!(
                "is a {} migration file, but --layout {} expects {}",
                found.as_str(),
                named.as_str(),
                named.expects()
            ),
        )),
        _ => Ok(()),
    };
    for path in paths {
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(Layout::Pattern(pattern)) = named {
            add_by_pattern(&mut by_version, pattern, &path, file_name)?;
            continue;
        }
        // A directory of the set, or a link to one inside it; never one elsewhere.
        if crate::files::is_dir_inside(&path, dir) {
            let up = path.join("up.sql");
            if !up.is_file() {
                continue;
            }
            fits(&path, Layout::Diesel)?;
            if is_empty_initial_setup(file_name, &up)? {
                tracing::info!(
                    "{}: diesel's initial setup has no SQL for SQLite; skipped",
                    path.display()
                );
                continue;
            }
            let (version, id, name) = diesel_id(&path, file_name)?;
            let down = Some(path.join("down.sql")).filter(|d| d.is_file());
            add(
                &mut by_version,
                &path,
                version,
                Parts {
                    layout: Some(Layout::Diesel),
                    id,
                    name,
                    up: Some(up),
                    down,
                },
            )?;
            continue;
        }
        let Some(stem) = file_name.strip_suffix(".sql") else {
            continue;
        };
        if let Some((stem, direction)) = up_down_file(stem) {
            // golang-migrate and sqlx pair the two files by version alone
            // (`^([0-9]+)_(.*)\.(down|up)\.(.*)$`): their names may differ, and a name may end
            // in a dot (`1_flags..up.sql`). The up file names the migration.
            fits(&path, Layout::UpDown)?;
            let (version, id, name) = split_id(&path, stem, "_")?;
            let parts = by_version.entry(version).or_default();
            check_same(&path, parts, Layout::UpDown, &parts.id.clone())?;
            let slot = if direction == "up" {
                &mut parts.up
            } else {
                &mut parts.down
            };
            if let Some(other) = slot {
                return Err(error(
                    &path,
                    format!(
                        "is a second {direction} file of version {version}, beside `{}`: each \
                         version has one {direction} file",
                        other.display()
                    ),
                ));
            }
            *slot = Some(path.clone());
            parts.layout = Some(Layout::UpDown);
            if direction == "up" || parts.id.is_empty() {
                parts.id = id;
                parts.name = name;
            }
        } else if let Some((kind, rest)) = flyway_file(stem) {
            let refinery = named == Some(Layout::Refinery);
            fits(
                &path,
                if refinery {
                    Layout::Refinery
                } else {
                    Layout::Flyway
                },
            )?;
            let (version, raw, name) = flyway_id(&path, rest)?;
            let dotted = usize::from(raw.contains(['.', '_']));
            if let Some(other) = &flyway_kinds[1 - dotted] {
                return Err(error(
                    &path,
                    format!(
                        "mixes versions with parts (`1.1`) and without (`2`) with {}: their \
                         order cannot be kept in one numbering; give every version the same \
                         number of parts (V2 → V2.0)",
                        other.display()
                    ),
                ));
            }
            flyway_kinds[dotted].get_or_insert_with(|| path.clone());
            let layout = if refinery {
                Layout::Refinery
            } else {
                Layout::Flyway
            };
            if kind == 'U' && !refinery {
                // Flyway's undo file of its V file.
                let parts = by_version.entry(version).or_default();
                check_same(&path, parts, layout, &parts.id.clone())?;
                parts.layout = Some(layout);
                parts.down = Some(path.clone());
            } else {
                let parts = by_version.entry(version).or_default();
                check_same(&path, parts, layout, &format!("V{raw}"))?;
                if parts.up.is_some() {
                    return Err(error(
                        &path,
                        format!(
                            "its version {version} is also used by `{}`: versions must be unique",
                            parts.id
                        ),
                    ));
                }
                parts.layout = Some(layout);
                parts.id = format!("{kind}{raw}");
                parts.name = name;
                parts.up = Some(path.clone());
            }
        } else if stem.starts_with("R__") {
            tracing::warn!(
                "{}: Flyway's repeatable migrations are not supported; skipped",
                path.display()
            );
        } else if stem.starts_with(|c: char| c.is_ascii_digit()) {
            let (version, id, name) = split_id(&path, stem, "_")?;
            let layout = single_file_layout(&path, named)?;
            fits(&path, layout)?;
            add(
                &mut by_version,
                &path,
                version,
                Parts {
                    layout: Some(layout),
                    id,
                    name,
                    up: Some(path.clone()),
                    down: None,
                },
            )?;
        }
    }
    from_one(by_version)
        .into_iter()
        .map(|(version, parts)| load(version, parts))
        .collect()
}

/// hsm-host's versions start at 1 (0 means "nothing applied"): a set whose first version is 0
/// (golang-migrate's and sqlx's `0_initial…`) is numbered from 1, each version the tool's plus
/// one (the tool's own stays in the description, and `adopt` maps the tool's history the same
/// way). The numbers do not change as the set grows: its first migration stays 0.
fn from_one(by_version: BTreeMap<u64, Parts>) -> BTreeMap<u64, Parts> {
    if !by_version.contains_key(&0) {
        return by_version;
    }
    by_version
        .into_iter()
        .map(|(version, parts)| (version + 1, parts))
        .collect()
}

/// A file of a directory laid out by `pattern`: every `.sql` file must match it (a file that
/// does not is named, never silently left out); up and down files pair by version.
fn add_by_pattern(
    by_version: &mut BTreeMap<u64, Parts>,
    pattern: &'static Pattern,
    path: &Path,
    file_name: &str,
) -> Result<(), SetError> {
    if !file_name.ends_with(".sql")
        || crate::files::is_dir_inside(path, path.parent().unwrap_or(path))
    {
        return Ok(());
    }
    let found = pattern.matches(file_name).ok_or_else(|| {
        error(
            path,
            format!("does not match the layout pattern `{pattern}`"),
        )
    })?;
    let number = found
        .version
        .parse::<u64>()
        .ok()
        .filter(|v| *v < i64::MAX as u64)
        .ok_or_else(|| {
            error(
                path,
                format!(
                    "`{}` is not a usable version: versions are whole numbers from 0 to {}",
                    found.version,
                    i64::MAX
                ),
            )
        })?;
    let parts = by_version.entry(number).or_default();
    let slot = if found.direction == "up" {
        &mut parts.up
    } else {
        &mut parts.down
    };
    if let Some(other) = slot {
        return Err(error(
            path,
            format!(
                "is a second {} file of version {number}, beside `{}`",
                found.direction,
                other.display()
            ),
        ));
    }
    *slot = Some(path.to_owned());
    parts.layout = Some(Layout::Pattern(pattern));
    if found.direction == "up" || parts.id.is_empty() {
        parts.id = file_name.trim_end_matches(".sql").to_owned();
        parts.name = clean_name(found.name, number);
    }
    Ok(())
}

/// `<version>_<name>.up` or `.down` (the stem of a `.sql` file) → (`<version>_<name>`,
/// `up` or `down`), as golang-migrate matches them: the direction is the last dotted part.
fn up_down_file(stem: &str) -> Option<(&str, &'static str)> {
    let (rest, direction) = if let Some(rest) = stem.strip_suffix(".up") {
        (rest, "up")
    } else {
        (stem.strip_suffix(".down")?, "down")
    };
    Some((rest, direction))
}

/// `V…__…` or `U…__…` → (`V` or `U`, the rest).
fn flyway_file(stem: &str) -> Option<(char, &str)> {
    let kind = stem.chars().next().filter(|c| matches!(c, 'V' | 'U'))?;
    let rest = &stem[1..];
    (rest.starts_with(|c: char| c.is_ascii_digit()) && rest.contains("__")).then_some((kind, rest))
}

/// `1.2__add_users` → (version, `1.2`, `add_users`).
fn flyway_id(path: &Path, rest: &str) -> Result<(u64, String, String), SetError> {
    let (raw, name) = rest.split_once("__").unwrap_or((rest, ""));
    let version = flyway_version(raw).map_err(|reason| error(path, reason))?;
    let (_, _, name) = split_id(path, &format!("1_{name}"), "_")?;
    let name = if name == "migration_1" {
        format!("migration_{version}")
    } else {
        name
    };
    Ok((version, raw.to_owned(), name))
}

/// Flyway's version as hsm-host numbers it. Without parts it is the number itself (`V7` is 7,
/// `V20240313170000` is 20240313170000). With parts (`1.2`, `1_2`, `2024.01.15`), each of up
/// to three parts gets six digits: `a.b.c` is a·10¹² + b·10⁶ + c, so `1.2` < `1.10` < `2.0`
/// as Flyway orders them, and the numbers stay the same as the set grows.
///
/// # Errors
/// A version that is not digits and dots, has more than three parts, or a part too large.
pub fn flyway_version(raw: &str) -> Result<u64, String> {
    let parts: Vec<&str> = raw.split(['.', '_']).collect();
    let unusable = |why: &str| {
        format!(
            "version `{raw}` cannot be numbered: {why} (versions are whole numbers, or up to \
             three dotted parts of at most six digits each)"
        )
    };
    if parts
        .iter()
        .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(unusable("it is not digits and dots"));
    }
    let number = if parts.len() == 1 {
        parts[0].parse::<u64>().ok()
    } else if parts.len() > 3 {
        return Err(unusable("it has more than three parts"));
    } else {
        let mut number: u64 = 0;
        let mut ok = true;
        for (i, part) in parts.iter().enumerate() {
            let value: u64 = part.parse().unwrap_or(u64::MAX);
            let scale = 10u64.pow(6 * (2 - i as u32));
            ok &= i == 0 || value < 1_000_000;
            number = value
                .checked_mul(scale)
                .and_then(|v| v.checked_add(number))
                .unwrap_or(u64::MAX);
        }
        ok.then_some(number)
    };
    number
        .filter(|v| *v > 0 && i64::try_from(*v).is_ok())
        .ok_or_else(|| unusable("it is 0 or too large"))
}

/// diesel's `00000000000000_diesel_initial_setup`, made for PostgreSQL's helper functions: in
/// SQLite projects its files hold only comments. Version 0 is not a version hsm-host can use.
fn is_empty_initial_setup(dir_name: &str, up: &Path) -> Result<bool, SetError> {
    let all_zero = dir_name
        .split_once('_')
        .is_some_and(|(version, _)| !version.is_empty() && version.chars().all(|c| c == '0'));
    Ok(all_zero && crate::sql::script_is_empty(&read_sql(up)?))
}

/// Digits of a diesel version hsm-host numbers by (diesel's `YYYYMMDDHHMMSS`).
const DIESEL_DIGITS: usize = 14;

/// A diesel folder name → (version, original id, name); see [`diesel_number`].
fn diesel_id(path: &Path, dir_name: &str) -> Result<(u64, String, String), SetError> {
    let (raw, name) = dir_name.split_once('_').unwrap_or((dir_name, ""));
    let version: String = raw.chars().filter(|&c| c != '-').collect();
    let number = diesel_number(&version).map_err(|reason| error(path, reason))?;
    Ok((number, dir_name.to_owned(), clean_name(name, number)))
}

/// The number of a diesel version as diesel writes it in its history. diesel's version is a
/// folder's name up to the first `_` with the dashes removed, and diesel orders versions *as
/// strings*: so does this numbering, which pads the version with zeros to 14 digits
/// (`2024-03-13_170000_x` is version `20240313`, between `20240306…` and `20240605…`; it is
/// numbered 20240313000000), and numbers a 14-digit version as itself, whatever else is in the
/// set (a number never changes as the set grows). diesel 2.3 adds a hexadecimal counter of the
/// migrations made in the same second (`2025-12-08-135428-0000`, `…-0001`): it is added to the
/// 14 digits before it, so `…135428-0001` is numbered 20251208135429 (a migration of the very
/// next second would then have the same number, and is refused as a duplicate by name).
/// Version 0 (`00000000000000_initial` with SQL in it) is numbered 1, before every other.
///
/// # Errors
/// A version that is not digits (and a hexadecimal counter after the 14th digit).
pub fn diesel_number(version: &str) -> Result<u64, String> {
    let (head, counter) = version.split_at(version.len().min(DIESEL_DIGITS));
    if head.is_empty() || !head.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "diesel version `{version}` is not digits (and dashes)"
        ));
    }
    let counter = match counter {
        "" => 0,
        hex => u64::from_str_radix(hex, 16)
            .ok()
            .filter(|c| *c < 1 << 16)
            .ok_or_else(|| {
                format!(
                    "diesel version `{version}`: `{hex}` after its 14 digits is not diesel's \
                     counter (four hexadecimal digits)"
                )
            })?,
    };
    let number: u64 = format!("{head:0<DIESEL_DIGITS$}")
        .parse()
        .expect("14 digits fit a u64");
    Ok((number + counter).max(1))
}

/// `<version><sep><name>` → (version, original id, name).
fn split_id(path: &Path, text: &str, separator: &str) -> Result<(u64, String, String), SetError> {
    let (version, name) = text.split_once(separator).unwrap_or((text, ""));
    if version.contains('.') {
        return Err(error(
            path,
            format!(
                "version `{version}` has parts, and in this layout versions are whole numbers; \
                 if the directory follows a naming of its own, describe it with --layout \
                 (e.g. 'V{{version}}.{{name}}.{{direction}}.sql')"
            ),
        ));
    }
    let digits: String = version.chars().filter(char::is_ascii_digit).collect();
    // 0 is a version golang-migrate and sqlx accept (`0_initial.up.sql`): see `from_one`.
    let number = digits
        .parse::<u64>()
        .ok()
        .filter(|v| *v < i64::MAX as u64)
        .ok_or_else(|| {
            error(
                path,
                format!(
                    "`{version}` is not a usable version: versions are whole numbers from 0 to \
                     {}",
                    i64::MAX
                ),
            )
        })?;
    Ok((number, text.to_owned(), clean_name(name, number)))
}

/// A migration's name from a file's: `[a-z0-9_]` only (so nothing from a file name reaches a
/// path, a terminal or a log raw), `migration_<version>` when nothing is left.
fn clean_name(name: &str, number: u64) -> String {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if name.trim_matches('_').is_empty() {
        format!("migration_{number}")
    } else {
        name
    }
}

fn check_same(path: &Path, parts: &Parts, layout: Layout, id: &str) -> Result<(), SetError> {
    match parts.layout {
        Some(other) if other != layout || (!parts.id.is_empty() && !parts.id.ends_with(id)) => {
            Err(error(
                path,
                format!(
                    "its version is also used by `{}` ({}): versions must be unique",
                    parts.id,
                    other.as_str()
                ),
            ))
        }
        _ => Ok(()),
    }
}

fn add(
    by_version: &mut BTreeMap<u64, Parts>,
    path: &Path,
    version: u64,
    parts: Parts,
) -> Result<(), SetError> {
    if let Some(other) = by_version.get(&version) {
        return Err(error(
            path,
            format!(
                "its version {version} is also used by `{}`: versions must be unique",
                other.id
            ),
        ));
    }
    by_version.insert(version, parts);
    Ok(())
}

/// A single `<version>_<name>.sql`: dbmate or goose by their markers, else sqlx's simple form.
/// A layout named for the directory decides instead, and its markers must be there.
fn single_file_layout(path: &Path, named: Option<Layout>) -> Result<Layout, SetError> {
    let text = read_sql(path)?;
    let dbmate = find_marker(&text, &["-- migrate:up"]).is_some();
    let goose = find_marker(&text, &["-- +goose up"]).is_some();
    let missing = |marker: &str, layout: Layout| {
        Err(error(
            path,
            format!(
                "has no `{marker}` line, which --layout {} needs",
                layout.as_str()
            ),
        ))
    };
    match named {
        Some(Layout::Sqlx) => Ok(Layout::Sqlx),
        Some(Layout::Dbmate) if !dbmate => missing("-- migrate:up", Layout::Dbmate),
        Some(Layout::Goose) if !goose => missing("-- +goose Up", Layout::Goose),
        _ if dbmate => Ok(Layout::Dbmate),
        _ if goose => Ok(Layout::Goose),
        _ => Ok(Layout::Sqlx),
    }
}

/// A SQL file of the set: a regular file (or a link to one in the same directory) of at most
/// [`crate::files::MAX_SQL_FILE`] bytes, so a stranger's set cannot make hsm-host read the
/// operator's other files, a device or a FIFO.
fn read_sql(path: &Path) -> Result<String, SetError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let bytes = crate::files::read_inside(path, dir, crate::files::MAX_SQL_FILE)
        .map_err(|reason| error(path, reason))?;
    let text = String::from_utf8(bytes).map_err(|_| error(path, "is not UTF-8 text"))?;
    Ok(text
        .strip_prefix('\u{feff}')
        .map(str::to_owned)
        .unwrap_or(text))
}

/// The byte offset of the line that starts with one of `markers` (case-insensitive, spaces
/// after `--` optional), and the offset just past that line.
fn find_marker(text: &str, markers: &[&str]) -> Option<(usize, usize)> {
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let normal = normalize_comment(line);
        if markers
            .iter()
            .any(|m| normal.starts_with(&normalize_comment(m)))
        {
            return Some((at, at + line.len()));
        }
        at += line.len();
    }
    None
}

/// `--  +Goose   Up` → `--+goose up`: markers are matched loosely, as the tools do.
fn normalize_comment(line: &str) -> String {
    let line = line.trim().to_ascii_lowercase();
    let rest = line.strip_prefix("--").unwrap_or(&line).trim_start();
    format!(
        "--{}",
        rest.split_whitespace().collect::<Vec<_>>().join(" ")
    )
}

fn load(version: u64, parts: Parts) -> Result<SqlMigration, SetError> {
    let layout = parts.layout.expect("set with every part");
    let Some(up_path) = parts.up else {
        let down = parts.down.unwrap_or_default();
        return Err(error(
            &down,
            if layout == Layout::Flyway {
                "is a Flyway undo file with no V file of its version beside it (if it is \
                 refinery's unversioned migration, run with --layout refinery)"
            } else {
                "has no up file beside it"
            },
        ));
    };
    let text = read_sql(&up_path)?;
    refuse_no_transaction(&up_path, layout, &text)?;
    if let Some(down) = parts.down.as_deref().filter(|_| layout != Layout::Diesel) {
        refuse_no_transaction(down, layout, &read_sql(down)?)?;
    }
    let (up, down) = match layout {
        Layout::Diesel
        | Layout::UpDown
        | Layout::Flyway
        | Layout::Refinery
        | Layout::Pattern(_) => {
            let down = parts.down.as_deref().map(read_sql).transpose()?;
            (text, down)
        }
        Layout::Sqlx => (text, None),
        Layout::Dbmate => sections(&text, &["-- migrate:up"], &["-- migrate:down"]),
        Layout::Goose => {
            let (up, down) = sections(&text, &["-- +goose up"], &["-- +goose down"]);
            (strip_goose(&up), down.map(|d| strip_goose(&d)))
        }
    };
    let header = header_comment(&up);
    let origin = format!("{} migration `{}`", layout.as_str(), parts.id);
    let description = if header.is_empty() {
        origin
    } else {
        format!("{header} ({origin})")
    };
    let down_source = match (&down, layout) {
        (None, _) => None,
        (Some(_), Layout::Dbmate | Layout::Goose) => Some(up_path.clone()),
        (Some(_), _) => parts.down.clone(),
    };
    Ok(SqlMigration {
        version,
        name: parts.name,
        description,
        up,
        down,
        source: up_path,
        down_source,
        layout,
    })
}

/// The tools' ways of asking to run a migration outside a transaction: sqlx's first line
/// `-- no-transaction`, dbmate's `transaction:false` on its marker, goose's
/// `-- +goose NO TRANSACTION`, diesel's `run_in_transaction = false` in `metadata.toml`.
/// hsm-host runs every migration inside its own transaction (its tracking rows and checks are
/// in it), so such a migration is refused by name rather than run otherwise than asked.
fn refuse_no_transaction(path: &Path, layout: Layout, text: &str) -> Result<(), SetError> {
    let asks = match layout {
        Layout::Sqlx | Layout::UpDown => text.starts_with("-- no-transaction"),
        Layout::Dbmate => text.lines().any(|line| {
            let line = normalize_comment(line);
            line.starts_with(&normalize_comment("-- migrate:"))
                && line.contains("transaction:false")
        }),
        Layout::Goose => text
            .lines()
            .any(|line| normalize_comment(line) == normalize_comment("-- +goose no transaction")),
        Layout::Diesel => path
            .parent()
            .map(|folder| folder.join("metadata.toml"))
            .filter(|toml| toml.is_file())
            .and_then(|toml| read_sql(&toml).ok())
            .is_some_and(|toml| {
                toml.lines().any(|line| {
                    let line: String = line.chars().filter(|c| !c.is_whitespace()).collect();
                    line.starts_with("run_in_transaction=false")
                })
            }),
        _ => false,
    };
    if asks {
        return Err(error(
            path,
            format!(
                "asks to run outside a transaction ({}'s no-transaction marker); hsm-host runs \
                 every migration in a transaction of its own, with its tracking rows and checks, \
                 and SQLite's DDL is transactional: remove the marker if the migration does not \
                 need it",
                layout.as_str()
            ),
        ));
    }
    Ok(())
}

/// The up section (after `up`, before `down`) and the down section, if any.
fn sections(text: &str, up: &[&str], down: &[&str]) -> (String, Option<String>) {
    let start = find_marker(text, up).map_or(0, |(_, after)| after);
    match find_marker(&text[start..], down) {
        Some((at, after)) => (
            text[start..start + at].to_owned(),
            Some(text[start + after..].to_owned()),
        ),
        None => (text[start..].to_owned(), None),
    }
}

/// goose's statement markers and options are comments for goose, not SQL: dropped (the
/// statement splitter keeps a trigger whole on its own).
fn strip_goose(text: &str) -> String {
    text.split_inclusive('\n')
        .filter(|line| !normalize_comment(line).starts_with("--+goose"))
        .collect()
}

/// The comment lines a file starts with, as one sentence (a description).
fn header_comment(sql: &str) -> String {
    let mut words = Vec::new();
    for line in sql.lines() {
        let line = line.trim();
        if line.is_empty() {
            if words.is_empty() {
                continue;
            }
            break;
        }
        let Some(comment) = line.strip_prefix("--") else {
            break;
        };
        words.push(comment.trim().to_owned());
    }
    words.join(" ").trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, path: &str, text: &str) {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn every_layout_is_read_in_version_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            d,
            "2024-03-13-170000_create_users/up.sql",
            "-- Users.\nCREATE TABLE users (id INTEGER PRIMARY KEY);",
        );
        write(
            d,
            "2024-03-13-170000_create_users/down.sql",
            "DROP TABLE users;",
        );
        write(
            d,
            "20240314000000_add_posts.up.sql",
            "CREATE TABLE posts (id INTEGER);",
        );
        write(
            d,
            "20240314000000_add_posts.down.sql",
            "-- nothing to undo\n",
        );
        write(
            d,
            "20240315000000_seed.sql",
            "INSERT INTO users VALUES (1);",
        );
        write(
            d,
            "20240316000000_tags.sql",
            "-- migrate:up\nCREATE TABLE tags (t);\n-- migrate:down\nDROP TABLE tags;\n",
        );
        write(
            d,
            "20240317000000_notes.sql",
            "-- +goose Up\n-- +goose StatementBegin\nCREATE TABLE notes (n);\n-- +goose StatementEnd\n\n-- +goose Down\nDROP TABLE notes;\n",
        );
        write(d, "V20240318000000__flags.sql", "CREATE TABLE flags (f);");
        write(d, "U20240318000000__flags.sql", "DROP TABLE flags;");
        write(d, "README.md", "not a migration");
        let set = read(d, None).unwrap();
        let summary: Vec<(u64, &str, bool)> = set
            .iter()
            .map(|m| (m.version, m.name.as_str(), m.down.is_some()))
            .collect();
        assert_eq!(
            summary,
            [
                (20240313170000, "create_users", true),
                (20240314000000, "add_posts", true),
                (20240315000000, "seed", false),
                (20240316000000, "tags", true),
                (20240317000000, "notes", true),
                (20240318000000, "flags", true),
            ]
        );
        assert_eq!(
            set[0].description,
            "Users. (diesel migration `2024-03-13-170000_create_users`)"
        );
        assert_eq!(set[3].up.trim(), "CREATE TABLE tags (t);");
        assert_eq!(
            set[3].down.as_deref().map(str::trim),
            Some("DROP TABLE tags;")
        );
        assert_eq!(set[4].up.trim(), "CREATE TABLE notes (n);");
        assert_eq!(
            set[4].down.as_deref().map(str::trim),
            Some("DROP TABLE notes;")
        );
    }

    #[test]
    fn diesels_empty_initial_setup_is_skipped_and_a_real_one_runs_first() {
        let dir = tempfile::tempdir().unwrap();
        let setup = "-- This file was automatically created by Diesel to setup helper functions\n";
        write(
            dir.path(),
            "00000000000000_diesel_initial_setup/up.sql",
            setup,
        );
        write(
            dir.path(),
            "00000000000000_diesel_initial_setup/down.sql",
            setup,
        );
        write(
            dir.path(),
            "2024-01-01-000000_users/up.sql",
            "CREATE TABLE users (id);",
        );
        let set = read(dir.path(), None).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set[0].version, 20240101000000);

        // Version 0 with SQL in it is diesel's first migration: numbered 1.
        write(
            dir.path(),
            "00000000000000_diesel_initial_setup/up.sql",
            "CREATE TABLE x (y);",
        );
        let set = read(dir.path(), None).unwrap();
        assert_eq!(
            set.iter().map(|m| m.version).collect::<Vec<_>>(),
            [1, 20240101000000]
        );
    }

    /// diesel compares versions as strings: an 8-digit version (a folder named with `_` where
    /// the others have `-`) and diesel 2.3's 18-digit ones keep diesel's order, and 14-digit
    /// versions keep the numbers earlier releases gave them.
    #[test]
    fn diesel_versions_keep_diesels_string_order() {
        let dir = tempfile::tempdir().unwrap();
        for folder in [
            "2024-03-06-170000_add_sso",
            "2024-03-13_170000_sso_cascade",
            "2024-06-05-131359_later",
            "2026-02-10-064457-0000_create_projects",
            "2026-02-11-000000_create_pty",
        ] {
            write(dir.path(), &format!("{folder}/up.sql"), "SELECT 1;");
        }
        let set = read(dir.path(), None).unwrap();
        let order: Vec<(u64, &str)> = set.iter().map(|m| (m.version, m.name.as_str())).collect();
        assert_eq!(
            order,
            [
                (20240306170000, "add_sso"),
                (20240313000000, "170000_sso_cascade"),
                (20240605131359, "later"),
                (20260210064457, "create_projects"),
                (20260211000000, "create_pty"),
            ]
        );
        // A second migration in the same second (diesel 2.3's counter) comes after the first.
        write(
            dir.path(),
            "2026-02-10-064457-0001_again/up.sql",
            "SELECT 1;",
        );
        let set = read(dir.path(), None).unwrap();
        assert_eq!(set[4].version, 20260210064458);
        assert_eq!(set[4].name, "again");
        // ...and one of the very next second has its number: named as a duplicate.
        write(dir.path(), "2026-02-10-064458_next/up.sql", "SELECT 1;");
        let error = read(dir.path(), None).unwrap_err();
        assert!(
            error.reason.contains("versions must be unique"),
            "{error:?}"
        );
    }

    #[test]
    fn a_pattern_reads_a_projects_own_naming() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "V0001.Initial_Schema.up.sql",
            "CREATE TABLE a (x);",
        );
        write(dir.path(), "V0001.Initial_Schema.down.sql", "DROP TABLE a;");
        write(dir.path(), "V0002.Empty.up.sql", "");
        write(dir.path(), "V0002.Empty.down.sql", "");
        write(dir.path(), "V0010.Later.up.sql", "CREATE TABLE b (x);");
        write(dir.path(), "README.md", "not SQL");
        let layout = Layout::parse("V{version}.{name}.{direction}.sql").unwrap();
        let set = read(dir.path(), Some(layout)).unwrap();
        let order: Vec<(u64, &str, bool)> = set
            .iter()
            .map(|m| (m.version, m.name.as_str(), m.down.is_some()))
            .collect();
        assert_eq!(
            order,
            [
                (1, "initial_schema", true),
                (2, "empty", true),
                (10, "later", false)
            ]
        );
        // A SQL file the pattern does not describe is named, not skipped.
        write(dir.path(), "0003_other.sql", "SELECT 1;");
        let error = read(dir.path(), Some(layout)).unwrap_err();
        assert!(
            error.reason.contains("does not match the layout pattern"),
            "{error:?}"
        );
        assert!(Layout::parse("V{nam}.sql").is_err());
        assert!(
            Layout::parse("nonsense")
                .unwrap_err()
                .contains("a pattern such as")
        );
    }

    #[test]
    fn up_and_down_files_pair_by_version_as_golang_migrate_does() {
        let dir = tempfile::tempdir().unwrap();
        // Different names for one version's up and down; a name ending in a dot.
        write(
            dir.path(),
            "1_create_notes.up.sql",
            "CREATE TABLE notes (x);",
        );
        write(dir.path(), "1_drop_notes.down.sql", "DROP TABLE notes;");
        write(dir.path(), "2_flags..up.sql", "CREATE TABLE flags (x);");
        write(dir.path(), "2_flags.down.sql", "DROP TABLE flags;");
        let set = read(dir.path(), None).unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(set[0].name, "create_notes");
        assert!(
            set[0].down.as_deref() == Some("DROP TABLE notes;"),
            "{:?}",
            set[0].down
        );
        assert!(set[1].down.as_deref() == Some("DROP TABLE flags;"));

        // Two up files of one version are named as that, not as a version clash.
        write(dir.path(), "2_other.up.sql", "SELECT 1;");
        let error = read(dir.path(), None).unwrap_err();
        assert!(
            error.reason.contains("second up file of version 2"),
            "{error:?}"
        );
    }

    #[test]
    fn no_transaction_markers_are_refused_by_name() {
        for (file, text) in [
            ("1_a.sql", "-- no-transaction\nCREATE TABLE a (x);"),
            ("1_a.up.sql", "-- no-transaction\nCREATE TABLE a (x);"),
            (
                "1_a.sql",
                "-- migrate:up transaction:false\nCREATE TABLE a (x);\n-- migrate:down\n",
            ),
            (
                "1_a.sql",
                "-- +goose Up\n-- +goose NO TRANSACTION\nCREATE TABLE a (x);\n",
            ),
            (
                "2024-01-01-000000_a/metadata.toml",
                "run_in_transaction = false\n",
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            write(dir.path(), file, text);
            write(
                dir.path(),
                "2024-01-01-000000_a/up.sql",
                "CREATE TABLE b (x);",
            );
            if !file.contains("metadata") {
                std::fs::remove_dir_all(dir.path().join("2024-01-01-000000_a")).unwrap();
            }
            let error = read(dir.path(), None).unwrap_err();
            assert!(
                error.reason.contains("asks to run outside a transaction"),
                "{file}: {error:?}"
            );
        }
        // The marker's words inside a statement are not a marker.
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "1_a.sql",
            "CREATE TABLE a (x DEFAULT '-- no-transaction');",
        );
        assert!(read(dir.path(), None).is_ok());
    }

    #[test]
    fn clashing_and_unusable_versions_are_named() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "1_a.up.sql", "SELECT 1;");
        write(dir.path(), "1_b.sql", "SELECT 1;");
        let error = read(dir.path(), None).unwrap_err();
        assert!(
            error.reason.contains("versions must be unique"),
            "{error:?}"
        );

        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "1.1_x.up.sql", "SELECT 1;");
        let error = read(dir.path(), None).unwrap_err();
        assert!(error.reason.contains("has parts"), "{error:?}");
        assert!(error.path.ends_with("1.1_x.up.sql"));

        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "V1.1__x.sql", "SELECT 1;");
        write(dir.path(), "V2__y.sql", "SELECT 1;");
        let error = read(dir.path(), None).unwrap_err();
        assert!(error.reason.contains("mixes versions"), "{error:?}");

        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "x_init.sql", "SELECT 1;");
        write(dir.path(), "99999999999999999999_big.sql", "SELECT 1;");
        assert!(
            read(dir.path(), None)
                .unwrap_err()
                .reason
                .contains("not a usable version")
        );
    }

    #[test]
    fn a_set_that_starts_at_version_0_is_numbered_from_1() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "0_initial.up.sql", "CREATE TABLE a (x);");
        write(dir.path(), "1_variants.up.sql", "CREATE TABLE b (x);");
        write(dir.path(), "10_later.up.sql", "CREATE TABLE c (x);");
        write(dir.path(), "2_more.up.sql", "CREATE TABLE d (x);");
        let set = read(dir.path(), None).unwrap();
        let numbers: Vec<(u64, &str)> = set.iter().map(|m| (m.version, m.name.as_str())).collect();
        assert_eq!(
            numbers,
            [(1, "initial"), (2, "variants"), (3, "more"), (11, "later")]
        );
        assert!(
            set[0].description.contains("0_initial"),
            "{}",
            set[0].description
        );
    }

    #[test]
    fn flyway_versions_with_parts_keep_flyways_order() {
        let versions = [
            "1.1",
            "1.2",
            "1_3",
            "1.10",
            "1.10.1",
            "2.0",
            "2024.01.15",
            "9223371.0",
        ];
        let numbers: Vec<u64> = versions
            .iter()
            .map(|v| flyway_version(v).unwrap())
            .collect();
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
        assert_eq!(flyway_version("1.2").unwrap(), 1_000_002_000_000);
        assert_eq!(flyway_version("7").unwrap(), 7);
        for bad in ["1.2.3.4", "1.1000000", "9223373.0", "0", "1..2", "1.a", ""] {
            assert!(flyway_version(bad).is_err(), "{bad}");
        }

        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "V1.10__c.sql", "SELECT 3;");
        write(dir.path(), "V1.2__b.sql", "SELECT 2;");
        write(dir.path(), "V1_1__a.sql", "SELECT 1;");
        write(dir.path(), "U1.2__b.sql", "SELECT -2;");
        let set = read(dir.path(), None).unwrap();
        let names: Vec<&str> = set.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert!(set[1].down.is_some() && set[0].down.is_none());
        assert!(
            set[0].description.contains("`V1_1`"),
            "{}",
            set[0].description
        );
    }

    #[test]
    fn a_named_layout_decides_what_ambiguous_files_are_and_refuses_others() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "V1__users.sql", "CREATE TABLE users (id);");
        write(
            dir.path(),
            "U2__backfill.sql",
            "INSERT INTO users VALUES (1);",
        );
        // As Flyway, `U2` would undo a V2 that is not there: the error says what to do.
        let error = read(dir.path(), None).unwrap_err();
        assert!(error.reason.contains("--layout refinery"), "{error:?}");
        // As refinery, it is a migration of its own, with no down.
        let set = read(dir.path(), Some(Layout::Refinery)).unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!((set[1].version, set[1].down.is_none()), (2, true));
        assert!(set[1].description.contains("refinery migration `U2`"));

        // A file of another layout in a directory held to one is named.
        write(dir.path(), "3_more.up.sql", "SELECT 1;");
        let error = read(dir.path(), Some(Layout::Refinery)).unwrap_err();
        assert!(
            error.reason.contains("--layout refinery expects"),
            "{error:?}"
        );
        assert!(error.path.ends_with("3_more.up.sql"));

        // sqlx names a file dbmate would claim as a plain sqlx migration; dbmate needs its
        // marker.
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "1_a.sql",
            "-- migrate:up\nSELECT 1;\n-- migrate:down\nSELECT 2;\n",
        );
        write(dir.path(), "2_b.sql", "SELECT 1;");
        let set = read(dir.path(), Some(Layout::Sqlx)).unwrap();
        assert!(set.iter().all(|m| m.down.is_none()));
        let error = read(dir.path(), Some(Layout::Dbmate)).unwrap_err();
        assert!(error.reason.contains("-- migrate:up"), "{error:?}");
        assert!(error.path.ends_with("2_b.sql"));
        assert_eq!(Layout::from_name("Golang-Migrate"), Some(Layout::UpDown));
    }
}
