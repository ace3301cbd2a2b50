//! Files chosen to hurt the CLI: FIFOs and devices where a file is expected,
//! a symbolic link planted where an output is written, an output path that is
//! the input, a manifest with a byte-order mark. Each must be refused (or
//! handled) at once with a stable code; none may block, read without bound or
//! write through a link.
#![cfg(unix)]

mod common;

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{error_code, ipseity, json};

/// Runs the command, failing the test if it has not exited within 20 s (it is
/// killed first): the defects here showed as a process blocked for ever.
fn run_within_20s(cmd: &mut Command) -> (i32, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawns the binary");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after 20 s: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    (status.code().expect("exit code"), stdout, stderr)
}

fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(made.success(), "mkfifo {}", path.display());
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// One synthetic impression (PNG), made by the binary itself.
fn impression(dir: &Path) -> PathBuf {
    let out = dir.join("prints");
    let (code, stdout, _) = run_within_20s(ipseity(&dir.join("data")).args([
        "--json",
        "finger",
        "synth",
        "--fingers",
        "1",
        "--impressions",
        "1",
        "--seed",
        "1",
        "--out",
        &s(&out),
    ]));
    assert_eq!(code, 0, "{stdout}");
    out.join("00001_1.png")
}

/// Asserts a `--json` refusal with exit 2 and `code`, returning the message.
fn refused(result: (i32, String, String), code: &str) -> String {
    let (exit, stdout, stderr) = result;
    assert_eq!(exit, 2, "{stdout}{stderr}");
    assert_eq!(error_code(&stdout), code, "{stdout}");
    json(&stdout)["error"]["message"]
        .as_str()
        .expect("message")
        .to_owned()
}

#[test]
fn a_fifo_given_as_a_finger_is_refused_without_waiting() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let fifo = tmp.path().join("print.png");
    mkfifo(&fifo);
    let data = tmp.path().join("data");
    let msg = refused(
        run_within_20s(ipseity(&data).args([
            "--json",
            "finger",
            "enroll",
            "--subject",
            "eve",
            "--finger",
            &format!("right-thumb={}", s(&fifo)),
        ])),
        "not_a_regular_file",
    );
    assert!(msg.contains(&s(&fifo)) && msg.contains("FIFO"), "{msg}");
    refused(
        run_within_20s(ipseity(&data).args([
            "--json",
            "finger",
            "extract",
            "--image",
            &s(&fifo),
            "--out",
            &s(&tmp.path().join("out.iso")),
        ])),
        "not_a_regular_file",
    );
}

/// Whether the face models are there: face enrolment loads them before it
/// reads the image, so face cases run only with the fixtures.
fn face_models() -> bool {
    common::fixtures().is_some()
}

#[test]
fn a_fifo_given_as_a_face_is_refused_without_waiting() {
    if !face_models() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let fifo = tmp.path().join("face.jpg");
    mkfifo(&fifo);
    let msg = refused(
        run_within_20s(ipseity(&tmp.path().join("data")).args([
            "--json",
            "enroll",
            "--subject",
            "eve",
            "--face",
            &s(&fifo),
        ])),
        "not_a_regular_file",
    );
    assert!(msg.contains("FIFO"), "{msg}");
}

#[test]
fn a_manifest_that_is_a_fifo_is_refused_without_waiting() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let fifo = tmp.path().join("manifest.csv");
    mkfifo(&fifo);
    refused(
        run_within_20s(ipseity(&tmp.path().join("data")).args([
            "--json",
            "enroll",
            "--manifest",
            &s(&fifo),
        ])),
        "not_a_regular_file",
    );
}

#[test]
fn dedup_refuses_a_fifo_and_an_endless_device() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let fifo = tmp.path().join("gallery.f32");
    mkfifo(&fifo);
    let data = tmp.path().join("data");
    for path in [fifo, PathBuf::from("/dev/zero")] {
        let msg = refused(
            run_within_20s(ipseity(&data).args([
                "--json",
                "dedup",
                "--embeddings",
                &s(&path),
                "--dim",
                "4",
            ])),
            "not_a_regular_file",
        );
        assert!(msg.contains(&s(&path)), "{msg}");
    }
}

