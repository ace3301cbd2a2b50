//! WSQ (FBI Wavelet Scalar Quantization) decoding, so fingerprint records stored the way
//! national systems exchange them can be read without a C library.
//!
//! The format (IAFIS-IC-0110, version 3) is a JPEG-like marker stream: tables for the
//! wavelet filters (DTT), the quantizer (DQT) and Huffman codes (DHT), a frame header (SOF)
//! with the image size and the output shift and scale, then up to three entropy-coded
//! blocks (SOB) holding the quantized coefficients of 60 subbands. Decoding reverses that:
//! Huffman and run-length codes to integers, integers to coefficients with the bin centre,
//! then a five-level, 20-node inverse wavelet packet transform with symmetric extension,
//! and finally `pixel = coefficient * R + M`, rounded to 8 bits.
//!
//! The floating-point steps use the same precision and operation order as NIST's
//! reference decoder (NBIS), so the output matches it pixel for pixel; the integration
//! test `tests/wsq.rs` checks that on files NBIS encoded.
//!
//! Every length read from the input is checked against the bytes that remain; the image
//! size is checked against [`WsqLimits`] before any image-sized buffer exists, and the
//! coefficient buffer only grows as coded data is actually read.

use image::GrayImage;

/// The SOI (start of image) marker's two bytes.
const SOI: u16 = 0xFFA0;
const EOI: u16 = 0xFFA1;
const SOF: u16 = 0xFFA2;
const SOB: u16 = 0xFFA3;
const DTT: u16 = 0xFFA4;
const DQT: u16 = 0xFFA5;
const DHT: u16 = 0xFFA6;
const DRT: u16 = 0xFFA7;
const COM: u16 = 0xFFA8;
/// Restart markers RST0 to RST7 may sit between codes inside a block.
const RST_FIRST: u16 = 0xFFB0;
const RST_LAST: u16 = 0xFFB7;

/// Subbands that carry coded coefficients; 60 to 63 (the finest diagonal detail) are
/// never transmitted.
const CODED_SUBBANDS: usize = 60;
/// Huffman table identifiers the format allows.
const HUFFMAN_TABLES: usize = 8;
/// Longest Huffman code, in bits.
const MAX_CODE_BITS: usize = 16;

/// Bounds on the images [`decode_with_limits`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsqLimits {
    /// Largest width or height, in pixels.
    pub max_side: u32,
    /// Largest width × height, in pixels. Decoding needs about 9 bytes per pixel.
    pub max_pixels: u64,
}

impl Default for WsqLimits {
    /// 8192 × 8192: far above any fingerprint card or palm scan at 1000 ppi.
    fn default() -> Self {
        WsqLimits {
            max_side: 8192,
            max_pixels: 8192 * 8192,
        }
    }
}

/// A decoded WSQ image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsqImage {
    /// The 8-bit grayscale pixels.
    pub image: GrayImage,
    /// Scan resolution from the NISTCOM comment's `PPI` field, when present and positive.
    pub ppi: Option<u16>,
}

/// Why WSQ bytes could not be decoded. Messages name the structure at fault, never pixel
/// or coefficient values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WsqError {
    /// The bytes do not start with the SOI marker.
    #[error("not a WSQ file (no start-of-image marker)")]
    NotWsq,
    /// The data ended inside a structure.
    #[error("WSQ data ends early, inside {0}")]
    Truncated(&'static str),
    /// A marker that is not allowed at this point of the stream.
    #[error("unexpected WSQ marker {marker:#06X} {context}")]
    UnexpectedMarker {
        /// The marker read.
        marker: u16,
        /// Where it was found.
        context: &'static str,
    },
    /// A table or header whose fields are inconsistent.
    #[error("invalid WSQ {segment}: {reason}")]
    InvalidSegment {
        /// The segment (marker name).
        segment: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A zero side, or a size above the limits.
    #[error(
        "WSQ image size {width}x{height} is not accepted (sides 1 to {max_side}, at most {max_pixels} pixels)"
    )]
    UnsupportedSize {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// Largest side accepted.
        max_side: u32,
        /// Largest pixel count accepted.
        max_pixels: u64,
    },
    /// Even-length wavelet filters (allowed by the specification, used by no known
    /// encoder) are not implemented.
    #[error("WSQ transform with even-length filters ({lowpass}/{highpass} taps) is not supported")]
    UnsupportedFilters {
        /// Length of the analysis low-pass filter.
        lowpass: u8,
        /// Length of the analysis high-pass filter.
        highpass: u8,
    },
    /// A table needed for decoding was never defined.
    #[error("WSQ {0} missing")]
    MissingTable(&'static str),
    /// A block refers to a Huffman table that was never defined.
    #[error("WSQ block uses Huffman table {0}, which is not defined")]
    UndefinedHuffmanTable(u8),
    /// A bit pattern that is no code of the block's Huffman table, or a category the
    /// format does not define.
    #[error("invalid Huffman code in WSQ block data")]
    InvalidCode,
    /// The coded data holds more or fewer coefficients than the subbands need.
    #[error("WSQ block data holds {found} coefficients where the subbands need {expected}")]
    CoefficientCount {
        /// Coefficients the frame's subbands hold.
        expected: usize,
        /// Coefficients read (counting stops one past `expected`).
        found: usize,
    },
}

