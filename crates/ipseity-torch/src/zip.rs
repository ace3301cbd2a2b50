//! The subset of ZIP that `torch.save` writes since PyTorch 1.6: entries
//! stored without compression (PyTorch aligns them for memory mapping), with
//! ZIP64 records when offsets need them. Compressed, encrypted or
//! multi-disk archives are refused. Every offset is checked against the
//! buffer and every entry's CRC-32 against its data.

use crate::TorchError;

/// One stored entry: its name and its bytes inside the archive.
pub(crate) struct Entry<'a> {
    pub name: &'a str,
    pub data: &'a [u8],
}

const EOCD: u32 = 0x0605_4b50;
const EOCD64_LOCATOR: u32 = 0x0706_4b50;
const EOCD64: u32 = 0x0606_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const LOCAL: u32 = 0x0403_4b50;

fn bad(offset: usize, what: &str) -> TorchError {
    TorchError::Malformed {
        offset,
        what: format!("zip: {what}"),
    }
}

fn slice(buf: &[u8], at: usize, n: usize) -> Result<&[u8], TorchError> {
    at.checked_add(n)
        .and_then(|end| buf.get(at..end))
        .ok_or(TorchError::Truncated { offset: at })
}

fn u16_at(buf: &[u8], at: usize) -> Result<u16, TorchError> {
    let s = slice(buf, at, 2)?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(buf: &[u8], at: usize) -> Result<u32, TorchError> {
    let s = slice(buf, at, 4)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(buf: &[u8], at: usize) -> Result<u64, TorchError> {
    let mut a = [0u8; 8];
    a.copy_from_slice(slice(buf, at, 8)?);
    Ok(u64::from_le_bytes(a))
}

fn usize_of(v: u64, at: usize) -> Result<usize, TorchError> {
    usize::try_from(v).map_err(|_| bad(at, "offset beyond the address space"))
}

/// The stored entries of `buf`, in central-directory order.
pub(crate) fn entries(buf: &[u8], max_entries: usize) -> Result<Vec<Entry<'_>>, TorchError> {
    // The end record sits in the last 22 + 65535 (comment) bytes.
    let floor = buf.len().saturating_sub(22 + 0xffff);
    let eocd = (floor..=buf.len().saturating_sub(22))
        .rev()
        .find(|&i| u32_at(buf, i).ok() == Some(EOCD))
        .ok_or_else(|| bad(buf.len(), "no end of central directory record"))?;
    let mut count = u64::from(u16_at(buf, eocd + 10)?);
    let mut cd_offset = u64::from(u32_at(buf, eocd + 16)?);
    if u16_at(buf, eocd + 4)? != 0 || u16_at(buf, eocd + 6)? != 0 {
        return Err(TorchError::Unsupported("multi-disk zip archives".into()));
    }
    if count == 0xffff || cd_offset == 0xffff_ffff {
        // ZIP64: a locator just before the end record points at the 64-bit record.
        let loc = eocd
            .checked_sub(20)
            .ok_or_else(|| bad(eocd, "ZIP64 locator missing"))?;
        if u32_at(buf, loc)? != EOCD64_LOCATOR {
            return Err(bad(loc, "ZIP64 locator missing"));
        }
        let rec = usize_of(u64_at(buf, loc + 8)?, loc)?;
        if u32_at(buf, rec)? != EOCD64 {
            return Err(bad(rec, "ZIP64 end record missing"));
        }
        count = u64_at(buf, rec + 32)?;
        cd_offset = u64_at(buf, rec + 48)?;
    }
    let count = usize_of(count, eocd)?;
    if count > max_entries {
        return Err(TorchError::Limit("zip entries"));
    }
    let mut at = usize_of(cd_offset, eocd)?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        if u32_at(buf, at)? != CENTRAL {
            return Err(bad(at, "bad central directory entry"));
        }
        let flags = u16_at(buf, at + 8)?;
        let method = u16_at(buf, at + 10)?;
        let crc = u32_at(buf, at + 16)?;
        let mut csize = u64::from(u32_at(buf, at + 20)?);
        let mut usize_ = u64::from(u32_at(buf, at + 24)?);
        let name_len = usize::from(u16_at(buf, at + 28)?);
        let extra_len = usize::from(u16_at(buf, at + 30)?);
        let comment_len = usize::from(u16_at(buf, at + 32)?);
        let mut local = u64::from(u32_at(buf, at + 42)?);
        let name = std::str::from_utf8(slice(buf, at + 46, name_len)?)
            .map_err(|_| bad(at, "entry name is not UTF-8"))?;
        // ZIP64 extended information: the 64-bit values of the fields set to all ones, in order.
        let extra = slice(buf, at + 46 + name_len, extra_len)?;
        let mut e = 0;
        while e + 4 <= extra.len() {
            let id = u16_at(extra, e)?;
            let len = usize::from(u16_at(extra, e + 2)?);
            if id == 1 {
                let mut f = e + 4;
                for field in [&mut usize_, &mut csize, &mut local] {
                    if *field == 0xffff_ffff {
                        *field = u64_at(extra, f)?;
                        f += 8;
                    }
                }
            }
            e += 4 + len;
        }
        if flags & 1 != 0 {
            return Err(TorchError::Unsupported("encrypted zip entries".into()));
        }
        if method != 0 || csize != usize_ {
            return Err(TorchError::Unsupported(format!(
                "compressed zip entry {name} (PyTorch stores entries uncompressed)"
            )));
        }
        let local = usize_of(local, at)?;
        if u32_at(buf, local)? != LOCAL {
            return Err(bad(local, "bad local header"));
        }
        let data_at = local
            .checked_add(30)
            .and_then(|v| v.checked_add(usize::from(u16_at(buf, local + 26).ok()?)))
            .and_then(|v| v.checked_add(usize::from(u16_at(buf, local + 28).ok()?)))
            .ok_or_else(|| bad(local, "bad local header"))?;
        let data = slice(buf, data_at, usize_of(csize, at)?)?;
        if crc32fast::hash(data) != crc {
            return Err(bad(data_at, &format!("CRC mismatch in {name}")));
        }
        out.push(Entry { name, data });
        at = at
            .checked_add(46 + name_len + extra_len + comment_len)
            .ok_or_else(|| bad(at, "central directory overflows"))?;
    }
    Ok(out)
}
