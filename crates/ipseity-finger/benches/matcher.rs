//! Matcher bench on synthetic minutiae, one thread: prepare time, comparisons per second,
//! EER of genuine against impostor scores, and how often the descriptor pre-filter keeps the
//! mate in its top k.
//!
//! `cargo bench -p ipseity-finger --bench matcher` (set `MATCHER_BENCH_FINGERS`, default
//! 1000, to change the number of fingers).
//!
//! With `MATCHER_BENCH_DIR=D` (a directory written by `ipseity finger synth`, images named
//! `FFFFF_I.png`) it instead measures extracted templates, as `ipseity finger eval` pairs
//! them (FVC protocol): comparisons per CPU-second of the impostor pairs on one thread over
//! `MATCHER_BENCH_RUNS` runs (default 7; median and range; `MATCHER_BENCH_ISA=avx2` or
//! `portable` times a narrower build of the comparison on the same CPU), EER and FNMR, and a hash of
//! every score's bits so that a change meant to be exact can be checked as exact. Templates
//! are extracted once and cached in `D/matcher-bench-templates.json`.

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
    let spec = std::env::var("MATCHER_CFG").unwrap_or_default();
    let cfg = MatcherConfig::default()
        .with_overrides(&spec)
        .unwrap_or_else(|e| panic!("MATCHER_CFG: {e}"));
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

/// CPU time of the calling thread in nanoseconds, from the scheduler's statistics (finer
/// than the 10 ms ticks of `stat`); falls back to [`thread_cpu_s`].
fn thread_cpu_ns() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok();
    if let Some(ns) = s.and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok()) {
        return Some(ns);
    }
    thread_cpu_s().map(|s| s * 1e9)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// FNV-1a over the scores' bits.
