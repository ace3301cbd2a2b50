//! How a 1:N answer is presented: decisions in bands, not a ranking.
//!
//! A list ranked by similarity tells its reader which of two enrolled subjects is closer to
//! the probe. That is a comparison oracle: with it, an attacker who may call identify can
//! hill-climb a synthetic probe towards a target without ever seeing a score. The relying
//! party needs to know who matched and how firmly (accept or needs_review), not the order
//! of closeness, so candidates come back as bands, accepts first, each band ordered by
//! subject id. A `top` cap still keeps the strongest candidates (a cap that dropped a true
//! match to keep an alphabetical one would harm the person being identified); what it
//! reveals is only which candidates fell below the cap, and only when a band overflows it.

use ipseity_core::{Decision, OperatingPoint, SubjectId};

use crate::gallery::{FaceGallery, MIN_DEPTH};

/// One candidate of a 1:N answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The enrolled subject.
    pub subject: SubjectId,
    /// Accept or needs_review (rejects are never returned).
    pub decision: Decision,
}

/// A 1:N answer: the candidates in bands and the best decision of the whole search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Accepts first, then needs_review; by subject id within a band.
    pub candidates: Vec<Candidate>,
    /// The best decision the search found, before any `top` cap; `None`: no candidate.
    pub best: Option<Decision>,
}

fn band(d: Decision) -> u8 {
    match d {
        Decision::Accept => 0,
        Decision::NeedsReview => 1,
        Decision::Reject => 2,
    }
}

/// Builds the answer from candidates ordered strongest first (the order matchers give):
/// rejects are dropped, the `top` strongest kept, then the order is replaced by bands.
pub fn answer(strongest_first: impl IntoIterator<Item = Candidate>, top: usize) -> Answer {
    let mut kept: Vec<Candidate> = strongest_first
        .into_iter()
        .filter(|c| c.decision != Decision::Reject)
        .collect();
    let best = kept.iter().map(|c| c.decision).min_by_key(|d| band(*d));
    kept.truncate(top);
    kept.sort_by(|a, b| {
        band(a.decision)
            .cmp(&band(b.decision))
            .then_with(|| a.subject.cmp(&b.subject))
    });
    Answer {
        candidates: kept,
        best,
    }
}

/// Face identify over a gallery: every subject at or above the review floor, as a scan of
/// every template would find them (see [`crate::gallery`]), answered in bands.
pub fn face(gallery: &FaceGallery, point: &OperatingPoint, probe: &[f32], top: usize) -> Answer {
    answer(face_candidates(gallery, point, probe, top), top)
}

/// The candidates of a face search, strongest first, before [`answer`] bands them: for a
/// caller that drops some first (subjects whose consent does not cover the purpose).
pub fn face_candidates(
    gallery: &FaceGallery,
    point: &OperatingPoint,
    probe: &[f32],
    top: usize,
) -> Vec<Candidate> {
    let floor = point.reject_below.min(point.accept_at);
    let depth = top.saturating_mul(4).max(MIN_DEPTH);
    gallery
        .matches(probe, floor, depth)
        .into_iter()
        .map(|(subject, s)| Candidate {
            subject: subject.clone(),
            decision: point.decide(s),
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;
    use ipseity_core::{Modality, Template};

    const POINT: OperatingPoint = OperatingPoint {
        fmr: f64::NAN,
        accept_at: 0.5,
        reject_below: 0.4,
    };

    fn unit(i: usize) -> Vec<f32> {
        let mut v = vec![0.0; 128];
        v[i] = 1.0;
        v
    }

    /// `probe` moved towards axis `i` so that its distance to `unit(0)` is `d`.
    fn at_distance(d: f32, i: usize) -> Vec<f32> {
        // unit(0) + d * unit(i) is at L2 distance d from unit(0).
        let mut v = unit(0);
        v[i] = d;
        v
    }

    fn gallery(entries: &[(&str, Vec<f32>)]) -> FaceGallery {
        let mut g = FaceGallery::new(128);
        let ts: Vec<(SubjectId, Template)> = entries
            .iter()
            .map(|(s, v)| {
                (
                    SubjectId::new(*s).unwrap(),
                    Template::new(Modality::Face, ipseity_face::MODEL_ID, v.clone(), 90).unwrap(),
                )
            })
            .collect();
        g.add(ts.iter().map(|(s, t)| (s, t))).unwrap();
        g
    }

    fn names(a: &Answer) -> Vec<(&str, Decision)> {
        a.candidates
            .iter()
            .map(|c| (c.subject.as_str(), c.decision))
            .collect()
    }

    #[test]
    fn the_order_does_not_tell_which_subject_is_closer() {
        let probe = unit(0);
        // amy closer than zed, then zed closer than amy: both accepted either way.
        let a = gallery(&[("zed", at_distance(0.3, 1)), ("amy", at_distance(0.1, 2))]);
        let b = gallery(&[("zed", at_distance(0.1, 1)), ("amy", at_distance(0.3, 2))]);
        let (ra, rb) = (face(&a, &POINT, &probe, 10), face(&b, &POINT, &probe, 10));
        assert_eq!(names(&ra), names(&rb));
        assert_eq!(
            names(&ra),
            [("amy", Decision::Accept), ("zed", Decision::Accept)]
        );
        assert_eq!(ra.best, Some(Decision::Accept));
    }

    #[test]
    fn accepts_come_before_reviews_and_the_cap_keeps_the_strongest() {
        let probe = unit(0);
        // bob accepted (0.2), ann needs review (0.55), cat rejected (0.9).
        let g = gallery(&[
            ("ann", at_distance(0.55, 1)),
            ("bob", at_distance(0.2, 2)),
            ("cat", at_distance(0.9, 3)),
        ]);
        let all = face(&g, &POINT, &probe, 10);
        assert_eq!(
            names(&all),
            [("bob", Decision::Accept), ("ann", Decision::NeedsReview)]
        );
        let one = face(&g, &POINT, &probe, 1);
        assert_eq!(names(&one), [("bob", Decision::Accept)]);
        assert_eq!(one.best, Some(Decision::Accept));
        let none = face(&gallery(&[("cat", at_distance(0.9, 3))]), &POINT, &probe, 5);
        assert!(none.candidates.is_empty());
        assert_eq!(none.best, None);
    }
}
