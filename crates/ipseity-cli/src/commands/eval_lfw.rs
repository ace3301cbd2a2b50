//! `ipseity eval --lfw DIR`: the face pipeline on Labeled Faces in the Wild.
//!
//! - View 2: 10-fold accuracy (threshold learnt on nine folds, applied to the
//!   tenth) with its standard error, as published LFW figures are.
//! - All pairs: every same-person pair genuine and every cross-person pair an
//!   impostor (about 77 million over the whole set), for FNMR at FMR 1e-2, 1e-3,
//!   1e-4 and 1e-5 with 95% intervals, and a DET plot.
//! - 1:N: one image per identity with several enrolled, the others searched
//!   (mated); identities with one image alternate between gallery distractors
//!   and non-mated searches. FNIR at rank 1 for FPIR 1e-2 and 1e-3.
//!
//! Images that yield no usable face count as failures to acquire: every pair
//! holding one scores as a non-match. This is an evaluation command over a
//! test set, so it prints scores and thresholds.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use anyhow::Context as _;
use ipseity_eval::{FoldAccuracy, FoldPair, IdentRate, MatedSearch};
use ipseity_index::kernels::dot_f32;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::args::EvalArgs;
use crate::context::{load_face_image, single_face, Ctx};
use crate::error::{code_of, CliError, ExitStatus};
use crate::output::Render;

/// Most images and pairs read from an LFW directory (the set has 13,233 and 6,000).
/// The all-pairs scores grow with the square: 20,000 images are 200 million
/// pairs, 800 MB of scores.
const MAX_IMAGES: usize = 20_000;
/// Largest embeddings cache read back (LFW's is about 30 MB).
const MAX_CACHE_BYTES: u64 = 512 << 20;
const MAX_PAIRS_BYTES: u64 = 4 << 20;

#[derive(Serialize, Deserialize, Default)]
struct Cache {
    model: String,
    detector: String,
    /// Relative path -> embedding, or the failure code.
    entries: BTreeMap<String, Result<Vec<f32>, String>>,
    /// Relative path -> the face's quality score (caches written before it was kept
    /// have none; those images are analysed again).
    #[serde(default)]
    quality: BTreeMap<String, u8>,
    /// Relative path -> how frontal the face is, 0-100 ([`frontal`]).
    #[serde(default)]
    frontal: BTreeMap<String, u8>,
}

/// How frontal a face is, from its five landmarks: 100 when the nose base sits midway
/// between the eyes along the line through them, falling by 2.5 points for each
/// hundredth of the eye distance it sits to one side (a head turned away), 0 from 0.4.
fn frontal(landmarks: &[ipseity_face::geom::Point]) -> u8 {
    let [a0, a1, b0, b1, nose] = landmarks else {
        return 0;
    };
    let (ax, ay) = ((a0.x + a1.x) / 2.0, (a0.y + a1.y) / 2.0);
    let (bx, by) = ((b0.x + b1.x) / 2.0, (b0.y + b1.y) / 2.0);
    let (ux, uy) = (bx - ax, by - ay);
    let d2 = ux * ux + uy * uy;
    if d2 <= 0.0 {
        return 0;
    }
    let (mx, my) = ((ax + bx) / 2.0, (ay + by) / 2.0);
    // The nose's offset along the eye line, in eye distances.
    let t = ((nose.x - mx) * ux + (nose.y - my) * uy) / d2;
    (100.0 - t.abs() * 250.0).clamp(0.0, 100.0).round() as u8
}

struct Pair {
    fold: u8,
    a: String,
    b: String,
    same: bool,
}

#[derive(Serialize)]
struct RateCi {
    fmr: f64,
    fnmr: Option<f64>,
    fnmr_ci: Option<(f64, f64)>,
    threshold: Option<f32>,
}

#[derive(Serialize)]
struct LfwReport {
    detector: String,
    images: usize,
    face_found: usize,
    failed: usize,
    failure_reasons: BTreeMap<String, usize>,
    view2_pairs: usize,
    view2: Option<FoldAccuracy>,
    all_pairs_genuine: usize,
    all_pairs_impostor: usize,
    eer: f64,
    rates: Vec<RateCi>,
    ident_gallery: usize,
    ident_mated: usize,
    ident_nonmated: usize,
    ident: Vec<IdentRate>,
    several_templates: Option<SeveralTemplates>,
    quality_aware: Option<QualityAware>,
    /// The same measurement with the bands cut on how frontal the faces are.
    pose_aware: Option<QualityAware>,
    det_svg: String,
}

