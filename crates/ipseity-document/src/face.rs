//! DG2, the chip's face: the biometric information templates (ICAO 9303
//! part 10) and the face records inside them, ISO/IEC 19794-5:2005 (binary,
//! `5F2E`) or ISO/IEC 39794-5 (ASN.1, `7F2E`). What comes out is each
//! image's bytes and format, for the face pipeline to decode.

use crate::lds::LdsError;
use crate::tlv;

/// Most faces a DG2 may hold (chips carry one; a few carry two).
const MAX_FACES: usize = 8;
/// Deepest ASN.1 nesting walked in a 39794-5 record.
const MAX_DEPTH: usize = 16;

/// An image's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageFormat {
    /// JPEG (ISO/IEC 10918).
    Jpeg,
    /// JPEG 2000, as a JP2 file or a bare codestream.
    Jpeg2000,
}

/// One face image from DG2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaceImage {
    /// The encoding, read from the image's own signature.
    pub format: ImageFormat,
    /// Width and height as the 19794-5 record states them (`None` for 39794-5).
    pub size: Option<(u16, u16)>,
    /// Which record standard held it.
    pub record: &'static str,
    /// The encoded image.
    pub data: Vec<u8>,
}

fn bad(why: impl Into<String>) -> LdsError {
    LdsError::Structure {
        file: "DG2",
        why: why.into(),
    }
}

fn sniff(data: &[u8]) -> Option<ImageFormat> {
    if data.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageFormat::Jpeg)
    } else if data.starts_with(&[0, 0, 0, 0x0C, 0x6A, 0x50, 0x20, 0x20])
        || data.starts_with(&[0xFF, 0x4F, 0xFF, 0x51])
    {
        Some(ImageFormat::Jpeg2000)
    } else {
        None
    }
}

fn be(b: &[u8]) -> usize {
    b.iter().fold(0usize, |a, &x| (a << 8) | usize::from(x))
}

/// The images of an ISO/IEC 19794-5:2005 facial record.
pub fn parse_iso19794_5(b: &[u8]) -> Result<Vec<FaceImage>, LdsError> {
    if b.len() < 14 || &b[0..4] != b"FAC\0" {
        return Err(bad("19794-5 record without its FAC header"));
    }
    if &b[4..8] != b"010\0" {
        return Err(bad("19794-5 record of an unknown version"));
    }
    let total = be(&b[8..12]);
    if total != b.len() {
        return Err(bad(format!(
            "19794-5 record says {total} bytes, holds {}",
            b.len()
        )));
    }
    let faces = be(&b[12..14]);
    if faces == 0 || faces > MAX_FACES {
        return Err(bad(format!("19794-5 record with {faces} faces")));
    }
    let mut out = vec![];
    let mut p = 14;
    for _ in 0..faces {
        let head = b
            .get(p..p + 20)
            .ok_or_else(|| bad("19794-5 face block truncated"))?;
        let block = be(&head[0..4]);
        let points = be(&head[4..6]);
        let end = p
            .checked_add(block)
            .filter(|&e| e <= b.len())
            .ok_or_else(|| bad("19794-5 face block overruns the record"))?;
        let info = p + 20 + points * 8;
        let img = b
            .get(info..info + 12)
            .ok_or_else(|| bad("19794-5 image information truncated"))?;
        let data_start = info + 12;
        if data_start > end {
            return Err(bad("19794-5 face block shorter than its headers"));
        }
        let data = &b[data_start..end];
        let format =
            sniff(data).ok_or_else(|| bad("19794-5 image is neither JPEG nor JPEG 2000"))?;
        // The image's own signature decides: records in circulation state
        // the type wrongly (the ICAO sample says JPEG 2000 over a JPEG).
        if img[1] > 1 {
            return Err(bad(format!("19794-5 image data type {}", img[1])));
        }
        out.push(FaceImage {
            format,
            size: Some((be(&img[2..4]) as u16, be(&img[4..6]) as u16)),
            record: "ISO/IEC 19794-5:2005",
            data: data.to_vec(),
        });
        p = end;
    }
    Ok(out)
}

