//! PostgreSQL scripts split into statements the way the server's own lexer reads them: quoted
//! strings (`'…'`, `E'…'` with backslash escapes), quoted identifiers, dollar-quoted bodies
//! (`$fn$ … $fn$`), nested `/* */` comments and SQL-standard function bodies
//! (`BEGIN ATOMIC … END`) never end a statement; a `;` outside them does. Each statement then
//! goes to the server alone (one per Parse), so no string can carry a second one.

/// One statement of a script: its text and where it starts (1-based line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement<'a> {
    /// The statement, without its `;`.
    pub text: &'a str,
    /// The line it starts on.
    pub line: usize,
}

/// The statements of `script`, blanks and comment-only pieces left out.
pub fn statements(script: &str) -> Vec<Statement<'_>> {
    let bytes = script.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    // Inside `BEGIN ATOMIC`: how many END still close it (CASE … END opens one more).
    let mut atomic_depth = 0usize;
    // Parentheses: a `;` inside them (`CREATE RULE … DO ALSO (…; …)`) ends nothing, as psql reads it.
    let mut paren_depth = 0usize;
    let mut previous_word = String::new();
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\'' => i = skip_quoted(bytes, i, b'\'', escapes_backslash(bytes, i)),
            b'"' => i = skip_quoted(bytes, i, b'"', false),
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                // PostgreSQL's lexer ends a `--` comment at a line feed or a carriage return.
                i = script[i..]
                    .find(['\n', '\r'])
                    .map_or(bytes.len(), |n| i + n + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = skip_block_comment(bytes, i),
            b'$' => i = skip_dollar_quoted(script, i),
            b'(' => {
                paren_depth += 1;
                i += 1;
            }
            b')' => {
                paren_depth = paren_depth.saturating_sub(1);
                i += 1;
            }
            b';' if atomic_depth == 0 && paren_depth == 0 => {
                push(script, start, i, &mut out);
                i += 1;
                start = i;
            }
            c if is_word_start(c) && (i == 0 || !is_word_byte(bytes[i - 1])) => {
                let end = i + bytes[i..].iter().take_while(|b| is_word_byte(**b)).count();
                let word = script[i..end].to_ascii_lowercase();
                let opens = (previous_word == "begin" && word == "atomic")
                    || (atomic_depth > 0 && word == "case");
                if opens {
                    atomic_depth += 1;
                } else if atomic_depth > 0 && word == "end" {
                    atomic_depth -= 1;
                }
                previous_word = word;
                i = end;
            }
            _ => i += 1,
        }
    }
    push(script, start, bytes.len(), &mut out);
    out
}

fn push<'a>(script: &'a str, start: usize, end: usize, out: &mut Vec<Statement<'a>>) {
    let piece = &script[start..end];
    // Only whitespace and comments are left out: anything else goes to the server (or is
    // refused), whatever it starts with — `(SELECT …)` and a psql `\set` line included.
    let offset = first_word_offset(piece);
    // An unterminated `/*` hides everything after it: sent, the server refuses it (psql
    // does too); dropped, the SQL after it would vanish from a migration recorded applied.
    let offset = match offset == piece.len() {
        true if has_unterminated_comment(piece) => piece.len() - piece.trim_start().len(),
        true => return,
        false => offset,
    };
    // The line of its first word: a comment before it is not where it starts.
    let line = 1 + script[..start + offset].matches('\n').count();
    out.push(Statement {
        text: piece[offset..].trim_end(),
        line,
    });
}

