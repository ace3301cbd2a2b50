//! The matcher on templates extracted from synthetic images (generator + extractor), as a
//! check that scores separate mates from impostors beyond the minutiae-only bench.
//!
//! `cargo run --release -p ipseity-finger --example matcher_on_synth -- [fingers]`

use ipseity_finger::extract::{extract, ExtractConfig};
use ipseity_finger::matcher::{descriptor, prepare, score, MatcherConfig};
use ipseity_finger::synth::{impression, master, SynthConfig};
use ipseity_finger::FingerPosition;
use rayon::prelude::*;
use std::time::Instant;

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let scfg = SynthConfig::default();
    let xcfg = ExtractConfig::default();
    let mcfg = MatcherConfig::default();
    let t0 = Instant::now();
    let pairs: Vec<_> = (0..n)
        .into_par_iter()
        .filter_map(|f| {
            let m = master(&scfg, 7, f);
            let mut out = Vec::new();
            for k in 0..2 {
                let imp = impression(&scfg, &m, 7, f, k);
                out.push(
                    extract(&imp.image, FingerPosition::Unknown, &xcfg)
                        .ok()?
                        .template,
                );
            }
            let b = out.pop()?;
            let a = out.pop()?;
            Some((
                prepare(&a, &mcfg),
                prepare(&b, &mcfg),
                a.minutiae.len(),
                b.minutiae.len(),
            ))
        })
        .collect();
    eprintln!(
        "{} of {n} fingers extracted in {:.1} s, {:.1} minutiae per template",
        pairs.len(),
        t0.elapsed().as_secs_f64(),
        pairs.iter().map(|p| (p.2 + p.3) as f64).sum::<f64>() / (2 * pairs.len()).max(1) as f64
    );
    let mut genuine = Vec::new();
    let mut impostor = Vec::new();
    for (i, (a, _, _, _)) in pairs.iter().enumerate() {
        for (j, (_, b, _, _)) in pairs.iter().enumerate() {
            let s = score(a, b);
            if i == j {
                genuine.push(s);
            } else {
                impostor.push(s);
            }
        }
    }
    let mut all: Vec<(f32, bool)> = genuine
        .iter()
        .map(|&s| (s, true))
        .chain(impostor.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (ng, ni) = (genuine.len() as f32, impostor.len() as f32);
    let (mut rg, mut ri, mut eer) = (0.0f32, 0.0f32, 1.0f32);
    for (_, g) in &all {
        if *g {
            rg += 1.0;
        } else {
            ri += 1.0;
        }
        eer = eer.min((rg / ng).max((ni - ri) / ni));
    }
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len().max(1) as f32;
    println!(
        "genuine mean {:.3}, impostor mean {:.3}, max impostor {:.3}, EER {:.1}%",
        mean(&genuine),
        mean(&impostor),
        impostor.iter().copied().fold(0.0, f32::max),
        100.0 * eer
    );
    let da: Vec<Vec<f32>> = pairs.iter().map(|p| descriptor(&p.0)).collect();
    let db: Vec<Vec<f32>> = pairs.iter().map(|p| descriptor(&p.1)).collect();
    let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f32>();
    let top1 = da
        .iter()
        .enumerate()
        .filter(|(i, q)| {
            let m = dot(q, &db[*i]);
            db.iter().enumerate().all(|(j, g)| j == *i || dot(q, g) < m)
        })
        .count();
    println!(
        "descriptor: mate ranked first for {top1} of {}",
        pairs.len()
    );
}
