//! ISO/IEC 19794-2:2005 and ANSI INCITS 378-2004 finger minutiae records, so templates can
//! be exchanged with other fingerprint systems.
//!
//! Both standards share one layout (big-endian throughout) and differ in four places:
//!
//! | field                      | ISO/IEC 19794-2:2005        | ANSI INCITS 378-2004                         |
//! |----------------------------|-----------------------------|----------------------------------------------|
//! | record length              | 4 bytes                     | 2 bytes, or `00 00` + 4 bytes past `0xFFFF`  |
//! | CBEFF product identifier   | absent                      | 4 bytes (owner, type)                        |
//! | header size                | 24 bytes                    | 26 bytes (30 with the long length)           |
//! | minutia angle unit         | 360/256 degrees (0 to 255)  | 2 degrees (0 to 179)                         |
//!
//! The rest is common: `"FMR\0"`, version `" 20\0"`, capture equipment (4 compliance bits,
//! 12 bits of device id), image width and height in pixels, horizontal and vertical
//! resolution in pixels per **centimetre** (both standards; 500 ppi is written as 197), the
//! number of finger views and a reserved byte. Each view is finger position, view number
//! (high 4 bits) with impression type (low 4 bits), finger quality (0 to 100) and the number
//! of minutiae, then 6 bytes per minutia (2 type bits + 14 bits of x; 2 reserved bits + 14
//! bits of y; angle; quality 0 to 100), then a 2-byte extended data length and that many
//! bytes of extended data blocks (ridge counts, cores and deltas, vendor data), which the
//! reader parses and validates: [`read`] checks and drops them, [`read_with_extended`]
//! returns them as [`ExtendedData`] and [`write_with_extended`] writes them back byte for
//! byte (their layout, its sources and the ridge count indexing convention are documented
//! in `src/iso/extended.rs`). Type bits are `01` ridge ending, `10` bifurcation, `00`
//! other; `11` is reserved and refused. Angles are counter-clockwise from the x axis, the
//! convention of [`Minutia`], so no reflection is needed.
//!
//! Sources for the layout: the public object models of FingerprintIO (Java) and SourceAFIS,
//! which write 500 ppi as `round(500 / 2.54) = 197` pixels per centimetre in both formats and
//! use 1/256 turn (ISO) and 2 degrees (ANSI) as angle units, and NIST's public-domain
//! `biomdi` library (`fmr.h`: the 26-byte ANSI header, the 0xC000 type mask, angles 0 to 179).
//!
//! Quantisation on write: positions are rounded to the nearest pixel (half away from zero),
//! angles to the nearest unit (wrapping 360 degrees to code 0), resolution to the nearest
//! pixel per centimetre. Reading gives back the integer position, `code × unit` radians and
//! the pixels-per-inch value described in [`write`], so `write(read(r))` reproduces every
//! record this module writes, byte for byte.
//!
//! Reading is strict about what the standards fix (magic, version, declared length equal to
//! the bytes given, codes in range, no bytes after the last view) and lenient about fields
//! the native template cannot hold (capture equipment, product identifier, impression type,
//! view number, reserved bits), which are ignored.

use crate::{FingerPosition, FingerTemplate, Minutia, MinutiaKind};
use std::f64::consts::TAU;

mod extended;

pub use extended::{
    Core, CoresAndDeltas, Delta, ExtendedBlock, ExtendedData, RidgeCount, RidgeCountMethod,
    RidgeCounts,
};

const MAGIC: &[u8; 8] = b"FMR\0 20\0";
const ISO_HEADER: usize = 24;
const ANSI_HEADER: usize = 26;
/// Long-form ANSI length adds `00 00` before a 4-byte length.
const ANSI_LONG_EXTRA: usize = 4;
const VIEW_HEADER: usize = 4;
const MINUTIA_BYTES: usize = 6;
const EXTENDED_LENGTH_BYTES: usize = 2;
/// Smallest possible finger view: header, no minutiae, zero extended data length.
const MIN_VIEW: usize = VIEW_HEADER + EXTENDED_LENGTH_BYTES;
const MAX_COORDINATE: f64 = 0x3FFF as f64;
/// Most views of one finger: the view number has 4 bits.
const MAX_VIEWS_PER_FINGER: usize = 16;
/// CBEFF product identifier owner written into ANSI records: IBIA's code for "unknown
/// vendor", since Ipseity has no registered owner code of its own.
pub const ANSI_PRODUCT_OWNER: u16 = 0x0103;
/// CBEFF product identifier type written into ANSI records.
pub const ANSI_PRODUCT_TYPE: u16 = 0x0000;

