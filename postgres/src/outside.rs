//! Migrations that run outside a transaction: `CREATE INDEX CONCURRENTLY` and `DROP INDEX
//! CONCURRENTLY`, which PostgreSQL refuses inside one. A migration asks for it with its tool's
//! no-transaction marker and holds exactly one such statement, in a plain form hsm-host reads
//! whole: a `CREATE` on plain columns, with no expression and no WHERE, whose build runs no
//! function or operator a migration could have planted. It runs on a migrator session of its
//! own, as the application's role; its tracking rows are written on the host's session once it
//! succeeded, after the guarded state was found unchanged. A `CREATE INDEX CONCURRENTLY` that
//! fails leaves an INVALID index behind: the next attempt reports it and drops it first.

use std::time::Instant;

use hsm_store::plan::Direction;

use crate::schema::ident;
use crate::server::Server;
use crate::split;
use crate::step::{Recorded, Watchdog};

/// A statement that runs outside a transaction, as hsm-host read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outside {
    /// The statement, without the comments before it.
    pub text: String,
    /// The index a `CREATE INDEX CONCURRENTLY` makes (as written: an identifier, quoted or
    /// not, perhaps schema-qualified), to find one an earlier attempt left INVALID.
    index: Option<String>,
}

/// Why a statement may not run outside a transaction.
const ONLY: &str = "asks to run outside a transaction, which hsm-host does only for one \
    `CREATE [UNIQUE] INDEX CONCURRENTLY name ON table (column, …)` on plain columns (no \
    expression, no WHERE: their functions and operators would run outside any transaction \
    and any check) or one `DROP INDEX CONCURRENTLY name`; build other indexes in a \
    transaction (without CONCURRENTLY), or remove the marker";

/// Whether `sql` is one concurrent index statement, which cannot run in a transaction at all:
/// golang-migrate and Flyway run such a file outside one without a marker (golang-migrate
/// sends a file as one string; Flyway looks for the statement), so hsm-host does the same for
/// every layout rather than fail it with `25001`.
pub fn is_concurrent_index(sql: &str) -> bool {
    let all = split::statements(sql);
    let [statement] = all.as_slice() else {
        return false;
    };
    let words = split::words(statement.text, 4);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    matches!(
        words.as_slice(),
        ["create", "index", "concurrently", ..]
            | ["create", "unique", "index", "concurrently"]
            | ["drop", "index", "concurrently", ..]
    )
}

/// The statement of a migration that runs outside a transaction, or why it may not.
pub fn outside_statement(sql: &str) -> Result<Outside, String> {
    let all = split::statements(sql);
    let [statement] = all.as_slice() else {
        return Err(format!(
            "asks to run outside a transaction, so it must hold exactly one CREATE INDEX \
             CONCURRENTLY or DROP INDEX CONCURRENTLY statement (it holds {}): what else it does \
             belongs in a migration of its own, which runs in a transaction",
            all.len()
        ));
    };
    let text = statement.text[split::first_word_offset(statement.text)..].trim();
    let tokens = tokens(text).ok_or_else(|| ONLY.to_owned())?;
    let index = read_form(&tokens).ok_or_else(|| ONLY.to_owned())?;
    Ok(Outside {
        text: text.to_owned(),
        index,
    })
}

/// A statement's tokens: words (lowercased), identifiers quoted `"…"` (kept as written), and
/// the punctuation `(`, `)`, `,`, `.`; `None` for anything else (a comment, a string, an
/// operator, a number).
fn tokens(text: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '(' | ')' | ',' | '.' => out.push(c.to_string()),
            '"' => {
                let mut end = None;
                while let Some((i, d)) = chars.next() {
                    if d == '"' {
                        if chars.peek().is_some_and(|(_, n)| *n == '"') {
                            chars.next();
                        } else {
                            end = Some(i);
                            break;
                        }
                    }
                }
                out.push(text[at..=end?].to_owned());
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut end = at + c.len_utf8();
                while let Some((i, d)) = chars.peek().copied() {
                    if d.is_ascii_alphanumeric() || d == '_' || d == '$' {
                        end = i + d.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(text[at..end].to_ascii_lowercase());
            }
            _ => return None,
        }
    }
    Some(out)
}

