//! Approximate top-k search with a hierarchical navigable small-world graph
//! (Malkov & Yashunin, 2016), for galleries too large for an exhaustive scan
//! to meet its latency target.
//!
//! # Method
//! Every template is a node. A node draws a top level `L = ⌊−ln U · m_L⌋`
//! (`m_L = 1/ln M`); on each level `0..=L` it is linked to at most `M`
//! neighbours (`M0 = 2M` on level 0), chosen from the `efConstruction` nearest
//! nodes found by a beam search with the paper's heuristic: a candidate is
//! kept only if it is closer to the new node than to every neighbour kept
//! before it, which keeps links towards other clusters instead of spending
//! them all inside one identity's tight cluster. When a neighbour's list
//! overflows it is pruned with the same heuristic. A query descends greedily
//! from the entry point to level 1 and runs a beam of width `efSearch` on
//! level 0.
//!
//! # Exact scores
//! The graph is walked with [`Storage::Int8`] codes (one scale per vector) or
//! with the f32 vectors; the `ef` candidates found are then re-scored in f32
//! over the stored normalised vectors, so every returned similarity is the
//! exact cosine, and only the *set* of candidates is approximate (the recall
//! measured in `benches/ann.rs`).
//!
//! # Concurrency and removal
//! The whole graph sits behind one `RwLock`: searches share it, `add`,
//! `remove_subject` and `replace_subject` hold it exclusively. Removal marks
//! the subject's nodes as tombstones, still walked through (so the graph keeps
//! its connectivity) but never returned; since the mark is set under the write
//! lock, a search that starts after `remove_subject` returned cannot return
//! the subject. Tombstones cost memory and walking time until
//! [`HnswIndex::compact`] rebuilds the graph from the live nodes.
//!
//! A bulk [`HnswIndex::extend`] inserts nodes from several threads at once
//! (the threads of the rayon pool): level-0 neighbour lists are atomics read
//! without locks (a reader may see a list half rewritten, which only costs it
//! a detour: every id it can read is a valid node), and writers serialise per
//! node through striped mutexes.

use crate::exact::{hit_order, normalize, MemoryUsage};
use crate::kernels;
use crate::synth::Rng;
use crate::{Hit, Index, IndexError, Result, Storage};
use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::hash::Hash;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering as AtOrd};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Tuning constants of [`HnswIndex`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HnswParams {
    /// Links per node on levels above 0 (level 0 holds `2·m`).
    pub m: usize,
    /// Beam width while inserting.
    pub ef_construction: usize,
    /// Beam width while searching (raised to `k` when smaller); can be changed
    /// later with [`HnswIndex::set_ef_search`].
    pub ef_search: usize,
    /// How vectors are held for the walk: [`Storage::F32`] or
    /// [`Storage::Int8`] (an f32 copy is kept for the re-rank either way).
    pub storage: Storage,
    /// Seed of the level draws.
    pub seed: u64,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 100,
            ef_search: 64,
            storage: Storage::Int8,
            seed: 0x4e5f_1d0c,
        }
    }
}

/// Number of node-lock stripes used by parallel inserts.
const STRIPES: usize = 1024;
/// Highest level a node may draw (`M^16` nodes would be needed to reach it).
const MAX_LEVEL: usize = 16;

/// Approximate index over a navigable small-world graph; see the module docs.
pub struct HnswIndex<K> {
    dim: usize,
    params: HnswParams,
    ef_search: AtomicUsize,
    graph: RwLock<Graph<K>>,
}

struct SubjectEntry {
    slot: u32,
    nodes: Vec<u32>,
}

struct Graph<K> {
    dim: usize,
    m: usize,
    m0: usize,
    ef_construction: usize,
    storage: Storage,
    ml: f64,
    rng: Rng,
    n: usize,
    live: usize,
    f32s: Vec<f32>,
    codes: Vec<i8>,
    scales: Vec<f32>,
    /// Level 0: per node a count followed by `m0` ids.
    links0: Vec<AtomicU32>,
    /// Levels `1..=L` of nodes with `L > 0`, indexed by `level - 1`.
    upper: HashMap<u32, Box<[Mutex<Vec<u32>>]>>,
    level: Vec<u8>,
    deleted: Vec<bool>,
    owner: Vec<u32>,
    tid: Vec<u64>,
    keys: Vec<Option<K>>,
    subjects: HashMap<K, SubjectEntry>,
    entry: Mutex<Option<(u32, usize)>>,
    stripes: Box<[Mutex<()>]>,
}

