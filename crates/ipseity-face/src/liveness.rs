//! Presentation-attack detection with Minivision's MiniFASNet models
//! (Silent-Face-Anti-Spoofing, Apache-2.0), run by our own code.
//!
//! Each model looks at a square-ish patch around the detected face, the box
//! enlarged by the model's scale (2.7 or 4.0) so that it sees the context a
//! replayed photo or screen gives away (borders, moiré, reflections), resized
//! to 80x80 and fed as raw 0-255 BGR. It answers three classes; class 1 is a
//! bona-fide (live) face. Following the model authors, the models' softmax
//! outputs are averaged and the arg-max decides.
//!
//! The weights come as PyTorch state_dicts, read by `ipseity-torch` without
//! executing pickle code. Every BatchNorm is folded into the preceding
//! convolution or linear map at load, so inference is convolutions, PReLU,
//! squeeze-excitation gates and two small matrix-vector products.

use ipseity_torch::{StateDict, TorchError};

use crate::cnn::{self, BatchNorm, CnnError, ConvSpec, Tensor};
use crate::geom::{Rect, RgbImage};

/// Side of the square input every shipped model takes.
pub const INPUT_SIDE: usize = 80;
/// The class index of a bona-fide face.
pub const BONA_FIDE: usize = 1;
/// PyTorch's BatchNorm epsilon (the models were trained with the default).
const BN_EPS: f32 = 1e-5;

/// The shipped models: file name and crop scale, as the model repository
/// names them (`<scale>_<h>x<w>_<architecture>.pth`).
pub const MODELS: [(&str, f64); 2] = [
    ("2.7_80x80_MiniFASNetV2.pth", 2.7),
    ("4_0_0_80x80_MiniFASNetV1SE.pth", 4.0),
];

/// Why a liveness model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LivenessError {
    /// The file is not a readable state_dict.
    #[error("cannot read the liveness model: {0}")]
    Read(#[from] TorchError),
    /// The state_dict lacks a tensor the architecture needs.
    #[error("liveness model lacks tensor {0}")]
    Missing(String),
    /// A tensor has a shape the architecture cannot use.
    #[error("liveness model tensor {name}: {what}")]
    Shape {
        /// The tensor's name.
        name: String,
        /// What was wrong.
        what: String,
    },
    /// The network and the data disagree.
    #[error(transparent)]
    Network(#[from] CnnError),
    /// The face box does not lie in the image.
    #[error("face box {0:?} is outside the {1}x{2} image")]
    BadBox(Rect, usize, usize),
}

/// A convolution with its BatchNorm folded in, and an optional PReLU after.
#[derive(Debug, Clone)]
struct ConvUnit {
    filters: usize,
    /// Input channels per group.
    k: usize,
    groups: usize,
    kh: usize,
    kw: usize,
    stride: usize,
    pad: usize,
    weights: Vec<f32>,
    bias: Vec<f32>,
    prelu: Option<Vec<f32>>,
}

impl ConvUnit {
    fn run(&self, x: &Tensor) -> Result<Tensor, CnnError> {
        let spec = ConvSpec {
            filters: self.filters,
            k: self.k,
            kh: self.kh,
            kw: self.kw,
            sy: self.stride,
            sx: self.stride,
            py: self.pad,
            px: self.pad,
            weights: &self.weights,
            bias: &self.bias,
            relu: false,
        };
        let mut y = cnn::grouped_conv(x, &spec, self.groups)?;
        if let Some(slope) = &self.prelu {
            cnn::prelu(&mut y, slope)?;
        }
        Ok(y)
    }
}

/// A fully connected map with its BatchNorm folded in.
#[derive(Debug, Clone)]
struct Dense {
    weights: Vec<f32>,
    bias: Vec<f32>,
}

/// Squeeze-excitation gate of MiniFASNetV1SE's last block in each stage.
#[derive(Debug, Clone)]
struct Gate {
    reduce: Dense,
    expand: Dense,
}

/// MobileFaceNet's inverted bottleneck: expand (1x1), depthwise, project (1x1).
#[derive(Debug, Clone)]
struct Bottleneck {
    expand: ConvUnit,
    depthwise: ConvUnit,
    project: ConvUnit,
    residual: bool,
    gate: Option<Gate>,
}

impl Bottleneck {
    fn run(&self, x: Tensor) -> Result<Tensor, CnnError> {
        let mut y = self
            .project
            .run(&self.depthwise.run(&self.expand.run(&x)?)?)?;
        if !self.residual {
            return Ok(y);
        }
        if let Some(g) = &self.gate {
            cnn::squeeze_excite(
                &mut y,
                (&g.reduce.weights, &g.reduce.bias),
                (&g.expand.weights, &g.expand.bias),
            )?;
        }
        if y.data.len() != x.data.len() {
            return Err(CnnError::Shape("residual of a different shape".into()));
        }
        y.data.iter_mut().zip(&x.data).for_each(|(a, b)| *a += b);
        Ok(y)
    }
}

/// One MiniFASNet (V1, V2, V1SE or V2SE: the state_dict says which).
#[derive(Debug, Clone)]
pub struct MiniFasNet {
    stem: Vec<ConvUnit>,
    blocks: Vec<Bottleneck>,
    head: Vec<ConvUnit>,
    embed: Dense,
    classes: Dense,
    /// The crop scale around the face box this model was trained with.
    pub scale: f64,
}

/// Pulls named tensors out of a state_dict, accepting the `module.` prefix
/// that `DataParallel` training leaves on every key.
struct Weights<'a> {
    sd: &'a StateDict,
    prefix: &'static str,
}

