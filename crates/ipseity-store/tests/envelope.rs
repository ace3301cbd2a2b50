//! Envelope encryption on both backends: rotating the master key re-wraps every data key
//! while another connection (another server process) keeps reading and writing, an
//! interrupted rotation is settled at the next open, the old key no longer opens the
//! store, and an erased template leaves nothing in PostgreSQL's table files.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

#[path = "support/backends.rs"]
mod support;

use std::fs;

use ipseity_core::{Modality, SubjectId, Template};
use ipseity_store::envelope::NEXT_KEY_FILE;
use ipseity_store::key::KEY_FILE;
use ipseity_store::{Backend, PgStore, Store, StoreError};
use support::Place;

fn id(s: &str) -> SubjectId {
    SubjectId::new(s).unwrap()
}

fn tpl(seed: u32) -> Template {
    let v = (0..128)
        .map(|i| ((i * 7 + seed * 13) % 64) as f32 / 32.0 - 1.0)
        .collect();
    Template::new(Modality::Face, "synthetic-v1", v, 90).unwrap()
}

fn enrol(s: &mut Box<dyn Backend>, who: &str, seeds: &[u32]) {
    let ts: Vec<_> = seeds.iter().map(|&k| tpl(k)).collect();
    let mut tx = s.begin_write().unwrap();
    tx.enroll(&id(who), &ts, Some("kyc")).unwrap();
    tx.commit().unwrap();
}

