//! Integration tests that run the built `ipseity` binary.
//!
//! Tests marked "models" need the face models and test images, named by
//! `IPSEITY_MODELS_DIR` and `IPSEITY_TEST_IMAGES`; without them they print a
//! message and pass, unless `IPSEITY_REQUIRE_MODELS` is set. Face inference is
//! slow (seconds per image), so they share images sparingly.

use std::path::Path;

mod common;
use common::{error_code, fixtures, ipseity, json, run};

fn subjects(data: &Path, models: &Path) -> Vec<String> {
    let (rc, out, err) = run(ipseity(data)
        .env("IPSEITY_MODELS_DIR", models)
        .args(["--json", "list"]));
    assert_eq!(rc, 0, "{err}");
    json(&out)["subjects"]
        .as_array()
        .expect("subjects")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect()
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
    out
}

/// A well-formed PNG whose header claims `width` x `height` RGB pixels.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(png_chunk(b"IHDR", &ihdr));
    png.extend(png_chunk(
        b"IDAT",
        &[0x78, 0x01, 0x01, 0x00, 0x00, 0xFF, 0xFF],
    ));
    png.extend(png_chunk(b"IEND", &[]));
    png
}

// ---------------------------------------------------------------- no models needed

#[test]
fn bad_arguments_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (rc, _, err) = run(ipseity(dir.path()).args(["verify", "--subject", "x"]));
    assert_eq!(rc, 2, "{err}");
    let (rc, _, _) = run(ipseity(dir.path()).arg("no-such-command"));
    assert_eq!(rc, 2);
    let (rc, out, _) = run(ipseity(dir.path()).args(["--json", "enroll"]));
    assert_eq!(rc, 2);
    assert_eq!(error_code(&out), "usage");
    let (rc, out, _) = run(ipseity(dir.path()).arg("--help"));
    assert_eq!(rc, 0);
    assert!(out.contains("verify"));
}

#[test]
fn empty_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (rc, out, err) = run(ipseity(dir.path()).arg("list"));
    assert_eq!(rc, 0, "{err}");
    assert!(out.contains("no subjects"), "{out}");
    let (rc, out, _) = run(ipseity(dir.path()).args(["--json", "list"]));
    assert_eq!(rc, 0);
    assert_eq!(json(&out)["subjects"], serde_json::json!([]));

    // Unknown subject is found before any image or model is touched.
    let (rc, out, err) = run(ipseity(dir.path()).args([
        "--json",
        "verify",
        "--subject",
        "nobody",
        "--face",
        "/nonexistent.jpg",
    ]));
    assert_eq!(rc, 2);
    assert_eq!(error_code(&out), "unknown_subject");
    assert!(err.starts_with("error: "), "{err}");

    let (rc, out, _) = run(ipseity(dir.path()).args(["--json", "erase", "--subject", "nobody"]));
    assert_eq!(rc, 2);
    assert_eq!(error_code(&out), "unknown_subject");

    let (rc, out, _) = run(ipseity(dir.path()).args(["--json", "erase", "--subject", "bad id"]));
    assert_eq!(rc, 2);
    assert_eq!(error_code(&out), "invalid_subject_id");

    let (rc, out, _) = run(ipseity(dir.path()).args(["--json", "audit"]));
    assert_eq!(rc, 0);
    assert!(json(&out)["entries"].is_array());
}

#[test]
fn missing_models_without_auto_install() {
    let dir = tempfile::tempdir().expect("tempdir");
    let models = tempfile::tempdir().expect("tempdir");
    let img = dir.path().join("gray.png");
    image::RgbImage::from_pixel(200, 200, image::Rgb([128, 128, 128]))
        .save(&img)
        .expect("png");
    let (rc, out, err) = run(ipseity(dir.path())
        .env("IPSEITY_MODELS_DIR", models.path())
        .args(["--json", "embed", "--face"])
        .arg(&img));
    assert_eq!(rc, 2, "{err}");
    assert_eq!(error_code(&out), "models_missing");
    assert!(err.contains("ipseity models install"), "{err}");
}

