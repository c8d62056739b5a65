//! Logging: human lines on stderr, and everything at debug level appended to the log file.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::writer::{MakeWriter, OptionalWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, fmt};

/// The log file's writer guard, kept where a hard stop (which ends the process without
/// unwinding) can still flush it: see [`flush`].
static GUARD: Mutex<Option<WorkerGuard>> = Mutex::new(None);

/// Flushes the log file when dropped (at the end of `main`).
pub struct Flush;

impl Drop for Flush {
    fn drop(&mut self) {
        flush();
    }
}

/// Writes out every line queued for the log file; later lines go to stderr only.
pub fn flush() {
    let guard = GUARD.lock().unwrap_or_else(|p| p.into_inner()).take();
    drop(guard);
}

/// Installs the subscriber. The returned value flushes the log file when dropped; without a
/// usable log file, logging goes on to stderr only (with a warning).
/// `quiet` (a fleet, whose table reports each target) keeps stderr to warnings and errors
/// unless `-v`; the log file has everything either way.
pub fn init(verbose: u8, log_file: &Path, color: bool, quiet: bool) -> Flush {
    install(verbose, log_file, color, quiet);
    Flush
}

/// stderr, written around the fleet's progress bar when one is drawn.
struct AroundBar;

impl std::io::Write for AroundBar {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        super::bar::suspended(|| std::io::stderr().write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// The log file's writer, made when the first line is logged: a command that logs nothing
/// (`status`, `--version`) opens no file and starts no writer thread (whose start and join were
/// a measurable part of `status`).
struct LazyLogFile {
    path: PathBuf,
    writer: OnceLock<Option<NonBlocking>>,
}

impl LazyLogFile {
    fn open(&self) -> Option<NonBlocking> {
        match open_log_file(&self.path) {
            Ok(file) => {
                // A migration logs a few lines per step: a small queue (the default
                // preallocates 128k lines), and a full one waits instead of dropping lines of
                // the audit trail.
                let (writer, guard) = NonBlockingBuilder::default()
                    .buffered_lines_limit(1024)
                    .lossy(false)
                    .finish(file);
                *GUARD.lock().unwrap_or_else(|p| p.into_inner()) = Some(guard);
                Some(writer)
            }
            Err(error) => {
                // Not through `tracing`: this runs inside it.
                eprintln!(
                    " WARN not writing the log file {}: {error} (choose another with --log-file)",
                    self.path.display()
                );
                None
            }
        }
    }
}

impl<'a> MakeWriter<'a> for LazyLogFile {
    type Writer = OptionalWriter<NonBlocking>;

    fn make_writer(&'a self) -> Self::Writer {
        match self.writer.get_or_init(|| self.open()) {
            Some(writer) => OptionalWriter::some(writer.clone()),
            None => OptionalWriter::none(),
        }
    }
}

fn install(verbose: u8, log_file: &Path, color: bool, quiet: bool) {
    let level = match verbose {
        0 if quiet => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    // Our crate and guest output at the chosen level; the wasm engine only when it warns.
    // A fleet's own lines (a target failed) are its table's rows: the log file has them.
    let own = match quiet && verbose == 0 {
        true => ",hsm_host::fleet=off",
        false => "",
    };
    let stderr_filter = EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| EnvFilter::new(directives(level) + own));
    let stderr = fmt::layer()
        .fmt_fields(super::sink::fields())
        .with_writer(|| AroundBar)
        .with_ansi(color)
        .with_target(false)
        .without_time()
        .with_filter(stderr_filter);

    let file = fmt::layer()
        .fmt_fields(super::sink::fields())
        .with_writer(LazyLogFile {
            path: log_file.to_owned(),
            writer: OnceLock::new(),
        })
        .with_ansi(false)
        .with_filter(EnvFilter::new(directives("debug")));
    tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .init();
}

/// Opens the log file for appending: never through a symbolic link (another user's link would
/// have hsm-host's lines appended wherever it points), only a regular file of this user, in a
/// directory that not every user may write.
fn open_log_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let refuse = |why: String| std::io::Error::other(why);
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        // Often the database's directory: made writable by its owner only, whatever the umask
        // (as `Database::open` makes it; the database refuses a directory others may write).
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)?;
        let meta = std::fs::symlink_metadata(dir)?;
        if meta.mode() & 0o002 != 0 && meta.mode() & 0o1000 == 0 {
            return Err(refuse(format!(
                "{} is writable by every user",
                dir.display()
            )));
        }
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.uid() != rustix::process::geteuid().as_raw() {
        return Err(refuse(
            "it is not a regular file of this user (planted by someone else?)".into(),
        ));
    }
    Ok(file)
}

/// Our crates' events at `level`, and the guests' (target `guest`); everyone else's warnings
/// only (the wasm engine's among them).
fn directives(level: &str) -> String {
    let ours = [
        "hsm_host",
        "hsm_store",
        "hsm_sandbox",
        "hsm_sources",
        "hsm_postgres",
        "guest",
    ];
    let mut directives = vec!["warn".to_owned()];
    directives.extend(ours.iter().map(|target| format!("{target}={level}")));
    directives.join(",")
}
