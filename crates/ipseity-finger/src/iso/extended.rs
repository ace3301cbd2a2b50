//! The extended data area of a finger view: ridge counts, cores and deltas, and vendor
//! blocks, parsed and validated on read and written back byte for byte.
//!
//! The area is a sequence of blocks, each a 2-byte type code, a 2-byte length that counts
//! the 4 header bytes, then the data; the blocks fill the area exactly. Type `0x0000` is
//! reserved (refused), `0x0001` is ridge count data, `0x0002` core and delta data, and every
//! other code is vendor-defined and kept as opaque bytes.
//!
//! Ridge count data is an extraction method byte (0 non-specific, 1 four-neighbour,
//! 2 eight-neighbour) then 3-byte entries: two minutia indices and the number of ridges
//! crossed between them. Indices are **1-based** (1 is the view's first minutia) and 0
//! stands for "no neighbour" (the entry a quadrant or octant method writes when a sector is
//! empty, with a ridge count of 0), so a valid index lies in `0..=number of minutiae`.
//! Sources: NIST's public-domain `biomdi` (`libfmr/validate.c` refuses an index above the
//! number of minutiae; `fmr2an2k` matches ridge count indices against `position + 1`) and
//! the ANSI INCITS 378-2004 test record of NIST's `libbiomeval`, whose 28-minutia view has
//! eight-neighbour entries from `(1, 2, 1)` to `(28, 5, 5)` with `(c, 0, 0)` for empty
//! octants. FingerprintIO validates indices as 0-based (`0..count`); its records still
//! read here, since `0..count` lies inside `0..=count`.
//!
//! Core and delta data lays out the two standards differently (both biomdi's `fedb.c` and
//! FingerprintIO's object models agree on this):
//!
//! | field               | ISO/IEC 19794-2:2005                       | ANSI INCITS 378-2004                          |
//! |---------------------|--------------------------------------------|-----------------------------------------------|
//! | number of cores     | whole byte (6 bits used, top 2 must be 0)  | low 4 bits; top 2 bits `01` = all have angles |
//! | core                | `tt` + 14-bit x, `00` + 14-bit y, [angle]  | `00` + 14-bit x, `00` + 14-bit y, [angle]      |
//! | number of deltas    | as for cores                               | as for cores                                  |
//! | delta               | as a core, with three angles               | as a core, with three angles                  |
//! | angle unit          | 1/256 turn, 0 to 255                       | 2 degrees, 0 to 179                           |
//!
//! where ISO's per-point `tt` is `01` when the point carries its angle(s) and `00` when not.
//! biomdi reads ISO counts with a 6-bit mask and ANSI delta counts with a 6-bit mask too,
//! while FingerprintIO reads whole bytes and caps both at 15; this reader takes the bits both
//! agree on and refuses the rest (ISO: up to 63 points; ANSI: up to 15, bits 4 and 5 zero).
//! Reserved coordinate bits must be zero, so that every block read writes back unchanged.
//! One exception: an ANSI list with no points but the angle flag set (FingerprintIO writes
//! that) reads as an empty list and is written back without the flag.

use super::{Format, Reader, RecordError};

/// Bytes of a block's type code and length.
pub(super) const BLOCK_HEADER: usize = 4;
const TYPE_RESERVED: u16 = 0x0000;
const TYPE_RIDGE_COUNTS: u16 = 0x0001;
const TYPE_CORES_AND_DELTAS: u16 = 0x0002;
const RIDGE_COUNT_BYTES: usize = 3;
const COORDINATE_MASK: u16 = 0x3FFF;
const MAX_POINTS_ISO: usize = 0x3F;
const MAX_POINTS_ANSI: usize = 0x0F;
/// Type bits of an ISO point or an ANSI count byte meaning "angle(s) present".
const ANGULAR: u8 = 0b01;

/// The extended data area of one finger view: its blocks in record order.
///
/// An empty list is a view without extended data (length field `00 00`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtendedData {
    /// The blocks, in the order they appear (and are written).
    pub blocks: Vec<ExtendedBlock>,
}

