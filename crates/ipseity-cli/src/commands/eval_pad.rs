//! `ipseity eval --pad-bona-fide DIR [--pad-attacks DIR]`: presentation-attack detection
//! measured as ISO/IEC 30107-3 names its rates. BPCER is the share of bona fide
//! presentations classified as attacks; APCER the share of attack presentations
//! classified as bona fide. A face that is not found is a failure to acquire, counted
//! apart (the check never runs on it). This is an evaluation command: the fused bona fide
//! probability's spread is printed.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ipseity_eval::wilson_95;
use ipseity_face::FaceEngine;
use rayon::prelude::*;
use serde::Serialize;

use crate::args::EvalArgs;
use crate::context::{load_face_image, Ctx};
use crate::error::{code_of, CliError, ExitStatus};
use crate::output::Render;

/// More images than this in one folder are refused: the walk and the report stay bounded.
const MAX_IMAGES: usize = 50_000;

/// Folders nested deeper than this are not walked (a link loop, a mistaken root).
const MAX_DEPTH: usize = 8;

/// Quantiles of the fused bona fide probability that the report gives.
const QUANTILES: [f64; 5] = [0.01, 0.05, 0.25, 0.5, 0.75];

#[derive(Serialize)]
struct SetReport {
    dir: String,
    presentations: usize,
    /// Faces found and checked.
    assessed: usize,
    /// Checked and classified as the other kind: attacks among the bona fide, bona fide
    /// among the attacks.
    misclassified: usize,
    /// `misclassified / assessed`, with its 95% Wilson interval.
    rate: Option<f64>,
    rate_ci: Option<(f64, f64)>,
    failures_to_acquire: BTreeMap<&'static str, usize>,
    /// The fused bona fide probability at [`QUANTILES`].
    bona_fide_probability_quantiles: Vec<(f64, f32)>,
    /// Files misclassified (attacks taken for bona fide, or at most 20 bona fide taken for
    /// attacks), for a person to look at.
    examples: Vec<String>,
}

#[derive(Serialize)]
struct PadReport {
    rule: &'static str,
    bona_fide: SetReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    attacks: Option<SetReport>,
}

fn set_lines(w: &mut dyn Write, name: &str, s: &SetReport) -> io::Result<()> {
    writeln!(w, "{name}: {} ({} presentations)", s.dir, s.presentations)?;
    let ftar: usize = s.failures_to_acquire.values().sum();
    write!(w, "  failures to acquire: {ftar}")?;
    for (code, n) in &s.failures_to_acquire {
        write!(w, " {code}={n}")?;
    }
    writeln!(w)?;
    match (s.rate, s.rate_ci) {
        (Some(r), Some((lo, hi))) => writeln!(
            w,
            "  {}: {:.2}% ({} of {}; 95% CI {:.2}-{:.2}%)",
            if name == "bona fide" {
                "BPCER"
            } else {
                "APCER"
            },
            r * 100.0,
            s.misclassified,
            s.assessed,
            lo * 100.0,
            hi * 100.0
        )?,
        _ => writeln!(w, "  no face was assessed")?,
    }
    let q: Vec<String> = s
        .bona_fide_probability_quantiles
        .iter()
        .map(|(q, v)| format!("p{}={v:.3}", (q * 100.0).round()))
        .collect();
    if !q.is_empty() {
        writeln!(w, "  bona fide probability: {}", q.join(" "))?;
    }
    for e in &s.examples {
        writeln!(w, "  misclassified: {e}")?;
    }
    Ok(())
}

impl Render for PadReport {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(w, "rule: {}", self.rule)?;
        set_lines(w, "bona fide", &self.bona_fide)?;
        if let Some(a) = &self.attacks {
            set_lines(w, "attacks", a)?;
        }
        Ok(())
    }
}

/// Image files under `dir`, sorted, at most [`MAX_IMAGES`].
fn list_images(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((d, depth)) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| d.display().to_string())? {
            let entry = entry.with_context(|| d.display().to_string())?;
            let kind = entry.file_type()?;
            let path = entry.path();
            if kind.is_dir() && depth < MAX_DEPTH {
                stack.push((path, depth + 1));
            } else if kind.is_file() && is_image(&path) {
                out.push(path);
                if out.len() > MAX_IMAGES {
                    return Err(CliError::input(
                        "usage",
                        format!("{} holds more than {MAX_IMAGES} images", dir.display()),
                    )
                    .into());
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
}

/// One presentation: its fused bona fide probability and verdict, or why no face was
/// checked.
fn assess(engine: &FaceEngine, path: &Path) -> Result<(f32, bool), &'static str> {
    let img = load_face_image(path).map_err(|e| code_of(&e))?;
    let dets = engine.detect(&img).map_err(|_| "detection_failed")?;
    let i = ipseity_face::presented_face(&dets, img.width, img.height).ok_or("no_face")?;
    let s = engine
        .assess_liveness(&img, dets[i].rect)
        .map_err(|_| "liveness_failed")?;
    Ok((s.bona_fide, s.is_bona_fide))
}

fn measure(
    engine: &FaceEngine,
    dir: &Path,
    every: usize,
    bona_fide: bool,
) -> anyhow::Result<SetReport> {
    let images: Vec<PathBuf> = list_images(dir)?
        .into_iter()
        .step_by(every.max(1))
        .collect();
    let results: Vec<_> = images.par_iter().map(|p| assess(engine, p)).collect();
    let mut failures = BTreeMap::new();
    let mut probs = Vec::new();
    let mut wrong = Vec::new();
    for (path, r) in images.iter().zip(&results) {
        match r {
            Err(code) => *failures.entry(*code).or_insert(0) += 1,
            Ok((p, live)) => {
                probs.push(*p);
                if *live != bona_fide {
                    wrong.push(path.display().to_string());
                }
            }
        }
    }
    probs.sort_by(f32::total_cmp);
    let quantiles = if probs.is_empty() {
        Vec::new()
    } else {
        QUANTILES
            .iter()
            .map(|&q| {
                let i = ((probs.len() - 1) as f64 * q).round() as usize;
                (q, probs[i])
            })
            .collect()
    };
    let assessed = probs.len();
    let misclassified = wrong.len();
    wrong.truncate(20);
    Ok(SetReport {
        dir: dir.display().to_string(),
        presentations: images.len(),
        assessed,
        misclassified,
        rate: (assessed > 0).then(|| misclassified as f64 / assessed as f64),
        rate_ci: (assessed > 0).then(|| wilson_95(misclassified, assessed)),
        failures_to_acquire: failures,
        bona_fide_probability_quantiles: quantiles,
        examples: wrong,
    })
}

pub fn run(ctx: &Ctx, args: &EvalArgs, bona_fide: &Path) -> anyhow::Result<ExitStatus> {
    let liveness = ctx.liveness()?.ok_or_else(|| {
        CliError::input(
            "liveness_unavailable",
            format!(
                "the liveness models are not installed in {} \
                 (`ipseity models install --from DIR`)",
                ctx.models_dir.display()
            ),
        )
    })?;
    let engine = ctx.engine()?.with_liveness(liveness);
    let report = PadReport {
        rule: "the arg-max of the two MiniFASNet models' averaged class probabilities \
               (the decision enroll and verify apply)",
        bona_fide: measure(&engine, bona_fide, args.pad_every, true)?,
        attacks: args
            .pad_attacks
            .as_deref()
            .map(|d| measure(&engine, d, 1, false))
            .transpose()?,
    };
    ctx.out.emit(&report)?;
    Ok(ExitStatus::Success)
}