/// Which of the two record formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// ISO/IEC 19794-2:2005, finger minutiae record format.
    Iso19794_2,
    /// ANSI INCITS 378-2004, finger minutiae format for data interchange.
    Ansi378,
}

impl Format {
    /// Parses a command-line name: `iso` (or `iso19794-2`) and `ansi` (or `ansi378`),
    /// ignoring ASCII case.
    pub fn parse(s: &str) -> Option<Format> {
        match s.to_ascii_lowercase().as_str() {
            "iso" | "iso19794-2" | "iso-19794-2" => Some(Format::Iso19794_2),
            "ansi" | "ansi378" | "ansi-378" => Some(Format::Ansi378),
            _ => None,
        }
    }

    /// The short name [`Format::parse`] accepts: `iso` or `ansi`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Iso19794_2 => "iso",
            Format::Ansi378 => "ansi",
        }
    }

    /// The standard's full designation, for messages.
    pub fn standard(self) -> &'static str {
        match self {
            Format::Iso19794_2 => "ISO/IEC 19794-2:2005",
            Format::Ansi378 => "ANSI INCITS 378-2004",
        }
    }

    /// Size of one angle unit in radians: 1/256 turn (ISO) or 2 degrees (ANSI).
    fn angle_unit(self) -> f64 {
        match self {
            Format::Iso19794_2 => TAU / 256.0,
            Format::Ansi378 => TAU / 180.0,
        }
    }

    /// Number of angle codes in a full turn.
    fn angle_codes(self) -> u32 {
        match self {
            Format::Iso19794_2 => 256,
            Format::Ansi378 => 180,
        }
    }
}

