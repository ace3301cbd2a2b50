//! The face pipeline: dlib's CC0 face models (MMOD CNN detector, 5-point
//! landmarks, ResNet embedding) run by our own Rust code, from decoded pixels
//! to a 128-D template and a quality report.
//!
//! Architecture invariant: the stages are pure functions over in-memory data;
//! this crate knows nothing of the store, the CLI or JSON output. Only
//! [`decode::load_image`] touches the file system, to bound what it reads.
#![deny(missing_docs)]

pub mod chip;
mod classify;
pub mod cnn;
pub mod decode;
pub mod detect;
pub mod embed;
pub mod geom;
pub mod landmarks;
pub mod liveness;
pub mod pipeline;

pub use pipeline::{
    distance, presented_face, similarity, DetectorMode, FaceAnalysis, FaceEngine, FaceError,
    Params, Quality, MODEL_ID,
};
