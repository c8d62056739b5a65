//! The example migrations' PostgreSQL versions (`migrations-postgres/`), as docs/postgresql.md
//! runs them: applied onto an application's data, rolled back as far as they go.

use crate::support::PgEnv;

#[test]
fn the_postgresql_examples_apply_convert_the_legacy_rows_and_roll_back_to_the_irreversible_one() {
    let env = PgEnv::new();
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations-postgres");
    // The Rust examples whose SQL is the same on both databases (they declare
    // `dialects: ["sqlite", "postgresql"]`) run as they are; the others as SQL files.
    let rust = [
        hsm_test_artifacts::V002_ADD_EMAIL_COLUMN,
        hsm_test_artifacts::V005_ADD_USER_ROLE,
        hsm_test_artifacts::V006_ADD_PERFORMANCE_INDEXES,
    ];
    for component in rust {
        env.add(component);
    }
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap();
        let replaced = ["002_", "005_", "006_"].iter().any(|v| name.starts_with(v));
        if path.extension().is_some_and(|e| e == "sql") && !replaced {
            std::fs::copy(&path, env.migrations.join(name)).unwrap();
        }
    }
    // The application's old table, which 007 converts (owned by the application's role).
    env.client()
        .batch_execute(&format!(
            "SET ROLE {app}; CREATE TABLE legacy_table (id bigint PRIMARY KEY, data text);
             INSERT INTO legacy_table VALUES (1, ' b = 2 ; a=1'), (2, NULL);",
            app = env.app_role
        ))
        .unwrap();
    env.hsm(&["up", "2"]).success();
    env.client()
        .execute(
            "INSERT INTO users (name, email) VALUES ('Zoë  ångström', 'Zoe@Example.COM')",
            &[],
        )
        .unwrap();
    let up = env.hsm(&["up"]).success();
    assert!(up.stdout().contains("Version 2 -> 9."), "{}", up.stdout());
    let mut client = env.client();
    let user = client
        .query_one(
            "SELECT email, display_name, name_key, email_domain, free_mail FROM users",
            &[],
        )
        .unwrap();
    let (email, display, key, domain, free): (String, String, String, String, i32) = (
        user.get(0),
        user.get(1),
        user.get(2),
        user.get(3),
        user.get(4),
    );
    assert_eq!(
        (
            email.as_str(),
            display.as_str(),
            key.as_str(),
            domain.as_str(),
            free
        ),
        (
            "zoe@example.com",
            "Zoë Ångström",
            "zoe angstrom",
            "example.com",
            0
        )
    );
    let converted: Vec<(i64, String)> = client
        .query(
            "SELECT id, transformed_data FROM new_table ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(converted, [(1, "a=1;b=2".to_owned()), (2, String::new())]);
    assert!(!env.has_table("legacy_table"));
    env.hsm(&["down", "7"]).success();
    assert_eq!(env.applied(), vec![1, 2, 3, 4, 5, 6, 7]);
    // 007 is irreversible: down stops there and says so.
    let down = env.hsm(&["down", "3"]).fails_with(1);
    assert!(down.stderr().contains("irreversible"), "{}", down.stderr());
    assert!(down.stderr().contains("pg_restore"), "{}", down.stderr());
    assert_eq!(env.applied(), vec![1, 2, 3, 4, 5, 6, 7]);
}
