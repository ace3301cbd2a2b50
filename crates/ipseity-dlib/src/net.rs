//! dlib DNN files: the nested `add_layer` stream read against an expected
//! architecture. dlib writes neither tag identifiers nor the network type, so
//! the caller supplies the layer sequence it expects and we check every
//! layer's own tag string against it.

use crate::reader::Reader;
use crate::DlibError;

/// What the caller expects at one position of the network, outermost first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// A convolution (`con_`).
    Con,
    /// A per-channel affine transform (`affine_`, or a batch-norm folded into one).
    Affine,
    /// Rectified linear unit.
    Relu,
    /// Max pooling.
    MaxPool,
    /// Average pooling (a 0x0 window means "everything").
    AvgPool,
    /// Fully connected layer.
    Fc,
    /// Sum with the output of the tagged layer `n`.
    AddPrev(u8),
    /// Remember the current output as tag `n`.
    Tag(u8),
    /// Replace the current output with tag `n`'s.
    Skip(u8),
}

/// A loaded computational layer or control marker.
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    /// Cross-correlation with zero padding; weights are `[filters][k][nr][nc]`.
    Con {
        /// Output channels.
        filters: usize,
        /// Input channels.
        k: usize,
        /// Kernel rows.
        nr: usize,
        /// Kernel columns.
        nc: usize,
        /// Vertical stride.
        stride_y: usize,
        /// Horizontal stride.
        stride_x: usize,
        /// Zero padding rows.
        pad_y: usize,
        /// Zero padding columns.
        pad_x: usize,
        /// Kernel weights.
        weights: Vec<f32>,
        /// One bias per output channel (zeros when the layer has none).
        bias: Vec<f32>,
        /// dlib's `con_6` can fuse a ReLU.
        relu: bool,
    },
    /// `y = gamma[c] * x + beta[c]`.
    Affine {
        /// Scale per channel.
        gamma: Vec<f32>,
        /// Offset per channel.
        beta: Vec<f32>,
    },
    /// `max(x, 0)`.
    Relu,
    /// Pooling window over each channel.
    Pool {
        /// True for max, false for mean.
        max: bool,
        /// Window rows (0 = whole input).
        nr: usize,
        /// Window columns (0 = whole input).
        nc: usize,
        /// Vertical stride.
        stride_y: usize,
        /// Horizontal stride.
        stride_x: usize,
        /// Padding rows.
        pad_y: usize,
        /// Padding columns.
        pad_x: usize,
    },
    /// `out[j] = sum_i x[i] * w[i * outputs + j] (+ bias[j])`.
    Fc {
        /// Inputs.
        inputs: usize,
        /// Outputs.
        outputs: usize,
        /// Weights `[inputs][outputs]`.
        weights: Vec<f32>,
        /// Bias, if present.
        bias: Option<Vec<f32>>,
    },
    /// Zero-extending element-wise sum with tag `n`.
    AddPrev(u8),
    /// Store tag `n`.
    Tag(u8),
    /// Restore tag `n`.
    Skip(u8),
}

/// The network's input layer.
#[derive(Debug, Clone, PartialEq)]
pub struct InputLayer {
    /// Mean subtracted from each of R, G, B before scaling by 1/256.
    pub avg_rgb: [f32; 3],
    /// Fixed input size for `input_rgb_image_sized`, `None` for a pyramid input.
    pub fixed_size: Option<(usize, usize)>,
    /// Pixels between pyramid levels in the tiled image (pyramid input only).
    pub pyramid_padding: usize,
    /// Pixels around the tiled image (pyramid input only).
    pub pyramid_outer_padding: usize,
}

/// One detector window shape of an MMOD detector.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorWindow {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Label (empty for a single-class detector).
    pub label: String,
}

/// The options of dlib's `loss_mmod_` that inference needs.
#[derive(Debug, Clone, PartialEq)]
pub struct MmodOptions {
    /// Detector windows; a single-class detector has one channel per window.
    pub windows: Vec<DetectorWindow>,
    /// Non-maximum suppression: IoU above which boxes overlap.
    pub nms_iou: f64,
    /// Non-maximum suppression: fraction covered above which boxes overlap.
    pub nms_covered: f64,
    /// Whether the training assumed an image pyramid.
    pub assume_image_pyramid: bool,
    /// Whether the net has extra bounding-box regression channels.
    pub bbox_regression: bool,
}

