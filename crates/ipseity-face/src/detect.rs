//! Face detection with dlib's MMOD CNN: the image is optionally upsampled, tiled
//! into one pyramid image (levels shrinking by 5/6), scored by the network, and
//! the positive cells are mapped back to image rectangles and de-duplicated.
//!
//! The geometry (pyramid layout, point mappings, rounding) follows dlib closely
//! because our tests hold boxes to dlib's within IoU 0.9.

use crate::cnn::{forward, CnnError, Tensor};
use crate::geom::{Rect, RgbImage};
use ipseity_dlib::{Layer, Loss, MmodOptions, Net};

/// A detected face box and the network's confidence (higher is surer; > 0 means detected).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// The face box in image pixels.
    pub rect: Rect,
    /// The detector's score.
    pub confidence: f32,
}

/// A loaded MMOD detector.
pub struct Detector {
    net: Net,
    opts: MmodOptions,
}

/// An axis-aligned rectangle with real coordinates (dlib's `drectangle`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct DRect {
    l: f64,
    t: f64,
    r: f64,
    b: f64,
}

impl DRect {
    /// dlib rounds with `lround` (half away from zero) when storing a `rectangle`.
    fn round(&self) -> Rect {
        Rect {
            left: self.l.round() as i64,
            top: self.t.round() as i64,
            right: self.r.round() as i64,
            bottom: self.b.round() as i64,
        }
    }
}

impl From<Rect> for DRect {
    fn from(r: Rect) -> Self {
        DRect {
            l: r.left as f64,
            t: r.top as f64,
            r: r.right as f64,
            b: r.bottom as f64,
        }
    }
}

/// Where each pyramid level sits inside the tiled image.
#[derive(Debug, Clone, PartialEq)]
pub struct TiledLayout {
    /// One rectangle per level, level 0 being the input image.
    pub rects: Vec<Rect>,
    /// Rows of the tiled image.
    pub rows: usize,
    /// Columns of the tiled image.
    pub cols: usize,
}

/// dlib's `compute_tiled_image_pyramid_details` for `pyramid_down<6>`.
pub fn tiled_layout(nr: i64, nc: i64, padding: i64, outer: i64) -> TiledLayout {
    tiled_layout_to(nr, nc, padding, outer, 0)
}

/// [`tiled_layout`] without the levels whose shorter side is under `min_side`
/// (0 keeps dlib's pyramid, down to 5 rows).
pub fn tiled_layout_to(nr: i64, nc: i64, padding: i64, outer: i64, min_side: i64) -> TiledLayout {
    let mut rects: Vec<(i64, i64)> = vec![];
    if nr <= 0 || nc <= 0 {
        return TiledLayout {
            rects: vec![],
            rows: 0,
            cols: 0,
        };
    }
    let (mut r, mut c) = (nr, nc);
    rects.push((c, r));
    loop {
        r = (5.0 / 6.0 * r as f64).floor() as i64;
        c = (5.0 / 6.0 * c as f64).floor() as i64;
        if r * c == 0 || r < 5 || r.min(c) < min_side {
            break;
        }
        rects.push((c, r));
    }
    let total_height: i64 = rects.iter().map(|&(_, h)| h + padding).sum::<i64>() - 2 * padding;
    let mut height = 0;
    let mut prev_width = 0;
    let (w0, h0) = rects[0];
    for &(w, h) in &rects {
        if w <= w0 - prev_width - padding && (height - h0) * 2 >= total_height - h0 {
            break;
        }
        height += h + padding;
        prev_width = w;
    }
    height -= padding;
    let width = w0;
    let mut out = Vec::with_capacity(rects.len());
    let mut y = outer;
    let mut i = 0;
    while y < height + outer && i < rects.len() {
        let (w, h) = rects[i];
        out.push(Rect {
            left: outer,
            top: y,
            right: outer + w - 1,
            bottom: y + h - 1,
        });
        y += h + padding;
        i += 1;
    }
    y -= padding;
    while i < rects.len() {
        let (w, h) = rects[i];
        let (px, py) = (outer + width - 1, y - 1);
        let rect = Rect {
            left: px - (w - 1),
            top: py - (h - 1),
            right: px,
            bottom: py,
        };
        if out[0].intersect(&rect).area() > 0 {
            break;
        }
        out.push(rect);
        y -= h + padding;
        i += 1;
    }
    TiledLayout {
        rects: out,
        rows: (height + outer * 2).max(0) as usize,
        cols: (width + outer * 2).max(0) as usize,
    }
}

