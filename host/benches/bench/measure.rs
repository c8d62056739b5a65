//! Timing, medians, peak memory and the table the bench prints.

use super::*;

pub(crate) struct Scale {
    pub(crate) runs: usize,
    pub(crate) migrations: u64,
    pub(crate) rows: i64,
    pub(crate) big_db_bytes: u64,
}

pub(crate) fn scale() -> Scale {
    match std::env::var("HSM_BENCH_SCALE").as_deref() {
        Ok("small") => Scale {
            runs: 3,
            migrations: 100,
            rows: 100_000,
            big_db_bytes: 64 << 20,
        },
        _ => Scale {
            runs: 5,
            migrations: 100,
            rows: 1_000_000,
            big_db_bytes: 1 << 30,
        },
    }
}

pub(crate) fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

pub(crate) fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let value = f();
    (start.elapsed(), value)
}

/// CPU time (user + system) of this process so far, all threads.
pub(crate) fn process_cpu() -> Duration {
    // SAFETY: getrusage writes into the struct it is given and reads nothing else.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
        usage
    };
    let of = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    of(usage.ru_utime) + of(usage.ru_stime)
}

/// Wall and CPU time of `f` (the CPU of every thread of this process while it ran).
pub(crate) fn time_cpu<T>(f: impl FnOnce() -> T) -> (Duration, Duration, T) {
    let cpu = process_cpu();
    let (wall, value) = time(f);
    (wall, process_cpu() - cpu, value)
}

/// The journal modes every `up` and data row is measured in: WAL first, as the application
/// runs, then SQLite's default rollback journal.
pub(crate) const MODES: [(bool, &str); 2] = [(true, "WAL"), (false, "rollback journal")];

/// Prints the table's rows as they are measured.
pub(crate) struct Report;

impl Report {
    /// One row from paired samples (`ours[i]` and `native[i]` ran back to back): the medians
    /// of each, and the median of the per-pair ratios, which drifts less than a ratio of
    /// medians when the machine's speed (above all its fsync latency) changes during the run.
    pub(crate) fn compare(
        &mut self,
        name: &str,
        ours: &[Duration],
        native: &[Duration],
        native_name: &str,
        target: &str,
    ) {
        let mut ratios: Vec<f64> = ours
            .iter()
            .zip(native)
            .map(|(o, n)| o.as_secs_f64() / n.as_secs_f64())
            .collect();
        ratios.sort_by(f64::total_cmp);
        let ratio = ratios[ratios.len() / 2];
        let line = format!(
            "| {name} | {:.1} ms | {native_name}: {:.1} ms | {ratio:.2}x | {target} |",
            ms(median(ours.to_vec())),
            ms(median(native.to_vec()))
        );
        println!("{line}");
    }

    pub(crate) fn absolute(&mut self, name: &str, value: String, target: &str) {
        let line = format!("| {name} | {value} | | | {target} |");
        println!("{line}");
    }
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) fn run_process(cmd: &mut Command) -> Duration {
    let (elapsed, out) = time(|| cmd.output().unwrap());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

/// Peak resident set of a child process, in KiB (GNU time's %M).
pub(crate) fn peak_rss_kib(cmd: &[&str]) -> u64 {
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .args(cmd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr.lines().last().unwrap().trim().parse().unwrap()
}