impl ExtendedData {
    /// The first ridge count block, if any.
    pub fn ridge_counts(&self) -> Option<&RidgeCounts> {
        self.blocks.iter().find_map(|b| match b {
            ExtendedBlock::RidgeCounts(r) => Some(r),
            _ => None,
        })
    }

    /// Every core of every core and delta block, in record order.
    pub fn cores(&self) -> impl Iterator<Item = &Core> {
        self.core_delta_blocks().flat_map(|c| c.cores.iter())
    }

    /// Every delta of every core and delta block, in record order.
    pub fn deltas(&self) -> impl Iterator<Item = &Delta> {
        self.core_delta_blocks().flat_map(|c| c.deltas.iter())
    }

    fn core_delta_blocks(&self) -> impl Iterator<Item = &CoresAndDeltas> {
        self.blocks.iter().filter_map(|b| match b {
            ExtendedBlock::CoresAndDeltas(c) => Some(c),
            _ => None,
        })
    }
}

/// One block of a view's extended data area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtendedBlock {
    /// Type `0x0001`: ridge counts between pairs of minutiae.
    RidgeCounts(RidgeCounts),
    /// Type `0x0002`: core and delta points.
    CoresAndDeltas(CoresAndDeltas),
    /// Any type from `0x0003` on: vendor-defined, kept as opaque bytes.
    Vendor {
        /// The block's type code (`0x0003` or above).
        type_code: u16,
        /// The block's data, without the 4-byte header.
        data: Vec<u8>,
    },
}

/// How the ridge counts of a [`RidgeCounts`] block were chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RidgeCountMethod {
    /// Code 0: no assumption about which pairs are counted or their order.
    NonSpecific,
    /// Code 1: for each centre minutia, its nearest neighbour in each of four quadrants.
    FourNeighbour,
    /// Code 2: for each centre minutia, its nearest neighbour in each of eight octants.
    EightNeighbour,
}

impl RidgeCountMethod {
    /// The method's code in the record.
    pub fn code(self) -> u8 {
        match self {
            RidgeCountMethod::NonSpecific => 0,
            RidgeCountMethod::FourNeighbour => 1,
            RidgeCountMethod::EightNeighbour => 2,
        }
    }

    /// The method with record code `code`, if the standards define one.
    pub fn from_code(code: u8) -> Option<RidgeCountMethod> {
        match code {
            0 => Some(RidgeCountMethod::NonSpecific),
            1 => Some(RidgeCountMethod::FourNeighbour),
            2 => Some(RidgeCountMethod::EightNeighbour),
            _ => None,
        }
    }
}

/// A ridge count block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RidgeCounts {
    /// How the pairs were chosen.
    pub method: RidgeCountMethod,
    /// The counts, in record order.
    pub counts: Vec<RidgeCount>,
}

/// The number of ridges between two minutiae of the same view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RidgeCount {
    /// First minutia, 1-based (1 is `minutiae[0]`); 0 means none.
    pub from: u8,
    /// Second minutia, 1-based; 0 means none (an empty quadrant or octant).
    pub to: u8,
    /// Ridges crossed on the line between them.
    pub ridges: u8,
}

/// A core and delta block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CoresAndDeltas {
    /// Core points, at most 63 (ISO) or 15 (ANSI).
    pub cores: Vec<Core>,
    /// Delta points, at most 63 (ISO) or 15 (ANSI).
    pub deltas: Vec<Delta>,
}

/// A core point. Coordinates are pixels (14 bits); the angle is a code in the record's angle
/// unit (1/256 turn for ISO, 2 degrees for ANSI), as for minutiae.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Core {
    /// Horizontal position, pixels, `0..=16383`.
    pub x: u16,
    /// Vertical position, pixels, `0..=16383`.
    pub y: u16,
    /// Direction code, if recorded. ANSI records give either every core an angle or none.
    pub angle: Option<u8>,
}

