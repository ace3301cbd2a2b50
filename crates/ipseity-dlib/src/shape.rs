//! dlib's `shape_predictor`: an ensemble of regression trees over pixel-intensity
//! differences (Kazemi and Sullivan), read with every index checked so that
//! inference can index without bounds surprises.

use crate::reader::Reader;
use crate::DlibError;

/// One split: compare the intensity at feature pixel `idx1` with `idx2`.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// First feature pixel.
    pub idx1: usize,
    /// Second feature pixel.
    pub idx2: usize,
    /// Go left when `pix[idx1] - pix[idx2] > thresh`.
    pub thresh: f32,
}

/// A complete binary tree: `splits` are internal nodes, `leaves` the shape deltas.
#[derive(Debug, Clone, PartialEq)]
pub struct Tree {
    /// Internal nodes in breadth-first order.
    pub splits: Vec<Split>,
    /// Leaf values, each `2 * landmarks` long.
    pub leaves: Vec<Vec<f32>>,
}

/// A loaded shape predictor.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapePredictor {
    /// Mean shape in normalised box coordinates, `[x0, y0, x1, y1, ...]`.
    pub initial_shape: Vec<f32>,
    /// One forest per cascade level.
    pub forests: Vec<Vec<Tree>>,
    /// Per level, per feature pixel: the landmark it is anchored to.
    pub anchor_idx: Vec<Vec<usize>>,
    /// Per level, per feature pixel: its offset from the anchor, `(dx, dy)`.
    pub deltas: Vec<Vec<(f32, f32)>>,
}

impl ShapePredictor {
    /// Number of landmarks predicted.
    pub fn landmarks(&self) -> usize {
        self.initial_shape.len() / 2
    }
}

/// Parses a `shape_predictor` file and validates its internal references.
pub fn read_shape_predictor(bytes: &[u8]) -> Result<ShapePredictor, DlibError> {
    let mut r = Reader::new(bytes);
    r.version(&[1], "shape_predictor")?;
    let (_, nc, initial_shape) = r.float_matrix()?;
    if nc != 1 || initial_shape.is_empty() || initial_shape.len() % 2 != 0 {
        return Err(r.err("initial shape must be a column of x,y pairs"));
    }
    let dims = initial_shape.len();
    let levels = r.seq_len(1, "cascade levels")?;
    let mut forests = Vec::with_capacity(levels);
    for _ in 0..levels {
        let n = r.seq_len(2, "trees")?;
        let mut forest = Vec::with_capacity(n);
        for _ in 0..n {
            let ns = r.seq_len(4, "splits")?;
            let mut splits = Vec::with_capacity(ns);
            for _ in 0..ns {
                let idx1 = r.size(1 << 20, "feature index")?;
                let idx2 = r.size(1 << 20, "feature index")?;
                let thresh = r.finite_f32()?;
                splits.push(Split { idx1, idx2, thresh });
            }
            let nl = r.seq_len(2, "leaves")?;
            if nl != ns + 1 {
                return Err(r.err("a tree must have one more leaf than splits"));
            }
            let mut leaves = Vec::with_capacity(nl);
            for _ in 0..nl {
                let (_, _, v) = r.float_matrix()?;
                if v.len() != dims {
                    return Err(r.err("leaf size differs from the shape size"));
                }
                leaves.push(v);
            }
            forest.push(Tree { splits, leaves });
        }
        forests.push(forest);
    }
    let na = r.seq_len(1, "anchor levels")?;
    let mut anchor_idx = Vec::with_capacity(na);
    for _ in 0..na {
        let n = r.seq_len(2, "anchors")?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let a = r.size(dims / 2 - 1, "anchor landmark")?;
            v.push(a);
        }
        anchor_idx.push(v);
    }
    let nd = r.seq_len(1, "delta levels")?;
    let mut deltas = Vec::with_capacity(nd);
    for _ in 0..nd {
        let n = r.seq_len(4, "deltas")?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push((r.finite_f32()?, r.finite_f32()?));
        }
        deltas.push(v);
    }
    r.finish()?;
    if anchor_idx.len() != forests.len() || deltas.len() != forests.len() {
        return Err(r.err("cascade levels disagree"));
    }
    for ((forest, anchors), ds) in forests.iter().zip(&anchor_idx).zip(&deltas) {
        if anchors.len() != ds.len() {
            return Err(r.err("anchors and deltas differ in count"));
        }
        for t in forest {
            if t.splits
                .iter()
                .any(|s| s.idx1 >= anchors.len() || s.idx2 >= anchors.len())
            {
                return Err(r.err("split refers to a missing feature pixel"));
            }
        }
    }
    Ok(ShapePredictor {
        initial_shape,
        forests,
        anchor_idx,
        deltas,
    })
}
