//! One migration's files, read into a [`SqlMigration`]: the text of each (a regular file
//! inside the set, a byte-order mark dropped, its digest taken), the sections of one-file
//! layouts kept on their own lines, markers asking for no transaction refused, shell
//! dot-commands and the header comment.

use std::path::Path;

use super::SqlMigration;
use super::parts::{Layout, Parts, SetError, error};
use crate::tool::Tool;

/// A SQL file of the set: a regular file (or a link to one in the same directory) of at most
/// [`crate::files::MAX_SQL_FILE`] bytes, so a stranger's set cannot make hsm-host read the
/// operator's other files, a device or a FIFO.
pub(super) fn read_sql(path: &Path) -> Result<SqlFile, SetError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let bytes = crate::files::read_inside(path, dir, crate::files::MAX_SQL_FILE)
        .map_err(|reason| error(path, reason))?;
    // The digest of the bytes as they are (a byte-order mark too): what `sha256sum` prints.
    let sha256 = crate::runtime::sha256_hex(&bytes);
    let text = String::from_utf8(bytes).map_err(|_| error(path, "is not UTF-8 text"))?;
    let text = text
        .strip_prefix('\u{feff}')
        .map(str::to_owned)
        .unwrap_or(text);
    Ok(SqlFile { text, sha256 })
}

/// A SQL file's text (without a byte-order mark) and the sha256 of its bytes.
pub(super) struct SqlFile {
    pub(super) text: String,
    pub(super) sha256: String,
}

