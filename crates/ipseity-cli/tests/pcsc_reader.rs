//! `ipseity document read --reader` and `document verify --reader` through a real
//! PC/SC stack: pcscd with the vsmartcard virtual reader (vpcd), behind which this
//! test serves the document crate's simulated chip over vpcd's socket protocol. The
//! whole path a border desk uses is exercised: PC/SC, PACE or BAC, secure messaging,
//! the files, passive authentication, `--save` and reading the saved dump back.
//!
//! Built only with `--features pcsc`. `tools/test.sh` installs and starts pcscd
//! with vpcd (`tools/pcsc.sh`) and sets `IPSEITY_REQUIRE_PCSC=1`, under which a
//! missing reader is a failure rather than a skip.
#![cfg(feature = "pcsc")]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{error_code, ipseity, json, run};
use ipseity_document::bac::Chip;
use ipseity_document::sim::SimulatedChip;
use ipseity_document::ChipFile;

const TD3: [&str; 2] = [
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
    "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
];
/// The port vpcd's first slot listens on (Debian's /etc/reader.conf.d/vpcd).
const VPCD: &str = "127.0.0.1:35963";
/// EF.CardAccess offering PACE-ECDH-GM-AES-128 on brainpoolP256r1.
const CARD_ACCESS: [u8; 22] = [
    0x31, 0x14, 0x30, 0x12, 0x06, 0x0A, 0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x04, 0x02, 0x02,
    0x02, 0x01, 0x02, 0x02, 0x01, 0x0D,
];

/// An ATR offering T=0 and T=1 with eight historical bytes, and its check byte.
fn atr() -> Vec<u8> {
    let mut a = vec![0x3B, 0x88, 0x80, 0x01];
    a.extend_from_slice(b"IPSEITY1");
    let tck = a[1..].iter().fold(0u8, |x, b| x ^ b);
    a.push(tck);
    a
}

/// What the virtual card holds: the files, the zone and whether it offers PACE.
#[derive(Clone)]
struct Card {
    files: Vec<(ChipFile, Vec<u8>)>,
    key: String,
    /// Changes with every card inserted.
    generation: u64,
}

fn read_msg(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut m = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut m).ok()?;
    Some(m)
}

