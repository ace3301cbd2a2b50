//! Ipseity's use cases as a library: enrolment with its duplicate search, the live 1:N
//! galleries, and the error vocabulary every front end maps (the CLI to exit statuses,
//! the HTTP service to status codes).
//!
//! **Architecture invariant:** no SQL (the store owns it), no argument parsing, no
//! printing, no HTTP, no JSON. Checks that guard a write (is this person enrolled already?
//! does this subject have fingers?) run inside the write's transaction.
#![deny(missing_docs)]
// No SIMD kernels live here, so nothing needs unsafe code (the tidy test holds every
// crate without them to this).
#![forbid(unsafe_code)]

pub mod document;
pub mod error;
pub mod face;
pub mod finger;
pub mod gallery;
pub mod identify;
pub mod verify;

pub use error::{EngineError, Result};
