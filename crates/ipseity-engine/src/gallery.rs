//! The enrolled face gallery held in memory for 1:N search (`identify`,
//! enrolment de-duplication, `dedup`): the store's raw templates plus an
//! [`ExactIndex`] built from them when the command starts.
//!
//! # The index proposes, the decision metric disposes
//! Decisions are made on `ipseity_face::similarity`, `1 − ‖a − b‖` over the
//! raw, un-normalised dlib embeddings, against the operating point calibrated
//! for that metric. The index ranks by cosine over L2-normalised vectors. The
//! two orders differ as soon as norms differ (dlib embeddings have norms of
//! roughly 0.9–1.1), so ranking or deciding on the index's cosine would change
//! decisions. The index is therefore only a *candidate generator*: it returns
//! subjects by cosine, and every candidate is then scored with the exact
//! decision similarity over all its raw templates, exactly as the former
//! linear scan did (same function, same argument order, same `f32::max` fold,
//! same ranking and tie-break). Only the set of subjects scored changes.
//!
//! That set is complete by construction, not by a choice of depth. With
//! `a = ‖probe‖`, a gallery norm `b ∈ [b_min, b_max]` and the floor `t` a
//! decision needs (`reject_below` for identify, `accept_at` for enrolment), a
//! template can reach `1 − ‖a − b‖ ≥ t` only if `‖a − b‖² ≤ D²` with
//! `D = 1 − t`, i.e. only if its cosine is at least
//! `g = min_b (a² + b² − D²) / (2ab)` (a convex function of `b`, minimised at
//! `b = √(a² − D²)` clamped to the norm range). So:
//! - the search runs with the cosine threshold `g − ε` (`ε` = [`COS_SLACK`]
//!   covers f32 rounding on both sides with a wide margin), and starts at
//!   depth `k` subjects (`max(4·top, 50)` for identify);
//! - if fewer than `k` subjects come back, every subject that can pass has
//!   been seen; if the `k`-th subject's cosine plus `ε` is below `g`, no
//!   subject outside the top `k` can pass either;
//! - otherwise `k` doubles and the search runs again (at most until `k`
//!   covers every subject, which is the linear scan).
//!
//! Rows the index refuses (a zero vector; the store already refuses
//! non-finite ones) are kept aside and scored for every probe, and a probe
//! the index cannot take scores every subject, so those corner cases also
//! match the scan. The property tests below compare with the scan on random
//! galleries.
//!
//! # Persistence: none; the index is rebuilt on start
//! The index holds biometric templates, so a snapshot on disk would have to be
//! sealed like the store (key, nonce, associated data), versioned,
//! checksummed and checked for staleness against the store's template set
//! (count plus a digest of template ids), with a rebuild path anyway for a
//! stale or damaged file. Every 1:N command already decrypts every template
//! from the store to score candidates on raw vectors, and building the index
//! from them costs far less than that decryption (about 0.4 s per 100,000
//! templates on the 2-core development machine, `ipseity bench search`), so a
//! snapshot would save little and add a second copy of the gallery at rest.
//! Nothing is persisted: the index is derived from the store on every start.
//! A long-running service would keep it in memory and apply enrolments and
//! erasures to it (`Index::add`, `Index::remove_subject`).

use std::collections::HashMap;

use ipseity_core::{Modality, SubjectId};
use ipseity_index::{ExactIndex, Index, Storage};
use ipseity_store::Backend;

use crate::error::{EngineError, Result};

/// Slack on cosine similarities for f32 rounding (index scores and the f32
/// decision similarity are both good to about 1e-6).
pub const COS_SLACK: f64 = 1e-3;

/// Dimension of dlib's face embeddings.
pub const FACE_DIM: usize = 128;

/// Initial candidate depth in subjects when the caller has no `top`.
pub const MIN_DEPTH: usize = 50;

/// Templates decrypted at a time by [`FaceGallery::load`]: large enough that
/// per-chunk overhead vanishes, small enough (about 40 MB of 128-D templates)
/// that the chunk is negligible beside the gallery.
pub const LOAD_CHUNK: usize = 1 << 16;