/// True when the bytes start with the WSQ SOI marker (0xFF 0xA0).
pub fn is_wsq(bytes: &[u8]) -> bool {
    bytes.starts_with(&SOI.to_be_bytes())
}

/// Decodes a WSQ file to 8-bit grayscale, with the default [`WsqLimits`].
pub fn decode(bytes: &[u8]) -> Result<WsqImage, WsqError> {
    decode_with_limits(bytes, &WsqLimits::default())
}

/// Decodes a WSQ file to 8-bit grayscale, refusing images outside `limits` before
/// allocating anything image-sized.
pub fn decode_with_limits(bytes: &[u8], limits: &WsqLimits) -> Result<WsqImage, WsqError> {
    if !is_wsq(bytes) {
        return Err(WsqError::NotWsq);
    }
    let mut input = Reader {
        data: bytes,
        pos: 2,
    };
    let mut tables = Tables::default();

    // Tables and comments up to the frame header.
    let frame = loop {
        let marker = input.marker()?;
        match marker {
            SOF => break Frame::parse(input.segment("frame header")?, limits)?,
            _ => tables.read(marker, &mut input, "before the frame header")?,
        }
    };
    let layout = Layout::new(frame.width, frame.height);

    // Blocks, with tables allowed between them, up to EOI.
    let mut coefficients: Vec<i16> = Vec::new();
    let mut expected: Option<usize> = None;
    let mut pending: Option<u16> = None;
    loop {
        let marker = match pending.take() {
            Some(m) => m,
            None => input.marker()?,
        };
        match marker {
            EOI => break,
            SOB => {
                let quant = tables.quant.as_ref().ok_or(WsqError::MissingTable(
                    "quantization table (DQT) before the first block",
                ))?;
                let expected = *expected.get_or_insert_with(|| layout.coded_count(quant));
                let header = input.segment("block header")?;
                let &[id] = header else {
                    return Err(WsqError::InvalidSegment {
                        segment: "block header",
                        reason: "length is not 3",
                    });
                };
                let table = tables
                    .huffman
                    .get(usize::from(id))
                    .and_then(Option::as_ref)
                    .ok_or(WsqError::UndefinedHuffmanTable(id))?;
                pending = Some(decode_block(
                    &mut input,
                    table,
                    &mut coefficients,
                    expected,
                )?);
            }
            DQT if expected.is_some() => {
                // The coefficient count was fixed by the first block's table; a second
                // table would make its meaning ambiguous.
                return Err(WsqError::UnexpectedMarker {
                    marker,
                    context: "(quantization table redefined after block data)",
                });
            }
            _ => tables.read(marker, &mut input, "between blocks")?,
        }
    }

    let quant = tables
        .quant
        .as_ref()
        .ok_or(WsqError::MissingTable("quantization table (DQT)"))?;
    let expected = expected.unwrap_or_else(|| layout.coded_count(quant));
    if coefficients.len() != expected {
        return Err(WsqError::CoefficientCount {
            expected,
            found: coefficients.len(),
        });
    }
    let filters = tables
        .filters
        .as_ref()
        .ok_or(WsqError::MissingTable("transform table (DTT)"))?;

    let mut plane = dequantize(&layout, quant, &coefficients);
    drop(coefficients);
    reconstruct(&mut plane, &layout, filters);
    let image = to_gray(&plane, &frame);
    Ok(WsqImage {
        image,
        ppi: tables.ppi,
    })
}

