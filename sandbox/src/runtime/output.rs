//! What a guest printed: logged line by line, and used to explain a trap.

use super::state::GuestState;

/// Logs the guest's stdout (info) and stderr (warn), one line per event, stripped of control
/// characters so a guest cannot drive the operator's terminal. Returns stderr's text.
pub(super) fn log_guest_output(state: &GuestState) -> String {
    let label = state.label();
    for line in clean(&state.stdout.contents()).lines() {
        tracing::info!(target: "guest", "{label} stdout: {line}");
    }
    let stderr = clean(&state.stderr.contents());
    for line in stderr.lines() {
        tracing::warn!(target: "guest", "{label} stderr: {line}");
    }
    stderr
}

/// Describes a trap for the operator: the trap itself and, for a Rust panic, its message.
pub(super) fn describe_trap(error: &wasmtime::Error, stderr: &str) -> String {
    tracing::debug!("guest trap details: {error:?}");
    let trap = match error.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{error:#}"),
    };
    let printed: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("note: run with `RUST_BACKTRACE"))
        .collect();
    if printed.is_empty() {
        return format!("trapped: {trap}");
    }
    // The end of what it printed explains the trap (a panic's message comes last); keep the
    // error short enough for a history row and a terminal.
    const KEEP: usize = 2000;
    let printed = printed.join(" ");
    let mut start = printed.len().saturating_sub(KEEP);
    while !printed.is_char_boundary(start) {
        start += 1;
    }
    let ellipsis = if start > 0 { "…" } else { "" };
    format!(
        "trapped: {trap}; the guest printed: {ellipsis}{}",
        &printed[start..]
    )
}

fn clean(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| match c {
            '\n' | '\t' => c,
            c if c.is_control() => '?',
            c => c,
        })
        .collect()
}
