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

// name (as the SafeTensors spec or ggml spells it), GGUF/ggml type id, block size (elements), type size (bytes
// per block), kind, rank in the `safetensors` crate's `Dtype` enum (its writer orders tensors by it, descending;
// None: not a SafeTensors dtype). ggml ids: ggml.h `enum ggml_type` (llama.cpp as shipped in llama-cpp-python
// 0.3.36); block and type sizes checked against ../shared/golden/ggml-quants/manifest.json by a test.
dtype_table! {
    F64 => ("F64", Some(28), 1, 8, Float, Some(19), "IEEE binary64."),
    F32 => ("F32", Some(0), 1, 4, Float, Some(17), "IEEE binary32."),
    F16 => ("F16", Some(1), 1, 2, Float, Some(13), "IEEE binary16."),
    BF16 => ("BF16", Some(30), 1, 2, Float, Some(14), "bfloat16: the top half of an IEEE binary32."),
    F8E4M3 => ("F8_E4M3", None, 1, 1, Float, Some(7), "FP8 E4M3 'fn' (no infinities, one NaN pattern, max 448)."),
    F8E5M2 => ("F8_E5M2", None, 1, 1, Float, Some(6), "FP8 E5M2 (IEEE-like, with infinities)."),
    F8E8M0 => ("F8_E8M0", None, 1, 1, Float, Some(8), "FP8 E8M0: an unsigned power-of-two scale (MX formats)."),
    F8E4M3Fnuz => ("F8_E4M3FNUZ", None, 1, 1, Float, Some(9), "FP8 E4M3 'fnuz' (bias 8, no negative zero)."),
    F8E5M2Fnuz => ("F8_E5M2FNUZ", None, 1, 1, Float, Some(10), "FP8 E5M2 'fnuz' (bias 16, no negative zero)."),
    F6E2M3 => ("F6_E2M3", None, 4, 3, Float, Some(2), "FP6 E2M3, four values packed in three bytes."),
    F6E3M2 => ("F6_E3M2", None, 4, 3, Float, Some(3), "FP6 E3M2, four values packed in three bytes."),
    F4 => ("F4", None, 2, 1, Float, Some(1), "FP4 E2M1, two values per byte."),
    C64 => ("C64", None, 1, 8, Complex, Some(18), "Complex number of two binary32."),
    I64 => ("I64", Some(27), 1, 8, SignedInt, Some(20), "Signed 64-bit integer."),
    I32 => ("I32", Some(26), 1, 4, SignedInt, Some(15), "Signed 32-bit integer."),
    I16 => ("I16", Some(25), 1, 2, SignedInt, Some(11), "Signed 16-bit integer."),
    I8 => ("I8", Some(24), 1, 1, SignedInt, Some(5), "Signed 8-bit integer."),
    U64 => ("U64", None, 1, 8, UnsignedInt, Some(21), "Unsigned 64-bit integer."),
    U32 => ("U32", None, 1, 4, UnsignedInt, Some(16), "Unsigned 32-bit integer."),
    U16 => ("U16", None, 1, 2, UnsignedInt, Some(12), "Unsigned 16-bit integer."),
    U8 => ("U8", None, 1, 1, UnsignedInt, Some(4), "Unsigned 8-bit integer."),
    Bool => ("BOOL", None, 1, 1, Bool, Some(0), "Boolean, one byte (0 or 1)."),
    Q4_0 => ("Q4_0", Some(2), 32, 18, Quantized, None, "ggml Q4_0: f16 scale + 32 4-bit values."),
    Q4_1 => ("Q4_1", Some(3), 32, 20, Quantized, None, "ggml Q4_1: f16 scale and min + 32 4-bit values."),
    Q5_0 => ("Q5_0", Some(6), 32, 22, Quantized, None, "ggml Q5_0."),
    Q5_1 => ("Q5_1", Some(7), 32, 24, Quantized, None, "ggml Q5_1."),
    Q8_0 => ("Q8_0", Some(8), 32, 34, Quantized, None, "ggml Q8_0: f16 scale + 32 int8 values."),
    Q8_1 => ("Q8_1", Some(9), 32, 36, Quantized, None, "ggml Q8_1 (intermediate)."),
    Q2K => ("Q2_K", Some(10), 256, 84, Quantized, None, "ggml Q2_K super-block."),
    Q3K => ("Q3_K", Some(11), 256, 110, Quantized, None, "ggml Q3_K super-block."),
    Q4K => ("Q4_K", Some(12), 256, 144, Quantized, None, "ggml Q4_K super-block."),
    Q5K => ("Q5_K", Some(13), 256, 176, Quantized, None, "ggml Q5_K super-block."),
    Q6K => ("Q6_K", Some(14), 256, 210, Quantized, None, "ggml Q6_K super-block."),
    Q8K => ("Q8_K", Some(15), 256, 292, Quantized, None, "ggml Q8_K (intermediate)."),
    IQ2XXS => ("IQ2_XXS", Some(16), 256, 66, Quantized, None, "ggml IQ2_XXS."),
    IQ2XS => ("IQ2_XS", Some(17), 256, 74, Quantized, None, "ggml IQ2_XS."),
    IQ3XXS => ("IQ3_XXS", Some(18), 256, 98, Quantized, None, "ggml IQ3_XXS."),
    IQ1S => ("IQ1_S", Some(19), 256, 50, Quantized, None, "ggml IQ1_S."),
    IQ4NL => ("IQ4_NL", Some(20), 32, 18, Quantized, None, "ggml IQ4_NL."),
    IQ3S => ("IQ3_S", Some(21), 256, 110, Quantized, None, "ggml IQ3_S."),
    IQ2S => ("IQ2_S", Some(22), 256, 82, Quantized, None, "ggml IQ2_S."),
    IQ4XS => ("IQ4_XS", Some(23), 256, 136, Quantized, None, "ggml IQ4_XS."),
    IQ1M => ("IQ1_M", Some(29), 256, 56, Quantized, None, "ggml IQ1_M."),
    TQ1_0 => ("TQ1_0", Some(34), 256, 54, Quantized, None, "ggml TQ1_0 (ternary)."),
    TQ2_0 => ("TQ2_0", Some(35), 256, 66, Quantized, None, "ggml TQ2_0 (ternary)."),
    MXFP4 => ("MXFP4", Some(39), 32, 17, Quantized, None, "ggml MXFP4: E8M0 scale + 32 FP4 values."),
    NVFP4 => ("NVFP4", Some(40), 64, 36, Quantized, None, "ggml NVFP4: E4M3 scales + 64 FP4 values."),
    Q1_0 => ("Q1_0", Some(41), 128, 18, Quantized, None, "ggml Q1_0."),
    Q2_0 => ("Q2_0", Some(42), 64, 18, Quantized, None, "ggml Q2_0."),
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
    /// Position in the reference `safetensors` crate's dtype order (its writer sorts tensors by it, descending);
    /// `None` for types SafeTensors does not define (the ggml block types).
    pub safetensors_rank: Option<u8>,
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
        DTYPES
            .iter()
            .find(|r| r.name == name && r.safetensors_rank.is_some())
            .map(|r| r.dtype)
    }

    /// Looks a dtype up by its ggml/GGUF type id. Retired ids give `Err` with the retired type's name.
    pub fn from_gguf_id(id: u32) -> Result<DType, GgufTypeError> {
        if let Some(r) = DTYPES.iter().find(|r| r.gguf_id == Some(id)) {
            return Ok(r.dtype);
        }
        match RETIRED_GGML_TYPES.iter().find(|(i, _)| *i == id) {
            Some((_, name)) => Err(GgufTypeError::Retired(name)),
            None => Err(GgufTypeError::Unknown),
        }
    }

    /// Looks a dtype up by name as llama.cpp or SafeTensors spell it, case-insensitive (`q4_k`, `BF16`).
    pub fn from_name(name: &str) -> Option<DType> {
        DTYPES
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(name))
            .map(|r| r.dtype)
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

