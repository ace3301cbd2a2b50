//! `ipseity eval`: accuracy over a labelled image set (EER, FNMR at fixed FMR,
//! DET plot) and, with `--calibrate`, the operating point for this data set.
//! This is an evaluation command: score statistics and thresholds are printed.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::Context as _;
use ipseity_core::OperatingPoint;
use ipseity_eval::Summary;
use serde::Serialize;

use crate::args::EvalArgs;
use crate::context::{load_face_image, single_face, Ctx};
use crate::error::{code_of, CliError, ExitStatus};
use crate::manifest;
use crate::output::Render;
use crate::policy::{self, fmt_fmr, CalibrationFile};

/// FMR whose threshold becomes `reject_below` when calibrating.
const REJECT_FMR: f64 = 1e-2;

/// Width of the review band when the `REJECT_FMR` threshold is unusable.
const FALLBACK_REVIEW_BAND: f32 = 0.1;

#[derive(Serialize)]
struct Failure {
    line: usize,
    path: PathBuf,
    code: &'static str,
    message: String,
}

#[derive(Serialize)]
struct Calibration {
    file: String,
    operating_point: OperatingPoint,
    derivation: String,
}

#[derive(Serialize)]
struct EvalReport {
    images: usize,
    embedded: usize,
    identities: usize,
    failed: usize,
    failure_reasons: BTreeMap<&'static str, usize>,
    failures: Vec<Failure>,
    summary: Summary,
    det_svg: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    calibration: Option<Calibration>,
}

fn rate_line(
    w: &mut dyn Write,
    fmr: &str,
    fnmr: Option<f64>,
    threshold: Option<f32>,
    needed: usize,
    have: usize,
) -> io::Result<()> {
    match (fnmr, threshold) {
        (Some(f), Some(t)) => writeln!(w, "FNMR at FMR {fmr}: {f:.4} (threshold {t:.4})"),
        _ => writeln!(
            w,
            "FNMR at FMR {fmr}: n/a: needs >= {needed} impostor pairs (have {have})"
        ),
    }
}

impl Render for EvalReport {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        for f in &self.failures {
            writeln!(
                w,
                "line {}: {}: {} ({})",
                f.line,
                f.path.display(),
                f.message,
                f.code
            )?;
        }
        write!(
            w,
            "images: {} ({} embedded, {} failed",
            self.images, self.embedded, self.failed
        )?;
        if !self.failure_reasons.is_empty() {
            let r: Vec<String> = self
                .failure_reasons
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            write!(w, ": {}", r.join(", "))?;
        }
        writeln!(w, "), identities: {}", self.identities)?;
        let s = &self.summary;
        writeln!(w, "pairs: {} genuine, {} impostor", s.genuine, s.impostor)?;
        writeln!(
            w,
            "EER: {:.4} (threshold {:.4} similarity, i.e. distance {:.4})",
            s.eer,
            s.eer_threshold,
            1.0 - s.eer_threshold
        )?;
        rate_line(
            w,
            "1e-3",
            s.fnmr_at_fmr_1e3,
            s.threshold_at_fmr_1e3,
            1_000,
            s.impostor,
        )?;
        rate_line(
            w,
            "1e-4",
            s.fnmr_at_fmr_1e4,
            s.threshold_at_fmr_1e4,
            10_000,
            s.impostor,
        )?;
        writeln!(w, "DET plot: {}", self.det_svg)?;
        if let Some(c) = &self.calibration {
            writeln!(w, "calibration written to {}", c.file)?;
            writeln!(
                w,
                "  accept at similarity >= {:.4}, reject below {:.4}, FMR {}",
                c.operating_point.accept_at,
                c.operating_point.reject_below,
                fmt_fmr(c.operating_point.fmr)
            )?;
            writeln!(w, "  {}", c.derivation)?;
        }
        Ok(())
    }
}