impl<'a> Weights<'a> {
    fn new(sd: &'a StateDict) -> Self {
        let prefix = if sd
            .entries
            .first()
            .is_some_and(|(n, _)| n.starts_with("module."))
        {
            "module."
        } else {
            ""
        };
        Self { sd, prefix }
    }

    fn has(&self, name: &str) -> bool {
        self.sd.get(&format!("{}{name}", self.prefix)).is_some()
    }

    fn get(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), LivenessError> {
        let full = format!("{}{name}", self.prefix);
        let t = self
            .sd
            .get(&full)
            .ok_or_else(|| LivenessError::Missing(full.clone()))?;
        let data = t.to_f32().ok_or_else(|| LivenessError::Shape {
            name: full.clone(),
            what: "not a float tensor".into(),
        })?;
        Ok((t.shape.clone(), data))
    }

    fn vector(&self, name: &str, len: usize) -> Result<Vec<f32>, LivenessError> {
        let (shape, data) = self.get(name)?;
        if shape != [len] {
            return Err(LivenessError::Shape {
                name: name.into(),
                what: format!("shape {shape:?}, expected [{len}]"),
            });
        }
        Ok(data)
    }

    fn bn(&self, name: &str, len: usize) -> Result<BatchNorm, LivenessError> {
        Ok(BatchNorm {
            gamma: self.vector(&format!("{name}.weight"), len)?,
            beta: self.vector(&format!("{name}.bias"), len)?,
            mean: self.vector(&format!("{name}.running_mean"), len)?,
            var: self.vector(&format!("{name}.running_var"), len)?,
            eps: BN_EPS,
        })
    }

    /// `{name}.conv` + `{name}.bn` (+ `{name}.prelu`), fed `channels` channels.
    /// Depthwise when the kernel has one input channel per group and as many
    /// filters as input channels (the only grouping MiniFASNet uses).
    fn conv_unit(
        &self,
        name: &str,
        channels: usize,
        stride: usize,
        pad: usize,
    ) -> Result<ConvUnit, LivenessError> {
        let wname = format!("{name}.conv.weight");
        let (shape, mut weights) = self.get(&wname)?;
        let &[filters, k, kh, kw] = shape.as_slice() else {
            return Err(LivenessError::Shape {
                name: wname,
                what: format!("rank {} kernel", shape.len()),
            });
        };
        let groups = if k == channels {
            1
        } else if k == 1 && filters == channels {
            channels
        } else {
            return Err(LivenessError::Shape {
                name: wname,
                what: format!("{k} input channels per group, fed {channels}"),
            });
        };
        let mut bias = vec![0.0; filters];
        cnn::fold_batchnorm(
            &mut weights,
            &mut bias,
            &self.bn(&format!("{name}.bn"), filters)?,
        )?;
        let prelu = if self.has(&format!("{name}.prelu.weight")) {
            Some(self.vector(&format!("{name}.prelu.weight"), filters)?)
        } else {
            None
        };
        Ok(ConvUnit {
            filters,
            k,
            groups,
            kh,
            kw,
            stride,
            pad,
            weights,
            bias,
            prelu,
        })
    }

