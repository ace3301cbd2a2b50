//! A reader for the dlib model files Ipseity runs: the MMOD face detector, the
//! 5-point shape predictor and the ResNet face embedding network.
//!
//! We parse dlib's serialization format ourselves so the default build needs no
//! C++ library. Model files come from outside the process, so every length is
//! checked against the bytes that remain before anything is allocated, and a
//! malformed or truncated file is an error, never a panic.
//!
//! Architecture invariant: this crate does no I/O; callers pass bytes.
#![deny(missing_docs)]
// No SIMD kernels live here, so nothing needs unsafe code (the tidy test holds every
// crate without them to this).
#![forbid(unsafe_code)]

mod net;
mod reader;
mod shape;

pub use net::{read_net, DetectorWindow, InputLayer, Layer, Loss, MmodOptions, Net, Slot};
pub use reader::{RawTensor, Reader};
pub use shape::{read_shape_predictor, ShapePredictor, Split, Tree};

/// Why a model file could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DlibError {
    /// The file ended before the structure did.
    #[error("model file truncated at byte {offset}")]
    Truncated {
        /// Byte offset where more data was needed.
        offset: usize,
    },
    /// The bytes do not describe the expected structure.
    #[error("malformed model file at byte {offset}: {what}")]
    Malformed {
        /// Byte offset of the problem.
        offset: usize,
        /// What was wrong.
        what: String,
    },
}

/// The layer sequence of dlib's MMOD CNN face detector (`mmod_human_face_detector.dat`),
/// outermost first: `con<1,9,9>` over three `rcon5` blocks over the downsampler.
pub fn mmod_detector_slots() -> Vec<Slot> {
    let mut s = vec![Slot::Con];
    for _ in 0..6 {
        s.extend([Slot::Relu, Slot::Affine, Slot::Con]);
    }
    s
}

/// The layer sequence of dlib's ResNet-29 face embedding network
/// (`dlib_face_recognition_resnet_model_v1.dat`), outermost first.
pub fn resnet_embedding_slots() -> Vec<Slot> {
    fn block(s: &mut Vec<Slot>) {
        s.extend([Slot::Affine, Slot::Con, Slot::Relu, Slot::Affine, Slot::Con]);
    }
    fn ares(s: &mut Vec<Slot>) {
        s.extend([Slot::Relu, Slot::AddPrev(1)]);
        block(s);
        s.push(Slot::Tag(1));
    }
    fn ares_down(s: &mut Vec<Slot>) {
        s.extend([
            Slot::Relu,
            Slot::AddPrev(2),
            Slot::AvgPool,
            Slot::Skip(1),
            Slot::Tag(2),
        ]);
        block(s);
        s.push(Slot::Tag(1));
    }
    let mut s = vec![Slot::Fc, Slot::AvgPool];
    ares_down(&mut s); // level 0: 256
    for n in [2, 2, 3] {
        for _ in 0..n {
            ares(&mut s);
        }
        ares_down(&mut s); // levels 1 (256), 2 (128), 3 (64)
    }
    for _ in 0..3 {
        ares(&mut s); // level 4: 32
    }
    s.extend([Slot::MaxPool, Slot::Relu, Slot::Affine, Slot::Con]);
    s
}
