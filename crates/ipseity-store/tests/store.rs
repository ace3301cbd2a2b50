//! Integration tests of the store through its public API, plus raw-SQL tampering and fixtures.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ipseity_core::{Modality, SubjectId, Template};
use ipseity_store::{Store, StoreError, DB_FILE};

#[path = "support/backends.rs"]
mod support;
use support::Tmpfs;

const KEY_FILE: &str = ipseity_store::key::KEY_FILE;

fn id(s: &str) -> SubjectId {
    SubjectId::new(s).unwrap()
}

/// A synthetic vector: exact binary fractions, not biometric data.
fn synthetic(seed: u32, dim: usize) -> Vec<f32> {
    (0..dim)
        .map(|i| ((i as u32 * 7 + seed * 13) % 64) as f32 / 32.0 - 1.0)
        .collect()
}

fn tpl(seed: u32) -> Template {
    Template::new(Modality::Face, "synthetic-v1", synthetic(seed, 128), 90).unwrap()
}

fn raw(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join(DB_FILE)).unwrap()
}

fn count(dir: &Path, table: &str) -> i64 {
    raw(dir)
        .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn enrol_read_and_list_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    s.enroll(&id("alice"), &[tpl(1), tpl(2)], Some("access"))
        .unwrap();
    s.enroll(&id("bob"), &[tpl(3)], None).unwrap();
    s.add_templates(&id("bob"), &[tpl(4)], Some("re-enrol"))
        .unwrap();

    assert_eq!(s.templates(&id("alice")).unwrap(), vec![tpl(1), tpl(2)]);
    assert_eq!(s.templates(&id("bob")).unwrap(), vec![tpl(3), tpl(4)]);
    assert_eq!(s.subject_count().unwrap(), 2);

    let all = s.all_templates(Modality::Face).unwrap();
    let ids: Vec<_> = all.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(ids, ["alice", "alice", "bob", "bob"]);
    assert_eq!(all[3].1, tpl(4));

    let list = s.list().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!((list[0].id.as_str(), list[0].templates), ("alice", 2));
    assert_eq!((list[1].id.as_str(), list[1].templates), ("bob", 2));
    assert!(list[0].created_at.ends_with('Z'));
    let json = serde_json::to_value(&list).unwrap();
    assert_eq!(json[1]["id"], "bob");
    assert_eq!(json[1]["templates"], 2);

    let ops: Vec<_> = s
        .audit_log(10)
        .unwrap()
        .into_iter()
        .map(|e| e.operation)
        .collect();
    assert_eq!(ops, ["add_templates", "enroll", "enroll"]);
}

#[test]
fn reopen_persists() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = Store::open(dir.path()).unwrap();
        s.enroll(&id("alice"), &[tpl(1)], None).unwrap();
    }
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.templates(&id("alice")).unwrap(), vec![tpl(1)]);
    assert_eq!(s.audit_log(10).unwrap().len(), 1);
}

#[test]
fn open_creates_nested_directories() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/store");
    let s = Store::open(&nested).unwrap();
    assert_eq!(s.dir(), nested);
    assert!(nested.join(KEY_FILE).is_file());
}

#[test]
fn duplicate_enrolment_leaves_store_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    s.enroll(&id("alice"), &[tpl(1)], Some("a")).unwrap();
    let err = s
        .enroll(&id("alice"), &[tpl(2), tpl(3)], Some("b"))
        .unwrap_err();
    assert!(matches!(err, StoreError::DuplicateSubject(ref x) if x.as_str() == "alice"));
    assert_eq!(s.templates(&id("alice")).unwrap(), vec![tpl(1)]);
    assert_eq!(s.audit_log(10).unwrap().len(), 1);
    drop(s);
    assert_eq!(count(dir.path(), "templates"), 1);
}

#[test]
fn unknown_subject_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    let ghost = id("ghost");
    assert!(matches!(
        s.templates(&ghost),
        Err(StoreError::UnknownSubject(_))
    ));
    assert!(matches!(
        s.add_templates(&ghost, &[tpl(1)], None),
        Err(StoreError::UnknownSubject(_))
    ));
    assert!(matches!(
        s.erase(&ghost, None),
        Err(StoreError::UnknownSubject(_))
    ));
    assert_eq!(s.subject_count().unwrap(), 0);
    assert!(s.audit_log(10).unwrap().is_empty());
}