fn send_msg(s: &mut TcpStream, m: &[u8]) -> Option<()> {
    let mut out = (m.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(m);
    s.write_all(&out).ok()
}

/// Set once vpcd has asked the card for its ATR: pcscd then knows a card is present.
static ATR_SENT: AtomicBool = AtomicBool::new(false);

/// Connects to vpcd as its card and serves `card`; a new chip (fresh state, no
/// session) at every power-on or reset, as a real chip is.
fn serve(card: Arc<Mutex<Option<Card>>>) -> Option<()> {
    let mut s = TcpStream::connect(VPCD).ok()?;
    std::thread::spawn(move || {
        // The chip and the generation of the card it was made from.
        let fresh = |c: &Arc<Mutex<Option<Card>>>| {
            c.lock().ok().and_then(|g| g.clone()).map(|c| {
                (
                    SimulatedChip::new(&c.files, &c.key, true).with_eac(&[ChipFile::Dg(3)]),
                    c.generation,
                )
            })
        };
        let mut chip = fresh(&card);
        while let Some(m) = read_msg(&mut s) {
            // Another card inserted since: the old chip is gone, as if swapped.
            let generation = card
                .lock()
                .ok()
                .and_then(|g| g.as_ref().map(|c| c.generation));
            if chip.as_ref().map(|c| c.1) != generation {
                chip = fresh(&card);
            }
            match m.as_slice() {
                [0x00] | [0x01] | [0x02] => chip = fresh(&card),
                [0x04] => {
                    send_msg(&mut s, &atr())?;
                    ATR_SENT.store(true, Ordering::SeqCst);
                }
                apdu => {
                    let r = match chip.as_mut().map(|c| c.0.transmit(apdu)) {
                        Some(Ok(r)) => r,
                        _ => vec![0x6F, 0x00],
                    };
                    send_msg(&mut s, &r)?;
                }
            }
        }
        Some(())
    });
    Some(())
}

/// The virtual card, served once for the whole binary.
fn card() -> Option<Arc<Mutex<Option<Card>>>> {
    static CARD: Mutex<Option<Arc<Mutex<Option<Card>>>>> = Mutex::new(None);
    let mut g = CARD.lock().expect("lock");
    if g.is_none() {
        let c = Arc::new(Mutex::new(None));
        if serve(c.clone()).is_none() {
            assert!(
                std::env::var_os("IPSEITY_REQUIRE_PCSC").is_none(),
                "IPSEITY_REQUIRE_PCSC is set but vpcd is not listening on {VPCD} \
                 (tools/pcsc.sh start)"
            );
            eprintln!("skipped: no vpcd virtual reader on {VPCD} (tools/pcsc.sh start)");
            return None;
        }
        // Wait until pcscd has seen the card (it polls the reader), at most 20 s.
        for _ in 0..200 {
            if ATR_SENT.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            ATR_SENT.load(Ordering::SeqCst),
            "pcscd never asked the virtual card for its ATR"
        );
        std::thread::sleep(Duration::from_millis(500));
        *g = Some(c);
    }
    g.clone()
}

/// Serialises the tests: there is one virtual card slot.
static SLOT: Mutex<()> = Mutex::new(());

/// A synthetic chip dump from `ipseity document sample`, with `face` in DG2.
fn sample(dir: &Path, face: &Path) -> Vec<(ChipFile, Vec<u8>)> {
    let out = dir.join("dump");
    let (rc, o, e) = run(ipseity(dir)
        .args(["document", "sample", "--out"])
        .arg(&out)
        .arg("--face")
        .arg(face));
    assert_eq!(rc, 0, "{o}{e}");
    let mut files = vec![];
    for entry in std::fs::read_dir(&out).expect("dump") {
        let entry = entry.expect("entry");
        if let Some(f) = ChipFile::from_name(&entry.file_name().to_string_lossy()) {
            files.push((f, std::fs::read(entry.path()).expect("file")));
        }
    }
    files
}

fn insert(card: &Arc<Mutex<Option<Card>>>, files: Vec<(ChipFile, Vec<u8>)>) {
    let mut g = card.lock().expect("card");
    let generation = g.as_ref().map_or(1, |c| c.generation + 1);
    *g = Some(Card {
        generation,
        files,
        key: ipseity_document::Mrz::parse(&TD3.join("\n"))
            .expect("zone")
            .key_information()
            .expect("key"),
    });
}

#[test]
fn a_chip_is_read_through_pcsc_with_pace_or_bac_and_passes_passive_authentication() {
    let Some(card) = card() else { return };
    let _slot = SLOT.lock().unwrap_or_else(|e| e.into_inner());
    let data = tempfile::tempdir().expect("tempdir");
    // The holder's portrait in DG2 when the face models are here (then the chip-to-live
    // check runs through the reader too), else a generated image.
    let fixtures = common::fixtures();
    let portrait = match &fixtures {
        // Made smaller (a chip's portrait is tens of kilobytes): every 223 bytes of DG2 is
        // one round trip through pcscd and the virtual reader.
        Some((_, images)) => {
            let small = data.path().join("portrait.jpg");
            image::open(images.join("obama.jpg"))
                .expect("portrait")
                .resize(400, 500, image::imageops::FilterType::Triangle)
                .to_rgb8()
                .save(&small)
                .expect("jpeg");
            small
        }
        None => {
            let face = data.path().join("face.jpg");
            image::RgbImage::from_fn(64, 80, |x, y| {
                image::Rgb([(x * 3) as u8, (y * 3) as u8, 90])
            })
            .save(&face)
            .expect("jpeg");
            face
        }
    };
    let dump = sample(data.path(), &portrait);
    let csca = data.path().join("dump/csca.der");

    for (pace, want) in [(true, "pace"), (false, "bac")] {
        let mut files = dump.clone();
        if pace {
            files.push((ChipFile::CardAccess, CARD_ACCESS.to_vec()));
        }
        insert(&card, files);
        let saved = data.path().join(format!("saved-{want}"));
        let (rc, out, err) = run(ipseity(data.path())
            .args([
                "--json",
                "document",
                "read",
                "--reader",
                "Virtual PCD 00 00",
                "--mrz",
            ])
            .args(TD3)
            .arg("--csca")
            .arg(&csca)
            .arg("--save")
            .arg(&saved));
        assert_eq!(rc, 0, "{out}{err}");
        let v = json(&out);
        let access = &v["reader"]["access"];
        assert!(
            access.get(want).is_some() || access == want,
            "{want}: {access}"
        );
        assert_eq!(
            v["reader"]["secure_messaging"],
            if pace { "aes" } else { "tdes" }
        );
        assert_eq!(v["passive_authentication"]["verdict"], "pass", "{out}");
        assert_eq!(v["printed_zone_matches_dg1"], true);
        // The saved files are the chip's, and read back as a dump they pass too.
        for (f, b) in &dump {
            if *f == ChipFile::Com || *f == ChipFile::Sod || matches!(f, ChipFile::Dg(_)) {
                let name = match f {
                    ChipFile::Dg(n) => format!("DG{n}.bin"),
                    ChipFile::Com => "EF.COM".into(),
                    _ => "EF.SOD".into(),
                };
                assert_eq!(
                    &std::fs::read(saved.join(&name)).expect("saved"),
                    b,
                    "{name}"
                );
            }
        }
        let (rc, out, err) = run(ipseity(data.path())
            .args(["--json", "document", "read", "--chip"])
            .arg(&saved)
            .arg("--csca")
            .arg(&csca));
        assert_eq!(rc, 0, "{out}{err}");
        assert_eq!(json(&out)["passive_authentication"]["verdict"], "pass");
    }

    // Chip to live capture in one call through the reader: the holder's second photo is
    // accepted, with the way the chip was read in the answer.
    if let Some((models, images)) = &fixtures {
        let (rc, out, err) = run(ipseity(data.path())
            .arg("--models-dir")
            .arg(models)
            .args([
                "--json",
                "document",
                "verify",
                "--reader",
                "Virtual PCD 00 00",
                "--csca",
            ])
            .arg(&csca)
            .arg("--face")
            .arg(images.join("obama2.jpg"))
            .arg("--mrz")
            .args(TD3));
        assert_eq!(rc, 0, "{out}{err}");
        let v = json(&out);
        assert_eq!(v["decision"], "accept", "{out}");
        assert_eq!(v["passive_authentication"], "pass", "{out}");
        assert!(v["reader"]["secure_messaging"].is_string(), "{out}");
        assert!(!out.contains("similarity"), "{out}");
    }

    // A misread zone (date of birth off by one day): the chip refuses the key.
    insert(&card, {
        let mut f = dump.clone();
        f.push((ChipFile::CardAccess, CARD_ACCESS.to_vec()));
        f
    });
    // Its check digit is recomputed, so the zone passes its own checks and only the
    // chip can tell.
    let cd = ipseity_document::check_digit("740813").expect("digit");
    let line = TD3[1].replacen("7408122", &format!("740813{cd}"), 1);
    let wrong = [TD3[0], line.as_str()];
    let (rc, out, err) = run(ipseity(data.path())
        .args(["--json", "document", "read", "--reader", "--mrz"])
        .args(wrong)
        .arg("--csca")
        .arg(&csca));
    assert_eq!(
        (rc, error_code(&out).as_str()),
        (2, "chip_access_denied"),
        "{out}{err}"
    );
    // A reader that does not exist is named in the error.
    let (rc, out, err) = run(ipseity(data.path())
        .args([
            "--json",
            "document",
            "read",
            "--reader",
            "No Such Reader",
            "--mrz",
        ])
        .args(TD3));
    assert_eq!(
        (rc, error_code(&out).as_str()),
        (2, "reader_unavailable"),
        "{out}{err}"
    );
    assert!(out.contains("Virtual PCD"), "{out}");
}
