//! The convolution engine: dlib's layer semantics (zero-padded cross-correlation,
//! clipped pooling windows, zero-extending residual sums) on CHW tensors.
//!
//! Convolutions run as im2col followed by one matrix product from the `gemm`
//! crate; the comparison that chose it is in docs/BENCHMARKS.md. Large inputs are
//! processed in bands of output rows so the im2col buffer stays bounded.

use ipseity_dlib::Layer;
use rayon::prelude::*;

/// Why a tensor could not go through the network.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CnnError {
    /// The model and the data disagree on a dimension.
    #[error("network shape mismatch: {0}")]
    Shape(String),
}

/// One sample: `k` channels of `h` rows by `w` columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Channels.
    pub k: usize,
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
    /// `k * h * w` values, channel-major.
    pub data: Vec<f32>,
}

impl Tensor {
    /// A zero tensor.
    pub fn zeros(k: usize, h: usize, w: usize) -> Self {
        Self {
            k,
            h,
            w,
            data: vec![0.0; k * h * w],
        }
    }
}

thread_local! {
    /// Each worker's im2col buffer, kept between layers and images: allocating
    /// and faulting in tens of megabytes per band cost as much system time as
    /// the convolutions' user time.
    static COL_SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Upper bound on the im2col buffer, in floats (64 MiB).
const MAX_COL: usize = 16 << 20;

/// `matrixmultiply` beats `gemm` on few filters over many pixels (the
/// detector's 16 to 45 filters over bands of tens of thousands of pixels);
/// `gemm` wins everywhere else, the ResNet's layers included. Measured with
/// `benches/conv_engines.rs`; figures in docs/BENCHMARKS.md.
const SMALL_M: usize = 64;
const LARGE_N: usize = 8192;

/// The convolution kernel: single-threaded, choosing the faster crate for the shape.
pub fn matmul_auto(m: usize, n: usize, k: usize, lhs: &[f32], rhs: &[f32], dst: &mut [f32]) {
    if m < SMALL_M && n >= LARGE_N {
        matmul_mm(m, n, k, lhs, rhs, dst);
    } else {
        matmul_serial(m, n, k, lhs, rhs, dst);
    }
}

/// The product by `matrixmultiply` (single-threaded).
pub fn matmul_mm(m: usize, n: usize, k: usize, lhs: &[f32], rhs: &[f32], dst: &mut [f32]) {
    assert!(lhs.len() >= m * k && rhs.len() >= k * n && dst.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the assertion bounds every element sgemm reads or writes for these
    // row-major strides; `dst` is a unique borrow, so it aliases neither input.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            lhs.as_ptr(),
            k as isize,
            1,
            rhs.as_ptr(),
            n as isize,
            1,
            0.0,
            dst.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// [`matmul`] with `gemm` on the calling thread only (convolutions parallelise over bands).
pub fn matmul_serial(m: usize, n: usize, k: usize, lhs: &[f32], rhs: &[f32], dst: &mut [f32]) {
    gemm_into(m, n, k, lhs, rhs, dst, gemm::Parallelism::None);
}

/// `dst[m x n] = lhs[m x k] * rhs[k x n]`, all row-major and contiguous,
/// multi-threaded when the product is large.
pub fn matmul(m: usize, n: usize, k: usize, lhs: &[f32], rhs: &[f32], dst: &mut [f32]) {
    let threads = rayon::current_num_threads();
    let par = if threads > 1 && m * n * k > 1 << 18 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    gemm_into(m, n, k, lhs, rhs, dst, par);
}

fn gemm_into(
    m: usize,
    n: usize,
    k: usize,
    lhs: &[f32],
    rhs: &[f32],
    dst: &mut [f32],
    par: gemm::Parallelism,
) {
    assert!(lhs.len() >= m * k && rhs.len() >= k * n && dst.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        dst[..m * n].fill(0.0);
        return;
    }
    // SAFETY: the assertion above guarantees every index gemm touches, given the
    // strides below (row-major, contiguous), lies inside the three slices, and
    // `dst` is a unique borrow so it cannot alias the inputs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

fn out_size(input: usize, pad: usize, kernel: usize, stride: usize) -> Option<usize> {
    let padded = input + 2 * pad;
    (padded >= kernel && stride > 0).then(|| 1 + (padded - kernel) / stride)
}

/// The convolution parameters of a `Layer::Con`, borrowed.
pub struct ConvSpec<'a> {
    /// Output channels.
    pub filters: usize,
    /// Input channels.
    pub k: usize,
    /// Kernel rows and columns.
    pub kh: usize,
    /// Kernel columns.
    pub kw: usize,
    /// Strides.
    pub sy: usize,
    /// Horizontal stride.
    pub sx: usize,
    /// Padding.
    pub py: usize,
    /// Horizontal padding.
    pub px: usize,
    /// Weights `[filters][k][kh][kw]`.
    pub weights: &'a [f32],
    /// Bias per filter.
    pub bias: &'a [f32],
    /// Apply ReLU to the output.
    pub relu: bool,
}

/// A matrix product `dst[m x n] = lhs[m x k] * rhs[k x n]` (row-major).
pub type MatmulFn = fn(usize, usize, usize, &[f32], &[f32], &mut [f32]);

/// Zero-padded cross-correlation, as dlib's `con_`.
pub fn conv(x: &Tensor, c: &ConvSpec) -> Result<Tensor, CnnError> {
    conv_with(x, c, matmul_auto)
}

/// [`conv`] with the matrix product supplied, so benchmarks can compare kernels
/// on the same im2col layout.
pub fn conv_with(x: &Tensor, c: &ConvSpec, matmul: MatmulFn) -> Result<Tensor, CnnError> {
    if x.k != c.k {
        return Err(CnnError::Shape(format!(
            "convolution expects {} channels, got {}",
            c.k, x.k
        )));
    }
    let (Some(ho), Some(wo)) = (
        out_size(x.h, c.py, c.kh, c.sy),
        out_size(x.w, c.px, c.kw, c.sx),
    ) else {
        return Err(CnnError::Shape("input smaller than the kernel".into()));
    };
    let kk = c.k * c.kh * c.kw;
    let mut out = Tensor::zeros(c.filters, ho, wo);
    if c.filters <= DIRECT_MAX_FILTERS && c.sy == 1 && c.sx == 1 {
        return Ok(conv_direct(x, c, ho, wo));
    }
    // Bands of output rows keep the im2col buffer bounded, and give each thread
    // its own band: measured faster than one multi-threaded product per layer on
    // these shapes (few filters, many pixels); see docs/BENCHMARKS.md.
    let threads = rayon::current_num_threads().max(1);
    let mut band = (MAX_COL / (kk * wo).max(1)).clamp(1, ho);
    if threads > 1 && c.filters * kk * ho * wo > 1 << 20 {
        band = band.min(ho.div_ceil(threads));
    }
    let starts: Vec<usize> = (0..ho).step_by(band).collect();
    let bands: Vec<Vec<f32>> = starts
        .par_iter()
        .map(|&y0| {
            let n = band.min(ho - y0) * wo;
            let mut res = vec![0f32; c.filters * n];
            COL_SCRATCH.with(|cell| {
                let mut col = cell.borrow_mut();
                if col.len() < kk * n {
                    col.resize(kk * n, 0.0);
                }
                // im2col writes every element (zeros for padding), so stale contents never leak.
                im2col(x, c, y0, n / wo, wo, &mut col[..kk * n]);
                matmul(c.filters, n, kk, c.weights, &col[..kk * n], &mut res);
            });
            res
        })
        .collect();
    for (&y0, res) in starts.iter().zip(&bands) {
        let n = band.min(ho - y0) * wo;
        for f in 0..c.filters {
            let b = c.bias[f];
            let src = &res[f * n..(f + 1) * n];
            let dst = &mut out.data[f * ho * wo + y0 * wo..f * ho * wo + y0 * wo + n];
            if c.relu {
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = (s + b).max(0.0);
                }
            } else {
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = s + b;
                }
            }
        }
    }
    Ok(out)
}

/// Up to this many filters, a direct convolution beats im2col: the detector's
/// last layer (1 filter, 9x9 over 45 channels) spent 30% of detection time
/// writing an im2col matrix 3,645 rows tall for a matrix-vector product.
const DIRECT_MAX_FILTERS: usize = 2;

/// Stride-1 convolution as sums of shifted rows (axpy), in bands of output
/// rows so the input rows a band needs stay in cache; bands run in parallel.
fn conv_direct(x: &Tensor, c: &ConvSpec, ho: usize, wo: usize) -> Tensor {
    const BAND: usize = 8;
    let mut out = Tensor::zeros(c.filters, ho, wo);
    let plane = ho * wo;
    let starts: Vec<usize> = (0..ho).step_by(BAND).collect();
    let bands: Vec<Vec<f32>> = starts
        .par_iter()
        .map(|&y0| {
            let rows = BAND.min(ho - y0);
            let mut acc = vec![0f32; c.filters * rows * wo];
            for f in 0..c.filters {
                let acc_f = &mut acc[f * rows * wo..(f + 1) * rows * wo];
                acc_f.fill(c.bias[f]);
                for ch in 0..c.k {
                    let inp = &x.data[ch * x.h * x.w..(ch + 1) * x.h * x.w];
                    for ky in 0..c.kh {
                        for kx in 0..c.kw {
                            let w = c.weights[((f * c.k + ch) * c.kh + ky) * c.kw + kx];
                            // Output columns whose input column lies inside the image.
                            let off = kx as isize - c.px as isize;
                            let lo = (-off).clamp(0, wo as isize) as usize;
                            let hi = (x.w as isize - off).clamp(0, wo as isize) as usize;
                            if lo >= hi {
                                continue;
                            }
                            for r in 0..rows {
                                let iy = (y0 + r + ky) as isize - c.py as isize;
                                if iy < 0 || iy >= x.h as isize {
                                    continue;
                                }
                                let src = &inp[iy as usize * x.w..(iy as usize + 1) * x.w];
                                let src = &src
                                    [(lo as isize + off) as usize..(hi as isize + off) as usize];
                                let dst = &mut acc_f[r * wo + lo..r * wo + hi];
                                for (d, s) in dst.iter_mut().zip(src) {
                                    *d += w * s;
                                }
                            }
                        }
                    }
                }
                if c.relu {
                    acc_f.iter_mut().for_each(|v| *v = v.max(0.0));
                }
            }
            acc
        })
        .collect();
    for (&y0, acc) in starts.iter().zip(&bands) {
        let rows = BAND.min(ho - y0);
        for f in 0..c.filters {
            out.data[f * plane + y0 * wo..f * plane + (y0 + rows) * wo]
                .copy_from_slice(&acc[f * rows * wo..(f + 1) * rows * wo]);
        }
    }
    out
}

fn im2col(x: &Tensor, c: &ConvSpec, y0: usize, rows: usize, wo: usize, col: &mut [f32]) {
    let n = rows * wo;
    for ch in 0..c.k {
        let plane = &x.data[ch * x.h * x.w..(ch + 1) * x.h * x.w];
        for ky in 0..c.kh {
            for kx in 0..c.kw {
                let row = &mut col[((ch * c.kh + ky) * c.kw + kx) * n..][..n];
                for oy in 0..rows {
                    let iy = ((y0 + oy) * c.sy + ky) as isize - c.py as isize;
                    let dst = &mut row[oy * wo..(oy + 1) * wo];
                    if iy < 0 || iy >= x.h as isize {
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &plane[iy as usize * x.w..(iy as usize + 1) * x.w];
                    if c.sx == 1 {
                        // Contiguous copy with zero borders.
                        let off = kx as isize - c.px as isize;
                        for (ox, d) in dst.iter_mut().enumerate() {
                            let ix = ox as isize + off;
                            *d = if ix >= 0 && (ix as usize) < x.w {
                                src[ix as usize]
                            } else {
                                0.0
                            };
                        }
                    } else {
                        for (ox, d) in dst.iter_mut().enumerate() {
                            let ix = (ox * c.sx + kx) as isize - c.px as isize;
                            *d = if ix >= 0 && (ix as usize) < x.w {
                                src[ix as usize]
                            } else {
                                0.0
                            };
                        }
                    }
                }
            }
        }
    }
}

fn pool(
    x: &Tensor,
    max: bool,
    (nr, nc): (usize, usize),
    (sy, sx): (usize, usize),
    (py, px): (usize, usize),
) -> Result<Tensor, CnnError> {
    // A 0x0 window means the whole input, as in avg_pool_everything.
    let (wh, ww) = if nr == 0 { (x.h, x.w) } else { (nr, nc) };
    let (Some(ho), Some(wo)) = (out_size(x.h, py, wh, sy), out_size(x.w, px, ww, sx)) else {
        return Err(CnnError::Shape(
            "input smaller than the pooling window".into(),
        ));
    };
    let mut out = Tensor::zeros(x.k, ho, wo);
    for ch in 0..x.k {
        let plane = &x.data[ch * x.h * x.w..(ch + 1) * x.h * x.w];
        for oy in 0..ho {
            let top = (oy * sy) as isize - py as isize;
            let (y_lo, y_hi) = (
                top.max(0) as usize,
                ((top + wh as isize).min(x.h as isize)) as usize,
            );
            for ox in 0..wo {
                let left = (ox * sx) as isize - px as isize;
                let (x_lo, x_hi) = (
                    left.max(0) as usize,
                    ((left + ww as isize).min(x.w as isize)) as usize,
                );
                let mut acc = if max { f32::NEG_INFINITY } else { 0.0 };
                for y in y_lo..y_hi {
                    for &v in &plane[y * x.w + x_lo..y * x.w + x_hi] {
                        if max {
                            acc = acc.max(v);
                        } else {
                            acc += v;
                        }
                    }
                }
                let count = (y_hi.saturating_sub(y_lo)) * (x_hi.saturating_sub(x_lo));
                out.data[(ch * ho + oy) * wo + ox] = if count == 0 {
                    0.0
                } else if max {
                    acc
                } else {
                    acc / count as f32
                };
            }
        }
    }
    Ok(out)
}

/// Element-wise sum over the union of the two shapes, missing values being zero.
fn add_zero_extended(a: &Tensor, b: &Tensor) -> Tensor {
    if (a.k, a.h, a.w) == (b.k, b.h, b.w) {
        let data = a.data.iter().zip(&b.data).map(|(x, y)| x + y).collect();
        return Tensor { data, ..*a };
    }
    let (k, h, w) = (a.k.max(b.k), a.h.max(b.h), a.w.max(b.w));
    let mut out = Tensor::zeros(k, h, w);
    for t in [a, b] {
        for c in 0..t.k {
            for y in 0..t.h {
                for x in 0..t.w {
                    out.data[(c * h + y) * w + x] += t.data[(c * t.h + y) * t.w + x];
                }
            }
        }
    }
    out
}

/// A convolution split into `groups` independent groups of channels, as
/// PyTorch's `Conv2d(groups=...)`: `c.k` is the input channels per group and
/// `c.weights` holds `[filters][c.k][kh][kw]`. One group per channel (the
/// depthwise case MiniFASNet uses throughout) runs a direct loop, since an
/// im2col per channel would cost more than the arithmetic.
pub fn grouped_conv(x: &Tensor, c: &ConvSpec, groups: usize) -> Result<Tensor, CnnError> {
    let per_filter = c.k * c.kh * c.kw;
    if c.weights.len() != c.filters * per_filter || c.bias.len() != c.filters {
        return Err(CnnError::Shape(format!(
            "convolution of {} filters of {}x{}x{} given {} weights and {} biases",
            c.filters,
            c.k,
            c.kh,
            c.kw,
            c.weights.len(),
            c.bias.len()
        )));
    }
    if groups == 0 || x.k != c.k * groups || !c.filters.is_multiple_of(groups) {
        return Err(CnnError::Shape(format!(
            "{} input channels, {} filters in {groups} groups of {} channels",
            x.k, c.filters, c.k
        )));
    }
    if groups == 1 {
        return conv(x, c);
    }
    if c.k == 1 && c.filters == groups {
        return depthwise(x, c);
    }
    let (out_per, plane) = (c.filters / groups, x.h * x.w);
    let mut parts = Vec::with_capacity(groups);
    for g in 0..groups {
        let sub = Tensor {
            k: c.k,
            h: x.h,
            w: x.w,
            data: x.data[g * c.k * plane..(g + 1) * c.k * plane].to_vec(),
        };
        let spec = ConvSpec {
            filters: out_per,
            weights: &c.weights[g * out_per * per_filter..(g + 1) * out_per * per_filter],
            bias: &c.bias[g * out_per..(g + 1) * out_per],
            ..*c
        };
        parts.push(conv(&sub, &spec)?);
    }
    let (ho, wo) = parts
        .first()
        .map(|t| (t.h, t.w))
        .ok_or_else(|| CnnError::Shape("no groups".into()))?;
    let mut out = Tensor::zeros(c.filters, ho, wo);
    for (g, t) in parts.iter().enumerate() {
        out.data[g * t.data.len()..(g + 1) * t.data.len()].copy_from_slice(&t.data);
    }
    Ok(out)
}

/// One filter per channel; the caller checked the weight and bias lengths.
fn depthwise(x: &Tensor, c: &ConvSpec) -> Result<Tensor, CnnError> {
    let (Some(ho), Some(wo)) = (
        out_size(x.h, c.py, c.kh, c.sy),
        out_size(x.w, c.px, c.kw, c.sx),
    ) else {
        return Err(CnnError::Shape("input smaller than the kernel".into()));
    };
    let mut out = Tensor::zeros(x.k, ho, wo);
    let plane = x.h * x.w;
    out.data
        .par_chunks_mut((ho * wo).max(1))
        .enumerate()
        .for_each(|(ch, dst)| {
            let inp = &x.data[ch * plane..(ch + 1) * plane];
            let w = &c.weights[ch * c.kh * c.kw..(ch + 1) * c.kh * c.kw];
            let b = c.bias[ch];
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut s = b;
                    for ky in 0..c.kh {
                        let iy = (oy * c.sy + ky) as isize - c.py as isize;
                        if iy < 0 || iy >= x.h as isize {
                            continue;
                        }
                        let row = &inp[iy as usize * x.w..(iy as usize + 1) * x.w];
                        for kx in 0..c.kw {
                            let ix = (ox * c.sx + kx) as isize - c.px as isize;
                            if ix >= 0 && (ix as usize) < x.w {
                                s += w[ky * c.kw + kx] * row[ix as usize];
                            }
                        }
                    }
                    dst[oy * wo + ox] = if c.relu { s.max(0.0) } else { s };
                }
            }
        });
    Ok(out)
}