    /// A 1x1 convolution without bias, then a BatchNorm, as a dense map.
    fn dense_1x1(&self, conv: &str, bn: &str, inputs: usize) -> Result<Dense, LivenessError> {
        let (shape, mut weights) = self.get(conv)?;
        let &[outputs, k, 1, 1] = shape.as_slice() else {
            return Err(LivenessError::Shape {
                name: conv.into(),
                what: format!("shape {shape:?}, expected a 1x1 kernel"),
            });
        };
        if k != inputs {
            return Err(LivenessError::Shape {
                name: conv.into(),
                what: format!("{k} inputs, fed {inputs}"),
            });
        }
        let mut bias = vec![0.0; outputs];
        cnn::fold_batchnorm(&mut weights, &mut bias, &self.bn(bn, outputs)?)?;
        Ok(Dense { weights, bias })
    }

    fn bottleneck(
        &self,
        name: &str,
        channels: usize,
        stride: usize,
        residual: bool,
    ) -> Result<(Bottleneck, usize), LivenessError> {
        let expand = self.conv_unit(&format!("{name}.conv"), channels, 1, 0)?;
        let dw_name = format!("{name}.conv_dw");
        let depthwise = self.conv_unit(&dw_name, expand.filters, stride, 1)?;
        if depthwise.groups != expand.filters || depthwise.kh != 3 || depthwise.kw != 3 {
            return Err(LivenessError::Shape {
                name: dw_name,
                what: "expected a 3x3 depthwise convolution".into(),
            });
        }
        let project = self.conv_unit(&format!("{name}.project"), depthwise.filters, 1, 0)?;
        let out = project.filters;
        if residual && out != channels {
            return Err(LivenessError::Shape {
                name: format!("{name}.project.conv.weight"),
                what: format!("residual block maps {channels} channels to {out}"),
            });
        }
        let se = format!("{name}.se_module");
        let gate = if residual && self.has(&format!("{se}.fc1.weight")) {
            let reduce = self.dense_1x1(&format!("{se}.fc1.weight"), &format!("{se}.bn1"), out)?;
            let hidden = reduce.bias.len();
            let expand =
                self.dense_1x1(&format!("{se}.fc2.weight"), &format!("{se}.bn2"), hidden)?;
            if expand.bias.len() != out {
                return Err(LivenessError::Shape {
                    name: format!("{se}.fc2.weight"),
                    what: "gate width differs from the block's".into(),
                });
            }
            Some(Gate { reduce, expand })
        } else {
            None
        };
        Ok((
            Bottleneck {
                expand,
                depthwise,
                project,
                residual,
                gate,
            },
            out,
        ))
    }
}

impl MiniFasNet {
    /// Builds the network from a legacy `.pth` state_dict's bytes.
    pub fn from_pth(bytes: &[u8], scale: f64) -> Result<Self, LivenessError> {
        Self::from_state_dict(&ipseity_torch::read_state_dict(bytes)?, scale)
    }

