//! The migration tools hsm-host reads: one name for both what it reads of a tool, the tool's
//! file layout (`pack/`) and its history table (`adopt/`).

use serde::Serialize;

/// A migration tool whose SQL files and history table hsm-host reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tool {
    /// diesel: `<version>_<name>/up.sql` and `down.sql`; `__diesel_schema_migrations`.
    Diesel,
    /// sqlx: a single `<version>_<name>.sql`, or `.up.sql`/`.down.sql` pairs;
    /// `_sqlx_migrations`.
    Sqlx,
    /// golang-migrate: `.up.sql`/`.down.sql` pairs; `schema_migrations` with `dirty`.
    GolangMigrate,
    /// dbmate: one file with `-- migrate:up` / `-- migrate:down`; `schema_migrations` with
    /// `version` only.
    Dbmate,
    /// goose: one file with `-- +goose Up` / `-- +goose Down`; `goose_db_version`.
    Goose,
    /// Flyway: `V<version>__<name>.sql`, with `U` undo files; `flyway_schema_history`.
    Flyway,
    /// refinery: `V<version>__<name>.sql`, with `U` unversioned (up-only) migrations;
    /// `refinery_schema_history`.
    Refinery,
    /// Prisma: `<timestamp>_<name>/migration.sql` folders (up only); `_prisma_migrations`.
    Prisma,
    /// Drizzle: `<idx>_<tag>.sql` files in the order of `meta/_journal.json` (up only);
    /// `__drizzle_migrations`.
    Drizzle,
    /// gobuffalo/pop and Ory's popx: `<version>_<name>.sqlite3.up.sql` beside `.postgres.`,
    /// `.mysql.`, … and dialect-less files; `schema_migration`.
    Pop,
}

impl Tool {
    /// Every tool, in the order `--layout` lists them.
    pub const ALL: [Tool; 10] = [
        Tool::Diesel,
        Tool::GolangMigrate,
        Tool::Sqlx,
        Tool::Dbmate,
        Tool::Goose,
        Tool::Flyway,
        Tool::Refinery,
        Tool::Prisma,
        Tool::Drizzle,
        Tool::Pop,
    ];

    /// The tool's name, as `--layout` takes it and reports show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Tool::Diesel => "diesel",
            Tool::Sqlx => "sqlx",
            Tool::GolangMigrate => "golang-migrate",
            Tool::Dbmate => "dbmate",
            Tool::Goose => "goose",
            Tool::Flyway => "flyway",
            Tool::Refinery => "refinery",
            Tool::Prisma => "prisma",
            Tool::Drizzle => "drizzle",
            Tool::Pop => "pop",
        }
    }

    /// The table where the tool keeps its history.
    pub fn table(self) -> &'static str {
        match self {
            Tool::Diesel => "__diesel_schema_migrations",
            Tool::Sqlx => "_sqlx_migrations",
            Tool::GolangMigrate | Tool::Dbmate => "schema_migrations",
            Tool::Goose => "goose_db_version",
            Tool::Flyway => "flyway_schema_history",
            Tool::Refinery => "refinery_schema_history",
            Tool::Prisma => "_prisma_migrations",
            Tool::Drizzle => "__drizzle_migrations",
            Tool::Pop => "schema_migration",
        }
    }
}

impl std::fmt::Display for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
