//! Shard storage: the rows of one shard (f32, f16 or packed int8 codes,
//! with the error measures the exact bound needs), their template ids and the
//! per-subject row lists, and the edits on them (add, bulk insert and its
//! undo, remove, int8 refits). Kept apart from the search code so that the
//! bookkeeping that keeps rows, ids and lists in step reads on its own.

use crate::kernels::{self, BLOCK};
use crate::spill::SealedRows;
use crate::{IndexError, Result, Storage};
use half::f16;
use std::collections::HashMap;
use std::hash::Hash;

/// End of a subject's row list in [`Shard::next`].
const NIL: u32 = u32::MAX;

/// A subject's rows form a list threaded through [`Shard::next`], newest
/// first: a `Vec` per subject cost about 25 B per template at five templates
/// a subject (its header, a heap block and the allocator's rounding), which
/// alone broke the 160 B/template budget at 128-D.
pub(super) struct SubjectEntry {
    pub(super) slot: u32,
    pub(super) head: u32,
}

pub(super) struct Shard<K> {
    pub(super) dim: usize,
    pub(super) groups: usize,
    pub(super) storage: Storage,
    pub(super) n: usize,
    /// The f32 rows, unless they are sealed in `sealed` (then empty).
    pub(super) f32s: Vec<f32>,
    pub(super) sealed: Option<SealedRows>,
    pub(super) f16s: Vec<f16>,
    pub(super) owner: Vec<u32>,
    /// The next (older) row of the same subject, or [`NIL`].
    pub(super) next: Vec<u32>,
    pub(super) tid: Vec<u64>,
    pub(super) slots: Vec<Option<K>>,
    free_slots: Vec<u32>,
    pub(super) subjects: HashMap<K, SubjectEntry>,
    pub(super) scale: Vec<f32>,
    /// Largest `|x_d|` of the rows held, per dimension (the int8 refit's
    /// input); an upper bound only after a removal, until the next refit.
    amax: Vec<f32>,
    amax_exact: bool,
    /// Int8 codes and their error bookkeeping (f16 uses `q.err` only).
    pub(super) q: Codes,
    calibrated_at: usize,
    calibrate_from: usize,
}

/// Packed int8 codes of a shard and the error measures their bound needs.
pub(super) struct Codes {
    pub(super) packed: Vec<u8>,
    /// Largest reconstruction error seen per dimension (int8 and f16).
    pub(super) err: Vec<f32>,
    pub(super) l1max: u32,
    /// Largest `‖x − x̂‖₂` of a row.
    pub(super) resid_max: f64,
    /// Largest `‖x̂‖₂` of a row.
    pub(super) xhat_max: f64,
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

impl<K> Shard<K>
where
    K: Clone + Eq + Hash + Ord,
{
    pub(super) fn new(dim: usize, storage: Storage, calibrate_from: usize) -> Self {
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
    pub(super) fn row(&self, r: usize) -> &[f32] {
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
    pub(super) fn finish_bulk(&mut self) -> Result<()> {
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
    pub(super) fn add(&mut self, key: K, template_id: u64, v: &[f32], bulk: bool) -> Result<()> {
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
    pub(super) fn truncate_to(&mut self, n0: usize) {
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
    pub(super) fn rows_from(&self, head: u32) -> impl Iterator<Item = u32> + '_ {
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

    pub(super) fn remove(&mut self, key: &K) -> usize {
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
}
