//! The operating point that turns a similarity into a decision: the calibrated
//! one from `calibration.json` in the data directory, or the built-in default.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ipseity_core::OperatingPoint;
use serde::{Deserialize, Serialize};

use crate::error::CliError;

/// File name of the calibrated operating point inside the data directory.
pub const CALIBRATION_FILE: &str = "calibration.json";

/// Version of the `calibration.json` format.
pub const CALIBRATION_VERSION: u32 = 1;

/// The built-in operating point, used until `ipseity eval --calibrate` writes
/// `calibration.json`.
///
/// Derivation (measured, `ipseity eval --lfw ../shared/face/lfw`, see
/// docs/BENCHMARKS.md): over Labeled Faces in the Wild (deep-funneled, 12,426
/// images) with the default cooperative detector, every same-person pair genuine
/// (233,313) and every cross-person pair an impostor (76,950,793), `accept_at` is the
/// smallest similarity at which at most 1e-3 of the impostor pairs are accepted
/// and `reject_below` the one for 1e-2; the band between goes to a person
/// (`needs_review`). This is what `ipseity eval --calibrate --fmr 1e-3` derives
/// from a programme's own labelled data, which should replace it: LFW's press
/// photographs are not any programme's population or capture.
pub const DEFAULT_OPERATING_POINT: OperatingPoint = OperatingPoint {
    fmr: 1e-3,
    accept_at: 0.455_337_67,
    reject_below: 0.383_853_35,
};

/// What is reported as the FMR of [`DEFAULT_OPERATING_POINT`].
pub const DEFAULT_FMR_NOTE: &str =
    "FMR 1e-3 measured on LFW (built-in; calibrate on your own population)";

/// The operating point in force and where it came from.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The thresholds.
    pub point: OperatingPoint,
    /// What to print about it.
    pub report: PolicyReport,
}

/// The printable description of an operating point: no thresholds, no scores.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyReport {
    /// The false-match rate the accept threshold was set for.
    pub fmr: Option<f64>,
    /// `"FMR 1e-3 (calibrated)"` or [`DEFAULT_FMR_NOTE`].
    pub description: String,
    /// The calibration file, or `"built-in"`.
    pub source: String,
}

impl std::fmt::Display for PolicyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} [{}]", self.description, self.source)
    }
}

/// The contents of `calibration.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CalibrationFile {
    /// [`CALIBRATION_VERSION`].
    pub version: u32,
    /// The face model the scores came from.
    pub model: String,
    /// The thresholds.
    pub operating_point: OperatingPoint,
    /// How they were derived, for people.
    pub derivation: String,
}

/// Formats an FMR such as `0.001` as `1e-3`.
pub fn fmt_fmr(fmr: f64) -> String {
    format!("{fmr:e}")
}

/// The operating point for the data directory.
pub fn load(data_dir: &Path) -> anyhow::Result<Policy> {
    let path = data_dir.join(CALIBRATION_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Policy {
                point: DEFAULT_OPERATING_POINT,
                report: PolicyReport {
                    fmr: Some(DEFAULT_OPERATING_POINT.fmr),
                    description: DEFAULT_FMR_NOTE.to_owned(),
                    source: "built-in".to_owned(),
                },
            })
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let bad =
        |why: String| CliError::input("bad_calibration", format!("{}: {why}", path.display()));
    let file: CalibrationFile =
        serde_json::from_str(&text).map_err(|e| bad(format!("not a calibration file ({e})")))?;
    if file.version != CALIBRATION_VERSION {
        return Err(bad(format!("unsupported version {}", file.version)).into());
    }
    if file.model != ipseity_face::MODEL_ID {
        return Err(bad(format!(
            "calibrated for model {}, not {}; run `ipseity eval --calibrate` again",
            file.model,
            ipseity_face::MODEL_ID
        ))
        .into());
    }
    let p = file.operating_point;
    let valid = p.fmr > 0.0
        && p.fmr < 1.0
        && p.accept_at.is_finite()
        && p.reject_below.is_finite()
        && p.reject_below <= p.accept_at;
    if !valid {
        return Err(bad("thresholds out of range".to_owned()).into());
    }
    Ok(Policy {
        point: p,
        report: PolicyReport {
            fmr: Some(p.fmr),
            description: format!("FMR {} (calibrated)", fmt_fmr(p.fmr)),
            source: path.display().to_string(),
        },
    })
}

