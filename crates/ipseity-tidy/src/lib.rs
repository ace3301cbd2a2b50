//! The house rules of the workspace as functions over a source file's path and text, so
//! that `tests/tidy.rs` can apply them to every file and unit tests can show that each
//! rule fails on a violation.
//!
//! The rules, and where each is allowed to bend:
//! - every Rust source file starts with a `//!` comment saying what it holds;
//! - printing (`println!`, `eprintln!`, `print!`, `eprint!`, `dbg!`) only in front ends;
//! - `std::fs` only in the files of [`FS_ALLOWED`] and in front ends;
//! - SQL (and `rusqlite`) only in the store;
//! - JSON (`serde_json`) only in front ends, in code and in `[dependencies]`;
//! - a crate with no `unsafe` code says `#![forbid(unsafe_code)]` in its root.
//!
//! Library code is what comes before a file's first `#[cfg(test)]`; test files, benches,
//! examples and the fuzz targets may print, read files and speak JSON.
#![deny(missing_docs)]
// No SIMD kernels live here, so nothing needs unsafe code (the tidy test holds every
// crate without them to this).
#![forbid(unsafe_code)]

/// Crates that are front ends: they parse arguments, print and speak JSON.
pub const FRONT_ENDS: &[&str] = &["crates/ipseity-cli/", "crates/ipseity-server/"];

/// Library files that may use `std::fs`, each for a reason of its own.
pub const FS_ALLOWED: &[(&str, &str)] = &[
    (
        "crates/ipseity-face/src/decode.rs",
        "reads an untrusted image with a bounded read",
    ),
    (
        "crates/ipseity-index/src/spill.rs",
        "the sealed, unlinked spill file of re-rank rows",
    ),
    (
        "crates/ipseity-models/src/lib.rs",
        "installs and locates model files",
    ),
    (
        "crates/ipseity-models/src/archive.rs",
        "unpacks the verified model archive",
    ),
    (
        "crates/ipseity-models/src/extra.rs",
        "installs the pinned models from an operator's folder",
    ),
    ("crates/ipseity-store/src/key.rs", "the template key file"),
    (
        "crates/ipseity-store/src/store.rs",
        "the store's directory and database file modes",
    ),
    (
        "crates/ipseity-tidy/tests/tidy.rs",
        "reads the workspace's sources",
    ),
];

/// This crate, whose source spells out the patterns it looks for.
const SELF: &str = "crates/ipseity-tidy/";

/// The crate that owns SQL.
pub const SQL_OWNER: &str = "crates/ipseity-store/";

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The file, relative to the workspace root.
    pub path: String,
    /// 1-based line, or 0 for the whole file.
    pub line: usize,
    /// Which rule and what to do.
    pub rule: &'static str,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.path, self.line, self.rule)
    }
}

fn is_front_end(path: &str) -> bool {
    FRONT_ENDS.iter().any(|p| path.starts_with(p))
}

/// Whether a path is library code (a crate's `src/`, not a `tests.rs` module file).
pub fn is_library_source(path: &str) -> bool {
    path.starts_with("crates/")
        && path.contains("/src/")
        && !path.ends_with("/tests.rs")
        && !path.contains("/tests/")
        && !path.contains("/benches/")
        && !path.contains("/examples/")
}

/// The library part of a file's lines, numbered from 1: up to the first `#[cfg(test)]`,
/// without comment lines.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .take_while(|(_, l)| l.trim() != "#[cfg(test)]")
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .map(|(i, l)| (i + 1, l))
}

fn find(path: &str, text: &str, needles: &[&str], rule: &'static str, out: &mut Vec<Violation>) {
    for (line, l) in code_lines(text) {
        if needles.iter().any(|n| l.contains(n)) {
            out.push(Violation {
                path: path.to_owned(),
                line,
                rule,
            });
        }
    }
}

/// Every rule that applies to one Rust source file.
pub fn check_source(path: &str, text: &str) -> Vec<Violation> {
    let mut out = Vec::new();
    if !text.starts_with("//!") {
        out.push(Violation {
            path: path.to_owned(),
            line: 1,
            rule: "start the file with a `//!` comment saying what it holds",
        });
    }
    // The rules' own crate names what it looks for.
    if !is_library_source(path) || is_front_end(path) || path.starts_with(SELF) {
        return out;
    }
    find(
        path,
        text,
        &["println!", "eprintln!", "print!(", "eprint!(", "dbg!("],
        "printing belongs to front ends; report through a trait or a return value",
        &mut out,
    );
    if !FS_ALLOWED.iter().any(|(p, _)| *p == path) {
        find(
            path,
            text,
            &["std::fs", " fs::", "(fs::", "use fs"],
            "std::fs outside the allow-list (ipseity-tidy FS_ALLOWED); take bytes from the caller",
            &mut out,
        );
    }
    if !path.starts_with(SQL_OWNER) {
        find(
            path,
            text,
            &[
                "rusqlite",
                "SELECT ",
                "INSERT INTO",
                "CREATE TABLE",
                "DELETE FROM",
                "PRAGMA ",
            ],
            "SQL belongs to ipseity-store",
            &mut out,
        );
    }
    find(
        path,
        text,
        &["serde_json"],
        "JSON belongs to front ends",
        &mut out,
    );
    out
}

