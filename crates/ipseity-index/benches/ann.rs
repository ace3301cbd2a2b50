//! Exact against HNSW: build time, batch-1 latency (p50, p99) and queries/s,
//! recall@1 and recall@10 of HNSW against the exact answer, memory per
//! template, on face-shaped data (`synth::face_set`: clustered identities, five
//! samples each, dlib's distances) and on uniform unit vectors; then the exact
//! index's batch-1 p99 latency over gallery sizes, a least-squares line
//! through it, and the size where it crosses the latency target (the switch
//! point). JSON lines on stdout.
//!
//! `cargo bench -p ipseity-index --bench ann -- --n 10000,100000 --data face,uniform`
//! Options: `--n` sizes, `--data face,uniform`, `--queries 500` (timed one by
//! one, also the recall set), `--k 10`, `--m 16`, `--efc 100`, `--ef
//! 16,32,64,128,256`, `--walk int8|f32` (HNSW storage), `--switch
//! 250000,500000,1000000,2000000` (exact-only latency sizes; `none` to skip),
//! `--target-ms 50` (p99 target), `--dim 128`, `--rerank-min D` (first-pass
//! depth of the switch pass's exact index; 0 picks `Params::depth_for_batch`).

use ipseity_index::exact::Params;
use ipseity_index::synth::{face_set, uniform, FaceParams};
use ipseity_index::{ExactIndex, Hit, HnswIndex, HnswParams, Index, Storage};
use std::collections::HashSet;
use std::time::Instant;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

fn num(args: &[String], name: &str, default: usize) -> usize {
    arg(args, name, &default.to_string())
        .parse()
        .unwrap_or(default)
}

