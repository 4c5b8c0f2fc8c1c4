//! llama.cpp's file types (`enum llama_ftype` in llama.h, `general.file_type` in a GGUF): one table that the
//! recipes, GGUF planning and `health` read.

use lbrx_core::DType;

/// A llama.cpp file type (`enum llama_ftype` in llama.h): the one table recipes, planning and health read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileType {
    /// Its name, as llama-quantize spells it.
    pub name: &'static str,
    /// `general.file_type`.
    pub id: u32,
    /// The weight type most tensors get (llama-quant.cpp's `default_type`).
    pub default: DType,
    /// The type the recipe gives the matrices that are not MoE experts, where that is not `default`
    /// (MXFP4_MOE: Q8_0).
    pub dense: DType,
    /// Whether llama-quantize has a recipe of this name.
    pub recipe: bool,
}

const fn ft(name: &'static str, id: u32, default: DType, recipe: bool) -> FileType {
    FileType {
        name,
        id,
        default,
        dense: default,
        recipe,
    }
}

/// Every llama.cpp file type lbrx writes or reads, in llama-quantize's order of options.
pub const FILE_TYPES: &[FileType] = &[
    ft("F32", 0, DType::F32, true),
    ft("F16", 1, DType::F16, true),
    ft("Q4_0", 2, DType::Q4_0, true),
    ft("Q4_1", 3, DType::Q4_1, true),
    ft("Q8_0", 7, DType::Q8_0, true),
    ft("Q5_0", 8, DType::Q5_0, true),
    ft("Q5_1", 9, DType::Q5_1, true),
    ft("Q2_K", 10, DType::Q2K, true),
    ft("Q3_K_S", 11, DType::Q3K, true),
    ft("Q3_K_M", 12, DType::Q3K, true),
    ft("Q3_K_L", 13, DType::Q3K, true),
    ft("Q4_K_S", 14, DType::Q4K, true),
    ft("Q4_K_M", 15, DType::Q4K, true),
    ft("Q5_K_S", 16, DType::Q5K, true),
    ft("Q5_K_M", 17, DType::Q5K, true),
    ft("Q6_K", 18, DType::Q6K, true),
    ft("Q2_K_S", 21, DType::Q2K, true),
    ft("IQ2_XXS", 19, DType::IQ2XXS, true),
    ft("IQ2_XS", 20, DType::IQ2XS, true),
    ft("IQ2_S", 28, DType::IQ2XS, true),
    ft("IQ2_M", 29, DType::IQ2S, true),
    ft("IQ1_S", 24, DType::IQ1S, true),
    ft("IQ1_M", 31, DType::IQ1M, true),
    ft("IQ3_XXS", 23, DType::IQ3XXS, true),
    ft("IQ3_XS", 22, DType::IQ3S, true),
    ft("IQ3_S", 26, DType::IQ3S, true),
    ft("IQ3_M", 27, DType::IQ3S, true),
    ft("IQ4_NL", 25, DType::IQ4NL, true),
    ft("IQ4_XS", 30, DType::IQ4XS, true),
    ft("TQ1_0", 36, DType::TQ1_0, true),
    ft("TQ2_0", 37, DType::TQ2_0, true),
    FileType {
        dense: DType::Q8_0,
        ..ft("MXFP4_MOE", 38, DType::MXFP4, true)
    },
    // llama.h has the file type; llama-quantize has no recipe for it.
    ft("NVFP4", 39, DType::NVFP4, false),
    ft("Q1_0", 40, DType::Q1_0, true),
    ft("Q2_0", 41, DType::Q2_0, true),
    ft("BF16", 32, DType::BF16, true),
];

/// The file type with `general.file_type` `id`.
pub fn file_type_by_id(id: u64) -> Option<&'static FileType> {
    FILE_TYPES.iter().find(|f| f.id as u64 == id)
}

/// llama.cpp's `general.file_type` for an output whose weight matrices are all `d`: the K-quants as their _S
/// file types, MXFP4 as MXFP4_MOE, every other type as the file type of its name.
pub fn file_type_of(d: DType) -> Option<&'static FileType> {
    let name = match d {
        DType::Q3K => "Q3_K_S",
        DType::Q4K => "Q4_K_S",
        DType::Q5K => "Q5_K_S",
        DType::MXFP4 => "MXFP4_MOE",
        _ => d.name(),
    };
    FILE_TYPES
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case(name))
}
