//! Face pipeline (work in progress).
#![deny(missing_docs)]

pub mod decode;
pub mod geom;