/// A node and its similarity to the current query, ordered by similarity
/// (then by node id, so that heaps are deterministic).
#[derive(Clone, Copy, PartialEq)]
struct Near {
    s: f32,
    node: u32,
}
impl Eq for Near {}
impl PartialOrd for Near {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Near {
    fn cmp(&self, o: &Self) -> Ordering {
        self.s.total_cmp(&o.s).then(o.node.cmp(&self.node))
    }
}

/// A query in the form the walk compares against.
struct Query {
    y: Vec<f32>,
    codes: Vec<i8>,
    scale: f32,
}

/// Visited marks with an epoch, reused per thread so that a search does not
/// clear (or allocate) a mark per node.
struct Visited {
    marks: Vec<u32>,
    epoch: u32,
}

impl Visited {
    fn begin(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.iter_mut().for_each(|m| *m = 0);
            self.epoch = 1;
        }
    }
    /// Marks `i`; false when it was already marked in this epoch.
    #[inline]
    fn insert(&mut self, i: u32) -> bool {
        match self.marks.get_mut(i as usize) {
            Some(m) if *m != self.epoch => {
                *m = self.epoch;
                true
            }
            _ => false,
        }
    }
}

thread_local! {
    static VISITED: RefCell<Visited> = const {
        RefCell::new(Visited {
            marks: Vec::new(),
            epoch: 0,
        })
    };
}

/// Quantises a unit vector with one symmetric scale.
fn quantise(v: &[f32]) -> (Vec<i8>, f32) {
    let amax = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let s = if amax > 0.0 { amax / 127.0 } else { 1.0 };
    let codes = v
        .iter()
        .map(|x| (x / s).round().clamp(-127.0, 127.0) as i8)
        .collect();
    (codes, s)
}

#[inline]
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    // Blocks of 16 so that the compiler widens to i16 and multiplies in
    // vector registers.
    let mut acc = [0i32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] as i32 * y[i] as i32;
        }
    }
    let tail: i32 = ra.iter().zip(rb).map(|(&x, &y)| x as i32 * y as i32).sum();
    acc.iter().sum::<i32>() + tail
}