/// Raw templates grouped by subject ordinal (`0..subjects()`), with the
/// cosine index over them.
pub struct Gallery {
    dim: usize,
    vectors: Vec<f32>,
    owner: Vec<u32>,
    by_subject: Vec<Vec<u32>>,
    /// Subjects owning a row the index refused: always scored.
    unindexed: Vec<u32>,
    /// The rows the index refused, ascending.
    refused_rows: Vec<u32>,
    norm_min: f64,
    norm_max: f64,
    index: ExactIndex<u32>,
}

fn norm(v: &[f32]) -> f64 {
    v.iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt()
}

impl Gallery {
    /// An empty gallery of `dim`-dimensional vectors.
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            vectors: Vec::new(),
            owner: Vec::new(),
            by_subject: Vec::new(),
            unindexed: Vec::new(),
            refused_rows: Vec::new(),
            norm_min: f64::INFINITY,
            norm_max: 0.0,
            index: ExactIndex::new(dim, Storage::Int8),
        }
    }

    /// Dimension of the vectors.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of subjects (ordinals handed out so far).
    pub fn subjects(&self) -> usize {
        self.by_subject.len()
    }

    /// Number of templates.
    pub fn len(&self) -> usize {
        self.owner.len()
    }

    /// Takes a subject out of every search: its rows leave the index and are never scored
    /// again (their memory is kept until the gallery is next rebuilt). Returns how many
    /// rows it had.
    pub fn remove_subject(&mut self, subject: u32) -> usize {
        let Some(rows) = self.by_subject.get_mut(subject as usize) else {
            return 0;
        };
        let n = rows.len();
        rows.clear();
        self.index.remove_subject(&subject);
        self.unindexed.retain(|&s| s != subject);
        n
    }

    /// Whether the gallery holds no template.
    pub fn is_empty(&self) -> bool {
        self.owner.is_empty()
    }

    /// The raw vector of row `r`.
    pub fn row(&self, r: usize) -> &[f32] {
        &self.vectors[r * self.dim..(r + 1) * self.dim]
    }

    /// The subject owning row `r`.
    pub fn owner(&self, r: usize) -> u32 {
        self.owner[r]
    }

    /// Adds templates; a subject ordinal must be at most `subjects()` (a new
    /// subject takes the next number). Vectors of another dimension are an
    /// error.
    pub fn extend(&mut self, items: &[(u32, &[f32])]) -> Result<()> {
        let from = self.len();
        self.push_rows(items)?;
        self.index_rows(from)
    }

    /// Reserves room for `rows` more templates, so that a load of known size
    /// leaves no slack from doubling vectors.
    pub fn reserve(&mut self, rows: usize) -> Result<()> {
        let floats = rows.checked_mul(self.dim).ok_or(EngineError::OutOfMemory)?;
        self.vectors.try_reserve_exact(floats)?;
        self.owner.try_reserve_exact(rows)?;
        Ok(())
    }

    /// Appends rows without indexing them: [`Gallery::index_rows`] must
    /// follow before any search.
    fn push_rows(&mut self, items: &[(u32, &[f32])]) -> Result<()> {
        for &(subject, v) in items {
            if v.len() != self.dim {
                return Err(EngineError::Internal(format!(
                    "template of dimension {} in a gallery of dimension {}",
                    v.len(),
                    self.dim
                )));
            }
            let s = subject as usize;
            if s > self.by_subject.len() {
                return Err(EngineError::Internal("subject ordinal out of order".into()));
            }
            if s == self.by_subject.len() {
                self.by_subject.push(Vec::new());
            }
            let row = u32::try_from(self.owner.len())?;
            self.by_subject[s].push(row);
            self.owner.push(subject);
            self.vectors.extend_from_slice(v);
            let n = norm(v);
            if ipseity_index::exact::normalize(v).is_ok() {
                self.norm_min = self.norm_min.min(n);
                self.norm_max = self.norm_max.max(n);
            } else {
                self.refused_rows.push(row);
                if !self.unindexed.contains(&subject) {
                    self.unindexed.push(subject);
                }
            }
        }
        Ok(())
    }

    /// Indexes rows `from..len()` in one [`ExactIndex::extend`]. That call
    /// refits the int8 scales of each shard it touches over all the shard's
    /// rows, so a load indexes once at the end, not once per chunk read
    /// (which would re-encode the whole index per chunk).
    fn index_rows(&mut self, from: usize) -> Result<()> {
        let first_refused = self.refused_rows.partition_point(|&r| (r as usize) < from);
        let mut refused = self.refused_rows[first_refused..].iter().peekable();
        let mut items: Vec<(u32, u64, &[f32])> = Vec::new();
        items.try_reserve_exact(self.len().saturating_sub(from))?;
        for r in from..self.len() {
            if refused.next_if(|&&x| x as usize == r).is_some() {
                continue;
            }
            items.push((self.owner[r], r as u64, self.row(r)));
        }
        self.index.extend(&items)?;
        Ok(())
    }

    /// The smallest cosine a template needs for `1 − ‖probe − row‖ ≥ floor`
    /// to be possible, given the gallery's norm range; `None` when no bound
    /// applies (then every subject must be scored).
    fn cosine_floor(&self, probe_norm: f64, floor: f32) -> Option<f64> {
        if !floor.is_finite() || !probe_norm.is_finite() || probe_norm == 0.0 {
            return None;
        }
        if self.index.is_empty() {
            return Some(f64::INFINITY);
        }
        let d = 1.0 - f64::from(floor);
        if d < 0.0 {
            // A similarity above 1 is impossible: nothing can pass.
            return Some(f64::INFINITY);
        }
        let a = probe_norm;
        let (lo, hi) = (self.norm_min, self.norm_max);
        let g = |b: f64| (a * a + b * b - d * d) / (2.0 * a * b);
        let b_star = (a * a - d * d).max(0.0).sqrt().clamp(lo, hi);
        Some(g(lo).min(g(hi)).min(g(b_star)))
    }

    /// Whether a search at depth `k` that returned `hits` (cosines, best
    /// first) has seen every subject whose best cosine can reach `g`.
    fn complete(&self, hits: &[f32], k: usize, g: f64) -> bool {
        hits.len() < k
            || k >= self.index.subjects()
            || hits.last().is_some_and(|&c| f64::from(c) + COS_SLACK < g)
    }

    /// Subjects that may reach `floor`, found with the index from depth `k`.
    fn candidates(&self, probe: &[f32], floor: f32, mut k: usize) -> Vec<u32> {
        let Some(g) = self.cosine_floor(norm(probe), floor) else {
            return (0..self.subjects() as u32).collect();
        };
        if g > 1.0 + COS_SLACK || self.index.is_empty() {
            return Vec::new();
        }
        let threshold = (g - COS_SLACK).max(-1.0) as f32;
        k = k.max(1);
        loop {
            let Ok(hits) = self.index.search(probe, k, threshold) else {
                return (0..self.subjects() as u32).collect();
            };
            let cos: Vec<f32> = hits.iter().map(|h| h.similarity).collect();
            if self.complete(&cos, k, g) {
                return hits.into_iter().map(|h| h.subject).collect();
            }
            k = k.saturating_mul(2);
        }
    }

    /// Every subject whose best exact similarity to `probe` is at least
    /// `floor`, with that similarity, best first (ties by ordinal): the same
    /// answer as scoring every template. `depth` is the first search depth.
    pub fn matches(&self, probe: &[f32], floor: f32, depth: usize) -> Vec<(u32, f32)> {
        let cands = self.candidates(probe, floor, depth);
        self.score(probe, floor, cands, None)
    }

    /// Like [`Gallery::matches`] for every row of the gallery at once, each
    /// row's own subject left out; one pass of the index serves a block.
    pub fn matches_rows(
        &self,
        rows: std::ops::Range<usize>,
        floor: f32,
        depth: usize,
    ) -> Vec<Vec<(u32, f32)>> {
        let probes = &self.vectors[rows.start * self.dim..rows.end * self.dim];
        let gs: Vec<Option<f64>> = probes
            .chunks_exact(self.dim)
            .map(|p| self.cosine_floor(norm(p), floor))
            .collect();
        let threshold = gs
            .iter()
            .flatten()
            .fold(f64::INFINITY, |m, &g| m.min(g - COS_SLACK))
            .max(-1.0) as f32;
        let k = depth.max(1) + 1; // the row's own subject comes back too
        let batch = if threshold.is_finite() && !self.index.is_empty() {
            self.index.search_batch(probes, k, threshold).ok()
        } else {
            None
        };
        rows.enumerate()
            .map(|(i, r)| {
                let probe = self.row(r);
                let cands = match (&batch, gs[i]) {
                    (_, Some(g)) if g > 1.0 + COS_SLACK || self.index.is_empty() => Vec::new(),
                    (Some(b), Some(g)) => {
                        let cos: Vec<f32> = b[i].iter().map(|h| h.similarity).collect();
                        if self.complete(&cos, k, g) {
                            b[i].iter().map(|h| h.subject).collect()
                        } else {
                            self.candidates(probe, floor, 2 * k)
                        }
                    }
                    _ => self.candidates(probe, floor, k),
                };
                self.score(probe, floor, cands, Some(self.owner[r]))
            })
            .collect()
    }

    /// Scores candidate subjects (plus the unindexed ones) on the decision
    /// metric over all their templates; keeps those at or above `floor`.
    fn score(
        &self,
        probe: &[f32],
        floor: f32,
        mut cands: Vec<u32>,
        skip: Option<u32>,
    ) -> Vec<(u32, f32)> {
        cands.extend_from_slice(&self.unindexed);
        cands.sort_unstable();
        cands.dedup();
        let mut out: Vec<(u32, f32)> = cands
            .into_iter()
            .filter(|&s| Some(s) != skip)
            .filter_map(|s| {
                let best = self.by_subject[s as usize]
                    .iter()
                    .map(|&r| ipseity_face::similarity(probe, self.row(r as usize)))
                    .fold(f32::NEG_INFINITY, f32::max);
                (best >= floor).then_some((s, best))
            })
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }
}

