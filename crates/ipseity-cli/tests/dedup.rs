//! Integration tests of `ipseity dedup` (and the `bench search` smoke test),
//! running the built binary.
//!
//! The enrolled-gallery test needs the face models and test images, named by
//! `IPSEITY_MODELS_DIR` and `IPSEITY_TEST_IMAGES`; without them it prints a
//! message and passes, unless `IPSEITY_REQUIRE_MODELS` is set (the
//! conventions of `tests/cli.rs`). The others use synthetic vectors.

use std::path::Path;

use serde_json::json;

mod common;
use common::{fixtures, ipseity, json as parse, run};

fn write_f32(path: &Path, rows: &[Vec<f32>]) {
    let bytes: Vec<u8> = rows
        .iter()
        .flatten()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    std::fs::write(path, bytes).expect("write vectors");
}

/// A unit vector along axis `i`, nudged by `e` along the next axis.
fn axis(dim: usize, i: usize, e: f32) -> Vec<f32> {
    let mut v = vec![0.0; dim];
    v[i] = 1.0;
    v[(i + 1) % dim] = e;
    v
}

// ---------------------------------------------------------------- no models needed

#[test]
fn dedup_of_the_store_requires_a_purpose() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (rc, out, _) = run(ipseity(dir.path()).args(["--json", "dedup"]));
    assert_eq!(rc, 2);
    assert_eq!(parse(&out)["error"]["code"], "purpose_required");
    // An empty store has no duplicates.
    let (rc, out, err) = run(ipseity(dir.path()).args(["--json", "--purpose", "test", "dedup"]));
    assert_eq!(rc, 0, "{out}{err}");
    assert_eq!(parse(&out)["summary"]["subjects"], 0);
}

#[test]
fn dedup_of_raw_vectors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("g.f32");
    // Rows 0 and 3 are near copies, as are 3 and 5: one cluster of three.
    let rows = vec![
        axis(8, 0, 0.0),
        axis(8, 1, 0.0),
        axis(8, 2, 0.0),
        axis(8, 0, 0.05),
        axis(8, 4, 0.0),
        axis(8, 0, 0.1),
    ];
    write_f32(&file, &rows);
    let (rc, out, err) = run(ipseity(dir.path())
        .args(["--json", "dedup", "--dim", "8", "--embeddings"])
        .arg(&file));
    assert_eq!(rc, 1, "{out}{err}");
    let v = parse(&out);
    let pairs: Vec<(String, String)> = v["pairs"]
        .as_array()
        .expect("pairs")
        .iter()
        .map(|p| (p["subject_a"].to_string(), p["subject_b"].to_string()))
        .collect();
    let want: Vec<(String, String)> = [("0", "3"), ("0", "5"), ("3", "5")]
        .iter()
        .map(|(a, b)| (json!(a).to_string(), json!(b).to_string()))
        .collect();
    assert_eq!(pairs, want);
    assert_eq!(
        v["clusters"],
        json!([{"cluster": 1, "subjects": ["0", "3", "5"]}])
    );
    assert!(!out.contains("similarity") && !out.contains("score"));

    // CSV to a file; stdout keeps the summary.
    let csv = dir.path().join("pairs.csv");
    let (rc, out, err) = run(ipseity(dir.path())
        .args(["dedup", "--threshold", "accept", "--dim", "8", "--out"])
        .arg(&csv)
        .arg("--embeddings")
        .arg(&file));
    assert_eq!(rc, 1, "{out}{err}");
    assert!(
        out.contains("3 candidate duplicate pair(s) in 1 cluster(s)"),
        "{out}"
    );
    let text = std::fs::read_to_string(&csv).expect("csv");
    assert_eq!(
        text,
        "subject_a,subject_b,decision,cluster\n0,3,accept,1\n0,5,accept,1\n3,5,accept,1\n"
    );

    // No duplicates: exit 0. A file that is not whole rows: exit 2.
    write_f32(&file, &rows[..3]);
    let (rc, out, err) = run(ipseity(dir.path())
        .args(["dedup", "--dim", "8", "--embeddings"])
        .arg(&file));
    assert_eq!(rc, 0, "{out}{err}");
    let (rc, out, _) = run(ipseity(dir.path())
        .args(["--json", "dedup", "--dim", "7", "--embeddings"])
        .arg(&file));
    assert_eq!(rc, 2);
    assert_eq!(parse(&out)["error"]["code"], "bad_embeddings");
}

#[test]
fn bench_search_is_exact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (rc, out, err) = run(ipseity(dir.path()).args([
        "--json",
        "bench",
        "search",
        "--gallery",
        "3000",
        "--dim",
        "32",
        "--queries",
        "50",
    ]));
    assert_eq!(rc, 0, "{out}{err}");
    let v = parse(&out);
    assert_eq!(v["recall_at_1"], 1.0);
    assert_eq!(v["batch_equals_single"], true);
    assert!(v["qps_batch1"].as_f64().expect("qps") > 0.0);
}

// ---------------------------------------------------------------- models

#[test]
fn dedup_finds_the_subject_enrolled_twice() {
    let Some((models, images)) = fixtures() else {
        return;
    };
    let data = tempfile::tempdir().expect("tempdir");
    let d = data.path();
    for (subject, image) in [("a", "obama.jpg"), ("b", "obama2.jpg"), ("c", "biden.jpg")] {
        let (rc, out, err) = run(ipseity(d)
            .env("IPSEITY_MODELS_DIR", &models)
            .args([
                "enroll",
                "--allow-duplicate",
                "--subject",
                subject,
                "--face",
            ])
            .arg(images.join(image)));
        assert_eq!(rc, 0, "{subject}: {out}{err}");
    }
    let (rc, out, err) = run(ipseity(d).args(["--json", "--purpose", "dedup test", "dedup"]));
    assert_eq!(rc, 1, "{out}{err}");
    let v = parse(&out);
    let pairs = v["pairs"].as_array().expect("pairs");
    assert_eq!(pairs.len(), 1, "{out}");
    assert_eq!(pairs[0]["subject_a"], "a");
    assert_eq!(pairs[0]["subject_b"], "b");
    assert_eq!(
        v["clusters"],
        json!([{"cluster": 1, "subjects": ["a", "b"]}])
    );
    assert_eq!(v["summary"]["subjects"], 3);
    assert!(!out.contains("similarity") && !out.contains("score"));

    let (rc, out, err) = run(ipseity(d).args(["--json", "audit", "--limit", "1"]));
    assert_eq!(rc, 0, "{out}{err}");
    assert!(out.contains("dedup") && out.contains("dedup test"), "{out}");
}
