//! Signed components through the real binary: `keygen`, `sign` (embedded and detached), and
//! `verify` against a trust file: a tampered byte, an appended section, a component signed in
//! parts and cut at its delimiter, an OpenSSH key, a threshold, a revoked signer, and a trust
//! file others may write.

use std::path::{Path, PathBuf};

use crate::support::{Env, Run};

/// The binary, run in the environment's directory, with these arguments only.
fn hsm(env: &Env, args: &[&str]) -> Run {
    Run::from(env.command().args(args).output().unwrap())
}

fn digest(path: &Path) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

/// Two signers' keys and an example component to sign, in a fresh environment.
fn signers() -> (Env, PathBuf) {
    let env = Env::empty();
    for name in ["alice", "bob"] {
        hsm(&env, &["keygen", name, "--dir", "keys"]).assert_code(2);
    }
    std::fs::create_dir(env.dir.path().join("keys")).unwrap();
    for name in ["alice", "bob"] {
        hsm(&env, &["keygen", name, "--dir", "keys"]).assert_success();
    }
    let component = env.add(hsm_test_artifacts::EXAMPLES[0]);
    (env, component)
}

/// A trust file naming `names` (their keys in `keys/`), then `extra` lines; each call writes
/// a file of its own.
fn trust(env: &Env, names: &[&str], extra: &str) -> String {
    let mut text = String::from("# who may sign\n");
    for name in names {
        let public = std::fs::read_to_string(env.dir.path().join(format!("keys/{name}.pub")));
        text.push_str(&format!("{name} {}", public.unwrap()));
    }
    text.push_str(extra);
    let path = env.dir.path().join(format!(
        "trust-{}",
        names.join("-") + &extra.len().to_string()
    ));
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn public_line(env: &Env, name: &str) -> String {
    std::fs::read_to_string(env.dir.path().join(format!("keys/{name}.pub"))).unwrap()
}

#[test]
fn a_signed_component_verifies_and_any_change_to_it_is_refused() {
    let (env, component) = signers();
    let file = component.to_str().unwrap();
    let trust = trust(&env, &["alice", "bob"], "");
    // Unsigned: refused, with what to do.
    hsm(&env, &["verify", file, "--trust", &trust])
        .assert_code(1)
        .assert_stdout_contains("sign it with `hsm-host sign");
    let before = digest(&component);
    hsm(&env, &["sign", file, "--key", "keys/alice.key"])
        .assert_success()
        .assert_stdout_contains("embedded: its sha256 changed");
    assert_ne!(digest(&component), before);
    let run = hsm(&env, &["verify", file, "--trust", &trust, "--json"]);
    run.assert_success();
    let verdict: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(verdict["trusted"], true, "{verdict}");
    assert_eq!(verdict["signers"][0]["name"], "alice", "{verdict}");
    // The signed component still runs.
    env.hsm(&["up"]).assert_success();

    let signed = std::fs::read(&component).unwrap();
    let check = |bytes: &[u8], expect: &str| {
        std::fs::write(&component, bytes).unwrap();
        hsm(&env, &["verify", file, "--trust", &trust])
            .assert_code(1)
            .assert_stdout_contains(expect);
    };
    // One byte of the code changed.
    let mut tampered = signed.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x01;
    check(&tampered, "changed after it was signed");
    // A custom section appended after signing.
    let mut appended = signed.clone();
    appended.extend_from_slice(&[0, 5, 4, b'e', b'v', b'i', b'l']);
    check(&appended, "changed after it was signed");
    // Cut short.
    check(&signed[..signed.len() - 10], "REFUSED");
    // Signed by a key the trust file does not know.
    std::fs::write(&component, &signed).unwrap();
    let only_bob = self::trust(&env, &["bob"], "");
    hsm(&env, &["verify", file, "--trust", &only_bob])
        .assert_code(1)
        .assert_stdout_contains("does not trust");
}

#[test]
fn a_detached_signature_keeps_the_components_bytes_and_thresholds_count_signers() {
    let (env, component) = signers();
    let file = component.to_str().unwrap();
    let before = digest(&component);
    hsm(
        &env,
        &["sign", file, "--key", "keys/alice.key", "--detached"],
    )
    .assert_success();
    assert_eq!(
        digest(&component),
        before,
        "a detached signature changed the component"
    );
    assert!(PathBuf::from(format!("{file}.sig")).is_file());
    let two = trust(&env, &["alice", "bob"], "min-signers 2\n");
    hsm(&env, &["verify", file, "--trust", &two])
        .assert_code(1)
        .assert_stdout_contains("signed by 1 trusted signer(s) (alice); the trust file asks for 2");
    hsm(&env, &["sign", file, "--key", "keys/bob.key", "--detached"]).assert_success();
    hsm(&env, &["verify", file, "--trust", &two])
        .assert_success()
        .assert_stdout_contains("alice (SHA256:")
        .assert_stdout_contains("bob (SHA256:");
    // The same key twice is refused (one signer is not two).
    hsm(&env, &["sign", file, "--key", "keys/bob.key", "--detached"])
        .assert_code(1)
        .assert_stdout_contains("signed it already");
    // Revoking bob refuses what he signed, even beside alice.
    let revoked = trust(
        &env,
        &["alice"],
        &format!("revoked {}", public_line(&env, "bob")),
    );
    hsm(&env, &["verify", file, "--trust", &revoked])
        .assert_code(1)
        .assert_stdout_contains("revoked key");
    // A tampered detached signature file.
    let sig = PathBuf::from(format!("{file}.sig"));
    let mut bytes = std::fs::read(&sig).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&sig, bytes).unwrap();
    hsm(&env, &["verify", file, "--trust", &two]).assert_code(1);
}

