//! `ipseity finger eval`: accuracy and speed over a directory of impressions named
//! `FFFFF_I.png` (as `ipseity finger synth` writes them), with the FVC protocol: every
//! genuine pair within a finger, and the first impressions of different fingers against
//! each other for impostors. A sample that fails extraction scores 0 in every pair it is
//! in, as FVC counts it, and is reported.
//!
//! Scores are evaluated twice: with the native template, and after a round trip through an
//! ISO/IEC 19794-2 record, since the standard format quantises angles and positions.
//! Where `FFFFF_I.minutiae.json` ground truth sits beside an image, extraction accuracy
//! (recall and precision within 12 px and 30 degrees) is measured too.
//! This is an evaluation command: score statistics and thresholds are printed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use ipseity_eval::Summary;
use ipseity_finger::extract::ExtractConfig;
use ipseity_finger::fusion::ScoreCalibration;
use ipseity_finger::matcher::{self, MatcherConfig, Prepared};
use ipseity_finger::{iso, sample, FingerTemplate, Minutia};
use rayon::prelude::*;
use serde::Serialize;

use super::{load_sample, FingerSpec, CALIBRATION_FILE};
use crate::args::FingerEvalArgs;
use crate::context::Ctx;
use crate::error::{code_of, CliError, ExitStatus};
use crate::output::Render;

/// Distance and angle within which an extracted minutia matches a ground-truth one.
const TRUTH_PX: f32 = 12.0;
const TRUTH_DEG: f32 = 30.0;

#[derive(Serialize)]
struct Failure {
    path: PathBuf,
    code: &'static str,
    message: String,
}

#[derive(Serialize, Default)]
struct TruthReport {
    impressions: usize,
    truth_minutiae: usize,
    extracted_minutiae: usize,
    matched: usize,
    recall: f64,
    precision: f64,
}

#[derive(Serialize)]
struct Speed {
    extraction_ms_mean: f64,
    extraction_ms_median: f64,
    comparisons_per_second_one_thread: f64,
    prepare_us_mean: f64,
}

#[derive(Serialize)]
struct FingerEvalReport {
    /// `fvc` (first impressions of different fingers as impostors) or `all_pairs`.
    protocol: &'static str,
    fingers: usize,
    impressions: usize,
    failed: usize,
    failure_reasons: BTreeMap<&'static str, usize>,
    failures: Vec<Failure>,
    native: Summary,
    iso_round_trip: Summary,
    extraction_truth: Option<TruthReport>,
    speed: Speed,
    det_svg: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    calibration_file: Option<String>,
}

fn rate(w: &mut dyn Write, label: &str, fnmr: Option<f64>, t: Option<f32>) -> io::Result<()> {
    match (fnmr, t) {
        (Some(f), Some(t)) => writeln!(w, "  FNMR at FMR {label}: {f:.4} (threshold {t:.4})"),
        _ => writeln!(w, "  FNMR at FMR {label}: n/a (too few impostor pairs)"),
    }
}

fn summary_lines(w: &mut dyn Write, name: &str, s: &Summary) -> io::Result<()> {
    writeln!(
        w,
        "{name}: {} genuine, {} impostor pairs",
        s.genuine, s.impostor
    )?;
    if s.impostor < 100 {
        // The rates need 100 impostor pairs for FMR 1e-2; an EER from fewer says little.
        writeln!(
            w,
            "  EER: {:.4} (threshold {:.4}; from only {} impostor pairs, indicative)",
            s.eer, s.eer_threshold, s.impostor
        )?;
    } else {
        writeln!(w, "  EER: {:.4} (threshold {:.4})", s.eer, s.eer_threshold)?;
    }
    rate(w, "1e-2", s.fnmr_at_fmr_1e2, s.threshold_at_fmr_1e2)?;
    rate(w, "1e-3", s.fnmr_at_fmr_1e3, s.threshold_at_fmr_1e3)?;
    rate(w, "1e-4", s.fnmr_at_fmr_1e4, s.threshold_at_fmr_1e4)
}