/// The byte offset of the line that starts with one of `markers` (case-insensitive, spaces
/// after `--` optional), and the offset just past that line.
pub(super) fn find_marker(text: &str, markers: &[&str]) -> Option<(usize, usize)> {
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

pub(super) fn load(version: u64, parts: Parts) -> Result<SqlMigration, SetError> {
    let layout = parts.layout.expect("set with every part");
    let Some(up_path) = parts.up else {
        let down = parts.down.unwrap_or_default();
        return Err(error(
            &down,
            if layout == Layout::Tool(Tool::Flyway) {
                "is a Flyway undo file with no V file of its version beside it (if it is \
                 refinery's unversioned migration, run with --layout refinery)"
            } else {
                "has no up file beside it"
            },
        ));
    };
    let SqlFile { text, sha256 } = read_sql(&up_path)?;
    let down_file = parts.down.as_deref().map(read_sql).transpose()?;
    let mut no_transaction = asks_no_transaction(&up_path, layout, &text).then(|| up_path.clone());
    if let (Some(path), Some(file)) = (parts.down.as_deref(), &down_file)
        && layout != Layout::Tool(Tool::Diesel)
        && no_transaction.is_none()
        && asks_no_transaction(path, layout, &file.text)
    {
        no_transaction = Some(path.to_owned());
    }
    let mut down_sha256 = None;
    let (up, down) = match layout {
        Layout::Tool(Tool::Diesel)
        | Layout::Tool(Tool::GolangMigrate)
        | Layout::Tool(Tool::Flyway)
        | Layout::Tool(Tool::Refinery)
        | Layout::Tool(Tool::Pop)
        | Layout::Pattern(_) => {
            let down = down_file.map(|file| {
                down_sha256 = Some(file.sha256);
                file.text
            });
            (text, down)
        }
        Layout::Tool(Tool::Sqlx) | Layout::Tool(Tool::Prisma) => (text, None),
        Layout::Tool(Tool::Drizzle) => (super::drizzle::statements(&text), None),
        Layout::Tool(Tool::Dbmate) => sections(&text, &["-- migrate:up"], &["-- migrate:down"]),
        Layout::Tool(Tool::Goose) => {
            let (up, down) = sections(&text, &["-- +goose up"], &["-- +goose down"]);
            (strip_goose(&up), down.map(|d| strip_goose(&d)))
        }
    };
    // Files written for the sqlite3 shell: its dot-commands, handled or refused by line.
    let up = super::shell::dot_commands(&up_path, &up)?;
    let down = match (down, &parts.down) {
        (Some(down), Some(file))
            if layout != Layout::Tool(Tool::Dbmate) && layout != Layout::Tool(Tool::Goose) =>
        {
            Some(super::shell::dot_commands(file, &down)?)
        }
        (Some(down), _) => Some(super::shell::dot_commands(&up_path, &down)?),
        (None, _) => None,
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
        (Some(_), Layout::Tool(Tool::Dbmate) | Layout::Tool(Tool::Goose)) => Some(up_path.clone()),
        (Some(_), _) => parts.down.clone(),
    };
    Ok(SqlMigration {
        version,
        id: parts.id.clone(),
        name: parts.name,
        description,
        up,
        down,
        source: up_path,
        down_source,
        layout,
        up_sha256: sha256,
        down_sha256,
        no_transaction,
    })
}

/// The tools' ways of asking to run a migration outside a transaction: sqlx's first line
/// `-- no-transaction` (read in golang-migrate's and the `<version>_<name>.up.sql` layouts
/// too), dbmate's `transaction:false` on its marker, goose's `-- +goose NO TRANSACTION`,
/// diesel's `run_in_transaction = false` in `metadata.toml`.
fn asks_no_transaction(path: &Path, layout: Layout, text: &str) -> bool {
    match layout {
        Layout::Tool(Tool::Sqlx) | Layout::Tool(Tool::GolangMigrate) | Layout::Pattern(_) => {
            text.starts_with("-- no-transaction")
        }
        Layout::Tool(Tool::Dbmate) => text.lines().any(|line| {
            let line = normalize_comment(line);
            line.starts_with(&normalize_comment("-- migrate:"))
                && line.contains("transaction:false")
        }),
        Layout::Tool(Tool::Goose) => text
            .lines()
            .any(|line| normalize_comment(line) == normalize_comment("-- +goose no transaction")),
        Layout::Tool(Tool::Diesel) => path
            .parent()
            .map(|folder| folder.join("metadata.toml"))
            .filter(|toml| toml.is_file())
            .and_then(|toml| read_sql(&toml).ok().map(|file| file.text))
            .is_some_and(|toml| {
                toml.lines().any(|line| {
                    let line: String = line.chars().filter(|c| !c.is_whitespace()).collect();
                    line.starts_with("run_in_transaction=false")
                })
            }),
        _ => false,
    }
}

/// Why a migration that asks to run outside a transaction is refused on SQLite: hsm-host runs
/// every migration there in a transaction of its own, with its tracking rows and checks.
pub(super) fn no_transaction_refusal(layout: Layout) -> String {
    format!(
        "asks to run outside a transaction ({}'s no-transaction marker); hsm-host runs every \
         migration in a transaction of its own, with its tracking rows and checks, and \
         SQLite's DDL is transactional: remove the marker if the migration does not need it \
         (on PostgreSQL such a migration runs on its own: docs/postgresql.md)",
        layout.as_str()
    )
}

/// The up section (after `up`, before `down`) and the down section, if any.
fn sections(text: &str, up: &[&str], down: &[&str]) -> (String, Option<String>) {
    let start = find_marker(text, up).map_or(0, |(_, after)| after);
    // Each section keeps its lines where the file has them (blank lines stand for what comes
    // before it), so an error's line:column is the file's.
    let placed = |from: usize, to: usize| {
        let before = text[..from].matches('\n').count();
        format!("{}{}", "\n".repeat(before), &text[from..to])
    };
    match find_marker(&text[start..], down) {
        Some((at, after)) => (
            placed(start, start + at),
            Some(placed(start + after, text.len())),
        ),
        None => (placed(start, text.len()), None),
    }
}

fn strip_goose(text: &str) -> String {
    // A blank line for each annotation, so the lines after it keep their numbers.
    text.split_inclusive('\n')
        .map(|line| {
            if normalize_comment(line).starts_with("--+goose") {
                &line[line.len() - usize::from(line.ends_with('\n'))..]
            } else {
                line
            }
        })
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
