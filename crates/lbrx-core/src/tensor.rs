//! Tensor descriptions (read from headers only) and zero-copy views of their bytes.

use crate::dtype::{element_count, DType};
use std::borrow::Cow;

/// A tensor as a source describes it: name, dtype, row-major shape and where its bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Name as stored in the source.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Row-major shape (outermost dimension first); empty for a 0-dim scalar.
    pub shape: Vec<u64>,
    /// Index of the source file holding the bytes.
    pub file: usize,
    /// Absolute byte offset of the first byte in that file.
    pub offset: u64,
    /// Byte length.
    pub len: u64,
}

impl TensorInfo {
    /// Number of elements (1 for a scalar). Sources validate shapes, so this does not overflow.
    pub fn elements(&self) -> u64 {
        element_count(&self.shape).unwrap_or(u64::MAX)
    }
}

/// The bytes of one tensor: borrowed from a memory map where the format allows, owned otherwise.
#[derive(Debug)]
pub struct TensorView<'a> {
    /// The tensor described.
    pub info: &'a TensorInfo,
    /// Its raw little-endian bytes, `info.len` long.
    pub data: Cow<'a, [u8]>,
}

impl TensorView<'_> {
    /// The raw bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }
}
