//! Deterministic face-like galleries for tests and benchmarks.
//!
//! Real face embeddings are not uniform on the sphere: they cluster by
//! identity, a subject's samples sit at cosine ≈ 0.6–0.8 from each other, the
//! spectrum is anisotropic, and real galleries hold near-duplicates (the same
//! person enrolled twice under two names). This generator reproduces those
//! traits from a fixed seed with its own PRNG (SplitMix64 + Box–Muller), so the
//! same gallery comes out on every machine and every version.
//! [`face_set`] follows dlib's distances more closely (a shared direction,
//! mates at L2 0.3-0.5, strangers at 0.8-1.1) and [`uniform`] gives the
//! structureless case, both for the approximate-index benchmark.
//! Architecture invariant: no I/O here; the `export_gallery` example writes
//! files.

/// Shape of a generated gallery.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthParams {
    /// Dimension of the embeddings.
    pub dim: usize,
    /// Number of gallery templates.
    pub templates: usize,
    /// Templates per identity (the last identity may have fewer).
    pub per_identity: usize,
    /// Noise of a sample around its identity centre, relative to the centre's
    /// norm (0.6 gives intra-identity cosine ≈ 0.7).
    pub spread: f32,
    /// Fraction of templates that are planted near-duplicates of an earlier
    /// template, enrolled under a new identity.
    pub duplicates: f32,
    /// Noise of a near-duplicate (0.05 gives cosine ≈ 0.999).
    pub duplicate_noise: f32,
    /// The seed.
    pub seed: u64,
}

impl SynthParams {
    /// Defaults for `templates` templates of dimension `dim`.
    pub fn new(templates: usize, dim: usize) -> Self {
        SynthParams {
            dim,
            templates,
            per_identity: 5,
            spread: 0.6,
            duplicates: 0.01,
            duplicate_noise: 0.05,
            seed: 0x1b5e_17e5,
        }
    }
}

/// A generated gallery: row-major normalised vectors and their identities.
#[derive(Debug, Clone)]
pub struct Gallery {
    /// Dimension.
    pub dim: usize,
    /// `templates * dim` components, each row of unit norm.
    pub vectors: Vec<f32>,
    /// Identity of each row.
    pub identity: Vec<u64>,
    /// Rows that are planted near-duplicates, with the row they copy.
    pub planted: Vec<(usize, usize)>,
}

impl Gallery {
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.identity.len()
    }
    /// Whether there is no row.
    pub fn is_empty(&self) -> bool {
        self.identity.is_empty()
    }
}

/// SplitMix64 with Box–Muller normals.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `(0, 1]`.
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal.
    pub fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }
    /// Uniform integer below `n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

fn normalize_in_place(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

/// Per-dimension standard deviation: a decaying spectrum, as in trained
/// embeddings where a few directions carry most variance.
fn sigma(dim: usize) -> Vec<f32> {
    (0..dim)
        .map(|d| 1.0 / (1.0 + d as f32 / 16.0).sqrt())
        .collect()
}

fn centre(rng: &mut Rng, sig: &[f32]) -> Vec<f32> {
    let mut c: Vec<f32> = sig.iter().map(|s| s * rng.normal()).collect();
    normalize_in_place(&mut c);
    c
}

fn sample(rng: &mut Rng, c: &[f32], sig: &[f32], spread: f32) -> Vec<f32> {
    let norm: f32 = sig.iter().map(|s| s * s).sum::<f32>().sqrt();
    let k = spread / norm;
    let mut v: Vec<f32> = c
        .iter()
        .zip(sig)
        .map(|(x, s)| x + k * s * rng.normal())
        .collect();
    normalize_in_place(&mut v);
    v
}

/// Generates a gallery.
pub fn gallery(p: &SynthParams) -> Gallery {
    let mut rng = Rng::new(p.seed);
    let sig = sigma(p.dim);
    let per = p.per_identity.max(1);
    let mut vectors = Vec::with_capacity(p.templates * p.dim);
    let mut identity = Vec::with_capacity(p.templates);
    let mut planted = Vec::new();
    let mut id = 0u64;
    let mut c = centre(&mut rng, &sig);
    let mut in_id = 0;
    for i in 0..p.templates {
        if i > 0 && (rng.uniform() as f32) < p.duplicates {
            let src = rng.below(i);
            let base = vectors[src * p.dim..(src + 1) * p.dim].to_vec();
            let v = sample(&mut rng, &base, &sig, p.duplicate_noise);
            vectors.extend_from_slice(&v);
            identity.push(u64::MAX - planted.len() as u64);
            planted.push((i, src));
            continue;
        }
        if in_id == per {
            id += 1;
            in_id = 0;
            c = centre(&mut rng, &sig);
        }
        vectors.extend(sample(&mut rng, &c, &sig, p.spread));
        identity.push(id);
        in_id += 1;
    }
    Gallery {
        dim: p.dim,
        vectors,
        identity,
        planted,
    }
}

/// Probes: fresh samples of gallery identities (so each has true mates in the
/// gallery), row-major, with the identity each was drawn from.
pub fn probes(g: &Gallery, p: &SynthParams, n: usize, seed: u64) -> (Vec<f32>, Vec<u64>) {
    let mut rng = Rng::new(seed);
    let sig = sigma(p.dim);
    let mut out = Vec::with_capacity(n * p.dim);
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let r = rng.below(g.len().max(1));
        // Probe near a gallery template: a sample of the same identity.
        let v = sample(&mut rng, g.row(r), &sig, p.spread * 0.7);
        out.extend(v);
        ids.push(g.identity[r]);
    }
    (out, ids)
}

