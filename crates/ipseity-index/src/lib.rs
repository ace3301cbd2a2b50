//! 1:N search over biometric embeddings: who in the gallery looks like this probe?
//!
//! The crate holds a gallery of L2-normalised templates in memory and answers
//! top-k queries by cosine similarity, grouped by subject (a subject may own
//! several templates; a hit is the subject's best template). It serves
//! `ipseity identify` and enrolment de-duplication, for face embeddings now and
//! voice embeddings later.
//!
//! Entry points:
//! - [`ExactIndex`]: exhaustive scan, the default. Vectors are stored as
//!   [`Storage::F32`], [`Storage::F16`] or [`Storage::Int8`]; the quantised
//!   kinds re-rank their candidates in f32 with a proven error bound, so the
//!   answer always equals the f32 brute-force answer (see [`exact`]).
//! - [`HnswIndex`]: an approximate graph index (HNSW) for galleries past the
//!   size where the exact scan meets its latency target; its returned scores
//!   are exact f32 cosines, only the candidate set is approximate (see
//!   [`hnsw`] and `docs/BENCHMARKS-index.md` for recall and the switch point).
//! - [`Index`]: the trait both implement; callers hold `dyn Index<K>`.
//! - [`kernels`]: SIMD dot products with runtime dispatch and scalar twins.
//! - [`synth`]: a deterministic generator of face-like galleries for tests and
//!   benchmarks.
//!
//! Architecture invariant: this crate knows nothing of the store, of images or
//! of models, and prints nothing. Its only I/O is the optional sealed spill
//! file of [`exact::RerankRows::SealedFile`]: an unlinked temporary file of
//! rows encrypted under a key that lives only in memory. `unsafe` appears only in
//! [`kernels`], for SIMD.
#![deny(missing_docs)]

pub mod exact;
pub mod hnsw;
pub mod kernels;
mod spill;
pub mod synth;

pub use exact::{ExactIndex, RerankRows};
pub use hnsw::{HnswIndex, HnswParams};

/// Errors raised by an index.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum IndexError {
    /// A vector's length differs from the index dimension.
    #[error("dimension mismatch: index has {expected}, vector has {got}")]
    DimensionMismatch {
        /// The index dimension.
        expected: usize,
        /// The offending vector's length.
        got: usize,
    },
    /// A vector had a NaN or infinite component, or was all zeros (no direction).
    #[error("invalid vector: {0}")]
    InvalidVector(&'static str),
    /// The index was created with an unusable parameter.
    #[error("invalid parameter: {0}")]
    InvalidParameter(&'static str),
    /// The subject already owns a template with this id.
    #[error("template {template_id} already exists for this subject")]
    DuplicateTemplate {
        /// The repeated template id.
        template_id: u64,
    },
    /// The index is full (more than `u32::MAX` templates in one shard).
    #[error("index capacity exceeded")]
    Capacity,
    /// Reading or writing the sealed spill file of re-rank rows failed
    /// ([`exact::RerankRows::SealedFile`]); the search or insert was not done.
    #[error("re-rank spill file: {op} failed: {kind}")]
    SpillIo {
        /// What was being done.
        op: &'static str,
        /// The operating system's error class.
        kind: std::io::ErrorKind,
    },
    /// A row of the sealed spill file failed authentication (the file was
    /// altered or misread); no score was computed from it.
    #[error("re-rank spill file: row {row} failed authentication")]
    SpillCorrupt {
        /// The row's position in its shard.
        row: usize,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, IndexError>;

/// How gallery vectors are held for the scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Storage {
    /// 4 bytes per component; scores are exact without re-ranking.
    F32,
    /// 2 bytes per component (IEEE half); candidates re-ranked in f32.
    F16,
    /// 1 byte per component with a symmetric per-dimension scale; candidates
    /// re-ranked in f32.
    Int8,
}

/// One search result: a subject, its best template and the cosine similarity.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit<K> {
    /// The subject that owns the template.
    pub subject: K,
    /// The subject's best-matching template.
    pub template_id: u64,
    /// Cosine similarity in `[-1, 1]`, computed in f32 over the stored vectors.
    pub similarity: f32,
}

/// A searchable gallery of templates grouped by subject.
///
/// All methods take `&self`: implementations synchronise internally so that
/// searches run while templates are added or removed. A search that starts
/// after `remove_subject` returned never returns that subject.
pub trait Index<K>: Send + Sync {
    /// Dimension of the vectors.
    fn dim(&self) -> usize;
    /// Adds one template of `subject`. The vector is L2-normalised on entry.
    fn add(&self, subject: K, template_id: u64, vector: &[f32]) -> Result<()>;
    /// Removes every template of `subject`; returns how many were removed.
    fn remove_subject(&self, subject: &K) -> usize;
    /// Replaces all templates of `subject` atomically: a concurrent search sees
    /// either the old set or the new one.
    fn replace_subject(&self, subject: K, templates: &[(u64, &[f32])]) -> Result<()>;
    /// The best `k` subjects with similarity `>= threshold`, best first; ties
    /// are broken by subject, then template id, ascending.
    fn search(&self, query: &[f32], k: usize, threshold: f32) -> Result<Vec<Hit<K>>> {
        if query.len() != self.dim() {
            return Err(IndexError::DimensionMismatch {
                expected: self.dim(),
                got: query.len(),
            });
        }
        Ok(self
            .search_batch(query, k, threshold)?
            .pop()
            .unwrap_or_default())
    }
    /// Like [`Index::search`] for a block of queries laid out one after the
    /// other (`queries.len()` must be a multiple of the dimension); returns one
    /// result list per query. One pass over memory serves the whole block.
    fn search_batch(&self, queries: &[f32], k: usize, threshold: f32) -> Result<Vec<Vec<Hit<K>>>>;
    /// Number of templates held.
    fn len(&self) -> usize;
    /// Whether the index holds no template.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
