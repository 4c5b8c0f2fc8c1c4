//! What a conversion is asked to do: the options every planner reads, with the recipe and MLX settings they
//! carry, parsed and checked here once.

use crate::ftype::{FileType, FILE_TYPES};
use lbrx_core::{DType, Error, Result};

/// What a conversion is asked to do.
#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// Cast every float tensor to this dtype, dequantizing block-quantized ones (integer and bool tensors are
    /// kept as they are).
    pub dtype: Option<DType>,
    /// Largest shard, in bytes (directory outputs); `None` keeps the source's sharding.
    pub max_shard_size: Option<u64>,
    /// Replace an existing destination.
    pub overwrite: bool,
    /// fsync outputs before renaming them into place (durable against power loss).
    pub sync: bool,
    /// Quantize weight matrices to this ggml block type (GGUF outputs); vectors and tensors whose rows are
    /// not a whole number of blocks stay float.
    pub quant: Option<DType>,
    /// The model layout to write, when the destination's name does not say it.
    pub target: Option<Target>,
    /// MLX output: quantize the weight matrices (affine, `mlx.core.quantize`) as `mlx_lm.convert -q` does.
    pub mlx_quant: Option<crate::mlx::settings::MlxQuant>,
    /// MLX output: dequantize a quantized MLX model (`mlx_lm.convert --dequantize`).
    pub dequantize: bool,
    /// GGUF output: llama-quantize's per-tensor choices of this file type, applied to the GGUF the
    /// conversion would write in `dtype` (F16 by default), as converting then quantizing would.
    pub recipe: Option<Recipe>,
    /// Importance matrix for `recipe`.
    pub imatrix: Option<ImatrixInput>,
    /// Skip the check of free space before writing.
    pub no_space_check: bool,
    /// Skip the structural check of the written output before it is moved into place.
    pub skip_health: bool,
    /// Hash every written range and read it back before the output is moved into place.
    pub verify: bool,
    /// SafeTensors output: 2-D `*.weight` matrices in a scaled encoding, each with its scales (from a
    /// statistics pass over the tensor before it is encoded) and its `comfy_quant`, as ComfyUI loads them.
    pub scaled: Option<crate::scaled::options::ScaledOptions>,
    /// SafeTensors output: a legacy `scaled_fp8` model rewritten in the `comfy_quant` layout.
    pub migrate: bool,
}

/// A model layout a directory destination can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A Hugging Face model directory (`transformers` names, config.json, tokenizer) from a GGUF.
    Hf,
    /// An MLX model directory (`mlx_lm` names and quantized layout, config.json, tokenizer).
    Mlx,
}

/// A parsed recipe.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// Its llama.cpp name.
    pub name: &'static str,
    /// `general.file_type`.
    pub ftype: u32,
    /// The weight type most tensors get.
    pub default: DType,
    /// Every quantizable tensor gets `default` (llama-quantize `--pure`).
    pub pure: bool,
    /// Keep `output.weight` as it is (`--leave-output-tensor`).
    pub leave_output: bool,
    /// User overrides: (substring or regex, type), first match wins (`--tensor-type PATTERN=TYPE`).
    pub overrides: Vec<(regex::Regex, DType)>,
    /// The type of `output.weight` (and of tied token embeddings) (`--output-tensor-type`).
    pub output_type: Option<DType>,
    /// The type of the token embeddings (`--token-embedding-type`).
    pub token_embd_type: Option<DType>,
    /// An importance matrix is given (some choices depend on it, as in llama.cpp).
    pub has_imatrix: bool,
    /// Plan only (`--dry-run`): a missing importance matrix is reported in the plan's warnings instead of
    /// refused.
    pub dry_run: bool,
}

/// llama-quantize's aliases: (alias, file type).
const ALIASES: &[(&str, &str)] = &[("Q3_K", "Q3_K_M"), ("Q4_K", "Q4_K_M"), ("Q5_K", "Q5_K_M")];

