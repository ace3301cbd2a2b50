//! Face alignment: dlib's `get_face_chip_details` and `extract_image_chips`, so
//! that the 150x150 chip fed to the embedding network matches dlib's pixel for pixel.
//!
//! dlib fits a similarity transform from five mean-face positions to the landmarks,
//! expresses it as a rotated rectangle, and samples that rectangle with bilinear
//! interpolation. When the chip is much smaller than the rectangle it first
//! shrinks the needed part of the image with its 5-tap `pyramid_down<2>` filter,
//! and samples the pyramid level whose scale is closest above the chip's. Every
//! step here keeps dlib's order of operations, rounding and border rules.

use crate::geom::{Point, RgbImage};
use crate::landmarks::{find_similarity_transform, Affine};

/// dlib's mean positions of the five landmarks in a unit face box, in the order the
/// 5-point model outputs them (right eye outer, right eye inner, left eye outer,
/// left eye inner, nose base).
const MEAN_FACE_5: [(f64, f64); 5] = [
    (0.8595674595992, 0.2134981538014),
    (0.6460604764104, 0.2289674387677),
    (0.1205750620789, 0.2137274526848),
    (0.3340850613712, 0.2290642403242),
    (0.4901123135679, 0.6277975316475),
];

/// Bounds the pyramid-depth searches, which dlib leaves unbounded (they never end
/// for a non-finite rectangle or a one-pixel chip).
const MAX_PYRAMID_DEPTH: usize = 64;

/// A rectangle with real coordinates, as dlib's `drectangle`: `right` and `bottom`
/// are inside it, so its width is `right - left + 1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DRect {
    /// Left edge.
    pub left: f64,
    /// Top edge.
    pub top: f64,
    /// Right edge (inclusive).
    pub right: f64,
    /// Bottom edge (inclusive).
    pub bottom: f64,
}

/// C++ `std::min`: the first argument unless the second is smaller.
#[inline]
fn cmin(a: f64, b: f64) -> f64 {
    if b < a {
        b
    } else {
        a
    }
}

/// C++ `std::max`: the first argument unless it is smaller than the second.
#[inline]
fn cmax(a: f64, b: f64) -> f64 {
    if a < b {
        b
    } else {
        a
    }
}

impl DRect {
    /// True when `top > bottom` or `left > right`.
    pub fn is_empty(&self) -> bool {
        self.top > self.bottom || self.left > self.right
    }

    /// `right - left + 1`, or 0 when empty.
    pub fn width(&self) -> f64 {
        if self.is_empty() {
            0.0
        } else {
            self.right - self.left + 1.0
        }
    }

    /// `bottom - top + 1`, or 0 when empty.
    pub fn height(&self) -> f64 {
        if self.is_empty() {
            0.0
        } else {
            self.bottom - self.top + 1.0
        }
    }

    /// `width * height`.
    pub fn area(&self) -> f64 {
        self.width() * self.height()
    }

    /// The midpoint of the corners.
    pub fn center(&self) -> (f64, f64) {
        (
            (self.left + self.right) / 2.0,
            (self.top + self.bottom) / 2.0,
        )
    }

    fn point(x: f64, y: f64) -> DRect {
        DRect {
            left: x,
            top: y,
            right: x,
            bottom: y,
        }
    }

    /// dlib's union: an empty operand yields the other.
    fn union(&self, o: &DRect) -> DRect {
        if o.is_empty() {
            *self
        } else if self.is_empty() {
            *o
        } else {
            DRect {
                left: cmin(self.left, o.left),
                top: cmin(self.top, o.top),
                right: cmax(self.right, o.right),
                bottom: cmax(self.bottom, o.bottom),
            }
        }
    }

    fn intersect(&self, o: &DRect) -> DRect {
        DRect {
            left: cmax(self.left, o.left),
            top: cmax(self.top, o.top),
            right: cmin(self.right, o.right),
            bottom: cmin(self.bottom, o.bottom),
        }
    }