pub fn run(ctx: &Ctx, args: &EvalArgs) -> anyhow::Result<ExitStatus> {
    if args.calibrate && !(args.fmr > 0.0 && args.fmr < 1.0) {
        return Err(CliError::input("usage", "--fmr must be between 0 and 1").into());
    }
    if let Some(dir) = &args.pad_bona_fide {
        return super::eval_pad::run(ctx, args, dir);
    }
    if let Some(dir) = &args.lfw {
        return super::eval_lfw::run(ctx, args, dir);
    }
    if let Some(dir) = &args.fingers {
        return super::finger::eval::run(
            ctx,
            &crate::args::FingerEvalArgs {
                dir: dir.clone(),
                fingers: None,
                det: args.det.clone(),
                calibrate: args.calibrate,
                scores: None,
                all_pairs: false,
                ppi: None,
            },
        );
    }
    let Some(manifest_path) = &args.manifest else {
        return Err(CliError::input("usage", "--manifest or --fingers is required").into());
    };
    let rows = manifest::read(manifest_path, &["path", "identity"])?;
    let engine = ctx.engine()?;
    let bar = super::progress(rows.len(), "embedding");
    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    let mut embeddings = Vec::new();
    let mut labels = Vec::new();
    let mut failures = Vec::new();
    let mut failure_reasons: BTreeMap<&'static str, usize> = BTreeMap::new();
    for row in &rows {
        let path = manifest::resolve(manifest_path, &row.fields[0]);
        let face = load_face_image(&path).and_then(|img| single_face(&engine, &img, &path, true));
        bar.inc(1);
        match face {
            Ok(face) => {
                let next = ids.len();
                labels.push(*ids.entry(row.fields[1].clone()).or_insert(next));
                embeddings.push(face.embedding);
            }
            Err(e) => {
                let code = code_of(&e);
                *failure_reasons.entry(code).or_default() += 1;
                failures.push(Failure {
                    line: row.line,
                    path,
                    code,
                    message: crate::error::message(&e),
                });
            }
        }
    }
    bar.finish_and_clear();

    let (gp, ip) = ipseity_eval::pairs_from_labels(&labels);
    let score = |&(i, j): &(usize, usize)| ipseity_face::similarity(&embeddings[i], &embeddings[j]);
    let genuine: Vec<f32> = gp.iter().map(score).collect();
    let impostor: Vec<f32> = ip.iter().map(score).collect();
    if genuine.is_empty() || impostor.is_empty() {
        return Err(CliError::input(
            "insufficient_data",
            format!(
                "{} genuine and {} impostor pairs from {} usable images: need at least one of each \
                 (two images of one identity and two identities)",
                genuine.len(),
                impostor.len(),
                embeddings.len()
            ),
        )
        .into());
    }
    let summary = ipseity_eval::summarize(&genuine, &impostor)?;
    let curve = ipseity_eval::det_curve(&genuine, &impostor)?;
    let title = format!(
        "{} ({} genuine, {} impostor pairs)",
        manifest_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        genuine.len(),
        impostor.len()
    );
    let svg = ipseity_eval::det_svg(&[("ipseity face", &curve)], &title);
    std::fs::write(&args.det, svg).with_context(|| format!("writing {}", args.det.display()))?;

    let calibration = if args.calibrate {
        Some(calibrate(ctx, args, &impostor)?)
    } else {
        None
    };
    ctx.out.emit(&EvalReport {
        images: rows.len(),
        embedded: embeddings.len(),
        identities: ids.len(),
        failed: failures.len(),
        failure_reasons,
        failures,
        summary,
        det_svg: args.det.display().to_string(),
        calibration,
    })?;
    Ok(ExitStatus::Success)
}

fn calibrate(ctx: &Ctx, args: &EvalArgs, impostor: &[f32]) -> anyhow::Result<Calibration> {
    let n = impostor.len();
    let Some(accept_at) = ipseity_eval::threshold_for_fmr(impostor, args.fmr) else {
        return Err(CliError::input(
            "insufficient_data",
            format!(
                "cannot calibrate at FMR {}: needs >= {} impostor pairs (have {n})",
                fmt_fmr(args.fmr),
                (1.0 / args.fmr).ceil()
            ),
        )
        .into());
    };
    let at_reject = ipseity_eval::threshold_for_fmr(impostor, REJECT_FMR);
    let (reject_below, how) = match at_reject {
        Some(t) if t <= accept_at => (
            t,
            format!("reject_below = smallest threshold with impostor FMR <= {}", fmt_fmr(REJECT_FMR)),
        ),
        _ => (
            accept_at - FALLBACK_REVIEW_BAND,
            format!(
                "reject_below = accept_at - {FALLBACK_REVIEW_BAND} (the FMR {} threshold was unusable)",
                fmt_fmr(REJECT_FMR)
            ),
        ),
    };
    let point = OperatingPoint {
        fmr: args.fmr,
        accept_at,
        reject_below,
    };
    let derivation = format!(
        "accept_at = smallest similarity threshold with impostor FMR <= {} over {n} impostor pairs \
         from {}; {how}",
        fmt_fmr(args.fmr),
        args.manifest
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    let file = policy::save(
        &ctx.data_dir,
        &CalibrationFile {
            version: policy::CALIBRATION_VERSION,
            model: ipseity_face::MODEL_ID.to_owned(),
            operating_point: point,
            derivation: derivation.clone(),
        },
    )?;
    Ok(Calibration {
        file: file.display().to_string(),
        operating_point: point,
        derivation,
    })
}