/// A cursor over the whole input; every read is bounds-checked.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WsqError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.data.len())
            .ok_or(WsqError::Truncated(what))?;
        let out = self
            .data
            .get(self.pos..end)
            .ok_or(WsqError::Truncated(what))?;
        self.pos = end;
        Ok(out)
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, WsqError> {
        let b = self.bytes(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn marker(&mut self) -> Result<u16, WsqError> {
        self.u16("a marker")
    }

    /// A marker segment's body: the length field counts itself, so it is at least 2.
    fn segment(&mut self, what: &'static str) -> Result<&'a [u8], WsqError> {
        let len = usize::from(self.u16(what)?);
        if len < 2 {
            return Err(WsqError::InvalidSegment {
                segment: what,
                reason: "length field below 2",
            });
        }
        self.bytes(len - 2, what)
    }
}

/// Fields read from a segment body; running past its end is an invalid segment, not a
/// truncated file, since the declared length was already available.
struct Fields<'a> {
    body: &'a [u8],
    segment: &'static str,
}

impl Fields<'_> {
    fn short(&self) -> WsqError {
        WsqError::InvalidSegment {
            segment: self.segment,
            reason: "shorter than its fields",
        }
    }

    fn u8(&mut self) -> Result<u8, WsqError> {
        let (&b, rest) = self.body.split_first().ok_or_else(|| self.short())?;
        self.body = rest;
        Ok(b)
    }

    fn u16(&mut self) -> Result<u16, WsqError> {
        Ok(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }

    fn u32(&mut self) -> Result<u32, WsqError> {
        Ok(u32::from_be_bytes([
            self.u8()?,
            self.u8()?,
            self.u8()?,
            self.u8()?,
        ]))
    }

    /// A decimal-scaled value `raw / 10^scale`, divided one power at a time in double
    /// precision and rounded back to single, as the reference decoder does; that keeps
    /// the dequantized coefficients, and so the pixels, identical to its output.
    fn scaled_u16(&mut self) -> Result<f32, WsqError> {
        let scale = self.u8()?;
        let raw = self.u16()?;
        Ok(unscale(f32::from(raw), scale))
    }
}

fn unscale(raw: f32, scale: u8) -> f32 {
    let mut v = raw;
    for _ in 0..scale {
        v = (f64::from(v) / 10.0) as f32;
    }
    v
}

/// Tables defined so far; a later definition replaces an earlier one.
#[derive(Default)]
struct Tables {
    filters: Option<Filters>,
    quant: Option<Quant>,
    huffman: [Option<Huffman>; HUFFMAN_TABLES],
    ppi: Option<u16>,
    seen_nistcom: bool,
}

impl Tables {
    /// Reads the table or comment segment that `marker` opens; any other marker is an
    /// error described by `context`.
    fn read(
        &mut self,
        marker: u16,
        input: &mut Reader<'_>,
        context: &'static str,
    ) -> Result<(), WsqError> {
        match marker {
            DTT => self.filters = Some(Filters::parse(input.segment("transform table")?)?),
            DQT => self.quant = Some(Quant::parse(input.segment("quantization table")?)?),
            DHT => self.read_huffman(input.segment("Huffman table")?)?,
            DRT => {
                // The restart interval only tells where RSTn markers may appear; the block
                // decoder accepts them wherever they do.
                let body = input.segment("restart interval")?;
                if body.len() != 2 {
                    return Err(WsqError::InvalidSegment {
                        segment: "restart interval",
                        reason: "length is not 4",
                    });
                }
            }
            COM => {
                let text = input.segment("comment")?;
                if !self.seen_nistcom && text.starts_with(b"NIST_COM") {
                    self.seen_nistcom = true;
                    self.ppi = nistcom_ppi(text);
                }
            }
            _ => return Err(WsqError::UnexpectedMarker { marker, context }),
        }
        Ok(())
    }

    /// A DHT segment holds one or more tables back to back.
    fn read_huffman(&mut self, body: &[u8]) -> Result<(), WsqError> {
        let mut fields = Fields {
            body,
            segment: "Huffman table",
        };
        if fields.body.is_empty() {
            return Err(fields.short());
        }
        while !fields.body.is_empty() {
            let id = fields.u8()?;
            let mut counts = [0u8; MAX_CODE_BITS];
            for c in &mut counts {
                *c = fields.u8()?;
            }
            let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
            let mut values = Vec::with_capacity(total.min(256));
            for _ in 0..total {
                values.push(fields.u8()?);
            }
            let slot = self
                .huffman
                .get_mut(usize::from(id))
                .ok_or(WsqError::InvalidSegment {
                    segment: "Huffman table",
                    reason: "table identifier above 7",
                })?;
            *slot = Some(Huffman::new(&counts, values)?);
        }
        Ok(())
    }
}

/// The `PPI` value of a NISTCOM comment (`KEY VALUE` lines); absent, unknown (-1) or out
/// of range gives `None`.
fn nistcom_ppi(text: &[u8]) -> Option<u16> {
    text.split(|&b| b == b'\n').find_map(|line| {
        let line = std::str::from_utf8(line).ok()?;
        let (key, value) = line.trim().split_once(char::is_whitespace)?;
        if key != "PPI" {
            return None;
        }
        value.trim().parse::<u16>().ok().filter(|&p| p > 0)
    })
}

/// The frame header fields decoding needs.
struct Frame {
    width: usize,
    height: usize,
    /// M: added after scaling.
    shift: f32,
    /// R: multiplies each reconstructed sample.
    scale: f32,
}

impl Frame {
    fn parse(body: &[u8], limits: &WsqLimits) -> Result<Frame, WsqError> {
        let mut f = Fields {
            body,
            segment: "frame header",
        };
        let _black = f.u8()?;
        let _white = f.u8()?;
        let height = f.u16()?;
        let width = f.u16()?;
        let shift = f.scaled_u16()?;
        let scale = f.scaled_u16()?;
        // The encoder number and software id follow; nothing depends on them.
        let (w, h) = (u32::from(width), u32::from(height));
        if w == 0
            || h == 0
            || w > limits.max_side
            || h > limits.max_side
            || u64::from(w) * u64::from(h) > limits.max_pixels
        {
            return Err(WsqError::UnsupportedSize {
                width: w,
                height: h,
                max_side: limits.max_side,
                max_pixels: limits.max_pixels,
            });
        }
        Ok(Frame {
            width: usize::from(width),
            height: usize::from(height),
            shift,
            scale,
        })
    }
}

/// Synthesis filters derived from the transmitted analysis filters.
struct Filters {
    /// Applied to low-pass (even) samples; built from the analysis high-pass filter.
    lo: Vec<f32>,
    /// Applied to high-pass (odd) samples; built from the analysis low-pass filter.
    hi: Vec<f32>,
}

impl Filters {
    /// The table sends the analysis low-pass length L0, the high-pass length L1, then the
    /// right halves (centre first) of both filters as sign, decimal scale and a 32-bit
    /// magnitude. Perfect reconstruction with symmetric filters makes each synthesis
    /// filter the other analysis filter with every other tap negated.
    fn parse(body: &[u8]) -> Result<Filters, WsqError> {
        let mut f = Fields {
            body,
            segment: "transform table",
        };
        let lowpass_len = f.u8()?;
        let highpass_len = f.u8()?;
        if lowpass_len.is_multiple_of(2) || highpass_len.is_multiple_of(2) {
            return Err(WsqError::UnsupportedFilters {
                lowpass: lowpass_len,
                highpass: highpass_len,
            });
        }
        let hi = Self::read_half(&mut f, lowpass_len)?;
        let lo = Self::read_half(&mut f, highpass_len)?;
        Ok(Filters { lo, hi })
    }

    fn read_half(f: &mut Fields<'_>, len: u8) -> Result<Vec<f32>, WsqError> {
        let len = usize::from(len);
        let centre = len / 2;
        let mut taps = vec![0f32; len];
        for k in 0..=centre {
            let negative = f.u8()? != 0;
            let scale = f.u8()?;
            let raw = f.u32()?;
            // u32 to f32 rounds to nearest, as the C conversion does.
            let mut v = unscale(raw as f32, scale);
            if negative {
                v = -v;
            }
            if k % 2 == 1 {
                v = -v;
            }
            taps[centre + k] = v;
            taps[centre - k] = v;
        }
        Ok(taps)
    }
}

/// Quantizer parameters: bin centre C and, per subband, bin width Q and zero-bin width Z.
struct Quant {
    bin_centre: f32,
    q: [f32; 64],
    z: [f32; 64],
}

impl Quant {
    fn parse(body: &[u8]) -> Result<Quant, WsqError> {
        let mut f = Fields {
            body,
            segment: "quantization table",
        };
        let bin_centre = f.scaled_u16()?;
        let mut q = [0f32; 64];
        let mut z = [0f32; 64];
        for (q, z) in q.iter_mut().zip(z.iter_mut()) {
            *q = f.scaled_u16()?;
            *z = f.scaled_u16()?;
        }
        Ok(Quant { bin_centre, q, z })
    }

    /// A subband with a zero bin width was not transmitted; its coefficients are zero.
    fn coded(&self, subband: usize) -> bool {
        self.q.get(subband).is_some_and(|&q| q != 0.0)
    }
}

/// A canonical Huffman code, as in JPEG: counts of codes per length, values in code order.
struct Huffman {
    /// Largest code of each length (index 1..=16), -1 where there is none.
    max_code: [i32; MAX_CODE_BITS + 1],
    /// Smallest code of each length.
    min_code: [i32; MAX_CODE_BITS + 1],
    /// Index in `values` of the smallest code of each length.
    first_value: [usize; MAX_CODE_BITS + 1],
    values: Vec<u8>,
}

impl Huffman {
    fn new(counts: &[u8; MAX_CODE_BITS], values: Vec<u8>) -> Result<Huffman, WsqError> {
        let mut max_code = [-1i32; MAX_CODE_BITS + 1];
        let mut min_code = [0i32; MAX_CODE_BITS + 1];
        let mut first_value = [0usize; MAX_CODE_BITS + 1];
        let mut code: i32 = 0;
        let mut k = 0usize;
        for len in 1..=MAX_CODE_BITS {
            let n = i32::from(counts[len - 1]);
            if n > 0 {
                first_value[len] = k;
                min_code[len] = code;
                code += n;
                max_code[len] = code - 1;
                k += usize::from(counts[len - 1]);
            }
            // More codes than a length can hold would make the code ambiguous.
            if code > (1 << len) {
                return Err(WsqError::InvalidSegment {
                    segment: "Huffman table",
                    reason: "more codes than their lengths allow",
                });
            }
            code <<= 1;
        }
        if k == 0 {
            return Err(WsqError::InvalidSegment {
                segment: "Huffman table",
                reason: "no codes",
            });
        }
        Ok(Huffman {
            max_code,
            min_code,
            first_value,
            values,
        })
    }
}

/// Entropy-coded data: bits most significant first; a 0xFF data byte is followed by a
/// stuffed 0x00, and 0xFF followed by anything else is a marker.
struct Bits<'r, 'a> {
    input: &'r mut Reader<'a>,
    byte: u8,
    left: u8,
}

enum Bit {
    Bit(u32),
    Marker(u16),
}

impl Bits<'_, '_> {
    fn next(&mut self) -> Result<Bit, WsqError> {
        if self.left == 0 {
            let b = self.input.bytes(1, "block data")?[0];
            if b == 0xFF {
                let next = self.input.bytes(1, "block data")?[0];
                if next != 0 {
                    return Ok(Bit::Marker(u16::from_be_bytes([b, next])));
                }
            }
            self.byte = b;
            self.left = 8;
        }
        self.left -= 1;
        Ok(Bit::Bit(u32::from((self.byte >> self.left) & 1)))
    }

    /// Extra bits after a category code; a marker here means the block was cut short.
    fn value(&mut self, n: u32) -> Result<u32, WsqError> {
        let mut v = 0;
        for _ in 0..n {
            match self.next()? {
                Bit::Bit(b) => v = (v << 1) | b,
                Bit::Marker(_) => return Err(WsqError::Truncated("a coefficient value")),
            }
        }
        Ok(v)
    }

    /// The next category, or the marker that ends the block. A marker can only be met at a
    /// byte boundary, where any partial code is the encoder's 1-bit padding.
    fn symbol(&mut self, table: &Huffman) -> Result<Result<u8, u16>, WsqError> {
        let mut code: i32 = 0;
        let mut len = 0usize;
        loop {
            match self.next()? {
                Bit::Marker(m) if (RST_FIRST..=RST_LAST).contains(&m) => {
                    // A restart: the padding before it is dropped and decoding goes on.
                    code = 0;
                    len = 0;
                    continue;
                }
                Bit::Marker(m) => return Ok(Err(m)),
                Bit::Bit(b) => {
                    code = (code << 1) | b as i32;
                    len += 1;
                }
            }
            if len > MAX_CODE_BITS {
                return Err(WsqError::InvalidCode);
            }
            if code <= table.max_code[len] {
                let index = usize::try_from(code - table.min_code[len])
                    .ok()
                    .and_then(|i| i.checked_add(table.first_value[len]));
                return index
                    .and_then(|i| table.values.get(i))
                    .copied()
                    .map(Ok)
                    .ok_or(WsqError::InvalidCode);
            }
        }
    }
}

/// Decodes one block's categories into `out` until a marker other than RSTn; returns it.
fn decode_block(
    input: &mut Reader<'_>,
    table: &Huffman,
    out: &mut Vec<i16>,
    expected: usize,
) -> Result<u16, WsqError> {
    let mut bits = Bits {
        input,
        byte: 0,
        left: 0,
    };
    let too_many = |out: &Vec<i16>, n: usize| WsqError::CoefficientCount {
        expected,
        found: out.len().saturating_add(n).min(expected.saturating_add(1)),
    };
    let zeros = |out: &mut Vec<i16>, n: usize| {
        if out.len() + n > expected {
            return Err(too_many(out, n));
        }
        out.resize(out.len() + n, 0);
        Ok(())
    };
    loop {
        let symbol = match bits.symbol(table)? {
            Ok(s) => s,
            Err(marker) => return Ok(marker),
        };
        let value: i32 = match symbol {
            1..=100 => {
                zeros(out, usize::from(symbol))?;
                continue;
            }
            105 => {
                let n = bits.value(8)?;
                zeros(out, n as usize)?;
                continue;
            }
            106 => {
                let n = bits.value(16)?;
                zeros(out, n as usize)?;
                continue;
            }
            101 => bits.value(8)? as i32,
            102 => -(bits.value(8)? as i32),
            103 => bits.value(16)? as i32,
            104 => -(bits.value(16)? as i32),
            107..=254 => i32::from(symbol) - 180,
            _ => return Err(WsqError::InvalidCode),
        };
        let value = i16::try_from(value).map_err(|_| WsqError::InvalidSegment {
            segment: "block data",
            reason: "coefficient outside the 16-bit range",
        })?;
        if out.len() >= expected {
            return Err(too_many(out, 1));
        }
        out.push(value);
    }
}

/// A rectangle of the coefficient plane, with whether its rows (`inv_x`) or columns
/// (`inv_y`) hold spectrally inverted data, i.e. came out of a high-pass branch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Band {
    x: usize,
    y: usize,
    w: usize,
    h: usize,
    inv_x: bool,
    inv_y: bool,
}