    /// `pyramid_down<2>::rect_down`: each corner to `p / 2 - (1.25, 0.75)`.
    fn rect_down(&self) -> DRect {
        let (x1, y1) = (self.left / 2.0 - 1.25, self.top / 2.0 - 0.75);
        let (x2, y2) = (self.right / 2.0 - 1.25, self.bottom / 2.0 - 0.75);
        DRect::point(x1, y1).union(&DRect::point(x2, y2))
    }

    /// Conversion to an integer rectangle, rounding half away from zero
    /// (`std::lround`); non-finite values saturate.
    fn round(&self) -> IRect {
        IRect {
            left: self.left.round() as i64,
            top: self.top.round() as i64,
            right: self.right.round() as i64,
            bottom: self.bottom.round() as i64,
        }
    }
}

/// Integer inclusive rectangle for the internal bookkeeping (dlib's `rectangle`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IRect {
    left: i64,
    top: i64,
    right: i64,
    bottom: i64,
}

impl IRect {
    const EMPTY: IRect = IRect {
        left: 0,
        top: 0,
        right: -1,
        bottom: -1,
    };

    fn is_empty(&self) -> bool {
        self.top > self.bottom || self.left > self.right
    }

    fn union(&self, o: &IRect) -> IRect {
        if o.is_empty() {
            *self
        } else if self.is_empty() {
            *o
        } else {
            IRect {
                left: self.left.min(o.left),
                top: self.top.min(o.top),
                right: self.right.max(o.right),
                bottom: self.bottom.max(o.bottom),
            }
        }
    }

    fn intersect(&self, o: &IRect) -> IRect {
        IRect {
            left: self.left.max(o.left),
            top: self.top.max(o.top),
            right: self.right.min(o.right),
            bottom: self.bottom.min(o.bottom),
        }
    }
}

/// Where and how to cut a chip from an image, as dlib's `chip_details`: the
/// rectangle `rect`, rotated by `angle` about its centre, is resampled to
/// `rows x cols` pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChipDetails {
    /// The source rectangle before rotation, in image pixels.
    pub rect: DRect,
    /// Counter-clockwise rotation (radians, in image coordinates) about the centre of `rect`.
    pub angle: f64,
    /// Chip height in pixels.
    pub rows: usize,
    /// Chip width in pixels.
    pub cols: usize,
}

impl ChipDetails {
    /// Pixels in the chip, `rows * cols`.
    pub fn size(&self) -> usize {
        self.rows.saturating_mul(self.cols)
    }
}

/// Turns the in-image points rotating `p` by `angle` about `c` (dlib's `rotate_point`).
#[inline]
fn rotate_point(c: (f64, f64), p: (f64, f64), sin: f64, cos: f64) -> (f64, f64) {
    let (x, y) = (p.0 - c.0, p.1 - c.1);
    (cos * x - sin * y + c.0, sin * x + cos * y + c.1)
}

/// The chip for a face from its five landmarks, as
/// `dlib::get_face_chip_details(det, size, padding)` for dlib's 5-point model: a
/// similarity fit of the mean face (grown by `padding` on every side, as a fraction
/// of the face box) to the landmarks, for a `size x size` chip.
///
/// The landmarks are used as given; pass `predict_landmarks`' rounded points to
/// match dlib, which stores integer points. Only the first five landmarks are used;
/// with fewer, the fit uses those present (with none it is the identity). Any
/// input, including non-finite values, gives a result without panicking.
pub fn face_chip_details(landmarks: &[Point], size: usize, padding: f64) -> ChipDetails {
    let s = size as f64;
    let d = 2.0 * padding + 1.0;
    let from: Vec<(f64, f64)> = MEAN_FACE_5
        .iter()
        .take(landmarks.len())
        .map(|&(x, y)| ((padding + x) / d * s, (padding + y) / d * s))
        .collect();
    let to: Vec<(f64, f64)> = landmarks.iter().take(5).map(|p| (p.x, p.y)).collect();
    chip_from_similarity(&find_similarity_transform(&from, &to), size, size)
}