fn list(args: &[String], name: &str, default: &str) -> Vec<usize> {
    arg(args, name, default)
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Gallery rows, their subjects and probes.
struct Data {
    vectors: Vec<f32>,
    subject: Vec<u64>,
    probes: Vec<f32>,
}

fn data(kind: &str, n: usize, dim: usize, q: usize) -> Data {
    if kind == "uniform" {
        Data {
            vectors: uniform(n, dim, 0x5eed),
            subject: (0..n as u64).collect(),
            probes: uniform(q, dim, 0x9e37),
        }
    } else {
        let s = face_set(&FaceParams::new(n, dim), q);
        Data {
            vectors: s.gallery.vectors,
            subject: s.gallery.identity,
            probes: s.probes,
        }
    }
}

/// Times each probe alone; returns (answers, p50 ms, p99 ms, qps).
fn timed<I: Index<u64>>(
    idx: &I,
    probes: &[f32],
    dim: usize,
    k: usize,
) -> (Vec<Vec<Hit<u64>>>, f64, f64, f64) {
    for q in probes.chunks_exact(dim).take(20) {
        std::hint::black_box(idx.search(q, k, -1.0).ok());
    }
    let mut lat = Vec::new();
    let mut out = Vec::new();
    let t0 = Instant::now();
    for q in probes.chunks_exact(dim) {
        let t = Instant::now();
        let h = idx.search(q, k, -1.0).unwrap_or_default();
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        out.push(h);
    }
    let total = t0.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
    (out, pct(0.50), pct(0.99), lat.len() as f64 / total)
}

fn recall(truth: &[Vec<Hit<u64>>], got: &[Vec<Hit<u64>>], k: usize) -> (f64, f64) {
    let (mut r1, mut rk) = (0usize, 0usize);
    for (t, g) in truth.iter().zip(got) {
        if t.first().map(|h| h.subject) == g.first().map(|h| h.subject) {
            r1 += 1;
        }
        let ts: HashSet<u64> = t.iter().map(|h| h.subject).collect();
        rk += g.iter().filter(|h| ts.contains(&h.subject)).count();
    }
    let n = truth.len().max(1) as f64;
    (r1 as f64 / n, rk as f64 / (n * k as f64))
}

/// Genuine and impostor L2 distances among the first 1,000 rows (mean and
/// 5th/95th percentiles), to check the data against dlib's ranges.
fn stats(kind: &str, d: &Data, dim: usize) {
    let m = d.subject.len().min(1000);
    let (mut gen, mut imp) = (Vec::new(), Vec::new());
    for i in 0..m {
        for j in 0..i {
            let l2: f32 = d.vectors[i * dim..(i + 1) * dim]
                .iter()
                .zip(&d.vectors[j * dim..(j + 1) * dim])
                .map(|(x, y)| (x - y) * (x - y))
                .sum::<f32>()
                .sqrt();
            if d.subject[i] == d.subject[j] {
                gen.push(l2);
            } else {
                imp.push(l2);
            }
        }
    }
    let summary = |v: &mut Vec<f32>| -> String {
        if v.is_empty() {
            return "null".into();
        }
        v.sort_by(f32::total_cmp);
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let at = |p: f64| v[((v.len() - 1) as f64 * p) as usize];
        format!(
            "{{\"mean\":{mean:.3},\"p5\":{:.3},\"p95\":{:.3},\"pairs\":{}}}",
            at(0.05),
            at(0.95),
            v.len()
        )
    };
    println!(
        "{{\"data_stats\":\"{kind}\",\"genuine_l2\":{},\"impostor_l2\":{}}}",
        summary(&mut gen),
        summary(&mut imp)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dim = num(&args, "--dim", 128);
    let q = num(&args, "--queries", 500);
    let k = num(&args, "--k", 10);
    let sizes = list(&args, "--n", "10000,100000");
    let efs = list(&args, "--ef", "16,32,64,128,256");
    let switch = list(&args, "--switch", "250000,500000,1000000,2000000");
    let target_ms = num(&args, "--target-ms", 50) as f64;
    // First-pass depth of the switch pass's exact index (0: `Params::depth_for_batch`).
    let rerank_min = num(&args, "--rerank-min", 0);
    let kinds = arg(&args, "--data", "face,uniform");
    let walk = match arg(&args, "--walk", "int8").as_str() {
        "f32" => Storage::F32,
        _ => Storage::Int8,
    };
    let hp = HnswParams {
        m: num(&args, "--m", 16),
        ef_construction: num(&args, "--efc", 100),
        storage: walk,
        ..HnswParams::default()
    };
    let threads = rayon::current_num_threads();

    for kind in kinds.split(',').filter(|s| !s.is_empty()) {
        for &n in &sizes {
            let d = data(kind, n, dim, q);
            let items: Vec<(u64, u64, &[f32])> = (0..n)
                .map(|i| (d.subject[i], i as u64, &d.vectors[i * dim..(i + 1) * dim]))
                .collect();
            stats(kind, &d, dim);
            let exact: ExactIndex<u64> = ExactIndex::new(dim, Storage::Int8);
            let t = Instant::now();
            if let Err(e) = exact.extend(&items) {
                eprintln!("exact build failed: {e}");
                std::process::exit(2);
            }
            let exact_build = t.elapsed().as_secs_f64();
            let (truth, p50, p99, qps) = timed(&exact, &d.probes, dim, k);
            println!(
                "{{\"data\":\"{kind}\",\"n\":{n},\"dim\":{dim},\"k\":{k},\"threads\":{threads},\"index\":\"exact-int8\",\"build_s\":{exact_build:.3},\"p50_ms\":{p50:.3},\"p99_ms\":{p99:.3},\"qps_batch1\":{qps:.1},\"recall_at_1\":1.0,\"recall_at_10\":1.0,\"bytes_per_template\":{:.1},\"load\":\"{}\"}}",
                exact.memory().total() as f64 / n as f64,
                load()
            );
            drop(exact);

            let idx: HnswIndex<u64> = match HnswIndex::new(dim, hp) {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(2);
                }
            };
            let t = Instant::now();
            if let Err(e) = idx.extend(&items) {
                eprintln!("hnsw build failed: {e}");
                std::process::exit(2);
            }
            let build = t.elapsed().as_secs_f64();
            let mem = idx.memory();
            for &ef in &efs {
                idx.set_ef_search(ef);
                let (got, p50, p99, qps) = timed(&idx, &d.probes, dim, k);
                let (r1, r10) = recall(&truth, &got, k);
                println!(
                    "{{\"data\":\"{kind}\",\"n\":{n},\"dim\":{dim},\"k\":{k},\"threads\":{threads},\"index\":\"hnsw-{}\",\"m\":{},\"ef_construction\":{},\"ef_search\":{ef},\"build_s\":{build:.3},\"p50_ms\":{p50:.3},\"p99_ms\":{p99:.3},\"qps_batch1\":{qps:.1},\"recall_at_1\":{r1:.4},\"recall_at_10\":{r10:.4},\"bytes_per_template\":{:.1},\"bytes_walked_per_template\":{:.1},\"load\":\"{}\"}}",
                    if walk == Storage::F32 { "f32" } else { "int8" },
                    hp.m,
                    hp.ef_construction,
                    mem.total() as f64 / n as f64,
                    mem.scan as f64 / n as f64,
                    load()
                );
            }
        }
    }

    // Switch point: exact batch-1 p99 over sizes, least-squares line.
    let mut pts = Vec::new();
    for &n in &switch {
        let d = data("face", n, dim, q);
        let params = Params {
            rerank_min,
            ..Params::default()
        };
        let exact: ExactIndex<u64> = match ExactIndex::with_params(dim, Storage::Int8, params) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("cannot create the index: {e}");
                std::process::exit(2);
            }
        };
        {
            let items: Vec<(u64, u64, &[f32])> = (0..n)
                .map(|i| (d.subject[i], i as u64, &d.vectors[i * dim..(i + 1) * dim]))
                .collect();
            if let Err(e) = exact.extend(&items) {
                eprintln!("exact build failed: {e}");
                std::process::exit(2);
            }
        }
        let probes = d.probes;
        drop(d.vectors);
        let (_, p50, p99, qps) = timed(&exact, &probes, dim, k);
        let passes1 = exact.second_passes();
        // All probes in one batch: the de-duplication workload.
        let t = Instant::now();
        if let Err(e) = exact.search_batch(&probes, k, -1.0) {
            eprintln!("batch search failed: {e}");
            std::process::exit(2);
        }
        let qps_batch = (probes.len() / dim) as f64 / t.elapsed().as_secs_f64();
        println!(
            "{{\"switch_point_sample\":true,\"data\":\"face\",\"n\":{n},\"index\":\"exact-int8\",\"depth_batch1\":{},\"p50_ms\":{p50:.3},\"p99_ms\":{p99:.3},\"qps_batch1\":{qps:.1},\"second_passes_batch1\":{passes1},\"qps_batch{}\":{qps_batch:.1},\"second_passes_batch\":{},\"load\":\"{}\"}}",
            if rerank_min == 0 {
                Params::depth_for_batch(dim, 1)
            } else {
                rerank_min
            },
            probes.len() / dim,
            exact.second_passes() - passes1,
            load()
        );
        pts.push((n as f64, p99, p50));
    }
    if pts.len() >= 2 {
        let fit = |ys: &dyn Fn(&(f64, f64, f64)) -> f64| {
            let m = pts.len() as f64;
            let sx: f64 = pts.iter().map(|p| p.0).sum();
            let sy: f64 = pts.iter().map(ys).sum();
            let sxx: f64 = pts.iter().map(|p| p.0 * p.0).sum();
            let sxy: f64 = pts.iter().map(|p| p.0 * ys(p)).sum();
            let b = (m * sxy - sx * sy) / (m * sxx - sx * sx);
            let a = (sy - b * sx) / m;
            (a, b)
        };
        let (a, b) = fit(&|p| p.1);
        let (a50, b50) = fit(&|p| p.2);
        let cross = if b > 0.0 {
            (target_ms - a) / b
        } else {
            f64::INFINITY
        };
        // Under load the latency is not a clean line (a large intercept from
        // preemption), so the crossing is also read between the two measured
        // sizes that bracket the target.
        let mut sorted = pts.clone();
        sorted.sort_by(|x, y| x.0.total_cmp(&y.0));
        let interp = sorted
            .windows(2)
            .find(|w| w[0].1 <= target_ms && w[1].1 > target_ms)
            .map(|w| w[0].0 + (target_ms - w[0].1) * (w[1].0 - w[0].0) / (w[1].1 - w[0].1));
        let interp = match (interp, sorted.first(), sorted.last()) {
            (Some(x), _, _) => format!("{x:.0}"),
            (None, Some(f), _) if f.1 > target_ms => format!("\"below {}\"", f.0),
            (None, _, Some(l)) => format!("\"above {}\"", l.0),
            _ => "null".into(),
        };
        println!(
            "{{\"switch_point\":true,\"target\":\"p99 <= {target_ms} ms per probe at batch 1\",\"fit_p99_ms\":\"{a:.3} + {:.4} per 1k templates\",\"fit_p50_ms\":\"{a50:.3} + {:.4} per 1k templates\",\"crossing_templates_fit\":{cross:.0},\"crossing_templates_interpolated\":{interp},\"load\":\"{}\"}}",
            b * 1e3,
            b50 * 1e3,
            load()
        );
    }
}