/// Why a record could not be read or written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The bytes do not start with `"FMR\0 20\0"`.
    #[error("not a finger minutiae record (no \"FMR\\0 20\\0\" header)")]
    NotARecord,
    /// The bytes end inside a field.
    #[error("finger minutiae record truncated in the {0}")]
    Truncated(&'static str),
    /// The record length field disagrees with the number of bytes given.
    #[error("finger minutiae record declares {declared} bytes but has {actual}")]
    Length {
        /// Length written in the record.
        declared: u64,
        /// Bytes handed to the reader.
        actual: usize,
    },
    /// Bytes left over after the last finger view.
    #[error("finger minutiae record has {0} bytes after its last finger view")]
    TrailingBytes(usize),
    /// A field holds a value the standard does not allow.
    #[error("finger minutiae record field {field} has invalid value {value}")]
    Field {
        /// Which field.
        field: &'static str,
        /// The value found (or, on write, the value that cannot be encoded).
        value: u64,
    },
    /// Different horizontal and vertical resolutions, which a [`FingerTemplate`] cannot hold.
    #[error(
        "finger minutiae record has {x} x {y} pixels per cm; only square pixels are supported"
    )]
    AnisotropicResolution {
        /// Horizontal resolution, pixels per centimetre.
        x: u16,
        /// Vertical resolution, pixels per centimetre.
        y: u16,
    },
    /// [`write`] was given no template.
    #[error("a finger minutiae record needs at least one template")]
    NoTemplates,
    /// More finger views than the record can number.
    #[error("{count} finger views do not fit one record (at most 255, and 16 per finger)")]
    TooManyViews {
        /// Views in total, or of the finger that overflowed.
        count: usize,
    },
    /// More than 255 minutiae in one view.
    #[error("finger view {view} has {count} minutiae; a record holds at most 255 per view")]
    TooManyMinutiae {
        /// Index of the template.
        view: usize,
        /// Its number of minutiae.
        count: usize,
    },
    /// A minutia position that is not finite or outside `0..=16383` after rounding.
    #[error("minutia {index} of finger view {view} has coordinate {value}, outside 0..=16383")]
    Coordinate {
        /// Index of the template.
        view: usize,
        /// Index of the minutia in it.
        index: usize,
        /// The offending coordinate, pixels.
        value: f32,
    },
    /// Templates of one record must share a resolution: the header has only one.
    #[error("finger view {view} is at {ppi} ppi but the record is at {first} ppi")]
    MixedResolution {
        /// Index of the template.
        view: usize,
        /// Its resolution.
        ppi: u16,
        /// The first template's resolution.
        first: u16,
    },
    /// An extended data block whose length field is under 4 or runs past the end of its
    /// view's extended data area (or fewer than 4 bytes left for a block header).
    #[error(
        "finger view {view}: extended data block (type {type_code:?}) of {length} bytes does not fit the {available} bytes left in the area (a block needs at least 4)"
    )]
    ExtendedBlockLength {
        /// Index of the finger view.
        view: usize,
        /// The block's type code, when its header was complete.
        type_code: Option<u16>,
        /// The block's declared length (or the bytes left, when the header was cut short).
        length: usize,
        /// Bytes left in the area where the block starts.
        available: usize,
    },
    /// An extended data block whose content does not match its type's layout.
    #[error("finger view {view}: {what}")]
    ExtendedBlockContent {
        /// Index of the finger view.
        view: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// A ridge count names a minutia the view does not have (indices are 1-based, 0 means
    /// none, so at most the number of minutiae).
    #[error(
        "finger view {view}: ridge count refers to minutia {index} but the view has {minutiae}"
    )]
    RidgeCountIndex {
        /// Index of the finger view.
        view: usize,
        /// The offending minutia index.
        index: u8,
        /// Number of minutiae in the view.
        minutiae: usize,
    },
    /// On write, an extended data block or area longer than its 16-bit length field holds.
    #[error("finger view {view}: {length} bytes of extended data do not fit a 16-bit length")]
    ExtendedTooLong {
        /// Index of the finger view.
        view: usize,
        /// The length that overflowed.
        length: usize,
    },
    /// On write, more cores or deltas than the format can count (63 ISO, 15 ANSI).
    #[error("finger view {view}: {count} {what} in a core and delta block, at most {max}")]
    TooManyPoints {
        /// Index of the finger view.
        view: usize,
        /// `"cores"` or `"deltas"`.
        what: &'static str,
        /// How many were given.
        count: usize,
        /// The format's limit.
        max: usize,
    },
    /// On ANSI write, some cores (or deltas) of one block have angles and some do not; ANSI
    /// has one flag per list.
    #[error("finger view {view}: ANSI records need angles on all {what} of a block or none")]
    MixedAngles {
        /// Index of the finger view.
        view: usize,
        /// `"cores"` or `"deltas"`.
        what: &'static str,
    },
}

/// Tells which of the two formats `bytes` holds, or `None` if it is not a finger minutiae
/// record at all (or too short to tell).
///
/// Both formats start with the same eight bytes, so the length field decides. A length
/// field read both ways can match the number of bytes given for at most one format; for a
/// truncated or padded record the value itself decides: ISO records under 1.7 MB have a
/// small first half-word, ANSI's 2-byte length is at least 26, and ANSI's long form starts
/// with `00 00` followed by a small upper half-word.
pub fn detect(bytes: &[u8]) -> Option<Format> {
    if !bytes.starts_with(MAGIC) {
        return None;
    }
    let half = |at: usize| -> Option<u32> {
        let b = bytes.get(at..at + 2)?;
        Some(u32::from(u16::from_be_bytes([b[0], b[1]])))
    };
    let hi = half(8)?;
    let lo = half(10)?;
    let len = bytes.len() as u64;
    if u64::from((hi << 16) | lo) == len {
        return Some(Format::Iso19794_2);
    }
    if u64::from(hi) == len {
        return Some(Format::Ansi378);
    }
    if hi == 0 {
        if let Some(next) = half(12) {
            if u64::from((lo << 16) | next) == len {
                return Some(Format::Ansi378);
            }
        }
    }
    Some(if hi >= ANSI_HEADER as u32 {
        Format::Ansi378
    } else if hi > 0 || lo >= ISO_HEADER as u32 {
        Format::Iso19794_2
    } else {
        Format::Ansi378
    })
}

