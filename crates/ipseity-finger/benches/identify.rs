//! 1:N fingerprint identification over a large gallery: descriptor pre-filter in the exact
//! int8 index, then exact re-matching of the shortlist, as `ipseity finger identify` does.
//!
//! The gallery holds `FINGER_BENCH_MATES` (default 500) fingers rendered as images by the
//! synthetic generator (hard settings) and extracted, whose second impressions are the
//! probes, plus fillers up to `FINGER_BENCH_GALLERY` (default 100,000) templates. Rendering
//! and extracting 100,000 images would take about an hour of CPU here, so fillers are
//! minutiae-level synthetic fingers (the matcher's generator, about 50 minutiae each, close
//! to what the extractor finds); the hit rate is measured on the image-based probes.
//!
//! Reports: build time, probes per second (2 threads), the share of probes whose mate
//! survives the pre-filter at several shortlist sizes, rank-1 after re-matching, and the
//! exhaustive rank-1 on a subset for comparison.
//!
//! `cargo bench -p ipseity-finger --bench identify`

use std::time::Instant;

use ipseity_finger::extract::{extract, ExtractConfig};
use ipseity_finger::fusion::ScoreCalibration;
use ipseity_finger::gallery::{FingerGallery, ProbeFinger};
use ipseity_finger::matcher::{prepare, score, MatcherConfig, Prepared};
use ipseity_finger::synth::{self, SynthConfig};
// `synthetic` names these through `super`.
#[allow(unused_imports)]
use ipseity_finger::{FingerPosition, FingerTemplate, Minutia, MinutiaKind};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

#[allow(dead_code)]
#[path = "../src/matcher/synthetic.rs"]
mod synthetic;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let mates = env("FINGER_BENCH_MATES", 500);
    let total = env("FINGER_BENCH_GALLERY", 100_000).max(mates);
    let exhaustive_probes = env("FINGER_BENCH_EXHAUSTIVE", 50).min(mates);
    let mcfg = MatcherConfig::default();
    let ecfg = ExtractConfig::default();
    let cfg = SynthConfig::hard();
    println!("load before: {}", loadavg());

    // Image-based mates: impression 1 enrolled, impression 2 probes.
    let t0 = Instant::now();
    let pairs: Vec<Option<(FingerTemplate, FingerTemplate)>> = (1..=mates as u32)
        .into_par_iter()
        .map(|f| {
            let m = synth::master(&cfg, 7, f);
            let a = synth::impression(&cfg, &m, 7, f, 1);
            let b = synth::impression(&cfg, &m, 7, f, 2);
            let ta = extract(&a.image, FingerPosition::Unknown, &ecfg).ok()?;
            let tb = extract(&b.image, FingerPosition::Unknown, &ecfg).ok()?;
            Some((ta.template, tb.template))
        })
        .collect();
    let pairs: Vec<(FingerTemplate, FingerTemplate)> = pairs.into_iter().flatten().collect();
    println!(
        "mates: {} of {mates} image-based fingers extracted in {:.1} s",
        pairs.len(),
        t0.elapsed().as_secs_f64()
    );

    // Minutiae-level fillers.
    let t0 = Instant::now();
    let noise = synthetic::Noise {
        drop: (0.0, 0.15),
        ..synthetic::Noise::default()
    };
    let fillers: Vec<FingerTemplate> = (0..total - pairs.len())
        .into_par_iter()
        .map(|i| {
            let mut rng = ChaCha8Rng::seed_from_u64(1_000_003 + i as u64);
            let m = synthetic::master(&mut rng);
            synthetic::impression(&m, &noise, &mut rng)
        })
        .collect();
    let mean_min = fillers.iter().map(|t| t.minutiae.len()).sum::<usize>() as f64
        / fillers.len().max(1) as f64;
    println!(
        "fillers: {} minutiae-level templates ({mean_min:.1} minutiae each) in {:.1} s",
        fillers.len(),
        t0.elapsed().as_secs_f64()
    );

    // Calibration from impostor pairs among the enrolled mates (only ranks matter here).
    let enrolled: Vec<Prepared> = pairs.par_iter().map(|(a, _)| prepare(a, &mcfg)).collect();
    let impostors: Vec<f32> = (0..enrolled.len())
        .flat_map(|i| (i + 1..enrolled.len()).map(move |j| (i, j)))
        .take(20_000)
        .collect::<Vec<_>>()
        .par_iter()
        .map(|&(i, j)| score(&enrolled[i], &enrolled[j]))
        .collect();
    let cal = ScoreCalibration::from_impostor_scores(&impostors, "bench").expect("calibration");

    let t0 = Instant::now();
    let filler_prep: Vec<Prepared> = fillers.par_iter().map(|t| prepare(t, &mcfg)).collect();
    let mut gallery: FingerGallery<u32> = FingerGallery::new(cal);
    for (i, p) in enrolled.iter().enumerate() {
        gallery.add(i as u32, FingerPosition::Unknown, p.clone());
    }
    for (i, p) in filler_prep.iter().enumerate() {
        gallery.add((pairs.len() + i) as u32, FingerPosition::Unknown, p.clone());
    }
    let prep_s = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    gallery.build_prefilter().expect("prefilter");
    let index_s = t0.elapsed().as_secs_f64();
    println!(
        "gallery: {} templates; prepare {prep_s:.1} s, descriptor index {index_s:.1} s",
        gallery.len()
    );

    let probes: Vec<ProbeFinger> = pairs
        .iter()
        .map(|(_, b)| ProbeFinger::new(b, &mcfg))
        .collect();
    for shortlist in [100usize, 200, 1000] {
        let t0 = Instant::now();
        let results: Vec<Option<u32>> = probes
            .iter()
            .map(|p| {
                gallery
                    .identify(std::slice::from_ref(p), 1, shortlist)
                    .first()
                    .map(|m| m.subject)
            })
            .collect();
        let secs = t0.elapsed().as_secs_f64();
        let rank1 = results
            .iter()
            .enumerate()
            .filter(|(i, r)| **r == Some(*i as u32))
            .count();
        println!(
            "shortlist {shortlist:>5}: rank-1 {:.4} ({rank1}/{}), {:.1} probes/s (2 threads), load {}",
            rank1 as f64 / probes.len() as f64,
            probes.len(),
            probes.len() as f64 / secs,
            loadavg()
        );
    }

    // Exhaustive baseline on a subset: every gallery template matched.
    let all: Vec<&Prepared> = enrolled.iter().chain(filler_prep.iter()).collect();
    let t0 = Instant::now();
    let mut hits = 0;
    for (i, p) in probes.iter().take(exhaustive_probes).enumerate() {
        let best = all
            .par_iter()
            .enumerate()
            .map(|(j, g)| (score(&p.prepared, g), j))
            .reduce(
                || (f32::NEG_INFINITY, usize::MAX),
                |a, b| if b.0 > a.0 { b } else { a },
            );
        if best.1 == i {
            hits += 1;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "exhaustive: rank-1 {:.4} ({hits}/{exhaustive_probes}), {:.0} comparisons/s (2 threads), load {}",
        hits as f64 / exhaustive_probes.max(1) as f64,
        (exhaustive_probes * all.len()) as f64 / secs,
        loadavg()
    );
}
