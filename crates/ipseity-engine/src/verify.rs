//! Verification (1:1) with a face and fingers together: decision-level fusion.
//!
//! Each modality decides at its own operating point (the face policy's threshold, the
//! fingers' calibrated false-match rate); the answer accepts only when both accept, so the
//! fused false-match rate is at most the lower of the two (and their product when the
//! modalities err independently). A firm "no" from either, with no "yes" from the other,
//! rejects; any other mix (a conflict, or a borderline result) goes to a person. Score-level
//! fusion would need the face scores calibrated to a false-match rate as the fingers are;
//! until the face has such a calibration, deciding per modality keeps each stated rate true.

use ipseity_core::Decision;

/// The fused decision of a face and a fingerprint decision.
pub fn fuse(face: Decision, finger: Decision) -> Decision {
    use Decision::{Accept, NeedsReview, Reject};
    match (face, finger) {
        (Accept, Accept) => Accept,
        (Reject, Reject) | (Reject, NeedsReview) | (NeedsReview, Reject) => Reject,
        _ => NeedsReview,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::{Accept, NeedsReview, Reject};

    #[test]
    fn accepts_only_when_both_accept() {
        let all = [Accept, Reject, NeedsReview];
        for a in all {
            for b in all {
                let f = fuse(a, b);
                assert_eq!(f == Accept, a == Accept && b == Accept, "{a} {b}");
                // Symmetric: the order of the modalities does not matter.
                assert_eq!(f, fuse(b, a));
            }
        }
        assert_eq!(fuse(Accept, Reject), NeedsReview);
        assert_eq!(fuse(NeedsReview, Reject), Reject);
        assert_eq!(fuse(NeedsReview, Accept), NeedsReview);
    }
}