impl Render for FingerEvalReport {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        for f in &self.failures {
            let path = f.path.display().to_string();
            if f.message.contains(&path) {
                writeln!(w, "{} ({})", f.message, f.code)?;
            } else {
                writeln!(w, "{path}: {} ({})", f.message, f.code)?;
            }
        }
        writeln!(
            w,
            "fingers: {}, impressions: {}, failed to extract: {}; protocol: {}",
            self.fingers,
            self.impressions,
            self.failed,
            if self.protocol == "fvc" {
                "FVC (first impressions of different fingers as impostors)"
            } else {
                "every pair of impressions of different fingers as impostors"
            }
        )?;
        summary_lines(w, "native template", &self.native)?;
        summary_lines(w, "after ISO 19794-2 round trip", &self.iso_round_trip)?;
        if let Some(t) = &self.extraction_truth {
            writeln!(
                w,
                "extraction vs ground truth ({} impressions, within {TRUTH_PX} px and {TRUTH_DEG} deg): \
                 recall {:.3}, precision {:.3}",
                t.impressions, t.recall, t.precision
            )?;
        }
        let s = &self.speed;
        writeln!(
            w,
            "extraction: {:.1} ms/impression mean, {:.1} median; comparisons: {:.0}/s on one thread; prepare {:.0} us",
            s.extraction_ms_mean, s.extraction_ms_median, s.comparisons_per_second_one_thread, s.prepare_us_mean
        )?;
        writeln!(w, "DET plot: {}", self.det_svg)?;
        if let Some(c) = &self.calibration_file {
            writeln!(w, "calibration written to {c}")?;
        }
        Ok(())
    }
}

/// `(finger, impression)` parsed from `FFFFF_I.png`.
fn parse_name(p: &Path) -> Option<(u32, u32)> {
    let stem = p.file_name()?.to_str()?.strip_suffix(".png")?;
    let (f, i) = stem.split_once('_')?;
    Some((f.parse().ok()?, i.parse().ok()?))
}

struct Item {
    finger: u32,
    impression: u32,
    path: PathBuf,
}

fn list(dir: &Path, limit: Option<usize>) -> anyhow::Result<Vec<Item>> {
    let mut items: Vec<Item> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|path| {
            parse_name(&path).map(|(finger, impression)| Item {
                finger,
                impression,
                path,
            })
        })
        .collect();
    items.sort_by_key(|i| (i.finger, i.impression));
    if let Some(n) = limit {
        let keep: BTreeSet<u32> = items
            .iter()
            .map(|i| i.finger)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .take(n)
            .collect();
        items.retain(|i| keep.contains(&i.finger));
    }
    Ok(items)
}

/// Greedy one-to-one matching of extracted minutiae to ground truth, closest pairs first.
fn truth_matches(truth: &[Minutia], found: &[Minutia]) -> usize {
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    for (i, t) in truth.iter().enumerate() {
        for (j, f) in found.iter().enumerate() {
            let d = (t.x - f.x).hypot(t.y - f.y);
            let mut da = (t.angle - f.angle).abs() % std::f32::consts::TAU;
            if da > std::f32::consts::PI {
                da = std::f32::consts::TAU - da;
            }
            if d <= TRUTH_PX && da.to_degrees() <= TRUTH_DEG {
                pairs.push((d, i, j));
            }
        }
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut ti, mut fj) = (vec![false; truth.len()], vec![false; found.len()]);
    let mut n = 0;
    for (_, i, j) in pairs {
        if !ti[i] && !fj[j] {
            ti[i] = true;
            fj[j] = true;
            n += 1;
        }
    }
    n
}

fn scores(prepared: &[Option<Prepared>], pairs: &[(usize, usize)]) -> Vec<f32> {
    pairs
        .par_iter()
        .map(|&(a, b)| match (&prepared[a], &prepared[b]) {
            (Some(x), Some(y)) => matcher::score(x, y),
            _ => 0.0,
        })
        .collect()
}

/// Refuses an output path whose directory does not exist, before the evaluation runs
/// rather than after it.
fn check_destination(flag: &str, path: &Path) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let problem = if path.is_dir() {
        format!("{} is a directory; give a file name", path.display())
    } else if !dir.is_dir() {
        format!("{} is not a directory to write into", dir.display())
    } else {
        return Ok(());
    };
    Err(CliError::input("usage", format!("{flag} {}: {problem}", path.display())).into())
}

