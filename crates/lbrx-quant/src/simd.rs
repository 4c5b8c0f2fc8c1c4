//! SIMD paths for the F32/F16/BF16 casts, picked at run time (x86-64 with AVX2 and F16C).
//!
//! Each lane does exactly what the scalar reference does for one element (same rounding, same NaN rule), so
//! results are bit-identical to [`crate::cast::cast_scalar`]; tests check this exhaustively over all 16-bit
//! inputs and on random f32 data.

use lbrx_core::DType;

/// Whether the CPU has AVX2 and F16C, all the kernels below need.
#[cfg(target_arch = "x86_64")]
fn avx2_f16c() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("f16c")
}

/// Converts the longest prefix of whole 8-element groups it has a SIMD path for; returns the element count
/// converted (0 when the CPU or the dtype pair has no SIMD path). Lengths were checked by the caller.
pub(crate) fn cast_prefix(from: DType, src: &[u8], to: DType, dst: &mut [u8]) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2_f16c() {
            return x86::cast_prefix(from, src, to, dst);
        }
    }
    let _ = (from, src, to, dst);
    0
}

/// Encodes the longest prefix of whole 8-value groups of `src` into `to` (F16 or BF16) with SIMD; returns the
/// count encoded (0 when there is no SIMD path).
pub(crate) fn encode_prefix(to: DType, src: &[f32], dst: &mut [u8]) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2_f16c() {
            return x86::encode_prefix(to, src, dst);
        }
    }
    let _ = (to, src, dst);
    0
}

/// Whether [`quantize_prefix`] has a vector kernel for `from` -> `to` on this CPU.
pub(crate) fn has_quantize_kernel(from: DType, to: DType) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2_f16c() {
            return matches!(from, DType::F32 | DType::F16 | DType::BF16)
                && matches!(
                    to,
                    DType::Q8_0 | DType::Q4_0 | DType::Q4_1 | DType::Q5_0 | DType::Q5_1
                );
        }
    }
    let _ = (from, to);
    false
}

/// [`quantize_prefix`] of f32 values.
pub(crate) fn quantize_prefix_f32(src: &[f32], to: DType, dst: &mut [u8]) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2_f16c() {
            return x86::quantize_prefix_f32(src, to, dst);
        }
    }
    let _ = (src, to, dst);
    0
}

