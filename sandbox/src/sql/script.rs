//! Scripts (`execute-batch`), as real migration files are written: split into statements the
//! way SQLite reads them (a trigger's `BEGIN … END` body stays whole), run one at a time so a
//! failure names the statement and where it starts (line:column), with a whole-script
//! `BEGIN; … COMMIT;` wrapper dropped (the host's transaction is the one) and the PRAGMAs
//! migrations set around table rebuilds given the host's meaning.

use std::ffi::CString;

use rusqlite::ffi;

/// One statement of a script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Statement<'a> {
    /// Its text, from its first token to its `;` (or the end of the script).
    pub(crate) text: &'a str,
    /// Where it starts in the script, 1-based.
    pub(crate) line: usize,
    pub(crate) column: usize,
}

impl Statement<'_> {
    /// The line and column in the script of byte `offset` of this statement's text.
    pub(crate) fn position_of(&self, offset: usize) -> (usize, usize) {
        let mut end = offset.min(self.text.len());
        while !self.text.is_char_boundary(end) {
            end -= 1;
        }
        let before = &self.text[..end];
        match before.rfind('\n') {
            Some(last) => (
                self.line + before.matches('\n').count(),
                before[last + 1..].chars().count() + 1,
            ),
            None => (self.line, self.column + before.chars().count()),
        }
    }

    /// `statement 3 (line 12:1): `CREATE TABLE …``, the text shortened for a message.
    pub(crate) fn describe(&self, number: usize) -> String {
        const SHOWN: usize = 200;
        let text = self.text.trim();
        let mut end = text.len().min(SHOWN);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let more = if end < text.len() { "…" } else { "" };
        format!(
            "statement {number} (line {}:{}): `{}{more}`",
            self.line,
            self.column,
            &text[..end]
        )
    }
}

/// The statements of `script`, in order; blank and comment-only stretches are not statements.
pub(crate) fn statements(script: &str) -> Vec<Statement<'_>> {
    let bytes = script.as_bytes();
    let mut found = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"' | b'`') => i = skip_past(bytes, i + 1, quote),
            b'[' => i = skip_past(bytes, i + 1, b']'),
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
            }
            b';' => {
                i += 1;
                // A `;` inside a trigger body does not end the statement: SQLite says when
                // the text so far is complete.
                if is_complete(&script[start..i]) {
                    push(script, start, i, &mut found);
                    start = i;
                }
                continue;
            }
            _ => i += 1,
        }
    }
    if start < script.len() {
        push(script, start, script.len(), &mut found);
    }
    found
}

/// The index just past the closing `quote` (or the end).
fn skip_past(bytes: &[u8], mut i: usize, quote: u8) -> usize {
    while i < bytes.len() && bytes[i] != quote {
        i += 1;
    }
    i + 1
}

/// Whether `text` ends a whole statement, as SQLite's `sqlite3_complete` decides.
pub fn is_complete(text: &str) -> bool {
    let Ok(text) = CString::new(text) else {
        // A NUL byte: SQLite would stop reading there; let it report the statement.
        return true;
    };
    // SAFETY: `text` is NUL-terminated and outlives the call, which only reads it.
    unsafe { ffi::sqlite3_complete(text.as_ptr()) != 0 }
}

/// Adds `script[from..to]` as a statement unless it holds only blanks and comments.
fn push<'a>(script: &'a str, from: usize, to: usize, found: &mut Vec<Statement<'a>>) {
    let piece = &script[from..to];
    let Some(offset) = first_token(piece) else {
        return;
    };
    let at = from + offset;
    let before = &script[..at];
    let line = before.matches('\n').count() + 1;
    let column = before[before.rfind('\n').map_or(0, |n| n + 1)..]
        .chars()
        .count()
        + 1;
    found.push(Statement {
        text: &script[at..to],
        line,
        column,
    });
}

/// Where the first token of `text` starts, past blanks and comments; `None` if there is none
/// (a lone `;` is no statement either).
pub(crate) fn first_token(text: &str) -> Option<usize> {
    let mut rest = text;
    loop {
        let trimmed = rest.trim_start();
        if let Some(after) = trimmed.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, next)| next);
        } else if let Some(after) = trimmed.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, next)| next);
        } else if trimmed.is_empty() || trimmed == ";" {
            return None;
        } else {
            return Some(text.len() - trimmed.len());
        }
    }
}

