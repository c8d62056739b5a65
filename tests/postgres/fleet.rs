//! `hsm-host fleet` over PostgreSQL databases: the set loaded once, each database run as a
//! single `up` would run it, URLs shown without their passwords.

use crate::support::{PgEnv, server_var};

#[test]
fn a_fleet_of_three_servers_one_poisoned_reports_each_without_passwords() {
    let envs: Vec<PgEnv> = (0..3).map(|_| PgEnv::new()).collect();
    let first = &envs[0];
    first.write(
        "1_users.up.sql",
        "CREATE TABLE users (id bigint PRIMARY KEY);",
    );
    first.write("1_users.down.sql", "DROP TABLE users;");
    first.write(
        "2_tags.up.sql",
        "CREATE TABLE tags (id bigint PRIMARY KEY);",
    );
    first.write("2_tags.down.sql", "DROP TABLE tags;");
    // The third already has a `tags` table of its own: its migration 2 fails.
    envs[2]
        .client()
        .batch_execute(&format!(
            "CREATE TABLE tags (legacy text); ALTER TABLE tags OWNER TO {}",
            envs[2].app_role
        ))
        .unwrap();
    let file = first.dir.path().join("servers.txt");
    let urls: Vec<String> = envs.iter().map(PgEnv::url).collect();
    std::fs::write(&file, format!("# the servers\n{}\n", urls.join("\n"))).unwrap();
    let file = file.to_str().unwrap();

    let run = crate::support::Run(
        first
            .hsm_command(&[
                "fleet",
                "up",
                "--targets",
                file,
                "--parallel",
                "2",
                "--on-error",
                "continue",
                "--json",
            ])
            .output()
            .unwrap(),
    )
    .fails_with(1);
    let stdout = run.stdout();
    let password = server_var("PGPASSWORD");
    assert!(
        !stdout.contains(&password),
        "a password was shown: {stdout}"
    );
    assert!(!run.stderr().contains(&password), "a password was shown");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.last().unwrap()["summary"],
        serde_json::json!({"targets": 3, "succeeded": 2, "failed": 1, "not_started": 0})
    );
    let failed: Vec<_> = lines.iter().filter(|l| l["status"] == "failed").collect();
    assert!(
        failed[0]["target"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/{}", envs[2].database)),
        "{stdout}"
    );
    assert_eq!(envs[0].applied(), [1, 2]);
    assert_eq!(envs[1].applied(), [1, 2]);
    assert_eq!(envs[2].applied(), [1]);

    let status = crate::support::Run(
        first
            .hsm_command(&["fleet", "status", "--targets", file])
            .output()
            .unwrap(),
    )
    .success();
    assert!(
        status.stdout().contains("2 at version 2, 1 at version 1"),
        "{}",
        status.stdout()
    );
    assert!(!status.stdout().contains(&password));
}
