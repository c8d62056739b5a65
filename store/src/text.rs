//! Text a guest chose (log messages, errors, names, descriptions) on its way to a terminal, a log
//! file, JSON or a history row: control characters are shown as escapes, never obeyed, and each
//! piece is capped, so a migration can neither drive the operator's terminal, forge lines of the
//! log file, nor fill the disk or the history table.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Longest migration name kept, in bytes.
pub const MAX_NAME: usize = 128;
/// Longest migration description kept, in bytes.
pub const MAX_DESCRIPTION: usize = 1024;
/// Longest single log message or error kept, in bytes.
pub const MAX_MESSAGE: usize = 4096;
/// All log messages of one migration (its `up`/`down` and its SQL functions) together.
pub const LOG_BUDGET: usize = 256 << 10;

/// `text` safe to show and store: every control character (C0, DEL, C1), line or paragraph
/// separator and bidirectional override is written as an escape (`\n`, `\u{1b}`), and the result
/// is cut to about `max_bytes`, saying how much was cut.
pub fn neutralize(text: &str, max_bytes: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_bytes) + 32);
    for (at, c) in text.char_indices() {
        if out.len() >= max_bytes {
            out.push_str(&format!("… ({} more bytes cut)", text.len() - at));
            return out;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Characters a terminal or a log reader acts on rather than shows.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{2028}' | '\u{2029}'                 // line and paragraph separators
            | '\u{200e}' | '\u{200f}'               // left-to-right and right-to-left marks
            | '\u{202a}'..='\u{202e}'               // bidirectional embeddings and overrides
            | '\u{2066}'..='\u{2069}'               // bidirectional isolates
            | '\u{061c}'                            // Arabic letter mark
            | '\u{200b}'..='\u{200d}'               // zero-width space and joiners
            | '\u{2060}'..='\u{2064}'               // word joiner, invisible operators
            | '\u{feff}') // byte order mark, zero-width no-break space
}

/// What is left of a migration's log budget, shared by its `up`/`down` instance and its
/// function instance.
#[derive(Debug)]
pub struct Budget {
    left: AtomicUsize,
}

impl Budget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Self {
        Self {
            left: AtomicUsize::new(bytes),
        }
    }

    /// Takes up to `wanted` bytes; returns how many were granted (0 once spent).
    pub fn take(&self, wanted: usize) -> usize {
        let mut granted = 0;
        let _ = self
            .left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                granted = wanted.min(left);
                Some(left - granted)
            });
        granted
    }
}

/// `identifier` as a quoted SQL identifier (`"a ""b"""`): any name, even one a stranger chose,
/// is then a name, never SQL. The one quoter every statement that names a table uses.
pub fn quote_identifier(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_name_quotes_to_one_identifier() {
        assert_eq!(quote_identifier("users"), "\"users\"");
        assert_eq!(
            quote_identifier("a\"; DROP TABLE x; --"),
            "\"a\"\"; DROP TABLE x; --\""
        );
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let name = "odd \"name\"";
        conn.execute_batch(&format!("CREATE TABLE {} (x)", quote_identifier(name)))
            .unwrap();
        let found: String = conn
            .query_row("SELECT name FROM sqlite_schema", [], |r| r.get(0))
            .unwrap();
        assert_eq!(found, name);
    }

    #[test]
    fn control_characters_become_escapes() {
        assert_eq!(
            neutralize("a\x1b[2Jb\nforged line\r\u{202e}x\u{7f}", 100),
            "a\\u{1b}[2Jb\\nforged line\\r\\u{202e}x\\u{7f}"
        );
        assert_eq!(neutralize("plain café", 100), "plain café");
    }

    #[test]
    fn long_text_is_cut_and_says_so() {
        let cut = neutralize(&"é".repeat(1000), 10);
        assert!(cut.starts_with("ééééé… ("), "{cut}");
        assert!(cut.ends_with("more bytes cut)"), "{cut}");
        assert!(cut.len() < 40);
    }

    #[test]
    fn a_budget_runs_out() {
        let budget = Budget::new(10);
        assert_eq!(budget.take(4), 4);
        assert_eq!(budget.take(8), 6);
        assert_eq!(budget.take(1), 0);
    }
}