// ---------------------------------------------------------------- models needed

#[test]
fn enroll_verify_identify_erase() {
    let Some((models, images)) = fixtures() else {
        return;
    };
    let data = tempfile::tempdir().expect("tempdir");
    let d = data.path();
    let img = |n: &str| images.join(n);
    let cli = || {
        let mut c = ipseity(d);
        c.env("IPSEITY_MODELS_DIR", &models);
        c
    };

    // Enrol obama; verify genuine and impostor.
    let (rc, out, err) = run(cli()
        .args([
            "--purpose",
            "test",
            "enroll",
            "--subject",
            "obama",
            "--face",
        ])
        .arg(img("obama.jpg")));
    assert_eq!(rc, 0, "{out}{err}");
    let (rc, out, err) = run(cli()
        .args(["--json", "verify", "--subject", "obama", "--face"])
        .arg(img("obama2.jpg")));
    assert_eq!(rc, 0, "{out}{err}");
    let v = json(&out);
    assert_eq!(v["decision"], "accept");
    assert!(v["quality"]["score"].is_number());
    assert!(v["operating_point"]["description"]
        .as_str()
        .expect("description")
        .contains("measured on LFW"));
    assert!(
        !out.contains("similarity") && !out.contains("score\":0."),
        "{out}"
    );
    let (rc, out, err) = run(cli()
        .args(["verify", "--subject", "obama", "--face"])
        .arg(img("biden.jpg")));
    assert_eq!(rc, 1, "{out}{err}");
    assert!(out.starts_with("reject"), "{out}");

    // A second subject; then obama3 under a new id is a possible duplicate.
    let (rc, out, err) = run(cli()
        .args(["enroll", "--subject", "biden", "--face"])
        .arg(img("biden.jpg")));
    assert_eq!(rc, 0, "{out}{err}");
    let (rc, out, err) = run(cli()
        .args(["--json", "enroll", "--subject", "dup", "--face"])
        .arg(img("obama3.jpg")));
    assert_eq!(rc, 3, "{out}{err}");
    assert_eq!(error_code(&out), "possible_duplicate");
    assert!(
        err.contains("possible duplicate enrolment: matches subject obama"),
        "{err}"
    );
    assert_eq!(subjects(d, &models), ["biden", "obama"]);

    // Identify needs a purpose; then obama, who consented to it at enrolment, comes first.
    let (rc, out, _) = run(cli()
        .args(["--json", "identify", "--face"])
        .arg(img("obama2.jpg")));
    assert_eq!(rc, 2, "{out}");
    assert_eq!(error_code(&out), "purpose_required");
    let (rc, out, err) = run(cli()
        .args(["--json", "--purpose", "test", "identify", "--face"])
        .arg(img("obama2.jpg")));
    assert_eq!(rc, 0, "{out}{err}");
    let v = json(&out);
    assert_eq!(v["candidates"][0]["subject"], "obama");
    assert_eq!(v["candidates"][0]["decision"], "accept");

    // Duplicate subject id: refused before any inference, store unchanged.
    let (rc, out, _) = run(cli()
        .args(["--json", "enroll", "--subject", "obama", "--face"])
        .arg(img("obama2.jpg")));
    assert_eq!(rc, 2);
    assert_eq!(error_code(&out), "duplicate_subject");

    // Bad inputs: exit 2, store unchanged.
    let tmp = tempfile::tempdir().expect("tempdir");
    let text = tmp.path().join("notes.jpg");
    std::fs::write(&text, "not an image at all\n").expect("write");
    let (rc, out, _) = run(cli()
        .args(["--json", "enroll", "--subject", "t1", "--face"])
        .arg(&text));
    assert_eq!(rc, 2);
    assert_eq!(error_code(&out), "not_an_image");

    let bytes = std::fs::read(img("obama.jpg")).expect("read");
    let half = tmp.path().join("half.jpg");
    std::fs::write(&half, &bytes[..bytes.len() / 2]).expect("write");
    let (rc, out, err) = run(cli()
        .args(["--json", "enroll", "--subject", "t2", "--face"])
        .arg(&half));
    assert_eq!(rc, 2, "{out}{err}");
    assert_eq!(error_code(&out), "corrupt_image");

    let gray = tmp.path().join("gray.png");
    image::RgbImage::from_pixel(200, 200, image::Rgb([128, 128, 128]))
        .save(&gray)
        .expect("png");
    let (rc, out, _) = run(cli()
        .args(["--json", "enroll", "--subject", "t3", "--face"])
        .arg(&gray));
    assert_eq!(rc, 2);
    assert_eq!(error_code(&out), "no_face");

    let huge = tmp.path().join("huge.png");
    std::fs::write(&huge, png_claiming(100_000, 100_000)).expect("write");
    let (rc, out, _) = run(cli()
        .args(["--json", "enroll", "--subject", "t4", "--face"])
        .arg(&huge));
    assert_eq!(rc, 2);
    assert_eq!(error_code(&out), "image_too_large");
    assert_eq!(subjects(d, &models), ["biden", "obama"]);

    // Erase, then verify: unknown subject.
    let (rc, _, err) = run(cli().args(["erase", "--subject", "obama"]));
    assert_eq!(rc, 0, "{err}");
    let (rc, out, _) = run(cli()
        .args(["--json", "verify", "--subject", "obama", "--face"])
        .arg(img("obama2.jpg")));
    assert_eq!(rc, 2);
    assert_eq!(error_code(&out), "unknown_subject");

    // The audit log has decisions and no scores.
    let (rc, out, _) = run(cli().args(["--json", "audit"]));
    assert_eq!(rc, 0);
    let entries = json(&out)["entries"].clone();
    let ops: Vec<&str> = entries
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["operation"].as_str().expect("operation"))
        .collect();
    for op in ["enroll", "verify", "identify", "erase"] {
        assert!(ops.contains(&op), "{ops:?}");
    }
    assert!(out.contains("\"purpose\":\"test\""), "{out}");
}

