//! Numeric codecs of lbrx: element-wise float casts, and (as they land) the block quantizers.

pub mod cast;
pub mod ggml;
mod ggml_tables;
pub mod mlx;
mod simd;

pub use cast::cast;