/// Reads a record, detecting which of the two formats it is, and returns one template per
/// finger view, in record order.
///
/// Each template gets the record's image size and resolution. Pixels per centimetre become
/// the pixels-per-inch value that [`write`] maps back to the same number, preferring a
/// multiple of 5 (197 reads as 500 ppi, 394 as 1000 ppi).
///
/// Each view's extended data is parsed and validated as [`read_with_extended`] does, then
/// dropped: a malformed extended data area makes the record an error.
pub fn read(bytes: &[u8]) -> Result<(Format, Vec<FingerTemplate>), RecordError> {
    let (format, views) = read_with_extended(bytes)?;
    Ok((format, views.into_iter().map(|(t, _)| t).collect()))
}

/// Reads a record as [`read`] does, returning each view's template together with its
/// extended data (ridge counts, cores and deltas, vendor blocks), in record order.
///
/// Refused beyond what [`read`] refuses: blocks that do not fill the area exactly (a length
/// under 4 or past the area's end), the reserved type code 0, ridge count data with an
/// unknown extraction method, a partial entry or a minutia index above the view's number of
/// minutiae, and core and delta data that does not follow its format's layout (reserved
/// bits set, ANSI angles above 179, counts beyond the format's, bytes left over).
pub fn read_with_extended(
    bytes: &[u8],
) -> Result<(Format, Vec<(FingerTemplate, ExtendedData)>), RecordError> {
    if !bytes.starts_with(MAGIC) {
        return Err(if MAGIC.starts_with(bytes) {
            RecordError::Truncated("format identifier")
        } else {
            RecordError::NotARecord
        });
    }
    let format = detect(bytes).ok_or(RecordError::Truncated("record length"))?;
    let mut r = Reader {
        bytes,
        pos: MAGIC.len(),
    };
    let declared = match format {
        Format::Iso19794_2 => u64::from(r.u32("record length")?),
        Format::Ansi378 => match r.u16("record length")? {
            0 => u64::from(r.u32("record length")?),
            short => u64::from(short),
        },
    };
    if declared != bytes.len() as u64 {
        return Err(RecordError::Length {
            declared,
            actual: bytes.len(),
        });
    }
    if format == Format::Ansi378 {
        r.skip(4, "CBEFF product identifier")?;
    }
    r.skip(2, "capture equipment")?;
    let width = r.u16("image size")?;
    let height = r.u16("image size")?;
    let x_res = r.u16("resolution")?;
    let y_res = r.u16("resolution")?;
    let views = r.u8("number of finger views")?;
    r.skip(1, "reserved byte")?;
    if x_res == 0 || y_res == 0 {
        return Err(RecordError::Field {
            field: "resolution",
            value: 0,
        });
    }
    if x_res != y_res {
        return Err(RecordError::AnisotropicResolution { x: x_res, y: y_res });
    }
    let resolution_ppi = ppcm_to_ppi(x_res).ok_or(RecordError::Field {
        field: "resolution",
        value: u64::from(x_res),
    })?;

    let mut templates = Vec::with_capacity(usize::from(views).min(r.remaining() / MIN_VIEW));
    for view in 0..usize::from(views) {
        let position = r.u8("finger view header")?;
        let position = FingerPosition::from_code(position).ok_or(RecordError::Field {
            field: "finger position",
            value: u64::from(position),
        })?;
        // View number and impression type: nothing in the native template holds them.
        r.skip(1, "finger view header")?;
        let quality = quality(r.u8("finger view header")?, "finger quality")?;
        let count = usize::from(r.u8("finger view header")?);
        if r.remaining() < count * MINUTIA_BYTES {
            return Err(RecordError::Truncated("minutiae"));
        }
        let mut minutiae = Vec::with_capacity(count);
        for _ in 0..count {
            minutiae.push(read_minutia(&mut r, format)?);
        }
        let extended = usize::from(r.u16("extended data length")?);
        let area = r.take(extended, "extended data")?;
        let extended = extended::parse(area, format, minutiae.len(), view)?;
        templates.push((
            FingerTemplate {
                width,
                height,
                resolution_ppi,
                position,
                quality,
                minutiae,
            },
            extended,
        ));
    }
    if r.remaining() > 0 {
        return Err(RecordError::TrailingBytes(r.remaining()));
    }
    Ok((format, templates))
}

