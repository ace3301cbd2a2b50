//! The fingerprint commands end to end on synthetic prints: synth, extract to ISO/ANSI,
//! enrol (images and records), verify, identify, duplicate refusal, evaluation, and bad
//! input that must change nothing.

mod common;

use std::path::Path;

use common::{error_code, ipseity, json, run, synth};

fn imp(dir: &Path, finger: u32, k: u32) -> String {
    dir.join(format!("{finger:05}_{k}.png"))
        .display()
        .to_string()
}

fn subjects(data: &Path) -> usize {
    let (code, stdout, _) = run(ipseity(data).args(["--json", "list"]));
    assert_eq!(code, 0);
    json(&stdout)["subjects"].as_array().map_or(0, |a| a.len())
}

#[test]
fn synth_is_deterministic_and_writes_truth() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = synth(tmp.path(), 2, 2, 7);
    let b_dir = tmp.path().join("again");
    std::fs::create_dir_all(&b_dir).expect("mkdir");
    let b = synth(&b_dir, 2, 2, 7);
    for name in ["00001_1.png", "00002_2.png", "00001_2.minutiae.json"] {
        let x = std::fs::read(a.join(name)).expect("read");
        let y = std::fs::read(b.join(name)).expect("read");
        assert!(x == y, "{name} differs between two runs with the same seed");
    }
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("00001_1.minutiae.json")).expect("read"))
            .expect("json");
    assert!(truth.as_array().is_some_and(|m| m.len() > 5), "{truth}");

    // The `sensor` difficulty: the same masters, impressions under real sensors' conditions.
    let sensor = tmp.path().join("sensor");
    let (code, stdout, stderr) = run(ipseity(&tmp.path().join("unused")).args([
        "--json",
        "finger",
        "synth",
        "--fingers",
        "2",
        "--impressions",
        "8",
        "--seed",
        "7",
        "--difficulty",
        "sensor",
        "--out",
        &sensor.display().to_string(),
    ]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(json(&stdout)["difficulty"], "sensor");
    assert!(sensor.join("00002_8.png").is_file());
}

#[test]
fn enrol_verify_identify_and_refuse_duplicates() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let prints = synth(tmp.path(), 3, 3, 11);
    let data = tmp.path().join("data");

    // Alice: fingers 1 and 2 as right index and right middle.
    let (code, stdout, stderr) = run(ipseity(&data).args([
        "--json",
        "finger",
        "enroll",
        "--subject",
        "alice",
        "--finger",
        &format!("right-index={}", imp(&prints, 1, 1)),
        &format!("right-middle={}", imp(&prints, 2, 1)),
    ]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let v = json(&stdout);
    assert_eq!(v["fingers"].as_array().map(|a| a.len()), Some(2));
    assert!(!stdout.contains("score"), "{stdout}");

    // Bob: finger 3.
    let (code, stdout, stderr) = run(ipseity(&data).args([
        "--json",
        "finger",
        "enroll",
        "--subject",
        "bob",
        "--finger",
        &format!("left-thumb={}", imp(&prints, 3, 1)),
    ]));
    assert_eq!(code, 0, "{stdout}{stderr}");

    // Genuine verification with another impression of the same finger.
    let (code, stdout, stderr) = run(ipseity(&data).args([
        "--json",
        "finger",
        "verify",
        "--subject",
        "alice",
        "--finger",
        &format!("right-index={}", imp(&prints, 1, 2)),
        &format!("right-middle={}", imp(&prints, 2, 3)),
    ]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(json(&stdout)["decision"], "accept");
    assert_eq!(json(&stdout)["fingers_compared"], 2);

    // Impostor: Bob's finger claimed as Alice's, position unknown so it is compared.
    let (code, stdout, _) = run(ipseity(&data).args([
        "--json",
        "finger",
        "verify",
        "--subject",
        "alice",
        "--finger",
        &imp(&prints, 3, 2),
    ]));
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(json(&stdout)["decision"], "reject");

    // 1:N needs a purpose, then finds Bob.
    let (code, stdout, _) = run(ipseity(&data).args([
        "--json",
        "finger",
        "identify",
        "--finger",
        &imp(&prints, 3, 3),
    ]));
    assert_eq!(code, 2);
    assert_eq!(error_code(&stdout), "purpose_required");
    let search = || {
        run(ipseity(&data).args([
            "--json",
            "--purpose",
            "border check",
            "finger",
            "identify",
            "--finger",
            &imp(&prints, 3, 3),
        ]))
    };
    // Bob was enrolled without stating this purpose: until he consents to it, a search
    // for it does not find him.
    let (code, stdout, stderr) = search();
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert_eq!(
        json(&stdout)["candidates"],
        serde_json::json!([]),
        "{stdout}"
    );
    let (code, stdout, _) = run(ipseity(&data).args([
        "--json",
        "--purpose",
        "border check",
        "consent",
        "give",
        "--subject",
        "bob",
    ]));
    assert_eq!(code, 0, "{stdout}");
    let (code, stdout, stderr) = search();
    assert_eq!(code, 0, "{stdout}{stderr}");
    let v = json(&stdout);
    assert_eq!(v["candidates"][0]["subject"], "bob", "{v}");
    assert_eq!(v["candidates"][0]["decision"], "accept");
    assert!(
        v["candidates"]
            .as_array()
            .is_some_and(|c| c.iter().all(|c| c["subject"] != "alice")),
        "{v}"
    );

    // The same finger under a new name is refused and nothing is written.
    let before = subjects(&data);
    let (code, stdout, _) = run(ipseity(&data).args([
        "--json",
        "finger",
        "enroll",
        "--subject",
        "mallory",
        "--finger",
        &imp(&prints, 3, 2),
    ]));
    assert_eq!(code, 3, "{stdout}");
    assert_eq!(error_code(&stdout), "possible_duplicate");
    assert_eq!(subjects(&data), before);

    // Enrolling Alice's fingers twice is a duplicate subject.
    let (code, stdout, _) = run(ipseity(&data).args([
        "--json",
        "finger",
        "enroll",
        "--subject",
        "alice",
        "--finger",
        &imp(&prints, 1, 3),
    ]));
    assert_eq!(code, 2);
    assert_eq!(error_code(&stdout), "duplicate_subject");

    // The audit log has decisions, never scores.
    let (code, stdout, _) = run(ipseity(&data).args(["--json", "audit"]));
    assert_eq!(code, 0);
    // Fingers are audited in the face's words, with the modality in the detail.
    let entries = json(&stdout)["entries"].clone();
    let has = |op: &str| {
        entries.as_array().is_some_and(|es| {
            es.iter().any(|e| {
                e["operation"] == op
                    && e["detail"]
                        .as_str()
                        .is_some_and(|d| d.contains("modality=finger"))
            })
        })
    };
    for op in ["enroll", "verify", "identify"] {
        assert!(has(op), "{op}: {stdout}");
    }
}

#[test]
fn iso_and_ansi_records_enrol_and_verify() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let prints = synth(tmp.path(), 1, 2, 5);
    let data = tmp.path().join("data");
    for (format, subject) in [("iso", "carol"), ("ansi", "dave")] {
        let record = tmp.path().join(format!("r.{format}"));
        let (code, stdout, stderr) = run(ipseity(&data).args([
            "--json",
            "finger",
            "extract",
            "--image",
            &imp(&prints, 1, 1),
            "--position",
            "left-index",
            "--format",
            format,
            "--out",
            &record.display().to_string(),
        ]));
        assert_eq!(code, 0, "{stdout}{stderr}");
        let bytes = std::fs::read(&record).expect("record");
        assert_eq!(&bytes[..4], b"FMR\0");
        let (code, stdout, stderr) = run(ipseity(&data).args([
            "--json",
            "finger",
            "enroll",
            "--allow-duplicate",
            "--subject",
            subject,
            "--finger",
            &record.display().to_string(),
        ]));
        assert_eq!(code, 0, "{stdout}{stderr}");
        let (code, stdout, _) = run(ipseity(&data).args([
            "--json",
            "finger",
            "verify",
            "--subject",
            subject,
            "--finger",
            &format!("left-index={}", imp(&prints, 1, 2)),
        ]));
        assert_eq!(code, 0, "{stdout}");
        assert_eq!(json(&stdout)["decision"], "accept");
    }
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let prints = synth(tmp.path(), 1, 1, 3);
    let data = tmp.path().join("data");
    let cases: Vec<(String, Vec<u8>, &str)> = vec![
        ("empty.png".into(), Vec::new(), "not_an_image"),
        (
            "text.png".into(),
            b"hello, not an image".to_vec(),
            "not_an_image",
        ),
        (
            "truncated.png".into(),
            std::fs::read(imp(&prints, 1, 1)).expect("read")[..200].to_vec(),
            "corrupt_image",
        ),
        ("blank.png".into(), blank_png(400, 400), "low_quality"),
        ("tiny.png".into(), blank_png(20, 20), "image_too_small"),
        (
            "bad.iso".into(),
            b"FMR\0 20\0\0\0\0\xff\xff\xff".to_vec(),
            "bad_template",
        ),
        (
            "bad.wsq".into(),
            vec![0xFF, 0xA0, 0xFF, 0xA8, 0x00, 0x02],
            "corrupt_image",
        ),
    ];
    for (name, bytes, want) in cases {
        let path = tmp.path().join(&name);
        std::fs::write(&path, bytes).expect("write");
        let (code, stdout, _) = run(ipseity(&data).args([
            "--json",
            "finger",
            "enroll",
            "--subject",
            "eve",
            "--finger",
            &path.display().to_string(),
        ]));
        assert_eq!(code, 2, "{name}: {stdout}");
        assert_eq!(error_code(&stdout), want, "{name}");
        assert_eq!(subjects(&data), 0, "{name} wrote something");
    }
    // A huge declared size is refused from the header.
    let big = tmp.path().join("big.png");
    image::GrayImage::new(3000, 10).save(&big).expect("save");
    let (code, stdout, _) = run(ipseity(&data).args([
        "--json",
        "finger",
        "enroll",
        "--subject",
        "eve",
        "--finger",
        &big.display().to_string(),
    ]));
    assert_eq!(code, 2);
    assert_eq!(error_code(&stdout), "image_too_large");
    // Unknown subject, unknown position, too many fingers.
    let (code, stdout, _) = run(ipseity(&data).args([
        "--json",
        "finger",
        "verify",
        "--subject",
        "nobody",
        "--finger",
        &imp(&prints, 1, 1),
    ]));
    assert_eq!(code, 2);
    assert_eq!(error_code(&stdout), "unknown_subject");
    let (code, stdout, _) = run(ipseity(&data).args([
        "--json",
        "finger",
        "enroll",
        "--subject",
        "eve",
        "--finger",
        "right-toe=x.png",
    ]));
    assert_eq!(code, 2);
    assert_eq!(error_code(&stdout), "usage");
    let eleven: Vec<String> = (0..11).map(|_| imp(&prints, 1, 1)).collect();
    let (code, stdout, _) = run(ipseity(&data)
        .args(["--json", "finger", "enroll", "--subject", "eve", "--finger"])
        .args(&eleven));
    assert_eq!(code, 2);
    assert_eq!(error_code(&stdout), "usage");
    assert_eq!(subjects(&data), 0);
    // Synth sizes are bounded.
    for (f, k) in [("0", "8"), ("4294967295", "100"), ("10", "101")] {
        let (code, stdout, _) = run(ipseity(&data)
            .args([
                "--json",
                "finger",
                "synth",
                "--fingers",
                f,
                "--impressions",
                k,
                "--out",
            ])
            .arg(tmp.path().join("never")));
        assert_eq!(code, 2, "{f} x {k}: {stdout}");
        assert_eq!(error_code(&stdout), "usage");
    }
}

fn blank_png(w: u32, h: u32) -> Vec<u8> {
    let img = image::GrayImage::from_pixel(w, h, image::Luma([200]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("png");
    out.into_inner()
}

#[test]
fn eval_reports_rates_truth_and_a_det_plot() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let prints = synth(tmp.path(), 12, 4, 21);
    let data = tmp.path().join("data");
    let det = tmp.path().join("det.svg");
    let eval = |extra: &[&str]| {
        run(ipseity(&data)
            .args(["--json", "finger", "eval"])
            .args(extra)
            .arg("--dir")
            .arg(&prints)
            .arg("--det")
            .arg(&det))
    };
    let (code, stdout, stderr) = eval(&[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let v = json(&stdout);
    assert_eq!(v["fingers"], 12);
    assert_eq!(v["native"]["genuine"], 12 * 6);
    assert_eq!(v["native"]["impostor"], 66);
    let eer = v["native"]["eer"].as_f64().expect("eer");
    assert!(
        (0.0..=0.2).contains(&eer),
        "EER {eer} on 12 synthetic fingers"
    );
    // 66 impostor pairs cannot resolve an FMR of 1e-2; every cross-finger pair can.
    assert!(v["native"]["fnmr_at_fmr_1e2"].is_null(), "{v}");
    let (code, stdout_all, stderr) = eval(&["--all-pairs"]);
    assert_eq!(code, 0, "{stdout_all}{stderr}");
    let all = json(&stdout_all);
    assert_eq!(all["native"]["genuine"], 12 * 6);
    assert_eq!(all["native"]["impostor"], 48 * 47 / 2 - 12 * 6);
    assert!(all["native"]["fnmr_at_fmr_1e2"].is_f64(), "{all}");
    assert_eq!(
        (v["protocol"].as_str(), all["protocol"].as_str()),
        (Some("fvc"), Some("all_pairs"))
    );
    let recall = v["extraction_truth"]["recall"].as_f64().expect("recall");
    assert!(recall > 0.3, "{v}");
    let svg = std::fs::read_to_string(&det).expect("svg");
    assert!(svg.starts_with("<svg") && svg.contains("ISO 19794-2"));

    // `ipseity eval --fingers DIR` is the same evaluation.
    let (code, stdout2, stderr) = run(ipseity(&data).args([
        "--json",
        "eval",
        "--fingers",
        &prints.display().to_string(),
        "--det",
        &det.display().to_string(),
    ]));
    assert_eq!(code, 0, "{stdout2}{stderr}");
    let w = json(&stdout2);
    assert_eq!(w["native"], v["native"]);
    assert_eq!(w["extraction_truth"], v["extraction_truth"]);
}

#[test]
fn eval_refuses_what_would_fail_before_it_runs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let prints = synth(tmp.path(), 2, 3, 5);
    let data = tmp.path().join("data");
    let det = tmp.path().join("det.svg");
    let eval = |dir: &Path, extra: &[&str]| {
        run(ipseity(&data)
            .args(["finger", "eval", "--dir"])
            .arg(dir)
            .args(extra))
    };
    let det_arg = det.display().to_string();
    // A resolution every impression would fail with, and outputs that cannot be
    // written, are refused at once: nothing is evaluated, no plot is written.
    for (extra, code, says) in [
        (
            vec!["--ppi", "200"],
            "unsupported_resolution",
            "300 to 1000 ppi",
        ),
        (
            vec!["--ppi", "0"],
            "unsupported_resolution",
            "300 to 1000 ppi",
        ),
        (
            vec!["--det", "/nonexistent-ipseity/x.svg"],
            "usage",
            "not a directory",
        ),
        (
            vec!["--det", &det_arg, "--scores", "/nonexistent-ipseity/s.csv"],
            "usage",
            "not a directory",
        ),
    ] {
        let mut args = extra.clone();
        args.push("--json");
        let (status, stdout, stderr) = eval(&prints, &args);
        assert_eq!(status, 2, "{extra:?}: {stdout}{stderr}");
        assert_eq!(error_code(&stdout), code, "{extra:?}: {stdout}");
        assert!(stdout.contains(says), "{extra:?}: {stdout}");
        assert!(!det.exists(), "{extra:?}: a plot was written");
    }
    let (status, stdout, _) = eval(
        &prints,
        &["--json", "--det", &tmp.path().display().to_string()],
    );
    assert_eq!(
        (status, error_code(&stdout).as_str()),
        (2, "usage"),
        "{stdout}"
    );

    // Few impostor pairs: the EER is said to be indicative; a failure names its file once.
    std::fs::write(prints.join("00001_3.png"), b"junk").expect("write");
    let (status, stdout, stderr) = eval(&prints, &["--det", &det_arg]);
    assert_eq!(status, 0, "{stdout}{stderr}");
    assert!(stdout.contains("indicative"), "{stdout}");
    assert!(stdout.contains("protocol: FVC"), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.contains("00001_3.png"))
        .expect("the failure is reported");
    assert_eq!(line.matches("00001_3.png").count(), 1, "{line}");

    // Nothing usable at all is an error, not an evaluation of zeros.
    let junk = tmp.path().join("junk");
    std::fs::create_dir_all(&junk).expect("mkdir");
    for name in ["00001_1.png", "00001_2.png", "00002_1.png", "00002_2.png"] {
        std::fs::write(junk.join(name), b"junk").expect("write");
    }
    let (status, stdout, _) = eval(&junk, &["--json", "--det", &det_arg]);
    assert_eq!(status, 2, "{stdout}");
    assert_eq!(error_code(&stdout), "not_an_image", "{stdout}");
    assert!(stdout.contains("none of the 4 impressions"), "{stdout}");

    // `finger extract` is given a record: it says so rather than that it is none.
    let record = tmp.path().join("r.iso");
    let (status, stdout, stderr) = run(ipseity(&data).args([
        "finger",
        "extract",
        "--image",
        &imp(&prints, 2, 1),
        "--out",
        &record.display().to_string(),
    ]));
    assert_eq!(status, 0, "{stdout}{stderr}");
    let (status, stdout, _) = run(ipseity(&data).args([
        "--json",
        "finger",
        "extract",
        "--image",
        &record.display().to_string(),
        "--out",
        &tmp.path().join("x.iso").display().to_string(),
    ]));
    assert_eq!(status, 2, "{stdout}");
    assert_eq!(error_code(&stdout), "not_an_image", "{stdout}");
    assert!(stdout.contains("not an impression"), "{stdout}");
}

/// A BMP of `img` whose header says `ppi`.
fn bmp_at(img: &image::GrayImage, ppi: f64) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Bmp)
        .expect("bmp");
    let mut bytes = out.into_inner();
    let per_metre = ((ppi / 0.0254).round() as u32).to_le_bytes();
    bytes[38..42].copy_from_slice(&per_metre);
    bytes[42..46].copy_from_slice(&per_metre);
    bytes
}

#[test]
fn resolution_is_read_from_the_header_or_given() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let prints = synth(tmp.path(), 1, 2, 9);
    let data = tmp.path().join("data");
    // The first impression scanned at 1000 ppi: twice the pixels, and a header that says so.
    let img = image::open(imp(&prints, 1, 1)).expect("png").to_luma8();
    let big = image::imageops::resize(
        &img,
        img.width() * 2,
        img.height() * 2,
        image::imageops::FilterType::Triangle,
    );
    let at1000 = tmp.path().join("at1000.bmp");
    std::fs::write(&at1000, bmp_at(&big, 1000.0)).expect("write");
    let record = tmp.path().join("r.iso");
    let extract = |image: &Path, ppi: Option<&str>| {
        let mut cmd = ipseity(&data);
        cmd.args(["--json", "finger", "extract", "--image"])
            .arg(image)
            .arg("--out")
            .arg(&record);
        if let Some(p) = ppi {
            cmd.args(["--ppi", p]);
        }
        run(&mut cmd)
    };
    let (code, stdout, stderr) = extract(&at1000, None);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(json(&stdout)["source_ppi"], 1000);
    // Brought to 500 ppi, the record matches the second impression, taken at 500 ppi.
    let (code, stdout, stderr) = run(ipseity(&data).args([
        "--json",
        "finger",
        "enroll",
        "--subject",
        "erin",
        "--finger",
        &format!("right-index={}", record.display()),
    ]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (code, stdout, _) = run(ipseity(&data).args([
        "--json",
        "finger",
        "verify",
        "--subject",
        "erin",
        "--finger",
        &format!("right-index={}", imp(&prints, 1, 2)),
    ]));
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(json(&stdout)["decision"], "accept");

    // A header that says 72 ppi is refused, unless the caller gives the true resolution.
    let at72 = tmp.path().join("at72.bmp");
    std::fs::write(&at72, bmp_at(&big, 72.0)).expect("write");
    let (code, stdout, _) = extract(&at72, None);
    assert_eq!(
        (code, error_code(&stdout).as_str()),
        (2, "unsupported_resolution"),
        "{stdout}"
    );
    let (code, stdout, stderr) = extract(&at72, Some("1000"));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (code, stdout, _) = extract(&at72, Some("2400"));
    assert_eq!(
        (code, error_code(&stdout).as_str()),
        (2, "unsupported_resolution"),
        "{stdout}"
    );
}

#[test]
fn failed_verifications_back_off_until_unlocked() {
    let dir = tempfile::tempdir().unwrap();
    let prints = synth(dir.path(), 2, 2, 77);
    let data = dir.path().join("data");
    let (code, stdout, stderr) = run(ipseity(&data).args([
        "--json",
        "finger",
        "enroll",
        "--subject",
        "dora",
        "--finger",
        &imp(&prints, 1, 1),
    ]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let verify = |finger: u32| {
        run(ipseity(&data).args([
            "--json",
            "finger",
            "verify",
            "--subject",
            "dora",
            "--finger",
            &imp(&prints, finger, 2),
        ]))
    };
    for _ in 0..5 {
        let (code, stdout, _) = verify(2);
        assert_eq!(
            (code, json(&stdout)["decision"].as_str()),
            (1, Some("reject"))
        );
    }
    // The sixth attempt waits, even with the right finger.
    let (code, stdout, _) = verify(1);
    assert_eq!(
        (code, error_code(&stdout).as_str()),
        (2, "too_many_attempts"),
        "{stdout}"
    );
    let (code, stdout, _) = run(ipseity(&data).args(["--json", "unlock", "--subject", "dora"]));
    assert_eq!(code, 0, "{stdout}");
    let (code, stdout, _) = verify(1);
    assert_eq!(
        (code, json(&stdout)["decision"].as_str()),
        (0, Some("accept")),
        "{stdout}"
    );
    let (code, stdout, _) = run(ipseity(&data).args(["--json", "unlock", "--subject", "nobody"]));
    assert_eq!(
        (code, error_code(&stdout).as_str()),
        (2, "unknown_subject"),
        "{stdout}"
    );
    let (code, stdout, _) = run(ipseity(&data).args(["--json", "audit", "verify"]));
    assert_eq!(code, 0, "{stdout}");
}
