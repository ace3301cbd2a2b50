//! Face landmarks: dlib's `shape_predictor` cascade of regression trees, evaluated
//! in Rust with dlib's own arithmetic so that the points agree with dlib's.
//!
//! The numeric choices follow dlib exactly: shapes, feature offsets and tree
//! comparisons are `f32`; the box transform and the rounding of image positions are
//! `f64`; an RGB pixel's intensity is the integer mean `(r + g + b) / 3`; a feature
//! pixel outside the image reads as 0. The result is rounded to whole pixels, as
//! dlib's `full_object_detection` stores integer points.

use ipseity_dlib::{ShapePredictor, Tree};

use crate::geom::{Point, Rect, RgbImage};

/// An affine map `p -> m * p + b` in `f64`, as dlib's `point_transform_affine`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Affine {
    /// Row-major 2x2 linear part.
    pub(crate) m: [[f64; 2]; 2],
    /// Translation.
    pub(crate) b: [f64; 2],
}

impl Affine {
    /// The identity map.
    pub(crate) const IDENTITY: Affine = Affine {
        m: [[1.0, 0.0], [0.0, 1.0]],
        b: [0.0, 0.0],
    };

    /// Applies the map, summing in dlib's order (`m * p`, then `+ b`).
    #[inline]
    pub(crate) fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        (
            self.m[0][0] * x + self.m[0][1] * y + self.b[0],
            self.m[1][0] * x + self.m[1][1] * y + self.b[1],
        )
    }
}

/// Least-squares similarity transform (rotation, uniform scale, translation, no
/// reflection) taking `from` onto `to`: Umeyama's estimate, as dlib's
/// `find_similarity_transform`.
///
/// For two dimensions the optimum has the closed form `c R = [[a, -b], [b, a]] / s`
/// with `a = cov00 + cov11`, `b = cov10 - cov01` and `s` the variance of `from`; it
/// equals dlib's SVD route (including its reflection correction) up to rounding.
/// A degenerate `from` (all points equal) gives a pure translation, as dlib's.
pub(crate) fn find_similarity_transform(from: &[(f64, f64)], to: &[(f64, f64)]) -> Affine {
    let n = from.len().min(to.len());
    if n == 0 {
        return Affine::IDENTITY;
    }
    let nf = n as f64;
    let (mut mfx, mut mfy, mut mtx, mut mty) = (0.0, 0.0, 0.0, 0.0);
    for (f, t) in from.iter().zip(to) {
        mfx += f.0;
        mfy += f.1;
        mtx += t.0;
        mty += t.1;
    }
    mfx /= nf;
    mfy /= nf;
    mtx /= nf;
    mty /= nf;
    let mut sigma_from = 0.0;
    let mut cov = [[0.0f64; 2]; 2];
    for (f, t) in from.iter().zip(to) {
        let (fx, fy) = (f.0 - mfx, f.1 - mfy);
        let (tx, ty) = (t.0 - mtx, t.1 - mty);
        sigma_from += fx * fx + fy * fy;
        cov[0][0] += tx * fx;
        cov[0][1] += tx * fy;
        cov[1][0] += ty * fx;
        cov[1][1] += ty * fy;
    }
    sigma_from /= nf;
    for row in &mut cov {
        for v in row {
            *v /= nf;
        }
    }
    let m = if sigma_from != 0.0 {
        let a = (cov[0][0] + cov[1][1]) / sigma_from;
        let b = (cov[1][0] - cov[0][1]) / sigma_from;
        [[a, -b], [b, a]]
    } else {
        Affine::IDENTITY.m
    };
    let b = [
        mtx - (m[0][0] * mfx + m[0][1] * mfy),
        mty - (m[1][0] * mfx + m[1][1] * mfy),
    ];
    Affine { m, b }
}

/// dlib's `unnormalizing_tform(rect)`: maps `(0,0)` to the top-left corner and
/// `(1,1)` to the bottom-right corner of `rect`. dlib passes the corners through
/// `f32`, so this does too.
pub(crate) fn unnormalizing_tform(rect: Rect) -> Affine {
    let l = rect.left as f32 as f64;
    let t = rect.top as f32 as f64;
    let r = rect.right as f32 as f64;
    let b = rect.bottom as f32 as f64;
    Affine {
        m: [[r - l, 0.0], [0.0, b - t]],
        b: [l, t],
    }
}

