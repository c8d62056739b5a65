//! What every layout's reader shares: the layouts themselves, the files found for one
//! version, and the error that names the file. Below every reader (layout.rs finds the files and
//! hands them to the reader of their tool), so no reader needs the finder.

use std::path::{Path, PathBuf};

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
    /// Prisma's `<timestamp>_<name>/migration.sql` folders (up only).
    Prisma,
    /// Drizzle's `<idx>_<tag>.sql` files, in the order of `meta/_journal.json` (up only).
    Drizzle,
    /// pop/popx's directories for several databases: `<version>_<name>.sqlite3.up.sql` beside
    /// `.postgres.`, `.mysql.`, … and dialect-less files.
    Pop,
    /// A project's own naming, described by a pattern (`V{version}.{name}.{direction}.sql`).
    Pattern(&'static Pattern),
}

impl Layout {
    /// Every layout, as `--layout` names them.
    pub const ALL: [Layout; 10] = [
        Layout::Diesel,
        Layout::UpDown,
        Layout::Sqlx,
        Layout::Dbmate,
        Layout::Goose,
        Layout::Flyway,
        Layout::Refinery,
        Layout::Prisma,
        Layout::Drizzle,
        Layout::Pop,
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
            Layout::Prisma => "prisma",
            Layout::Drizzle => "drizzle",
            Layout::Pop => "pop",
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
    pub(crate) fn admits(self, found: Layout) -> bool {
        self == found
            || matches!(
                (self, found),
                (Layout::Sqlx, Layout::UpDown) | (Layout::Refinery, Layout::Flyway)
            )
    }

    /// What a file of this layout looks like, for errors.
    pub(crate) fn expects(self) -> &'static str {
        match self {
            Layout::Diesel => "<version>_<name>/up.sql directories",
            Layout::UpDown => "<version>_<name>.up.sql / .down.sql files",
            Layout::Sqlx => "<version>_<name>.sql or .up.sql / .down.sql files",
            Layout::Dbmate => "<version>_<name>.sql files with -- migrate:up",
            Layout::Goose => "<version>_<name>.sql files with -- +goose Up",
            Layout::Flyway => "V<version>__<name>.sql and U<version>__<name>.sql (undo) files",
            Layout::Refinery => "V<version>__<name>.sql and U<version>__<name>.sql files",
            Layout::Prisma => "<timestamp>_<name>/migration.sql directories",
            Layout::Drizzle => "<idx>_<tag>.sql files listed in meta/_journal.json",
            Layout::Pop => "<version>_<name>[.<dialect>].up.sql / .down.sql files",
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

pub(crate) fn error(path: &Path, reason: impl Into<String>) -> SetError {
    SetError {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// One migration's files as found, before they are read.
#[derive(Default)]
pub(crate) struct Parts {
    pub(super) layout: Option<Layout>,
    pub(super) id: String,
    pub(super) name: String,
    pub(super) up: Option<PathBuf>,
    pub(super) down: Option<PathBuf>,
}