impl Recipe {
    /// Looks a recipe up by its llama.cpp name or alias (case-insensitive).
    pub fn named(name: &str) -> Result<Recipe> {
        let name = ALIASES
            .iter()
            .find(|a| a.0.eq_ignore_ascii_case(name))
            .map_or(name, |a| a.1);
        let recipes = || FILE_TYPES.iter().filter(|f| f.recipe);
        let &FileType {
            name: n,
            id: ftype,
            default,
            ..
        } = recipes()
            .find(|f| f.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                Error::Usage(format!(
                    "unknown quantization '{name}'; known: {}",
                    recipes().map(|f| f.name).collect::<Vec<_>>().join(", ")
                ))
            })?;
        Ok(Recipe {
            name: n,
            ftype,
            default,
            pure: false,
            leave_output: false,
            overrides: Vec::new(),
            output_type: None,
            token_embd_type: None,
            has_imatrix: false,
            dry_run: false,
        })
    }
}

/// An importance matrix for `plan_quantize`, with the file name written into the output's metadata.
#[derive(Debug, Clone)]
pub struct ImatrixInput {
    /// The loaded matrix.
    pub data: lbrx_formats::imatrix::Imatrix,
    /// The file name as given (llama-quantize's `quantize.imatrix.file`).
    pub file: String,
}

/// A `--quant` value: one ggml type for every matrix, or a llama.cpp recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuantChoice {
    /// Every weight matrix in this ggml type.
    Type(DType),
    /// llama-quantize's per-tensor choices of this file type.
    Recipe(String),
    /// A scaled low-precision family (`lbrx_quant::scaled::SCHEMES`: `fp8`), its granularity from `--scaling`.
    Scaled(&'static str),
}

/// The ggml types `--quant` writes as one type for every matrix: the quantizer table's block types that have
/// a llama.cpp file type. IQ2_XXS, IQ2_XS and IQ1_S exist only with an importance matrix, so there their name
/// means their recipe.
pub fn plain_quant_types() -> Vec<DType> {
    use lbrx_quant::codec::{of_family, Family};
    of_family(|f| f == Family::Ggml)
        .filter(|c| {
            (c.encodes || c.needs_imatrix)
                && c.block > 1
                && crate::ftype::file_type_of(c.dtype).is_some()
                && !(c.needs_imatrix && Recipe::named(c.name).is_ok())
        })
        .map(|c| c.dtype)
        .collect()
}

/// The llama.cpp recipes (`--quant` / `--recipe` / `lbrx quantize`), in llama-quantize's order.
pub fn recipe_names() -> Vec<&'static str> {
    FILE_TYPES
        .iter()
        .filter(|f| f.recipe)
        .map(|f| f.name)
        .collect()
}

/// Reads a `--quant` value: a plain type, else a recipe name.
pub fn parse_quant(s: &str) -> Result<QuantChoice> {
    let s = s.trim();
    if let Some(d) = DType::from_name(s).filter(|d| plain_quant_types().contains(d)) {
        return Ok(QuantChoice::Type(d));
    }
    if Recipe::named(s).is_ok() {
        return Ok(QuantChoice::Recipe(s.to_string()));
    }
    if let Some(f) = lbrx_quant::codec::scaled_families()
        .into_iter()
        .find(|f| f.eq_ignore_ascii_case(s))
    {
        return Ok(QuantChoice::Scaled(f));
    }
    let types: Vec<&str> = plain_quant_types().iter().map(|d| d.name()).collect();
    let scaled = lbrx_quant::codec::scaled_families();
    Err(Error::Usage(format!(
        "'{s}' is not a quantization type lbrx writes (use {}, a llama.cpp recipe: {}, or a scaled \
         SafeTensors encoding: {})",
        types.join(", "),
        recipe_names().join(", "),
        scaled.join(", ")
    )))
}

