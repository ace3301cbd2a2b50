//! Deterministic face-like galleries for tests and benchmarks.
//!
//! Real face embeddings are not uniform on the sphere: they cluster by
//! identity, a subject's samples sit at cosine ≈ 0.6–0.8 from each other, the
//! spectrum is anisotropic, and real galleries hold near-duplicates (the same
//! person enrolled twice under two names). This generator reproduces those
//! traits from a fixed seed with its own PRNG (SplitMix64 + Box–Muller), so the
//! same gallery comes out on every machine and every version.
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
}