/// The loss layer at the top of the net.
#[derive(Debug, Clone, PartialEq)]
pub enum Loss {
    /// Max-margin object detection.
    Mmod(MmodOptions),
    /// Metric learning (face embedding); the distance threshold it was trained for.
    Metric {
        /// Training margin.
        margin: f32,
        /// Distance below which two embeddings were trained to match.
        dist_thresh: f32,
    },
}

/// A whole network: loss, layers innermost first, input.
#[derive(Debug, Clone, PartialEq)]
pub struct Net {
    /// The loss layer.
    pub loss: Loss,
    /// Layers in evaluation order (input side first).
    pub layers: Vec<Layer>,
    /// The input layer.
    pub input: InputLayer,
}

const MAX_CHANNELS: usize = 1 << 14;
const MAX_KERNEL: usize = 64;

fn read_loss(r: &mut Reader) -> Result<Loss, DlibError> {
    let name = r.expect_string(&["loss_mmod_", "loss_metric_", "loss_metric_2"])?;
    match name.as_str() {
        "loss_mmod_" => {
            let v = r.version(&[1, 2, 3, 4], "mmod_options")?;
            let windows = if v == 1 {
                let width = r.size(1 << 16, "window width")?;
                let height = r.size(1 << 16, "window height")?;
                vec![DetectorWindow {
                    width,
                    height,
                    label: String::new(),
                }]
            } else {
                let n = r.seq_len(3, "detector windows")?;
                let mut w = Vec::with_capacity(n);
                for _ in 0..n {
                    let wv = r.version(&[1, 2], "detector window")?;
                    let width = r.size(1 << 16, "window width")?;
                    let height = r.size(1 << 16, "window height")?;
                    let label = if wv == 2 { r.string()? } else { String::new() };
                    w.push(DetectorWindow {
                        width,
                        height,
                        label,
                    });
                }
                w
            };
            if windows.is_empty() {
                return Err(r.err("MMOD detector without windows"));
            }
            let _loss_per_false_alarm = r.f64()?;
            let _loss_per_missed_target = r.f64()?;
            let _truth_match_iou = r.f64()?;
            let nms_iou = r.f64()?;
            let nms_covered = r.f64()?;
            let _ignore_iou = r.f64()?;
            let _ignore_covered = r.f64()?;
            let assume_image_pyramid = if v >= 3 { r.uint()? != 0 } else { true };
            let bbox_regression = if v >= 4 {
                let b = r.bool()?;
                let _lambda = r.f64()?;
                b
            } else {
                false
            };
            Ok(Loss::Mmod(MmodOptions {
                windows,
                nms_iou,
                nms_covered,
                assume_image_pyramid,
                bbox_regression,
            }))
        }
        "loss_metric_" => Ok(Loss::Metric {
            margin: 0.1,
            dist_thresh: 0.75,
        }),
        _ => {
            let margin = r.finite_f32()?;
            let dist_thresh = r.finite_f32()?;
            Ok(Loss::Metric {
                margin,
                dist_thresh,
            })
        }
    }
}

fn read_input(r: &mut Reader) -> Result<InputLayer, DlibError> {
    let name = r.expect_string(&[
        "input_rgb_image_sized",
        "input_rgb_image_pyramid",
        "input_rgb_image_pyramid2",
    ])?;
    let avg_rgb = [r.finite_f32()?, r.finite_f32()?, r.finite_f32()?];
    let mut input = InputLayer {
        avg_rgb,
        fixed_size: None,
        pyramid_padding: 10,
        pyramid_outer_padding: 11,
    };
    match name.as_str() {
        "input_rgb_image_sized" => {
            let nr = r.size(1 << 14, "input rows")?;
            let nc = r.size(1 << 14, "input columns")?;
            input.fixed_size = Some((nr, nc));
        }
        "input_rgb_image_pyramid2" => {
            input.pyramid_padding = r.size(1 << 12, "pyramid padding")?;
            input.pyramid_outer_padding = r.size(1 << 12, "pyramid outer padding")?;
        }
        _ => {}
    }
    Ok(input)
}

/// Checks that an alias shape fits in the parameter tensor at `offset`.
fn slice(params: &[f32], offset: usize, len: usize, r: &Reader) -> Result<Vec<f32>, DlibError> {
    params
        .get(offset..offset.saturating_add(len))
        .map(<[f32]>::to_vec)
        .ok_or_else(|| r.err("layer parameters shorter than their declared shape"))
}

fn product(shape: &[usize; 4]) -> usize {
    shape.iter().fold(1usize, |a, &d| a.saturating_mul(d))
}