impl Band {
    /// One analysis step's four outputs: top-left, top-right, bottom-left, bottom-right.
    /// Along each axis the low-pass half has `ceil(n/2)` samples and the high-pass half
    /// `floor(n/2)`; an inverted axis stores the high-pass half first. Whatever lands in
    /// the second half of an axis is inverted for the next step.
    fn split(&self) -> [Band; 4] {
        let w0 = if self.inv_x {
            self.w / 2
        } else {
            self.w.div_ceil(2)
        };
        let h0 = if self.inv_y {
            self.h / 2
        } else {
            self.h.div_ceil(2)
        };
        let (w1, h1) = (self.w - w0, self.h - h0);
        let at = |x, y, w, h, inv_x, inv_y| Band {
            x,
            y,
            w,
            h,
            inv_x,
            inv_y,
        };
        [
            at(self.x, self.y, w0, h0, false, false),
            at(self.x + w0, self.y, w1, h0, true, false),
            at(self.x, self.y + h0, w0, h1, false, true),
            at(self.x + w0, self.y + h0, w1, h1, true, true),
        ]
    }
}

/// Where the 60 coded subbands lie, in transmission order, and the 20 transform nodes in
/// the order they are synthesized (every node after the nodes inside it).
struct Layout {
    width: usize,
    subbands: [Band; CODED_SUBBANDS],
    nodes: Vec<Band>,
}