#[test]
fn an_openssh_key_signs_and_a_trust_file_others_may_write_is_refused() {
    let (env, component) = signers();
    let file = component.to_str().unwrap();
    // OpenSSH's own ed25519 key, without a passphrase (openssh-client is on every CI machine
    // that runs these tests: `.ci/run` checks for ssh-keygen).
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "carol@laptop", "-f"])
        .arg(env.dir.path().join("keys/id_ed25519"))
        .status()
        .expect("ssh-keygen (openssh-client) makes the OpenSSH key");
    assert!(made.success());
    hsm(&env, &["sign", file, "--key", "keys/id_ed25519"]).assert_success();
    let carol = std::fs::read_to_string(env.dir.path().join("keys/id_ed25519.pub")).unwrap();
    let path = env.dir.path().join("trust");
    std::fs::write(&path, format!("carol {carol}")).unwrap();
    let trust = path.to_str().unwrap();
    let run = hsm(&env, &["verify", file, "--trust", trust]);
    run.assert_success()
        .assert_stdout_contains("carol (SHA256:");
    // The fingerprint is the one ssh-keygen shows.
    let shown = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(env.dir.path().join("keys/id_ed25519.pub"))
        .output()
        .unwrap();
    let fingerprint = String::from_utf8(shown.stdout).unwrap();
    let fingerprint = fingerprint.split_whitespace().nth(1).unwrap().to_owned();
    run.assert_stdout_contains(&fingerprint);
    // A trust file others may write is no trust file: exit 2, saying how to fix it.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    hsm(&env, &["verify", file, "--trust", trust])
        .assert_code(2)
        .assert_stderr_contains("chmod go-w");
    // A secret key others may read is refused before signing.
    let key = env.dir.path().join("keys/alice.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    hsm(&env, &["sign", file, "--key", "keys/alice.key"])
        .assert_code(2)
        .assert_stderr_contains("chmod 600");
}

/// wasmsign2's whole-component verifier accepts a component signed in parts and cut short at
/// a `signature_delimiter`: the signed first part runs without the rest. hsm-host refuses any
/// component with a delimiter.
#[test]
fn a_component_signed_in_parts_and_cut_at_its_delimiter_is_refused() {
    let (env, component) = signers();
    let file = component.to_str().unwrap();
    let bytes = std::fs::read(&component).unwrap();
    let secret = wasmsign2::SecretKey::from_pem(
        &std::fs::read_to_string(env.dir.path().join("keys/alice.key")).unwrap(),
    )
    .unwrap();
    // The component, a delimiter, then a second part (a custom section).
    let mut module = wasmsign2::Module::deserialize(&mut std::io::Cursor::new(&bytes)).unwrap();
    let delimiter = |tag: u8| {
        wasmsign2::Section::Custom(wasmsign2::CustomSection::new(
            "signature_delimiter".into(),
            vec![tag; 16],
        ))
    };
    module.sections.push(delimiter(1));
    module
        .sections
        .push(wasmsign2::Section::Custom(wasmsign2::CustomSection::new(
            "second_part".into(),
            b"more".to_vec(),
        )));
    module.sections.push(delimiter(2));
    let (signed, _) = secret.sign_multi(module, None, false, false).unwrap();
    // Cut after the first delimiter: the signature header, the component, the delimiter.
    let mut cut = signed.clone();
    cut.sections.truncate(cut.sections.len() - 2);
    let mut cut_bytes = Vec::new();
    cut.serialize(&mut cut_bytes).unwrap();
    let public = wasmsign2::PublicKey {
        pk: secret.sk.public_key(),
        key_id: None,
    };
    assert!(
        public
            .verify(&mut std::io::Cursor::new(&cut_bytes), None)
            .is_ok(),
        "the attack needs wasmsign2's plain verifier to accept the cut component"
    );
    std::fs::write(&component, &cut_bytes).unwrap();
    let trust = trust(&env, &["alice"], "");
    hsm(&env, &["verify", file, "--trust", &trust])
        .assert_code(1)
        .assert_stdout_contains("signed in parts");
}