/// A [`Gallery`] of face templates from the store, with subject ids.
pub struct FaceGallery {
    /// The gallery; ordinals index `names`.
    pub gallery: Gallery,
    /// Subject id of each ordinal.
    pub names: Vec<SubjectId>,
    ordinals: HashMap<SubjectId, u32>,
}

impl FaceGallery {
    /// An empty gallery for face embeddings of dimension `dim`.
    pub fn new(dim: usize) -> Self {
        Self {
            gallery: Gallery::new(dim),
            names: Vec::new(),
            ordinals: HashMap::new(),
        }
    }

    /// Every face template of the current model in the store (ordered by
    /// subject, so ordinals follow subject-id order).
    ///
    /// The templates are decrypted [`LOAD_CHUNK`] at a time straight into the
    /// gallery's raw rows (reserved up front from the store's count), so no
    /// full list of decrypted templates is ever held; the index is then built
    /// from those rows in one pass.
    pub fn load(store: &dyn Backend, dim: usize) -> Result<Self> {
        Self::load_with(store, dim, LOAD_CHUNK, || {})
    }

    /// [`FaceGallery::load`] with the chunk size given, calling `read_done`
    /// between reading the store and building the index (the start-up
    /// benchmark reads its phases there).
    fn load_with(
        store: &dyn Backend,
        dim: usize,
        chunk_rows: usize,
        mut read_done: impl FnMut(),
    ) -> Result<Self> {
        let mut g = Self::new(dim);
        g.gallery.reserve(store.count_templates(Modality::Face)?)?;
        store.for_each_template_chunk(Modality::Face, chunk_rows, |chunk| {
            g.push(chunk.iter().map(|(s, t)| (s, t)))
        })?;
        read_done();
        g.gallery.index_rows(0)?;
        Ok(g)
    }

