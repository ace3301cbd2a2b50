//! Applies the house rules (`ipseity_tidy`) to every source file and manifest of the
//! workspace; any violation fails the test with its file, line and rule.

use std::fs;
use std::path::{Path, PathBuf};

use ipseity_tidy::{check_manifest, check_source, check_unsafe_root, uses_unsafe, Violation};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root())
        .unwrap_or(p)
        .to_string_lossy()
        .replace('\\', "/")
}

#[test]
fn the_workspace_keeps_its_rules() {
    let root = root();
    let mut violations: Vec<Violation> = Vec::new();
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    rust_files(&root.join("fuzz/fuzz_targets"), &mut files);
    assert!(files.len() > 50, "found only {} files", files.len());
    for f in &files {
        let text = fs::read_to_string(f).unwrap_or_default();
        violations.extend(check_source(&rel(f), &text));
    }
    let crates: Vec<PathBuf> = fs::read_dir(root.join("crates"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").exists())
        .collect();
    assert!(crates.len() >= 9);
    for c in &crates {
        let manifest = c.join("Cargo.toml");
        violations.extend(check_manifest(
            &rel(&manifest),
            &fs::read_to_string(&manifest).unwrap_or_default(),
        ));
        let mut src = Vec::new();
        rust_files(&c.join("src"), &mut src);
        let unsafe_used = src
            .iter()
            .any(|f| uses_unsafe(&fs::read_to_string(f).unwrap_or_default()));
        for root_file in ["src/lib.rs", "src/main.rs"] {
            let r = c.join(root_file);
            if let Ok(text) = fs::read_to_string(&r) {
                violations.extend(check_unsafe_root(&rel(&r), &text, unsafe_used));
            }
        }
    }
    let report: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert!(
        report.is_empty(),
        "house rules broken:\n{}",
        report.join("\n")
    );
}
