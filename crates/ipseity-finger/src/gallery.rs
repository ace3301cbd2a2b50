//! 1:1 and 1:N comparison of multi-finger records, with fusion to a false-match rate.
//!
//! A [`FingerGallery`] holds prepared templates grouped by subject and finger position. A
//! probe is one or more fingers with positions. Each probe finger is compared with the
//! subject's references of the same position (or all of them when either side's position is
//! unknown); the best score per probe finger becomes an FMR through the
//! [`ScoreCalibration`], and the fingers are fused with [`fisher_combine`].
//!
//! Search over large galleries first shortlists references by the matcher's fixed-length
//! descriptor in an exact cosine index, then re-matches the shortlist exactly. Below
//! [`FingerGallery::EXHAUSTIVE_BELOW`] references every one is matched, so small galleries
//! lose nothing to the pre-filter.

use std::collections::HashMap;
use std::hash::Hash;

use ipseity_index::{ExactIndex, Index as _, Storage};
use rayon::prelude::*;

use crate::fusion::{fisher_combine, ScoreCalibration};
use crate::matcher::{self, Prepared};
use crate::{FingerPosition, FingerTemplate};

/// One reference finger.
struct Reference<K> {
    subject: K,
    position: FingerPosition,
    prepared: Prepared,
}

/// A probe finger, prepared.
pub struct ProbeFinger {
    /// Its position, or [`FingerPosition::Unknown`].
    pub position: FingerPosition,
    /// The prepared template.
    pub prepared: Prepared,
}

impl ProbeFinger {
    /// Prepares a probe from a template.
    pub fn new(t: &FingerTemplate, cfg: &matcher::MatcherConfig) -> Self {
        Self {
            position: t.position,
            prepared: matcher::prepare(t, cfg),
        }
    }
}

/// A subject's fused result.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectMatch<K> {
    /// The subject.
    pub subject: K,
    /// Fused false-match rate of this comparison (smaller is stronger evidence).
    pub fmr: f64,
    /// How many probe fingers found a reference to compare with.
    pub fingers_compared: usize,
}

/// Why a gallery operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GalleryError {
    /// The descriptor index refused an operation.
    #[error("descriptor index: {0}")]
    Index(#[from] ipseity_index::IndexError),
}

fn positions_compatible(a: FingerPosition, b: FingerPosition) -> bool {
    a == b || a == FingerPosition::Unknown || b == FingerPosition::Unknown
}

/// Prepared references of many subjects.
pub struct FingerGallery<K> {
    refs: Vec<Reference<K>>,
    by_subject: HashMap<K, Vec<u32>>,
    prefilter: Option<ExactIndex<u32>>,
    calibration: ScoreCalibration,
}

impl<K: Clone + Eq + Hash + Ord + Send + Sync> FingerGallery<K> {
    /// Galleries with fewer references are matched exhaustively.
    pub const EXHAUSTIVE_BELOW: usize = 20_000;

    /// An empty gallery deciding with `calibration`.
    pub fn new(calibration: ScoreCalibration) -> Self {
        Self {
            refs: Vec::new(),
            by_subject: HashMap::new(),
            prefilter: None,
            calibration,
        }
    }

    /// Adds prepared references; call [`FingerGallery::build_prefilter`] after the last add.
    pub fn add(&mut self, subject: K, position: FingerPosition, prepared: Prepared) {
        let id = self.refs.len() as u32;
        self.by_subject.entry(subject.clone()).or_default().push(id);
        self.refs.push(Reference {
            subject,
            position,
            prepared,
        });
        self.prefilter = None;
    }

    /// Number of references.
    pub fn len(&self) -> usize {
        self.refs.len()
    }