/// dlib's bilinear resize of one float plane (its SIMD path accumulates the
/// column position in f32, which we mirror so the pyramids agree bit for bit).
#[allow(clippy::too_many_arguments)]
fn resize_plane(
    src: &[f32],
    src_stride: usize,
    (snr, snc): (usize, usize),
    dst: &mut [f32],
    dst_stride: usize,
    (dnr, dnc): (usize, usize),
) {
    if snr == 0 || snc == 0 || dnr == 0 || dnc == 0 {
        return;
    }
    let x_scale = (snc as f64 - 1.0) / ((dnc as f64 - 1.0).max(1.0));
    let y_scale = (snr as f64 - 1.0) / ((dnr as f64 - 1.0).max(1.0));
    let mut y = -y_scale;
    for r in 0..dnr {
        y += y_scale;
        let top = y.floor() as usize;
        let bottom = (top + 1).min(snr - 1);
        let tb = y - top as f64;
        let (tbf, itbf) = (tb as f32, (1.0 - tb) as f32);
        let row_t = &src[top * src_stride..];
        let row_b = &src[bottom * src_stride..];
        let out = &mut dst[r * dst_stride..r * dst_stride + dnc];
        let x0 = -4.0 * x_scale;
        let xs4 = (4.0 * x_scale) as f32;
        let mut xv = [
            x0 as f32,
            (x0 + x_scale) as f32,
            (x0 + 2.0 * x_scale) as f32,
            (x0 + 3.0 * x_scale) as f32,
        ];
        let mut c = 0;
        loop {
            for v in xv.iter_mut() {
                *v += xs4;
            }
            let left = xv.map(|v| v as i64);
            if left[3] + 1 >= snc as i64 || c + 4 > dnc {
                break;
            }
            for j in 0..4 {
                let l = left[j] as usize;
                let lr = xv[j] - left[j] as f32;
                let ilr = 1.0 - lr;
                out[c + j] = (itbf * ilr) * row_t[l]
                    + (itbf * lr) * row_t[l + 1]
                    + (tbf * ilr) * row_b[l]
                    + (tbf * lr) * row_b[l + 1];
            }
            c += 4;
        }
        let mut x = -x_scale + c as f64 * x_scale;
        while c < dnc {
            x += x_scale;
            let left = x.floor() as usize;
            let right = (left + 1).min(snc - 1);
            let lr = (x - left as f64) as f32;
            let tb = tb as f32;
            out[c] = (1.0 - tb) * ((1.0 - lr) * row_t[left] + lr * row_t[right])
                + tb * ((1.0 - lr) * row_b[left] + lr * row_b[right]);
            c += 1;
        }
    }
}

/// dlib's `pyramid_up` with `pyramid_down<2>`: bilinear resize to `(2nr+1) x (2nc+2)`,
/// truncating channel values as dlib's SIMD RGB path does.
pub fn upsample(img: &RgbImage) -> RgbImage {
    let (dnr, dnc) = (2 * img.height + 1, 2 * img.width + 2);
    let mut out = RgbImage::new(dnc, dnr);
    let (snr, snc) = (img.height, img.width);
    if snr == 0 || snc == 0 {
        return out;
    }
    let x_scale = (snc as f64 - 1.0) / ((dnc as f64 - 1.0).max(1.0));
    let y_scale = (snr as f64 - 1.0) / ((dnr as f64 - 1.0).max(1.0));
    for r in 0..dnr {
        let y = r as f64 * y_scale;
        let top = (y.floor() as usize).min(snr - 1);
        let bottom = (top + 1).min(snr - 1);
        let tb = (y - top as f64) as f32;
        let xs4 = (4.0 * x_scale) as f32;
        let x0 = -4.0 * x_scale;
        let mut xv = [
            x0 as f32,
            (x0 + x_scale) as f32,
            (x0 + 2.0 * x_scale) as f32,
            (x0 + 3.0 * x_scale) as f32,
        ];
        let mut c = 0;
        loop {
            for v in xv.iter_mut() {
                *v += xs4;
            }
            let left = xv.map(|v| v as i64);
            if left[3] + 1 >= snc as i64 || c + 4 > dnc {
                break;
            }
            for j in 0..4 {
                let l = left[j] as usize;
                let lr = xv[j] - left[j] as f32;
                let (tlf, trf, blf, brf) = (
                    (1.0 - tb) * (1.0 - lr),
                    (1.0 - tb) * lr,
                    tb * (1.0 - lr),
                    tb * lr,
                );
                let (a, b2, cc, d) = (
                    img.get(l, top),
                    img.get(l + 1, top),
                    img.get(l, bottom),
                    img.get(l + 1, bottom),
                );
                let mut p = [0u8; 3];
                for ch in 0..3 {
                    let v = tlf * f32::from(a[ch])
                        + trf * f32::from(b2[ch])
                        + blf * f32::from(cc[ch])
                        + brf * f32::from(d[ch]);
                    p[ch] = v as i32 as u8;
                }
                out.put(c + j, r, p);
            }
            c += 4;
        }
        let mut x = -x_scale + c as f64 * x_scale;
        let tb = tb as f64;
        while c < dnc {
            x += x_scale;
            let left = (x.floor() as usize).min(snc - 1);
            let right = (left + 1).min(snc - 1);
            let lr = x - left as f64;
            let (a, b2, cc, d) = (
                img.get(left, top),
                img.get(right, top),
                img.get(left, bottom),
                img.get(right, bottom),
            );
            let mut p = [0u8; 3];
            for ch in 0..3 {
                let v = (1.0 - tb) * ((1.0 - lr) * f64::from(a[ch]) + lr * f64::from(b2[ch]))
                    + tb * ((1.0 - lr) * f64::from(cc[ch]) + lr * f64::from(d[ch]));
                p[ch] = v.clamp(0.0, 255.0) as u8;
            }
            out.put(c, r, p);
            c += 1;
        }
    }
    out
}

