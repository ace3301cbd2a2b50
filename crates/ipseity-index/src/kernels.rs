//! Dot-product kernels: SIMD with runtime CPU-feature dispatch, and the scalar
//! twins the tests compare them against.
//!
//! Three kernels serve the scan and the re-rank:
//! - [`dot_f32`]: f32 · f32 (re-rank, and the scan of [`crate::Storage::F32`]);
//! - [`dot_f16`]: f16 · f32 (the scan of [`crate::Storage::F16`]);
//! - [`i8_scores`]: a block of 16 int8 rows against several int8 queries (the
//!   scan of [`crate::Storage::Int8`]).
//!
//! The int8 gallery is held *packed*: rows come in blocks of [`BLOCK`] = 16,
//! and a block stores its rows four dimensions at a time: group `j` is 64
//! bytes, row `r`'s bytes `4j..4j+4` at offset `64j + 4r`. One 512-bit VNNI
//! `vpdpbusd` then adds four products into each of the 16 rows' accumulators,
//! with no horizontal reduction. Gallery bytes are stored offset by +128 as
//! `u8` (the unsigned operand of `vpdpbusd`); the kernels return the raw sum
//! `Σ g_u8 · q_i8` and the caller subtracts `128 · Σ q`, a per-query constant.
//!
//! Floating-point kernels sum in a different order from their scalar twins, so
//! they agree to rounding, not bit for bit; the int8 kernels agree exactly.
//! Every caller that needs reproducible scores (the re-rank and the reference
//! brute force in the tests) uses the same dispatched kernel. What the exact
//! index relies on is order-free: every f32/f16 kernel rounds each product
//! (or fuses it) and each addition once in f32, so it stays within
//! `γ_n · Σ|a_i b_i|`, `γ_n = n·u / (1 − n·u)`, of the exact dot product (the
//! tests check this bound, not just agreement with the twin), and the f16
//! kernels widen to f32 exactly.
//!
//! On AArch64, [`Level::Neon`] covers all three kernels with Armv8.0 NEON;
//! [`Level::NeonDotprod`] replaces the int8 kernel by one built on `SDOT`.
//! Both int8 kernels flip the gallery bytes back to signed and add
//! `128 · Σ q` at the end, so they return the same raw sums as the others.
//! `tools/test-aarch64.sh` runs these tests under qemu (docs/PORTABILITY.md).

use half::f16;
use std::sync::OnceLock;

/// Rows per packed int8 block.
pub const BLOCK: usize = 16;

/// A kernel family the CPU can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Level {
    /// Plain Rust; runs everywhere.
    Scalar,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// x86-64 AVX-512 F/BW with VNNI (int8 dot products), plus AVX2 + F16C.
    Avx512Vnni,
    /// AArch64 NEON (Armv8.0): all three kernels, int8 by widening
    /// multiplies.
    Neon,
    /// AArch64 NEON with the dot-product extension (`SDOT` for int8).
    NeonDotprod,
}

/// The best level this CPU supports, detected once.
pub fn detected() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| available().last().copied().unwrap_or(Level::Scalar))
}

/// Every level this CPU supports, worst first (always starts with `Scalar`).
pub fn available() -> &'static [Level] {
    static LEVELS: OnceLock<Vec<Level>> = OnceLock::new();
    LEVELS.get_or_init(|| {
        #[allow(unused_mut)]
        let mut v = vec![Level::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c");
            if avx2 {
                v.push(Level::Avx2);
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
                {
                    v.push(Level::Avx512Vnni);
                }
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("neon") {
                v.push(Level::Neon);
                if std::arch::is_aarch64_feature_detected!("dotprod") {
                    v.push(Level::NeonDotprod);
                }
            }
        }
        v
    })
}

/// `Σ a[i]·b[i]` with the best kernel of this CPU.
///
/// # Panics
/// If the slices differ in length.
#[inline]
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    dot_f32_at(detected(), a, b)
}

