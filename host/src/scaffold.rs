//! `hsm-host new NAME`: a new migration for the next free version, as a Rust guest crate (in a
//! workspace of guests, or a workspace of its own in an empty directory, with the SDK and the
//! contract vendored so it builds with nothing else) or as a pair of SQL files.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::pack::Layout;
use crate::tool::Tool;

/// The SDK and the contract, as this hsm-host was built with them.
const SDK_FILES: [(&str, &str); 7] = [
    (
        "hsm-guest/Cargo.toml",
        include_str!("../../guest-sdk/Cargo.toml"),
    ),
    (
        "hsm-guest/src/lib.rs",
        include_str!("../../guest-sdk/src/lib.rs"),
    ),
    (
        "hsm-guest/src/db.rs",
        include_str!("../../guest-sdk/src/db.rs"),
    ),
    (
        "hsm-guest/src/error.rs",
        include_str!("../../guest-sdk/src/error.rs"),
    ),
    (
        "hsm-guest/src/log.rs",
        include_str!("../../guest-sdk/src/log.rs"),
    ),
    (
        "hsm-guest/src/value.rs",
        include_str!("../../guest-sdk/src/value.rs"),
    ),
    ("wit/migration.wit", include_str!("../../wit/migration.wit")),
];

/// A workspace of guests, as `migrations-wasm/` is: the release profile the README recommends.
const WORKSPACE: &str = r#"# Migration components: one crate per migration, built with
#   cargo build --release --target wasm32-wasip2
# (made by `hsm-host new`; the SDK and the contract are vendored in hsm-guest/ and wit/).
[workspace]
resolver = "3"
members = ["v*"]
exclude = ["target"]

[workspace.package]
version = "0.1.0"
edition = "2024"
rust-version = "1.95"
publish = false

[workspace.dependencies]
hsm-guest = { path = "hsm-guest" }

[profile.release]
# Small components compile fast (and hsm-host compiles the code they share only once).
opt-level = "s"
codegen-units = 1
lto = true
debug = false
strip = "debuginfo"
panic = "unwind"
"#;

/// What `new` made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Scaffolded {
    /// The new migration's version.
    pub version: u64,
    /// The files written.
    pub files: Vec<PathBuf>,
}

/// A snake_case name: lowercase ASCII letters, digits and `_`, starting with a letter, at most
/// 64 characters.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::Scaffold(format!(
            "`{}` is not a snake_case name (lowercase letters, digits and _, starting with a \
             letter, at most 64): e.g. add_email_column",
            crate::text::neutralize(name, 80)
        )))
    }
}

/// The next free version: one above every version `versions` already has.
fn next_version(taken: impl IntoIterator<Item = u64>) -> u64 {
    taken.into_iter().max().unwrap_or(0) + 1
}

/// The versions of the guest crates (or Python and JavaScript modules) in `dir`
/// (`v<version>_<name>/`).
fn crate_versions(dir: &Path) -> Vec<u64> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            ["Cargo.toml", "app.py", "app.js"]
                .iter()
                .any(|f| e.path().join(f).is_file())
        })
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let digits: String = name
                .strip_prefix('v')?
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
        .collect()
}

/// Writes every file, after checking that none exists: a refusal writes nothing at all.
fn write_all(planned: Vec<(PathBuf, String)>) -> Result<Vec<PathBuf>> {
    if let Some((path, _)) = planned.iter().find(|(path, _)| path.exists()) {
        return Err(Error::Scaffold(format!(
            "{} already exists: nothing was written",
            path.display()
        )));
    }
    let mut files = Vec::with_capacity(planned.len());
    for (path, text) in planned {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::Scaffold(format!("cannot create {}: {e}", parent.display())))?;
        }
        std::fs::write(&path, text)
            .map_err(|e| Error::Scaffold(format!("cannot write {}: {e}", path.display())))?;
        files.push(path);
    }
    Ok(files)
}

