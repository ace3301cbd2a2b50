//! Exact top-k search by exhaustive scan, with quantised storage that still
//! returns the exact f32 answer.
//!
//! # Layout
//! The gallery is split into shards; a subject's templates all live in the
//! shard its key hashes to, behind one `RwLock`. A search read-locks each shard
//! while it scans it (shards in parallel on the rayon pool); `add`, `remove`
//! and `replace` write-lock one shard. So a search that starts after
//! `remove_subject` returned cannot see that subject, and `replace_subject` is
//! atomic. Every template is stored normalised in f32 (the re-rank copy and the
//! scan of [`Storage::F32`]) and, for the quantised kinds, again as f16 or as
//! packed int8 (see [`crate::kernels`]) for the scan. The f32 re-rank copy of
//! the quantised kinds lives in RAM or, with [`RerankRows::SealedFile`], in an
//! encrypted spill file outside the process's memory (see `spill.rs`).
//!
//! # Why the quantised answer is exact
//! For a query `y` and a stored row `x` with scan code `x̂`, the scan yields an
//! approximate score `a` with a proven bound `|a − x·y| ≤ E(y)`:
//! - int8: the gallery holds `x̂_d = s_d·q_d` with a per-dimension scale `s_d`;
//!   the query is scaled, `z_d = s_d·y_d`, and quantised with one scale `t`,
//!   `z_d ≈ t·r_d`. Then `a = t·Σ q_d r_d` and
//!   `x·y − a = Σ (x_d − s_d q_d) y_d + Σ q_d (z_d − t r_d)`, so
//!   `E = Σ_d e_d |y_d| + (t/2)·L1max + ε`, where `e_d` is the largest
//!   reconstruction error seen in dimension `d` (tracked on insert, clamping
//!   included), `L1max` the largest `Σ|q_d|` of a row, and `ε` covers f32
//!   rounding (`1e-5 + 16·D·u`).
//!   A second bound, usually 3–5 times tighter, follows from Cauchy–Schwarz:
//!   with `x̂_d = s_d q_d` and `ŷ_d = t r_d / s_d`, `a = x̂·ŷ` exactly, so
//!   `x·y − a = (x − x̂)·y + x̂·(y − ŷ)` and
//!   `E = ρ_max‖y‖ + ‖x̂‖_max‖y − ŷ‖ + ε`, where `ρ_max` is the largest row
//!   residual `‖x − x̂‖` and `‖x̂‖_max` the largest reconstructed norm (both
//!   measured on insert) and `‖y − ŷ‖` is computed for each query. The smaller
//!   of the two bounds is used.
//! - f16: `E = Σ_d e_d |y_d| + ε`, with `e_d` the largest f16 rounding error.
//!
//! Each shard keeps the `C = max(4k, depth)` rows of highest `a` (the depth
//! is [`Params::rerank_min`], by default [`Params::depth_for_batch`] of the
//! dimension) and re-ranks them in f32, best `a` first, grouping them by subject. Let `s` be the score
//! a row must reach to matter: the larger of the shard's k-th subject score so
//! far (or the threshold while fewer than k subjects pass) and the k-th score
//! any other shard has reached for the query (shared through an atomic; k
//! subjects at or above it exist, so the global k-th score is at least that).
//! A row's exact score is at most `a + E`; for int8 it is also at most
//! `x̂·y + E_row`, where `x̂·y` is the row dequantised from its codes (in RAM)
//! against the unquantised query and `E_row = min(Σ_d e_d |y_d|, ρ_max‖y‖) + ε`
//! leaves out the query's rounding. Candidates are re-ranked in decreasing
//! order of the smaller bound; once it falls below `s` no later candidate can
//! enter the top k nor change a top subject's best template, and the re-rank
//! stops: on the face-like 100k gallery after about 65 rows per query over
//! four shards instead of 256, which matters when each re-ranked row is a
//! read from the spill file. A row that did not make
//! the candidate set has `a ≤ a_min` (the smallest kept score); when
//! `a_min + E < s` the answer is exact. Otherwise the shard is scanned again
//! for this query, keeping *every* row with `a ≥ s − E`, and those not yet
//! seen are re-ranked the same way: the depth adapts to the data and the
//! answer is exact in every case. The shards' exact top-k lists are merged;
//! ties are broken by subject key, then template id.

use crate::kernels::{self, BLOCK, QGROUP};
use crate::spill::{Scratch, SealedRows};
use crate::{Hit, Index, IndexError, Result, Storage};
use half::f16;
use rayon::prelude::*;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Where the f32 copies of the rows, read only by the exact re-rank of the
/// quantised storages, are kept. [`Storage::F32`] scans its f32 copy, so it
/// always keeps it in memory and ignores this choice.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RerankRows {
    /// In RAM: `4·dim` bytes per template on top of the scan codes.
    #[default]
    InMemory,
    /// In an unlinked temporary file per shard, each row sealed with
    /// AES-256-GCM under a key drawn at creation and held only in memory, so
    /// the file is unreadable once the process is gone and nothing is left
    /// behind even after a crash. RAM then holds the scan codes, ids and
    /// subject tables only; a search reads its re-rank candidates back with
    /// positioned reads (about 64 rows per shard and query with the default
    /// depth at 128-D) and an I/O or authentication failure is an error, never a
    /// wrong answer. Costs are measured in `docs/BENCHMARKS-index.md`.
    SealedFile {
        /// Directory of the files; the OS temporary directory when `None`.
        /// Choose one on a local disk: the re-rank reads are latency-bound.
        dir: Option<PathBuf>,
    },
}

/// The least first-pass depth of a batch of fewer than 8 probes, see
/// [`Params::depth_for_batch`].
pub const SMALL_BATCH_DEPTH: usize = 256;

/// Tuning constants of [`ExactIndex`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// Number of shards (`0`: twice the rayon thread count).
    pub shards: usize,
    /// Minimum first-pass candidate depth per shard; `0` (the default)
    /// picks it from the dimension and the batch size, see
    /// [`Params::depth_for_batch`]. The depth
    /// only trades speed: too shallow a first pass sends the shard-query to
    /// the adaptive second pass, which rescans the shard; the answer is
    /// exact either way.
    pub rerank_min: usize,
    /// Re-rank depth per shard as a multiple of k (the depth is the larger of
    /// the two).
    pub rerank_factor: usize,
    /// Gallery rows scanned per cache block when a batch of queries is served
    /// (the block stays in L2 while every query of the batch visits it).
    pub chunk_rows: usize,
    /// Int8 only: the per-dimension scales are refitted (and the shard
    /// re-encoded) whenever a shard reaches this many rows times a power of 2.
    pub calibrate_from: usize,
    /// Where the f32 re-rank rows live.
    pub rerank: RerankRows,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            shards: 0,
            rerank_min: 0,
            rerank_factor: 4,
            chunk_rows: 2048,
            calibrate_from: 256,
            rerank: RerankRows::InMemory,
        }
    }
}

impl Params {
    /// The first-pass depth used when `rerank_min` is `0`: `dim² / 512`
    /// within `64..=4096`, so 64 up to 182 dimensions, 128 at 256 and 512 at
    /// 512. The proven bound `E` grows with the dimension (more
    /// rounding terms) while the gap between the k-th score and the rest of
    /// the gallery does not, so more rows fall inside the k-th score's bound
    /// window: at 512-D a depth of 64 sent almost every shard-query to the
    /// full rescan, while at 128-D a deeper first pass only adds re-rank
    /// work (figures in `docs/BENCHMARKS-index.md`).
    pub fn depth_for(dim: usize) -> usize {
        (dim.saturating_mul(dim) / 512).clamp(64, 4096)
    }

    /// The first-pass depth a fresh index uses, with `rerank_min` at `0`,
    /// for a search of `queries` probes at once: [`Params::depth_for`], but
    /// at least [`SMALL_BATCH_DEPTH`] below 8 probes. Batches of 8 or more
    /// then learn theirs ([`ExactIndex::batch_depth`]).
    ///
    /// A small batch pays for each second pass with a full scan of the shard
    /// per probe, while a deeper first pass costs it next to nothing (its
    /// scan is bound by memory). On the face-shaped 1M x 128 gallery a depth
    /// of 64 sent 3,709 of 4,000 single-probe shard-queries to the second
    /// pass, and 256 sent 16, which halved the latency. A large batch
    /// shares one second pass among its probes and its scan is bound by
    /// compute, so there the better depth depends on the gallery.
    pub fn depth_for_batch(dim: usize, queries: usize) -> usize {
        Self::for_queries(Self::depth_for(dim), queries)
    }

    /// A batch depth `depth`, raised to [`SMALL_BATCH_DEPTH`] for fewer than
    /// 8 probes.
    fn for_queries(depth: usize, queries: usize) -> usize {
        if queries < kernels::QGROUP {
            depth.max(SMALL_BATCH_DEPTH)
        } else {
            depth
        }
    }
}