fn read_minutia(r: &mut Reader<'_>, format: Format) -> Result<Minutia, RecordError> {
    let type_x = r.u16("minutiae")?;
    let y = r.u16("minutiae")? & 0x3FFF;
    let angle = r.u8("minutiae")?;
    let q = quality(r.u8("minutiae")?, "minutia quality")?;
    let kind = match type_x >> 14 {
        0 => MinutiaKind::Other,
        1 => MinutiaKind::Ending,
        2 => MinutiaKind::Bifurcation,
        t => {
            return Err(RecordError::Field {
                field: "minutia type",
                value: u64::from(t),
            })
        }
    };
    if u32::from(angle) >= format.angle_codes() {
        return Err(RecordError::Field {
            field: "minutia angle",
            value: u64::from(angle),
        });
    }
    Ok(Minutia {
        x: f32::from(type_x & 0x3FFF),
        y: f32::from(y),
        // code < codes, so the product is below 2π and needs no wrapping.
        angle: (f64::from(angle) * format.angle_unit()) as f32,
        kind,
        quality: q,
    })
}

fn quality(value: u8, field: &'static str) -> Result<u8, RecordError> {
    if value <= 100 {
        Ok(value)
    } else {
        Err(RecordError::Field {
            field,
            value: u64::from(value),
        })
    }
}

/// Writes one record holding one finger view per template (each template's `position`,
/// width/height/ppi taken from the first).
///
/// Views of the same finger are numbered 0, 1, ... in the order given; impression type is 0
/// (live-scan plain); capture equipment is 0 (no certification, unknown device); ANSI
/// records carry the CBEFF product identifier [`ANSI_PRODUCT_OWNER`]/[`ANSI_PRODUCT_TYPE`].
/// Refused: no templates, more than 255 views or 16 of one finger, more than 255 minutiae
/// in a view, a position outside `0..=16383` after rounding or not finite, a non-finite
/// angle, a quality above 100, a resolution of 0 or 1 ppi or one that differs between
/// templates. No view carries extended data.
pub fn write(templates: &[FingerTemplate], format: Format) -> Result<Vec<u8>, RecordError> {
    let views: Vec<(&FingerTemplate, Vec<u8>)> =
        templates.iter().map(|t| (t, Vec::new())).collect();
    write_views(&views, format)
}

/// Writes one record as [`write`] does, each view followed by its extended data, so that
/// `write_with_extended(&read_with_extended(r)?.1, format)` gives back `r` for every record
/// this module writes.
///
/// Refused beyond what [`write`] refuses: an extended data area or block over 65535 bytes,
/// a vendor block with a type code below 3, a ridge count index above the view's number of
/// minutiae, more than 63 (ISO) or 15 (ANSI) cores or deltas in a block, a core or delta
/// coordinate above 16383, an ANSI angle code above 179, and ANSI blocks where only some
/// cores (or deltas) have angles.
pub fn write_with_extended(
    views: &[(FingerTemplate, ExtendedData)],
    format: Format,
) -> Result<Vec<u8>, RecordError> {
    let mut encoded = Vec::with_capacity(views.len());
    for (view, (t, ext)) in views.iter().enumerate() {
        encoded.push((t, extended::encode(ext, format, t.minutiae.len(), view)?));
    }
    write_views(&encoded, format)
}