fn score_hash(scores: &[f32]) -> u64 {
    scores.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, s| {
        (h ^ u64::from(s.to_bits())).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// FNMR at the impostor-score quantiles for FMR 1e-3 and 1e-4 (scores above the threshold
/// accept), as fractions.
fn fnmr_at(genuine: &[f32], impostor: &[f32], fmr: f64) -> f64 {
    let mut imp = impostor.to_vec();
    imp.sort_by(|a, b| b.total_cmp(a));
    let k = ((fmr * imp.len() as f64) as usize).min(imp.len().saturating_sub(1));
    let thr = imp.get(k).copied().unwrap_or(1.0);
    genuine.iter().filter(|&&g| g <= thr).count() as f64 / genuine.len().max(1) as f64
}

/// Extracted templates of a synthetic set, by (finger, impression); `None` where
/// extraction failed (such samples score 0, as in `ipseity finger eval`).
fn load_extracted(dir: &std::path::Path) -> Vec<((u32, u32), Option<FingerTemplate>)> {
    use ipseity_finger::extract::{extract, ExtractConfig};
    use rayon::prelude::*;
    let cache = dir.join("matcher-bench-templates.json");
    if let Ok(text) = std::fs::read_to_string(&cache) {
        if let Ok(v) = serde_json::from_str(&text) {
            return v;
        }
    }
    let mut items: Vec<((u32, u32), std::path::PathBuf)> = std::fs::read_dir(dir)
        .expect("MATCHER_BENCH_DIR readable")
        .filter_map(|e| {
            let path = e.ok()?.path();
            let stem = path.file_name()?.to_str()?.strip_suffix(".png")?;
            let (f, i) = stem.split_once('_')?;
            Some(((f.parse().ok()?, i.parse().ok()?), path))
        })
        .collect();
    items.sort();
    let cfg = ExtractConfig::default();
    let t0 = Instant::now();
    let out: Vec<((u32, u32), Option<FingerTemplate>)> = items
        .par_iter()
        .map(|(k, path)| {
            let img = image::open(path).expect("image").to_luma8();
            let t = extract(&img, FingerPosition::Unknown, &cfg)
                .ok()
                .map(|e| e.template);
            (*k, t)
        })
        .collect();
    println!(
        "extracted {} impressions in {:.1} s (cached in {})",
        out.len(),
        t0.elapsed().as_secs_f64(),
        cache.display()
    );
    std::fs::write(&cache, serde_json::to_string(&out).expect("json")).expect("write cache");
    out
}

fn extracted_bench(dir: &std::path::Path) {
    let items = load_extracted(dir);
    let cfg = config_from_env();
    let prepared: Vec<Option<Prepared>> = items
        .iter()
        .map(|(_, t)| t.as_ref().map(|t| prepare(t, &cfg)))
        .collect();
    let used: Vec<usize> = prepared.iter().flatten().map(|p| p.matchable()).collect();
    let minutiae: Vec<usize> = items
        .iter()
        .filter_map(|(_, t)| t.as_ref().map(|t| t.minutiae.len()))
        .collect();
    println!(
        "{} impressions, {} failed; {:.1} minutiae and {:.1} cylinders per template on average",
        items.len(),
        items.iter().filter(|(_, t)| t.is_none()).count(),
        minutiae.iter().sum::<usize>() as f64 / minutiae.len().max(1) as f64,
        used.iter().sum::<usize>() as f64 / used.len().max(1) as f64,
    );
    // FVC protocol: all pairs within a finger; first impressions across fingers.
    let fingers: Vec<u32> = items.iter().map(|((f, _), _)| *f).collect();
    let (genuine_pairs, impostor_pairs) = ipseity_eval::fvc_pairs(&fingers);
    let run = |pairs: &[(usize, usize)]| -> Vec<f32> {
        pairs
            .iter()
            .map(|&(a, b)| match (&prepared[a], &prepared[b]) {
                (Some(x), Some(y)) => score(x, y),
                _ => 0.0,
            })
            .collect()
    };
    let genuine = run(&genuine_pairs);
    let impostor = run(&impostor_pairs);
    println!(
        "{} genuine, {} impostor pairs; EER {:.2}%, FNMR {:.2}% / {:.2}% at FMR 1e-3 / 1e-4",
        genuine.len(),
        impostor.len(),
        100.0 * synthetic::eer(&genuine, &impostor),
        100.0 * fnmr_at(&genuine, &impostor, 1e-3),
        100.0 * fnmr_at(&genuine, &impostor, 1e-4),
    );
    println!(
        "score hash: genuine {:016x}, impostor {:016x}",
        score_hash(&genuine),
        score_hash(&impostor)
    );

    let timed: Vec<(&Prepared, &Prepared)> = impostor_pairs
        .iter()
        .filter_map(|&(a, b)| Some((prepared[a].as_ref()?, prepared[b].as_ref()?)))
        .collect();
    let runs: usize = std::env::var("MATCHER_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    println!("load before: {}", loadavg());
    let mut rates = Vec::new();
    for _ in 0..runs {
        let (c0, t0) = (thread_cpu_ns(), Instant::now());
        let mut sink = 0.0f32;
        let mut done = 0usize;
        // About a second per run at the target speed.
        while done < 100_000 && !timed.is_empty() {
            for (a, b) in &timed {
                sink += score(a, b);
            }
            done += timed.len();
        }
        std::hint::black_box(sink);
        let wall = t0.elapsed().as_secs_f64();
        let cpu = thread_cpu_ns().zip(c0).map(|(b, a)| (b - a) * 1e-9);
        let per_cpu = cpu.filter(|&c| c > 0.0).map(|c| done as f64 / c);
        println!(
            "  {done} comparisons: {:.0}/s wall, {}",
            done as f64 / wall,
            per_cpu.map_or("no CPU time".into(), |r| format!("{r:.0} per CPU-second"))
        );
        rates.extend(per_cpu);
    }
    println!("load after: {}", loadavg());
    rates.sort_by(f64::total_cmp);
    if let (Some(lo), Some(hi)) = (rates.first(), rates.last()) {
        println!(
            "comparisons per CPU-second, one thread: median {:.0} ({} runs, {lo:.0}-{hi:.0})",
            rates[rates.len() / 2],
            rates.len()
        );
    }
}

fn main() {
    // MATCHER_BENCH_ISA=portable|avx2: time a narrower build of the comparison on this
    // machine (the widest the CPU offers otherwise).
    match std::env::var("MATCHER_BENCH_ISA").as_deref() {
        Ok("portable") => ipseity_finger::matcher::limit_instruction_set(
            ipseity_finger::matcher::InstructionSet::Portable,
        ),
        Ok("avx2") => ipseity_finger::matcher::limit_instruction_set(
            ipseity_finger::matcher::InstructionSet::Avx2,
        ),
        _ => {}
    }
    if let Some(dir) = std::env::var_os("MATCHER_BENCH_DIR") {
        extracted_bench(std::path::Path::new(&dir));
        return;
    }
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
    let cpu0 = thread_cpu_ns();
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
    let cmp_cpu = thread_cpu_ns().zip(cpu0).map(|(b, a)| (b - a) * 1e-9);
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

    // Time by similarity: a verification's time must not tell a near-match from a clear
    // non-match (a timing oracle would let an attacker hill-climb without any score).
    // Genuine pairs and as many impostor pairs (each first impression against the next
    // finger's second), interleaved, timed a pair at a time, many rounds.
    if !skip_score && n > 1 {
        let mut t_gen = Vec::with_capacity(n * 20);
        let mut t_imp = Vec::with_capacity(n * 20);
        for _ in 0..20 {
            for i in 0..n {
                let (a, b) = (&prepared[i].0, &prepared[i].1);
                let c = &prepared[(i + 1) % n].1;
                let t = Instant::now();
                std::hint::black_box(score(a, b));
                t_gen.push(t.elapsed().as_nanos() as f64);
                let t = Instant::now();
                std::hint::black_box(score(a, c));
                t_imp.push(t.elapsed().as_nanos() as f64);
            }
        }
        let q = |v: &mut Vec<f64>, p: f64| {
            v.sort_by(f64::total_cmp);
            v[((v.len() - 1) as f64 * p) as usize] / 1e3
        };
        println!(
            "time by similarity (us, p10/median/p90): genuine {:.2}/{:.2}/{:.2}, impostor {:.2}/{:.2}/{:.2}",
            q(&mut t_gen, 0.1),
            q(&mut t_gen, 0.5),
            q(&mut t_gen, 0.9),
            q(&mut t_imp, 0.1),
            q(&mut t_imp, 0.5),
            q(&mut t_imp, 0.9)
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
