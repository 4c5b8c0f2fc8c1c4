//! The codec registry: one row per encoding lbrx reads or writes — every float cast, every ggml block type,
//! the MLX affine and float modes, the scaled families — with its block geometry, whether it decodes and
//! encodes (plain and importance-weighted), the companion outputs it writes beside its values, the statistics
//! it needs before encoding, and whether it needs an importance matrix.
//!
//! The rows are assembled once from the family tables that hold each family's code (`lbrx_core::DTYPES`
//! for geometry, `ggml_quant`'s quantizer table, `ggml::dequantize`, `mlx::MODES`, `scaled::SCHEMES`), so
//! each fact has one home; the CLI's lists, help and errors read this registry.

use crate::scaled::{Granularity, SCHEMES};
use lbrx_core::{DType, DTypeKind, DTYPES};

/// The family of an encoding (which module's code runs it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// An element-wise float type (`cast`).
    Float,
    /// A ggml block type (`ggml`, `ggml_quant`).
    Ggml,
    /// An MLX quantization mode (`mlx`): packed uint32 words.
    Mlx(crate::mlx::Mode),
    /// A scaled low-precision family (`scaled`).
    Scaled,
}

/// A tensor an encoding writes beside its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Companion {
    /// Per-group scales (`P.scales`; in the values' float type for MLX affine, E8M0/E4M3 bytes for the float
    /// modes).
    Scales,
    /// Per-group biases (`P.biases`, MLX affine).
    Biases,
    /// The dequantization scale of a scaled weight (`P.weight_scale`: per tensor, row or block).
    WeightScale,
}

/// A reduction an encoding needs over its input before any of it is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statistic {
    /// The absolute maximum over the whole tensor, each row or each tile.
    AbsMax(Granularity),
}

/// One encoding.
#[derive(Debug, Clone)]
pub struct Codec {
    /// Name as the CLI spells it (`F16`, `Q4_K`, `affine`, `fp8`).
    pub name: &'static str,
    /// Its family.
    pub family: Family,
    /// The stored dtype of its values (`U32` words for MLX).
    pub dtype: DType,
    /// Values per block (1 for element-wise types; the group size for MLX float modes).
    pub block: u32,
    /// Bits per value for MLX modes (`None`: from the dtype's block and type size).
    pub bits: Option<u32>,
    /// Decodes to f32.
    pub decodes: bool,
    /// Encodes from f32 without an importance matrix.
    pub encodes: bool,
    /// Has an importance-weighted path.
    pub weighted: bool,
    /// Encodes only with an importance matrix (ggml's `ggml_quantize_requires_imatrix`).
    pub needs_imatrix: bool,
    /// Tensors written beside the values.
    pub companions: &'static [Companion],
    /// What must be computed over the input first.
    pub statistic: Option<Statistic>,
}

fn build() -> Vec<Codec> {
    use crate::ggml_quant::{can_quantize, has_weighted_path, requires_imatrix};
    let mut out = Vec::new();
    for r in DTYPES {
        let d = r.dtype;
        let info = d.info();
        let family = match info.kind {
            DTypeKind::Float if d.is_castable_float() => Family::Float,
            DTypeKind::Quantized => Family::Ggml,
            _ => continue,
        };
        out.push(Codec {
            name: d.name(),
            family,
            dtype: d,
            block: info.block_size,
            bits: None,
            decodes: family == Family::Float || crate::ggml::can_dequantize(d),
            encodes: family == Family::Float || (can_quantize(d) && !requires_imatrix(d)),
            weighted: has_weighted_path(d),
            needs_imatrix: requires_imatrix(d),
            companions: &[],
            statistic: None,
        });
    }
    for &(mode, name, group, bits) in &crate::mlx::MODES {
        let affine = mode == crate::mlx::Mode::Affine;
        out.push(Codec {
            name,
            family: Family::Mlx(mode),
            dtype: DType::U32,
            block: group as u32,
            bits: Some(bits),
            decodes: true,
            encodes: true,
            weighted: false,
            needs_imatrix: false,
            companions: if affine {
                &[Companion::Scales, Companion::Biases]
            } else {
                &[Companion::Scales]
            },
            statistic: None,
        });
    }
    for s in SCHEMES {
        out.push(Codec {
            name: s.name,
            family: Family::Scaled,
            dtype: s.values,
            block: 1,
            bits: None,
            decodes: true,
            encodes: true,
            weighted: false,
            needs_imatrix: false,
            companions: &[Companion::WeightScale],
            statistic: Some(Statistic::AbsMax(Granularity::Tensor)),
        });
    }
    out
}