/// torch's dtype names (`torch.float32` is pickled as the global `torch float32`, and `config.json` spells
/// `torch_dtype` the same way), the one table of them: the first row of a dtype is its canonical name, later
/// rows are torch's aliases.
pub static TORCH_DTYPES: &[(&str, DType)] = &[
    ("float64", DType::F64),
    ("float32", DType::F32),
    ("float16", DType::F16),
    ("bfloat16", DType::BF16),
    ("float8_e4m3fn", DType::F8E4M3),
    ("float8_e5m2", DType::F8E5M2),
    ("float8_e8m0fnu", DType::F8E8M0),
    ("float8_e4m3fnuz", DType::F8E4M3Fnuz),
    ("float8_e5m2fnuz", DType::F8E5M2Fnuz),
    ("complex64", DType::C64),
    ("int64", DType::I64),
    ("int32", DType::I32),
    ("int16", DType::I16),
    ("int8", DType::I8),
    ("uint64", DType::U64),
    ("uint32", DType::U32),
    ("uint16", DType::U16),
    ("uint8", DType::U8),
    ("bool", DType::Bool),
    ("double", DType::F64),
    ("float", DType::F32),
    ("half", DType::F16),
    ("cfloat", DType::C64),
    ("long", DType::I64),
    ("int", DType::I32),
    ("short", DType::I16),
];

/// The dtype of a torch dtype name (`float32`, `bfloat16`, `half`, `float8_e4m3fn` ...).
pub fn torch_dtype(name: &str) -> Option<DType> {
    TORCH_DTYPES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, d)| d)
}

impl DType {
    /// torch's canonical name of this dtype (`float32`, `bfloat16` ...), where torch has the type.
    pub fn torch_name(self) -> Option<&'static str> {
        TORCH_DTYPES
            .iter()
            .find(|(_, d)| *d == self)
            .map(|&(n, _)| n)
    }
}

/// ggml type ids that were defined once and have been retired (the ids are never reused).
pub static RETIRED_GGML_TYPES: &[(u32, &str)] = &[
    (4, "Q4_2"),
    (5, "Q4_3"),
    (31, "Q4_0_4_4"),
    (32, "Q4_0_4_8"),
    (33, "Q4_0_8_8"),
    (36, "IQ4_NL_4_4"),
    (37, "IQ4_NL_4_8"),
    (38, "IQ4_NL_8_8"),
];

/// Why a ggml type id has no dtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgufTypeError {
    /// The id was never defined.
    Unknown,
    /// The id belonged to a type that ggml has removed (its name).
    Retired(&'static str),
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
            if row.safetensors_rank.is_some() {
                assert_eq!(DType::from_safetensors_name(row.name), Some(row.dtype));
            } else {
                assert_eq!(DType::from_safetensors_name(row.name), None);
            }
            if let Some(id) = row.gguf_id {
                assert_eq!(DType::from_gguf_id(id), Ok(row.dtype));
                assert!(
                    !RETIRED_GGML_TYPES.iter().any(|(r, _)| *r == id),
                    "{} reuses a retired id",
                    row.name
                );
            }
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
    fn ggml_ids() {
        assert_eq!(DType::from_gguf_id(4), Err(GgufTypeError::Retired("Q4_2")));
        assert_eq!(DType::from_gguf_id(99), Err(GgufTypeError::Unknown));
        assert_eq!(DType::Q4K.byte_len(&[2, 256]), Some(288));
        assert_eq!(DType::Q4K.byte_len(&[2, 255]), None);
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
