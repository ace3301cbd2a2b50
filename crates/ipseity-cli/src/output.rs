//! The one place that prints results: as text for people or as one compact JSON
//! object per command for scripts. Commands build `Serialize` structs and hand
//! them to [`Output::emit`]; none of them checks `--json` itself.

use std::io::{self, Write};

use serde::Serialize;

/// A command result that can be printed as text or JSON.
pub trait Render: Serialize {
    /// Writes the human-readable form.
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()>;
}

/// Where and how results go.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    json: bool,
}

impl Output {
    /// Text output unless `json`.
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Prints a command's result on stdout.
    pub fn emit<T: Render>(&self, value: &T) -> anyhow::Result<()> {
        let mut buf = Vec::new();
        if self.json {
            serde_json::to_writer(&mut buf, value)?;
            buf.push(b'\n');
        } else {
            value.render_text(&mut buf)?;
        }
        let stdout = io::stdout();
        let mut w = stdout.lock();
        w.write_all(&buf)?;
        w.flush()?;
        Ok(())
    }

    /// Prints an error: `error: message` on stderr, and with `--json` also
    /// `{"error": {"code", "message"}}` on stdout. Write failures are ignored:
    /// there is nowhere left to report them.
    pub fn error(&self, code: &str, message: &str) {
        let _ = writeln!(io::stderr(), "error: {message}");
        if self.json {
            print_json_error(code, message);
        }
    }

    /// A note for the person at the terminal, on stderr in both modes.
    pub fn note(&self, message: &str) {
        let _ = writeln!(io::stderr(), "{message}");
    }
}

/// Writes `{"error": {"code": ..., "message": ...}}` on stdout.
pub fn print_json_error(code: &str, message: &str) {
    let v = serde_json::json!({ "error": { "code": code, "message": message } });
    let _ = writeln!(io::stdout(), "{v}");
}