impl Layout {
    /// The specification's decomposition: the image splits into four; its top-left
    /// quarter splits into four again, of which three are split twice more (16 subbands
    /// each) and the low-pass one is split down to 19 subbands; the top-right and
    /// bottom-left quarters of the image give four subbands each; the bottom-right
    /// quarter is dropped.
    fn new(width: usize, height: usize) -> Layout {
        let mut subbands = [Band::default(); CODED_SUBBANDS];
        let mut nodes = Vec::with_capacity(20);
        fn put(subbands: &mut [Band; CODED_SUBBANDS], first: usize, bands: [Band; 4]) {
            subbands[first..first + 4].copy_from_slice(&bands);
        }
        let image = Band {
            x: 0,
            y: 0,
            w: width,
            h: height,
            inv_x: false,
            inv_y: false,
        };
        let [low, right, bottom, _dropped] = image.split();
        let [low2, right2, bottom2, diagonal2] = low.split();

        // Subbands 0..=18 from the low-pass quarter of the low-pass quarter.
        let [a, b, c, d] = low2.split();
        let [core, a1, a2, a3] = a.split();
        put(&mut subbands, 0, core.split());
        subbands[4..7].copy_from_slice(&[a1, a2, a3]);
        put(&mut subbands, 7, b.split());
        put(&mut subbands, 11, c.split());
        put(&mut subbands, 15, d.split());
        nodes.extend([core, a, b, c, d, low2]);

        // Subbands 19..=34 and 35..=50.
        for (first, quarter) in [(19, right2), (35, bottom2)] {
            for (i, band) in quarter.split().into_iter().enumerate() {
                put(&mut subbands, first + 4 * i, band.split());
                nodes.push(band);
            }
            nodes.push(quarter);
        }
        subbands[51] = diagonal2;
        nodes.push(low);

        put(&mut subbands, 52, right.split());
        nodes.push(right);
        put(&mut subbands, 56, bottom.split());
        nodes.push(bottom);
        nodes.push(image);
        Layout {
            width,
            subbands,
            nodes,
        }
    }