/// Writes views whose extended data areas are already encoded (each at most 65535 bytes).
fn write_views(
    views: &[(&FingerTemplate, Vec<u8>)],
    format: Format,
) -> Result<Vec<u8>, RecordError> {
    let templates = views;
    let first = templates.first().ok_or(RecordError::NoTemplates)?.0;
    if templates.len() > usize::from(u8::MAX) {
        return Err(RecordError::TooManyViews {
            count: templates.len(),
        });
    }
    let ppcm = ppi_to_ppcm(first.resolution_ppi).ok_or(RecordError::Field {
        field: "resolution",
        value: u64::from(first.resolution_ppi),
    })?;
    let mut body_len = 0usize;
    for (view, &(t, ref area)) in templates.iter().enumerate() {
        if t.resolution_ppi != first.resolution_ppi {
            return Err(RecordError::MixedResolution {
                view,
                ppi: t.resolution_ppi,
                first: first.resolution_ppi,
            });
        }
        if t.minutiae.len() > usize::from(u8::MAX) {
            return Err(RecordError::TooManyMinutiae {
                view,
                count: t.minutiae.len(),
            });
        }
        body_len += MIN_VIEW + MINUTIA_BYTES * t.minutiae.len() + area.len();
    }
    let (header_len, long_ansi) = match format {
        Format::Iso19794_2 => (ISO_HEADER, false),
        Format::Ansi378 if ANSI_HEADER + body_len > usize::from(u16::MAX) => {
            (ANSI_HEADER + ANSI_LONG_EXTRA, true)
        }
        Format::Ansi378 => (ANSI_HEADER, false),
    };
    let total = header_len + body_len;
    // 255 views of 255 minutiae and 64 KiB of extended data each stay far below 4 GiB; the
    // conversion cannot fail.
    let total32 = u32::try_from(total).map_err(|_| RecordError::TooManyViews {
        count: templates.len(),
    })?;

    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    match format {
        Format::Iso19794_2 => out.extend_from_slice(&total32.to_be_bytes()),
        Format::Ansi378 => {
            if long_ansi {
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&total32.to_be_bytes());
            } else {
                out.extend_from_slice(&(total as u16).to_be_bytes());
            }
            out.extend_from_slice(&ANSI_PRODUCT_OWNER.to_be_bytes());
            out.extend_from_slice(&ANSI_PRODUCT_TYPE.to_be_bytes());
        }
    }
    out.extend_from_slice(&[0, 0]); // capture equipment: no certification, unknown device
    out.extend_from_slice(&first.width.to_be_bytes());
    out.extend_from_slice(&first.height.to_be_bytes());
    out.extend_from_slice(&ppcm.to_be_bytes());
    out.extend_from_slice(&ppcm.to_be_bytes());
    out.push(templates.len() as u8);
    out.push(0); // reserved

    let mut views_of = [0usize; FingerPosition::ALL.len()];
    for (view, &(t, ref area)) in templates.iter().enumerate() {
        let number = &mut views_of[usize::from(t.position.code())];
        if *number >= MAX_VIEWS_PER_FINGER {
            return Err(RecordError::TooManyViews { count: *number + 1 });
        }
        out.push(t.position.code());
        out.push((*number as u8) << 4); // impression type 0: live-scan plain
        *number += 1;
        out.push(quality(t.quality, "finger quality")?);
        out.push(t.minutiae.len() as u8);
        for (index, m) in t.minutiae.iter().enumerate() {
            let coordinate = |value: f32| -> Result<u16, RecordError> {
                let r = f64::from(value).round();
                if r.is_finite() && (0.0..=MAX_COORDINATE).contains(&r) {
                    Ok(r as u16)
                } else {
                    Err(RecordError::Coordinate { view, index, value })
                }
            };
            let x = coordinate(m.x)?;
            let y = coordinate(m.y)?;
            let kind_bits: u16 = match m.kind {
                MinutiaKind::Other => 0,
                MinutiaKind::Ending => 1,
                MinutiaKind::Bifurcation => 2,
            };
            out.extend_from_slice(&((kind_bits << 14) | x).to_be_bytes());
            out.extend_from_slice(&y.to_be_bytes());
            out.push(angle_code(m.angle, format).ok_or(RecordError::Field {
                field: "minutia angle",
                value: u64::from(m.angle.to_bits()),
            })?);
            out.push(quality(m.quality, "minutia quality")?);
        }
        // encode() keeps areas within 16 bits; write() passes empty ones.
        let area_len = u16::try_from(area.len()).map_err(|_| RecordError::ExtendedTooLong {
            view,
            length: area.len(),
        })?;
        out.extend_from_slice(&area_len.to_be_bytes());
        out.extend_from_slice(area);
    }
    debug_assert_eq!(out.len(), total);
    Ok(out)
}

/// Nearest angle code to `angle` radians, wrapping a full turn to 0; `None` if not finite.
fn angle_code(angle: f32, format: Format) -> Option<u8> {
    let a = f64::from(angle);
    if !a.is_finite() {
        return None;
    }
    let code = (a.rem_euclid(TAU) / format.angle_unit()).round() as u32 % format.angle_codes();
    u8::try_from(code).ok()
}

