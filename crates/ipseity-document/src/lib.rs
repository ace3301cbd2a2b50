//! Travel documents (ICAO 9303): the machine-readable zone of TD1, TD2 and
//! TD3 documents and MRV-A/B visas, every check digit verified and reported by
//! name ([`mrz`]); the chip's files as a reader dumps them ([`lds`]: EF.COM,
//! DG1, DG2's face images ([`face`]), DG3's finger images ([`finger`]), DG11,
//! DG12, DG14 and DG15), through a bounded TLV reader ([`tlv`]);
//! and passive authentication of EF.SOD against CSCAs ([`passive`]), on a
//! bounded ASN.1 reader ([`asn1`]), X.509 and CMS ([`pki`]) and RSA/ECDSA
//! verification ([`verify`]). Reading a chip: BAC ([`bac`]) or PACE ([`pace`]),
//! secure messaging with 3DES or AES ([`sm`]), the files of the eMRTD
//! application ([`reader`]) through any transport that carries APDUs
//! ([`Chip`]: a PC/SC reader with the `pcsc` feature, or the simulated chip of
//! [`sim`]).
//!
//! Architecture invariant: no I/O, no panics on any input; every parser is
//! bounded by the size of what it is given.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod asn1;
pub mod bac;
pub mod chip;
pub mod face;
pub mod finger;
pub mod lds;
pub mod mrz;
pub mod pace;
pub mod passive;
pub mod pki;
pub mod reader;
pub mod sim;
pub mod sm;
pub mod testkit;
pub mod tlv;
pub mod verify;

pub use bac::{AccessError, Chip};
pub use chip::{ChipContents, ChipFile};
pub use face::{parse_dg2, FaceImage, ImageFormat};
pub use finger::{parse_dg3, FingerImage};
pub use lds::{parse_dg1, EfCom, LdsError};
pub use mrz::{check_digit, Check, Format, Mrz, MrzError};
pub use passive::{
    authenticate, MasterListReport, Outcome, PassiveAuthError, PassiveAuthInput, PassiveAuthReport,
    Sod, TrustStore,
};
pub use sm::SecureChannel;
