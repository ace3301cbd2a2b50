//! Primitive decoders for dlib's stream format: packed integers, float pairs,
//! strings, booleans and tensors. Every read checks the remaining length first,
//! so a hostile file can neither panic us nor make us allocate more than it holds.

use crate::DlibError;

/// A cursor over an in-memory dlib stream.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// A dense 4-D tensor (samples, channels, rows, columns) as dlib stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTensor {
    /// `[num_samples, k, nr, nc]`.
    pub shape: [usize; 4],
    /// Row-major values.
    pub data: Vec<f32>,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Current offset, for error messages.
    pub fn offset(&self) -> usize {
        self.pos
    }

    pub(crate) fn err(&self, what: impl Into<String>) -> DlibError {
        DlibError::Malformed {
            offset: self.pos,
            what: what.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DlibError> {
        if n > self.remaining() {
            return Err(DlibError::Truncated { offset: self.pos });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, DlibError> {
        Ok(self.take(1)?[0])
    }

    /// A signed integer in dlib's packed form: a control byte (bit 7 = sign,
    /// low nibble = byte count) followed by little-endian magnitude bytes.
    pub fn int(&mut self) -> Result<i64, DlibError> {
        let ctl = self.byte()?;
        let size = (ctl & 0x0F) as usize;
        if size == 0 || size > 8 || ctl & 0x70 != 0 {
            return Err(self.err(format!("bad integer control byte {ctl:#04x}")));
        }
        let bytes = self.take(size)?;
        let mut mag: u64 = 0;
        for &b in bytes.iter().rev() {
            mag = (mag << 8) | u64::from(b);
        }
        // dlib negates after assembling, wrapping like C++ does for i64::MIN.
        let v = mag as i64;
        Ok(if ctl & 0x80 != 0 { v.wrapping_neg() } else { v })
    }

    /// An unsigned integer; a sign bit is an error.
    pub fn uint(&mut self) -> Result<u64, DlibError> {
        let at = self.pos;
        let v = self.int()?;
        if v < 0 || self.buf[at] & 0x80 != 0 {
            return Err(self.err("negative value where an unsigned integer was expected"));
        }
        Ok(v as u64)
    }

    /// An integer that must fit a `usize` no larger than `max`.
    pub fn size(&mut self, max: usize, what: &str) -> Result<usize, DlibError> {
        let v = self.int()?;
        if v < 0 || v as u64 > max as u64 {
            return Err(self.err(format!("{what} {v} out of range 0..={max}")));
        }
        Ok(v as usize)
    }

    /// A float stored as (mantissa: i64, exponent: i16), value = m * 2^e.
    pub fn f64(&mut self) -> Result<f64, DlibError> {
        let first = *self
            .buf
            .get(self.pos)
            .ok_or(DlibError::Truncated { offset: self.pos })?;
        if first & 0x70 != 0 {
            return Err(self.err("legacy ASCII float encoding is not supported"));
        }
        let mantissa = self.int()?;
        let exponent = self.int()?;
        if !(i64::from(i16::MIN)..=i64::from(i16::MAX)).contains(&exponent) {
            return Err(self.err("float exponent out of range"));
        }
        Ok(match exponent {
            32000 => f64::INFINITY,
            32001 => f64::NEG_INFINITY,
            32002 => f64::NAN,
            e => (mantissa as f64) * 2f64.powi(e as i32),
        })
    }

    /// A float narrowed to f32.
    pub fn f32(&mut self) -> Result<f32, DlibError> {
        Ok(self.f64()? as f32)
    }

    /// A finite float; model parameters are never infinite or NaN.
    pub fn finite_f32(&mut self) -> Result<f32, DlibError> {
        let v = self.f32()?;
        if !v.is_finite() {
            return Err(self.err("non-finite model parameter"));
        }
        Ok(v)
    }

    /// A length-prefixed byte string.
    pub fn string(&mut self) -> Result<String, DlibError> {
        let n = self.size(self.remaining(), "string length")?;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.err("string is not UTF-8"))
    }

    /// Expects a specific tag string, as dlib writes before each object.
    pub fn expect_string(&mut self, options: &[&str]) -> Result<String, DlibError> {
        let at = self.pos;
        let s = self.string()?;
        if options.contains(&s.as_str()) {
            Ok(s)
        } else {
            Err(DlibError::Malformed {
                offset: at,
                what: format!("expected one of {options:?}, found {s:?}"),
            })
        }
    }

    /// A bool, which dlib writes as the ASCII digit '0' or '1'.
    pub fn bool(&mut self) -> Result<bool, DlibError> {
        match self.byte()? {
            b'0' => Ok(false),
            b'1' => Ok(true),
            b => Err(self.err(format!("bad bool byte {b:#04x}"))),
        }
    }

    /// An integer version tag that must be one of `allowed`.
    pub fn version(&mut self, allowed: &[i64], what: &str) -> Result<i64, DlibError> {
        let v = self.int()?;
        if allowed.contains(&v) {
            Ok(v)
        } else {
            Err(self.err(format!("unsupported {what} version {v}")))
        }
    }

    /// A length prefix for a sequence whose elements each take at least
    /// `min_elem_bytes`, so the count can never exceed what the file holds.
    pub fn seq_len(&mut self, min_elem_bytes: usize, what: &str) -> Result<usize, DlibError> {
        let max = self.remaining() / min_elem_bytes.max(1);
        self.size(max, what)
    }

    /// A `resizable_tensor`: version 2, four dimensions, then raw little-endian f32.
    pub fn tensor(&mut self) -> Result<RawTensor, DlibError> {
        self.version(&[2], "tensor")?;
        let mut shape = [0usize; 4];
        for d in shape.iter_mut() {
            *d = self.size(self.remaining(), "tensor dimension")?;
        }
        let count = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| self.err("tensor size overflows"))?;
        if count.checked_mul(4).is_none_or(|b| b > self.remaining()) {
            return Err(DlibError::Truncated { offset: self.pos });
        }
        let bytes = self.take(count * 4)?;
        let data = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(RawTensor { shape, data })
    }

    /// An `alias_tensor` header: version 1 and four dimensions, no data.
    pub fn alias_shape(&mut self) -> Result<[usize; 4], DlibError> {
        self.version(&[1], "alias_tensor")?;
        let mut shape = [0usize; 4];
        for d in shape.iter_mut() {
            *d = self.size(1 << 28, "alias dimension")?;
        }
        Ok(shape)
    }

    /// A `matrix<float>` column: (-nr, -nc) in the newer format, then nr*nc floats.
    pub fn float_matrix(&mut self) -> Result<(usize, usize, Vec<f32>), DlibError> {
        let nr = self.int()?;
        let nc = self.int()?;
        let (nr, nc) = (nr.unsigned_abs(), nc.unsigned_abs());
        // Each float takes at least two bytes (two packed integers).
        let count = nr
            .checked_mul(nc)
            .filter(|&c| c <= (self.remaining() / 2) as u64)
            .ok_or_else(|| self.err("matrix larger than the file"))? as usize;
        let mut v = Vec::with_capacity(count);
        for _ in 0..count {
            v.push(self.finite_f32()?);
        }
        Ok((nr as usize, nc as usize, v))
    }

    /// Fails unless the whole stream was consumed.
    pub fn finish(&self) -> Result<(), DlibError> {
        if self.remaining() != 0 {
            return Err(self.err(format!("{} trailing bytes", self.remaining())));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes an integer the way dlib's `pack_int` does; the tests' twin of `Reader::int`.
    pub(crate) fn pack(v: i64) -> Vec<u8> {
        let neg = v < 0;
        let mut m = v.unsigned_abs();
        let mut bytes = vec![];
        loop {
            bytes.push((m & 0xFF) as u8);
            m >>= 8;
            if m == 0 {
                break;
            }
        }
        let mut out = vec![bytes.len() as u8 | if neg { 0x80 } else { 0 }];
        out.extend(bytes);
        out
    }

    #[test]
    fn packed_ints_round_trip() {
        for v in [0i64, 1, -1, 255, 256, -70000, i64::MAX, i64::MIN + 1] {
            let b = pack(v);
            assert_eq!(Reader::new(&b).int().unwrap(), v, "{v}");
        }
    }

    #[test]
    fn floats_decode_from_mantissa_and_exponent() {
        let mut b = pack(3);
        b.extend(pack(-1));
        assert_eq!(Reader::new(&b).f64().unwrap(), 1.5);
        let mut b = pack(0);
        b.extend(pack(32002));
        assert!(Reader::new(&b).f64().unwrap().is_nan());
    }

    #[test]
    fn truncated_and_hostile_lengths_are_errors() {
        assert!(Reader::new(&[]).int().is_err());
        assert!(Reader::new(&[0x04, 1, 2]).int().is_err());
        assert!(Reader::new(&[0x00]).int().is_err());
        // A string claiming 2^40 bytes.
        let mut b = pack(1 << 40);
        b.push(b'a');
        assert!(Reader::new(&b).string().is_err());
        // A tensor claiming a huge shape must not allocate.
        let mut b = pack(2);
        for _ in 0..4 {
            b.extend(pack(1 << 20));
        }
        assert!(Reader::new(&b).tensor().is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let mut r = Reader::new(&bytes);
            let _ = r.tensor();
            let mut r = Reader::new(&bytes);
            let _ = r.float_matrix();
            let mut r = Reader::new(&bytes);
            let _ = r.string();
        }

        #[test]
        fn ints_round_trip(v in proptest::num::i64::ANY) {
            proptest::prop_assume!(v != i64::MIN);
            proptest::prop_assert_eq!(Reader::new(&pack(v)).int().unwrap(), v);
        }
    }
}