/// `--require-signed`: every component of the set verified before anything changes; what
/// applied records who signed it; `down` from a stored component checks it against today's
/// trust file.
#[test]
fn require_signed_runs_only_what_the_trust_file_accepts_and_changes_nothing_otherwise() {
    let (env, first) = signers();
    let second = env.add(hsm_test_artifacts::EXAMPLES[1]);
    let trust = trust(&env, &["alice", "bob"], "");
    let sign = |file: &Path, extra: &[&str]| {
        let mut args = vec!["sign", file.to_str().unwrap(), "--key", "keys/alice.key"];
        args.extend_from_slice(extra);
        hsm(&env, &args).assert_success();
    };
    sign(&first, &[]);
    // The second unsigned: nothing runs, and the database is not even made.
    env.hsm(&["up", "--require-signed", &trust])
        .assert_code(1)
        .assert_stderr_contains("v002_add_email_column.wasm is refused: it is not signed");
    assert!(!env.db.exists());
    sign(&second, &["--detached"]);
    env.hsm(&["up", "--require-signed", &trust])
        .assert_success();
    let signers: Vec<(String, Option<usize>)> = env
        .open()
        .prepare("SELECT signers, length(signature) FROM hsm_components ORDER BY signature IS NULL")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(signers.len(), 2, "{signers:?}");
    assert!(
        signers.iter().all(|(s, _)| s.starts_with("alice SHA256:")),
        "{signers:?}"
    );
    assert!(
        signers[0].1.is_some(),
        "the detached signature is kept: {signers:?}"
    );

    let database_bytes = || std::fs::read(&env.db).unwrap();
    let before = database_bytes();
    // A tampered component, a SQL migration, an unsigned one beside them: each refused, the
    // database as it was.
    let third = env.add(hsm_test_artifacts::EXAMPLES[2]);
    env.hsm(&["up", "--require-signed", &trust])
        .assert_code(1)
        .assert_stderr_contains("v003");
    sign(&third, &[]);
    let mut bytes = std::fs::read(&third).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&third, &bytes).unwrap();
    env.hsm(&["up", "--require-signed", &trust])
        .assert_code(1)
        .assert_stderr_contains("changed after it was signed");
    std::fs::remove_file(&third).unwrap();
    std::fs::write(
        env.migrations.join("003_notes.up.sql"),
        "CREATE TABLE notes (x);",
    )
    .unwrap();
    env.hsm(&["up", "--require-signed", &trust])
        .assert_code(1)
        .assert_stderr_contains("pack and sign the directory ahead");
    std::fs::remove_file(env.migrations.join("003_notes.up.sql")).unwrap();
    assert_eq!(
        database_bytes(),
        before,
        "a refused run changed the database"
    );

    // The second's file and signature gone: down runs its stored component, checked with the
    // signature kept, against today's trust file (from the environment, as cron would set it).
    std::fs::remove_file(&second).unwrap();
    std::fs::remove_file(PathBuf::from(format!("{}.sig", second.display()))).unwrap();
    let revoked = self::trust(
        &env,
        &["bob"],
        &format!("revoked {}", public_line(&env, "alice")),
    );
    // (alice is revoked: the first's file is refused before the stored one is looked at.)
    Run::from(
        env.hsm_command(&["down"])
            .env("HSM_REQUIRE_SIGNED", &revoked)
            .output()
            .unwrap(),
    )
    .assert_code(1)
    .assert_stderr_contains("revoked key");
    // With the first's file gone too, the stored component alone meets a trust file that
    // does not trust alice: refused (only the one the down would run is checked).
    std::fs::remove_file(&first).unwrap();
    let only_bob = self::trust(&env, &["bob"], "");
    env.hsm(&["down", "--require-signed", &only_bob])
        .assert_code(1)
        .assert_stderr_contains("the stored component of migration 2 is refused");
    assert_eq!(
        database_bytes(),
        before,
        "a refused down changed the database"
    );
    Run::from(
        env.hsm_command(&["down"])
            .env("HSM_REQUIRE_SIGNED", &trust)
            .output()
            .unwrap(),
    )
    .assert_success()
    .assert_stdout_contains("Version 2 -> 1.");
}

