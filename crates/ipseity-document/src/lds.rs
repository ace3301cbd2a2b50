//! Logical Data Structure files (ICAO 9303 part 10) as a reader dumps them:
//! EF.COM (which data groups are present) and DG1 (the machine-readable zone).

use crate::mrz::{Mrz, MrzError};
use crate::tlv::{self, TlvError};

/// Why an LDS file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LdsError {
    /// The bytes are not well-formed TLV.
    #[error("{file}: {source}")]
    Tlv {
        /// Which file.
        file: &'static str,
        /// The TLV error.
        source: TlvError,
    },
    /// A required object is missing or has the wrong size.
    #[error("{file}: {why}")]
    Structure {
        /// Which file.
        file: &'static str,
        /// What is wrong.
        why: String,
    },
    /// DG1's zone is malformed.
    #[error("DG1: {0}")]
    Mrz(#[from] MrzError),
}

impl ipseity_core::Classified for LdsError {
    fn kind(&self) -> ipseity_core::ErrorKind {
        ipseity_core::ErrorKind::Input
    }

    fn code(&self) -> &'static str {
        "malformed_document"
    }
}

fn structure(file: &'static str, why: impl Into<String>) -> LdsError {
    LdsError::Structure {
        file,
        why: why.into(),
    }
}

/// EF.COM: the LDS and Unicode versions and the data groups present.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EfCom {
    /// LDS version, four digits (`0107` is 1.7).
    pub lds_version: String,
    /// Unicode version, six digits.
    pub unicode_version: String,
    /// The data groups' tags (`0x61` DG1, `0x75` DG2, ...).
    pub tags: Vec<u32>,
}

impl EfCom {
    /// Reads EF.COM (tag `60`).
    pub fn parse(b: &[u8]) -> Result<Self, LdsError> {
        const F: &str = "EF.COM";
        let e = |source| LdsError::Tlv { file: F, source };
        let root = tlv::read_one(b).map_err(e)?;
        if root.tag != 0x60 {
            return Err(structure(
                F,
                format!("root tag {:X}, expected 60", root.tag),
            ));
        }
        let (mut lds, mut uni, mut tags) = (None, None, None);
        for t in tlv::read_all(root.value).map_err(e)? {
            match t.tag {
                0x5F01 => lds = Some(t.value),
                0x5F36 => uni = Some(t.value),
                0x5C => tags = Some(t.value),
                _ => {}
            }
        }
        let digits = |v: Option<&[u8]>, n: usize, what: &str| -> Result<String, LdsError> {
            match v {
                Some(v) if v.len() == n && v.iter().all(u8::is_ascii_digit) => {
                    Ok(String::from_utf8_lossy(v).into_owned())
                }
                Some(_) => Err(structure(F, format!("{what} is not {n} digits"))),
                None => Err(structure(F, format!("no {what}"))),
            }
        };
        let lds_version = digits(lds, 4, "LDS version (5F01)")?;
        let unicode_version = digits(uni, 6, "Unicode version (5F36)")?;
        let list = tags.ok_or_else(|| structure(F, "no tag list (5C)"))?;
        let mut tags = vec![];
        let mut p = 0;
        while p < list.len() {
            let (tag, next) = tlv::read_tag(list, p).map_err(e)?;
            if !(0x60..=0x77).contains(&tag) && !(0x7F00..=0x7FFF).contains(&tag) {
                return Err(structure(
                    F,
                    format!("tag list holds {tag:X}, not a data group"),
                ));
            }
            tags.push(tag);
            p = next;
        }
        Ok(Self {
            lds_version,
            unicode_version,
            tags,
        })
    }
}

/// DG1's machine-readable zone (tag `61`, zone in `5F1F`).
pub fn parse_dg1(b: &[u8]) -> Result<Mrz, LdsError> {
    const F: &str = "DG1";
    let e = |source| LdsError::Tlv { file: F, source };
    let root = tlv::read_one(b).map_err(e)?;
    if root.tag != 0x61 {
        return Err(structure(
            F,
            format!("root tag {:X}, expected 61", root.tag),
        ));
    }
    let zone = tlv::read_all(root.value)
        .map_err(e)?
        .into_iter()
        .find(|t| t.tag == 0x5F1F)
        .ok_or_else(|| structure(F, "no machine-readable zone (5F1F)"))?;
    let text = std::str::from_utf8(zone.value).map_err(|_| structure(F, "the zone is not text"))?;
    // DG1 holds the zone's lines concatenated; their lengths tell the format.
    Ok(Mrz::parse(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const COM: &[u8] = &[
        0x60, 0x14, 0x5F, 0x01, 0x04, b'0', b'1', b'0', b'6', 0x5F, 0x36, 0x06, b'0', b'4', b'0',
        b'0', b'0', b'0', 0x5C, 0x02, 0x61, 0x75,
    ];

    #[test]
    fn ef_com_lists_the_data_groups() {
        let c = EfCom::parse(COM).unwrap();
        assert_eq!(c.lds_version, "0106");
        assert_eq!(c.unicode_version, "040000");
        assert_eq!(c.tags, [0x61, 0x75]);
        let mut bad = COM.to_vec();
        bad[5] = b'x';
        assert!(EfCom::parse(&bad).is_err());
        assert!(EfCom::parse(&[0x55, 0x02, 0x12, 0x34]).is_err());
    }

    #[test]
    fn dg1_needs_its_tags() {
        assert!(parse_dg1(&[0x01, 0x02, 0x12, 0x34]).is_err());
        assert!(
            parse_dg1(&[0x61, 0x09, 0x01, 0x02, 0x12, 0x34, 0x02, 0x03, 0x12, 0x34, 0x56]).is_err()
        );
    }
}