/// Pixels per inch to the nearest pixel per centimetre (`ppi / 2.54`, halves rounded up);
/// `None` when that is 0.
pub fn ppi_to_ppcm(ppi: u16) -> Option<u16> {
    let ppcm = (u32::from(ppi) * 100 + 127) / 254;
    u16::try_from(ppcm).ok().filter(|&c| c > 0)
}

/// The pixels-per-inch value [`read`] reports for `ppcm`: among those [`ppi_to_ppcm`] maps
/// to `ppcm`, a multiple of 5 if there is one (there is at most one, the candidates spanning
/// 2.54), else the one nearest `ppcm × 2.54`; `None` if none fits 16 bits.
pub fn ppcm_to_ppi(ppcm: u16) -> Option<u16> {
    let exact = u32::from(ppcm) * 254; // hundredths of a ppi
    let centre = exact / 100;
    let candidates = centre.saturating_sub(2)..=centre + 3;
    let fits = |p: &u32| {
        u16::try_from(*p)
            .ok()
            .and_then(ppi_to_ppcm)
            .is_some_and(|c| c == ppcm)
    };
    candidates
        .clone()
        .filter(fits)
        .find(|p| p % 5 == 0)
        .or_else(|| {
            candidates
                .filter(fits)
                .min_by_key(|p| (p * 100).abs_diff(exact))
        })
        .and_then(|p| u16::try_from(p).ok())
}

/// Big-endian cursor that names the field it was reading when the bytes ran out.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&[u8], RecordError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(RecordError::Truncated(what))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn skip(&mut self, n: usize, what: &'static str) -> Result<(), RecordError> {
        self.take(n, what).map(|_| ())
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, RecordError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, RecordError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, RecordError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn resolution_conversions() {
        assert_eq!(ppi_to_ppcm(500), Some(197));
        assert_eq!(ppcm_to_ppi(197), Some(500));
        assert_eq!(ppi_to_ppcm(1000), Some(394));
        assert_eq!(ppcm_to_ppi(394), Some(1000));
        assert_eq!(ppi_to_ppcm(1), None);
        assert_eq!(ppi_to_ppcm(0), None);
        // Every ppcm a 16-bit ppi can produce reads back as a ppi that writes the same ppcm.
        for ppcm in 1..=ppi_to_ppcm(u16::MAX).unwrap() {
            let ppi = ppcm_to_ppi(ppcm).unwrap();
            assert_eq!(ppi_to_ppcm(ppi), Some(ppcm), "ppcm {ppcm} -> ppi {ppi}");
        }
        // Every multiple of 5 survives the trip.
        for ppi in (5..=u16::MAX).step_by(5) {
            assert_eq!(ppcm_to_ppi(ppi_to_ppcm(ppi).unwrap()), Some(ppi));
        }
        assert_eq!(ppcm_to_ppi(u16::MAX), None);
    }

    #[test]
    fn angle_codes_round_and_wrap() {
        let deg = |d: f64| (d.to_radians()) as f32;
        assert_eq!(angle_code(0.0, Format::Ansi378), Some(0));
        assert_eq!(angle_code(deg(2.9), Format::Ansi378), Some(1));
        assert_eq!(angle_code(deg(3.1), Format::Ansi378), Some(2));
        assert_eq!(angle_code(deg(359.2), Format::Ansi378), Some(0));
        assert_eq!(angle_code(deg(90.0), Format::Iso19794_2), Some(64));
        assert_eq!(angle_code(deg(359.9), Format::Iso19794_2), Some(0));
        assert_eq!(angle_code(deg(-90.0), Format::Iso19794_2), Some(192));
        assert_eq!(angle_code(f32::NAN, Format::Iso19794_2), None);
        assert_eq!(angle_code(f32::INFINITY, Format::Ansi378), None);
    }

    #[test]
    fn format_names_parse_back() {
        for f in [Format::Iso19794_2, Format::Ansi378] {
            assert_eq!(Format::parse(f.name()), Some(f));
        }
        assert_eq!(Format::parse("ANSI"), Some(Format::Ansi378));
        assert_eq!(Format::parse("iso19794-2"), Some(Format::Iso19794_2));
        assert_eq!(Format::parse("wsq"), None);
    }
}