/// The image of an ISO/IEC 39794-5 record: the first primitive element,
/// depth first, whose content starts with a JPEG or JPEG 2000 signature.
/// (The record's other elements, capture and quality descriptions, are not
/// needed to compare the face.)
pub fn parse_iso39794_5(b: &[u8]) -> Result<Vec<FaceImage>, LdsError> {
    fn walk(b: &[u8], depth: usize, out: &mut Vec<FaceImage>) -> Result<(), LdsError> {
        if depth > MAX_DEPTH {
            return Err(bad("39794-5 record nested too deeply"));
        }
        for t in tlv::read_all(b).map_err(|source| LdsError::Tlv {
            file: "DG2",
            source,
        })? {
            let constructed = first_byte(t.tag) & 0x20 != 0;
            if constructed {
                walk(t.value, depth + 1, out)?;
            } else if let Some(format) = sniff(t.value) {
                out.push(FaceImage {
                    format,
                    size: None,
                    record: "ISO/IEC 39794-5",
                    data: t.value.to_vec(),
                });
            }
            if out.len() >= MAX_FACES {
                break;
            }
        }
        Ok(())
    }
    let mut out = vec![];
    walk(b, 0, &mut out)?;
    if out.is_empty() {
        return Err(bad("39794-5 record without a JPEG or JPEG 2000 image"));
    }
    Ok(out)
}

fn first_byte(tag: u32) -> u8 {
    let bytes = tag.to_be_bytes();
    bytes.iter().copied().find(|&x| x != 0).unwrap_or(0)
}

/// DG2 (tag `75`): every face image of every biometric information template.
pub fn parse_dg2(b: &[u8]) -> Result<Vec<FaceImage>, LdsError> {
    let mut out = vec![];
    for parts in crate::lds::biometric_templates("DG2", b, 0x75, MAX_FACES)? {
        let mut found = false;
        for p in parts {
            match p.tag {
                0x5F2E => out.extend(parse_iso19794_5(p.value)?),
                0x7F2E => out.extend(parse_iso39794_5(p.value)?),
                _ => continue,
            }
            found = true;
        }
        if !found {
            return Err(bad(
                "template without a biometric data block (5F2E or 7F2E)",
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(image: &[u8], data_type: u8) -> Vec<u8> {
        let block = 20 + 12 + image.len();
        let mut v = b"FAC\x00010\x00".to_vec();
        v.extend_from_slice(&((14 + block) as u32).to_be_bytes());
        v.extend_from_slice(&1u16.to_be_bytes());
        v.extend_from_slice(&(block as u32).to_be_bytes());
        v.extend_from_slice(&[0; 16]);
        v.extend_from_slice(&[1, data_type, 0, 4, 0, 3, 1, 0, 0, 0, 0, 0]);
        v.extend_from_slice(image);
        v
    }

    #[test]
    fn a_19794_record_gives_its_image() {
        let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3];
        let faces = parse_iso19794_5(&record(&jpeg, 0)).unwrap();
        assert_eq!(faces.len(), 1);
        assert_eq!(faces[0].format, ImageFormat::Jpeg);
        assert_eq!(faces[0].size, Some((4, 3)));
        assert_eq!(faces[0].data, jpeg);
        // Stated JPEG 2000 but holding a JPEG: the signature decides.
        assert_eq!(
            parse_iso19794_5(&record(&jpeg, 1)).unwrap()[0].format,
            ImageFormat::Jpeg
        );
        assert!(parse_iso19794_5(&record(&jpeg, 7)).is_err());
        // Not an image.
        assert!(parse_iso19794_5(&record(&[1, 2, 3], 0)).is_err());
        // Lengths that lie.
        let mut r = record(&jpeg, 0);
        r[11] += 1;
        assert!(parse_iso19794_5(&r).is_err());
        let mut r = record(&jpeg, 0);
        r[17] = 0xFF;
        assert!(parse_iso19794_5(&r).is_err());
        let mut r = record(&jpeg, 0);
        r[19] = 200; // 200 feature points
        assert!(parse_iso19794_5(&r).is_err());
    }

    proptest::proptest! {
        #[test]
        fn no_bytes_panic(b in proptest::collection::vec(proptest::num::u8::ANY, 0..128)) {
            let _ = parse_dg2(&b);
            let _ = parse_iso19794_5(&b);
            let _ = parse_iso39794_5(&b);
        }
    }
}