/// Memory held by an index, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryUsage {
    /// Bytes read by a scan: the scan codes plus per-row ids.
    pub scan: usize,
    /// The f32 re-rank copy in RAM (zero extra for [`Storage::F32`], whose
    /// scan copy is the f32 copy, and zero with [`RerankRows::SealedFile`],
    /// whose file is reported by [`ExactIndex::spill_bytes`]).
    pub rerank: usize,
    /// Subject tables and per-shard quantiser state (estimated).
    pub other: usize,
}

impl MemoryUsage {
    /// All of it.
    pub fn total(&self) -> usize {
        self.scan + self.rerank + self.other
    }
}

/// L2-normalises a vector, rejecting non-finite components and zero vectors.
pub fn normalize(v: &[f32]) -> Result<Vec<f32>> {
    let inv = 1.0 / norm(v)?;
    Ok(v.iter().map(|&x| (x as f64 * inv) as f32).collect())
}

/// The L2 norm, or the error [`normalize`] reports.
fn norm(v: &[f32]) -> Result<f64> {
    if v.iter().any(|x| !x.is_finite()) {
        return Err(IndexError::InvalidVector("non-finite component"));
    }
    let n2: f64 = v.iter().map(|&x| x as f64 * x as f64).sum();
    if n2 <= f64::MIN_POSITIVE {
        return Err(IndexError::InvalidVector("zero vector"));
    }
    Ok(n2.sqrt())
}

/// Exhaustive-scan index; see the module docs for the method.
///
/// `K` is the subject key (a `String`, a `u64`, the store's subject id...).
pub struct ExactIndex<K> {
    dim: usize,
    storage: Storage,
    params: Params,
    shards: Vec<RwLock<Shard<K>>>,
    /// Shard-queries that fell into the adaptive second pass (a diagnostic
    /// for choosing the first-pass depth).
    rescans: AtomicU64,
    /// The first-pass depth batches use, learned from their second passes
    /// (see [`ExactIndex::batch_depth`]); only grows.
    batch_depth: AtomicUsize,
}

/// Probes per step of a large batch: the batch depth is revised after each.
const BATCH_STEP: usize = 256;

/// End of a subject's row list in [`Shard::next`].
const NIL: u32 = u32::MAX;

/// A subject's rows form a list threaded through [`Shard::next`], newest
/// first: a `Vec` per subject cost about 25 B per template at five templates
/// a subject (its header, a heap block and the allocator's rounding), which
/// alone broke the 160 B/template budget at 128-D.
struct SubjectEntry {
    slot: u32,
    head: u32,
}

struct Shard<K> {
    dim: usize,
    groups: usize,
    storage: Storage,
    n: usize,
    /// The f32 rows, unless they are sealed in `sealed` (then empty).
    f32s: Vec<f32>,
    sealed: Option<SealedRows>,
    f16s: Vec<f16>,
    owner: Vec<u32>,
    /// The next (older) row of the same subject, or [`NIL`].
    next: Vec<u32>,
    tid: Vec<u64>,
    slots: Vec<Option<K>>,
    free_slots: Vec<u32>,
    subjects: HashMap<K, SubjectEntry>,
    scale: Vec<f32>,
    /// Largest `|x_d|` of the rows held, per dimension (the int8 refit's
    /// input); an upper bound only after a removal, until the next refit.
    amax: Vec<f32>,
    amax_exact: bool,
    /// Int8 codes and their error bookkeeping (f16 uses `q.err` only).
    q: Codes,
    calibrated_at: usize,
    calibrate_from: usize,
}

/// Packed int8 codes of a shard and the error measures their bound needs.
struct Codes {
    packed: Vec<u8>,
    /// Largest reconstruction error seen per dimension (int8 and f16).
    err: Vec<f32>,
    l1max: u32,
    /// Largest `‖x − x̂‖₂` of a row.
    resid_max: f64,
    /// Largest `‖x̂‖₂` of a row.
    xhat_max: f64,
}

impl Codes {
    fn new(dim: usize, groups: usize, rows: usize) -> Self {
        Codes {
            packed: vec![128; rows.div_ceil(BLOCK) * groups * 64],
            err: vec![0.0; dim],
            l1max: 0,
            resid_max: 0.0,
            xhat_max: 0.0,
        }
    }

    /// Quantises normalised row `x` as row `r` with `scale`.
    fn encode(&mut self, scale: &[f32], groups: usize, r: usize, x: &[f32]) {
        let mut q = vec![0i8; groups * 4];
        let mut l1 = 0u32;
        let (mut res2, mut xh2) = (0f64, 0f64);
        for (d, (&x, &s)) in x.iter().zip(scale).enumerate() {
            let v = (x / s).round().clamp(-127.0, 127.0);
            q[d] = v as i8;
            l1 += v.abs() as u32;
            let e = (x - s * v).abs();
            if e > self.err[d] {
                self.err[d] = e;
            }
            let xh = s as f64 * v as f64;
            res2 += (x as f64 - xh) * (x as f64 - xh);
            xh2 += xh * xh;
        }
        self.l1max = self.l1max.max(l1);
        self.resid_max = self.resid_max.max(res2.sqrt());
        self.xhat_max = self.xhat_max.max(xh2.sqrt());
        let need = (r / BLOCK + 1) * groups * 64;
        if self.packed.len() < need {
            self.packed.resize(need, 128);
        }
        kernels::pack_row(&mut self.packed, groups, r, &q);
    }
}

