//! Protocol statistics beyond a DET curve: the LFW-style 10-fold accuracy,
//! binomial confidence intervals, 1:N identification rates and a DET curve
//! thinned for plotting.

use crate::DetPoint;
use serde::Serialize;

/// One labelled comparison of a fold-based protocol.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FoldPair {
    /// The fold (any small integer) the pair belongs to.
    pub fold: u8,
    /// Whether the two samples show one person.
    pub same: bool,
    /// The comparison's similarity (higher is more alike). A pair that could
    /// not be compared scores `f32::NEG_INFINITY`: never accepted.
    pub score: f32,
}

/// Result of [`k_fold_accuracy`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FoldAccuracy {
    /// Accuracy on each fold, with the threshold learnt on the others.
    pub per_fold: Vec<f64>,
    /// The threshold used for each fold.
    pub thresholds: Vec<f32>,
    /// Mean of the per-fold accuracies.
    pub mean: f64,
    /// Standard error of the mean (sample standard deviation / sqrt(folds)).
    pub std_error: f64,
}

fn accuracy(pairs: &[&FoldPair], t: f32) -> f64 {
    if pairs.is_empty() {
        return 0.0;
    }
    let right = pairs.iter().filter(|p| (p.score >= t) == p.same).count();
    right as f64 / pairs.len() as f64
}

/// The threshold that maximises accuracy on `pairs` (accept when score >= t):
/// candidates are midpoints between consecutive distinct finite scores; ties
/// go to the lowest such threshold.
fn best_threshold(pairs: &[&FoldPair]) -> f32 {
    let mut s: Vec<(f32, bool)> = pairs
        .iter()
        .filter(|p| p.score.is_finite())
        .map(|p| (p.score, p.same))
        .collect();
    s.sort_by(|a, b| a.0.total_cmp(&b.0));
    if s.is_empty() {
        return f32::INFINITY;
    }
    // Threshold below everything: all finite pairs accepted.
    let mut right = pairs
        .iter()
        .filter(|p| p.same == p.score.is_finite())
        .count() as i64;
    let mut best = (right, s[0].0 - 1.0);
    let mut i = 0;
    while i < s.len() {
        let v = s[i].0;
        while i < s.len() && s[i].0 == v {
            // Raising the threshold above v rejects this pair.
            right += if s[i].1 { -1 } else { 1 };
            i += 1;
        }
        let t = if i < s.len() {
            v + (s[i].0 - v) / 2.0
        } else {
            v + 1.0
        };
        if right > best.0 {
            best = (right, t);
        }
    }
    best.1
}

/// LFW's View 2 protocol: for each fold, the threshold that maximises
/// accuracy on the other folds is applied to it. Returns `None` with fewer
/// than two folds.
pub fn k_fold_accuracy(pairs: &[FoldPair]) -> Option<FoldAccuracy> {
    let mut folds: Vec<u8> = pairs.iter().map(|p| p.fold).collect();
    folds.sort_unstable();
    folds.dedup();
    if folds.len() < 2 {
        return None;
    }
    let mut per_fold = vec![];
    let mut thresholds = vec![];
    for &f in &folds {
        let train: Vec<&FoldPair> = pairs.iter().filter(|p| p.fold != f).collect();
        let test: Vec<&FoldPair> = pairs.iter().filter(|p| p.fold == f).collect();
        let t = best_threshold(&train);
        thresholds.push(t);
        per_fold.push(accuracy(&test, t));
    }
    let n = per_fold.len() as f64;
    let mean = per_fold.iter().sum::<f64>() / n;
    let var = per_fold.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1.0);
    Some(FoldAccuracy {
        per_fold,
        thresholds,
        mean,
        std_error: (var / n).sqrt(),
    })
}

/// Wilson score interval (95%) for `k` events in `n` trials; `(0, 1)` for `n = 0`.
/// Comparisons that share a sample are not independent, so for all-pairs
/// protocols the interval is narrower than the truth; reports say so.
pub fn wilson_95(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.959_963_984_540_054_f64;
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let den = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / den;
    let half = z * ((p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt()) / den;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// One mated 1:N search: the mate's score and the best non-mate's score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MatedSearch {
    /// Similarity to the probe's own enrolled sample.
    pub mate: f32,
    /// Highest similarity to anyone else in the gallery (`-inf` if none).
    pub best_other: f32,
}

/// FNIR at a false-positive identification rate, rank 1 (a candidate list of one).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct IdentRate {
    /// The FPIR asked for.
    pub fpir: f64,
    /// Threshold: the top candidate is returned when its score is at least this.
    pub threshold: f32,
    /// Share of mated searches whose mate is not returned at rank 1.
    pub fnir: f64,
    /// 95% Wilson interval of `fnir`.
    pub fnir_ci: (f64, f64),
}

/// FNIR at FPIR `fpir`: the threshold is the smallest at which at most
/// `fpir` of the non-mated searches return a candidate; a mated search is
/// missed when its mate scores below it or below a non-mate. `None` when the
/// non-mated searches are too few to resolve `fpir` or either set is empty.
pub fn fnir_at_fpir(mated: &[MatedSearch], nonmated_best: &[f32], fpir: f64) -> Option<IdentRate> {
    if mated.is_empty() {
        return None;
    }
    let t = crate::threshold_for_fmr(nonmated_best, fpir)?;
    let missed = mated
        .iter()
        .filter(|m| m.mate < t || m.best_other >= m.mate)
        .count();
    Some(IdentRate {
        fpir,
        threshold: t,
        fnir: missed as f64 / mated.len() as f64,
        fnir_ci: wilson_95(missed, mated.len()),
    })
}