fn is_name(token: &str) -> bool {
    token.starts_with('"') || token.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
}

/// Reads `name` or `schema.name` at `at`; the index after it.
fn qualified(tokens: &[String], at: usize) -> Option<(String, usize)> {
    let first = tokens.get(at).filter(|t| is_name(t))?;
    if tokens.get(at + 1).map(String::as_str) == Some(".") {
        let second = tokens.get(at + 2).filter(|t| is_name(t))?;
        return Some((format!("{first}.{second}"), at + 3));
    }
    Some((first.clone(), at + 1))
}

/// The plain forms allowed; for a CREATE, the index's name.
fn read_form(t: &[String]) -> Option<Option<String>> {
    let word = |i: usize, w: &str| t.get(i).map(String::as_str) == Some(w);
    if word(0, "drop") {
        if !(word(1, "index") && word(2, "concurrently")) {
            return None;
        }
        let mut i = 3;
        if word(i, "if") && word(i + 1, "exists") {
            i += 2;
        }
        i = qualified(t, i)?.1;
        if word(i, "cascade") || word(i, "restrict") {
            i += 1;
        }
        return (i == t.len()).then_some(None);
    }
    if !word(0, "create") {
        return None;
    }
    let mut i = 1;
    if word(i, "unique") {
        i += 1;
    }
    if !(word(i, "index") && word(i + 1, "concurrently")) {
        return None;
    }
    i += 2;
    if word(i, "if") && word(i + 1, "not") && word(i + 2, "exists") {
        i += 3;
    }
    // A name of its own is required: the retry finds an INVALID index by it.
    let (index, next) = qualified(t, i).filter(|(name, _)| name != "on")?;
    i = next;
    if !word(i, "on") {
        return None;
    }
    i += 1;
    if word(i, "only") {
        i += 1;
    }
    i = qualified(t, i)?.1;
    if word(i, "using") && t.get(i + 1).is_some_and(|m| is_name(m)) {
        i += 2;
    }
    i = column_list(t, i)?;
    if word(i, "include") {
        i = column_list(t, i + 1)?;
    }
    if word(i, "nulls") && word(i + 1, "not") && word(i + 2, "distinct") {
        i += 3;
    } else if word(i, "nulls") && word(i + 1, "distinct") {
        i += 2;
    }
    if word(i, "tablespace") && t.get(i + 1).is_some_and(|n| is_name(n)) {
        i += 2;
    }
    (i == t.len()).then_some(Some(index))
}

/// `( column [COLLATE name] [opclass] [ASC|DESC] [NULLS FIRST|LAST], … )` at `at`; the index
/// after it.
fn column_list(t: &[String], at: usize) -> Option<usize> {
    let word = |i: usize, w: &str| t.get(i).map(String::as_str) == Some(w);
    if !word(at, "(") {
        return None;
    }
    let mut i = at + 1;
    loop {
        if !t.get(i).is_some_and(|c| is_name(c)) {
            return None;
        }
        i += 1;
        if word(i, "collate") {
            i = qualified(t, i + 1)?.1;
        }
        let keyword = ["asc", "desc", "nulls", "collate"];
        if t.get(i)
            .is_some_and(|c| is_name(c) && !keyword.contains(&c.as_str()))
        {
            i = qualified(t, i)?.1;
        }
        if word(i, "asc") || word(i, "desc") {
            i += 1;
        }
        if word(i, "nulls") && (word(i + 1, "first") || word(i + 1, "last")) {
            i += 2;
        }
        match t.get(i).map(String::as_str) {
            Some(",") => i += 1,
            Some(")") => return Some(i + 1),
            _ => return None,
        }
    }
}