/// A fleet under `--require-signed` loads (and verifies) the set once: an unsigned component
/// stops it before any target is touched; a signed set runs on every target, each recording
/// who signed what it applied.
#[test]
fn a_fleet_under_require_signed_checks_the_set_before_any_target() {
    let (env, first) = signers();
    let trust = trust(&env, &["alice"], "");
    let targets = env.dir.path().join("targets.txt");
    std::fs::write(&targets, "sites/a.db\nsites/b.db\n").unwrap();
    std::fs::create_dir(env.dir.path().join("sites")).unwrap();
    let fleet = |expect: i32| {
        env.hsm(&[
            "fleet",
            "up",
            "--targets",
            targets.to_str().unwrap(),
            "--require-signed",
            &trust,
        ])
        .assert_code(expect)
        .stderr
        .clone()
    };
    let stderr = fleet(1);
    assert!(stderr.contains("is refused: it is not signed"), "{stderr}");
    assert!(!env.dir.path().join("sites/a.db").exists());
    hsm(
        &env,
        &["sign", first.to_str().unwrap(), "--key", "keys/alice.key"],
    )
    .assert_success();
    fleet(0);
    for site in ["a", "b"] {
        let db =
            rusqlite::Connection::open(env.dir.path().join(format!("sites/{site}.db"))).unwrap();
        let signers: String = db
            .query_row("SELECT signers FROM hsm_components", [], |r| r.get(0))
            .unwrap();
        assert!(signers.starts_with("alice SHA256:"), "{signers}");
    }
}

/// Found by the review: `inspect --require-signed` described an unsigned component by running
/// its `metadata()`; `pack -o DIR` wrote through a link planted in DIR, and `pack --sign`
/// signed the set's `sql-functions.wasm` binary on the packer's behalf; `export` put a
/// detached-signed component back without its signature.
#[test]
fn inspect_pack_and_export_keep_to_the_trust_file() {
    let (env, component) = signers();
    let trust = trust(&env, &["alice"], "");
    let file = component.to_str().unwrap();
    // Unsigned under --require-signed: described from its bytes, never compiled or asked.
    let run = hsm(
        &env,
        &["inspect", file, "--require-signed", &trust, "--json"],
    );
    run.assert_code(1);
    let shown: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let item = &shown["components"][0];
    assert_eq!(item["metadata"], serde_json::Value::Null, "{item}");
    assert!(
        item["problem"].as_str().unwrap().contains("not signed"),
        "{item}"
    );
    hsm(&env, &["sign", file, "--key", "keys/alice.key"]).assert_success();
    let run = hsm(
        &env,
        &["inspect", file, "--require-signed", &trust, "--json"],
    );
    run.assert_success();
    let shown: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        shown["components"][0]["signatures"]["signers"][0]["name"],
        "alice"
    );

    // pack: a link planted in the output directory is replaced, not written through.
    let src = env.dir.path().join("sql");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("1_notes.up.sql"), "CREATE TABLE notes (x);").unwrap();
    std::fs::write(src.join("1_notes.down.sql"), "DROP TABLE notes;").unwrap();
    std::fs::copy(
        hsm_test_artifacts::GUEST_SQL_FUNCTIONS,
        src.join("sql-functions.wasm"),
    )
    .unwrap();
    let out = env.dir.path().join("packed");
    std::fs::create_dir(&out).unwrap();
    let victim = env.dir.path().join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    std::os::unix::fs::symlink(&victim, out.join("1_notes.wasm")).unwrap();
    hsm(
        &env,
        &["pack", "sql", "-o", "packed", "--sign", "keys/alice.key"],
    )
    .assert_success()
    .assert_stdout_contains("1 component(s) signed")
    .assert_stdout_contains("is copied as it is, not signed by this pack");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let packed = out.join("1_notes.wasm");
    hsm(
        &env,
        &["verify", packed.to_str().unwrap(), "--trust", &trust],
    )
    .assert_success();
    let functions = out.join("sql-functions.wasm");
    hsm(
        &env,
        &["verify", functions.to_str().unwrap(), "--trust", &trust],
    )
    .assert_code(1)
    .assert_stdout_contains("not signed");

    // export: a detached-signed component comes back with its FILE.sig, and runs again.
    let second = env.add(hsm_test_artifacts::EXAMPLES[1]);
    hsm(
        &env,
        &[
            "sign",
            second.to_str().unwrap(),
            "--key",
            "keys/alice.key",
            "--detached",
        ],
    )
    .assert_success();
    env.hsm(&["up", "--require-signed", &trust])
        .assert_success();
    std::fs::remove_file(&second).unwrap();
    std::fs::remove_file(format!("{}.sig", second.display())).unwrap();
    env.hsm(&["export", "2", "-o", second.to_str().unwrap()])
        .assert_success();
    assert!(PathBuf::from(format!("{}.sig", second.display())).is_file());
    env.hsm(&["down", "--require-signed", &trust])
        .assert_success()
        .assert_stdout_contains("Version 2 -> 1.");
}