impl Detector {
    /// Wraps a parsed MMOD network.
    pub fn new(net: Net) -> Result<Self, CnnError> {
        let Loss::Mmod(opts) = net.loss.clone() else {
            return Err(CnnError::Shape("not an MMOD detector".into()));
        };
        if opts.bbox_regression {
            return Err(CnnError::Shape(
                "bounding-box regression detectors are not supported".into(),
            ));
        }
        if net.input.fixed_size.is_some() {
            return Err(CnnError::Shape("detector needs a pyramid input".into()));
        }
        Ok(Self { net, opts })
    }

    /// Builds the normalised, tiled pyramid tensor for `img`, with levels
    /// down to a shorter side of `min_side` pixels (0: dlib's full pyramid).
    fn to_tensor(&self, img: &RgbImage, min_side: i64) -> (Tensor, TiledLayout) {
        let inp = &self.net.input;
        let layout = tiled_layout_to(
            img.height as i64,
            img.width as i64,
            inp.pyramid_padding as i64,
            inp.pyramid_outer_padding as i64,
            min_side,
        );
        let mut t = Tensor::zeros(3, layout.rows, layout.cols);
        if layout.rects.is_empty() {
            return (t, layout);
        }
        let plane = layout.rows * layout.cols;
        let r0 = layout.rects[0];
        for y in 0..img.height {
            for x in 0..img.width {
                let p = img.get(x, y);
                let idx = (r0.top as usize + y) * layout.cols + r0.left as usize + x;
                for c in 0..3 {
                    t.data[c * plane + idx] = (f32::from(p[c]) - inp.avg_rgb[c]) / 256.0;
                }
            }
        }
        for c in 0..3 {
            let chan = &mut t.data[c * plane..(c + 1) * plane];
            for i in 1..layout.rects.len() {
                let (s, d) = (layout.rects[i - 1], layout.rects[i]);
                let s_off = s.top as usize * layout.cols + s.left as usize;
                let d_off = d.top as usize * layout.cols + d.left as usize;
                // Source and destination never overlap; copy the source rows out to satisfy the borrow checker.
                let s_len = (s.height() as usize - 1) * layout.cols + s.width() as usize;
                let src: Vec<f32> = chan[s_off..s_off + s_len].to_vec();
                resize_plane(
                    &src,
                    layout.cols,
                    (s.height() as usize, s.width() as usize),
                    &mut chan[d_off..],
                    layout.cols,
                    (d.height() as usize, d.width() as usize),
                );
            }
        }
        (t, layout)
    }

    /// Maps an output cell to input-tensor coordinates through the convolutions.
    fn output_to_input(&self, mut x: f64, mut y: f64) -> (f64, f64) {
        for layer in self.net.layers.iter().rev() {
            if let Layer::Con {
                nr,
                nc,
                stride_y,
                stride_x,
                pad_y,
                pad_x,
                ..
            } = layer
            {
                x = x * *stride_x as f64 - *pad_x as f64 + (*nc / 2) as f64;
                y = y * *stride_y as f64 - *pad_y as f64 + (*nr / 2) as f64;
            }
        }
        (x, y)
    }

    /// Detects faces; `upsample` doubles the image that many times first (finds smaller faces).
    pub fn detect(&self, img: &RgbImage, upsample_times: u32) -> Result<Vec<Detection>, CnnError> {
        let mut owned: Option<RgbImage> = None;
        for _ in 0..upsample_times {
            let next = upsample(owned.as_ref().unwrap_or(img));
            owned = Some(next);
        }
        self.detect_at_scale(owned.as_ref().unwrap_or(img), upsample_times, 0)
    }