impl Server {
    /// Runs `statement` (see [`outside_statement`]) for migration `version` outside a
    /// transaction, then records it. Errors are the operator's message.
    pub fn run_outside_transaction(
        &mut self,
        version: u64,
        direction: Direction,
        statement: &Outside,
        deadline: Instant,
        recorded: &Recorded<'_>,
    ) -> Result<(), String> {
        let describe = |e: crate::Error| e.to_string();
        let before = self.guarded_state().map_err(describe)?;
        let history_id = self.record_running(version, direction).map_err(describe)?;
        let outcome = self.run_outside(statement, deadline).and_then(|()| {
            // It had no transaction to roll back: a change found now stays, and is said.
            let after = self.guarded_state().map_err(describe)?;
            if after != before {
                return Err(
                    "it ran outside a transaction and changed what would reach the \
                     migrations and runs after it (session defaults, the migrator's login, \
                     the database's connection settings, deferrable triggers); the change \
                     stays: the operator must undo it"
                        .into(),
                );
            }
            self.record_outside(version, direction, history_id, recorded)
                .map_err(describe)
        });
        if let Err(message) = &outcome {
            self.record_failed(history_id, message);
        }
        outcome
    }

    fn run_outside(&mut self, statement: &Outside, deadline: Instant) -> Result<(), String> {
        let describe = |e: postgres::Error| crate::errors::to_sql_error(&e).message;
        let options = self.session_options(deadline);
        let mut client = self
            .target
            .connect_as(&self.names.migrator, &self.migrator_password, &options)
            .map_err(|e| e.to_string())?;
        client
            .batch_execute(&format!("SET ROLE {}", ident(&self.app_role)))
            .map_err(describe)?;
        if let Some(index) = &statement.index {
            // Found by what the name means (to_regclass reads it as SQL does), dropped by its
            // OID's own quoted name: never by the text as written.
            let invalid: Option<String> = client
                .query_opt(
                    "SELECT pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.'
                            OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname)
                       FROM pg_catalog.pg_index i
                       JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid
                       JOIN pg_catalog.pg_namespace n
                         ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
                      WHERE i.indexrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1)
                        AND NOT i.indisvalid",
                    &[index],
                )
                .map_err(describe)?
                .map(|row| row.get(0));
            if let Some(invalid) = invalid {
                tracing::warn!(
                    "the index {invalid} an earlier attempt left INVALID is dropped before it \
                     is made again"
                );
                client
                    .batch_execute(&format!("DROP INDEX CONCURRENTLY {invalid}"))
                    .map_err(describe)?;
            }
        }
        let _watchdog = Watchdog::on(&mut client, deadline, &self.target).map_err(describe)?;
        client.execute(statement.text.as_str(), &[]).map_err(|e| {
            let mut message = describe(e);
            if statement.index.is_some() {
                message.push_str(
                    "; the index may be left INVALID: hsm-host drops it when the migration \
                     runs again",
                );
            }
            message
        })?;
        client
            .batch_execute(&format!(
                "RESET ROLE; REASSIGN OWNED BY {} TO {}",
                ident(&self.names.migrator),
                ident(&self.app_role)
            ))
            .map_err(describe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_concurrent_index_statements_run_outside_a_transaction() {
        for ok in [
            "-- no-transaction\nCREATE INDEX CONCURRENTLY a ON t (x);",
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS \"A b\" ON ONLY s.t USING btree \
             (x DESC NULLS LAST, \"Y\" text_pattern_ops) INCLUDE (z) NULLS NOT DISTINCT \
             TABLESPACE fast",
            "DROP INDEX CONCURRENTLY IF EXISTS s.a CASCADE",
        ] {
            assert!(outside_statement(ok).is_ok(), "{ok}");
        }
        for refused in [
            "CREATE TABLE a (x int); CREATE INDEX CONCURRENTLY a ON t (x)",
            "CREATE TABLE a (x int)",
            "COMMIT",
            "CREATE INDEX CONCURRENTLY ON t (x)",
            "CREATE INDEX CONCURRENTLY a ON t ((lower(x)))",
            "CREATE INDEX CONCURRENTLY a ON t (x) WHERE x > 0",
            "CREATE /* index concurrently */ TABLE y (x int)",
            "CREATE TABLE index AS SELECT 1 concurrently",
            "CREATE INDEX /* concurrently x; create table injected (y int) */ CONCURRENTLY i \
             ON t (x)",
            "REINDEX INDEX CONCURRENTLY a",
        ] {
            assert!(outside_statement(refused).is_err(), "{refused}");
        }
        assert_eq!(
            outside_statement("CREATE INDEX CONCURRENTLY \"keep_me/**/\" ON d (x)")
                .unwrap()
                .index
                .as_deref(),
            Some("\"keep_me/**/\"")
        );
    }
}
