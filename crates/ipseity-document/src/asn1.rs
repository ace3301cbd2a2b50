//! A bounded ASN.1 reader for the signed structures of passive
//! authentication (CMS SignedData, X.509 certificates and CRLs, the
//! LDSSecurityObject).
//!
//! Chips write these in DER, but some issuers use BER indefinite lengths
//! (New Zealand's SOD, for one); [`ber_to_der_lengths`] rewrites those into
//! definite lengths first, so the rest reads one definite-length form and can
//! hand out borrowed slices of exactly the bytes that were signed.
//!
//! Every length is checked against the bytes that remain before anything is
//! sliced, nesting is capped, and nothing is allocated from a length field.

/// The largest input read as one structure: a master list is under 1 MiB;
/// this leaves room for a few times that and no more.
pub const MAX_INPUT: usize = 8 << 20;

/// How deep constructed values may nest (certificates need about 10).
pub const MAX_DEPTH: usize = 32;

/// Why bytes are not the ASN.1 expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Asn1Error {
    /// The input ends inside a tag, a length or a value.
    #[error("truncated at byte {0}")]
    Truncated(usize),
    /// A length form not allowed here.
    #[error("bad length at byte {0}")]
    Length(usize),
    /// A tag number too large to be one this reader knows.
    #[error("tag too long at byte {0}")]
    Tag(usize),
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("nested too deep")]
    Depth,
    /// Larger than [`MAX_INPUT`].
    #[error("input of {0} bytes is over the size limit")]
    TooLarge(usize),
    /// A value of the wrong type or shape.
    #[error("{0}")]
    Unexpected(&'static str),
}

/// Universal tags used here.
pub mod tag {
    /// BOOLEAN.
    pub const BOOLEAN: u8 = 0x01;
    /// INTEGER.
    pub const INTEGER: u8 = 0x02;
    /// BIT STRING.
    pub const BIT_STRING: u8 = 0x03;
    /// OCTET STRING.
    pub const OCTET_STRING: u8 = 0x04;
    /// NULL.
    pub const NULL: u8 = 0x05;
    /// OBJECT IDENTIFIER.
    pub const OID: u8 = 0x06;
    /// UTCTime.
    pub const UTC_TIME: u8 = 0x17;
    /// GeneralizedTime.
    pub const GENERALIZED_TIME: u8 = 0x18;
    /// SEQUENCE (constructed).
    pub const SEQUENCE: u8 = 0x30;
    /// SET (constructed).
    pub const SET: u8 = 0x31;
}

/// One element: its tag byte, value and the whole encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Element<'a> {
    /// The identifier octet (class, constructed bit and a low tag number).
    pub tag: u8,
    /// The content octets.
    pub value: &'a [u8],
    /// The identifier, length and content octets together.
    pub raw: &'a [u8],
}

impl<'a> Element<'a> {
    /// The children of a constructed value.
    pub fn children(&self) -> Reader<'a> {
        Reader::new(self.value)
    }

    /// Whether this is context-specific tag `[n]` (either form).
    pub fn is_context(&self, n: u8) -> bool {
        self.tag & 0xC0 == 0x80 && self.tag & 0x1F == n
    }

    /// The value as an unsigned big-endian integer with leading zeros removed.
    pub fn uint_bytes(&self) -> Result<&'a [u8], Asn1Error> {
        if self.tag != tag::INTEGER || self.value.is_empty() {
            return Err(Asn1Error::Unexpected("expected an INTEGER"));
        }
        let first_nonzero = self
            .value
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(self.value.len());
        Ok(self.value.get(first_nonzero..).unwrap_or_default())
    }

    /// A small non-negative INTEGER (versions, data-group numbers).
    pub fn small_uint(&self) -> Result<u64, Asn1Error> {
        let b = self.uint_bytes()?;
        if self.value.first().is_some_and(|&f| f & 0x80 != 0) || b.len() > 8 {
            return Err(Asn1Error::Unexpected("INTEGER out of range"));
        }
        Ok(b.iter().fold(0u64, |a, &x| (a << 8) | u64::from(x)))
    }

    /// A BIT STRING's bytes when it has no unused bits (keys, signatures).
    pub fn bit_string(&self) -> Result<&'a [u8], Asn1Error> {
        if self.tag != tag::BIT_STRING {
            return Err(Asn1Error::Unexpected("expected a BIT STRING"));
        }
        match self.value.split_first() {
            Some((0, rest)) => Ok(rest),
            _ => Err(Asn1Error::Unexpected("BIT STRING with unused bits")),
        }
    }

    /// Checks the tag and returns the element, to chain with `?`.
    pub fn expect(self, want: u8, what: &'static str) -> Result<Self, Asn1Error> {
        if self.tag == want {
            Ok(self)
        } else {
            Err(Asn1Error::Unexpected(what))
        }
    }
}

