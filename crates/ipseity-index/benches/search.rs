//! Search benchmark: build time, queries/s at batch 1 and batch N, recall@1
//! against an f32 brute force, memory per template, and the machine's memory
//! bandwidth, printed as JSON lines (one per storage kind and re-rank row
//! source, one for bandwidth).
//!
//! `cargo bench -p ipseity-index --bench search -- --n 1000000 --dim 128`
//! Options: `--n`, `--dim`, `--storage int8,f16,f32`, `--single 200`
//! (queries timed one by one), `--batch 1000`, `--k 10`, `--truth 100`
//! (queries checked against brute force), `--rerank memory,sealed` (where the
//! f32 re-rank rows live: RAM, or the sealed spill file), `--spill-dir DIR`
//! (the spill file's directory; the OS temporary directory by default),
//! `--rerank-min N` (the first-pass candidate depth per shard; by default
//! `Params::depth_for_batch(dim, queries)`; `depth` in the output is the
//! batch's, `depth_batch1` the single probe's).
//!
//! Memory per template: `scan` is what a scan reads, `held` every byte the
//! index holds in RAM (by capacity), `spill` the sealed file's bytes (disk or
//! page cache, outside the process), `rss` the growth of the process's
//! resident set while the index was built (the gallery and probes were
//! already resident).

use ipseity_index::exact::Params;
use ipseity_index::synth::{gallery, probes, SynthParams};
use ipseity_index::{kernels, ExactIndex, Index, RerankRows, Storage};
use rayon::prelude::*;
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

fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<usize>().ok())
            })
        })
        .map_or(0, |kb| kb * 1024)
}