/// dlib's `chip_details(chip_points, img_points, dims)` once the similarity is known.
fn chip_from_similarity(t: &Affine, rows: usize, cols: usize) -> ChipDetails {
    let (px, py) = (
        t.m[0][0] * 1.0 + t.m[0][1] * 0.0,
        t.m[1][0] * 1.0 + t.m[1][1] * 0.0,
    );
    let angle = py.atan2(px);
    let scale = (px * px + py * py).sqrt();
    let (cx, cy) = t.apply(cols as f64 / 2.0, rows as f64 / 2.0);
    let w = cols as f64 * scale - 1.0;
    let h = rows as f64 * scale - 1.0;
    ChipDetails {
        rect: DRect {
            left: cx - w / 2.0,
            top: cy - h / 2.0,
            right: cx + w / 2.0,
            bottom: cy + h / 2.0,
        },
        angle,
        rows,
        cols,
    }
}

/// One level of dlib's `pyramid_down<2>` for RGB: a separable `[1 4 6 4 1]` filter
/// on every other column (integer sums), then on every other row, divided by 256
/// with truncation. Images of 8 or fewer rows or columns shrink to nothing.
fn pyramid_down(img: &RgbImage) -> RgbImage {
    if img.height <= 8 || img.width <= 8 {
        return RgbImage::new(0, 0);
    }
    let tw = (img.width - 3) / 2;
    let th = img.height;
    let mut temp = vec![[0u32; 3]; tw * th];
    for r in 0..th {
        let row = &img.data[r * img.width * 3..(r + 1) * img.width * 3];
        for c in 0..tw {
            let oc = 2 * c;
            for (ch, t) in temp[r * tw + c].iter_mut().enumerate() {
                let px = |k: usize| row[(oc + k) * 3 + ch] as u32;
                *t = px(0) + px(1) * 4 + px(2) * 6 + px(3) * 4 + px(4);
            }
        }
    }
    let mut down = RgbImage::new(tw, (img.height - 3) / 2);
    let mut dr = 0;
    let mut r = 2;
    while r + 2 < th {
        for c in 0..tw {
            let t = |rr: usize| temp[rr * tw + c];
            let (a, b, m, d, e) = (t(r - 2), t(r - 1), t(r), t(r + 1), t(r + 2));
            let mut p = [0u8; 3];
            for ch in 0..3 {
                let v = a[ch] + b[ch] * 4 + m[ch] * 6 + d[ch] * 4 + e[ch];
                p[ch] = (v / 256) as u8;
            }
            down.put(c, dr, p);
        }
        dr += 1;
        r += 2;
    }
    down
}

/// dlib's `interpolate_bilinear` for RGB: `None` unless all four neighbours are
/// inside; each channel is computed in `f64` and truncated, as dlib's
/// `vector_to_pixel` casts.
#[inline]
fn bilinear(img: &RgbImage, x: f64, y: f64) -> Option<[u8; 3]> {
    if !(x.is_finite() && y.is_finite()) {
        return None;
    }
    let left = x.floor() as i64;
    let top = y.floor() as i64;
    if !(left >= 0
        && top >= 0
        && left.checked_add(1)? < img.width as i64
        && top.checked_add(1)? < img.height as i64)
    {
        return None;
    }
    let lr = x - left as f64;
    let tb = y - top as f64;
    let (l, t) = (left as usize, top as usize);
    let (tl, tr) = (img.get(l, t), img.get(l + 1, t));
    let (bl, br) = (img.get(l, t + 1), img.get(l + 1, t + 1));
    let mut out = [0u8; 3];
    for c in 0..3 {
        let v = (1.0 - tb) * ((1.0 - lr) * tl[c] as f64 + lr * tr[c] as f64)
            + tb * ((1.0 - lr) * bl[c] as f64 + lr * br[c] as f64);
        out[c] = v as u8;
    }
    Some(out)
}

