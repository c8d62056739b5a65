//! `--require-signed` on a PostgreSQL server: a SQL set packed for it (`pack --dialects
//! sqlite,postgresql --sign KEY`) runs, its SQL split by the server's rules; the same set as
//! SQL files, or a component changed after signing, is refused with nothing run.

use crate::support::{PgEnv, Run};

#[test]
fn a_sql_set_packed_and_signed_for_the_server_runs_and_nothing_else_does() {
    let env = PgEnv::new();
    let dir = env.dir.path();
    let sql = dir.join("sql");
    std::fs::create_dir(&sql).unwrap();
    // A dollar-quoted `;`: split by PostgreSQL's rules, not SQLite's.
    std::fs::write(
        sql.join("1_notes.up.sql"),
        "CREATE TABLE notes (id bigint PRIMARY KEY, body text);\n\
         INSERT INTO notes VALUES (1, $$a;b$$);",
    )
    .unwrap();
    std::fs::write(sql.join("1_notes.down.sql"), "DROP TABLE notes;").unwrap();
    let local = |args: &[&str]| {
        Run(std::process::Command::new(env!("CARGO_BIN_EXE_hsm-host"))
            .current_dir(dir)
            .args(args)
            .output()
            .unwrap())
    };
    local(&["keygen", "alice"]).success();
    let public = std::fs::read_to_string(dir.join("alice.pub")).unwrap();
    std::fs::write(dir.join("trust"), format!("alice {public}")).unwrap();
    let trust = dir.join("trust");
    let trust = trust.to_str().unwrap();
    let packed = env.migrations.to_str().unwrap();
    // The SQL files themselves: refused, saying how to pack them for the server.
    let run = Run(std::process::Command::new(env!("CARGO_BIN_EXE_hsm-host"))
        .current_dir(dir)
        .args(["--database", &env.url(), "--migrations", "sql"])
        .args(["--require-signed", trust, "up"])
        .output()
        .unwrap())
    .fails_with(1);
    assert!(
        run.stderr().contains("--dialects sqlite,postgresql"),
        "{}",
        run.stderr()
    );
    assert!(!env.has_table("notes"));
    local(&[
        "pack",
        "sql",
        "-o",
        packed,
        "--dialects",
        "sqlite,postgresql",
        "--sign",
        "alice.key",
    ])
    .success();
    env.hsm(&["--require-signed", trust, "up"]).success();
    let body: String = env
        .client()
        .query_one("SELECT body FROM notes WHERE id = 1", &[])
        .unwrap()
        .get(0);
    assert_eq!(body, "a;b");
    // Changed after signing: refused before anything runs, the database as it was.
    env.hsm(&["--require-signed", trust, "down"]).success();
    let component = env.migrations.join("1_notes.wasm");
    let mut bytes = std::fs::read(&component).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&component, bytes).unwrap();
    let run = env.hsm(&["--require-signed", trust, "up"]).fails_with(1);
    assert!(
        run.stderr().contains("changed after it was signed"),
        "{}",
        run.stderr()
    );
    assert!(!env.has_table("notes"));
}