/// A delta point: position and, optionally, the directions of its three ridges (angle codes
/// as for [`Core`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Delta {
    /// Horizontal position, pixels, `0..=16383`.
    pub x: u16,
    /// Vertical position, pixels, `0..=16383`.
    pub y: u16,
    /// The three direction codes, if recorded. ANSI records give every delta angles or none.
    pub angles: Option<[u8; 3]>,
}

/// Parses view `view`'s extended data area (without its 2-byte length), whose view holds
/// `minutiae` minutiae. Every allocation is bounded by `area.len()`.
pub(super) fn parse(
    area: &[u8],
    format: Format,
    minutiae: usize,
    view: usize,
) -> Result<ExtendedData, RecordError> {
    let mut blocks = Vec::new();
    let mut rest = area;
    while !rest.is_empty() {
        let &[t0, t1, l0, l1, ..] = rest else {
            return Err(RecordError::ExtendedBlockLength {
                view,
                type_code: None,
                length: rest.len(),
                available: rest.len(),
            });
        };
        let type_code = u16::from_be_bytes([t0, t1]);
        let length = usize::from(u16::from_be_bytes([l0, l1]));
        if length < BLOCK_HEADER || length > rest.len() {
            return Err(RecordError::ExtendedBlockLength {
                view,
                type_code: Some(type_code),
                length,
                available: rest.len(),
            });
        }
        let (block, tail) = rest.split_at(length);
        let data = &block[BLOCK_HEADER..];
        rest = tail;
        blocks.push(match type_code {
            TYPE_RESERVED => {
                return Err(RecordError::Field {
                    field: "extended data type",
                    value: u64::from(type_code),
                })
            }
            TYPE_RIDGE_COUNTS => {
                ExtendedBlock::RidgeCounts(parse_ridge_counts(data, minutiae, view)?)
            }
            TYPE_CORES_AND_DELTAS => {
                ExtendedBlock::CoresAndDeltas(parse_cores_and_deltas(data, format, view)?)
            }
            _ => ExtendedBlock::Vendor {
                type_code,
                data: data.to_vec(),
            },
        });
    }
    Ok(ExtendedData { blocks })
}