fn read_layer(r: &mut Reader, slot: Slot) -> Result<Layer, DlibError> {
    match slot {
        Slot::Con => {
            let v = r.expect_string(&["con_4", "con_5", "con_6"])?;
            let params = r.tensor()?;
            let filters = r.size(MAX_CHANNELS, "filters")?;
            let nr = r.size(MAX_KERNEL, "kernel rows")?;
            let nc = r.size(MAX_KERNEL, "kernel columns")?;
            let stride_y = r.size(MAX_KERNEL, "stride")?;
            let stride_x = r.size(MAX_KERNEL, "stride")?;
            let pad_y = r.size(MAX_KERNEL, "padding")?;
            let pad_x = r.size(MAX_KERNEL, "padding")?;
            let fshape = r.alias_shape()?;
            let bshape = r.alias_shape()?;
            for _ in 0..4 {
                r.f64()?; // learning-rate and weight-decay multipliers
            }
            let use_bias = if v != "con_4" { r.bool()? } else { true };
            let relu = if v == "con_6" { r.bool()? } else { false };
            if fshape[0] != filters
                || fshape[2] != nr
                || fshape[3] != nc
                || stride_y == 0
                || stride_x == 0
            {
                return Err(r.err("convolution shape disagrees with its filters"));
            }
            if pad_y >= nr.max(1) || pad_x >= nc.max(1) {
                return Err(r.err("convolution padding not smaller than its kernel"));
            }
            let k = fshape[1];
            let flen = product(&fshape);
            let weights = slice(&params.data, 0, flen, r)?;
            let bias = if use_bias && product(&bshape) == filters {
                slice(&params.data, flen, filters, r)?
            } else {
                vec![0.0; filters]
            };
            Ok(Layer::Con {
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
            })
        }
        Slot::Affine => {
            let v = r.expect_string(&["affine_", "affine_2", "bn_con2"])?;
            if v == "bn_con2" {
                return read_batch_norm(r);
            }
            let params = r.tensor()?;
            let g = r.alias_shape()?;
            let b = r.alias_shape()?;
            let _mode = r.int()?;
            let disabled = if v == "affine_2" { r.bool()? } else { false };
            let (gl, bl) = (product(&g), product(&b));
            if gl != bl {
                return Err(r.err("affine gamma and beta differ in size"));
            }
            if disabled {
                return Ok(Layer::Affine {
                    gamma: vec![1.0; gl],
                    beta: vec![0.0; gl],
                });
            }
            Ok(Layer::Affine {
                gamma: slice(&params.data, 0, gl, r)?,
                beta: slice(&params.data, gl, bl, r)?,
            })
        }
        Slot::Relu => {
            let v = r.expect_string(&["relu_", "relu_2"])?;
            if v == "relu_2" && r.bool()? {
                return Err(r.err("disabled relu layers are not supported"));
            }
            Ok(Layer::Relu)
        }
        Slot::MaxPool | Slot::AvgPool => {
            let max = slot == Slot::MaxPool;
            r.expect_string(&[if max { "max_pool_2" } else { "avg_pool_2" }])?;
            let nr = r.size(MAX_KERNEL, "pool rows")?;
            let nc = r.size(MAX_KERNEL, "pool columns")?;
            let stride_y = r.size(MAX_KERNEL, "stride")?;
            let stride_x = r.size(MAX_KERNEL, "stride")?;
            let pad_y = r.size(MAX_KERNEL, "padding")?;
            let pad_x = r.size(MAX_KERNEL, "padding")?;
            if stride_y == 0 || stride_x == 0 || (nr > 0 && pad_y >= nr) || (nc > 0 && pad_x >= nc)
            {
                return Err(r.err("invalid pooling geometry"));
            }
            Ok(Layer::Pool {
                max,
                nr,
                nc,
                stride_y,
                stride_x,
                pad_y,
                pad_x,
            })
        }
        Slot::Fc => {
            let v = r.expect_string(&["fc_2", "fc_3"])?;
            let outputs = r.size(1 << 20, "fc outputs")?;
            let inputs = r.size(1 << 20, "fc inputs")?;
            let params = r.tensor()?;
            let w = r.alias_shape()?;
            let b = r.alias_shape()?;
            let mode = r.int()?;
            for _ in 0..4 {
                r.f64()?;
            }
            let use_bias = if v == "fc_3" { r.bool()? } else { true };
            let wlen = inputs.saturating_mul(outputs);
            if product(&w) != wlen {
                return Err(r.err("fc weights disagree with their shape"));
            }
            let weights = slice(&params.data, 0, wlen, r)?;
            let bias = if mode == 0 && use_bias {
                Some(slice(&params.data, wlen, product(&b), r)?)
            } else {
                None
            };
            if bias.as_ref().is_some_and(|b| b.len() != outputs) {
                return Err(r.err("fc bias disagrees with outputs"));
            }
            Ok(Layer::Fc {
                inputs,
                outputs,
                weights,
                bias,
            })
        }
        Slot::AddPrev(n) => {
            r.expect_string(&["add_prev_"])?;
            Ok(Layer::AddPrev(n))
        }
        Slot::Tag(n) => Ok(Layer::Tag(n)),
        Slot::Skip(n) => Ok(Layer::Skip(n)),
    }
}