/// A Rust guest crate `v<NNN>_<name>` in `dir` for the version after every one in `dir` and in
/// `taken` (the migrations directory's). `dir` joins the crate to its workspace when it has
/// one; an empty (or new) `dir` becomes a workspace with the SDK and the contract vendored.
///
/// # Errors
/// [`Error::Scaffold`]: a name that is not snake_case, a file that exists, a write that fails,
/// a directory with a Cargo.toml that is not a workspace of guests.
pub fn rust_crate(dir: &Path, name: &str, taken: &[u64]) -> Result<Scaffolded> {
    check_name(name)?;
    let version = next_version(taken.iter().copied().chain(crate_versions(dir)));
    let mut planned: Vec<(PathBuf, String)> = Vec::new();
    let manifest = dir.join("Cargo.toml");
    if manifest.is_file() {
        let text = std::fs::read_to_string(&manifest).unwrap_or_default();
        if !(text.contains("[workspace]") && text.contains("\"v*\"")) {
            return Err(Error::Scaffold(format!(
                "{} is not a workspace of migration crates (members = [\"v*\"]); run `new` in \
                 such a workspace or in an empty directory",
                manifest.display()
            )));
        }
    } else {
        planned.push((manifest, WORKSPACE.to_owned()));
        for (path, text) in SDK_FILES {
            planned.push((dir.join(path), text.to_owned()));
        }
    }
    let crate_name = format!("v{version:03}_{name}");
    let root = dir.join(&crate_name);
    planned.push((
        root.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{crate_name}\"\nversion.workspace = true\n\
             edition.workspace = true\nrust-version.workspace = true\npublish.workspace = true\n\n\
             [lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nhsm-guest.workspace = true\n"
        ),
    ));
    planned.push((
        root.join("src/lib.rs"),
        format!(
            r#"//! Version {version}: {name}.

use hsm_guest::{{Db, Result}};

fn up(db: &Db) -> Result<()> {{
    // The change: hsm-host runs it in its own transaction, with foreign keys checked after.
    db.execute_batch("CREATE TABLE {name} (id INTEGER PRIMARY KEY, created_at TEXT)")
}}

fn down(db: &Db) -> Result<()> {{
    // Exactly what undoes `up` (`hsm-host test` checks the schema comes back the same).
    db.execute_batch("DROP TABLE {name}")
}}

hsm_guest::migration! {{
    version: {version},
    name: "{name}",
    description: "TODO: one sentence saying what this migration does",
    up: up,
    down: down,
}}
"#
        ),
    ));
    Ok(Scaffolded {
        version,
        files: write_all(planned)?,
    })
}

