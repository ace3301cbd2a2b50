//! Face pipeline (work in progress).
#![deny(missing_docs)]

pub mod chip;
pub mod cnn;
pub mod decode;
pub mod detect;
pub mod embed;
pub mod geom;
pub mod landmarks;
