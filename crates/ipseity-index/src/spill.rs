//! The sealed spill file: the f32 copies of a shard's rows, which only the
//! exact re-rank reads, kept encrypted in an unlinked temporary file instead
//! of in RAM (see [`crate::exact::RerankRows`]).
//!
//! Templates are biometric data and must never reach a disk in plaintext, so
//! every row is sealed with AES-256-GCM under a key drawn from the OS at
//! creation and held only in this process's memory (zeroised on drop). The
//! file is created already unlinked, so nothing is left behind when the
//! process ends, even by a crash, and what the disk may still hold is
//! ciphertext under a key that no longer exists.
//!
//! Layout: record `r` sits at `r · (24 + 4·dim)` and holds its nonce counter
//! (u64 LE), the ciphertext of the `dim` f32 components (LE) and the 16-byte
//! tag. The counter only grows (a rewritten record takes a fresh one), so no
//! nonce repeats under the key; the associated data binds the record to its
//! position and template id, so a record read from the wrong place fails to
//! open. A failed tag or read is an error, never a wrong score.
//!
//! Records move only by swap-remove (the last record is re-sealed into the
//! hole). Removal cannot fail in the index's API, so if that rewrite fails the
//! file is marked broken and every later read of it is an error: the shard
//! then refuses to answer rather than re-rank against a stale row.

use crate::{IndexError, Result};
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce, Tag};
use rand::RngCore;
use std::fs::File;
use std::io::ErrorKind;
use std::path::Path;
use zeroize::Zeroize;

/// Bytes before the ciphertext (the nonce counter).
const HEAD: usize = 8;
/// GCM tag length.
const TAG: usize = 16;
/// Records read per call when every row is streamed (calibration), and
/// records gathered per write by a bulk insert.
const STREAM_ROWS: usize = 256;

fn io_err(op: &'static str, e: &std::io::Error) -> IndexError {
    IndexError::SpillIo { op, kind: e.kind() }
}

/// Encrypted, position-addressed f32 rows of one shard.
pub(crate) struct SealedRows {
    file: File,
    cipher: Aes256Gcm,
    dim: usize,
    rec: usize,
    /// Rows held, written or pending.
    len: usize,
    /// Rows written to the file; `pending` holds the sealed records of rows
    /// `flushed..len` (a bulk insert gathers them into large writes).
    flushed: usize,
    pending: Vec<u8>,
    next_nonce: u64,
    broken: Option<ErrorKind>,
}

impl std::fmt::Debug for SealedRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedRows")
            .field("dim", &self.dim)
            .field("len", &self.len)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

/// Reusable buffers for reading rows.
pub(crate) struct Scratch {
    bytes: Vec<u8>,
    row: Vec<f32>,
}

impl SealedRows {
    /// An empty spill of `dim`-dimensional rows in `dir` (the OS temporary
    /// directory when `None`), under a fresh key.
    pub(crate) fn create(dir: Option<&Path>, dim: usize) -> Result<Self> {
        let file = match dir {
            Some(d) => tempfile::tempfile_in(d),
            None => tempfile::tempfile(),
        }
        .map_err(|e| io_err("create", &e))?;
        let mut key = Key::<Aes256Gcm>::default();
        rand::rngs::OsRng
            .try_fill_bytes(key.as_mut_slice())
            .map_err(|_| IndexError::SpillIo {
                op: "draw key",
                kind: ErrorKind::Other,
            })?;
        let cipher = Aes256Gcm::new(&key);
        key.as_mut_slice().zeroize();
        let rec = dim
            .checked_mul(4)
            .and_then(|b| b.checked_add(HEAD + TAG))
            .ok_or(IndexError::Capacity)?;
        Ok(SealedRows {
            file,
            cipher,
            dim,
            rec,
            len: 0,
            flushed: 0,
            pending: Vec::new(),
            next_nonce: 0,
            broken: None,
        })
    }

    /// Rows held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes of the file (on disk or in the page cache, not in this process).
    pub(crate) fn file_bytes(&self) -> u64 {
        (self.len as u64).saturating_mul(self.rec as u64)
    }

    /// Buffers for [`SealedRows::read`].
    pub(crate) fn scratch(&self) -> Scratch {
        Scratch {
            bytes: vec![0; self.rec],
            row: vec![0.0; self.dim],
        }
    }

    fn check(&self) -> Result<()> {
        match self.broken {
            Some(kind) => Err(IndexError::SpillIo {
                op: "use a spill broken by an earlier failed write",
                kind,
            }),
            None => Ok(()),
        }
    }