/// Batch normalisation stored in a file meant for inference: fold the running
/// statistics into an affine transform, as dlib does when it loads one.
fn read_batch_norm(r: &mut Reader) -> Result<Layer, DlibError> {
    let params = r.tensor()?;
    let g = r.alias_shape()?;
    let _b = r.alias_shape()?;
    let _means = r.tensor()?;
    let _invstds = r.tensor()?;
    let running_means = r.tensor()?;
    let running_vars = r.tensor()?;
    let _updates = r.uint()?;
    let _window = r.uint()?;
    for _ in 0..4 {
        r.f64()?;
    }
    let eps = r.f64()? as f32;
    let n = product(&g);
    let gamma = slice(&params.data, 0, n, r)?;
    let beta = slice(&params.data, n, n, r)?;
    if running_means.data.len() != n || running_vars.data.len() != n {
        return Err(r.err("batch-norm statistics disagree with gamma"));
    }
    let mut out_g = Vec::with_capacity(n);
    let mut out_b = Vec::with_capacity(n);
    for i in 0..n {
        let s = gamma[i] / (running_vars.data[i] + eps).sqrt();
        out_g.push(s);
        out_b.push(beta[i] - s * running_means.data[i]);
    }
    Ok(Layer::Affine {
        gamma: out_g,
        beta: out_b,
    })
}

fn skip_layer_state(r: &mut Reader, version: i64) -> Result<(), DlibError> {
    // this_layer_setup_called, gradient_input_is_stale, get_output_and_gradient_input_disabled
    for _ in 0..3 {
        r.bool()?;
    }
    r.tensor()?; // x_grad
    r.tensor()?; // cached_output
    if version == 2 {
        r.tensor()?; // params_grad
    }
    Ok(())
}

/// Reads a network whose layers, outermost first, are `slots`. The innermost
/// slot must be a computational layer sitting directly on the input.
pub fn read_net(bytes: &[u8], slots: &[Slot]) -> Result<Net, DlibError> {
    let mut r = Reader::new(bytes);
    r.version(&[1], "add_loss_layer")?;
    let loss = read_loss(&mut r)?;
    let Some((&innermost, outer)) = slots.split_last() else {
        return Err(r.err("empty architecture"));
    };
    if matches!(innermost, Slot::Tag(_) | Slot::Skip(_) | Slot::AddPrev(_)) {
        return Err(r.err("innermost layer must be computational"));
    }
    // Outer layers write their versions on the way in and their details on the way out.
    let mut versions = Vec::with_capacity(outer.len());
    for &slot in outer {
        let v = match slot {
            Slot::Tag(_) | Slot::Skip(_) => r.version(&[1], "tag/skip layer")?,
            _ => r.version(&[1, 2], "add_layer")?,
        };
        versions.push(v);
    }
    let v = r.version(&[2, 3], "input add_layer")?;
    let input = read_input(&mut r)?;
    let mut layers = Vec::with_capacity(slots.len());
    layers.push(read_layer(&mut r, innermost)?);
    for _ in 0..3 {
        r.bool()?;
    }
    r.tensor()?; // x_grad
    r.tensor()?; // cached_output
    r.tensor()?; // grad_final
    if v == 3 {
        r.uint()?; // sample expansion factor
    }
    for (&slot, &v) in outer.iter().zip(&versions).rev() {
        let layer = read_layer(&mut r, slot)?;
        if !matches!(slot, Slot::Tag(_) | Slot::Skip(_)) {
            skip_layer_state(&mut r, v)?;
        }
        layers.push(layer);
    }
    r.finish()?;
    Ok(Net {
        loss,
        layers,
        input,
    })
}
