//! The search itself: a batch of queries split into steps across the shards,
//! each shard's first-pass scan of its codes (int8 in groups of queries),
//! the re-rank of its candidates and the adaptive second pass when the first
//! pass's depth could not settle the top k. Kept apart from the storage and
//! from the re-rank so that the hot scan loops read on their own.

use super::rerank::Prepared;
use super::shard::Shard;
use super::topk::{load_floor, ordered, Collector, TopK};
use super::{hit_order, ExactIndex, Params, BATCH_STEP};
use crate::kernels::{self, BLOCK, QGROUP};
use crate::spill::SealedRows;
use crate::{Hit, Result, Storage};
use rayon::prelude::*;
use std::collections::HashSet;
use std::hash::Hash;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering as AtomicOrdering};

impl<K> ExactIndex<K>
where
    K: Clone + Eq + Hash + Ord + Send + Sync,
{
    /// Scans every shard for a block of normalised queries.
    pub(super) fn search_normalized(
        &self,
        ys: &[f32],
        k: usize,
        threshold: f32,
    ) -> Result<Vec<Vec<Hit<K>>>> {
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

impl<K> Shard<K>
where
    K: Clone + Eq + Hash + Ord,
{
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
