//! The library API that CI code uses to test components against a scratch database.

use std::path::PathBuf;

use hsm_host::{Database, Direction, Error, Migrator, Runtime};

fn examples_and(extra: &[&str]) -> Migrator {
    let runtime = Runtime::new().unwrap();
    let components = hsm_test_artifacts::EXAMPLES
        .iter()
        .chain(extra)
        .map(|path| runtime.load_file(&PathBuf::from(path)).unwrap())
        .collect();
    Migrator::new(runtime, components).unwrap()
}

#[test]
fn components_report_their_metadata() {
    let migrator = examples_and(&[]);
    let versions: Vec<u64> = migrator.migrations().iter().map(|m| m.version()).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7]);
    let third = &migrator.migrations()[2].metadata;
    assert_eq!(third.name, "normalize_email_addresses");
    assert!(!third.reversible);
    assert!(migrator.migrations()[1].metadata.reversible);
    assert_eq!(
        migrator.component(3).unwrap().checksum(),
        migrator.migrations()[2].checksum
    );
    assert!(matches!(migrator.component(42), Err(Error::Plan(_))));
}

#[test]
fn sdk_tour_passes_every_check_on_a_scratch_database() {
    let migrator = examples_and(&[hsm_test_artifacts::GUEST_SDK_TOUR]);
    let db = Database::open_in_memory().unwrap();
    let report = migrator.up(&db, None).unwrap_or_else(|e| panic!("{e}"));
    let tour = report.steps.last().unwrap();
    assert_eq!((tour.version, tour.direction), (8, Direction::Up));
    assert_eq!(tour.schema.created, ["table tour"]);
    assert_eq!(
        tour.rows_changed,
        4 + 3 + 2 + 2 + 1 + 1 + 1 + 4 * 2 + 3 + 3,
        "inserts, prepared inserts, batch updates, a batch of value lists, the first set of a \
         refused batch, a fix-up, an insert through a guest function, three rows without \
         parameters inserted and deleted, two rows through each of \
         the four batch forms"
    );

    let rolled_back = migrator.down(&db, None).unwrap();
    assert_eq!(rolled_back.steps[0].schema.dropped, ["table tour"]);
    assert_eq!(migrator.status(Some(&db)).unwrap().current_version, 7);
}

#[test]
fn up_then_down_to_an_irreversible_step_on_a_file() {
    let migrator = examples_and(&[]);
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("nested/dir/scratch.db")).unwrap();
    assert_eq!(migrator.up(&db, Some(6)).unwrap().to, 6);
    assert_eq!(migrator.down(&db, Some(3)).unwrap().to, 3);
    match migrator.down(&db, Some(0)) {
        Err(Error::Plan(plan)) => assert!(plan.to_string().contains("irreversible")),
        other => panic!(
            "expected an irreversible refusal, got {:?}",
            other.map(|r| r.to)
        ),
    }
}

#[test]
fn status_reads_one_snapshot_and_respects_a_callers_transaction() {
    let migrator = examples_and(&[]);
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("status.db")).unwrap();
    migrator.up(&db, Some(3)).unwrap();
    let status = migrator.status(Some(&db)).unwrap();
    assert_eq!((status.current_version, status.pending.len()), (3, 4));
    assert!(
        db.connection().is_autocommit(),
        "status left its read transaction open"
    );

    // Inside the caller's transaction, status reads what that transaction sees.
    db.connection().execute_batch("BEGIN").unwrap();
    db.connection()
        .execute("DELETE FROM migrations WHERE version = 3", [])
        .unwrap();
    let status = migrator.status(Some(&db)).unwrap();
    assert_eq!((status.current_version, status.pending.len()), (2, 5));
    assert!(
        !db.connection().is_autocommit(),
        "status ended the caller's transaction"
    );
    db.connection().execute_batch("ROLLBACK").unwrap();
    assert_eq!(migrator.status(Some(&db)).unwrap().current_version, 3);
}

