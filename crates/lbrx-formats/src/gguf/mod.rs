//! GGUF, the file format of llama.cpp and ggml.
//!
//! Layout (spec: <https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>):
//!
//! ```text
//! "GGUF" | u32 version (1..3) | tensor_count | kv_count           (counts: u32 in v1, u64 in v2+)
//! kv_count x  { string key | u32 value_type | value }               (string: length (u32 v1 / u64) + UTF-8)
//!             array value = u32 element_type | count | elements
//! tensor_count x { string name | u32 n_dims | n_dims x dim | u32 ggml_type | u64 offset }
//! padding to `general.alignment` (default 32)
//! data section: each tensor at data_start + offset (offsets aligned), in ggml's `ne` order (innermost first)
//! ```
//!
//! Files are little-endian, or entirely big-endian (the version then reads byte-swapped). Shapes here are
//! row-major: the reader and writer reverse ggml's `ne[]`.

mod reader;
mod split;
mod writer;

pub use reader::{GgufFile, GgufInfo, ARRAY_DEPTH_CAP, MAX_DIMS, STRING_CAP};
pub use split::{parse_split_name, split_path, GgufSplit, SPLIT_KEYS};
pub use writer::{gguf_layout, GgufLayout, GgufTensorSpec};

/// Default data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