/// Reads elements one after another from a definite-length encoding.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// The next element's tag, without reading it.
    pub fn peek_tag(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// The next element.
    pub fn next_element(&mut self) -> Result<Element<'a>, Asn1Error> {
        let (e, end) = read_definite(self.bytes, self.pos)?;
        self.pos = end;
        Ok(e)
    }

    /// The next element, which must have tag `want`.
    pub fn expect(&mut self, want: u8, what: &'static str) -> Result<Element<'a>, Asn1Error> {
        self.next_element()?.expect(want, what)
    }

    /// The next element if its tag is `want`.
    pub fn optional(&mut self, want: u8) -> Result<Option<Element<'a>>, Asn1Error> {
        if self.peek_tag() == Some(want) {
            self.next_element().map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Reads one definite-length element at `pos`; returns it and its end.
fn read_definite(b: &[u8], pos: usize) -> Result<(Element<'_>, usize), Asn1Error> {
    let (tag, len_pos) = read_identifier(b, pos)?;
    let (len, val_pos) = match read_length(b, len_pos)? {
        Some(l) => l,
        None => return Err(Asn1Error::Length(len_pos)),
    };
    let end = val_pos
        .checked_add(len)
        .ok_or(Asn1Error::Truncated(val_pos))?;
    let value = b.get(val_pos..end).ok_or(Asn1Error::Truncated(b.len()))?;
    let raw = b.get(pos..end).ok_or(Asn1Error::Truncated(b.len()))?;
    Ok((Element { tag, value, raw }, end))
}

/// The identifier octet at `pos`. High tag numbers (`0x1F` forms) occur in
/// none of the structures read here, so they are refused rather than carried.
fn read_identifier(b: &[u8], pos: usize) -> Result<(u8, usize), Asn1Error> {
    let t = *b.get(pos).ok_or(Asn1Error::Truncated(pos))?;
    if t & 0x1F == 0x1F {
        return Err(Asn1Error::Tag(pos));
    }
    Ok((t, pos + 1))
}

/// The length at `pos`: `Some((len, value_start))`, or `None` when indefinite.
fn read_length(b: &[u8], pos: usize) -> Result<Option<(usize, usize)>, Asn1Error> {
    let first = *b.get(pos).ok_or(Asn1Error::Truncated(pos))?;
    if first < 0x80 {
        return Ok(Some((usize::from(first), pos + 1)));
    }
    if first == 0x80 {
        return Ok(None);
    }
    let n = usize::from(first & 0x7F);
    if n > 4 {
        return Err(Asn1Error::Length(pos));
    }
    let bytes = b
        .get(pos + 1..pos + 1 + n)
        .ok_or(Asn1Error::Truncated(pos + 1))?;
    let len = bytes.iter().fold(0usize, |a, &x| (a << 8) | usize::from(x));
    Ok(Some((len, pos + 1 + n)))
}

/// Exactly one element spanning all of `b` (definite lengths only).
pub fn read_one(b: &[u8]) -> Result<Element<'_>, Asn1Error> {
    if b.len() > MAX_INPUT {
        return Err(Asn1Error::TooLarge(b.len()));
    }
    let (e, end) = read_definite(b, 0)?;
    if end != b.len() {
        return Err(Asn1Error::Unexpected("bytes after the structure"));
    }
    Ok(e)
}

/// Rewrites BER indefinite lengths into definite ones, leaving everything else
/// byte for byte as it was, so that signatures over DER parts still verify.
/// The output is about the input's size: an indefinite header with its
/// end-of-contents takes 4 bytes and the definite header replacing it at most
/// 5, and the input is capped at [`MAX_INPUT`].
pub fn ber_to_der_lengths(b: &[u8]) -> Result<Vec<u8>, Asn1Error> {
    if b.len() > MAX_INPUT {
        return Err(Asn1Error::TooLarge(b.len()));
    }
    // Rewriting nests a buffer per indefinite level; this caps what they may
    // take together, far above what real BER (a few levels) needs.
    let mut budget = b.len().saturating_mul(8).saturating_add(64 << 10);
    let mut out = Vec::with_capacity(b.len());
    let end = convert(b, 0, &mut out, 0, &mut budget)?;
    if end != b.len() {
        return Err(Asn1Error::Unexpected("bytes after the structure"));
    }
    Ok(out)
}

fn charge(budget: &mut usize, n: usize) -> Result<(), Asn1Error> {
    *budget = budget.checked_sub(n).ok_or(Asn1Error::TooLarge(n))?;
    Ok(())
}

/// Whether any element within `value` (a constructed value's content) has an
/// indefinite length; an error where the content is not TLV. Allocates
/// nothing, so DER passes through without a copy per level.
fn has_indefinite(value: &[u8], depth: usize) -> Result<bool, Asn1Error> {
    if depth > MAX_DEPTH {
        return Err(Asn1Error::Depth);
    }
    let mut p = 0;
    while p < value.len() {
        let (tag, len_pos) = read_identifier(value, p)?;
        let Some((len, val_pos)) = read_length(value, len_pos)? else {
            return Ok(true);
        };
        let end = val_pos
            .checked_add(len)
            .ok_or(Asn1Error::Truncated(val_pos))?;
        let child = value
            .get(val_pos..end)
            .ok_or(Asn1Error::Truncated(value.len()))?;
        if tag & 0x20 != 0 && has_indefinite(child, depth + 1)? {
            return Ok(true);
        }
        p = end;
    }
    Ok(false)
}

/// Converts one element at `pos` into `out`; returns the input position after it.
fn convert(
    b: &[u8],
    pos: usize,
    out: &mut Vec<u8>,
    depth: usize,
    budget: &mut usize,
) -> Result<usize, Asn1Error> {
    if depth > MAX_DEPTH {
        return Err(Asn1Error::Depth);
    }
    let (tag, len_pos) = read_identifier(b, pos)?;
    let constructed = tag & 0x20 != 0;
    match read_length(b, len_pos)? {
        Some((len, val_pos)) => {
            let end = val_pos
                .checked_add(len)
                .ok_or(Asn1Error::Truncated(val_pos))?;
            let value = b.get(val_pos..end).ok_or(Asn1Error::Truncated(b.len()))?;
            let raw = b.get(pos..end).ok_or(Asn1Error::Truncated(b.len()))?;
            // Definite all the way down: kept byte for byte (even a
            // non-minimal header), so a signed part stays exactly as signed.
            if !constructed || !has_indefinite(value, depth + 1)? {
                out.extend_from_slice(raw);
                return Ok(end);
            }
            charge(budget, value.len())?;
            let mut inner = Vec::with_capacity(value.len());
            let mut p = val_pos;
            while p < end {
                let bounded = b.get(..end).ok_or(Asn1Error::Truncated(b.len()))?;
                p = convert(bounded, p, &mut inner, depth + 1, budget)?;
            }
            write_header(out, tag, inner.len());
            out.extend_from_slice(&inner);
            Ok(end)
        }
        None => {
            if !constructed {
                return Err(Asn1Error::Length(len_pos));
            }
            // The content runs at most to the end of the input.
            charge(budget, b.len().saturating_sub(len_pos))?;
            let mut inner = vec![];
            let mut p = len_pos + 1;
            loop {
                match b.get(p..p + 2) {
                    Some([0, 0]) => break,
                    Some(_) => p = convert(b, p, &mut inner, depth + 1, budget)?,
                    None => return Err(Asn1Error::Truncated(p)),
                }
            }
            write_header(out, tag, inner.len());
            out.extend_from_slice(&inner);
            Ok(p + 2)
        }
    }
}

/// Appends a DER identifier and definite length.
pub fn write_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&x| x == 0).count();
        let sig = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | sig.len() as u8);
        out.extend_from_slice(sig);
    }
}

