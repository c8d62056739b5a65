//! Version 8: an adversarial migration. Which attack it makes is read from the one row of the
//! `attack` table, so one component covers the whole adversarial suite, in `up` and in `down`.
//! Every attack propagates the host's refusal as its error; `none` behaves.
//!
//! Attacks named `…_then_write` ignore the error their first statement gets and go on writing,
//! then report success: only the host can stop them.

use std::hint::black_box;
use std::time::Duration;

use hsm_guest::{Db, Error, Result, Value};

fn up(db: &Db) -> Result<()> {
    attack(db)
}

fn down(db: &Db) -> Result<()> {
    let attack_name: String = db.query_row("SELECT name FROM attack", (), |row| row.get(0))?;
    if attack_name == "none" {
        return db.execute_batch("DROP TABLE survivor");
    }
    attack(db)
}

/// Writes that must never reach the database once the host's transaction is gone.
fn write_after(db: &Db) -> Result<()> {
    let _ = db.execute_batch("CREATE TABLE escaped (x)");
    let _ = db.execute("UPDATE attack SET name = 'escaped'", ());
    Ok(())
}

fn attack(db: &Db) -> Result<()> {
    let attack: String = db.query_row("SELECT name FROM attack", (), |row| row.get(0))?;
    match attack.as_str() {
        "or_rollback_then_write" => {
            let _ = db.execute_batch(
                "CREATE TABLE once (id INTEGER PRIMARY KEY); INSERT INTO once VALUES (1);
                 INSERT OR ROLLBACK INTO once VALUES (1);",
            );
            write_after(db)
        }
        "conflict_rollback_then_write" => {
            let _ = db.execute_batch(
                "CREATE TABLE once (id INTEGER PRIMARY KEY ON CONFLICT ROLLBACK);
                 INSERT INTO once VALUES (1); INSERT INTO once VALUES (1);",
            );
            write_after(db)
        }
        "raise_rollback_then_write" => {
            let _ = db.execute_batch(
                "CREATE TABLE tripwire (x);
                 CREATE TRIGGER trip BEFORE INSERT ON tripwire BEGIN SELECT RAISE(ROLLBACK, 'gone'); END;
                 INSERT INTO tripwire VALUES (1);",
            );
            write_after(db)
        }
        "rollback_in_batch_then_write" => {
            // The rollback happens in the middle of a batch of parameter sets.
            db.execute_batch("CREATE TABLE once (id INTEGER PRIMARY KEY)")?;
            let _ = db.execute_many("INSERT OR ROLLBACK INTO once VALUES (?1)", [(1,), (2,), (2,), (3,)]);
            write_after(db)
        }
        "interrupt_then_write" => {
            // Interrupted at the deadline, SQLite rolls the transaction back.
            let _ = db.execute_batch(
                "CREATE TABLE big (x);
                 WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)
                 INSERT INTO big SELECT x FROM c;",
            );
            write_after(db)
        }
        "temp_migrations" => db.execute_batch(
            "CREATE TEMP TABLE migrations (version INTEGER PRIMARY KEY, name TEXT, description TEXT,
               applied_at TEXT, rolled_back_at TEXT, backup_path TEXT, status TEXT,
               error_message TEXT, checksum TEXT)",
        ),
        "temp_view_history" => {
            db.execute_batch("CREATE TEMP VIEW migration_history AS SELECT 1 AS id")
        }
        "temp_components" => db.execute_batch("CREATE TABLE temp.hsm_components (x)"),
        "temp_leftovers" => {
            // Succeeds: temp objects, a function and an open cursor the next migration must not
            // inherit.
            db.register_function("spin", 1)?;
            db.execute_batch(
                "CREATE TEMP TABLE users (id INTEGER PRIMARY KEY, email TEXT);
                 CREATE TEMP VIEW leftover_view AS SELECT 1;
                 CREATE TEMP TRIGGER spy AFTER INSERT ON main.attack
                 BEGIN INSERT INTO users (email) VALUES ('spied'); END;
                 CREATE TABLE survivor (id INTEGER PRIMARY KEY);",
            )?;
            let stream = db.query_stream("SELECT x FROM (SELECT 1 AS x UNION ALL SELECT 2)", ())?;
            std::mem::forget(stream);
            Ok(())
        }
        "trap_trigger_writes_host" => db.execute_batch(
            "CREATE TRIGGER wipe_history AFTER INSERT ON users
             BEGIN DELETE FROM migration_history; END",
        ),
        "trap_trigger_calls_function" => {
            db.register_function("spin", 1)?;
            db.execute_batch(
                "CREATE TABLE hooked (x);
                 CREATE TRIGGER hook AFTER INSERT ON hooked BEGIN SELECT spin(new.x); END",
            )
        }
        "trap_view_calls_function" => {
            db.register_function("spin", 1)?;
            db.execute_batch("CREATE VIEW spinning AS SELECT spin(1) AS x")
        }
        "trap_check_calls_function" => {
            db.register_function("spin", 1)?;
            db.execute_batch("CREATE TABLE checked (x CHECK (spin(x)))")
        }
        "trap_sequence" => db.execute_batch(
            "UPDATE sqlite_sequence SET seq = 9223372036854775807 WHERE name = 'migration_history'",
        ),
        "own_sequence" => {
            // Allowed: an application's own AUTOINCREMENT counter.
            db.execute_batch(
                "CREATE TABLE survivor (id INTEGER PRIMARY KEY AUTOINCREMENT);
                 INSERT INTO survivor DEFAULT VALUES;
                 UPDATE sqlite_sequence SET seq = 100 WHERE name = 'survivor';",
            )
        }
        "huge_value" => db
            .query("SELECT length(hex(zeroblob(1000000000)))", ())
            .map(drop),
        "huge_printf" => {
            // SQLite's printf gives NULL rather than a string over the length limit.
            let length: Option<i64> =
                db.query_row("SELECT length(printf('%.*c', 1000000000, 'x'))", (), |row| {
                    row.get(0)
                })?;
            match length {
                None => Err(Error::msg("bounded: printf built nothing")),
                Some(n) => Err(Error::msg(format!("LEAK: printf built {n} bytes"))),
            }
        }
        "many_statements" => {
            let mut kept = Vec::new();
            let padding = " ".repeat(1 << 20);
            for i in 0..1000 {
                kept.push(db.prepare(&format!("SELECT {i}{padding}"))?);
            }
            Err(Error::msg(format!("LEAK: {} statements held", kept.len())))
        }
        "many_cursors" => {
            let mut kept = Vec::new();
            let columns: Vec<String> = (0..1000).map(|i| format!("{i} AS c{i}")).collect();
            let sql = format!("SELECT {}", columns.join(", "));
            for _ in 0..1000 {
                kept.push(db.query_stream(&sql, ())?);
            }
            Err(Error::msg(format!("LEAK: {} cursors open", kept.len())))
        }
        "sleep" => {
            std::thread::sleep(Duration::from_secs(60));
            Err(Error::msg("LEAK: slept a minute"))
        }
        "function_sleeps" => {
            db.register_function("nap", 1)?;
            db.query("SELECT nap(1)", ()).map(drop)
        }
        "function_memory" => {
            db.register_function("hog", 1)?;
            // Whatever the host says, report something vague: the host must name the limit.
            db.query("SELECT hog(1)", ())
                .map(drop)
                .map_err(|_| Error::msg("something went wrong"))
        }
        "rebuild_script" => {
            // Succeeds: a table rebuild as real migration files write it (SQLite's own
            // recipe), wrapper, PRAGMAs and all.
            db.execute_batch(
                "CREATE TABLE parent (id INTEGER PRIMARY KEY);
                 CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent (id));
                 INSERT INTO parent VALUES (1); INSERT INTO child VALUES (10, 1);",
            )?;
            db.execute_batch(
                "PRAGMA foreign_keys=off;
                 BEGIN TRANSACTION;
                 CREATE TABLE parent_new (id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '');
                 INSERT INTO parent_new (id) SELECT id FROM parent;
                 DROP TABLE parent;
                 ALTER TABLE parent_new RENAME TO parent;
                 CREATE TRIGGER parent_named AFTER INSERT ON parent BEGIN
                   UPDATE parent SET name = 'p' || new.id WHERE id = new.id;
                 END;
                 PRAGMA foreign_key_check;
                 COMMIT;
                 PRAGMA foreign_keys=on;",
            )?;
            db.execute_batch("PRAGMA legacy_alter_table = ON; CREATE TABLE survivor (id INTEGER PRIMARY KEY)")
        }
        "batch_error_line" => db.execute_batch(
            "CREATE TABLE a1 (x);\n\nINSERT INTO a1 VALUES (1);\n  INSERT INTO nowhere VALUES (2);\nCREATE TABLE a2 (y);",
        ),
        "begin_in_the_middle" => {
            db.execute_batch("CREATE TABLE a1 (x); BEGIN; CREATE TABLE a2 (y); COMMIT;")
        }
        "split_memory" => {
            // 40 MiB here and 40 MiB in the function instance: within --max-memory each, over
            // it together.
            let held = vec![1u8; 40 << 20];
            black_box(&held);
            db.register_function("hog40", 1)?;
            db.query("SELECT hog40(1)", ()).map(drop)?;
            Err(Error::msg(format!("LEAK: {} MiB held twice", held.len() >> 20)))
        }
        "view_chain" => {
            // Each view reads the one before: cheap to make, costly for anything that resolves
            // them all.
            db.execute_batch("CREATE VIEW chain0 AS SELECT 1 AS x")?;
            for i in 1..100_000 {
                db.execute_batch(&format!(
                    "CREATE VIEW chain{i} AS SELECT x FROM chain{} UNION ALL SELECT x FROM chain{}",
                    i - 1,
                    i - 1
                ))?;
            }
            Ok(())
        }
        "huge_log_and_error" => {
            let noise = format!("\x1b[2J{}", "x".repeat(8 << 20));
            for _ in 0..4 {
                hsm_guest::log::info(&noise);
            }
            for i in 0..10_000 {
                hsm_guest::log::warn(&format!("line {i}\n2099-01-01T00:00:00Z  INFO forged: all good"));
            }
            Err(Error::msg(format!("\x1b[31mred\r\nforged line{}", "y".repeat(10 << 20))))
        }
        "modules" => {
            // Succeeds: SQLite's own modules run their own SQL, which the policy must allow.
            db.execute_batch(
                "CREATE VIRTUAL TABLE docs5 USING fts5(body);
                 INSERT INTO docs5 VALUES ('hello world'), ('goodbye');
                 CREATE VIRTUAL TABLE docs4 USING fts4(body);
                 INSERT INTO docs4 VALUES ('hello world');
                 CREATE VIRTUAL TABLE boxes USING rtree(id, x0, x1);
                 INSERT INTO boxes VALUES (1, 0, 10);
                 CREATE TABLE survivor (id INTEGER PRIMARY KEY);",
            )?;
            let checks = [
                "SELECT count(*) FROM docs5 WHERE docs5 MATCH 'hello'",
                "SELECT count(*) FROM docs4 WHERE docs4 MATCH 'hello'",
                "SELECT count(*) FROM boxes WHERE x0 <= 5 AND x1 >= 5",
                "SELECT count(*) FROM json_each('[1]')",
                "SELECT count(*) FROM dbstat WHERE name = 'docs5_data' AND 1 > 0",
            ];
            for sql in checks {
                let n: i64 = db.query_row(sql, (), |row| row.get(0))?;
                if n < 1 {
                    return Err(Error::msg(format!("{sql} found nothing")));
                }
            }
            db.execute_batch("INSERT INTO docs5 (docs5) VALUES ('optimize')")
        }
        "script" => {
            // The shared list of attack classes (tests/integration/attack_classes.rs) runs its
            // SQL through every entry point: here, from the `attack_script` table.
            let script: String =
                db.query_row("SELECT sql FROM attack_script", (), |row| row.get(0))?;
            db.execute_batch(&script)
        }
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
        "foreign_keys_on" => {
            // Accepted as a no-op: foreign keys stay off until the host checks them.
            db.execute_batch("PRAGMA foreign_keys = ON")?;
            db.execute("PRAGMA main.foreign_keys = 1", ())?;
            let on: i64 = db.query_row("PRAGMA foreign_keys", (), |row| row.get(0))?;
            Err(Error::msg(format!("foreign_keys reads {on}")))
        }
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
        "page_misfit" => {
            // Raw calls the SDK never makes: spans outside the bytes sent (one that would wrap
            // a u32), TEXT that is not UTF-8, cells that are not whole sets, and width 0.
            use hsm_guest::bindings::hsm::migration::sql::{Cell, ParamSets, Span, execute_many};
            let sql = "INSERT INTO attack VALUES (?1)";
            let text = |offset, len| Cell::Text(Span { offset, len });
            let sets = |width, cells: &[Cell], bytes: &[u8]| ParamSets {
                width,
                cells: cells.to_vec(),
                bytes: bytes.to_vec(),
            };
            let attempts = [
                execute_many(sql, &sets(1, &[text(2, 8)], b"abc")),
                execute_many(sql, &sets(1, &[text(u32::MAX, 2)], b"abc")),
                execute_many(sql, &sets(1, &[Cell::Null, text(0, 1)], b"\xff")),
                execute_many(sql, &sets(2, &[Cell::Null], b"")),
                execute_many(sql, &sets(0, &[Cell::Null], b"")),
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
fn spin(_args: &[Value]) -> Result<Value> {
    loop {
        black_box(0);
    }
}

/// A SQL function that sleeps for a minute.
fn nap(_args: &[Value]) -> Result<Value> {
    std::thread::sleep(Duration::from_secs(60));
    Ok(Value::Integer(1))
}

/// A SQL function that allocates until it is stopped.
fn hog(_args: &[Value]) -> Result<Value> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1; 8 << 20]);
        black_box(&hoard);
    }
}

/// A SQL function that allocates 40 MiB once.
fn hog40(_args: &[Value]) -> Result<Value> {
    let block = vec![1u8; 40 << 20];
    Ok(Value::Integer(black_box(block).len() as i64))
}

hsm_guest::migration! {
    version: 8,
    name: "attack",
    description: "Test guest: one adversarial attack, chosen by the attack table",
    up: up,
    down: down,
    functions: [spin, nap, hog, hog40],
}