/// dlib's conversion of a real position to an integer pixel: `floor(v + 0.5)`.
/// `None` when the value is not finite, which dlib's x86 build also treats as
/// far outside any image.
#[inline]
pub(crate) fn round_to_pixel(v: f64) -> Option<i64> {
    let r = (v + 0.5).floor();
    r.is_finite().then_some(r as i64)
}

/// The grey level dlib reads from an RGB pixel: the truncated mean of the channels.
#[inline]
pub(crate) fn intensity(p: [u8; 3]) -> u8 {
    ((p[0] as u32 + p[1] as u32 + p[2] as u32) / 3) as u8
}

/// Shape point `i` of a flat `[x0, y0, x1, y1, ...]` shape (0 if out of range).
#[inline]
fn location(shape: &[f32], i: usize) -> (f32, f32) {
    (
        shape.get(2 * i).copied().unwrap_or(0.0),
        shape.get(2 * i + 1).copied().unwrap_or(0.0),
    )
}

/// The similarity transform from the mean shape to the current shape, in `f32` as
/// dlib uses it (`find_tform_between_shapes`, then `matrix_cast<float>`).
fn tform_between_shapes(from: &[f32], to: &[f32]) -> [[f32; 2]; 2] {
    let n = from.len().min(to.len()) / 2;
    if n == 1 {
        return [[1.0, 0.0], [0.0, 1.0]];
    }
    let pts = |s: &[f32]| -> Vec<(f64, f64)> {
        (0..n)
            .map(|i| {
                let (x, y) = location(s, i);
                (x as f64, y as f64)
            })
            .collect()
    };
    let m = find_similarity_transform(&pts(from), &pts(to)).m;
    [
        [m[0][0] as f32, m[0][1] as f32],
        [m[1][0] as f32, m[1][1] as f32],
    ]
}

/// Reads the feature pixels of one cascade level: each is a fixed offset from an
/// anchor landmark of the current shape, warped by the mean-to-current similarity
/// and mapped into the box.
fn extract_feature_pixel_values(
    img: &RgbImage,
    to_img: &Affine,
    current: &[f32],
    reference: &[f32],
    anchors: &[usize],
    deltas: &[(f32, f32)],
    out: &mut Vec<f32>,
) {
    let t = tform_between_shapes(reference, current);
    out.clear();
    for (&a, &(dx, dy)) in anchors.iter().zip(deltas) {
        let (ax, ay) = location(current, a);
        let x = (t[0][0] * dx + t[0][1] * dy) + ax;
        let y = (t[1][0] * dx + t[1][1] * dy) + ay;
        let (px, py) = to_img.apply(x as f64, y as f64);
        let v = match (round_to_pixel(px), round_to_pixel(py)) {
            (Some(c), Some(r))
                if c >= 0
                    && r >= 0
                    && (c as u64) < img.width as u64
                    && (r as u64) < img.height as u64 =>
            {
                intensity(img.get(c as usize, r as usize)) as f32
            }
            _ => 0.0,
        };
        out.push(v);
    }
}

/// Walks one regression tree and returns the index of the leaf reached: go to the
/// left child `2i + 1` when `pix[idx1] - pix[idx2] > thresh`, else the right child
/// `2i + 2`; the leaf index is the node index minus the number of splits.
pub(crate) fn tree_leaf(tree: &Tree, pix: &[f32]) -> usize {
    let n = tree.splits.len();
    let mut i = 0usize;
    while i < n {
        let s = &tree.splits[i];
        let a = pix.get(s.idx1).copied().unwrap_or(0.0);
        let b = pix.get(s.idx2).copied().unwrap_or(0.0);
        i = if a - b > s.thresh {
            2 * i + 1
        } else {
            2 * i + 2
        };
    }
    i - n
}

/// Runs the cascade and returns the final shape in normalised box coordinates.
fn run_cascade(sp: &ShapePredictor, img: &RgbImage, to_img: &Affine) -> Vec<f32> {
    let mut current = sp.initial_shape.clone();
    let mut pix = Vec::new();
    for (level, forest) in sp.forests.iter().enumerate() {
        let anchors = sp.anchor_idx.get(level).map_or(&[][..], |v| &v[..]);
        let deltas = sp.deltas.get(level).map_or(&[][..], |v| &v[..]);
        extract_feature_pixel_values(
            img,
            to_img,
            &current,
            &sp.initial_shape,
            anchors,
            deltas,
            &mut pix,
        );
        for tree in forest {
            if let Some(leaf) = tree.leaves.get(tree_leaf(tree, &pix)) {
                for (c, d) in current.iter_mut().zip(leaf) {
                    *c += *d;
                }
            }
        }
    }
    current
}

