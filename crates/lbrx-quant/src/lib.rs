//! Numeric codecs of lbrx: element-wise float casts, and (as they land) the block quantizers.

pub mod cast;
mod simd;

pub use cast::cast;