#[test]
fn erase_removes_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = Store::open(dir.path()).unwrap();
        s.enroll(&id("alice"), &[tpl(1), tpl(2)], None).unwrap();
        s.enroll(&id("bob"), &[tpl(3)], None).unwrap();
        s.erase(&id("alice"), Some("subject request")).unwrap();
        assert!(matches!(
            s.templates(&id("alice")),
            Err(StoreError::UnknownSubject(_))
        ));
        // The WAL was truncated by the checkpoint.
        let wal = dir.path().join(format!("{DB_FILE}-wal"));
        assert_eq!(fs::metadata(wal).map(|m| m.len()).unwrap_or(0), 0);
    }
    let s = Store::open(dir.path()).unwrap();
    assert!(matches!(
        s.templates(&id("alice")),
        Err(StoreError::UnknownSubject(_))
    ));
    assert_eq!(s.templates(&id("bob")).unwrap(), vec![tpl(3)]);
    assert_eq!(s.subject_count().unwrap(), 1);
    let last = &s.audit_log(1).unwrap()[0];
    assert_eq!(last.operation, "erase");
    assert_eq!(last.subject.as_ref().map(SubjectId::as_str), Some("alice"));
    assert_eq!(last.detail.as_deref(), Some("templates=2"));
    drop(s);
    let n: i64 = raw(dir.path())
        .query_row(
            "SELECT COUNT(*) FROM templates WHERE subject_id = 'alice'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn failure_midway_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    let mut bad = tpl(9);
    bad.vector[5] = f32::NAN;
    // The subject row and the first template are written before the bad one is reached.
    let err = s
        .enroll(&id("alice"), &[tpl(1), tpl(2), bad.clone()], None)
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidTemplate(_)));
    assert!(!err.to_string().contains("NaN"));
    assert_eq!(s.subject_count().unwrap(), 0);
    assert!(s.audit_log(10).unwrap().is_empty());

    s.enroll(&id("bob"), &[tpl(3)], None).unwrap();
    assert!(s.add_templates(&id("bob"), &[tpl(4), bad], None).is_err());
    assert_eq!(s.templates(&id("bob")).unwrap(), vec![tpl(3)]);
    assert_eq!(s.audit_log(10).unwrap().len(), 1);
    drop(s);
    assert_eq!(count(dir.path(), "subjects"), 1);
    assert_eq!(count(dir.path(), "templates"), 1);
    assert_eq!(count(dir.path(), "audit"), 1);
}

#[test]
fn tampered_ciphertext_fails_to_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    Store::open(dir.path())
        .unwrap()
        .enroll(&id("alice"), &[tpl(1)], None)
        .unwrap();
    let c = raw(dir.path());
    let mut ct: Vec<u8> = c
        .query_row("SELECT ciphertext FROM templates", [], |r| r.get(0))
        .unwrap();
    ct[10] ^= 0x01;
    c.execute("UPDATE templates SET ciphertext = ?1", [ct])
        .unwrap();
    drop(c);
    let s = Store::open(dir.path()).unwrap();
    assert!(matches!(s.templates(&id("alice")), Err(StoreError::Crypto)));
    assert!(matches!(
        s.all_templates(Modality::Face),
        Err(StoreError::Crypto)
    ));
}

#[test]
fn ciphertext_moved_to_another_subject_or_model_fails() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = Store::open(dir.path()).unwrap();
        s.enroll(&id("alice"), &[tpl(1)], None).unwrap();
        s.enroll(&id("mallory"), &[tpl(2)], None).unwrap();
    }
    let c = raw(dir.path());
    // Give mallory a copy of alice's template, with its wrapped data key.
    c.execute(
        "INSERT INTO templates
             (subject_id, modality, model, nonce, ciphertext, created_at, wrapped_key)
         SELECT 'mallory', modality, model, nonce, ciphertext, created_at, wrapped_key
         FROM templates WHERE subject_id = 'alice'",
        [],
    )
    .unwrap();
    drop(c);
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.templates(&id("alice")).unwrap(), vec![tpl(1)]);
    assert!(matches!(
        s.templates(&id("mallory")),
        Err(StoreError::Crypto)
    ));
    drop(s);

    raw(dir.path())
        .execute(
            "UPDATE templates SET model = 'other-model' WHERE subject_id = 'alice'",
            [],
        )
        .unwrap();
    let s = Store::open(dir.path()).unwrap();
    assert!(matches!(s.templates(&id("alice")), Err(StoreError::Crypto)));
    drop(s);

    // A row stripped of its data key fails on its own; the store still opens.
    raw(dir.path())
        .execute(
            "UPDATE templates SET model = 'synthetic-v1', wrapped_key = NULL
             WHERE subject_id = 'alice'",
            [],
        )
        .unwrap();
    let s = Store::open(dir.path()).unwrap();
    assert!(matches!(s.templates(&id("alice")), Err(StoreError::Crypto)));
}