    /// Detects faces without upsampling, over pyramid levels whose shorter
    /// side is at least `min_side` pixels: smaller levels cannot hold a face
    /// as large as the detector's window, and dropping them (with their
    /// padding) takes a third off a small image's tensor.
    pub fn detect_large(
        &self,
        img: &RgbImage,
        min_side: usize,
    ) -> Result<Vec<Detection>, CnnError> {
        self.detect_at_scale(img, 0, min_side as i64)
    }

    /// The smallest window's shorter side, in pixels (80 for dlib's face detector).
    pub fn window_side(&self) -> usize {
        self.opts
            .windows
            .iter()
            .map(|w| w.width.min(w.height))
            .min()
            .unwrap_or(0)
    }

    fn detect_at_scale(
        &self,
        img: &RgbImage,
        upsample_times: u32,
        min_side: i64,
    ) -> Result<Vec<Detection>, CnnError> {
        let (x, layout) = self.to_tensor(img, min_side);
        if layout.rects.is_empty() {
            return Ok(vec![]);
        }
        let out = forward(&self.net.layers, x)?;
        let windows = &self.opts.windows;
        if out.k != windows.len() {
            return Err(CnnError::Shape(
                "detector output channels disagree with its windows".into(),
            ));
        }
        let mut dets: Vec<(f64, DRect)> = vec![];
        for (k, win) in windows.iter().enumerate() {
            for r in 0..out.h {
                for c in 0..out.w {
                    let score = f64::from(out.data[(k * out.h + r) * out.w + c]);
                    if score > 0.0 {
                        let (px, py) = self.output_to_input(c as f64, r as f64);
                        let (w, h) = (win.width as f64 - 1.0, win.height as f64 - 1.0);
                        let rect = DRect {
                            l: px - w / 2.0,
                            t: py - h / 2.0,
                            r: px + w / 2.0,
                            b: py + h / 2.0,
                        };
                        dets.push((score, tiled_to_image(&layout.rects, rect)));
                    }
                }
            }
        }
        dets.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut kept: Vec<(f64, Rect)> = vec![];
        for (score, rect) in dets {
            let rect = rect.round();
            if kept.iter().any(|(_, k)| self.overlaps(k, &rect)) {
                continue;
            }
            kept.push((score, rect));
        }
        Ok(kept
            .into_iter()
            .map(|(score, rect)| {
                let mut d = DRect::from(rect);
                for _ in 0..upsample_times {
                    d = DRect {
                        l: d.l / 2.0 - 1.25,
                        t: d.t / 2.0 - 0.75,
                        r: d.r / 2.0 - 1.25,
                        b: d.b / 2.0 - 0.75,
                    };
                }
                Detection {
                    rect: d.round(),
                    confidence: score as f32,
                }
            })
            .collect())
    }

    /// dlib's `test_box_overlap`: IoU against the bounding union, or coverage.
    fn overlaps(&self, a: &Rect, b: &Rect) -> bool {
        let inner = a.intersect(b).area() as f64;
        if inner == 0.0 {
            return false;
        }
        let outer = Rect {
            left: a.left.min(b.left),
            top: a.top.min(b.top),
            right: a.right.max(b.right),
            bottom: a.bottom.max(b.bottom),
        }
        .area() as f64;
        inner / outer > self.opts.nms_iou
            || inner / a.area() as f64 > self.opts.nms_covered
            || inner / b.area() as f64 > self.opts.nms_covered
    }
}

/// Maps a rectangle in the tiled pyramid back to the original image.
fn tiled_to_image(rects: &[Rect], r: DRect) -> DRect {
    let cx = ((r.l + r.r) / 2.0 + 0.5).floor() as i64;
    let cy = ((r.t + r.b) / 2.0 + 0.5).floor() as i64;
    let mut best = 0;
    let mut best_d = f64::INFINITY;
    for (i, q) in rects.iter().enumerate() {
        if cx >= q.left && cx <= q.right && cy >= q.top && cy <= q.bottom {
            best = i;
            break;
        }
        let nx = cx.clamp(q.left, q.right);
        let ny = cy.clamp(q.top, q.bottom);
        let d = (((nx - cx).pow(2) + (ny - cy).pow(2)) as f64).sqrt();
        if d < best_d {
            best_d = d;
            best = i;
        }
    }
    let (ox, oy) = (rects[best].left as f64, rects[best].top as f64);
    let mut p = [r.l - ox, r.t - oy, r.r - ox, r.b - oy];
    for _ in 0..best {
        for v in p.iter_mut() {
            *v = *v * 6.0 / 5.0 + 0.3;
        }
    }
    DRect {
        l: p[0],
        t: p[1],
        r: p[2],
        b: p[3],
    }
}