/// Every encoding, in registry order (the float types and ggml types in `DTYPES` order, then the MLX modes,
/// then the scaled families).
pub fn codecs() -> &'static [Codec] {
    static CODECS: std::sync::OnceLock<Vec<Codec>> = std::sync::OnceLock::new();
    CODECS.get_or_init(build)
}

/// The encodings of one family.
pub fn of_family(f: impl Fn(Family) -> bool) -> impl Iterator<Item = &'static Codec> {
    codecs().iter().filter(move |c| f(c.family))
}

/// The names of one family's encodings, in registry order.
pub fn names(f: impl Fn(Family) -> bool) -> Vec<&'static str> {
    of_family(f).map(|c| c.name).collect()
}

/// The MLX modes' names.
pub fn mlx_modes() -> Vec<&'static str> {
    names(|f| matches!(f, Family::Mlx(_)))
}

/// The scaled families' names.
pub fn scaled_families() -> Vec<&'static str> {
    names(|f| f == Family::Scaled)
}

/// The float types a cast writes.
pub fn cast_types() -> Vec<&'static str> {
    names(|f| f == Family::Float)
}

/// The row of a float or ggml dtype.
pub fn of_dtype(d: DType) -> Option<&'static Codec> {
    codecs()
        .iter()
        .find(|c| c.dtype == d && matches!(c.family, Family::Float | Family::Ggml))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_agrees_with_the_family_tables() {
        // every quantizer of ggml_quant is a row that encodes (or needs an importance matrix)
        for r in DTYPES {
            let q = crate::ggml_quant::can_quantize(r.dtype);
            if let Some(c) = of_dtype(r.dtype).filter(|c| c.family == Family::Ggml) {
                assert_eq!(q, c.encodes || c.needs_imatrix, "{}", c.name);
            }
        }
        assert_eq!(of_dtype(DType::Q4K).map(|c| c.block), Some(256));
        assert!(of_dtype(DType::IQ2XXS).is_some_and(|c| c.needs_imatrix && !c.encodes));
        assert!(of_dtype(DType::Q4K).is_some_and(|c| c.weighted));
        assert!(of_dtype(DType::Q4_0).is_some_and(|c| c.weighted));
        assert!(of_dtype(DType::F16).is_some_and(|c| !c.weighted && c.encodes));
        let affine = codecs().iter().find(|c| c.name == "affine").unwrap();
        assert_eq!(affine.companions, &[Companion::Scales, Companion::Biases]);
        let fp8 = codecs().iter().find(|c| c.name == "fp8").unwrap();
        assert_eq!(fp8.companions, &[Companion::WeightScale]);
        assert!(fp8.statistic.is_some());
        // names are unique within a family kind (MLX's nvfp4 and ggml's NVFP4 are different layouts)
        let kind = |c: &Codec| match c.family {
            Family::Mlx(_) => 2,
            Family::Scaled => 3,
            _ => 0,
        };
        for a in codecs() {
            let same = codecs()
                .iter()
                .filter(|b| kind(a) == kind(b) && a.name.eq_ignore_ascii_case(b.name))
                .count();
            assert_eq!(same, 1, "{}", a.name);
        }
    }
}