fn parse_ridge_counts(
    data: &[u8],
    minutiae: usize,
    view: usize,
) -> Result<RidgeCounts, RecordError> {
    let (&method, entries) = data
        .split_first()
        .ok_or(RecordError::ExtendedBlockContent {
            view,
            what: "ridge count block without an extraction method",
        })?;
    let method = RidgeCountMethod::from_code(method).ok_or(RecordError::Field {
        field: "ridge count extraction method",
        value: u64::from(method),
    })?;
    if entries.len() % RIDGE_COUNT_BYTES != 0 {
        return Err(RecordError::ExtendedBlockContent {
            view,
            what: "ridge count block not a whole number of 3-byte entries",
        });
    }
    let counts = entries
        .chunks_exact(RIDGE_COUNT_BYTES)
        .map(|e| {
            let c = RidgeCount {
                from: e[0],
                to: e[1],
                ridges: e[2],
            };
            check_indices(&c, minutiae, view).map(|()| c)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RidgeCounts { method, counts })
}

fn check_indices(c: &RidgeCount, minutiae: usize, view: usize) -> Result<(), RecordError> {
    for index in [c.from, c.to] {
        if usize::from(index) > minutiae {
            return Err(RecordError::RidgeCountIndex {
                view,
                index,
                minutiae,
            });
        }
    }
    Ok(())
}

/// A point's position word: for ISO the top 2 bits of x are its type (angle present or
/// not); every other top bit is reserved and must be 0.
fn read_point(
    r: &mut Reader<'_>,
    format: Format,
    what: &'static str,
) -> Result<(u16, u16, Option<u8>), RecordError> {
    let x_word = r.u16(what)?;
    let y_word = r.u16(what)?;
    let type_bits = (x_word >> 14) as u8;
    let iso_type = match format {
        Format::Iso19794_2 => Some(type_bits),
        Format::Ansi378 if type_bits != 0 => {
            return Err(RecordError::Field {
                field: "core or delta reserved bits",
                value: u64::from(x_word),
            })
        }
        Format::Ansi378 => None,
    };
    if y_word >> 14 != 0 {
        return Err(RecordError::Field {
            field: "core or delta reserved bits",
            value: u64::from(y_word),
        });
    }
    Ok((x_word & COORDINATE_MASK, y_word, iso_type))
}

/// Whether a point type (ISO per point, ANSI per list) says angles follow.
fn angular(type_bits: u8, field: &'static str) -> Result<bool, RecordError> {
    match type_bits {
        0 => Ok(false),
        ANGULAR => Ok(true),
        t => Err(RecordError::Field {
            field,
            value: u64::from(t),
        }),
    }
}

fn read_angle(r: &mut Reader<'_>, format: Format, field: &'static str) -> Result<u8, RecordError> {
    let a = r.u8(field)?;
    if u32::from(a) >= format.angle_codes() {
        return Err(RecordError::Field {
            field,
            value: u64::from(a),
        });
    }
    Ok(a)
}

/// The count byte before the cores or the deltas: `(count, ANSI list type)`.
fn read_count(
    r: &mut Reader<'_>,
    format: Format,
    count_field: &'static str,
    type_field: &'static str,
) -> Result<(usize, bool), RecordError> {
    let b = r.u8(count_field)?;
    match format {
        Format::Iso19794_2 => {
            if usize::from(b) > MAX_POINTS_ISO {
                return Err(RecordError::Field {
                    field: count_field,
                    value: u64::from(b),
                });
            }
            Ok((usize::from(b), false))
        }
        Format::Ansi378 => {
            let with_angles = angular(b >> 6, type_field)?;
            let count = usize::from(b & 0x3F);
            if count > MAX_POINTS_ANSI {
                return Err(RecordError::Field {
                    field: count_field,
                    value: count as u64,
                });
            }
            Ok((count, with_angles))
        }
    }
}

fn parse_cores_and_deltas(
    data: &[u8],
    format: Format,
    view: usize,
) -> Result<CoresAndDeltas, RecordError> {
    let mut r = Reader {
        bytes: data,
        pos: 0,
    };
    // Counts are at most 63, so these vectors stay small whatever the bytes say.
    let (n, list_angles) = read_count(&mut r, format, "number of cores", "core type")?;
    let mut cores = Vec::with_capacity(n);
    for _ in 0..n {
        let (x, y, iso_type) = read_point(&mut r, format, "core data")?;
        let with_angle = match iso_type {
            Some(t) => angular(t, "core type")?,
            None => list_angles,
        };
        let angle = if with_angle {
            Some(read_angle(&mut r, format, "core angle")?)
        } else {
            None
        };
        cores.push(Core { x, y, angle });
    }
    let (n, list_angles) = read_count(&mut r, format, "number of deltas", "delta type")?;
    let mut deltas = Vec::with_capacity(n);
    for _ in 0..n {
        let (x, y, iso_type) = read_point(&mut r, format, "delta data")?;
        let with_angles = match iso_type {
            Some(t) => angular(t, "delta type")?,
            None => list_angles,
        };
        let angles = if with_angles {
            Some([
                read_angle(&mut r, format, "delta angle")?,
                read_angle(&mut r, format, "delta angle")?,
                read_angle(&mut r, format, "delta angle")?,
            ])
        } else {
            None
        };
        deltas.push(Delta { x, y, angles });
    }
    if r.remaining() > 0 {
        return Err(RecordError::ExtendedBlockContent {
            view,
            what: "bytes left after the last delta of a core and delta block",
        });
    }
    Ok(CoresAndDeltas { cores, deltas })
}

/// Encodes view `view`'s extended data area (without its 2-byte length), refusing what a
/// reader would not read back the same.
pub(super) fn encode(
    ext: &ExtendedData,
    format: Format,
    minutiae: usize,
    view: usize,
) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::new();
    for block in &ext.blocks {
        let start = out.len();
        let type_code = match block {
            ExtendedBlock::RidgeCounts(_) => TYPE_RIDGE_COUNTS,
            ExtendedBlock::CoresAndDeltas(_) => TYPE_CORES_AND_DELTAS,
            ExtendedBlock::Vendor { type_code, .. } => *type_code,
        };
        out.extend_from_slice(&type_code.to_be_bytes());
        out.extend_from_slice(&[0, 0]); // length, patched below
        match block {
            ExtendedBlock::RidgeCounts(rc) => {
                out.push(rc.method.code());
                for c in &rc.counts {
                    check_indices(c, minutiae, view)?;
                    out.extend_from_slice(&[c.from, c.to, c.ridges]);
                }
            }
            ExtendedBlock::CoresAndDeltas(cd) => {
                encode_cores_and_deltas(cd, format, view, &mut out)?
            }
            ExtendedBlock::Vendor { type_code, data } => {
                // Codes 0 to 2 would not read back as a vendor block.
                if *type_code <= TYPE_CORES_AND_DELTAS {
                    return Err(RecordError::Field {
                        field: "extended data type",
                        value: u64::from(*type_code),
                    });
                }
                out.extend_from_slice(data);
            }
        }
        let length = out.len() - start;
        let length16 =
            u16::try_from(length).map_err(|_| RecordError::ExtendedTooLong { view, length })?;
        out[start + 2..start + BLOCK_HEADER].copy_from_slice(&length16.to_be_bytes());
    }
    if out.len() > usize::from(u16::MAX) {
        return Err(RecordError::ExtendedTooLong {
            view,
            length: out.len(),
        });
    }
    Ok(out)
}

