//! A bounded BER-TLV reader for the LDS's data groups (ICAO 9303 part 10):
//! tags of one to three bytes, definite lengths of up to four bytes. Every
//! length is checked against the bytes that remain before anything is sliced,
//! so malformed input is an error and never a panic or a large allocation.

/// Why bytes are not well-formed TLV.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlvError {
    /// The input ends inside a tag, a length or a value.
    #[error("truncated at byte {0}")]
    Truncated(usize),
    /// A length form the LDS does not use (indefinite, or more than 4 bytes).
    #[error("unsupported length encoding at byte {0}")]
    Length(usize),
    /// A tag longer than three bytes.
    #[error("tag too long at byte {0}")]
    Tag(usize),
}

/// One TLV object: its tag (bytes as an integer, e.g. `0x5F1F`) and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The tag, its bytes big-endian.
    pub tag: u32,
    /// The value bytes.
    pub value: &'a [u8],
}

/// Reads a tag at `pos`; returns it and the position after it.
pub fn read_tag(b: &[u8], pos: usize) -> Result<(u32, usize), TlvError> {
    let first = *b.get(pos).ok_or(TlvError::Truncated(pos))?;
    let mut tag = u32::from(first);
    let mut p = pos + 1;
    if first & 0x1F == 0x1F {
        loop {
            let next = *b.get(p).ok_or(TlvError::Truncated(p))?;
            if p - pos >= 3 {
                return Err(TlvError::Tag(pos));
            }
            tag = (tag << 8) | u32::from(next);
            p += 1;
            if next & 0x80 == 0 {
                break;
            }
        }
    }
    Ok((tag, p))
}

/// Reads one object at `pos`; returns it and the position after it.
pub fn read(b: &[u8], pos: usize) -> Result<(Tlv<'_>, usize), TlvError> {
    let (tag, mut p) = read_tag(b, pos)?;
    let first = *b.get(p).ok_or(TlvError::Truncated(p))?;
    p += 1;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 {
            return Err(TlvError::Length(p - 1));
        }
        let bytes = b.get(p..p + n).ok_or(TlvError::Truncated(p))?;
        p += n;
        bytes.iter().fold(0usize, |a, &x| (a << 8) | usize::from(x))
    };
    let end = p.checked_add(len).ok_or(TlvError::Truncated(p))?;
    let value = b.get(p..end).ok_or(TlvError::Truncated(b.len()))?;
    Ok((Tlv { tag, value }, end))
}

/// Every object in `b`, in order; an error if any is malformed or bytes remain.
pub fn read_all(b: &[u8]) -> Result<Vec<Tlv<'_>>, TlvError> {
    let mut out = vec![];
    let mut p = 0;
    while p < b.len() {
        let (t, next) = read(b, p)?;
        out.push(t);
        p = next;
    }
    Ok(out)
}

/// Reads exactly one object spanning all of `b`.
pub fn read_one(b: &[u8]) -> Result<Tlv<'_>, TlvError> {
    let (t, end) = read(b, 0)?;
    if end != b.len() {
        return Err(TlvError::Truncated(end));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_long_and_multi_byte_forms() {
        assert_eq!(
            read_one(&[0x61, 0x01, 0xAA]).unwrap(),
            Tlv {
                tag: 0x61,
                value: &[0xAA]
            }
        );
        let long = [0x5F, 0x1F, 0x81, 0x02, 1, 2];
        assert_eq!(
            read_one(&long).unwrap(),
            Tlv {
                tag: 0x5F1F,
                value: &[1, 2]
            }
        );
        let tags = [0x5C, 0x02, 0x61, 0x75, 0x7F, 0x61, 0x00];
        let all = read_all(&tags).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].tag, 0x7F61);
    }

    #[test]
    fn malformed_input_is_an_error() {
        for bad in [
            &[0x02, 0x10, 0x12, 0x34][..],
            &[0x6D],
            &[0x6D, 0x02, 0x5F],
            &[0x61, 0x80, 0x00, 0x00],
            &[0x61, 0x85, 1, 1, 1, 1, 1],
            &[0x61, 0x84, 0xFF, 0xFF, 0xFF, 0xFF],
            &[0x5F, 0xFF, 0xFF, 0xFF, 0x01, 0x00],
            &[0x5F],
        ] {
            assert!(read_one(bad).is_err(), "{bad:02x?}");
        }
        assert!(read_one(&[0x61, 0x00, 0x00]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn no_bytes_panic(b in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = read_all(&b);
            let _ = read_one(&b);
        }
    }
}