/// Writes a key file as the store would: owner-only.
fn write_key(path: &std::path::Path, bytes: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

fn open_err(place: &Place) -> StoreError {
    match place {
        Place::Sqlite(d) => Store::open(d.path()).unwrap_err(),
        Place::Postgres { url, keys } => PgStore::open(url, keys.path()).unwrap_err(),
    }
}

#[test]
fn rotation_rewraps_every_data_key_while_another_process_keeps_working() {
    for place in Place::all("rotation_rewraps_every_data_key") {
        let n = place.name();
        let key_path = place.dir().join(KEY_FILE);
        let mut server = place.open();
        enrol(&mut server, "alice", &[1, 2]);
        enrol(&mut server, "bob", &[3]);
        let old_key = fs::read(&key_path).unwrap();

        // The command line rotates while the "server" connection stays open.
        let mut cli = place.open();
        assert_eq!(cli.rotate_master().unwrap(), 3, "{n}");
        let new_key = fs::read(&key_path).unwrap();
        assert_ne!(old_key, new_key, "{n}: the key file holds the new key");
        assert!(!place.dir().join(NEXT_KEY_FILE).exists(), "{n}");

        // The server reads what was there and writes new subjects under the new key.
        assert_eq!(
            server.templates(&id("alice")).unwrap(),
            vec![tpl(1), tpl(2)]
        );
        enrol(&mut server, "carol", &[4]);
        let mut seen = 0;
        server
            .template_chunks(Modality::Face, 2, &mut |c| {
                seen += c.len();
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, 4, "{n}");
        // A second rotation, from the server's side this time.
        assert_eq!(server.rotate_master().unwrap(), 4, "{n}");
        assert_eq!(cli.templates(&id("carol")).unwrap(), vec![tpl(4)], "{n}");
        drop((server, cli));

        // A fresh open reads everything; the audit chain still verifies and names both
        // rotations.
        let s = place.open();
        assert_eq!(s.templates(&id("bob")).unwrap(), vec![tpl(3)], "{n}");
        assert!(s.verify_audit(None).unwrap().intact(), "{n}");
        let rotations = s
            .audit_log(50)
            .unwrap()
            .into_iter()
            .filter(|e| e.operation == "key_rotate_master")
            .count();
        assert_eq!(rotations, 2, "{n}");
        drop(s);

        // The old key no longer opens the store.
        write_key(&key_path, &old_key);
        assert!(
            matches!(open_err(&place), StoreError::KeyFile(m) if m.contains("does not match")),
            "{n}"
        );
    }
}

#[test]
fn an_interrupted_rotation_is_settled_at_the_next_open() {
    for place in Place::all("an_interrupted_rotation_is_settled") {
        let n = place.name();
        let key_path = place.dir().join(KEY_FILE);
        let next_path = place.dir().join(NEXT_KEY_FILE);
        let mut s = place.open();
        enrol(&mut s, "alice", &[1]);
        let old_key = fs::read(&key_path).unwrap();
        s.rotate_master().unwrap();
        drop(s);
        let new_key = fs::read(&key_path).unwrap();

        // Killed after the commit, before the new key was moved into place.
        fs::rename(&key_path, &next_path).unwrap();
        write_key(&key_path, &old_key);
        let s = place.open();
        assert_eq!(s.templates(&id("alice")).unwrap(), vec![tpl(1)], "{n}");
        assert_eq!(fs::read(&key_path).unwrap(), new_key, "{n}: finished");
        assert!(!next_path.exists(), "{n}");
        drop(s);

        // Killed before the commit: the next key was never used and is thrown away.
        write_key(&next_path, &old_key);
        let s = place.open();
        assert_eq!(s.templates(&id("alice")).unwrap(), vec![tpl(1)], "{n}");
        assert_eq!(fs::read(&key_path).unwrap(), new_key, "{n}: kept");
        assert!(!next_path.exists(), "{n}: abandoned");
    }
}

/// Whether `hay` holds any 16-byte piece of `needle`.
fn holds_piece_of(hay: &[u8], needle: &[u8]) -> bool {
    needle
        .chunks_exact(16)
        .any(|piece| hay.windows(16).any(|w| w == piece))
}

#[test]
fn an_erased_template_leaves_no_trace_in_postgresql_table_files() {
    let Some(place) = Place::postgres("an_erased_template_leaves_no_trace") else {
        return;
    };
    let Place::Postgres { url, .. } = &place else {
        unreachable!()
    };
    let mut s = place.open();
    enrol(&mut s, "alice", &[1, 2]);
    enrol(&mut s, "bob", &[3]);
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let sealed = |c: &mut postgres::Client, who: &str| -> Vec<Vec<u8>> {
        c.query(
            "SELECT ciphertext, wrapped_key FROM templates WHERE subject_id = $1",
            &[&who],
        )
        .unwrap()
        .iter()
        .flat_map(|r| [r.get::<_, Vec<u8>>(0), r.get::<_, Vec<u8>>(1)])
        .collect()
    };
    let (alice, bob) = (sealed(&mut c, "alice"), sealed(&mut c, "bob"));
    assert_eq!((alice.len(), bob.len()), (4, 2));
    // The table's files (main fork and its TOAST table, every segment), as on disk after
    // a checkpoint.
    let files = |c: &mut postgres::Client| -> Vec<u8> {
        c.batch_execute("CHECKPOINT").unwrap();
        let data: String = c.query_one("SHOW data_directory", &[]).unwrap().get(0);
        let rels: Vec<String> = c
            .query(
                "SELECT pg_relation_filepath(oid) FROM pg_class
                 WHERE oid = 'templates'::regclass
                    OR oid = (SELECT reltoastrelid FROM pg_class WHERE oid = 'templates'::regclass)",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(!rels.is_empty());
        let mut all = Vec::new();
        for rel in rels {
            let base = std::path::Path::new(&data).join(rel);
            all.extend(fs::read(&base).unwrap());
            for seg in 1.. {
                match fs::read(format!("{}.{seg}", base.display())) {
                    Ok(b) => all.extend(b),
                    Err(_) => break,
                }
            }
        }
        all
    };
    // The check can fail: before the erasure both are in the files.
    let before = files(&mut c);
    assert!(alice.iter().all(|x| holds_piece_of(&before, x)));
    s.erase(&id("alice"), Some("subject request")).unwrap();
    // Plain VACUUM marks the dead tuples' space free without overwriting it; VACUUM FULL
    // writes the live rows to new files and removes the old ones (docs/RELIABILITY.md).
    c.batch_execute("VACUUM FULL templates").unwrap();
    let after = files(&mut c);
    for x in &alice {
        assert!(
            !holds_piece_of(&after, x),
            "an erased ciphertext or data key is still in the table files"
        );
    }
    assert!(
        bob.iter().all(|x| holds_piece_of(&after, x)),
        "bob's is kept"
    );
}
