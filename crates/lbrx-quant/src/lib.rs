//! Numeric codecs of lbrx: element-wise float casts, and (as they land) the block quantizers.

/// The widest x86-64 vector extension the dispatched kernels (`simd_build!`) use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SimdLevel {
    /// Baseline code (SSE2 on x86-64; NEON, which is baseline, on aarch64).
    Portable,
    /// The same code compiled with AVX2 enabled.
    Avx2,
    /// The same code compiled with AVX-512 (F, BW, VL) enabled.
    Avx512,
}

static SIMD_CAP: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(u8::MAX);

/// The level the kernels run at: what the CPU has, capped by `LBRX_SIMD` (`portable`, `avx2`, `avx512`) and by
/// [`cap_simd_level`].
pub fn simd_level() -> SimdLevel {
    static DETECTED: std::sync::OnceLock<SimdLevel> = std::sync::OnceLock::new();
    let detected = *DETECTED.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        let cpu = if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            SimdLevel::Avx512
        } else if std::arch::is_x86_feature_detected!("avx2") {
            SimdLevel::Avx2
        } else {
            SimdLevel::Portable
        };
        #[cfg(not(target_arch = "x86_64"))]
        let cpu = SimdLevel::Portable;
        let cap = match std::env::var("LBRX_SIMD").as_deref() {
            Ok("portable") => SimdLevel::Portable,
            Ok("avx2") => SimdLevel::Avx2,
            _ => SimdLevel::Avx512,
        };
        cpu.min(cap)
    });
    let cap = match SIMD_CAP.load(std::sync::atomic::Ordering::Relaxed) {
        0 => SimdLevel::Portable,
        1 => SimdLevel::Avx2,
        _ => SimdLevel::Avx512,
    };
    detected.min(cap)
}

/// Caps the dispatched kernels at `level` for the whole process (tests and benchmarks compare the builds; the
/// results are the same at every level).
pub fn cap_simd_level(level: SimdLevel) {
    SIMD_CAP.store(level as u8, std::sync::atomic::Ordering::Relaxed);
}

/// Defines `fn $name(args) -> ret` that runs `$portable(args)` compiled with AVX-512 or AVX2 enabled where the
/// CPU has them ([`simd_level`]), else as it is: the same code, so the same results (Rust never fuses a
/// multiply and an add), in two or four times the vector lanes of baseline x86-64. `$portable` must be
/// `#[inline(always)]` so the wider builds get its body.
macro_rules! simd_build {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty = $portable:ident) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) -> $ret {
                    $portable($($arg),*)
                }
                #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx512($($arg: $ty),*) -> $ret {
                    $portable($($arg),*)
                }
                match $crate::simd_level() {
                    // SAFETY: simd_level() reports AVX-512 F/BW/VL only when the CPU has them.
                    $crate::SimdLevel::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: simd_level() reports AVX2 only when the CPU has it.
                    $crate::SimdLevel::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::SimdLevel::Portable => {}
                }
            }
            $portable($($arg),*)
        }
    };
}

pub mod cast;
pub mod ggml;
mod ggml_iq;
mod ggml_iq1;
pub mod ggml_kquant;
pub mod ggml_quant;
mod ggml_tables;
mod ggml_ternary;
pub mod ggml_weighted;
pub mod mlx;
mod simd;

pub use cast::cast;
pub mod codec;
pub mod scaled;
