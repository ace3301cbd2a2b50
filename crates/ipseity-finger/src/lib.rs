//! The fingerprint modality.
//!
//! A fingerprint sample becomes a [`FingerTemplate`]: a set of [`Minutia`] (ridge endings and
//! bifurcations with position, direction and quality) for one finger position. Templates
//! are compared by [`matcher`], exchanged in ISO/IEC 19794-2 and ANSI INCITS 378 records by
//! [`iso`], extracted from 500-ppi grayscale impressions by [`extract`] (WSQ images are read
//! by [`wsq`]), and synthetic impressions with ground truth are made by [`synth`].
//!
//! Architecture invariant: this crate does no file-system or network I/O of its own; callers
//! hand it bytes or images and get values back. Every function that reads untrusted bytes
//! returns an error, never panics, and bounds its allocations by the input's size.
#![deny(missing_docs)]

pub mod extract;
pub mod fusion;
pub mod gallery;
pub mod gate;
pub mod iso;
pub mod matcher;
mod minutia;
pub mod sample;
pub mod synth;
pub mod wsq;

pub use minutia::{FingerPosition, FingerTemplate, Minutia, MinutiaKind, TemplateVectorError};