/// Parametric ReLU with one slope per channel (PyTorch's `PReLU(channels)`).
pub fn prelu(x: &mut Tensor, slope: &[f32]) -> Result<(), CnnError> {
    if slope.len() != x.k {
        return Err(CnnError::Shape(format!(
            "PReLU of {} slopes on {} channels",
            slope.len(),
            x.k
        )));
    }
    let plane = (x.h * x.w).max(1);
    for (chunk, &a) in x.data.chunks_mut(plane).zip(slope) {
        chunk.iter_mut().for_each(|v| {
            if *v < 0.0 {
                *v *= a;
            }
        });
    }
    Ok(())
}

/// `w[outputs x inputs] * x + bias`, for the small heads (a matrix-vector
/// product is not worth a gemm call).
pub fn linear(x: &[f32], w: &[f32], bias: &[f32]) -> Result<Vec<f32>, CnnError> {
    let outputs = bias.len();
    if x.is_empty() || w.len() != outputs * x.len() {
        return Err(CnnError::Shape(format!(
            "linear layer of {} weights for {} inputs and {outputs} outputs",
            w.len(),
            x.len()
        )));
    }
    Ok(w.chunks(x.len())
        .zip(bias)
        .map(|(row, b)| b + row.iter().zip(x).map(|(a, v)| a * v).sum::<f32>())
        .collect())
}

