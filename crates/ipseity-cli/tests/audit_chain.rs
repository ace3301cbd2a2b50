//! `ipseity audit verify` and `audit head` on the embedded store: an intact chain passes,
//! an entry edited in the database file fails with where it is, and an exported head
//! catches the newest entries deleted. (Every kind of change, on both backends, is tested
//! in `ipseity-store`'s `tests/audit_chain.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use common::{error_code, ipseity, json, run};

fn raw_sql(data: &std::path::Path, sql: &str) {
    let c = rusqlite::Connection::open(data.join("ipseity.db")).expect("database file");
    c.execute_batch(sql).expect("raw SQL");
}

#[test]
fn audit_verify_and_head_find_changes_made_in_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for name in ["bank-a", "bank-b", "desk"] {
        let (code, out, _) = run(ipseity(&data).env("USER", "auditor").args([
            "--json",
            "keys",
            "create",
            "--name",
            name,
            "--scopes",
            "verify",
            "--purposes",
            "kyc",
        ]));
        assert_eq!(code, 0, "{out}");
    }
    let (code, out, _) = run(ipseity(&data)
        .env("USER", "auditor")
        .args(["--json", "keys", "revoke", "--name", "desk"]));
    assert_eq!(code, 0, "{out}");

    // Who acted is in each entry.
    let (code, out, _) = run(ipseity(&data).args(["--json", "audit"]));
    assert_eq!(code, 0);
    let entries = json(&out)["entries"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 4);
    assert!(entries.iter().all(|e| e["actor"] == "cli:auditor"), "{out}");

    let (code, out, _) = run(ipseity(&data).args(["--json", "audit", "verify"]));
    assert_eq!(code, 0, "{out}");
    let report = json(&out);
    assert_eq!(report["entries"], 4);
    assert_eq!(report["breaks"].as_array().unwrap().len(), 0);

    // The head, exported as `audit head` prints it (JSON in text mode too).
    let (code, head, _) = run(ipseity(&data).args(["audit", "head"]));
    assert_eq!(code, 0);
    let h = json(&head);
    assert_eq!(h["hash"].as_str().unwrap().len(), 64);
    let head_file = dir.path().join("head.json");
    std::fs::write(&head_file, &head).unwrap();
    let (code, out, _) = run(ipseity(&data)
        .args(["audit", "verify", "--head"])
        .arg(&head_file));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact"), "{out}");

    // An entry edited in the file: exit 1, and where.
    let second = entries[2]["id"].as_i64().unwrap();
    raw_sql(
        &data,
        &format!("UPDATE audit SET detail = 'name=bank-z' WHERE id = {second}"),
    );
    let (code, out, _) = run(ipseity(&data).args(["audit", "verify"]));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN"), "{out}");
    assert!(
        out.contains(&format!("entry {second:>6}: entry {second} does not match")),
        "{out}"
    );
    let (code, out, _) = run(ipseity(&data).args(["--json", "audit", "verify"]));
    assert_eq!(code, 1);
    assert_eq!(json(&out)["breaks"][0]["kind"], "edited");

    // The newest entry deleted: the rest still chains; only the exported head shows it.
    let original = entries[2]["detail"].as_str().unwrap().replace('\'', "''");
    raw_sql(
        &data,
        &format!("UPDATE audit SET detail = '{original}' WHERE id = {second}"),
    );
    let newest = entries[0]["id"].as_i64().unwrap();
    raw_sql(&data, &format!("DELETE FROM audit WHERE id = {newest}"));
    let (code, out, _) = run(ipseity(&data).args(["--json", "audit", "verify"]));
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = run(ipseity(&data)
        .args(["--json", "audit", "verify", "--head"])
        .arg(&head_file));
    assert_eq!(code, 1, "{out}");
    assert_eq!(json(&out)["breaks"][0]["kind"], "anchor");

    // A file that is not a head is refused as such.
    std::fs::write(&head_file, "{\"id\": 1}").unwrap();
    let (code, out, _) = run(ipseity(&data)
        .args(["--json", "audit", "verify", "--head"])
        .arg(&head_file));
    assert_eq!((code, error_code(&out).as_str()), (2, "bad_head"), "{out}");
}
