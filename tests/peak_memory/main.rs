//! Peak memory of the real binary under the adversarial suite, in a test binary of its own:
//! a child's peak RSS as the kernel reports it (`wait4`) starts from its parent's peak at the
//! moment it was spawned (the child shares the parent's memory until `exec`), and the main
//! integration binary runs many engines at once. Here the parent stays small.

#[allow(dead_code)]
#[path = "../integration/support.rs"]
mod support;

use support::Env;

/// What the host may use beyond `--max-memory` (SECURITY.md states it): the process itself
/// with wasmtime and a compiled guest, SQLite's share, and the results and statements in
/// flight. Measured as peak RSS of the real binary.
const HOST_OVERHEAD: u64 = 192 << 20;

#[test]
fn no_attack_takes_the_host_past_max_memory_plus_its_overhead() {
    let env = Env::with_examples();
    env.add(hsm_test_artifacts::GUEST_ATTACK);
    env.hsm(&["up", "7"]).assert_success();
    let conn = env.open();
    conn.execute_batch("CREATE TABLE attack (name TEXT); INSERT INTO attack VALUES ('none');")
        .unwrap();
    let max_memory: u64 = 64 << 20;
    for attack in [
        "huge_value",
        "huge_printf",
        "many_statements",
        "many_cursors",
        "memory_bomb",
        "function_memory",
        "huge_result",
        "multi_gb_text",
    ] {
        conn.execute("UPDATE attack SET name = ?1", [attack])
            .unwrap();
        let mut cmd = env.hsm_command(&["up", "--max-memory", "64MiB", "--timeout", "20s"]);
        let (code, stderr, peak) = run_measuring_peak_rss(&mut cmd);
        assert_eq!(code, 1, "{attack}: {stderr}");
        eprintln!("{attack}: peak RSS {} MiB", peak >> 20);
        assert!(
            peak <= max_memory + HOST_OVERHEAD,
            "{attack}: peak RSS {} MiB is over --max-memory (64 MiB) + {} MiB",
            peak >> 20,
            HOST_OVERHEAD >> 20
        );
    }
}

/// A fleet of 1,000 databases streams: each target's run is let go when it finishes, so the
/// process peaks where a fleet of 20 does, and no file stays open (the fleet runs under a
/// limit of 64 open files).
#[test]
fn a_fleet_of_a_thousand_holds_no_more_than_a_fleet_of_twenty() {
    use std::os::unix::process::CommandExt;
    let env = Env::empty();
    std::fs::write(env.migrations.join("1_a.up.sql"), "CREATE TABLE a (x);").unwrap();
    std::fs::write(env.migrations.join("1_a.down.sql"), "DROP TABLE a;").unwrap();
    let fleet = |n: usize| {
        let dir = env.dir.path().join(format!("fleet{n}"));
        std::fs::create_dir(&dir).unwrap();
        let file = dir.join("targets.txt");
        let lines: String = (0..n).map(|i| format!("site{i:04}.db\n")).collect();
        std::fs::write(&file, lines).unwrap();
        let mut cmd = env.hsm_command(&[
            "fleet",
            "up",
            "--targets",
            file.to_str().unwrap(),
            "--parallel",
            "4",
        ]);
        // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: 64,
                    rlim_max: 64,
                };
                match libc::setrlimit(libc::RLIMIT_NOFILE, &limit) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                }
            });
        }
        let (code, stderr, peak) = run_measuring_peak_rss(&mut cmd);
        assert_eq!(code, 0, "{n} targets: {stderr}");
        for i in [0, n / 2, n - 1] {
            let db = rusqlite::Connection::open(dir.join(format!("site{i:04}.db"))).unwrap();
            assert_eq!(support::applied(&db), [1]);
        }
        peak
    };
    let small = fleet(20);
    let large = fleet(1000);
    eprintln!(
        "peak RSS: 20 targets {} KiB, 1,000 targets {} KiB",
        small >> 10,
        large >> 10
    );
    assert!(
        large <= small + (16 << 20),
        "1,000 targets peaked at {} MiB, 20 at {} MiB",
        large >> 20,
        small >> 20
    );
}

/// Runs `cmd` to its end; its exit code, stderr and peak resident memory in bytes.
#[expect(clippy::zombie_processes, reason = "wait4 below reaps the child")]
fn run_measuring_peak_rss(cmd: &mut std::process::Command) -> (i32, String, u64) {
    use std::io::Read;
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).unwrap();
        text
    });
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // wait4 reports this child's own peak, unlike RUSAGE_CHILDREN (every child of the test
    // process, and tests run in parallel).
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    let stderr = reader.join().unwrap();
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, stderr, usage.ru_maxrss as u64 * 1024)
}
