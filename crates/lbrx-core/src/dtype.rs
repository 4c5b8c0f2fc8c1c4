//! The dtype registry: one table row per element type, the only place its names and sizes live.
//!
//! Sizes follow the block model of ggml: a tensor of `n` elements of a type occupies
//! `n / block_size * type_size` bytes and `n` must be a multiple of `block_size`. Plain scalar types
//! have `block_size == 1`; sub-byte floats (F4, F6) and block-quantized types have larger blocks.

use std::fmt;

/// What kind of numbers a dtype holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DTypeKind {
    /// IEEE-style binary floating point (incl. bfloat16 and the FP8/FP6/FP4 minifloats).
    Float,
    /// Signed integers.
    SignedInt,
    /// Unsigned integers.
    UnsignedInt,
    /// One byte per boolean.
    Bool,
    /// Complex numbers (pairs of floats).
    Complex,
    /// Block-quantized values (decoded by a codec in `lbrx-quant`).
    Quantized,
}

macro_rules! dtype_table {
    ($( $variant:ident => ($st:expr, $gguf:expr, $block:expr, $size:expr, $kind:ident, $rank:expr, $doc:expr) ),+ $(,)?) => {
        /// An element type. Its properties come from [`DTYPES`], the single registry.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum DType {
            $( #[doc = $doc] $variant, )+
        }

        /// The registry: one row per dtype, in declaration order of [`DType`].
        pub static DTYPES: &[DTypeInfo] = &[
            $( DTypeInfo {
                dtype: DType::$variant,
                name: $st,
                gguf_id: $gguf,
                block_size: $block,
                type_size: $size,
                kind: DTypeKind::$kind,
                safetensors_rank: $rank,
            }, )+
        ];
    };
}

// name (as the SafeTensors spec spells it), GGUF/ggml type id, block size (elements), type size (bytes per
// block), kind, rank in the `safetensors` crate's `Dtype` enum (its writer orders tensors by it, descending)
dtype_table! {
    F64 => ("F64", Some(28), 1, 8, Float, 19, "IEEE binary64."),
    F32 => ("F32", Some(0), 1, 4, Float, 17, "IEEE binary32."),
    F16 => ("F16", Some(1), 1, 2, Float, 13, "IEEE binary16."),
    BF16 => ("BF16", Some(30), 1, 2, Float, 14, "bfloat16: the top half of an IEEE binary32."),
    F8E4M3 => ("F8_E4M3", None, 1, 1, Float, 7, "FP8 E4M3 'fn' (no infinities, one NaN pattern, max 448)."),
    F8E5M2 => ("F8_E5M2", None, 1, 1, Float, 6, "FP8 E5M2 (IEEE-like, with infinities)."),
    F8E8M0 => ("F8_E8M0", None, 1, 1, Float, 8, "FP8 E8M0: an unsigned power-of-two scale (MX formats)."),
    F8E4M3Fnuz => ("F8_E4M3FNUZ", None, 1, 1, Float, 9, "FP8 E4M3 'fnuz' (bias 8, no negative zero)."),
    F8E5M2Fnuz => ("F8_E5M2FNUZ", None, 1, 1, Float, 10, "FP8 E5M2 'fnuz' (bias 16, no negative zero)."),
    F6E2M3 => ("F6_E2M3", None, 4, 3, Float, 2, "FP6 E2M3, four values packed in three bytes."),
    F6E3M2 => ("F6_E3M2", None, 4, 3, Float, 3, "FP6 E3M2, four values packed in three bytes."),
    F4 => ("F4", None, 2, 1, Float, 1, "FP4 E2M1, two values per byte."),
    C64 => ("C64", None, 1, 8, Complex, 18, "Complex number of two binary32."),
    I64 => ("I64", Some(27), 1, 8, SignedInt, 20, "Signed 64-bit integer."),
    I32 => ("I32", Some(26), 1, 4, SignedInt, 15, "Signed 32-bit integer."),
    I16 => ("I16", Some(25), 1, 2, SignedInt, 11, "Signed 16-bit integer."),
    I8 => ("I8", Some(24), 1, 1, SignedInt, 5, "Signed 8-bit integer."),
    U64 => ("U64", None, 1, 8, UnsignedInt, 21, "Unsigned 64-bit integer."),
    U32 => ("U32", None, 1, 4, UnsignedInt, 16, "Unsigned 32-bit integer."),
    U16 => ("U16", None, 1, 2, UnsignedInt, 12, "Unsigned 16-bit integer."),
    U8 => ("U8", None, 1, 1, UnsignedInt, 4, "Unsigned 8-bit integer."),
    Bool => ("BOOL", None, 1, 1, Bool, 0, "Boolean, one byte (0 or 1)."),
}