#[test]
fn eval_writes_det_and_eer() {
    let Some((models, images)) = fixtures() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let manifest = tmp.path().join("eval.csv");
    let mut csv = String::from("path,identity\n");
    for (f, id) in [
        ("obama.jpg", "obama"),
        ("obama2.jpg", "obama"),
        ("biden.jpg", "biden"),
        ("obama3.jpg", "obama"),
    ] {
        csv.push_str(&format!("{},{id}\n", images.join(f).display()));
    }
    std::fs::write(&manifest, csv).expect("write");
    let svg = tmp.path().join("det.svg");
    let (rc, out, err) = run(ipseity(tmp.path())
        .env("IPSEITY_MODELS_DIR", &models)
        .args(["eval", "--manifest"])
        .arg(&manifest)
        .arg("--det")
        .arg(&svg));
    assert_eq!(rc, 0, "{out}{err}");
    assert!(out.contains("EER"), "{out}");
    assert!(out.contains("3 genuine, 3 impostor"), "{out}");
    assert!(out.contains("n/a: needs >= 1000 impostor pairs"), "{out}");
    let text = std::fs::read_to_string(&svg).expect("svg written");
    assert!(text.contains("<svg"));
}

#[test]
fn batch_enroll_reports_failures() {
    let Some((models, images)) = fixtures() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("notes.txt"), "hello\n").expect("write");
    let manifest = tmp.path().join("people.csv");
    std::fs::write(
        &manifest,
        format!(
            "subject,path\nbiden,{}\nbob,notes.txt\n",
            images.join("biden.jpg").display()
        ),
    )
    .expect("write");
    let data = tmp.path().join("data");
    let (rc, out, err) = run(ipseity(&data)
        .env("IPSEITY_MODELS_DIR", &models)
        .args(["enroll", "--manifest"])
        .arg(&manifest));
    assert_eq!(rc, 1, "{out}{err}");
    assert!(out.contains("enrolled 1 subjects, 1 failed"), "{out}");
    assert!(out.contains("not_an_image"), "{out}");
    assert_eq!(subjects(&data, &models), ["biden"]);
}
