//! `ipseity bench search`: Ipseity's own 1:N search figures on a synthetic
//! face-like gallery (`ipseity_index::synth`), so anyone can measure the
//! machine they deploy on. The fuller comparison with peer engines is the
//! `search` bench of `ipseity-index` (`docs/BENCHMARKS-index.md`); this
//! command measures the same quantities with the same generator and seeds.
//! `--index hnsw` measures the approximate graph index instead (recall@1 then
//! falls below 1); exact stays the default. `--rerank sealed` keeps the exact
//! index's f32 re-rank rows in its encrypted spill file instead of RAM.
//!
//! Memory per template: `scan` is what a search reads, `held` what the index
//! holds in RAM, `spill` the sealed file (outside the process), `rss` the
//! growth of the process's resident set while the index was built.

use std::io::{self, Write};
use std::time::Instant;

use ipseity_index::exact::{MemoryUsage, Params};
use ipseity_index::synth::{gallery, probes, SynthParams};
use ipseity_index::{kernels, ExactIndex, HnswIndex, HnswParams, Index, RerankRows, Storage};
use serde::Serialize;

use crate::args::{BenchSearchArgs, BenchStorage};
use crate::context::Ctx;
use crate::error::{CliError, ExitStatus};
use crate::output::Render;

/// Seed of the probes, the one the `search` bench uses.
const PROBE_SEED: u64 = 0x9e37;

#[derive(Serialize)]
struct SearchBench {
    index: String,
    gallery: usize,
    dim: usize,
    queries: usize,
    k: usize,
    threads: usize,
    kernel: String,
    build_s: f64,
    qps_batch1: f64,
    qps_batch: f64,
    recall_at_1: f64,
    recall_checked: usize,
    batch_equals_single: bool,
    bytes_per_template_scan: f64,
    bytes_per_template_total: f64,
    bytes_per_template_spill: f64,
    rss_bytes_per_template: f64,
}

impl Render for SearchBench {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(
            w,
            "{}: {} x {}-D, k {}, {} threads, kernel {}",
            self.index, self.gallery, self.dim, self.k, self.threads, self.kernel
        )?;
        writeln!(w, "build            {:.3} s", self.build_s)?;
        writeln!(w, "qps batch 1      {:.1}", self.qps_batch1)?;
        writeln!(w, "qps batch {:<6} {:.1}", self.queries, self.qps_batch)?;
        writeln!(
            w,
            "recall@1         {:.4} ({} probes against an f32 brute force; batch equals single: {})",
            self.recall_at_1, self.recall_checked, self.batch_equals_single
        )?;
        writeln!(
            w,
            "bytes/template   {:.1} scanned, {:.1} held in RAM, {:.1} in the sealed spill file; RSS grew {:.1}",
            self.bytes_per_template_scan,
            self.bytes_per_template_total,
            self.bytes_per_template_spill,
            self.rss_bytes_per_template
        )
    }
}

pub fn search(ctx: &Ctx, a: &BenchSearchArgs) -> anyhow::Result<ExitStatus> {
    let too_big = a.gallery.checked_mul(a.dim).is_none_or(|n| n > 1 << 32);
    if a.gallery == 0 || a.dim == 0 || a.queries == 0 || a.k == 0 || too_big {
        return Err(CliError::input(
            "usage",
            "--gallery, --dim, --queries and --k must be positive, gallery x dim at most 2^32",
        )
        .into());
    }
    let (storage, kind) = match a.storage {
        BenchStorage::Int8 => (Storage::Int8, "int8"),
        BenchStorage::F16 => (Storage::F16, "f16"),
        BenchStorage::F32 => (Storage::F32, "f32"),
    };
    let hnsw = a.index == "hnsw";
    if hnsw && (storage == Storage::F16 || a.ef == 0) {
        return Err(CliError::input(
            "usage",
            "--index hnsw takes --storage int8 or f32 and a positive --ef",
        )
        .into());
    }
    let p = SynthParams::new(a.gallery, a.dim);
    let g = gallery(&p);
    let (qs, _) = probes(&g, &p, a.queries, PROBE_SEED);

    let rss0 = rss_bytes();
    let t = Instant::now();
    let items: Vec<(u64, u64, &[f32])> = (0..g.len())
        .map(|i| (g.identity[i], i as u64, g.row(i)))
        .collect();
    let (idx, mem, spill, name): (Box<dyn Index<u64>>, MemoryUsage, u64, String) = if hnsw {
        let i: HnswIndex<u64> = HnswIndex::new(
            a.dim,
            HnswParams {
                storage,
                ef_search: a.ef,
                ..HnswParams::default()
            },
        )?;
        i.extend(&items)?;
        let mem = i.memory();
        (Box::new(i), mem, 0, format!("hnsw-{kind}-ef{}", a.ef))
    } else {
        let (rerank, suffix) = match a.rerank.as_str() {
            "sealed" => (
                RerankRows::SealedFile {
                    dir: a.spill_dir.clone(),
                },
                "-sealed",
            ),
            _ => (RerankRows::InMemory, ""),
        };
        let params = Params {
            rerank,
            ..Params::default()
        };
        let i: ExactIndex<u64> = ExactIndex::with_params(a.dim, storage, params)?;
        i.extend(&items)?;
        let mem = i.memory();
        let spill = i.spill_bytes();
        (Box::new(i), mem, spill, format!("exact-{kind}{suffix}"))
    };
    drop(items);
    let build_s = t.elapsed().as_secs_f64();
    let rss = rss_bytes().saturating_sub(rss0);

    let t = Instant::now();
    let single = qs
        .chunks_exact(a.dim)
        .map(|q| idx.search(q, a.k, -1.0))
        .collect::<Result<Vec<_>, _>>()?;
    let qps_batch1 = a.queries as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let batch = idx.search_batch(&qs, a.k, -1.0)?;
    let qps_batch = a.queries as f64 / t.elapsed().as_secs_f64();

    // Recall@1 by template against an f32 brute force over the normalised
    // rows: the winning subject's best template is the global best row.
    let checked = a.truth.min(a.queries);
    let hits = qs
        .chunks_exact(a.dim)
        .zip(&batch)
        .take(checked)
        .filter(|(q, got)| {
            let mut best = (f32::NEG_INFINITY, 0usize);
            for i in 0..g.len() {
                let s = kernels::dot_f32(g.row(i), q);
                if s > best.0 {
                    best = (s, i);
                }
            }
            got.first().map(|h| h.template_id) == Some(best.1 as u64)
        })
        .count();
    ctx.out.emit(&SearchBench {
        index: name,
        gallery: a.gallery,
        dim: a.dim,
        queries: a.queries,
        k: a.k,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel: format!("{:?}", kernels::detected()),
        build_s,
        qps_batch1,
        qps_batch,
        recall_at_1: hits as f64 / checked.max(1) as f64,
        recall_checked: checked,
        batch_equals_single: single == batch,
        bytes_per_template_scan: mem.scan as f64 / a.gallery as f64,
        bytes_per_template_total: mem.total() as f64 / a.gallery as f64,
        bytes_per_template_spill: spill as f64 / a.gallery as f64,
        rss_bytes_per_template: rss as f64 / a.gallery as f64,
    })?;
    Ok(ExitStatus::Success)
}

/// The process's resident set (Linux; zero elsewhere).
fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<usize>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
