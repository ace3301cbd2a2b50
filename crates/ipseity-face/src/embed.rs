//! The 128-D face embedding: dlib's ResNet-29 metric network over an aligned 150x150 chip.

use crate::cnn::{forward, CnnError, Tensor};
use crate::geom::RgbImage;
use ipseity_dlib::{Loss, Net};

/// A loaded embedding network.
pub struct Embedder {
    net: Net,
    size: (usize, usize),
}

impl Embedder {
    /// Wraps a parsed network, checking it is a metric-learning net with a fixed input size.
    pub fn new(net: Net) -> Result<Self, CnnError> {
        let size = net
            .input
            .fixed_size
            .ok_or_else(|| CnnError::Shape("embedding net needs a fixed input size".into()))?;
        if !matches!(net.loss, Loss::Metric { .. }) {
            return Err(CnnError::Shape("not a metric-learning network".into()));
        }
        Ok(Self { net, size })
    }

    /// Chip side length the network expects (150 for dlib's model).
    pub fn chip_size(&self) -> usize {
        self.size.0
    }

    /// The distance threshold the network was trained for (0.6 in face_recognition's usage).
    pub fn trained_threshold(&self) -> f32 {
        match self.net.loss {
            Loss::Metric { dist_thresh, .. } => dist_thresh,
            _ => 0.6,
        }
    }

    /// Embeds one aligned chip.
    pub fn embed(&self, chip: &RgbImage) -> Result<Vec<f32>, CnnError> {
        let (h, w) = self.size;
        if (chip.height, chip.width) != (h, w) {
            return Err(CnnError::Shape(format!(
                "chip must be {w}x{h}, got {}x{}",
                chip.width, chip.height
            )));
        }
        let x = to_tensor(chip, self.net.input.avg_rgb);
        Ok(forward(&self.net.layers, x)?.data)
    }
}

/// dlib's input normalisation: `(channel - mean) / 256`, planar.
pub fn to_tensor(img: &RgbImage, avg: [f32; 3]) -> Tensor {
    let plane = img.width * img.height;
    let mut t = Tensor::zeros(3, img.height, img.width);
    for (i, px) in img.data.chunks_exact(3).enumerate() {
        for c in 0..3 {
            t.data[c * plane + i] = (f32::from(px[c]) - avg[c]) / 256.0;
        }
    }
    t
}
