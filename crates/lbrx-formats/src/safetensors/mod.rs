//! SafeTensors: single files and sharded directories.
//!
//! Layout (spec: <https://github.com/huggingface/safetensors#format>):
//!
//! ```text
//! [u64 little-endian N][N bytes of UTF-8 JSON header][data section]
//! header = {"__metadata__": {str: str}?, NAME: {"dtype": "F16", "shape": [..], "data_offsets": [BEGIN, END]}, ...}
//! ```
//!
//! Offsets are relative to the data section; tensors are row-major, little-endian, and together cover the
//! data section exactly (no overlaps, no holes, no trailing bytes). The reference writer pads the header with
//! spaces to a multiple of 8 and orders tensors by dtype (descending) then name.
//!
//! A sharded model is a directory of such files plus `model.safetensors.index.json`
//! (`{"metadata": {"total_size": N}, "weight_map": {NAME: SHARD_FILE}}`), as `transformers` writes it.

mod index;
mod reader;
mod writer;

pub use index::{read_index, ShardIndex, INDEX_SUFFIX};
pub use reader::{parse_header, Header, SafetensorsDir, SafetensorsFile, HEADER_CAP};
pub use writer::{
    header_bytes, index_json, plan_shards, shard_file_names, FileLayout, OutTensor, PlacedTensor,
};
