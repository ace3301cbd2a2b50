//! Reading the CSV manifests of `enroll --manifest` and `eval`: a header row
//! naming the columns, then one record per line; fields may be double-quoted.

use std::path::{Path, PathBuf};

use crate::error::CliError;
use crate::files;

/// Largest manifest accepted, in bytes.
const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// One data row.
#[derive(Debug, Clone)]
pub struct Row {
    /// 1-based line number in the file.
    pub line: usize,
    /// The wanted columns, in the order asked for.
    pub fields: Vec<String>,
}

/// Reads `path`, whose header must contain every name in `columns`; returns
/// the rows' values for those columns. Blank lines are skipped.
pub fn read(path: &Path, columns: &[&str]) -> anyhow::Result<Vec<Row>> {
    let bad = |why: String| CliError::input("bad_manifest", format!("{}: {why}", path.display()));
    let bytes = files::read_regular(path, MAX_MANIFEST_BYTES, "bad_manifest")?;
    let text = String::from_utf8(bytes).map_err(|e| {
        bad(format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    // Spreadsheet programs often save CSV as "UTF-8 with BOM"; the mark is not
    // part of the first column's name.
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(&text);
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .ok_or_else(|| bad("empty manifest".to_owned()))?;
    let header = split(header).map_err(|e| bad(format!("line 1: {e}")))?;
    let index: Vec<usize> = columns
        .iter()
        .map(|c| {
            header
                .iter()
                .position(|h| h.trim().eq_ignore_ascii_case(c))
                .ok_or_else(|| {
                    bad(format!(
                        "the header must name the columns {} (found: {})",
                        columns.join(","),
                        header.join(",")
                    ))
                })
        })
        .collect::<Result<_, _>>()?;
    let mut rows = Vec::new();
    for (line, l) in lines {
        let fields = split(l).map_err(|e| bad(format!("line {line}: {e}")))?;
        let wanted = index
            .iter()
            .map(|&i| {
                fields.get(i).map(|f| f.trim().to_owned()).ok_or_else(|| {
                    bad(format!(
                        "line {line}: {} fields, expected {}",
                        fields.len(),
                        header.len()
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        rows.push(Row {
            line,
            fields: wanted,
        });
    }
    Ok(rows)
}

/// A manifest path, relative to the manifest's directory unless absolute.
pub fn resolve(manifest: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_owned()
    } else {
        manifest.parent().unwrap_or(Path::new("")).join(p)
    }
}

/// Splits one CSV line; `"` quotes a field and `""` inside quotes is a quote.
fn split(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.trim().is_empty() && !was_quoted => {
                field.clear();
                quoted = true;
                was_quoted = true;
            }
            (false, ',') => {
                out.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted field".to_owned());
    }
    out.push(field);
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_leading_byte_order_mark_is_not_part_of_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.csv");
        std::fs::write(&p, "\u{FEFF}subject,face\r\nalice,a.jpg\r\n").unwrap();
        let rows = read(&p, &["subject", "face"]).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].fields, vec!["alice".to_owned(), "a.jpg".to_owned()]);
        assert_eq!(rows[0].line, 2);
    }

    #[cfg(unix)]
    #[test]
    fn a_manifest_that_is_a_fifo_is_refused_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.csv");
        assert!(std::process::Command::new("mkfifo")
            .arg(&p)
            .status()
            .unwrap()
            .success());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(read(&p, &["subject"]).map(|_| ()));
        });
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("blocked on the FIFO");
        let err = got.unwrap_err();
        assert_eq!(crate::error::code_of(&err), "not_a_regular_file");
    }

    #[test]
    fn splits_quoted_fields() {
        assert_eq!(split("a,b").ok(), Some(vec!["a".into(), "b".into()]));
        assert_eq!(
            split("\"x, y\",\"say \"\"hi\"\"\"").ok(),
            Some(vec!["x, y".into(), "say \"hi\"".into()])
        );
        assert!(split("\"open").is_err());
    }
}