/// The landmarks of the object in `rect`, unrounded: dlib's computation before its
/// final conversion to integer points.
pub fn predict_landmarks_subpixel(sp: &ShapePredictor, img: &RgbImage, rect: Rect) -> Vec<Point> {
    let to_img = unnormalizing_tform(rect);
    let shape = run_cascade(sp, img, &to_img);
    (0..shape.len() / 2)
        .map(|i| {
            let (x, y) = location(&shape, i);
            let (x, y) = to_img.apply(x as f64, y as f64);
            Point { x, y }
        })
        .collect()
}

/// The landmarks of the object in `rect` (for dlib's 5-point model: the outer and
/// inner corner of each eye, then the base of the nose), as
/// `dlib.shape_predictor(img, rect)` returns them: rounded to whole pixels with
/// `floor(v + 0.5)`. `rect` may extend past the image; pixels outside read as 0.
/// A coordinate too large for an `i64` (or not finite) saturates rather than panics.
pub fn predict_landmarks(sp: &ShapePredictor, img: &RgbImage, rect: Rect) -> Vec<Point> {
    predict_landmarks_subpixel(sp, img, rect)
        .into_iter()
        .map(|p| Point {
            x: ((p.x + 0.5).floor() as i64) as f64,
            y: ((p.y + 0.5).floor() as i64) as f64,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipseity_dlib::Split;
    use proptest::prelude::*;

    fn leaf(dx: f32, dy: f32) -> Vec<f32> {
        vec![dx, dy, dx, dy]
    }

    /// Two landmarks, one level, one depth-2 tree over three feature pixels.
    fn tiny() -> ShapePredictor {
        ShapePredictor {
            initial_shape: vec![0.25, 0.5, 0.75, 0.5],
            forests: vec![vec![Tree {
                splits: vec![
                    Split {
                        idx1: 0,
                        idx2: 1,
                        thresh: 10.0,
                    },
                    Split {
                        idx1: 2,
                        idx2: 1,
                        thresh: 0.0,
                    },
                    Split {
                        idx1: 1,
                        idx2: 2,
                        thresh: -5.0,
                    },
                ],
                leaves: vec![
                    leaf(0.0, 0.0),
                    leaf(0.1, 0.0),
                    leaf(0.0, 0.1),
                    leaf(-0.1, -0.1),
                ],
            }]],
            anchor_idx: vec![vec![0, 1, 0]],
            deltas: vec![vec![(0.0, 0.0), (0.0, 0.0), (0.0, 0.25)]],
        }
    }

    #[test]
    fn tree_traversal_follows_dlib_children() {
        let t = &tiny().forests[0][0];
        // 50 - 0 > 10: left to node 1; pix[2] - pix[1] = 5 > 0: left to node 3, leaf 0.
        assert_eq!(tree_leaf(t, &[50.0, 0.0, 5.0]), 0);
        // node 1, then 0 - 0 > 0 fails: node 4, leaf 1.
        assert_eq!(tree_leaf(t, &[50.0, 0.0, 0.0]), 1);
        // 0 - 0 > 10 fails: node 2; 0 - 0 > -5: node 5, leaf 2.
        assert_eq!(tree_leaf(t, &[0.0, 0.0, 0.0]), 2);
        // node 2; 0 - 9 > -5 fails: node 6, leaf 3.
        assert_eq!(tree_leaf(t, &[0.0, 0.0, 9.0]), 3);
        // Equality is not "greater": 10 - 0 > 10 fails.
        assert_eq!(tree_leaf(t, &[10.0, 0.0, 0.0]), 2);
    }

    #[test]
    fn intensity_is_truncated_mean() {
        assert_eq!(intensity([255, 255, 255]), 255);
        assert_eq!(intensity([1, 1, 0]), 0);
        assert_eq!(intensity([2, 2, 1]), 1);
        assert_eq!(intensity([10, 20, 31]), 20);
    }

    #[test]
    fn no_trees_gives_mean_shape_in_box() {
        let mut sp = tiny();
        sp.forests[0].clear();
        let img = RgbImage::new(100, 100);
        let rect = Rect {
            left: 10,
            top: 20,
            right: 50,
            bottom: 60,
        };
        let pts = predict_landmarks(&sp, &img, rect);
        // 10 + 0.25 * 40 = 20, 20 + 0.5 * 40 = 40; 10 + 0.75 * 40 = 40.
        assert_eq!(
            pts,
            vec![Point { x: 20.0, y: 40.0 }, Point { x: 40.0, y: 40.0 }]
        );
    }

    #[test]
    fn features_read_the_image_and_steer_the_tree() {
        let sp = tiny();
        let rect = Rect {
            left: 0,
            top: 0,
            right: 40,
            bottom: 40,
        };
        // Feature 0 sits at (10, 20), feature 1 at (30, 20), feature 2 at (10, 30).
        let mut img = RgbImage::new(41, 41);
        // All black: leaf 2 moves both points by (0, 0.1) * 40 = 4 px down.
        let pts = predict_landmarks(&sp, &img, rect);
        assert_eq!(
            pts,
            vec![Point { x: 10.0, y: 24.0 }, Point { x: 30.0, y: 24.0 }]
        );
        // Bright feature 0, dark feature 2: leaf 1, 4 px right.
        img.put(10, 20, [200, 200, 200]);
        let pts = predict_landmarks(&sp, &img, rect);
        assert_eq!(
            pts,
            vec![Point { x: 14.0, y: 20.0 }, Point { x: 34.0, y: 20.0 }]
        );
        // The same box moved off the image: every feature reads 0, as all black.
        let off = Rect {
            left: -1000,
            top: -1000,
            right: -960,
            bottom: -960,
        };
        let pts = predict_landmarks(&sp, &img, off);
        assert_eq!(
            pts,
            vec![
                Point {
                    x: -990.0,
                    y: -976.0
                },
                Point {
                    x: -970.0,
                    y: -976.0
                }
            ]
        );
    }

    #[test]
    fn similarity_recovers_a_known_transform() {
        let from = [(0.0, 0.0), (1.0, 0.0), (0.0, 2.0), (3.0, 1.0)];
        let (s, c) = (0.5f64.sin() * 2.0, 0.5f64.cos() * 2.0);
        let to: Vec<(f64, f64)> = from
            .iter()
            .map(|&(x, y)| (c * x - s * y + 7.0, s * x + c * y - 3.0))
            .collect();
        let t = find_similarity_transform(&from, &to);
        for (f, g) in from.iter().zip(&to) {
            let (x, y) = t.apply(f.0, f.1);
            assert!((x - g.0).abs() < 1e-12 && (y - g.1).abs() < 1e-12);
        }
        // Identity (to rounding) on identical shapes; pure translation for a single
        // repeated point.
        let t = find_similarity_transform(&from, &from);
        assert!((t.m[0][0] - 1.0).abs() < 1e-15 && t.m[1][0].abs() < 1e-15);
        let t = find_similarity_transform(&[(1.0, 1.0), (1.0, 1.0)], &[(3.0, 5.0), (3.0, 5.0)]);
        assert_eq!(
            t,
            Affine {
                m: Affine::IDENTITY.m,
                b: [2.0, 4.0]
            }
        );
    }

    #[test]
    fn empty_or_malformed_predictors_do_not_panic() {
        let img = RgbImage::new(0, 0);
        let rect = Rect {
            left: 0,
            top: 0,
            right: 10,
            bottom: 10,
        };
        let mut sp = tiny();
        sp.anchor_idx[0] = vec![7, 9, 11];
        sp.forests[0][0].splits[0].idx1 = 99;
        sp.forests[0][0].leaves.truncate(1);
        assert_eq!(predict_landmarks(&sp, &img, rect).len(), 2);
        sp.anchor_idx.clear();
        sp.deltas.clear();
        assert_eq!(predict_landmarks(&sp, &img, rect).len(), 2);
    }

    proptest! {
        #[test]
        fn arbitrary_rects_never_panic(
            l in any::<i64>(), t in any::<i64>(), r in any::<i64>(), b in any::<i64>(),
            w in 0usize..20, h in 0usize..20,
        ) {
            let img = RgbImage { width: w, height: h, data: vec![128; w * h * 3] };
            let pts = predict_landmarks(&tiny(), &img, Rect { left: l, top: t, right: r, bottom: b });
            prop_assert_eq!(pts.len(), 2);
        }
    }
}
