//! Numeric codecs of lbrx: element-wise float casts, and (as they land) the block quantizers.

pub mod cast;
pub mod ggml;
mod ggml_tables;
mod simd;

pub use cast::cast;