    /// Whether the gallery holds nothing.
    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }

    /// Number of subjects.
    pub fn subjects(&self) -> usize {
        self.by_subject.len()
    }

    /// The calibration in force.
    pub fn calibration(&self) -> &ScoreCalibration {
        &self.calibration
    }

    /// Builds the descriptor index used above [`FingerGallery::EXHAUSTIVE_BELOW`] references.
    pub fn build_prefilter(&mut self) -> Result<(), GalleryError> {
        let index = ExactIndex::new(matcher::DESCRIPTOR_DIM, Storage::Int8);
        let descriptors: Vec<Vec<f32>> = self
            .refs
            .par_iter()
            .map(|r| matcher::descriptor(&r.prepared))
            .collect();
        let items: Vec<(u32, u64, &[f32])> = descriptors
            .iter()
            .enumerate()
            .filter(|(_, d)| d.iter().any(|v| *v != 0.0))
            .map(|(i, d)| (i as u32, i as u64, d.as_slice()))
            .collect();
        index.extend(&items)?;
        self.prefilter = Some(index);
        Ok(())
    }

    /// Fuses per-finger best scores into one FMR.
    fn fuse(&self, best: &[Option<f32>]) -> (f64, usize) {
        let fmrs: Vec<f64> = best
            .iter()
            .flatten()
            .map(|s| self.calibration.fmr_at(*s))
            .collect();
        (fisher_combine(&fmrs), fmrs.len())
    }

    /// 1:1: the probe fingers against one subject's references. `None` when the subject has
    /// no reference.
    pub fn verify(&self, subject: &K, probe: &[ProbeFinger]) -> Option<SubjectMatch<K>> {
        let ids = self.by_subject.get(subject)?;
        let best: Vec<Option<f32>> = probe
            .iter()
            .map(|p| {
                ids.iter()
                    .map(|&i| &self.refs[i as usize])
                    .filter(|r| positions_compatible(p.position, r.position))
                    .map(|r| matcher::score(&p.prepared, &r.prepared))
                    .reduce(f32::max)
            })
            .collect();
        let (fmr, fingers_compared) = self.fuse(&best);
        Some(SubjectMatch {
            subject: subject.clone(),
            fmr,
            fingers_compared,
        })
    }

    /// The references each probe finger is re-matched against: all compatible ones in small
    /// galleries, else the `shortlist` best by descriptor.
    fn candidates(&self, p: &ProbeFinger, shortlist: usize) -> Vec<u32> {
        match &self.prefilter {
            // A probe whose descriptor is empty (too few minutiae pairs) cannot be
            // shortlisted; it falls through to the exhaustive scan rather than finding nothing.
            Some(index) if self.refs.len() >= Self::EXHAUSTIVE_BELOW => {
                match index.search(&matcher::descriptor(&p.prepared), shortlist, -1.0) {
                    Ok(hits) => hits
                        .into_iter()
                        .map(|h| h.subject)
                        .filter(|&i| {
                            positions_compatible(p.position, self.refs[i as usize].position)
                        })
                        .collect(),
                    Err(_) => self.compatible(p),
                }
            }
            _ => self.compatible(p),
        }
    }

    /// Every reference whose position is compatible with the probe's.
    fn compatible(&self, p: &ProbeFinger) -> Vec<u32> {
        (0..self.refs.len() as u32)
            .filter(|&i| positions_compatible(p.position, self.refs[i as usize].position))
            .collect()
    }

    /// 1:N: the `top` subjects with the smallest fused FMR, strongest first. `shortlist` is
    /// how many references per probe finger survive the descriptor pre-filter in large
    /// galleries. Subjects are fused over the probe fingers that reached them; a finger that
    /// reached no reference of a subject counts as no evidence (FMR 1).
    pub fn identify(
        &self,
        probe: &[ProbeFinger],
        top: usize,
        shortlist: usize,
    ) -> Vec<SubjectMatch<K>> {
        let mut best: HashMap<&K, Vec<Option<f32>>> = HashMap::new();
        for (f, p) in probe.iter().enumerate() {
            let cands = self.candidates(p, shortlist);
            let scores: Vec<(u32, f32)> = cands
                .par_iter()
                .map(|&i| {
                    (
                        i,
                        matcher::score(&p.prepared, &self.refs[i as usize].prepared),
                    )
                })
                .collect();
            for (i, s) in scores {
                let entry = best
                    .entry(&self.refs[i as usize].subject)
                    .or_insert_with(|| vec![None; probe.len()]);
                let slot = &mut entry[f];
                *slot = Some(slot.map_or(s, |old: f32| old.max(s)));
            }
        }
        let mut out: Vec<SubjectMatch<K>> = best
            .into_iter()
            .map(|(subject, scores)| {
                let (fmr, fingers_compared) = self.fuse(&scores);
                SubjectMatch {
                    subject: subject.clone(),
                    fmr,
                    fingers_compared,
                }
            })
            .collect();
        out.sort_by(|a, b| a.fmr.total_cmp(&b.fmr).then(a.subject.cmp(&b.subject)));
        out.truncate(top);
        out
    }
}