/// Decisions that take quality into account, on the all-pairs comparisons between
/// usable images (failures to acquire left out): each pair falls in the band of its
/// lower-quality image, the bands cut at the terciles of the images' quality scores.
/// Compared: one threshold for every pair at FMR 1e-3, and one threshold per band,
/// each at FMR 1e-3 among that band's impostors.
#[derive(Serialize)]
struct QualityAware {
    /// Quality scores at the first and second terciles.
    cuts: (u8, u8),
    bands: Vec<QualityBand>,
    genuine: usize,
    impostor: usize,
    /// One threshold at FMR 1e-3 over all these pairs.
    single: RateCi,
    /// A threshold per band: the FNMR over all genuine pairs, and the FMR it gives
    /// over all impostor pairs.
    per_band_fnmr: f64,
    per_band_fnmr_ci: (f64, f64),
    per_band_fmr: f64,
}

#[derive(Serialize)]
struct QualityBand {
    /// The band's lowest and highest quality score.
    quality: (u8, u8),
    genuine: usize,
    impostor: usize,
    /// FNMR and FMR within the band at the single threshold.
    fnmr_at_single: f64,
    fmr_at_single: f64,
    /// The band's own threshold at FMR 1e-3, and the FNMR within the band at it.
    threshold: Option<f32>,
    fnmr_at_own: Option<f64>,
}

/// The pair's band, from the lower quality of its two images.
fn band_of(q: u8, cuts: (u8, u8)) -> usize {
    if q < cuts.0 {
        0
    } else if q < cuts.1 {
        1
    } else {
        2
    }
}

/// The quality-aware measurement from genuine scores with their pair's band and the
/// impostor scores of each band.
fn measure_bands(
    cuts: (u8, u8),
    genuine: &[(f32, usize)],
    mut impostor: [Vec<f32>; 3],
) -> Option<QualityAware> {
    let n_imp: usize = impostor.iter().map(Vec::len).sum();
    if genuine.is_empty() || n_imp == 0 {
        return None;
    }
    let mut all: Vec<f32> = impostor.iter().flatten().copied().collect();
    let all_g: Vec<f32> = genuine.iter().map(|g| g.0).collect();
    let single = rate_at(&all_g, &mut all, 1e-3);
    drop(all);
    let t = single.threshold?;
    let bounds = [
        (0u8, cuts.0.saturating_sub(1)),
        (cuts.0, cuts.1.saturating_sub(1)),
        (cuts.1, 100),
    ];
    let (mut missed_own, mut accepted_imp) = (0usize, 0usize);
    let mut bands = vec![];
    for (b, imp) in impostor.iter_mut().enumerate() {
        imp.sort_unstable_by(f32::total_cmp);
        let g: Vec<f32> = genuine.iter().filter(|x| x.1 == b).map(|x| x.0).collect();
        let own = ipseity_eval::threshold_for_fmr_sorted(imp, 1e-3);
        let frac = |n: usize, d: usize| if d == 0 { 0.0 } else { n as f64 / d as f64 };
        let fnmr_at_own = own.map(|o| {
            let m = g.iter().filter(|&&s| s < o).count();
            missed_own += m;
            accepted_imp += imp.len() - imp.partition_point(|&s| s < o);
            frac(m, g.len())
        });
        if own.is_none() {
            // Too few impostors for its own threshold: the band keeps the single one.
            missed_own += g.iter().filter(|&&s| s < t).count();
            accepted_imp += imp.len() - imp.partition_point(|&s| s < t);
        }
        bands.push(QualityBand {
            quality: bounds[b],
            genuine: g.len(),
            impostor: imp.len(),
            fnmr_at_single: frac(g.iter().filter(|&&s| s < t).count(), g.len()),
            fmr_at_single: frac(imp.len() - imp.partition_point(|&s| s < t), imp.len()),
            threshold: own,
            fnmr_at_own,
        });
    }
    Some(QualityAware {
        cuts,
        bands,
        genuine: genuine.len(),
        impostor: n_imp,
        single,
        per_band_fnmr: missed_own as f64 / genuine.len() as f64,
        per_band_fnmr_ci: ipseity_eval::wilson_95(missed_own, genuine.len()),
        per_band_fmr: accepted_imp as f64 / n_imp as f64,
    })
}

