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

use crate::kernels::{self, BLOCK};
use crate::spill::SealedRows;
use crate::{Hit, Index, IndexError, Result, Storage};
use std::cmp::Ordering;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

mod rerank;
mod scan;
mod shard;
#[cfg(test)]
mod tests;
mod topk;

use shard::{Shard, SubjectEntry};

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