/// A new SQL migration in `dir`, in the layout its migrations already follow (`layout`, the
/// newest one's; `None` for a directory without SQL migrations: a golang-migrate/sqlx pair),
/// for a version after every one in `taken`: a diesel folder, an up/down pair, a dbmate or
/// goose file with its markers, a sqlx single file, a Flyway `V`/`U` pair, a refinery `V` file.
/// A directory whose versions are time stamps (14 digits) gets the time `now` as its version,
/// as the tools' own generators do.
///
/// # Errors
/// As [`rust_crate`]; [`Error::Scaffold`] for a layout pattern (write those files by hand).
pub fn sql_files(
    dir: &Path,
    name: &str,
    taken: &[u64],
    layout: Option<Layout>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Scaffolded> {
    check_name(name)?;
    let stamped = taken.iter().any(|v| *v >= 10_000_000_000_000);
    let stamp = now.format("%Y%m%d%H%M%S").to_string();
    let next = next_version(taken.iter().copied());
    let version = if stamped
        || matches!(
            layout,
            Some(Layout::Tool(Tool::Diesel) | Layout::Tool(Tool::Prisma))
        ) {
        stamp.parse::<u64>().expect("14 digits").max(next)
    } else {
        next
    };
    let up = format!(
        "-- TODO: one sentence saying what {name} does.\nCREATE TABLE {name} (id INTEGER PRIMARY KEY);\n"
    );
    let down = format!("DROP TABLE {name};\n");
    let planned = match layout {
        Some(Layout::Tool(Tool::Diesel)) => {
            let digits = version.to_string();
            let folder = dir.join(format!(
                "{}-{}-{}-{}_{name}",
                &digits[..4],
                &digits[4..6],
                &digits[6..8],
                &digits[8..]
            ));
            vec![(folder.join("up.sql"), up), (folder.join("down.sql"), down)]
        }
        Some(Layout::Tool(Tool::Dbmate)) => vec![(
            dir.join(format!("{version}_{name}.sql")),
            format!("-- migrate:up\n{up}\n-- migrate:down\n{down}"),
        )],
        Some(Layout::Tool(Tool::Goose)) => vec![(
            dir.join(format!("{version}_{name}.sql")),
            format!("-- +goose Up\n{up}\n-- +goose Down\n{down}"),
        )],
        Some(Layout::Tool(Tool::Sqlx)) => vec![(dir.join(format!("{version}_{name}.sql")), up)],
        Some(Layout::Tool(Tool::Flyway)) => vec![
            (dir.join(format!("V{version}__{name}.sql")), up),
            (dir.join(format!("U{version}__{name}.sql")), down),
        ],
        Some(Layout::Tool(Tool::Refinery)) => {
            vec![(dir.join(format!("V{version}__{name}.sql")), up)]
        }
        Some(Layout::Tool(Tool::Prisma)) => vec![(
            dir.join(format!("{version}_{name}")).join("migration.sql"),
            up,
        )],
        Some(Layout::Tool(Tool::Drizzle)) => {
            return Err(Error::Scaffold(
                "this is a Drizzle directory, whose journal (meta/_journal.json) orders the \
                 migrations: make the new one with `drizzle-kit generate`"
                    .into(),
            ));
        }
        Some(Layout::Pattern(pattern)) => {
            return Err(Error::Scaffold(format!(
                "this directory follows its own naming (`{pattern}`): write the new migration's \
                 files by hand"
            )));
        }
        Some(Layout::Tool(Tool::Pop)) => vec![
            (dir.join(format!("{version}_{name}.sqlite3.up.sql")), up),
            (dir.join(format!("{version}_{name}.sqlite3.down.sql")), down),
        ],
        Some(Layout::Tool(Tool::GolangMigrate)) | None => vec![
            (dir.join(format!("{version}_{name}.up.sql")), up),
            (dir.join(format!("{version}_{name}.down.sql")), down),
        ],
    };
    let files = write_all(planned)?;
    Ok(Scaffolded { version, files })
}

/// A language other than Rust that `new` writes a migration in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// componentize-py, with `hsm_guest.py`.
    Python,
    /// componentize-js, with `hsm-guest.js`.
    JavaScript,
}

/// The helpers and the contract, as this hsm-host was built with them.
const PYTHON_HELPER: &str = include_str!("../../guest-sdk/python/hsm_guest.py");
const JS_HELPER: &str = include_str!("../../guest-sdk/js/hsm-guest.js");
const CONTRACT: &str = include_str!("../../wit/migration.wit");