    fn offset(&self, r: usize) -> Result<u64> {
        (r as u64)
            .checked_mul(self.rec as u64)
            .ok_or(IndexError::Capacity)
    }

    fn aad(r: usize, tid: u64) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[..8].copy_from_slice(&(r as u64).to_le_bytes());
        a[8..].copy_from_slice(&tid.to_le_bytes());
        a
    }

    fn nonce(counter: u64) -> Nonce<aes_gcm::aead::consts::U12> {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&counter.to_le_bytes());
        *Nonce::from_slice(&n)
    }

    /// Seals `v` as record `r` of template `tid` into `buf` (one record long).
    fn seal(&mut self, r: usize, tid: u64, v: &[f32], buf: &mut [u8]) -> Result<()> {
        // The counter is spent before anything is written, so a write that
        // fails half-way can never lead to its nonce being used again.
        let counter = self.next_nonce;
        self.next_nonce = counter.checked_add(1).ok_or(IndexError::Capacity)?;
        buf[..HEAD].copy_from_slice(&counter.to_le_bytes());
        let body = &mut buf[HEAD..HEAD + 4 * self.dim];
        for (b, x) in body.chunks_exact_mut(4).zip(v) {
            b.copy_from_slice(&x.to_le_bytes());
        }
        let tag = self
            .cipher
            .encrypt_in_place_detached(&Self::nonce(counter), &Self::aad(r, tid), body)
            .map_err(|_| IndexError::SpillIo {
                op: "seal",
                kind: ErrorKind::Other,
            })?;
        buf[HEAD + 4 * self.dim..].copy_from_slice(&tag);
        Ok(())
    }

    /// Opens record bytes `buf` as record `r` of template `tid` into `out`.
    fn open(&self, r: usize, tid: u64, buf: &mut [u8], out: &mut [f32]) -> Result<()> {
        let mut c = [0u8; HEAD];
        c.copy_from_slice(&buf[..HEAD]);
        let counter = u64::from_le_bytes(c);
        let split = HEAD + 4 * self.dim;
        let (head_body, tag) = buf.split_at_mut(split);
        let tag = Tag::clone_from_slice(tag);
        let body = &mut head_body[HEAD..];
        self.cipher
            .decrypt_in_place_detached(&Self::nonce(counter), &Self::aad(r, tid), body, &tag)
            .map_err(|_| IndexError::SpillCorrupt { row: r })?;
        for (x, b) in out.iter_mut().zip(body.chunks_exact(4)) {
            let mut w = [0u8; 4];
            w.copy_from_slice(b);
            *x = f32::from_le_bytes(w);
        }
        Ok(())
    }

    fn write_at(&mut self, r: usize, tid: u64, v: &[f32]) -> Result<()> {
        let mut buf = vec![0u8; self.rec];
        self.seal(r, tid, v, &mut buf)?;
        let off = self.offset(r)?;
        pwrite(&self.file, &buf, off).map_err(|e| io_err("write", &e))
    }

    /// Appends row `v` of template `tid`. With `gather` the sealed record
    /// may wait in memory for [`SealedRows::flush`] (a bulk insert); rows
    /// cannot be read before that. On error nothing is added.
    pub(crate) fn push(&mut self, tid: u64, v: &[f32], gather: bool) -> Result<()> {
        self.check()?;
        if v.len() != self.dim {
            return Err(IndexError::DimensionMismatch {
                expected: self.dim,
                got: v.len(),
            });
        }
        if !gather {
            self.flush()?;
            self.write_at(self.len, tid, v)?;
            self.len += 1;
            self.flushed = self.len;
            return Ok(());
        }
        let at = self.pending.len();
        self.pending.resize(at + self.rec, 0);
        let mut rec = std::mem::take(&mut self.pending);
        let sealed = self.seal(self.len, tid, v, &mut rec[at..]);
        self.pending = rec;
        if let Err(e) = sealed {
            self.pending.truncate(at);
            return Err(e);
        }
        self.len += 1;
        if self.pending.len() >= STREAM_ROWS * self.rec {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the gathered records. On error they stay pending (and
    /// unreadable); the caller undoes the insert with [`SealedRows::truncate`].
    pub(crate) fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let off = self.offset(self.flushed)?;
        pwrite(&self.file, &self.pending, off).map_err(|e| io_err("write", &e))?;
        self.pending.clear();
        self.flushed = self.len;
        Ok(())
    }

    /// Reads, authenticates and decrypts row `r` (template `tid`); the row is
    /// left in `s` and returned.
    pub(crate) fn read<'s>(&self, r: usize, tid: u64, s: &'s mut Scratch) -> Result<&'s [f32]> {
        self.check()?;
        if r >= self.flushed {
            return Err(IndexError::SpillCorrupt { row: r });
        }
        let off = self.offset(r)?;
        pread(&self.file, &mut s.bytes, off).map_err(|e| io_err("read", &e))?;
        self.open(r, tid, &mut s.bytes, &mut s.row)?;
        Ok(&s.row)
    }

    /// Calls `f(r, row)` for every row in order, reading many records per call;
    /// `tids[r]` is row `r`'s template id.
    pub(crate) fn for_each(&self, tids: &[u64], mut f: impl FnMut(usize, &[f32])) -> Result<()> {
        self.check()?;
        let n = self.flushed.min(tids.len());
        let mut bytes = vec![0u8; self.rec * STREAM_ROWS.min(n.max(1))];
        let mut row = vec![0f32; self.dim];
        let mut r0 = 0;
        while r0 < n {
            let m = STREAM_ROWS.min(n - r0);
            let chunk = &mut bytes[..m * self.rec];
            pread(&self.file, chunk, self.offset(r0)?).map_err(|e| io_err("read", &e))?;
            for (i, rec) in chunk.chunks_exact_mut(self.rec).enumerate() {
                self.open(r0 + i, tids[r0 + i], rec, &mut row)?;
                f(r0 + i, &row);
            }
            r0 += m;
        }
        Ok(())
    }

    /// Drops the last row after moving it into `r` (template id `tid_last`),
    /// mirroring the shard's swap-remove. A failure marks the spill broken.
    pub(crate) fn swap_remove(&mut self, r: usize, tid_last: u64) {
        if self.broken.is_some() || self.len == 0 {
            return;
        }
        if let Err(e) = self.flush() {
            self.broken = Some(match e {
                IndexError::SpillIo { kind, .. } => kind,
                _ => ErrorKind::InvalidData,
            });
            return;
        }
        let last = self.len - 1;
        if r != last {
            let mut s = self.scratch();
            let moved = match self.read(last, tid_last, &mut s) {
                Ok(row) => {
                    let row = row.to_vec();
                    self.write_at(r, tid_last, &row)
                }
                Err(e) => Err(e),
            };
            if let Err(e) = moved {
                self.broken = Some(match e {
                    IndexError::SpillIo { kind, .. } => kind,
                    _ => ErrorKind::InvalidData,
                });
                return;
            }
        }
        self.len = last;
        self.flushed = last;
        // Shrinking is only housekeeping: a stale tail is ciphertext that the
        // next push overwrites under a fresh nonce.
        let _ = self.file.set_len(self.file_bytes());
    }

    /// Drops every row from `len` on (rolling back an unfinished bulk insert).
    pub(crate) fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        if len >= self.flushed {
            self.pending.truncate((len - self.flushed) * self.rec);
        } else {
            self.pending.clear();
            self.flushed = len;
            let _ = self
                .file
                .set_len((len as u64).saturating_mul(self.rec as u64));
        }
        self.len = len;
    }

    /// Test hook: overwrites one byte of the file, as a faulty disk would.
    #[cfg(test)]
    pub(crate) fn corrupt(&self, offset: u64) -> std::io::Result<()> {
        let mut b = [0u8; 1];
        pread(&self.file, &mut b, offset)?;
        b[0] ^= 0x5a;
        pwrite(&self.file, &b, offset)
    }
}