    /// Adds templates; those of another model or dimension are skipped, as the
    /// scan skipped them.
    pub fn add<'a>(
        &mut self,
        items: impl IntoIterator<Item = (&'a SubjectId, &'a ipseity_core::Template)>,
    ) -> Result<()> {
        let from = self.gallery.len();
        self.push(items)?;
        self.gallery.index_rows(from)
    }

    /// [`FaceGallery::add`] without indexing: [`Gallery::index_rows`] must
    /// follow.
    fn push<'a>(
        &mut self,
        items: impl IntoIterator<Item = (&'a SubjectId, &'a ipseity_core::Template)>,
    ) -> Result<()> {
        let mut rows: Vec<(u32, &[f32])> = Vec::new();
        for (s, t) in items {
            if t.model != ipseity_face::MODEL_ID || t.vector.len() != self.gallery.dim() {
                continue;
            }
            let next = u32::try_from(self.names.len())?;
            let o = *self.ordinals.entry(s.clone()).or_insert_with(|| {
                self.names.push(s.clone());
                next
            });
            rows.push((o, &t.vector));
        }
        self.gallery.push_rows(&rows)
    }

    /// Number of subjects searched (erased ones no longer count).
    pub fn subjects(&self) -> usize {
        self.ordinals.len()
    }

    /// Takes an erased subject out of the gallery; a later enrolment under the same id
    /// starts afresh. Returns how many templates it had here.
    pub fn remove(&mut self, subject: &SubjectId) -> usize {
        match self.ordinals.remove(subject) {
            Some(o) => self.gallery.remove_subject(o),
            None => 0,
        }
    }

    /// Subjects whose best exact similarity to `probe` is at least `floor`,
    /// best first; see [`Gallery::matches`].
    pub fn matches(&self, probe: &[f32], floor: f32, depth: usize) -> Vec<(&SubjectId, f32)> {
        self.matches_ordinals(probe, floor, depth)
            .into_iter()
            .map(|(o, s)| (&self.names[o as usize], s))
            .collect()
    }

    /// Like [`FaceGallery::matches`] with subject ordinals (indices of `names`).
    pub fn matches_ordinals(&self, probe: &[f32], floor: f32, depth: usize) -> Vec<(u32, f32)> {
        if probe.len() != self.gallery.dim() {
            return Vec::new();
        }
        self.gallery.matches(probe, floor, depth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The former linear scan: best similarity per subject, kept if `>= floor`.
    fn scan(g: &Gallery, probe: &[f32], floor: f32, skip: Option<u32>) -> Vec<(u32, f32)> {
        let mut best = vec![f32::NEG_INFINITY; g.subjects()];
        for r in 0..g.len() {
            let s = g.owner(r);
            let v = ipseity_face::similarity(probe, g.row(r));
            best[s as usize] = best[s as usize].max(v);
        }
        let mut out: Vec<(u32, f32)> = best
            .into_iter()
            .enumerate()
            .map(|(s, v)| (s as u32, v))
            .filter(|&(s, v)| v >= floor && Some(s) != skip)
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }

    /// A dlib-like gallery: identity centres, samples around them, norms
    /// scaled into 0.9..1.1, some near-duplicate subjects.
    fn gallery(seed: u64, subjects: usize, per: usize, dim: usize) -> (Gallery, Vec<f32>) {
        let mut rng = ipseity_index::synth::Rng::new(seed);
        let mut g = Gallery::new(dim);
        let mut rows: Vec<(u32, Vec<f32>)> = Vec::new();
        let mut centres: Vec<Vec<f32>> = Vec::new();
        let unit = |rng: &mut ipseity_index::synth::Rng, c: Option<&[f32]>, spread: f32| {
            let mut v: Vec<f32> = (0..dim)
                .map(|d| c.map_or(0.0, |c| c[d]) + spread * rng.normal() / (dim as f32).sqrt())
                .collect();
            let n = norm(&v) as f32;
            let scale = (0.9 + 0.2 * rng.uniform() as f32) / n;
            v.iter_mut().for_each(|x| *x *= scale);
            v
        };
        for s in 0..subjects {
            // One subject in four is a near copy of an earlier one.
            let c = if s > 0 && rng.below(4) == 0 {
                let src = centres[rng.below(s)].clone();
                unit(&mut rng, Some(&src), 0.15)
            } else {
                unit(&mut rng, None, 1.0)
            };
            for _ in 0..1 + rng.below(per) {
                rows.push((s as u32, unit(&mut rng, Some(&c), 0.35)));
            }
            centres.push(c);
        }
        let items: Vec<(u32, &[f32])> = rows.iter().map(|(s, v)| (*s, v.as_slice())).collect();
        g.extend(&items).expect("extend");
        let src = centres[rng.below(subjects)].clone();
        let probe = unit(&mut rng, Some(&src), 0.3);
        (g, probe)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn index_candidates_equal_the_linear_scan(
            seed in any::<u64>(),
            subjects in 1usize..120,
            per in 1usize..4,
            floor in 0.0f32..0.9,
            depth in 1usize..8,
        ) {
            let (g, probe) = gallery(seed, subjects, per, 128);
            prop_assert_eq!(g.matches(&probe, floor, depth), scan(&g, &probe, floor, None));
            // Every row as a probe, batched, own subject left out.
            let batched = g.matches_rows(0..g.len(), floor, depth);
            for (r, got) in batched.iter().enumerate() {
                prop_assert_eq!(got, &scan(&g, g.row(r), floor, Some(g.owner(r))));
            }
        }
    }

    #[test]
    fn zero_rows_and_probes_fall_back_to_the_scan() {
        let (mut g, probe) = gallery(7, 30, 2, 16);
        let zero = vec![0.0f32; 16];
        let next = g.subjects() as u32;
        g.extend(&[(next, zero.as_slice())]).expect("extend");
        assert_eq!(g.matches(&probe, -5.0, 1), scan(&g, &probe, -5.0, None));
        assert_eq!(g.matches(&zero, 0.0, 1), scan(&g, &zero, 0.0, None));
        assert!(g.matches(&probe, 1.5, 1).is_empty());
    }

    #[test]
    fn deep_floors_force_the_depth_to_grow() {
        // A floor of -1 accepts everything: the depth must double to cover all.
        let (g, probe) = gallery(3, 200, 2, 128);
        let got = g.matches(&probe, -1.0, 1);
        assert_eq!(got.len(), 200);
        assert_eq!(got, scan(&g, &probe, -1.0, None));
    }

    #[test]
    fn chunked_load_equals_adding_everything_at_once() {
        use ipseity_core::Template;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = ipseity_store::Store::open(dir.path()).expect("store");
        let mut rng = ipseity_index::synth::Rng::new(11);
        let face = |rng: &mut ipseity_index::synth::Rng, dim: usize, model: &str| {
            let v = (0..dim).map(|_| rng.normal() * 0.09).collect();
            Template::new(Modality::Face, model, v, 90).expect("template")
        };
        // Enrolled out of subject order; with rows the gallery skips (another
        // model, another dimension) and one the index refuses (a zero vector).
        for s in (0..9).rev() {
            let mut ts: Vec<Template> = (0..1 + s % 3)
                .map(|_| face(&mut rng, FACE_DIM, ipseity_face::MODEL_ID))
                .collect();
            match s {
                2 => ts.push(face(&mut rng, FACE_DIM, "other-model")),
                4 => ts.insert(0, face(&mut rng, 16, ipseity_face::MODEL_ID)),
                6 => ts.push(
                    Template::new(
                        Modality::Face,
                        ipseity_face::MODEL_ID,
                        vec![0.0; FACE_DIM],
                        90,
                    )
                    .expect("zero"),
                ),
                _ => {}
            }
            let id = SubjectId::new(format!("s{s}")).expect("id");
            store.enroll(&id, &ts, None).expect("enroll");
        }
        let mut want = FaceGallery::new(FACE_DIM);
        let all = store.all_templates(Modality::Face).expect("all");
        want.add(all.iter().map(|(s, t)| (s, t))).expect("add");
        assert_eq!(want.gallery.len(), all.len() - 2);
        assert_eq!(want.gallery.unindexed.len(), 1);
        for chunk in [1, 2, 3, all.len(), LOAD_CHUNK] {
            let mut reads = 0;
            let got = FaceGallery::load_with(&store, FACE_DIM, chunk, || reads += 1).expect("load");
            assert_eq!(reads, 1);
            assert_eq!(got.names, want.names, "chunk {chunk}");
            assert_eq!(got.gallery.len(), want.gallery.len());
            assert_eq!(got.gallery.vectors, want.gallery.vectors);
            assert_eq!(got.gallery.owner, want.gallery.owner);
            assert_eq!(got.gallery.by_subject, want.gallery.by_subject);
            assert_eq!(got.gallery.unindexed, want.gallery.unindexed);
            assert_eq!(got.gallery.refused_rows, want.gallery.refused_rows);
            assert_eq!(got.gallery.index.len(), want.gallery.index.len());
            assert_eq!(got.gallery.index.len(), want.gallery.len() - 1);
            for r in 0..got.gallery.len() {
                let probe = got.gallery.row(r);
                assert_eq!(
                    got.matches_ordinals(probe, 0.0, 1),
                    want.matches_ordinals(probe, 0.0, 1)
                );
            }
        }
        // Later additions still go to the index.
        let mut got = FaceGallery::load(&store, FACE_DIM).expect("load");
        let extra = face(&mut rng, FACE_DIM, ipseity_face::MODEL_ID);
        let id = SubjectId::new("s9").expect("id");
        got.add([(&id, &extra)]).expect("add");
        assert_eq!(got.gallery.index.len(), want.gallery.index.len() + 1);
        assert_eq!(got.matches(&extra.vector, 0.99, 1), vec![(&id, 1.0)]);
    }

    /// Start-up cost of the "rebuild on start" choice: `FaceGallery::load`
    /// of `N` templates from a store, split into reading (decrypting straight
    /// into the gallery's raw rows) and building the index. Run with
    /// `IPSEITY_STARTUP_N=100000 cargo test -p ipseity-cli --bin ipseity
    /// startup_rebuild -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing; writes N templates to a temporary store"]
    fn startup_rebuild_time() {
        use ipseity_core::Template;
        let status_kib = |key: &str| -> u64 {
            std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with(key))
                        .and_then(|l| l.split_whitespace().nth(1))
                        .and_then(|v| v.parse().ok())
                })
                .unwrap_or(0)
        };
        let n: usize = std::env::var("IPSEITY_STARTUP_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000);
        let per = 100;
        let dir = tempfile::tempdir().expect("tempdir");
        let t = std::time::Instant::now();
        {
            // The enrolment's store and buffers are dropped before start-up.
            let mut store = ipseity_store::Store::open(dir.path()).expect("store");
            let mut rng = ipseity_index::synth::Rng::new(1);
            for s in 0..n.div_ceil(per) {
                let templates: Vec<Template> = (0..per.min(n - s * per))
                    .map(|_| {
                        let v = (0..FACE_DIM).map(|_| rng.normal() * 0.09).collect();
                        Template::new(Modality::Face, ipseity_face::MODEL_ID, v, 90).expect("t")
                    })
                    .collect();
                let id = SubjectId::new(format!("s{s:07}")).expect("id");
                store.enroll(&id, &templates, None).expect("enroll");
            }
        }
        let write_s = t.elapsed().as_secs_f64();
        let write_rss = status_kib("VmRSS:");
        let write_hwm = status_kib("VmHWM:");
        fn disk_bytes(p: &std::path::Path) -> u64 {
            std::fs::read_dir(p)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => disk_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        let store_bytes = disk_bytes(dir.path());
        // Start-up as a command does it: open the store, then load.
        let t = std::time::Instant::now();
        let store = ipseity_store::Store::open(dir.path()).expect("store");
        let mut read = (0.0, 0, 0);
        let g = FaceGallery::load_with(&store, FACE_DIM, LOAD_CHUNK, || {
            read = (
                t.elapsed().as_secs_f64(),
                status_kib("VmRSS:"),
                status_kib("VmHWM:"),
            );
        })
        .expect("load");
        let startup_s = t.elapsed().as_secs_f64();
        let built_rss = status_kib("VmRSS:");
        assert_eq!(g.gallery.len(), n);
        assert_eq!(g.gallery.index.len(), n);
        // Per-phase resident memory and the high-water mark after each phase
        // (it cannot be reset, so the enrolment's own peak is printed too;
        // Linux only, 0 elsewhere).
        eprintln!(
            "{{\"templates\":{n},\"write_s\":{write_s:.2},\"read_decrypt_s\":{:.3},\"build_index_s\":{:.3},\"startup_s\":{startup_s:.3},\"store_bytes\":{store_bytes},\"rss_after_write_kib\":{write_rss},\"peak_after_write_kib\":{write_hwm},\"rss_after_read_kib\":{},\"peak_after_read_kib\":{},\"rss_after_build_kib\":{built_rss},\"peak_rss_kib\":{}}}",
            read.0,
            startup_s - read.0,
            read.1,
            read.2,
            status_kib("VmHWM:")
        );
    }
}
