//! DG3, the chip's fingerprints: the biometric information templates (ICAO
//! 9303 part 10) and the ISO/IEC 19794-4:2005 finger image records inside
//! them (`5F2E`). What comes out is each finger's image bytes with its
//! position, size, resolution and encoding, for the finger pipeline to decode
//! (WSQ, JPEG, JPEG 2000, PNG or raw grey levels).
//!
//! A chip releases DG3 only after terminal authentication; a file a reader
//! has already dumped is parsed here like any other.
//!
//! The record (19794-4:2005, version `010`): a 32-byte general header
//!
//! | bytes | field |
//! |---|---|
//! | 4 | format identifier `FIR\0` |
//! | 4 | version `010\0` |
//! | 6 | record length, big endian, this header included |
//! | 2 | capture device id |
//! | 2 | image acquisition level |
//! | 1 | number of finger or palm images |
//! | 1 | scale units: 1 pixels per inch, 2 pixels per centimetre |
//! | 2 + 2 | scan resolution, horizontal and vertical |
//! | 2 + 2 | image resolution, horizontal and vertical |
//! | 1 | pixel depth, bits |
//! | 1 | compression: 0 raw, 1 raw bit-packed, 2 WSQ, 3 JPEG, 4 JPEG 2000, 5 PNG |
//! | 2 | reserved |
//!
//! then per image a 14-byte header (block length, this header included, 4;
//! position; count of views; view number; quality; impression type; width 2;
//! height 2; reserved) and the image. ANSI/INCITS 381-2004 has the same
//! identifier and version but a 36-byte header, a 4-byte CBEFF product id
//! after the record length; ICAO names the ISO record for DG3, and an ANSI
//! one fails the length checks here rather than being misread.

use crate::lds::LdsError;

/// Most finger or palm images a DG3 may hold, over all its templates (chips
/// carry two; a full set of ten prints and four slaps is fourteen).
pub const MAX_FINGERS: usize = 16;
/// Length of the 19794-4:2005 general record header.
const HEADER: usize = 32;
/// Length of each image's header.
const VIEW_HEADER: usize = 14;

/// How a finger image is encoded, as the record's header states it and the
/// image's own signature confirms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Raw grey levels, one or two bytes a pixel.
    Uncompressed,
    /// Raw grey levels, bit-packed.
    UncompressedBitPacked,
    /// WSQ (FBI wavelet scalar quantization).
    Wsq,
    /// JPEG (ISO/IEC 10918).
    Jpeg,
    /// JPEG 2000, as a JP2 file or a bare codestream.
    Jpeg2000,
    /// PNG.
    Png,
}

impl Compression {
    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::Uncompressed,
            1 => Self::UncompressedBitPacked,
            2 => Self::Wsq,
            3 => Self::Jpeg,
            4 => Self::Jpeg2000,
            5 => Self::Png,
            _ => return None,
        })
    }

    /// The encoding's usual name ("WSQ", "JPEG 2000", ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Uncompressed => "uncompressed",
            Self::UncompressedBitPacked => "uncompressed, bit-packed",
            Self::Wsq => "WSQ",
            Self::Jpeg => "JPEG",
            Self::Jpeg2000 => "JPEG 2000",
            Self::Png => "PNG",
        }
    }

    /// Whether `data` starts with this encoding's signature (always true for
    /// raw data, which has none; its size is checked instead).
    fn confirmed_by(self, data: &[u8]) -> bool {
        match self {
            Self::Uncompressed | Self::UncompressedBitPacked => true,
            Self::Wsq => data.starts_with(&[0xFF, 0xA0]),
            Self::Jpeg => data.starts_with(&[0xFF, 0xD8, 0xFF]),
            Self::Jpeg2000 => {
                data.starts_with(&[0, 0, 0, 0x0C, 0x6A, 0x50, 0x20, 0x20])
                    || data.starts_with(&[0xFF, 0x4F, 0xFF, 0x51])
            }
            Self::Png => data.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]),
        }
    }
}