/// `Σ a[i]·b[i]` with a chosen kernel level; a level the CPU lacks falls back
/// to the scalar twin.
///
/// # Panics
/// If the slices differ in length.
pub fn dot_f32_at(level: Level, a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot_f32: length mismatch");
    #[cfg(target_arch = "x86_64")]
    {
        if level == Level::Avx512Vnni && has(Level::Avx512Vnni) {
            // SAFETY: the CPU supports AVX-512F (checked by `has`); the
            // slices have equal length (asserted above).
            return unsafe { x86::dot_f32_avx512(a, b) };
        }
        if matches!(level, Level::Avx2 | Level::Avx512Vnni) && has(Level::Avx2) {
            // SAFETY: the CPU supports AVX2 and FMA (checked by `has`); the
            // slices have equal length (asserted above).
            return unsafe { x86::dot_f32_avx2(a, b) };
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if matches!(level, Level::Neon | Level::NeonDotprod) && has(Level::Neon) {
            // SAFETY: the CPU supports NEON (checked by `has`); the slices have
            // equal length (asserted above).
            return unsafe { neon::dot_f32_neon(a, b) };
        }
    }
    let _ = level;
    dot_f32_scalar(a, b)
}

/// Scalar twin of [`dot_f32`]: a plain left-to-right sum.
pub fn dot_f32_scalar(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `Σ a[i]·b[i]` for an f16 row against an f32 query, summed in f32.
///
/// # Panics
/// If the slices differ in length.
#[inline]
pub fn dot_f16(a: &[f16], b: &[f32]) -> f32 {
    dot_f16_at(detected(), a, b)
}

/// [`dot_f16`] with a chosen kernel level.
///
/// # Panics
/// If the slices differ in length.
pub fn dot_f16_at(level: Level, a: &[f16], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot_f16: length mismatch");
    #[cfg(target_arch = "x86_64")]
    {
        if matches!(level, Level::Avx2 | Level::Avx512Vnni) && has(Level::Avx2) {
            // SAFETY: the CPU supports AVX2, FMA and F16C (checked by `has`);
            // the slices have equal length (asserted above).
            return unsafe { x86::dot_f16_avx2(a, b) };
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if matches!(level, Level::Neon | Level::NeonDotprod) && has(Level::Neon) {
            // SAFETY: the CPU supports NEON (checked by `has`); the slices have
            // equal length (asserted above).
            return unsafe { neon::dot_f16_neon(a, b) };
        }
    }
    let _ = level;
    dot_f16_scalar(a, b)
}

/// Scalar twin of [`dot_f16`].
pub fn dot_f16_scalar(a: &[f16], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x.to_f32() * y).sum()
}

/// Raw int8 scores of packed blocks against several queries.
///
/// - `blocks`: `nblocks` packed blocks, each `groups * 64` bytes (see the
///   module docs); `groups = padded_dim / 4`.
/// - `queries`: `nq` queries of `groups * 4` signed bytes each, one after
///   the other.
/// - `out`: `nq * nblocks * 16` sums; query `q`, block `b`, row `r` lands at
///   `out[q * nblocks * 16 + b * 16 + r]` and equals `Σ_d g_u8[d] · q_i8[d]`.
///
/// # Panics
/// If a slice length disagrees with `groups`, `nblocks` and `nq`.
#[inline]
pub fn i8_scores(blocks: &[u8], groups: usize, queries: &[i8], out: &mut [i32]) {
    i8_scores_at(detected(), blocks, groups, queries, out)
}

/// [`i8_scores`] with a chosen kernel level.
///
/// # Panics
/// As [`i8_scores`].
pub fn i8_scores_at(level: Level, blocks: &[u8], groups: usize, queries: &[i8], out: &mut [i32]) {
    let bb = groups * 64;
    assert!(groups > 0, "i8_scores: zero groups");
    assert_eq!(blocks.len() % bb, 0, "i8_scores: ragged blocks");
    assert_eq!(queries.len() % (groups * 4), 0, "i8_scores: ragged queries");
    let nblocks = blocks.len() / bb;
    let nq = queries.len() / (groups * 4);
    assert_eq!(out.len(), nq * nblocks * BLOCK, "i8_scores: output size");
    #[cfg(target_arch = "x86_64")]
    {
        if level == Level::Avx512Vnni && has(Level::Avx512Vnni) {
            // SAFETY: the CPU supports AVX-512F/BW/VNNI (checked by `has`);
            // the slice lengths were checked against groups, nblocks and nq
            // above, which is all the kernel relies on.
            unsafe { x86::i8_scores_vnni(blocks, groups, nblocks, queries, nq, out) };
            return;
        }
        if matches!(level, Level::Avx2 | Level::Avx512Vnni) && has(Level::Avx2) {
            // SAFETY: the CPU supports AVX2 (checked by `has`); slice lengths
            // checked above.
            unsafe { x86::i8_scores_avx2(blocks, groups, nblocks, queries, nq, out) };
            return;
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if level == Level::NeonDotprod && has(Level::NeonDotprod) {
            // SAFETY: the CPU supports NEON and dotprod (checked by `has`);
            // slice lengths checked above.
            unsafe { neon::i8_scores_neon_dot(blocks, groups, nblocks, queries, nq, out) };
            return;
        }
        if matches!(level, Level::Neon | Level::NeonDotprod) && has(Level::Neon) {
            // SAFETY: the CPU supports NEON (checked by `has`); slice lengths
            // checked above.
            unsafe { neon::i8_scores_neon(blocks, groups, nblocks, queries, nq, out) };
            return;
        }
    }
    let _ = level;
    i8_scores_scalar(blocks, groups, queries, out)
}

/// Queries scored together by [`i8_block8`].
pub const QGROUP: usize = 8;

/// Scores one packed block (16 rows) against [`QGROUP`] queries, as
/// [`i8_scores`] with one block. `rows[q]` gets a bit per row that reaches
/// `cuts[q]` (bit `r` for row `r`), and the result a bit per query whose
/// `rows[q]` is not zero.
///
/// A batch scan calls this per block so that it decides, inside the kernel's
/// registers, which (query, block) pairs need a look; the scores of the rest
/// are never read back (for a deep gallery almost all of them).
///
/// # Panics
/// If `block.len() != groups * 64` or `queries.len() != 8 * groups * 4`.
#[inline]
pub fn i8_block8(
    block: &[u8],
    groups: usize,
    queries: &[i8],
    cuts: &[i32; QGROUP],
    out: &mut [i32; QGROUP * BLOCK],
    rows: &mut [u16; QGROUP],
) -> u8 {
    i8_block8_at(detected(), block, groups, queries, cuts, out, rows)
}

/// [`i8_block8`] with a chosen kernel level.
///
/// # Panics
/// As [`i8_block8`].
pub fn i8_block8_at(
    level: Level,
    block: &[u8],
    groups: usize,
    queries: &[i8],
    cuts: &[i32; QGROUP],
    out: &mut [i32; QGROUP * BLOCK],
    rows: &mut [u16; QGROUP],
) -> u8 {
    assert!(groups > 0, "i8_block8: zero groups");
    assert_eq!(block.len(), groups * 64, "i8_block8: block size");
    assert_eq!(queries.len(), QGROUP * groups * 4, "i8_block8: queries");
    #[cfg(target_arch = "x86_64")]
    {
        if level == Level::Avx512Vnni && has(Level::Avx512Vnni) {
            // SAFETY: the CPU supports AVX-512F/BW/VNNI (checked by `has`);
            // the block and query lengths were checked above.
            return unsafe {
                x86::block8_vnni(block.as_ptr(), groups, queries.as_ptr(), cuts, out, rows)
            };
        }
    }
    i8_scores_at(level, block, groups, queries, out);
    reach_masks(out, cuts, rows)
}

/// The row and query masks of [`i8_block8`] from the scores in `out`.
fn reach_masks(out: &[i32; QGROUP * BLOCK], cuts: &[i32; QGROUP], rows: &mut [u16; QGROUP]) -> u8 {
    let mut mask = 0u8;
    for (q, ((scores, &cut), m)) in out.chunks_exact(BLOCK).zip(cuts).zip(rows).enumerate() {
        *m = 0;
        for (r, &v) in scores.iter().enumerate() {
            *m |= u16::from(v >= cut) << r;
        }
        mask |= u8::from(*m != 0) << q;
    }
    mask
}

/// Scalar twin of [`i8_scores`].
pub fn i8_scores_scalar(blocks: &[u8], groups: usize, queries: &[i8], out: &mut [i32]) {
    let bb = groups * 64;
    let nblocks = blocks.len() / bb;
    let dp = groups * 4;
    for (qi, q) in queries.chunks_exact(dp).enumerate() {
        for b in 0..nblocks {
            let blk = &blocks[b * bb..(b + 1) * bb];
            for r in 0..BLOCK {
                let mut acc = 0i32;
                for j in 0..groups {
                    for t in 0..4 {
                        acc += blk[j * 64 + r * 4 + t] as i32 * q[j * 4 + t] as i32;
                    }
                }
                out[qi * nblocks * BLOCK + b * BLOCK + r] = acc;
            }
        }
    }
}

/// Writes row `row` (already quantised, `groups * 4` signed values) into its
/// slot of a packed block buffer, offsetting by +128.
pub fn pack_row(blocks: &mut [u8], groups: usize, row: usize, values: &[i8]) {
    let bb = groups * 64;
    let base = (row / BLOCK) * bb;
    let r = row % BLOCK;
    for j in 0..groups {
        for t in 0..4 {
            blocks[base + j * 64 + r * 4 + t] = (values[j * 4 + t] as i16 + 128) as u8;
        }
    }
}

/// Copies packed row `from` over packed row `to` (used by swap-remove).
pub fn move_row(blocks: &mut [u8], groups: usize, from: usize, to: usize) {
    let bb = groups * 64;
    let (fb, fr) = ((from / BLOCK) * bb, from % BLOCK);
    let (tb, tr) = ((to / BLOCK) * bb, to % BLOCK);
    for j in 0..groups {
        for t in 0..4 {
            blocks[tb + j * 64 + tr * 4 + t] = blocks[fb + j * 64 + fr * 4 + t];
        }
    }
}

#[allow(dead_code)]
fn has(level: Level) -> bool {
    available().contains(&level)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::BLOCK;
    use half::f16;
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must support AVX2 and FMA; `a.len() == b.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_f32_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for u in 0..4 {
                // SAFETY: i + 8u + 8 <= n, within both slices.
                let (x, y) = unsafe {
                    (
                        _mm256_loadu_ps(pa.add(i + 8 * u)),
                        _mm256_loadu_ps(pb.add(i + 8 * u)),
                    )
                };
                acc[u] = _mm256_fmadd_ps(x, y, acc[u]);
            }
            i += 32;
        }
        while i + 8 <= n {
            // SAFETY: i + 8 <= n, within both slices.
            let (x, y) = unsafe { (_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i))) };
            acc[0] = _mm256_fmadd_ps(x, y, acc[0]);
            i += 8;
        }
        let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` holds 8 f32.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), s) };
        let mut sum: f32 = lanes.iter().sum();
        while i < n {
            sum += a[i] * b[i];
            i += 1;
        }
        sum
    }

    /// # Safety
    /// The CPU must support AVX-512F; `a.len() == b.len()`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_f32_avx512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm512_setzero_ps();
        let mut acc1 = _mm512_setzero_ps();
        let mut i = 0;
        while i + 32 <= n {
            // SAFETY: i + 32 <= n, within both slices.
            unsafe {
                acc0 =
                    _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc0);
                acc1 = _mm512_fmadd_ps(
                    _mm512_loadu_ps(pa.add(i + 16)),
                    _mm512_loadu_ps(pb.add(i + 16)),
                    acc1,
                );
            }
            i += 32;
        }
        if i + 16 <= n {
            // SAFETY: i + 16 <= n, within both slices.
            unsafe {
                acc0 =
                    _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc0);
            }
            i += 16;
        }
        let mut sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
        while i < n {
            sum += a[i] * b[i];
            i += 1;
        }
        sum
    }

    /// # Safety
    /// The CPU must support AVX2, FMA and F16C; `a.len() == b.len()`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f16_avx2(a: &[f16], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr() as *const u16, b.as_ptr());
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut i = 0;
        while i + 16 <= n {
            // SAFETY: i + 16 <= n; f16 is a 2-byte plain value, so 8 of them
            // are 16 readable bytes.
            unsafe {
                let h0 = _mm256_cvtph_ps(_mm_loadu_si128(pa.add(i) as *const __m128i));
                let h1 = _mm256_cvtph_ps(_mm_loadu_si128(pa.add(i + 8) as *const __m128i));
                acc0 = _mm256_fmadd_ps(h0, _mm256_loadu_ps(pb.add(i)), acc0);
                acc1 = _mm256_fmadd_ps(h1, _mm256_loadu_ps(pb.add(i + 8)), acc1);
            }
            i += 16;
        }
        let s = _mm256_add_ps(acc0, acc1);
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` holds 8 f32.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), s) };
        let mut sum: f32 = lanes.iter().sum();
        while i < n {
            sum += a[i].to_f32() * b[i];
            i += 1;
        }
        sum
    }

    /// VNNI micro-kernel: `NB` blocks against `NQ` queries.
    ///
    /// # Safety
    /// The CPU must support AVX-512F/BW/VNNI; `blocks` points at `NB` packed
    /// blocks of `groups * 64` bytes, `q` at `NQ` queries of `groups * 4`
    /// bytes spaced `qstride` bytes apart, and `out` at `NQ` rows of at least
    /// `NB * 16` i32 spaced `ostride` apart.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn kern_vnni<const NB: usize, const NQ: usize>(
        blocks: *const u8,
        groups: usize,
        q: *const i8,
        qstride: usize,
        out: *mut i32,
        ostride: usize,
    ) {
        // SAFETY: the caller's contract is this function's.
        let acc = unsafe { sums_vnni::<NB, NQ>(blocks, groups, q, qstride) };
        for qi in 0..NQ {
            for b in 0..NB {
                // SAFETY: out row qi has room for NB * 16 i32 from this offset.
                unsafe {
                    _mm512_storeu_si512(out.add(qi * ostride + b * 16) as *mut _, acc[b][qi])
                };
            }
        }
    }

    /// One block against 8 queries, the scores stored to `out` and compared
    /// with `cuts` in registers (see [`super::i8_block8`]).
    ///
    /// # Safety
    /// The CPU must support AVX-512F/BW/VNNI; `block` points at one packed
    /// block of `groups * 64` bytes and `q` at 8 queries of `groups * 4`
    /// bytes, one after the other.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn block8_vnni(
        block: *const u8,
        groups: usize,
        q: *const i8,
        cuts: &[i32; 8],
        out: &mut [i32; 128],
        rows: &mut [u16; 8],
    ) -> u8 {
        // SAFETY: the caller's contract is this function's.
        let [acc] = unsafe { sums_vnni::<1, 8>(block, groups, q, groups * 4) };
        let mut mask = 0u8;
        for (qi, ((a, &cut), m)) in acc.iter().zip(cuts).zip(rows).enumerate() {
            // SAFETY: out holds 8 rows of 16 i32; row qi starts at qi * 16.
            unsafe { _mm512_storeu_si512(out.as_mut_ptr().add(qi * 16) as *mut _, *a) };
            *m = _mm512_cmpge_epi32_mask(*a, _mm512_set1_epi32(cut));
            mask |= u8::from(*m != 0) << qi;
        }
        mask
    }

    /// The VNNI sums of `NB` blocks against `NQ` queries, in registers.
    ///
    /// # Safety
    /// As [`kern_vnni`], less `out`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    unsafe fn sums_vnni<const NB: usize, const NQ: usize>(
        blocks: *const u8,
        groups: usize,
        q: *const i8,
        qstride: usize,
    ) -> [[__m512i; NQ]; NB] {
        let bb = groups * 64;
        let mut acc = [[_mm512_setzero_si512(); NQ]; NB];
        for j in 0..groups {
            let mut g = [_mm512_setzero_si512(); NB];
            for b in 0..NB {
                // SAFETY: block b, group j lies inside the NB blocks.
                g[b] = unsafe { _mm512_loadu_si512(blocks.add(b * bb + j * 64) as *const _) };
            }
            for qi in 0..NQ {
                // SAFETY: bytes 4j..4j+4 of query qi lie inside it.
                let word = unsafe { (q.add(qi * qstride + 4 * j) as *const i32).read_unaligned() };
                let qv = _mm512_set1_epi32(word);
                for b in 0..NB {
                    acc[b][qi] = _mm512_dpbusd_epi32(acc[b][qi], g[b], qv);
                }
            }
        }
        acc
    }

    /// # Safety
    /// The CPU must support AVX-512F/BW/VNNI; `blocks.len() == nblocks *
    /// groups * 64`, `queries.len() == nq * groups * 4`, `out.len() == nq *
    /// nblocks * 16`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn i8_scores_vnni(
        blocks: &[u8],
        groups: usize,
        nblocks: usize,
        queries: &[i8],
        nq: usize,
        out: &mut [i32],
    ) {
        let bb = groups * 64;
        let dp = groups * 4;
        let ostride = nblocks * BLOCK;
        let (pb, pq, po) = (blocks.as_ptr(), queries.as_ptr(), out.as_mut_ptr());
        // SAFETY: (all calls below) every (block, query) pair addressed is
        // inside the slices, whose sizes the caller guarantees.
        unsafe {
            let mut q0 = 0;
            while q0 + 8 <= nq {
                for b in 0..nblocks {
                    kern_vnni::<1, 8>(
                        pb.add(b * bb),
                        groups,
                        pq.add(q0 * dp),
                        dp,
                        po.add(q0 * ostride + b * 16),
                        ostride,
                    );
                }
                q0 += 8;
            }
            while q0 + 4 <= nq {
                for b in 0..nblocks {
                    kern_vnni::<1, 4>(
                        pb.add(b * bb),
                        groups,
                        pq.add(q0 * dp),
                        dp,
                        po.add(q0 * ostride + b * 16),
                        ostride,
                    );
                }
                q0 += 4;
            }
            while q0 < nq {
                let mut b = 0;
                while b + 4 <= nblocks {
                    kern_vnni::<4, 1>(
                        pb.add(b * bb),
                        groups,
                        pq.add(q0 * dp),
                        dp,
                        po.add(q0 * ostride + b * 16),
                        ostride,
                    );
                    b += 4;
                }
                while b < nblocks {
                    kern_vnni::<1, 1>(
                        pb.add(b * bb),
                        groups,
                        pq.add(q0 * dp),
                        dp,
                        po.add(q0 * ostride + b * 16),
                        ostride,
                    );
                    b += 1;
                }
                q0 += 1;
            }
        }
    }

    /// AVX2 twin of the VNNI kernel: widen to i16 and use `vpmaddwd`.
    ///
    /// # Safety
    /// As [`i8_scores_vnni`], with AVX2 instead of AVX-512.
    #[target_feature(enable = "avx2")]
    pub unsafe fn i8_scores_avx2(
        blocks: &[u8],
        groups: usize,
        nblocks: usize,
        queries: &[i8],
        nq: usize,
        out: &mut [i32],
    ) {
        let bb = groups * 64;
        let dp = groups * 4;
        for qi in 0..nq {
            let q = &queries[qi * dp..(qi + 1) * dp];
            for b in 0..nblocks {
                let blk = &blocks[b * bb..(b + 1) * bb];
                let mut acc = [_mm256_setzero_si256(); 4];
                for j in 0..groups {
                    let w = i64::from_le_bytes([
                        q[4 * j] as u8,
                        q[4 * j + 1] as u8,
                        q[4 * j + 2] as u8,
                        q[4 * j + 3] as u8,
                        0,
                        0,
                        0,
                        0,
                    ]);
                    // Four signed bytes widened to four i16, repeated.
                    let qv = _mm256_cvtepi8_epi16(_mm_set1_epi32(w as i32));
                    for u in 0..4 {
                        // SAFETY: bytes 64j + 16u .. +16 lie inside the block.
                        let g = unsafe {
                            _mm_loadu_si128(blk.as_ptr().add(j * 64 + u * 16) as *const __m128i)
                        };
                        let gw = _mm256_cvtepu8_epi16(g);
                        acc[u] = _mm256_add_epi32(acc[u], _mm256_madd_epi16(gw, qv));
                    }
                }
                for u in 0..4 {
                    let mut lanes = [0i32; 8];
                    // SAFETY: `lanes` holds 8 i32.
                    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, acc[u]) };
                    for r in 0..4 {
                        out[qi * nblocks * BLOCK + b * BLOCK + u * 4 + r] =
                            lanes[2 * r] + lanes[2 * r + 1];
                    }
                }
            }
        }
    }

    #[allow(dead_code)]
    fn _f16_is_two_bytes() {
        const _: () = assert!(std::mem::size_of::<f16>() == 2);
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use super::BLOCK;
    use half::f16;
    use std::arch::aarch64::*;
    use std::arch::asm;

    /// # Safety
    /// The CPU must support NEON; `a.len() == b.len()`.
    #[target_feature(enable = "neon")]
    pub unsafe fn dot_f32_neon(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [vdupq_n_f32(0.0); 4];
        let mut i = 0;
        while i + 16 <= n {
            for u in 0..4 {
                // SAFETY: i + 4u + 4 <= n, within both slices.
                let (x, y) =
                    unsafe { (vld1q_f32(pa.add(i + 4 * u)), vld1q_f32(pb.add(i + 4 * u))) };
                acc[u] = vfmaq_f32(acc[u], x, y);
            }
            i += 16;
        }
        let s = vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3]));
        let mut sum = vaddvq_f32(s);
        while i < n {
            sum += a[i] * b[i];
            i += 1;
        }
        sum
    }

    /// Eight f16 (as raw bits) widened exactly to two vectors of four f32.
    ///
    /// `FCVTL`/`FCVTL2` from half precision are base Armv8.0 Advanced SIMD
    /// (the `fp16` extension adds half-precision *arithmetic*, not this), so
    /// plain NEON suffices. The `vcvt_f32_f16` intrinsic would do the same but
    /// needs a newer Rust than the crate's MSRV, hence the assembly.
    #[inline]
    #[target_feature(enable = "neon")]
    fn widen_f16x8(h: uint16x8_t) -> (float32x4_t, float32x4_t) {
        let (lo, hi): (float32x4_t, float32x4_t);
        // SAFETY: two register-to-register conversions; no memory, stack or
        // flags touched. Linux runs with FPCR.AHP = 0 (IEEE half precision),
        // which is the format `half::f16` holds.
        unsafe {
            asm!(
                "fcvtl {lo:v}.4s, {h:v}.4h",
                "fcvtl2 {hi:v}.4s, {h:v}.8h",
                h = in(vreg) h,
                lo = out(vreg) lo,
                hi = out(vreg) hi,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        (lo, hi)
    }

    /// # Safety
    /// The CPU must support NEON; `a.len() == b.len()`.
    #[target_feature(enable = "neon")]
    pub unsafe fn dot_f16_neon(a: &[f16], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr() as *const u16, b.as_ptr());
        let mut acc = [vdupq_n_f32(0.0); 4];
        let mut i = 0;
        while i + 16 <= n {
            for u in 0..2 {
                // SAFETY: i + 8u + 8 <= n; f16 is a 2-byte plain value, so
                // 8 of them are 8 readable u16.
                let h = unsafe { vld1q_u16(pa.add(i + 8 * u)) };
                let (lo, hi) = widen_f16x8(h);
                // SAFETY: i + 8u + 8 <= n, within `b`.
                let (y0, y1) = unsafe {
                    (
                        vld1q_f32(pb.add(i + 8 * u)),
                        vld1q_f32(pb.add(i + 8 * u + 4)),
                    )
                };
                acc[2 * u] = vfmaq_f32(acc[2 * u], lo, y0);
                acc[2 * u + 1] = vfmaq_f32(acc[2 * u + 1], hi, y1);
            }
            i += 16;
        }
        let s = vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3]));
        let mut sum = vaddvq_f32(s);
        while i < n {
            sum += a[i].to_f32() * b[i];
            i += 1;
        }
        sum
    }

    /// `128 · Σ q` for each of `NQ` queries: the kernels below flip the
    /// gallery bytes to signed (`g_u8 − 128`, an XOR with 0x80) so that
    /// `Σ g_u8·q = Σ (g_u8 − 128)·q + 128·Σ q`. Wrapping arithmetic, like the
    /// vector lanes: the result is exact whenever the true sum fits in i32.
    ///
    /// # Safety
    /// `q` points at `NQ` queries of `dp` bytes spaced `qstride` apart.
    #[inline(always)]
    unsafe fn biases<const NQ: usize>(q: *const i8, dp: usize, qstride: usize) -> [i32; NQ] {
        let mut bias = [0i32; NQ];
        for (qi, b) in bias.iter_mut().enumerate() {
            // SAFETY: query qi's dp bytes lie inside the caller's slice.
            let s = unsafe { std::slice::from_raw_parts(q.add(qi * qstride), dp) };
            let sum = s.iter().fold(0i32, |a, &v| a.wrapping_add(v as i32));
            *b = sum.wrapping_mul(128);
        }
        bias
    }

    /// Baseline micro-kernel: one packed block against `NQ` queries, by
    /// widening multiplies (`smull`, exact in i16 since |g·q| ≤ 128²) and
    /// pairwise widening accumulation (`sadalp`) into i32.
    ///
    /// # Safety
    /// The CPU must support NEON; `blk` points at one packed block of
    /// `groups * 64` bytes, `q` at `NQ` queries of `groups * 4` bytes spaced
    /// `qstride` apart, and `out` at `NQ` rows of at least 16 i32 spaced
    /// `ostride` apart.
    #[target_feature(enable = "neon")]
    unsafe fn kern_mull<const NQ: usize>(
        blk: *const u8,
        groups: usize,
        q: *const i8,
        qstride: usize,
        out: *mut i32,
        ostride: usize,
    ) {
        let flip = vdupq_n_u8(0x80);
        // lo[qi][u] holds rows 4u, 4u+1 and hi[qi][u] rows 4u+2, 4u+3, each
        // row as two partial sums.
        let mut lo = [[vdupq_n_s32(0); 4]; NQ];
        let mut hi = [[vdupq_n_s32(0); 4]; NQ];
        for j in 0..groups {
            let mut g = [vdupq_n_s8(0); 4];
            for (u, gu) in g.iter_mut().enumerate() {
                // SAFETY: bytes 64j + 16u .. +16 lie inside the block.
                let raw = unsafe { vld1q_u8(blk.add(64 * j + 16 * u)) };
                *gu = vreinterpretq_s8_u8(veorq_u8(raw, flip));
            }
            for qi in 0..NQ {
                // SAFETY: bytes 4j..4j+4 of query qi lie inside it.
                let word = unsafe { (q.add(qi * qstride + 4 * j) as *const i32).read_unaligned() };
                let qv = vreinterpretq_s8_s32(vdupq_n_s32(word));
                let ql = vget_low_s8(qv);
                for u in 0..4 {
                    lo[qi][u] = vpadalq_s16(lo[qi][u], vmull_s8(vget_low_s8(g[u]), ql));
                    hi[qi][u] = vpadalq_s16(hi[qi][u], vmull_high_s8(g[u], qv));
                }
            }
        }
        // SAFETY: as the caller guarantees for `q`.
        let bias = unsafe { biases::<NQ>(q, groups * 4, qstride) };
        for qi in 0..NQ {
            let bv = vdupq_n_s32(bias[qi]);
            for u in 0..4 {
                let rows = vaddq_s32(vpaddq_s32(lo[qi][u], hi[qi][u]), bv);
                // SAFETY: out row qi has room for 16 i32 from this offset.
                unsafe { vst1q_s32(out.add(qi * ostride + 4 * u), rows) };
            }
        }
    }

    /// `acc + Σ_4 g·q` per 32-bit lane (`SDOT`). The `vdotq_s32` intrinsic is
    /// not stable at the crate's MSRV, hence the assembly.
    #[inline]
    #[target_feature(enable = "neon,dotprod")]
    fn sdot(acc: int32x4_t, g: int8x16_t, q: int8x16_t) -> int32x4_t {
        let mut acc = acc;
        // SAFETY: one register-to-register instruction of the `dotprod`
        // extension, which this function requires; no memory, stack or flags.
        unsafe {
            asm!(
                "sdot {acc:v}.4s, {g:v}.16b, {q:v}.16b",
                acc = inout(vreg) acc,
                g = in(vreg) g,
                q = in(vreg) q,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        acc
    }

    /// Dot-product micro-kernel: as [`kern_mull`], but one `SDOT` adds the
    /// four products of each of four rows, as `vpdpbusd` does on x86.
    ///
    /// # Safety
    /// As [`kern_mull`], and the CPU must support `dotprod`.
    #[target_feature(enable = "neon,dotprod")]
    unsafe fn kern_sdot<const NQ: usize>(
        blk: *const u8,
        groups: usize,
        q: *const i8,
        qstride: usize,
        out: *mut i32,
        ostride: usize,
    ) {
        let flip = vdupq_n_u8(0x80);
        let mut acc = [[vdupq_n_s32(0); 4]; NQ];
        for j in 0..groups {
            let mut g = [vdupq_n_s8(0); 4];
            for (u, gu) in g.iter_mut().enumerate() {
                // SAFETY: bytes 64j + 16u .. +16 lie inside the block.
                let raw = unsafe { vld1q_u8(blk.add(64 * j + 16 * u)) };
                *gu = vreinterpretq_s8_u8(veorq_u8(raw, flip));
            }
            for qi in 0..NQ {
                // SAFETY: bytes 4j..4j+4 of query qi lie inside it.
                let word = unsafe { (q.add(qi * qstride + 4 * j) as *const i32).read_unaligned() };
                let qv = vreinterpretq_s8_s32(vdupq_n_s32(word));
                for u in 0..4 {
                    acc[qi][u] = sdot(acc[qi][u], g[u], qv);
                }
            }
        }
        // SAFETY: as the caller guarantees for `q`.
        let bias = unsafe { biases::<NQ>(q, groups * 4, qstride) };
        for qi in 0..NQ {
            let bv = vdupq_n_s32(bias[qi]);
            for u in 0..4 {
                // SAFETY: out row qi has room for 16 i32 from this offset.
                unsafe { vst1q_s32(out.add(qi * ostride + 4 * u), vaddq_s32(acc[qi][u], bv)) };
            }
        }
    }

    /// Walks every (query group, block) pair with the micro-kernel `$kern`,
    /// `$nq` queries at a time, then one at a time.
    macro_rules! drive {
        ($kern:ident, $nq:literal, $blocks:ident, $groups:ident, $nblocks:ident,
         $queries:ident, $nq_total:ident, $out:ident) => {{
            let bb = $groups * 64;
            let dp = $groups * 4;
            let ostride = $nblocks * BLOCK;
            let (pb, pq, po) = ($blocks.as_ptr(), $queries.as_ptr(), $out.as_mut_ptr());
            // SAFETY: (all calls below) every (block, query) pair addressed
            // is inside the slices, whose sizes the caller guarantees.
            unsafe {
                let mut q0 = 0;
                while q0 + $nq <= $nq_total {
                    for b in 0..$nblocks {
                        $kern::<$nq>(
                            pb.add(b * bb),
                            $groups,
                            pq.add(q0 * dp),
                            dp,
                            po.add(q0 * ostride + b * BLOCK),
                            ostride,
                        );
                    }
                    q0 += $nq;
                }
                while q0 < $nq_total {
                    for b in 0..$nblocks {
                        $kern::<1>(
                            pb.add(b * bb),
                            $groups,
                            pq.add(q0 * dp),
                            dp,
                            po.add(q0 * ostride + b * BLOCK),
                            ostride,
                        );
                    }
                    q0 += 1;
                }
            }
        }};
    }

    /// # Safety
    /// The CPU must support NEON; `blocks.len() == nblocks * groups * 64`,
    /// `queries.len() == nq * groups * 4`, `out.len() == nq * nblocks * 16`.
    #[target_feature(enable = "neon")]
    pub unsafe fn i8_scores_neon(
        blocks: &[u8],
        groups: usize,
        nblocks: usize,
        queries: &[i8],
        nq: usize,
        out: &mut [i32],
    ) {
        // Two queries share each block load: 16 accumulators + 4 gallery
        // vectors stay within the 32 registers.
        drive!(kern_mull, 2, blocks, groups, nblocks, queries, nq, out)
    }

    /// # Safety
    /// As [`i8_scores_neon`], and the CPU must support `dotprod`.
    #[target_feature(enable = "neon,dotprod")]
    pub unsafe fn i8_scores_neon_dot(
        blocks: &[u8],
        groups: usize,
        nblocks: usize,
        queries: &[i8],
        nq: usize,
        out: &mut [i32],
    ) {
        // Four queries per block load: 16 accumulators, 4 gallery vectors.
        drive!(kern_sdot, 4, blocks, groups, nblocks, queries, nq, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed >> 33
    }

    /// Lengths from 0 to 70 (every tail of every unrolled loop) and a few
    /// long ones.
    fn lengths() -> impl Iterator<Item = usize> {
        (0..=70).chain([127, 128, 129, 255, 512, 515, 1000])
    }

    /// Uniform in [-scale, scale).
    fn uniform(seed: &mut u64, scale: f32) -> f32 {
        ((lcg(seed) % 2_000_001) as f32 / 1_000_000.0 - 1.0) * scale
    }

    /// Checks `got` against the exact dot product: any f32 summation order
    /// with one rounding per product and per addition stays within
    /// `γ_n · Σ|a_i b_i|`, `γ_n = n·u / (1 − n·u)`, which is what the exact
    /// index's ε (`16·D·f32::EPSILON`) is sized to cover.
    fn assert_within_dot_bound(got: f32, a: &[f32], b: &[f32], what: &str) {
        let n = a.len() as f64;
        let exact: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
        let abs: f64 = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| (x as f64 * y as f64).abs())
            .sum();
        let u = f32::EPSILON as f64 / 2.0;
        let bound = n * u / (1.0 - n * u) * abs;
        assert!(
            (got as f64 - exact).abs() <= bound,
            "{what}: got {got}, exact {exact}, bound {bound}"
        );
    }

    #[test]
    fn f32_and_f16_kernels_stay_within_the_dot_product_bound() {
        let mut s = 7u64;
        for n in lengths() {
            // Mixed magnitudes so that rounding differs between orders.
            for scale in [1.0f32, 1e3] {
                let a: Vec<f32> = (0..n).map(|_| uniform(&mut s, scale)).collect();
                let b: Vec<f32> = (0..n).map(|_| uniform(&mut s, 1.0)).collect();
                let h: Vec<f16> = a.iter().map(|&x| f16::from_f32(x)).collect();
                let hf: Vec<f32> = h.iter().map(|x| x.to_f32()).collect();
                assert_within_dot_bound(dot_f32_scalar(&a, &b), &a, &b, "f32 scalar");
                assert_within_dot_bound(dot_f16_scalar(&h, &b), &hf, &b, "f16 scalar");
                for &level in available() {
                    let what = format!("{level:?} n={n} scale={scale}");
                    assert_within_dot_bound(dot_f32_at(level, &a, &b), &a, &b, &what);
                    assert_within_dot_bound(dot_f16_at(level, &h, &b), &hf, &b, &what);
                }
            }
        }
    }

    #[test]
    fn kernels_agree_exactly_when_every_partial_sum_is_exact() {
        // Small integers: every product and partial sum is an exact f32, so
        // every summation order gives the same bits; a lane or tail element
        // read twice, skipped or misplaced changes the result.
        let mut s = 3u64;
        for n in lengths() {
            let a: Vec<f32> = (0..n).map(|_| (lcg(&mut s) % 17) as f32 - 8.0).collect();
            let b: Vec<f32> = (0..n).map(|_| (lcg(&mut s) % 17) as f32 - 8.0).collect();
            let h: Vec<f16> = a.iter().map(|&x| f16::from_f32(x)).collect();
            let want = dot_f32_scalar(&a, &b);
            assert_eq!(dot_f16_scalar(&h, &b), want);
            for &level in available() {
                assert_eq!(dot_f32_at(level, &a, &b), want, "f32 {level:?} n={n}");
                assert_eq!(dot_f16_at(level, &h, &b), want, "f16 {level:?} n={n}");
            }
        }
    }

    #[test]
    fn f16_kernels_widen_special_values_like_half() {
        // Subnormal, largest finite and infinite halves, each alone in one
        // lane position and in the scalar tail.
        let specials = [
            f16::from_bits(0x0001),
            f16::from_bits(0x83ff),
            f16::MAX,
            f16::MIN,
            f16::INFINITY,
            f16::NEG_INFINITY,
        ];
        for n in [16usize, 19] {
            for pos in 0..n {
                for &v in &specials {
                    let mut h = vec![f16::from_f32(0.5); n];
                    h[pos] = v;
                    let b = vec![1.0f32; n];
                    let want = dot_f16_scalar(&h, &b);
                    for &level in available() {
                        let got = dot_f16_at(level, &h, &b);
                        assert!(
                            got == want || (got.is_nan() && want.is_nan()),
                            "{level:?} n={n} pos={pos} {v:?}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn int8_kernels_match_scalar_twin_exactly() {
        let mut s = 11u64;
        for groups in [1usize, 2, 3, 5, 7, 32, 128] {
            for nblocks in [1usize, 2, 3, 5] {
                for nq in [1usize, 2, 3, 4, 5, 7, 8, 9, 13] {
                    let blocks: Vec<u8> = (0..nblocks * groups * 64)
                        .map(|_| lcg(&mut s) as u8)
                        .collect();
                    let q: Vec<i8> = (0..nq * groups * 4)
                        .map(|_| lcg(&mut s) as u8 as i8)
                        .collect();
                    let mut want = vec![0; nq * nblocks * BLOCK];
                    i8_scores_scalar(&blocks, groups, &q, &mut want);
                    for &level in available() {
                        let mut got = vec![0; want.len()];
                        i8_scores_at(level, &blocks, groups, &q, &mut got);
                        assert_eq!(got, want, "{level:?} g={groups} b={nblocks} q={nq}");
                    }
                }
            }
        }
    }

    #[test]
    fn block8_masks_and_scores_match_the_scalar_twin() {
        let mut s = 5u64;
        for groups in [1usize, 3, 32, 128] {
            for _ in 0..20 {
                let block: Vec<u8> = (0..groups * 64).map(|_| lcg(&mut s) as u8).collect();
                let q: Vec<i8> = (0..QGROUP * groups * 4)
                    .map(|_| lcg(&mut s) as u8 as i8)
                    .collect();
                let mut want = [0i32; QGROUP * BLOCK];
                i8_scores_scalar(&block, groups, &q, &mut want);
                // Cuts at, just above and just below a query's best row, and
                // out of reach, so every bit is tested both ways.
                let mut cuts = [0i32; QGROUP];
                for (qi, c) in cuts.iter_mut().enumerate() {
                    let best = *want[qi * BLOCK..(qi + 1) * BLOCK].iter().max().unwrap();
                    *c = match lcg(&mut s) % 4 {
                        0 => best,
                        1 => best + 1,
                        2 => best - 1,
                        _ => i32::MAX,
                    };
                }
                // The masks spelled out from the scalar scores.
                let mut want_rows = [0u16; QGROUP];
                let mut want_mask = 0u8;
                for qi in 0..QGROUP {
                    for r in 0..BLOCK {
                        if want[qi * BLOCK + r] >= cuts[qi] {
                            want_rows[qi] |= 1 << r;
                            want_mask |= 1 << qi;
                        }
                    }
                }
                for &level in available() {
                    let mut got = [0i32; QGROUP * BLOCK];
                    let mut rows = [0xa5a5u16; QGROUP];
                    let mask = i8_block8_at(level, &block, groups, &q, &cuts, &mut got, &mut rows);
                    assert_eq!(got, want, "{level:?} g={groups}");
                    assert_eq!(rows, want_rows, "{level:?} g={groups}");
                    assert_eq!(mask, want_mask, "{level:?} g={groups}");
                }
            }
        }
    }

    #[test]
    fn int8_kernels_are_exact_at_the_extremes() {
        // Every byte pairing of the extremes, over a long row, so that any
        // lane saturating or overflowing its i16 products shows.
        let groups = 256;
        for (g, qv) in [
            (0u8, -128i8),
            (0, 127),
            (255, -128),
            (255, 127),
            (128, -128),
        ] {
            let blocks = vec![g; 2 * groups * 64];
            let q = vec![qv; 3 * groups * 4];
            let mut want = vec![0; 3 * 2 * BLOCK];
            i8_scores_scalar(&blocks, groups, &q, &mut want);
            assert_eq!(want[0], g as i32 * qv as i32 * (groups * 4) as i32);
            for &level in available() {
                let mut got = vec![0; want.len()];
                i8_scores_at(level, &blocks, groups, &q, &mut got);
                assert_eq!(got, want, "{level:?} g={g} q={qv}");
            }
        }
    }

    #[test]
    fn detection_finds_the_expected_level() {
        // tools/test-aarch64.sh names the level each emulated CPU must reach,
        // so a detection bug cannot quietly leave a kernel untested.
        if let Ok(want) = std::env::var("IPSEITY_EXPECT_KERNEL") {
            assert_eq!(format!("{:?}", detected()), want);
        }
        assert_eq!(available().first(), Some(&Level::Scalar));
        #[cfg(target_arch = "aarch64")]
        assert!(has(Level::Neon), "NEON is mandatory on AArch64 Linux");
    }

    #[test]
    fn pack_and_move_rows() {
        let groups = 2;
        let mut blocks = vec![128u8; 2 * groups * 64];
        let row: Vec<i8> = (0..8).map(|i| i as i8 - 4).collect();
        pack_row(&mut blocks, groups, 17, &row);
        move_row(&mut blocks, groups, 17, 3);
        let q = vec![1i8; 8];
        let mut out = vec![0; 2 * BLOCK];
        i8_scores_scalar(&blocks, groups, &q, &mut out);
        // Σ (v + 128) = Σ v + 8 * 128.
        assert_eq!(out[3], -4 + 8 * 128);
        assert_eq!(out[17], -4 + 8 * 128);
        assert_eq!(out[0], 8 * 128);
    }
}
