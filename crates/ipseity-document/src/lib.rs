//! Travel documents (ICAO 9303): the machine-readable zone of TD1, TD2 and
//! TD3 documents and MRV-A/B visas, every check digit verified and reported by
//! name ([`mrz`]); the chip's files as a reader dumps them ([`lds`]: EF.COM
//! DG1 and DG2's face images so far), through a bounded TLV reader ([`tlv`]);
//! and passive authentication of EF.SOD against CSCAs ([`passive`]), on a
//! bounded ASN.1 reader ([`asn1`]), X.509 and CMS ([`pki`]) and RSA/ECDSA
//! verification ([`verify`]).
//!
//! Architecture invariant: no I/O, no panics on any input; every parser is
//! bounded by the size of what it is given.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod asn1;
pub mod bac;
pub mod chip;
pub mod face;
pub mod lds;
pub mod mrz;
pub mod pace;
pub mod passive;
pub mod pki;
pub mod testkit;
pub mod tlv;
pub mod verify;

pub use bac::{AccessError, Chip, SecureChannel};
pub use chip::{ChipContents, ChipFile};
pub use face::{parse_dg2, FaceImage, ImageFormat};
pub use lds::{parse_dg1, EfCom, LdsError};
pub use mrz::{check_digit, Check, Format, Mrz, MrzError};
pub use passive::{
    authenticate, MasterListReport, Outcome, PassiveAuthError, PassiveAuthInput, PassiveAuthReport,
    Sod, TrustStore,
};
