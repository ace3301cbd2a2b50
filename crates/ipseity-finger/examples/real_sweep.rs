//! Development tool: extracts every impression of the FVC sets in `../shared/finger/fvc-dev`
//! once, then scores every pair under several matcher configurations and prints each set's
//! EER and FNMR at FMR 1e-2 (every cross-finger pair an impostor). Usage:
//! `cargo run --release -p ipseity-finger --example real_sweep -- DIR [VARIANT ...]`
//! where a variant is `name=value,name=value` over the MatcherConfig fields listed below.
#![allow(clippy::unwrap_used, clippy::expect_used)] // A development tool: fail loudly.

use ipseity_finger::extract::ExtractConfig;
use ipseity_finger::matcher::{self, MatcherConfig};
use ipseity_finger::{sample, FingerPosition};
use std::path::Path;

const SETS: [&str; 6] = [
    "fvc2000_db1b",
    "fvc2000_db2b",
    "fvc2000_db3b",
    "fvc2002_db1b",
    "fvc2002_db2b",
    "fvc2002_db3b",
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = Path::new(&args[0]);
    let mut variants: Vec<String> = args[1..].to_vec();
    if variants.is_empty() {
        variants.push(String::new());
    }
    let mut ecfg = ExtractConfig::default();
    if let Ok(spec) = std::env::var("EXTRACT") {
        for kv in spec.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').expect("name=value");
            let f: f32 = v.parse().expect("number");
            match k {
                "min_coherence" => ecfg.min_coherence = f,
                "min_clarity" => ecfg.min_clarity = f,
                "min_contrast" => ecfg.min_contrast = f,
                "orientation_smoothing" => ecfg.orientation_smoothing = f,
                "spur_length" => ecfg.spur_length = f,
                "bridge_length" => ecfg.bridge_length = f,
                "break_distance" => ecfg.break_distance = f,
                "cluster_distance" => ecfg.cluster_distance = f,
                "border_margin" => ecfg.border_margin = f,
                "min_minutia_quality" => ecfg.min_minutia_quality = f as u8,
                "gabor_sigma_across" => ecfg.gabor_sigma_across = f,
                "gabor_sigma_along" => ecfg.gabor_sigma_along = f,
                "gabor_radius" => ecfg.gabor_radius = f as usize,
                "trace_length" => ecfg.trace_length = f as usize,
                "normalise_radius" => ecfg.normalise_radius = f as usize,
                _ => panic!("unknown extract field {k}"),
            }
        }
    }
    let mut sets = Vec::new();
    for s in SETS {
        let mut items = Vec::new();
        let mut names: Vec<_> = std::fs::read_dir(dir.join(s))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "png"))
            .collect();
        names.sort();
        for p in names {
            let stem = p.file_stem().unwrap().to_string_lossy().to_string();
            let finger: u32 = stem[..5].parse().unwrap();
            let bytes = std::fs::read(&p).unwrap();
            let t = sample::load_at(&bytes, FingerPosition::Unknown, &ecfg, None)
                .ok()
                .map(|s| s.template);
            items.push((finger, t));
        }
        let (sum, cnt, fail) = items
            .iter()
            .fold((0usize, 0usize, 0usize), |acc, (_, t)| match t {
                Some(t) => (acc.0 + t.minutiae.len(), acc.1 + 1, acc.2),
                None => (acc.0, acc.1, acc.2 + 1),
            });
        eprintln!(
            "{s}: mean minutiae {:.1}, failures {fail}",
            sum as f64 / cnt.max(1) as f64
        );
        sets.push(items);
    }
    for p in ["nbis_scores", "sourceafis_scores"] {
        let mut line = String::new();
        let mut m = 0.0;
        for s in SETS {
            if let Some(x) = peer(dir, p, s) {
                m += x.eer / 6.0;
                line.push_str(&format!(
                    " {:5.2}/{:5.2}",
                    100.0 * x.eer,
                    100.0 * x.fnmr_at_fmr_1e2.unwrap_or(1.0)
                ));
            }
        }
        println!("mean {:5.2} |{} | {p}", 100.0 * m, line);
    }
    for v in &variants {
        let cfg = MatcherConfig::default()
            .with_overrides(v)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut eers = Vec::new();
        let mut line = String::new();
        let t0 = std::time::Instant::now();
        let mut n = 0usize;
        for items in &sets {
            let prepared: Vec<_> = items
                .iter()
                .map(|(_, t)| t.as_ref().map(|t| matcher::prepare(t, &cfg)))
                .collect();
            let (mut g, mut i) = (Vec::new(), Vec::new());
            for a in 0..items.len() {
                for b in a + 1..items.len() {
                    let s = match (&prepared[a], &prepared[b]) {
                        (Some(x), Some(y)) => matcher::score(x, y),
                        _ => 0.0,
                    };
                    n += 1;
                    if items[a].0 == items[b].0 {
                        g.push(s)
                    } else {
                        i.push(s)
                    }
                }
            }
            let sum = ipseity_eval::summarize(&g, &i).unwrap();
            eers.push(sum.eer);
            line.push_str(&format!(
                " {:5.2}/{:5.2}",
                100.0 * sum.eer,
                100.0 * sum.fnmr_at_fmr_1e2.unwrap_or(1.0)
            ));
        }
        let _ = (t0, n);
        // Score-only speed: every pair of the last set, prepared once.
        let prepared: Vec<_> = sets[5]
            .iter()
            .chain(sets[4].iter())
            .filter_map(|(_, t)| t.as_ref().map(|t| matcher::prepare(t, &cfg)))
            .collect();
        let t1 = std::time::Instant::now();
        let mut sink = 0.0f32;
        let mut n = 0usize;
        for a in 0..prepared.len() {
            for b in a + 1..prepared.len() {
                sink += matcher::score(&prepared[a], &prepared[b]);
                n += 1;
            }
        }
        std::hint::black_box(sink);
        let cps = n as f64 / t1.elapsed().as_secs_f64();
        println!(
            "mean {:5.2} |{} | {:6.0} cmp/s | {}",
            100.0 * eers.iter().sum::<f64>() / 6.0,
            line,
            cps,
            if v.is_empty() { "default" } else { v }
        );
    }
}

/// The stored peer scores of one set, summarised by the same code.
#[allow(dead_code)]
pub fn peer(dir: &Path, peer: &str, set: &str) -> Option<ipseity_eval::Summary> {
    let text = std::fs::read_to_string(dir.join(peer).join(format!("{set}.csv"))).ok()?;
    let (mut g, mut i) = (Vec::new(), Vec::new());
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let s: f32 = f.get(3)?.parse().ok()?;
        match f[0] {
            "genuine" => g.push(s),
            "impostor_allpairs" => i.push(s),
            _ => {}
        }
    }
    ipseity_eval::summarize(&g, &i).ok()
}