    /// Builds the network from a state_dict. The layer sizes come from the
    /// tensors' shapes, so V1, V2 and their SE variants share this code; every
    /// size is checked against the previous layer's here, once.
    pub fn from_state_dict(sd: &StateDict, scale: f64) -> Result<Self, LivenessError> {
        let w = Weights::new(sd);
        let conv1 = w.conv_unit("conv1", 3, 2, 1)?;
        let conv2 = w.conv_unit("conv2_dw", conv1.filters, 1, 1)?;
        let mut channels = conv2.filters;
        let stem = vec![conv1, conv2];
        let mut blocks = Vec::new();
        // Stages: a strided bottleneck, then residual ones (`conv_N.model.i`).
        for (down, stage) in [
            ("conv_23", "conv_3"),
            ("conv_34", "conv_4"),
            ("conv_45", "conv_5"),
        ] {
            let (b, c) = w.bottleneck(down, channels, 2, false)?;
            blocks.push(b);
            channels = c;
            let mut i = 0;
            while w.has(&format!("{stage}.model.{i}.conv.conv.weight")) {
                let (b, c) = w.bottleneck(&format!("{stage}.model.{i}"), channels, 1, true)?;
                blocks.push(b);
                channels = c;
                i += 1;
            }
        }
        let sep = w.conv_unit("conv_6_sep", channels, 1, 0)?;
        // No PReLU after the last depthwise convolution (a `Linear_block`).
        let dw = w.conv_unit("conv_6_dw", sep.filters, 1, 0)?;
        let flat = dw.filters;
        let head = vec![sep, dw];

        let (shape, mut weights) = w.get("linear.weight")?;
        let &[embedding, inputs] = shape.as_slice() else {
            return Err(LivenessError::Shape {
                name: "linear.weight".into(),
                what: format!("shape {shape:?}"),
            });
        };
        if inputs != flat {
            return Err(LivenessError::Shape {
                name: "linear.weight".into(),
                what: format!("{inputs} inputs, fed {flat}"),
            });
        }
        let mut bias = vec![0.0; embedding];
        cnn::fold_batchnorm(&mut weights, &mut bias, &w.bn("bn", embedding)?)?;
        let embed = Dense { weights, bias };
        let (shape, weights) = w.get("prob.weight")?;
        if shape.len() != 2 || shape.get(1) != Some(&embedding) || shape.first() <= Some(&BONA_FIDE)
        {
            return Err(LivenessError::Shape {
                name: "prob.weight".into(),
                what: format!("shape {shape:?}"),
            });
        }
        let classes = Dense {
            bias: vec![0.0; shape[0]],
            weights,
        };
        Ok(Self {
            stem,
            blocks,
            head,
            embed,
            classes,
            scale,
        })
    }

    /// Class probabilities for one 3-channel input (BGR, 0-255, CHW).
    pub fn probabilities(&self, input: &Tensor) -> Result<Vec<f32>, CnnError> {
        let mut x = input.clone();
        for u in &self.stem {
            x = u.run(&x)?;
        }
        for b in &self.blocks {
            x = b.run(x)?;
        }
        for u in &self.head {
            x = u.run(&x)?;
        }
        if x.h != 1 || x.w != 1 {
            return Err(CnnError::Shape(format!(
                "input of the wrong size: the head leaves {}x{}",
                x.h, x.w
            )));
        }
        let e = cnn::linear(&x.data, &self.embed.weights, &self.embed.bias)?;
        let logits = cnn::linear(&e, &self.classes.weights, &self.classes.bias)?;
        Ok(cnn::softmax(&logits))
    }
}

/// The fused verdict of several models on one face.
#[derive(Debug, Clone, PartialEq)]
pub struct LivenessScore {
    /// Each model's probability that the face is bona fide, in model order.
    pub per_model: Vec<f32>,
    /// Their mean: the fused bona-fide probability.
    pub bona_fide: f32,
    /// Whether the arg-max of the averaged class probabilities is the
    /// bona-fide class (the model authors' decision rule).
    pub is_bona_fide: bool,
}

/// The shipped pair of models, fused.
#[derive(Debug, Clone)]
pub struct Liveness {
    /// The models, each with its crop scale.
    pub models: Vec<MiniFasNet>,
}

impl Liveness {
    /// Loads [`MODELS`] from their bytes, in that order.
    pub fn from_pth(v2: &[u8], v1se: &[u8]) -> Result<Self, LivenessError> {
        Ok(Self {
            models: vec![
                MiniFasNet::from_pth(v2, MODELS[0].1)?,
                MiniFasNet::from_pth(v1se, MODELS[1].1)?,
            ],
        })
    }

