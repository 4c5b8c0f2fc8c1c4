//! Numeric codecs of lbrx: element-wise float casts, and (as they land) the block quantizers.

/// Defines `fn $name(args) -> ret` that runs `$portable(args)` compiled with AVX2 enabled where the CPU has it,
/// else as it is: the same code, so the same results (Rust never fuses a multiply and an add), in twice the
/// vector lanes of baseline x86-64. `$portable` must be `#[inline(always)]` so the AVX2 build gets its body.
macro_rules! avx2_build {
    ($(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty = $portable:ident) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) -> $ret {
                    $portable($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2 (checked just above), all `avx2` needs.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $portable($($arg),*)
        }
    };
}

pub mod cast;
pub mod ggml;
mod ggml_iq;
pub mod ggml_kquant;
pub mod ggml_quant;
mod ggml_tables;
pub mod ggml_weighted;
pub mod mlx;
mod simd;

pub use cast::cast;