/// Whether a block comment in `piece` (outside quotes) is never closed.
fn has_unterminated_comment(piece: &str) -> bool {
    let bytes = piece.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => i = skip_quoted(bytes, i, b'\'', escapes_backslash(bytes, i)),
            b'"' => i = skip_quoted(bytes, i, b'"', false),
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = piece[i..]
                    .find(['\n', '\r'])
                    .map_or(bytes.len(), |n| i + n + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = skip_block_comment(bytes, i);
                if end == bytes.len() && !piece[..end].ends_with("*/") {
                    return true;
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    false
}

fn is_word_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_word_byte(c: u8) -> bool {
    is_word_start(c) || c.is_ascii_digit() || c == b'$'
}

/// Whether the quote at `at` opens an `E'…'` string (backslash escapes).
fn escapes_backslash(bytes: &[u8], at: usize) -> bool {
    at > 0 && matches!(bytes[at - 1], b'e' | b'E') && (at < 2 || !is_word_byte(bytes[at - 2]))
}

/// The index after the quoted text opening at `at` (a doubled quote is one quote).
fn skip_quoted(bytes: &[u8], at: usize, quote: u8, backslash: bool) -> usize {
    let mut i = at + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if backslash => i += 2,
            b if b == quote && bytes.get(i + 1) == Some(&quote) => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The index after the (nesting) block comment opening at `at`.
fn skip_block_comment(bytes: &[u8], at: usize) -> usize {
    let mut depth = 0;
    let mut i = at;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The index after a dollar-quoted string opening at `at`, or after the `$` when it opens
/// none (a parameter such as `$1`, or a `$` inside a word).
fn skip_dollar_quoted(script: &str, at: usize) -> usize {
    let bytes = script.as_bytes();
    if at > 0 && is_word_byte(bytes[at - 1]) {
        return at + 1;
    }
    let tag_len = bytes[at + 1..]
        .iter()
        .take_while(|b| is_word_byte(**b) && **b != b'$')
        .count();
    let tag_end = at + 1 + tag_len;
    let valid_tag = bytes.get(tag_end) == Some(&b'$')
        && bytes
            .get(at + 1)
            .is_none_or(|first| !first.is_ascii_digit());
    if !valid_tag {
        return at + 1;
    }
    let tag = &script[at..=tag_end];
    match script[tag_end + 1..].find(tag) {
        Some(n) => tag_end + 1 + n + tag.len(),
        None => bytes.len(),
    }
}

/// Where the first word of `sql` starts, after whitespace and comments.
pub(crate) fn first_word_offset(sql: &str) -> usize {
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once(['\n', '\r']).map_or("", |(_, next)| next);
        } else if rest.starts_with("/*") {
            rest = &rest[skip_block_comment(rest.as_bytes(), 0)..];
        } else {
            return sql.len() - rest.len();
        }
    }
}

/// The first word of a statement, lowercased, after whitespace and comments.
pub fn first_word(sql: &str) -> String {
    words(sql, 1).into_iter().next().unwrap_or_default()
}

/// Up to `n` leading words of a statement, lowercased, after whitespace and comments.
pub fn words(mut sql: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    while out.len() < n {
        sql = sql.trim_start();
        if let Some(rest) = sql.strip_prefix("--") {
            sql = rest.split_once(['\n', '\r']).map_or("", |(_, after)| after);
        } else if sql.starts_with("/*") {
            sql = &sql[skip_block_comment(sql.as_bytes(), 0)..];
        } else {
            let len = sql
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            if len == 0 {
                break;
            }
            out.push(sql[..len].to_ascii_lowercase());
            sql = &sql[len..];
        }
    }
    out
}

/// Whether `sql` has nothing after its first `n` words but blanks and comments.
fn words_end(sql: &str, n: usize) -> bool {
    let mut rest = sql;
    for _ in 0..n {
        let offset = first_word_offset(rest);
        rest = &rest[offset..];
        let len = rest
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        rest = &rest[len..];
    }
    first_word_offset(rest) == rest.len()
}

/// Why hsm-host refuses to send `statement` to the server, if it does: statements that end,
/// open or split the host's transaction, and `COPY` (its data would come from the client, or
/// from the server's files).
pub fn refusal(statement: &str) -> Option<String> {
    let text = &statement[first_word_offset(statement)..];
    if text.starts_with('\\') {
        let command: String = text
            .chars()
            .take_while(|c| !c.is_whitespace())
            .take(16)
            .collect();
        return Some(format!(
            "{command} is a psql meta-command: hsm-host sends SQL to the server, not psql \
             scripts; write it as SQL or leave it out"
        ));
    }
    let words = words(statement, 2);
    let first = words.first().map(String::as_str).unwrap_or_default();
    let second = words.get(1).map(String::as_str).unwrap_or_default();
    let control = matches!(
        first,
        "begin" | "start" | "commit" | "end" | "rollback" | "abort" | "savepoint" | "release"
    ) || (first == "prepare" && second == "transaction");
    if control {
        return Some(format!(
            "{} is transaction control, which hsm-host owns: each migration runs in the \
             transaction hsm-host opened, committed when the migration succeeds",
            first.to_ascii_uppercase()
        ));
    }
    if first == "copy" {
        return Some(
            "COPY is not allowed: its rows would come from the client or the server's files; \
             insert them with execute-many"
                .into(),
        );
    }
    None
}

/// The script without the transaction blocks it wraps its statements in: `BEGIN; … COMMIT;`
/// (or `START TRANSACTION` / `END`), whole or in several blocks one after another, run inside
/// the host's transaction without them (a failure then undoes the whole migration, not only
/// its block). A block that is not closed, or closed by ROLLBACK, stays, and is refused.
pub fn unwrap_transaction<'a>(statements: &[Statement<'a>]) -> Vec<Statement<'a>> {
    // Only a plain BEGIN: one with modes (`READ ONLY`, `ISOLATION LEVEL …`) asks for
    // something the host's transaction would not give, so it stays, and is refused.
    let opens = |s: &Statement<'_>| {
        let w = words(s.text, 3);
        let w: Vec<&str> = w.iter().map(String::as_str).collect();
        matches!(
            w.as_slice(),
            ["begin"] | ["begin", "transaction" | "work"] | ["start", "transaction"]
        ) && words_end(s.text, w.len())
    };
    let closes = |s: &Statement<'_>| {
        let w = words(s.text, 2);
        matches!(w.first().map(String::as_str), Some("commit" | "end"))
            && w.get(1).is_none_or(|s| s == "transaction" || s == "work")
    };
    let mut kept = Vec::with_capacity(statements.len());
    let mut open: Option<usize> = None;
    for statement in statements {
        if open.is_none() && opens(statement) {
            open = Some(kept.len());
            kept.push(statement.clone());
        } else if let Some(at) = open.filter(|_| closes(statement)) {
            kept.remove(at);
            open = None;
        } else if open.is_some() && opens(statement) {
            // A BEGIN inside a block: nothing is unwrapped (and the BEGIN is refused).
            return statements.to_vec();
        } else {
            kept.push(statement.clone());
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(script: &str) -> Vec<&str> {
        statements(script).into_iter().map(|s| s.text).collect()
    }

    #[test]
    fn semicolons_inside_strings_comments_and_bodies_do_not_split() {
        let script = "CREATE TABLE t (a text DEFAULT ';');\n\
            -- a; comment\n\
            INSERT INTO t VALUES (E'it\\'s; here'), ('x'';y');\n\
            /* outer /* inner; */ still; */ SELECT 1;\n\
            CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$ BEGIN RETURN 1; END $body$;\n\
            CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; SELECT 2; END;\n\
            SELECT \"a;b\" FROM t WHERE a = $1";
        let got = texts(script);
        assert_eq!(got.len(), 6, "{got:#?}");
        assert!(got[3].contains("$body$ BEGIN RETURN 1; END $body$"));
        assert!(got[4].ends_with("SELECT 2; END"), "{}", got[4]);
        assert_eq!(got[5], "SELECT \"a;b\" FROM t WHERE a = $1");
        assert_eq!(statements(script)[1].line, 3);
    }

    #[test]
    fn transaction_control_and_copy_are_refused_after_comments_and_in_any_case() {
        for sql in [
            "COMMIT",
            "  /* x */ commit",
            "-- c\nEnd",
            "-- x\rROLLBACK --\nWORK",
            "ROLLBACK",
            "abort",
            "BEGIN",
            "start transaction",
            "savepoint a",
            "release a",
            "PREPARE TRANSACTION 'x'",
            "COPY t FROM '/etc/passwd'",
        ] {
            assert!(refusal(sql).is_some(), "{sql}");
        }
        for sql in [
            "PREPARE p AS SELECT 1",
            "SELECT 'commit'",
            "CREATE TABLE commits (id int)",
            "SET ROLE none",
        ] {
            assert!(refusal(sql).is_none(), "{sql}");
        }
    }

    #[test]
    fn transaction_blocks_are_dropped_and_nothing_else() {
        let unwrapped = |script| {
            unwrap_transaction(&statements(script))
                .into_iter()
                .map(|s| s.text)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            unwrapped("BEGIN; CREATE TABLE a (x int); COMMIT;"),
            ["CREATE TABLE a (x int)"]
        );
        assert_eq!(
            unwrapped("CREATE TABLE a (x int); COMMIT;"),
            ["CREATE TABLE a (x int)", "COMMIT"]
        );
        assert_eq!(
            unwrapped("SELECT 1; BEGIN; SELECT 2; COMMIT; START TRANSACTION; SELECT 3; END;"),
            ["SELECT 1", "SELECT 2", "SELECT 3"]
        );
        assert_eq!(
            unwrapped("BEGIN; SELECT 2; ROLLBACK;"),
            ["BEGIN", "SELECT 2", "ROLLBACK"]
        );
        assert_eq!(unwrapped("BEGIN; SELECT 2;"), ["BEGIN", "SELECT 2"]);
        assert_eq!(
            unwrapped("BEGIN; BEGIN; SELECT 2; COMMIT; COMMIT;"),
            ["BEGIN", "BEGIN", "SELECT 2", "COMMIT", "COMMIT"]
        );
    }

    #[test]
    fn nothing_but_blanks_and_comments_is_left_out() {
        // Found on real sets: a piece starting with `(` or `\` was dropped, and with it the
        // SQL after it up to the next `;`, and the migration recorded as applied.
        assert_eq!(
            texts("CREATE TABLE ps (v int);\n(SELECT 1/0);"),
            ["CREATE TABLE ps (v int)", "(SELECT 1/0)"]
        );
        let meta = statements(
            "CREATE TABLE pm (v int);\n\\set ON_ERROR_STOP on\nCREATE TABLE pm2 (v int);",
        );
        assert_eq!(meta.len(), 2);
        let refused = refusal(meta[1].text).unwrap();
        assert!(
            refused.starts_with("\\set is a psql meta-command"),
            "{refused}"
        );
        assert!(refusal("-- c\n\\i /etc/hostname").is_some());
        assert_eq!(
            texts("-- only a comment\n/* and another */ ;  ;"),
            Vec::<&str>::new()
        );
        // The statement starts at its first word, so messages show the SQL, not the comment.
        let located = statements("-- why\n-- more\nDROP TABLE t;");
        assert_eq!(located[0].text, "DROP TABLE t");
        assert_eq!(located[0].line, 3);
    }

    #[test]
    fn an_unterminated_comment_is_sent_not_dropped() {
        // Found by the review: the SQL after `/* … /* nested */` vanished.
        let got =
            texts("CREATE TABLE a (x int);\n/* see 123 /* nested */\nREVOKE ALL ON a FROM PUBLIC;");
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got[1].contains("REVOKE"), "{got:#?}");
        let got = texts("SELECT 1; /*/ CREATE TABLE b (x int); /*/ CREATE TABLE c (x int);");
        assert_eq!(got.len(), 2, "{got:#?}");
        // A closed one is still left out, and quotes hide a `/*`.
        assert_eq!(texts("SELECT 1; /* a /* b */ c */"), ["SELECT 1"]);
        assert_eq!(texts("SELECT '/*';"), ["SELECT '/*'"]);
    }

    #[test]
    fn a_begin_with_modes_is_not_unwrapped() {
        let unwrapped = |script| unwrap_transaction(&statements(script)).len();
        assert_eq!(
            unwrapped("BEGIN TRANSACTION READ ONLY; SELECT 1; COMMIT WORK;"),
            3
        );
        assert_eq!(
            unwrapped("BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT 1; COMMIT;"),
            3
        );
        assert_eq!(unwrapped("BEGIN WORK /* plain */; SELECT 1; COMMIT;"), 1);
    }

    #[test]
    fn a_semicolon_inside_parentheses_ends_nothing() {
        let got = texts(
            "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO l VALUES (NEW.v); \
             INSERT INTO l VALUES (NEW.v * 10)); SELECT ')' ; SELECT 2",
        );
        assert_eq!(got.len(), 3, "{got:#?}");
        assert!(got[0].ends_with("(NEW.v * 10))"), "{}", got[0]);
        assert_eq!(got[1], "SELECT ')'");
    }
}