/// Squeeze-and-excitation: each channel is scaled by a gate computed from all
/// channels' means (`sigmoid(fc2(relu(fc1(mean))))`).
pub fn squeeze_excite(
    x: &mut Tensor,
    (w1, b1): (&[f32], &[f32]),
    (w2, b2): (&[f32], &[f32]),
) -> Result<(), CnnError> {
    let plane = x.h * x.w;
    if plane == 0 {
        return Err(CnnError::Shape("squeeze-excite of an empty plane".into()));
    }
    let means: Vec<f32> = x
        .data
        .chunks(plane)
        .map(|c| c.iter().sum::<f32>() / plane as f32)
        .collect();
    let mut hidden = linear(&means, w1, b1)?;
    hidden.iter_mut().for_each(|v| *v = v.max(0.0));
    let gate = linear(&hidden, w2, b2)?;
    if gate.len() != x.k {
        return Err(CnnError::Shape("squeeze-excite gate width".into()));
    }
    for (chunk, g) in x.data.chunks_mut(plane).zip(gate) {
        let g = 1.0 / (1.0 + (-g).exp());
        chunk.iter_mut().for_each(|v| *v *= g);
    }
    Ok(())
}

/// Probabilities from logits, shifted by the maximum so `exp` cannot overflow.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = logits.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.iter().map(|v| v / sum).collect()
}

