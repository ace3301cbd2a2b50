//! Face pipeline (work in progress).
#![deny(missing_docs)]

pub mod chip;
pub mod decode;
pub mod geom;
pub mod landmarks;