    fn coded_count(&self, quant: &Quant) -> usize {
        self.subbands
            .iter()
            .enumerate()
            .filter(|&(i, _)| quant.coded(i))
            .map(|(_, b)| b.w * b.h)
            .sum()
    }
}

/// Places each coefficient in its subband, reconstructing value `q * (n - C) + z / 2` for
/// positive `n`, mirrored for negative, zero for zero. The half-zero-bin term is added in
/// double precision, as in the reference decoder.
fn dequantize(layout: &Layout, quant: &Quant, coefficients: &[i16]) -> Vec<f32> {
    let height = layout.nodes.last().map_or(0, |b| b.h);
    let mut plane = vec![0f32; layout.width * height];
    let c = quant.bin_centre;
    let mut source = coefficients.iter();
    for (i, band) in layout.subbands.iter().enumerate() {
        if !quant.coded(i) {
            continue;
        }
        let (q, half_z) = (quant.q[i], f64::from(quant.z[i]) / 2.0);
        for row in band.y..band.y + band.h {
            let start = row * layout.width + band.x;
            for (p, &n) in plane[start..start + band.w].iter_mut().zip(&mut source) {
                let n = f32::from(n);
                *p = if n > 0.0 {
                    (f64::from(q * (n - c)) + half_z) as f32
                } else if n < 0.0 {
                    (f64::from(q * (n + c)) - half_z) as f32
                } else {
                    0.0
                };
            }
        }
    }
    plane
}