/// A candidate row with its approximate score.
#[derive(Clone, Copy)]
struct Cand {
    a: f32,
    row: u32,
}
impl PartialEq for Cand {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cand {
    // Reversed: the best score sorts first.
    fn cmp(&self, o: &Self) -> Ordering {
        o.a.total_cmp(&self.a).then(o.row.cmp(&self.row))
    }
}

/// Keeps the `cap` rows of highest approximate score at or above `floor`.
///
/// Rows above the cut are appended to a buffer, which is cut back to its
/// best `cap` (a selection, not a sort) whenever it reaches twice that: a
/// push costs O(1) amortised where a heap of `cap` paid a sift of
/// `log2(cap)` comparisons, which at 512-D (`cap` = 512) took a tenth of the
/// batch time.
struct Collector {
    cap: usize,
    floor: f32,
    buf: Vec<Cand>,
    /// The `cap`-th best score at the last cut-back, once there was one.
    kth: Option<f32>,
    /// A row at or above `floor` was dropped.
    overflowed: bool,
}

impl Collector {
    fn new(cap: usize, floor: f32) -> Self {
        Collector {
            cap,
            floor,
            buf: Vec::with_capacity(cap.saturating_mul(2).min(1 << 16)),
            kth: None,
            overflowed: false,
        }
    }
    /// Scores below this are not kept.
    #[inline]
    fn cut(&self) -> f32 {
        self.kth.map_or(self.floor, |k| k.max(self.floor))
    }
    /// Whether a row skipped below [`Collector::cut`] may have been above
    /// the floor.
    #[inline]
    fn full(&self) -> bool {
        self.kth.is_some()
    }
    #[inline]
    fn push(&mut self, a: f32, row: u32) {
        if a < self.floor {
            return;
        }
        if self.kth.is_some_and(|k| a < k) {
            self.overflowed = true;
            return;
        }
        self.buf.push(Cand { a, row });
        if self.buf.len() >= self.cap.saturating_mul(2) {
            self.cut_back();
        }
    }
    /// Keeps the best `cap` rows.
    fn cut_back(&mut self) {
        if self.buf.len() <= self.cap || self.cap == 0 {
            return;
        }
        // `Cand`'s order is reversed: the best rows sort first.
        self.buf.select_nth_unstable(self.cap - 1);
        self.buf.truncate(self.cap);
        self.kth = self.buf.iter().map(|c| c.a).min_by(f32::total_cmp);
        self.overflowed = true;
    }
    /// Notes that rows were skipped by the caller's fast path against `cut`.
    fn skipped(&mut self) {
        if self.full() {
            self.overflowed = true;
        }
    }
    /// The kept rows, the smallest kept score (every dropped row scored at
    /// most that), and whether any row at or above the floor was dropped.
    fn finish(mut self) -> (Vec<Cand>, f32, bool) {
        self.cut_back();
        let amin = self
            .buf
            .iter()
            .map(|c| c.a)
            .min_by(f32::total_cmp)
            .unwrap_or(f32::NEG_INFINITY);
        (self.buf, amin, self.overflowed)
    }
}

/// A query prepared for one shard's scan.
#[derive(Clone)]
struct Prepared {
    y: Vec<f32>,
    r: Vec<i8>,
    t: f32,
    sumr: i32,
    /// `E`: bounds `|a − x·y|` for the scan score `a`.
    bound: f32,
    /// Int8: bounds `|x̂·y − x·y|`, the error of the dequantised row against
    /// the unquantised query (no query rounding, so tighter than `bound`).
    row_bound: f32,
}

impl<K> ExactIndex<K>
where
    K: Clone + Eq + Hash + Ord + Send + Sync,
{
    /// An empty index of `dim`-dimensional vectors with default [`Params`].
    ///
    /// # Panics
    /// Never; a zero `dim` is accepted but every vector will then be rejected.
    /// Use [`ExactIndex::with_params`] for a checked constructor.
    pub fn new(dim: usize, storage: Storage) -> Self {
        let mut p = Params::default();
        if dim == 0 {
            p.shards = 1;
        }
        Self::build(dim.max(1), storage, p)
    }

    /// An empty index with explicit parameters. With
    /// [`RerankRows::SealedFile`] this creates the (unlinked) spill files, so
    /// it fails with [`IndexError::SpillIo`] when the directory is unusable.
    pub fn with_params(dim: usize, storage: Storage, params: Params) -> Result<Self> {
        if dim == 0 {
            return Err(IndexError::InvalidParameter("dim must be > 0"));
        }
        if params.chunk_rows == 0 {
            return Err(IndexError::InvalidParameter("chunk_rows must be > 0"));
        }
        let mut idx = Self::build(dim, storage, params);
        if let (RerankRows::SealedFile { dir }, false) =
            (&idx.params.rerank, storage == Storage::F32)
        {
            for shard in &mut idx.shards {
                let shard = shard.get_mut().unwrap_or_else(|e| e.into_inner());
                shard.sealed = Some(SealedRows::create(dir.as_deref(), dim)?);
            }
        }
        Ok(idx)
    }

    fn build(dim: usize, storage: Storage, mut params: Params) -> Self {
        if params.shards == 0 {
            params.shards = (2 * rayon::current_num_threads()).max(2);
        }
        params.chunk_rows = params.chunk_rows.div_ceil(BLOCK) * BLOCK;
        let shards = (0..params.shards)
            .map(|_| RwLock::new(Shard::new(dim, storage, params.calibrate_from)))
            .collect();
        ExactIndex {
            dim,
            storage,
            params,
            shards,
            rescans: AtomicU64::new(0),
            batch_depth: AtomicUsize::new(Params::depth_for(dim)),
        }
    }

    /// How many times, since the index was built, a shard's first-pass
    /// candidates could not settle a query's top k and the shard was
    /// rescanned for it (the adaptive second pass). Only speed depends on
    /// it; a high count means [`Params::rerank_min`] is too shallow for the
    /// data.
    pub fn second_passes(&self) -> u64 {
        self.rescans.load(AtomicOrdering::Relaxed)
    }

    /// The first-pass depth per shard that batches of 8 probes or more use
    /// now (with [`Params::rerank_min`] unset).
    ///
    /// It starts at [`Params::depth_for`] and doubles, up to 4096, after
    /// any step of a batch ([`BATCH_STEP`] probes) in which more than a
    /// quarter of the shard-queries needed the second pass. Which depth is
    /// cheaper depends on the gallery: on the synthetic bench gallery a depth
    /// of 64 serves 1M x 128 faster than 256 (second passes are rare), on
    /// the face-shaped one 256 is 40% faster (at 64 nine in ten
    /// shard-queries rescan). The answers do not depend on it.
    pub fn batch_depth(&self) -> usize {
        self.batch_depth.load(AtomicOrdering::Relaxed)
    }

    /// The first-pass depth for a search of `queries` probes at once.
    fn depth(&self, queries: usize) -> usize {
        if self.params.rerank_min != 0 {
            return self.params.rerank_min;
        }
        Params::for_queries(self.batch_depth(), queries)
    }

    /// The storage kind.
    pub fn storage(&self) -> Storage {
        self.storage
    }

    /// The parameters in force.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Bytes of the sealed spill files ([`RerankRows::SealedFile`]): held by
    /// the file system (disk or page cache), not by this process; zero when
    /// the re-rank rows are in memory.
    pub fn spill_bytes(&self) -> u64 {
        (0..self.shards.len())
            .map(|i| {
                self.read(i)
                    .sealed
                    .as_ref()
                    .map_or(0, SealedRows::file_bytes)
            })
            .sum()
    }

    fn shard_of(&self, key: &K) -> usize {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        (h.finish() % self.shards.len() as u64) as usize
    }

    fn read(&self, i: usize) -> RwLockReadGuard<'_, Shard<K>> {
        // A panic while a shard was written leaves it poisoned; its data are
        // still well-formed vectors (every mutation keeps lengths in step).
        self.shards[i].read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self, i: usize) -> RwLockWriteGuard<'_, Shard<K>> {
        self.shards[i].write().unwrap_or_else(|e| e.into_inner())
    }

    fn check_dim(&self, v: &[f32]) -> Result<()> {
        if v.len() != self.dim {
            return Err(IndexError::DimensionMismatch {
                expected: self.dim,
                got: v.len(),
            });
        }
        Ok(())
    }

    /// Adds many templates at once, shards in parallel (the fast way to build).
    /// Either all are added or, on the first error (an invalid vector, a
    /// duplicate, a spill file that cannot be written), none. The shards that
    /// receive rows stay write-locked until the whole batch is in.
    pub fn extend(&self, items: &[(K, u64, &[f32])]) -> Result<()> {
        let mut per_shard: Vec<Vec<usize>> = vec![Vec::new(); self.shards.len()];
        for (i, (key, _, v)) in items.iter().enumerate() {
            self.check_dim(v)?;
            norm(v)?;
            per_shard[self.shard_of(key)].push(i);
        }
        // Locks are taken in shard order; nothing else holds two at once.
        let mut guards: Vec<(RwLockWriteGuard<'_, Shard<K>>, Vec<usize>)> = per_shard
            .into_iter()
            .enumerate()
            .filter(|(_, rows)| !rows.is_empty())
            .map(|(s, rows)| (self.write(s), rows))
            .collect();
        let mut work: Vec<(&mut Shard<K>, usize, Vec<usize>)> = guards
            .iter_mut()
            .map(|(g, rows)| {
                let n0 = g.n;
                (&mut **g, n0, std::mem::take(rows))
            })
            .collect();
        let fill = |shard: &mut Shard<K>, rows: &[usize]| -> Result<()> {
            for &i in rows {
                let (key, tid, v) = &items[i];
                shard.add(key.clone(), *tid, &normalize(v)?, true)?;
            }
            shard.finish_bulk()
        };
        // Scoped threads, not the rayon pool: this thread holds the write
        // locks while it waits, and a rayon wait could steal a task (a search
        // of this index from an outer parallel loop) that blocks on them.
        let failed = std::thread::scope(|sc| {
            let handles: Vec<_> = work
                .iter_mut()
                .map(|(shard, _, rows)| {
                    let fill = &fill;
                    sc.spawn(move || fill(shard, rows))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect::<Vec<Result<()>>>()
        })
        .into_iter()
        .find_map(|r| r.err());
        if let Some(e) = failed {
            for (shard, n0, _) in work {
                shard.truncate_to(n0);
            }
            return Err(e);
        }
        Ok(())
    }

    /// Memory held, by kind.
    pub fn memory(&self) -> MemoryUsage {
        let mut m = MemoryUsage::default();
        for i in 0..self.shards.len() {
            let s = self.read(i);
            let ids = s.tid.capacity() * 8 + s.owner.capacity() * 4;
            let codes = match self.storage {
                Storage::F32 => s.f32s.capacity() * 4,
                Storage::F16 => s.f16s.capacity() * 2,
                Storage::Int8 => s.q.packed.capacity(),
            };
            m.scan += ids + codes;
            if self.storage != Storage::F32 && s.sealed.is_none() {
                m.rerank += s.f32s.capacity() * 4;
            }
            // Hash map bucket: key, entry and a control byte.
            m.other += s.subjects.capacity() * (std::mem::size_of::<(K, SubjectEntry)>() + 1)
                + s.slots.capacity() * std::mem::size_of::<Option<K>>()
                + s.next.capacity() * 4
                + s.scale.len() * 8;
        }
        m
    }

    /// Number of distinct subjects.
    pub fn subjects(&self) -> usize {
        (0..self.shards.len())
            .map(|i| self.read(i).subjects.len())
            .sum()
    }

    /// Scans every shard for a block of normalised queries.
    fn search_normalized(&self, ys: &[f32], k: usize, threshold: f32) -> Result<Vec<Vec<Hit<K>>>> {
        let nq = ys.len() / self.dim;
        if k == 0 || nq == 0 {
            return Ok(vec![Vec::new(); nq]);
        }
        let mut out = Vec::with_capacity(nq);
        for step in ys.chunks(BATCH_STEP * self.dim) {
            out.extend(self.search_step(step, k, threshold)?);
        }
        Ok(out)
    }

    /// One step of [`ExactIndex::search_normalized`], which then revises
    /// the batch depth from its second passes.
    fn search_step(&self, ys: &[f32], k: usize, threshold: f32) -> Result<Vec<Vec<Hit<K>>>> {
        let nq = ys.len() / self.dim;
        let depth = self.depth(nq);
        let passes = AtomicU64::new(0);
        // Each query's best k-th score so far, shared by the shards so that
        // one shard's find lets the others stop re-ranking earlier.
        let floors: Vec<AtomicU32> = (0..nq)
            .map(|_| AtomicU32::new(ordered(threshold)))
            .collect();
        let per_shard: Vec<Vec<Vec<Hit<K>>>> = (0..self.shards.len())
            .into_par_iter()
            .map(|s| {
                self.read(s)
                    .search(ys, k, threshold, &self.params, depth, &floors, &passes)
            })
            .collect::<Result<_>>()?;
        let passes = passes.into_inner();
        self.rescans.fetch_add(passes, AtomicOrdering::Relaxed);
        let shard_queries = (nq * self.shards.len()) as u64;
        if nq >= QGROUP && self.params.rerank_min == 0 && passes * 4 > shard_queries {
            let grown = depth.saturating_mul(2).min(4096);
            self.batch_depth.fetch_max(grown, AtomicOrdering::Relaxed);
        }
        let mut out: Vec<Vec<Hit<K>>> = vec![Vec::new(); nq];
        for lists in per_shard {
            for (q, hits) in lists.into_iter().enumerate() {
                out[q].extend(hits);
            }
        }
        for hits in &mut out {
            hits.sort_by(hit_order);
            hits.truncate(k);
        }
        Ok(out)
    }
}

pub(crate) fn hit_order<K: Ord>(a: &Hit<K>, b: &Hit<K>) -> Ordering {
    b.similarity
        .total_cmp(&a.similarity)
        .then_with(|| a.subject.cmp(&b.subject))
        .then(a.template_id.cmp(&b.template_id))
}

impl<K> Index<K> for ExactIndex<K>
where
    K: Clone + Eq + Hash + Ord + Send + Sync,
{
    fn dim(&self) -> usize {
        self.dim
    }

    fn add(&self, subject: K, template_id: u64, vector: &[f32]) -> Result<()> {
        self.check_dim(vector)?;
        let v = normalize(vector)?;
        let s = self.shard_of(&subject);
        self.write(s).add(subject, template_id, &v, false)
    }

    fn remove_subject(&self, subject: &K) -> usize {
        let s = self.shard_of(subject);
        self.write(s).remove(subject)
    }

    fn replace_subject(&self, subject: K, templates: &[(u64, &[f32])]) -> Result<()> {
        let mut vs = Vec::with_capacity(templates.len());
        for (i, (tid, v)) in templates.iter().enumerate() {
            self.check_dim(v)?;
            if templates[..i].iter().any(|(t, _)| t == tid) {
                return Err(IndexError::DuplicateTemplate { template_id: *tid });
            }
            vs.push(normalize(v)?);
        }
        let s = self.shard_of(&subject);
        let mut shard = self.write(s);
        shard.remove(&subject);
        for ((tid, _), v) in templates.iter().zip(&vs) {
            if let Err(e) = shard.add(subject.clone(), *tid, v, false) {
                // Never leave a half-replaced subject: it goes entirely.
                shard.remove(&subject);
                return Err(e);
            }
        }
        Ok(())
    }

    fn search_batch(&self, queries: &[f32], k: usize, threshold: f32) -> Result<Vec<Vec<Hit<K>>>> {
        if !queries.len().is_multiple_of(self.dim) {
            return Err(IndexError::DimensionMismatch {
                expected: self.dim,
                got: queries.len() % self.dim,
            });
        }
        if threshold.is_nan() {
            return Err(IndexError::InvalidParameter("threshold is NaN"));
        }
        let mut ys = Vec::with_capacity(queries.len());
        for q in queries.chunks_exact(self.dim) {
            ys.extend(normalize(q)?);
        }
        self.search_normalized(&ys, k, threshold)
    }

    fn len(&self) -> usize {
        (0..self.shards.len()).map(|i| self.read(i).n).sum()
    }
}

impl<K> Shard<K>
where
    K: Clone + Eq + Hash + Ord,
{
    fn new(dim: usize, storage: Storage, calibrate_from: usize) -> Self {
        let groups = dim.div_ceil(4);
        // Before any data: a scale that covers ±4/√D, about 4σ of a random
        // unit vector's component. The first refit replaces it.
        let s0 = (4.0 / (dim as f32).sqrt()).min(1.0) / 127.0;
        Shard {
            dim,
            groups,
            storage,
            n: 0,
            f32s: Vec::new(),
            sealed: None,
            f16s: Vec::new(),
            owner: Vec::new(),
            next: Vec::new(),
            tid: Vec::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            subjects: HashMap::new(),
            scale: vec![s0; dim],
            amax: vec![0.0; dim],
            amax_exact: true,
            q: Codes::new(dim, groups, 0),
            calibrated_at: 0,
            calibrate_from: calibrate_from.max(1),
        }
    }

    /// Row `r` of the in-memory f32 copy (empty when the rows are sealed).
    fn row(&self, r: usize) -> &[f32] {
        self.f32s
            .get(r * self.dim..(r + 1) * self.dim)
            .unwrap_or(&[])
    }

    /// Calls `f(r, row)` for every row in order, wherever the rows live.
    fn each_row(&self, mut f: impl FnMut(usize, &[f32])) -> Result<()> {
        match &self.sealed {
            Some(s) => s.for_each(&self.tid[..self.n], f),
            None => {
                for (r, x) in self.f32s.chunks_exact(self.dim).take(self.n).enumerate() {
                    f(r, x);
                }
                Ok(())
            }
        }
    }

    /// Refits the int8 scales to the rows held and re-encodes them. Nothing
    /// changes unless every row could be read.
    fn calibrate(&mut self) -> Result<()> {
        let (dim, groups) = (self.dim, self.groups);
        // The running maximum saves a pass over the rows (a file read when
        // they are sealed) unless a removal may have lowered it.
        let mut m = self.amax.clone();
        if !self.amax_exact {
            m.iter_mut().for_each(|m| *m = 0.0);
            self.each_row(|_, x| {
                for (m, &x) in m.iter_mut().zip(x) {
                    *m = m.max(x.abs());
                }
            })?;
        }
        let scale: Vec<f32> = m
            .iter()
            .map(|&m| if m > 0.0 { m / 127.0 } else { 1.0 / 127.0 })
            .collect();
        let mut q = Codes::new(dim, groups, self.n);
        self.each_row(|r, x| q.encode(&scale, groups, r, x))?;
        self.scale = scale;
        self.q = q;
        self.amax = m;
        self.amax_exact = true;
        self.calibrated_at = self.n;
        Ok(())
    }

    /// After a bulk insert (whose int8 rows were not encoded yet): refit the
    /// int8 scales to everything held and release spare capacity.
    fn finish_bulk(&mut self) -> Result<()> {
        if let Some(s) = &mut self.sealed {
            s.flush()?;
        }
        if self.storage == Storage::Int8 && self.n > 0 {
            self.calibrate()?;
        }
        self.f32s.shrink_to_fit();
        self.f16s.shrink_to_fit();
        self.q.packed.shrink_to_fit();
        self.owner.shrink_to_fit();
        self.next.shrink_to_fit();
        self.tid.shrink_to_fit();
        Ok(())
    }

    /// Adds a normalised row. With `bulk` the int8 code is left for
    /// [`Shard::finish_bulk`] (the caller holds the lock until then). On error
    /// the shard is unchanged.
    fn add(&mut self, key: K, template_id: u64, v: &[f32], bulk: bool) -> Result<()> {
        if let Some(e) = self.subjects.get(&key) {
            if self
                .rows_from(e.head)
                .any(|r| self.tid.get(r as usize) == Some(&template_id))
            {
                return Err(IndexError::DuplicateTemplate { template_id });
            }
        }
        let row = self.n;
        let row32 = u32::try_from(row).map_err(|_| IndexError::Capacity)?;
        match &mut self.sealed {
            Some(s) => s.push(template_id, v, bulk)?,
            None => self.f32s.extend_from_slice(v),
        }
        for (m, &x) in self.amax.iter_mut().zip(v) {
            *m = m.max(x.abs());
        }
        let (slot, older) = match self.subjects.get_mut(&key) {
            Some(e) => {
                let older = e.head;
                e.head = row32;
                (e.slot, older)
            }
            None => {
                let slot = match self.free_slots.pop() {
                    Some(s) => {
                        self.slots[s as usize] = Some(key.clone());
                        s
                    }
                    None => {
                        self.slots.push(Some(key.clone()));
                        (self.slots.len() - 1) as u32
                    }
                };
                self.subjects
                    .insert(key, SubjectEntry { slot, head: row32 });
                (slot, NIL)
            }
        };
        self.owner.push(slot);
        self.next.push(older);
        self.tid.push(template_id);
        self.n += 1;
        match self.storage {
            Storage::F32 => {}
            Storage::F16 => {
                for (d, &x) in v.iter().enumerate() {
                    let h = f16::from_f32(x);
                    let e = (x - h.to_f32()).abs();
                    if e > self.q.err[d] {
                        self.q.err[d] = e;
                    }
                    self.f16s.push(h);
                }
            }
            Storage::Int8 if bulk => {}
            Storage::Int8 => {
                let refit = self.n >= self.calibrate_from && self.n >= 2 * self.calibrated_at;
                // A refit that cannot read the rows only loses tightness:
                // the row is then coded with the scales in force.
                if !refit || self.calibrate().is_err() {
                    self.q.encode(&self.scale, self.groups, row, v);
                }
            }
        }
        Ok(())
    }

    /// Drops rows `n0..` (all added after `n0`, so each is the last row of
    /// its subject's list), undoing an unfinished bulk insert.
    fn truncate_to(&mut self, n0: usize) {
        self.amax_exact = false;
        for r in (n0..self.n).rev() {
            let slot = self.owner[r];
            let Some(key) = self.slots[slot as usize].clone() else {
                continue;
            };
            // Row `r` is the newest row left, so its subject's list head.
            let older = self.next[r];
            self.relink(slot as usize, r as u32, older);
            if let Some(e) = self.subjects.get_mut(&key) {
                if e.head == NIL {
                    self.subjects.remove(&key);
                    self.slots[slot as usize] = None;
                    self.free_slots.push(slot);
                }
            }
        }
        let dim = self.dim;
        self.n = self.n.min(n0);
        self.f32s.truncate(self.n * dim);
        if let Some(s) = &mut self.sealed {
            s.truncate(self.n);
        }
        self.f16s.truncate(self.n * dim);
        self.owner.truncate(self.n);
        self.next.truncate(self.n);
        self.tid.truncate(self.n);
        if self.storage == Storage::Int8 {
            // Rows past `n` never reach a score (the scan stops at `n`);
            // longer packed buffers are only trimmed.
            let keep = self.n.div_ceil(BLOCK) * self.groups * 64;
            if self.q.packed.len() > keep {
                self.q.packed.truncate(keep);
            }
        }
    }

    /// A subject's rows, newest first, from its list head.
    fn rows_from(&self, head: u32) -> impl Iterator<Item = u32> + '_ {
        // A list is never longer than the shard; the bound keeps a broken
        // link from looping.
        std::iter::successors((head != NIL).then_some(head), |&r| {
            self.next.get(r as usize).copied().filter(|&x| x != NIL)
        })
        .take(self.n)
    }

    /// Points the link of subject `slot` that reaches row `from` (its head or
    /// the newer row's `next`) at `to`: the row's new place after a move, or
    /// the row after it when it is dropped.
    fn relink(&mut self, slot: usize, from: u32, to: u32) {
        let Some(Some(k)) = self.slots.get(slot) else {
            return;
        };
        let Some(e) = self.subjects.get_mut(k) else {
            return;
        };
        if e.head == from {
            e.head = to;
            return;
        }
        let mut x = e.head;
        for _ in 0..self.n {
            let Some(nx) = self.next.get_mut(x as usize) else {
                return;
            };
            if *nx == from {
                *nx = to;
                return;
            }
            x = *nx;
        }
    }

    fn remove(&mut self, key: &K) -> usize {
        let Some(entry) = self.subjects.remove(key) else {
            return 0;
        };
        self.slots[entry.slot as usize] = None;
        self.free_slots.push(entry.slot);
        let mut rows: Vec<u32> = self.rows_from(entry.head).collect();
        // Highest first, so the row moved into a hole never belongs to the
        // subject being removed (its higher rows are gone already).
        rows.sort_unstable_by(|a, b| b.cmp(a));
        for &r in &rows {
            self.swap_remove(r as usize);
        }
        rows.len()
    }

    /// Moves the last row into `r` and shrinks by one.
    fn swap_remove(&mut self, r: usize) {
        self.amax_exact = false;
        let last = self.n - 1;
        let dim = self.dim;
        if let Some(s) = &mut self.sealed {
            // On failure the spill marks itself broken: this shard's searches
            // then fail instead of re-ranking against the wrong row.
            s.swap_remove(r, self.tid[last]);
        }
        if r != last {
            if self.sealed.is_none() {
                self.f32s.copy_within(last * dim..(last + 1) * dim, r * dim);
            }
            match self.storage {
                Storage::F32 => {}
                Storage::F16 => self.f16s.copy_within(last * dim..(last + 1) * dim, r * dim),
                Storage::Int8 => kernels::move_row(&mut self.q.packed, self.groups, last, r),
            }
            self.owner[r] = self.owner[last];
            self.tid[r] = self.tid[last];
            self.next[r] = self.next[last];
            self.relink(self.owner[r] as usize, last as u32, r as u32);
        }
        self.f32s.truncate(last * dim);
        if self.storage == Storage::F16 {
            self.f16s.truncate(last * dim);
        }
        self.owner.truncate(last);
        self.next.truncate(last);
        self.tid.truncate(last);
        self.n = last;
        if self.storage == Storage::Int8 {
            self.q
                .packed
                .truncate(last.div_ceil(BLOCK) * self.groups * 64);
        }
    }

    fn prepare(&self, y: &[f32]) -> Prepared {
        let dim = self.dim;
        let eps = 1e-5 + 16.0 * dim as f32 * f32::EPSILON;
        match self.storage {
            Storage::F32 => Prepared {
                y: y.to_vec(),
                r: Vec::new(),
                t: 0.0,
                sumr: 0,
                bound: 0.0,
                row_bound: 0.0,
            },
            Storage::F16 => {
                let e: f32 = (0..dim).map(|d| self.q.err[d] * y[d].abs()).sum();
                Prepared {
                    y: y.to_vec(),
                    r: Vec::new(),
                    t: 0.0,
                    sumr: 0,
                    bound: e + eps,
                    row_bound: e + eps,
                }
            }
            Storage::Int8 => {
                let z: Vec<f32> = (0..dim).map(|d| self.scale[d] * y[d]).collect();
                let zmax = z.iter().fold(0f32, |m, v| m.max(v.abs()));
                let t = if zmax > 0.0 { zmax / 127.0 } else { 1.0 };
                let mut r = vec![0i8; self.groups * 4];
                let mut sumr = 0i32;
                for d in 0..dim {
                    let v = (z[d] / t).round().clamp(-127.0, 127.0);
                    r[d] = v as i8;
                    sumr += v as i32;
                }
                // Two valid bounds; keep the smaller (see the module docs).
                let e: f32 = (0..dim).map(|d| self.q.err[d] * y[d].abs()).sum();
                let per_dim = e + 0.5 * t * self.q.l1max as f32 * (1.0 + 1e-3);
                let (mut dy2, mut y2) = (0f64, 0f64);
                for d in 0..dim {
                    let yhat = t as f64 * r[d] as f64 / self.scale[d] as f64;
                    dy2 += (y[d] as f64 - yhat).powi(2);
                    y2 += (y[d] as f64).powi(2);
                }
                let cs =
                    (self.q.resid_max * y2.sqrt() + self.q.xhat_max * dy2.sqrt()) * (1.0 + 1e-6);
                let bound = per_dim.min(cs as f32) + eps;
                let row = (self.q.resid_max * y2.sqrt() * (1.0 + 1e-6)) as f32;
                Prepared {
                    y: y.to_vec(),
                    r,
                    t,
                    sumr,
                    bound,
                    row_bound: e.min(row) + eps,
                }
            }
        }
    }

    /// Approximate scores of rows `[r0, r1)` for every query, into collectors.
    fn scan(&self, qs: &[Prepared], cols: &mut [Collector], r0: usize, r1: usize) {
        let dim = self.dim;
        match self.storage {
            Storage::F32 => {
                for (q, c) in qs.iter().zip(cols.iter_mut()) {
                    for r in r0..r1 {
                        c.push(kernels::dot_f32(self.row(r), &q.y), r as u32);
                    }
                }
            }
            Storage::F16 => {
                for (q, c) in qs.iter().zip(cols.iter_mut()) {
                    for r in r0..r1 {
                        c.push(
                            kernels::dot_f16(&self.f16s[r * dim..(r + 1) * dim], &q.y),
                            r as u32,
                        );
                    }
                }
            }
            Storage::Int8 => {
                // r0 is a multiple of BLOCK; the last block may be partial.
                let bb = self.groups * 64;
                let (b0, b1) = (r0 / BLOCK, r1.div_ceil(BLOCK));
                let blocks = &self.q.packed[b0 * bb..b1 * bb];
                let nb = b1 - b0;
                let dp = self.groups * 4;
                let mut raw = vec![0i32; 8 * nb * BLOCK];
                let mut qbuf: Vec<i8> = Vec::with_capacity(8 * dp);
                for (qg, cg) in qs.chunks(8).zip(cols.chunks_mut(8)) {
                    qbuf.clear();
                    for q in qg {
                        qbuf.extend_from_slice(&q.r);
                    }
                    if let (Ok(qg8), Ok(cg8)) = (
                        <&[Prepared; QGROUP]>::try_from(qg),
                        <&mut [Collector; QGROUP]>::try_from(&mut *cg),
                    ) {
                        self.scan_group(qg8, cg8, &qbuf, r0, r1);
                        continue;
                    }
                    let out = &mut raw[..qg.len() * nb * BLOCK];
                    kernels::i8_scores(blocks, self.groups, &qbuf, out);
                    for ((q, c), scores) in qg
                        .iter()
                        .zip(cg.iter_mut())
                        .zip(out.chunks_exact(nb * BLOCK))
                    {
                        let off = 128 * q.sumr;
                        let mut icut = int_cut(c.cut(), q.t, off);
                        for (b, blk) in scores.chunks_exact(BLOCK).enumerate() {
                            if blk.iter().all(|&v| v < icut) {
                                c.skipped();
                                continue;
                            }
                            let base = r0 + b * BLOCK;
                            for (i, &v) in blk.iter().enumerate() {
                                let row = base + i;
                                if row >= r1 {
                                    break;
                                }
                                if v >= icut {
                                    c.push(q.t * (v - off) as f32, row as u32);
                                } else {
                                    c.skipped();
                                }
                            }
                            icut = int_cut(c.cut(), q.t, off);
                        }
                    }
                }
            }
        }
    }

    /// [`Shard::scan`] of int8 rows `[r0, r1)` for a full group of queries
    /// (`qbuf` their codes, one after the other): the kernel tells which
    /// queries a block may matter to, so only those read its scores.
    fn scan_group(
        &self,
        qs: &[Prepared; QGROUP],
        cols: &mut [Collector; QGROUP],
        qbuf: &[i8],
        r0: usize,
        r1: usize,
    ) {
        let bb = self.groups * 64;
        let offs: [i32; QGROUP] = std::array::from_fn(|i| 128 * qs[i].sumr);
        let mut cuts: [i32; QGROUP] =
            std::array::from_fn(|i| int_cut(cols[i].cut(), qs[i].t, offs[i]));
        // Queries whose collector is full: a block skipped for one of them
        // dropped rows above its floor (what `Collector::skipped` records).
        let mut full: u8 = 0;
        for (i, c) in cols.iter().enumerate() {
            full |= u8::from(c.full()) << i;
        }
        let mut dropped: u8 = 0;
        let mut out = [0i32; QGROUP * BLOCK];
        let mut rows = [0u16; QGROUP];
        for b in r0 / BLOCK..r1.div_ceil(BLOCK) {
            let Some(block) = self.q.packed.get(b * bb..(b + 1) * bb) else {
                break;
            };
            let mask = kernels::i8_block8(block, self.groups, qbuf, &cuts, &mut out, &mut rows);
            dropped |= !mask & full;
            if mask == 0 {
                continue;
            }
            // Rows past `r1` (the padding of a last, partial block) never count.
            let live = u16::MAX >> (BLOCK - (r1 - b * BLOCK).min(BLOCK));
            for (i, ((q, c), scores)) in qs
                .iter()
                .zip(cols.iter_mut())
                .zip(out.chunks_exact(BLOCK))
                .enumerate()
            {
                if mask & (1 << i) == 0 {
                    continue;
                }
                let m = rows[i] & live;
                if m != live && full & (1 << i) != 0 {
                    dropped |= 1 << i;
                }
                // Only the rows that reached the cut, lowest first.
                let mut bits = m;
                while bits != 0 {
                    let r = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    c.push(q.t * (scores[r] - offs[i]) as f32, (b * BLOCK + r) as u32);
                }
                cuts[i] = int_cut(c.cut(), q.t, offs[i]);
                full |= u8::from(c.full()) << i;
            }
        }
        for (i, c) in cols.iter_mut().enumerate() {
            if dropped & (1 << i) != 0 {
                c.overflowed = true;
            }
        }
    }

    /// Scans for every query of the block, then re-ranks each query's
    /// candidates lazily, best approximate score first: a candidate whose
    /// upper bound `a + E` falls below the score a row must reach to matter
    /// (this shard's k-th subject so far, or `floors[q]`, the best k-th score
    /// any shard has published for the query) ends the re-rank, as every
    /// later candidate is bounded lower still.
    // One private call site; a struct for its arguments would only rename them.
    #[allow(clippy::too_many_arguments)]
    fn search(
        &self,
        ys: &[f32],
        k: usize,
        threshold: f32,
        p: &Params,
        depth: usize,
        floors: &[AtomicU32],
        rescans: &AtomicU64,
    ) -> Result<Vec<Vec<Hit<K>>>> {
        let dim = self.dim;
        let nq = ys.len() / dim;
        if self.n == 0 {
            return Ok(vec![Vec::new(); nq]);
        }
        let qs: Vec<Prepared> = ys.chunks_exact(dim).map(|y| self.prepare(y)).collect();
        let cap = (p.rerank_factor.saturating_mul(k)).max(depth);
        let mut cols: Vec<Collector> = qs
            .iter()
            .map(|q| Collector::new(cap, threshold - q.bound))
            .collect();
        let mut r0 = 0;
        while r0 < self.n {
            let r1 = (r0 + p.chunk_rows).min(self.n);
            self.scan(&qs, &mut cols, r0, r1);
            r0 = r1;
        }
        let mut scratch = self.sealed.as_ref().map(SealedRows::scratch);
        let mut tops = Vec::with_capacity(nq);
        // Queries whose first-pass depth did not settle the top k, with the
        // score a row must reach: they are scanned again together, so that
        // a batch's second passes share one pass over the shard too.
        let mut again: Vec<(usize, f32)> = Vec::new();
        for (i, ((q, c), floor)) in qs.iter().zip(cols).zip(floors).enumerate() {
            let (cands, amin, overflowed) = c.finish();
            let mut top = TopK::new(k, threshold);
            let mut done = HashSet::new();
            self.rerank(q, cands, &mut top, &mut done, floor, &mut scratch)?;
            let needed = top.needed.max(load_floor(floor));
            if overflowed && amin + q.bound >= needed {
                again.push((i, needed));
            }
            tops.push((top, done));
        }
        if !again.is_empty() {
            // Adaptive depth: every row whose bound reaches `needed`.
            rescans.fetch_add(again.len() as u64, AtomicOrdering::Relaxed);
            let sub: Vec<Prepared> = again.iter().map(|&(i, _)| qs[i].clone()).collect();
            let mut all: Vec<Collector> = again
                .iter()
                .zip(&sub)
                .map(|(&(_, needed), q)| Collector::new(usize::MAX, needed - q.bound))
                .collect();
            let mut r0 = 0;
            while r0 < self.n {
                let r1 = (r0 + p.chunk_rows).min(self.n);
                self.scan(&sub, &mut all, r0, r1);
                r0 = r1;
            }
            for ((&(i, _), c), q) in again.iter().zip(all).zip(&sub) {
                let (top, done) = &mut tops[i];
                self.rerank(q, c.finish().0, top, done, &floors[i], &mut scratch)?;
            }
        }
        Ok(tops
            .into_iter()
            .map(|(top, _)| top.into_hits(&self.slots))
            .collect())
    }

    /// An upper bound on candidate `c`'s exact score. For int8 the row is
    /// also dequantised from the codes in RAM and scored against the f32
    /// query, which removes the query's rounding from the bound: fewer rows
    /// need the exact re-rank (each a file read when the rows are sealed).
    fn upper(&self, q: &Prepared, c: &Cand) -> f32 {
        let by_scan = c.a + q.bound;
        if self.storage != Storage::Int8 {
            return by_scan;
        }
        let r = c.row as usize;
        let base = (r / BLOCK) * self.groups * 64 + (r % BLOCK) * 4;
        let Some(block) = self.q.packed.get(base..) else {
            return by_scan;
        };
        let mut b = 0f64;
        for (d, (&y, &s)) in q.y.iter().zip(&self.scale).enumerate() {
            let code = block
                .get((d / 4) * 64 + d % 4)
                .map_or(0, |&v| v as i32 - 128);
            b += (s * code as f32) as f64 * y as f64;
        }
        by_scan.min(b as f32 + q.row_bound)
    }

    /// Exact scores of `cands` (best upper bound first) into `top`,
    /// skipping rows in `done`, until the bound shows no later row matters.
    /// Sealed rows are read back one positioned read each; a read or
    /// authentication failure fails the search.
    fn rerank(
        &self,
        q: &Prepared,
        cands: Vec<Cand>,
        top: &mut TopK,
        done: &mut HashSet<u32>,
        floor: &AtomicU32,
        scratch: &mut Option<Scratch>,
    ) -> Result<()> {
        // Best scan score first, so the top k fills with likely winners and
        // the bar rises early. A candidate's bound `a + E` falls with `a`, so
        // once it misses the bar every later candidate does too. Sealed rows
        // are a file read each, so they first face the tighter bound of their
        // dequantised codes (a dot product over the codes in RAM); rows in
        // RAM skip it, as the exact f32 dot product costs less than that.
        let bar = |top: &TopK| top.needed.max(load_floor(floor));
        let mut order: Vec<Cand> = cands
            .into_iter()
            .filter(|c| c.a + q.bound >= bar(top) && !done.contains(&c.row))
            .collect();
        order.sort_unstable();
        for c in order {
            let needed = bar(top);
            if c.a + q.bound < needed {
                break;
            }
            if self.sealed.is_some() && self.upper(q, &c) < needed {
                continue;
            }
            if !done.insert(c.row) {
                continue;
            }
            let r = c.row as usize;
            let s = match (&self.sealed, scratch.as_mut()) {
                (Some(file), Some(sc)) => kernels::dot_f32(file.read(r, self.tid[r], sc)?, &q.y),
                _ => kernels::dot_f32(self.row(r), &q.y),
            };
            if top.offer(self.owner[r], self.tid[r], s) {
                floor.fetch_max(ordered(top.needed), AtomicOrdering::Relaxed);
            }
        }
        Ok(())
    }
}

/// The best template of each subject re-ranked so far, and the score a row
/// must reach to change the top k.
struct TopK {
    k: usize,
    threshold: f32,
    best: HashMap<u32, (f32, u64)>,
    /// The k-th best subject score, or the threshold while fewer than k
    /// subjects pass it; it only grows.
    needed: f32,
}

impl TopK {
    fn new(k: usize, threshold: f32) -> Self {
        TopK {
            k,
            threshold,
            best: HashMap::new(),
            needed: threshold,
        }
    }

    /// Records exact score `s` of template `t` of subject slot `slot`;
    /// returns whether `needed` rose.
    fn offer(&mut self, slot: u32, t: u64, s: f32) -> bool {
        if s < self.threshold {
            return false;
        }
        let e = self.best.entry(slot).or_insert((s, t));
        if s > e.0 || (s == e.0 && t < e.1) {
            *e = (s, t);
        }
        if s < self.needed || self.best.len() < self.k {
            return false;
        }
        let mut v: Vec<f32> = self.best.values().map(|e| e.0).collect();
        let (_, kth, _) = v.select_nth_unstable_by(self.k - 1, |a, b| b.total_cmp(a));
        let rose = *kth > self.needed;
        self.needed = self.needed.max(*kth);
        rose
    }

    fn into_hits<K: Clone + Ord>(self, slots: &[Option<K>]) -> Vec<Hit<K>> {
        let mut hits: Vec<Hit<K>> = self
            .best
            .into_iter()
            .filter_map(|(slot, (s, t))| {
                slots.get(slot as usize)?.as_ref().map(|key| Hit {
                    subject: key.clone(),
                    template_id: t,
                    similarity: s,
                })
            })
            .collect();
        hits.sort_by(hit_order);
        hits.truncate(self.k);
        hits
    }
}

/// Maps an f32 to a u32 of the same order (for an atomic maximum).
fn ordered(x: f32) -> u32 {
    let b = x.to_bits();
    if b >> 31 == 1 {
        !b
    } else {
        b | 0x8000_0000
    }
}

fn load_floor(floor: &AtomicU32) -> f32 {
    let u = floor.load(AtomicOrdering::Relaxed);
    f32::from_bits(if u >> 31 == 1 { u & 0x7fff_ffff } else { !u })
}

/// The smallest raw int8 sum that may reach approximate score `cut`, lowered
/// by one unit against rounding (the exact test follows in f32).
#[inline]
fn int_cut(cut: f32, t: f32, off: i32) -> i32 {
    if cut == f32::NEG_INFINITY || !cut.is_finite() {
        return i32::MIN;
    }
    let v = (cut / t).floor() as f64 - 1.0 + off as f64;
    v.clamp(i32::MIN as f64, i32::MAX as f64) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vecs(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                (0..dim)
                    .map(|_| {
                        s = s
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn depth_follows_the_dimension_and_only_changes_speed() {
        assert_eq!(Params::depth_for(128), 64);
        assert_eq!(Params::depth_for(256), 128);
        assert_eq!(Params::depth_for(512), 512);
        assert_eq!(Params::depth_for(usize::MAX), 4096);
        assert_eq!(Params::depth_for_batch(128, 1), SMALL_BATCH_DEPTH);
        assert_eq!(Params::depth_for_batch(128, 7), SMALL_BATCH_DEPTH);
        assert_eq!(Params::depth_for_batch(128, 8), 64);
        assert_eq!(Params::depth_for_batch(512, 1), 512);
        let build = |rerank_min, rerank_factor| {
            let p = Params {
                shards: 2,
                rerank_min,
                rerank_factor,
                ..Params::default()
            };
            let idx = ExactIndex::with_params(64, Storage::Int8, p).unwrap();
            for (i, v) in vecs(3000, 64, 11).iter().enumerate() {
                idx.add(i as u64 / 2, i as u64, v).unwrap();
            }
            idx
        };
        let (auto, shallow) = (build(0, 4), build(1, 1));
        let qs: Vec<f32> = vecs(30, 64, 12).concat();
        assert_eq!(
            auto.search_batch(&qs, 5, -1.0).unwrap(),
            shallow.search_batch(&qs, 5, -1.0).unwrap()
        );
        // The shallow first pass cannot settle the top 5 from 5 candidates.
        assert!(shallow.second_passes() > auto.second_passes());
    }

    #[test]
    fn finds_itself_in_every_storage() {
        for storage in [Storage::F32, Storage::F16, Storage::Int8] {
            let idx = ExactIndex::new(37, storage);
            let vs = vecs(500, 37, 3);
            for (i, v) in vs.iter().enumerate() {
                idx.add(i as u64 / 3, i as u64, v).unwrap();
            }
            assert_eq!(idx.len(), 500);
            assert_eq!(idx.subjects(), 167);
            for (i, v) in vs.iter().enumerate().step_by(37) {
                let hits = idx.search(v, 3, -1.0).unwrap();
                assert_eq!(hits.len(), 3);
                assert_eq!(hits[0].subject, i as u64 / 3, "{storage:?}");
                assert_eq!(hits[0].template_id, i as u64);
                assert!((hits[0].similarity - 1.0).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn remove_replace_threshold_and_errors() {
        let idx = ExactIndex::new(8, Storage::Int8);
        let vs = vecs(40, 8, 5);
        for (i, v) in vs.iter().enumerate() {
            idx.add(format!("s{}", i % 10), i as u64, v).unwrap();
        }
        assert_eq!(
            idx.add("s0".to_string(), 0, &vs[0]),
            Err(IndexError::DuplicateTemplate { template_id: 0 })
        );
        assert!(matches!(
            idx.add("x".into(), 1, &[0.0; 8]),
            Err(IndexError::InvalidVector(_))
        ));
        assert!(matches!(
            idx.search(&[1.0; 7], 1, 0.0),
            Err(IndexError::DimensionMismatch { .. })
        ));
        assert_eq!(idx.remove_subject(&"s3".to_string()), 4);
        assert_eq!(idx.remove_subject(&"s3".to_string()), 0);
        assert_eq!(idx.len(), 36);
        let hits = idx.search(&vs[3], 10, -1.0).unwrap();
        assert_eq!(hits.len(), 9);
        assert!(hits.iter().all(|h| h.subject != "s3"));
        idx.replace_subject("s4".into(), &[(99, &vs[3])]).unwrap();
        let hits = idx.search(&vs[3], 1, 0.999).unwrap();
        assert_eq!(
            hits,
            vec![Hit {
                subject: "s4".to_string(),
                template_id: 99,
                similarity: hits[0].similarity
            }]
        );
        assert_eq!(idx.len(), 33);
        assert!(idx.search(&vs[3], 0, -1.0).unwrap().is_empty());
    }

    fn sealed(shards: usize) -> Params {
        Params {
            shards,
            calibrate_from: 16,
            rerank: RerankRows::SealedFile { dir: None },
            ..Params::default()
        }
    }

    #[test]
    fn sealed_rerank_rows_leave_ram_and_answer_the_same() {
        let dim = 24;
        let vs = vecs(900, dim, 11);
        for storage in [Storage::F16, Storage::Int8] {
            let mem: ExactIndex<u64> = ExactIndex::with_params(
                dim,
                storage,
                Params {
                    shards: 3,
                    calibrate_from: 16,
                    ..Params::default()
                },
            )
            .unwrap();
            let spill: ExactIndex<u64> = ExactIndex::with_params(dim, storage, sealed(3)).unwrap();
            let items: Vec<(u64, u64, &[f32])> = vs[..600]
                .iter()
                .enumerate()
                .map(|(i, v)| (i as u64 / 4, i as u64, v.as_slice()))
                .collect();
            for idx in [&mem, &spill] {
                idx.extend(&items).unwrap();
                for (i, v) in vs[600..].iter().enumerate() {
                    idx.add(1000 + i as u64 / 2, i as u64, v).unwrap();
                }
                for s in (0..150).step_by(7) {
                    assert_eq!(idx.remove_subject(&s), 4);
                }
                idx.replace_subject(3, &[(5, &vs[1][..]), (6, &vs[2][..])])
                    .unwrap();
            }
            let qs: Vec<f32> = vecs(30, dim, 99).concat();
            let want = mem.search_batch(&qs, 7, -1.0).unwrap();
            assert_eq!(
                spill.search_batch(&qs, 7, -1.0).unwrap(),
                want,
                "{storage:?}"
            );
            for (q, w) in qs.chunks_exact(dim).zip(&want) {
                assert_eq!(&spill.search(q, 7, -1.0).unwrap(), w);
            }
            assert_eq!(spill.len(), mem.len());
            assert_eq!(spill.memory().rerank, 0);
            // In RAM the copy is counted by capacity.
            assert!(mem.memory().rerank >= mem.len() * dim * 4);
            assert_eq!(spill.spill_bytes(), (spill.len() * (24 + 4 * dim)) as u64);
            assert_eq!(mem.spill_bytes(), 0);
        }
        // The f32 storage scans its f32 copy: nothing to spill.
        let f32s: ExactIndex<u64> = ExactIndex::with_params(dim, Storage::F32, sealed(2)).unwrap();
        f32s.add(1, 1, &vs[0]).unwrap();
        assert_eq!(f32s.spill_bytes(), 0);
    }

    #[test]
    fn a_corrupted_spill_row_fails_the_search() {
        let idx: ExactIndex<u64> = ExactIndex::with_params(8, Storage::Int8, sealed(1)).unwrap();
        let vs = vecs(40, 8, 4);
        for (i, v) in vs.iter().enumerate() {
            idx.add(i as u64, i as u64, v).unwrap();
        }
        assert_eq!(idx.search(&vs[17], 3, -1.0).unwrap()[0].subject, 17);
        let rec = (24 + 4 * 8) as u64;
        idx.read(0)
            .sealed
            .as_ref()
            .unwrap()
            .corrupt(17 * rec + 30)
            .unwrap();
        // Row 17 is the best candidate of its own vector, so it is read.
        assert_eq!(
            idx.search(&vs[17], 3, -1.0),
            Err(IndexError::SpillCorrupt { row: 17 })
        );
        assert!(idx.search_batch(&vs[10..20].concat(), 3, -1.0).is_err());
        // A probe far from row 17 need not read it; if it does, it fails.
        match idx.search(&vs[5], 1, -1.0) {
            Ok(hits) => assert_eq!(hits[0].subject, 5),
            Err(e) => assert_eq!(e, IndexError::SpillCorrupt { row: 17 }),
        }
    }

    #[test]
    fn an_unusable_spill_directory_is_a_typed_error() {
        let p = Params {
            rerank: RerankRows::SealedFile {
                dir: Some(PathBuf::from("/nonexistent/ipseity-spill")),
            },
            ..Params::default()
        };
        assert!(matches!(
            ExactIndex::<u64>::with_params(8, Storage::Int8, p),
            Err(IndexError::SpillIo { op: "create", .. })
        ));
    }

    #[test]
    fn a_failed_extend_leaves_every_shard_as_it_was() {
        let dim = 12;
        let vs = vecs(300, dim, 21);
        for params in [
            Params {
                shards: 3,
                calibrate_from: 16,
                ..Params::default()
            },
            sealed(3),
        ] {
            let idx: ExactIndex<u64> = ExactIndex::with_params(dim, Storage::Int8, params).unwrap();
            let first: Vec<(u64, u64, &[f32])> = (0..100)
                .map(|i| (i as u64 / 2, i as u64, vs[i].as_slice()))
                .collect();
            idx.extend(&first).unwrap();
            let qs = vecs(12, dim, 5).concat();
            let before = idx.search_batch(&qs, 5, -1.0).unwrap();
            // New rows for many subjects in every shard, then a duplicate.
            let mut more: Vec<(u64, u64, &[f32])> = (100..300)
                .map(|i| (i as u64 / 2, i as u64, vs[i].as_slice()))
                .collect();
            more.push((7, 14, vs[0].as_slice()));
            assert_eq!(
                idx.extend(&more),
                Err(IndexError::DuplicateTemplate { template_id: 14 })
            );
            assert_eq!(idx.len(), 100);
            assert_eq!(idx.subjects(), 50);
            assert_eq!(idx.search_batch(&qs, 5, -1.0).unwrap(), before);
            more.pop();
            idx.extend(&more).unwrap();
            assert_eq!(idx.len(), 300);
        }
    }

    /// Walks every subject's list and checks it against the row tables and
    /// against `model` (subject -> template ids).
    fn check_lists(idx: &ExactIndex<u64>, model: &HashMap<u64, HashSet<u64>>) {
        let mut seen: HashMap<u64, HashSet<u64>> = HashMap::new();
        for i in 0..idx.shards.len() {
            let s = idx.read(i);
            assert_eq!(s.next.len(), s.n);
            let mut rows_seen = vec![false; s.n];
            for (key, e) in &s.subjects {
                assert_eq!(s.slots[e.slot as usize].as_ref(), Some(key));
                for r in s.rows_from(e.head) {
                    let r = r as usize;
                    assert!(r < s.n, "row {r} past the shard's {} rows", s.n);
                    assert!(!rows_seen[r], "row {r} on two lists");
                    rows_seen[r] = true;
                    assert_eq!(s.owner[r], e.slot);
                    assert!(seen.entry(*key).or_default().insert(s.tid[r]));
                }
            }
            assert!(rows_seen.iter().all(|&x| x), "a row on no list");
        }
        assert_eq!(&seen, model);
    }

    #[test]
    fn subject_row_lists_follow_random_edits() {
        let dim = 8;
        let vs = vecs(64, dim, 3);
        let mut rng = 0x5eed_u64;
        let mut draw = |n: u64| {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (rng >> 33) % n
        };
        for params in [
            Params {
                shards: 3,
                calibrate_from: 8,
                ..Params::default()
            },
            sealed(2),
        ] {
            let idx: ExactIndex<u64> = ExactIndex::with_params(dim, Storage::Int8, params).unwrap();
            let mut model: HashMap<u64, HashSet<u64>> = HashMap::new();
            let mut next_tid = 0u64;
            for _ in 0..400 {
                match draw(5) {
                    0 | 1 => {
                        let subject = draw(12);
                        let v = &vs[draw(64) as usize];
                        idx.add(subject, next_tid, v).unwrap();
                        model.entry(subject).or_default().insert(next_tid);
                        next_tid += 1;
                    }
                    2 => {
                        let subject = draw(12);
                        let had = model.remove(&subject).map_or(0, |t| t.len());
                        assert_eq!(idx.remove_subject(&subject), had);
                    }
                    3 => {
                        // A bulk insert over old and new subjects, which
                        // fails on its last item half of the time.
                        let mut items: Vec<(u64, u64, &[f32])> = (0..draw(20) + 1)
                            .map(|j| (draw(16), next_tid + j, vs[draw(64) as usize].as_slice()))
                            .collect();
                        let fail = draw(2) == 0 && !model.is_empty();
                        if fail {
                            let (&subject, tids) = model.iter().next().unwrap();
                            let tid = *tids.iter().next().unwrap();
                            items.push((subject, tid, vs[0].as_slice()));
                            assert!(idx.extend(&items).is_err());
                        } else {
                            idx.extend(&items).unwrap();
                            for &(subject, tid, _) in &items {
                                model.entry(subject).or_default().insert(tid);
                            }
                        }
                        next_tid += items.len() as u64;
                    }
                    _ => {
                        let subject = draw(12);
                        let n = draw(4) as usize;
                        let items: Vec<(u64, &[f32])> = (0..n)
                            .map(|j| (next_tid + j as u64, vs[draw(64) as usize].as_slice()))
                            .collect();
                        idx.replace_subject(subject, &items).unwrap();
                        model.remove(&subject);
                        if n > 0 {
                            model.insert(subject, items.iter().map(|x| x.0).collect());
                        }
                        next_tid += n as u64;
                    }
                }
                check_lists(&idx, &model);
            }
            assert!(!model.is_empty());
        }
    }

    #[test]
    fn batches_deepen_their_first_pass_when_second_passes_dominate() {
        // One tight cluster: every score sits inside every other's bound
        // window, so a first pass of 64 cannot settle a top 10.
        let dim = 128;
        let centre = vecs(1, dim, 41).remove(0);
        let noisy = |n, seed| -> Vec<Vec<f32>> {
            vecs(n, dim, seed)
                .into_iter()
                .map(|e| centre.iter().zip(&e).map(|(c, e)| c + 0.02 * e).collect())
                .collect()
        };
        let rows = noisy(4000, 42);
        let build = |rerank_min| {
            let p = Params {
                shards: 2,
                rerank_min,
                ..Params::default()
            };
            let idx: ExactIndex<u64> = ExactIndex::with_params(dim, Storage::Int8, p).unwrap();
            let items: Vec<(u64, u64, &[f32])> = rows
                .iter()
                .enumerate()
                .map(|(i, v)| (i as u64 / 2, i as u64, v.as_slice()))
                .collect();
            idx.extend(&items).unwrap();
            idx
        };
        let (learning, deep) = (build(0), build(4096));
        assert_eq!(learning.batch_depth(), Params::depth_for(dim));
        let qs = noisy(2 * BATCH_STEP, 43).concat();
        let got = learning.search_batch(&qs, 10, -1.0).unwrap();
        assert!(learning.second_passes() > 0);
        assert!(
            learning.batch_depth() > Params::depth_for(dim),
            "depth stayed at {}",
            learning.batch_depth()
        );
        assert_eq!(
            deep.batch_depth(),
            Params::depth_for(dim),
            "fixed depth learns nothing"
        );
        assert_eq!(got, deep.search_batch(&qs, 10, -1.0).unwrap());
    }
}