/// The words of a statement, upper-cased, up to `max`, ignoring comments.
fn words(text: &str, max: usize) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter(|w| !w.is_empty())
        .take(max)
        .map(str::to_ascii_uppercase)
        .collect()
}

/// Whether the statement only opens a transaction (`BEGIN [DEFERRED|IMMEDIATE|EXCLUSIVE]
/// [TRANSACTION]`).
fn is_begin(text: &str) -> bool {
    let words = words(text, 4);
    words.first().is_some_and(|w| w == "BEGIN")
        && words[1..].iter().all(|w| {
            matches!(
                w.as_str(),
                "DEFERRED" | "IMMEDIATE" | "EXCLUSIVE" | "TRANSACTION"
            )
        })
}

/// Whether the statement only commits (`COMMIT`/`END [TRANSACTION]`).
fn is_commit(text: &str) -> bool {
    let words = words(text, 3);
    words.first().is_some_and(|w| w == "COMMIT" || w == "END")
        && words[1..].iter().all(|w| w == "TRANSACTION")
}

/// The statements to run, with their numbers in the script: a script wholly wrapped in
/// `BEGIN; … COMMIT;` loses the wrapper (it runs inside the host's transaction, as its author
/// meant), also when the PRAGMAs of a table rebuild stand outside it (`PRAGMA foreign_keys=off;
/// BEGIN; … COMMIT; PRAGMA foreign_keys=on;`, SQLite's own recipe). So does a script wholly
/// wrapped the other way, `COMMIT; … BEGIN;` (Drizzle's way of stepping out of its runner's
/// transaction to turn foreign keys off for a table rebuild: hsm-host runs every migration with
/// them off already), and the wrappers inside one another. A transaction statement anywhere
/// else stays, for the policy to refuse.
pub(crate) fn to_run<'a>(statements: &[Statement<'a>]) -> Vec<(usize, Statement<'a>)> {
    let inner = |i: &usize| host_meaning(statements[*i].text).is_none();
    let mut dropped = Vec::new();
    let (mut from, mut to) = (0, statements.len());
    loop {
        let first = (from..to).find(inner);
        let last = (from..to).rev().find(inner);
        let (Some(first), Some(last)) = (first, last) else {
            break;
        };
        let (opens, closes) = (statements[first].text, statements[last].text);
        let wrapped =
            (is_begin(opens) && is_commit(closes)) || (is_commit(opens) && is_begin(closes));
        if first >= last || !wrapped {
            break;
        }
        dropped.extend([first, last]);
        (from, to) = (first + 1, last);
    }
    statements
        .iter()
        .copied()
        .enumerate()
        .filter(|(i, _)| !dropped.contains(i))
        .map(|(i, s)| (i + 1, s))
        .collect()
}