/// One row of the dtype registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DTypeInfo {
    /// The dtype this row describes.
    pub dtype: DType,
    /// Canonical name, as the SafeTensors spec spells it (`F16`, `BF16`, `F8_E4M3`, ...).
    pub name: &'static str,
    /// The ggml/GGUF type id, where GGUF has one.
    pub gguf_id: Option<u32>,
    /// Elements per block (1 for scalar types).
    pub block_size: u32,
    /// Bytes per block.
    pub type_size: u32,
    /// What kind of numbers it holds.
    pub kind: DTypeKind,
    /// Position in the reference `safetensors` crate's dtype order (its writer sorts tensors by it, descending).
    pub safetensors_rank: u8,
}

impl DType {
    /// This dtype's registry row.
    pub fn info(self) -> &'static DTypeInfo {
        &DTYPES[self as usize]
    }

    /// Canonical name (`F32`, `BF16`, `F8_E4M3`, ...).
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Looks a dtype up by its SafeTensors name (exact, case-sensitive, as the spec requires).
    pub fn from_safetensors_name(name: &str) -> Option<DType> {
        DTYPES.iter().find(|r| r.name == name).map(|r| r.dtype)
    }

    /// Looks a dtype up by a user-typed name: case-insensitive, `-`/`_` alike, common aliases
    /// (`float16`, `half`, `bfloat16`, `fp8`, `e4m3`, `float32` ...).
    pub fn parse_user(name: &str) -> Option<DType> {
        let n: String = name
            .trim()
            .to_ascii_uppercase()
            .chars()
            .map(|c| if c == '-' { '_' } else { c })
            .collect();
        let alias = match n.as_str() {
            "FLOAT64" | "DOUBLE" | "FP64" => Some(DType::F64),
            "FLOAT32" | "FLOAT" | "FP32" => Some(DType::F32),
            "FLOAT16" | "HALF" | "FP16" => Some(DType::F16),
            "BFLOAT16" => Some(DType::BF16),
            "FP8" | "F8" | "E4M3" | "F8_E4M3FN" | "FLOAT8_E4M3FN" | "FP8_E4M3" => {
                Some(DType::F8E4M3)
            }
            "E5M2" | "FLOAT8_E5M2" | "FP8_E5M2" => Some(DType::F8E5M2),
            _ => None,
        };
        alias.or_else(|| Self::from_safetensors_name(&n))
    }

    /// Bits per element (fractional for block types).
    pub fn bits_per_element(self) -> f64 {
        let i = self.info();
        i.type_size as f64 * 8.0 / i.block_size as f64
    }

    /// Whether this is a float type that the cast codecs handle (F64, F32, F16, BF16, F8_E4M3, F8_E5M2).
    pub fn is_castable_float(self) -> bool {
        matches!(
            self,
            DType::F64 | DType::F32 | DType::F16 | DType::BF16 | DType::F8E4M3 | DType::F8E5M2
        )
    }

    /// Byte length of `n` elements, or `None` when `n` is not a whole number of blocks or overflows.
    pub fn byte_len_of(self, n: u64) -> Option<u64> {
        let i = self.info();
        if !n.is_multiple_of(i.block_size as u64) {
            return None;
        }
        (n / i.block_size as u64).checked_mul(i.type_size as u64)
    }

    /// Byte length of a tensor of this dtype and `shape`, or `None` on overflow or a partial block.
    pub fn byte_len(self, shape: &[u64]) -> Option<u64> {
        self.byte_len_of(element_count(shape)?)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Number of elements of `shape` (1 for a 0-dim scalar), or `None` on overflow.
pub fn element_count(shape: &[u64]) -> Option<u64> {
    shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows_are_in_variant_order_and_names_unique() {
        for (i, row) in DTYPES.iter().enumerate() {
            assert_eq!(row.dtype as usize, i, "row {} out of order", row.name);
            assert_eq!(DType::from_safetensors_name(row.name), Some(row.dtype));
        }
        let mut names: Vec<_> = DTYPES.iter().map(|r| r.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DTYPES.len());
    }

    #[test]
    fn byte_lengths() {
        assert_eq!(DType::BF16.byte_len(&[3, 4]), Some(24));
        assert_eq!(DType::F32.byte_len(&[]), Some(4));
        assert_eq!(DType::F32.byte_len(&[0, 7]), Some(0));
        assert_eq!(DType::F4.byte_len(&[3]), None);
        assert_eq!(DType::F4.byte_len(&[4]), Some(2));
        assert_eq!(DType::F6E2M3.byte_len(&[8]), Some(6));
        assert_eq!(DType::F64.byte_len(&[u64::MAX, 2]), None);
        assert_eq!(DType::U8.byte_len(&[u64::MAX]), Some(u64::MAX));
        assert_eq!(DType::F16.byte_len(&[u64::MAX]), None);
    }

    #[test]
    fn user_names() {
        assert_eq!(DType::parse_user("bf16"), Some(DType::BF16));
        assert_eq!(DType::parse_user("float16"), Some(DType::F16));
        assert_eq!(DType::parse_user("f8-e4m3"), Some(DType::F8E4M3));
        assert_eq!(DType::parse_user("F8_E5M2"), Some(DType::F8E5M2));
        assert_eq!(DType::parse_user("q4_k"), None);
    }
}