/// The part of `img` inside `r` (which must lie within the image).
fn crop(img: &RgbImage, r: IRect) -> RgbImage {
    if r.is_empty() {
        return RgbImage::new(0, 0);
    }
    let (w, h) = (
        (r.right - r.left + 1) as usize,
        (r.bottom - r.top + 1) as usize,
    );
    let mut out = RgbImage::new(w, h);
    for y in 0..h {
        let src = ((r.top as usize + y) * img.width + r.left as usize) * 3;
        out.data[y * w * 3..(y + 1) * w * 3].copy_from_slice(&img.data[src..src + w * 3]);
    }
    out
}

/// dlib's `basic_extract_image_chip`: a plain copy of `loc`, black outside the image.
fn copy_chip(img: &RgbImage, loc: IRect, rows: usize, cols: usize) -> RgbImage {
    let mut chip = RgbImage::new(cols, rows);
    let area = loc.intersect(&image_rect(img));
    if area.is_empty() {
        return chip;
    }
    for y in area.top..=area.bottom {
        let cy = y as i128 - loc.top as i128;
        if cy >= rows as i128 {
            break;
        }
        for x in area.left..=area.right {
            let cx = x as i128 - loc.left as i128;
            if cx >= cols as i128 {
                break;
            }
            chip.put(cx as usize, cy as usize, img.get(x as usize, y as usize));
        }
    }
    chip
}

fn image_rect(img: &RgbImage) -> IRect {
    IRect {
        left: 0,
        top: 0,
        right: img.width as i64 - 1,
        bottom: img.height as i64 - 1,
    }
}

/// The affine map from chip pixel `(c, r)` to source position sending the chip's
/// top-left, top-right and bottom-left corners to `tl`, `tr` and `bl`. dlib solves
/// this by least squares; for a chip of one row or column that solution is the
/// minimum-norm one, reproduced here.
fn chip_to_source(
    tl: (f64, f64),
    tr: (f64, f64),
    bl: (f64, f64),
    rows: usize,
    cols: usize,
) -> Affine {
    let (cw, ch) = (cols as f64 - 1.0, rows as f64 - 1.0);
    match (cols > 1, rows > 1) {
        (true, true) => Affine {
            m: [
                [(tr.0 - tl.0) / cw, (bl.0 - tl.0) / ch],
                [(tr.1 - tl.1) / cw, (bl.1 - tl.1) / ch],
            ],
            b: [tl.0, tl.1],
        },
        (true, false) => {
            let b = ((tl.0 + bl.0) / 2.0, (tl.1 + bl.1) / 2.0);
            Affine {
                m: [[(tr.0 - b.0) / cw, 0.0], [(tr.1 - b.1) / cw, 0.0]],
                b: [b.0, b.1],
            }
        }
        (false, true) => {
            let b = ((tl.0 + tr.0) / 2.0, (tl.1 + tr.1) / 2.0);
            Affine {
                m: [[0.0, (bl.0 - b.0) / ch], [0.0, (bl.1 - b.1) / ch]],
                b: [b.0, b.1],
            }
        }
        (false, false) => Affine {
            m: [[0.0, 0.0], [0.0, 0.0]],
            b: [(tl.0 + tr.0 + bl.0) / 3.0, (tl.1 + tr.1 + bl.1) / 3.0],
        },
    }
}