/// An object identifier's content octets in dotted form (for messages).
pub fn oid_string(oid: &[u8]) -> String {
    let mut parts: Vec<String> = vec![];
    let mut acc: u128 = 0;
    for (i, &b) in oid.iter().enumerate() {
        acc = (acc << 7) | u128::from(b & 0x7F);
        if acc > u128::from(u64::MAX) {
            return format!("{oid:02x?}");
        }
        if b & 0x80 == 0 {
            if parts.is_empty() {
                let (x, y) = if acc < 80 {
                    (acc / 40, acc % 40)
                } else {
                    (2, acc - 80)
                };
                parts.push(x.to_string());
                parts.push(y.to_string());
            } else {
                parts.push(acc.to_string());
            }
            acc = 0;
        } else if i + 1 == oid.len() {
            return format!("{oid:02x?}");
        }
    }
    parts.join(".")
}

/// Reads an ASN.1 UTCTime or GeneralizedTime into seconds since 1970 (UTC).
/// Only the `Z` forms that certificates and CMS use are accepted.
pub fn time(e: &Element<'_>) -> Result<i64, Asn1Error> {
    let s = e.value;
    let bad = Asn1Error::Unexpected("bad time");
    let digits = |r: std::ops::Range<usize>| -> Result<i64, Asn1Error> {
        let d = s.get(r).ok_or(Asn1Error::Unexpected("bad time"))?;
        if !d.iter().all(u8::is_ascii_digit) {
            return Err(Asn1Error::Unexpected("bad time"));
        }
        Ok(d.iter().fold(0i64, |a, &x| a * 10 + i64::from(x - b'0')))
    };
    let (year, rest) = match e.tag {
        tag::UTC_TIME => {
            let yy = digits(0..2)?;
            // RFC 5280: two-digit years 50..99 are 19xx, 00..49 are 20xx.
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
        }
        tag::GENERALIZED_TIME => (digits(0..4)?, 4),
        _ => return Err(Asn1Error::Unexpected("expected a time")),
    };
    let month = digits(rest..rest + 2)?;
    let day = digits(rest + 2..rest + 4)?;
    let hour = digits(rest + 4..rest + 6)?;
    let min = digits(rest + 6..rest + 8)?;
    let (sec, after) = match s.get(rest + 8) {
        Some(b) if b.is_ascii_digit() => (digits(rest + 8..rest + 10)?, rest + 10),
        _ => (0, rest + 8),
    };
    // Fractions of a second (GeneralizedTime) are dropped.
    let mut z = after;
    if s.get(z) == Some(&b'.') {
        z += 1;
        while s.get(z).is_some_and(u8::is_ascii_digit) {
            z += 1;
        }
    }
    if s.get(z) != Some(&b'Z') || z + 1 != s.len() {
        return Err(bad);
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return Err(bad);
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since 1970 as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_time(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indefinite_lengths_become_definite() {
        // SEQUENCE (indefinite) { INTEGER 5, SEQUENCE (indefinite) { NULL } }
        let ber = [
            0x30, 0x80, 0x02, 0x01, 0x05, 0x30, 0x80, 0x05, 0x00, 0, 0, 0, 0,
        ];
        let der = ber_to_der_lengths(&ber).unwrap();
        assert_eq!(der, [0x30, 0x07, 0x02, 0x01, 0x05, 0x30, 0x02, 0x05, 0x00]);
        // DER passes through unchanged.
        assert_eq!(ber_to_der_lengths(&der).unwrap(), der);
        for bad in [
            &[0x30, 0x80, 0x02, 0x01, 0x05][..],
            &[0x04, 0x80, 0, 0],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF],
        ] {
            assert!(ber_to_der_lengths(bad).is_err(), "{bad:02x?}");
        }
        // Nesting past the cap is an error, not a stack overflow.
        let mut deep = vec![];
        for _ in 0..10_000 {
            deep.extend_from_slice(&[0x30, 0x80]);
        }
        assert!(matches!(
            ber_to_der_lengths(&deep),
            Err(Asn1Error::Depth | Asn1Error::TooLarge(_))
        ));
        // Definite nesting past the cap too.
        let mut nested = vec![0x05, 0x00];
        for _ in 0..40 {
            let mut outer = vec![];
            write_header(&mut outer, 0x30, nested.len());
            outer.extend_from_slice(&nested);
            nested = outer;
        }
        let mut ber = vec![0x30, 0x80];
        ber.extend_from_slice(&nested);
        ber.extend_from_slice(&[0, 0]);
        assert_eq!(ber_to_der_lengths(&ber), Err(Asn1Error::Depth));
    }

    #[test]
    fn times_and_oids_read() {
        let t = Element {
            tag: tag::UTC_TIME,
            value: b"230131080402Z",
            raw: &[],
        };
        assert_eq!(format_time(time(&t).unwrap()), "2023-01-31T08:04:02Z");
        let g = Element {
            tag: tag::GENERALIZED_TIME,
            value: b"20391231235959Z",
            raw: &[],
        };
        assert_eq!(format_time(time(&g).unwrap()), "2039-12-31T23:59:59Z");
        assert_eq!(
            oid_string(&[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x02]),
            "1.2.840.113549.1.7.2"
        );
    }

    proptest::proptest! {
        #[test]
        fn no_bytes_panic(b in proptest::collection::vec(proptest::num::u8::ANY, 0..96)) {
            let _ = ber_to_der_lengths(&b);
            if let Ok(e) = read_one(&b) {
                let mut r = e.children();
                while let Ok(c) = r.next_element() {
                    let _ = c.small_uint();
                    let _ = time(&c);
                    let _ = oid_string(c.value);
                }
            }
        }
    }
}