/// A DET curve reduced for plotting: a point is kept when either rate moved
/// by at least `step` decades (log10) since the last kept point, plus the
/// first and last points. Millions of points become a few thousand.
pub fn thin_curve(points: &[DetPoint], step: f64) -> Vec<DetPoint> {
    let lg = |r: f64| r.max(1e-12).log10();
    let mut out: Vec<DetPoint> = vec![];
    for (i, p) in points.iter().enumerate() {
        let keep = match out.last() {
            None => true,
            Some(q) => {
                i + 1 == points.len()
                    || (lg(p.fmr) - lg(q.fmr)).abs() >= step
                    || (lg(p.fnmr) - lg(q.fnmr)).abs() >= step
            }
        };
        if keep {
            out.push(*p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(fold: u8, same: bool, score: f32) -> FoldPair {
        FoldPair { fold, same, score }
    }

    #[test]
    fn separable_folds_are_perfect_and_the_threshold_sits_between() {
        let mut pairs = vec![];
        for f in 0..4 {
            pairs.push(fp(f, true, 0.9));
            pairs.push(fp(f, true, 0.8));
            pairs.push(fp(f, false, 0.2));
            pairs.push(fp(f, false, 0.1));
        }
        let a = k_fold_accuracy(&pairs).unwrap();
        assert_eq!(a.per_fold, vec![1.0; 4]);
        assert_eq!(a.std_error, 0.0);
        for t in a.thresholds {
            assert!(t > 0.2 && t < 0.8, "{t}");
        }
    }

    #[test]
    fn each_fold_uses_the_others_threshold() {
        // Fold 0 alone would choose 0.55; the other folds put the best
        // threshold between 0.3 and 0.4, so fold 0's 0.37 impostor is accepted.
        let mut pairs = vec![fp(0, true, 0.6), fp(0, false, 0.37)];
        for f in 1..3 {
            pairs.push(fp(f, true, 0.4));
            pairs.push(fp(f, false, 0.3));
        }
        let a = k_fold_accuracy(&pairs).unwrap();
        assert_eq!(a.per_fold[0], 0.5);
        assert!(a.mean < 1.0);
        assert!(a.std_error > 0.0);
    }

    #[test]
    fn a_pair_that_could_not_be_compared_is_never_accepted() {
        let pairs = vec![
            fp(0, true, f32::NEG_INFINITY),
            fp(0, false, 0.1),
            fp(1, true, 0.9),
            fp(1, false, 0.1),
        ];
        let a = k_fold_accuracy(&pairs).unwrap();
        assert_eq!(a.per_fold[0], 0.5);
        assert!(k_fold_accuracy(&pairs[..2]).is_none());
    }

    #[test]
    fn wilson_bounds_hold_the_rate() {
        let (lo, hi) = wilson_95(10, 100);
        assert!(lo < 0.1 && hi > 0.1 && lo > 0.04 && hi < 0.18, "{lo} {hi}");
        let (lo, hi) = wilson_95(0, 1000);
        assert!(lo < 1e-12);
        assert!(hi > 0.0 && hi < 0.005);
        assert_eq!(wilson_95(0, 0), (0.0, 1.0));
    }

    #[test]
    fn fnir_counts_low_mates_and_outranked_mates() {
        let nonmated: Vec<f32> = (0..100).map(|i| i as f32 / 100.0).collect();
        let mated = [
            MatedSearch {
                mate: 0.995,
                best_other: 0.2,
            }, // found
            MatedSearch {
                mate: 0.5,
                best_other: 0.2,
            }, // below the threshold
            MatedSearch {
                mate: 0.999,
                best_other: 0.9995,
            }, // outranked
            MatedSearch {
                mate: 1.5,
                best_other: 0.1,
            }, // found
        ];
        let r = fnir_at_fpir(&mated, &nonmated, 1e-2).unwrap();
        assert!(
            r.threshold > 0.98 && r.threshold <= 0.99 + 1e-6,
            "{}",
            r.threshold
        );
        assert_eq!(r.fnir, 0.5);
        assert!(fnir_at_fpir(&mated, &nonmated, 1e-3).is_none());
        assert!(fnir_at_fpir(&[], &nonmated, 1e-2).is_none());
    }

    #[test]
    fn thinning_keeps_the_ends_and_bounds_the_count() {
        let g: Vec<f32> = (0..10_000).map(|i| 0.5 + i as f32 / 20_000.0).collect();
        let im: Vec<f32> = (0..100_000).map(|i| i as f32 / 200_000.0).collect();
        let full = crate::det_curve(&g, &im).unwrap();
        let thin = thin_curve(&full, 0.01);
        assert!(thin.len() < 2_000, "{}", thin.len());
        assert_eq!(thin.first(), full.first());
        assert_eq!(thin.last(), full.last());
    }
}