    /// Scores the face in `rect` (a detector box, inclusive) of `img`.
    pub fn assess(&self, img: &RgbImage, rect: Rect) -> Result<LivenessScore, LivenessError> {
        let mut sum: Vec<f32> = Vec::new();
        let mut per_model = Vec::with_capacity(self.models.len());
        for m in &self.models {
            let patch = crop(img, rect, m.scale, INPUT_SIDE)?;
            let p = m.probabilities(&to_input(&patch))?;
            if sum.is_empty() {
                sum = vec![0.0; p.len()];
            }
            if p.len() != sum.len() {
                return Err(CnnError::Shape("models disagree on the classes".into()).into());
            }
            sum.iter_mut().zip(&p).for_each(|(s, v)| *s += v);
            per_model.push(p.get(BONA_FIDE).copied().unwrap_or(0.0));
        }
        let n = per_model.len().max(1) as f32;
        let best = sum
            .iter()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |b, (i, &v)| if v > b.1 { (i, v) } else { b },
            )
            .0;
        Ok(LivenessScore {
            bona_fide: per_model.iter().sum::<f32>() / n,
            is_bona_fide: !per_model.is_empty() && best == BONA_FIDE,
            per_model,
        })
    }
}

/// The model's input patch: the face box enlarged `scale` times about its
/// centre (less where the image is too small), shifted back inside the image,
/// cut out with inclusive bounds and resized to `side` x `side`, following
/// the model repository's `CropImage` so the models see what they were
/// trained on.
pub fn crop(
    img: &RgbImage,
    rect: Rect,
    scale: f64,
    side: usize,
) -> Result<RgbImage, LivenessError> {
    let bad = || LivenessError::BadBox(rect, img.width, img.height);
    let (bw, bh) = (rect.width() as f64, rect.height() as f64);
    if img.width < 2 || img.height < 2 || bw <= 0.0 || bh <= 0.0 || side == 0 {
        return Err(bad());
    }
    let (sw, sh) = (img.width as f64, img.height as f64);
    let scale = scale.min((sh - 1.0) / bh).min((sw - 1.0) / bw);
    let (nw, nh) = (bw * scale, bh * scale);
    let (cx, cy) = (bw / 2.0 + rect.left as f64, bh / 2.0 + rect.top as f64);
    let (mut x0, mut y0, mut x1, mut y1) =
        (cx - nw / 2.0, cy - nh / 2.0, cx + nw / 2.0, cy + nh / 2.0);
    if x0 < 0.0 {
        x1 -= x0;
        x0 = 0.0;
    }
    if y0 < 0.0 {
        y1 -= y0;
        y0 = 0.0;
    }
    if x1 > sw - 1.0 {
        x0 -= x1 - sw + 1.0;
        x1 = sw - 1.0;
    }
    if y1 > sh - 1.0 {
        y0 -= y1 - sh + 1.0;
        y1 = sh - 1.0;
    }
    // Python's int(): truncation toward zero; then NumPy's slicing clamps.
    let clamp = |v: f64, hi: usize| (v.trunc().max(0.0) as usize).min(hi - 1);
    let (x0, x1) = (clamp(x0, img.width), clamp(x1, img.width));
    let (y0, y1) = (clamp(y0, img.height), clamp(y1, img.height));
    if x1 < x0 || y1 < y0 {
        return Err(bad());
    }
    let (w, h) = (x1 - x0 + 1, y1 - y0 + 1);
    let mut patch = RgbImage::new(w, h);
    for y in 0..h {
        let src = &img.data[((y0 + y) * img.width + x0) * 3..((y0 + y) * img.width + x1 + 1) * 3];
        patch.data[y * w * 3..(y + 1) * w * 3].copy_from_slice(src);
    }
    Ok(resize_linear(&patch, side, side))
}

/// Coefficients in OpenCV's fixed point (11 bits).
const COEF_BITS: u32 = 11;
const COEF_ONE: i32 = 1 << COEF_BITS;

/// For each output coordinate: the first source index and the two weights,
/// as OpenCV's bilinear resize computes them (pixel centres at +0.5, edges
/// clamped, weights rounded to 11 bits from a single-precision fraction).
fn taps(src: usize, dst: usize) -> Vec<(usize, i32, i32)> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let mut s = f.floor() as i64;
            let mut frac = f - s as f32;
            if s < 0 {
                s = 0;
                frac = 0.0;
            }
            if s >= src as i64 - 1 {
                s = src as i64 - 1;
                frac = 0.0;
            }
            let a0 = ((1.0 - frac) * COEF_ONE as f32).round() as i32;
            let a1 = (frac * COEF_ONE as f32).round() as i32;
            (s.max(0) as usize, a0, a1)
        })
        .collect()
}