/// One template per subject against several, on the same probes: the people with at
/// least [`ENROLLED`] + 1 usable images enrol their first [`ENROLLED`]; every other image
/// of theirs is a genuine probe; every probe against every other such person is an
/// impostor comparison. With one template a comparison is against the first image; with
/// several it is the best of them (what `verify` does with a subject's templates).
#[derive(Serialize)]
struct SeveralTemplates {
    enrolled_per_subject: usize,
    subjects: usize,
    genuine: usize,
    impostor: usize,
    /// FNMR at FMR 1e-3 with one template, and with [`ENROLLED`].
    one: RateCi,
    several: RateCi,
}

/// Templates per subject in the several-templates measurement.
const ENROLLED: usize = 2;

fn rate_at(genuine: &[f32], impostor: &mut [f32], fmr: f64) -> RateCi {
    impostor.sort_unstable_by(f32::total_cmp);
    let t = ipseity_eval::threshold_for_fmr_sorted(impostor, fmr);
    let missed = t.map(|t| genuine.iter().filter(|&&s| s < t).count());
    RateCi {
        fmr,
        fnmr: missed.map(|m| m as f64 / genuine.len() as f64),
        fnmr_ci: missed.map(|m| ipseity_eval::wilson_95(m, genuine.len())),
        threshold: t,
    }
}

fn several_templates(
    by_person: &BTreeMap<usize, Vec<usize>>,
    score: &(impl Fn(usize, usize) -> f32 + Sync),
) -> Option<SeveralTemplates> {
    let people: Vec<&Vec<usize>> = by_person.values().filter(|v| v.len() > ENROLLED).collect();
    // Per probe: its genuine and its impostor comparisons, each scored with one template
    // and with the best of several.
    type Scores = Vec<(f32, f32)>;
    let per_probe: Vec<(Scores, Scores)> = people
        .par_iter()
        .enumerate()
        .flat_map_iter(|(who, imgs)| {
            imgs[ENROLLED..]
                .iter()
                .map(move |&p| (who, p))
                .collect::<Vec<_>>()
        })
        .map(|(who, p)| {
            let (mut g, mut im) = (vec![], vec![]);
            for (other, imgs) in people.iter().enumerate() {
                let one = score(p, imgs[0]);
                let several = imgs[..ENROLLED]
                    .iter()
                    .map(|&e| score(p, e))
                    .fold(f32::NEG_INFINITY, f32::max);
                if other == who {
                    g.push((one, several));
                } else {
                    im.push((one, several));
                }
            }
            (g, im)
        })
        .collect();
    let (mut g1, mut gn, mut i1, mut i_n) = (vec![], vec![], vec![], vec![]);
    for (g, im) in per_probe {
        g1.extend(g.iter().map(|x| x.0));
        gn.extend(g.iter().map(|x| x.1));
        i1.extend(im.iter().map(|x| x.0));
        i_n.extend(im.iter().map(|x| x.1));
    }
    if g1.is_empty() || i1.is_empty() {
        return None;
    }
    Some(SeveralTemplates {
        enrolled_per_subject: ENROLLED,
        subjects: people.len(),
        genuine: g1.len(),
        impostor: i1.len(),
        one: rate_at(&g1, &mut i1, 1e-3),
        several: rate_at(&gn, &mut i_n, 1e-3),
    })
}