/// Shape of a gallery whose distances match dlib's face embeddings.
///
/// dlib's 128-D ResNet descriptors of one person typically lie at L2
/// distance 0.3-0.5 from each other and at 0.8-1.1 from other people's (its
/// published decision threshold is 0.6); they are far from centred, so two
/// strangers still have cosine ≈ 0.4-0.7. A sample here is
/// `normalise(a·μ + b·c_id + e_id·n)`: `μ` a direction shared by everyone,
/// `c_id` the identity's own direction, `n` fresh noise, all unit vectors
/// drawn with the anisotropic spectrum of [`gallery`]. With `a² = 0.55` and
/// the identity's noise power `e_id²` drawn in `[0.045, 0.125]` (and
/// `b² = 1 − a² − e_id²`), mates sit at cosine `≈ 1 − e_id²` (L2
/// `≈ √(2 e_id²)`, 0.30-0.50) and strangers at cosine ≈ 0.55 (L2 ≈ 0.95,
/// spread by the random overlap of the identity directions).
/// Graph indexes lose more recall on such data than on uniform vectors:
/// tight clusters, and low contrast between near and far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaceParams {
    /// Dimension of the embeddings.
    pub dim: usize,
    /// Number of gallery templates.
    pub templates: usize,
    /// Templates per identity (the last identity may have fewer).
    pub per_identity: usize,
    /// Power of the shared direction, `a²`.
    pub shared: f32,
    /// Range of an identity's noise power `e_id²`.
    pub noise: (f32, f32),
    /// The seed.
    pub seed: u64,
}

impl FaceParams {
    /// dlib-like defaults for `templates` templates of dimension `dim`.
    pub fn new(templates: usize, dim: usize) -> Self {
        FaceParams {
            dim,
            templates,
            per_identity: 5,
            shared: 0.55,
            noise: (0.045, 0.125),
            seed: 0xd11b_face,
        }
    }
}

/// A face-shaped gallery with probes that are fresh samples of enrolled
/// identities (each probe has `per_identity` true mates in the gallery).
#[derive(Debug, Clone)]
pub struct FaceSet {
    /// The gallery (no planted duplicates).
    pub gallery: Gallery,
    /// Probes, row-major, unit norm.
    pub probes: Vec<f32>,
    /// Identity of each probe.
    pub probe_identity: Vec<u64>,
}

fn unit(rng: &mut Rng, sig: &[f32]) -> Vec<f32> {
    centre(rng, sig)
}

fn face_sample(
    rng: &mut Rng,
    mu: &[f32],
    c: &[f32],
    ab: (f32, f32),
    e: f32,
    sig: &[f32],
) -> Vec<f32> {
    let n = unit(rng, sig);
    let mut v: Vec<f32> = (0..mu.len())
        .map(|d| ab.0 * mu[d] + ab.1 * c[d] + e * n[d])
        .collect();
    normalize_in_place(&mut v);
    v
}

