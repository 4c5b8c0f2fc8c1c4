//! MLX quantization settings as `mlx_lm.convert` takes them (`-q --q-bits --q-group-size --q-mode
//! --quant-predicate`), checked.

use lbrx_core::{Error, Result};
use lbrx_quant::mlx::Mode;

/// The mixed-precision recipes `mlx_lm.convert --quant-predicate` knows: (name, low bits, high bits).
pub const RECIPES: [(&str, u32, u32); 4] = [
    ("mixed_2_6", 2, 6),
    ("mixed_3_4", 3, 4),
    ("mixed_3_6", 3, 6),
    ("mixed_4_6", 4, 6),
];

/// MLX quantization settings (`mlx_lm.convert -q --q-bits --q-group-size --q-mode --quant-predicate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MlxQuant {
    /// Bits per weight (2, 3, 4, 5, 6, 8); the low bits of a mixed recipe replace it where the recipe says.
    pub bits: u32,
    /// Values per group (32, 64, 128; the float modes' own size).
    pub group_size: u32,
    /// Index into [`RECIPES`].
    pub recipe: Option<usize>,
    /// Affine, or a float mode (mxfp4, mxfp8, nvfp4).
    pub mode: Mode,
}

impl Default for MlxQuant {
    fn default() -> Self {
        MlxQuant {
            bits: 4,
            group_size: 64,
            recipe: None,
            mode: Mode::Affine,
        }
    }
}

impl MlxQuant {
    /// Settings from the command line's values (each optional, `mlx_lm`'s defaults otherwise), checked.
    pub fn new(
        bits: Option<u32>,
        group_size: Option<u32>,
        recipe: Option<&str>,
        mode: Option<&str>,
    ) -> Result<Self> {
        let mode = match mode {
            None => Mode::Affine,
            Some(m) => Mode::parse(m).ok_or_else(|| {
                let modes = lbrx_quant::codec::mlx_modes();
                Error::Usage(format!(
                    "unknown MLX quantization mode '{m}' (use one of {})",
                    modes.join(", ")
                ))
            })?,
        };
        let recipe = match recipe {
            None => None,
            Some(_) if mode != Mode::Affine => {
                return Err(Error::Usage(
                    "quantization recipes only use the affine mode".into(),
                ))
            }
            Some(r) => Some(RECIPES.iter().position(|x| x.0 == r).ok_or_else(|| {
                let names: Vec<&str> = RECIPES.iter().map(|x| x.0).collect();
                Error::Usage(format!(
                    "unknown quantization recipe '{r}' (use one of {})",
                    names.join(", ")
                ))
            })?),
        };
        let (dg, db) = mode.defaults();
        let q = MlxQuant {
            bits: bits.unwrap_or(db),
            group_size: group_size.unwrap_or(dg as u32),
            recipe,
            mode,
        };
        if mode != Mode::Affine {
            if (q.group_size as usize, q.bits) != (dg, db) {
                return Err(Error::Usage(format!(
                    "MLX {} quantizes {db} bits in groups of {dg}, not {} bits in groups of {}",
                    mode.name(),
                    q.bits,
                    q.group_size
                )));
            }
        } else if !lbrx_quant::mlx::BITS.contains(&q.bits)
            || !lbrx_quant::mlx::GROUP_SIZES.contains(&(q.group_size as usize))
        {
            return Err(Error::Usage(format!(
                "MLX quantizes with bits {:?} and group sizes {:?}, not {} bits in groups of {}",
                lbrx_quant::mlx::BITS,
                lbrx_quant::mlx::GROUP_SIZES,
                q.bits,
                q.group_size
            )));
        }
        Ok(q)
    }
}