/// One finger or palm image from DG3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FingerImage {
    /// Finger or palm position code (19794-4 tables 5 and 6): 0 unknown
    /// finger, 1 to 5 right thumb to little, 6 to 10 left thumb to little,
    /// 11 to 15 several fingers, 20 to 36 palms; see [`position_name`].
    pub position: u8,
    /// Impression type code (0 live-scan plain, 1 live-scan rolled, ...);
    /// see [`impression_name`].
    pub impression: u8,
    /// Image quality, 0 to 100 (other values as the record gives them).
    pub quality: u8,
    /// Width in pixels (the horizontal line length).
    pub width: u16,
    /// Height in pixels (the vertical line length).
    pub height: u16,
    /// Horizontal image resolution in pixels per inch (converted when the
    /// record states pixels per centimetre).
    pub ppi: u16,
    /// Bits per pixel.
    pub depth: u8,
    /// The encoding.
    pub compression: Compression,
    /// Which record standard held it.
    pub record: &'static str,
    /// The image, encoded as `compression` says.
    pub data: Vec<u8>,
}

impl FingerImage {
    /// The position's name ("right thumb", "left little finger", ...).
    pub fn position_name(&self) -> &'static str {
        position_name(self.position).unwrap_or("undefined position")
    }

    /// The impression type's name, when the code is one 19794-4 defines.
    pub fn impression_name(&self) -> Option<&'static str> {
        impression_name(self.impression)
    }
}

/// The name of a 19794-4 finger or palm position code, `None` for a code the
/// standard does not define.
pub fn position_name(code: u8) -> Option<&'static str> {
    Some(match code {
        0 => "unknown finger",
        1 => "right thumb",
        2 => "right index finger",
        3 => "right middle finger",
        4 => "right ring finger",
        5 => "right little finger",
        6 => "left thumb",
        7 => "left index finger",
        8 => "left middle finger",
        9 => "left ring finger",
        10 => "left little finger",
        11 | 12 => "multiple fingers",
        13 => "plain right four fingers",
        14 => "plain left four fingers",
        15 => "plain thumbs",
        20 => "unknown palm",
        21 => "right full palm",
        22 => "right writer's palm",
        23 => "left full palm",
        24 => "left writer's palm",
        25 => "right lower palm",
        26 => "right upper palm",
        27 => "left lower palm",
        28 => "left upper palm",
        29 => "right other",
        30 => "left other",
        31 => "right interdigital",
        32 => "right thenar",
        33 => "right hypothenar",
        34 => "left interdigital",
        35 => "left thenar",
        36 => "left hypothenar",
        _ => return None,
    })
}

/// The name of a 19794-4 impression type code, `None` for a code the
/// standard does not define.
pub fn impression_name(code: u8) -> Option<&'static str> {
    Some(match code {
        0 => "live-scan plain",
        1 => "live-scan rolled",
        2 => "non-live-scan plain",
        3 => "non-live-scan rolled",
        7 => "latent",
        8 => "swipe",
        9 => "live-scan contactless",
        _ => return None,
    })
}

fn bad(why: impl Into<String>) -> LdsError {
    LdsError::Structure {
        file: "DG3",
        why: why.into(),
    }
}

fn be(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |a, &x| (a << 8) | u64::from(x))
}

fn be16(b: &[u8]) -> u16 {
    b.iter().fold(0u16, |a, &x| (a << 8) | u16::from(x))
}