/// Generates a face-shaped gallery and `probes` probes (see [`FaceParams`]).
pub fn face_set(p: &FaceParams, probes: usize) -> FaceSet {
    let mut rng = Rng::new(p.seed);
    let sig = sigma(p.dim);
    let per = p.per_identity.max(1);
    let ids = p.templates.div_ceil(per);
    let mu = unit(&mut rng, &sig);
    let a = p.shared.clamp(0.0, 1.0);
    let (lo, hi) = (p.noise.0.min(p.noise.1), p.noise.0.max(p.noise.1));
    // Identity directions and noise powers, kept to draw probes.
    let mut centres = Vec::with_capacity(ids * p.dim);
    let mut noise = Vec::with_capacity(ids);
    for _ in 0..ids {
        centres.extend(unit(&mut rng, &sig));
        let e2 = (lo + (hi - lo) * rng.uniform() as f32).clamp(0.0, 1.0 - a);
        noise.push(e2);
    }
    let weights = |e2: f32| ((a.sqrt(), (1.0 - a - e2).max(0.0).sqrt()), e2.sqrt());
    let mut vectors = Vec::with_capacity(p.templates * p.dim);
    let mut identity = Vec::with_capacity(p.templates);
    for i in 0..p.templates {
        let id = i / per;
        let (ab, e) = weights(noise[id]);
        let c = &centres[id * p.dim..(id + 1) * p.dim];
        vectors.extend(face_sample(&mut rng, &mu, c, ab, e, &sig));
        identity.push(id as u64);
    }
    let mut out = Vec::with_capacity(probes * p.dim);
    let mut probe_identity = Vec::with_capacity(probes);
    for _ in 0..probes {
        let id = rng.below(ids.max(1));
        let (ab, e) = weights(noise[id]);
        let c = &centres[id * p.dim..(id + 1) * p.dim];
        out.extend(face_sample(&mut rng, &mu, c, ab, e, &sig));
        probe_identity.push(id as u64);
    }
    FaceSet {
        gallery: Gallery {
            dim: p.dim,
            vectors,
            identity,
            planted: Vec::new(),
        },
        probes: out,
        probe_identity,
    }
}

/// `n` unit vectors uniform on the sphere (isotropic normals, normalised),
/// row-major; the easy case for graph indexes, for comparison.
pub fn uniform(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let mut v: Vec<f32> = (0..dim).map(|_| rng.normal()).collect();
        normalize_in_place(&mut v);
        out.extend(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn deterministic_clustered_and_planted() {
        let p = SynthParams {
            duplicates: 0.05,
            ..SynthParams::new(2000, 64)
        };
        let a = gallery(&p);
        let b = gallery(&p);
        assert_eq!(a.vectors, b.vectors);
        assert_eq!(a.len(), 2000);
        assert!(!a.planted.is_empty());
        for &(i, j) in &a.planted {
            assert!(cos(a.row(i), a.row(j)) > 0.99);
        }
        // Mates are closer than strangers.
        let (mut mate, mut nm, mut other, mut no) = (0.0, 0, 0.0, 0);
        for i in 0..200 {
            for j in 0..i {
                let same = a.identity[i] == a.identity[j];
                let c = cos(a.row(i), a.row(j));
                if same {
                    mate += c;
                    nm += 1;
                } else {
                    other += c;
                    no += 1;
                }
            }
        }
        let (mate, other) = (mate / nm as f32, other / no as f32);
        assert!(mate > 0.5 && mate < 0.9, "mate {mate}");
        assert!(other < 0.2, "other {other}");
    }

    fn l2(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f32>()
            .sqrt()
    }

    #[test]
    fn face_set_matches_dlib_distances() {
        let p = FaceParams::new(3000, 128);
        let a = face_set(&p, 200);
        let b = face_set(&p, 200);
        assert_eq!(a.gallery.vectors, b.gallery.vectors);
        assert_eq!(a.probes, b.probes);
        assert_eq!(a.gallery.len(), 3000);
        let g = &a.gallery;
        let (mut gen, mut imp) = (Vec::new(), Vec::new());
        for i in 0..600 {
            for j in 0..i {
                let d = l2(g.row(i), g.row(j));
                if g.identity[i] == g.identity[j] {
                    gen.push(d);
                } else {
                    imp.push(d);
                }
            }
        }
        let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
        let (mg, mi) = (mean(&gen), mean(&imp));
        assert!((0.3..=0.5).contains(&mg), "genuine mean L2 {mg}");
        assert!((0.8..=1.1).contains(&mi), "impostor mean L2 {mi}");
        // Most impostor pairs sit in dlib's range and above its 0.6 threshold.
        let inside = imp.iter().filter(|&&d| (0.8..=1.1).contains(&d)).count();
        assert!(
            inside as f32 > 0.9 * imp.len() as f32,
            "{inside} of {}",
            imp.len()
        );
        assert!(imp.iter().all(|&d| d > 0.6));
        // Probes are fresh samples: near their identity's templates.
        for (q, &id) in a.probes.chunks_exact(128).zip(&a.probe_identity).take(50) {
            let r = id as usize * p.per_identity;
            assert!(l2(q, g.row(r)) < 0.6, "probe far from its mate");
        }
    }

    #[test]
    fn uniform_is_unit_and_seeded() {
        let u = uniform(100, 16, 3);
        assert_eq!(u, uniform(100, 16, 3));
        assert_ne!(u, uniform(100, 16, 4));
        for r in u.chunks_exact(16) {
            assert!((cos(r, r) - 1.0).abs() < 1e-5);
        }
    }
}