/// A Python or JavaScript migration `v<NNN>_<name>/` in `dir` for the version after every one
/// in `dir` and in `taken`: its module (`app.py`/`app.js`) and the helper beside it, and the
/// contract in `dir/wit/` (so it builds with nothing else). Returns what was made and the
/// command that builds it into `out_dir` (the migrations directory).
///
/// # Errors
/// [`Error::Scaffold`]: a name that is not snake_case, a file that exists, a write that fails.
pub fn module(
    dir: &Path,
    name: &str,
    taken: &[u64],
    language: Language,
    out_dir: &Path,
) -> Result<(Scaffolded, String)> {
    check_name(name)?;
    let version = next_version(taken.iter().copied().chain(crate_versions(dir)));
    let module = format!("v{version:03}_{name}");
    let folder = dir.join(&module);
    let out = std::path::absolute(out_dir.join(format!("{module}.wasm")))
        .unwrap_or_else(|_| out_dir.join(format!("{module}.wasm")));
    let (files, build) = match language {
        Language::Python => (
            vec![
                (folder.join("app.py"), python_module(version, name)),
                (folder.join("hsm_guest.py"), PYTHON_HELPER.to_owned()),
            ],
            format!(
                "(cd {} && componentize-py -d ../wit -w migration-with-functions componentize \
                 app -o {})",
                folder.display(),
                out.display()
            ),
        ),
        Language::JavaScript => (
            vec![
                (folder.join("app.js"), js_module(version, name)),
                (folder.join("hsm-guest.js"), JS_HELPER.to_owned()),
            ],
            format!(
                "(cd {} && componentize-js app.js -w ../wit -n migration-with-functions -d http \
                 fetch-event -o {})",
                folder.display(),
                out.display()
            ),
        ),
    };
    let mut planned = files;
    let wit = dir.join("wit/migration.wit");
    if !wit.exists() {
        planned.push((wit, CONTRACT.to_owned()));
    }
    let files = write_all(planned)?;
    Ok((Scaffolded { version, files }, build))
}

fn python_module(version: u64, name: &str) -> String {
    format!(
        r#"# Migration {version}: TODO say in one sentence what {name} does.
from hsm_guest import Db, log, migration


def up(db: Db) -> None:
    db.execute_batch("CREATE TABLE {name} (id INTEGER PRIMARY KEY)")
    log("created {name}")


def down(db: Db) -> None:
    db.execute_batch("DROP TABLE {name}")


WitWorld, Functions = migration(version={version}, name="{name}",
                                description="TODO: what {name} does",
                                up=up, down=down)
"#
    )
}

fn js_module(version: u64, name: &str) -> String {
    format!(
        r#"// Migration {version}: TODO say in one sentence what {name} does.
import {{ migration, log }} from './hsm-guest.js';

function up(db) {{
  db.executeBatch('CREATE TABLE {name} (id INTEGER PRIMARY KEY)');
  log('created {name}');
}}

function down(db) {{
  db.executeBatch('DROP TABLE {name}');
}}

export const {{ metadata, up: upStep, down: downStep, functions }} = migration({{
  version: {version},
  name: '{name}',
  description: 'TODO: what {name} does',
  up,
  down,
}});
export {{ upStep as up, downStep as down }};
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_snake_case_and_versions_follow_what_is_there() {
        for bad in ["", "AddThing", "1st", "a-b", "a b", "ä", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        check_name("add_email_column2").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let made = rust_crate(dir.path(), "first", &[]).unwrap();
        assert_eq!(made.version, 1);
        assert!(dir.path().join("hsm-guest/src/db.rs").is_file());
        assert!(dir.path().join("wit/migration.wit").is_file());
        let made = rust_crate(dir.path(), "second", &[7]).unwrap();
        assert_eq!(made.version, 8);
        assert!(dir.path().join("v008_second/src/lib.rs").is_file());
        // Nothing is written over.
        std::fs::create_dir_all(dir.path().join("v009_third/src")).unwrap();
        std::fs::write(dir.path().join("v009_third/src/lib.rs"), "mine").unwrap();
        assert!(rust_crate(dir.path(), "third", &[8]).is_err());
        assert!(
            !dir.path().join("v009_third/Cargo.toml").exists(),
            "half a crate"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("v009_third/src/lib.rs")).unwrap(),
            "mine"
        );
        let made = sql_files(dir.path(), "more", &[3, 12], None, chrono::Utc::now()).unwrap();
        assert_eq!(made.version, 13);
        assert!(dir.path().join("13_more.down.sql").is_file());
    }
}
