//! Logical Data Structure files (ICAO 9303 part 10) as a reader dumps them:
//! EF.COM (which data groups are present), DG1 (the machine-readable zone), DG11
//! (additional personal details), DG12 (additional document details), DG14
//! (SecurityInfos) and DG15 (the active-authentication key).

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

/// A name as 9303 writes it: primary and secondary identifiers separated by `<<`, the
/// `<` inside each read as a space.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Name {
    /// Primary identifier (surname).
    pub primary: String,
    /// Secondary identifier (given names); empty when the name has one part.
    pub secondary: String,
}

fn text(file: &'static str, what: &str, v: &[u8]) -> Result<String, LdsError> {
    std::str::from_utf8(v)
        .map(|t| t.replace('<', " ").trim().to_owned())
        .map_err(|_| structure(file, format!("{what} is not UTF-8 text")))
}

fn name(file: &'static str, v: &[u8]) -> Result<Name, LdsError> {
    let raw = std::str::from_utf8(v).map_err(|_| structure(file, "a name is not UTF-8 text"))?;
    let parts: Vec<&str> = raw.split("<<").collect();
    if parts.len() > 2 {
        return Err(structure(
            file,
            "a name with more than two components (`<<` twice)",
        ));
    }
    let clean = |p: &str| p.replace('<', " ").trim().to_owned();
    Ok(Name {
        primary: clean(parts[0]),
        secondary: parts.get(1).map_or_else(String::new, |p| clean(p)),
    })
}

/// A list written with `<` between its items (a place, an address).
fn items(file: &'static str, what: &str, v: &[u8]) -> Result<Vec<String>, LdsError> {
    let raw =
        std::str::from_utf8(v).map_err(|_| structure(file, format!("{what} is not UTF-8 text")))?;
    Ok(raw
        .split('<')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect())
}

/// The root of a data group: checks its tag, returns its objects.
fn root<'a>(file: &'static str, b: &'a [u8], tag: u32) -> Result<Vec<tlv::Tlv<'a>>, LdsError> {
    let e = |source| LdsError::Tlv { file, source };
    let root = tlv::read_one(b).map_err(e)?;
    if root.tag != tag {
        return Err(structure(
            file,
            format!("root tag {:X}, expected {tag:X}", root.tag),
        ));
    }
    tlv::read_all(root.value).map_err(e)
}

/// The biometric information templates of a biometric data group (DG2 `75`, DG3 `63`;
/// ICAO 9303 part 10): the group `7F61`, whose instance count `02` must equal the
/// templates `7F60` present, from 1 to `max`. Returns each template's objects.
pub(crate) fn biometric_templates<'a>(
    file: &'static str,
    b: &'a [u8],
    tag: u32,
    max: usize,
) -> Result<Vec<Vec<tlv::Tlv<'a>>>, LdsError> {
    let e = |source| LdsError::Tlv { file, source };
    let group = root(file, b, tag)?
        .into_iter()
        .find(|t| t.tag == 0x7F61)
        .ok_or_else(|| structure(file, "no biometric information group (7F61)"))?;
    let items = tlv::read_all(group.value).map_err(e)?;
    let count = items
        .iter()
        .find(|t| t.tag == 0x02)
        .filter(|t| (1..=2).contains(&t.value.len()))
        .map(|t| {
            t.value
                .iter()
                .fold(0usize, |a, &x| (a << 8) | usize::from(x))
        })
        .ok_or_else(|| structure(file, "no instance count (02)"))?;
    let templates: Vec<&tlv::Tlv<'_>> = items.iter().filter(|t| t.tag == 0x7F60).collect();
    if count == 0 || count > max || templates.len() != count {
        return Err(structure(
            file,
            format!("{count} templates announced, {} present", templates.len()),
        ));
    }
    templates
        .into_iter()
        .map(|t| tlv::read_all(t.value).map_err(e))
        .collect()
}

/// DG11, additional personal details (9303 part 10, 4.7.11). Every field is optional;
/// images and custody information are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Dg11 {
    /// Full name of the holder (`5F0E`), in national characters where the state writes them.
    pub name_of_holder: Option<Name>,
    /// Other names (`5F0F`, in an `A0` list or, as some states write it, bare).
    pub other_names: Vec<Name>,
    /// Personal number (`5F10`).
    pub personal_number: Option<String>,
    /// Full date of birth, `YYYYMMDD` (`5F2B`).
    pub full_date_of_birth: Option<String>,
    /// Place of birth (`5F11`), its parts.
    pub place_of_birth: Vec<String>,
    /// Permanent address (`5F42`), its parts.
    pub address: Vec<String>,
    /// Telephone (`5F12`).
    pub telephone: Option<String>,
    /// Profession (`5F13`).
    pub profession: Option<String>,
    /// Title (`5F14`).
    pub title: Option<String>,
    /// Personal summary (`5F15`).
    pub personal_summary: Option<String>,
    /// Other valid travel document numbers (`5F17`).
    pub other_td_numbers: Vec<String>,
}

