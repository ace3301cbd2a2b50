//! A chip's files as a reader dumps them into a directory: which files are
//! there, by their LDS names. Reading the directory is the caller's (this
//! crate does no I/O); this module names the files and reads what it can.

use crate::face::{parse_dg2, FaceImage};
use crate::finger::{parse_dg3, FingerImage};
use crate::lds::{
    parse_card_security, parse_dg1, parse_dg11, parse_dg12, parse_dg14, parse_dg15, security_infos,
    Dg11, Dg12, EfCom, LdsError, SecurityInfo,
};
use crate::mrz::Mrz;

/// An elementary file of the LDS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum ChipFile {
    /// EF.COM.
    Com,
    /// EF.SOD, the document security object.
    Sod,
    /// A data group, 1 to 16.
    Dg(u8),
    /// EF.CardAccess (the PACE parameters, read before any access protocol).
    CardAccess,
    /// EF.CardSecurity (signed SecurityInfos).
    CardSecurity,
}

/// The eMRTD application's identifier (ICAO 9303 part 10).
pub const EMRTD_AID: [u8; 7] = [0xA0, 0x00, 0x00, 0x02, 0x47, 0x10, 0x01];

/// The data group a tag of EF.COM's list names (`0x61` DG1, `0x75` DG2, ...).
pub fn data_group_of_tag(tag: u32) -> Option<u8> {
    Some(match tag {
        0x61 => 1,
        0x75 => 2,
        0x63 => 3,
        0x76 => 4,
        0x65..=0x70 => (tag - 0x65 + 5) as u8,
        _ => return None,
    })
}

/// The data groups among a chip's files, by number, as passive authentication takes them.
pub fn data_groups(files: &[(ChipFile, Vec<u8>)]) -> Vec<(u8, &[u8])> {
    files
        .iter()
        .filter_map(|(k, b)| match k {
            ChipFile::Dg(n) => Some((*n, b.as_slice())),
            _ => None,
        })
        .collect()
}

impl ChipFile {
    /// The file's identifier on the chip: EF.COM `011E`, EF.SOD `011D`, DG n `01`n,
    /// EF.CardAccess `011C` and EF.CardSecurity `011D` (the last two in the master file).
    pub fn file_id(self) -> u16 {
        match self {
            Self::Com => 0x011E,
            Self::Sod => 0x011D,
            Self::Dg(n) => 0x0100 | u16::from(n),
            Self::CardAccess => 0x011C,
            Self::CardSecurity => 0x011D,
        }
    }

    /// Recognises a dumped file's name: `COM`, `SOD`, `DG1` to `DG16`, `CardAccess` or
    /// `CardSecurity`,
    /// optionally after `EF.` or `EF_` and before an extension, in any case.
    pub fn from_name(name: &str) -> Option<Self> {
        let upper = name.to_ascii_uppercase();
        let stem = upper
            .split('.')
            .filter(|p| !p.is_empty())
            .find(|p| *p != "EF")?;
        let stem = stem.strip_prefix("EF_").unwrap_or(stem);
        match stem {
            "COM" => Some(Self::Com),
            "SOD" => Some(Self::Sod),
            "CARDACCESS" | "CARD_ACCESS" => Some(Self::CardAccess),
            "CARDSECURITY" | "CARD_SECURITY" => Some(Self::CardSecurity),
            _ => {
                let n: u8 = stem.strip_prefix("DG")?.parse().ok()?;
                (1..=16).contains(&n).then_some(Self::Dg(n))
            }
        }
    }
}

/// What could be read from a chip's files, before any authentication.
#[derive(Debug, Default)]
pub struct ChipContents {
    /// EF.COM, when present and readable.
    pub com: Option<Result<EfCom, LdsError>>,
    /// DG1's zone.
    pub dg1: Option<Result<Mrz, LdsError>>,
    /// DG2's face images.
    pub dg2: Option<Result<Vec<FaceImage>, LdsError>>,
    /// DG3's finger images (on a chip, readable only after terminal authentication).
    pub dg3: Option<Result<Vec<FingerImage>, LdsError>>,
    /// DG11's additional personal details.
    pub dg11: Option<Result<Dg11, LdsError>>,
    /// DG12's additional document details.
    pub dg12: Option<Result<Dg12, LdsError>>,
    /// DG14's SecurityInfos.
    pub dg14: Option<Result<Vec<SecurityInfo>, LdsError>>,
    /// DG15's active-authentication key (SubjectPublicKeyInfo).
    pub dg15: Option<Result<Vec<u8>, LdsError>>,
    /// EF.CardAccess's SecurityInfos.
    pub card_access: Option<Result<Vec<SecurityInfo>, LdsError>>,
    /// EF.CardSecurity's SecurityInfos (its signature is checked by passive authentication).
    pub card_security: Option<Result<Vec<SecurityInfo>, LdsError>>,
    /// Every file present, by name.
    pub present: Vec<ChipFile>,
}

impl ChipContents {
    /// Reads the files given as `(file, bytes)`.
    pub fn read<'a>(files: impl IntoIterator<Item = (ChipFile, &'a [u8])>) -> Self {
        let mut c = Self::default();
        for (f, b) in files {
            c.present.push(f);
            match f {
                ChipFile::Com => c.com = Some(EfCom::parse(b)),
                ChipFile::Dg(1) => c.dg1 = Some(parse_dg1(b)),
                ChipFile::Dg(2) => c.dg2 = Some(parse_dg2(b)),
                ChipFile::Dg(3) => c.dg3 = Some(parse_dg3(b)),
                ChipFile::Dg(11) => c.dg11 = Some(parse_dg11(b)),
                ChipFile::Dg(12) => c.dg12 = Some(parse_dg12(b)),
                ChipFile::Dg(14) => c.dg14 = Some(parse_dg14(b)),
                ChipFile::Dg(15) => c.dg15 = Some(parse_dg15(b)),
                ChipFile::CardAccess => c.card_access = Some(security_infos("EF.CardAccess", b)),
                ChipFile::CardSecurity => c.card_security = Some(parse_card_security(b)),
                _ => {}
            }
        }
        c.present.sort();
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_group_tags_map_to_their_numbers() {
        let tags = [
            0x61, 0x75, 0x63, 0x76, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x6B, 0x6C, 0x6D, 0x6E,
            0x6F, 0x70,
        ];
        for (i, t) in tags.into_iter().enumerate() {
            assert_eq!(data_group_of_tag(t), Some(i as u8 + 1));
        }
        assert_eq!(data_group_of_tag(0x60), None);
        assert_eq!(data_group_of_tag(0x77), None);
    }

    #[test]
    fn reader_dump_names_are_recognised() {
        for (name, want) in [
            ("EF.COM", Some(ChipFile::Com)),
            ("com.bin", Some(ChipFile::Com)),
            ("EF_SOD.der", Some(ChipFile::Sod)),
            ("DG1.bin", Some(ChipFile::Dg(1))),
            ("ef.dg16", Some(ChipFile::Dg(16))),
            ("EF.CardAccess", Some(ChipFile::CardAccess)),
            ("card_security.bin", Some(ChipFile::CardSecurity)),
            ("DG17.bin", None),
            ("DG0", None),
            ("photo.jpg", None),
            ("", None),
            ("..", None),
        ] {
            assert_eq!(ChipFile::from_name(name), want, "{name}");
        }
    }
}
