//! Candidate selection: the first pass's buffer of the best approximate
//! scores ([`Collector`]), the exact top k of subjects being re-ranked
//! ([`TopK`]), and the atomic encoding of the k-th score the shards share. Kept
//! apart because these are plain data structures, with no knowledge of how
//! rows are stored or scored.

use super::hit_order;
use crate::Hit;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};

/// A candidate row with its approximate score.
#[derive(Clone, Copy)]
pub(super) struct Cand {
    pub(super) a: f32,
    pub(super) row: u32,
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
pub(super) struct Collector {
    cap: usize,
    floor: f32,
    buf: Vec<Cand>,
    /// The `cap`-th best score at the last cut-back, once there was one.
    kth: Option<f32>,
    /// A row at or above `floor` was dropped.
    pub(super) overflowed: bool,
}

impl Collector {
    pub(super) fn new(cap: usize, floor: f32) -> Self {
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
    pub(super) fn cut(&self) -> f32 {
        self.kth.map_or(self.floor, |k| k.max(self.floor))
    }
    /// Whether a row skipped below [`Collector::cut`] may have been above
    /// the floor.
    #[inline]
    pub(super) fn full(&self) -> bool {
        self.kth.is_some()
    }
    #[inline]
    pub(super) fn push(&mut self, a: f32, row: u32) {
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
    pub(super) fn skipped(&mut self) {
        if self.full() {
            self.overflowed = true;
        }
    }
    /// The kept rows, the smallest kept score (every dropped row scored at
    /// most that), and whether any row at or above the floor was dropped.
    pub(super) fn finish(mut self) -> (Vec<Cand>, f32, bool) {
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

/// The best template of each subject re-ranked so far, and the score a row
/// must reach to change the top k.
pub(super) struct TopK {
    k: usize,
    threshold: f32,
    best: HashMap<u32, (f32, u64)>,
    /// The k-th best subject score, or the threshold while fewer than k
    /// subjects pass it; it only grows.
    pub(super) needed: f32,
}

impl TopK {
    pub(super) fn new(k: usize, threshold: f32) -> Self {
        TopK {
            k,
            threshold,
            best: HashMap::new(),
            needed: threshold,
        }
    }

    /// Records exact score `s` of template `t` of subject slot `slot`;
    /// returns whether `needed` rose.
    pub(super) fn offer(&mut self, slot: u32, t: u64, s: f32) -> bool {
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

    pub(super) fn into_hits<K: Clone + Ord>(self, slots: &[Option<K>]) -> Vec<Hit<K>> {
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
pub(super) fn ordered(x: f32) -> u32 {
    let b = x.to_bits();
    if b >> 31 == 1 {
        !b
    } else {
        b | 0x8000_0000
    }
}

pub(super) fn load_floor(floor: &AtomicU32) -> f32 {
    let u = floor.load(AtomicOrdering::Relaxed);
    f32::from_bits(if u >> 31 == 1 { u & 0x7fff_ffff } else { !u })
}