impl<K> Graph<K>
where
    K: Clone + Eq + Hash + Ord + Send + Sync,
{
    fn new(dim: usize, p: &HnswParams) -> Self {
        let m = p.m.max(2);
        Graph {
            dim,
            m,
            m0: 2 * m,
            ef_construction: p.ef_construction.max(m),
            storage: p.storage,
            ml: 1.0 / (m as f64).ln(),
            rng: Rng::new(p.seed),
            n: 0,
            live: 0,
            f32s: Vec::new(),
            codes: Vec::new(),
            scales: Vec::new(),
            links0: Vec::new(),
            upper: HashMap::new(),
            level: Vec::new(),
            deleted: Vec::new(),
            owner: Vec::new(),
            tid: Vec::new(),
            keys: Vec::new(),
            subjects: HashMap::new(),
            entry: Mutex::new(None),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    fn row(&self, i: u32) -> &[f32] {
        let i = i as usize;
        &self.f32s[i * self.dim..(i + 1) * self.dim]
    }

    fn code(&self, i: u32) -> &[i8] {
        let i = i as usize;
        &self.codes[i * self.dim..(i + 1) * self.dim]
    }

    fn query(&self, y: &[f32]) -> Query {
        match self.storage {
            Storage::Int8 => {
                let (codes, scale) = quantise(y);
                Query {
                    y: y.to_vec(),
                    codes,
                    scale,
                }
            }
            _ => Query {
                y: y.to_vec(),
                codes: Vec::new(),
                scale: 1.0,
            },
        }
    }

    /// The walk's similarity of a query to a node.
    #[inline]
    fn sim(&self, q: &Query, i: u32) -> f32 {
        match self.storage {
            Storage::Int8 => {
                q.scale * self.scales[i as usize] * dot_i8(&q.codes, self.code(i)) as f32
            }
            _ => kernels::dot_f32(&q.y, self.row(i)),
        }
    }

    /// The walk's similarity between two nodes.
    #[inline]
    fn sim_nodes(&self, a: u32, b: u32) -> f32 {
        match self.storage {
            Storage::Int8 => {
                self.scales[a as usize]
                    * self.scales[b as usize]
                    * dot_i8(self.code(a), self.code(b)) as f32
            }
            _ => kernels::dot_f32(self.row(a), self.row(b)),
        }
    }

    fn lock_node(&self, i: u32) -> MutexGuard<'_, ()> {
        self.stripes[i as usize % STRIPES]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Neighbours of `i` on `level` (a copy: lists change under parallel
    /// inserts).
    fn neighbours(&self, i: u32, level: usize, out: &mut Vec<u32>) {
        out.clear();
        if level == 0 {
            let base = i as usize * (self.m0 + 1);
            let Some(list) = self.links0.get(base..base + self.m0 + 1) else {
                return;
            };
            let c = (list[0].load(AtOrd::Acquire) as usize).min(self.m0);
            out.extend(list[1..=c].iter().map(|a| a.load(AtOrd::Relaxed)));
        } else if let Some(m) = self.upper.get(&i).and_then(|ls| ls.get(level - 1)) {
            out.extend_from_slice(&m.lock().unwrap_or_else(|e| e.into_inner()));
        }
    }

    /// Overwrites the list of `i` on `level`; the caller holds `i`'s stripe
    /// for level 0.
    fn set_neighbours(&self, i: u32, level: usize, ids: &[u32]) {
        if level == 0 {
            let base = i as usize * (self.m0 + 1);
            let Some(list) = self.links0.get(base..base + self.m0 + 1) else {
                return;
            };
            let c = ids.len().min(self.m0);
            for (slot, &id) in list[1..=c].iter().zip(ids) {
                slot.store(id, AtOrd::Relaxed);
            }
            list[0].store(c as u32, AtOrd::Release);
        } else if let Some(m) = self.upper.get(&i).and_then(|ls| ls.get(level - 1)) {
            let mut g = m.lock().unwrap_or_else(|e| e.into_inner());
            g.clear();
            g.extend_from_slice(&ids[..ids.len().min(self.m)]);
        }
    }

    /// Greedy descent on one level: the best node reachable from `cur`.
    fn greedy(&self, q: &Query, mut cur: Near, level: usize, buf: &mut Vec<u32>) -> Near {
        loop {
            let mut moved = false;
            self.neighbours(cur.node, level, buf);
            for &e in buf.iter() {
                let s = self.sim(q, e);
                if s > cur.s {
                    cur = Near { s, node: e };
                    moved = true;
                }
            }
            if !moved {
                return cur;
            }
        }
    }

    /// Beam search on one level from `entry`; returns up to `ef` nodes, best
    /// first. Tombstones are walked through but only kept when
    /// `keep_deleted`.
    fn beam(
        &self,
        q: &Query,
        entry: Near,
        ef: usize,
        level: usize,
        keep_deleted: bool,
    ) -> Vec<Near> {
        VISITED.with(|v| {
            let mut vis = v.borrow_mut();
            vis.begin(self.n);
            vis.insert(entry.node);
            // `cand`: max-heap of nodes to expand; `best`: min-heap of the
            // `ef` best kept (reversed order through `Reverse`).
            let mut cand = BinaryHeap::with_capacity(ef * 2);
            let mut best: BinaryHeap<std::cmp::Reverse<Near>> = BinaryHeap::with_capacity(ef + 1);
            cand.push(entry);
            if keep_deleted || !self.is_deleted(entry.node) {
                best.push(std::cmp::Reverse(entry));
            }
            let mut buf = Vec::with_capacity(self.m0);
            while let Some(c) = cand.pop() {
                let worst = best.peek().map_or(f32::NEG_INFINITY, |w| w.0.s);
                if c.s < worst && best.len() >= ef {
                    break;
                }
                self.neighbours(c.node, level, &mut buf);
                for &e in &buf {
                    if !vis.insert(e) {
                        continue;
                    }
                    let s = self.sim(q, e);
                    let worst = best.peek().map_or(f32::NEG_INFINITY, |w| w.0.s);
                    if best.len() < ef || s > worst {
                        let nn = Near { s, node: e };
                        cand.push(nn);
                        if keep_deleted || !self.is_deleted(e) {
                            best.push(std::cmp::Reverse(nn));
                            if best.len() > ef {
                                best.pop();
                            }
                        }
                    }
                }
            }
            let mut out: Vec<Near> = best.into_iter().map(|r| r.0).collect();
            out.sort_by(|a, b| b.cmp(a));
            out
        })
    }

    fn is_deleted(&self, i: u32) -> bool {
        self.deleted.get(i as usize).copied().unwrap_or(true)
    }

    /// The paper's heuristic: walk candidates best first, keep one when it is
    /// closer to the base than to every node kept so far.
    fn select(&self, cands: &[Near], m: usize) -> Vec<u32> {
        let mut kept: Vec<u32> = Vec::with_capacity(m);
        for c in cands {
            if kept.len() >= m {
                break;
            }
            if kept.iter().all(|&r| self.sim_nodes(c.node, r) < c.s) {
                kept.push(c.node);
            }
        }
        kept
    }

    /// Links node `i` (already stored, with its level drawn) into the graph.
    fn insert(&self, i: u32) {
        let lvl = self.level[i as usize] as usize;
        let snapshot = *self.entry.lock().unwrap_or_else(|e| e.into_inner());
        let Some((ep, top)) = snapshot else {
            let mut g = self.entry.lock().unwrap_or_else(|e| e.into_inner());
            if g.is_none() {
                *g = Some((i, lvl));
                return;
            }
            drop(g);
            return self.insert(i);
        };
        let q = self.query(self.row(i));
        let mut buf = Vec::with_capacity(self.m0);
        let mut cur = Near {
            s: self.sim(&q, ep),
            node: ep,
        };
        for l in (lvl + 1..=top).rev() {
            cur = self.greedy(&q, cur, l, &mut buf);
        }
        for l in (0..=lvl.min(top)).rev() {
            let found: Vec<Near> = self
                .beam(&q, cur, self.ef_construction, l, true)
                .into_iter()
                .filter(|c| c.node != i)
                .collect();
            let chosen = self.select(&found, self.m);
            {
                let _g = self.lock_node(i);
                self.set_neighbours(i, l, &chosen);
            }
            let cap = if l == 0 { self.m0 } else { self.m };
            for &e in &chosen {
                let _g = self.lock_node(e);
                self.neighbours(e, l, &mut buf);
                if buf.contains(&i) {
                    continue;
                }
                if buf.len() < cap {
                    buf.push(i);
                    self.set_neighbours(e, l, &buf);
                } else {
                    let mut cs: Vec<Near> = buf
                        .iter()
                        .chain(std::iter::once(&i))
                        .map(|&x| Near {
                            s: self.sim_nodes(e, x),
                            node: x,
                        })
                        .collect();
                    cs.sort_by(|a, b| b.cmp(a));
                    let kept = self.select(&cs, cap);
                    self.set_neighbours(e, l, &kept);
                }
            }
            if let Some(b) = found.first() {
                cur = *b;
            }
        }
        if lvl > top {
            let mut g = self.entry.lock().unwrap_or_else(|e| e.into_inner());
            if g.is_none_or(|(_, t)| lvl > t) {
                *g = Some((i, lvl));
            }
        }
    }

    /// Stores a normalised vector as a new node (not yet linked).
    fn push(&mut self, key: K, template_id: u64, v: &[f32]) -> Result<u32> {
        let node = u32::try_from(self.n).map_err(|_| IndexError::Capacity)?;
        if node == u32::MAX {
            return Err(IndexError::Capacity);
        }
        let slot = match self.subjects.get_mut(&key) {
            Some(e) => {
                e.nodes.push(node);
                e.slot
            }
            None => {
                let slot = u32::try_from(self.keys.len()).map_err(|_| IndexError::Capacity)?;
                self.keys.push(Some(key.clone()));
                self.subjects.insert(
                    key,
                    SubjectEntry {
                        slot,
                        nodes: vec![node],
                    },
                );
                slot
            }
        };
        self.f32s.extend_from_slice(v);
        if self.storage == Storage::Int8 {
            let (c, s) = quantise(v);
            self.codes.extend(c);
            self.scales.push(s);
        }
        self.links0.extend((0..=self.m0).map(|_| AtomicU32::new(0)));
        let u = self.rng.uniform();
        let lvl = ((-u.ln() * self.ml) as usize).min(MAX_LEVEL);
        if lvl > 0 {
            self.upper
                .insert(node, (0..lvl).map(|_| Mutex::new(Vec::new())).collect());
        }
        self.level.push(lvl as u8);
        self.deleted.push(false);
        self.owner.push(slot);
        self.tid.push(template_id);
        self.n += 1;
        self.live += 1;
        Ok(node)
    }

    /// Reserves room for `extra` more nodes, so that a bulk build holds no
    /// spare capacity from doubling.
    fn reserve(&mut self, extra: usize) {
        let dim = self.dim;
        self.f32s.reserve_exact(extra * dim);
        if self.storage == Storage::Int8 {
            self.codes.reserve_exact(extra * dim);
            self.scales.reserve_exact(extra);
        }
        self.links0.reserve_exact(extra * (self.m0 + 1));
        self.level.reserve_exact(extra);
        self.deleted.reserve_exact(extra);
        self.owner.reserve_exact(extra);
        self.tid.reserve_exact(extra);
    }

    fn has_template(&self, key: &K, template_id: u64) -> bool {
        self.subjects.get(key).is_some_and(|e| {
            e.nodes
                .iter()
                .any(|&x| self.tid.get(x as usize) == Some(&template_id))
        })
    }

    fn remove(&mut self, key: &K) -> usize {
        let Some(e) = self.subjects.remove(key) else {
            return 0;
        };
        if let Some(k) = self.keys.get_mut(e.slot as usize) {
            *k = None;
        }
        for &x in &e.nodes {
            if let Some(d) = self.deleted.get_mut(x as usize) {
                *d = true;
            }
        }
        self.live -= e.nodes.len();
        e.nodes.len()
    }

    /// Inserts nodes `from..n`, on `threads` threads.
    fn link_from(&self, from: usize, threads: usize) {
        let mut next = from;
        // The first node becomes the entry point on its own.
        if next < self.n
            && self
                .entry
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_none()
        {
            self.insert(next as u32);
            next += 1;
        }
        let todo = self.n - next;
        if threads <= 1 || todo < 256 {
            for i in next..self.n {
                self.insert(i as u32);
            }
            return;
        }
        let counter = AtomicUsize::new(next);
        std::thread::scope(|sc| {
            for _ in 0..threads {
                sc.spawn(|| loop {
                    let i = counter.fetch_add(1, AtOrd::Relaxed);
                    if i >= self.n {
                        break;
                    }
                    self.insert(i as u32);
                });
            }
        });
    }

    /// Up to `ef` live candidates for `q`, re-scored in f32, best template
    /// per subject, top `k` at or above `threshold`.
    fn search(&self, y: &[f32], k: usize, threshold: f32, ef_search: usize) -> Vec<Hit<K>> {
        if self.live == 0 || k == 0 {
            return Vec::new();
        }
        let Some((ep, top)) = *self.entry.lock().unwrap_or_else(|e| e.into_inner()) else {
            return Vec::new();
        };
        let q = self.query(y);
        let mut buf = Vec::with_capacity(self.m0);
        let mut cur = Near {
            s: self.sim(&q, ep),
            node: ep,
        };
        for l in (1..=top).rev() {
            cur = self.greedy(&q, cur, l, &mut buf);
        }
        let mut ef = ef_search.max(k);
        loop {
            let found = self.beam(&q, cur, ef, 0, false);
            let mut best: HashMap<u32, (f32, u64)> = HashMap::with_capacity(found.len());
            let mut lowest = f32::INFINITY;
            for c in &found {
                let s = kernels::dot_f32(y, self.row(c.node));
                lowest = lowest.min(s);
                if s < threshold {
                    continue;
                }
                let t = self.tid[c.node as usize];
                let e = best.entry(self.owner[c.node as usize]).or_insert((s, t));
                if s > e.0 || (s == e.0 && t < e.1) {
                    *e = (s, t);
                }
            }
            let mut hits: Vec<Hit<K>> = best
                .into_iter()
                .filter_map(|(slot, (s, t))| {
                    self.keys
                        .get(slot as usize)
                        .and_then(|k| k.as_ref())
                        .map(|key| Hit {
                            subject: key.clone(),
                            template_id: t,
                            similarity: s,
                        })
                })
                .collect();
            hits.sort_by(hit_order);
            // Several templates per subject can fill the beam with fewer than
            // k subjects: widen it while more could be found.
            let exhausted = found.len() < ef || ef >= self.live || lowest < threshold;
            if hits.len() >= k || exhausted {
                hits.truncate(k);
                return hits;
            }
            ef = (ef * 2).min(self.live);
        }
    }
}

impl<K> HnswIndex<K>
where
    K: Clone + Eq + Hash + Ord + Send + Sync,
{
    /// An empty index of `dim`-dimensional vectors.
    pub fn new(dim: usize, params: HnswParams) -> Result<Self> {
        if dim == 0 {
            return Err(IndexError::InvalidParameter("dim must be > 0"));
        }
        if params.m < 2 || params.m > 256 {
            return Err(IndexError::InvalidParameter("m must be in 2..=256"));
        }
        if params.ef_construction == 0 || params.ef_search == 0 {
            return Err(IndexError::InvalidParameter(
                "ef_construction and ef_search must be > 0",
            ));
        }
        if params.storage == Storage::F16 {
            return Err(IndexError::InvalidParameter(
                "hnsw storage must be f32 or int8",
            ));
        }
        Ok(HnswIndex {
            dim,
            params,
            ef_search: AtomicUsize::new(params.ef_search),
            graph: RwLock::new(Graph::new(dim, &params)),
        })
    }

    /// The parameters given at creation (`ef_search` as then).
    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// Sets the search beam width for later searches.
    pub fn set_ef_search(&self, ef: usize) {
        self.ef_search.store(ef.max(1), AtOrd::Relaxed);
    }

    /// The search beam width in force.
    pub fn ef_search(&self) -> usize {
        self.ef_search.load(AtOrd::Relaxed)
    }

    fn read(&self) -> RwLockReadGuard<'_, Graph<K>> {
        // A panic under the write lock leaves lengths in step (every push
        // extends all per-node arrays before linking), so the data stay usable.
        self.graph.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Graph<K>> {
        self.graph.write().unwrap_or_else(|e| e.into_inner())
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

    /// Adds many templates at once, inserting on the rayon pool's thread
    /// count (the fast way to build). Either all are added or, on the first
    /// invalid vector or repeated template, none.
    pub fn extend(&self, items: &[(K, u64, &[f32])]) -> Result<()> {
        let mut vs = Vec::with_capacity(items.len());
        let mut seen: HashSet<(&K, u64)> = HashSet::with_capacity(items.len());
        for (key, tid, v) in items {
            self.check_dim(v)?;
            if !seen.insert((key, *tid)) {
                return Err(IndexError::DuplicateTemplate { template_id: *tid });
            }
            vs.push(normalize(v)?);
        }
        let mut g = self.write();
        for (key, tid, _) in items {
            if g.has_template(key, *tid) {
                return Err(IndexError::DuplicateTemplate { template_id: *tid });
            }
        }
        let from = g.n;
        g.reserve(items.len());
        for ((key, tid, _), v) in items.iter().zip(&vs) {
            g.push(key.clone(), *tid, v)?;
        }
        g.link_from(from, rayon::current_num_threads());
        Ok(())
    }

    /// Number of removed templates still held as tombstones.
    pub fn tombstones(&self) -> usize {
        let g = self.read();
        g.n - g.live
    }

    /// Number of distinct subjects.
    pub fn subjects(&self) -> usize {
        self.read().subjects.len()
    }

    /// Rebuilds the graph from the live templates, dropping tombstones;
    /// returns how many were dropped. Holds the write lock throughout.
    pub fn compact(&self) -> usize {
        let mut g = self.write();
        let dropped = g.n - g.live;
        if dropped == 0 {
            return 0;
        }
        let mut fresh = Graph::new(self.dim, &self.params);
        fresh.reserve(g.live);
        let mut keys: Vec<(&K, &SubjectEntry)> = g.subjects.iter().collect();
        keys.sort_by(|a, b| a.0.cmp(b.0));
        for (key, e) in keys {
            for &x in &e.nodes {
                // Pushing a valid stored row cannot fail below u32::MAX nodes,
                // which the old graph already respected.
                let _ = fresh.push(key.clone(), g.tid[x as usize], g.row(x));
            }
        }
        fresh.link_from(0, rayon::current_num_threads());
        *g = fresh;
        dropped
    }

    /// Memory held: `scan` is what the walk reads (codes or f32 vectors, and
    /// the links), `rerank` the f32 copy when the walk uses int8 codes,
    /// `other` ids, levels, subject tables (estimated).
    pub fn memory(&self) -> MemoryUsage {
        let g = self.read();
        let links = g.links0.capacity() * 4
            + g.upper
                .values()
                .map(|ls| {
                    ls.iter()
                        .map(|m| {
                            std::mem::size_of::<Mutex<Vec<u32>>>()
                                + m.lock().map_or(0, |v| v.capacity() * 4)
                        })
                        .sum::<usize>()
                        + 32
                })
                .sum::<usize>();
        let (walk, rerank) = match g.storage {
            Storage::Int8 => (
                g.codes.capacity() + g.scales.capacity() * 4,
                g.f32s.capacity() * 4,
            ),
            _ => (g.f32s.capacity() * 4, 0),
        };
        MemoryUsage {
            scan: walk + links,
            rerank,
            other: g.tid.capacity() * 8
                + g.owner.capacity() * 4
                + g.level.capacity()
                + g.deleted.capacity()
                + g.keys.capacity() * std::mem::size_of::<Option<K>>()
                + g.subjects.capacity() * (std::mem::size_of::<K>() + 40)
                + g.n * 4,
        }
    }
}

impl<K> Index<K> for HnswIndex<K>
where
    K: Clone + Eq + Hash + Ord + Send + Sync,
{
    fn dim(&self) -> usize {
        self.dim
    }

    fn add(&self, subject: K, template_id: u64, vector: &[f32]) -> Result<()> {
        self.check_dim(vector)?;
        let v = normalize(vector)?;
        let mut g = self.write();
        if g.has_template(&subject, template_id) {
            return Err(IndexError::DuplicateTemplate { template_id });
        }
        let node = g.push(subject, template_id, &v)?;
        g.link_from(node as usize, 1);
        Ok(())
    }

    fn remove_subject(&self, subject: &K) -> usize {
        self.write().remove(subject)
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
        let mut g = self.write();
        g.remove(&subject);
        let from = g.n;
        for ((tid, _), v) in templates.iter().zip(&vs) {
            g.push(subject.clone(), *tid, v)?;
        }
        g.link_from(from, 1);
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
            ys.push(normalize(q)?);
        }
        let ef = self.ef_search();
        let g = self.read();
        if ys.len() <= 1 {
            return Ok(ys.iter().map(|y| g.search(y, k, threshold, ef)).collect());
        }
        use rayon::prelude::*;
        Ok(ys
            .par_iter()
            .map(|y| g.search(y, k, threshold, ef))
            .collect())
    }

    fn len(&self) -> usize {
        self.read().live
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_i8_matches_naive_for_every_tail_length() {
        let mut rng = Rng::new(5);
        for len in 0..70 {
            let a: Vec<i8> = (0..len)
                .map(|_| (rng.below(255) as i32 - 127) as i8)
                .collect();
            let b: Vec<i8> = (0..len)
                .map(|_| (rng.below(255) as i32 - 127) as i8)
                .collect();
            let naive: i32 = a.iter().zip(&b).map(|(&x, &y)| x as i32 * y as i32).sum();
            assert_eq!(dot_i8(&a, &b), naive, "len {len}");
        }
    }

    #[test]
    fn quantised_dot_is_close_to_f32() {
        let mut rng = Rng::new(9);
        for _ in 0..50 {
            let x = normalize(&(0..64).map(|_| rng.normal()).collect::<Vec<_>>()).unwrap();
            let y = normalize(&(0..64).map(|_| rng.normal()).collect::<Vec<_>>()).unwrap();
            let ((qx, sx), (qy, sy)) = (quantise(&x), quantise(&y));
            let approx = sx * sy * dot_i8(&qx, &qy) as f32;
            let exact = kernels::dot_f32(&x, &y);
            assert!((approx - exact).abs() < 0.02, "{approx} vs {exact}");
        }
    }

    #[test]
    fn visited_marks_reset_on_epoch_wrap() {
        let mut v = Visited {
            marks: Vec::new(),
            epoch: 0,
        };
        v.begin(4);
        assert!(v.insert(3));
        assert!(!v.insert(3));
        assert!(!v.insert(9), "out of range is never new");
        // Run the epoch round to wrap: the mark left at epoch 1 must not
        // read as visited when epoch 1 comes again.
        v.epoch = u32::MAX;
        v.begin(4);
        assert_eq!(v.epoch, 1);
        assert!(v.insert(3));
    }
}