/// Found by the second review: `down` under `--require-signed` was blocked by an old,
/// unsigned migration below the target (its stored component was checked though never run);
/// `inspect` accepted a SQL file `up` refuses; `sign` (embedded) beside a FILE.sig and
/// `declare` on a signed component each broke a signature silently; `export` over an
/// existing FILE.sig left a component whose signature it was not.
#[test]
fn down_checks_only_what_it_rolls_back_and_nothing_breaks_a_signature_silently() {
    let (env, first) = signers();
    let trust = trust(&env, &["alice"], "");
    // The first applied unsigned, before signatures were required; its file then gone.
    env.hsm(&["up"]).assert_success();
    std::fs::remove_file(&first).unwrap();
    let second = env.add(hsm_test_artifacts::EXAMPLES[1]);
    let file = second.to_str().unwrap();
    hsm(
        &env,
        &["sign", file, "--key", "keys/alice.key", "--detached"],
    )
    .assert_success();
    env.hsm(&["up", "--require-signed", &trust])
        .assert_success();
    env.hsm(&["down", "--require-signed", &trust])
        .assert_success()
        .assert_stdout_contains("Version 2 -> 1.");
    // Going below it still meets the unsigned one: refused, with what to do.
    env.hsm(&["down", "0", "--require-signed", &trust])
        .assert_code(1)
        .assert_stderr_contains("the stored component of migration 1 is refused");

    // sign (embedded) beside a FILE.sig: refused, the file unchanged.
    let before = digest(&second);
    hsm(&env, &["sign", file, "--key", "keys/bob.key"])
        .assert_code(1)
        .assert_stdout_contains("add to it with --detached");
    assert_eq!(digest(&second), before);
    // declare on a signed component: refused.
    env.hsm(&["declare", file, "--dialects", "sqlite,postgresql"])
        .assert_code(2)
        .assert_stderr_contains("declare the unsigned component, then sign it");
    // inspect of a SQL file under --require-signed: refused, as up refuses it.
    std::fs::write(
        env.migrations.join("3_notes.up.sql"),
        "CREATE TABLE notes (x);",
    )
    .unwrap();
    let sql = env.migrations.join("3_notes.up.sql");
    env.hsm(&["inspect", sql.to_str().unwrap(), "--require-signed", &trust])
        .assert_code(1)
        .assert_stdout_contains("carries no signature");
    std::fs::remove_file(&sql).unwrap();
    // export where a FILE.sig already is: refused before anything is written.
    let out = env.dir.path().join("again.wasm");
    std::fs::write(format!("{}.sig", out.display()), "stale").unwrap();
    env.hsm(&["up", "--require-signed", &trust])
        .assert_success();
    env.hsm(&["export", "2", "-o", out.to_str().unwrap()])
        .assert_code(1)
        .assert_stderr_contains("would be read as the signature");
    assert!(!out.exists());
}
