//! Extraction bench on synthetic impressions (400x480 at 500 ppi by default): time per
//! impression of `quality` alone and of the whole `extract`, and the process's peak memory.
//!
//! `RAYON_NUM_THREADS=1 cargo bench -p ipseity-finger --bench extract` (set
//! `EXTRACT_BENCH_IMAGES`, default 20, and `EXTRACT_BENCH_ROUNDS`, default 10).

use ipseity_finger::extract::{extract, quality, ExtractConfig};
use ipseity_finger::synth::{impression, master, SynthConfig};
use ipseity_finger::FingerPosition;
use std::time::Instant;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or(f64::NAN)
}

fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// CPU time of this thread, seconds (Linux; USER_HZ is 100 on every mainstream kernel).
/// The machine the figures come from is shared, so CPU time is the steadier measure.
fn thread_cpu_s() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ut: f64 = f.get(11)?.parse().ok()?;
    let st: f64 = f.get(12)?.parse().ok()?;
    Some((ut + st) / 100.0)
}

fn main() {
    let n = env("EXTRACT_BENCH_IMAGES", 20) as u32;
    let rounds = env("EXTRACT_BENCH_ROUNDS", 10);
    let cfg = SynthConfig::default();
    let images: Vec<_> = (0..n)
        .map(|i| {
            let m = master(&cfg, 77, i / 2);
            impression(&cfg, &m, 77, i / 2, i % 2).image
        })
        .collect();
    let xcfg = ExtractConfig::default();
    let (w, h) = images.first().map(|i| i.dimensions()).unwrap_or((0, 0));
    println!(
        "{n} synthetic impressions of {w}x{h}, {rounds} rounds, rayon threads {}",
        rayon::current_num_threads()
    );

    let mut q_cpu = 0f64;
    let mut x_cpu = 0f64;
    let mut q_ms = Vec::new();
    let mut x_ms = Vec::new();
    let mut minutiae = 0usize;
    let mut refused = 0usize;
    for round in 0..rounds {
        let c0 = thread_cpu_s().unwrap_or(0.0);
        for img in &images {
            let t0 = Instant::now();
            let q = quality(img, &xcfg);
            q_ms.push(t0.elapsed().as_secs_f64() * 1e3);
            std::hint::black_box(q.ok());
        }
        let c1 = thread_cpu_s().unwrap_or(0.0);
        q_cpu += c1 - c0;
        for img in &images {
            let t0 = Instant::now();
            let e = extract(img, FingerPosition::Unknown, &xcfg);
            x_ms.push(t0.elapsed().as_secs_f64() * 1e3);
            if round == 0 {
                match &e {
                    Ok(e) => minutiae += e.template.minutiae.len(),
                    Err(_) => refused += 1,
                }
            }
            std::hint::black_box(e.ok());
        }
        x_cpu += thread_cpu_s().unwrap_or(0.0) - c1;
    }
    let per = (rounds * n as usize).max(1) as f64;
    println!(
        "CPU time (this thread): quality {:.2} ms, extract {:.2} ms per impression",
        q_cpu * 1e3 / per,
        x_cpu * 1e3 / per
    );
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    println!(
        "quality: mean {:.2} ms, median {:.2} ms, p90 {:.2} ms per impression",
        mean(&q_ms),
        percentile(&mut q_ms, 0.5),
        percentile(&mut q_ms, 0.9)
    );
    println!(
        "extract: mean {:.2} ms, median {:.2} ms, p90 {:.2} ms per impression",
        mean(&x_ms),
        percentile(&mut x_ms, 0.5),
        percentile(&mut x_ms, 0.9)
    );
    println!(
        "{:.1} minutiae per impression, {refused} refused",
        minutiae as f64 / (n as usize - refused).max(1) as f64
    );
    if let Some(mib) = peak_rss_mib() {
        println!("peak resident memory {mib:.1} MiB (includes the generated images)");
    }
}