pub fn run(ctx: &Ctx, args: &FingerEvalArgs) -> anyhow::Result<ExitStatus> {
    // What can be refused before hours of extraction is refused first: a resolution that
    // every impression would fail with, and outputs that could not be written.
    if let Some(ppi) = args.ppi {
        sample::check_ppi(ppi).context("--ppi")?;
    }
    check_destination("--det", &args.det)?;
    if let Some(path) = &args.scores {
        check_destination("--scores", path)?;
    }
    let items = list(&args.dir, args.fingers)?;
    let fingers: BTreeSet<u32> = items.iter().map(|i| i.finger).collect();
    if fingers.len() < 2 {
        return Err(CliError::input(
            "usage",
            format!(
                "{}: need impressions of at least two fingers named FFFFF_I.png",
                args.dir.display()
            ),
        )
        .into());
    }
    let cfg = ExtractConfig::default();
    let bar = super::super::progress(items.len(), "extract");
    let extracted: Vec<(anyhow::Result<FingerTemplate>, f64)> = items
        .par_iter()
        .map(|it| {
            let t0 = Instant::now();
            let r = load_sample(
                &FingerSpec {
                    position: ipseity_finger::FingerPosition::Unknown,
                    path: it.path.clone(),
                    ppi: args.ppi,
                },
                &cfg,
            )
            .map(|s| s.template);
            bar.inc(1);
            (r, t0.elapsed().as_secs_f64() * 1e3)
        })
        .collect();
    bar.finish_and_clear();

    let mut failures = Vec::new();
    let mut reasons: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut templates: Vec<Option<FingerTemplate>> = Vec::with_capacity(items.len());
    let mut ms: Vec<f64> = Vec::new();
    for (it, (r, t)) in items.iter().zip(extracted) {
        match r {
            Ok(tpl) => {
                ms.push(t);
                templates.push(Some(tpl));
            }
            Err(e) => {
                let code = code_of(&e);
                *reasons.entry(code).or_default() += 1;
                failures.push(Failure {
                    path: it.path.clone(),
                    code,
                    message: crate::error::message(&e),
                });
                templates.push(None);
            }
        }
    }

    if templates.iter().all(Option::is_none) {
        let first = failures
            .first()
            .map(|f| f.message.clone())
            .unwrap_or_default();
        return Err(CliError::input(
            failures.first().map_or("eval_error", |f| f.code),
            format!(
                "none of the {} impressions could be used; the first: {first}",
                items.len()
            ),
        )
        .into());
    }

    // Extraction accuracy where ground truth exists.
    let mut truth = TruthReport::default();
    for (it, t) in items.iter().zip(&templates) {
        let path = it.path.with_extension("minutiae.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let gt: Vec<Minutia> = serde_json::from_str(&text)
            .with_context(|| format!("reading ground truth {}", path.display()))?;
        truth.impressions += 1;
        truth.truth_minutiae += gt.len();
        if let Some(t) = t {
            truth.extracted_minutiae += t.minutiae.len();
            truth.matched += truth_matches(&gt, &t.minutiae);
        }
    }
    let extraction_truth = (truth.impressions > 0).then(|| {
        truth.recall = truth.matched as f64 / truth.truth_minutiae.max(1) as f64;
        truth.precision = truth.matched as f64 / truth.extracted_minutiae.max(1) as f64;
        truth
    });

    // FVC protocol pairs.
    let fingers: Vec<u32> = items.iter().map(|it| it.finger).collect();
    let (genuine_pairs, impostor_pairs) = if args.all_pairs {
        ipseity_eval::pairs_from_labels(&fingers.iter().map(|&f| f as usize).collect::<Vec<_>>())
    } else {
        ipseity_eval::fvc_pairs(&fingers)
    };
    let finger_count = fingers.iter().collect::<BTreeSet<_>>().len();

    let mcfg = MatcherConfig::default();
    let t0 = Instant::now();
    let prepared: Vec<Option<Prepared>> = templates
        .iter()
        .map(|t| t.as_ref().map(|t| matcher::prepare(t, &mcfg)))
        .collect();
    let prepare_us = t0.elapsed().as_secs_f64() * 1e6 / prepared.len().max(1) as f64;
    let genuine = scores(&prepared, &genuine_pairs);
    let impostor = scores(&prepared, &impostor_pairs);

    // One-thread comparison speed over the impostor pairs (the common case in 1:N).
    let timed: Vec<(&Prepared, &Prepared)> = impostor_pairs
        .iter()
        .filter_map(|&(a, b)| Some((prepared[a].as_ref()?, prepared[b].as_ref()?)))
        .take(200_000)
        .collect();
    let t0 = Instant::now();
    let mut sink = 0.0f32;
    let mut done = 0usize;
    while t0.elapsed().as_secs_f64() < 1.0 && !timed.is_empty() {
        for (a, b) in &timed {
            sink += matcher::score(a, b);
        }
        done += timed.len();
    }
    std::hint::black_box(sink);
    let cps = done as f64 / t0.elapsed().as_secs_f64().max(1e-9);

    // ISO 19794-2 round trip.
    let iso_prepared: Vec<Option<Prepared>> = templates
        .iter()
        .map(|t| {
            let t = t.as_ref()?;
            let bytes = iso::write(std::slice::from_ref(t), iso::Format::Iso19794_2).ok()?;
            let (_, mut views) = iso::read(&bytes).ok()?;
            let back = views.pop()?;
            Some(matcher::prepare(&back, &mcfg))
        })
        .collect();
    let iso_genuine = scores(&iso_prepared, &genuine_pairs);
    let iso_impostor = scores(&iso_prepared, &impostor_pairs);

    let native = ipseity_eval::summarize(&genuine, &impostor)?;
    let iso_round_trip = ipseity_eval::summarize(&iso_genuine, &iso_impostor)?;
    let det_native = ipseity_eval::det_curve(&genuine, &impostor)?;
    let det_iso = ipseity_eval::det_curve(&iso_genuine, &iso_impostor)?;
    let svg = ipseity_eval::det_svg(
        &[
            ("native template", &det_native),
            ("ISO 19794-2 round trip", &det_iso),
        ],
        &format!(
            "Ipseity fingerprints: {} fingers x {} impressions ({})",
            finger_count,
            items.len() / finger_count.max(1),
            if args.all_pairs {
                "every cross-finger pair as impostor"
            } else {
                "FVC protocol"
            }
        ),
    );
    std::fs::write(&args.det, svg).with_context(|| format!("writing {}", args.det.display()))?;

    if let Some(path) = &args.scores {
        let mut out = String::from("kind,a,b,score\n");
        let name = |i: usize| {
            let it = &items[i];
            format!("{:05}_{}", it.finger, it.impression)
        };
        for (kind, pairs, s) in [
            ("genuine", &genuine_pairs, &genuine),
            ("impostor", &impostor_pairs, &impostor),
        ] {
            for (&(a, b), v) in pairs.iter().zip(s.iter()) {
                out.push_str(&format!("{kind},{},{},{v}\n", name(a), name(b)));
            }
        }
        std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))?;
    }

    let calibration_file = if args.calibrate {
        let cal = ScoreCalibration::from_impostor_scores(
            &impostor,
            format!(
                "{} impostor pairs of {} fingers in {}",
                impostor.len(),
                finger_count,
                args.dir.display()
            ),
        )
        .map_err(|e| CliError::input("eval_error", e.to_string()))?;
        std::fs::create_dir_all(&ctx.data_dir)?;
        let path = ctx.data_dir.join(CALIBRATION_FILE);
        std::fs::write(&path, serde_json::to_string_pretty(&cal)?)
            .with_context(|| format!("writing {}", path.display()))?;
        Some(path.display().to_string())
    } else {
        None
    };

    let mut sorted = ms.clone();
    sorted.sort_by(f64::total_cmp);
    let speed = Speed {
        extraction_ms_mean: ms.iter().sum::<f64>() / ms.len().max(1) as f64,
        extraction_ms_median: sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN),
        comparisons_per_second_one_thread: cps,
        prepare_us_mean: prepare_us,
    };
    ctx.out.emit(&FingerEvalReport {
        protocol: if args.all_pairs { "all_pairs" } else { "fvc" },
        fingers: finger_count,
        impressions: items.len(),
        failed: failures.len(),
        failure_reasons: reasons,
        failures,
        native,
        iso_round_trip,
        extraction_truth,
        speed,
        det_svg: args.det.display().to_string(),
        calibration_file,
    })?;
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipseity_finger::MinutiaKind;

    #[test]
    fn names_parse() {
        assert_eq!(parse_name(Path::new("d/00012_3.png")), Some((12, 3)));
        assert_eq!(parse_name(Path::new("d/00012_3.minutiae.json")), None);
        assert_eq!(parse_name(Path::new("d/x_3.png")), None);
    }

    #[test]
    fn truth_matching_is_one_to_one_and_bounded() {
        let m = |x: f32, y: f32, deg: f32| {
            Minutia::new(x, y, deg.to_radians(), MinutiaKind::Ending, 50)
        };
        let truth = [m(10.0, 10.0, 0.0), m(100.0, 100.0, 90.0)];
        // One close match, one too far, one with the wrong direction, one duplicate.
        let found = [
            m(12.0, 11.0, 350.0),
            m(11.0, 10.0, 5.0),
            m(100.0, 120.0, 90.0),
            m(101.0, 100.0, 180.0),
        ];
        assert_eq!(truth_matches(&truth, &found), 1);
        assert_eq!(truth_matches(&truth, &[]), 0);
    }
}