#[test]
fn key_file_is_owner_only_and_well_formed() {
    let dir = tempfile::tempdir().unwrap();
    Store::open(dir.path()).unwrap();
    let path = dir.path().join(KEY_FILE);
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let bytes = fs::read(&path).unwrap();
    assert_eq!(bytes.len(), ipseity_store::key::FILE_LEN);
    assert_eq!(&bytes[..8], b"IPSKEY01");
}

#[test]
fn key_file_readable_by_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    Store::open(dir.path()).unwrap();
    let path = dir.path().join(KEY_FILE);
    for mode in [0o644, 0o640, 0o604, 0o660] {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::KeyFile(_)), "{mode:o}");
        assert!(err.to_string().contains("chmod 600"));
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
    Store::open(dir.path()).unwrap();
}

fn corrupt_key_and_open(dir: &Path, f: impl FnOnce(&mut Vec<u8>)) -> StoreError {
    let path = dir.join(KEY_FILE);
    let mut bytes = fs::read(&path).unwrap();
    f(&mut bytes);
    fs::write(&path, &bytes).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    Store::open(dir).unwrap_err()
}

#[test]
fn corrupt_or_wrong_key_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    Store::open(dir.path())
        .unwrap()
        .enroll(&id("alice"), &[tpl(1)], None)
        .unwrap();
    let original = fs::read(dir.path().join(KEY_FILE)).unwrap();
    let restore = || fs::write(dir.path().join(KEY_FILE), &original).unwrap();

    let e = corrupt_key_and_open(dir.path(), |b| b.truncate(20));
    assert!(
        matches!(e, StoreError::KeyFile(ref m) if m.contains("20 bytes")),
        "{e}"
    );
    restore();
    let e = corrupt_key_and_open(dir.path(), |b| b[0] = b'J');
    assert!(
        matches!(e, StoreError::KeyFile(ref m) if m.contains("magic")),
        "{e}"
    );
    restore();
    let e = corrupt_key_and_open(dir.path(), |b| b[12] ^= 0x40);
    assert!(
        matches!(e, StoreError::KeyFile(ref m) if m.contains("checksum")),
        "{e}"
    );
    restore();

    // A well-formed key from another store does not match this database.
    let other = tempfile::tempdir().unwrap();
    Store::open(other.path()).unwrap();
    let other_key = fs::read(other.path().join(KEY_FILE)).unwrap();
    let e = corrupt_key_and_open(dir.path(), |b| *b = other_key);
    assert!(
        matches!(e, StoreError::KeyFile(ref m) if m.contains("does not match")),
        "{e}"
    );
    restore();

    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.templates(&id("alice")).unwrap(), vec![tpl(1)]);
}

#[test]
fn missing_key_with_existing_database_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    Store::open(dir.path())
        .unwrap()
        .enroll(&id("alice"), &[tpl(1)], None)
        .unwrap();
    fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
    let e = Store::open(dir.path()).unwrap_err();
    assert!(
        matches!(e, StoreError::KeyFile(ref m) if m.contains("missing")),
        "{e}"
    );
    assert!(!dir.path().join(KEY_FILE).exists(), "no new key was made");
}

#[test]
fn errors_carry_no_template_values() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    let mut bad = Template::new(Modality::Face, "m", vec![0.123_456_7; 4], 50).unwrap();
    bad.vector[3] = f32::INFINITY;
    let e = s.enroll(&id("a"), &[bad], None).unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(!text.contains("0.123"), "{text}");
}

// ---- compatibility fixture -------------------------------------------------------------

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v1")
}

/// The synthetic content of the v1 fixture: `(subject, templates)`.
fn fixture_content() -> Vec<(SubjectId, Vec<Template>)> {
    let t = |seed: u32, dim: usize, quality: u8| {
        Template::new(
            Modality::Face,
            "synthetic-v1",
            synthetic(seed, dim),
            quality,
        )
        .unwrap()
    };
    vec![
        (id("fixture-a"), vec![t(1, 16, 90), t(2, 16, 75)]),
        (id("fixture-b"), vec![t(3, 8, 100)]),
    ]
}