/// Extracts several chips from one image exactly as one call of dlib's
/// `extract_image_chips` (bilinear) does, which is how dlib's face descriptor
/// code cuts every face of an image. The chips share one image pyramid built
/// over the union of their regions, so a chip can differ slightly from the same
/// chip cut alone by [`extract_chip`].
pub fn extract_chips(img: &RgbImage, details: &[ChipDetails]) -> Vec<RgbImage> {
    let full = image_rect(img);
    let full_d = DRect {
        left: 0.0,
        top: 0.0,
        right: full.right as f64,
        bottom: full.bottom as f64,
    };
    // How deep a pyramid each chip needs, and the part of the image they all use.
    let mut bounding_box = IRect::EMPTY;
    let mut max_depth = 0usize;
    for d in details {
        let size = d.size() as f64;
        let mut depth = 0;
        let mut grow = 2.0f64;
        let mut rect = d.rect.rect_down();
        while rect.area() > size && depth < MAX_PYRAMID_DEPTH {
            rect = rect.rect_down();
            depth += 1;
            grow = grow * 2.0 + 2.0;
        }
        let (sin, cos) = d.angle.sin_cos();
        let c = d.rect.center();
        let r = &d.rect;
        let mut rot = DRect {
            left: 0.0,
            top: 0.0,
            right: -1.0,
            bottom: -1.0,
        };
        for p in [
            (r.left, r.top),
            (r.right, r.top),
            (r.left, r.bottom),
            (r.right, r.bottom),
        ] {
            let (x, y) = rotate_point(c, p, sin, cos);
            rot = rot.union(&DRect::point(x, y));
        }
        let grown = DRect {
            left: rot.left - grow,
            top: rot.top - grow,
            right: rot.right + grow,
            bottom: rot.bottom + grow,
        };
        bounding_box = bounding_box.union(&grown.intersect(&full_d).round());
        max_depth = max_depth.max(depth);
    }
    // dlib's bounding box always lies inside the image; clip anyway so that
    // non-finite input cannot index outside it.
    let bounding_box = bounding_box.intersect(&full);
    let base = crop(img, bounding_box);
    let mut levels: Vec<RgbImage> = Vec::new();
    for _ in 0..max_depth {
        let next = pyramid_down(levels.last().unwrap_or(&base));
        let empty = next.width == 0 || next.height == 0;
        levels.push(next);
        if empty {
            break;
        }
    }
    let empty = RgbImage::new(0, 0);
    let (ox, oy) = if bounding_box.is_empty() {
        (0, 0)
    } else {
        (bounding_box.left, bounding_box.top)
    };

    details
        .iter()
        .map(|d| {
            if d.angle == 0.0 && d.rows as f64 == d.rect.height() && d.cols as f64 == d.rect.width()
            {
                return copy_chip(img, d.rect.round(), d.rows, d.cols);
            }
            let mut chip = RgbImage::new(d.cols, d.rows);
            let size = d.size() as f64;
            let mut level: Option<usize> = None;
            let mut rect = DRect {
                left: d.rect.left + -(ox as f64),
                top: d.rect.top + -(oy as f64),
                right: d.rect.right + -(ox as f64),
                bottom: d.rect.bottom + -(oy as f64),
            };
            let mut steps = 0;
            while rect.rect_down().area() > size && steps < MAX_PYRAMID_DEPTH {
                level = Some(level.map_or(0, |l| l + 1));
                rect = rect.rect_down();
                steps += 1;
            }
            let (sin, cos) = d.angle.sin_cos();
            let c = rect.center();
            let tl = rotate_point(c, (rect.left, rect.top), sin, cos);
            let tr = rotate_point(c, (rect.right, rect.top), sin, cos);
            let bl = rotate_point(c, (rect.left, rect.bottom), sin, cos);
            let t = chip_to_source(tl, tr, bl, d.rows, d.cols);
            let src = match level {
                None => &base,
                Some(l) => levels.get(l).unwrap_or(&empty),
            };
            for r in 0..d.rows {
                for col in 0..d.cols {
                    let (x, y) = t.apply(col as f64, r as f64);
                    if let Some(p) = bilinear(src, x, y) {
                        chip.put(col, r, p);
                    }
                }
            }
            chip
        })
        .collect()
}