#[test]
fn extract_writes_through_no_planted_link_and_keeps_the_record_private() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let image = impression(tmp.path());
    let out_dir = tmp.path().join("out");
    std::fs::create_dir(&out_dir).expect("mkdir");
    let victim = tmp.path().join("victim.txt");
    std::fs::write(&victim, "untouched").expect("write");
    // The temporary names the old code used, and the output itself, as links.
    for planted in ["out.tmp-ipseity", "out.iso.tmp-ipseity", ".out.iso.tmp"] {
        std::os::unix::fs::symlink(&victim, out_dir.join(planted)).expect("symlink");
    }
    let out = out_dir.join("out.iso");
    let (code, stdout, stderr) = run_within_20s(ipseity(&tmp.path().join("data")).args([
        "--json",
        "finger",
        "extract",
        "--image",
        &s(&image),
        "--out",
        &s(&out),
    ]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(
        std::fs::read_to_string(&victim).expect("victim"),
        "untouched"
    );
    let meta = std::fs::symlink_metadata(&out).expect("out");
    assert!(meta.is_file(), "the record is not a regular file");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // No temporary file is left beside it.
    let mut names: Vec<String> = std::fs::read_dir(&out_dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ".out.iso.tmp",
            "out.iso",
            "out.iso.tmp-ipseity",
            "out.tmp-ipseity"
        ]
    );
}

#[test]
fn extract_refuses_to_overwrite_its_input() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let image = impression(tmp.path());
    let before = std::fs::read(&image).expect("read");
    let link = tmp.path().join("link.iso");
    std::os::unix::fs::symlink(&image, &link).expect("symlink");
    let data = tmp.path().join("data");
    // The same path, spelled differently, and a link to it.
    let same = image
        .parent()
        .expect("dir")
        .join(".")
        .join(image.file_name().expect("name"));
    for out in [image.clone(), same, link] {
        refused(
            run_within_20s(ipseity(&data).args([
                "--json",
                "finger",
                "extract",
                "--image",
                &s(&image),
                "--out",
                &s(&out),
            ])),
            "usage",
        );
        assert_eq!(std::fs::read(&image).expect("read"), before);
    }
}

#[test]
fn an_os_error_is_reported_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing = tmp.path().join("absent.jpg");
    let data = tmp.path().join("data");
    if face_models() {
        let face = refused(
            run_within_20s(ipseity(&data).args([
                "--json",
                "enroll",
                "--subject",
                "eve",
                "--face",
                &s(&missing),
            ])),
            "cannot_read_file",
        );
        assert_eq!(face.matches("(os error 2)").count(), 1, "{face}");
    }
    let finger = refused(
        run_within_20s(ipseity(&data).args([
            "--json",
            "finger",
            "enroll",
            "--subject",
            "eve",
            "--finger",
            &format!("right-thumb={}", s(&missing)),
        ])),
        "cannot_read_file",
    );
    assert_eq!(finger.matches("(os error 2)").count(), 1, "{finger}");
}

#[test]
fn finger_and_face_paths_share_their_file_codes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let dir = tmp.path().join("a-directory");
    std::fs::create_dir(&dir).expect("mkdir");
    let text = tmp.path().join("notes.png");
    std::fs::write(&text, "not an image").expect("write");
    let cases = [
        (tmp.path().join("absent.png"), "cannot_read_file"),
        (dir, "not_a_regular_file"),
        (text, "not_an_image"),
    ];
    for (path, code) in cases {
        let finger = refused(
            run_within_20s(ipseity(&data).args([
                "--json",
                "finger",
                "enroll",
                "--subject",
                "eve",
                "--finger",
                &format!("right-thumb={}", s(&path)),
            ])),
            code,
        );
        assert!(finger.contains(&s(&path)), "{finger}");
        if face_models() {
            let face = refused(
                run_within_20s(ipseity(&data).args([
                    "--json",
                    "enroll",
                    "--subject",
                    "eve",
                    "--face",
                    &s(&path),
                ])),
                code,
            );
            assert!(!face.is_empty());
        }
    }
}

#[test]
fn a_jpeg_finger_is_refused_as_unsupported() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let png = impression(tmp.path());
    let jpeg = tmp.path().join("print.jpg");
    image::open(&png)
        .expect("open")
        .save_with_format(&jpeg, image::ImageFormat::Jpeg)
        .expect("save");
    refused(
        run_within_20s(ipseity(&tmp.path().join("data")).args([
            "--json",
            "finger",
            "enroll",
            "--subject",
            "eve",
            "--finger",
            &format!("right-thumb={}", s(&jpeg)),
        ])),
        "unsupported_image",
    );
}

#[test]
fn a_manifest_saved_with_a_byte_order_mark_is_read() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let manifest = tmp.path().join("manifest.csv");
    std::fs::write(&manifest, "\u{FEFF}subject,path\r\neve,absent.jpg\r\n").expect("write");
    let (_, stdout, stderr) = run_within_20s(ipseity(&tmp.path().join("data")).args([
        "--json",
        "enroll",
        "--manifest",
        &s(&manifest),
    ]));
    // Without models the rows are not enrolled, but the header was understood.
    assert!(!stdout.contains("bad_manifest"), "{stdout}{stderr}");
    assert!(!stdout.contains('\u{FEFF}'), "{stdout}");
}