/// Writes `calibration.json` atomically (temporary file, sync, rename).
pub fn save(data_dir: &Path, file: &CalibrationFile) -> anyhow::Result<PathBuf> {
    fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let path = data_dir.join(CALIBRATION_FILE);
    let tmp = data_dir.join(format!("{CALIBRATION_FILE}.tmp"));
    let text = serde_json::to_string_pretty(file)?;
    {
        let mut f = fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(text.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
    }
    fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipseity_core::Decision;

    #[test]
    fn default_point_is_lfws_measured_one() {
        let p = DEFAULT_OPERATING_POINT;
        assert_eq!(p.fmr, 1e-3);
        assert_eq!(p.decide(p.accept_at), Decision::Accept);
        assert_eq!(p.decide(p.accept_at - 1e-4), Decision::NeedsReview);
        assert_eq!(p.decide(p.reject_below), Decision::NeedsReview);
        assert_eq!(p.decide(p.reject_below - 1e-4), Decision::Reject);
        // dlib's published LFW threshold (distance 0.6) lies in or near the
        // review band, and the accept side is stricter than it.
        assert!(p.accept_at > 0.4 && p.reject_below < p.accept_at);
    }

    #[test]
    fn calibration_round_trips_and_is_validated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let uncalibrated = load(dir.path()).expect("default");
        assert_eq!(uncalibrated.report.fmr, Some(1e-3));
        assert_eq!(uncalibrated.report.description, DEFAULT_FMR_NOTE);

        let point = OperatingPoint {
            fmr: 1e-3,
            accept_at: 0.45,
            reject_below: 0.35,
        };
        let file = CalibrationFile {
            version: CALIBRATION_VERSION,
            model: ipseity_face::MODEL_ID.to_owned(),
            operating_point: point,
            derivation: "test".to_owned(),
        };
        save(dir.path(), &file).expect("save");
        let loaded = load(dir.path()).expect("load");
        assert_eq!(loaded.point, point);
        assert_eq!(loaded.report.fmr, Some(1e-3));
        assert!(loaded.report.description.contains("1e-3"));

        let bad = CalibrationFile {
            operating_point: OperatingPoint {
                reject_below: 0.9,
                ..point
            },
            ..file
        };
        save(dir.path(), &bad).expect("save");
        assert!(load(dir.path()).is_err());
        std::fs::write(dir.path().join(CALIBRATION_FILE), "{").expect("write");
        assert!(load(dir.path()).is_err());
    }

    #[test]
    fn the_v1_fixture_loads_and_other_versions_or_models_do_not() {
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/face_calibration_v1.json");
        let text = std::fs::read_to_string(fixture).expect("fixture");
        let dir = tempfile::tempdir().expect("tempdir");
        let at = dir.path().join(CALIBRATION_FILE);
        std::fs::write(&at, &text).expect("write");
        let p = load(dir.path()).expect("v1 loads");
        assert_eq!(p.point.fmr, 1e-3);
        assert_eq!((p.point.accept_at, p.point.reject_below), (0.45, 0.375));
        for (from, to) in [
            ("\"version\": 1", "\"version\": 2"),
            (
                "face_recognition_models-0.3.0",
                "face_recognition_models-0.2.0",
            ),
        ] {
            assert!(text.contains(from), "{from}");
            std::fs::write(&at, text.replace(from, to)).expect("write");
            let err = load(dir.path()).expect_err(to);
            assert_eq!(crate::error::code_of(&err), "bad_calibration");
        }
    }
}