/// Extracts one chip as `dlib::extract_image_chip` (and so `dlib.get_face_chip`)
/// does: rotated, scaled and resampled with bilinear interpolation, through dlib's
/// image pyramid when the chip is much smaller than its source region; pixels
/// whose neighbourhood leaves the image (or the region dlib crops) are black.
pub fn extract_chip(img: &RgbImage, d: &ChipDetails) -> RgbImage {
    extract_chips(img, std::slice::from_ref(d))
        .pop()
        .unwrap_or_else(|| RgbImage::new(0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn gradient(w: usize, h: usize) -> RgbImage {
        let mut img = RgbImage::new(w, h);
        for y in 0..h {
            for x in 0..w {
                img.put(
                    x,
                    y,
                    [(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8],
                );
            }
        }
        img
    }

    #[test]
    fn unit_chip_of_aligned_rect_is_a_copy() {
        let img = gradient(40, 30);
        let d = ChipDetails {
            rect: DRect {
                left: 5.0,
                top: 3.0,
                right: 14.0,
                bottom: 10.0,
            },
            angle: 0.0,
            rows: 8,
            cols: 10,
        };
        let chip = extract_chip(&img, &d);
        assert_eq!((chip.width, chip.height), (10, 8));
        for y in 0..8 {
            for x in 0..10 {
                assert_eq!(chip.get(x, y), img.get(x + 5, y + 3));
            }
        }
        // Past the border the copy is black.
        let d = ChipDetails {
            rect: DRect {
                left: 35.0,
                top: -2.0,
                right: 44.0,
                bottom: 5.0,
            },
            ..d
        };
        let chip = extract_chip(&img, &d);
        assert_eq!(chip.get(0, 2), img.get(35, 0));
        assert_eq!(chip.get(0, 0), [0, 0, 0]);
        assert_eq!(chip.get(9, 5), [0, 0, 0]);
    }

    #[test]
    fn half_pixel_shift_interpolates() {
        let img = gradient(40, 30);
        // A tiny rotation forces the resampling path; the centre stays put.
        let d = ChipDetails {
            rect: DRect {
                left: 10.5,
                top: 10.0,
                right: 19.5,
                bottom: 19.0,
            },
            angle: 1e-12,
            rows: 10,
            cols: 10,
        };
        let chip = extract_chip(&img, &d);
        // Red is x, so the half-pixel shift gives x + 0.5, truncated (or just under).
        for x in 0..10 {
            let r = chip.get(x, 4)[0] as i64;
            assert!((r - (10 + x as i64)).abs() <= 1, "{x}: {r}");
            assert!((chip.get(x, 4)[1] as i32 - 14).abs() <= 1);
        }
    }

    #[test]
    fn a_rotation_by_half_a_turn_flips_the_chip() {
        let img = gradient(60, 60);
        let d = ChipDetails {
            rect: DRect {
                left: 20.0,
                top: 20.0,
                right: 29.0,
                bottom: 29.0,
            },
            angle: std::f64::consts::PI,
            rows: 10,
            cols: 10,
        };
        let chip = extract_chip(&img, &d);
        for y in 0..10 {
            for x in 0..10 {
                let want = img.get(29 - x, 29 - y);
                let got = chip.get(x, y);
                for c in 0..3 {
                    assert!((want[c] as i32 - got[c] as i32).abs() <= 1);
                }
            }
        }
    }

    #[test]
    fn pyramid_down_filters_and_truncates() {
        let mut img = RgbImage::new(12, 11);
        for v in img.data.iter_mut() {
            *v = 100;
        }
        let d = pyramid_down(&img);
        assert_eq!((d.width, d.height), (4, 4));
        assert!(d.data.iter().all(|&v| v == 100));
        // An impulse spreads as the outer product of [1 4 6 4 1] / 256, truncated.
        let mut img = RgbImage::new(12, 12);
        img.put(6, 6, [255, 0, 0]);
        let d = pyramid_down(&img);
        // Output (c, r) is centred on input (2c + 2, 2r + 2): (2, 2) holds 36 * 255 / 256.
        assert_eq!(d.get(2, 2), [35, 0, 0]);
        assert_eq!(d.get(1, 2), [5, 0, 0]);
        assert_eq!(pyramid_down(&RgbImage::new(8, 100)).data.len(), 0);
    }

    #[test]
    fn small_chip_of_large_region_uses_the_pyramid() {
        // A flat image: every level stays flat, and the chip with it. (Near the
        // image border dlib's chip corners would turn black: the pyramid levels
        // lose a pixel or two at their edges.)
        let mut img = RgbImage::new(600, 600);
        for p in img.data.chunks_mut(3) {
            p.copy_from_slice(&[50, 100, 150]);
        }
        let d = ChipDetails {
            rect: DRect {
                left: 150.0,
                top: 150.0,
                right: 449.0,
                bottom: 449.0,
            },
            angle: 0.3,
            rows: 20,
            cols: 20,
        };
        let chip = extract_chip(&img, &d);
        for p in chip.data.chunks(3) {
            for (c, want) in p.iter().zip([50u8, 100, 150]) {
                assert!((*c as i32 - want as i32).abs() <= 1);
            }
        }
    }

    #[test]
    fn face_chip_of_mean_face_is_axis_aligned() {
        // Landmarks placed exactly at the padded mean face of a 150 chip: the fit is
        // the identity, so the rectangle is the chip itself.
        let (size, padding) = (150usize, 0.25);
        let pts: Vec<Point> = MEAN_FACE_5
            .iter()
            .map(|&(x, y)| Point {
                x: (padding + x) / (2.0 * padding + 1.0) * size as f64,
                y: (padding + y) / (2.0 * padding + 1.0) * size as f64,
            })
            .collect();
        let d = face_chip_details(&pts, size, padding);
        assert!(d.angle.abs() < 1e-12);
        assert!((d.rect.left - 0.5).abs() < 1e-9 && (d.rect.right - 149.5).abs() < 1e-9);
        assert_eq!((d.rows, d.cols), (150, 150));
        // Doubling the landmarks doubles the rectangle about the origin.
        let big: Vec<Point> = pts
            .iter()
            .map(|p| Point {
                x: 2.0 * p.x,
                y: 2.0 * p.y,
            })
            .collect();
        let d2 = face_chip_details(&big, size, padding);
        assert!((d2.rect.width() - 300.0).abs() < 1e-9);
        assert!((d2.rect.center().0 - 150.0).abs() < 1e-9);
    }

    #[test]
    fn chip_outside_the_image_is_black() {
        let img = gradient(50, 50);
        let d = ChipDetails {
            rect: DRect {
                left: 500.0,
                top: 500.0,
                right: 700.0,
                bottom: 700.0,
            },
            angle: 0.5,
            rows: 30,
            cols: 30,
        };
        let chip = extract_chip(&img, &d);
        assert!(chip.data.iter().all(|&v| v == 0));
    }

    fn coord() -> impl Strategy<Value = f64> {
        prop_oneof![
            -1e4..1e4f64,
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(f64::MAX),
            Just(-1e300),
            any::<f64>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn arbitrary_landmarks_never_panic(
            xs in proptest::collection::vec((coord(), coord()), 0..7),
            size in 0usize..24,
            padding in prop_oneof![0.0..1.0f64, Just(f64::NAN), Just(-3.0)],
            w in 0usize..40, h in 0usize..40,
        ) {
            let pts: Vec<Point> = xs.iter().map(|&(x, y)| Point { x, y }).collect();
            let d = face_chip_details(&pts, size, padding);
            let img = gradient(w, h);
            let chip = extract_chip(&img, &d);
            prop_assert_eq!((chip.width, chip.height), (size, size));
        }

        #[test]
        fn arbitrary_chip_details_never_panic(
            l in coord(), t in coord(), r in coord(), b in coord(), angle in coord(),
            rows in 0usize..12, cols in 0usize..12,
        ) {
            let img = gradient(30, 20);
            let d = ChipDetails { rect: DRect { left: l, top: t, right: r, bottom: b }, angle, rows, cols };
            let chips = extract_chips(&img, &[d, d]);
            prop_assert_eq!(chips.len(), 2);
            prop_assert_eq!((chips[0].width, chips[0].height), (cols, rows));
        }
    }
}