impl Render for LfwReport {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(
            w,
            "detector {}: {} images, a face in {}, {} failed {:?}",
            self.detector, self.images, self.face_found, self.failed, self.failure_reasons
        )?;
        if let Some(v) = &self.view2 {
            writeln!(
                w,
                "View 2 ({} pairs, {} folds): accuracy {:.4} +/- {:.4} (standard error)",
                self.view2_pairs,
                v.per_fold.len(),
                v.mean,
                v.std_error
            )?;
        }
        writeln!(
            w,
            "all pairs: {} genuine, {} impostor; EER {:.5}",
            self.all_pairs_genuine, self.all_pairs_impostor, self.eer
        )?;
        for r in &self.rates {
            match (r.fnmr, r.fnmr_ci, r.threshold) {
                (Some(f), Some((lo, hi)), Some(t)) => writeln!(
                    w,
                    "  FNMR at FMR {:e}: {f:.5} [{lo:.5}, {hi:.5}] (similarity threshold {t:.4})",
                    r.fmr
                )?,
                _ => writeln!(w, "  FNMR at FMR {:e}: n/a (too few impostor pairs)", r.fmr)?,
            }
        }
        writeln!(
            w,
            "1:N: gallery {}, {} mated and {} non-mated searches",
            self.ident_gallery, self.ident_mated, self.ident_nonmated
        )?;
        for r in &self.ident {
            writeln!(
                w,
                "  FNIR at FPIR {:e}: {:.5} [{:.5}, {:.5}] (threshold {:.4})",
                r.fpir, r.fnir, r.fnir_ci.0, r.fnir_ci.1, r.threshold
            )?;
        }
        if let Some(m) = &self.several_templates {
            writeln!(
                w,
                "several templates: {} subjects enrol {} images each; {} genuine, {} impostor comparisons",
                m.subjects, m.enrolled_per_subject, m.genuine, m.impostor
            )?;
            for (name, r) in [("one template", &m.one), ("best of several", &m.several)] {
                match (r.fnmr, r.fnmr_ci) {
                    (Some(f), Some((lo, hi))) => writeln!(
                        w,
                        "  {name}: FNMR at FMR {:e} {f:.5} [{lo:.5}, {hi:.5}]",
                        r.fmr
                    )?,
                    _ => writeln!(w, "  {name}: n/a")?,
                }
            }
        }
        for (what, q) in [
            ("quality", &self.quality_aware),
            ("frontal pose", &self.pose_aware),
        ] {
            let Some(q) = q else { continue };
            writeln!(
                w,
                "{what}-aware (bands of the pair's lower {what} score, cut at {} and {}; {} genuine, {} impostor):",
                q.cuts.0, q.cuts.1, q.genuine, q.impostor
            )?;
            for b in &q.bands {
                writeln!(
                    w,
                    "  {what} {}-{}: {} genuine, {} impostor; at the single threshold FNMR {:.5}, FMR {:.2e}; own threshold {} FNMR {}",
                    b.quality.0,
                    b.quality.1,
                    b.genuine,
                    b.impostor,
                    b.fnmr_at_single,
                    b.fmr_at_single,
                    b.threshold.map_or("n/a".into(), |t| format!("{t:.4}")),
                    b.fnmr_at_own.map_or("n/a".into(), |f| format!("{f:.5}")),
                )?;
            }
            if let (Some(f), Some((lo, hi))) = (q.single.fnmr, q.single.fnmr_ci) {
                writeln!(
                    w,
                    "  one threshold: FNMR at FMR 1e-3 {f:.5} [{lo:.5}, {hi:.5}]"
                )?;
            }
            writeln!(
                w,
                "  a threshold per band: FNMR {:.5} [{:.5}, {:.5}] at FMR {:.2e}",
                q.per_band_fnmr, q.per_band_fnmr_ci.0, q.per_band_fnmr_ci.1, q.per_band_fmr
            )?;
        }
        writeln!(w, "DET plot: {}", self.det_svg)
    }
}

fn read_pairs(dir: &Path) -> anyhow::Result<Vec<Pair>> {
    let path = dir.join("pairs_view2.tsv");
    let meta = std::fs::metadata(&path).with_context(|| path.display().to_string())?;
    if !meta.is_file() || meta.len() > MAX_PAIRS_BYTES {
        return Err(CliError::input(
            "invalid_input",
            format!("{} is not a pairs file of at most 4 MiB", path.display()),
        )
        .into());
    }
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    let file = |name: &str, n: &str| -> anyhow::Result<String> {
        let n: u32 = n
            .trim()
            .parse()
            .map_err(|_| CliError::input("invalid_input", format!("bad image number {n:?}")))?;
        Ok(format!("{name}/{name}_{n:04}.jpg"))
    };
    let mut pairs = vec![];
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let bad = || CliError::input("invalid_input", format!("pairs line {}: {line:?}", i + 1));
        let fold: u8 = f
            .first()
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(bad)?;
        let p = match f.len() {
            4 => Pair {
                fold,
                a: file(f[1], f[2])?,
                b: file(f[1], f[3])?,
                same: true,
            },
            5 => Pair {
                fold,
                a: file(f[1], f[2])?,
                b: file(f[3], f[4])?,
                same: false,
            },
            _ => return Err(bad().into()),
        };
        pairs.push(p);
    }
    Ok(pairs)
}

