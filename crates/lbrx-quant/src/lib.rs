//! Numeric codecs of lbrx: element-wise float casts, and (as they land) the block quantizers.

pub mod cast;
pub mod ggml;
pub mod ggml_kquant;
pub mod ggml_quant;
mod ggml_tables;
pub mod ggml_weighted;
pub mod mlx;
mod simd;

pub use cast::cast;
