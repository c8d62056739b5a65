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
            b';' if atomic_depth == 0 => {
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
    let text = &script[start..end];
    if first_word(text).is_empty() {
        return;
    }
    // The line of its first word: a comment before it is not where it starts.
    let line = 1 + script[..start + first_word_offset(text)]
        .matches('\n')
        .count();
    out.push(Statement {
        text: text.trim(),
        line,
    });
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

/// Why hsm-host refuses to send `statement` to the server, if it does: statements that end,
/// open or split the host's transaction, and `COPY` (its data would come from the client, or
/// from the server's files).
pub fn refusal(statement: &str) -> Option<String> {
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
             transaction hsm-host opened, committed when it returns ok",
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

/// Whether the script is wrapped whole in `BEGIN; … COMMIT;` (or `START TRANSACTION` /
/// `END`), which then runs inside the host's transaction without the wrapper.
pub fn unwrap_transaction<'a, 'b>(statements: &'b [Statement<'a>]) -> &'b [Statement<'a>] {
    let opens = |s: &Statement<'_>| {
        let w = words(s.text, 3);
        (w.len() == 1 && (w[0] == "begin" || w[0] == "start"))
            || w.first().is_some_and(|f| f == "begin")
                && w.get(1).is_some_and(|s| s == "transaction" || s == "work")
            || w.first().is_some_and(|f| f == "start")
                && w.get(1).is_some_and(|s| s == "transaction")
    };
    let closes = |s: &Statement<'_>| {
        let w = words(s.text, 2);
        matches!(w.first().map(String::as_str), Some("commit" | "end"))
            && w.get(1).is_none_or(|s| s == "transaction" || s == "work")
    };
    match statements {
        [first, middle @ .., last] if opens(first) && closes(last) => middle,
        _ => statements,
    }
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
    fn a_whole_script_wrapper_is_dropped_and_nothing_else() {
        let all = statements("BEGIN; CREATE TABLE a (x int); COMMIT;");
        assert_eq!(unwrap_transaction(&all).len(), 1);
        let all = statements("CREATE TABLE a (x int); COMMIT;");
        assert_eq!(unwrap_transaction(&all).len(), 2);
    }
}
