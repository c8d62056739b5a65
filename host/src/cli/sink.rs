//! Where the CLI's text goes: stdout through [`SafeOut`], log lines through [`fields`]. Both
//! neutralise what they are given, so a name a migration chose (a table called
//! `"x\rApplied 42"`, an escape sequence, 20 MiB of names) reaches the terminal and the log
//! file as visible text of bounded size, whichever message carried it. No report or log call
//! has to remember to escape.

use std::fmt;
use std::io::{self, Write};

use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{Writer, debug_fn};

/// Longest line printed on stdout (longer ones are cut, saying how much).
pub const MAX_LINE: usize = 16 << 10;
/// Longest field (a log message) written to stderr or the log file.
pub const MAX_FIELD: usize = 16 << 10;

/// stdout for reports: every `writeln!` is one line, with any control character inside it
/// (CR, LF, ESC, ...) shown as an escape and its length capped; raw writes (JSON, which escapes
/// its own strings) keep their line breaks but lose any other control byte.
pub struct SafeOut<W: Write> {
    inner: W,
}

impl<W: Write> SafeOut<W> {
    pub fn new(inner: W) -> Self {
        Self { inner }
    }
}

impl<W: Write> Write for SafeOut<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Bytes below 0x80 never occur inside a multi-byte UTF-8 sequence.
        if buf.iter().all(|&b| b >= 0x20 || b == b'\n' || b == b'\t') {
            return self.inner.write(buf);
        }
        let cleaned: Vec<u8> = buf
            .iter()
            .map(|&b| {
                if b < 0x20 && b != b'\n' && b != b'\t' || b == 0x7f {
                    b'?'
                } else {
                    b
                }
            })
            .collect();
        self.inner.write_all(&cleaned)?;
        Ok(buf.len())
    }

    fn write_fmt(&mut self, args: fmt::Arguments<'_>) -> io::Result<()> {
        let text = args.to_string();
        let (line, newline) = match text.strip_suffix('\n') {
            Some(line) => (line, "\n"),
            None => (text.as_str(), ""),
        };
        let shown = hsm_host::neutralize(line, MAX_LINE);
        self.inner.write_all(shown.as_bytes())?;
        self.inner.write_all(newline.as_bytes())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The field formatter of every log layer: each field's text neutralised and capped.
pub fn fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    debug_fn(|writer: &mut Writer<'_>, field, value| {
        let shown = hsm_host::neutralize(&format!("{value:?}"), MAX_FIELD);
        if field.name() == "message" {
            write!(writer, "{shown}")
        } else {
            write!(writer, "{}={shown}", field.name())
        }
    })
    .delimited(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_cannot_forge_another_or_drive_the_terminal() {
        let mut out = SafeOut::new(Vec::new());
        let name = "t\r\nApplied 42 forged\x1b]0;title\x07";
        writeln!(out, "Applied 3 x: created table {name}").unwrap();
        writeln!(out).unwrap();
        write!(out, "no newline").unwrap();
        out.write_all(b"{\"a\": \"\x1b\"}\n").unwrap();
        let text = String::from_utf8(out.inner).unwrap();
        assert_eq!(
            text,
            "Applied 3 x: created table t\\r\\nApplied 42 forged\\u{1b}]0;title\\u{7}\n\nno \
             newline{\"a\": \"?\"}\n"
        );
    }

    #[test]
    fn a_long_line_is_cut() {
        let mut out = SafeOut::new(Vec::new());
        writeln!(out, "{}", "x".repeat(MAX_LINE * 4)).unwrap();
        let text = String::from_utf8(out.inner).unwrap();
        assert!(text.len() < MAX_LINE + 64, "{}", text.len());
        assert!(text.ends_with("more bytes cut)\n"));
    }
}