/// The images of an ISO/IEC 19794-4:2005 finger image record. Every stated
/// length must match the bytes given exactly: the record's own, each image
/// block's and, for raw data, width × height × depth.
pub fn parse_iso19794_4(b: &[u8]) -> Result<Vec<FingerImage>, LdsError> {
    if b.len() < 8 || &b[0..4] != b"FIR\0" {
        return Err(bad("19794-4 record without its FIR header"));
    }
    if &b[4..8] != b"010\0" {
        return Err(bad(
            "19794-4 record of an unknown version (only 010, the 2005 edition, is read)",
        ));
    }
    let head = b
        .get(..HEADER)
        .ok_or_else(|| bad("19794-4 general header truncated"))?;
    let total = be(&head[8..14]);
    if total != b.len() as u64 {
        return Err(bad(format!(
            "19794-4 record says {total} bytes, holds {}",
            b.len()
        )));
    }
    let count = usize::from(head[18]);
    if count == 0 || count > MAX_FINGERS {
        return Err(bad(format!("19794-4 record with {count} images")));
    }
    let units = head[19];
    let resolution = be16(&head[24..26]);
    let ppi = match units {
        1 => u32::from(resolution),
        // Pixels per centimetre to pixels per inch, rounded.
        2 => (u32::from(resolution) * 254 + 50) / 100,
        _ => return Err(bad(format!("19794-4 scale units {units}"))),
    };
    let ppi = u16::try_from(ppi)
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| bad(format!("19794-4 image resolution {resolution}")))?;
    let depth = head[28];
    if !(1..=16).contains(&depth) {
        return Err(bad(format!("19794-4 pixel depth {depth} bits")));
    }
    let compression = Compression::from_code(head[29])
        .ok_or_else(|| bad(format!("19794-4 compression algorithm {}", head[29])))?;

    let mut out = Vec::with_capacity(count);
    let mut p = HEADER;
    for i in 1..=count {
        let view = b
            .get(p..p + VIEW_HEADER)
            .ok_or_else(|| bad(format!("19794-4 image {i} header truncated")))?;
        let block = be(&view[0..4]);
        let end = usize::try_from(block)
            .ok()
            .filter(|&n| n > VIEW_HEADER)
            .and_then(|n| p.checked_add(n))
            .filter(|&e| e <= b.len())
            .ok_or_else(|| {
                bad(format!(
                    "19794-4 image {i} says {block} bytes, {} remain",
                    b.len() - p
                ))
            })?;
        let position = view[4];
        if position_name(position).is_none() {
            return Err(bad(format!("19794-4 finger position {position}")));
        }
        let (width, height) = (be16(&view[9..11]), be16(&view[11..13]));
        if width == 0 || height == 0 {
            return Err(bad(format!("19794-4 image {i} of {width}x{height} pixels")));
        }
        let data = &b[p + VIEW_HEADER..end];
        check_image(compression, data, (width, height), depth)
            .map_err(|why| bad(format!("19794-4 image {i}: {why}")))?;
        out.push(FingerImage {
            position,
            impression: view[8],
            quality: view[7],
            width,
            height,
            ppi,
            depth,
            compression,
            record: "ISO/IEC 19794-4:2005",
            data: data.to_vec(),
        });
        p = end;
    }
    if p != b.len() {
        return Err(bad(format!(
            "19794-4 record has {} bytes after its {count} images",
            b.len() - p
        )));
    }
    Ok(out)
}

/// Whether `data` is what the header says: a signature for the compressed
/// encodings, the exact size for raw grey levels (bit-packed rows may or may
/// not be padded to a byte).
fn check_image(
    compression: Compression,
    data: &[u8],
    (width, height): (u16, u16),
    depth: u8,
) -> Result<(), String> {
    let (w, h, d) = (u64::from(width), u64::from(height), u64::from(depth));
    let n = data.len() as u64;
    match compression {
        Compression::Uncompressed => {
            let want = w * h * d.div_ceil(8);
            if n != want {
                return Err(format!(
                    "raw {width}x{height} at {depth} bits needs {want} bytes, holds {n}"
                ));
            }
        }
        Compression::UncompressedBitPacked => {
            let packed = (w * h * d).div_ceil(8);
            let padded = h * (w * d).div_ceil(8);
            if n != packed && n != padded {
                return Err(format!(
                    "bit-packed {width}x{height} at {depth} bits needs {packed} bytes, holds {n}"
                ));
            }
        }
        c if !c.confirmed_by(data) => {
            return Err(format!(
                "stated {} but the data has no {0} signature",
                c.name()
            ));
        }
        _ => {}
    }
    Ok(())
}

