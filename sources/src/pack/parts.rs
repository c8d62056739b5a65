//! What every layout's reader shares: the layouts themselves, the files found for one
//! version, and the error that names the file. Below every reader (layout.rs finds the files and
//! hands them to the reader of their tool), so no reader needs the finder.

use std::path::{Path, PathBuf};

pub use super::pattern::Pattern;
pub use crate::tool::Tool;

/// The layouts hsm-host reads: a tool's, or a project's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layout {
    /// The layout of a tool (sqlx's `.up.sql`/`.down.sql` pairs are read as golang-migrate's).
    Tool(Tool),
    /// A project's own naming, described by a pattern (`V{version}.{name}.{direction}.sql`).
    Pattern(&'static Pattern),
}

impl Layout {
    /// Every tool's layout, as `--layout` names them.
    pub const ALL: [Layout; 10] = {
        let mut all = [Layout::Tool(Tool::Diesel); 10];
        let mut i = 0;
        while i < all.len() {
            all[i] = Layout::Tool(Tool::ALL[i]);
            i += 1;
        }
        all
    };

    /// The name `--layout` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Tool(tool) => tool.as_str(),
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
                (Layout::Tool(Tool::Sqlx), Layout::Tool(Tool::GolangMigrate))
                    | (Layout::Tool(Tool::Refinery), Layout::Tool(Tool::Flyway))
            )
    }

    /// What a file of this layout looks like, for errors.
    pub(crate) fn expects(self) -> &'static str {
        match self {
            Layout::Tool(Tool::Diesel) => "<version>_<name>/up.sql directories",
            Layout::Tool(Tool::GolangMigrate) => "<version>_<name>.up.sql / .down.sql files",
            Layout::Tool(Tool::Sqlx) => "<version>_<name>.sql or .up.sql / .down.sql files",
            Layout::Tool(Tool::Dbmate) => "<version>_<name>.sql files with -- migrate:up",
            Layout::Tool(Tool::Goose) => "<version>_<name>.sql files with -- +goose Up",
            Layout::Tool(Tool::Flyway) => {
                "V<version>__<name>.sql and U<version>__<name>.sql (undo) files"
            }
            Layout::Tool(Tool::Refinery) => {
                "V<version>__<name>.sql and U<version>__<name>.sql files"
            }
            Layout::Tool(Tool::Prisma) => "<timestamp>_<name>/migration.sql directories",
            Layout::Tool(Tool::Drizzle) => "<idx>_<tag>.sql files listed in meta/_journal.json",
            Layout::Tool(Tool::Pop) => "<version>_<name>[.<dialect>].up.sql / .down.sql files",
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
