//! The exact f32 re-rank and its error bound: a query is prepared for a
//! shard with the bound `E` on its scan scores (see the parent module's docs
//! for the proof), and candidates are re-scored in f32, best first, until the
//! bound shows no later row can matter. Kept apart from the scans because
//! this is where the exactness of the quantised storages is argued and where
//! sealed rows are read back.

use super::shard::Shard;
use super::topk::{load_floor, ordered, Cand, TopK};
use crate::kernels::{self, BLOCK};
use crate::spill::Scratch;
use crate::{Result, Storage};
use std::collections::HashSet;
use std::hash::Hash;
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};

/// A query prepared for one shard's scan.
#[derive(Clone)]
pub(super) struct Prepared {
    pub(super) y: Vec<f32>,
    pub(super) r: Vec<i8>,
    pub(super) t: f32,
    pub(super) sumr: i32,
    /// `E`: bounds `|a − x·y|` for the scan score `a`.
    pub(super) bound: f32,
    /// Int8: bounds `|x̂·y − x·y|`, the error of the dequantised row against
    /// the unquantised query (no query rounding, so tighter than `bound`).
    row_bound: f32,
}

impl<K> Shard<K>
where
    K: Clone + Eq + Hash + Ord,
{
    pub(super) fn prepare(&self, y: &[f32]) -> Prepared {
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
    pub(super) fn rerank(
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