/// What `lbrx convert` was given, as plain values, before any default or flag interaction is resolved.
#[derive(Debug, Clone, Default)]
pub struct ConvertArgs {
    /// Source file or directory.
    pub src: std::path::PathBuf,
    /// Destination.
    pub dst: std::path::PathBuf,
    /// `--dtype` (`None`: auto).
    pub dtype: Option<DType>,
    /// `--quant`.
    pub quant: Option<QuantChoice>,
    /// `--recipe`.
    pub recipe: Option<String>,
    /// `--imatrix`.
    pub imatrix: Option<std::path::PathBuf>,
    /// `--to`.
    pub to: Option<Target>,
    /// `-q` / `--quantize`.
    pub quantize: bool,
    /// `--q-bits`.
    pub q_bits: Option<u32>,
    /// `--q-group-size`.
    pub q_group_size: Option<u32>,
    /// `--q-mode`.
    pub q_mode: Option<String>,
    /// `--quant-predicate`.
    pub quant_predicate: Option<String>,
    /// `--dequantize`.
    pub dequantize: bool,
    /// `--max-shard-size`.
    pub max_shard_size: Option<u64>,
    /// `--force`.
    pub overwrite: bool,
    /// `--sync`.
    pub sync: bool,
    /// `--no-space-check`.
    pub no_space_check: bool,
    /// `--skip-health`.
    pub skip_health: bool,
    /// `--verify`.
    pub verify: bool,
    /// `--dry-run`.
    pub dry_run: bool,
    /// `--scaling` (tensor, row or block) for a scaled `--quant`.
    pub scaling: Option<String>,
    /// `--block-size` for block scaling.
    pub block_size: Option<u32>,
    /// `--filter NAME` (model filters for a scaled `--quant`), in order.
    pub filters: Vec<String>,
    /// `--include REGEX`.
    pub include: Option<String>,
    /// `--exclude REGEX`.
    pub exclude: Option<String>,
    /// `--heur`.
    pub heur: bool,
    /// `--input-scale`.
    pub input_scale: bool,
    /// `--full-precision-mm`.
    pub full_precision_mm: bool,
    /// `--migrate`.
    pub migrate: bool,
    /// `--learned-rounding` with its settings (`--rounding-iters` ...).
    pub learned: Option<lbrx_quant::scaled::learned::Params>,
}

/// A conversion request with every default and flag interaction resolved, once; the planners and the
/// executor take it as it is.
#[derive(Debug, Clone)]
pub struct Request {
    /// Source file or directory.
    pub src: std::path::PathBuf,
    /// Destination.
    pub dst: std::path::PathBuf,
    /// What to write.
    pub options: ConvertOptions,
    /// See the source through the dequantizing view of quantized MLX models (MLX or GGUF outputs).
    pub dequantize_source: bool,
    /// Plan only.
    pub dry_run: bool,
}