#[cfg(unix)]
fn pread(f: &File, buf: &mut [u8], off: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, buf, off)
}

#[cfg(unix)]
fn pwrite(f: &File, buf: &[u8], off: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, buf, off)
}

#[cfg(windows)]
fn pread(f: &File, mut buf: &mut [u8], mut off: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match f.seek_read(buf, off)? {
            0 => return Err(ErrorKind::UnexpectedEof.into()),
            k => {
                buf = &mut buf[k..];
                off += k as u64;
            }
        }
    }
    Ok(())
}

#[cfg(windows)]
fn pwrite(f: &File, mut buf: &[u8], mut off: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match f.seek_write(buf, off)? {
            0 => return Err(ErrorKind::WriteZero.into()),
            k => {
                buf = &buf[k..];
                off += k as u64;
            }
        }
    }
    Ok(())
}

#[cfg(not(any(unix, windows)))]
fn pread(_: &File, _: &mut [u8], _: u64) -> std::io::Result<()> {
    Err(ErrorKind::Unsupported.into())
}

#[cfg(not(any(unix, windows)))]
fn pwrite(_: &File, _: &[u8], _: u64) -> std::io::Result<()> {
    Err(ErrorKind::Unsupported.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: usize, dim: usize) -> Vec<f32> {
        (0..dim).map(|d| (i * 31 + d) as f32 * 0.25 - 3.0).collect()
    }

    #[test]
    fn round_trip_swap_remove_and_no_plaintext_on_disk() {
        let dim = 5;
        let mut s = SealedRows::create(None, dim).unwrap();
        for i in 0..10 {
            s.push(100 + i as u64, &row(i, dim), i % 3 == 0).unwrap();
        }
        assert_eq!(s.file_bytes(), 10 * (24 + 20));
        let mut sc = s.scratch();
        // Row 9 was gathered and is not readable before the flush.
        assert!(s.read(9, 109, &mut sc).is_err());
        s.flush().unwrap();
        for i in 0..10 {
            assert_eq!(
                s.read(i, 100 + i as u64, &mut sc).unwrap(),
                &row(i, dim)[..]
            );
        }
        // The plaintext of a row appears nowhere in the file.
        let mut all = vec![0u8; s.file_bytes() as usize];
        pread(&s.file, &mut all, 0).unwrap();
        let plain: Vec<u8> = row(3, dim).iter().flat_map(|x| x.to_le_bytes()).collect();
        assert!(!all.windows(plain.len()).any(|w| w == plain.as_slice()));

        s.swap_remove(2, 109);
        assert_eq!(s.len(), 9);
        assert_eq!(s.read(2, 109, &mut sc).unwrap(), &row(9, dim)[..]);
        // The moved record is bound to its new position and its template id.
        assert!(matches!(
            s.read(2, 102, &mut sc),
            Err(IndexError::SpillCorrupt { row: 2 })
        ));
        assert!(s.read(9, 109, &mut sc).is_err());
        let mut seen = Vec::new();
        let tids: Vec<u64> = [100, 101, 109, 103, 104, 105, 106, 107, 108].to_vec();
        s.for_each(&tids, |r, v| seen.push((r, v.to_vec())))
            .unwrap();
        assert_eq!(seen.len(), 9);
        assert_eq!(seen[2].1, row(9, dim));
        assert_eq!(seen[8].1, row(8, dim));
    }

    #[test]
    fn a_truncated_bulk_insert_leaves_no_row() {
        let dim = 3;
        let mut s = SealedRows::create(None, dim).unwrap();
        s.push(0, &row(0, dim), false).unwrap();
        for i in 1..6 {
            s.push(i, &row(i as usize, dim), true).unwrap();
        }
        s.truncate(4);
        s.flush().unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s.file_bytes(), 4 * (24 + 12));
        let mut sc = s.scratch();
        assert_eq!(s.read(3, 3, &mut sc).unwrap(), &row(3, dim)[..]);
        assert!(s.read(4, 4, &mut sc).is_err());
        s.truncate(1);
        s.push(9, &row(9, dim), false).unwrap();
        assert_eq!(s.read(1, 9, &mut sc).unwrap(), &row(9, dim)[..]);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn a_flipped_byte_is_an_error_not_a_value() {
        let dim = 4;
        let mut s = SealedRows::create(None, dim).unwrap();
        s.push(7, &row(0, dim), false).unwrap();
        s.push(8, &row(1, dim), false).unwrap();
        let mut sc = s.scratch();
        // A byte of row 1's ciphertext, then a byte of row 0's nonce counter.
        s.corrupt((24 + 16) as u64 + 8 + 3).unwrap();
        assert_eq!(
            s.read(1, 8, &mut sc).unwrap_err(),
            IndexError::SpillCorrupt { row: 1 }
        );
        assert_eq!(s.read(0, 7, &mut sc).unwrap(), &row(0, dim)[..]);
        s.corrupt(2).unwrap();
        assert!(s.read(0, 7, &mut sc).is_err());
        assert!(s.for_each(&[7, 8], |_, _| {}).is_err());
    }

    #[test]
    fn a_missing_directory_is_a_typed_error() {
        let e = SealedRows::create(Some(Path::new("/nonexistent/ipseity-spill")), 4).unwrap_err();
        assert!(matches!(e, IndexError::SpillIo { op: "create", .. }));
    }
}