/// Quantizes the leading whole blocks of `src` (elements of `from`: F32, F16 or BF16) into `to` (Q8_0, Q4_0,
/// Q4_1, Q5_0 or Q5_1)
/// with SIMD, lane for lane what the scalar reference does (a block's maximum is order-free, each product,
/// rounding and truncation is per element), stopping before the first block the vector code does not take (a
/// NaN or an infinite scale); returns the blocks done (0 without a SIMD path).
pub(crate) fn quantize_prefix(from: DType, src: &[u8], to: DType, dst: &mut [u8]) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2_f16c() {
            return x86::quantize_prefix(from, src, to, dst);
        }
    }
    let _ = (from, src, to, dst);
    0
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use lbrx_core::DType;
    use std::arch::x86_64::*;

    /// Loads 8 elements at `p` as f32 lanes.
    trait Load {
        const SIZE: usize;
        unsafe fn load(p: *const u8) -> __m256;
    }
    /// Stores 8 f32 lanes as elements at `p`.
    trait Store {
        const SIZE: usize;
        unsafe fn store(v: __m256, p: *mut u8);
    }

    struct F32;
    struct F16;
    struct BF16;

    impl Load for F32 {
        const SIZE: usize = 4;
        #[inline(always)]
        unsafe fn load(p: *const u8) -> __m256 {
            _mm256_loadu_ps(p as *const f32)
        }
    }
    impl Load for F16 {
        const SIZE: usize = 2;
        #[inline(always)]
        unsafe fn load(p: *const u8) -> __m256 {
            // vcvtph2ps is exact and quiets NaNs keeping their payload, like the scalar f16_to_f32.
            _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
        }
    }
    impl Load for BF16 {
        const SIZE: usize = 2;
        #[inline(always)]
        unsafe fn load(p: *const u8) -> __m256 {
            let w = _mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i));
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(w))
        }
    }
    impl Store for F32 {
        const SIZE: usize = 4;
        #[inline(always)]
        unsafe fn store(v: __m256, p: *mut u8) {
            _mm256_storeu_ps(p as *mut f32, v)
        }
    }
    impl Store for F16 {
        const SIZE: usize = 2;
        #[inline(always)]
        unsafe fn store(v: __m256, p: *mut u8) {
            // Round to nearest even, as the scalar f16_bits.
            _mm_storeu_si128(
                p as *mut __m128i,
                _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v),
            )
        }
    }
    impl Store for BF16 {
        const SIZE: usize = 2;
        #[inline(always)]
        unsafe fn store(v: __m256, p: *mut u8) {
            // Round to nearest even: x + 0x7fff + ((x >> 16) & 1), then >> 16; NaN -> sign | 0x7fc0.
            let x = _mm256_castps_si256(v);
            let lsb = _mm256_and_si256(_mm256_srli_epi32::<16>(x), _mm256_set1_epi32(1));
            let rounded = _mm256_srli_epi32::<16>(_mm256_add_epi32(
                _mm256_add_epi32(x, _mm256_set1_epi32(0x7fff)),
                lsb,
            ));
            let abs = _mm256_and_si256(x, _mm256_set1_epi32(0x7fff_ffff));
            let is_nan = _mm256_cmpgt_epi32(abs, _mm256_set1_epi32(0x7f80_0000));
            let qnan = _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi32::<16>(x), _mm256_set1_epi32(0x8000)),
                _mm256_set1_epi32(0x7fc0),
            );
            let r = _mm256_blendv_epi8(rounded, qnan, is_nan);
            // Pack the low 16 bits of each 32-bit lane: packus works per 128-bit half, so fix the order after.
            let packed = _mm256_packus_epi32(r, r);
            let ordered = _mm256_permute4x64_epi64::<0b1000>(packed);
            _mm_storeu_si128(p as *mut __m128i, _mm256_castsi256_si128(ordered));
        }
    }

    #[target_feature(enable = "avx2,f16c")]
    unsafe fn run<L: Load, S: Store>(src: &[u8], dst: &mut [u8]) -> usize {
        let n = (src.len() / L::SIZE).min(dst.len() / S::SIZE) / 8 * 8;
        let (sp, dp) = (src.as_ptr(), dst.as_mut_ptr());
        let mut i = 0;
        while i < n {
            // SAFETY: i + 8 <= n, so bytes [i*SIZE, (i+8)*SIZE) lie inside `src` and `dst` (unaligned accesses).
            unsafe { S::store(L::load(sp.add(i * L::SIZE)), dp.add(i * S::SIZE)) };
            i += 8;
        }
        n
    }

    #[target_feature(enable = "avx2,f16c")]
    unsafe fn encode<S: Store>(src: &[f32], dst: &mut [u8]) -> usize {
        let n = src.len().min(dst.len() / S::SIZE) / 8 * 8;
        let (sp, dp) = (src.as_ptr(), dst.as_mut_ptr());
        let mut i = 0;
        while i < n {
            // SAFETY: i + 8 <= n, so src[i..i+8] and dst[i*SIZE..(i+8)*SIZE] are in bounds (unaligned accesses).
            unsafe { S::store(_mm256_loadu_ps(sp.add(i)), dp.add(i * S::SIZE)) };
            i += 8;
        }
        n
    }

    /// C's `roundf` on 8 lanes, then truncation to i32; NaN lanes give 0 (as Rust's `as i32`).
    #[target_feature(enable = "avx2")]
    unsafe fn roundf_epi32(v: __m256) -> __m256i {
        let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(v);
        let frac = _mm256_sub_ps(v, t);
        let up = _mm256_and_ps(
            _mm256_cmp_ps::<_CMP_GE_OQ>(frac, _mm256_set1_ps(0.5)),
            _mm256_set1_ps(1.0),
        );
        let down = _mm256_and_ps(
            _mm256_cmp_ps::<_CMP_LE_OQ>(frac, _mm256_set1_ps(-0.5)),
            _mm256_set1_ps(1.0),
        );
        let r = _mm256_sub_ps(_mm256_add_ps(t, up), down);
        let ordered = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_ORD_Q>(v, v));
        _mm256_and_si256(_mm256_cvttps_epi32(r), ordered)
    }

    /// Loads a 32-value block at `p` as four 8-lane vectors; `None` when a value is NaN (the scalar code then
    /// reproduces what C's conversions give).
    #[inline(always)]
    unsafe fn load_block<L: Load>(p: *const u8) -> Option<[__m256; 4]> {
        // SAFETY: the caller guarantees 32 elements at p.
        let v = unsafe { [0, 8, 16, 24].map(|k| L::load(p.add(k * L::SIZE))) };
        let nan = v.iter().fold(0, |a, &q| {
            a | _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_UNORD_Q>(q, q))
        });
        (nan == 0).then_some(v)
    }

    /// The largest |value| of a NaN-free block.
    #[inline(always)]
    unsafe fn block_amax(v: &[__m256; 4]) -> f32 {
        let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        let mut m = _mm256_setzero_ps();
        for &q in v {
            m = _mm256_max_ps(_mm256_and_ps(q, abs_mask), m);
        }
        let mut lanes = [0f32; 8];
        // SAFETY: lanes has room for 8 f32.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), m) };
        lanes.iter().fold(0f32, |a, &l| a.max(l))
    }

    /// i32 lanes of four vectors -> 32 bytes in element order (signed or unsigned saturation at 8 bits).
    #[inline(always)]
    unsafe fn pack_bytes(i: [__m256i; 4], signed: bool) -> __m256i {
        let p16a = _mm256_packs_epi32(i[0], i[1]);
        let p16b = _mm256_packs_epi32(i[2], i[3]);
        let p8 = if signed {
            _mm256_packs_epi16(p16a, p16b)
        } else {
            _mm256_packus_epi16(p16a, p16b)
        };
        // packs interleave 128-bit halves; the permute restores element order
        _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
    }

    /// Q8_0 over the leading whole blocks of `n` blocks at `sp`, stopping before a block the vector code does not
    /// take (a NaN, an infinite scale); returns the blocks done.
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn q8_0<L: Load>(sp: *const u8, n: usize, dst: &mut [u8]) -> usize {
        for b in 0..n.min(dst.len() / 34) {
            // SAFETY: the caller guarantees n blocks of 32 elements at sp.
            let Some(v) = (unsafe { load_block::<L>(sp.add(b * 32 * L::SIZE)) }) else {
                return b;
            };
            let amax = unsafe { block_amax(&v) };
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            if !id.is_finite() || !amax.is_finite() {
                return b;
            }
            let y = &mut dst[b * 34..b * 34 + 34];
            y[..2].copy_from_slice(&crate::cast::f16_bits(d).to_le_bytes());
            let idv = _mm256_set1_ps(id);
            // SAFETY: AVX2 is enabled for this function.
            let i: [__m256i; 4] = v.map(|q| unsafe { roundf_epi32(_mm256_mul_ps(q, idv)) });
            // values lie in [-127, 127]
            let ordered = unsafe { pack_bytes(i, true) };
            // SAFETY: y[2..34] holds 32 bytes.
            unsafe { _mm256_storeu_si256(y[2..].as_mut_ptr() as *mut __m256i, ordered) };
        }
        n.min(dst.len() / 34)
    }

    /// The first of a block's 32 values that equals `target` (under `abs` when `magnitude`), as ggml's
    /// sequential `<`/`>` scans keep the first on ties (which decides the sign of a zero).
    #[inline(always)]
    unsafe fn first_equal(v: &[__m256; 4], target: f32, magnitude: bool) -> f32 {
        let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        let t = _mm256_set1_ps(target);
        let mut mask = 0u32;
        let mut vals = [0f32; 32];
        for (k, &q) in v.iter().enumerate() {
            let x = if magnitude {
                _mm256_and_ps(q, abs_mask)
            } else {
                q
            };
            mask |= (_mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(x, t)) as u32) << (8 * k);
            // SAFETY: vals has room for 32 f32.
            unsafe { _mm256_storeu_ps(vals.as_mut_ptr().add(8 * k), q) };
        }
        vals[(mask.trailing_zeros() as usize).min(31)]
    }

    /// 32 quantized values (each at most 31, element order) into nibbles, two per byte (element j and j + 16),
    /// and the bit-4 mask (bit j for element j).
    #[inline(always)]
    unsafe fn nibbles(q: __m256i) -> (__m128i, u32) {
        let low = _mm256_and_si256(q, _mm256_set1_epi8(0x0f));
        let (lo, hi) = (
            _mm256_castsi256_si128(low),
            _mm256_extracti128_si256::<1>(low),
        );
        let qh = _mm256_movemask_epi8(_mm256_slli_epi16::<3>(q)) as u32;
        (_mm_or_si128(lo, _mm_slli_epi16::<4>(hi)), qh)
    }

    /// Q4_0 and Q5_0 as [`q8_0`]: the signed value of largest magnitude (the first on ties) over -8 or -16 is
    /// the scale, each value `(int8_t)(x * id + 8.5)` (`16.5`) capped at 15 (31).
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn q_0<L: Load, const FIVE: bool>(sp: *const u8, n: usize, dst: &mut [u8]) -> usize {
        let (ts, half, top) = if FIVE {
            (22, 16.0f32, 31i8)
        } else {
            (18, 8.0f32, 15i8)
        };
        for b in 0..n.min(dst.len() / ts) {
            // SAFETY: the caller guarantees n blocks of 32 elements at sp.
            let Some(v) = (unsafe { load_block::<L>(sp.add(b * 32 * L::SIZE)) }) else {
                return b;
            };
            let amax = unsafe { block_amax(&v) };
            if !amax.is_finite() {
                return b;
            }
            let max = if amax == 0.0 {
                0.0
            } else {
                unsafe { first_equal(&v, amax, true) }
            };
            let d = max / -half;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            if !id.is_finite() {
                return b;
            }
            let y = &mut dst[b * ts..(b + 1) * ts];
            y[..2].copy_from_slice(&crate::cast::f16_bits(d).to_le_bytes());
            let (idv, off) = (_mm256_set1_ps(id), _mm256_set1_ps(half + 0.5));
            // x * id lies in [-half, half], so the truncations lie in [0, 2 half] and pack without saturating
            let i: [__m256i; 4] =
                v.map(|q| _mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(q, idv), off)));
            let q = _mm256_min_epu8(unsafe { pack_bytes(i, false) }, _mm256_set1_epi8(top));
            let (qs, qh) = unsafe { nibbles(q) };
            if FIVE {
                y[2..6].copy_from_slice(&qh.to_le_bytes());
            }
            // SAFETY: the last 16 bytes of y are the nibbles.
            unsafe { _mm_storeu_si128(y[ts - 16..].as_mut_ptr() as *mut __m128i, qs) };
        }
        n.min(dst.len() / ts)
    }

    /// Q4_1 and Q5_1 as [`q8_0`]: minimum and maximum (the first on ties), `d = (max - min) / 15` (31), each
    /// value `(x - min) * id + 0.5` truncated (Q4_1 caps it at 15).
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn q_1<L: Load, const FIVE: bool>(sp: *const u8, n: usize, dst: &mut [u8]) -> usize {
        let (ts, levels) = if FIVE { (24, 31.0f32) } else { (20, 15.0f32) };
        for b in 0..n.min(dst.len() / ts) {
            // SAFETY: the caller guarantees n blocks of 32 elements at sp.
            let Some(v) = (unsafe { load_block::<L>(sp.add(b * 32 * L::SIZE)) }) else {
                return b;
            };
            let (mut lo, mut hi) = (v[0], v[0]);
            for &q in &v[1..] {
                lo = _mm256_min_ps(lo, q);
                hi = _mm256_max_ps(hi, q);
            }
            let (mut l, mut h) = ([0f32; 8], [0f32; 8]);
            // SAFETY: l and h have room for 8 f32.
            unsafe {
                _mm256_storeu_ps(l.as_mut_ptr(), lo);
                _mm256_storeu_ps(h.as_mut_ptr(), hi);
            }
            let min = unsafe { first_equal(&v, l.iter().fold(f32::MAX, |a, &x| a.min(x)), false) };
            let max = unsafe { first_equal(&v, h.iter().fold(-f32::MAX, |a, &x| a.max(x)), false) };
            let d = (max - min) / levels;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            if !d.is_finite() || !id.is_finite() {
                return b;
            }
            let y = &mut dst[b * ts..(b + 1) * ts];
            y[..2].copy_from_slice(&crate::cast::f16_bits(d).to_le_bytes());
            y[2..4].copy_from_slice(&crate::cast::f16_bits(min).to_le_bytes());
            let (idv, minv, half) = (_mm256_set1_ps(id), _mm256_set1_ps(min), _mm256_set1_ps(0.5));
            // (x - min) * id lies in [0, levels], so the truncations pack without saturating
            let i: [__m256i; 4] = v.map(|q| {
                _mm256_cvttps_epi32(_mm256_add_ps(
                    _mm256_mul_ps(_mm256_sub_ps(q, minv), idv),
                    half,
                ))
            });
            let mut q = unsafe { pack_bytes(i, false) };
            if !FIVE {
                q = _mm256_min_epu8(q, _mm256_set1_epi8(15));
            }
            let (qs, qh) = unsafe { nibbles(q) };
            if FIVE {
                y[4..8].copy_from_slice(&qh.to_le_bytes());
            }
            // SAFETY: the last 16 bytes of y are the nibbles.
            unsafe { _mm_storeu_si128(y[ts - 16..].as_mut_ptr() as *mut __m128i, qs) };
        }
        n.min(dst.len() / ts)
    }

    pub(super) fn quantize_prefix(from: DType, src: &[u8], to: DType, dst: &mut [u8]) -> usize {
        let size = from.info().type_size as usize;
        blocks(from, src.as_ptr(), src.len() / size / 32, to, dst)
    }

    pub(super) fn quantize_prefix_f32(src: &[f32], to: DType, dst: &mut [u8]) -> usize {
        blocks(DType::F32, src.as_ptr().cast(), src.len() / 32, to, dst)
    }

    fn blocks(from: DType, sp: *const u8, n: usize, to: DType, dst: &mut [u8]) -> usize {
        // SAFETY: the caller checked AVX2 and F16C at run time; sp holds n whole blocks of `from`.
        unsafe {
            match (from, to) {
                (DType::F32, DType::Q8_0) => q8_0::<F32>(sp, n, dst),
                (DType::F16, DType::Q8_0) => q8_0::<F16>(sp, n, dst),
                (DType::BF16, DType::Q8_0) => q8_0::<BF16>(sp, n, dst),
                (DType::F32, DType::Q4_0) => q_0::<F32, false>(sp, n, dst),
                (DType::F16, DType::Q4_0) => q_0::<F16, false>(sp, n, dst),
                (DType::BF16, DType::Q4_0) => q_0::<BF16, false>(sp, n, dst),
                (DType::F32, DType::Q5_0) => q_0::<F32, true>(sp, n, dst),
                (DType::F16, DType::Q5_0) => q_0::<F16, true>(sp, n, dst),
                (DType::BF16, DType::Q5_0) => q_0::<BF16, true>(sp, n, dst),
                (DType::F32, DType::Q4_1) => q_1::<F32, false>(sp, n, dst),
                (DType::F16, DType::Q4_1) => q_1::<F16, false>(sp, n, dst),
                (DType::BF16, DType::Q4_1) => q_1::<BF16, false>(sp, n, dst),
                (DType::F32, DType::Q5_1) => q_1::<F32, true>(sp, n, dst),
                (DType::F16, DType::Q5_1) => q_1::<F16, true>(sp, n, dst),
                (DType::BF16, DType::Q5_1) => q_1::<BF16, true>(sp, n, dst),
                _ => 0,
            }
        }
    }

    pub(super) fn encode_prefix(to: DType, src: &[f32], dst: &mut [u8]) -> usize {
        // SAFETY: the caller checked AVX2 and F16C at run time; `encode` stays inside both slices.
        unsafe {
            match to {
                DType::F16 => encode::<F16>(src, dst),
                DType::BF16 => encode::<BF16>(src, dst),
                _ => 0,
            }
        }
    }

    pub(super) fn cast_prefix(from: DType, src: &[u8], to: DType, dst: &mut [u8]) -> usize {
        // SAFETY: the caller checked AVX2 and F16C at run time; `run` stays inside both slices.
        unsafe {
            match (from, to) {
                (DType::BF16, DType::F16) => run::<BF16, F16>(src, dst),
                (DType::F16, DType::BF16) => run::<F16, BF16>(src, dst),
                (DType::F32, DType::F16) => run::<F32, F16>(src, dst),
                (DType::F32, DType::BF16) => run::<F32, BF16>(src, dst),
                (DType::F16, DType::F32) => run::<F16, F32>(src, dst),
                (DType::BF16, DType::F32) => run::<BF16, F32>(src, dst),
                _ => 0,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cast::{cast, cast_scalar};
    use lbrx_core::DType;

    const FAMILY: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

    fn all_u16_patterns() -> Vec<u8> {
        (0..=u16::MAX).flat_map(|v| v.to_le_bytes()).collect()
    }

    fn random_f32(n: usize) -> Vec<u8> {
        let mut x = 0x2545f4914f6cdd1du64;
        let mut out = Vec::with_capacity(n * 4);
        for i in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Half raw bit patterns (NaNs, Infs, subnormals), half ordinary magnitudes.
            let v = if i % 2 == 0 {
                f32::from_bits(x as u32)
            } else {
                ((x >> 40) as f32 / 1e6 - 8.0) * 10f32.powi((x % 9) as i32 - 4)
            };
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    fn check(from: DType, src: &[u8], to: DType) {
        let n = src.len() / from.info().type_size as usize;
        let mut a = vec![0u8; n * to.info().type_size as usize];
        let mut b = a.clone();
        cast(from, src, to, &mut a).unwrap();
        cast_scalar(from, src, to, &mut b).unwrap();
        if let Some(i) = a.iter().zip(&b).position(|(x, y)| x != y) {
            let e = i / to.info().type_size as usize;
            panic!(
                "{from}->{to}: element {e} differs (simd {:02x?} vs scalar {:02x?})",
                &a[i..i + 1],
                &b[i..i + 1]
            );
        }
    }

    #[test]
    fn simd_equals_scalar_on_every_16_bit_input() {
        let src = all_u16_patterns();
        for from in [DType::F16, DType::BF16] {
            for to in FAMILY {
                if to != from {
                    check(from, &src, to);
                    check(from, &src[2..src.len() - 6], to); // odd lengths: the scalar tail takes over
                }
            }
        }
    }

    #[test]
    fn simd_encode_equals_scalar_encode() {
        let bytes = random_f32(1 << 16);
        let vals: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        for to in [DType::F16, DType::BF16, DType::F32, DType::F8E4M3] {
            for n in [vals.len(), 1001, 7] {
                let ts = to.info().type_size as usize;
                let (mut a, mut b) = (vec![0u8; n * ts], vec![0u8; n * ts]);
                crate::cast::encode_f32_fast(to, &vals[..n], &mut a);
                crate::cast::encode_f32(to, &vals[..n], &mut b);
                assert!(a == b, "{to}, {n} values");
            }
        }
    }

    #[test]
    fn simd_equals_scalar_on_random_f32() {
        let src = random_f32(1 << 18);
        for to in [DType::F16, DType::BF16] {
            check(DType::F32, &src, to);
            check(DType::F32, &src[4..4 * 1001], to);
        }
    }
}