impl ConvertArgs {
    /// Resolves the arguments into a request: the target layout (`--to`, or MLX for `--dequantize` into a
    /// directory), MLX settings only with an MLX target (`-q` always means quantize), `--quant` as a type or
    /// a recipe, a recipe and an importance matrix only for a GGUF, and whether the source needs the
    /// dequantizing view.
    pub fn resolve(self) -> Result<Request> {
        let ext = |e: &str| {
            self.dst
                .extension()
                .is_some_and(|x| x.eq_ignore_ascii_case(e))
        };
        let (to_gguf, is_file) = (ext("gguf"), ext("gguf") || ext("safetensors"));
        let target = match self.to {
            Some(t) => Some(t),
            None if self.dequantize && !is_file => Some(Target::Mlx),
            None => None,
        };
        let mlx = target == Some(Target::Mlx);
        let mlx_flags = self.q_bits.is_some()
            || self.q_group_size.is_some()
            || self.quant_predicate.is_some()
            || self.q_mode.is_some();
        if mlx_flags && !mlx {
            return Err(Error::Usage("--q-bits, --q-group-size, --q-mode and --quant-predicate are MLX options: add --to mlx \
                 (for GGUF use --quant TYPE)"
                    .into(),));
        }
        if self.quantize && !mlx {
            return Err(Error::Usage("-q/--quantize quantizes an MLX output (as mlx_lm.convert -q): add --to mlx; for GGUF use \
                 --quant TYPE (Q8_0, Q4_K_M ...); --quiet silences the progress bar"
                    .into(),));
        }
        let mlx_quant = if mlx && (self.quantize || mlx_flags) {
            Some(crate::mlx::settings::MlxQuant::new(
                self.q_bits,
                self.q_group_size,
                self.quant_predicate.as_deref(),
                self.q_mode.as_deref(),
            )?)
        } else {
            None
        };
        // a name both ggml and the scaled families have (NVFP4) is the scaled one outside GGUF
        let choice = match self.quant {
            Some(QuantChoice::Type(d)) if !to_gguf => {
                match lbrx_quant::scaled::family_named(d.name()) {
                    Some(f) => Some(QuantChoice::Scaled(f.name)),
                    None => Some(QuantChoice::Type(d)),
                }
            }
            q => q,
        };
        let scaled_family = match &choice {
            Some(QuantChoice::Scaled(f)) => Some(*f),
            _ => None,
        };
        let (quant, recipe_name) = match (choice, self.recipe) {
            (Some(_), Some(_)) => {
                return Err(Error::Usage("give --quant or --recipe, not both".into()))
            }
            (Some(QuantChoice::Type(d)), None) => (Some(d), None),
            (Some(QuantChoice::Scaled(_)), None) => (None, None),
            (Some(QuantChoice::Recipe(r)), None) | (None, Some(r)) => (None, Some(r)),
            (None, None) => (None, None),
        };
        let recipe = match recipe_name {
            Some(_) if !to_gguf => {
                return Err(Error::Usage(
                    "--recipe (a llama.cpp file type) needs a .gguf destination".into(),
                ))
            }
            Some(r) => {
                let mut r = Recipe::named(&r)?;
                r.dry_run = self.dry_run;
                Some(r)
            }
            None => None,
        };
        let imatrix = match &self.imatrix {
            Some(_) if recipe.is_none() => {
                return Err(Error::Usage(
                    "--imatrix goes with --recipe (or a recipe name in --quant)".into(),
                ))
            }
            Some(p) => Some(ImatrixInput {
                data: lbrx_formats::imatrix::read_imatrix(p)?,
                file: p.to_string_lossy().into_owned(),
            }),
            None => None,
        };
        let scaled_flags = !self.filters.is_empty()
            || self.include.is_some()
            || self.exclude.is_some()
            || self.heur
            || self.input_scale
            || self.full_precision_mm
            || self.learned.is_some();
        let scaled = match scaled_family {
            Some(family) => {
                if to_gguf || target.is_some() {
                    return Err(Error::Usage(format!(
                        "--quant {family} writes SafeTensors (a .safetensors file or a directory), not GGUF or --to"
                    )));
                }
                if self.block_size.is_some() && self.scaling.as_deref() != Some("block") {
                    return Err(Error::Usage(
                        "--block-size goes with --scaling block".into(),
                    ));
                }
                let scheme = lbrx_quant::scaled::Scheme::new(
                    family,
                    self.scaling.as_deref(),
                    self.block_size,
                )
                .map_err(Error::Usage)?;
                let output_dtype = match self.dtype {
                    None => DType::BF16,
                    Some(d @ (DType::BF16 | DType::F16)) => d,
                    Some(d) => {
                        return Err(Error::Usage(format!(
                            "with --quant {family}, --dtype is the compute dtype of the quantized layers and the \
                             dtype of the weights left unquantized: bf16 or f16, not {d}"
                        )))
                    }
                };
                let regex = |flag: &str, r: &Option<String>| -> Result<Option<regex::Regex>> {
                    r.as_deref()
                        .map(|p| {
                            regex::Regex::new(p)
                                .map_err(|e| Error::Usage(format!("{flag} '{p}': {e}")))
                        })
                        .transpose()
                };
                let filters = self
                    .filters
                    .iter()
                    .map(|f| crate::scaled::filters::named(f).map_err(Error::Usage))
                    .collect::<Result<Vec<_>>>()?;
                Some(crate::scaled::options::ScaledOptions {
                    scheme,
                    output_dtype,
                    filters,
                    include: regex("--include", &self.include)?,
                    exclude: regex("--exclude", &self.exclude)?,
                    heur: self.heur,
                    input_scale: self.input_scale,
                    full_precision_mm: self.full_precision_mm,
                    learned: match self.learned {
                        Some(_)
                            if !matches!(
                                scheme.family,
                                lbrx_quant::scaled::Family::Fp8 | lbrx_quant::scaled::Family::Int8
                            ) =>
                        {
                            return Err(Error::Usage(format!(
                                "--learned-rounding searches fp8 and int8 codes, not {family}"
                            )))
                        }
                        l => l,
                    },
                })
            }
            None if self.scaling.is_some() || self.block_size.is_some() || scaled_flags => {
                return Err(Error::Usage(format!(
                    "--scaling, --block-size, --filter, --include, --exclude, --heur, --input-scale, \
                     --full-precision-mm and --learned-rounding go with a scaled --quant ({})",
                    lbrx_quant::codec::scaled_families().join(", ")
                )))
            }
            None => None,
        };
        if self.migrate
            && (to_gguf
                || target.is_some()
                || quant.is_some()
                || scaled.is_some()
                || recipe.is_some()
                || self.dtype.is_some())
        {
            return Err(Error::Usage(
                "--migrate rewrites a legacy scaled_fp8 SafeTensors model in place of a copy: give no --quant, \
                 --dtype or --to"
                    .into(),
            ));
        }
        let dequantize_source = self.dequantize || mlx_quant.is_some() || to_gguf;
        Ok(Request {
            src: self.src,
            dst: self.dst,
            options: ConvertOptions {
                dtype: self.dtype,
                max_shard_size: self.max_shard_size,
                overwrite: self.overwrite,
                sync: self.sync,
                quant,
                target,
                mlx_quant,
                dequantize: self.dequantize,
                recipe,
                imatrix,
                scaled,
                migrate: self.migrate,
                no_space_check: self.no_space_check,
                skip_health: self.skip_health,
                verify: self.verify,
            },
            dequantize_source,
            dry_run: self.dry_run,
        })
    }
}