/// Index of sample `i` of a length-`n` sequence extended by whole-sample symmetry about
/// both ends (…, x2, x1, x0, x1, x2, …, x(n-2), x(n-1), x(n-2), …).
fn reflect(i: isize, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = i.rem_euclid(period) as usize;
    if m >= n {
        period as usize - m
    } else {
        m
    }
}

/// The interleaved-position source index for one axis of a band: position `m` of the
/// upsampled signal (even: low-pass, odd: high-pass) comes from this offset in the band.
fn source_offset(m: usize, n: usize, inverted: bool) -> usize {
    let (low_len, high_len) = (n.div_ceil(2), n / 2);
    let k = m / 2;
    match (m.is_multiple_of(2), inverted) {
        (true, false) => k,
        (true, true) => high_len + k,
        (false, false) => low_len + k,
        (false, true) => k,
    }
}

/// Taps of one synthesis output: for output `n`, filter tap `j` reads upsampled position
/// `n + j - centre`; only positions of the filter's own parity (even for low-pass, odd
/// for high-pass) hold samples. Returns the first tap with that parity.
fn first_tap(n: usize, centre: usize, odd_positions: bool) -> usize {
    // (n + j - centre) has the wanted parity.
    (n + centre + usize::from(odd_positions)) % 2
}

/// Inverse transform in place: each node, innermost first, is synthesized along columns
/// then along rows. Each output sample sums its low-pass taps then its high-pass taps in
/// ascending tap order, in single precision, as the reference decoder does.
fn reconstruct(plane: &mut [f32], layout: &Layout, filters: &Filters) {
    let width = layout.width;
    let (lo, hi) = (&filters.lo[..], &filters.hi[..]);
    let (lc, hc) = (lo.len() / 2, hi.len() / 2);
    let mut temp: Vec<f32> = Vec::new();
    let mut line: Vec<f32> = Vec::new();
    let mut rows: Vec<usize> = Vec::new();
    for node in &layout.nodes {
        let (w, h) = (node.w, node.h);
        if w == 0 || h == 0 {
            continue;
        }
        // Columns: whole rows at a time, so the inner loop runs along memory.
        temp.clear();
        temp.resize(w * h, 0.0);
        for n in 0..h {
            let out = &mut temp[n * w..(n + 1) * w];
            let mut first = true;
            let mut tap = |coef: f32, j: usize, centre: usize, plane: &[f32], first: &mut bool| {
                let m = reflect(n as isize + j as isize - centre as isize, h);
                let row = node.y + source_offset(m, h, node.inv_y);
                let src = &plane[row * width + node.x..row * width + node.x + w];
                if *first {
                    for (o, &s) in out.iter_mut().zip(src) {
                        *o = s * coef;
                    }
                    *first = false;
                } else {
                    for (o, &s) in out.iter_mut().zip(src) {
                        *o += s * coef;
                    }
                }
            };
            for j in (first_tap(n, lc, false)..lo.len()).step_by(2) {
                tap(lo[j], j, lc, plane, &mut first);
            }
            for j in (first_tap(n, hc, true)..hi.len()).step_by(2) {
                tap(hi[j], j, hc, plane, &mut first);
            }
        }
        // Rows: each row is laid out upsampled, extended, then filtered.
        let pad = lc.max(hc) + 1;
        rows.clear();
        rows.extend((0..w + 2 * pad).map(|i| {
            let m = reflect(i as isize - pad as isize, w);
            source_offset(m, w, node.inv_x)
        }));
        for r in 0..h {
            let src = &temp[r * w..(r + 1) * w];
            line.clear();
            line.extend(rows.iter().map(|&k| src[k]));
            let start = (node.y + r) * width + node.x;
            for (n, out) in plane[start..start + w].iter_mut().enumerate() {
                let mut acc = 0.0f32;
                let mut first = true;
                for j in (first_tap(n, lc, false)..lo.len()).step_by(2) {
                    let s = line[pad + n + j - lc];
                    acc = if first { s * lo[j] } else { acc + s * lo[j] };
                    first = false;
                }
                for j in (first_tap(n, hc, true)..hi.len()).step_by(2) {
                    let s = line[pad + n + j - hc];
                    acc = if first { s * hi[j] } else { acc + s * hi[j] };
                    first = false;
                }
                *out = acc;
            }
        }
    }
}