/// What hsm-host does with a PRAGMA real migrations set, where that differs from running it:
/// `Some(why it is skipped)` for `foreign_keys` and `defer_foreign_keys` set to anything
/// (hsm-host already runs every migration with foreign keys off and checks them all before
/// COMMIT), and for `journal_mode` (the file's, not the migration's).
pub(crate) fn host_meaning(text: &str) -> Option<&'static str> {
    let words = words(text, 3);
    if words.first().map(String::as_str) != Some("PRAGMA") || words.len() < 3 {
        return None;
    }
    // `PRAGMA main.foreign_keys = OFF` has its schema in the same word.
    let name = words[1].rsplit('.').next().unwrap_or_default();
    match name {
        "FOREIGN_KEYS" | "DEFER_FOREIGN_KEYS" => Some(
            "hsm-host already runs each migration with foreign keys off and checks every \
             foreign key before COMMIT",
        ),
        // Drizzle sets write `PRAGMA journal_mode=WAL;` into their first migration.
        "JOURNAL_MODE" => Some(
            "the journal mode is the database file's, and SQLite cannot change it inside the \
             migration's transaction: set it where the application opens the database",
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(script: &str) -> Vec<&str> {
        statements(script).iter().map(|s| s.text).collect()
    }

    #[test]
    fn a_place_in_a_statement_is_a_place_in_the_script() {
        let script = "-- header\nCREATE TABLE t (\n  x TEXT,\n  y INTEGR ER\n);";
        let statement = statements(script)[0];
        assert_eq!((statement.line, statement.column), (2, 1));
        let at = statement.text.find("ER\n").unwrap();
        assert_eq!(statement.position_of(at), (4, 12));
        assert_eq!(statement.position_of(3), (2, 4));
        assert_eq!(statement.position_of(10_000), (5, 3));
    }

    #[test]
    fn statements_split_as_sqlite_reads_them() {
        let script = "-- header\nCREATE TABLE t (x TEXT DEFAULT ';');\n\n  CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n    UPDATE t SET x = 'a;b';\n    DELETE FROM t WHERE x = \"q;\";\n  END;\n/* c; */ INSERT INTO t VALUES (1) ;;\nSELECT 1";
        assert_eq!(
            texts(script),
            [
                "CREATE TABLE t (x TEXT DEFAULT ';');",
                "CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n    UPDATE t SET x = 'a;b';\n    DELETE FROM t WHERE x = \"q;\";\n  END;",
                "INSERT INTO t VALUES (1) ;",
                "SELECT 1",
            ]
        );
        let found = statements(script);
        assert_eq!((found[0].line, found[0].column), (2, 1));
        assert_eq!((found[1].line, found[1].column), (4, 3));
        assert_eq!((found[2].line, found[2].column), (8, 10));
        assert!(texts("  -- only a comment\n /* and another */ ").is_empty());
    }

    fn numbers(script: &str) -> Vec<usize> {
        to_run(&statements(script))
            .iter()
            .map(|(n, _)| *n)
            .collect()
    }

    #[test]
    fn a_whole_script_wrapper_is_dropped_and_nothing_else() {
        assert_eq!(
            numbers("BEGIN TRANSACTION; CREATE TABLE a (x); COMMIT;"),
            [2]
        );
        assert_eq!(numbers("begin; create table a (x); end transaction;"), [2]);
        assert_eq!(
            numbers(
                "PRAGMA foreign_keys=off; BEGIN; CREATE TABLE a (x); COMMIT; PRAGMA foreign_keys=on;"
            ),
            [1, 3, 5]
        );
        assert_eq!(
            numbers("CREATE TABLE a (x); COMMIT; CREATE TABLE b (y);"),
            [1, 2, 3]
        );
        assert_eq!(numbers("BEGIN; CREATE TABLE a (x);"), [1, 2]);
        assert_eq!(
            numbers("BEGIN; CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; END;"),
            [1, 2],
            "a trigger's END is not a COMMIT"
        );
        // Drizzle's step out of its runner's transaction, around SQLite's rebuild recipe.
        assert_eq!(
            numbers(
                "COMMIT;--> statement-breakpoint\nPRAGMA foreign_keys=OFF;--> statement-breakpoint\n\
                 BEGIN; CREATE TABLE a (x); COMMIT;\nPRAGMA foreign_keys=ON;\nBEGIN;"
            ),
            [2, 4, 6]
        );
        assert_eq!(numbers("COMMIT; CREATE TABLE a (x);"), [1, 2]);
        assert_eq!(
            numbers("COMMIT; CREATE TABLE a (x); BEGIN; CREATE TABLE b (y); COMMIT;"),
            [1, 2, 3, 4, 5],
            "not a wrapper: the second COMMIT is not the last BEGIN"
        );
    }

    #[test]
    fn a_journal_mode_is_the_files_not_the_migrations() {
        assert!(host_meaning("PRAGMA journal_mode=WAL").is_some());
        assert!(host_meaning("PRAGMA main.journal_mode = wal").is_some());
        assert!(host_meaning("PRAGMA journal_mode").is_none());
    }

    #[test]
    fn foreign_key_pragmas_have_the_hosts_meaning() {
        assert!(host_meaning("PRAGMA foreign_keys = OFF;").is_some());
        assert!(host_meaning("pragma main.foreign_keys=on").is_some());
        assert!(host_meaning("PRAGMA defer_foreign_keys = true").is_some());
        assert!(host_meaning("PRAGMA foreign_keys").is_none());
        assert!(host_meaning("PRAGMA foreign_key_check").is_none());
        assert!(host_meaning("PRAGMA synchronous = FULL").is_none());
    }
}