/// Every `images/NAME/*.jpg`, sorted, as relative paths `NAME/FILE`.
fn list_images(dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let root = dir.join("images");
    let mut out = vec![];
    for person in std::fs::read_dir(&root).with_context(|| root.display().to_string())? {
        let person = person?;
        if !person.file_type()?.is_dir() {
            continue;
        }
        let name = person.file_name().to_string_lossy().into_owned();
        for f in std::fs::read_dir(person.path())? {
            let f = f?;
            let file = f.file_name().to_string_lossy().into_owned();
            if f.file_type()?.is_file() && file.ends_with(".jpg") {
                out.push((format!("{name}/{file}"), name.clone()));
                if out.len() > MAX_IMAGES {
                    return Err(CliError::input(
                        "invalid_input",
                        format!("more than {MAX_IMAGES} images under {}", root.display()),
                    )
                    .into());
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

fn similarity(a: &[f32], na: f32, b: &[f32], nb: f32) -> f32 {
    1.0 - (na + nb - 2.0 * dot_f32(a, b)).max(0.0).sqrt()
}

pub fn run(ctx: &Ctx, args: &EvalArgs, dir: &Path) -> anyhow::Result<ExitStatus> {
    let mut pairs = read_pairs(dir)?;
    let mut images = list_images(dir)?;
    if let Some(n) = args.pairs_per_fold {
        let mut kept: BTreeMap<(u8, bool), usize> = BTreeMap::new();
        pairs.retain(|p| {
            let c = kept.entry((p.fold, p.same)).or_default();
            *c += 1;
            *c <= n
        });
        let used: std::collections::BTreeSet<&str> = pairs
            .iter()
            .flat_map(|p| [p.a.as_str(), p.b.as_str()])
            .collect();
        images.retain(|(rel, _)| used.contains(rel.as_str()));
    }
    let mut detector = format!("{:?}", ctx.face_detector).to_lowercase();
    if args.mirror {
        detector.push_str("+mirror");
    }
    let mut cache: Cache = match &args.cache {
        Some(p) if p.exists() => {
            let bytes = crate::files::read_regular(p, MAX_CACHE_BYTES, "too_large")?;
            let c: Cache =
                serde_json::from_slice(&bytes).with_context(|| p.display().to_string())?;
            if c.model == ipseity_face::MODEL_ID && c.detector == detector {
                c
            } else {
                Cache::default()
            }
        }
        _ => Cache::default(),
    };
    cache.model = ipseity_face::MODEL_ID.to_owned();
    cache.detector = detector.clone();
    let todo: Vec<&String> = images
        .iter()
        .map(|(rel, _)| rel)
        .filter(|rel| match cache.entries.get(*rel) {
            None => true,
            Some(Ok(_)) => !cache.quality.contains_key(*rel) || !cache.frontal.contains_key(*rel),
            Some(Err(_)) => false,
        })
        .collect();
    if !todo.is_empty() {
        let engine = ctx.engine_with(ipseity_face::Params {
            detector: ctx.face_detector,
            mirror: args.mirror,
            ..ipseity_face::Params::default()
        })?;
        let bar = super::progress(todo.len(), "embedding LFW");
        // In chunks, saving the cache after each: the exact detector takes the
        // better part of an hour over the whole set.
        for chunk in todo.chunks(512) {
            // Each image: its embedding and quality score, or the failure's code.
            type Analysed = Result<(Vec<f32>, u8, u8), String>;
            let done: Vec<(String, Analysed)> = chunk
                .par_iter()
                .map(|rel| {
                    let path = dir.join("images").join(rel);
                    let r = load_face_image(&path)
                        .and_then(|img| single_face(&engine, &img, &path, true))
                        .map(|f| (f.embedding, f.quality.score, frontal(&f.landmarks)))
                        .map_err(|e| code_of(&e).to_owned());
                    bar.inc(1);
                    ((*rel).clone(), r)
                })
                .collect();
            for (rel, r) in done {
                if let Ok((_, q, f)) = &r {
                    cache.quality.insert(rel.clone(), *q);
                    cache.frontal.insert(rel.clone(), *f);
                }
                cache.entries.insert(rel, r.map(|(e, _, _)| e));
            }
            if let Some(p) = &args.cache {
                // Templates: owner-only, and never half-written.
                crate::files::write_private_atomic(p, &serde_json::to_vec(&cache)?)?;
            }
        }
        bar.finish_and_clear();
    }

    // Index the usable embeddings.
    let mut failure_reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    let mut emb: Vec<&[f32]> = vec![];
    let mut label: Vec<usize> = vec![];
    let mut quality: Vec<u8> = vec![];
    let mut frontal_of: Vec<u8> = vec![];
    let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
    for (rel, person) in &images {
        match cache.entries.get(rel) {
            Some(Ok(e)) => {
                index.insert(rel, emb.len());
                emb.push(e);
                quality.push(cache.quality.get(rel).copied().unwrap_or(0));
                frontal_of.push(cache.frontal.get(rel).copied().unwrap_or(0));
                let next = ids.len();
                label.push(*ids.entry(person).or_insert(next));
            }
            Some(Err(code)) => *failure_reasons.entry(code.clone()).or_default() += 1,
            None => *failure_reasons.entry("missing".into()).or_default() += 1,
        }
    }
    let norms: Vec<f32> = emb.iter().map(|e| dot_f32(e, e)).collect();
    let score = |i: usize, j: usize| similarity(emb[i], norms[i], emb[j], norms[j]);
    // The failures among the images the protocol names (with --pairs-per-fold, only those).
    let failed: usize = failure_reasons.values().sum();

    // View 2.
    let fold_pairs: Vec<FoldPair> = pairs
        .iter()
        .map(|p| FoldPair {
            fold: p.fold,
            same: p.same,
            score: match (index.get(p.a.as_str()), index.get(p.b.as_str())) {
                (Some(&i), Some(&j)) => score(i, j),
                _ => f32::NEG_INFINITY,
            },
        })
        .collect();
    let view2 = ipseity_eval::k_fold_accuracy(&fold_pairs);

    // All pairs, row by row in parallel; genuine and impostor scores kept apart.
    let n = emb.len();
    let terciles = |v: &[u8]| {
        let mut q = v.to_vec();
        q.sort_unstable();
        (
            q.get(q.len() / 3).copied().unwrap_or(0),
            q.get(2 * q.len() / 3).copied().unwrap_or(0),
        )
    };
    // Each pair in two bandings: by the lower quality score, and by the less frontal face.
    let (cuts, pose_cuts) = (terciles(&quality), terciles(&frontal_of));
    let band: Vec<usize> = quality.iter().map(|&q| band_of(q, cuts)).collect();
    let pose_band: Vec<usize> = frontal_of.iter().map(|&q| band_of(q, pose_cuts)).collect();
    type Row = (Vec<(f32, usize, usize)>, [Vec<f32>; 3], [Vec<f32>; 3]);
    let rows: Vec<Row> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut g = vec![];
            let (mut im, mut ip) = ([vec![], vec![], vec![]], [vec![], vec![], vec![]]);
            for j in i + 1..n {
                let s = score(i, j);
                let b = band[i].min(band[j]);
                let p = pose_band[i].min(pose_band[j]);
                if label[i] == label[j] {
                    g.push((s, b, p));
                } else {
                    im[b].push(s);
                    ip[p].push(s);
                }
            }
            (g, im, ip)
        })
        .collect();
    let mut genuine_banded: Vec<(f32, usize, usize)> = vec![];
    let mut impostor_banded: [Vec<f32>; 3] = [vec![], vec![], vec![]];
    let mut impostor_posed: [Vec<f32>; 3] = [vec![], vec![], vec![]];
    for (g, im, ip) in rows {
        genuine_banded.extend(g);
        for (all, part) in impostor_banded.iter_mut().zip(im) {
            all.extend(part);
        }
        for (all, part) in impostor_posed.iter_mut().zip(ip) {
            all.extend(part);
        }
    }
    let mut genuine: Vec<f32> = genuine_banded.iter().map(|g| g.0).collect();
    let mut impostor: Vec<f32> = impostor_banded.iter().flatten().copied().collect();
    let by_quality: Vec<(f32, usize)> = genuine_banded.iter().map(|g| (g.0, g.1)).collect();
    let by_pose: Vec<(f32, usize)> = genuine_banded.iter().map(|g| (g.0, g.2)).collect();
    drop(genuine_banded);
    let quality_aware = if cache.quality.is_empty() {
        None
    } else {
        measure_bands(cuts, &by_quality, impostor_banded)
    };
    let pose_aware = if cache.frontal.is_empty() {
        None
    } else {
        measure_bands(pose_cuts, &by_pose, impostor_posed)
    };
    // Genuine pairs lost to failures to acquire are misses at every threshold.
    let mut lost_genuine = 0usize;
    {
        let mut per_person: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for (rel, person) in &images {
            let e = per_person.entry(person).or_default();
            e.0 += 1;
            if index.contains_key(rel.as_str()) {
                e.1 += 1;
            }
        }
        for (all, ok) in per_person.values() {
            lost_genuine += all * all.saturating_sub(1) / 2 - ok * ok.saturating_sub(1) / 2;
        }
    }
    if genuine.is_empty() || impostor.is_empty() {
        return Err(CliError::input(
            "insufficient_data",
            "the LFW directory gave no genuine or no impostor pair",
        )
        .into());
    }
    let floor = -10.0f32; // below any similarity (distances are at most ~2)
    genuine.extend(std::iter::repeat_n(floor, lost_genuine));
    let summary = ipseity_eval::summarize(&genuine, &impostor)?;
    // Sorted once: the thresholds below are asked of 77 million scores.
    impostor.sort_unstable_by(f32::total_cmp);
    let mut sorted_g = genuine.clone();
    sorted_g.sort_unstable_by(f32::total_cmp);
    let rates: Vec<RateCi> = [1e-2, 1e-3, 1e-4, 1e-5]
        .iter()
        .map(|&fmr| {
            let t = ipseity_eval::threshold_for_fmr_sorted(&impostor, fmr);
            let missed = t.map(|t| sorted_g.partition_point(|&s| s < t));
            RateCi {
                fmr,
                fnmr: missed.map(|m| m as f64 / sorted_g.len() as f64),
                fnmr_ci: missed.map(|m| ipseity_eval::wilson_95(m, sorted_g.len())),
                threshold: t,
            }
        })
        .collect();
    let curve = ipseity_eval::det_curve(&genuine, &impostor)?;
    let thin = ipseity_eval::thin_curve(&curve, 0.005);
    drop(curve);
    let title = format!(
        "LFW all pairs, {detector} detector ({} genuine, {} impostor)",
        genuine.len(),
        impostor.len()
    );
    let svg = ipseity_eval::det_svg(&[("ipseity face", &thin)], &title);
    std::fs::write(&args.det, svg).with_context(|| format!("writing {}", args.det.display()))?;

    // 1:N.
    let mut by_person: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, &l) in label.iter().enumerate() {
        by_person.entry(l).or_default().push(i);
    }
    let (mut gallery, mut mated_probes, mut nonmated_probes) = (vec![], vec![], vec![]);
    let mut singles = 0usize;
    for imgs in by_person.values() {
        if imgs.len() > 1 {
            gallery.push(imgs[0]);
            mated_probes.extend(imgs[1..].iter().map(|&p| (p, imgs[0])));
        } else {
            if singles.is_multiple_of(2) {
                gallery.push(imgs[0]);
            } else {
                nonmated_probes.push(imgs[0]);
            }
            singles += 1;
        }
    }
    let best_in_gallery = |p: usize, skip: Option<usize>| -> f32 {
        gallery
            .iter()
            .filter(|&&g| Some(g) != skip)
            .map(|&g| score(p, g))
            .fold(f32::NEG_INFINITY, f32::max)
    };
    let mated: Vec<MatedSearch> = mated_probes
        .par_iter()
        .map(|&(p, mate)| MatedSearch {
            mate: score(p, mate),
            best_other: best_in_gallery(p, Some(mate)),
        })
        .collect();
    let nonmated: Vec<f32> = nonmated_probes
        .par_iter()
        .map(|&p| best_in_gallery(p, None))
        .collect();
    let ident: Vec<IdentRate> = [1e-2, 1e-3]
        .iter()
        .filter_map(|&f| ipseity_eval::fnir_at_fpir(&mated, &nonmated, f))
        .collect();

    let several_templates = several_templates(&by_person, &score);

    let report = LfwReport {
        detector,
        images: images.len(),
        face_found: n,
        failed,
        failure_reasons,
        view2_pairs: pairs.len(),
        view2,
        all_pairs_genuine: genuine.len(),
        all_pairs_impostor: impostor.len(),
        eer: summary.eer,
        rates,
        ident_gallery: gallery.len(),
        ident_mated: mated.len(),
        ident_nonmated: nonmated.len(),
        ident,
        several_templates,
        quality_aware,
        pose_aware,
        det_svg: args.det.display().to_string(),
    };
    if let Some(p) = &args.report {
        std::fs::write(p, serde_json::to_vec_pretty(&report)?)
            .with_context(|| p.display().to_string())?;
    }
    ctx.out.emit(&report)?;
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod several_templates_tests {
    use super::*;

    #[test]
    fn the_best_of_several_templates_counts_each_probe_once_per_person() {
        // Forty people with four images each (images 4p..4p+3 are person p's): enough
        // impostor comparisons for a rate at FMR 1e-3.
        let by_person: BTreeMap<usize, Vec<usize>> =
            (0..40).map(|p| (p, (4 * p..4 * p + 4).collect())).collect();
        // A probe resembles its own person's second image most, the first much less;
        // strangers score low, a little differently each.
        let score = |a: usize, b: usize| -> f32 {
            if a / 4 != b / 4 {
                0.1 + 0.001 * ((a * 7 + b * 13) % 97) as f32
            } else if b % 4 == 1 {
                0.9
            } else {
                0.05
            }
        };
        let m = several_templates(&by_person, &score).expect("measured");
        assert_eq!((m.subjects, m.enrolled_per_subject), (40, 2));
        // Two probes per person, compared with their own and with 39 strangers.
        assert_eq!((m.genuine, m.impostor), (80, 80 * 39));
        // With the first image alone every genuine comparison falls below the
        // strangers; with the better of two none does.
        assert_eq!(m.one.fnmr, Some(1.0));
        assert_eq!(m.several.fnmr, Some(0.0));
    }
}

#[cfg(test)]
mod quality_aware_tests {
    use super::*;

    #[test]
    fn a_threshold_per_band_is_measured_against_one_for_all() {
        // Low-quality pairs: impostors score higher and genuine pairs lower than in the
        // high band, so one threshold fails the low band's genuine pairs and lets more of
        // its impostors through.
        let mut impostor: [Vec<f32>; 3] = [vec![], vec![], vec![]];
        for i in 0..10_000 {
            let x = i as f32 / 10_000.0;
            impostor[0].push(0.2 + 0.3 * x);
            impostor[1].push(0.1 + 0.3 * x);
            impostor[2].push(0.3 * x);
        }
        let mut genuine = vec![];
        for i in 0..100 {
            let x = i as f32 / 100.0;
            genuine.push((0.45 + 0.1 * x, 0));
            genuine.push((0.5 + 0.1 * x, 1));
            genuine.push((0.5 + 0.1 * x, 2));
        }
        let q = measure_bands((40, 70), &genuine, impostor).expect("measured");
        assert_eq!((q.genuine, q.impostor), (300, 30_000));
        assert_eq!(q.bands.len(), 3);
        assert_eq!(q.bands[0].quality, (0, 39));
        assert_eq!(q.bands[2].quality, (70, 100));
        // One threshold sits near the top of the low band's impostors (0.497): the low
        // band's genuine pairs below it fail.
        let t = q.single.threshold.expect("threshold");
        assert!(t > 0.49 && t < 0.5, "{t}");
        assert!(q.bands[0].fnmr_at_single > 0.4);
        assert_eq!(q.bands[2].fnmr_at_single, 0.0);
        assert!(q.bands[0].fmr_at_single > q.bands[2].fmr_at_single);
        // Each band's own threshold keeps its FMR at 1e-3; overall the same FMR.
        assert!((q.per_band_fmr - 1e-3).abs() < 2e-4, "{}", q.per_band_fmr);
        assert!(q.bands[2].threshold.expect("own") < 0.3);
        assert_eq!(q.bands[2].fnmr_at_own, Some(0.0));
        assert_eq!(band_of(39, (40, 70)), 0);
        assert_eq!(band_of(40, (40, 70)), 1);
        assert_eq!(band_of(70, (40, 70)), 2);
    }
}

#[cfg(test)]
mod frontal_tests {
    use super::*;
    use ipseity_face::geom::Point;

    fn face(nose_x: f64) -> Vec<Point> {
        let p = |x, y| Point { x, y };
        vec![
            p(60.0, 100.0),
            p(80.0, 100.0),
            p(120.0, 100.0),
            p(140.0, 100.0),
            p(nose_x, 140.0),
        ]
    }

    #[test]
    fn a_nose_midway_between_the_eyes_is_frontal_and_a_turned_head_is_not() {
        // Eye centres 70 and 130: 60 px apart.
        assert_eq!(frontal(&face(100.0)), 100);
        // 6 px to one side: a tenth of the eye distance, 25 points off, either side.
        assert_eq!(frontal(&face(106.0)), 75);
        assert_eq!(frontal(&face(94.0)), 75);
        // 24 px and beyond: 0.
        assert_eq!(frontal(&face(124.0)), 0);
        assert_eq!(frontal(&face(200.0)), 0);
        assert_eq!(frontal(&face(100.0)[..4]), 0);
    }
}