/// Rewrites `tests/data/v1` from the current code when `IPSEITY_REGEN_FIXTURES=1`.
#[test]
fn regenerate_v1_fixture() {
    if std::env::var("IPSEITY_REGEN_FIXTURES").as_deref() != Ok("1") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    {
        let mut s = Store::open(tmp.path()).unwrap();
        for (subject, templates) in fixture_content() {
            s.enroll(&subject, &templates, Some("fixture")).unwrap();
        }
        s.record_audit(
            &ipseity_core::AuditEvent::Verified {
                modality: Modality::Face,
                decision: ipseity_core::Decision::Accept,
                compared: None,
            },
            Some(&id("fixture-a")),
            Some("fixture"),
        )
        .unwrap();
    }
    assert!(
        !tmp.path().join(format!("{DB_FILE}-wal")).exists(),
        "closing the store checkpoints the WAL into the database"
    );
    let out = fixture_dir();
    fs::create_dir_all(&out).unwrap();
    for name in [DB_FILE, KEY_FILE] {
        fs::copy(tmp.path().join(name), out.join(name)).unwrap();
    }
}

#[test]
fn opens_v1_fixture() {
    let src = fixture_dir();
    let tmp = tempfile::tempdir().unwrap();
    for name in [DB_FILE, KEY_FILE] {
        fs::copy(src.join(name), tmp.path().join(name)).unwrap();
    }
    // Git does not keep the 0600 mode.
    fs::set_permissions(tmp.path().join(KEY_FILE), fs::Permissions::from_mode(0o600)).unwrap();

    let s = Store::open(tmp.path()).unwrap();
    let expected = fixture_content();
    assert_eq!(s.subject_count().unwrap(), expected.len());
    for (subject, templates) in &expected {
        assert_eq!(&s.templates(subject).unwrap(), templates);
    }
    let log = s.audit_log(10).unwrap();
    let ops: Vec<_> = log.iter().map(|e| e.operation.as_str()).collect();
    assert_eq!(ops, ["verify", "enroll", "enroll"]);
    assert_eq!(log[0].outcome, "accept");
    let version: String = raw(tmp.path())
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    // Opening migrates the v1 file: schema 2 starts the id high-water mark at the
    // highest template id, so a new template never takes an old id.
    assert_eq!(version, ipseity_store::schema::SCHEMA_VERSION.to_string());
    let high: String = raw(tmp.path())
        .query_row(
            "SELECT value FROM meta WHERE key = 'template_id_high_water'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(high, "3");
}

// ---- write transactions, marks, permissions --------------------------------------------

#[test]
fn template_ids_are_never_reused_after_an_erasure() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    s.enroll(&id("a"), &[tpl(1)], None).unwrap();
    s.enroll(&id("b"), &[tpl(2)], None).unwrap();
    let mark = s.template_mark().unwrap();
    // Erasing the newest row would let SQLite hand its id out again.
    s.erase(&id("b"), None).unwrap();
    s.enroll(&id("c"), &[tpl(3)], None).unwrap();
    let tx = s.begin_write().unwrap();
    let since = tx.templates_since(Modality::Face, mark).unwrap();
    let names: Vec<_> = since.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(names, ["c"]);
    assert_eq!(since[0].1, tpl(3));
    assert!(tx
        .templates_since(Modality::Fingerprint, mark)
        .unwrap()
        .is_empty());
}

#[test]
fn a_failing_audit_row_rolls_back_the_enrolment_in_its_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    // The injected fault: the audit table refuses the duplicate-allowed row.
    raw(dir.path())
        .execute_batch(
            "CREATE TRIGGER fail_dup BEFORE INSERT ON audit
             WHEN NEW.outcome = 'duplicate_allowed'
             BEGIN SELECT RAISE(ABORT, 'injected'); END;",
        )
        .unwrap();
    let mut tx = s.begin_write().unwrap();
    tx.enroll(&id("a"), &[tpl(1)], Some("kyc")).unwrap();
    let err = tx.audit(
        &ipseity_core::AuditEvent::DuplicateAllowed {
            modality: Modality::Face,
            duplicate_of: vec![id("z")],
        },
        Some(&id("a")),
        Some("kyc"),
    );
    assert!(err.is_err());
    drop(tx);
    assert_eq!(s.subject_count().unwrap(), 0);
    assert_eq!(count(dir.path(), "templates"), 0);
    assert_eq!(count(dir.path(), "audit"), 0);
}

#[test]
fn store_files_are_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    s.enroll(&id("a"), &[tpl(1)], None).unwrap();
    for name in [
        DB_FILE.to_owned(),
        format!("{DB_FILE}-wal"),
        format!("{DB_FILE}-shm"),
    ] {
        let p = dir.path().join(&name);
        if let Ok(m) = fs::metadata(&p) {
            assert_eq!(m.permissions().mode() & 0o777, 0o600, "{name}");
        }
    }
    drop(s);
    // A store made by an older build with 0644 files is tightened on open.
    fs::set_permissions(dir.path().join(DB_FILE), fs::Permissions::from_mode(0o644)).unwrap();
    let _s = Store::open(dir.path()).unwrap();
    let m = fs::metadata(dir.path().join(DB_FILE)).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o600);
}