#[test]
fn failed_guest_error_names_version_direction_and_cause() {
    let migrator = examples_and(&[hsm_test_artifacts::GUEST_FAILS_UP]);
    let db = Database::open_in_memory().unwrap();
    let error = migrator.up(&db, None).unwrap_err();
    match &error {
        Error::MigrationFailed {
            version,
            direction,
            cause,
            completed,
            ..
        } => {
            assert_eq!((*version, *direction), (8, Direction::Up));
            assert_eq!(cause, "refusing on purpose after writing");
            // The seven examples before it applied in this run, and stay.
            assert_eq!(completed, &[1, 2, 3, 4, 5, 6, 7]);
            // Its own refusal, not SQLite's: no SQLite code.
            assert!(matches!(
                &error,
                Error::MigrationFailed {
                    sqlite_code: None,
                    ..
                }
            ));
            assert!(
                error
                    .to_string()
                    .contains("this run applied 1, 2, 3, 4, 5, 6, 7 before it, which stay"),
                "{error}"
            );
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(!error.is_usage());
    assert_eq!(migrator.status(Some(&db)).unwrap().current_version, 7);
}

#[test]
fn components_built_for_contract_0_1_0_still_run() {
    let migrator = examples_and(&[hsm_test_artifacts::GUEST_CONTRACT_V010]);
    let db = Database::open_in_memory().unwrap();
    migrator.up(&db, None).unwrap_or_else(|e| panic!("{e}"));
    let note: String = db
        .connection()
        .query_row("SELECT note FROM old_guest", [], |r| r.get(0))
        .unwrap();
    assert_eq!(note, "built for 0.1.0");
    migrator.down(&db, None).unwrap();
}

#[test]
fn components_built_for_contract_0_1_1_still_run_with_their_functions() {
    let migrator = examples_and(&[hsm_test_artifacts::GUEST_CONTRACT_V011]);
    let db = Database::open_in_memory().unwrap();
    migrator.up(&db, None).unwrap_or_else(|e| panic!("{e}"));
    let notes: Vec<String> = db
        .connection()
        .prepare("SELECT note FROM v011_guest ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(notes, ["NOTE 1", "NOTE 2"]);
    migrator.down(&db, None).unwrap();
}

#[test]
fn components_built_for_contract_0_1_3_get_every_form_through_the_adapter() {
    // The guest checks each 0.1 form itself and fails `up` with the first that differs.
    let migrator = examples_and(&[hsm_test_artifacts::GUEST_CONTRACT_V013]);
    let db = Database::open_in_memory().unwrap();
    migrator.up(&db, None).unwrap_or_else(|e| panic!("{e}"));
    let note: String = db
        .connection()
        .query_row("SELECT note FROM v013_guest", [], |r| r.get(0))
        .unwrap();
    // shout went through call-unary (position 1 of names), join2 through call by name.
    assert_eq!(note, "NOTE via 0.1.3");
    migrator.down(&db, None).unwrap();
    assert_eq!(migrator.status(Some(&db)).unwrap().current_version, 7);
}

/// The testing helper, used as a plugin author would in their own `cargo test`.
#[test]
fn the_testing_helper_seeds_applies_asserts_and_rolls_back() {
    use hsm_host::testing::Scratch;
    let scratch = Scratch::from_files(hsm_test_artifacts::EXAMPLES).unwrap();
    scratch.up_to(2).unwrap();
    scratch
        .seed("INSERT INTO users (name, email) VALUES ('Ada', 'ADA@Example.ORG')")
        .unwrap();
    scratch.up_to(3).unwrap();
    let email: String = scratch
        .query_one("SELECT email FROM users WHERE name = 'Ada'")
        .unwrap();
    assert_eq!(email, "ada@example.org");
    assert_eq!(scratch.version().unwrap(), 3);
    scratch.up().unwrap();
    assert!(scratch.columns("users").contains(&"role".to_owned()));
    scratch.down_to(7).unwrap();
    assert!(scratch.has_table("sessions"));
    // A fresh scratch database: every example's round trip.
    let report = Scratch::from_files(hsm_test_artifacts::EXAMPLES)
        .unwrap()
        .round_trips()
        .unwrap();
    assert!(report.passed());
    assert_eq!(report.cases.len(), 7);
    // Seed SQL that SQLite refuses is an error that says so.
    let error = scratch.seed("INSERT INTO nowhere VALUES (1)").unwrap_err();
    assert!(
        error.to_string().contains("no such table: nowhere"),
        "{error}"
    );
}

/// The library's front, as an operator's program uses it: every command on the files.
#[test]
fn a_project_runs_every_command_on_its_files() {
    use hsm_host::Project;
    let env = crate::support::Env::with_examples();
    let project = Project::new(&env.db, &env.migrations)
        .with_cache_dir(Some(crate::support::test_cache_home().join("hsm-host")));
    // Reading and rehearsing never create the database.
    let status = project.status().unwrap();
    assert_eq!((status.exists, status.pending.len()), (false, 7));
    assert_eq!(project.dry_run_up(None).unwrap().to, 7);
    assert!(!env.db.exists());
    let missing = project.backup().unwrap_err();
    assert!(matches!(missing, Error::NoDatabase { .. }) && missing.is_usage());
    assert!(
        missing.to_string().contains("nothing to back up"),
        "{missing}"
    );
    assert!(matches!(
        project.dry_run_down(None),
        Err(Error::NoDatabase { .. })
    ));

    assert_eq!(project.up(Some(5)).unwrap().to, 5);
    let at_five = project.backup().unwrap();
    assert_eq!(project.up(Some(6)).unwrap().to, 6);
    let rehearsal = project.dry_run_down(Some(5)).unwrap();
    assert_eq!((rehearsal.from, rehearsal.to), (6, 5));
    assert_eq!(project.status().unwrap().current_version, 6);
    assert_eq!(project.down(Some(5)).unwrap().to, 5);
    assert_eq!(project.up(None).unwrap().to, 7);
    // The run to 7 took its own backup before migrating; the one taken by hand holds 5.
    let backups = project.backups().unwrap();
    assert!(
        backups
            .iter()
            .any(|b| b.path == at_five && b.schema_version == Some(5))
    );
    let restored = project.restore(&at_five).unwrap();
    assert_eq!(restored.schema_version, 5);
    assert_eq!(project.status().unwrap().current_version, 5);
    assert!(project.test(None).unwrap().passed());
}