/// Streaming read of a buffer far larger than the caches, all threads; GB/s.
fn bandwidth() -> (f64, f64) {
    let words = 1usize << 27; // 1 GiB of u64
    let buf: Vec<u64> = (0..words as u64).collect();
    let mut best_all = 0f64;
    let mut best_one = 0f64;
    for _ in 0..3 {
        let t = Instant::now();
        let s: u64 = buf
            .par_chunks(1 << 16)
            .map(|c| c.iter().fold(0u64, |a, &b| a.wrapping_add(b)))
            .reduce(|| 0, |a, b| a.wrapping_add(b));
        std::hint::black_box(s);
        best_all = best_all.max((words * 8) as f64 / t.elapsed().as_secs_f64() / 1e9);
        let t = Instant::now();
        let s = buf.iter().fold(0u64, |a, &b| a.wrapping_add(b));
        std::hint::black_box(s);
        best_one = best_one.max((words * 8) as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    (best_all, best_one)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n = num(&args, "--n", 100_000);
    let dim = num(&args, "--dim", 128);
    let single = num(&args, "--single", 200);
    let batch = num(&args, "--batch", 1000);
    let k = num(&args, "--k", 10);
    let truth = num(&args, "--truth", 100);
    let storages = arg(&args, "--storage", "int8");
    let reranks = arg(&args, "--rerank", "memory");
    let rerank_min = num(&args, "--rerank-min", Params::default().rerank_min);
    let spill_dir = args
        .iter()
        .position(|a| a == "--spill-dir")
        .and_then(|i| args.get(i + 1))
        .map(std::path::PathBuf::from);
    let threads = rayon::current_num_threads();

    if !args.iter().any(|a| a == "--no-bandwidth") {
        let (all, one) = bandwidth();
        println!(
            "{{\"bench\":\"memory_bandwidth\",\"read_gbs_all_threads\":{all:.2},\"read_gbs_one_thread\":{one:.2},\"threads\":{threads}}}"
        );
    }

    let t = Instant::now();
    let p = SynthParams::new(n, dim);
    let g = gallery(&p);
    let gen_s = t.elapsed().as_secs_f64();
    let (qs, _) = probes(&g, &p, single.max(batch).max(truth), 0x9e37);

    // Brute-force f32 top-1 (by template) for the first `truth` queries.
    let t = Instant::now();
    let exact: Vec<usize> = qs
        .chunks_exact(dim)
        .take(truth)
        .map(|q| {
            (0..g.len())
                .into_par_iter()
                .map(|i| (kernels::dot_f32(g.row(i), q), i))
                .reduce(
                    || (f32::NEG_INFINITY, usize::MAX),
                    |a, b| {
                        if b.0 > a.0 || (b.0 == a.0 && b.1 < a.1) {
                            b
                        } else {
                            a
                        }
                    },
                )
                .1
        })
        .collect();
    let brute_qps = truth as f64 / t.elapsed().as_secs_f64();

    let variants = storages
        .split(',')
        .flat_map(|st| reranks.split(',').map(move |rr| (st, rr)));
    for (st, rr) in variants {
        let storage = match st {
            "f32" => Storage::F32,
            "f16" => Storage::F16,
            _ => Storage::Int8,
        };
        let (rerank, label) = match rr {
            "sealed" => (
                RerankRows::SealedFile {
                    dir: spill_dir.clone(),
                },
                format!("exact-{st}-sealed"),
            ),
            _ => (RerankRows::InMemory, format!("exact-{st}")),
        };
        let (depth1, depth) = if rerank_min == 0 {
            (
                Params::depth_for_batch(dim, 1),
                Params::depth_for_batch(dim, batch),
            )
        } else {
            (rerank_min, rerank_min)
        };
        let rss0 = rss_bytes();
        let t = Instant::now();
        let params = Params {
            rerank,
            rerank_min,
            ..Params::default()
        };
        let idx: ExactIndex<u64> = match ExactIndex::with_params(dim, storage, params) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("cannot create the index: {e}");
                std::process::exit(2);
            }
        };
        let items: Vec<(u64, u64, &[f32])> = (0..g.len())
            .map(|i| (g.identity[i], i as u64, g.row(i)))
            .collect();
        if let Err(e) = idx.extend(&items) {
            eprintln!("build failed: {e}");
            std::process::exit(2);
        }
        drop(items);
        let build_s = t.elapsed().as_secs_f64();
        let rss = rss_bytes().saturating_sub(rss0);
        let mem = idx.memory();

        // Batch 1.
        let t = Instant::now();
        let mut hits1 = Vec::with_capacity(single);
        for q in qs.chunks_exact(dim).take(single) {
            hits1.push(idx.search(q, k, -1.0).unwrap_or_else(|e| fail(&e)));
        }
        let qps1 = single as f64 / t.elapsed().as_secs_f64();

        let rescans1 = idx.second_passes();

        // Batch N.
        let t = Instant::now();
        let hb = idx
            .search_batch(&qs[..batch * dim], k, -1.0)
            .unwrap_or_else(|e| fail(&e));
        let qps_b = batch as f64 / t.elapsed().as_secs_f64();

        // Recall@1 by template against the brute force; a subject's best
        // template is the global best when that subject wins.
        let mut ok = 0;
        let res: Vec<&Vec<ipseity_index::Hit<u64>>> = hb.iter().take(truth).collect();
        for (r, &e) in res.iter().zip(&exact) {
            if r.first().map(|h| h.template_id as usize) == Some(e) {
                ok += 1;
            }
        }
        let recall = ok as f64 / res.len().max(1) as f64;
        let agree = hits1.iter().zip(&hb).all(|(a, b)| a == b);
        println!(
            "{{\"engine\":\"ipseity\",\"index\":\"{label}\",\"n\":{n},\"dim\":{dim},\"k\":{k},\"depth_batch1\":{depth1},\"depth\":{depth},\"threads\":{threads},\"kernel\":\"{:?}\",\"build_s\":{build_s:.3},\"qps_batch1\":{qps1:.1},\"qps_batch{batch}\":{qps_b:.1},\"rescans_batch1\":{rescans1},\"rescans_batch{batch}\":{},\"recall_at_1\":{recall:.4},\"batch_equals_single\":{agree},\"bytes_per_template_scan\":{:.1},\"bytes_per_template_total\":{:.1},\"spill_bytes_per_template\":{:.1},\"rss_bytes_per_template\":{:.1},\"load_avg\":\"{}\",\"gen_s\":{gen_s:.2},\"brute_force_qps\":{brute_qps:.2}}}",
            kernels::detected(),
            idx.second_passes() - rescans1,
            mem.scan as f64 / n as f64,
            mem.total() as f64 / n as f64,
            idx.spill_bytes() as f64 / n as f64,
            rss as f64 / n as f64,
            load_avg(),
        );
    }
}

fn fail(e: &ipseity_index::IndexError) -> ! {
    eprintln!("search failed: {e}");
    std::process::exit(2);
}

/// The 1, 5 and 15 minute load averages (the machine may be shared).
fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