/// The rule on a library crate's `Cargo.toml`: no `serde_json` among `[dependencies]`.
pub fn check_manifest(path: &str, text: &str) -> Vec<Violation> {
    let mut out = Vec::new();
    if is_front_end(path) {
        return out;
    }
    let mut section = "";
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if t.starts_with('[') {
            section = t;
        } else if section == "[dependencies]" && t.starts_with("serde_json") {
            out.push(Violation {
                path: path.to_owned(),
                line: i + 1,
                rule: "JSON belongs to front ends: serde_json only as a dev-dependency here",
            });
        }
    }
    out
}

/// Whether Rust source uses `unsafe` code (a block, function, impl or trait), outside
/// comments.
pub fn uses_unsafe(text: &str) -> bool {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .any(|l| {
            [
                "unsafe {",
                "unsafe fn",
                "unsafe impl",
                "unsafe trait",
                "unsafe extern",
            ]
            .iter()
            .any(|n| l.contains(n))
        })
}

/// The rule on a crate root: without unsafe code anywhere in the crate, it must forbid it.
pub fn check_unsafe_root(
    root_path: &str,
    root_text: &str,
    crate_uses_unsafe: bool,
) -> Vec<Violation> {
    if crate_uses_unsafe || root_text.contains("#![forbid(unsafe_code)]") {
        return Vec::new();
    }
    vec![Violation {
        path: root_path.to_owned(),
        line: 1,
        rule: "this crate has no unsafe code: say #![forbid(unsafe_code)] in its root",
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIB: &str = "crates/ipseity-engine/src/face.rs";

    fn rules(path: &str, text: &str) -> Vec<&'static str> {
        check_source(path, text)
            .into_iter()
            .map(|v| v.rule)
            .collect()
    }

    #[test]
    fn a_clean_library_file_passes() {
        assert!(rules(LIB, "//! Faces.\n\nfn f() {}\n").is_empty());
    }

    #[test]
    fn each_rule_fails_on_its_violation() {
        assert_eq!(rules(LIB, "fn f() {}\n").len(), 1, "no //! comment");
        for bad in [
            "    println!(\"x\");",
            "    eprintln!(\"x\");",
            "    dbg!(x);",
            "    let b = std::fs::read(p)?;",
            "    let q = conn.query_row(\"SELECT 1\", [], |r| r.get(0));",
            "use rusqlite::Connection;",
            "    let j = serde_json::to_string(&x);",
        ] {
            let text = format!("//! Doc.\nfn f() {{\n{bad}\n}}\n");
            let v = check_source(LIB, &text);
            assert_eq!(v.len(), 1, "{bad}: {v:?}");
            assert_eq!(v[0].line, 3);
        }
    }

    #[test]
    fn tests_comments_front_ends_and_owners_may() {
        let text = "//! Doc.\n// println!(\"in a comment\")\nfn f() {}\n#[cfg(test)]\nmod tests { fn t() { println!(\"x\"); let _ = std::fs::read(\"p\"); } }\n";
        assert!(rules(LIB, text).is_empty());
        let print = "//! Doc.\nfn f() { println!(\"x\"); let j = serde_json::json!({}); }\n";
        assert!(rules("crates/ipseity-cli/src/commands/list.rs", print).is_empty());
        let sql = "//! Doc.\nconst Q: &str = \"SELECT 1\";\n";
        assert!(rules("crates/ipseity-store/src/store.rs", sql).is_empty());
        let fs = "//! Doc.\nfn f() { let _ = std::fs::read(\"k\"); }\n";
        assert!(rules("crates/ipseity-store/src/key.rs", fs).is_empty());
        assert_eq!(rules("crates/ipseity-store/src/write.rs", fs).len(), 1);
    }

    #[test]
    fn manifests_and_unsafe_roots() {
        let m = "[dependencies]\nserde_json.workspace = true\n\n[dev-dependencies]\n";
        assert_eq!(check_manifest("crates/ipseity-face/Cargo.toml", m).len(), 1);
        let dev = "[dependencies]\nserde.workspace = true\n[dev-dependencies]\nserde_json.workspace = true\n";
        assert!(check_manifest("crates/ipseity-face/Cargo.toml", dev).is_empty());
        assert!(check_manifest("crates/ipseity-cli/Cargo.toml", m).is_empty());

        assert!(uses_unsafe("fn f() { unsafe { g() } }"));
        assert!(!uses_unsafe("// unsafe { in a comment }\nfn f() {}"));
        let root = "//! Doc.\n#![deny(missing_docs)]\n";
        assert_eq!(check_unsafe_root("r.rs", root, false).len(), 1);
        assert!(check_unsafe_root("r.rs", root, true).is_empty());
        let forbidding = "//! Doc.\n#![forbid(unsafe_code)]\n";
        assert!(check_unsafe_root("r.rs", forbidding, false).is_empty());
    }
}
