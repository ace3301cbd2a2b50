//! Matcher bench on synthetic minutiae, one thread: prepare time, comparisons per second,
//! EER of genuine against impostor scores, and how often the descriptor pre-filter keeps the
//! mate in its top k.
//!
//! `cargo bench -p ipseity-finger --bench matcher` (set `MATCHER_BENCH_FINGERS`, default
//! 1000, to change the number of fingers).

use ipseity_finger::matcher::{descriptor, prepare, score, MatcherConfig, Prepared};
use ipseity_finger::{FingerPosition, FingerTemplate, Minutia, MinutiaKind};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

#[allow(dead_code)]
#[path = "../src/matcher/synthetic.rs"]
mod synthetic;

/// Default configuration with `MATCHER_CFG="name=value,..."` overrides, for tuning runs.
fn config_from_env() -> MatcherConfig {
    let mut cfg = MatcherConfig::default();
    let spec = std::env::var("MATCHER_CFG").unwrap_or_default();
    for item in spec.split(',').filter(|s| !s.is_empty()) {
        let Some((k, v)) = item.split_once('=') else {
            panic!("bad MATCHER_CFG item {item}");
        };
        let f: f32 = v.parse().expect("MATCHER_CFG value");
        match k {
            "radius" => cfg.radius = f,
            "sigma_s" => cfg.sigma_s = f,
            "sigma_d" => cfg.sigma_d = f,
            "mu_psi" => cfg.mu_psi = f,
            "omega" => cfg.omega = f,
            "min_valid_cells" => cfg.min_valid_cells = f,
            "min_common_cells" => cfg.min_common_cells = f,
            "min_local_similarity" => cfg.min_local_similarity = f,
            "max_cylinders" => cfg.max_cylinders = f as usize,
            "max_relax_pairs" => cfg.max_relax_pairs = f as usize,
            "relax_iterations" => cfg.relax_iterations = f as usize,
            "relax_keep" => cfg.relax_keep = f,
            "min_score_pairs" => cfg.min_score_pairs = f as usize,
            "max_score_pairs" => cfg.max_score_pairs = f as usize,
            "dist_tol" => cfg.dist_tol = f,
            "dist_max" => cfg.dist_max = f,
            "dist_tol_rel" => cfg.dist_tol_rel = f,
            "angle_tol" => cfg.angle_tol = f.to_radians(),
            "angle_max" => cfg.angle_max = f.to_radians(),
            _ => panic!("unknown MATCHER_CFG key {k}"),
        }
    }
    println!("config: {cfg:?}");
    cfg
}

/// CPU time of the calling thread, seconds (Linux; `None` elsewhere). The shared build
/// machines are often oversubscribed, so wall time alone understates single-core speed.
fn thread_cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on every mainstream Linux configuration.
    Some(ticks / 100.0)
}

fn main() {
    let n: usize = std::env::var("MATCHER_BENCH_FINGERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let noise = synthetic::Noise::default();
    let templates: Vec<(FingerTemplate, FingerTemplate)> = (0..n)
        .map(|_| {
            let m = synthetic::master(&mut rng);
            (
                synthetic::impression(&m, &noise, &mut rng),
                synthetic::impression(&m, &noise, &mut rng),
            )
        })
        .collect();
    let mean_minutiae = templates
        .iter()
        .map(|(a, b)| a.minutiae.len() + b.minutiae.len())
        .sum::<usize>() as f64
        / (2 * n) as f64;
    let cfg = config_from_env();
    let t0 = Instant::now();
    let prepared: Vec<(Prepared, Prepared)> = templates
        .iter()
        .map(|(a, b)| (prepare(a, &cfg), prepare(b, &cfg)))
        .collect();
    let prep_s = t0.elapsed().as_secs_f64();
    println!(
        "{n} fingers, 2 impressions each, {mean_minutiae:.1} minutiae per impression on average"
    );
    println!(
        "prepare: {:.1} us per template",
        prep_s * 1e6 / (2 * n) as f64
    );

    // Comparisons: every first impression against every second impression.
    let skip_score = std::env::var_os("MATCHER_BENCH_DESCRIPTOR_ONLY").is_some();
    let cpu0 = thread_cpu_s();
    let t0 = Instant::now();
    let mut genuine = Vec::with_capacity(n);
    let mut impostor = Vec::with_capacity(n * (n - 1));
    for (i, (a, _)) in prepared.iter().enumerate().filter(|_| !skip_score) {
        for (j, (_, b)) in prepared.iter().enumerate() {
            let s = score(a, b);
            if i == j {
                genuine.push(s);
            } else {
                impostor.push(s);
            }
        }
    }
    let cmp_s = t0.elapsed().as_secs_f64();
    let cmp_cpu = thread_cpu_s().zip(cpu0).map(|(b, a)| b - a);
    let comparisons = (n * n) as f64;
    println!(
        "score: {:.0} comparisons/s on one thread ({comparisons} in {cmp_s:.2} s)",
        comparisons / cmp_s
    );
    if let Some(cpu) = cmp_cpu.filter(|&c| c > 0.0) {
        println!(
            "score: {:.0} comparisons per CPU-second ({cpu:.2} s of thread CPU time)",
            comparisons / cpu
        );
    }
    let eer = synthetic::eer(&genuine, &impostor);
    println!("EER on synthetic impressions: {:.2}%", 100.0 * eer);
    let mut imp = impostor.clone();
    imp.sort_by(|a, b| b.total_cmp(a));
    for fmr in [1e-2f64, 1e-3, 1e-4] {
        let k = ((fmr * imp.len() as f64) as usize).min(imp.len().saturating_sub(1));
        let thr = imp.get(k).copied().unwrap_or(1.0);
        let fnmr = genuine.iter().filter(|&&g| g <= thr).count() as f64 / n as f64;
        println!(
            "  FNMR at FMR {fmr:e}: {:.2}% (threshold {thr:.3})",
            100.0 * fnmr
        );
    }

    // Descriptor pre-filter: rank of the mate among all second impressions.
    let t0 = Instant::now();
    let da: Vec<Vec<f32>> = prepared.iter().map(|(a, _)| descriptor(a)).collect();
    let db: Vec<Vec<f32>> = prepared.iter().map(|(_, b)| descriptor(b)).collect();
    let desc_s = t0.elapsed().as_secs_f64();
    println!(
        "descriptor: {:.1} us per template",
        desc_s * 1e6 / (2 * n) as f64
    );
    let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f32>();
    let mut ranks = Vec::with_capacity(n);
    let mut cos_g = 0.0f64;
    let mut cos_i = 0.0f64;
    for (i, q) in da.iter().enumerate() {
        let mate = dot(q, &db[i]);
        cos_g += f64::from(mate);
        let mut better = 0;
        for (j, g) in db.iter().enumerate() {
            let c = dot(q, g);
            if j != i {
                cos_i += f64::from(c);
                if c >= mate {
                    better += 1;
                }
            }
        }
        ranks.push(better);
    }
    println!(
        "descriptor cosine: mean genuine {:.3}, mean impostor {:.3}",
        cos_g / n as f64,
        cos_i / (n * (n - 1)) as f64
    );
    for k in [1usize, 10, 50, 100] {
        let hit = ranks.iter().filter(|&&r| r < k).count() as f64 / n as f64;
        println!("  mate in top {k} of {n}: {:.1}%", 100.0 * hit);
    }
    // Keep the unused-kind import honest for the synthetic module.
    let _ = (
        MinutiaKind::Ending,
        FingerPosition::Unknown,
        Minutia::new(0.0, 0.0, 0.0, MinutiaKind::Other, 0),
    );
}