fn encode_cores_and_deltas(
    cd: &CoresAndDeltas,
    format: Format,
    view: usize,
    out: &mut Vec<u8>,
) -> Result<(), RecordError> {
    let cores: Vec<(u16, u16, Option<&[u8]>)> = cd
        .cores
        .iter()
        .map(|c| (c.x, c.y, c.angle.as_ref().map(std::slice::from_ref)))
        .collect();
    encode_points(&cores, format, view, "cores", "core angle", out)?;
    let deltas: Vec<(u16, u16, Option<&[u8]>)> = cd
        .deltas
        .iter()
        .map(|d| (d.x, d.y, d.angles.as_ref().map(|a| a.as_slice())))
        .collect();
    encode_points(&deltas, format, view, "deltas", "delta angle", out)
}

fn encode_points(
    points: &[(u16, u16, Option<&[u8]>)],
    format: Format,
    view: usize,
    what: &'static str,
    angle_field: &'static str,
    out: &mut Vec<u8>,
) -> Result<(), RecordError> {
    let max = match format {
        Format::Iso19794_2 => MAX_POINTS_ISO,
        Format::Ansi378 => MAX_POINTS_ANSI,
    };
    if points.len() > max {
        return Err(RecordError::TooManyPoints {
            view,
            what,
            count: points.len(),
            max,
        });
    }
    let count = points.len() as u8;
    match format {
        Format::Iso19794_2 => out.push(count),
        Format::Ansi378 => {
            let with = points.iter().filter(|p| p.2.is_some()).count();
            if with != 0 && with != points.len() {
                return Err(RecordError::MixedAngles { view, what });
            }
            let flag = if with > 0 { ANGULAR << 6 } else { 0 };
            out.push(flag | count);
        }
    }
    for &(x, y, angles) in points {
        for c in [x, y] {
            if c > COORDINATE_MASK {
                return Err(RecordError::Field {
                    field: "core or delta coordinate",
                    value: u64::from(c),
                });
            }
        }
        let type_bits = match (format, angles) {
            (Format::Iso19794_2, Some(_)) => u16::from(ANGULAR) << 14,
            _ => 0,
        };
        out.extend_from_slice(&(type_bits | x).to_be_bytes());
        out.extend_from_slice(&y.to_be_bytes());
        for &a in angles.unwrap_or(&[]) {
            if u32::from(a) >= format.angle_codes() {
                return Err(RecordError::Field {
                    field: angle_field,
                    value: u64::from(a),
                });
            }
            out.push(a);
        }
    }
    Ok(())
}