/// `pixel = sample * R + M`, then +0.5 (in double precision, as the reference decoder)
/// and truncation, clamped to 0..=255.
fn to_gray(plane: &[f32], frame: &Frame) -> GrayImage {
    let pixels = plane
        .iter()
        .map(|&s| {
            let v = s * frame.scale + frame.shift;
            let v = (f64::from(v) + 0.5) as f32;
            if v < 0.0 {
                0
            } else if v > 255.0 {
                255
            } else {
                v as u8
            }
        })
        .collect();
    // The plane holds exactly width * height samples, so this cannot fail; an empty
    // image stands in rather than a panic.
    GrayImage::from_raw(frame.width as u32, frame.height as u32, pixels).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_is_whole_sample_symmetric() {
        let got: Vec<usize> = (-4..9).map(|i| reflect(i, 5)).collect();
        assert_eq!(got, vec![4, 3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1, 0]);
        assert_eq!(reflect(7, 1), 0);
        assert_eq!(reflect(-3, 2), 1);
    }

    #[test]
    fn layout_tiles_the_image_except_the_dropped_quarter() {
        for (w, h) in [(400, 500), (253, 317), (1, 1), (7, 3), (64, 65)] {
            let layout = Layout::new(w, h);
            let mut covered = vec![0u8; w * h];
            for b in &layout.subbands {
                for y in b.y..b.y + b.h {
                    for x in b.x..b.x + b.w {
                        covered[y * w + x] += 1;
                    }
                }
            }
            let dropped = &Band {
                x: 0,
                y: 0,
                w,
                h,
                inv_x: false,
                inv_y: false,
            }
            .split()[3];
            for y in 0..h {
                for x in 0..w {
                    let in_dropped = x >= dropped.x && y >= dropped.y;
                    assert_eq!(
                        covered[y * w + x],
                        u8::from(!in_dropped),
                        "{w}x{h} at {x},{y}"
                    );
                }
            }
            assert_eq!(layout.nodes.len(), 20);
        }
    }

    #[test]
    fn split_sizes_follow_inversion() {
        let b = Band {
            x: 3,
            y: 4,
            w: 7,
            h: 5,
            inv_x: true,
            inv_y: false,
        };
        let [tl, tr, bl, br] = b.split();
        assert_eq!((tl.w, tl.h, tr.w, bl.h), (3, 3, 4, 2));
        assert_eq!((tr.x, bl.y, br.x, br.y), (6, 7, 6, 7));
        assert!(tr.inv_x && !tr.inv_y && bl.inv_y && br.inv_x && br.inv_y && !tl.inv_x);
    }

    #[test]
    fn huffman_rejects_oversubscribed_lengths() {
        let mut counts = [0u8; MAX_CODE_BITS];
        counts[0] = 3; // three 1-bit codes cannot exist
        assert!(Huffman::new(&counts, vec![1, 2, 3]).is_err());
        counts[0] = 2;
        assert!(Huffman::new(&counts, vec![1, 2]).is_ok());
    }

    #[test]
    fn nistcom_ppi_reads_the_field() {
        assert_eq!(
            nistcom_ppi(b"NIST_COM 3\nPIX_WIDTH 4\nPPI 500\n"),
            Some(500)
        );
        assert_eq!(nistcom_ppi(b"NIST_COM 3\nPPI -1\n"), None);
        assert_eq!(nistcom_ppi(b"NIST_COM 3\nPIX_WIDTH 4\n"), None);
    }

    #[test]
    fn unscale_divides_by_powers_of_ten() {
        assert_eq!(unscale(44.0, 0), 44.0);
        assert!((unscale(12345.0, 3) - 12.345).abs() < 1e-5);
    }
}