/// Folds an inference-mode batch normalisation that follows a linear map
/// (convolution or fully connected, `outputs` rows of `weights`) into that
/// map's weights and bias: `gamma * (y - mean) / sqrt(var + eps) + beta`.
pub fn fold_batchnorm(
    weights: &mut [f32],
    bias: &mut [f32],
    bn: &BatchNorm,
) -> Result<(), CnnError> {
    let n = bias.len();
    if n == 0
        || !weights.len().is_multiple_of(n)
        || [&bn.gamma, &bn.beta, &bn.mean, &bn.var]
            .iter()
            .any(|v| v.len() != n)
    {
        return Err(CnnError::Shape("batch norm size mismatch".into()));
    }
    let per = weights.len() / n;
    for (o, row) in weights.chunks_mut(per).enumerate() {
        // In f64 so the fold itself adds no error beyond the final rounding.
        let s = f64::from(bn.gamma[o]) / (f64::from(bn.var[o]) + f64::from(bn.eps)).sqrt();
        row.iter_mut().for_each(|w| *w = (f64::from(*w) * s) as f32);
        bias[o] = ((f64::from(bias[o]) - f64::from(bn.mean[o])) * s + f64::from(bn.beta[o])) as f32;
    }
    Ok(())
}

/// Inference-mode batch normalisation parameters.
#[derive(Debug, Clone)]
pub struct BatchNorm {
    /// Scale.
    pub gamma: Vec<f32>,
    /// Shift.
    pub beta: Vec<f32>,
    /// Running mean.
    pub mean: Vec<f32>,
    /// Running variance.
    pub var: Vec<f32>,
    /// Added to the variance (PyTorch's default is 1e-5).
    pub eps: f32,
}