/// Reads DG11 (tag `6B`).
pub fn parse_dg11(b: &[u8]) -> Result<Dg11, LdsError> {
    const F: &str = "DG11";
    let mut d = Dg11::default();
    for t in root(F, b, 0x6B)? {
        match t.tag {
            0x5F0E => d.name_of_holder = Some(name(F, t.value)?),
            0x5F0F => d.other_names.push(name(F, t.value)?),
            0xA0 => {
                let e = |source| LdsError::Tlv { file: F, source };
                let inner = tlv::read_all(t.value).map_err(e)?;
                let count = inner
                    .first()
                    .filter(|c| c.tag == 0x02)
                    .ok_or_else(|| structure(F, "other names (A0) without their count"))?;
                if count.value.len() != 1 {
                    return Err(structure(
                        F,
                        "the other names' count: its length must be 1 byte",
                    ));
                }
                if !(1..=99).contains(&count.value[0]) {
                    return Err(structure(F, "the other names' count must be 1-99"));
                }
                // A count above the names present is taken leniently: the names are read.
                for n in inner[1..].iter().filter(|n| n.tag == 0x5F0F) {
                    d.other_names.push(name(F, n.value)?);
                }
            }
            0x5F10 => d.personal_number = Some(text(F, "the personal number", t.value)?),
            0x5F2B => d.full_date_of_birth = Some(text(F, "the date of birth", t.value)?),
            0x5F11 => d.place_of_birth = items(F, "the place of birth", t.value)?,
            0x5F42 => d.address = items(F, "the address", t.value)?,
            0x5F12 => d.telephone = Some(text(F, "the telephone", t.value)?),
            0x5F13 => d.profession = Some(text(F, "the profession", t.value)?),
            0x5F14 => d.title = Some(text(F, "the title", t.value)?),
            0x5F15 => d.personal_summary = Some(text(F, "the personal summary", t.value)?),
            0x5F17 => d.other_td_numbers = items(F, "other document numbers", t.value)?,
            _ => {}
        }
    }
    Ok(d)
}

/// DG12, additional document details (9303 part 10, 4.7.12). Images left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Dg12 {
    /// Issuing authority (`5F19`).
    pub issuing_authority: Option<String>,
    /// Date of issue, `YYYYMMDD` (`5F26`).
    pub date_of_issue: Option<String>,
    /// Endorsements and observations (`5F1B`).
    pub endorsements: Option<String>,
    /// Tax or exit requirements (`5F1C`).
    pub tax_exit_requirements: Option<String>,
    /// Date and time of personalization, `YYYYMMDDhhmmss` (`5F55`).
    pub personalization_time: Option<String>,
    /// Serial number of the personalization system (`5F56`).
    pub personalization_system: Option<String>,
}

/// Reads DG12 (tag `6C`).
pub fn parse_dg12(b: &[u8]) -> Result<Dg12, LdsError> {
    const F: &str = "DG12";
    let mut d = Dg12::default();
    for t in root(F, b, 0x6C)? {
        let v = || text(F, "a field", t.value).map(Some);
        match t.tag {
            0x5F19 => d.issuing_authority = v()?,
            0x5F26 => d.date_of_issue = v()?,
            0x5F1B => d.endorsements = v()?,
            0x5F1C => d.tax_exit_requirements = v()?,
            0x5F55 => d.personalization_time = v()?,
            0x5F56 => d.personalization_system = v()?,
            _ => {}
        }
    }
    Ok(d)
}

/// What a SecurityInfo of EF.CardAccess, EF.CardSecurity or DG14 announces, by its
/// protocol's object identifier (BSI TR-03110, ICAO 9303 part 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityInfoKind {
    /// PACEInfo (`id-PACE-*`, with its cipher arc).
    Pace,
    /// ChipAuthenticationInfo (`id-CA-*`, with its cipher arc).
    ChipAuthentication,
    /// ChipAuthenticationPublicKeyInfo (`id-PK-DH`, `id-PK-ECDH`).
    ChipAuthenticationPublicKey,
    /// TerminalAuthenticationInfo (`id-TA`).
    TerminalAuthentication,
    /// ActiveAuthenticationInfo (`id-icao-mrtd-security-aaProtocolObject`).
    ActiveAuthentication,
    /// Anything else: domain parameter infos, EF.DIR, proprietary or misspelt infos.
    Other,
}

/// One SecurityInfo: its protocol identifier (content bytes) and what it announces.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SecurityInfo {
    /// The protocol's object identifier, content bytes.
    pub protocol: Vec<u8>,
    /// What it is.
    pub kind: SecurityInfoKind,
}

