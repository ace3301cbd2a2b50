//! Travel documents (ICAO 9303). For now the machine-readable zone: TD1, TD2
//! and TD3 documents and MRV-A/B visas, every check digit verified and
//! reported by name ([`mrz`]).
//!
//! Architecture invariant: no I/O, no panics on any input; every parser is
//! bounded by the size of what it is given.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod mrz;

pub use mrz::{check_digit, Check, Format, Mrz, MrzError};
