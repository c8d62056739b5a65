//! Files written for the `sqlite3` shell: its dot-commands (`.timeout 30000`, `.bail on`,
//! `.print …`), lines that start with `.` where a statement would start. Those that only set
//! up the shell's session mean nothing inside hsm-host's transaction and are skipped (a blank
//! line stays, so errors keep the file's line numbers); those that would read or write other
//! files, load code, or carry on past errors are refused, naming the command and its line.

use std::path::Path;

use super::parts::{SetError, error};
use crate::sql::script::is_complete;

/// Commands about the shell's own session: output, timing, prompts, and settings hsm-host
/// has its own way of (`.timeout`: the busy timeout; `.bail on`: hsm-host always stops at the
/// first error).
const SESSION_ONLY: &[&str] = &[
    "timeout",
    "print",
    "echo",
    "headers",
    "header",
    "mode",
    "changes",
    "timer",
    "nullvalue",
    "separator",
    "width",
    "eqp",
    "stats",
    "show",
    "prompt",
    "explain",
];

/// `text` with its dot-commands handled: skipped ones blanked, any other refused.
pub(super) fn dot_commands(path: &Path, text: &str) -> Result<String, SetError> {
    let shell_line = |c: char| text.starts_with(c) || text.contains(&format!("\n{c}"));
    if !shell_line('.') && !shell_line('#') {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    // What has been read since the last complete statement.
    let mut pending = String::new();
    for (index, line) in text.split_inclusive('\n').enumerate() {
        // The shell's comment lines (`#` where a statement would start) are not SQL.
        if line.starts_with('#') && nothing_started(&pending) {
            out.push_str(&line[line.len() - usize::from(line.ends_with('\n'))..]);
            continue;
        }
        if line.starts_with('.') && nothing_started(&pending) {
            let words: Vec<&str> = line[1..].split_whitespace().collect();
            let command = words.first().copied().unwrap_or_default();
            let refuse = |why: &str| {
                error(
                    path,
                    format!(
                        "line {}: `.{}` is a command of the sqlite3 shell {why}",
                        index + 1,
                        crate::text::neutralize(command, 32)
                    ),
                )
            };
            let bail_off = command == "bail" && words.get(1).is_some_and(|w| *w != "on");
            if bail_off {
                return Err(refuse(
                    "that goes on past a failing statement; hsm-host stops a migration at its \
                     first error and rolls it back: remove the line",
                ));
            }
            if command != "bail" && !SESSION_ONLY.contains(&command) {
                return Err(refuse(
                    "that hsm-host does not run: a migration is SQL only (no other files, \
                     extensions or shell settings); remove the line, or do what it does in SQL",
                ));
            }
            tracing::debug!(
                "{}: line {}: skipped the sqlite3 shell's `.{command}` (it means nothing inside \
                 hsm-host's transaction)",
                path.display(),
                index + 1
            );
            out.push_str(&line[line.len() - usize::from(line.ends_with('\n'))..]);
            continue;
        }
        out.push_str(line);
        pending.push_str(line);
        if is_complete(&pending) {
            pending.clear();
        }
    }
    Ok(out)
}

/// Whether `pending` holds nothing but blanks and closed comments: as the shell reads, an
/// unclosed `/*` has started SQL, so a `.` line inside it is not a command.
fn nothing_started(pending: &str) -> bool {
    let mut rest = pending;
    loop {
        let trimmed = rest.trim_start();
        if let Some(after) = trimmed.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, next)| next);
        } else if let Some(after) = trimmed.strip_prefix("/*") {
            match after.split_once("*/") {
                Some((_, next)) => rest = next,
                None => return false,
            }
        } else {
            return trimmed.is_empty() || trimmed == ";";
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_commands_are_blanked_and_the_others_refused() {
        let path = Path::new("1_to_2.sql");
        let text = ".timeout 30000\n.bail on\nCREATE TABLE a (x);\n.print done\n";
        assert_eq!(
            dot_commands(path, text).unwrap(),
            "\n\nCREATE TABLE a (x);\n\n"
        );
        // A line in a string, a statement that goes on or an open comment is SQL, not a
        // command (the comment goes on: nothing after it is hidden by blanking its end).
        let text = "INSERT INTO a VALUES ('\n.read x\n');\nCREATE TABLE b\n.c (y);\n";
        assert_eq!(dot_commands(path, text).unwrap(), text);
        let text = "CREATE TABLE a(x);\n/* note\n.print hi */ CREATE TABLE evil(x);\n";
        assert_eq!(dot_commands(path, text).unwrap(), text);
        assert_eq!(
            dot_commands(path, "# a comment\nCREATE TABLE a (x);\n").unwrap(),
            "\nCREATE TABLE a (x);\n"
        );
        for (text, said) in [
            ("CREATE TABLE a (x);\n.read other.sql\n", "line 2: `.read`"),
            (".bail off\n", "goes on past a failing statement"),
            (".load ./evil\n", "`.load`"),
            (".shell rm -rf /\n", "`.shell`"),
        ] {
            let err = dot_commands(path, text).unwrap_err();
            assert!(err.reason.contains(said), "{text}: {}", err.reason);
        }
    }
}