/// Runs `layers` (input side first) on `x`.
pub fn forward(layers: &[Layer], x: Tensor) -> Result<Tensor, CnnError> {
    forward_with(layers, x, matmul_auto)
}

/// [`forward`] with the convolutions' matrix product supplied (for benchmarks).
pub fn forward_with(layers: &[Layer], mut x: Tensor, matmul: MatmulFn) -> Result<Tensor, CnnError> {
    let mut tags: [Option<Tensor>; 8] = Default::default();
    let tag = |tags: &[Option<Tensor>; 8], n: u8| -> Result<Tensor, CnnError> {
        tags.get(n as usize)
            .and_then(|t| t.clone())
            .ok_or_else(|| CnnError::Shape(format!("tag {n} used before it was set")))
    };
    for layer in layers {
        x = match layer {
            Layer::Con {
                filters,
                k,
                nr,
                nc,
                stride_y,
                stride_x,
                pad_y,
                pad_x,
                weights,
                bias,
                relu,
            } => conv_with(
                &x,
                &ConvSpec {
                    filters: *filters,
                    k: *k,
                    kh: *nr,
                    kw: *nc,
                    sy: *stride_y,
                    sx: *stride_x,
                    py: *pad_y,
                    px: *pad_x,
                    weights,
                    bias,
                    relu: *relu,
                },
                matmul,
            )?,
            Layer::Affine { gamma, beta } => {
                let plane = x.h * x.w;
                if gamma.len() == x.k {
                    for (c, chunk) in x.data.chunks_mut(plane.max(1)).enumerate() {
                        let (g, b) = (gamma[c], beta[c]);
                        chunk.iter_mut().for_each(|v| *v = *v * g + b);
                    }
                } else if gamma.len() == x.data.len() {
                    for ((v, g), b) in x.data.iter_mut().zip(gamma).zip(beta) {
                        *v = *v * g + b;
                    }
                } else {
                    return Err(CnnError::Shape("affine size mismatch".into()));
                }
                x
            }
            Layer::Relu => {
                x.data.iter_mut().for_each(|v| *v = v.max(0.0));
                x
            }
            Layer::Pool {
                max,
                nr,
                nc,
                stride_y,
                stride_x,
                pad_y,
                pad_x,
            } => pool(
                &x,
                *max,
                (*nr, *nc),
                (*stride_y, *stride_x),
                (*pad_y, *pad_x),
            )?,
            Layer::Fc {
                inputs,
                outputs,
                weights,
                bias,
            } => {
                if x.data.len() != *inputs {
                    return Err(CnnError::Shape(format!(
                        "fc expects {inputs} inputs, got {}",
                        x.data.len()
                    )));
                }
                let mut out = Tensor::zeros(*outputs, 1, 1);
                matmul(1, *outputs, *inputs, &x.data, weights, &mut out.data);
                if let Some(b) = bias {
                    out.data.iter_mut().zip(b).for_each(|(v, b)| *v += b);
                }
                out
            }
            Layer::AddPrev(n) => add_zero_extended(&x, &tag(&tags, *n)?),
            Layer::Tag(n) => {
                let slot = tags
                    .get_mut(*n as usize)
                    .ok_or_else(|| CnnError::Shape(format!("tag {n} out of range")))?;
                *slot = Some(x.clone());
                x
            }
            Layer::Skip(n) => tag(&tags, *n)?,
        };
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The obvious six-loop convolution: the scalar twin `conv` is checked against.
    fn naive_conv(x: &Tensor, c: &ConvSpec) -> Tensor {
        let ho = out_size(x.h, c.py, c.kh, c.sy).unwrap();
        let wo = out_size(x.w, c.px, c.kw, c.sx).unwrap();
        let mut out = Tensor::zeros(c.filters, ho, wo);
        for f in 0..c.filters {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut s = c.bias[f];
                    for ch in 0..c.k {
                        for ky in 0..c.kh {
                            for kx in 0..c.kw {
                                let iy = (oy * c.sy + ky) as isize - c.py as isize;
                                let ix = (ox * c.sx + kx) as isize - c.px as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < x.h && (ix as usize) < x.w
                                {
                                    s += x.data[(ch * x.h + iy as usize) * x.w + ix as usize]
                                        * c.weights[((f * c.k + ch) * c.kh + ky) * c.kw + kx];
                                }
                            }
                        }
                    }
                    out.data[(f * ho + oy) * wo + ox] = if c.relu { s.max(0.0) } else { s };
                }
            }
        }
        out
    }

    fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2000) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn conv_matches_naive_for_strides_and_padding() {
        for (k, f, kh, s, p, h, w) in [
            (3, 4, 3, 1, 1, 9, 7),
            (2, 5, 5, 2, 0, 13, 11),
            (3, 2, 7, 2, 0, 20, 16),
            (1, 1, 1, 1, 0, 3, 3),
            // Direct path: few filters, stride 1, padding, input narrower than the kernel reach.
            (4, 1, 9, 1, 4, 12, 10),
            (3, 2, 5, 1, 2, 7, 3),
            (2, 1, 3, 1, 1, 20, 17),
        ] {
            let x = Tensor {
                k,
                h,
                w,
                data: pseudo(k * h * w, 1),
            };
            let weights = pseudo(f * k * kh * kh, 2);
            let bias = pseudo(f, 3);
            for relu in [false, true] {
                let spec = ConvSpec {
                    filters: f,
                    k,
                    kh,
                    kw: kh,
                    sy: s,
                    sx: s,
                    py: p,
                    px: p,
                    weights: &weights,
                    bias: &bias,
                    relu,
                };
                let a = conv(&x, &spec).unwrap();
                let b = naive_conv(&x, &spec);
                assert_eq!((a.k, a.h, a.w), (b.k, b.h, b.w));
                for (u, v) in a.data.iter().zip(&b.data) {
                    assert!((u - v).abs() < 1e-4, "{u} vs {v}");
                }
            }
        }
    }

    #[test]
    fn pooling_clips_windows_like_dlib() {
        let x = Tensor {
            k: 1,
            h: 3,
            w: 3,
            data: (1..=9).map(|v| v as f32).collect(),
        };
        let m = pool(&x, true, (3, 3), (2, 2), (1, 1)).unwrap();
        assert_eq!((m.h, m.w), (2, 2));
        assert_eq!(m.data, vec![5.0, 6.0, 8.0, 9.0]);
        let a = pool(&x, false, (2, 2), (2, 2), (0, 0)).unwrap();
        assert_eq!(a.data, vec![3.0]);
        let all = pool(&x, false, (0, 0), (1, 1), (0, 0)).unwrap();
        assert_eq!(all.data, vec![5.0]);
    }

    #[test]
    fn residual_sum_zero_extends() {
        let a = Tensor {
            k: 1,
            h: 1,
            w: 2,
            data: vec![1.0, 2.0],
        };
        let b = Tensor {
            k: 2,
            h: 1,
            w: 1,
            data: vec![10.0, 20.0],
        };
        let s = add_zero_extended(&a, &b);
        assert_eq!((s.k, s.h, s.w), (2, 1, 2));
        assert_eq!(s.data, vec![11.0, 2.0, 20.0, 0.0]);
    }

    #[test]
    fn wrong_channels_is_an_error() {
        let x = Tensor::zeros(2, 4, 4);
        let w = vec![0.0; 3 * 9];
        let b = vec![0.0; 1];
        let spec = ConvSpec {
            filters: 1,
            k: 3,
            kh: 3,
            kw: 3,
            sy: 1,
            sx: 1,
            py: 1,
            px: 1,
            weights: &w,
            bias: &b,
            relu: false,
        };
        assert!(conv(&x, &spec).is_err());
        assert!(conv(
            &Tensor::zeros(3, 1, 1),
            &ConvSpec {
                py: 0,
                px: 0,
                ..spec
            }
        )
        .is_err());
    }
    #[test]
    fn grouped_conv_matches_per_group_naive() {
        for (groups, k_per, f_per, kh, s, p) in [
            (4, 1, 1, 3, 1, 1),
            (4, 1, 1, 3, 2, 1),
            (2, 3, 2, 3, 1, 1),
            (5, 1, 1, 5, 1, 0),
        ] {
            let (h, w) = (9, 7);
            let x = Tensor {
                k: groups * k_per,
                h,
                w,
                data: pseudo(groups * k_per * h * w, 4),
            };
            let filters = groups * f_per;
            let weights = pseudo(filters * k_per * kh * kh, 5);
            let bias = pseudo(filters, 6);
            let spec = ConvSpec {
                filters,
                k: k_per,
                kh,
                kw: kh,
                sy: s,
                sx: s,
                py: p,
                px: p,
                weights: &weights,
                bias: &bias,
                relu: false,
            };
            let got = grouped_conv(&x, &spec, groups).unwrap();
            let plane = h * w;
            for g in 0..groups {
                let sub = Tensor {
                    k: k_per,
                    h,
                    w,
                    data: x.data[g * k_per * plane..(g + 1) * k_per * plane].to_vec(),
                };
                let per = f_per * k_per * kh * kh;
                let sspec = ConvSpec {
                    filters: f_per,
                    weights: &weights[g * per..(g + 1) * per],
                    bias: &bias[g * f_per..(g + 1) * f_per],
                    ..spec
                };
                let want = naive_conv(&sub, &sspec);
                let n = want.data.len();
                for (u, v) in got.data[g * n..(g + 1) * n].iter().zip(&want.data) {
                    assert!((u - v).abs() < 1e-4, "{u} vs {v}");
                }
            }
        }
    }

    #[test]
    fn grouped_conv_rejects_inconsistent_shapes() {
        let x = Tensor::zeros(4, 5, 5);
        let w = vec![0.0; 4 * 9];
        let b = vec![0.0; 4];
        let spec = ConvSpec {
            filters: 4,
            k: 1,
            kh: 3,
            kw: 3,
            sy: 1,
            sx: 1,
            py: 1,
            px: 1,
            weights: &w,
            bias: &b,
            relu: false,
        };
        assert!(grouped_conv(&x, &spec, 3).is_err());
        assert!(grouped_conv(&x, &spec, 0).is_err());
        assert!(grouped_conv(
            &x,
            &ConvSpec {
                weights: &w[1..],
                ..spec
            },
            4
        )
        .is_err());
    }

    #[test]
    fn batchnorm_fold_equals_applying_it() {
        let mut w = vec![1.0, 2.0, -1.0, 0.5];
        let mut b = vec![0.0, 1.0];
        let bn = BatchNorm {
            gamma: vec![2.0, 0.5],
            beta: vec![0.1, -0.2],
            mean: vec![0.3, 0.4],
            var: vec![4.0, 0.25],
            eps: 0.0,
        };
        let x = [3.0f32, -2.0];
        let before = linear(&x, &w, &b).unwrap();
        fold_batchnorm(&mut w, &mut b, &bn).unwrap();
        let after = linear(&x, &w, &b).unwrap();
        for o in 0..2 {
            let want = bn.gamma[o] * (before[o] - bn.mean[o]) / bn.var[o].sqrt() + bn.beta[o];
            assert!((after[o] - want).abs() < 1e-6);
        }
    }

    #[test]
    fn prelu_softmax_and_gate() {
        let mut x = Tensor {
            k: 2,
            h: 1,
            w: 2,
            data: vec![-1.0, 2.0, -4.0, 3.0],
        };
        prelu(&mut x, &[0.5, 0.25]).unwrap();
        assert_eq!(x.data, vec![-0.5, 2.0, -1.0, 3.0]);
        assert!(prelu(&mut x, &[1.0]).is_err());
        let p = softmax(&[1000.0, 1000.0, f32::NEG_INFINITY]);
        assert_eq!(p, vec![0.5, 0.5, 0.0]);
        // A zero gate pre-activation halves every channel.
        squeeze_excite(&mut x, (&[0.0; 2], &[0.0]), (&[0.0; 2], &[0.0; 2])).unwrap();
        assert_eq!(x.data, vec![-0.25, 1.0, -0.5, 1.5]);
    }
}