/// DG3 (tag `63`): every finger image of every biometric information template.
pub fn parse_dg3(b: &[u8]) -> Result<Vec<FingerImage>, LdsError> {
    let mut out = vec![];
    for parts in crate::lds::biometric_templates("DG3", b, 0x63, MAX_FINGERS)? {
        let mut found = false;
        for p in parts {
            match p.tag {
                0x5F2E => out.extend(parse_iso19794_4(p.value)?),
                0x7F2E => {
                    return Err(bad(
                        "ISO/IEC 39794-4 finger records (7F2E) are not read yet",
                    ))
                }
                _ => continue,
            }
            found = true;
            if out.len() > MAX_FINGERS {
                return Err(bad(format!("more than {MAX_FINGERS} finger images")));
            }
        }
        if !found {
            return Err(bad("template without a biometric data block (5F2E)"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WSQ: [u8; 6] = [0xFF, 0xA0, 0xFF, 0xA8, 0, 2];

    /// A 19794-4:2005 record: `units` and `resolution` for every image,
    /// `compression` and `depth`, and one block per `(position, size, data)`.
    fn record(
        units: u8,
        resolution: u16,
        compression: u8,
        depth: u8,
        images: &[(u8, (u16, u16), &[u8])],
    ) -> Vec<u8> {
        let blocks: usize = images.iter().map(|(_, _, d)| 14 + d.len()).sum();
        let mut v = b"FIR\x00010\x00".to_vec();
        v.extend_from_slice(&(32 + blocks as u64).to_be_bytes()[2..]);
        v.extend_from_slice(&[0, 0, 0, 31, images.len() as u8, units]);
        for _ in 0..4 {
            v.extend_from_slice(&resolution.to_be_bytes());
        }
        v.extend_from_slice(&[depth, compression, 0, 0]);
        assert_eq!(v.len(), 32);
        for (position, (w, h), data) in images {
            v.extend_from_slice(&((14 + data.len()) as u32).to_be_bytes());
            v.extend_from_slice(&[*position, 1, 1, 80, 0]);
            v.extend_from_slice(&w.to_be_bytes());
            v.extend_from_slice(&h.to_be_bytes());
            v.push(0);
            v.extend_from_slice(data);
        }
        v
    }

    fn wsq_record() -> Vec<u8> {
        record(1, 500, 2, 8, &[(2, (4, 3), &WSQ), (7, (5, 6), &WSQ)])
    }

    #[test]
    fn a_19794_4_record_gives_its_images() {
        let fingers = parse_iso19794_4(&wsq_record()).unwrap();
        assert_eq!(fingers.len(), 2);
        let f = &fingers[0];
        assert_eq!(f.position, 2);
        assert_eq!(f.position_name(), "right index finger");
        assert_eq!(f.impression_name(), Some("live-scan plain"));
        assert_eq!(f.quality, 80);
        assert_eq!((f.width, f.height, f.ppi, f.depth), (4, 3, 500, 8));
        assert_eq!(f.compression, Compression::Wsq);
        assert_eq!(f.record, "ISO/IEC 19794-4:2005");
        assert_eq!(f.data, WSQ);
        assert_eq!(fingers[1].position_name(), "left index finger");
        assert_eq!((fingers[1].width, fingers[1].height), (5, 6));
    }

    #[test]
    fn pixels_per_centimetre_become_pixels_per_inch() {
        let r = record(2, 197, 2, 8, &[(1, (4, 3), &WSQ)]);
        assert_eq!(parse_iso19794_4(&r).unwrap()[0].ppi, 500);
        assert!(parse_iso19794_4(&record(3, 500, 2, 8, &[(1, (4, 3), &WSQ)])).is_err());
        assert!(parse_iso19794_4(&record(1, 0, 2, 8, &[(1, (4, 3), &WSQ)])).is_err());
    }

    #[test]
    fn each_encoding_is_confirmed_by_its_data() {
        let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 1];
        let jp2 = [0, 0, 0, 0x0C, 0x6A, 0x50, 0x20, 0x20, 0x0D, 0x0A];
        let j2k = [0xFF, 0x4F, 0xFF, 0x51, 0];
        let png = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0];
        for (code, data, want) in [
            (3, &jpeg[..], Compression::Jpeg),
            (4, &jp2[..], Compression::Jpeg2000),
            (4, &j2k[..], Compression::Jpeg2000),
            (5, &png[..], Compression::Png),
        ] {
            let r = record(1, 500, code, 8, &[(1, (4, 3), data)]);
            assert_eq!(parse_iso19794_4(&r).unwrap()[0].compression, want);
        }
        // Stated WSQ over a JPEG, stated JPEG over a WSQ: refused.
        assert!(parse_iso19794_4(&record(1, 500, 2, 8, &[(1, (4, 3), &jpeg)])).is_err());
        assert!(parse_iso19794_4(&record(1, 500, 3, 8, &[(1, (4, 3), &WSQ)])).is_err());
        // Compression codes past PNG.
        for code in [6, 0xFF] {
            let e = parse_iso19794_4(&record(1, 500, code, 8, &[(1, (4, 3), &WSQ)]));
            assert!(e.unwrap_err().to_string().contains("compression"));
        }
    }

    #[test]
    fn raw_data_must_be_width_times_height_times_depth() {
        let grey = [7u8; 12];
        let r = record(1, 500, 0, 8, &[(6, (4, 3), &grey)]);
        let f = &parse_iso19794_4(&r).unwrap()[0];
        assert_eq!(
            (f.compression, f.data.len()),
            (Compression::Uncompressed, 12)
        );
        assert!(parse_iso19794_4(&record(1, 500, 0, 8, &[(6, (4, 3), &grey[..11])])).is_err());
        assert!(parse_iso19794_4(&record(1, 500, 0, 16, &[(6, (4, 3), &grey)])).is_err());
        assert!(parse_iso19794_4(&record(1, 500, 0, 16, &[(6, (2, 3), &grey)])).is_ok());
        // 5x3 at 1 bit: 15 bits, two bytes packed, three bytes with rows padded.
        for n in [2, 3] {
            let r = record(1, 500, 1, 1, &[(6, (5, 3), &grey[..n])]);
            assert!(parse_iso19794_4(&r).is_ok(), "{n}");
        }
        assert!(parse_iso19794_4(&record(1, 500, 1, 1, &[(6, (5, 3), &grey[..4])])).is_err());
        assert!(parse_iso19794_4(&record(1, 500, 0, 0, &[(6, (4, 3), &grey)])).is_err());
        assert!(parse_iso19794_4(&record(1, 500, 0, 17, &[(6, (4, 3), &grey)])).is_err());
        assert!(parse_iso19794_4(&record(1, 500, 0, 8, &[(6, (0, 3), &[])])).is_err());
    }

    #[test]
    fn lengths_that_lie_are_refused() {
        let good = wsq_record();
        // The record's length, one more and one less than it holds.
        for delta in [1i8, -1] {
            let mut r = good.clone();
            r[13] = r[13].wrapping_add_signed(delta);
            assert!(parse_iso19794_4(&r).is_err(), "{delta}");
        }
        // The record's length in its high bytes.
        let mut r = good.clone();
        r[8] = 0xFF;
        assert!(parse_iso19794_4(&r).is_err());
        // The first image's block: longer, shorter, past the end, below its header.
        for (at, v) in [(35, 21), (35, 19), (32, 0xFF), (35, 13), (35, 14), (35, 0)] {
            let mut r = good.clone();
            r[at] = v;
            assert!(parse_iso19794_4(&r).is_err(), "byte {at} = {v}");
        }
        // More images announced than present, and fewer.
        for n in [3, 1] {
            let mut r = good.clone();
            r[18] = n;
            assert!(parse_iso19794_4(&r).is_err(), "{n} images");
        }
        // Truncated anywhere.
        for cut in 0..good.len() {
            assert!(parse_iso19794_4(&good[..cut]).is_err(), "cut at {cut}");
        }
        // Trailing bytes inside and outside the stated length.
        let mut r = good.clone();
        r.push(0);
        assert!(parse_iso19794_4(&r).is_err());
        r[13] += 1;
        assert!(parse_iso19794_4(&r).is_err());
    }

    #[test]
    fn too_many_images_and_wrong_headers_are_refused() {
        let many: Vec<(u8, (u16, u16), &[u8])> =
            (0..17).map(|i| (i % 10, (4, 3), &WSQ[..])).collect();
        assert!(parse_iso19794_4(&record(1, 500, 2, 8, &many[..16])).is_ok());
        let e = parse_iso19794_4(&record(1, 500, 2, 8, &many)).unwrap_err();
        assert!(e.to_string().contains("17 images"), "{e}");
        assert!(parse_iso19794_4(&record(1, 500, 2, 8, &[])).is_err());

        let mut r = wsq_record();
        r[0] = b'F' + 1;
        assert!(parse_iso19794_4(&r).is_err());
        let mut r = wsq_record();
        r[4..8].copy_from_slice(b"020\0");
        let e = parse_iso19794_4(&r).unwrap_err();
        assert!(e.to_string().contains("version"), "{e}");
        // An undefined finger position.
        for pos in [16, 19, 37, 0xFF] {
            let r = record(1, 500, 2, 8, &[(pos, (4, 3), &WSQ)]);
            assert!(parse_iso19794_4(&r).is_err(), "position {pos}");
        }
    }

    /// DG3 around `records`, one biometric information template each.
    fn dg3(records: &[Vec<u8>], count: u8) -> Vec<u8> {
        fn tlv(tag: &[u8], v: &[u8]) -> Vec<u8> {
            let mut out = tag.to_vec();
            if v.len() < 0x80 {
                out.push(v.len() as u8);
            } else {
                out.push(0x82);
                out.extend_from_slice(&(v.len() as u16).to_be_bytes());
            }
            out.extend_from_slice(v);
            out
        }
        let mut group = tlv(&[0x02], &[count]);
        for r in records {
            let header = tlv(&[0xA1], &[0x87, 2, 1, 1, 0x88, 2, 0, 7]);
            group.extend(tlv(
                &[0x7F, 0x60],
                &[header, tlv(&[0x5F, 0x2E], r)].concat(),
            ));
        }
        tlv(&[0x63], &tlv(&[0x7F, 0x61], &group))
    }

    #[test]
    fn dg3_gives_every_template_s_images() {
        let one = record(1, 500, 2, 8, &[(1, (4, 3), &WSQ)]);
        let fingers = parse_dg3(&dg3(&[wsq_record(), one.clone()], 2)).unwrap();
        let positions: Vec<u8> = fingers.iter().map(|f| f.position).collect();
        assert_eq!(positions, [2, 7, 1]);

        assert!(parse_dg3(&dg3(std::slice::from_ref(&one), 2)).is_err());
        assert!(parse_dg3(&dg3(&[one.clone(), one.clone()], 1)).is_err());
        assert!(parse_dg3(&dg3(&[], 0)).is_err());
        let mut wrong_root = dg3(std::slice::from_ref(&one), 1);
        wrong_root[0] = 0x75;
        assert!(parse_dg3(&wrong_root).is_err());
        // A damaged record inside is the DG's error.
        let mut damaged = one.clone();
        damaged.pop();
        let e = parse_dg3(&dg3(&[damaged], 1)).unwrap_err();
        assert!(e.to_string().starts_with("DG3: "), "{e}");
        // Sixteen images in all, at most.
        let sixteen: Vec<(u8, (u16, u16), &[u8])> =
            (0..16).map(|_| (0, (4, 3), &WSQ[..])).collect();
        let full = record(1, 500, 2, 8, &sixteen);
        assert_eq!(
            parse_dg3(&dg3(std::slice::from_ref(&full), 1))
                .unwrap()
                .len(),
            16
        );
        assert!(parse_dg3(&dg3(&[full, one], 2)).is_err());
    }

    proptest::proptest! {
        #[test]
        fn no_bytes_panic(b in proptest::collection::vec(proptest::num::u8::ANY, 0..128)) {
            let _ = parse_dg3(&b);
            let _ = parse_iso19794_4(&b);
        }

        #[test]
        fn no_changed_byte_of_a_record_panics(at in 0usize..72, v in proptest::num::u8::ANY) {
            let mut r = wsq_record();
            r[at] = v;
            let _ = parse_iso19794_4(&r);
            let _ = parse_dg3(&dg3(&[r], 1));
        }
    }
}