#[test]
fn read_only_open_never_creates_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo");
    assert!(matches!(
        Store::open_existing(&missing),
        Err(StoreError::NoStore(_))
    ));
    assert!(!missing.exists());
    Store::open(&missing).unwrap();
    Store::open_existing(&missing).unwrap();
}

#[test]
fn erase_under_a_reader_says_so_and_the_next_open_wipes_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    s.enroll(&id("a"), &[tpl(1)], None).unwrap();
    s.enroll(&id("b"), &[tpl(2)], None).unwrap();
    // A reader holding a snapshot keeps the WAL from being truncated.
    let reader = raw(dir.path());
    reader.execute_batch("BEGIN").unwrap();
    let _: i64 = reader
        .query_row("SELECT COUNT(*) FROM templates", [], |r| r.get(0))
        .unwrap();
    let erased = s.erase(&id("a"), None).unwrap();
    assert_eq!(erased.templates, 1);
    assert!(!erased.wal_wiped);
    reader.execute_batch("COMMIT").unwrap();
    drop(reader);
    drop(s);
    let _s = Store::open(dir.path()).unwrap();
    let wal = dir.path().join(format!("{DB_FILE}-wal"));
    assert_eq!(fs::metadata(wal).map(|m| m.len()).unwrap_or(0), 0);
}

#[test]
fn a_full_disk_is_disk_full_and_leaves_no_stray_files() {
    let Some(fs_) = Tmpfs::new("2m") else {
        return;
    };
    let dir = fs_.0.path().join("store");
    Store::open(&dir)
        .unwrap()
        .enroll(&id("a"), &[tpl(1)], None)
        .unwrap();
    // Fill the file system to within about 20 KB.
    let free = {
        let out = std::process::Command::new("df")
            .args(["-k", "--output=avail"])
            .arg(fs_.0.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse::<u64>().ok())
            .unwrap()
    };
    fs::write(
        fs_.0.path().join("fill"),
        vec![0u8; ((free.saturating_sub(20)) * 1024) as usize],
    )
    .unwrap();
    let before: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(matches!(Store::open(&dir), Err(StoreError::DiskFull)));
    let after: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(before, after, "no -wal or -shm file left behind");
    // Space returns: the store opens and holds what it held.
    fs::remove_file(fs_.0.path().join("fill")).unwrap();
    let s = Store::open(&dir).unwrap();
    assert_eq!(s.templates(&id("a")).unwrap(), vec![tpl(1)]);
}

/// Whether `hay` holds any 16-byte piece of `needle`.
fn holds_piece_of(hay: &[u8], needle: &[u8]) -> bool {
    needle
        .chunks_exact(16)
        .any(|piece| hay.windows(16).any(|w| w == piece))
}

#[test]
fn erased_ciphertexts_leave_no_trace_in_the_database_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    s.enroll(&id("alice"), &[tpl(1), tpl(2)], Some("kyc"))
        .unwrap();
    s.enroll(&id("bob"), &[tpl(3)], Some("kyc")).unwrap();
    // Each template's ciphertext and its wrapped data key.
    let sealed = |who: &str| -> Vec<Vec<u8>> {
        let c = raw(dir.path());
        let mut q = c
            .prepare("SELECT ciphertext, wrapped_key FROM templates WHERE subject_id = ?1")
            .unwrap();
        let rows = q.query_map([who], |r| Ok([r.get(0)?, r.get(1)?])).unwrap();
        rows.flat_map(Result::unwrap).collect()
    };
    let (alice, bob) = (sealed("alice"), sealed("bob"));
    assert_eq!((alice.len(), bob.len()), (4, 2));
    let files = || -> Vec<u8> {
        let mut all = Vec::new();
        for f in [DB_FILE.to_owned(), format!("{DB_FILE}-wal")] {
            all.extend(fs::read(dir.path().join(f)).unwrap_or_default());
        }
        all
    };
    // The check can fail: before the erasure both are in the files.
    let before = files();
    assert!(alice.iter().all(|c| holds_piece_of(&before, c)));
    s.erase(&id("alice"), Some("subject request")).unwrap();
    let after = files();
    for c in &alice {
        assert!(
            !holds_piece_of(&after, c),
            "an erased ciphertext or data key is still in the files"
        );
    }
    assert!(
        bob.iter().all(|c| holds_piece_of(&after, c)),
        "bob's is kept"
    );
}
