//! Version 8: an adversarial migration. Which attack it makes is read from the one row of the
//! `attack` table, so one component covers the whole adversarial suite. Every attack propagates
//! the host's refusal as its error; `none` behaves.

use std::hint::black_box;

use hsm_guest::{Db, Error, Result};

fn up(db: &Db) -> Result<()> {
    let attack: String = db.query_row("SELECT name FROM attack", (), |row| row.get(0))?;
    match attack.as_str() {
        "none" => {
            // Allowed: read-only PRAGMAs, reading the tracking tables, ordinary DDL.
            db.query("PRAGMA table_info(users)", ())?;
            db.query("SELECT count(*) FROM migrations", ())?;
            db.execute_batch("CREATE TABLE survivor (id INTEGER PRIMARY KEY)")
        }
        "infinite_loop" => loop {
            black_box(0);
        },
        "recursive_cte" => db
            .query(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)
                 SELECT count(*) FROM c",
                (),
            )
            .map(drop),
        "memory_bomb" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1; 16 << 20]);
                black_box(&hoard);
            }
        }
        "stack_overflow" => {
            fn deeper(n: u64) -> u64 {
                // Never true, but the compiler cannot know: the recursion is unbounded.
                if black_box(n) == u64::MAX {
                    return n;
                }
                black_box(deeper(n + 1)) + 1
            }
            Err(Error::msg(format!("{}", deeper(0))))
        }
        "attach" => db.execute_batch("ATTACH DATABASE '/tmp/hsm-attack-attach.db' AS evil"),
        "vacuum_into" => db.execute_batch("VACUUM INTO '/tmp/hsm-attack-vacuum.db'"),
        "commit_then_write" => {
            db.execute_batch("COMMIT")?;
            db.execute_batch("CREATE TABLE escaped (x)")
        }
        "savepoint" => db.execute_batch("SAVEPOINT s; CREATE TABLE inner_t (x); RELEASE s"),
        "update_migrations" => db
            .execute("UPDATE migrations SET status = 'rolled_back'", ())
            .map(drop),
        "drop_history" => db.execute_batch("DROP TABLE migration_history"),
        "trigger_on_tracking" => db.execute_batch(
            "CREATE TRIGGER sneaky AFTER INSERT ON migration_history BEGIN DELETE FROM migrations; END",
        ),
        "writable_schema" => db.execute_batch("PRAGMA writable_schema = ON"),
        "foreign_keys_on" => db.execute_batch("PRAGMA foreign_keys = ON"),
        "load_extension" => db.query("SELECT load_extension('/tmp/evil.so')", ()).map(drop),
        "read_passwd" => match std::fs::read_to_string("/etc/passwd") {
            Ok(text) => Err(Error::msg(format!("LEAK: read {} bytes of /etc/passwd", text.len()))),
            Err(e) => Err(Error::msg(format!("blocked: /etc/passwd: {e}"))),
        },
        "read_env" => {
            let vars: Vec<(String, String)> = std::env::vars().collect();
            if vars.is_empty() {
                Err(Error::msg("blocked: no environment variables"))
            } else {
                Err(Error::msg(format!("LEAK: {} environment variables", vars.len())))
            }
        }
        "huge_result" => db
            .query(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 10000000)
                 SELECT x FROM c",
                (),
            )
            .map(drop),
        "huge_sql" => {
            let sql = format!("SELECT '{}'", "x".repeat(8 << 20));
            db.query(&sql, ()).map(drop)
        }
        "multi_gb_text" => {
            // As much as a 32-bit guest can ask for in one piece.
            let mut text = String::new();
            text.try_reserve(1536 << 20)
                .map_err(|e| Error::msg(format!("allocation refused: {e}")))?;
            text.push_str("SELECT 1");
            db.query(black_box(&text), ()).map(drop)
        }
        "panic" => panic!("attack: deliberate panic"),
        "error" => Err(Error::msg("attack: deliberate error")),
        "flood_output" => {
            let line = "x".repeat(1023);
            for _ in 0..4096 {
                println!("{line}");
            }
            Err(Error::msg("LEAK: printed 4 MiB"))
        }
        "print_escapes" => {
            println!("\x1b[2J\x1b[31mterminal takeover\x1b[0m");
            Err(Error::msg("printed escape sequences"))
        }
        "function_loop" => {
            db.register_function("spin", 1)?;
            db.query("SELECT spin(1)", ()).map(drop)
        }
        "function_in_trigger" => {
            // Functions are direct-only: a trigger (which would outlive the call) cannot use them.
            db.register_function("spin", 1)?;
            db.execute_batch(
                "CREATE TABLE t (x); CREATE TRIGGER tt AFTER INSERT ON t BEGIN SELECT spin(1); END;
                 INSERT INTO t VALUES (1);",
            )
        }
        "flat_misfit" => {
            // Raw 0.1.2 calls the SDK never makes: a batch that is not whole sets, and width 0.
            use hsm_guest::bindings::hsm::migration::sql::execute_many_flat;
            let values = [hsm_guest::Value::Text("x".into())];
            let misfit = execute_many_flat("INSERT INTO attack VALUES (?1, ?2)", 2, &values);
            let zero = execute_many_flat("INSERT INTO attack VALUES (?1)", 0, &values);
            match (misfit, zero) {
                (Err(a), Err(b)) => Err(Error::msg(format!("{} / {}", a.message, b.message))),
                other => Err(Error::msg(format!("LEAK: misfit batches ran: {other:?}"))),
            }
        }
        "page_misfit" => {
            // Raw 0.1.3 calls the SDK never makes: spans outside the bytes sent (one that
            // would wrap a u32), TEXT that is not UTF-8, and cells that are not whole sets.
            use hsm_guest::bindings::hsm::migration::sql::{Cell, Span, execute_many_page};
            let sql = "INSERT INTO attack VALUES (?1)";
            let text = |offset, len| Cell::Text(Span { offset, len });
            let attempts = [
                execute_many_page(sql, 1, &[text(2, 8)], b"abc"),
                execute_many_page(sql, 1, &[text(u32::MAX, 2)], b"abc"),
                execute_many_page(sql, 1, &[Cell::Null, text(0, 1)], b"\xff"),
                execute_many_page(sql, 2, &[Cell::Null], b""),
            ];
            let mut refusals = Vec::new();
            for attempt in attempts {
                match attempt {
                    Err(e) => refusals.push(e.message),
                    Ok(rows) => return Err(Error::msg(format!("LEAK: a bad page wrote {rows} rows"))),
                }
            }
            Err(Error::msg(refusals.join(" / ")))
        }
        other => Err(Error::msg(format!("unknown attack {other}"))),
    }
}

/// A SQL function that never returns.
fn spin(_args: &[hsm_guest::Value]) -> Result<hsm_guest::Value> {
    loop {
        black_box(0);
    }
}

hsm_guest::migration! {
    version: 8,
    name: "attack",
    description: "Test guest: one adversarial attack, chosen by the attack table",
    up: up,
    functions: [spin],
}