/// Bilinear resize matching OpenCV's `INTER_LINEAR` on 8-bit images: a
/// horizontal pass into 11-bit fixed point, a vertical pass with the same
/// precision and OpenCV's rounding of the product back to 8 bits.
pub fn resize_linear(img: &RgbImage, width: usize, height: usize) -> RgbImage {
    let mut out = RgbImage::new(width, height);
    if img.width == 0 || img.height == 0 {
        return out;
    }
    let xs = taps(img.width, width);
    let ys = taps(img.height, height);
    let row = |y: usize| -> Vec<i32> {
        let src = &img.data[y * img.width * 3..(y + 1) * img.width * 3];
        let mut r = vec![0i32; width * 3];
        for (d, &(s, a0, a1)) in xs.iter().enumerate() {
            let s1 = (s + 1).min(img.width - 1);
            for c in 0..3 {
                r[d * 3 + c] = i32::from(src[s * 3 + c]) * a0 + i32::from(src[s1 * 3 + c]) * a1;
            }
        }
        r
    };
    for (dy, &(sy, b0, b1)) in ys.iter().enumerate() {
        let r0 = row(sy);
        let r1 = row((sy + 1).min(img.height - 1));
        for (i, (p, q)) in r0.iter().zip(&r1).enumerate() {
            let v = (((b0 * (p >> 4)) >> 16) + ((b1 * (q >> 4)) >> 16) + 2) >> 2;
            out.data[dy * width * 3 + i] = v.clamp(0, 255) as u8;
        }
    }
    out
}

/// The network input for a patch: channels in BGR order (the models were
/// trained on OpenCV images), values 0-255 without normalisation.
pub fn to_input(patch: &RgbImage) -> Tensor {
    let plane = patch.width * patch.height;
    let mut t = Tensor::zeros(3, patch.height, patch.width);
    for (i, px) in patch.data.chunks_exact(3).enumerate().take(plane) {
        t.data[i] = f32::from(px[2]);
        t.data[plane + i] = f32::from(px[1]);
        t.data[2 * plane + i] = f32::from(px[0]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(w: usize, h: usize) -> RgbImage {
        let mut img = RgbImage::new(w, h);
        for (i, v) in img.data.iter_mut().enumerate() {
            *v = (i * 7 % 251) as u8;
        }
        img
    }

    #[test]
    fn crop_is_clamped_inside_the_image() {
        let img = image(100, 60);
        // A box at the right edge, scaled beyond the image's height.
        let r = Rect {
            left: 80,
            top: 20,
            right: 99,
            bottom: 39,
        };
        let p = crop(&img, r, 4.0, 16).unwrap();
        assert_eq!((p.width, p.height), (16, 16));
        // A box larger than the image still gives a patch.
        let huge = Rect {
            left: -50,
            top: -50,
            right: 300,
            bottom: 300,
        };
        assert!(crop(&img, huge, 2.7, 8).is_ok());
        let empty = Rect {
            left: 5,
            top: 5,
            right: 4,
            bottom: 9,
        };
        assert!(crop(&img, empty, 2.7, 8).is_err());
    }

    #[test]
    fn resize_of_a_constant_is_constant_and_identity_is_exact() {
        let mut img = RgbImage::new(37, 23);
        img.data.iter_mut().for_each(|v| *v = 200);
        let r = resize_linear(&img, 80, 80);
        assert!(r.data.iter().all(|&v| v == 200));
        let img = image(12, 9);
        assert_eq!(resize_linear(&img, 12, 9).data, img.data);
    }

    #[test]
    fn input_is_bgr() {
        let mut img = RgbImage::new(1, 1);
        img.put(0, 0, [1, 2, 3]);
        assert_eq!(to_input(&img).data, vec![3.0, 2.0, 1.0]);
    }
}