fn security_kind(oid: &[u8]) -> SecurityInfoKind {
    const BSI: [u8; 7] = [0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02];
    const AA: [u8; 6] = [0x67, 0x81, 0x08, 0x01, 0x01, 0x05];
    if oid == AA {
        return SecurityInfoKind::ActiveAuthentication;
    }
    if oid.len() < 8 || oid[..7] != BSI {
        return SecurityInfoKind::Other;
    }
    match (oid[7], oid.len()) {
        (4, 10) => SecurityInfoKind::Pace,
        (3, 10) => SecurityInfoKind::ChipAuthentication,
        (1, 9) => SecurityInfoKind::ChipAuthenticationPublicKey,
        (2, 8) => SecurityInfoKind::TerminalAuthentication,
        _ => SecurityInfoKind::Other,
    }
}

/// SecurityInfos: a SET OF SEQUENCEs, each starting with its protocol's identifier.
pub fn security_infos(file: &'static str, b: &[u8]) -> Result<Vec<SecurityInfo>, LdsError> {
    let e = |source| LdsError::Tlv { file, source };
    let set = tlv::read_one(b).map_err(e)?;
    if set.tag != 0x31 {
        return Err(structure(file, "SecurityInfos is not a SET"));
    }
    let mut out = Vec::new();
    for info in tlv::read_all(set.value).map_err(e)? {
        if info.tag != 0x30 {
            return Err(structure(file, "a SecurityInfo is not a SEQUENCE"));
        }
        let first = tlv::read_all(info.value).map_err(e)?;
        let oid = first
            .first()
            .filter(|t| t.tag == 0x06)
            .ok_or_else(|| structure(file, "a SecurityInfo without its protocol"))?;
        out.push(SecurityInfo {
            protocol: oid.value.to_vec(),
            kind: security_kind(oid.value),
        });
    }
    Ok(out)
}

/// DG14 (tag `6E`): the chip's SecurityInfos for chip and terminal authentication and PACE.
pub fn parse_dg14(b: &[u8]) -> Result<Vec<SecurityInfo>, LdsError> {
    const F: &str = "DG14";
    let e = |source| LdsError::Tlv { file: F, source };
    let root = tlv::read_one(b).map_err(e)?;
    if root.tag != 0x6E {
        return Err(structure(
            F,
            format!("root tag {:X}, expected 6E", root.tag),
        ));
    }
    security_infos(F, root.value)
}

/// DG15 (tag `6F`): the active-authentication public key, as its SubjectPublicKeyInfo's
/// DER bytes.
pub fn parse_dg15(b: &[u8]) -> Result<Vec<u8>, LdsError> {
    const F: &str = "DG15";
    let e = |source| LdsError::Tlv { file: F, source };
    let root = tlv::read_one(b).map_err(e)?;
    if root.tag != 0x6F {
        return Err(structure(
            F,
            format!("root tag {:X}, expected 6F", root.tag),
        ));
    }
    let spki = tlv::read_one(root.value).map_err(e)?;
    let parts = tlv::read_all(spki.value).map_err(e)?;
    if spki.tag != 0x30 || parts.len() != 2 || parts[0].tag != 0x30 || parts[1].tag != 0x03 {
        return Err(structure(F, "not a SubjectPublicKeyInfo"));
    }
    Ok(root.value.to_vec())
}

/// `id-SecurityObject` (BSI TR-03110): the eContentType of EF.CardSecurity.
const SECURITY_OBJECT: [u8; 8] = [0x04, 0x00, 0x7F, 0x00, 0x07, 0x03, 0x02, 0x01];

/// Largest EF.CardSecurity read (real ones are 2-4 KB).
const MAX_CARD_SECURITY_BYTES: usize = 64 << 10;

/// EF.CardSecurity's SecurityInfos: a CMS SignedData of type `id-SecurityObject`. Only
/// the structure and content type are checked here: what it announces is proven by
/// [`crate::passive::authenticate_card_security`].
pub fn parse_card_security(b: &[u8]) -> Result<Vec<SecurityInfo>, LdsError> {
    let der = card_security_der(b)?;
    let sd =
        crate::pki::SignedData::parse(&der).map_err(|e| structure(CARD_SECURITY, e.to_string()))?;
    card_security_infos(&sd)
}

const CARD_SECURITY: &str = "EF.CardSecurity";

/// EF.CardSecurity's bytes, capped, with BER indefinite lengths made definite.
pub(crate) fn card_security_der(b: &[u8]) -> Result<Vec<u8>, LdsError> {
    if b.len() > MAX_CARD_SECURITY_BYTES {
        return Err(structure(
            CARD_SECURITY,
            format!("{} bytes, at most {MAX_CARD_SECURITY_BYTES}", b.len()),
        ));
    }
    crate::asn1::ber_to_der_lengths(b).map_err(|e| structure(CARD_SECURITY, e.to_string()))
}

/// The SecurityInfos EF.CardSecurity's SignedData carries, once its content type is
/// checked.
pub(crate) fn card_security_infos(
    sd: &crate::pki::SignedData<'_>,
) -> Result<Vec<SecurityInfo>, LdsError> {
    if sd.econtent_type != SECURITY_OBJECT {
        return Err(structure(
            CARD_SECURITY,
            "the signed content is not an id-SecurityObject",
        ));
    }
    security_infos(CARD_SECURITY, &sd.econtent)
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
