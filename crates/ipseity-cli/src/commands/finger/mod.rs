//! `ipseity finger ...`: the fingerprint modality on the embedded store.
//!
//! Samples are impressions (PNG, TIFF, BMP, WSQ; brought to 500 ppi from what their header
//! or `--ppi` says) or ISO/ANSI minutiae records. A
//! subject holds up to ten fingers with positions. Decisions come from the fused false-match
//! rate ([`ipseity_finger::fusion`]); no score is printed outside `finger eval`.

pub mod enroll;
pub mod eval;
pub mod extract;
pub mod identify;
pub mod synth;
pub mod verify;

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ipseity_finger::extract::ExtractConfig;
use ipseity_finger::fusion::{FmrPolicy, ScoreCalibration};
use ipseity_finger::gallery::ProbeFinger;
use ipseity_finger::matcher::MatcherConfig;
use ipseity_finger::sample::{self, Sample};
use ipseity_finger::FingerPosition;
use rayon::prelude::*;
use serde::Serialize;

use crate::context::Ctx;
use crate::error::CliError;
use crate::files;

/// File name of a programme's own fingerprint calibration inside the data directory.
pub const CALIBRATION_FILE: &str = "finger_calibration.json";

/// Largest sample file read, in bytes (a 2000 x 2000 8-bit image is 4 MB uncompressed).
const MAX_FILE_BYTES: u64 = 32 << 20;

/// Most fingers one record may hold.
const MAX_FINGERS: usize = 10;

/// The calibration measured by `ipseity finger eval --calibrate` on the synthetic set
/// described in `docs/BENCHMARKS-finger.md`, used until a programme calibrates on its own.
const BUILTIN_CALIBRATION: &str = include_str!("builtin_calibration.json");

/// One finger given on the command line.
pub struct FingerSpec {
    /// Position, or unknown.
    pub position: FingerPosition,
    /// The file.
    pub path: PathBuf,
    /// Its resolution, overriding the file's own.
    pub ppi: Option<u16>,
}

/// Parses `POSITION=FILE` or `FILE`.
pub fn parse_spec(s: &str) -> anyhow::Result<FingerSpec> {
    if let Some((pos, path)) = s.split_once('=') {
        if let Some(position) = FingerPosition::parse(pos) {
            return Ok(FingerSpec {
                position,
                path: PathBuf::from(path),
                ppi: None,
            });
        }
        if !Path::new(s).exists() {
            return Err(CliError::input(
                "usage",
                format!(
                    "unknown finger position {pos:?}: use right-thumb ... right-little, \
                     left-thumb ... left-little, unknown, or a code 0-10"
                ),
            )
            .into());
        }
    }
    Ok(FingerSpec {
        position: FingerPosition::Unknown,
        path: PathBuf::from(s),
        ppi: None,
    })
}

fn read_bounded(path: &Path) -> anyhow::Result<Vec<u8>> {
    files::read_regular(path, MAX_FILE_BYTES, "image_too_large")
}

/// Loads one finger given on the command line; errors name the file.
pub fn load_sample(spec: &FingerSpec, cfg: &ExtractConfig) -> anyhow::Result<Sample> {
    let bytes = read_bounded(&spec.path)?;
    sample::load_at(&bytes, spec.position, cfg, spec.ppi)
        .with_context(|| spec.path.display().to_string())
}

fn load_all(specs: &[String], ppi: Option<u16>) -> anyhow::Result<Vec<Sample>> {
    if specs.len() > MAX_FINGERS {
        return Err(CliError::input(
            "usage",
            format!("{} fingers given; at most {MAX_FINGERS}", specs.len()),
        )
        .into());
    }
    let specs = specs
        .iter()
        .map(|s| parse_spec(s).map(|spec| FingerSpec { ppi, ..spec }))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut seen = BTreeSet::new();
    for s in &specs {
        if s.position != FingerPosition::Unknown && !seen.insert(s.position) {
            return Err(CliError::input(
                "usage",
                format!("finger position {} given twice", s.position.name()),
            )
            .into());
        }
    }
    let cfg = ExtractConfig::default();
    specs
        .par_iter()
        .map(|s| load_sample(s, &cfg))
        .collect::<anyhow::Result<Vec<_>>>()
}

/// The fingerprint calibration in force and a description of it.
pub fn calibration(ctx: &Ctx) -> anyhow::Result<(ScoreCalibration, String)> {
    let path = ctx.data_dir.join(CALIBRATION_FILE);
    let (text, source) = match std::fs::read_to_string(&path) {
        Ok(t) => (t, path.display().to_string()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            (BUILTIN_CALIBRATION.to_owned(), "built-in".to_owned())
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let cal = parse_calibration(&text, &source)?;
    let described = format!(
        "FMR {:e} per search, calibrated on {} impostor comparisons [{source}]",
        FmrPolicy::default().accept_fmr,
        cal.impostor_pairs,
    );
    Ok((cal, described))
}

/// Reads a calibration file's text: its version and model are checked (a calibration
/// measured on another matcher's scores would give wrong rates), then its table.
pub fn parse_calibration(text: &str, source: &str) -> anyhow::Result<ScoreCalibration> {
    let bad = |why: String| CliError::input("bad_calibration", format!("{source}: {why}"));
    let cal: ScoreCalibration =
        serde_json::from_str(text).map_err(|e| bad(format!("not a calibration ({e})")))?;
    cal.validate().map_err(|e| bad(e.to_string()))?;
    Ok(cal)
}

/// A finger's quality as printed: a score and, for images, whether it was usable.
#[derive(Serialize)]
struct FingerQuality {
    position: &'static str,
    quality: u8,
    minutiae: usize,
}

fn probe_of(samples: &[Sample]) -> Vec<ProbeFinger> {
    let cfg = MatcherConfig::default();
    samples
        .iter()
        .map(|s| ProbeFinger::new(&s.template, &cfg))
        .collect()
}

fn qualities(samples: &[Sample]) -> Vec<FingerQuality> {
    samples
        .iter()
        .map(|s| FingerQuality {
            position: s.template.position.name(),
            quality: s.quality_score(),
            minutiae: s.template.minutiae.len(),
        })
        .collect()
}

fn write_qualities(w: &mut dyn Write, q: &[FingerQuality]) -> io::Result<()> {
    for f in q {
        writeln!(
            w,
            "  {}: quality {}, {} minutiae",
            f.position, f.quality, f.minutiae
        )?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name);
        std::fs::read_to_string(&p).unwrap()
    }

    #[test]
    fn the_v1_calibration_fixture_and_the_builtin_one_load() {
        let cal = parse_calibration(&fixture("finger_calibration_v1.json"), "fixture").unwrap();
        assert_eq!(cal.version, 1);
        assert_eq!(cal.model, ipseity_finger::fusion::SCORE_ID);
        assert_eq!(cal.impostor_pairs, 1000);
        assert_eq!(cal.table.len(), 3);
        parse_calibration(BUILTIN_CALIBRATION, "built-in").unwrap();
    }

    #[test]
    fn another_version_or_model_is_refused() {
        let text = fixture("finger_calibration_v1.json");
        for (from, to) in [
            ("\"version\": 1", "\"version\": 2"),
            // Measured on the matcher before the global pairing.
            ("ipseity-finger-mcc-v2", "ipseity-finger-mcc-v1"),
            ("\"version\": 1,", ""),
        ] {
            assert!(text.contains(from), "{from}");
            let err = parse_calibration(&text.replace(from, to), "edited").unwrap_err();
            assert_eq!(crate::error::code_of(&err), "bad_calibration", "{to}");
        }
    }
}