/// What `lbrx quantize` was given, before it is resolved into a recipe.
#[derive(Debug, Clone, Default)]
pub struct QuantizeArgs {
    /// The llama.cpp file type (`Q4_K_M` ...).
    pub kind: String,
    /// `--pure`.
    pub pure: bool,
    /// `--leave-output-tensor`.
    pub leave_output: bool,
    /// `--tensor-type PATTERN=TYPE`, in order.
    pub tensor_types: Vec<String>,
    /// `--output-tensor-type`.
    pub output_type: Option<DType>,
    /// `--token-embedding-type`.
    pub token_embd_type: Option<DType>,
    /// `--imatrix`.
    pub imatrix: Option<std::path::PathBuf>,
    /// `--dry-run`.
    pub dry_run: bool,
}

/// A type `lbrx quantize` writes, by name (case-insensitive).
pub fn parse_quantize_type(s: &str) -> Result<DType> {
    DType::from_name(s)
        .filter(|d| lbrx_quant::ggml_quant::can_quantize(*d))
        .ok_or_else(|| Error::Usage(format!("'{s}' is not a type lbrx quantizes to")))
}

impl QuantizeArgs {
    /// The recipe with every option applied, and the importance matrix read.
    pub fn resolve(self) -> Result<(Recipe, Option<ImatrixInput>)> {
        let mut recipe = Recipe::named(&self.kind)?;
        recipe.pure = self.pure;
        recipe.leave_output = self.leave_output;
        recipe.output_type = self.output_type;
        recipe.token_embd_type = self.token_embd_type;
        recipe.dry_run = self.dry_run;
        for o in &self.tensor_types {
            let (pat, ty) = o.rsplit_once('=').ok_or_else(|| {
                Error::Usage(format!("--tensor-type '{o}': expected PATTERN=TYPE"))
            })?;
            let dtype = parse_quantize_type(ty)
                .map_err(|e| Error::Usage(format!("--tensor-type '{o}': {e}")))?;
            let re = regex::Regex::new(pat)
                .map_err(|e| Error::Usage(format!("--tensor-type pattern '{pat}': {e}")))?;
            recipe.overrides.push((re, dtype));
        }
        let imatrix = match &self.imatrix {
            Some(p) => Some(ImatrixInput {
                data: lbrx_formats::imatrix::read_imatrix(p)?,
                file: p.to_string_lossy().into_owned(),
            }),
            None => None,
        };
        Ok((recipe, imatrix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(dst: &str) -> ConvertArgs {
        ConvertArgs {
            src: "m".into(),
            dst: dst.into(),
            ..Default::default()
        }
    }

    #[test]
    fn flag_interactions_are_resolved_once() {
        // -q means quantize and needs an MLX target
        let e = ConvertArgs {
            quantize: true,
            ..args("o.gguf")
        };
        assert!(e.resolve().unwrap_err().to_string().contains("--to mlx"));
        let r = ConvertArgs {
            quantize: true,
            to: Some(Target::Mlx),
            ..args("o")
        }
        .resolve()
        .unwrap();
        assert_eq!(r.options.mlx_quant.unwrap().bits, 4);
        assert!(r.dequantize_source);
        // --q-mode implies quantization
        let r = ConvertArgs {
            q_mode: Some("mxfp8".into()),
            to: Some(Target::Mlx),
            ..args("o")
        }
        .resolve()
        .unwrap();
        assert_eq!(r.options.mlx_quant.unwrap().mode.name(), "mxfp8");
        // --dequantize into a directory writes MLX; into a .safetensors file it keeps names
        let d = |dst: &str| ConvertArgs {
            dequantize: true,
            ..args(dst)
        };
        assert_eq!(d("o").resolve().unwrap().options.target, Some(Target::Mlx));
        assert_eq!(d("o.safetensors").resolve().unwrap().options.target, None);
        // a recipe name in --quant is a recipe, and needs a GGUF
        let q = parse_quant("Q4_K_M").unwrap();
        assert_eq!(q, QuantChoice::Recipe("Q4_K_M".into()));
        let r = ConvertArgs {
            quant: Some(q.clone()),
            ..args("o.gguf")
        }
        .resolve()
        .unwrap();
        assert_eq!(r.options.recipe.unwrap().ftype, 15);
        assert!(ConvertArgs {
            quant: Some(q),
            ..args("o")
        }
        .resolve()
        .is_err());
        assert_eq!(parse_quant("q8_0").unwrap(), QuantChoice::Type(DType::Q8_0));
        // IQ2_XXS exists only with an importance matrix: its name is the recipe
        assert!(matches!(
            parse_quant("IQ2_XXS").unwrap(),
            QuantChoice::Recipe(_)
        ));
        assert!(parse_quant("Q9").is_err());
        // --imatrix only with a recipe
        let e = ConvertArgs {
            imatrix: Some("x.dat".into()),
            ..args("o.gguf")
        };
        assert!(e.resolve().unwrap_err().to_string().contains("--imatrix"));
        // MLX flags without an MLX target
        let e = ConvertArgs {
            q_bits: Some(8),
            ..args("o.gguf")
        };
        assert!(e.resolve().unwrap_err().to_string().contains("MLX options"));
    }
}
